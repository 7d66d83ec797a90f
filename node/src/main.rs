//! `palisade-node`, the validator binary: `init` a data directory, manage
//! the validator key with `keys`, and `run` the node. See `docs/node.md`.
//!
//! Errors end the process with status 1 and one `error: …` line, followed
//! by its causes; usage errors exit with status 2 (clap).

mod cli;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use palisade_ledger::keystore::KeyFile;
use palisade_ledger::{Genesis, Keypair};
use palisade_node::config::{LogFormat, LogSection, NodeConfig};
use tracing::{info, warn};

use crate::cli::{Command, PasswordUse, RunArgs};

/// How long the runtime waits for stray tasks once the node has returned.
const RUNTIME_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let cli = cli::parse();
    let result = match cli.command {
        Command::Init(args) => cli::init(args),
        Command::Keys(command) => cli::keys(command),
        Command::Run(args) => run(*args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            print_error(&error);
            ExitCode::FAILURE
        }
    }
}

/// `error: <what>` then one `caused by:` line per cause not already said.
fn print_error(error: &anyhow::Error) {
    let mut said = error.to_string();
    eprintln!("error: {said}");
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        // Many errors repeat their source in their own message.
        if !said.contains(&text) {
            eprintln!("  caused by: {text}");
            said.push_str(&text);
        }
    }
}

/// `palisade-node run`.
fn run(args: RunArgs) -> Result<()> {
    let config = NodeConfig::load(args.config.as_deref(), &args.overrides)?;
    init_tracing(&config.log)?;
    info!(
        version = env!("CARGO_PKG_VERSION"),
        config = %args.config.as_deref().map_or("(none: defaults and flags)".into(), |p| p.display().to_string()),
        data_dir = %config.node.data_dir.display(),
        "starting palisade-node"
    );
    let genesis_path = &config.node.genesis;
    let (genesis, warnings) =
        Genesis::load(genesis_path).with_context(|| format!("loading genesis {}", genesis_path.display()))?;
    for warning in warnings {
        warn!(field = %warning.field, "genesis: {}", warning.reason);
    }
    let dev = palisade_node::node::DevOptions {
        misbehave: args.misbehave,
        clock_offset_ms: args.dev_clock_offset_ms.unwrap_or(0),
    };
    dev.check(&genesis).map_err(anyhow::Error::msg)?;
    if let Some(mode) = dev.misbehave {
        warn!(%mode, "MISBEHAVING ON PURPOSE (test-only mode)");
    }
    if dev.clock_offset_ms != 0 {
        warn!(offset_ms = dev.clock_offset_ms, "CLOCK SKEWED ON PURPOSE (test-only option)");
    }
    let key = load_validator_key(&config)?;
    let (p2p_key, created) = cli::load_or_create_p2p_key(&config.p2p_key_path())?;
    if created {
        info!(path = %config.p2p_key_path().display(), "created a new p2p identity");
    }
    info!(peer_id = %p2p_key.public().to_peer_id(), chain_id = %genesis.chain_id, "identity");
    start_node(config, key, p2p_key, genesis, dev)
}

/// The validator key, if the key file exists. A missing default file means
/// "follow only"; a missing file that was configured explicitly is an error,
/// since it is more likely a typo than a wish to stop validating.
fn load_validator_key(config: &NodeConfig) -> Result<Option<Keypair>> {
    let path = config.key_file_path();
    if !path.try_exists().with_context(|| format!("checking {}", path.display()))? {
        if config.node.key_file.is_some() {
            bail!("node.key_file: {} does not exist (leave node.key_file unset to run without a key)", path.display());
        }
        info!(path = %path.display(), "no validator key file: following node.track_shards only");
        return Ok(None);
    }
    cli::warn_if_not_private(&path);
    let file = KeyFile::read(&path).with_context(|| format!("reading key file {}", path.display()))?;
    let password = cli::read_password(config.node.password_file.as_deref(), PasswordUse::Unlock, &path)?;
    let key = file.decrypt(&password).with_context(|| format!("opening key file {}", path.display()))?;
    info!(address = %key.address(), "validator key loaded");
    Ok(Some(key))
}

/// Logs to stderr, readable or as JSON lines; span fields (`shard`,
/// `height`, `view`, `peer`) come with every event inside the span.
fn init_tracing(log: &LogSection) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&log.level)
        .with_context(|| format!("log.level {:?} is not a valid filter directive", log.level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let installed = match log.format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).with_span_list(true).try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot start logging: {e}"))
}

/// The single call into the node proper (`palisade_node::node::run`), on a
/// multi-threaded tokio runtime; returns when the node has stopped (SIGTERM,
/// SIGINT or a fatal error).
fn start_node(
    config: NodeConfig,
    key: Option<Keypair>,
    p2p_key: libp2p::identity::Keypair,
    genesis: Genesis,
    dev: palisade_node::node::DevOptions,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("palisade-node")
        .build()
        .context("starting the tokio runtime")?;
    let result = runtime.block_on(palisade_node::node::run(config, key, p2p_key, genesis, dev));
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_GRACE);
    result
}
