//! Tests of the silence model: states at their boundaries, validation, update-or-replace, expiry, muting.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::Cell;

use chrono::Duration;

use super::*;
use crate::alert::test_labels as labels;
use crate::matcher::parse_matchers;

fn t(second: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + second, 0).unwrap()
}

fn matchers(text: &str) -> Matchers {
    Matchers(parse_matchers(text).unwrap())
}

fn silence(id: &str, text: &str, start: i64, end: i64) -> Silence {
    Silence {
        id: id.into(),
        matchers: matchers(text),
        starts_at: t(start),
        ends_at: t(end),
        created_by: "ops".into(),
        comment: "maintenance".into(),
        updated_at: t(start),
    }
}

fn posted(id: Option<&str>, text: &str, start: i64, end: i64) -> PostableSilence {
    PostableSilence {
        id: id.map(str::to_string),
        matchers: matchers(text),
        starts_at: t(start),
        ends_at: t(end),
        created_by: Some("ops".into()),
        comment: Some("maintenance".into()),
    }
}

/// Ids new-1, new-2, ... in the order asked for.
fn ids() -> impl FnMut() -> String {
    let next = Cell::new(0);
    move || {
        next.set(next.get() + 1);
        format!("new-{}", next.get())
    }
}

fn book(silences: &[Silence]) -> Silences {
    let mut book = Silences::default();
    for silence in silences {
        book.insert(silence.clone());
    }
    book
}

#[test]
fn state_is_pending_before_start_active_until_end_expired_from_end() {
    let s = silence("a", "{job=\"api\"}", 100, 200);
    let just = Duration::microseconds(1);
    assert_eq!(s.state(t(100) - just), SilenceState::Pending);
    assert_eq!(s.state(t(100)), SilenceState::Active);
    assert_eq!(s.state(t(200) - just), SilenceState::Active);
    assert_eq!(s.state(t(200)), SilenceState::Expired);
    assert_eq!(s.state(t(300)), SilenceState::Expired);
    // Expired by hand while pending: start = end = now.
    assert_eq!(
        silence("b", "{job=\"api\"}", 150, 150).state(t(150)),
        SilenceState::Expired
    );
}

#[test]
fn mutes_only_while_active_and_when_all_matchers_match() {
    let s = silence("a", "{job=\"api\", env=~\"prod|staging\"}", 100, 200);
    let prod = labels(&[("job", "api"), ("env", "prod"), ("alertname", "Down")]);
    assert!(s.mutes(&prod, t(150)));
    assert!(!s.mutes(&prod, t(99)));
    assert!(!s.mutes(&prod, t(200)));
    assert!(!s.mutes(&labels(&[("job", "api"), ("env", "dev")]), t(150)));
    assert!(!s.mutes(&labels(&[("job", "api")]), t(150)));
}

#[test]
fn muted_by_lists_active_matching_silences_sorted_by_id() {
    let book = book(&[
        silence("c", "{job=\"api\"}", 100, 200),
        silence("a", "{job=~\"a.*\"}", 100, 300),
        silence("b", "{job=\"web\"}", 100, 200),
        silence("d", "{job=\"api\"}", 150, 200),
        silence("e", "{job=\"api\"}", 0, 100),
    ]);
    let api = labels(&[("job", "api")]);
    assert_eq!(book.muted_by(&api, t(120)), ["a", "c"]);
    assert_eq!(book.muted_by(&api, t(160)), ["a", "c", "d"]);
    assert_eq!(book.muted_by(&api, t(250)), ["a"]);
    assert!(book.muted_by(&labels(&[("job", "db")]), t(120)).is_empty());
    assert_eq!(
        book.counts(t(120)),
        [
            (SilenceState::Active, 3),
            (SilenceState::Pending, 1),
            (SilenceState::Expired, 1)
        ]
    );
}

