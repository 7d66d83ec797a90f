//! The processes of a local network, found again by PID.
//!
//! `palisade-testnet up` starts the nodes and exits; later commands (`kill`,
//! `status`, `down`) run in other processes. So every start writes the
//! node's PID to `<node dir>/pid`, and a PID counts as the node only while
//! `/proc/<pid>/cmdline` still names that node's config file: a PID the
//! kernel has since given to another program is never signalled.

use std::fs;
use std::path::{Path, PathBuf};

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rustix::process::{Pid, Signal, kill_process};

/// How long a just-spawned node may take to show its command line.
pub const EXEC_VISIBLE: Duration = Duration::from_secs(2);

/// What a node's process is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessState {
    /// Running (or sleeping, as processes do).
    Running,
    /// Stopped by SIGSTOP (`pause`).
    Paused,
    /// No process: never started, exited, or killed.
    Down,
}

impl std::fmt::Display for ProcessState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProcessState::Running => "running",
            ProcessState::Paused => "paused",
            ProcessState::Down => "down",
        })
    }
}

/// A node's process as its PID file and `/proc` describe it.
#[derive(Clone, Debug)]
pub struct NodeProcess {
    pid_file: PathBuf,
    /// The argument that identifies the node on its command line.
    config: PathBuf,
}

impl NodeProcess {
    /// The process of the node whose directory is `dir`.
    pub fn new(dir: &Path) -> NodeProcess {
        NodeProcess { pid_file: dir.join("pid"), config: dir.join("config.toml") }
    }

    /// The node's config file (passed as `--config` when it starts).
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// Records that the node runs as `pid`, just spawned. Returns once
    /// `/proc` shows the node's command line (at most [`EXEC_VISIBLE`]):
    /// `spawn` returns as soon as the new program replaced the old, but the
    /// kernel fills in its command line a moment later, and until then the
    /// PID would not count as the node.
    pub fn record(&self, pid: u32) -> Result<()> {
        fs::write(&self.pid_file, pid.to_string()).with_context(|| format!("writing {}", self.pid_file.display()))?;
        let deadline = Instant::now() + EXEC_VISIBLE;
        while self.pid() != Some(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Forgets the recorded PID (the process is known to be gone).
    pub fn forget(&self) {
        let _ = fs::remove_file(&self.pid_file);
    }

    /// The recorded PID, if it still runs this node.
    pub fn pid(&self) -> Option<u32> {
        let pid: u32 = fs::read_to_string(&self.pid_file).ok()?.trim().parse().ok()?;
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let config = self.config.as_os_str().as_encoded_bytes();
        let ours = cmdline.split(|&b| b == 0).any(|arg| arg == config);
        ours.then_some(pid)
    }

    /// Running, paused or down.
    pub fn state(&self) -> ProcessState {
        self.pid().map_or(ProcessState::Down, state_of)
    }
}

/// What process `pid` is doing. A zombie (exited, not yet reaped) is down.
pub fn state_of(pid: u32) -> ProcessState {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { return ProcessState::Down };
    // The state letter follows the command name, which is in parentheses
    // and may itself contain spaces or parentheses.
    match stat.rfind(')').and_then(|i| stat.get(i + 2..i + 3)) {
        Some("T" | "t") => ProcessState::Paused,
        Some("Z" | "X" | "x") | None => ProcessState::Down,
        Some(_) => ProcessState::Running,
    }
}

/// Sends `signal` to process `pid` (node `name`, for the error message).
pub fn send(pid: u32, name: &str, signal: Signal) -> Result<()> {
    let pid = i32::try_from(pid).ok().and_then(Pid::from_raw).context("pid out of range")?;
    kill_process(pid, signal).with_context(|| format!("sending {signal:?} to {name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pid_that_runs_something_else_is_not_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let process = NodeProcess::new(dir.path());
        assert_eq!(process.state(), ProcessState::Down);
        // Our own PID runs the test binary, not this node's config.
        process.record(std::process::id()).unwrap();
        assert_eq!(process.pid(), None);
        assert_eq!(process.state(), ProcessState::Down);
    }

    #[test]
    fn a_process_naming_the_config_is_found_paused_and_resumed() {
        let dir = tempfile::tempdir().unwrap();
        let process = NodeProcess::new(dir.path());
        // The config path rides in argv as `$0`; `; true` keeps the shell
        // from exec'ing `sleep` (which would drop it).
        let mut child =
            std::process::Command::new("sh").arg("-c").arg("sleep 30; true").arg(process.config()).spawn().unwrap();
        process.record(child.id()).unwrap();
        assert_eq!(process.pid(), Some(child.id()));
        assert_eq!(process.state(), ProcessState::Running);
        send(child.id(), "n", Signal::STOP).unwrap();
        let paused = (0..100).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            process.state() == ProcessState::Paused
        });
        assert!(paused, "SIGSTOP did not show as paused");
        send(child.id(), "n", Signal::CONT).unwrap();
        send(child.id(), "n", Signal::KILL).unwrap();
        child.wait().unwrap();
        assert_eq!(process.state(), ProcessState::Down);
    }
}
