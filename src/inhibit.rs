//! Inhibition with Alertmanager's semantics: an alert that matches an inhibit rule's target matchers is muted while
//! a firing alert matching the rule's source matchers has the same values for each of the rule's `equal` labels.
//!
//! As in Alertmanager (`inhibit.go`, `hasEqual(lset, excludeTwoSidedMatch)`): when the target alert also matches
//! the rule's source matchers, source alerts that also match the target matchers are not considered. So an alert
//! never inhibits itself, and alerts that match both sides of a rule do not inhibit one another under that rule.
//!
//! Only firing alerts inhibit: callers pass the alerts firing at the moment of the check, and this module does not
//! look at time or status.

use std::fmt;

use crate::alert::{Fingerprint, LabelSource, Labels};

use crate::matcher::Matchers;

/// One `inhibit_rules` entry, with its matchers compiled. The deprecated `source_match`, `source_match_re`,
/// `target_match` and `target_match_re` maps are already folded into `source` and `target`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InhibitRule {
    /// Matchers a firing alert must all match to inhibit; none match every alert.
    pub source: Matchers,
    /// Matchers an alert must all match to be inhibited; none match every alert.
    pub target: Matchers,
    /// Labels whose values must be the same in the source and the target; a label an alert does not have counts
    /// as the empty string, so a label missing on both sides is equal.
    pub equal: Vec<String>,
}

impl InhibitRule {
    /// Whether `source` and `target` have the same value for every `equal` label.
    fn equal_labels<T: LabelSource + ?Sized>(&self, source: &Labels, target: &T) -> bool {
        self.equal
            .iter()
            .all(|name| value(source, name) == value(target, name))
    }

    /// Whether a firing alert with labels `source` inhibits an alert with labels `target` under this rule.
    pub fn inhibits<T: LabelSource + ?Sized>(&self, target: &T, source: &Labels) -> bool {
        self.as_target(target)
            .is_some_and(|check| check.inhibited_by(source))
    }

    /// The check of sources against an alert with `labels`, or `None` when the alert is not a target of this rule.
    fn as_target<'r, T: LabelSource + ?Sized>(
        &'r self,
        labels: &'r T,
    ) -> Option<TargetCheck<'r, T>> {
        self.target.matches(labels).then(|| TargetCheck {
            rule: self,
            labels,
            // The target also matches the source side: sources that match both sides do not count.
            exclude_two_sided: self.source.matches(labels),
        })
    }
}

/// An alert known to match a rule's target side, ready to be checked against firing alerts.
struct TargetCheck<'r, T: ?Sized> {
    rule: &'r InhibitRule,
    labels: &'r T,
    exclude_two_sided: bool,
}

impl<T: LabelSource + ?Sized> TargetCheck<'_, T> {
    fn inhibited_by(&self, source: &Labels) -> bool {
        self.rule.source.matches(source)
            && self.rule.equal_labels(source, self.labels)
            && !(self.exclude_two_sided && self.rule.target.matches(source))
    }
}

impl fmt::Display for InhibitRule {
    /// `{source} inhibits {target} when equal [a, b]`, matchers in Alertmanager's form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} inhibits {}", self.source, self.target)?;
        if !self.equal.is_empty() {
            write!(f, " when equal [{}]", self.equal.join(", "))?;
        }
        Ok(())
    }
}

fn value<'l, L: LabelSource + ?Sized>(labels: &'l L, name: &str) -> &'l str {
    labels.label(name).unwrap_or("")
}

/// Decides which alerts are inhibited, by the configured rules, given the alerts firing now.
#[derive(Debug, Clone, Default)]
pub struct Inhibitor {
    rules: Vec<InhibitRule>,
}

impl Inhibitor {
    pub fn new(rules: Vec<InhibitRule>) -> Self {
        Self { rules }
    }

    pub fn rules(&self) -> &[InhibitRule] {
        &self.rules
    }

