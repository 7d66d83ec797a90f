//! The command line of `palisade-node`: what each command accepts (clap
//! derive) and the commands that prepare a node — `init` and `keys` — plus
//! the key loading `run` shares with them. `run` itself is in `main.rs`.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use palisade_ledger::keystore::{self, KdfParams, KeyFile, KeystoreError, Zeroizing};
use palisade_ledger::{Genesis, Keypair};
use palisade_node::config::{
    CONFIG_FILE, ConfigOverrides, DEFAULT_DATA_DIR, NodeConfig, P2P_KEY_FILE, PASSWORD_ENV, VALIDATOR_KEY_FILE,
};
use palisade_password::PasswordError;
pub use palisade_password::PasswordUse;

/// Largest seed hex file read (64 hex digits, some whitespace, maybe `0x`).
const MAX_SEED_FILE_BYTES: u64 = 1024;
/// Largest p2p identity file read (a protobuf-encoded ed25519 key is 68 bytes).
const MAX_P2P_KEY_BYTES: u64 = 4096;

const ABOUT: &str = "Palisade validator node: BFT consensus per shard, a sharded ledger, JSON-RPC and metrics";

const EXAMPLES: &str = "\
Set up and run a validator:
  palisade-node init --data-dir /var/lib/palisade
  palisade-node keys new --data-dir /var/lib/palisade
  palisade-node keys show --data-dir /var/lib/palisade      # give this address to the network
  palisade-node run --config /var/lib/palisade/config.toml --genesis /etc/palisade/genesis.json

Follow shards 0 and 2 without a key:
  palisade-node run --data-dir ./follower --track-shards 0,2

A local dev network (INSECURE dev keys, see `palisade-testnet`):
  palisade-node keys import-dev validator-0-0 --genesis genesis.json --insecure-fast-kdf

Every setting of the config file is also a flag of `run` (see `palisade-node run --help`).
The key password comes from --password-file / node.password_file, else $PALISADE_KEY_PASSWORD,
else a prompt. SIGTERM or SIGINT (Ctrl-C) stops the node gracefully.";

/// `palisade-node`.
#[derive(Parser, Debug)]
#[command(name = "palisade-node", version, about = ABOUT, after_help = EXAMPLES, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a data directory with a commented config.toml and the node's p2p identity (p2p.key)
    #[command(after_help = "Example:\n  palisade-node init --data-dir /var/lib/palisade")]
    Init(InitArgs),
    /// Create, import or show the encrypted validator key
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run the node until SIGTERM or SIGINT
    #[command(after_help = RUN_EXAMPLES)]
    Run(Box<RunArgs>),
}

const RUN_EXAMPLES: &str = "\
Settings come from the defaults, then the --config file, then these flags (flags win).
Relative paths are relative to the working directory.

Examples:
  palisade-node run --config /var/lib/palisade/config.toml
  palisade-node run --config config.toml --p2p-bootstrap /ip4/10.0.0.1/tcp/26656 --log-format json
  RUST_LOG=info,palisade_node::net=debug palisade-node run --config config.toml";

/// `init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// The data directory to create
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Overwrite an existing config.toml (an existing p2p.key is kept)
    #[arg(long)]
    pub force: bool,
}

/// `keys …`.
#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Generate a new random validator key and encrypt it under a password
    #[command(after_help = "Example:\n  palisade-node keys new --data-dir /var/lib/palisade")]
    New(NewKeyArgs),
    /// Encrypt an existing 32-byte ed25519 seed, read as hex from a file
    #[command(after_help = "Example:\n  palisade-node keys import --seed-hex-file seed.hex --key-file validator.key")]
    Import(ImportArgs),
    /// Store the INSECURE dev key derived from NAME (only for dev chains)
    #[command(after_help = "Dev keys are derived from public names: anyone can sign with them. They are refused\n\
                            unless the genesis chain id is a dev chain (starts with palisade-dev).\n\n\
                            Example:\n  palisade-node keys import-dev validator-0-0 --genesis genesis.json \
                            --insecure-fast-kdf")]
    ImportDev(ImportDevArgs),
    /// Print the address of a key file (no password needed)
    Show(ShowArgs),
    /// Sign, with the validator key, the proof of possession an operator's
    /// bond needs (staking); prints it as JSON for `palisade stake bond --proof-file`
    #[command(after_help = "Example:\n  palisade-node keys prove-possession --operator pal1… --shard 1 \
                            --genesis genesis.json --data-dir /var/lib/palisade > proof.json")]
    ProvePossession(ProveArgs),
}

