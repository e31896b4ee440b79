//! Label matchers with Alertmanager's syntax and semantics: parsing (`foo="bar"`, `{a=~"b|c", d!="e"}`), matching
//! against an alert's labels, the canonical text form and the v2 API's JSON form.
//!
//! Parsing follows Alertmanager's default ("fallback") mode exactly: the input is read by the classic parser
//! (label names `[a-zA-Z_:][a-zA-Z0-9_:]*`, values quoted or not, only `\"`, `\\` and `\n` are escapes and any other
//! backslash stays literal, so `"\d+"` is the regex `\d+`), and what the classic parser rejects is read by the UTF-8
//! parser (any label name, double-quoted names and values with Go's escapes, unquoted names and values without
//! whitespace or `{}!=~,\"'` and backtick). Where both accept an input the classic reading wins, as in Alertmanager:
//! `foo="a\tb"` is the four characters `a\tb`, while `"foo bar"="a\tb"` (which only the UTF-8 parser reads) has a
//! tab.
//!
//! Regexes are fully anchored (`^(?:VALUE)$`) and use Go's RE2 syntax, translated for the `regex` crate so they mean
//! what they mean in Alertmanager: `\d`, `\s`, `\w` and `\b` are ASCII-only, `\Q...\E`, octal escapes and a `{` that
//! starts no repetition are literals, and what Go rejects (flags `x`, `u`, `R`, `\u` escapes, `a**`, counts over 1000)
//! is rejected.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::alert::{LabelSource, go_quote};

/// How a matcher compares a label's value. The order is Alertmanager's (used when sorting matchers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatchType {
    /// `=`: the value equals.
    Equal,
    /// `!=`: the value differs.
    NotEqual,
    /// `=~`: the whole value matches the regex.
    Regex,
    /// `!~`: the whole value does not match the regex.
    NotRegex,
}

impl MatchType {
    /// The operator as written: `=`, `!=`, `=~` or `!~`.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchType::Equal => "=",
            MatchType::NotEqual => "!=",
            MatchType::Regex => "=~",
            MatchType::NotRegex => "!~",
        }
    }

    /// Whether the value is a regex (`=~`, `!~`).
    pub fn is_regex(self) -> bool {
        matches!(self, MatchType::Regex | MatchType::NotRegex)
    }

    /// Whether the matcher selects what equals or matches (`=`, `=~`) rather than what does not.
    pub fn is_equal(self) -> bool {
        matches!(self, MatchType::Equal | MatchType::Regex)
    }
}

impl fmt::Display for MatchType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A problem with a matcher: what is wrong and, when known, the character offset (counted in Unicode scalar values
/// from 0) in the text that was parsed: the matcher input for the parse functions, the regex for `Matcher::new`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct MatcherError {
    pub message: String,
    pub position: Option<usize>,
}

impl MatcherError {
    fn at(position: usize, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            position: Some(position),
        }
    }
}

impl fmt::Display for MatcherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(position) = self.position {
            write!(f, " at position {position}")?;
        }
        Ok(())
    }
}

/// One label matcher, such as `severity=~"warning|critical"`.
///
/// Build it with `Matcher::new` (or the parse functions), which compiles the regex; the fields are public to read.
/// Equality, hashing and ordering look at name, type and value only; the order is Alertmanager's (name, then value,
/// then type).
#[derive(Clone)]
pub struct Matcher {
    pub name: String,
    pub kind: MatchType,
    pub value: String,
    regex: Option<Regex>,
}

/// Why a matcher could not be built; the regex offset is in bytes of the value.
enum BuildError {
    EmptyName,
    Regex { message: String, offset: usize },
}

impl BuildError {
    fn message(&self, value: &str) -> String {
        match self {
            BuildError::EmptyName => "label name must not be empty".to_owned(),
            BuildError::Regex { message, .. } => format!("invalid regex {value:?}: {message}"),
        }
    }
}

impl Matcher {
    /// A matcher on label `name`; for `Regex` and `NotRegex`, `value` must be a valid regex (Go RE2 syntax), which
    /// is anchored at both ends. The name must not be empty; any other UTF-8 is allowed, as in Alertmanager.
    pub fn new(
        name: impl Into<String>,
        kind: MatchType,
        value: impl Into<String>,
    ) -> Result<Self, MatcherError> {
        let (name, value) = (name.into(), value.into());
        Self::build(name, kind, value).map_err(|(error, value)| match &error {
            BuildError::EmptyName => MatcherError {
                message: error.message(&value),
                position: None,
            },
            BuildError::Regex { offset, .. } => MatcherError {
                message: error.message(&value),
                position: Some(char_offset(&value, *offset)),
            },
        })
    }

    fn build(name: String, kind: MatchType, value: String) -> Result<Self, (BuildError, String)> {
        if name.is_empty() {
            return Err((BuildError::EmptyName, value));
        }
        let regex = if kind.is_regex() {
            match go_regex::compile(&value) {
                Ok(regex) => Some(regex),
                Err(error) => {
                    return Err((
                        BuildError::Regex {
                            message: error.message,
                            offset: error.offset,
                        },
                        value,
                    ));
                }
            }
        } else {
            None
        };
        Ok(Self {
            name,
            kind,
            value,
            regex,
        })
    }

    /// A matcher as the Alertmanager v2 API describes one (`name`, `value`, `isRegex`, `isEqual`; `isEqual` defaults
    /// to true), as in silences posted through the API.
    pub fn from_api(
        name: impl Into<String>,
        value: impl Into<String>,
        is_regex: bool,
        is_equal: Option<bool>,
    ) -> Result<Self, MatcherError> {
        let kind = match (is_regex, is_equal.unwrap_or(true)) {
            (false, true) => MatchType::Equal,
            (false, false) => MatchType::NotEqual,
            (true, true) => MatchType::Regex,
            (true, false) => MatchType::NotRegex,
        };
        Self::new(name, kind, value)
    }

    /// Whether a label value matches; pass `""` for a label the alert does not have.
    pub fn matches(&self, value: &str) -> bool {
        match self.kind {
            MatchType::Equal => value == self.value,
            MatchType::NotEqual => value != self.value,
            MatchType::Regex => self.regex_matches(value),
            MatchType::NotRegex => !self.regex_matches(value),
        }
    }

    fn regex_matches(&self, value: &str) -> bool {
        self.regex
            .as_ref()
            .is_some_and(|regex| regex.is_match(value))
    }

    /// Whether the value is a regex (`=~`, `!~`), as the API's `isRegex`.
    pub fn is_regex(&self) -> bool {
        self.kind.is_regex()
    }

    /// Whether the matcher is `=` or `=~`, as the API's `isEqual`.
    pub fn is_equal(&self) -> bool {
        self.kind.is_equal()
    }
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Matcher({self})")
    }
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.kind == other.kind && self.value == other.value
    }
}

impl Eq for Matcher {}

impl Hash for Matcher {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.kind.hash(state);
        self.value.hash(state);
    }
}

impl PartialOrd for Matcher {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Matcher {
    /// Alertmanager's order: by name, then value, then type.
    fn cmp(&self, other: &Self) -> Ordering {
        (&self.name, &self.value, self.kind).cmp(&(&other.name, &other.value, other.kind))
    }
}

impl fmt::Display for Matcher {
    /// Alertmanager's form: `name="value"` with `\`, newline and `"` escaped; when the name contains whitespace or
    /// one of `{}!=~,\"'` or backtick, the name and value are both written as Go-quoted strings.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name.chars().any(is_reserved) {
            write!(
                f,
                "{}{}{}",
                go_quote(&self.name),
                self.kind,
                go_quote(&self.value)
            )
        } else {
            write!(
                f,
                "{}{}\"{}\"",
                self.name,
                self.kind,
                open_metrics_escape(&self.value)
            )
        }
    }
}

impl FromStr for Matcher {
    type Err = MatcherError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_matcher(s)
    }
}

/// The v2 API's matcher object.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ApiMatcher {
    name: String,
    value: String,
    is_regex: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    is_equal: Option<bool>,
}

impl Serialize for Matcher {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ApiMatcher {
            name: self.name.clone(),
            value: self.value.clone(),
            is_regex: self.is_regex(),
            is_equal: Some(self.is_equal()),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let api = ApiMatcher::deserialize(deserializer)?;
        Matcher::from_api(api.name, api.value, api.is_regex, api.is_equal)
            .map_err(serde::de::Error::custom)
    }
}

/// Matchers that must all match, such as a route's or a silence's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Matchers(pub Vec<Matcher>);

impl Matchers {
    /// Whether every matcher matches `labels`; a label the alert does not have counts as `""`. No matchers match
    /// every alert.
    pub fn matches<L: LabelSource + ?Sized>(&self, labels: &L) -> bool {
        self.0
            .iter()
            .all(|matcher| matcher.matches(labels.label(&matcher.name).unwrap_or("")))
    }