#[test]
fn validation_follows_alertmanager_with_its_messages() {
    let now = t(0);
    let ok = posted(None, "{job=\"api\"}", 0, 60);
    assert!(validate(&ok, now).is_ok());
    let cases: Vec<(PostableSilence, &str)> = vec![
        (
            PostableSilence {
                created_by: None,
                ..ok.clone()
            },
            "createdBy is required",
        ),
        (
            PostableSilence {
                comment: None,
                ..ok.clone()
            },
            "comment is required",
        ),
        (
            PostableSilence {
                matchers: Matchers::default(),
                ..ok.clone()
            },
            "at least one matcher required",
        ),
        (
            posted(None, "{job=\"\"}", 0, 60),
            "at least one matcher must not match the empty string",
        ),
        (
            posted(None, "{job=~\".*\", env=~\"prod|\"}", 0, 60),
            "at least one matcher must not match the empty string",
        ),
        (
            posted(None, "{job=\"api\"}", 60, 60),
            "start time must be before end time",
        ),
        (
            posted(None, "{job=\"api\"}", 60, 30),
            "start time must be before end time",
        ),
        (
            posted(None, "{job=\"api\"}", -120, -60),
            "end time can't be in the past",
        ),
        (
            posted(None, "{job=\"api\"}", -120, 0),
            "end time can't be in the past",
        ),
    ];
    for (silence, expected) in cases {
        let error = validate(&silence, now).unwrap_err();
        assert!(matches!(error, SilenceError::Invalid(_)), "{error:?}");
        assert_eq!(error.to_string(), expected, "{silence:?}");
    }
    // As in Alertmanager, only `=` and `=~` count as matching the empty string; empty author and comment are
    // allowed once present.
    for text in [
        "{job!=\"api\"}",
        "{job!~\".+\"}",
        "{job=\"\", env=\"prod\"}",
    ] {
        assert!(validate(&posted(None, text, 0, 60), now).is_ok(), "{text}");
    }
    let empty = PostableSilence {
        created_by: Some(String::new()),
        comment: Some(String::new()),
        ..ok
    };
    assert!(validate(&empty, now).is_ok());
}

#[test]
fn new_silences_get_a_new_id_and_a_start_no_earlier_than_now() {
    let now = t(100) + Duration::microseconds(1_234_567);
    let plan = Silences::default()
        .plan_upsert(posted(None, "{job=\"api\"}", 0, 500), now, ids())
        .unwrap();
    assert_eq!(plan.id, "new-1");
    let [created] = plan.writes.as_slice() else {
        panic!("{plan:?}")
    };
    // Kept to the millisecond.
    let now_ms = t(101) + Duration::milliseconds(234);
    assert_eq!(created.starts_at, now_ms);
    assert_eq!(created.updated_at, now_ms);
    assert_eq!(created.ends_at, t(500));
    assert_eq!(created.state(now), SilenceState::Active);

    // A future start is kept; an empty id counts as none.
    let plan = Silences::default()
        .plan_upsert(posted(Some(""), "{job=\"api\"}", 200, 500), now, ids())
        .unwrap();
    assert_eq!(plan.writes[0].starts_at, t(200));
    assert_eq!(plan.writes[0].id, "new-1");
}

#[test]
fn unknown_ids_are_not_found_and_invalid_posts_change_nothing() {
    let book = book(&[silence("a", "{job=\"api\"}", 0, 500)]);
    let error = book
        .plan_upsert(posted(Some("zzz"), "{job=\"api\"}", 0, 500), t(100), ids())
        .unwrap_err();
    assert!(matches!(error, SilenceError::NotFound(ref id) if id == "zzz"));
    assert_eq!(error.to_string(), "silence zzz not found");
    // Validation comes first, as in Alertmanager.
    let error = book
        .plan_upsert(posted(Some("zzz"), "{job=\"\"}", 0, 500), t(100), ids())
        .unwrap_err();
    assert!(matches!(error, SilenceError::Invalid(_)));
}

#[test]
fn active_silences_update_in_place_when_only_end_comment_or_author_change() {
    let book = book(&[silence("a", "{job=\"api\"}", 0, 500)]);
    let now = t(100);
    let mut change = posted(Some("a"), "{job=\"api\"}", 0, 900);
    change.comment = Some("longer".into());
    change.created_by = Some("someone else".into());
    let plan = book.plan_upsert(change, now, ids()).unwrap();
    assert_eq!(plan.id, "a");
    let [updated] = plan.writes.as_slice() else {
        panic!("{plan:?}")
    };
    assert_eq!(
        (updated.starts_at, updated.ends_at, updated.updated_at),
        (t(0), t(900), now)
    );
    assert_eq!(
        (updated.comment.as_str(), updated.created_by.as_str()),
        ("longer", "someone else")
    );
    // Shortening is fine too, as long as the end is not in the past.
    let plan = book
        .plan_upsert(posted(Some("a"), "{job=\"api\"}", 0, 101), now, ids())
        .unwrap();
    assert_eq!(plan.id, "a");
}

