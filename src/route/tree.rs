//! The route tree: routes built from validated settings with compiled matchers, Alertmanager's matching rules
//! (depth first, first matching child wins unless `continue`), and the keys that name routes and groups.

use std::fmt::Write as _;
use std::time::Duration;

use crate::alert::{Labels, label_set};
use crate::config::{GroupBy, Route};

use crate::matcher::{MatcherError, Matchers, from_match_maps, parse_matchers};

/// One node of the tree, with inherited settings already applied.
#[derive(Debug, Clone)]
pub struct RouteNode {
    /// Alertmanager's route key: the parent's key, `/`, and this route's matchers (`{}` at the root).
    pub key: String,
    /// The key plus the position among its siblings, unique even when siblings share matchers.
    pub id: String,
    pub receiver: String,
    pub group_by: GroupBy,
    pub group_wait: Duration,
    pub group_interval: Duration,
    pub repeat_interval: Duration,
    pub matchers: Matchers,
    pub continue_matching: bool,
    pub mute_time_intervals: Vec<String>,
    pub active_time_intervals: Vec<String>,
    pub routes: Vec<RouteNode>,
}

/// A route's matchers as one list: `matchers` strings and the deprecated `match` / `match_re` maps, sorted as
/// Alertmanager sorts them (by name, operator, value) so keys come out the same.
fn compile(route: &Route) -> Result<Matchers, MatcherError> {
    let mut all = from_match_maps(&route.match_equal, &route.match_re)?;
    for text in &route.matchers {
        all.extend(parse_matchers(text)?);
    }
    let mut matchers = Matchers(all);
    matchers.sort();
    Ok(matchers)
}

impl RouteNode {
    /// Builds the tree from the validated root route.
    pub fn build(root: &Route) -> Result<RouteNode, MatcherError> {
        Self::build_child(root, None, 0)
    }

    fn build_child(
        route: &Route,
        parent: Option<&RouteNode>,
        index: usize,
    ) -> Result<RouteNode, MatcherError> {
        let matchers = compile(route)?;
        let (key, id) = match parent {
            None => (matchers.to_string(), matchers.to_string()),
            Some(parent) => {
                let key = format!("{}/{}", parent.key, matchers);
                let id = format!("{key}/{index}");
                (key, id)
            }
        };
        let mut node = RouteNode {
            key,
            id,
            receiver: route.receiver.clone(),
            group_by: route.group_by.clone(),
            group_wait: route.group_wait,
            group_interval: route.group_interval,
            repeat_interval: route.repeat_interval,
            matchers,
            continue_matching: route.continue_matching,
            mute_time_intervals: route.mute_time_intervals.clone(),
            active_time_intervals: route.active_time_intervals.clone(),
            routes: Vec::new(),
        };
        let mut children = Vec::with_capacity(route.routes.len());
        for (index, child) in route.routes.iter().enumerate() {
            children.push(Self::build_child(child, Some(&node), index)?);
        }
        node.routes = children;
        Ok(node)
    }

    /// The routes an alert with `labels` is notified through, in tree order (Alertmanager's `Route.Match`): none when
    /// this route's matchers fail; otherwise the matches of its children, stopping after the first child that matched
    /// unless that child has `continue`; this route itself when no child matched.
    pub fn matching(&self, labels: &Labels) -> Vec<&RouteNode> {
        if !self.matchers.matches(labels) {
            return Vec::new();
        }
        let mut all = Vec::new();
        for child in &self.routes {
            let matched = child.matching(labels);
            let any = !matched.is_empty();
            all.extend(matched);
            if any && !child.continue_matching {
                break;
            }
        }
        if all.is_empty() {
            all.push(self);
        }
        all
    }

    /// The route with this id, anywhere in the tree.
    pub fn find(&self, id: &str) -> Option<&RouteNode> {
        if self.id == id {
            return Some(self);
        }
        self.routes.iter().find_map(|child| child.find(id))
    }

