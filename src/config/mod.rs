//! Configuration: loading (embedded default -> file -> environment), secrets, validation into `Settings`, and the
//! error types that name the origin and key path of every problem.

mod duration;
mod email;
mod httpconfig;
mod load;
mod raw;
mod secret;
mod settings;
pub mod shown;
mod summary;
mod validate;
mod web;

use std::fmt;

pub use duration::{format_duration, parse_duration};
pub use email::*;
pub use httpconfig::*;
pub use load::{load, load_str, resolve_path};
pub use secret::Secret;
pub use settings::*;
pub use summary::summary;
pub use web::{
    ClientAuth, TlsServer, WebConfig, WebConfigIssue, load_web_config, parse_web_config,
};

/// A configuration that loaded and validated, with the warnings found on the way.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub settings: Settings,
    /// Legal but probably unintended settings, each `{origin}: {path}: {message}`.
    pub warnings: Vec<String>,
    /// Names of the `HERALD__*` environment variables that were applied on top of the file, sorted.
    pub env_overrides: Vec<String>,
}

/// One problem in the configuration: where the bad value came from, its key path, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// The file name as given, `<embedded default>`, or `environment HERALD__SECTION__KEY`.
    pub origin: String,
    /// The key path such as `route.routes[1].group_wait`; empty for problems with a whole file.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: {}: {}", self.origin, self.path, self.message)
        }
    }
}

/// Every problem found in one load, in a stable order; displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// A problem at a key path, before the loader knows which layer the value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Issue {
    pub path: String,
    pub message: String,
}

impl Issue {
    pub(crate) fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// An identifier as environment variable names and classic Prometheus label names are written:
/// `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Every error `load_str` reports for `yaml` (named `herald.yaml`), as displayed; for tests.
#[cfg(test)]
pub(crate) fn load_errors(yaml: &str) -> Vec<String> {
    match load_str(yaml, "herald.yaml") {
        Ok(_) => Vec::new(),
        Err(errors) => errors.errors.iter().map(ToString::to_string).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_display_origin_path_and_message_one_per_line() {
        let errors = ConfigErrors {
            errors: vec![
                ConfigError {
                    origin: "herald.yaml".into(),
                    path: "route.routes[1].group_wait".into(),
                    message: "invalid duration \"5x\"".into(),
                },
                ConfigError {
                    origin: "herald.yaml".into(),
                    path: String::new(),
                    message: "cannot read file".into(),
                },
            ],
        };
        assert_eq!(
            errors.to_string(),
            "herald.yaml: route.routes[1].group_wait: invalid duration \"5x\"\nherald.yaml: cannot read file"
        );
    }
}