#[test]
fn changing_matchers_or_the_start_of_an_active_silence_replaces_it() {
    let book = book(&[silence("a", "{job=\"api\"}", 0, 500)]);
    let now = t(100);
    for change in [
        posted(Some("a"), "{job=\"web\"}", 0, 500),
        // An added matcher is a change of matchers.
        posted(Some("a"), "{job=\"api\", env=\"prod\"}", 0, 500),
        posted(Some("a"), "{job=\"api\"}", 50, 500),
        posted(Some("a"), "{job=\"api\"}", 200, 500),
    ] {
        let plan = book.plan_upsert(change.clone(), now, ids()).unwrap();
        assert_eq!(plan.id, "new-1", "{change:?}");
        let [old, new] = plan.writes.as_slice() else {
            panic!("{plan:?}")
        };
        assert_eq!(old.id, "a");
        assert_eq!((old.starts_at, old.ends_at), (t(0), now));
        assert_eq!(old.state(now), SilenceState::Expired);
        assert_eq!(new.id, "new-1");
        assert_eq!(new.matchers, change.matchers);
        assert_eq!(new.starts_at, change.starts_at.max(now));
        assert_eq!(new.ends_at, t(500));
    }
}

#[test]
fn pending_silences_update_in_place_unless_the_start_moves_to_the_past() {
    let book = book(&[silence("p", "{job=\"api\"}", 200, 500)]);
    let now = t(100);
    let plan = book
        .plan_upsert(posted(Some("p"), "{job=\"api\"}", 150, 600), now, ids())
        .unwrap();
    assert_eq!(plan.id, "p");
    assert_eq!(
        (plan.writes[0].starts_at, plan.writes[0].ends_at),
        (t(150), t(600))
    );

    let plan = book
        .plan_upsert(posted(Some("p"), "{job=\"api\"}", 50, 600), now, ids())
        .unwrap();
    assert_eq!(plan.id, "new-1");
    let [old, new] = plan.writes.as_slice() else {
        panic!("{plan:?}")
    };
    // The pending one is expired without ever having been active.
    assert_eq!((old.starts_at, old.ends_at), (now, now));
    assert_eq!(new.starts_at, now);
}

#[test]
fn posting_with_the_id_of_an_expired_silence_creates_a_new_one_and_leaves_it() {
    let book = book(&[silence("x", "{job=\"api\"}", 0, 50)]);
    let plan = book
        .plan_upsert(posted(Some("x"), "{job=\"api\"}", 0, 500), t(100), ids())
        .unwrap();
    assert_eq!(plan.id, "new-1");
    let [new] = plan.writes.as_slice() else {
        panic!("{plan:?}")
    };
    assert_eq!(new.starts_at, t(100));
}

#[test]
fn round_trip_through_the_api_precision_updates_in_place() {
    // Created at a moment with sub-millisecond digits; the API shows milliseconds and amtool posts them back.
    let created_at = t(100) + Duration::microseconds(123_456);
    let mut book = Silences::default();
    let plan = book
        .plan_upsert(posted(None, "{job=\"api\"}", 0, 500), created_at, ids())
        .unwrap();
    for silence in plan.writes {
        book.insert(silence);
    }
    let shown = book.get("new-1").unwrap().starts_at;
    assert_eq!(shown, t(100) + Duration::milliseconds(123));
    let mut again = posted(Some("new-1"), "{job=\"api\"}", 0, 800);
    again.starts_at = shown;
    let plan = book.plan_upsert(again, t(200), ids()).unwrap();
    assert_eq!(plan.id, "new-1");
}

