//! What the wallet prints. Every command produces one [`Report`]: lines for
//! people, and one JSON object for scripts (`--json`). Errors go to stderr
//! as `error: …` with an optional `hint: …`; with `--json` the error is also
//! the one JSON object on stdout, so a script always gets exactly one.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use palisade_ledger::Amount;
use serde_json::{Value, json};

use crate::error::WalletError;

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Lines for people.
    Human,
    /// One JSON object on stdout.
    Json,
}

/// The result of a command, in both forms.
#[derive(Clone, Debug)]
pub struct Report {
    /// Lines for people (newline-terminated when printed).
    pub human: String,
    /// The object `--json` prints.
    pub json: Value,
}

impl Report {
    /// A report from its two forms.
    pub fn new(human: impl Into<String>, json: Value) -> Report {
        Report { human: human.into(), json }
    }
}

/// `12.5 PAL`.
pub fn pal(amount: Amount) -> String {
    format!("{amount} PAL")
}

/// Both forms of an amount for JSON: `{"units": 1500000000, "pal": "1.5"}`.
pub fn amount_json(amount: Amount) -> Value {
    json!({ "units": amount.units(), "pal": amount.to_string() })
}

/// Prints `report` to stdout in `format`.
pub fn print_report(format: Format, report: &Report) {
    let mut out = std::io::stdout().lock();
    // A closed pipe (`palisade … | head`) is not worth a panic.
    let _ = match format {
        Format::Human if report.human.is_empty() => Ok(()),
        Format::Human => writeln!(out, "{}", report.human.trim_end()),
        Format::Json => writeln!(out, "{}", report.json),
    };
}

/// Prints `error` (and its hint) to stderr, and with `--json` as the JSON
/// object on stdout too.
pub fn print_error(format: Format, error: &WalletError) {
    let hint = error.hint();
    {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "error: {error}");
        if let Some(hint) = &hint {
            let _ = writeln!(err, "hint: {hint}");
        }
    }
    if format == Format::Json {
        let object = json!({ "error": { "kind": error.kind(), "message": error.to_string(), "hint": hint } });
        let _ = writeln!(std::io::stdout().lock(), "{object}");
    }
}

/// A warning for people, on stderr (never mixed into `--json` stdout).
pub fn warn(message: &str) {
    let _ = writeln!(std::io::stderr().lock(), "warning: {message}");
}

/// A spinner on stderr while we wait; drawn only for people on a terminal.
pub fn spinner(format: Format, message: String) -> ProgressBar {
    if format == Format::Json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner().with_message(message);
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}