    /// Sorts in Alertmanager's order (name, value, type), as Alertmanager sorts a route's matchers.
    pub fn sort(&mut self) {
        self.0.sort();
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Matcher> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<Matcher>> for Matchers {
    fn from(matchers: Vec<Matcher>) -> Self {
        Matchers(matchers)
    }
}

impl<'a> IntoIterator for &'a Matchers {
    type Item = &'a Matcher;
    type IntoIter = std::slice::Iter<'a, Matcher>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for Matchers {
    /// Alertmanager's form, as in route and group keys: `{a="b",c=~"d"}` (no space after the comma).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('{')?;
        for (i, matcher) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_char(',')?;
            }
            write!(f, "{matcher}")?;
        }
        f.write_char('}')
    }
}

impl FromStr for Matchers {
    type Err = MatcherError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_matchers(s).map(Matchers)
    }
}

/// Parses zero or more matchers separated by commas, optionally inside `{ }`, as Alertmanager reads a line of a
/// route's `matchers` or of an inhibit rule: `{}` and `""` give no matchers, a trailing comma is allowed.
pub fn parse_matchers(input: &str) -> Result<Vec<Matcher>, MatcherError> {
    match classic::parse_list(input) {
        Ok(matchers) => Ok(matchers),
        Err(classic) => match utf8::parse(input) {
            Ok(parsed) => Ok(parsed.into_iter().map(|(matcher, _)| matcher).collect()),
            Err(utf8) => Err(pick_error(utf8, classic)),
        },
    }
}

/// Parses exactly one matcher without surrounding braces, as Alertmanager reads an API or amtool filter. As there,
/// the classic reading of the whole input comes first, so `a=b,c` is the one matcher `a="b,c"`.
pub fn parse_matcher(input: &str) -> Result<Matcher, MatcherError> {
    if input.starts_with('{') {
        return Err(MatcherError::at(
            0,
            "unexpected \"{\": a single matcher is written without braces",
        ));
    }
    if input.ends_with('}') {
        return Err(MatcherError::at(
            input.chars().count().saturating_sub(1),
            "unexpected \"}\": a single matcher is written without braces",
        ));
    }
    match classic::parse_one(input, 0) {
        Ok(matcher) => Ok(matcher),
        Err(classic) => match utf8::parse(input) {
            Ok(parsed) => exactly_one(input, parsed),
            Err(utf8) => Err(pick_error(utf8, classic)),
        },
    }
}

fn exactly_one(input: &str, parsed: Vec<(Matcher, usize)>) -> Result<Matcher, MatcherError> {
    let count = parsed.len();
    let mut parsed = parsed.into_iter();
    match (parsed.next(), parsed.next()) {
        (Some((matcher, _)), None) => Ok(matcher),
        (None, _) => Err(MatcherError::at(
            input.chars().count(),
            "expected a matcher such as name=\"value\", found none",
        )),
        (Some(_), Some((_, second))) => Err(MatcherError::at(
            second,
            format!("expected exactly one matcher, found {count}"),
        )),
    }
}

/// A parse failure; `built` when the syntax was fine and the matcher itself (its regex or name) was not.
struct Failure {
    error: MatcherError,
    built: bool,
}

impl Failure {
    fn syntax(position: usize, message: impl Into<String>) -> Self {
        Self {
            error: MatcherError::at(position, message),
            built: false,
        }
    }
}

/// When neither parser accepts the input: the UTF-8 parser's error says best what is wrong and where, unless only
/// the regex or name is wrong for the classic parser (as in `a=~"\d("`, where the UTF-8 parser stops at `\d`).
fn pick_error(utf8: Failure, classic: Failure) -> MatcherError {
    if classic.built && !utf8.built {
        classic.error
    } else {
        utf8.error
    }
}

/// Builds a matcher whose value came from the input; `value_positions` maps each byte of `value` to the position of
/// the input character it came from, `name_position` is where the name starts, `end` where the value ends.
fn build_parsed(
    name: String,
    kind: MatchType,
    value: String,
    name_position: usize,
    value_positions: &[usize],
    end: usize,
) -> Result<Matcher, Failure> {
    Matcher::build(name, kind, value).map_err(|(error, value)| {
        let position = match &error {
            BuildError::EmptyName => name_position,
            BuildError::Regex { offset, .. } => {
                value_positions.get(*offset).copied().unwrap_or(end)
            }
        };
        Failure {
            error: MatcherError::at(position, error.message(&value)),
            built: true,
        }
    })
}

/// The matchers of Alertmanager's deprecated `match` (label equals value) and `match_re` (label matches regex)
/// maps: the `match` ones first, each map in label order.
pub fn from_match_maps(
    equal: &BTreeMap<String, String>,
    re: &BTreeMap<String, String>,
) -> Result<Vec<Matcher>, MatcherError> {
    let equal = equal
        .iter()
        .map(|(name, value)| ("match", name, MatchType::Equal, value));
    let re = re
        .iter()
        .map(|(name, value)| ("match_re", name, MatchType::Regex, value));
    equal
        .chain(re)
        .map(|(key, name, kind, value)| {
            Matcher::new(name.as_str(), kind, value.as_str()).map_err(|error| MatcherError {
                message: format!("{key} {name:?}: {}", error.message),
                position: error.position,
            })
        })
        .collect()
}

/// Characters that end an unquoted name or value in the UTF-8 syntax (and make Display quote a name).
fn is_reserved(c: char) -> bool {
    c.is_whitespace() || "{}!=~,\\\"'`".contains(c)
}

/// The character offset of byte `offset` in `text`.
fn char_offset(text: &str, offset: usize) -> usize {
    text.char_indices()
        .take_while(|(index, _)| *index < offset)
        .count()
}

/// OpenMetrics escaping, as Alertmanager writes values: `\` -> `\\`, newline -> `\n`, `"` -> `\"`.
fn open_metrics_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' => out.push_str("\\\""),
            c => out.push(c),
        }
    }
    out
}

/// Alertmanager's classic matcher parser (`pkg/labels`), which reads first.
mod classic {
    use super::{Failure, MatchType, Matcher, build_parsed};

    /// Go's `\s`: `[\t\n\f\r ]`.
    fn is_space(c: char) -> bool {
        matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ')
    }

    /// Zero or more matchers: one optional `{` at the very start and `}` at the very end are dropped, the rest is
    /// split at commas outside double quotes, and a last piece that is only whitespace is ignored.
    pub(super) fn parse_list(input: &str) -> Result<Vec<Matcher>, Failure> {
        let (input, base) = match input.strip_prefix('{') {
            Some(rest) => (rest, 1),
            None => (input, 0),
        };
        let input = input.strip_suffix('}').unwrap_or(input);
        let mut pieces = Vec::new();
        let (mut start, mut piece_start) = (base, 0);
        let (mut inside_quotes, mut escaped) = (false, false);
        for (position, (index, c)) in (base..).zip(input.char_indices()) {
            match c {
                ',' if !inside_quotes => {
                    pieces.push((&input[piece_start..index], start));
                    piece_start = index + 1;
                    start = position + 1;
                    continue;
                }
                // As in Alertmanager, a comma inside quotes leaves a pending escape pending.
                ',' => {}
                '"' => {
                    if escaped {
                        escaped = false;
                    } else {
                        inside_quotes = !inside_quotes;
                    }
                }
                '\\' => escaped = !escaped,
                _ => escaped = false,
            }
        }
        let last = &input[piece_start..];
        if !last.trim_matches(|c: char| c.is_whitespace()).is_empty() {
            pieces.push((last, start));
        }
        pieces
            .into_iter()
            .map(|(piece, start)| parse_one(piece, start))
            .collect()
    }

