//! The Jira integration through herald's HTTP surface against the stateful Jira emulator: the issue lifecycle on
//! Cloud (create, update, comment, resolve, reopen, start over; won't-fix and deleted issues), the same under 429,
//! 503, hangs and a create whose answer is lost, Data Center's v2 API, and Jira's 400s in the audit trail.
//!
//! herald and the emulator share one `ManualClock`: group timers, retries and Retry-After waits happen when a test
//! moves it, and the emulator records each request's time on it. Waits poll real events (stored deliveries,
//! recorded requests) with generous bounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SubsecRound, Utc};
use herald::clock::{Clock, ManualClock};
use herald::config::StorageBackend;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::delivery::manual_clock;
use crate::harness::Herald;
use crate::jira_emulator::{
    CLOUD_API_TOKEN, CLOUD_EMAIL, DC_PAT, Fault, JiraConfig, JiraEmulator, JiraMode,
    RequestPattern, Status,
};

const HOUR: Duration = Duration::from_secs(3600);
/// `group_interval` in every test's route.
const GROUP_INTERVAL: Duration = Duration::from_secs(60);
/// Every Retry-After and X-RateLimit-Reset the tests script, in seconds.
const WAIT: u64 = 30;

/// herald with one receiver `jira` whose Jira integrations point at an emulator, sharing a manual clock.
struct Setup {
    clock: Arc<ManualClock>,
    jira: JiraEmulator,
    herald: Herald,
    _dir: tempfile::TempDir,
}

/// One `jira_configs` entry for `mode` at `url`, with `extra` keys (YAML lines at the entry's indentation).
fn jira_entry(url: &str, mode: JiraMode, extra: &[&str]) -> String {
    let auth = match mode {
        JiraMode::Cloud => {
            format!(
                "api_type: cloud\n        user: {CLOUD_EMAIL}\n        api_token: {CLOUD_API_TOKEN}"
            )
        }
        JiraMode::DataCenter => {
            format!("api_type: datacenter\n        personal_access_token: {DC_PAT}")
        }
    };
    let mut entry = format!(
        "      - {auth}
        api_url: {url}
        project: OPS
        issue_type: Incident
        priority_map: {{critical: Highest, warning: High}}
        labels: [alerts]
        summary: \"{{{{ group_labels.alertname }}}}: {{{{ firing | length }}}} firing\"
        comment_on_update: true
        wont_fix_resolution: \"Won't Do\"
        timeout: 1s
        retry: {{initial_backoff: 1s, max_backoff: 8s, max_attempts: 50}}
"
    );
    for line in extra {
        entry.push_str("        ");
        entry.push_str(line);
        entry.push('\n');
    }
    entry
}

fn config_yaml(entries: &[String]) -> String {
    format!(
        "route:
  receiver: jira
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1m
  repeat_interval: 1h
receivers:
  - name: jira
    jira_configs:
{}",
        entries.concat()
    )
}

async fn start_herald(yaml: &str, clock: &Arc<ManualClock>) -> (Herald, tempfile::TempDir) {
    let mut settings = herald::config::load_str(yaml, "jira.yaml")
        .unwrap_or_else(|errors| panic!("{errors}\n{yaml}"))
        .settings;
    let dir = tempfile::tempdir().unwrap();
    settings.storage.backend = StorageBackend::Sqlite {
        path: dir.path().join("jira.db"),
    };
    settings.server.listen = "127.0.0.1:0".parse().unwrap();
    let shared: Arc<dyn Clock> = clock.clone();
    (Herald::start_with_clock(settings, shared).await, dir)
}

impl Setup {
    /// An emulator configured by `emulator` and herald with one Jira integration (plus `extra` keys) at `url_of`
    /// the emulator's URL (a proxy in front of it, say).
    async fn start_with(emulator: JiraConfig, extra: &[&str]) -> Setup {
        let clock = manual_clock();
        let mode = emulator.mode;
        let jira = JiraEmulator::start_with(emulator, clock.clone()).await;
        let yaml = config_yaml(&[jira_entry(&jira.url(), mode, extra)]);
        let (herald, dir) = start_herald(&yaml, &clock).await;
        Setup {
            clock,
            jira,
            herald,
            _dir: dir,
        }
    }

