//! The one alert model every source is normalised into: labels, annotations, timing, origin and fingerprint.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Label name -> value, kept sorted by name (byte order, as Prometheus sorts).
pub type Labels = BTreeMap<String, String>;

/// Annotation name -> value.
pub type Annotations = BTreeMap<String, String>;

/// Extra per-alert data a source carries that is not a label or annotation (Grafana's `dashboardURL`, `values`, …),
/// kept so templates can use it.
pub type Extra = BTreeMap<String, serde_json::Value>;

/// Read access to a label set by name, whatever holds it: matchers, silences and inhibit rules take any.
pub trait LabelSource {
    /// The value of label `name`, when the set has it.
    fn label(&self, name: &str) -> Option<&str>;
}

impl LabelSource for Labels {
    fn label(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// A label set packed into one allocation (sorted name/value pairs, each string prefixed with its length as a
/// LEB128 number), for alerts held in memory in large numbers: a tenth of the memory of `Labels` for a typical set.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PackedLabels(Box<[u8]>);

fn push_packed(out: &mut Vec<u8>, text: &str) {
    let mut length = text.len();
    loop {
        let byte = (length & 0x7f) as u8;
        length >>= 7;
        if length == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(text.as_bytes());
}

/// The packed string at the start of `bytes` and what follows it.
fn pop_packed(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let mut length = 0usize;
    let mut shift = 0;
    for (index, byte) in bytes.iter().enumerate() {
        length |= usize::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            let rest = bytes.get(index + 1..)?;
            let text = std::str::from_utf8(rest.get(..length)?).ok()?;
            return Some((text, rest.get(length..)?));
        }
        shift += 7;
    }
    None
}

impl PackedLabels {
    pub fn new(labels: &Labels) -> Self {
        let size = labels
            .iter()
            .map(|(name, value)| name.len() + value.len() + 2)
            .sum();
        let mut out = Vec::with_capacity(size);
        for (name, value) in labels {
            push_packed(&mut out, name);
            push_packed(&mut out, value);
        }
        PackedLabels(out.into_boxed_slice())
    }

    /// The (name, value) pairs, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut rest: &[u8] = &self.0;
        std::iter::from_fn(move || {
            let (name, after) = pop_packed(rest)?;
            let (value, after) = pop_packed(after)?;
            rest = after;
            Some((name, value))
        })
    }

    pub fn to_labels(&self) -> Labels {
        self.iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect()
    }
}

impl LabelSource for PackedLabels {
    fn label(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(candidate, _)| *candidate == name)
            .map(|(_, value)| value)
    }
}

/// How bad a firing alert is, from its `severity` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    /// The usual spellings of a `severity` label's value; `None` for anything else.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_lowercase().as_str() {
            "critical" | "crit" | "page" | "error" | "high" | "fatal" | "emergency" | "alert"
            | "p1" => Some(Severity::Critical),
            "warning" | "warn" | "medium" | "p2" | "p3" => Some(Severity::Warning),
            "info" | "informational" | "low" | "notice" | "none" | "debug" | "p4" | "p5" => {
                Some(Severity::Info)
            }
            _ => None,
        }
    }
}

/// Identity of an alert: Prometheus's `model.LabelSet.Fingerprint()` of its labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u64);

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const SEPARATOR: u8 = 0xff;

fn fnv_add(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

impl Fingerprint {
    /// FNV-1a 64 over the sorted label names and values, each followed by the byte 0xff, exactly as Prometheus does.
    pub fn of(labels: &Labels) -> Self {
        let mut hash = FNV_OFFSET;
        for (name, value) in labels {
            hash = fnv_add(hash, name.as_bytes());
            hash = fnv_add(hash, &[SEPARATOR]);
            hash = fnv_add(hash, value.as_bytes());
            hash = fnv_add(hash, &[SEPARATOR]);
        }
        Fingerprint(hash)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for Fingerprint {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(Fingerprint)
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(|_| {
            serde::de::Error::custom(format!(
                "invalid fingerprint {text:?}: expected 16 hex digits"
            ))
        })
    }
}

/// A label set as Prometheus prints it: `{a="1", b="2"}`, values quoted with Go's escaping.
pub fn label_set(labels: &Labels) -> String {
    let parts: Vec<String> = labels
        .iter()
        .map(|(name, value)| format!("{name}={}", go_quote(value)))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

/// Go's `strconv.Quote`: a double-quoted string with Go escapes for quotes, backslashes and characters that are
/// not printable. Printability follows Go's `unicode.IsPrint` for control, space and format characters; unassigned
/// and private-use code points are kept as they are.
pub fn go_quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = fmt::Write::write_fmt(&mut out, format_args!("\\x{:02x}", c as u32));
            }
            c if (c as u32) < 0x10000 => {
                let _ = fmt::Write::write_fmt(&mut out, format_args!("\\u{:04x}", c as u32));
            }
            c => {
                let _ = fmt::Write::write_fmt(&mut out, format_args!("\\U{:08x}", c as u32));
            }
        }
    }
    out.push('"');
    out
}

