//! A network of real `palisade-node` processes on 127.0.0.1, described by a
//! genesis: one data directory, key and config per validator under one
//! network directory, and the processes started, killed, paused and
//! restarted by PID. The end-to-end tests and `palisade-testnet` both use it.
//!
//! Layout of a network directory:
//!
//! ```text
//! <dir>/genesis.json
//! <dir>/network.json             the node binary and every node's ports
//! <dir>/password                 dev key password (INSECURE: local use only)
//! <dir>/nodes/<name>/config.toml
//! <dir>/nodes/<name>/validator.key, p2p.key, db/
//! <dir>/nodes/<name>/node.log    stdout and stderr of the process
//! <dir>/nodes/<name>/pid         the running process (see [`process`])
//! ```
//!
//! A `LocalNet` value either owns its processes (tests: they die with it)
//! or leaves them running when dropped ([`LocalNet::detach`], the background
//! testnet); [`LocalNet::open`] finds a network and its processes again.

pub mod operator;
pub mod process;
pub mod status;

use std::collections::BTreeMap;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use palisade_ledger::Genesis;
use palisade_ledger::api::local;
use rustix::process::Signal;
use serde::{Deserialize, Serialize};

use self::process::{NodeProcess, ProcessState};

/// The dev password every local key is encrypted with. INSECURE by design.
pub const DEV_PASSWORD: &str = "palisade-local-testnet";
/// Most calls in one JSON-RPC batch a local node accepts (its
/// `rpc.max_batch`); funding and the bench's credit queries send batches
/// up to this.
pub const MAX_BATCH: usize = 256;

/// Calls `method` once per element of `params` (named parameters) in
/// batches of [`MAX_BATCH`]; fails on the first refused call.
pub async fn batch_all<T, P>(
    client: &palisade_ledger::api::client::Client,
    method: &'static str,
    params: Vec<P>,
) -> Result<Vec<T>>
where
    T: serde::de::DeserializeOwned + std::fmt::Debug,
    P: Serialize,
{
    let mut results = Vec::with_capacity(params.len());
    let mut rest = params.into_iter().peekable();
    while rest.peek().is_some() {
        let chunk: Vec<P> = rest.by_ref().take(MAX_BATCH).collect();
        for answer in client.batch::<T, P>(method, chunk).await? {
            results.push(answer?);
        }
    }
    Ok(results)
}

/// One validator of the local network.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Its name in genesis (`validator-S-I`), also its key's dev name.
    pub name: String,
    /// The shard it validates.
    pub shard: u32,
    /// Its data directory.
    pub dir: PathBuf,
    /// libp2p TCP port.
    pub p2p_port: u16,
    /// JSON-RPC port.
    pub rpc_port: u16,
    /// Health and metrics port.
    pub metrics_port: u16,
    /// For a twin: the validator whose key it runs (see [`LocalNet::add_twin`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub twin_of: Option<String>,
}

impl NodeSpec {
    /// A twin: a fault on purpose, not one of the shard's validators.
    pub fn is_twin(&self) -> bool {
        self.twin_of.is_some()
    }

    /// Its JSON-RPC URL.
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.rpc_port)
    }

    /// Its JSON-RPC WebSocket URL (same port).
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.rpc_port)
    }

    /// Its health and metrics base URL.
    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.metrics_port)
    }

    /// Its libp2p address.
    pub fn p2p_addr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.p2p_port)
    }

    /// Its log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("node.log")
    }

    /// Its process.
    pub fn process(&self) -> NodeProcess {
        NodeProcess::new(&self.dir)
    }
}

/// `network.json`: what [`LocalNet::open`] needs besides the genesis.
#[derive(Serialize, Deserialize)]
struct Manifest {
    binary: PathBuf,
    nodes: Vec<NodeSpec>,
}