    async fn start(mode: JiraMode, extra: &[&str]) -> Setup {
        Setup::start_with(JiraConfig::new(mode), extra).await
    }

    /// Fires `db-1` and settles the first delivery; returns the group's label.
    async fn fire_first(&self) -> String {
        self.fire("db-1").await;
        let done = self.settle(1).await;
        label_of_delivery(&done[0])
    }

    /// Posts one alert of group `DiskFull` for `instance`, starting now, firing until 2100.
    async fn fire(&self, instance: &str) {
        let now = self.clock.now().to_rfc3339();
        let body = format!(
            r#"[{{"labels":{{"alertname":"DiskFull","instance":"{instance}","severity":"critical"}},
                "annotations":{{"summary":"{instance} disk is full"}},
                "startsAt":"{now}","endsAt":"2100-01-01T00:00:00Z",
                "generatorURL":"http://prometheus:9090/graph?g0.expr=disk"}}]"#
        );
        let response = self.herald.post_json("/api/v2/alerts", body).await;
        assert_eq!(response.status(), 200);
    }

    /// Posts `instance`'s alert as resolved now.
    async fn resolve(&self, instance: &str) {
        let now = self.clock.now().to_rfc3339();
        let body = format!(
            r#"[{{"labels":{{"alertname":"DiskFull","instance":"{instance}","severity":"critical"}},
                "annotations":{{"summary":"{instance} disk is full"}},"endsAt":"{now}"}}]"#
        );
        let response = self.herald.post_json("/api/v2/alerts", body).await;
        assert_eq!(response.status(), 200);
    }

    async fn deliveries(&self) -> Vec<Value> {
        self.herald.deliveries("?limit=1000").await
    }

    /// Waits until `count` deliveries exist and all are delivered, moving the clock to each retry's time as it
    /// comes; fails on a dead delivery. Returns the deliveries, oldest first.
    async fn settle(&self, count: usize) -> Vec<Value> {
        for _ in 0..2400 {
            let mut all = self.deliveries().await;
            if let Some(dead) = all.iter().find(|d| d["state"] == "dead") {
                panic!(
                    "delivery died: {:#}\nrequests: {:#?}",
                    self.herald.delivery(dead["id"].as_i64().unwrap()).await,
                    self.request_lines()
                );
            }
            let delivered = all.iter().filter(|d| d["state"] == "delivered").count();
            if all.len() == count && delivered == count {
                all.reverse();
                return all;
            }
            assert!(all.len() <= count, "more deliveries than {count}: {all:#?}");
            self.advance_to_next_retry(&all);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "never {count} delivered deliveries: {:#?}\nrequests: {:#?}",
            self.deliveries().await,
            self.request_lines()
        );
    }

    /// Moves the clock to the earliest retry time still ahead, if any delivery waits for one.
    fn advance_to_next_retry(&self, all: &[Value]) {
        let now = self.clock.now();
        let next = all
            .iter()
            .filter(|d| d["state"] == "pending" && d["attempts"].as_u64() > Some(0))
            .map(|d| time(&d["next_attempt_at"]))
            .filter(|at| *at > now)
            .min();
        if let Some(at) = next {
            self.clock.set(at);
        }
    }

    /// Moves the clock by `by`, then settles `count` deliveries.
    async fn advance_and_settle(&self, by: Duration, count: usize) -> Vec<Value> {
        self.clock.advance(by);
        self.settle(count).await
    }

    fn request_lines(&self) -> Vec<String> {
        self.jira
            .requests()
            .iter()
            .map(|r| {
                let status = r.status.map_or("hang".to_owned(), |s| s.to_string());
                format!(
                    "{} {} {} -> {status}",
                    r.at.format("%H:%M:%S"),
                    r.method,
                    r.path
                )
            })
            .collect()
    }

    /// The group's issues, oldest first.
    fn issues(&self, label: &str) -> Vec<crate::jira_emulator::Issue> {
        self.jira.issues_with_label(label)
    }

    async fn stop(self) {
        self.herald.stop().await;
        self.jira.stop();
    }
}

