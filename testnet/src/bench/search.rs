//! `--find-max`: which rate to try next, given how the trials so far went.
//!
//! Double the rate while trials keep up; after the first that does not
//! (or, if the very first fails, halve until one does), bisect between the
//! best rate that kept up and the lowest that did not. Bounded by
//! [`MAX_TRIALS`], [`MAX_RATE`], and a bracket narrower than
//! [`PRECISION`] of the best rate.
//!
//! Then the peak ([`next_probe`]): the search stops at the first rate whose
//! p99 is over the bound, which on a loaded machine can be far below what
//! the network commits when offered more (it batches better). So while the
//! highest rate offered was nearly all committed, or committed clearly more
//! than any lower rate, twice that rate is offered too, up to
//! [`MAX_PEAK_PROBES`] times.

/// Most trials one search runs.
pub const MAX_TRIALS: usize = 12;
/// The highest rate ever tried, transactions per second.
pub const MAX_RATE: u64 = 100_000;
/// The search stops when the bracket is narrower than this share of the
/// best rate.
pub const PRECISION: f64 = 0.1;

/// Most trials offered above the search's rates in search of the peak.
pub const MAX_PEAK_PROBES: usize = 3;
/// Offering more is worth another probe while the highest rate offered
/// committed at least this share of that rate...
pub const PEAK_KEPT_PACE: f64 = 0.9;
/// ...or at least this share more than any lower rate did.
pub const PEAK_GROWTH: f64 = 0.1;

/// The next rate to offer in search of the saturation throughput, given
/// `(rate offered, committed tx/s)` of every trial so far and how many of
/// them were probes; `None` once offering more stopped paying.
pub fn next_probe(trials: &[(u64, f64)], probes: usize) -> Option<u64> {
    if probes >= MAX_PEAK_PROBES {
        return None;
    }
    let &(highest, committed) = trials.iter().max_by_key(|(rate, _)| *rate)?;
    let below = trials.iter().filter(|(rate, _)| *rate < highest).map(|(_, c)| *c).fold(0.0, f64::max);
    let kept_pace = committed >= highest as f64 * PEAK_KEPT_PACE;
    let grew = committed >= below * (1.0 + PEAK_GROWTH);
    if highest >= MAX_RATE || !(kept_pace || grew) {
        return None;
    }
    Some(highest.saturating_mul(2).min(MAX_RATE))
}

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
    fn probes_upward_while_offering_more_commits_clearly_more() {
        // The search stopped at 2,500 (p99 over the bound), which committed
        // twice what 1,250 did: not saturated.
        let mut trials = vec![(2_500, 2_430.0), (1_250, 1_225.0), (625, 616.0), (1_171, 1_152.0)];
        assert_eq!(next_probe(&trials, 0), Some(5_000));
        trials.push((5_000, 4_690.0));
        assert_eq!(next_probe(&trials, 1), Some(10_000));
        // 10,000 committed less than 10 % more, and far less than offered:
        // saturated.
        trials.push((10_000, 5_000.0));
        assert_eq!(next_probe(&trials, 2), None);
        // A bisection ended just below the highest rate, which committed
        // nearly all it was offered: not saturated either.
        let trials = [(1_000, 986.0), (2_000, 1_966.0), (1_500, 1_462.0), (1_750, 1_712.0), (1_875, 1_836.0)];
        assert_eq!(next_probe(&trials, 0), Some(4_000));
        // Committed well under what was offered, but far more than below.
        assert_eq!(next_probe(&[(4_000, 3_900.0), (8_000, 6_800.0)], 1), Some(16_000));
        // Bounded in count, and by the rate cap.
        assert_eq!(next_probe(&[(1_000, 1_000.0), (2_000, 2_000.0)], MAX_PEAK_PROBES), None);
        assert_eq!(next_probe(&[(MAX_RATE, 9e4), (50_000, 1.0)], 0), None);
        assert_eq!(next_probe(&[], 0), None);
        // A single trial: probe once above it.
        assert_eq!(next_probe(&[(800, 790.0)], 0), Some(1_600));
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