    /// One matcher, `^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*((?s).*?)\s*$`, at character `offset` of the
    /// whole input. In the value a leading `"` needs a trailing one, `\"`, `\\` and `\n` are escapes, and any other
    /// backslash is literal.
    pub(super) fn parse_one(text: &str, offset: usize) -> Result<Matcher, Failure> {
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        while chars.get(i).copied().is_some_and(is_space) {
            i += 1;
        }
        let name_start = i;
        if !chars
            .get(i)
            .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '_' | ':'))
        {
            return Err(Failure::syntax(offset + i, "expected a label name"));
        }
        while chars
            .get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':'))
        {
            i += 1;
        }
        let name: String = chars[name_start..i].iter().collect();
        while chars.get(i).copied().is_some_and(is_space) {
            i += 1;
        }
        let (kind, length) = match (chars.get(i), chars.get(i + 1)) {
            (Some('='), Some('~')) => (MatchType::Regex, 2),
            (Some('='), _) => (MatchType::Equal, 1),
            (Some('!'), Some('=')) => (MatchType::NotEqual, 2),
            (Some('!'), Some('~')) => (MatchType::NotRegex, 2),
            _ => {
                return Err(Failure::syntax(
                    offset + i,
                    format!("expected an operator (=, !=, =~, !~) after {name:?}"),
                ));
            }
        };
        i += length;
        while chars.get(i).copied().is_some_and(is_space) {
            i += 1;
        }
        let mut end = chars.len();
        while end > i && is_space(chars[end - 1]) {
            end -= 1;
        }
        let raw = &chars[i..end];
        let (raw, mut expect_quote, raw_start) = match raw.split_first() {
            Some((&'"', rest)) => (rest, true, i + 1),
            _ => (raw, false, i),
        };
        let mut value = String::new();
        let mut positions = Vec::new();
        let mut push = |value: &mut String, c: char, position: usize| {
            value.push(c);
            positions.extend(std::iter::repeat_n(offset + position, c.len_utf8()));
        };
        let mut escaped = false;
        for (j, &c) in raw.iter().enumerate() {
            let position = raw_start + j;
            let last = j + 1 == raw.len();
            if escaped {
                escaped = false;
                match c {
                    'n' => push(&mut value, '\n', position - 1),
                    '"' | '\\' => push(&mut value, c, position - 1),
                    _ => {
                        push(&mut value, '\\', position - 1);
                        push(&mut value, c, position);
                    }
                }
                continue;
            }
            match c {
                '\\' if !last => escaped = true,
                '"' if expect_quote && last => expect_quote = false,
                '"' => {
                    return Err(Failure::syntax(
                        offset + position,
                        "unescaped double quote in the value",
                    ));
                }
                _ => push(&mut value, c, position),
            }
        }
        if expect_quote {
            return Err(Failure::syntax(
                offset + raw_start - 1,
                "unterminated quoted string",
            ));
        }
        build_parsed(
            name,
            kind,
            value,
            offset + name_start,
            &positions,
            offset + end,
        )
    }
}

/// Alertmanager's UTF-8 matcher parser (`matcher/parse`), which reads what the classic parser rejects.
mod utf8 {
    use super::{Failure, MatchType, Matcher, build_parsed, is_reserved};

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Kind {
        OpenBrace,
        CloseBrace,
        Comma,
        Operator(MatchType),
        Quoted,
        Unquoted,
    }

    /// A token with its text and character positions `start..end` in the input.
    #[derive(Debug, Clone)]
    struct Token {
        kind: Kind,
        text: String,
        start: usize,
        end: usize,
    }

    impl Token {
        fn is_text(&self) -> bool {
            matches!(self.kind, Kind::Quoted | Kind::Unquoted)
        }

        /// The token's text, Go-unquoted if quoted, and the input position of every byte of the result.
        fn unquote(&self) -> Result<(String, Vec<usize>), Failure> {
            match self.kind {
                Kind::Quoted => go_unquote(&self.text, self.start),
                _ => {
                    let mut positions = Vec::with_capacity(self.text.len());
                    for (position, c) in (self.start..).zip(self.text.chars()) {
                        positions.extend(std::iter::repeat_n(position, c.len_utf8()));
                    }
                    Ok((self.text.clone(), positions))
                }
            }
        }
    }

    struct Lexer {
        chars: Vec<char>,
        position: usize,
        peeked: Option<Option<Token>>,
    }

    impl Lexer {
        fn new(input: &str) -> Self {
            Self {
                chars: input.chars().collect(),
                position: 0,
                peeked: None,
            }
        }

        fn peek(&mut self) -> Result<Option<&Token>, Failure> {
            if self.peeked.is_none() {
                self.peeked = Some(self.scan()?);
            }
            Ok(self.peeked.as_ref().and_then(Option::as_ref))
        }

        fn next(&mut self) -> Result<Option<Token>, Failure> {
            match self.peeked.take() {
                Some(token) => Ok(token),
                None => self.scan(),
            }
        }

        fn char_at(&self, position: usize) -> Option<char> {
            self.chars.get(position).copied()
        }

        fn scan(&mut self) -> Result<Option<Token>, Failure> {
            while self.char_at(self.position).is_some_and(char::is_whitespace) {
                self.position += 1;
            }
            let start = self.position;
            let Some(c) = self.char_at(start) else {
                return Ok(None);
            };
            let kind = match c {
                '{' => Kind::OpenBrace,
                '}' => Kind::CloseBrace,
                ',' => Kind::Comma,
                '=' if self.char_at(start + 1) == Some('~') => Kind::Operator(MatchType::Regex),
                '=' => Kind::Operator(MatchType::Equal),
                '!' => match self.char_at(start + 1) {
                    Some('=') => Kind::Operator(MatchType::NotEqual),
                    Some('~') => Kind::Operator(MatchType::NotRegex),
                    _ => {
                        return Err(Failure::syntax(
                            start + 1,
                            "expected \"=\" or \"~\" after \"!\"",
                        ));
                    }
                },
                '"' => Kind::Quoted,
                '\'' | '`' => {
                    return Err(Failure::syntax(
                        start,
                        format!("unexpected {c}: quote names and values with double quotes"),
                    ));
                }
                c if is_reserved(c) => {
                    return Err(Failure::syntax(start, format!("unexpected {c:?}")));
                }
                _ => Kind::Unquoted,
            };
            let end = match kind {
                Kind::Operator(MatchType::Equal)
                | Kind::OpenBrace
                | Kind::CloseBrace
                | Kind::Comma => start + 1,
                Kind::Operator(_) => start + 2,
                Kind::Quoted => self.quoted_end(start)?,
                Kind::Unquoted => {
                    let mut end = start;
                    while self.char_at(end).is_some_and(|c| !is_reserved(c)) {
                        end += 1;
                    }
                    end
                }
            };
            self.position = end;
            Ok(Some(Token {
                kind,
                text: self.chars[start..end].iter().collect(),
                start,
                end,
            }))
        }

