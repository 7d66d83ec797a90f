//! `--find-max`: which rate to try next, given how the trials so far went.
//!
//! Double the rate while trials keep up; after the first that does not
//! (or, if the very first fails, halve until one does), bisect between the
//! best rate that kept up and the lowest that did not. Bounded by
//! [`MAX_TRIALS`], [`MAX_RATE`], and a bracket narrower than
//! [`PRECISION`] of the best rate.

/// Most trials one search runs.
pub const MAX_TRIALS: usize = 12;
/// The highest rate ever tried, transactions per second.
pub const MAX_RATE: u64 = 100_000;
/// The search stops when the bracket is narrower than this share of the
/// best rate.
pub const PRECISION: f64 = 0.1;

/// The state of a search.
#[derive(Clone, Debug, Default)]
pub struct Search {
    /// The highest rate that kept up.
    best: Option<u64>,
    /// The lowest rate that did not.
    failed: Option<u64>,
    /// Trials run.
    trials: usize,
}

impl Search {
    /// Records a trial at `rate`.
    pub fn record(&mut self, rate: u64, kept_up: bool) {
        self.trials = self.trials.saturating_add(1);
        if kept_up {
            self.best = Some(self.best.map_or(rate, |b| b.max(rate)));
        } else {
            self.failed = Some(self.failed.map_or(rate, |f| f.min(rate)));
        }
    }

    /// The next rate to try after starting at `start`, or `None` when done.
    pub fn next(&self, start: u64) -> Option<u64> {
        if self.trials >= MAX_TRIALS {
            return None;
        }
        let start = start.clamp(1, MAX_RATE);
        let next = match (self.best, self.failed) {
            (None, None) => start,
            (Some(best), None) if best >= MAX_RATE => return None,
            (Some(best), None) => best.saturating_mul(2).min(MAX_RATE),
            (None, Some(failed)) if failed <= 1 => return None,
            (None, Some(failed)) => failed / 2,
            (Some(best), Some(failed)) => {
                let width = failed.saturating_sub(best);
                if width <= 1 || (width as f64) < PRECISION * best as f64 {
                    return None;
                }
                best + width / 2
            }
        };
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a search against a network that keeps up exactly up to `limit`.
    fn run(start: u64, limit: u64) -> (Search, Vec<u64>) {
        let mut search = Search::default();
        let mut tried = Vec::new();
        while let Some(rate) = search.next(start) {
            assert!(tried.len() < MAX_TRIALS, "the search did not stop");
            tried.push(rate);
            search.record(rate, rate <= limit);
        }
        (search, tried)
    }

    #[test]
    fn doubles_then_bisects() {
        let (search, tried) = run(500, 3_000);
        assert_eq!(tried, vec![500, 1_000, 2_000, 4_000, 3_000, 3_500, 3_250]);
        assert_eq!(search.best, Some(3_000));
        assert_eq!(search.failed, Some(3_250));
    }

    #[test]
    fn halves_when_the_first_trial_fails() {
        let (search, tried) = run(8_000, 1_200);
        assert_eq!(&tried[..4], &[8_000, 4_000, 2_000, 1_000]);
        let best = search.best.unwrap();
        assert!(best <= 1_200 && best as f64 >= 1_200.0 * (1.0 - PRECISION), "{best}");
    }

    #[test]
    fn stops_at_the_rate_cap_and_at_the_trial_cap() {
        let (search, tried) = run(30_000, u64::MAX);
        assert_eq!(tried, vec![30_000, 60_000, 100_000]);
        assert_eq!(search.best, Some(MAX_RATE));
        let (_, tried) = run(MAX_RATE, 0);
        assert!(tried.len() <= MAX_TRIALS);
        let (search, _) = run(1, 0);
        assert_eq!(search.best, None);
    }
}