#[test]
fn expiring_ends_active_ones_now_and_pending_ones_before_they_start() {
    let book = book(&[
        silence("a", "{job=\"api\"}", 0, 500),
        silence("p", "{job=\"api\"}", 200, 500),
        silence("x", "{job=\"api\"}", 0, 50),
    ]);
    let now = t(100) + Duration::microseconds(7_500);
    let now_ms = t(100) + Duration::milliseconds(7);
    let active = book.plan_expire("a", now).unwrap();
    assert_eq!(
        (active.starts_at, active.ends_at, active.updated_at),
        (t(0), now_ms, now_ms)
    );
    assert_eq!(active.state(now), SilenceState::Expired);
    let pending = book.plan_expire("p", now).unwrap();
    assert_eq!((pending.starts_at, pending.ends_at), (now_ms, now_ms));
    assert_eq!(pending.state(now), SilenceState::Expired);

    let error = book.plan_expire("x", now).unwrap_err();
    assert!(matches!(error, SilenceError::AlreadyExpired(_)));
    assert_eq!(error.to_string(), "silence x already expired");
    let error = book.plan_expire("nope", now).unwrap_err();
    assert_eq!(error.to_string(), "silence nope not found");
}

#[test]
fn filters_select_silences_with_equal_matchers() {
    let s = silence("a", "{job=\"api\", env=~\"prod|dev\"}", 0, 500);
    let filter = |text: &str| parse_matchers(text).unwrap();
    assert!(s.has_matchers(&[]));
    assert!(s.has_matchers(&filter("{job=\"api\"}")));
    assert!(s.has_matchers(&filter("{env=~\"prod|dev\", job=\"api\"}")));
    // Not a label match: the matcher itself must be there, with the same operator and value.
    assert!(!s.has_matchers(&filter("{env=\"prod\"}")));
    assert!(!s.has_matchers(&filter("{job=~\"api\"}")));
    assert!(!s.has_matchers(&filter("{job=\"api\", team=\"x\"}")));
}

#[test]
fn api_order_is_active_by_end_then_pending_by_start_then_expired_latest_first() {
    let now = t(100);
    let mut all = [
        silence("x1", "{a=\"1\"}", 0, 50),
        silence("p2", "{a=\"1\"}", 300, 400),
        silence("a2", "{a=\"1\"}", 0, 900),
        silence("x2", "{a=\"1\"}", 0, 80),
        silence("p1", "{a=\"1\"}", 200, 900),
        silence("a1", "{a=\"1\"}", 50, 300),
        silence("a0", "{a=\"1\"}", 60, 300),
    ];
    all.sort_by(|a, b| api_order(a, b, now));
    let order: Vec<&str> = all.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(order, ["a0", "a1", "a2", "p1", "p2", "x2", "x1"]);
}

#[test]
fn records_round_trip() {
    let s = silence(
        "a",
        "{job=\"api\", env!=\"dev\", region=~\"eu-.*\", host!~\"test.*\"}",
        0,
        500,
    );
    let record = s.to_record();
    assert_eq!(
        serde_json::to_value(&record.matchers).unwrap(),
        serde_json::json!([
            {"name": "job", "value": "api", "isRegex": false, "isEqual": true},
            {"name": "env", "value": "dev", "isRegex": false, "isEqual": false},
            {"name": "region", "value": "eu-.*", "isRegex": true, "isEqual": true},
            {"name": "host", "value": "test.*", "isRegex": true, "isEqual": false},
        ])
    );
    assert_eq!(Silence::from_record(record).unwrap(), s);
    let mut bad = s.to_record();
    bad.matchers[2].value = "(".into();
    assert!(Silence::from_record(bad).is_err());
}

#[test]
fn postable_silences_parse_from_the_api_shape() {
    let parsed: PostableSilence = serde_json::from_value(serde_json::json!({
        "matchers": [
            {"name": "alertname", "value": "Down", "isRegex": false},
            {"name": "env", "value": "dev", "isRegex": false, "isEqual": false},
        ],
        "startsAt": "2026-11-21T12:00:00.000Z",
        "endsAt": "2026-11-21T14:00:00+02:00",
        "createdBy": "ops",
        "comment": "",
        "status": {"state": "active"},
    }))
    .unwrap();
    assert_eq!(parsed.id, None);
    assert_eq!(
        parsed.matchers,
        matchers("{alertname=\"Down\", env!=\"dev\"}")
    );
    assert_eq!(
        parsed.ends_at,
        "2026-11-21T12:00:00Z".parse::<DateTime<Utc>>().unwrap()
    );
    assert_eq!(parsed.comment.as_deref(), Some(""));
}
