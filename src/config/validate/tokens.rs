//! Validation of `server`'s bearer tokens: `admin_tokens`, `ingest_tokens` and `read_tokens`, each with its
//! `*_file` twin (one token per line).

use super::Checker;
use crate::config::Secret;
use crate::config::secret::expand_env;

impl Checker<'_> {
    /// The tokens of `server.{key}` (each `${VAR}`-expanded) and of the file `server.{key}_file`. Messages name the
    /// key and the file, never a token.
    pub(super) fn tokens(
        &mut self,
        key: &str,
        listed: Option<&[String]>,
        file: Option<&str>,
    ) -> Vec<Secret> {
        let mut tokens = Vec::new();
        for (i, token) in listed.unwrap_or_default().iter().enumerate() {
            let path = format!("server.{key}[{i}]");
            match expand_env(token, self.env) {
                Ok(token) if token.trim().is_empty() => self.error(path, "must not be empty"),
                Ok(token) => tokens.push(Secret::new(token)),
                Err(message) => self.error(path, message),
            }
        }
        if let Some(file) = file {
            let path = format!("server.{key}_file");
            match std::fs::read_to_string(file) {
                Ok(content) => {
                    let before = tokens.len();
                    tokens.extend(
                        content
                            .lines()
                            .map(str::trim)
                            .filter(|line| !line.is_empty() && !line.starts_with('#'))
                            .map(Secret::new),
                    );
                    // An empty secret (a placeholder, a failed mount) must not leave the API open.
                    if tokens.len() == before {
                        self.error(
                            path,
                            format!(
                                "file {file:?} holds no token (one per line); unset {key}_file if no token is meant"
                            ),
                        );
                    }
                }
                Err(error) => self.error(path, format!("cannot read file {file:?}: {error}")),
            }
        }
        tokens
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{load_errors, load_str};

    #[test]
    fn token_files_give_one_token_a_line_and_must_give_one() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        std::fs::write(&tokens, "# operators\n\n  first  \nsecond\n").unwrap();
        for key in ["admin_tokens", "ingest_tokens", "read_tokens"] {
            let yaml = format!("server:\n  {key}_file: {}\n", tokens.display());
            let settings = load_str(&yaml, "h.yaml").unwrap().settings;
            let server = &settings.server;
            let read: Vec<&str> = match key {
                "admin_tokens" => &server.admin_tokens,
                "ingest_tokens" => &server.ingest_tokens,
                _ => &server.read_tokens,
            }
            .iter()
            .map(|token| token.expose())
            .collect();
            assert_eq!(read, ["first", "second"], "{key}");
            assert!(server.auth_enabled());
        }

        std::fs::write(&tokens, "# none yet\n\n").unwrap();
        let yaml = format!("server:\n  ingest_tokens_file: {}\n", tokens.display());
        let errors = load_errors(&yaml);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("herald.yaml: server.ingest_tokens_file: file ")
                && errors[0].contains("holds no token"),
            "{errors:?}"
        );
    }

    #[test]
    fn listed_tokens_are_expanded_and_must_not_be_empty() {
        let errors = load_errors(
            "server: {read_tokens: ['', 'ok'], ingest_tokens: ['${HERALD_UNSET_TOKEN_VAR}']}\n",
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains("server.read_tokens[0]: must not be empty")),
            "{errors:?}"
        );
        assert!(
            errors
                .iter()
                .any(|e| e.contains("server.ingest_tokens[0]")
                    && e.contains("HERALD_UNSET_TOKEN_VAR")),
            "{errors:?}"
        );
        let settings = load_str("server: {read_tokens: [r1]}\n", "h.yaml")
            .unwrap()
            .settings;
        assert_eq!(settings.server.read_tokens.len(), 1);
        assert!(settings.server.auth_enabled());
        let open = load_str("{}\n", "h.yaml").unwrap().settings;
        assert!(!open.server.auth_enabled());
    }
}
