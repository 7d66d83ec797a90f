//! What a run cost the machine, against what the machine could do.
//!
//! - **Node CPU per committed transaction:** user + system CPU time of the
//!   network's node processes over the trial (read from `/proc/<pid>/stat`
//!   before the first send and after the drain), divided by the
//!   transactions committed. Summed over every node: on one machine that
//!   is what a transaction costs the whole network.
//! - **Node memory:** each node process's peak resident memory
//!   (`VmHWM` in `/proc/<pid>/status`, read after the drain), so an
//!   overload run shows whether memory stayed bounded: the largest of them,
//!   and their sum.
//! - **The verification bound:** ed25519 batch verification on every core of
//!   this machine for [`BOUND_SAMPLE`], divided by the committee size, since
//!   every member of a shard's committee verifies each of its transactions
//!   once. No node software can commit faster on this machine; committed ÷
//!   bound says how close a run came. It is measured in the same run
//!   because the machine's speed (and its other load) changes between runs.

use std::time::{Duration, Instant};

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::Serialize;

/// How long each core verifies for the bound.
pub const BOUND_SAMPLE: Duration = Duration::from_millis(1_000);
/// Signatures per batch: about a block's worth per verifier call.
const BOUND_BATCH: usize = 64;

/// The network's processes and their CPU time when the trial started.
#[derive(Debug)]
pub struct CpuClock {
    start: Vec<(u32, f64)>,
}

impl CpuClock {
    /// Starts counting the CPU time of `pids` (those not running are left
    /// out).
    pub fn start(pids: &[u32]) -> CpuClock {
        CpuClock { start: pids.iter().filter_map(|&pid| Some((pid, cpu_seconds(pid)?))).collect() }
    }

    /// CPU seconds the processes used since [`CpuClock::start`], and how
    /// many of them were read at both ends (a process that died in between
    /// is left out; its time is lost with it).
    pub fn elapsed(&self) -> (f64, usize) {
        let mut total = 0.0;
        let mut counted = 0;
        for &(pid, start) in &self.start {
            if let Some(now) = cpu_seconds(pid) {
                total += (now - start).max(0.0);
                counted += 1;
            }
        }
        (total, counted)
    }
}

/// What a trial cost the nodes, and the bound it ran against.
#[derive(Clone, Debug, Serialize)]
pub struct Cost {
    /// CPU seconds the node processes used over the trial.
    pub node_cpu_s: f64,
    /// Node processes counted.
    pub processes: usize,
    /// `node_cpu_s ÷ committed`, in microseconds; `None` if nothing
    /// committed.
    pub node_cpu_us_per_tx: Option<f64>,
    /// This machine's verification bound, transactions per second.
    pub verify_bound_tps: f64,
    /// The largest peak resident memory of one node process since it
    /// started, MiB; `None` if none could be read.
    pub node_peak_rss_mib: Option<f64>,
    /// The node processes' peak resident memory summed, MiB.
    pub node_peak_rss_total_mib: Option<f64>,
}

impl Cost {
    /// The cost line of a run that committed `committed` transactions.
    pub fn of(clock: &CpuClock, committed: u64, verify_bound_tps: f64) -> Cost {
        let (node_cpu_s, processes) = clock.elapsed();
        let node_cpu_us_per_tx = (committed > 0).then(|| node_cpu_s * 1e6 / committed as f64);
        let peaks: Vec<f64> =
            clock.start.iter().filter_map(|&(pid, _)| peak_rss_kib(pid)).map(|kib| kib as f64 / 1024.0).collect();
        let node_peak_rss_mib = peaks.iter().copied().reduce(f64::max);
        let node_peak_rss_total_mib = (!peaks.is_empty()).then(|| peaks.iter().sum());
        Cost { node_cpu_s, processes, node_cpu_us_per_tx, verify_bound_tps, node_peak_rss_mib, node_peak_rss_total_mib }
    }
}

/// Peak resident memory of process `pid` since it started, KiB, if it runs.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    vm_hwm_kib(&std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?)
}

/// The `VmHWM:` line of a `/proc/<pid>/status`, in KiB.
fn vm_hwm_kib(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
    line.trim().strip_suffix("kB")?.trim().parse().ok()
}