        /// The end of the double-quoted string starting at `start`: after the first `"` not escaped by `\`.
        fn quoted_end(&self, start: usize) -> Result<usize, Failure> {
            let mut escaped = false;
            let mut position = start + 1;
            while let Some(c) = self.char_at(position) {
                position += 1;
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => return Ok(position),
                    _ => {}
                }
            }
            Err(Failure::syntax(start, "unterminated quoted string"))
        }
    }

    fn describe(token: Option<&Token>) -> String {
        match token {
            Some(token) => format!(", found {:?}", token.text),
            None => String::new(),
        }
    }

    /// The matchers in `input`, each with the position where it starts.
    pub(super) fn parse(input: &str) -> Result<Vec<(Matcher, usize)>, Failure> {
        let mut lexer = Lexer::new(input);
        let end_of_input = lexer.chars.len();
        let open_brace = match lexer.peek()? {
            Some(token) if token.kind == Kind::OpenBrace => {
                lexer.next()?;
                true
            }
            _ => false,
        };
        let mut matchers = Vec::new();
        loop {
            match lexer.peek()? {
                None => break,
                Some(token) if token.kind == Kind::CloseBrace => break,
                Some(token) if token.is_text() => {}
                Some(token) => {
                    return Err(Failure::syntax(
                        token.start,
                        format!("expected a label name{}", describe(Some(token))),
                    ));
                }
            }
            matchers.push(read_matcher(&mut lexer, end_of_input)?);
            match lexer.peek()? {
                None => break,
                Some(token) if token.kind == Kind::CloseBrace => break,
                Some(token) if token.kind == Kind::Comma => {
                    lexer.next()?;
                }
                Some(token) => {
                    return Err(Failure::syntax(
                        token.start,
                        format!(
                            "expected \",\" or \"}}\" after a matcher{}",
                            describe(Some(token))
                        ),
                    ));
                }
            }
        }
        match (open_brace, lexer.next()?) {
            (true, Some(token)) if token.kind == Kind::CloseBrace => {}
            (true, _) => {
                return Err(Failure::syntax(end_of_input, "missing closing \"}\""));
            }
            (false, Some(token)) => {
                return Err(Failure::syntax(
                    token.start,
                    format!("unexpected {:?} without an opening \"{{\"", token.text),
                ));
            }
            (false, None) => {}
        }
        if let Some(token) = lexer.next()? {
            return Err(Failure::syntax(
                token.start,
                format!("unexpected {:?} after the closing \"}}\"", token.text),
            ));
        }
        Ok(matchers)
    }

    fn read_matcher(lexer: &mut Lexer, end_of_input: usize) -> Result<(Matcher, usize), Failure> {
        let Some(name) = lexer.next()? else {
            return Err(Failure::syntax(end_of_input, "expected a label name"));
        };
        let (name_text, _) = name.unquote()?;
        let kind = match lexer.next()? {
            Some(Token {
                kind: Kind::Operator(kind),
                ..
            }) => kind,
            other => {
                return Err(Failure::syntax(
                    other.as_ref().map_or(name.end, |token| token.start),
                    format!(
                        "expected an operator (=, !=, =~, !~) after {:?}{}",
                        name.text,
                        describe(other.as_ref())
                    ),
                ));
            }
        };
        let value = match lexer.next()? {
            Some(token) if token.is_text() => token,
            other => {
                return Err(Failure::syntax(
                    other.as_ref().map_or(end_of_input, |token| token.start),
                    format!(
                        "expected a label value after {:?}{}",
                        format!("{}{kind}", name.text),
                        describe(other.as_ref())
                    ),
                ));
            }
        };
        let (value_text, positions) = value.unquote()?;
        let matcher = build_parsed(
            name_text, kind, value_text, name.start, &positions, value.end,
        )?;
        Ok((matcher, name.start))
    }

    /// Go's `strconv.Unquote` for the double-quoted `text` at position `start`, with the input position of each
    /// byte of the result.
    fn go_unquote(text: &str, start: usize) -> Result<(String, Vec<usize>), Failure> {
        let chars: Vec<char> = text.chars().collect();
        let inner = chars
            .get(1..chars.len().saturating_sub(1))
            .unwrap_or_default();
        let mut bytes = Vec::with_capacity(inner.len());
        let mut positions = Vec::with_capacity(inner.len());
        let mut i = 0;
        while let Some(&c) = inner.get(i) {
            let position = start + 1 + i;
            if c == '\n' {
                return Err(Failure::syntax(position, "newline in quoted string"));
            }
            if c != '\\' {
                let mut buffer = [0; 4];
                let encoded = c.encode_utf8(&mut buffer).as_bytes();
                bytes.extend_from_slice(encoded);
                positions.extend(std::iter::repeat_n(position, encoded.len()));
                i += 1;
                continue;
            }
            let invalid = |length: usize| {
                let sequence: String = inner[i..(i + length).min(inner.len())].iter().collect();
                Failure::syntax(
                    position,
                    format!("invalid escape sequence {sequence:?} in quoted string"),
                )
            };
            let escape = inner.get(i + 1).copied().ok_or_else(|| invalid(1))?;
            let simple = match escape {
                'a' => Some(0x07),
                'b' => Some(0x08),
                'f' => Some(0x0c),
                'n' => Some(b'\n'),
                'r' => Some(b'\r'),
                't' => Some(b'\t'),
                'v' => Some(0x0b),
                '\\' => Some(b'\\'),
                '"' => Some(b'"'),
                _ => None,
            };
            if let Some(byte) = simple {
                bytes.push(byte);
                positions.push(position);
                i += 2;
                continue;
            }
            let digits = |count: usize, radix: u32| -> Option<u32> {
                let digits = inner.get(i + 2..i + 2 + count)?;
                digits
                    .iter()
                    .try_fold(0u32, |value, c| Some(value * radix + c.to_digit(radix)?))
            };
            match escape {
                'x' => {
                    let byte = digits(2, 16)
                        .and_then(|value| u8::try_from(value).ok())
                        .ok_or_else(|| invalid(4))?;
                    bytes.push(byte);
                    positions.push(position);
                    i += 4;
                }
                'u' | 'U' => {
                    let count = if escape == 'u' { 4 } else { 8 };
                    let c = digits(count, 16)
                        .and_then(char::from_u32)
                        .ok_or_else(|| invalid(count + 2))?;
                    let mut buffer = [0; 4];
                    let encoded = c.encode_utf8(&mut buffer).as_bytes();
                    bytes.extend_from_slice(encoded);
                    positions.extend(std::iter::repeat_n(position, encoded.len()));
                    i += count + 2;
                }
                '0'..='7' => {
                    let value = inner
                        .get(i + 1..i + 4)
                        .and_then(|digits| {
                            digits
                                .iter()
                                .try_fold(0u32, |value, c| Some(value * 8 + c.to_digit(8)?))
                        })
                        .and_then(|value| u8::try_from(value).ok())
                        .ok_or_else(|| invalid(4))?;
                    bytes.push(value);
                    positions.push(position);
                    i += 4;
                }
                _ => return Err(invalid(2)),
            }
        }
        let value = String::from_utf8(bytes)
            .map_err(|_| Failure::syntax(start, "quoted string is not valid UTF-8"))?;
        Ok((value, positions))
    }
}

/// Go's regexp (RE2) syntax, translated for the `regex` crate so that a pattern means what it means in Alertmanager.
mod go_regex {
    use std::fmt::Write as _;

    use regex::Regex;

    /// What is wrong with a regex, and the byte offset in it.
    pub(super) struct Error {
        pub message: String,
        pub offset: usize,
    }

    /// Compiles `source` anchored at both ends, as Alertmanager does (`^(?:SOURCE)$`).
    pub(super) fn compile(source: &str) -> Result<Regex, Error> {
        let translated = Translator::new(source).run()?;
        let wrapped = format!("^(?:{})$", translated.pattern);
        // Errors are reported for the pattern alone, so their offsets are the user's. Go compiles the wrapped
        // pattern, where `a)|(b` happens to be valid, so only what the wrapped pattern rejects too is an error.
        if let Some((message, offset)) = syntax_error(&translated.pattern)
            && syntax_error(&wrapped).is_some()
        {
            return Err(Error {
                message,
                offset: translated.map.get(offset).copied().unwrap_or(source.len()),
            });
        }
        regex::RegexBuilder::new(&wrapped)
            .build()
            .map_err(|error| Error {
                message: error
                    .to_string()
                    .lines()
                    .map(str::trim)
                    .filter(|line| !line.is_empty())
                    .collect::<Vec<_>>()
                    .join(" "),
                offset: 0,
            })
    }

    /// What the `regex` crate's parser rejects in `pattern`, and the byte offset.
    fn syntax_error(pattern: &str) -> Option<(String, usize)> {
        let error = regex_syntax::ParserBuilder::new()
            .build()
            .parse(pattern)
            .err()?;
        Some(match &error {
            regex_syntax::Error::Parse(error) => {
                (error.kind().to_string(), error.span().start.offset)
            }
            regex_syntax::Error::Translate(error) => {
                (error.kind().to_string(), error.span().start.offset)
            }
            other => (other.to_string(), 0),
        })
    }

    struct Translated {
        pattern: String,
        /// The source byte offset of each byte of `pattern`.
        map: Vec<usize>,
    }

    /// Go's POSIX class names (`[[:alpha:]]`).
    const POSIX_CLASSES: [&str; 14] = [
        "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
        "space", "upper", "word", "xdigit",
    ];

    /// Go's largest repetition count.
    const MAX_REPEAT: u32 = 1000;

