//! `authledger top`: a live view of every account's windows, the active leases, the burn
//! rate with each window's predicted run-out, and the latest denials, fallbacks and top-ups.
//!
//! The ledger is opened read-only and read once per poll (every [`POLL`]) into a
//! [`TopModel`]; the screen is redrawn only when the model changed, so an idle view costs one
//! small read transaction twice a second and nothing else. `--once` prints one frame as plain
//! text and exits.

pub mod model;
pub mod render;

use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;
use crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

use super::Ctx;
use crate::error::Error;
use crate::exit;
use crate::ledger::Ledger;
use crate::prices::PriceTable;
pub use model::TopModel;

/// How often the ledger is read: a change shows within a second.
pub const POLL: Duration = Duration::from_millis(500);

/// A live view of windows, leases, burn rate and the latest denials (q, Esc or Ctrl-C quits).
#[derive(Debug, Args)]
pub struct TopCmd {
    /// Print one frame as plain text and exit (for scripts; the width is COLUMNS, else the
    /// terminal's, else 80).
    #[arg(long)]
    once: bool,
}

/// Reads the ledger once into the model `top` shows.
pub fn gather(ledger: &Ledger, prices: &PriceTable) -> Result<TopModel, Error> {
    let now = ledger.now();
    let snap = ledger.live_snapshot(now - model::BURN_SPAN_MS, model::EVENTS, prices)?;
    Ok(TopModel::from_snapshot(&snap))
}

impl TopCmd {
    /// Runs the view until a quit key, or prints one frame with `--once`.
    pub fn run(&self, ctx: &Ctx) -> Result<i32, Error> {
        if ctx.out.json {
            ctx.out.usage_error(
                "top is a view for people; for JSON use `quota --json`, `lease list --json` \
                 or `audit --json`",
            );
            return Ok(exit::USAGE);
        }
        let terminal = std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
        if !self.once && !terminal {
            ctx.out.usage_error(
                "top needs a terminal; use `authledger top --once` for one frame as text",
            );
            return Ok(exit::USAGE);
        }
        let ledger = ctx.open_read_only()?;
        let prices = super::prices::in_force(ctx)?.table;
        if self.once {
            let width = u16::try_from(ctx.out.screen().width).unwrap_or(u16::MAX);
            let text = render::to_text(&gather(&ledger, &prices)?, width);
            for line in text.lines() {
                ctx.out.line(line)?;
            }
            return Ok(exit::OK);
        }
        live(&ledger, &prices)?;
        Ok(exit::OK)
    }
}

/// Puts the terminal back (raw mode off, main screen) when dropped: on quit, on error, and
/// while unwinding from a panic (ratatui's own panic hook does it before the message too).
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

fn io(what: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        what: what.to_string(),
        source,
    }
}

/// The loop: read, redraw if changed, wait for a key up to [`POLL`].
fn live(ledger: &Ledger, prices: &PriceTable) -> Result<(), Error> {
    let mut terminal = ratatui::try_init().map_err(io("starting the terminal view"))?;
    let _restore = Restore;
    let mut shown: Option<TopModel> = None;
    loop {
        let model = gather(ledger, prices)?;
        if shown.as_ref() != Some(&model) {
            terminal
                .draw(|f| render::render(&model, f, true))
                .map_err(io("drawing"))?;
            shown = Some(model);
        }
        // Blocks in the kernel until a key or the poll interval: no busy loop.
        if event::poll(POLL).map_err(io("reading keys"))? {
            match event::read().map_err(io("reading keys"))? {
                Event::Key(k) if k.kind == KeyEventKind::Press => match k.code {
                    KeyCode::Char('q') | KeyCode::Esc => return Ok(()),
                    KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                        return Ok(());
                    }
                    _ => {}
                },
                // A new size: draw again even though the model is the same.
                Event::Resize(..) => shown = None,
                _ => {}
            }
        }
    }
}
