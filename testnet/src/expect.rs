//! Expectations a command checks on a live network (the drill's, the
//! surge's): what was expected, whether it held, and the figures it was
//! judged on. Each is printed as it is checked; the list renders at the end
//! and the command fails if any did not hold.

use std::fmt::Write;

use serde::Serialize;

/// One expectation of the issue, checked.
#[derive(Clone, Debug, Serialize)]
pub struct Expectation {
    /// What was expected.
    pub what: String,
    /// Whether it held.
    pub held: bool,
    /// The figures it was judged on.
    pub detail: String,
}

/// The expectations of one run, in the order checked.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(transparent)]
pub struct Expectations(pub Vec<Expectation>);

impl Expectations {
    /// Records one, and says on stderr (as `tool: ok …` or `tool: FAILED …`)
    /// whether it held.
    pub fn record(&mut self, tool: &str, what: impl Into<String>, held: bool, detail: impl Into<String>) {
        let (what, detail) = (what.into(), detail.into());
        eprintln!("{tool}: {} {what}: {detail}", if held { "ok" } else { "FAILED" });
        self.0.push(Expectation { what, held, detail });
    }

    /// Those that did not hold.
    pub fn failed(&self) -> impl Iterator<Item = &Expectation> {
        self.0.iter().filter(|e| !e.held)
    }

    /// How many were checked.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// None checked yet?
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One line each, then `tool: N expectations, F failed`.
    pub fn render(&self, tool: &str, out: &mut String) {
        for e in &self.0 {
            let _ = writeln!(out, "{} {}: {}", if e.held { "ok    " } else { "FAILED" }, e.what, e.detail);
        }
        let _ = writeln!(out, "{tool}: {} expectations, {} failed", self.len(), self.failed().count());
    }
}
