//! Time intervals in Alertmanager's syntax and semantics: named sets of periods (times of day, weekdays, days of the
//! month, months and years, read in a time zone) that routes name in `mute_time_intervals` and
//! `active_time_intervals`. This module owns the model, the parsing of each field's strings (used by config
//! validation, which adds key paths) and the evaluation `TimeInterval::contains`.
//!
//! Semantics, as Alertmanager's `timeinterval` package:
//! - an interval contains an instant when any of its periods does; one with no periods contains nothing;
//! - within a period every field that is set must match and an absent field matches everything; a field set to an
//!   empty list matches nothing;
//! - the instant is converted to the period's `location` (default UTC) before any field is read;
//! - `times` are `[start, end)` in minutes of the local day; the other ranges are inclusive;
//! - weekdays run sunday (0) to saturday (6) and ranges do not wrap (`friday:monday` is invalid);
//! - negative days of the month count back from the month's actual last day (-1); after resolving, a range that
//!   starts after the month's last day matches nothing in that month and its end is clamped to the last day.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc};
use chrono_tz::Tz;

/// A named time interval: `time_intervals[].name` with its list of periods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeInterval {
    name: String,
    periods: Vec<Period>,
}

impl TimeInterval {
    pub(crate) fn new(name: String, periods: Vec<Period>) -> Self {
        Self { name, periods }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The entries of the interval's `time_intervals` list, in order.
    pub fn periods(&self) -> &[Period] {
        &self.periods
    }

    /// Whether `at` falls in the interval: in any of its periods.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.periods.iter().any(|period| period.contains(at))
    }
}

/// One entry of a time interval's `time_intervals` list. `None` fields were not set and match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Period {
    pub(crate) times: Option<Vec<TimeRange>>,
    /// Inclusive ranges of weekdays, 0 = sunday .. 6 = saturday.
    pub(crate) weekdays: Option<Vec<Range>>,
    /// Inclusive ranges of days, 1..=31 or -31..=-1 counting back from the last day.
    pub(crate) days_of_month: Option<Vec<Range>>,
    /// Inclusive ranges of months, 1 = january .. 12 = december.
    pub(crate) months: Option<Vec<Range>>,
    pub(crate) years: Option<Vec<Range>>,
    pub(crate) location: Location,
}

impl Period {
    /// Whether `at`, read in the period's location, matches every field that is set.
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        let local = self.location.local(at);
        let minute = local.hour() * 60 + local.minute();
        let days_in_month = days_in_month(local.year(), local.month());
        let year = i64::from(local.year());
        any(&self.times, |range| range.contains(minute))
            && any(&self.days_of_month, |range| {
                day_of_month_matches(*range, local.day(), days_in_month)
            })
            && any(&self.months, |range| {
                range.contains(i64::from(local.month()))
            })
            && any(&self.weekdays, |range| {
                range.contains(i64::from(local.weekday().num_days_from_sunday()))
            })
            && any(&self.years, |range| range.contains(year))
    }
}

/// A field that is not set matches; one that is set matches when any of its ranges does.
fn any<T>(ranges: &Option<Vec<T>>, matches: impl Fn(&T) -> bool) -> bool {
    ranges
        .as_ref()
        .is_none_or(|ranges| ranges.iter().any(matches))
}

/// Resolves negative days against the month's length, then compares (Alertmanager's rules).
fn day_of_month_matches(range: Range, day: u32, days_in_month: u32) -> bool {
    let days = i64::from(days_in_month);
    let resolve = |n: i64| if n < 0 { days + n + 1 } else { n };
    let begin = resolve(range.begin);
    if begin > days {
        return false;
    }
    let end = resolve(range.end).min(days);
    (begin..=end).contains(&i64::from(day))
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        _ => 31,
    }
}

/// `[start, end)` in minutes since the start of the local day; `end` may be 1440 (`24:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    start: u32,
    end: u32,
}

impl TimeRange {
    /// A range from two minutes of the day, as `parse_time_of_day` returns them; `start` must be before `end`.
    pub(crate) fn new(start: u32, end: u32) -> Result<Self, String> {
        if start >= end {
            return Err(format!(
                "start_time {} must be before end_time {}",
                format_minute(start),
                format_minute(end)
            ));
        }
        Ok(Self { start, end })
    }

    fn contains(self, minute: u32) -> bool {
        self.start <= minute && minute < self.end
    }
}

/// An inclusive range of weekdays, days of the month, months or years.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    begin: i64,
    end: i64,
}

impl Range {
    fn contains(self, value: i64) -> bool {
        self.begin <= value && value <= self.end
    }
}

/// The time zone a period is read in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Location {
    #[default]
    Utc,
    /// The host's local time zone (`TZ`, else `/etc/localtime`).
    Local,
    Zone(Tz),
}

