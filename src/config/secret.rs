//! Secrets in configuration: the redacted `Secret` type, `${ENV_VAR}` expansion, and `*_file` twins (`url` or
//! `url_file`, like Alertmanager's `api_url` / `api_url_file`).

use std::fmt;

use super::Issue;

/// A resolved secret (a URL with a password, a token). `Debug` and `Display` print `<redacted>`; only `expose`
/// gives the value, so it cannot reach a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value itself: use it, never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Looks up an environment variable by name (the process environment, or a fixed map in tests).
pub(crate) type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment as an `EnvLookup`.
pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Resolves a secret field and its `*_file` twin: `value` (at `path`, `${VAR}`-expanded) or the content of the file
/// named by `file` (at `{path}_file`, trailing newlines trimmed, not expanded). Both set is an error; neither set is
/// `Ok(None)`. Errors never contain the secret.
pub(crate) fn resolve_secret(
    value: Option<&str>,
    file: Option<&str>,
    path: &str,
    env: EnvLookup<'_>,
) -> Result<Option<Secret>, Issue> {
    let file_path = format!("{path}_file");
    match (value, file) {
        (Some(_), Some(_)) => Err(Issue::new(
            file_path,
            format!("cannot be set together with {path}; set only one"),
        )),
        (Some(value), None) => expand_env(value, env)
            .map(|v| Some(Secret(v)))
            .map_err(|message| Issue::new(path, message)),
        (None, Some(file)) => match std::fs::read_to_string(file) {
            Ok(content) => Ok(Some(Secret(
                content.trim_end_matches(['\n', '\r']).to_owned(),
            ))),
            Err(error) => Err(Issue::new(
                file_path,
                format!("cannot read file {file:?}: {error}"),
            )),
        },
        (None, None) => Ok(None),
    }
}

/// Replaces every `${NAME}` in `value` with the environment variable `NAME`; `$${` is a literal `${`, any other
/// `$` is kept. The error names the variable, never the value.
pub(crate) fn expand_env(value: &str, env: EnvLookup<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                return Err("unterminated \"${\" (write \"$${\" for a literal \"${\")".to_owned());
            };
            let name = &after[..end];
            if !super::is_identifier(name) {
                return Err(format!(
                    "invalid environment variable name {name:?} in \"${{...}}\""
                ));
            }
            match env(name) {
                Some(v) => out.push_str(&v),
                None => return Err(format!("environment variable {name} is not set")),
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "USER_NAME" => Some("herald".to_owned()),
            "PASSWORD" => Some("s3cr3t".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_variables_anywhere() {
        assert_eq!(
            expand_env("postgres://${USER_NAME}:${PASSWORD}@db/herald", &env).unwrap(),
            "postgres://herald:s3cr3t@db/herald"
        );
        assert_eq!(expand_env("${PASSWORD}", &env).unwrap(), "s3cr3t");
        assert_eq!(expand_env("a${EMPTY}b", &env).unwrap(), "ab");
        assert_eq!(expand_env("no variables", &env).unwrap(), "no variables");
        assert_eq!(
            expand_env("cost: $5 and $PASSWORD", &env).unwrap(),
            "cost: $5 and $PASSWORD"
        );
    }

    #[test]
    fn double_dollar_is_a_literal() {
        assert_eq!(expand_env("$${PASSWORD}", &env).unwrap(), "${PASSWORD}");
        assert_eq!(
            expand_env("x$${A}${USER_NAME}", &env).unwrap(),
            "x${A}herald"
        );
        assert_eq!(expand_env("$$", &env).unwrap(), "$$");
    }

    #[test]
    fn unset_variable_is_an_error_naming_it() {
        let issue = resolve_secret(Some("sqlite://${HERALD_DB_URL}"), None, "storage.url", &env)
            .unwrap_err();
        assert_eq!(
            issue.to_string(),
            "storage.url: environment variable HERALD_DB_URL is not set"
        );
        assert!(
            expand_env("${UNCLOSED", &env)
                .unwrap_err()
                .contains("unterminated")
        );
        assert!(
            expand_env("${1BAD}", &env)
                .unwrap_err()
                .contains("invalid environment variable name")
        );
    }

    #[test]
    fn both_set_is_an_error() {
        let issue =
            resolve_secret(Some("a"), Some("/nonexistent"), "storage.url", &env).unwrap_err();
        assert_eq!(issue.path, "storage.url_file");
        assert!(issue.message.contains("storage.url"), "{issue}");
    }

    #[test]
    fn neither_set_is_none() {
        assert_eq!(resolve_secret(None, None, "x.api_url", &env).unwrap(), None);
    }

    #[test]
    fn file_twin_is_read_and_trailing_newlines_trimmed() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"postgres://u:p@db/herald\n\n").unwrap();
        let path = file.path().to_str().unwrap().to_owned();
        let secret = resolve_secret(None, Some(&path), "storage.url", &env)
            .unwrap()
            .unwrap();
        assert_eq!(secret.expose(), "postgres://u:p@db/herald");
    }

    #[test]
    fn file_twin_content_is_not_expanded() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(b"${PASSWORD}\r\n").unwrap();
        let path = file.path().to_str().unwrap().to_owned();
        let secret = resolve_secret(None, Some(&path), "storage.url", &env)
            .unwrap()
            .unwrap();
        assert_eq!(secret.expose(), "${PASSWORD}");
    }

    #[test]
    fn unreadable_file_is_an_error_naming_the_file() {
        let issue = resolve_secret(
            None,
            Some("/nonexistent/herald-db-url"),
            "storage.url",
            &env,
        )
        .unwrap_err();
        assert_eq!(issue.path, "storage.url_file");
        assert!(
            issue.message.contains("\"/nonexistent/herald-db-url\""),
            "{issue}"
        );
    }

    #[test]
    fn debug_and_display_are_redacted() {
        let secret = Secret::new("postgres://u:hunter2@db");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(format!("{secret}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(secret.clone())), "Some(<redacted>)");
        assert_eq!(secret.expose(), "postgres://u:hunter2@db");
    }
}
