//! Diagnostics: one located, actionable problem in a configuration.

use std::fmt;

/// One problem found in a configuration.
///
/// Displays as `FILE:LINE:COL: PATH: MESSAGE`; parts that are unknown are
/// left out (e.g. a rule added at runtime has no file or position).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// File (or other origin) the configuration came from.
    pub file: Option<String>,
    /// 1-based line.
    pub line: Option<usize>,
    /// 1-based column, counted in characters.
    pub column: Option<usize>,
    /// Key path such as `rules[2].outputs[0].port`; empty for the whole file.
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic with a key path and message but no location yet.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: None,
            line: None,
            column: None,
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let mut wrote_location = false;
        if let Some(file) = &self.file {
            f.write_str(file)?;
            wrote_location = true;
        }
        if let Some(line) = self.line {
            if wrote_location {
                f.write_str(":")?;
            }
            write!(f, "{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
            wrote_location = true;
        }
        if wrote_location {
            f.write_str(": ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// A configuration was rejected; holds every problem found.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", render(.diagnostics))]
pub struct ConfigError {
    pub diagnostics: Vec<Diagnostic>,
}

impl ConfigError {
    pub fn new(diagnostics: Vec<Diagnostic>) -> Self {
        ConfigError { diagnostics }
    }
}

impl From<Diagnostic> for ConfigError {
    fn from(d: Diagnostic) -> Self {
        ConfigError {
            diagnostics: vec![d],
        }
    }
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_full_and_partial() {
        let mut d = Diagnostic::new("rules[2].outputs[0].port", "port 0 is not allowed");
        assert_eq!(
            d.to_string(),
            "rules[2].outputs[0].port: port 0 is not allowed"
        );
        d.file = Some("a.json5".into());
        assert_eq!(
            d.to_string(),
            "a.json5: rules[2].outputs[0].port: port 0 is not allowed"
        );
        d.line = Some(3);
        d.column = Some(7);
        assert_eq!(
            d.to_string(),
            "a.json5:3:7: rules[2].outputs[0].port: port 0 is not allowed"
        );
        d.path.clear();
        assert_eq!(d.to_string(), "a.json5:3:7: port 0 is not allowed");
    }

    #[test]
    fn error_one_per_line() {
        let e = ConfigError::new(vec![Diagnostic::new("a", "x"), Diagnostic::new("b", "y")]);
        assert_eq!(e.to_string(), "a: x\nb: y");
    }
}