    /// The labels that name an alert's group on this route: those listed in `group_by` that the alert has, or all.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        match &self.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => names
                .iter()
                .filter_map(|name| labels.get(name).map(|value| (name.clone(), value.clone())))
                .collect(),
        }
    }

    /// Alertmanager's group key: `<route key>:<group labels>`, e.g. `{}/{severity="page"}:{alertname="Down"}`.
    pub fn group_key(&self, group_labels: &Labels) -> String {
        format!("{}:{}", self.key, label_set(group_labels))
    }

    /// Every receiver name an alert with `labels` reaches, in order, without repeats.
    pub fn receivers(&self, labels: &Labels) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for route in self.matching(labels) {
            if !names.contains(&route.receiver.as_str()) {
                names.push(&route.receiver);
            }
        }
        names
    }

    /// The tree drawn with box characters, one route a line (`herald route-test --tree`).
    pub fn outline(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{}", self.describe(true));
        self.outline_children(&mut out, "");
        out
    }

    fn describe(&self, root: bool) -> String {
        let mut line = if root {
            "default route".to_string()
        } else {
            self.matchers.to_string()
        };
        let _ = write!(line, "  receiver: {}", self.receiver);
        if self.continue_matching {
            line.push_str("  continue: true");
        }
        line
    }

    fn outline_children(&self, out: &mut String, prefix: &str) {
        for (index, child) in self.routes.iter().enumerate() {
            let last = index + 1 == self.routes.len();
            let (branch, next) = if last {
                ("└── ", "    ")
            } else {
                ("├── ", "│   ")
            };
            let _ = writeln!(out, "{prefix}{branch}{}", child.describe(false));
            child.outline_children(out, &format!("{prefix}{next}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::test_labels as labels;

    const CONFIG: &str = r#"
route:
  receiver: default-receiver
  group_by: [cluster, alertname]
  routes:
    - receiver: database-pager
      group_wait: 10s
      matchers: ['service=~"mysql|cassandra"']
      routes:
        - receiver: db-oncall-eu
          matchers: ['region="eu"']
    - receiver: frontend-pager
      group_by: [product, environment]
      match: {team: frontend}
      continue: true
    - receiver: frontend-audit
      match_re: {team: "front.*"}
    - receiver: everything-else
      group_by: ['...']
      matchers: ['severity!=""']
receivers:
  - name: default-receiver
  - name: database-pager
  - name: db-oncall-eu
  - name: frontend-pager
  - name: frontend-audit
  - name: everything-else
"#;

    fn tree() -> RouteNode {
        let loaded = crate::config::load_str(CONFIG, "routes.yaml").unwrap();
        RouteNode::build(&loaded.settings.route).unwrap()
    }

    /// An alert's labels and the receivers it must reach.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);

    #[test]
    fn alerts_reach_the_receivers_alertmanager_would_pick() {
        let tree = tree();
        let cases: &[Case<'_>] = &[
            (&[("service", "mysql")], &["database-pager"]),
            (
                &[("service", "cassandra"), ("region", "eu")],
                &["db-oncall-eu"],
            ),
            (&[("service", "mysqlx")], &["default-receiver"]),
            (&[("service", "my")], &["default-receiver"]),
            (
                &[("team", "frontend")],
                &["frontend-pager", "frontend-audit"],
            ),
            (&[("team", "frontend-web")], &["frontend-audit"]),
            (
                &[("service", "mysql"), ("team", "frontend")],
                &["database-pager"],
            ),
            (&[("severity", "page")], &["everything-else"]),
            (&[("severity", "")], &["default-receiver"]),
            (&[("alertname", "Anything")], &["default-receiver"]),
        ];
        for (set, expected) in cases {
            assert_eq!(tree.receivers(&labels(set)), *expected, "{set:?}");
        }
    }

    #[test]
    fn settings_are_inherited_down_the_tree() {
        let tree = tree();
        let eu = tree.matching(&labels(&[("service", "mysql"), ("region", "eu")]))[0];
        assert_eq!(eu.group_wait, Duration::from_secs(10), "from its parent");
        assert_eq!(
            eu.group_interval,
            Duration::from_secs(300),
            "Alertmanager's default"
        );
        assert_eq!(eu.repeat_interval, Duration::from_secs(4 * 3600));
        assert_eq!(
            eu.group_by,
            GroupBy::Labels(vec!["cluster".into(), "alertname".into()])
        );
        let frontend = tree.matching(&labels(&[("team", "frontend")]))[0];
        assert_eq!(frontend.group_wait, Duration::from_secs(30));
        assert_eq!(
            frontend.group_by,
            GroupBy::Labels(vec!["product".into(), "environment".into()])
        );
    }

    #[test]
    fn keys_match_alertmanager() {
        let tree = tree();
        assert_eq!(tree.key, "{}");
        let alert = labels(&[
            ("service", "mysql"),
            ("cluster", "c1"),
            ("alertname", "Down"),
            ("pod", "x"),
        ]);
        let route = tree.matching(&alert)[0];
        assert_eq!(route.key, r#"{}/{service=~"mysql|cassandra"}"#);
        assert_eq!(route.id, r#"{}/{service=~"mysql|cassandra"}/0"#);
        let group = route.group_labels(&alert);
        assert_eq!(
            route.group_key(&group),
            r#"{}/{service=~"mysql|cassandra"}:{alertname="Down", cluster="c1"}"#
        );

        let all = tree.matching(&labels(&[("severity", "page"), ("a", "x\"y")]))[0];
        assert_eq!(
            all.group_labels(&labels(&[("severity", "page"), ("a", "1")]))
                .len(),
            2,
            "'...' groups by all"
        );
        assert_eq!(label_set(&labels(&[("a", "x\"y\\")])), r#"{a="x\"y\\"}"#);
    }

    #[test]
    fn outline_draws_the_tree() {
        let outline = tree().outline();
        assert!(
            outline.starts_with("default route  receiver: default-receiver\n"),
            "{outline}"
        );
        assert!(
            outline.contains("├── {service=~\"mysql|cassandra\"}  receiver: database-pager\n"),
            "{outline}"
        );
        assert!(
            outline.contains("│   └── {region=\"eu\"}  receiver: db-oncall-eu\n"),
            "{outline}"
        );
        assert!(outline.contains("continue: true"), "{outline}");
    }
}
