//! How results reach the user: human text and tables, or JSON on stdout with errors as JSON on
//! stderr.

use std::io::{IsTerminal, Write};

use serde::Serialize;

use super::json::{DenialJson, ErrorJson};
use crate::error::Error;
use crate::quota::QuotaError;

/// Where and how to print.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// Machine output.
    pub json: bool,
}

impl Output {
    /// Prints a value as JSON (one document on stdout).
    pub fn json<T: Serialize>(&self, value: &T) -> Result<(), Error> {
        let text = serde_json::to_string_pretty(value).map_err(|e| Error::Io {
            what: "cannot encode output".into(),
            source: std::io::Error::other(e),
        })?;
        self.line(&text)
    }

    /// Prints a line on stdout. A closed pipe (`| head`) is not an error worth reporting.
    pub fn line(&self, text: &str) -> Result<(), Error> {
        let mut out = std::io::stdout().lock();
        match writeln!(out, "{text}") {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::Io {
                what: "cannot write output".into(),
                source: e,
            }),
            _ => Ok(()),
        }
    }

    /// Whether stdout is a terminal (for bars and colours).
    pub fn is_terminal(&self) -> bool {
        !self.json && std::io::stdout().is_terminal()
    }

    /// Reports an error on stderr: one line, or a JSON object with `--json`.
    pub fn error(&self, err: &Error) {
        let message = err.to_string();
        if self.json {
            let denial = match err {
                Error::Quota(QuotaError::Denied(d)) => Some(DenialJson::from(d.as_ref())),
                _ => None,
            };
            eprintln!(
                "{}",
                error_line(&ErrorJson {
                    error: &message,
                    exit_code: err.exit_code(),
                    denial,
                })
            );
        } else {
            eprintln!("authledger: {message}");
        }
    }

    /// Reports a usage error (from argument parsing) the same way.
    pub fn usage_error(&self, message: &str) {
        self.failure(message, crate::exit::USAGE);
    }

    /// Reports a failure that is not an [`Error`] value, with the exit code it leads to.
    pub fn failure(&self, message: &str, exit_code: i32) {
        if self.json {
            eprintln!(
                "{}",
                error_line(&ErrorJson {
                    error: message,
                    exit_code,
                    denial: None,
                })
            );
        } else {
            eprintln!("authledger: {message}");
        }
    }
}

/// An error object as one line (it always encodes: plain strings and numbers).
fn error_line(e: &ErrorJson<'_>) -> String {
    serde_json::to_string(e).unwrap_or_else(|_| e.error.to_string())
}

/// A table with the house style.
pub fn table(header: &[&str]) -> comfy_table::Table {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING);
    t.set_header(header.iter().map(|h| h.to_uppercase()));
    t
}

/// A text bar for a percentage, e.g. `[#######-------------]`.
pub fn bar(percent: f64, width: usize) -> String {
    let filled = ((percent.clamp(0.0, 100.0) / 100.0) * width as f64).round() as usize;
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

/// The width human output fits in: an 80-column terminal.
pub const WIDTH: usize = 80;

/// Word-wraps `line` to `width` characters so prose fits a terminal: continuation lines keep
/// the line's own indent plus two spaces, so a wrapped list reads as one item. A word longer
/// than the width (a path) gets a line of its own rather than being cut. A line that fits is
/// left as it is (aligned columns keep their spacing), less trailing blanks.
pub fn wrap(line: &str, width: usize) -> Vec<String> {
    let line = line.trim_end();
    if line.chars().count() <= width {
        return vec![line.to_string()];
    }
    let body = line.trim_start();
    let indent = &line[..line.len() - body.len()];
    let next_indent = format!("{indent}  ");
    let mut lines = Vec::new();
    let mut current = indent.to_string();
    let mut empty = true;
    for word in body.split_whitespace() {
        let len = current.chars().count();
        if !empty && len + 1 + word.chars().count() > width {
            lines.push(std::mem::replace(&mut current, next_indent.clone()));
            empty = true;
        }
        if !empty {
            current.push(' ');
        }
        current.push_str(word);
        empty = false;
    }
    lines.push(current);
    lines
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wrap_keeps_lines_within_the_width_and_indents_continuations() {
        let lines = wrap("   one two three four five six", 14);
        assert_eq!(
            lines,
            ["   one two", "     three", "     four five", "     six"]
        );
        assert!(lines.iter().all(|l| l.chars().count() <= 14));
    }

    #[test]
    fn wrap_leaves_short_lines_and_long_words_whole() {
        assert_eq!(wrap("short  spaced   ", 80), ["short  spaced"]);
        assert_eq!(wrap("", 80), [""]);
        assert_eq!(
            wrap("at /a/very/long/path", 8),
            ["at", "  /a/very/long/path"]
        );
        assert_eq!(wrap("é é é", 3), ["é é", "  é"]);
    }
}
