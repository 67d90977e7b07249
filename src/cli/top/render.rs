//! Draws a [`TopModel`]: pure (model in, cells out), so the same code serves the live view,
//! `top --once` and the snapshot tests. Columns are dropped by priority until a table fits the
//! width: at 80 columns the least needed go, at 120 everything shows.

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, Widget};

use super::model::{RunOut, TopModel};
use crate::cli::output::when;
use crate::cli::provider_says::span;

/// One column: its title, how soon it is dropped when narrow (0: never; higher goes first),
/// whether figures are right-aligned, and whether it takes the width left over.
struct Col {
    title: &'static str,
    drop: u8,
    right: bool,
    flex: bool,
}

const fn col(title: &'static str, drop: u8, right: bool) -> Col {
    Col {
        title,
        drop,
        right,
        flex: false,
    }
}

/// The narrowest a flexible column may get before others are dropped.
const FLEX_MIN: usize = 16;

/// A table's rows as text, each cell with an optional colour.
type Rows = Vec<Vec<(String, Option<Color>)>>;

/// The columns kept for `width`, each with its width (a flexible one: 0, meaning the rest).
fn fit(cols: &[Col], rows: &Rows, width: usize) -> Vec<(usize, usize)> {
    let natural: Vec<usize> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| {
            rows.iter()
                .map(|r| r[i].0.chars().count())
                .chain([c.title.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut kept: Vec<usize> = (0..cols.len()).collect();
    loop {
        let need: usize = kept
            .iter()
            .map(|&i| if cols[i].flex { FLEX_MIN } else { natural[i] })
            .sum::<usize>()
            + kept.len().saturating_sub(1);
        if need <= width {
            break;
        }
        // The droppable column with the highest drop rank; among equals, the rightmost.
        let Some(pos) = kept
            .iter()
            .enumerate()
            .filter(|(_, i)| cols[**i].drop > 0)
            .max_by_key(|(p, i)| (cols[**i].drop, *p))
            .map(|(p, _)| p)
        else {
            break;
        };
        kept.remove(pos);
    }
    kept.into_iter()
        .map(|i| (i, if cols[i].flex { 0 } else { natural[i] }))
        .collect()
}

/// A ratatui table of `rows` under `cols`, fitted to `width`.
fn table(cols: &[Col], rows: &Rows, width: usize) -> Table<'static> {
    let kept = fit(cols, rows, width);
    // What is left for the flexible column; its text is cut there with an ellipsis.
    let fixed: usize = kept.iter().map(|&(_, w)| w).sum::<usize>() + kept.len().saturating_sub(1);
    let flex_width = width.saturating_sub(fixed).max(1);
    let cell = |text: &str, right: bool, colour: Option<Color>| {
        let line = Line::from(text.to_string());
        let line = if right { line.right_aligned() } else { line };
        let style = colour.map_or(Style::default(), |c| Style::default().fg(c));
        Cell::from(line).style(style)
    };
    let header = Row::new(
        kept.iter()
            .map(|&(i, _)| cell(cols[i].title, cols[i].right, None))
            .collect::<Vec<_>>(),
    )
    .style(Style::default().add_modifier(Modifier::BOLD));
    let body: Vec<Row> = rows
        .iter()
        .map(|r| {
            Row::new(
                kept.iter()
                    .map(|&(i, _)| {
                        let text = if cols[i].flex {
                            cut(&r[i].0, flex_width)
                        } else {
                            r[i].0.clone()
                        };
                        cell(&text, cols[i].right, r[i].1)
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    let widths: Vec<Constraint> = kept
        .iter()
        .map(|&(i, w)| {
            if cols[i].flex {
                Constraint::Fill(1)
            } else {
                Constraint::Length(u16::try_from(w).unwrap_or(u16::MAX))
            }
        })
        .collect();
    Table::new(body, widths).header(header).column_spacing(1)
}

/// `s` in at most `width` characters, `…` marking a cut.
fn cut(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut out: String = s.chars().take(width.saturating_sub(1)).collect();
    out.push('…');
    out
}

fn plain(s: impl Into<String>) -> (String, Option<Color>) {
    (s.into(), None)
}

fn percent(p: Option<f64>) -> (String, Option<Color>) {
    match p {
        None => plain("-"),
        Some(p) => {
            let colour = if p >= 100.0 {
                Some(Color::Red)
            } else if p >= 80.0 {
                Some(Color::Yellow)
            } else {
                None
            };
            (format!("{p:.0}%"), colour)
        }
    }
}

const ACCOUNT_COLS: [Col; 10] = [
    col("account", 0, false),
    col("window", 0, false),
    col("used", 0, true),
    col("reserved", 2, true),
    col("limit", 1, true),
    col("ledger", 0, true),
    col("provider", 1, true),
    col("burn/min", 1, true),
    col("resets", 3, true),
    col("runs out", 0, true),
];

fn account_rows(m: &TopModel) -> Rows {
    let mut rows = Vec::new();
    for a in &m.accounts {
        for (n, w) in a.windows.iter().enumerate() {
            let first = n == 0;
            rows.push(vec![
                plain(if first { a.label.as_str() } else { "" }),
                plain(w.name),
                plain(w.used.to_string()),
                plain(w.reserved.to_string()),
                plain(w.limit.map_or("-".into(), |l| l.to_string())),
                percent(w.percent),
                plain(
                    w.provider_percent
                        .map_or("-".into(), |p| format!("{p:.0}%")),
                ),
                plain(if first {
                    format!("{:.0}", a.burn_per_min)
                } else {
                    String::new()
                }),
                plain(w.resets_at.map_or("-".into(), |t| when(t, m.now))),
                match w.runs_out {
                    RunOut::Never => plain("-"),
                    RunOut::Now => ("used up".into(), Some(Color::Red)),
                    RunOut::ResetsFirst => plain("after reset"),
                    RunOut::At(t) => (when(t, m.now), Some(Color::Yellow)),
                },
            ]);
        }
    }
    rows
}

const LEASE_COLS: [Col; 6] = [
    col("agent", 0, false),
    col("account", 1, false),
    col("age", 0, true),
    col("used/allocated", 0, true),
    col("requests", 2, true),
    col("cost", 1, true),
];

fn lease_rows(m: &TopModel) -> Rows {
    m.leases
        .iter()
        .map(|l| {
            vec![
                plain(l.agent.as_str()),
                plain(l.account.as_str()),
                plain(span(l.age_ms)),
                plain(format!("{}/{}", l.used, l.allocated)),
                plain(l.requests.to_string()),
                plain(l.cost.as_str()),
            ]
        })
        .collect()
}

const EVENT_COLS: [Col; 5] = [
    col("when", 0, true),
    col("event", 0, false),
    col("account", 1, false),
    col("agent", 2, false),
    Col {
        title: "detail",
        drop: 0,
        right: false,
        flex: true,
    },
];

fn event_rows(m: &TopModel) -> Rows {
    m.events
        .iter()
        .map(|e| {
            let colour = match e.action.as_str() {
                "deny" => Some(Color::Red),
                "fallback" => Some(Color::Yellow),
                _ => Some(Color::Cyan),
            };
            vec![
                plain(when(e.at, m.now)),
                (e.action.clone(), colour),
                plain(e.account.as_str()),
                plain(e.agent.as_str()),
                plain(e.text.as_str()),
            ]
        })
        .collect()
}

/// The rows a section takes: its title line, then a header and its rows, or one line saying
/// it is empty.
fn section_height(rows: usize) -> u16 {
    u16::try_from(if rows == 0 { 2 } else { rows + 2 }).unwrap_or(u16::MAX)
}

/// The height that shows all of `model` (what `--once` prints).
pub fn height(model: &TopModel) -> u16 {
    let windows: usize = model.accounts.iter().map(|a| a.windows.len()).sum();
    1 + section_height(windows)
        + section_height(model.leases.len())
        + section_height(model.events.len())
}

/// Draws the model on a frame (the live view).
pub fn render(model: &TopModel, frame: &mut Frame<'_>, live: bool) {
    let area = frame.area();
    draw(model, area, frame.buffer_mut(), live);
}

/// Draws the model into `area` of `buf`; `live` adds the key help to the title line.
pub fn draw(model: &TopModel, area: Rect, buf: &mut Buffer, live: bool) {
    let width = usize::from(area.width);
    let accounts = account_rows(model);
    let leases = lease_rows(model);
    let events = event_rows(model);
    let [title, a, l, e] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(section_height(accounts.len())),
        Constraint::Length(section_height(leases.len())),
        Constraint::Min(0),
    ])
    .areas(area);
    let mut head = format!("authledger top  {}", crate::clock::format_ms(model.now));
    if live {
        head.push_str("  (q quits)");
    }
    Paragraph::new(Line::from(head).style(Style::default().add_modifier(Modifier::BOLD)))
        .render(title, buf);
    section(
        "windows: ledger beside provider; burn over 15 min",
        &ACCOUNT_COLS,
        &accounts,
        "no accounts",
        width,
        a,
        buf,
    );
    section(
        "active leases",
        &LEASE_COLS,
        &leases,
        "no active leases",
        width,
        l,
        buf,
    );
    section(
        "latest denials, fallbacks and top-ups",
        &EVENT_COLS,
        &events,
        "none yet",
        width,
        e,
        buf,
    );
}

fn section(
    title: &str,
    cols: &[Col],
    rows: &Rows,
    empty: &str,
    width: usize,
    area: Rect,
    buf: &mut Buffer,
) {
    let block = Block::new()
        .borders(Borders::TOP)
        .title(format!(" {title} "));
    let inner = block.inner(area);
    block.render(area, buf);
    if rows.is_empty() {
        Paragraph::new(format!("  {empty}")).render(inner, buf);
    } else {
        Widget::render(table(cols, rows, width), inner, buf);
    }
}

/// The model as plain text `width` columns wide, every line trimmed: `top --once`.
pub fn to_text(model: &TopModel, width: u16) -> String {
    let area = Rect::new(0, 0, width, height(model));
    let mut buf = Buffer::empty(area);
    draw(model, area, &mut buf, false);
    lines(&buf)
}

/// A buffer's text, one line per row, trailing blanks trimmed.
pub fn lines(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in area.top()..area.bottom() {
        let mut line = String::new();
        for x in area.left()..area.right() {
            line.push_str(buf[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
