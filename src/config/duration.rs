//! Durations in Prometheus/Alertmanager syntax (`model.Duration`): parsing and printing `30s`, `1h30m`, `100ms`.

use std::time::Duration;

/// Units in the only order they may appear, each at most once, with their length in milliseconds.
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 60 * 60 * 1000),
    ("w", 7 * 24 * 60 * 60 * 1000),
    ("d", 24 * 60 * 60 * 1000),
    ("h", 60 * 60 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// Parses a duration such as `30s`, `5m`, `1h30m`, `1d`, `100ms` or `0`, as Prometheus and Alertmanager do:
/// units `y` (365 days), `w`, `d`, `h`, `m`, `s`, `ms`, in that order, each at most once, no sign, no spaces.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("invalid duration {s:?}");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut rest = s;
    let mut next_unit = 0;
    let mut total_ms: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(invalid());
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{}: too large", invalid()))?;
        rest = &rest[digits..];
        // `ms` must be tried before `m`.
        let (index, (unit, unit_ms)) = UNITS
            .iter()
            .enumerate()
            .filter(|(_, (unit, _))| rest.starts_with(unit))
            .max_by_key(|(_, (unit, _))| unit.len())
            .ok_or_else(invalid)?;
        if index < next_unit {
            return Err(invalid());
        }
        next_unit = index + 1;
        rest = &rest[unit.len()..];
        total_ms = number
            .checked_mul(*unit_ms)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| format!("{}: too large", invalid()))?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Prints a duration in the syntax `parse_duration` reads, as Prometheus does: `5400s` -> `1h30m`, zero -> `0s`.
/// Years and weeks are used only when they divide the duration exactly (`90d`, not `12w6d`). Precision is 1ms.
pub fn format_duration(d: Duration) -> String {
    let mut ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, unit_ms) in UNITS {
        let exact_only = unit == "y" || unit == "w";
        if exact_only && ms % unit_ms != 0 {
            continue;
        }
        let count = ms / unit_ms;
        if count > 0 {
            out.push_str(&count.to_string());
            out.push_str(unit);
            ms -= count * unit_ms;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_durations() {
        let cases: &[(&str, u64)] = &[
            ("0", 0),
            ("0s", 0),
            ("0ms", 0),
            ("30s", 30_000),
            ("5m", 300_000),
            ("4h", 14_400_000),
            ("1h30m", 5_400_000),
            ("1d", 86_400_000),
            ("1w", 604_800_000),
            ("1y", 31_536_000_000),
            ("100ms", 100),
            ("1m5ms", 60_005),
            (
                "1y2w3d4h5m6s7ms",
                31_536_000_000 + 1_209_600_000 + 259_200_000 + 14_400_000 + 300_000 + 6_000 + 7,
            ),
            ("090s", 90_000),
        ];
        for (input, ms) in cases {
            assert_eq!(
                parse_duration(input),
                Ok(Duration::from_millis(*ms)),
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_invalid_durations() {
        for input in [
            "",
            "5",
            "-5m",
            "5x",
            "5 m",
            " 5m",
            "5m ",
            "m",
            "1.5h",
            "5m1h",
            "1s1s",
            "1ms1s",
            "1mm",
            "5M",
            "1h 30m",
            "99999999999999999999s",
            "999999999999y",
        ] {
            let error = parse_duration(input).expect_err(input);
            assert!(
                error.starts_with(&format!("invalid duration {input:?}")),
                "{input}: {error}"
            );
        }
        assert_eq!(
            parse_duration("5x"),
            Err("invalid duration \"5x\"".to_owned())
        );
    }

    #[test]
    fn formats_like_prometheus() {
        let cases: &[(u64, &str)] = &[
            (0, "0s"),
            (100, "100ms"),
            (30_000, "30s"),
            (300_000, "5m"),
            (5_400_000, "1h30m"),
            (14_400_000, "4h"),
            (86_400_000, "1d"),
            (604_800_000, "1w"),
            (90 * 86_400_000, "90d"),
            (31_536_000_000, "1y"),
            (61_001, "1m1s1ms"),
        ];
        for (ms, text) in cases {
            assert_eq!(format_duration(Duration::from_millis(*ms)), *text);
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(*ms)),
                "round trip {text}"
            );
        }
        assert_eq!(format_duration(Duration::from_nanos(999)), "0s");
    }
}