fn is_go_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    // Unicode's format characters (category Cf), which Go does not print.
    !matches!(c as u32,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E | 0x200B..=0x200F
        | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD
        | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F)
}

/// Whether an alert is firing or resolved at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an alert came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The Alertmanager v2 API (`POST /api/v2/alerts`), as Prometheus and amtool send.
    Prometheus,
    /// Alertmanager's webhook notifier (`POST /webhook/alertmanager`).
    Alertmanager,
    /// Grafana's webhook contact point (`POST|PUT /webhook/grafana`).
    Grafana,
}

impl Source {
    pub const ALL: [Source; 3] = [Source::Prometheus, Source::Alertmanager, Source::Grafana];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Prometheus => "prometheus",
            Source::Alertmanager => "alertmanager",
            Source::Grafana => "grafana",
        }
    }
}

impl FromStr for Source {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Source::ALL
            .into_iter()
            .find(|source| source.as_str() == s)
            .ok_or_else(|| format!("unknown alert source {s:?}"))
    }
}

/// A normalised alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub labels: Labels,
    pub annotations: Annotations,
    pub starts_at: DateTime<Utc>,
    /// When the alert stops firing; `None` means open-ended (firing until a resolve arrives).
    pub ends_at: Option<DateTime<Utc>>,
    /// True when `ends_at` was not sent but defaulted to now + resolve_timeout; a later explicit end wins over it
    /// when re-sent alerts are merged (Alertmanager's `Timeout`).
    pub ends_at_defaulted: bool,
    pub generator_url: String,
    pub source: Source,
    pub extra: Extra,
}

impl Alert {
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of(&self.labels)
    }

    /// Firing while `ends_at` is unset or still ahead of `now`.
    pub fn status_at(&self, now: DateTime<Utc>) -> Status {
        status_at(self.ends_at, now)
    }

    /// The value of the `alertname` label, or "" when absent.
    pub fn name(&self) -> &str {
        self.labels.get("alertname").map_or("", String::as_str)
    }
}

/// The status of an alert ending at `ends_at` as seen at `now`.
pub fn status_at(ends_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Status {
    match ends_at {
        Some(end) if end <= now => Status::Resolved,
        _ => Status::Firing,
    }
}

/// A label set from `(name, value)` pairs, for tests.
#[cfg(test)]
pub(crate) fn test_labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

/// A firing, open-ended test alert with `alertname` = `name` and any extra labels.
#[cfg(test)]
pub(crate) fn test_alert(name: &str, labels: &[(&str, &str)]) -> Alert {
    let mut all = Labels::from([("alertname".to_string(), name.to_string())]);
    all.extend(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Alert {
        labels: all,
        annotations: Annotations::new(),
        starts_at: Utc::now(),
        ends_at: None,
        ends_at_defaulted: false,
        generator_url: String::new(),
        source: Source::Prometheus,
        extra: Extra::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_labels_keep_every_pair_and_find_them_by_name() {
        let long = "v".repeat(300);
        let labels: Labels = [
            ("alertname", "Down"),
            ("", "empty name"),
            ("instance", long.as_str()),
            ("z", ""),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
        let packed = PackedLabels::new(&labels);
        assert_eq!(packed.to_labels(), labels);
        assert_eq!(packed.label("instance"), Some(long.as_str()));
        assert_eq!(packed.label("z"), Some(""));
        assert_eq!(packed.label("job"), None);
        assert_eq!(PackedLabels::new(&Labels::new()).iter().count(), 0);
    }
    use crate::alert::test_labels as labels;

    // Expected values are Prometheus's own test vectors (model/signature_test.go, TestMetricToFingerprint).
    #[test]
    fn fingerprint_matches_prometheus() {
        assert_eq!(
            Fingerprint::of(&Labels::new()).0,
            14_695_981_039_346_656_037
        );
        let set = labels(&[("name", "garland, briggs"), ("fear", "love is not enough")]);
        assert_eq!(Fingerprint::of(&set).0, 5_799_056_148_416_392_346);
    }

    #[test]
    fn fingerprint_round_trips_through_hex() {
        let fp = Fingerprint::of(&labels(&[("alertname", "Down")]));
        let text = fp.to_string();
        assert_eq!(text.len(), 16);
        assert_eq!(text.parse::<Fingerprint>(), Ok(fp));
        let json = serde_json::to_string(&fp).unwrap();
        assert_eq!(serde_json::from_str::<Fingerprint>(&json).unwrap(), fp);
    }

    #[test]
    fn status_follows_ends_at() {
        let now = Utc::now();
        assert_eq!(status_at(None, now), Status::Firing);
        assert_eq!(status_at(Some(now), now), Status::Resolved);
        assert_eq!(
            status_at(Some(now + chrono::Duration::seconds(1)), now),
            Status::Firing
        );
    }
}
