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

    /// What human output may use: the width (`COLUMNS`, else the terminal's, else 80) and
    /// whether to colour (a terminal, and no `NO_COLOR`).
    pub fn screen(&self) -> Screen {
        let terminal = self.is_terminal();
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse::<usize>().ok())
            .filter(|w| *w >= 20)
            .or_else(|| {
                terminal
                    .then(|| comfy_table::Table::new().width())
                    .flatten()
                    .map(usize::from)
                    .filter(|w| *w >= 20)
            })
            .unwrap_or(WIDTH);
        let colour = terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Screen {
            width,
            terminal,
            colour,
        }
    }

    /// Prints a block of lines, through a pager (`$PAGER`, else `less -FRX`) when stdout is a
    /// terminal and the block is taller than it; straight to stdout otherwise (or when no
    /// pager starts).
    pub fn paged(&self, text: &str) -> Result<(), Error> {
        if self.is_terminal()
            && text.lines().count() + 1 > terminal_height()
            && page(text).is_some()
        {
            return Ok(());
        }
        self.line(text)
    }

    /// Reports an error on stderr: one line, or a JSON object with `--json`. Exact times in
    /// its text are shown as clock times for people (at `now`), kept exact in JSON.
    pub fn error(&self, err: &Error, now: crate::types::Millis) {
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
            eprintln!("authledger: {}", times_for_people(&message, now));
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

/// The terminal's height in rows (24 when it cannot be told).
fn terminal_height() -> usize {
    std::env::var("LINES")
        .ok()
        .and_then(|l| l.trim().parse::<usize>().ok())
        .or_else(|| {
            crossterm::terminal::size()
                .ok()
                .map(|(_, rows)| usize::from(rows))
        })
        .filter(|h| *h > 0)
        .unwrap_or(24)
}

/// Runs the pager with `text` on its stdin and waits for it; `None` if none could start.
fn page(text: &str) -> Option<()> {
    let pager = std::env::var("PAGER")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or_else(|| "less -FRX".into());
    let mut words = pager.split_whitespace();
    let program = words.next()?;
    let mut child = std::process::Command::new(program)
        .args(words)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    if let Some(mut stdin) = child.stdin.take() {
        // The user may quit the pager before reading it all: a closed pipe is fine.
        let _ = writeln!(stdin, "{text}");
    }
    let _ = child.wait();
    Some(())
}

/// What human output may use, from [`Output::screen`].
#[derive(Debug, Clone, Copy)]
pub struct Screen {
    /// Columns a line may take.
    pub width: usize,
    /// Whether stdout is a terminal (relative times, bars).
    pub terminal: bool,
    /// Whether to colour.
    pub colour: bool,
}

impl Screen {
    /// The screen tests and pipes get: 80 columns, no colour.
    pub const PLAIN: Screen = Screen {
        width: WIDTH,
        terminal: false,
        colour: false,
    };
}

/// A table whose columns carry a priority: when the rows would not fit the screen, the
/// least important columns (highest number; 0 is never dropped) go first, and what still
/// does not fit wraps within its cell. Lines end without trailing blanks.
#[derive(Debug, Default)]
pub struct Grid {
    columns: Vec<(String, u8)>,
    rows: Vec<Vec<comfy_table::Cell>>,
}

impl Grid {
    /// A table with these `(header, priority)` columns.
    pub fn new(columns: &[(&str, u8)]) -> Grid {
        Grid {
            columns: columns
                .iter()
                .map(|(h, p)| (h.to_uppercase(), *p))
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (one cell per column, in order).
    pub fn row<C: Into<comfy_table::Cell>>(&mut self, cells: impl IntoIterator<Item = C>) {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The columns kept on a screen `width` wide (in order).
    fn kept(&self, width: usize) -> Vec<usize> {
        let natural: Vec<usize> = (0..self.columns.len())
            .map(|i| {
                let cells = self.rows.iter().filter_map(|r| r.get(i));
                cells
                    .flat_map(|c| {
                        c.content()
                            .lines()
                            .map(|l| l.chars().count())
                            .collect::<Vec<_>>()
                    })
                    .chain([self.columns[i].0.chars().count()])
                    .max()
                    .unwrap_or(0)
                    + 2
            })
            .collect();
        // A wide column (a reason, a detail) may wrap down to this many columns before
        // anything is dropped for it.
        const WRAPS_TO: usize = 40;
        let natural: Vec<usize> = natural.into_iter().map(|w| w.min(WRAPS_TO)).collect();
        let mut kept: Vec<usize> = (0..self.columns.len()).collect();
        while kept.iter().map(|&i| natural[i]).sum::<usize>() > width {
            let drop = kept
                .iter()
                .enumerate()
                .filter(|(_, i)| self.columns[**i].1 > 0)
                .max_by_key(|(pos, i)| (self.columns[**i].1, *pos))
                .map(|(pos, _)| pos);
            match drop {
                Some(pos) => {
                    kept.remove(pos);
                }
                None => break,
            }
        }
        kept
    }

    /// The table as text for `screen`.
    pub fn render(&self, screen: &Screen) -> String {
        let kept = self.kept(screen.width);
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::NOTHING);
        t.set_header(kept.iter().map(|&i| self.columns[i].0.clone()));
        for r in &self.rows {
            t.add_row(kept.iter().map(|&i| {
                r.get(i)
                    .cloned()
                    .unwrap_or_else(|| comfy_table::Cell::new(""))
            }));
        }
        t.set_width(u16::try_from(screen.width).unwrap_or(u16::MAX));
        t.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
        if screen.colour {
            t.enforce_styling();
        } else {
            t.force_no_tty();
        }
        t.trim_fmt()
    }
}

/// A cell coloured `colour` (shown only when the screen colours).
pub fn coloured(text: impl ToString, colour: comfy_table::Color) -> comfy_table::Cell {
    comfy_table::Cell::new(text).fg(colour)
}

/// A percentage of a budget, yellow from 80 %, red from 95 %: `20`, `18.8`.
pub fn percent_cell(p: f64) -> comfy_table::Cell {
    let text = if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        format!("{p:.1}")
    };
    match p {
        p if p >= 95.0 => coloured(text, comfy_table::Color::Red),
        p if p >= 80.0 => coloured(text, comfy_table::Color::Yellow),
        _ => comfy_table::Cell::new(text),
    }
}

/// A time for people: relative within a week (`in 4h57m`, `3m ago`, `now`), else the local
/// date (`2030-01-01`). `--json` keeps exact times.
pub fn when(at: crate::types::Millis, now: crate::types::Millis) -> String {
    const WEEK: i64 = 7 * 86_400_000;
    let delta = at - now;
    if delta.abs() < 1_000 {
        "now".into()
    } else if delta.abs() >= WEEK {
        local(at, "%Y-%m-%d")
    } else if delta > 0 {
        format!("in {}", super::provider_says::span(delta))
    } else {
        format!("{} ago", super::provider_says::span(-delta))
    }
}

/// A time in the local time zone with a `chrono` format, e.g. `%H:%M`.
pub fn local(at: crate::types::Millis, format: &str) -> String {
    chrono::DateTime::from_timestamp_millis(at)
        .map(|t| t.with_timezone(&chrono::Local).format(format).to_string())
        .unwrap_or_else(|| at.to_string())
}

/// A clock time for people: `03:16` on the same local day as `now`, else `11-24 03:16`,
/// else (another year) `2030-01-01`.
pub fn clock_time(at: crate::types::Millis, now: crate::types::Millis) -> String {
    let day = |ms| local(ms, "%Y-%m-%d");
    if day(at) == day(now) {
        local(at, "%H:%M")
    } else if local(at, "%Y") == local(now, "%Y") {
        local(at, "%m-%d %H:%M")
    } else {
        day(at)
    }
}

/// `text` with every exact UTC time in it (`2026-11-23T12:00:00Z`, as the library writes
/// reasons such as "unhealthy until …" or "resets at …") shown as a [`clock_time`] for people;
/// `--json` keeps the text as it is.
pub fn times_for_people(text: &str, now: crate::types::Millis) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some((at, len, ms)) = first_utc_time(rest) {
        out.push_str(&rest[..at]);
        out.push_str(&clock_time(ms, now));
        rest = &rest[at + len..];
    }
    out.push_str(rest);
    out
}

/// Where the first `YYYY-MM-DDTHH:MM:SS[.fff]Z` in `text` starts, its length and its time.
fn first_utc_time(text: &str) -> Option<(usize, usize, crate::types::Millis)> {
    const SHAPE: &[u8] = b"dddd-dd-ddTdd:dd:dd";
    let bytes = text.as_bytes();
    let fits = |at: usize| {
        bytes.len() >= at + SHAPE.len()
            && SHAPE
                .iter()
                .zip(&bytes[at..])
                .all(|(want, got)| match want {
                    b'd' => got.is_ascii_digit(),
                    w => w == got,
                })
    };
    (0..bytes.len()).find_map(|at| {
        if !fits(at) {
            return None;
        }
        let mut end = at + SHAPE.len();
        if bytes.get(end) == Some(&b'.') {
            end += 1;
            while bytes.get(end).is_some_and(u8::is_ascii_digit) {
                end += 1;
            }
        }
        if bytes.get(end) != Some(&b'Z') {
            return None;
        }
        let ms = chrono::DateTime::parse_from_rfc3339(&text[at..=end])
            .ok()?
            .timestamp_millis();
        Some((at, end + 1 - at, ms))
    })
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
    use super::{Grid, Screen, clock_time, times_for_people, wrap};

    #[test]
    fn exact_utc_times_in_a_reason_become_clock_times() {
        // The clock times are local: compared with clock_time's own, whatever the zone.
        let now = 1_795_428_000_000; // 2026-11-23T10:00:00Z
        let at = |ms: i64| clock_time(ms, now);
        assert_eq!(
            times_for_people("unhealthy until 2026-11-23T12:30:00Z: rate limited", now),
            format!("unhealthy until {}: rate limited", at(now + 9_000_000))
        );
        assert_eq!(
            times_for_people(
                "resets at 2026-11-24T00:00:00.000Z; 2026-11-23T10:05:00Z",
                now
            ),
            format!("resets at {}; {}", at(now + 50_400_000), at(now + 300_000))
        );
        // Not a UTC time: left as it is.
        assert_eq!(
            times_for_people("2026-11-23 and 2026-11-23T10:00:00+01:00", now),
            "2026-11-23 and 2026-11-23T10:00:00+01:00"
        );
    }

    #[test]
    fn a_grid_drops_its_least_important_columns_first_and_wraps_the_rest() {
        let mut g = Grid::new(&[("name", 0), ("extra", 2), ("note", 1), ("why", 0)]);
        g.row([
            "alpha",
            "xxxxxxxxxx",
            "yyyyyyyy",
            "a reason that is long enough to wrap",
        ]);
        let wide = g.render(&Screen {
            width: 120,
            ..Screen::PLAIN
        });
        assert!(wide.contains("EXTRA") && wide.contains("NOTE"), "{wide}");
        let narrow = g.render(&Screen {
            width: 40,
            ..Screen::PLAIN
        });
        assert!(!narrow.contains("EXTRA"), "{narrow}");
        assert!(narrow.lines().all(|l| l.chars().count() <= 40), "{narrow}");
        assert!(
            narrow.contains("NAME") && narrow.contains("WHY"),
            "{narrow}"
        );
        assert!(narrow.lines().all(|l| l == l.trim_end()), "trailing blanks");
    }

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