/// `keys prove-possession`.
#[derive(Args, Debug)]
pub struct ProveArgs {
    /// The account that will bond this validator (its operator)
    #[arg(long, value_name = "ADDRESS")]
    pub operator: String,
    /// The shard whose committee the validator stands for
    #[arg(long)]
    pub shard: u32,
    /// The genesis file (its chain id is signed)
    #[arg(long, value_name = "FILE", default_value = "genesis.json")]
    pub genesis: PathBuf,
    /// File holding the key password (else $PALISADE_KEY_PASSWORD, else a prompt)
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// The data directory holding validator.key and p2p.key
    #[command(flatten)]
    pub location: KeyFileArgs,
}

/// Where the key file is.
#[derive(Args, Debug)]
pub struct KeyFileArgs {
    /// The encrypted key file [default: <DIR>/validator.key]
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
    /// The data directory holding validator.key
    #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
}

impl KeyFileArgs {
    fn path(&self) -> PathBuf {
        self.key_file.clone().unwrap_or_else(|| self.data_dir.join(VALIDATOR_KEY_FILE))
    }
}

/// How a new key file is protected and written.
#[derive(Args, Debug)]
pub struct NewKeyFileArgs {
    #[command(flatten)]
    location: KeyFileArgs,
    /// File holding the password (else $PALISADE_KEY_PASSWORD, else a prompt that asks twice)
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Replace an existing key file (the key in it is lost unless you have a copy)
    #[arg(long)]
    pub force: bool,
}

/// `keys new`.
#[derive(Args, Debug)]
pub struct NewKeyArgs {
    #[command(flatten)]
    output: NewKeyFileArgs,
}

/// `keys import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// File holding the 32-byte seed as 64 hex digits
    #[arg(long, value_name = "FILE")]
    pub seed_hex_file: PathBuf,
    #[command(flatten)]
    output: NewKeyFileArgs,
}

/// `keys import-dev`.
#[derive(Args, Debug)]
pub struct ImportDevArgs {
    /// The dev name, like validator-0-0 or alice
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The genesis file; its chain id must be a dev chain
    #[arg(long, value_name = "FILE", default_value = "genesis.json")]
    pub genesis: PathBuf,
    /// Encrypt with cheap KDF parameters (fast to open; fine for public dev keys only)
    #[arg(long)]
    pub insecure_fast_kdf: bool,
    #[command(flatten)]
    output: NewKeyFileArgs,
}

/// `keys show`.
#[derive(Args, Debug)]
pub struct ShowArgs {
    #[command(flatten)]
    location: KeyFileArgs,
}

/// `run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The TOML config file (as written by `init`); without it, defaults and flags only
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Every setting of the config file.
    #[command(flatten)]
    pub overrides: ConfigOverrides,
    /// TEST ONLY, refused unless the genesis is a dev chain: misbehave on purpose as a validator
    #[arg(long, value_name = "MODE")]
    pub misbehave: Option<palisade_node::byzantine::Misbehaviour>,
    /// TEST ONLY, refused unless the genesis is a dev chain: run the shards' clocks this many ms
    /// ahead of the system clock (negative: behind), to rehearse a skewed clock
    #[arg(long, value_name = "MS", allow_hyphen_values = true)]
    pub dev_clock_offset_ms: Option<i64>,
}

/// Parses the command line (exiting on `--help`, `--version` or a usage
/// error). `run --help` shows each setting's default, taken from
/// [`NodeConfig::default`] so it cannot go stale.
pub fn parse() -> Cli {
    let ids: Vec<String> =
        ConfigOverrides::command().get_arguments().map(|a| a.get_id().as_str().to_string()).collect();
    let command = Cli::command().mut_subcommand("run", |run| {
        ids.iter().fold(run, |run, id| match NodeConfig::default_text(id) {
            Some(default) => run.mut_arg(id, |arg| {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                arg.help(format!("{help} [default: {default}]"))
            }),
            None => run,
        })
    });
    Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit())
}

