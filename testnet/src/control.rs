//! The binary's local-network commands: `up`, `status`, `down`, and the
//! per-node `kill`, `stop`, `pause`, `resume`, `restart`, `logs`. Each
//! command runs in its own process and finds the network again under its
//! directory (`LocalNet::open`); the nodes outlive them.

use std::io::{Read, Seek, SeekFrom, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use palisade_testnet::local::LocalNet;
use palisade_testnet::local::process::ProcessState;
use palisade_testnet::local::status::{self, NetworkStatus};

/// How long `up` and `restart` wait for nodes to answer RPC.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting a tokio runtime")
}

/// Starts every node that is not running, waits until all answer, prints
/// where they are; then returns (background) or waits for Ctrl-C and stops
/// them (foreground).
pub fn up(mut net: LocalNet, foreground: bool) -> Result<ExitCode> {
    net.start_all()?;
    let names: Vec<String> = net.nodes.iter().map(|n| n.name.clone()).collect();
    wait_ready(&mut net, &names)?;
    println!("{:<16} {:>5}  {:<24} {:<32} log", "node", "shard", "rpc", "metrics");
    for node in &net.nodes {
        println!(
            "{:<16} {:>5}  {:<24} {:<32} {}",
            node.name,
            node.shard,
            node.rpc_url(),
            format!("{}/metrics", node.metrics_url()),
            node.log_path().display()
        );
    }
    let dir = net.dir.display().to_string();
    if !foreground {
        net.detach();
        println!("\n{} nodes running in the background; state in {dir}.", net.nodes.len());
        println!("  palisade-testnet status     per-shard heights and node states");
        println!("  palisade-testnet down       stop them");
        return Ok(ExitCode::SUCCESS);
    }
    println!("\n{} nodes running; state in {dir}. Ctrl-C stops them.", net.nodes.len());
    let runtime = runtime()?;
    let mut reported = std::collections::BTreeSet::new();
    runtime.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = tick.tick() => {
                    for name in &names {
                        if !net.is_running(name) && reported.insert(name.clone()) {
                            eprintln!("{name} exited; its log:\n{}", net.log_tail(name, 10));
                        }
                    }
                }
            }
        }
    });
    println!("stopping…");
    down(&mut net, Duration::from_secs(15))
}

/// Waits until every node in `names` answers RPC; fails early, with its
/// log, if one exits. Prints progress to stderr.
fn wait_ready(net: &mut LocalNet, names: &[String]) -> Result<()> {
    let runtime = runtime()?;
    let began = Instant::now();
    let mut last_shown = usize::MAX;
    loop {
        let state = runtime.block_on(status::gather(net));
        let of_interest: Vec<_> = state.nodes.iter().filter(|n| names.contains(&n.name)).collect();
        if let Some(dead) = of_interest.iter().find(|n| n.process == ProcessState::Down) {
            bail!("{} exited while starting; its log:\n{}", dead.name, net.log_tail(&dead.name, 20));
        }
        let ready = of_interest.iter().filter(|n| n.is_up()).count();
        if ready == of_interest.len() {
            eprintln!("{ready}/{ready} nodes answering after {:.1} s", began.elapsed().as_secs_f64());
            return Ok(());
        }
        if ready != last_shown {
            eprintln!("waiting for nodes: {ready}/{} answering", of_interest.len());
            last_shown = ready;
        }
        if began.elapsed() > READY_TIMEOUT {
            let slow: Vec<&str> = of_interest.iter().filter(|n| !n.is_up()).map(|n| n.name.as_str()).collect();
            bail!("not answering after {READY_TIMEOUT:?}: {} (see `palisade-testnet logs NODE`)", slow.join(", "));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `status`.
pub fn status(net: &mut LocalNet, json: bool) -> Result<ExitCode> {
    let state: NetworkStatus = runtime()?.block_on(status::gather(net));
    if json {
        println!("{}", serde_json::to_string_pretty(&state)?);
    } else {
        print!("{}", state.render());
    }
    Ok(ExitCode::SUCCESS)
}

/// `down`: every node gets SIGTERM at once, then `grace` to exit.
pub fn down(net: &mut LocalNet, grace: Duration) -> Result<ExitCode> {
    let unclean = net.stop_all(grace)?;
    if unclean.is_empty() {
        println!("all nodes stopped");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("stopped; killed after {grace:?}: {}", unclean.join(", "));
        Ok(ExitCode::FAILURE)
    }
}

/// One per-node action (`kill`, `stop`, `pause`, `resume`).
pub fn each(
    net: &mut LocalNet,
    node: &str,
    done: &str,
    action: impl FnOnce(&mut LocalNet, &str) -> Result<()>,
) -> Result<ExitCode> {
    net.node(node).map_err(|e| unknown_node(net, e))?;
    action(net, node)?;
    println!("{node} {done}");
    Ok(ExitCode::SUCCESS)
}

fn unknown_node(net: &LocalNet, error: anyhow::Error) -> anyhow::Error {
    let names: Vec<&str> = net.nodes.iter().map(|n| n.name.as_str()).collect();
    error.context(format!("nodes here: {}", names.join(", ")))
}

/// `restart`: a graceful stop if it runs (paused included), then a start.
pub fn restart(net: &mut LocalNet, node: &str, misbehave: Option<&str>) -> Result<ExitCode> {
    net.node(node).map_err(|e| unknown_node(net, e))?;
    if net.is_running(node) {
        net.stop(node, Duration::from_secs(15))?;
    }
    match misbehave {
        Some(mode) => net.start_misbehaving(node, mode)?,
        None => net.start(node)?,
    };
    wait_ready(net, &[node.to_string()])?;
    match misbehave {
        Some(mode) => println!("{node} restarted, misbehaving on purpose: {mode}"),
        None => println!("{node} restarted"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `twin`: adds and starts a twin of `node`; waits until it answers.
pub fn twin(net: &mut LocalNet, node: &str) -> Result<ExitCode> {
    net.node(node).map_err(|e| unknown_node(net, e))?;
    let twin = net.add_twin(node)?;
    net.start(&twin)?;
    wait_ready(net, std::slice::from_ref(&twin))?;
    let spec = net.node(&twin)?;
    println!("{twin} started with {node}'s key: rpc {}, log {}", spec.rpc_url(), spec.log_path().display());
    println!("once the two sign different blocks for one slot, the shard slashes and jails {node}");
    Ok(ExitCode::SUCCESS)
}

/// `logs`: the last `lines` lines, then (with `follow`) what is appended.
pub fn logs(net: &LocalNet, node: &str, lines: usize, follow: bool) -> Result<ExitCode> {
    let spec = net.node(node).map_err(|e| unknown_node(net, e))?;
    println!("{}", net.log_tail(node, lines));
    if !follow {
        return Ok(ExitCode::SUCCESS);
    }
    let path = spec.log_path();
    let mut file = std::fs::File::open(&path).with_context(|| format!("opening {}", path.display()))?;
    let mut at = file.seek(SeekFrom::End(0))?;
    let mut stdout = std::io::stdout();
    let mut chunk = Vec::new();
    loop {
        std::thread::sleep(Duration::from_millis(200));
        let len = file.metadata()?.len();
        if len < at {
            at = 0; // truncated: start over
        }
        if len > at {
            file.seek(SeekFrom::Start(at))?;
            chunk.clear();
            (&mut file).take(len - at).read_to_end(&mut chunk)?;
            at = len;
            stdout.write_all(&chunk)?;
            stdout.flush()?;
        }
    }
}