/// User + system CPU seconds of process `pid`, if it runs.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = cpu_ticks(&stat)?;
    let per_second = rustix::param::clock_ticks_per_second();
    (per_second > 0).then(|| ticks as f64 / per_second as f64)
}

/// `utime + stime` from a `/proc/<pid>/stat` line. The fields are counted
/// after the command name, which is in parentheses and may itself contain
/// spaces or parentheses: `state` is the first after it, `utime` the 12th.
fn cpu_ticks(stat: &str) -> Option<u64> {
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    utime.checked_add(stime)
}

/// Transactions per second this machine can verify for a shard whose
/// committee has `committee` members: batch verifications per second on
/// all cores (for `sample` each) ÷ `committee`.
pub fn verify_bound(committee: usize, sample: Duration) -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_core: Vec<f64> = std::thread::scope(|scope| {
        let workers: Vec<_> =
            (0..cores).map(|core| scope.spawn(move || verifications_per_second(core, sample))).collect();
        workers.into_iter().map(|w| w.join().unwrap_or(0.0)).collect()
    });
    per_core.iter().sum::<f64>() / committee.max(1) as f64
}

/// Batch verifications per second on this thread, for `sample`.
fn verifications_per_second(seed: usize, sample: Duration) -> f64 {
    // Distinct signers and 32-byte digests, as a block's transactions are.
    let keys: Vec<SigningKey> = (0..BOUND_BATCH)
        .map(|i| SigningKey::from_bytes(blake3::hash(format!("bound-{seed}-{i}").as_bytes()).as_bytes()))
        .collect();
    let digests: Vec<[u8; 32]> = (0..BOUND_BATCH).map(|i| *blake3::hash(&i.to_le_bytes()).as_bytes()).collect();
    let signatures: Vec<Signature> = keys.iter().zip(&digests).map(|(k, d)| k.sign(d)).collect();
    let verifying: Vec<VerifyingKey> = keys.iter().map(SigningKey::verifying_key).collect();
    let messages: Vec<&[u8]> = digests.iter().map(|d| d.as_slice()).collect();
    let start = Instant::now();
    let mut verified = 0u64;
    // Bounded by the sample's length (and a count, should the clock stall).
    for _ in 0..1_000_000 {
        if ed25519_dalek::verify_batch(&messages, &signatures, &verifying).is_err() {
            return 0.0;
        }
        verified += BOUND_BATCH as u64;
        if start.elapsed() >= sample {
            break;
        }
    }
    verified as f64 / start.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_ticks_after_a_command_name_with_spaces_and_parentheses() {
        // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime …
        let line = "4242 (palisade (node) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0";
        assert_eq!(cpu_ticks(line), Some(325));
        assert_eq!(cpu_ticks("4242 (cut short) S 1 2"), None);
        assert_eq!(cpu_ticks("no name at all"), None);
    }

    #[test]
    fn reads_the_peak_resident_memory() {
        let status = "Name:\tpalisade-node\nVmPeak:\t  900000 kB\nVmHWM:\t   123456 kB\nVmRSS:\t  100000 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(123_456));
        assert_eq!(vm_hwm_kib("Name:\tkernel thread\n"), None);
        assert_eq!(vm_hwm_kib("VmHWM:\t12 pages\n"), None);
        let ours = peak_rss_kib(std::process::id()).expect("this process has a peak");
        assert!(ours > 0);
    }

    #[test]
    fn counts_the_cpu_time_a_process_spends() {
        let clock = CpuClock::start(&[std::process::id()]);
        let busy = Instant::now();
        let mut x = 0u64;
        while busy.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let (seconds, counted) = clock.elapsed();
        assert_eq!(counted, 1);
        assert!(seconds > 0.0, "300 ms of work showed no CPU time");
        let cost = Cost::of(&clock, 1_000, 5_000.0);
        assert!(cost.node_cpu_us_per_tx.is_some_and(|us| us > 0.0));
        assert!(cost.node_peak_rss_mib.is_some_and(|mib| mib > 0.0));
        assert_eq!(cost.node_peak_rss_mib, cost.node_peak_rss_total_mib, "one process");
        assert_eq!(Cost::of(&clock, 0, 5_000.0).node_cpu_us_per_tx, None);
    }

    #[test]
    fn the_bound_divides_verification_speed_by_the_committee() {
        let bound = verify_bound(4, Duration::from_millis(50));
        assert!(bound > 0.0);
    }
}