    struct Translator<'a> {
        source: &'a str,
        chars: Vec<(usize, char)>,
        i: usize,
        out: Translated,
    }

    impl<'a> Translator<'a> {
        fn new(source: &'a str) -> Self {
            Self {
                source,
                chars: source.char_indices().collect(),
                i: 0,
                out: Translated {
                    pattern: String::with_capacity(source.len() + 8),
                    map: Vec::with_capacity(source.len() + 8),
                },
            }
        }

        fn peek(&self, ahead: usize) -> Option<char> {
            self.chars.get(self.i + ahead).map(|&(_, c)| c)
        }

        /// The source byte offset of the character `ahead` of the current one.
        fn offset(&self, ahead: usize) -> usize {
            self.chars
                .get(self.i + ahead)
                .map_or(self.source.len(), |&(offset, _)| offset)
        }

        fn emit(&mut self, text: &str, offset: usize) {
            self.out.pattern.push_str(text);
            self.out.map.extend(std::iter::repeat_n(offset, text.len()));
        }

        fn error(&self, ahead: usize, message: impl Into<String>) -> Error {
            Error {
                message: message.into(),
                offset: self.offset(ahead),
            }
        }

        fn run(mut self) -> Result<Translated, Error> {
            let mut after_repeat = false;
            while let Some(c) = self.peek(0) {
                let offset = self.offset(0);
                let mut repeat = false;
                match c {
                    '\\' => self.escape()?,
                    '[' => self.class()?,
                    '(' => self.group()?,
                    '*' | '+' | '?' => {
                        if after_repeat {
                            return Err(self.error(0, "invalid nested repetition operator"));
                        }
                        self.emit(c.encode_utf8(&mut [0; 4]), offset);
                        self.i += 1;
                        self.lazy();
                        repeat = true;
                    }
                    '{' => match self.counted_repeat() {
                        Some((length, min, max)) => {
                            if after_repeat {
                                return Err(self.error(0, "invalid nested repetition operator"));
                            }
                            if min > MAX_REPEAT
                                || max.is_some_and(|max| max > MAX_REPEAT || max < min)
                            {
                                return Err(self.error(0, "invalid repeat count"));
                            }
                            let text: String = self.chars[self.i..self.i + length]
                                .iter()
                                .map(|&(_, c)| c)
                                .collect();
                            self.emit(&text, offset);
                            self.i += length;
                            self.lazy();
                            repeat = true;
                        }
                        // Go reads a `{` that starts no repetition as a literal.
                        None => {
                            self.emit("\\{", offset);
                            self.i += 1;
                        }
                    },
                    _ => {
                        self.emit(c.encode_utf8(&mut [0; 4]), offset);
                        self.i += 1;
                    }
                }
                after_repeat = repeat;
            }
            Ok(self.out)
        }

        /// A `?` right after a repetition makes it lazy.
        fn lazy(&mut self) {
            if self.peek(0) == Some('?') {
                let offset = self.offset(0);
                self.emit("?", offset);
                self.i += 1;
            }
        }

        /// `{n}`, `{n,}` or `{n,m}` at the current position, as Go reads them (no leading zeros, no `{,m}`): its
        /// length in characters, min and max (`None` for no limit).
        fn counted_repeat(&self) -> Option<(usize, u32, Option<u32>)> {
            let mut length = 1;
            let number = |length: &mut usize| -> Option<u32> {
                let start = *length;
                while self.peek(*length).is_some_and(|c| c.is_ascii_digit()) {
                    *length += 1;
                }
                let digits: String = (start..*length).filter_map(|k| self.peek(k)).collect();
                if digits.is_empty() || (digits.len() > 1 && digits.starts_with('0')) {
                    return None;
                }
                Some(digits.parse::<u32>().unwrap_or(u32::MAX))
            };
            let min = number(&mut length)?;
            let max = match self.peek(length)? {
                ',' => {
                    length += 1;
                    if self.peek(length)? == '}' {
                        None
                    } else {
                        Some(number(&mut length)?)
                    }
                }
                _ => Some(min),
            };
            (self.peek(length)? == '}').then_some((length + 1, min, max))
        }

        /// `(`, with Go's flags checked: Go knows only `i`, `m`, `s` and `U`.
        fn group(&mut self) -> Result<(), Error> {
            let offset = self.offset(0);
            self.emit("(", offset);
            self.i += 1;
            if self.peek(0) != Some('?') {
                return Ok(());
            }
            if !matches!(self.peek(1), Some('P' | '<')) {
                let mut ahead = 1;
                while let Some(c) = self
                    .peek(ahead)
                    .filter(|c| c.is_ascii_alphabetic() || *c == '-')
                {
                    if matches!(c, 'x' | 'u' | 'R') {
                        return Err(self.error(ahead, format!("unsupported flag {c:?}")));
                    }
                    ahead += 1;
                }
            }
            let offset = self.offset(0);
            self.emit("?", offset);
            self.i += 1;
            Ok(())
        }

        /// A backslash outside a character class.
        fn escape(&mut self) -> Result<(), Error> {
            let offset = self.offset(0);
            match self.peek(1) {
                None => Err(self.error(0, "trailing backslash at end of regex")),
                Some(c @ ('A' | 'z')) => {
                    self.emit(&format!("\\{c}"), offset);
                    self.i += 2;
                    Ok(())
                }
                // Go's word boundaries are ASCII-only.
                Some('b') => {
                    self.emit("(?-u:\\b)", offset);
                    self.i += 2;
                    Ok(())
                }
                Some('B') => {
                    self.emit("(?-u:\\B)", offset);
                    self.i += 2;
                    Ok(())
                }
                Some('Q') => {
                    self.i += 2;
                    while self.peek(0).is_some() {
                        if self.peek(0) == Some('\\') && self.peek(1) == Some('E') {
                            self.i += 2;
                            break;
                        }
                        let (offset, c) = (self.offset(0), self.peek(0).unwrap_or_default());
                        self.emit(&literal(c), offset);
                        self.i += 1;
                    }
                    Ok(())
                }
                Some('p' | 'P') => self.unicode_class(),
                Some(c @ ('d' | 'D' | 's' | 'S' | 'w' | 'W')) => {
                    let (set, negated) = perl_class(c);
                    let class = if negated {
                        format!("[^{set}]")
                    } else {
                        format!("[{set}]")
                    };
                    self.emit(&class, offset);
                    self.i += 2;
                    Ok(())
                }
                Some(_) => {
                    let c = self.escaped_char()?;
                    self.emit(&literal(c), offset);
                    Ok(())
                }
            }
        }

        /// `\pN`, `\p{Greek}`, `\PN`, `\p{^Greek}`, in or out of a class.
        fn unicode_class(&mut self) -> Result<(), Error> {
            let offset = self.offset(0);
            let mut negated = self.peek(1) == Some('P');
            let (name, length) = match self.peek(2) {
                Some('{') => {
                    let mut ahead = 3;
                    let mut name = String::new();
                    loop {
                        match self.peek(ahead) {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err(self.error(0, "missing closing } in Unicode class")),
                        }
                        ahead += 1;
                    }
                    (name, ahead + 1)
                }
                Some(c) => (c.to_string(), 3),
                None => return Err(self.error(0, "missing Unicode class name")),
            };
            let name = match name.strip_prefix('^') {
                Some(name) => {
                    negated = !negated;
                    name.to_owned()
                }
                None => name,
            };
            let letter = if negated { 'P' } else { 'p' };
            self.emit(&format!("\\{letter}{{{name}}}"), offset);
            self.i += length;
            Ok(())
        }

        /// Go's single-character escapes (the backslash is at the current position): punctuation, octal, hex and
        /// C escapes.
        fn escaped_char(&mut self) -> Result<char, Error> {
            let invalid = |this: &Self, length: usize| {
                let sequence: String = (0..length).filter_map(|k| this.peek(k)).collect();
                this.error(0, format!("invalid escape sequence {sequence:?}"))
            };
            let Some(c) = self.peek(1) else {
                return Err(self.error(0, "trailing backslash at end of regex"));
            };
            let (value, length) = match c {
                c if c.is_ascii() && !c.is_ascii_alphanumeric() => (c as u32, 2),
                '1'..='7' if !self.peek(2).is_some_and(|c| c.is_digit(8)) => {
                    return Err(self.error(0, "backreferences are not supported"));
                }
                '0'..='7' => {
                    let mut value = 0;
                    let mut length = 1;
                    while length < 4 {
                        match self.peek(length).and_then(|c| c.to_digit(8)) {
                            Some(digit) => value = value * 8 + digit,
                            None => break,
                        }
                        length += 1;
                    }
                    (value, length)
                }
                'x' if self.peek(2) == Some('{') => {
                    let mut value: u32 = 0;
                    let mut length = 3;
                    loop {
                        match self.peek(length) {
                            Some('}') if length > 3 => break,
                            Some(c) => match c.to_digit(16) {
                                Some(digit) if value <= 0x10FFFF => value = value * 16 + digit,
                                _ => return Err(invalid(self, length + 1)),
                            },
                            None => return Err(invalid(self, length)),
                        }
                        length += 1;
                    }
                    (value, length + 1)
                }
                'x' => match (
                    self.peek(2).and_then(|c| c.to_digit(16)),
                    self.peek(3).and_then(|c| c.to_digit(16)),
                ) {
                    (Some(high), Some(low)) => (high * 16 + low, 4),
                    _ => return Err(invalid(self, 4)),
                },
                'a' => (0x07, 2),
                'f' => (0x0c, 2),
                'n' => (0x0a, 2),
                'r' => (0x0d, 2),
                't' => (0x09, 2),
                'v' => (0x0b, 2),
                _ => return Err(invalid(self, 2)),
            };
            let c = char::from_u32(value).ok_or_else(|| invalid(self, length))?;
            self.i += length;
            Ok(c)
        }

        /// A character class `[...]`, read as Go reads it: `]` first is a literal, `[` inside is a literal unless it
        /// starts `[:name:]`, and `&&`, `--`, `~~` are literals.
        fn class(&mut self) -> Result<(), Error> {
            let start = self.i;
            let offset = self.offset(0);
            self.emit("[", offset);
            self.i += 1;
            if self.peek(0) == Some('^') {
                let offset = self.offset(0);
                self.emit("^", offset);
                self.i += 1;
            }
            let mut first = true;
            loop {
                let offset = self.offset(0);
                let Some(c) = self.peek(0) else {
                    self.i = start;
                    return Err(self.error(0, "missing closing ]"));
                };
                if c == ']' && !first {
                    self.emit("]", offset);
                    self.i += 1;
                    return Ok(());
                }
                first = false;
                if c == '['
                    && self.peek(1) == Some(':')
                    && let Some(length) = self.posix_class()?
                {
                    let text: String = self.chars[self.i..self.i + length]
                        .iter()
                        .map(|&(_, c)| c)
                        .collect();
                    self.emit(&text, offset);
                    self.i += length;
                    continue;
                }
                if c == '\\' {
                    match self.peek(1) {
                        Some('p' | 'P') => {
                            self.unicode_class()?;
                            continue;
                        }
                        Some(c @ ('d' | 'D' | 's' | 'S' | 'w' | 'W')) => {
                            let (set, negated) = perl_class(c);
                            let item = if negated {
                                format!("[^{set}]")
                            } else {
                                set.to_owned()
                            };
                            self.emit(&item, offset);
                            self.i += 2;
                            continue;
                        }
                        _ => {}
                    }
                }
                let low = self.class_char()?;
                if self.peek(0) == Some('-') && self.peek(1).is_some_and(|c| c != ']') {
                    self.i += 1;
                    let high = self.class_char()?;
                    if high < low {
                        return Err(Error {
                            message: "invalid character class range".to_owned(),
                            offset,
                        });
                    }
                    let range = format!("{}-{}", class_literal(low), class_literal(high));
                    self.emit(&range, offset);
                } else {
                    self.emit(&class_literal(low), offset);
                }
            }
        }

        /// The length of `[:name:]` or `[:^name:]` at the current position, `None` if there is no `:]` (then `[` is
        /// a literal); an unknown name is an error.
        fn posix_class(&self) -> Result<Option<usize>, Error> {
            let mut ahead = 2;
            let mut name = String::new();
            loop {
                match (self.peek(ahead), self.peek(ahead + 1)) {
                    (Some(':'), Some(']')) => break,
                    (Some(c), _) => name.push(c),
                    (None, _) => return Ok(None),
                }
                ahead += 1;
            }
            let bare = name.strip_prefix('^').unwrap_or(&name);
            if !POSIX_CLASSES.contains(&bare) {
                return Err(self.error(0, format!("invalid character class [:{name}:]")));
            }
            Ok(Some(ahead + 2))
        }

        /// One character in a class, escaped or not.
        fn class_char(&mut self) -> Result<char, Error> {
            match self.peek(0) {
                Some('\\') => self.escaped_char(),
                Some(c) => {
                    self.i += 1;
                    Ok(c)
                }
                None => Err(self.error(0, "missing closing ]")),
            }
        }
    }

    /// The ASCII set of Go's Perl class `\c`, and whether it is negated.
    fn perl_class(c: char) -> (&'static str, bool) {
        match c {
            'd' => ("0-9", false),
            'D' => ("0-9", true),
            's' => ("\\t\\n\\x0C\\r\\x20", false),
            'S' => ("\\t\\n\\x0C\\r\\x20", true),
            'w' => ("0-9A-Za-z_", false),
            _ => ("0-9A-Za-z_", true),
        }
    }

    /// `c` as a literal outside a class.
    fn literal(c: char) -> String {
        if c.is_control() || (c.is_whitespace() && c != ' ') {
            let mut out = String::new();
            let _ = write!(out, "\\x{{{:X}}}", c as u32);
            out
        } else {
            regex_syntax::escape(c.encode_utf8(&mut [0; 4]))
        }
    }

    /// `c` as a literal inside a class.
    fn class_literal(c: char) -> String {
        if c.is_control() || c.is_whitespace() {
            format!("\\x{{{:X}}}", c as u32)
        } else if "\\[]-^&~".contains(c) {
            format!("\\{c}")
        } else {
            c.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::alert::test_labels as labels;
    use MatchType::{Equal, NotEqual, NotRegex, Regex};

    /// Expected matchers as (name, type, value).
    type Expected = &'static [(&'static str, MatchType, &'static str)];
    /// Label pairs.
    type Pairs = &'static [(&'static str, &'static str)];

    fn m(name: &str, kind: MatchType, value: &str) -> Matcher {
        Matcher::new(name, kind, value).unwrap()
    }

    #[test]
    fn parses_valid_inputs() {
        let cases: &[(&str, Expected)] = &[
            ("foo=\"bar\"", &[("foo", Equal, "bar")]),
            ("foo=bar", &[("foo", Equal, "bar")]),
            ("  foo  =  \"bar\"  ", &[("foo", Equal, "bar")]),
            ("foo!=\"bar\"", &[("foo", NotEqual, "bar")]),
            ("foo=~\"a|b\"", &[("foo", Regex, "a|b")]),
            ("foo!~\"a|b\"", &[("foo", NotRegex, "a|b")]),
            ("foo=~a|b", &[("foo", Regex, "a|b")]),
            (
                "{foo=\"bar\",baz!=\"qux\"}",
                &[("foo", Equal, "bar"), ("baz", NotEqual, "qux")],
            ),
            (
                "{ foo = \"bar\" , baz !~ \"q.*\" , }",
                &[("foo", Equal, "bar"), ("baz", NotRegex, "q.*")],
            ),
            ("foo=\"bar\",", &[("foo", Equal, "bar")]),
            (
                "foo=bar, baz=qux",
                &[("foo", Equal, "bar"), ("baz", Equal, "qux")],
            ),
            ("{}", &[]),
            ("", &[]),
            ("   ", &[]),
            (
                "severity=~\"warning|critical\"",
                &[("severity", Regex, "warning|critical")],
            ),
            ("instance=~\".+:9100\"", &[("instance", Regex, ".+:9100")]),
            ("foo=\"a,b\"", &[("foo", Equal, "a,b")]),
            ("foo=\"a=b\"", &[("foo", Equal, "a=b")]),
            ("foo=\"\"", &[("foo", Equal, "")]),
            ("foo:bar_1=\"x\"", &[("foo:bar_1", Equal, "x")]),
            // Escapes of the classic syntax: \" \\ \n; any other backslash is literal.
            ("foo=\"bar\\\"baz\"", &[("foo", Equal, "bar\"baz")]),
            ("foo=\"a\\\\b\"", &[("foo", Equal, "a\\b")]),
            ("foo=\"a\\nb\"", &[("foo", Equal, "a\nb")]),
            ("foo=~\"\\d+\"", &[("foo", Regex, "\\d+")]),
            (
                "foo=~\"host\\.example\\.com\"",
                &[("foo", Regex, "host\\.example\\.com")],
            ),
            // Alertmanager's default mode reads `\t` classically (literal) where both parsers accept the input.
            ("foo=\"a\\tb\"", &[("foo", Equal, "a\\tb")]),
            (
                "{foo=\"\\xf0\\x9f\\x99\\x82\"}",
                &[("foo", Equal, "\\xf0\\x9f\\x99\\x82")],
            ),
            // Classic quirks: unquoted values run to the end of the piece, braces are trimmed independently.
            ("foo=", &[("foo", Equal, "")]),
            ("foo=bar baz", &[("foo", Equal, "bar baz")]),
            ("foo=a=b", &[("foo", Equal, "a=b")]),
            ("foo='bar'", &[("foo", Equal, "'bar'")]),
            ("foo=!bar\\n", &[("foo", Equal, "!bar\n")]),
            ("foo=\"a\\qb\"", &[("foo", Equal, "a\\qb")]),
            ("{foo=\"bar\"", &[("foo", Equal, "bar")]),
            ("foo=\"bar\"}", &[("foo", Equal, "bar")]),
            ("{", &[]),
            ("{foo=~\"a{2}\"}", &[("foo", Regex, "a{2}")]),
            // UTF-8 names and values, read by the UTF-8 parser.
            (
                "\"service.name\"=\"api\"",
                &[("service.name", Equal, "api")],
            ),
            ("service.name=api", &[("service.name", Equal, "api")]),
            ("地区=\"东京\"", &[("地区", Equal, "东京")]),
            (
                "{地区=东京, 0foo!=\"x\"}",
                &[("地区", Equal, "东京"), ("0foo", NotEqual, "x")],
            ),
            ("foo🙂=bar", &[("foo🙂", Equal, "bar")]),
            (
                "{\"foo bar\"=\"a\\tb\",\"x\"=~\"\\u00e9|\\101\"}",
                &[("foo bar", Equal, "a\tb"), ("x", Regex, "é|A")],
            ),
            ("\"a\\\"b\"!=\"\"", &[("a\"b", NotEqual, "")]),
        ];
        for (input, expected) in cases {
            let expected: Vec<Matcher> = expected
                .iter()
                .map(|(name, kind, value)| m(name, *kind, value))
                .collect();
            assert_eq!(parse_matchers(input).unwrap(), expected, "input {input:?}");
        }
    }

    #[test]
    fn reports_invalid_inputs_with_positions() {
        let cases = [
            (
                "foo",
                "expected an operator (=, !=, =~, !~) after \"foo\" at position 3",
            ),
            (
                "foo bar",
                "expected an operator (=, !=, =~, !~) after \"foo\", found \"bar\" at position 4",
            ),
            ("foo=\"bar", "unterminated quoted string at position 4"),
            (
                "=\"bar\"",
                "expected a label name, found \"=\" at position 0",
            ),
            ("\"\"=\"bar\"", "label name must not be empty at position 0"),
            (
                "sev=~\"(\"",
                "invalid regex \"(\": unclosed group at position 6",
            ),
            (
                "foo=~\"\\d+(\"",
                "invalid regex \"\\\\d+(\": unclosed group at position 9",
            ),
            (
                "{a=\"b\", sev=~\"x|(y\"}",
                "invalid regex \"x|(y\": unclosed group at position 16",
            ),
            (
                "foo=~\"a**\"",
                "invalid regex \"a**\": invalid nested repetition operator at position 8",
            ),
            (
                "foo!bar",
                "expected \"=\" or \"~\" after \"!\" at position 4",
            ),
            (
                "{foo=\"bar\",,baz=\"x\"}",
                "expected a label name, found \",\" at position 11",
            ),
            (",", "expected a label name, found \",\" at position 0"),
            (
                "foo=\"bar\" baz=\"qux\"",
                "expected \",\" or \"}\" after a matcher, found \"baz\" at position 10",
            ),
            (
                "foo=\"bar\",baz",
                "expected an operator (=, !=, =~, !~) after \"baz\" at position 13",
            ),
            (
                "'foo'=\"bar\"",
                "unexpected ': quote names and values with double quotes at position 0",
            ),
            (
                "\"foo\\q\"=\"x\"",
                "invalid escape sequence \"\\\\q\" in quoted string at position 4",
            ),
            (
                "{foo=\"bar\"}}",
                "unexpected \"}\" after the closing \"}\" at position 11",
            ),
            (
                "\"foo\"=",
                "expected a label value after \"\\\"foo\\\"=\" at position 6",
            ),
            (
                "\"foo\"=\"bar\"}",
                "unexpected \"}\" without an opening \"{\" at position 11",
            ),
            ("{\"foo\"=\"bar\"", "missing closing \"}\" at position 12"),
            (
                "\"a\"=\"\\xff\"",
                "quoted string is not valid UTF-8 at position 4",
            ),
            ("\"a\nb\"=x", "newline in quoted string at position 2"),
        ];
        for (input, expected) in cases {
            let error = parse_matchers(input).unwrap_err();
            assert_eq!(error.to_string(), expected, "input {input:?}");
        }
    }

    #[test]
    fn parses_exactly_one_matcher() {
        assert_eq!(parse_matcher("foo=bar").unwrap(), m("foo", Equal, "bar"));
        assert_eq!(
            parse_matcher("\"service.name\"=~\"api|web\"").unwrap(),
            m("service.name", Regex, "api|web")
        );
        // As in Alertmanager, a filter is first read classically as a whole, so the comma is part of the value.
        assert_eq!(parse_matcher("a=b,c=d").unwrap(), m("a", Equal, "b,c=d"));
        assert_eq!(
            "foo!~x".parse::<Matcher>().unwrap(),
            m("foo", NotRegex, "x")
        );
        let cases = [
            (
                "",
                "expected a matcher such as name=\"value\", found none at position 0",
            ),
            (
                "{foo=\"bar\"}",
                "unexpected \"{\": a single matcher is written without braces at position 0",
            ),
            (
                "foo=bar}",
                "unexpected \"}\": a single matcher is written without braces at position 7",
            ),
            (
                "a=\"b\",c=\"d\"",
                "expected exactly one matcher, found 2 at position 6",
            ),
            (
                "foo",
                "expected an operator (=, !=, =~, !~) after \"foo\" at position 3",
            ),
            (
                "foo=~\"(\"",
                "invalid regex \"(\": unclosed group at position 6",
            ),
        ];
        for (input, expected) in cases {
            let error = parse_matcher(input).unwrap_err();
            assert_eq!(error.to_string(), expected, "input {input:?}");
        }
    }

    #[test]
    fn matches_label_values_like_alertmanager() {
        let cases: &[(&str, Pairs, bool)] = &[
            ("foo=\"bar\"", &[("foo", "bar")], true),
            ("foo=\"bar\"", &[("foo", "baz")], false),
            ("foo=\"bar\"", &[], false),
            // An absent label is the empty string.
            ("foo=\"\"", &[], true),
            ("foo=\"\"", &[("foo", "x")], false),
            ("foo!=\"\"", &[], false),
            ("foo!=\"\"", &[("foo", "x")], true),
            ("foo!=\"bar\"", &[], true),
            ("foo=~\".*\"", &[], true),
            ("foo=~\".+\"", &[], false),
            ("foo!~\".+\"", &[], true),
            // Regexes are anchored at both ends.
            ("foo=~\"b\"", &[("foo", "abc")], false),
            ("foo=~\"b.*\"", &[("foo", "ab")], false),
            ("foo=~\"b.*\"", &[("foo", "bc")], true),
            ("foo!~\"b\"", &[("foo", "abc")], true),
            ("foo=~\"a|b\"", &[("foo", "a")], true),
            ("foo=~\"a|b\"", &[("foo", "ab")], false),
            (
                "severity=~\"warning|critical\"",
                &[("severity", "critical")],
                true,
            ),
            (
                "severity=~\"warning|critical\"",
                &[("severity", "info")],
                false,
            ),
            ("instance=~\".+:9100\"", &[("instance", "host:9100")], true),
            (
                "instance=~\".+:9100\"",
                &[("instance", "host:91000")],
                false,
            ),
            ("foo=~\"(?i)ERROR\"", &[("foo", "error")], true),
            // Go's \d, \w, \s and \b are ASCII-only.
            ("foo=~\"\\d+\"", &[("foo", "123")], true),
            ("foo=~\"\\d+\"", &[("foo", "١٢٣")], false),
            ("foo=~\"\\w+\"", &[("foo", "东京")], false),
            ("foo=~\"\\W+\"", &[("foo", "东京")], true),
            ("foo=~\"a\\sb\"", &[("foo", "a\u{a0}b")], false),
            ("foo=~\"a\\sb\"", &[("foo", "a\tb")], true),
            ("foo=~\"[\\d.]+\"", &[("foo", "1.25")], true),
            ("foo=~\"[^\\s]+\"", &[("foo", "a b")], false),
            ("foo=~\".*\\bx\\b.*\"", &[("foo", "éxé")], true),
            ("foo=~\".*\\bx\\b.*\"", &[("foo", "a x b")], true),
            ("foo=~\".*\\bx\\b.*\"", &[("foo", "axb")], false),
            // Go's literal forms.
            ("foo=~\"a{,2}\"", &[("foo", "a{,2}")], true),
            ("foo=~\"a{,2}\"", &[("foo", "aa")], false),
            ("foo=~\"a{2}\"", &[("foo", "aa")], true),
            ("foo=~\"x{01}\"", &[("foo", "x{01}")], true),
            ("foo=~\"\\Qa.b\\E\"", &[("foo", "a.b")], true),
            ("foo=~\"\\Qa.b\\E\"", &[("foo", "axb")], false),
            ("foo=~\"\\x41\\101\\x{42}\"", &[("foo", "AAB")], true),
            ("foo=~\"[[:alpha:]]+\"", &[("foo", "abc")], true),
            ("foo=~\"[[:^digit:]]\"", &[("foo", "1")], false),
            ("foo=~\"[a&&b]+\"", &[("foo", "a&&b")], true),
            ("foo=~\"[[]\"", &[("foo", "[")], true),
            ("foo=~\"\\<x\\>\"", &[("foo", "<x>")], true),
            ("foo=~\"\\p{Greek}+\"", &[("foo", "αβ")], true),
            ("foo=~\"\\p{^Greek}+\"", &[("foo", "ab")], true),
            ("foo=~\"a*?b\"", &[("foo", "aab")], true),
            // As in Go, the value is spliced into ^(?:VALUE)$, so this is ^(?:a)|(?:b)$.
            ("foo=~\"a)|(?:b\"", &[("foo", "abc")], true),
            ("foo=~\"a)|(?:b\"", &[("foo", "cab")], true),
            ("foo=~\"a)|(?:b\"", &[("foo", "cba")], false),
            ("地区=\"东京\"", &[("地区", "东京")], true),
            (
                "\"service.name\"=~\"api-.*\"",
                &[("service.name", "api-7")],
                true,
            ),
        ];
        for (input, pairs, expected) in cases {
            let matcher = parse_matcher(input).unwrap();
            let labels = labels(pairs);
            assert_eq!(
                Matchers(vec![matcher]).matches(&labels),
                *expected,
                "{input} against {pairs:?}"
            );
        }
    }

    #[test]
    fn all_matchers_must_match() {
        let matchers: Matchers = "{team=\"db\", severity=~\"warning|critical\", env!=\"dev\"}"
            .parse()
            .unwrap();
        assert!(matchers.matches(&labels(&[("team", "db"), ("severity", "critical")])));
        assert!(!matchers.matches(&labels(&[("team", "db"), ("severity", "info")])));
        assert!(!matchers.matches(&labels(&[
            ("team", "db"),
            ("severity", "warning"),
            ("env", "dev")
        ])));
        assert!(Matchers::default().matches(&labels(&[("any", "thing")])));
        assert!(Matchers::default().matches(&crate::alert::Labels::new()));
    }

    #[test]
    fn invalid_regexes_name_the_problem_and_where() {
        let cases = [
            ("(", "invalid regex \"(\": unclosed group at position 0"),
            ("ab(", "invalid regex \"ab(\": unclosed group at position 2"),
            (
                "a**",
                "invalid regex \"a**\": invalid nested repetition operator at position 2",
            ),
            (
                "a{2}{3}",
                "invalid regex \"a{2}{3}\": invalid nested repetition operator at position 4",
            ),
            (
                "a{1001}",
                "invalid regex \"a{1001}\": invalid repeat count at position 1",
            ),
            (
                "a{3,2}",
                "invalid regex \"a{3,2}\": invalid repeat count at position 1",
            ),
            (
                "(?x)a",
                "invalid regex \"(?x)a\": unsupported flag 'x' at position 2",
            ),
            (
                "\\u0041",
                "invalid regex \"\\\\u0041\": invalid escape sequence \"\\\\u\" at position 0",
            ),
            (
                "\\C",
                "invalid regex \"\\\\C\": invalid escape sequence \"\\\\C\" at position 0",
            ),
            (
                "x\\1",
                "invalid regex \"x\\\\1\": backreferences are not supported at position 1",
            ),
            (
                "[[:foo:]]",
                "invalid regex \"[[:foo:]]\": invalid character class [:foo:] at position 1",
            ),
            (
                "a[bc",
                "invalid regex \"a[bc\": missing closing ] at position 1",
            ),
            (
                "[z-a]",
                "invalid regex \"[z-a]\": invalid character class range at position 1",
            ),
            (
                "a\\",
                "invalid regex \"a\\\\\": trailing backslash at end of regex at position 1",
            ),
            (
                "\\p{Foo}",
                "invalid regex \"\\\\p{Foo}\": Unicode property not found at position 0",
            ),
            (
                "*a",
                "invalid regex \"*a\": repetition operator missing expression at position 0",
            ),
            ("a)", "invalid regex \"a)\": unopened group at position 1"),
        ];
        for (regex, expected) in cases {
            let error = Matcher::new("foo", Regex, regex).unwrap_err();
            assert_eq!(error.to_string(), expected, "regex {regex:?}");
            let error = Matcher::new("foo", NotRegex, regex).unwrap_err();
            assert_eq!(error.to_string(), expected, "regex {regex:?}");
        }
        // Equality matchers take any value.
        assert!(Matcher::new("foo", Equal, "(").is_ok());
        assert_eq!(
            Matcher::new("", Equal, "x").unwrap_err().to_string(),
            "label name must not be empty"
        );
    }

    #[test]
    fn displays_in_alertmanager_form_and_round_trips() {
        let cases = [
            (m("foo", Equal, "bar"), "foo=\"bar\""),
            (m("foo", NotEqual, ""), "foo!=\"\""),
            (m("foo", Regex, "a|b"), "foo=~\"a|b\""),
            (m("foo", NotRegex, "\\d+"), "foo!~\"\\\\d+\""),
            (m("foo", Equal, "a\"b\\c\nd"), "foo=\"a\\\"b\\\\c\\nd\""),
            (m("foo", Equal, "tab\there"), "foo=\"tab\there\""),
            (m("foo", Equal, "a,b}"), "foo=\"a,b}\""),
            (m("foo", Equal, "\\t"), "foo=\"\\\\t\""),
            (m("service.name", Equal, "api"), "service.name=\"api\""),
            (m("地区", Equal, "东京"), "地区=\"东京\""),
            (m("0foo", Equal, "x"), "0foo=\"x\""),
            (m("foo bar", NotRegex, "a\tb"), "\"foo bar\"!~\"a\\tb\""),
            (m("a=b", Equal, "x\u{0}y\u{7f}"), "\"a=b\"=\"x\\x00y\\x7f\""),
            (
                m("x y", Equal, "\u{a0}😀\u{200b}é"),
                "\"x y\"=\"\\u00a0😀\\u200bé\"",
            ),
            (m("{a}", Equal, "\"q\""), "\"{a}\"=\"\\\"q\\\"\""),
        ];
        for (matcher, expected) in &cases {
            let text = matcher.to_string();
            assert_eq!(text, *expected);
            assert_eq!(&parse_matcher(&text).unwrap(), matcher, "{text}");
            assert_eq!(
                parse_matchers(&text).unwrap(),
                vec![matcher.clone()],
                "{text}"
            );
        }
        let all = Matchers(cases.iter().map(|(matcher, _)| matcher.clone()).collect());
        assert_eq!(parse_matchers(&all.to_string()).unwrap(), all.0);
        let classic = Matchers(vec![m("foo", Equal, "bar"), m("baz", Regex, "q.*")]);
        assert_eq!(classic.to_string(), "{foo=\"bar\",baz=~\"q.*\"}");
        assert_eq!(Matchers::default().to_string(), "{}");
    }

    #[test]
    fn serializes_in_the_api_shape() {
        let cases = [
            (Equal, false, true),
            (NotEqual, false, false),
            (Regex, true, true),
            (NotRegex, true, false),
        ];
        for (kind, is_regex, is_equal) in cases {
            let matcher = m("foo", kind, "b.r");
            assert_eq!(
                serde_json::to_value(&matcher).unwrap(),
                json!({"name": "foo", "value": "b.r", "isRegex": is_regex, "isEqual": is_equal})
            );
            assert_eq!(
                Matcher::from_api("foo", "b.r", is_regex, Some(is_equal)).unwrap(),
                matcher
            );
            let parsed: Matcher = serde_json::from_value(
                json!({"name": "foo", "value": "b.r", "isRegex": is_regex, "isEqual": is_equal}),
            )
            .unwrap();
            assert_eq!(parsed, matcher);
        }
        assert_eq!(
            Matcher::from_api("foo", "bar", false, None).unwrap(),
            m("foo", Equal, "bar")
        );
        assert_eq!(
            Matcher::from_api("foo", "ba.", true, None).unwrap(),
            m("foo", Regex, "ba.")
        );
        let parsed: Matcher =
            serde_json::from_value(json!({"name": "foo", "value": "x", "isRegex": true})).unwrap();
        assert_eq!(parsed, m("foo", Regex, "x"));
        let error = serde_json::from_value::<Matcher>(
            json!({"name": "foo", "value": "(", "isRegex": true}),
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("invalid regex \"(\": unclosed group"),
            "{error}"
        );
        assert!(serde_json::from_value::<Matcher>(json!({"name": "foo", "value": "x"})).is_err());
        assert_eq!(
            Matcher::from_api("", "x", false, None)
                .unwrap_err()
                .to_string(),
            "label name must not be empty"
        );
        let matchers = Matchers(vec![m("a", Equal, "1"), m("b", NotRegex, "2")]);
        assert_eq!(
            serde_json::to_value(&matchers).unwrap(),
            json!([
                {"name": "a", "value": "1", "isRegex": false, "isEqual": true},
                {"name": "b", "value": "2", "isRegex": true, "isEqual": false},
            ])
        );
    }

    #[test]
    fn builds_matchers_from_match_maps() {
        let equal = BTreeMap::from([
            ("team".to_owned(), "db".to_owned()),
            ("severity".to_owned(), "critical".to_owned()),
        ]);
        let re = BTreeMap::from([("service".to_owned(), "pg.*|mysql".to_owned())]);
        let matchers = from_match_maps(&equal, &re).unwrap();
        assert_eq!(
            matchers,
            [
                m("severity", Equal, "critical"),
                m("team", Equal, "db"),
                m("service", Regex, "pg.*|mysql"),
            ]
        );
        let matchers = Matchers(matchers);
        assert!(matchers.matches(&labels(&[
            ("team", "db"),
            ("severity", "critical"),
            ("service", "pg-main")
        ])));
        assert!(!matchers.matches(&labels(&[
            ("team", "db"),
            ("severity", "critical"),
            ("service", "xpg")
        ])));
        assert!(
            from_match_maps(&BTreeMap::new(), &BTreeMap::new())
                .unwrap()
                .is_empty()
        );

        let bad = BTreeMap::from([("team".to_owned(), "(".to_owned())]);
        assert_eq!(
            from_match_maps(&equal, &bad).unwrap_err().to_string(),
            "match_re \"team\": invalid regex \"(\": unclosed group at position 0"
        );
        // `match` values are not regexes.
        assert!(from_match_maps(&bad, &BTreeMap::new()).is_ok());
    }

    #[test]
    fn sorts_in_alertmanager_order() {
        let mut matchers = Matchers(vec![
            m("b", Equal, "1"),
            m("a", Regex, "2"),
            m("a", NotEqual, "2"),
            m("a", Equal, "3"),
        ]);
        matchers.sort();
        assert_eq!(matchers.to_string(), "{a!=\"2\",a=~\"2\",a=\"3\",b=\"1\"}");
    }
}
