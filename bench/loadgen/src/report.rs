//! The machine-readable last line of every run: `RESULT key=value key=value ...`, values without spaces, so scripts
//! can pick fields with `grep`/`sed` or split on spaces.

use std::fmt;

/// An ordered list of `key=value` pairs.
#[derive(Default)]
pub(crate) struct ResultLine {
    fields: Vec<(&'static str, String)>,
}

impl ResultLine {
    pub(crate) fn new(mode: &str) -> Self {
        Self::default().field("mode", mode)
    }

    /// Adds a field; spaces in the value are replaced so the line stays splittable.
    pub(crate) fn field(mut self, key: &'static str, value: impl fmt::Display) -> Self {
        self.fields
            .push((key, value.to_string().replace(char::is_whitespace, "_")));
        self
    }
}

impl fmt::Display for ResultLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RESULT")?;
        for (key, value) in &self.fields {
            write!(f, " {key}={value}")?;
        }
        Ok(())
    }
}

/// A rate per second with one decimal.
pub(crate) fn per_sec(count: u64, secs: f64) -> String {
    if secs > 0.0 {
        format!("{:.1}", count as f64 / secs)
    } else {
        "nan".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_splittable_line() {
        let line = ResultLine::new("load")
            .field("alerts", 10)
            .field("note", "a b");
        assert_eq!(line.to_string(), "RESULT mode=load alerts=10 note=a_b");
        assert_eq!(per_sec(30, 2.0), "15.0");
    }
}
