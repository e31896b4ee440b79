//! Validation of `server.web_config_file`: loads the web configuration and reports each of its problems under
//! that key, naming the file and the key path inside it.

use std::path::Path;

use super::Checker;
use crate::config::web::{WebConfig, load_web_config};

impl Checker<'_> {
    pub(super) fn web_config(&mut self, file: &str) -> Option<WebConfig> {
        match load_web_config(Path::new(file)) {
            Ok(config) => Some(config),
            Err(issues) => {
                for issue in issues {
                    self.error("server.web_config_file", format!("{file:?}: {issue}"));
                }
                None
            }
        }
    }
}