/// `palisade-node init`.
pub fn init(args: InitArgs) -> Result<()> {
    let dir = &args.data_dir;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    // An absolute data_dir lets the config be used from any working directory.
    let dir = dir.canonicalize().with_context(|| format!("resolving {}", dir.display()))?;
    let config_path = dir.join(CONFIG_FILE);
    if config_path.exists() && !args.force {
        bail!("{} already exists; pass --force to overwrite it", config_path.display());
    }
    let mut config = NodeConfig::default();
    config.node.data_dir = dir.clone();
    keystore::write_private_file(&config_path, config.to_toml().as_bytes(), args.force)
        .with_context(|| format!("writing {}", config_path.display()))?;
    println!("wrote {}", config_path.display());

    let p2p_path = dir.join(P2P_KEY_FILE);
    let (p2p_key, created) = load_or_create_p2p_key(&p2p_path)?;
    let verb = if created { "created" } else { "kept the existing" };
    println!("{verb} p2p identity {} (peer id {})", p2p_path.display(), p2p_key.public().to_peer_id());
    println!(
        "\nNext:\n  palisade-node keys new --data-dir {dir}       # or: keys import, to bring an existing key\n  \
         palisade-node run --config {config} --genesis <genesis.json>",
        dir = dir.display(),
        config = config_path.display(),
    );
    Ok(())
}

/// `palisade-node keys …`.
pub fn keys(command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::New(args) => {
            let output = &args.output;
            refuse_existing(output)?;
            let keypair = keystore::generate_keypair().context("generating a key")?;
            save_key(&keypair, output, KdfParams::default())
        }
        KeysCommand::Import(args) => {
            refuse_existing(&args.output)?;
            let seed = read_seed_hex(&args.seed_hex_file)?;
            let keypair = Keypair::from_seed(*seed);
            save_key(&keypair, &args.output, KdfParams::default())
        }
        KeysCommand::ImportDev(args) => import_dev(&args),
        KeysCommand::Show(args) => {
            let path = args.location.path();
            let file = KeyFile::read(&path).with_context(|| format!("reading key file {}", path.display()))?;
            println!("{}", file.address());
            Ok(())
        }
        KeysCommand::ProvePossession(args) => prove_possession(&args),
    }
}

/// `keys prove-possession`: everything checked before the password is asked.
fn prove_possession(args: &ProveArgs) -> Result<()> {
    let operator = palisade_ledger::Address::parse(args.operator.trim()).context("--operator")?;
    let (genesis, _) =
        Genesis::load(&args.genesis).with_context(|| format!("loading genesis {}", args.genesis.display()))?;
    if args.shard >= genesis.shard_count {
        bail!("--shard {}: the network has {} shards", args.shard, genesis.shard_count);
    }
    if genesis.params.staking.is_none() {
        bail!("staking is off on {} (its genesis has no params.staking): no bond can use this proof", genesis.chain_id);
    }
    let p2p_path = args.location.data_dir.join(P2P_KEY_FILE);
    if !p2p_path.exists() {
        bail!("{} is missing: create the node's data directory with `palisade-node init` first", p2p_path.display());
    }
    let (p2p, _) = load_or_create_p2p_key(&p2p_path)?;
    let p2p_key = p2p.public().try_into_ed25519().context("the p2p identity is not an ed25519 key")?.to_bytes();
    let path = args.location.path();
    let file = KeyFile::read(&path).with_context(|| format!("reading key file {}", path.display()))?;
    let password = read_password(args.password_file.as_deref(), PasswordUse::Unlock, &path)?;
    let key = file.decrypt(&password).with_context(|| format!("opening key file {}", path.display()))?;
    let proof = palisade_ledger::stake::prove_possession(&key, &genesis.chain_id, args.shard, &operator, &p2p_key);
    let json = palisade_ledger::api::PossessionJson {
        chain_id: genesis.chain_id.clone(),
        shard: args.shard,
        validator: key.address(),
        operator,
        p2p_key: hex::encode(p2p_key),
        proof: hex::encode(proof.0),
    };
    println!("{}", serde_json::to_string_pretty(&json).context("encoding the proof")?);
    Ok(())
}

fn import_dev(args: &ImportDevArgs) -> Result<()> {
    let (genesis, _) =
        Genesis::load(&args.genesis).with_context(|| format!("loading genesis {}", args.genesis.display()))?;
    if !genesis.is_dev_chain() {
        bail!(
            "refusing to import dev key {:?}: chain {:?} is not a dev chain. Dev keys are derived from public \
             names, so anyone can sign with them; use `keys new` or `keys import` for a real network",
            args.name,
            genesis.chain_id
        );
    }
    refuse_existing(&args.output)?;
    let keypair = genesis.dev_key(&args.name);
    match genesis.role_of(&keypair.address()) {
        Some(role) => eprintln!("{} is {role} in {}", args.name, genesis.chain_id),
        None => eprintln!("warning: {} is in no committee and holds no balance in {}", args.name, genesis.chain_id),
    }
    let params = if args.insecure_fast_kdf { KdfParams::insecure_fast() } else { KdfParams::default() };
    save_key(&keypair, &args.output, params)
}