fn time(value: &Value) -> DateTime<Utc> {
    value.as_str().unwrap().parse().unwrap()
}

/// The label herald gives a group's issues.
fn label_of(group_key: &str) -> String {
    format!(
        "ALERT{{{}}}",
        hex::encode(Sha256::digest(group_key.as_bytes()))
    )
}

fn label_of_delivery(delivery: &Value) -> String {
    label_of(delivery["group_key"].as_str().unwrap())
}

/// The names of the transitions an issue went through, in order.
fn transitions(issue: &crate::jira_emulator::Issue) -> Vec<String> {
    issue
        .history
        .iter()
        .map(|change| change.via.clone())
        .collect()
}

async fn audit(herald: &Herald, delivery: &Value) -> Value {
    herald.delivery(delivery["id"].as_i64().unwrap()).await
}

#[tokio::test]
async fn cloud_lifecycle_creates_updates_comments_resolves_reopens_and_starts_over() {
    let description = r#"description: "{% for a in alerts %}{{ a.labels.instance }}: {{ a.annotations.summary }}\nSource: {{ a.generator_url }}\n{% endfor %}""#;
    let setup = Setup::start(JiraMode::Cloud, &[description]).await;

    // Firing: one issue with the group's label, an ADF description and the priority from priority_map.
    setup.fire("db-1").await;
    let done = setup.settle(1).await;
    let label = label_of_delivery(&done[0]);
    let issues = setup.issues(&label);
    assert_eq!(issues.len(), 1);
    let issue = &issues[0];
    let key = issue.key.clone();
    assert_eq!(issue.labels, ["alerts", label.as_str()]);
    assert_eq!(issue.priority, "Highest");
    assert_eq!(issue.issue_type, "Incident");
    assert_eq!(issue.summary, "DiskFull: 1 firing");
    assert_eq!(issue.description["type"], "doc", "Cloud takes ADF");
    assert_eq!(
        issue.description_text(),
        "db-1: db-1 disk is full\nSource: http://prometheus:9090/graph?g0.expr=disk",
        "a paragraph per line"
    );
    let source = &issue.description["content"][1]["content"][1];
    assert_eq!(
        source["marks"][0]["attrs"]["href"], "http://prometheus:9090/graph?g0.expr=disk",
        "URLs are links: {source}"
    );
    assert!(issue.comments.is_empty(), "no comment on create");
    let first = audit(&setup.herald, &done[0]).await;
    assert_eq!(first["attempts"][0]["status_code"], 201);
    assert_eq!(first["attempts"][0]["response"], format!("created {key}"));

    // An update (a new alert in the group): the same issue, edited and commented.
    setup.fire("db-2").await;
    setup.advance_and_settle(GROUP_INTERVAL, 2).await;
    let issue = setup.jira.issue(&key).unwrap();
    assert_eq!(setup.issues(&label).len(), 1, "no new ticket");
    assert_eq!(issue.summary, "DiskFull: 2 firing");
    assert!(issue.description_text().contains("db-2 disk is full"));
    assert_eq!(issue.comments.len(), 1);
    assert!(issue.comments[0].text().starts_with("FIRING (new_alerts)"));
    assert_eq!(issue.comments[0].body["type"], "doc");

    // Repeats: updated; commented once, not again for the same text.
    setup.advance_and_settle(HOUR, 3).await;
    setup.advance_and_settle(HOUR, 4).await;
    let issue = setup.jira.issue(&key).unwrap();
    assert_eq!(setup.issues(&label).len(), 1);
    let comments: Vec<String> = issue.comments.iter().map(|c| c.text()).collect();
    assert_eq!(comments.len(), 2, "{comments:#?}");
    assert!(comments[1].starts_with("FIRING (repeat)"));
    let edits = setup.jira.requests_matching(&RequestPattern::new(
        "PUT",
        &format!("/rest/api/3/issue/{key}"),
    ));
    assert_eq!(edits.len(), 3, "every update and repeat edits the issue");

    // Resolved: transitioned to Done.
    setup.resolve("db-1").await;
    setup.resolve("db-2").await;
    setup.advance_and_settle(GROUP_INTERVAL, 5).await;
    let issue = setup.jira.issue(&key).unwrap();
    assert_eq!(issue.status, Status::Done);
    assert_eq!(transitions(&issue), ["Done"]);
    assert!(
        issue
            .comments
            .last()
            .unwrap()
            .text()
            .starts_with("RESOLVED")
    );

    // Firing again within reopen_duration: the same issue, reopened. The default reopen_transition "To Do" names
    // the status the emulator's "Reopen" transition leads to.
    setup.clock.advance(HOUR);
    setup.fire("db-1").await;
    setup.settle(6).await;
    let issue = setup.jira.issue(&key).unwrap();
    assert_eq!(setup.issues(&label).len(), 1, "reopened, not recreated");
    assert_eq!(issue.status, Status::ToDo);
    assert_eq!(transitions(&issue), ["Done", "Reopen"]);
    assert_eq!(issue.summary, "DiskFull: 1 firing");

    // Resolved again, then firing after reopen_duration: a new issue.
    setup.resolve("db-1").await;
    setup.advance_and_settle(GROUP_INTERVAL, 7).await;
    assert_eq!(setup.jira.issue(&key).unwrap().status, Status::Done);
    setup.clock.advance(25 * HOUR);
    setup.fire("db-1").await;
    let done = setup.settle(8).await;
    let issues = setup.issues(&label);
    assert_eq!(issues.len(), 2);
    assert_eq!(issues[0].key, key);
    assert_eq!(issues[0].status, Status::Done, "the old one stays resolved");
    assert_eq!(issues[1].status, Status::ToDo);
    assert!(issues[1].comments.is_empty());
    let last = audit(&setup.herald, &done[7]).await;
    let response = last["attempts"][0]["response"].as_str().unwrap();
    assert_eq!(
        response,
        format!(
            "created {} ({key} was resolved longer than reopen_duration ago)",
            issues[1].key
        )
    );
    for request in setup.jira.requests() {
        assert!(request.path.starts_with("/rest/api/3/"), "{}", request.path);
        assert_ne!(
            request.path, "/rest/api/3/search",
            "the removed search is not used"
        );
    }
    setup.stop().await;
}