/// How ports are chosen.
#[derive(Clone, Copy, Debug)]
pub enum Ports {
    /// The layout of [`palisade_ledger::api::local`] from this base
    /// (predictable, for `up`).
    From(u16),
    /// Free ports, each handed out once per process, from below the OS's
    /// ephemeral range (for tests running side by side; see [`free_port`]).
    Free,
}

/// A local network: its layout and its running processes.
pub struct LocalNet {
    /// The network directory.
    pub dir: PathBuf,
    /// The genesis every node runs.
    pub genesis: Genesis,
    /// The `palisade-node` binary.
    pub binary: PathBuf,
    /// Every validator, in genesis order.
    pub nodes: Vec<NodeSpec>,
    /// Processes started by this value, reaped by it, and killed when it is
    /// dropped unless detached.
    children: BTreeMap<String, Child>,
    detached: bool,
}

/// Where [`Ports::Free`] ports come from: below Linux's ephemeral range
/// (32768–60999). A port the OS picks itself (`bind` to port 0, or the
/// local end of any outgoing connection, which nodes open all the time)
/// could be taken by another node between the layout and the node's own
/// `bind`; these never are.
const FREE_PORTS: std::ops::Range<u16> = 20_000..32_000;
/// Ports handed out so far by this process.
static FREE_PORTS_TAKEN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A port of [`FREE_PORTS`] that binds now and that this process has not
/// handed out before.
fn free_port() -> Result<u16> {
    free_ports(1)
}

/// The first of `len` consecutive ports of [`FREE_PORTS`] that all bind now
/// and that this process has not handed out before (`--base-port` of a test
/// network: 3 per node). Processes start at different offsets (from the PID)
/// so two test binaries side by side rarely probe the same ports.
pub fn free_ports(len: u16) -> Result<u16> {
    let span = u32::from(FREE_PORTS.end - FREE_PORTS.start);
    let len32 = u32::from(len.max(1));
    let offset = std::process::id().wrapping_mul(997) % span;
    // Bounded: one pass over the range.
    for _ in 0..span / len32 {
        let taken = FREE_PORTS_TAKEN.fetch_add(len32, std::sync::atomic::Ordering::Relaxed);
        let first = offset.wrapping_add(taken) % span;
        if first + len32 > span {
            continue;
        }
        let Ok(first) = u16::try_from(first) else { continue };
        let base = FREE_PORTS.start + first;
        if (base..base + len.max(1)).all(|port| TcpListener::bind(("127.0.0.1", port)).is_ok()) {
            return Ok(base);
        }
    }
    bail!("no {len} free consecutive ports in {FREE_PORTS:?}")
}

fn port(ports: Ports, index: usize, offset: u16) -> Result<u16> {
    match ports {
        Ports::Free => free_port(),
        Ports::From(base) => local::port(base, index, offset).context("port range overflows 65535"),
    }
}

/// Finds the `palisade-node` binary: `$PALISADE_NODE_BIN`, else next to the
/// running executable (target/<profile>/, also from target/<profile>/deps/),
/// else builds it with cargo (release unless `debug`).
pub fn find_node_binary(debug: bool) -> Result<PathBuf> {
    if let Ok(path) = std::env::var("PALISADE_NODE_BIN") {
        return Ok(PathBuf::from(path));
    }
    match next_to_exe() {
        Some(path) => Ok(path),
        None => build_node_binary(debug),
    }
}

/// The `palisade-node` binary a user's network should run: `$PALISADE_NODE_BIN`,
/// else, in a source checkout, the one cargo builds from it now (a no-op when
/// up to date; a binary merely lying next to ours may be from older sources),
/// else the one next to the running executable (an installed toolset).
pub fn node_binary_for_network() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("PALISADE_NODE_BIN") {
        return Ok(PathBuf::from(path));
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let has_cargo = Command::new(&cargo).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    if workspace.is_file() && has_cargo.is_ok_and(|s| s.success()) {
        return build_node_binary(false);
    }
    next_to_exe().context("no palisade-node next to this executable; set PALISADE_NODE_BIN or use --node-bin")
}