/// Fails before asking for a password if the key file exists and --force is absent.
fn refuse_existing(output: &NewKeyFileArgs) -> Result<()> {
    let path = output.location.path();
    if !output.force && path.exists() {
        bail!("{} already exists; pass --force to replace it (the key in it would be lost)", path.display());
    }
    Ok(())
}

fn save_key(keypair: &Keypair, output: &NewKeyFileArgs, params: KdfParams) -> Result<()> {
    let path = output.location.path();
    let password = read_password(output.password_file.as_deref(), PasswordUse::NewKey, &path)?;
    let file = KeyFile::encrypt(keypair, &password, params).context("encrypting the key")?;
    file.write(&path, output.force).map_err(|e| match e {
        KeystoreError::Exists { path } => {
            anyhow::anyhow!(
                "{} already exists; pass --force to replace it (the key in it would be lost)",
                path.display()
            )
        }
        other => anyhow::Error::new(other).context(format!("writing {}", path.display())),
    })?;
    println!("wrote {}", path.display());
    println!("address: {}", keypair.address());
    Ok(())
}

/// Reads a hex seed file: 64 hex digits, surrounding whitespace and a `0x` allowed.
fn read_seed_hex(path: &Path) -> Result<Zeroizing<[u8; 32]>> {
    let bytes =
        keystore::read_secret_file(path, MAX_SEED_FILE_BYTES).with_context(|| format!("reading {}", path.display()))?;
    keystore::parse_seed_hex(&bytes).with_context(|| format!("{} is not a seed", path.display()))
}

/// The password: from `file` (one trailing newline dropped), else from
/// `$PALISADE_KEY_PASSWORD`, else prompted on the terminal.
pub fn read_password(file: Option<&Path>, usage: PasswordUse, key_file: &Path) -> Result<Zeroizing<Vec<u8>>> {
    palisade_password::read_password(file, PASSWORD_ENV, usage, &key_file.display().to_string()).map_err(|e| match e {
        // Only prompt someone who can answer: a service without a password
        // source fails at once instead of waiting on a terminal it does not have.
        PasswordError::NoTerminal => anyhow::anyhow!(
            "cannot prompt for the password of {}: stdin is not a terminal; give a password file \
             (--password-file, or node.password_file) or set ${PASSWORD_ENV}",
            key_file.display()
        ),
        PasswordError::File(e) => anyhow::Error::new(e).context("reading the password file"),
        other => anyhow::Error::new(other),
    })
}

/// Warns (on stderr) when a secret file is readable by others.
pub fn warn_if_not_private(path: &Path) {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            mode = %format!("{:o}", meta.permissions().mode() & 0o777),
            "secret file is readable by other users; chmod 600 it"
        );
    }
}

/// The node's libp2p identity at `path`, created (ed25519, mode 0600) if
/// missing; returns whether it was created. The file holds libp2p's
/// protobuf encoding; a raw 32-byte ed25519 secret is accepted too.
pub fn load_or_create_p2p_key(path: &Path) -> Result<(libp2p::identity::Keypair, bool)> {
    if path.exists() {
        warn_if_not_private(path);
        let bytes = keystore::read_secret_file(path, MAX_P2P_KEY_BYTES)
            .with_context(|| format!("reading {}", path.display()))?;
        let key = if bytes.len() == 32 {
            let mut secret = bytes.clone();
            libp2p::identity::Keypair::ed25519_from_bytes(secret.as_mut_slice())
        } else {
            libp2p::identity::Keypair::from_protobuf_encoding(&bytes)
        }
        .with_context(|| format!("{} is not a libp2p identity key", path.display()))?;
        return Ok((key, false));
    }
    let key = libp2p::identity::Keypair::generate_ed25519();
    let encoded = Zeroizing::new(key.to_protobuf_encoding().context("encoding the p2p identity")?);
    keystore::write_private_file(path, &encoded, false).with_context(|| format!("writing {}", path.display()))?;
    Ok((key, true))
}