#[tokio::test]
async fn an_issue_resolved_as_wont_fix_is_not_reopened_a_new_one_is_created() {
    let setup = Setup::start(JiraMode::Cloud, &[]).await;
    let label = setup.fire_first().await;
    let key = setup.issues(&label)[0].key.clone();
    setup
        .jira
        .transition_by_hand(&key, Status::Done, Some("Won't Do"));

    setup.advance_and_settle(HOUR, 2).await;
    let issues = setup.issues(&label);
    assert_eq!(issues.len(), 2);
    assert_eq!(issues[0].resolution.as_deref(), Some("Won't Do"));
    assert_eq!(issues[0].history.len(), 1, "herald never reopened it");
    assert_eq!(issues[1].status, Status::ToDo);

    // The new issue is the group's from now on.
    setup.advance_and_settle(HOUR, 3).await;
    assert_eq!(setup.issues(&label).len(), 2);
    let fresh = setup.jira.issue(&issues[1].key).unwrap();
    assert_eq!(fresh.comments.len(), 1);
    setup.stop().await;
}

#[tokio::test]
async fn an_issue_deleted_by_hand_answers_404_and_a_new_one_is_created() {
    let setup = Setup::start(JiraMode::Cloud, &[]).await;
    let label = setup.fire_first().await;
    let key = setup.issues(&label)[0].key.clone();
    setup.jira.delete_issue(&key);

    let done = setup.advance_and_settle(HOUR, 2).await;
    let issues = setup.issues(&label);
    assert_eq!(issues.len(), 1);
    assert_ne!(issues[0].key, key);
    let lookups = setup.jira.requests_matching(&RequestPattern::new(
        "GET",
        &format!("/rest/api/3/issue/{key}"),
    ));
    assert_eq!(lookups.len(), 1);
    assert_eq!(lookups[0].status, Some(404));
    let repeat = audit(&setup.herald, &done[1]).await;
    assert_eq!(repeat["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(
        repeat["attempts"][0]["response"],
        format!("{key} not found; created {}", issues[0].key)
    );
    setup.stop().await;
}

/// A proxy in front of the emulator that forwards every request and its answer, except that it withholds the
/// answer to the first `lose` successful creates: Jira made the issue, herald never hears of it.
async fn lossy_proxy(target: String, lose: usize) -> String {
    let lose = Arc::new(AtomicUsize::new(lose));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let app = axum::Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let (client, lose, target) = (client.clone(), Arc::clone(&lose), target.clone());
            async move {
                let path = uri.path_and_query().map_or("/", |p| p.as_str());
                let mut request = client.request(method.clone(), format!("{target}{path}"));
                for (name, value) in &headers {
                    if name != header::HOST && name != header::CONTENT_LENGTH {
                        request = request.header(name, value);
                    }
                }
                let answer = request.body(body).send().await.unwrap();
                let status = answer.status();
                let answer_headers = answer.headers().clone();
                let bytes = answer.bytes().await.unwrap();
                let is_create = method == Method::POST && uri.path() == "/rest/api/3/issue";
                let take = |left: usize| left.checked_sub(1);
                if is_create
                    && status == StatusCode::CREATED
                    && lose
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, take)
                        .is_ok()
                {
                    return std::future::pending::<Response>().await;
                }
                let mut response = Response::builder().status(status);
                for (name, value) in &answer_headers {
                    if name != header::TRANSFER_ENCODING && name != header::CONTENT_LENGTH {
                        response = response.header(name, value);
                    }
                }
                response
                    .body(Body::from(bytes))
                    .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

/// herald behind a proxy that loses the first create's answer, against an emulator whose search lags one search.
async fn start_behind_a_lossy_proxy() -> Setup {
    let clock = manual_clock();
    let emulator = JiraConfig::new(JiraMode::Cloud).with_search_lag(1);
    let jira = JiraEmulator::start_with(emulator, clock.clone()).await;
    let proxy = lossy_proxy(jira.url(), 1).await;
    let yaml = config_yaml(&[jira_entry(&proxy, JiraMode::Cloud, &[])]);
    let (herald, dir) = start_herald(&yaml, &clock).await;
    Setup {
        clock,
        jira,
        herald,
        _dir: dir,
    }
}

/// Every request answered 429 or 503 (all scripted with a wait of `WAIT` seconds) is followed by no request
/// before that wait is over: `Retry-After` seconds from the answer, or the `X-RateLimit-Reset` time it named
/// (`reset_only`: the emulator writes that time in whole seconds).
fn assert_waits_honoured(setup: &Setup, reset_only: &RequestPattern) {
    let requests = setup.jira.requests();
    let wait = chrono::Duration::seconds(i64::try_from(WAIT).unwrap());
    for (index, limited) in requests.iter().enumerate() {
        if !matches!(limited.status, Some(429 | 503)) {
            continue;
        }
        let mut until = limited.at + wait;
        if reset_only.matches(&limited.method, &limited.path) {
            until = until.trunc_subsecs(0);
        }
        for later in &requests[index + 1..] {
            assert!(
                later.at >= until,
                "{} {} at {} came before the wait asked at {} was over: {:#?}",
                later.method,
                later.path,
                later.at,
                limited.at,
                setup.request_lines()
            );
        }
    }
}

fn outcomes(detail: &Value) -> Vec<String> {
    detail["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn under_rate_limits_outages_hangs_and_a_lost_create_nothing_is_duplicated_or_lost() {
    let setup = start_behind_a_lossy_proxy().await;
    let jira = &setup.jira;
    jira.fail_next(
        RequestPattern::new("POST", "/rest/api/3/search/jql"),
        1,
        Fault::rate_limited(WAIT),
    );
    jira.fail_next(
        RequestPattern::new("POST", "/rest/api/3/issue"),
        1,
        Fault::Unavailable {
            retry_after: Some(WAIT),
        },
    );

    // Firing: 429 on the search, 503 on the create, then a create whose answer is lost (herald times out) and a
    // search that does not show the new issue yet: herald waits rather than create a second one.
    setup.fire("db-1").await;
    let done = setup.settle(1).await;
    let label = label_of_delivery(&done[0]);
    let issues = setup.issues(&label);
    assert_eq!(
        issues.len(),
        1,
        "no duplicate: {:#?}",
        setup.request_lines()
    );
    let key = issues[0].key.clone();
    let first = audit(&setup.herald, &done[0]).await;
    assert_eq!(
        outcomes(&first),
        [
            "rate_limited",
            "rate_limited",
            "retryable",
            "retryable",
            "delivered"
        ],
        "{first:#}"
    );
    let errors: Vec<&str> = first["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["error"].as_str())
        .collect();
    assert!(errors[2].contains("timeout"), "{errors:?}");
    assert!(errors[3].contains("got no answer"), "{errors:?}");
    assert_eq!(
        jira.requests_matching(&RequestPattern::new("POST", "/rest/api/3/issue"))
            .iter()
            .filter(|r| r.status == Some(201))
            .count(),
        1
    );

    // A repeat whose edit hangs: retried after the timeout, applied once it answers.
    jira.fail_next(
        RequestPattern::new("PUT", "/rest/api/3/issue/*"),
        1,
        Fault::Hang,
    );
    setup.fire("db-2").await;
    let done = setup.advance_and_settle(GROUP_INTERVAL, 2).await;
    let update = audit(&setup.herald, &done[1]).await;
    assert_eq!(outcomes(&update), ["retryable", "delivered"]);
    let issue = jira.issue(&key).unwrap();
    assert_eq!(
        issue.summary, "DiskFull: 2 firing",
        "the update is not lost"
    );

    // A resolve rate-limited by X-RateLimit-Reset alone, then a 503 with Retry-After on the transition.
    let reset_only = RequestPattern::new("GET", "/rest/api/3/issue/*/transitions");
    jira.fail_next(
        reset_only.clone(),
        1,
        Fault::RateLimited {
            retry_after: None,
            reset_after: Some(WAIT),
        },
    );
    jira.fail_next(
        RequestPattern::new("POST", "/rest/api/3/issue/*/transitions"),
        1,
        Fault::Unavailable {
            retry_after: Some(WAIT),
        },
    );
    setup.resolve("db-1").await;
    setup.resolve("db-2").await;
    let done = setup.advance_and_settle(GROUP_INTERVAL, 3).await;
    let resolve = audit(&setup.herald, &done[2]).await;
    assert_eq!(
        outcomes(&resolve),
        ["rate_limited", "rate_limited", "delivered"]
    );
    let issue = jira.issue(&key).unwrap();
    assert_eq!(issue.status, Status::Done);
    assert_eq!(transitions(&issue), ["Done"], "transitioned once");
    assert_eq!(setup.issues(&label).len(), 1);
    let comments: Vec<String> = issue.comments.iter().map(|c| c.text()).collect();
    assert_eq!(comments.len(), 3, "{comments:#?}");
    assert_waits_honoured(&setup, &reset_only);
    setup.stop().await;
}

#[tokio::test]
async fn data_center_uses_v2_paths_wiki_text_a_bearer_token_and_the_v2_search() {
    let setup = Setup::start(JiraMode::DataCenter, &["reopen_transition: Reopen"]).await;
    let label = setup.fire_first().await;
    let issues = setup.issues(&label);
    assert_eq!(issues.len(), 1);
    let key = issues[0].key.clone();
    let description = &issues[0].description;
    assert!(description.is_string(), "wiki text: {description}");
    assert!(description.as_str().unwrap().contains("db-1 disk is full"));
    assert_eq!(issues[0].priority, "Highest");

    setup.fire("db-2").await;
    setup.advance_and_settle(GROUP_INTERVAL, 2).await;
    setup.resolve("db-1").await;
    setup.resolve("db-2").await;
    setup.advance_and_settle(GROUP_INTERVAL, 3).await;
    setup.clock.advance(HOUR);
    setup.fire("db-1").await;
    setup.settle(4).await;
    let issue = setup.jira.issue(&key).unwrap();
    assert_eq!(setup.issues(&label).len(), 1);
    assert_eq!(transitions(&issue), ["Done", "Reopen"]);
    assert_eq!(issue.status, Status::ToDo);
    assert!(
        issue.comments.iter().all(|c| c.body.is_string()),
        "wiki comments"
    );
    assert_eq!(issue.comments.len(), 3);

    let requests = setup.jira.requests();
    let searches = requests
        .iter()
        .filter(|r| r.is("POST", "/rest/api/2/search"))
        .count();
    assert!(searches >= 1);
    for request in &requests {
        assert!(request.path.starts_with("/rest/api/2/"), "{}", request.path);
        assert_eq!(
            request.headers["authorization"],
            format!("Bearer {DC_PAT}").as_str()
        );
    }
    let search = requests
        .iter()
        .find(|r| r.is("POST", "/rest/api/2/search"))
        .unwrap();
    assert_eq!(
        search.body["jql"],
        format!(r#"project = "OPS" AND labels = "{label}" ORDER BY created DESC"#)
    );
    setup.stop().await;
}

#[tokio::test]
async fn jira_s_400s_and_401s_are_dead_with_jira_s_body_verbatim_and_no_secret() {
    let clock = manual_clock();
    let jira = JiraEmulator::start(JiraMode::Cloud, clock.clone()).await;
    let url = jira.url();
    let wrong_token = format!(
        "      - api_url: {url}\n        user: {CLOUD_EMAIL}\n        api_token: wr0ng-t0ken\n        \
         project: OPS\n        issue_type: Incident\n"
    );
    let yaml = config_yaml(&[
        jira_entry(&url, JiraMode::Cloud, &["project: NOPE"]).replace("        project: OPS\n", ""),
        jira_entry(&url, JiraMode::Cloud, &["issue_type: Epic"])
            .replace("        issue_type: Incident\n", ""),
        wrong_token,
    ]);
    let (herald, _dir) = start_herald(&yaml, &clock).await;
    herald
        .post_json(
            "/api/v2/alerts",
            format!("[{}]", crate::harness::firing("Bad")),
        )
        .await;

    let mut dead = Vec::new();
    for _ in 0..2400 {
        dead = herald.deliveries("?state=dead").await;
        if dead.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(dead.len(), 3, "{:#?}", herald.deliveries("").await);
    let mut by_key = std::collections::BTreeMap::new();
    for delivery in &dead {
        let detail = herald.delivery(delivery["id"].as_i64().unwrap()).await;
        let key = detail["delivery"]["integration_key"]
            .as_str()
            .unwrap()
            .to_owned();
        by_key.insert(key, detail);
    }

    let project = &by_key["jira/0"];
    let attempt = &project["attempts"][0];
    assert_eq!(
        project["attempts"].as_array().unwrap().len(),
        1,
        "not retried"
    );
    assert_eq!(attempt["status_code"], 400);
    assert_eq!(
        attempt["response"],
        r#"{"errorMessages":["The value 'NOPE' does not exist for the field 'project'."],"errors":{}}"#
    );
    let error = project["delivery"]["last_error"].as_str().unwrap();
    assert!(
        error.starts_with(
            "permanent error: Jira rejected the request to search for the group's issue (HTTP 400"
        ),
        "{error}"
    );

    let issue_type = &by_key["jira/1"];
    let attempt = &issue_type["attempts"][0];
    assert_eq!(attempt["status_code"], 400);
    assert_eq!(
        attempt["response"],
        r#"{"errorMessages":[],"errors":{"issuetype":"valid issue type is required"}}"#
    );
    let error = issue_type["delivery"]["last_error"].as_str().unwrap();
    assert!(
        error.ends_with(
            "create the issue (HTTP 400 Bad Request): issuetype: valid issue type is required"
        ),
        "{error}"
    );

    let unauthenticated = &by_key["jira/2"];
    assert_eq!(unauthenticated["attempts"][0]["status_code"], 401);
    let error = unauthenticated["delivery"]["last_error"].as_str().unwrap();
    assert!(error.contains("check the credentials"), "{error}");

    let everything = format!("{by_key:?}");
    for secret in [CLOUD_API_TOKEN, "wr0ng-t0ken"] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
    assert!(jira.issues().is_empty());
    herald.stop().await;
    jira.stop();
}