impl Location {
    fn local(self, at: DateTime<Utc>) -> NaiveDateTime {
        match self {
            Location::Utc => at.naive_utc(),
            Location::Local => at.with_timezone(&chrono::Local).naive_local(),
            Location::Zone(zone) => at.with_timezone(&zone).naive_local(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Location::Utc => "UTC",
            Location::Local => "Local",
            Location::Zone(zone) => zone.name(),
        }
    }
}

/// `HH:MM` in 24-hour time, `00:00` to `23:59`, or `24:00`, as minutes of the day. Two-digit hours only, as in
/// Alertmanager.
pub(crate) fn parse_time_of_day(value: &str) -> Result<u32, String> {
    let invalid = || format!("invalid time {value:?}: expected HH:MM from 00:00 to 24:00");
    if value == "24:00" {
        return Ok(24 * 60);
    }
    let (hours, minutes) = value.split_once(':').ok_or_else(invalid)?;
    let two_digits = |part: &str| {
        (part.len() == 2 && part.bytes().all(|b| b.is_ascii_digit()))
            .then(|| part.parse::<u32>().ok())
            .flatten()
    };
    match (two_digits(hours), two_digits(minutes)) {
        (Some(hours), Some(minutes)) if hours < 24 && minutes < 60 => Ok(hours * 60 + minutes),
        _ => Err(invalid()),
    }
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// `monday`, or an inclusive range `monday:friday` (names only, any case). Weeks start on sunday and ranges do not
/// wrap: `saturday:sunday` is invalid, write `[saturday, sunday]`.
pub(crate) fn parse_weekday_range(value: &str) -> Result<Range, String> {
    let range = parse_range(value, "weekday", |part| {
        WEEKDAYS
            .iter()
            .position(|day| *day == part)
            .and_then(|index| i64::try_from(index).ok())
            .ok_or_else(|| {
                format!(
                    "invalid weekday {part:?}: expected a day name (sunday to saturday) or a range such as \
                     monday:friday"
                )
            })
    })?;
    if range.begin > range.end {
        return Err(format!(
            "invalid weekday range {value:?}: the start comes after the end (weeks run sunday to saturday and \
             ranges do not wrap; list both parts instead)"
        ));
    }
    Ok(range)
}

/// `15`, `-1` (the last day), or an inclusive range such as `1:5`, `-3:-1` or `1:-1`. Days are 1 to 31 or -1 to
/// -31; a negative start needs a negative end; a range whose end is before its start in every month (taking the
/// shortest month, 28 days) is invalid. Alertmanager's rules.
pub(crate) fn parse_day_of_month_range(value: &str) -> Result<Range, String> {
    let range = parse_range(value, "day of month", |part| {
        part.parse::<i64>()
            .ok()
            .filter(|day| (1..=31).contains(&day.abs()))
            .ok_or_else(|| {
                format!(
                    "invalid day of month {part:?}: expected 1 to 31, or -1 to -31 counting back from the last \
                     day of the month"
                )
            })
    })?;
    if range.begin < 0 && range.end > 0 {
        return Err(format!(
            "invalid day of month range {value:?}: the end must be negative when the start is"
        ));
    }
    let in_shortest_month = |day: i64| if day < 0 { 28 + day } else { day };
    if in_shortest_month(range.begin) > in_shortest_month(range.end) {
        return Err(format!(
            "invalid day of month range {value:?}: the end is always before the start"
        ));
    }
    Ok(range)
}

/// `july`, `7`, or an inclusive range such as `january:march` or `1:3` (names in any case, or 1 to 12).
pub(crate) fn parse_month_range(value: &str) -> Result<Range, String> {
    let range = parse_range(value, "month", |part| {
        let by_name = MONTHS
            .iter()
            .position(|month| *month == part)
            .and_then(|index| i64::try_from(index + 1).ok());
        by_name
            .or_else(|| part.parse::<i64>().ok().filter(|n| (1..=12).contains(n)))
            .ok_or_else(|| {
                format!(
                    "invalid month {part:?}: expected a month name (january to december) or number (1 to 12)"
                )
            })
    })?;
    if range.begin > range.end {
        return Err(format!(
            "invalid month range {value:?}: the start comes after the end"
        ));
    }
    Ok(range)
}

/// `2024`, or an inclusive range such as `2024:2026`.
pub(crate) fn parse_year_range(value: &str) -> Result<Range, String> {
    let range = parse_range(value, "year", |part| {
        part.parse::<i32>()
            .map(i64::from)
            .map_err(|_| format!("invalid year {part:?}: expected a year such as 2026"))
    })?;
    if range.begin > range.end {
        return Err(format!(
            "invalid year range {value:?}: the start comes after the end"
        ));
    }
    Ok(range)
}

/// An IANA time zone name such as `Europe/Berlin`, `Local` for the host's zone, or `UTC` (also the empty string, as
/// Go's `time.LoadLocation`). Names are case-sensitive.
pub(crate) fn parse_location(value: &str) -> Result<Location, String> {
    match value {
        "" | "UTC" => Ok(Location::Utc),
        "Local" => Ok(Location::Local),
        name => Tz::from_str(name).map(Location::Zone).map_err(|_| {
            format!(
                "unknown time zone {value:?}: expected an IANA time zone name such as Europe/Berlin, or UTC or \
                 Local"
            )
        }),
    }
}

/// One value or `START:END`, lowercased first (as Alertmanager does); each side parsed by `member`.
fn parse_range(
    value: &str,
    what: &str,
    member: impl Fn(&str) -> Result<i64, String>,
) -> Result<Range, String> {
    let lower = value.to_lowercase();
    let (begin, end) = match lower.split_once(':') {
        Some((_, end)) if end.contains(':') => {
            return Err(format!(
                "invalid {what} range {value:?}: expected one value or START:END"
            ));
        }
        Some((begin, end)) => (member(begin)?, member(end)?),
        None => {
            let single = member(&lower)?;
            (single, single)
        }
    };
    Ok(Range { begin, end })
}

fn format_minute(minute: u32) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// How a range is written back: by name for weekdays and months, by number otherwise.
fn write_ranges(
    f: &mut fmt::Formatter<'_>,
    key: &str,
    ranges: &[Range],
    names: &[&str],
    first: i64,
) -> fmt::Result {
    let member = |n: i64| {
        usize::try_from(n - first)
            .ok()
            .and_then(|index| names.get(index))
            .map_or_else(|| n.to_string(), |name| (*name).to_owned())
    };
    let ranges: Vec<String> = ranges
        .iter()
        .map(|range| {
            if range.begin == range.end {
                member(range.begin)
            } else {
                format!("{}:{}", member(range.begin), member(range.end))
            }
        })
        .collect();
    write!(f, "{key} [{}]", ranges.join(", "))
}

/// The period in the config's terms, for `herald check-config`: `times [09:00-17:00], weekdays [monday:friday],
/// location Europe/Berlin`; `always` when no field is set.
impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut separator = |f: &mut fmt::Formatter<'_>| {
            let separator = if first { "" } else { ", " };
            first = false;
            f.write_str(separator)
        };
        if let Some(times) = &self.times {
            separator(f)?;
            let times: Vec<String> = times
                .iter()
                .map(|range| {
                    format!(
                        "{}-{}",
                        format_minute(range.start),
                        format_minute(range.end)
                    )
                })
                .collect();
            write!(f, "times [{}]", times.join(", "))?;
        }
        let fields = [
            ("weekdays", &self.weekdays, &WEEKDAYS[..], 0),
            ("days_of_month", &self.days_of_month, &[][..], 0),
            ("months", &self.months, &MONTHS[..], 1),
            ("years", &self.years, &[][..], 0),
        ];
        for (key, ranges, names, first_name) in fields {
            if let Some(ranges) = ranges {
                separator(f)?;
                write_ranges(f, key, ranges, names, first_name)?;
            }
        }
        if first {
            return f.write_str("always");
        }
        if self.location != Location::Utc {
            write!(f, ", location {}", self.location.name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_errors;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap_or_else(|error| panic!("{rfc3339}: {error}"))
            .with_timezone(&Utc)
    }

    /// A period from `(field, values)` pairs as written in the config; times are written `HH:MM-HH:MM`.
    fn period(fields: Fields<'_>) -> Period {
        let mut period = Period::default();
        for (field, values) in fields {
            let parse = |parse: fn(&str) -> Result<Range, String>| {
                Some(values.iter().map(|v| parse(v).unwrap()).collect())
            };
            match *field {
                "times" => {
                    period.times = Some(
                        values
                            .iter()
                            .map(|v| {
                                let (start, end) = v.split_once('-').unwrap();
                                TimeRange::new(
                                    parse_time_of_day(start).unwrap(),
                                    parse_time_of_day(end).unwrap(),
                                )
                                .unwrap()
                            })
                            .collect(),
                    )
                }
                "weekdays" => period.weekdays = parse(parse_weekday_range),
                "days_of_month" => period.days_of_month = parse(parse_day_of_month_range),
                "months" => period.months = parse(parse_month_range),
                "years" => period.years = parse(parse_year_range),
                "location" => period.location = parse_location(values[0]).unwrap(),
                other => panic!("unknown field {other}"),
            }
        }
        period
    }

    /// A period's fields as `period` takes them.
    type Fields<'a> = &'a [(&'a str, &'a [&'a str])];
    /// Instants in RFC 3339 with whether the period contains them.
    type Instants<'a> = &'a [(&'a str, bool)];

    /// Each case: a period, then instants with whether the period contains them.
    fn check(cases: &[(Fields<'_>, Instants<'_>)]) {
        for (fields, instants) in cases {
            let period = period(fields);
            for (instant, expected) in *instants {
                assert_eq!(
                    period.contains(at(instant)),
                    *expected,
                    "{period} at {instant}"
                );
            }
        }
    }

    #[test]
    fn times_of_day() {
        let cases: &[(&str, Result<u32, ()>)] = &[
            ("00:00", Ok(0)),
            ("09:00", Ok(540)),
            ("01:35", Ok(95)),
            ("23:59", Ok(1439)),
            ("24:00", Ok(1440)),
            ("9:00", Err(())),
            ("09:0", Err(())),
            ("24:01", Err(())),
            ("25:00", Err(())),
            ("01:60", Err(())),
            ("01:99", Err(())),
            ("0900", Err(())),
            ("+9:00", Err(())),
            (" 09:00", Err(())),
            ("09:00:00", Err(())),
            ("", Err(())),
        ];
        for (value, expected) in cases {
            assert_eq!(
                parse_time_of_day(value).map_err(|_| ()),
                *expected,
                "{value:?}"
            );
        }
        assert_eq!(
            parse_time_of_day("9:00").unwrap_err(),
            "invalid time \"9:00\": expected HH:MM from 00:00 to 24:00"
        );
        assert_eq!(
            TimeRange::new(0, 1440),
            Ok(TimeRange {
                start: 0,
                end: 1440
            })
        );
        assert_eq!(
            TimeRange::new(1051, 1051).unwrap_err(),
            "start_time 17:31 must be before end_time 17:31"
        );
        assert!(TimeRange::new(1440, 1061).is_err());
    }

    #[test]
    fn range_parsing() {
        type Parser = fn(&str) -> Result<Range, String>;
        /// `Ok((begin, end))`, or a part of the error message.
        type Expected = Result<(i64, i64), &'static str>;
        let weekday: Parser = parse_weekday_range;
        let day: Parser = parse_day_of_month_range;
        let month: Parser = parse_month_range;
        let year: Parser = parse_year_range;
        let cases: &[(Parser, &str, Expected)] = &[
            (weekday, "monday", Ok((1, 1))),
            (weekday, "monday:friday", Ok((1, 5))),
            (weekday, "Sunday:SATURDAY", Ok((0, 6))),
            (
                weekday,
                "friday:monday",
                Err("the start comes after the end"),
            ),
            (weekday, "saturday:sunday", Err("ranges do not wrap")),
            (weekday, "blurgsday", Err("invalid weekday \"blurgsday\"")),
            (
                weekday,
                "monday:flurgsday",
                Err("invalid weekday \"flurgsday\""),
            ),
            (weekday, "1:3", Err("invalid weekday \"1\"")),
            (weekday, "-2:-1", Err("invalid weekday \"-2\"")),
            (weekday, "mon", Err("invalid weekday \"mon\"")),
            (
                weekday,
                "monday:tuesday:friday",
                Err("expected one value or START:END"),
            ),
            (day, "15", Ok((15, 15))),
            (day, "1:5", Ok((1, 5))),
            (day, "-3:-1", Ok((-3, -1))),
            (day, "1:-1", Ok((1, -1))),
            (day, "-31:31", Err("the end must be negative")),
            (day, "-15:5", Err("the end must be negative")),
            (day, "-1:-3", Err("the end is always before the start")),
            (day, "10:-25", Err("the end is always before the start")),
            (day, "29:-1", Err("the end is always before the start")),
            (day, "5:1", Err("the end is always before the start")),
            (day, "0", Err("invalid day of month \"0\"")),
            (day, "32", Err("invalid day of month \"32\"")),
            (day, "-32:-1", Err("invalid day of month \"-32\"")),
            (day, "1:50", Err("invalid day of month \"50\"")),
            (day, "first", Err("invalid day of month \"first\"")),
            (month, "july", Ok((7, 7))),
            (month, "12", Ok((12, 12))),
            (month, "January:december", Ok((1, 12))),
            (month, "1:march", Ok((1, 3))),
            (
                month,
                "december:january",
                Err("the start comes after the end"),
            ),
            (month, "martius:june", Err("invalid month \"martius\"")),
            (month, "13", Err("invalid month \"13\"")),
            (month, "0", Err("invalid month \"0\"")),
            (year, "2030", Ok((2030, 2030))),
            (year, "2020:2022", Ok((2020, 2022))),
            (year, "2022:2020", Err("the start comes after the end")),
            (year, "twenty", Err("invalid year \"twenty\"")),
        ];
        for (parse, value, expected) in cases {
            match (parse(value), expected) {
                (Ok(range), Ok((begin, end))) => {
                    assert_eq!(
                        range,
                        Range {
                            begin: *begin,
                            end: *end
                        },
                        "{value}"
                    )
                }
                (Err(error), Err(part)) => assert!(error.contains(part), "{value}: {error}"),
                (got, expected) => panic!("{value}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn locations() {
        assert_eq!(parse_location("UTC"), Ok(Location::Utc));
        assert_eq!(parse_location(""), Ok(Location::Utc));
        assert_eq!(parse_location("Local"), Ok(Location::Local));
        assert_eq!(
            parse_location("Europe/Berlin"),
            Ok(Location::Zone(Tz::Europe__Berlin))
        );
        assert_eq!(parse_location("Etc/UTC").map(Location::name), Ok("Etc/UTC"));
        for bad in ["Mars/Olympus", "europe/berlin", "CEST", "+02:00"] {
            assert!(
                parse_location(bad)
                    .unwrap_err()
                    .starts_with("unknown time zone"),
                "{bad}"
            );
        }
    }

    #[test]
    fn an_empty_period_contains_everything_and_an_empty_field_nothing() {
        check(&[
            (
                &[],
                &[
                    ("2026-01-01T00:00:00Z", true),
                    ("1999-12-31T23:59:59Z", true),
                ],
            ),
            (&[("weekdays", &[])], &[("2026-01-01T00:00:00Z", false)]),
        ]);
    }

    #[test]
    fn times_include_the_start_and_exclude_the_end() {
        check(&[
            (
                &[("times", &["09:00-17:00"])],
                &[
                    ("2026-03-02T08:59:59Z", false),
                    ("2026-03-02T09:00:00Z", true),
                    ("2026-03-02T16:59:59Z", true),
                    ("2026-03-02T17:00:00Z", false),
                ],
            ),
            (
                &[("times", &["17:00-24:00"])],
                &[
                    ("2026-03-02T16:59:00Z", false),
                    ("2026-03-02T17:00:00Z", true),
                    ("2026-03-02T23:59:59Z", true),
                    ("2026-03-03T00:00:00Z", false),
                ],
            ),
            (
                &[("times", &["00:00-01:00", "12:00-12:01"])],
                &[
                    ("2026-03-02T00:00:00Z", true),
                    ("2026-03-02T00:59:00Z", true),
                    ("2026-03-02T01:00:00Z", false),
                    ("2026-03-02T12:00:30Z", true),
                    ("2026-03-02T12:01:00Z", false),
                ],
            ),
        ]);
    }

    #[test]
    fn weekday_ranges() {
        // 2026-03-01 is a Sunday.
        check(&[
            (
                &[("weekdays", &["monday:friday"])],
                &[
                    ("2026-03-01T12:00:00Z", false),
                    ("2026-03-02T00:00:00Z", true),
                    ("2026-03-06T23:59:59Z", true),
                    ("2026-03-07T00:00:00Z", false),
                ],
            ),
            (
                &[("weekdays", &["saturday", "sunday"])],
                &[
                    ("2026-03-01T12:00:00Z", true),
                    ("2026-03-04T12:00:00Z", false),
                    ("2026-03-07T12:00:00Z", true),
                ],
            ),
            (
                &[
                    ("weekdays", &["monday:friday"]),
                    ("times", &["09:00-17:00"]),
                ],
                &[
                    ("2020-05-04T15:04:00Z", true),
                    ("2020-05-05T10:04:00Z", true),
                    ("2020-05-03T15:04:00Z", false),
                    ("2020-05-04T08:59:00Z", false),
                ],
            ),
        ]);
    }

    #[test]
    fn negative_days_count_from_the_actual_end_of_the_month() {
        check(&[
            (
                &[("days_of_month", &["-3:-1"])],
                &[
                    ("2020-01-29T00:00:00Z", true),
                    ("2020-01-31T23:59:00Z", true),
                    ("2020-01-28T23:59:00Z", false),
                    ("2020-06-30T00:00:00Z", true),
                    ("2020-06-27T00:00:00Z", false),
                    // Leap February: 27..29.
                    ("2020-02-26T12:00:00Z", false),
                    ("2020-02-27T12:00:00Z", true),
                    ("2020-02-29T12:00:00Z", true),
                    // Common February: 26..28.
                    ("2021-02-25T12:00:00Z", false),
                    ("2021-02-26T12:00:00Z", true),
                    ("2021-02-28T12:00:00Z", true),
                    ("2020-03-01T00:00:00Z", false),
                ],
            ),
            (
                &[("days_of_month", &["-1"])],
                &[
                    ("2024-02-28T12:00:00Z", false),
                    ("2024-02-29T12:00:00Z", true),
                    ("2100-02-28T12:00:00Z", true),
                    ("2000-02-29T12:00:00Z", true),
                    ("2000-02-28T12:00:00Z", false),
                ],
            ),
            (
                &[("days_of_month", &["1:-1"])],
                &[
                    ("2021-02-01T00:00:00Z", true),
                    ("2021-02-28T00:00:00Z", true),
                ],
            ),
            (
                &[("days_of_month", &["1", "10", "20:-1"])],
                &[
                    ("2021-01-01T00:00:00Z", true),
                    ("2021-01-09T00:00:00Z", false),
                    ("2021-01-10T00:00:00Z", true),
                    ("2021-01-19T00:00:00Z", false),
                    ("2021-01-25T00:00:00Z", true),
                ],
            ),
        ]);
    }

    #[test]
    fn day_ranges_are_clamped_to_the_month_or_match_nothing() {
        check(&[
            // Ends past the month's last day are clamped to it.
            (
                &[("months", &["6"]), ("days_of_month", &["1:31"])],
                &[
                    ("2020-06-01T00:00:00Z", true),
                    ("2020-06-30T00:00:00Z", true),
                    ("2020-05-31T00:00:00Z", false),
                    ("2020-07-01T00:00:00Z", false),
                ],
            ),
            // A start after the month's last day matches nothing in that month.
            (
                &[("days_of_month", &["30:31"])],
                &[
                    ("2021-02-28T13:00:00Z", false),
                    ("2021-03-30T13:00:00Z", true),
                    ("2021-04-30T13:00:00Z", true),
                ],
            ),
            // -31 in a 28-day month resolves before day 1: from the first day.
            (
                &[("days_of_month", &["-31:-27"])],
                &[
                    ("2021-02-01T00:00:00Z", true),
                    ("2021-02-02T00:00:00Z", true),
                    ("2021-02-03T00:00:00Z", false),
                    ("2021-01-01T00:00:00Z", true),
                    ("2021-01-05T00:00:00Z", true),
                    ("2021-01-06T00:00:00Z", false),
                ],
            ),
            (
                &[("days_of_month", &["31"])],
                &[
                    ("2021-03-31T00:00:00Z", true),
                    ("2021-04-30T00:00:00Z", false),
                ],
            ),
        ]);
    }

    #[test]
    fn months_by_name_and_number_and_years() {
        check(&[
            (
                &[("months", &["january:march", "12", "july"])],
                &[
                    ("2026-01-01T00:00:00Z", true),
                    ("2026-03-31T23:59:00Z", true),
                    ("2026-04-01T00:00:00Z", false),
                    ("2026-07-15T00:00:00Z", true),
                    ("2026-08-15T00:00:00Z", false),
                    ("2026-12-31T00:00:00Z", true),
                ],
            ),
            (
                &[("years", &["2020:2022", "2030"])],
                &[
                    ("2019-12-31T23:59:59Z", false),
                    ("2020-01-01T00:00:00Z", true),
                    ("2022-12-31T23:59:59Z", true),
                    ("2023-01-01T00:00:00Z", false),
                    ("2030-06-01T00:00:00Z", true),
                    ("2031-01-01T00:00:00Z", false),
                ],
            ),
            // Easter 2020, every field set.
            (
                &[
                    ("days_of_month", &["4:6"]),
                    ("months", &["april"]),
                    ("years", &["2020"]),
                ],
                &[
                    ("2020-04-04T15:04:00Z", true),
                    ("2020-04-06T23:05:00Z", true),
                    ("2020-04-03T23:59:00Z", false),
                    ("2020-04-07T00:00:00Z", false),
                    ("2019-04-05T12:00:00Z", false),
                    ("2020-06-04T12:00:00Z", false),
                ],
            ),
        ]);
    }

    #[test]
    fn fields_are_read_in_the_location_across_a_dst_change() {
        // Europe/Berlin moves from UTC+1 to UTC+2 at 01:00 UTC on Sunday 2026-03-29 (02:00 local becomes 03:00).
        let berlin: Fields<'_> = &[
            ("times", &["09:00-17:00"]),
            ("location", &["Europe/Berlin"]),
        ];
        check(&[
            (
                berlin,
                &[
                    ("2026-03-28T07:59:00Z", false),
                    ("2026-03-28T08:00:00Z", true),
                    ("2026-03-28T15:59:00Z", true),
                    ("2026-03-28T16:00:00Z", false),
                    ("2026-03-30T06:59:00Z", false),
                    ("2026-03-30T07:00:00Z", true),
                    ("2026-03-30T14:59:00Z", true),
                    ("2026-03-30T15:00:00Z", false),
                ],
            ),
            // The skipped local hour never happens on the day of the change.
            (
                &[
                    ("times", &["02:00-03:00"]),
                    ("location", &["Europe/Berlin"]),
                ],
                &[
                    ("2026-03-28T01:30:00Z", true),
                    ("2026-03-29T00:59:00Z", false),
                    ("2026-03-29T01:00:00Z", false),
                    ("2026-03-30T00:30:00Z", true),
                ],
            ),
            // The local date decides the weekday: Sunday 23:30 UTC is Monday in Berlin.
            (
                &[("weekdays", &["monday"]), ("location", &["Europe/Berlin"])],
                &[
                    ("2026-03-29T21:59:00Z", false),
                    ("2026-03-29T22:00:00Z", true),
                    ("2026-03-29T23:30:00Z", true),
                ],
            ),
            // And the month: the last day of March in Berlin, whose length does not shrink with the lost hour.
            (
                &[("days_of_month", &["-1"]), ("location", &["Europe/Berlin"])],
                &[
                    ("2026-03-30T12:00:00Z", false),
                    ("2026-03-31T12:00:00Z", true),
                    ("2026-03-31T22:00:00Z", false),
                    ("2026-03-30T22:00:00Z", true),
                ],
            ),
            // Australia/Sydney (UTC+11 in November): 22:00 UTC on Oct 31 is 09:00 Monday Nov 1.
            (
                &[
                    ("times", &["09:00-17:00"]),
                    ("weekdays", &["monday:friday"]),
                    ("months", &["11"]),
                    ("location", &["Australia/Sydney"]),
                ],
                &[
                    ("2021-10-31T22:00:00Z", true),
                    ("2021-10-31T21:00:00Z", false),
                ],
            ),
            // UTC is the default.
            (
                &[("times", &["09:00-17:00"]), ("location", &["UTC"])],
                &[
                    ("2026-03-30T09:00:00Z", true),
                    ("2026-03-30T07:00:00Z", false),
                ],
            ),
        ]);
    }

    #[test]
    fn an_interval_contains_what_any_period_contains() {
        let interval = TimeInterval::new(
            "off_hours".into(),
            vec![
                period(&[("weekdays", &["saturday", "sunday"])]),
                period(&[("times", &["00:00-09:00", "17:00-24:00"])]),
            ],
        );
        assert_eq!(interval.name(), "off_hours");
        assert_eq!(interval.periods().len(), 2);
        for (instant, expected) in [
            ("2026-03-01T12:00:00Z", true),
            ("2026-03-02T12:00:00Z", false),
            ("2026-03-02T08:59:00Z", true),
            ("2026-03-02T17:00:00Z", true),
        ] {
            assert_eq!(interval.contains(at(instant)), expected, "{instant}");
        }
        let never = TimeInterval::new("never".into(), Vec::new());
        assert!(!never.contains(at("2026-03-01T12:00:00Z")));
    }

    #[test]
    fn periods_display_as_written() {
        assert_eq!(period(&[]).to_string(), "always");
        let full = period(&[
            ("times", &["09:00-17:00", "18:00-24:00"]),
            ("weekdays", &["monday:friday", "saturday"]),
            ("days_of_month", &["1:5", "-3:-1", "15"]),
            ("months", &["january:march", "12"]),
            ("years", &["2020:2022"]),
            ("location", &["Europe/Berlin"]),
        ]);
        assert_eq!(
            full.to_string(),
            "times [09:00-17:00, 18:00-24:00], weekdays [monday:friday, saturday], days_of_month [1:5, -3:-1, \
             15], months [january:march, december], years [2020:2022], location Europe/Berlin"
        );
    }

    #[test]
    fn config_with_intervals_referenced_by_a_child_route_loads() {
        let yaml = r#"
time_intervals:
  - name: business_hours
    time_intervals:
      - times: [{start_time: "09:00", end_time: "17:00"}]
        weekdays: ["monday:friday", "saturday"]
        days_of_month: ["1:5", "-3:-1", "15", 20]
        months: ["january:march", "12", "july", 8]
        years: ["2020:2022", 2030]
        location: Europe/Berlin
mute_time_intervals:
  - name: weekends
    time_intervals:
      - weekdays: [Saturday, sunday]
route:
  routes:
    - matchers: ['team="db"']
      active_time_intervals: [business_hours]
      routes:
        - matchers: ['severity="info"']
          mute_time_intervals: [weekends, business_hours]
"#;
        let loaded = crate::config::load_str(yaml, "herald.yaml").unwrap();
        let settings = &loaded.settings;
        let names: Vec<&str> = settings
            .time_intervals
            .iter()
            .map(TimeInterval::name)
            .collect();
        assert_eq!(names, ["business_hours", "weekends"]);
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let business = settings.time_interval("business_hours").unwrap();
        assert_eq!(
            business.periods()[0].to_string(),
            "times [09:00-17:00], weekdays [monday:friday, saturday], days_of_month [1:5, -3:-1, 15, 20], \
             months [january:march, december, july, august], years [2020:2022, 2030], location Europe/Berlin"
        );
        // Thursday 2026-01-15 10:00 in Berlin is 09:00 UTC; years exclude 2026.
        assert!(!business.contains(at("2026-01-15T09:00:00Z")));
        // Monday 2022-01-03 09:00 in Berlin (winter time) is 08:00 UTC.
        assert!(business.contains(at("2022-01-03T08:00:00Z")));
        assert!(!business.contains(at("2022-01-03T07:59:00Z")));
        let weekends = settings.time_interval("weekends").unwrap();
        assert!(weekends.contains(at("2026-03-01T12:00:00Z")));
        assert!(!weekends.contains(at("2026-03-02T12:00:00Z")));
        assert!(settings.time_interval("holidays").is_none());
        assert_eq!(
            settings.route.routes[0].routes[0].mute_time_intervals,
            ["weekends", "business_hours"]
        );
    }

    /// The acceptance test: an undefined reference, a bad location and a bad time are all reported together, each
    /// with its key path.
    #[test]
    fn config_reports_every_time_interval_problem_at_once() {
        let yaml = r#"
time_intervals:
  - name: business_hours
    time_intervals:
      - times:
          - start_time: "9:00"
            end_time: "17:00"
          - start_time: "18:00"
            end_time: "18:00"
          - start_time: "20:00"
        location: Mars/Olympus
      - weekdays: ["friday:monday", "funday"]
        days_of_month: ["0", "-1:-3", "1:-1"]
        months: ["smarch"]
        years: ["2022:2020"]
  - name: ""
route:
  routes:
    - receiver: log
    - matchers: ['a="b"']
      mute_time_intervals: [business_hours, weekends]
      routes:
        - active_time_intervals: [holidays]
"#;
        assert_eq!(
            load_errors(yaml),
            [
                "herald.yaml: time_intervals[0].time_intervals[0].times[0].start_time: invalid time \"9:00\": \
                 expected HH:MM from 00:00 to 24:00",
                "herald.yaml: time_intervals[0].time_intervals[0].times[1]: start_time 18:00 must be before \
                 end_time 18:00",
                "herald.yaml: time_intervals[0].time_intervals[0].times[2].end_time: must be set",
                "herald.yaml: time_intervals[0].time_intervals[0].location: unknown time zone \"Mars/Olympus\": \
                 expected an IANA time zone name such as Europe/Berlin, or UTC or Local",
                "herald.yaml: time_intervals[0].time_intervals[1].weekdays[0]: invalid weekday range \
                 \"friday:monday\": the start comes after the end (weeks run sunday to saturday and ranges do \
                 not wrap; list both parts instead)",
                "herald.yaml: time_intervals[0].time_intervals[1].weekdays[1]: invalid weekday \"funday\": \
                 expected a day name (sunday to saturday) or a range such as monday:friday",
                "herald.yaml: time_intervals[0].time_intervals[1].days_of_month[0]: invalid day of month \"0\": \
                 expected 1 to 31, or -1 to -31 counting back from the last day of the month",
                "herald.yaml: time_intervals[0].time_intervals[1].days_of_month[1]: invalid day of month range \
                 \"-1:-3\": the end is always before the start",
                "herald.yaml: time_intervals[0].time_intervals[1].months[0]: invalid month \"smarch\": expected \
                 a month name (january to december) or number (1 to 12)",
                "herald.yaml: time_intervals[0].time_intervals[1].years[0]: invalid year range \"2022:2020\": \
                 the start comes after the end",
                "herald.yaml: time_intervals[1].name: time interval name must be set and not empty",
                "herald.yaml: route.routes[1].mute_time_intervals[1]: time interval \"weekends\" is not defined",
                "herald.yaml: route.routes[1].routes[0].active_time_intervals[0]: time interval \"holidays\" is \
                 not defined",
            ]
        );
    }

    #[test]
    fn config_names_are_unique_across_both_keys_and_unknown_keys_are_reported() {
        let yaml = r#"
time_intervals:
  - name: weekends
    time_intervals: [{weekdays: [saturday, sunday]}]
  - name: weekends
    time_intervals: [{weekdays: [saturday]}]
mute_time_intervals:
  - name: weekends
    time_intervals:
      - time_zone: Europe/Berlin
route:
  mute_time_intervals: [weekends]
"#;
        assert_eq!(
            load_errors(yaml),
            [
                "herald.yaml: mute_time_intervals[0].time_intervals[0].time_zone: unknown key",
                "herald.yaml: time_intervals[1].name: duplicate time interval name \"weekends\"",
                "herald.yaml: mute_time_intervals[0].name: duplicate time interval name \"weekends\"",
                "herald.yaml: route.mute_time_intervals: the root route must not have mute_time_intervals (it \
                 matches every alert)",
            ]
        );
    }

    #[test]
    fn config_interval_without_entries_loads_with_a_warning() {
        let loaded =
            crate::config::load_str("time_intervals:\n  - name: never\n", "herald.yaml").unwrap();
        assert_eq!(
            loaded.warnings,
            [
                "herald.yaml: time_intervals[0].time_intervals: time interval \"never\" has no entries, so it \
                 never applies: routes muted during it always notify and routes active during it never do"
            ]
        );
        assert!(!loaded.settings.time_intervals[0].contains(at("2026-03-01T12:00:00Z")));
    }

    /// The commented example in the embedded default config, uncommented, is a valid configuration.
    #[test]
    fn documented_example_loads() {
        let default = include_str!("../config/herald.yaml");
        let start = default.find("# time_intervals:").unwrap();
        let example: String = default[start..]
            .lines()
            .map(|line| line.strip_prefix("# ").unwrap_or(""))
            .collect::<Vec<_>>()
            .join("\n");
        let loaded = crate::config::load_str(&example, "example.yaml").unwrap();
        let settings = &loaded.settings;
        assert_eq!(settings.time_intervals.len(), 2);
        let business = settings.time_interval("business_hours").unwrap();
        // Monday 2026-03-30 09:00 in Berlin (summer time) is 07:00 UTC.
        assert!(business.contains(at("2026-03-30T07:00:00Z")));
        assert!(!business.contains(at("2026-03-30T06:59:00Z")));
        let weekends = settings.time_interval("weekends").unwrap();
        assert!(weekends.contains(at("2026-03-29T12:00:00Z")));
    }
}
