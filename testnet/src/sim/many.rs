//! Many seeds at once: `palisade-testnet sim --seeds N --jobs J` runs seeds
//! on `J` threads (each seed is a pure function of itself, so the threads
//! share nothing) and hands every report to the caller on the calling
//! thread as it comes, for progress and failures.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::runner::{Report, run_seed};

/// What a batch of seeds came to.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Seeds run.
    pub seeds: u64,
    /// Violations over all of them.
    pub violations: u64,
    /// Seeds with at least one violation, in order.
    pub failed: Vec<u64>,
    /// Wall time.
    pub elapsed: Duration,
}

impl Summary {
    /// Seeds per second of wall time.
    pub fn seeds_per_second(&self) -> f64 {
        self.seeds as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The default number of threads: the machine's cores.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Runs seeds `start..start + count` on `jobs` threads, calling `each` with
/// every report as it arrives (in completion order).
pub fn run(start: u64, count: u64, jobs: usize, mut each: impl FnMut(&Report)) -> Summary {
    let started = Instant::now();
    let next = AtomicU64::new(start);
    let end = start.saturating_add(count);
    let mut summary = Summary { seeds: 0, violations: 0, failed: Vec::new(), elapsed: Duration::ZERO };
    std::thread::scope(|scope| {
        let (done, reports) = mpsc::channel::<Report>();
        for _ in 0..jobs.max(1) {
            let done = done.clone();
            let next = &next;
            scope.spawn(move || {
                loop {
                    let seed = next.fetch_add(1, Ordering::Relaxed);
                    if seed >= end || done.send(run_seed(seed)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done);
        for report in reports {
            summary.seeds += 1;
            summary.violations += report.violations.len() as u64;
            if !report.violations.is_empty() {
                summary.failed.push(report.scenario.seed);
            }
            each(&report);
        }
    });
    summary.failed.sort_unstable();
    summary.elapsed = started.elapsed();
    summary
}