/// `palisade-node` in the running executable's directory or its parent
/// (target/<profile>/, also from target/<profile>/deps/).
fn next_to_exe() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors().skip(1).take(2).map(|dir| dir.join("palisade-node")).find(|candidate| candidate.is_file())
}

/// Builds `palisade-node` with cargo (release unless `debug`) and returns
/// where cargo put it.
fn build_node_binary(debug: bool) -> Result<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // Cargo says where it put the binary (the target directory may be
    // anywhere: CARGO_TARGET_DIR, a config file); progress still shows on
    // stderr.
    cargo.current_dir(&root).args([
        "build",
        "-p",
        "palisade-node",
        "--bin",
        "palisade-node",
        "--message-format=json-render-diagnostics",
    ]);
    if !debug {
        cargo.arg("--release");
    }
    eprintln!("building palisade-node ({})…", if debug { "debug" } else { "release" });
    let output = cargo.stderr(Stdio::inherit()).output().context("running cargo to build palisade-node")?;
    if !output.status.success() {
        bail!("cargo build -p palisade-node failed");
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact" && message["target"]["name"] == "palisade-node")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .context("cargo built palisade-node but did not say where the executable is")
}

impl LocalNet {
    /// Lays out a network for `genesis` under `dir`: genesis file, and per
    /// validator its data directory, its dev key (encrypted with
    /// [`DEV_PASSWORD`]) and its config. A directory that already holds a
    /// network for the same genesis is reused as it is (its chain resumes);
    /// one for another genesis is refused.
    pub fn create(dir: &Path, genesis: Genesis, binary: PathBuf, ports: Ports) -> Result<LocalNet> {
        if !genesis.is_dev_chain() {
            bail!("a local network needs a dev chain (dev keys are derived from names)");
        }
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        let genesis_path = dir.join("genesis.json");
        let text = genesis.to_json();
        match fs::read_to_string(&genesis_path) {
            Ok(existing) if existing != text => bail!(
                "{} holds a network for another genesis; pass --fresh to replace it or use another --dir",
                dir.display()
            ),
            _ => fs::write(&genesis_path, &text)?,
        }
        let password = dir.join("password");
        fs::write(&password, DEV_PASSWORD)?;
        // A network laid out before keeps its ports: its configs name them.
        let nodes = match read_manifest(&dir) {
            Ok(manifest) => manifest.nodes,
            Err(_) => Self::lay_out(&dir, &genesis, ports)?,
        };
        let net = LocalNet { dir: dir.clone(), genesis, binary, nodes, children: BTreeMap::new(), detached: false };
        for node in &net.nodes {
            if !node.dir.join("config.toml").is_file() {
                net.init_node(node, &genesis_path, &password)?;
            }
        }
        net.save_manifest()?;
        Ok(net)
    }

    /// The network laid out under `dir` by [`LocalNet::create`], with the
    /// processes still running from earlier commands. It does not own them:
    /// dropping it leaves them running.
    pub fn open(dir: &Path) -> Result<LocalNet> {
        let dir = dir
            .canonicalize()
            .with_context(|| format!("no local network at {}; start one with `palisade-testnet up`", dir.display()))?;
        let manifest = read_manifest(&dir)?;
        let (genesis, _) = Genesis::load(&dir.join("genesis.json"))?;
        Ok(LocalNet {
            dir,
            genesis,
            binary: manifest.binary,
            nodes: manifest.nodes,
            children: BTreeMap::new(),
            detached: true,
        })
    }