    /// Whether there are no rules, so nothing is ever inhibited.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The fingerprints of firing alerts that inhibit an alert with `labels`, given the currently firing alerts
    /// (fingerprint, labels). Empty when not inhibited. Sorted, each fingerprint once, across all rules.
    ///
    /// `firing` must hold only alerts that are firing now (resolved alerts never inhibit); it may include the alert
    /// being checked, which never inhibits itself.
    pub fn inhibited_by<'a, T: LabelSource + ?Sized>(
        &self,
        labels: &T,
        firing: impl IntoIterator<Item = (Fingerprint, &'a Labels)> + Clone,
    ) -> Vec<Fingerprint> {
        let mut found = Vec::new();
        for check in self.rules.iter().filter_map(|rule| rule.as_target(labels)) {
            found.extend(
                firing
                    .clone()
                    .into_iter()
                    .filter(|(_, source)| check.inhibited_by(source))
                    .map(|(fingerprint, _)| fingerprint),
            );
        }
        found.sort_unstable();
        found.dedup();
        found
    }

    /// Whether an alert with `labels` is inhibited: `inhibited_by` is not empty. Stops at the first inhibitor.
    pub fn is_inhibited<'a, T: LabelSource + ?Sized>(
        &self,
        labels: &T,
        firing: impl IntoIterator<Item = (Fingerprint, &'a Labels)> + Clone,
    ) -> bool {
        self.rules
            .iter()
            .filter_map(|rule| rule.as_target(labels))
            .any(|check| {
                firing
                    .clone()
                    .into_iter()
                    .any(|(_, source)| check.inhibited_by(source))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::test_labels as labels;
    use crate::matcher::parse_matchers;

    type Pairs<'a> = &'a [(&'a str, &'a str)];

    fn rule(source: &str, target: &str, equal: &[&str]) -> InhibitRule {
        InhibitRule {
            source: Matchers(parse_matchers(source).unwrap()),
            target: Matchers(parse_matchers(target).unwrap()),
            equal: equal.iter().map(|name| (*name).to_owned()).collect(),
        }
    }

    /// A named alert for the tables: its labels and fingerprint.
    struct Alert {
        name: &'static str,
        labels: Labels,
    }

    impl Alert {
        fn new(name: &'static str, pairs: Pairs<'_>) -> Self {
            Self {
                name,
                labels: labels(pairs),
            }
        }

        fn fingerprint(&self) -> Fingerprint {
            Fingerprint::of(&self.labels)
        }
    }

    /// For each alert of `firing`, the names of the alerts of `firing` that inhibit it (checked with both methods).
    fn inhibitions(
        inhibitor: &Inhibitor,
        alerts: &[&Alert],
    ) -> Vec<(&'static str, Vec<&'static str>)> {
        let firing: Vec<(Fingerprint, &Labels)> = alerts
            .iter()
            .map(|alert| (alert.fingerprint(), &alert.labels))
            .collect();
        alerts
            .iter()
            .map(|alert| {
                let by = inhibitor.inhibited_by(&alert.labels, firing.iter().copied());
                assert_eq!(
                    inhibitor.is_inhibited(&alert.labels, firing.iter().copied()),
                    !by.is_empty(),
                    "{}",
                    alert.name
                );
                let mut names: Vec<&'static str> = by
                    .iter()
                    .map(|fingerprint| {
                        alerts
                            .iter()
                            .find(|alert| alert.fingerprint() == *fingerprint)
                            .map(|alert| alert.name)
                            .unwrap()
                    })
                    .collect();
                names.sort_unstable();
                (alert.name, names)
            })
            .collect()
    }

    /// Checks an alert against one rule and a set of firing alerts: whether it is inhibited and by which.
    struct Case<'a> {
        about: &'a str,
        target: Pairs<'a>,
        firing: &'a [Pairs<'a>],
        /// Indexes into `firing` of the alerts that inhibit the target.
        by: &'a [usize],
    }

    fn check(rule: &InhibitRule, cases: &[Case<'_>]) {
        let inhibitor = Inhibitor::new(vec![rule.clone()]);
        for case in cases {
            let target = labels(case.target);
            let firing: Vec<Labels> = case.firing.iter().map(|pairs| labels(pairs)).collect();
            let pairs = firing
                .iter()
                .map(|labels| (Fingerprint::of(labels), labels));
            let mut expected: Vec<Fingerprint> = case
                .by
                .iter()
                .map(|&i| Fingerprint::of(&firing[i]))
                .collect();
            expected.sort_unstable();
            assert_eq!(
                inhibitor.inhibited_by(&target, pairs.clone()),
                expected,
                "{}",
                case.about
            );
            assert_eq!(
                inhibitor.is_inhibited(&target, pairs),
                !expected.is_empty(),
                "{}",
                case.about
            );
        }
    }

    #[test]
    fn critical_inhibits_warning_with_equal_labels() {
        let rule = rule(
            "severity=\"critical\"",
            "severity=\"warning\"",
            &["alertname", "cluster"],
        );
        let critical_a: Pairs<'_> = &[
            ("alertname", "DiskFull"),
            ("cluster", "a"),
            ("severity", "critical"),
            ("instance", "host1"),
        ];
        let critical_b: Pairs<'_> = &[
            ("alertname", "DiskFull"),
            ("cluster", "b"),
            ("severity", "critical"),
        ];
        let warning_a: Pairs<'_> = &[
            ("alertname", "DiskFull"),
            ("cluster", "a"),
            ("severity", "warning"),
        ];
        check(
            &rule,
            &[
                Case {
                    about: "critical inhibits warning with the same alertname and cluster",
                    target: warning_a,
                    firing: &[critical_a, critical_b, warning_a],
                    by: &[0],
                },
                Case {
                    about: "labels outside `equal` may differ (instance)",
                    target: &[
                        ("alertname", "DiskFull"),
                        ("cluster", "a"),
                        ("severity", "warning"),
                        ("instance", "host2"),
                    ],
                    firing: &[critical_a],
                    by: &[0],
                },
                Case {
                    about: "a different cluster does not inhibit",
                    target: warning_a,
                    firing: &[critical_b],
                    by: &[],
                },
                Case {
                    about: "a different alertname does not inhibit",
                    target: &[
                        ("alertname", "HighLoad"),
                        ("cluster", "a"),
                        ("severity", "warning"),
                    ],
                    firing: &[critical_a],
                    by: &[],
                },
                Case {
                    about: "the source must match the source matchers",
                    target: warning_a,
                    firing: &[&[
                        ("alertname", "DiskFull"),
                        ("cluster", "a"),
                        ("severity", "info"),
                    ]],
                    by: &[],
                },
                Case {
                    about: "the target must match the target matchers",
                    target: &[
                        ("alertname", "DiskFull"),
                        ("cluster", "a"),
                        ("severity", "info"),
                    ],
                    firing: &[critical_a],
                    by: &[],
                },
                Case {
                    about: "a critical alert is not inhibited by another critical one",
                    target: critical_a,
                    firing: &[critical_a, critical_b],
                    by: &[],
                },
                Case {
                    about: "nothing firing inhibits nothing",
                    target: warning_a,
                    firing: &[],
                    by: &[],
                },
                Case {
                    about: "every matching source is reported",
                    target: warning_a,
                    firing: &[
                        critical_a,
                        &[
                            ("alertname", "DiskFull"),
                            ("cluster", "a"),
                            ("severity", "critical"),
                            ("instance", "host9"),
                        ],
                    ],
                    by: &[0, 1],
                },
            ],
        );
    }

    #[test]
    fn missing_equal_labels_count_as_empty() {
        let rule = rule(
            "severity=\"critical\"",
            "severity=\"warning\"",
            &["cluster"],
        );
        check(
            &rule,
            &[
                Case {
                    about: "missing on both sides is equal",
                    target: &[("severity", "warning")],
                    firing: &[&[("severity", "critical")]],
                    by: &[0],
                },
                Case {
                    about: "missing on the source only is not equal",
                    target: &[("severity", "warning"), ("cluster", "a")],
                    firing: &[&[("severity", "critical")]],
                    by: &[],
                },
                Case {
                    about: "missing on the target only is not equal",
                    target: &[("severity", "warning")],
                    firing: &[&[("severity", "critical"), ("cluster", "a")]],
                    by: &[],
                },
                Case {
                    about: "missing and empty are the same",
                    target: &[("severity", "warning"), ("cluster", "")],
                    firing: &[&[("severity", "critical")]],
                    by: &[0],
                },
            ],
        );
        // No `equal` labels: any firing source inhibits every target.
        let rule = rule_without_equal();
        check(
            &rule,
            &[Case {
                about: "no equal labels",
                target: &[("severity", "warning"), ("cluster", "a")],
                firing: &[&[("severity", "critical"), ("cluster", "b")]],
                by: &[0],
            }],
        );
    }

    fn rule_without_equal() -> InhibitRule {
        rule("severity=\"critical\"", "severity=\"warning\"", &[])
    }

    #[test]
    fn only_the_firing_alerts_passed_in_inhibit() {
        // The caller passes only firing alerts: a resolved critical alert is left out and inhibits nothing.
        let inhibitor = Inhibitor::new(vec![rule(
            "severity=\"critical\"",
            "severity=\"warning\"",
            &["alertname"],
        )]);
        let warning = labels(&[("alertname", "Down"), ("severity", "warning")]);
        let critical = labels(&[("alertname", "Down"), ("severity", "critical")]);
        let alerts = [(&warning, true), (&critical, false)];
        let firing = alerts
            .iter()
            .filter(|(_, firing)| *firing)
            .map(|(labels, _)| (Fingerprint::of(labels), *labels));
        assert!(inhibitor.inhibited_by(&warning, firing.clone()).is_empty());
        assert!(!inhibitor.is_inhibited(&warning, firing));
        let firing = alerts
            .iter()
            .map(|(labels, _)| (Fingerprint::of(labels), *labels));
        assert_eq!(
            inhibitor.inhibited_by(&warning, firing),
            [Fingerprint::of(&critical)]
        );
    }

    /// For each alert, the names of the alerts that inhibit it.
    type Expected<'a> = &'a [(&'a str, &'a [&'a str])];

    /// Alertmanager's `TestInhibit` shape: alerts matching the source side only, the target side only, and both.
    #[test]
    fn alerts_matching_both_sides_do_not_inhibit_each_other() {
        let inhibitor = Inhibitor::new(vec![rule("s=\"1\"", "t=\"1\"", &["e"])]);
        let target = Alert::new("target", &[("t", "1"), ("e", "f")]);
        let source = Alert::new("source", &[("s", "1"), ("e", "f")]);
        let both = Alert::new("both", &[("s", "1"), ("t", "1"), ("e", "f")]);
        let both2 = Alert::new("both2", &[("s", "1"), ("t", "1"), ("e", "f"), ("x", "y")]);
        let cases: &[(&[&Alert], Expected<'_>)] = &[
            // A source-only alert inhibits a target-only alert.
            (
                &[&target, &source],
                &[("target", &["source"]), ("source", &[])],
            ),
            // An alert matching both sides inhibits a target-only alert but not itself.
            (&[&target, &both], &[("target", &["both"]), ("both", &[])]),
            // A source-only alert inhibits an alert matching both sides.
            (
                &[&target, &source, &both],
                &[
                    ("target", &["both", "source"]),
                    ("source", &[]),
                    ("both", &["source"]),
                ],
            ),
            // Two alerts matching both sides do not inhibit each other...
            (&[&both, &both2], &[("both", &[]), ("both2", &[])]),
            // ...but a source-only alert inhibits both.
            (
                &[&both, &both2, &source],
                &[
                    ("both", &["source"]),
                    ("both2", &["source"]),
                    ("source", &[]),
                ],
            ),
        ];
        let rule = &inhibitor.rules()[0];
        assert!(rule.inhibits(&target.labels, &source.labels));
        assert!(rule.inhibits(&target.labels, &both.labels));
        assert!(rule.inhibits(&both.labels, &source.labels));
        assert!(!rule.inhibits(&both.labels, &both.labels));
        assert!(!rule.inhibits(&both.labels, &both2.labels));
        assert!(!rule.inhibits(&source.labels, &source.labels));
        assert!(!rule.inhibits(&source.labels, &target.labels));
        for (alerts, expected) in cases {
            let got = inhibitions(&inhibitor, alerts);
            let expected: Vec<(&str, Vec<&str>)> = expected
                .iter()
                .map(|(name, by)| (*name, by.to_vec()))
                .collect();
            assert_eq!(got, expected);
        }
    }

    /// The usual case of a rule whose source also matches its target: a cluster-wide alert mutes every other alert
    /// of its cluster, but not itself nor another cluster-wide alert.
    #[test]
    fn a_cluster_wide_alert_mutes_its_cluster_but_not_itself() {
        let inhibitor = Inhibitor::new(vec![rule(
            "alertname=\"ClusterDown\"",
            "cluster=~\".+\"",
            &["cluster"],
        )]);
        let down = Alert::new("down", &[("alertname", "ClusterDown"), ("cluster", "a")]);
        let down_again = Alert::new(
            "down_again",
            &[
                ("alertname", "ClusterDown"),
                ("cluster", "a"),
                ("replica", "2"),
            ],
        );
        let disk = Alert::new("disk", &[("alertname", "DiskFull"), ("cluster", "a")]);
        let other = Alert::new("other", &[("alertname", "DiskFull"), ("cluster", "b")]);
        let no_cluster = Alert::new("no_cluster", &[("alertname", "Watchdog")]);
        assert_eq!(
            inhibitions(
                &inhibitor,
                &[&down, &down_again, &disk, &other, &no_cluster]
            ),
            [
                ("down", vec![]),
                ("down_again", vec![]),
                ("disk", vec!["down", "down_again"]),
                ("other", vec![]),
                ("no_cluster", vec![]),
            ]
        );
    }

    #[test]
    fn empty_matchers_match_every_alert() {
        // No source matchers: every firing alert is a source. The info alerts match both sides, so they do not
        // inhibit each other; any other alert with the same instance inhibits them.
        let inhibitor = Inhibitor::new(vec![rule("", "severity=\"info\"", &["instance"])]);
        let info = Alert::new("info", &[("severity", "info"), ("instance", "a")]);
        let info2 = Alert::new(
            "info2",
            &[("severity", "info"), ("instance", "a"), ("x", "1")],
        );
        let warning = Alert::new("warning", &[("severity", "warning"), ("instance", "a")]);
        let elsewhere = Alert::new("elsewhere", &[("severity", "warning"), ("instance", "b")]);
        assert_eq!(
            inhibitions(&inhibitor, &[&info, &info2, &warning, &elsewhere]),
            [
                ("info", vec!["warning"]),
                ("info2", vec!["warning"]),
                ("warning", vec![]),
                ("elsewhere", vec![]),
            ]
        );
        // No matchers at all: every alert matches both sides, so nothing is inhibited.
        let inhibitor = Inhibitor::new(vec![InhibitRule::default()]);
        assert_eq!(
            inhibitions(&inhibitor, &[&info, &warning]),
            [("info", vec![]), ("warning", vec![])]
        );
    }

    #[test]
    fn several_rules_each_apply_and_their_inhibitors_are_merged() {
        let inhibitor = Inhibitor::new(vec![
            rule(
                "severity=\"critical\"",
                "severity=~\"warning|info\"",
                &["instance"],
            ),
            rule("severity=\"warning\"", "severity=\"info\"", &["instance"]),
            rule("alertname=\"NodeDown\"", "", &["instance"]),
        ]);
        let node_down = Alert::new(
            "node_down",
            &[
                ("alertname", "NodeDown"),
                ("severity", "critical"),
                ("instance", "a"),
            ],
        );
        let critical = Alert::new(
            "critical",
            &[
                ("alertname", "DiskFull"),
                ("severity", "critical"),
                ("instance", "a"),
            ],
        );
        let warning = Alert::new(
            "warning",
            &[
                ("alertname", "DiskFilling"),
                ("severity", "warning"),
                ("instance", "a"),
            ],
        );
        let info = Alert::new(
            "info",
            &[
                ("alertname", "DiskHalf"),
                ("severity", "info"),
                ("instance", "a"),
            ],
        );
        let info_b = Alert::new(
            "info_b",
            &[
                ("alertname", "DiskHalf"),
                ("severity", "info"),
                ("instance", "b"),
            ],
        );
        assert_eq!(
            inhibitions(
                &inhibitor,
                &[&node_down, &critical, &warning, &info, &info_b]
            ),
            [
                // Matches both sides of rule 3 (empty target), so another NodeDown would not count; none fires.
                ("node_down", vec![]),
                ("critical", vec!["node_down"]),
                ("warning", vec!["critical", "node_down"]),
                ("info", vec!["critical", "node_down", "warning"]),
                ("info_b", vec![]),
            ]
        );
        assert!(Inhibitor::new(vec![]).is_empty());
        assert!(
            Inhibitor::default()
                .inhibited_by(&info.labels, [(info.fingerprint(), &info.labels)])
                .is_empty()
        );
        assert_eq!(inhibitor.rules().len(), 3);
    }

    #[test]
    fn regex_and_negative_matchers_work_on_both_sides() {
        let rule = rule(
            "{alertname=~\"Node(Down|Unreachable)\", env!=\"dev\"}",
            "alertname!~\"Node.*\"",
            &["instance"],
        );
        let source: Pairs<'_> = &[("alertname", "NodeUnreachable"), ("instance", "a")];
        check(
            &rule,
            &[
                Case {
                    about: "regex source, negative regex target",
                    target: &[("alertname", "DiskFull"), ("instance", "a")],
                    firing: &[source],
                    by: &[0],
                },
                Case {
                    about: "the source's env must not be dev",
                    target: &[("alertname", "DiskFull"), ("instance", "a")],
                    firing: &[&[("alertname", "NodeDown"), ("instance", "a"), ("env", "dev")]],
                    by: &[],
                },
                Case {
                    about: "the target must not be a Node alert",
                    target: &[("alertname", "NodeSlow"), ("instance", "a")],
                    firing: &[source],
                    by: &[],
                },
            ],
        );
    }

    /// The deprecated maps, the matchers lines and `equal` read from a configuration, all ANDed as in Alertmanager.
    #[test]
    fn rules_from_configuration_with_deprecated_match_maps() {
        let yaml = r#"
inhibit_rules:
  - source_match: {severity: critical}
    source_match_re: {service: "pg.*"}
    source_matchers: ['team="db"']
    target_match: {severity: warning}
    target_match_re: {alertname: "Postgres.*"}
    equal: [cluster]
"#;
        let settings = crate::config::load_str(yaml, "herald.yaml")
            .unwrap()
            .settings;
        let inhibitor = Inhibitor::new(settings.inhibit_rules);
        let source = Alert::new(
            "source",
            &[
                ("severity", "critical"),
                ("service", "pg-main"),
                ("team", "db"),
                ("cluster", "a"),
            ],
        );
        let wrong_team = Alert::new(
            "wrong_team",
            &[
                ("severity", "critical"),
                ("service", "pg-main"),
                ("team", "web"),
                ("cluster", "a"),
            ],
        );
        let wrong_service = Alert::new(
            "wrong_service",
            &[
                ("severity", "critical"),
                ("service", "xpg"),
                ("team", "db"),
                ("cluster", "a"),
            ],
        );
        let target = Alert::new(
            "target",
            &[
                ("severity", "warning"),
                ("alertname", "PostgresSlow"),
                ("cluster", "a"),
            ],
        );
        let not_postgres = Alert::new(
            "not_postgres",
            &[
                ("severity", "warning"),
                ("alertname", "DiskFull"),
                ("cluster", "a"),
            ],
        );
        assert_eq!(
            inhibitions(
                &inhibitor,
                &[&source, &wrong_team, &wrong_service, &target, &not_postgres]
            ),
            [
                ("source", vec![]),
                ("wrong_team", vec![]),
                ("wrong_service", vec![]),
                ("target", vec!["source"]),
                ("not_postgres", vec![]),
            ]
        );
    }

    #[test]
    fn displays_the_rule() {
        assert_eq!(
            rule(
                "severity=\"critical\"",
                "severity=~\"warning|info\"",
                &["alertname", "cluster"]
            )
            .to_string(),
            "{severity=\"critical\"} inhibits {severity=~\"warning|info\"} when equal [alertname, cluster]"
        );
        assert_eq!(InhibitRule::default().to_string(), "{} inhibits {}");
    }
}