    /// Stops the network laid out under `dir` (if any node runs) and deletes
    /// the directory, which must be a network's (`network.json` in it) or
    /// absent: any other directory is refused, never deleted.
    pub fn wipe(dir: &Path, grace: Duration) -> Result<()> {
        if !dir.exists() {
            return Ok(());
        }
        let mut old = LocalNet::open(dir).with_context(|| {
            format!(
                "{} exists and is not a local network: refusing to delete it; pick another directory",
                dir.display()
            )
        })?;
        old.stop_all(grace)?;
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))
    }

    /// Adds `NODE-twin`: a second node with the validator key of `of`, its
    /// own data directory and free ports (honest code that equivocates as
    /// soon as the two build different proposals or votes for one slot).
    /// Returns its name; an existing twin is reused. Start it like any node.
    pub fn add_twin(&mut self, of: &str) -> Result<String> {
        let original = self.node(of)?.clone();
        if original.twin_of.is_some() {
            bail!("{of} is itself a twin");
        }
        let name = format!("{of}-twin");
        if self.node(&name).is_ok() {
            return Ok(name);
        }
        let twin = NodeSpec {
            name: name.clone(),
            shard: original.shard,
            dir: self.dir.join("nodes").join(&name),
            p2p_port: free_port()?,
            rpc_port: free_port()?,
            metrics_port: free_port()?,
            twin_of: Some(of.to_string()),
        };
        self.init_node(&twin, &self.dir.join("genesis.json"), &self.dir.join("password"))?;
        self.nodes.push(twin);
        self.save_manifest()?;
        Ok(name)
    }

    /// Writes `network.json`: the binary and every node, for later commands.
    fn save_manifest(&self) -> Result<()> {
        let manifest = Manifest { binary: self.binary.clone(), nodes: self.nodes.clone() };
        fs::write(self.dir.join("network.json"), serde_json::to_string_pretty(&manifest)?)
            .context("writing network.json")
    }

    /// Leaves the processes running when this value is dropped.
    pub fn detach(&mut self) {
        self.detached = true;
    }

    fn lay_out(dir: &Path, genesis: &Genesis, ports: Ports) -> Result<Vec<NodeSpec>> {
        let mut nodes = Vec::new();
        for committee in &genesis.committees {
            for validator in &committee.validators {
                let i = nodes.len();
                nodes.push(NodeSpec {
                    name: validator.name.clone(),
                    shard: committee.shard,
                    dir: dir.join("nodes").join(&validator.name),
                    p2p_port: port(ports, i, local::P2P_OFFSET)?,
                    rpc_port: port(ports, i, local::RPC_OFFSET)?,
                    metrics_port: port(ports, i, local::METRICS_OFFSET)?,
                    twin_of: None,
                });
            }
        }
        Ok(nodes)
    }

    fn init_node(&self, node: &NodeSpec, genesis_path: &Path, password: &Path) -> Result<()> {
        fs::create_dir_all(&node.dir)?;
        self.node_command(&["init", "--force", "--data-dir"], &[&node.dir])?;
        let key_file = node.dir.join("validator.key");
        let key_name = node.twin_of.as_deref().unwrap_or(&node.name);
        self.node_command(
            &["keys", "import-dev", key_name, "--insecure-fast-kdf", "--genesis"],
            &[genesis_path, Path::new("--password-file"), password, Path::new("--key-file"), &key_file],
        )?;
        // Everyone bootstraps to the first validator of every shard: enough
        // for identify and Kademlia to find the rest.
        let mut seen = std::collections::BTreeSet::new();
        let bootstrap: Vec<String> =
            self.nodes.iter().filter(|n| seen.insert(n.shard) && n.name != node.name).map(NodeSpec::p2p_addr).collect();
        let config = format!(
            r#"# Written by palisade-testnet for a local network. INSECURE dev keys.
[node]
data_dir = {data_dir:?}
genesis = {genesis:?}
key_file = {key_file:?}
password_file = {password:?}

[p2p]
listen = {listen:?}
bootstrap = {bootstrap:?}

[rpc]
listen = "127.0.0.1:{rpc}"
# Every client of a local network is 127.0.0.1 (the wallet, the load
# generator, the tests): a per-IP limit would throttle them all as one.
requests_per_second_per_client = 0
max_batch = {max_batch}
max_connections = 1024

[metrics]
listen = "127.0.0.1:{metrics}"
"#,
            data_dir = node.dir.display().to_string(),
            genesis = genesis_path.display().to_string(),
            key_file = key_file.display().to_string(),
            password = password.display().to_string(),
            listen = node.p2p_addr(),
            bootstrap = bootstrap,
            rpc = node.rpc_port,
            max_batch = MAX_BATCH,
            metrics = node.metrics_port,
        );
        fs::write(node.dir.join("config.toml"), config)?;
        Ok(())
    }

    fn node_command(&self, args: &[&str], paths: &[&Path]) -> Result<()> {
        let output = Command::new(&self.binary)
            .args(args)
            .args(paths)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", self.binary.display()))?;
        if !output.status.success() {
            bail!("palisade-node {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr).trim());
        }
        Ok(())
    }

    /// The validator named `name`.
    pub fn node(&self, name: &str) -> Result<&NodeSpec> {
        self.nodes.iter().find(|n| n.name == name).with_context(|| format!("no node named {name}"))
    }

    /// Starts `name` (if it is not running), its output appended to its
    /// log, in its own process group (a Ctrl-C meant for the terminal's
    /// foreground job does not reach it). Returns its PID.
    pub fn start(&mut self, name: &str) -> Result<u32> {
        self.start_with(name, &[])
    }

    /// Starts `name` misbehaving on purpose (`palisade-node run --misbehave
    /// MODE`: equivocate, silent, invalid-proposals or flood; dev chains only).
    pub fn start_misbehaving(&mut self, name: &str, mode: &str) -> Result<u32> {
        self.start_with(name, &["--misbehave", mode])
    }

    /// Starts `name` with extra `palisade-node run` flags (a test-only
    /// `--dev-clock-offset-ms`, say).
    pub fn start_with(&mut self, name: &str, extra: &[&str]) -> Result<u32> {
        use std::os::unix::process::CommandExt;
        let node = self.node(name)?.clone();
        let process = node.process();
        if let Some(pid) = self.pid(name)? {
            return Ok(pid);
        }
        let log = fs::OpenOptions::new().create(true).append(true).open(node.log_path())?;
        let child = Command::new(&self.binary)
            .args(["run", "--config"])
            .arg(process.config())
            .args(extra)
            .env("RUST_LOG", std::env::var("PALISADE_LOG").unwrap_or_else(|_| "info".into()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {name} ({})", self.binary.display()))?;
        let pid = child.id();
        process.record(pid)?;
        self.children.insert(name.to_string(), child);
        Ok(pid)
    }

    /// The genesis validators' nodes, twins left out.
    pub fn validators(&self) -> impl Iterator<Item = &NodeSpec> {
        self.nodes.iter().filter(|n| !n.is_twin())
    }

    /// Starts every validator (a twin only starts when asked by name).
    pub fn start_all(&mut self) -> Result<()> {
        let names: Vec<String> = self.validators().map(|n| n.name.clone()).collect();
        for name in names {
            self.start(&name)?;
        }
        Ok(())
    }

    /// The live process of `name`: the child this value started (no file
    /// needed, so it works even once the directory is gone), else the one
    /// its PID file names.
    pub fn pid(&mut self, name: &str) -> Result<Option<u32>> {
        self.reap(name);
        if let Some(child) = self.children.get(name) {
            return Ok(Some(child.id()));
        }
        Ok(self.node(name)?.process().pid())
    }

    fn signal(&mut self, name: &str, signal: Signal) -> Result<()> {
        let pid = self.pid(name)?.with_context(|| format!("{name} is not running"))?;
        process::send(pid, name, signal)
    }

    /// Reaps `name` if this value started it and it has exited.
    fn reap(&mut self, name: &str) {
        if let Some(child) = self.children.get_mut(name)
            && !matches!(child.try_wait(), Ok(None))
        {
            self.children.remove(name);
        }
    }

    /// `kill -9`: no chance to flush anything. Returns once it is gone.
    pub fn kill(&mut self, name: &str) -> Result<()> {
        self.signal(name, Signal::KILL)?;
        self.wait_down(name, Duration::from_secs(10))?;
        self.node(name)?.process().forget();
        Ok(())
    }

    /// Waits up to `limit` for `name` to have no process (reaping it, if
    /// this value started it). A child of ours is down only once reaped: a
    /// killed multi-threaded process shows as a zombie while its other
    /// threads are still exiting (holding its ports and database lock), and
    /// a restart then would find the old one still there.
    fn wait_down(&mut self, name: &str, limit: Duration) -> Result<bool> {
        let deadline = Instant::now() + limit;
        loop {
            if self.state(name)? == ProcessState::Down && !self.children.contains_key(name) {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops `name` gracefully (see [`LocalNet::stop_all`]). Returns whether
    /// it exited by itself within `grace`.
    pub fn stop(&mut self, name: &str, grace: Duration) -> Result<bool> {
        Ok(self.stop_each(&[name.to_string()], grace)?.is_empty())
    }

    /// Stops every running node at once. Returns the names of those that
    /// had to be killed.
    pub fn stop_all(&mut self, grace: Duration) -> Result<Vec<String>> {
        let running: Vec<String> =
            self.nodes.clone().into_iter().map(|n| n.name).filter(|n| self.is_running(n)).collect();
        self.stop_each(&running, grace)
    }

    /// SIGTERM (and SIGCONT, or a paused node could not act on it) to each
    /// of `names`, then up to `grace` for them to exit, SIGKILL for the rest,
    /// whose names it returns.
    fn stop_each(&mut self, names: &[String], grace: Duration) -> Result<Vec<String>> {
        for name in names {
            self.signal(name, Signal::TERM)?;
            let _ = self.signal(name, Signal::CONT);
        }
        let deadline = Instant::now() + grace;
        let mut killed = Vec::new();
        for name in names {
            if self.wait_down(name, deadline.saturating_duration_since(Instant::now()))? {
                self.node(name)?.process().forget();
            } else {
                self.kill(name)?;
                killed.push(name.clone());
            }
        }
        Ok(killed)
    }

    /// SIGSTOP: the process stays, frozen.
    pub fn pause(&mut self, name: &str) -> Result<()> {
        self.signal(name, Signal::STOP)
    }

    /// SIGCONT.
    pub fn resume(&mut self, name: &str) -> Result<()> {
        self.signal(name, Signal::CONT)
    }

    /// Running, paused or down.
    pub fn state(&mut self, name: &str) -> Result<ProcessState> {
        Ok(self.pid(name)?.map_or(ProcessState::Down, process::state_of))
    }

    /// Whether `name` has a live process (running or paused).
    pub fn is_running(&mut self, name: &str) -> bool {
        self.state(name).is_ok_and(|s| s != ProcessState::Down)
    }

    /// The last `lines` lines of `name`'s log.
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let Ok(node) = self.node(name) else { return String::new() };
        let text = fs::read_to_string(node.log_path()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The last `lines` lines of every node's log, each under its name (what
    /// a failing test prints).
    pub fn logs_tail(&self, lines: usize) -> String {
        let tails: Vec<String> =
            self.nodes.iter().map(|n| format!("--- {} ---\n{}", n.name, self.log_tail(&n.name, lines))).collect();
        tails.join("\n")
    }

    /// Kills every process it started (SIGKILL: tests do not need grace),
    /// by the handles it holds: it works even when the directory (and the
    /// PID files) are already gone, as when a test's temporary directory is
    /// dropped first.
    pub fn kill_all(&mut self) {
        for (_, mut child) in std::mem::take(&mut self.children) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join("network.json");
    let text = fs::read_to_string(&path).with_context(|| {
        format!("no local network at {} (no network.json); start one with `palisade-testnet up`", dir.display())
    })?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a network manifest", path.display()))
}

impl Drop for LocalNet {
    fn drop(&mut self) {
        if !self.detached {
            self.kill_all();
        }
    }
}
