//! `palisade`, the wallet: the command line (clap derive) and exit codes.
//! The work is done in the `palisade_cli` library.
//!
//! Exit codes: 0 success, 1 any error (usage errors included), with
//! `error: …` and often `hint: …` on stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use palisade_cli::commands::transfer::{Sending, TransferRequest};
use palisade_cli::commands::{Context, balance, chain, keys, slashing, stake, transfer};
use palisade_cli::config::{Config, GENESIS_ENV, HOME_ENV, KEY_ENV, NODE_ENV, PASSWORD_FILE_ENV, resolve_home};
use palisade_cli::error::{Result, WalletError};
use palisade_cli::output::{Format, Report, print_error, print_report};

const ABOUT: &str = "The Palisade wallet: keys, balances (optionally proven), transfers, transactions, blocks";

const EXAMPLES: &str = "\
Against a local testnet (`cargo run --release -p palisade-testnet -- up`):
  palisade keys import-dev alice --insecure-fast-kdf   # INSECURE public dev key, funded at genesis
  palisade keys create savings
  palisade balance alice --prove
  palisade transfer --key alice --to pal1… --amount 1.5
  palisade status
  palisade block 0 12 --json

Settings: flags, then environment variables (PALISADE_HOME, PALISADE_NODE, PALISADE_GENESIS,
PALISADE_KEY, PALISADE_PASSWORD_FILE), then <home>/config.toml, then the defaults (the local
testnet's nodes, the built-in dev genesis). The key password comes from --password-file, else
$PALISADE_PASSWORD, else a prompt. See docs/wallet.md.";

/// `palisade`.
#[derive(Parser, Debug)]
#[command(name = "palisade", version, about = ABOUT, after_help = EXAMPLES, propagate_version = true)]
struct Cli {
    /// Wallet home holding keys/ and config.toml [default: $HOME/.palisade]
    #[arg(long, global = true, value_name = "DIR", env = HOME_ENV)]
    home: Option<PathBuf>,
    /// Node JSON-RPC URL used for every shard [default: config `node` and [shard_nodes], else the local
    /// testnet: http://127.0.0.1:27001 for shard 0]
    #[arg(long, global = true, value_name = "URL", env = NODE_ENV)]
    node: Option<String>,
    /// Genesis file of the network [default: config `genesis`, else the built-in dev genesis]
    #[arg(long, global = true, value_name = "FILE", env = GENESIS_ENV)]
    genesis: Option<PathBuf>,
    /// Key to use [default: config `default_key`, else the only key]
    #[arg(long, global = true, value_name = "NAME", env = KEY_ENV)]
    key: Option<String>,
    /// File holding the key password (else $PALISADE_PASSWORD, else a prompt)
    #[arg(long, global = true, value_name = "FILE", env = PASSWORD_FILE_ENV)]
    password_file: Option<PathBuf>,
    /// Print one JSON object on stdout instead of text (errors too)
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create, list, show, import and export encrypted keys
    #[command(subcommand)]
    Keys(KeysCommand),
    /// An account's balance in PAL; --prove checks it against a certified block
    #[command(after_help = "Examples:\n  palisade balance\n  palisade balance alice --prove\n  palisade balance pal1…")]
    Balance {
        /// An address (pal1…) or a key name [default: the selected key]
        #[arg(value_name = "ADDRESS|KEY")]
        target: Option<String>,
        /// Verify the balance with a Merkle proof against a header whose commit certificate is checked
        /// against the committee in genesis
        #[arg(long)]
        prove: bool,
    },
    /// Send PAL to an address on the sender's shard, then wait until it is final
    #[command(after_help = "Example:\n  palisade transfer --key alice --to pal1… --amount 1.5 --fee 0.00001")]
    Transfer {
        /// The recipient (pal1…); it must live in the sender's shard for now
        #[arg(long, value_name = "ADDRESS")]
        to: String,
        /// How much, in PAL (up to 9 decimals)
        #[arg(long, value_name = "PAL")]
        amount: String,
        #[command(flatten)]
        send: SendArgs,
    },
    /// Bond stake to a validator you operate, or unbond it (networks with staking on)
    #[command(subcommand)]
    Stake(StakeCommand),
    /// Where a transaction stands: final, pending, rejected or unknown
    Tx {
        /// The transaction id (64 hex digits)
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Every shard's height and health
    Status,
    /// Every shard's base fee: the least a transaction pays there now (it rises while the shard is congested)
    Fee,
    /// A final block, its transactions, and its verified commit certificate
    Block {
        /// The shard
        shard: u32,
        /// The height (1 is the first block)
        height: u64,
    },
    /// Each committee member's stake, rewards, jailed status and the offence it was slashed for
    Validators {
        /// Only this shard [default: every shard]
        shard: Option<u32>,
    },
    /// Equivocation evidence
    #[command(subcommand)]
    Evidence(EvidenceCommand),
}

/// How a transaction is paid for and waited on.
#[derive(clap::Args, Debug)]
struct SendArgs {
    /// The whole fee in PAL [default: the shard's base fee plus a tip of config `fee`, else 0.000001]
    #[arg(long, value_name = "PAL")]
    fee: Option<String>,
    /// Refuse to pay a fee above this, in PAL (the base fee rises while a shard is congested)
    #[arg(long, value_name = "PAL")]
    max_fee: Option<String>,
    /// Only blocks up to N heights above the shard's current one may include it: late, it is dropped
    #[arg(long, value_name = "N")]
    expires_in: Option<u64>,
    /// Return once submitted instead of waiting for finality
    #[arg(long)]
    no_wait: bool,
    /// How long to wait for finality, in seconds [default: config `wait_secs`, else 60]
    #[arg(long, value_name = "SECS")]
    timeout: Option<u64>,
}

impl SendArgs {
    fn sending(self) -> Sending {
        Sending {
            fee: self.fee,
            max_fee: self.max_fee,
            expires_in: self.expires_in,
            wait: !self.no_wait,
            wait_secs: self.timeout,
        }
    }
}

#[derive(Subcommand, Debug)]
enum StakeCommand {
    /// Bond PAL from the selected key (the validator's operator) to a validator of its shard
    #[command(after_help = "On the validator's machine:\n  palisade-node keys prove-possession --operator pal1… \
                            --shard 0 > proof.json\nThen, with the operator's key:\n  palisade stake bond \
                            --key operator --proof-file proof.json --amount 1000")]
    Bond {
        /// What `palisade-node keys prove-possession` printed for this operator
        #[arg(long, value_name = "FILE")]
        proof_file: PathBuf,
        /// How much, in PAL
        #[arg(long, value_name = "PAL")]
        amount: String,
        #[command(flatten)]
        send: SendArgs,
    },
    /// Start unbonding stake of a validator the selected key operates; it returns after the unbonding period
    Unbond {
        /// The validator (pal1…)
        #[arg(long, value_name = "ADDRESS")]
        validator: String,
        /// How much, in PAL (all of it, or leave at least the minimum stake)
        #[arg(long, value_name = "PAL")]
        amount: String,
        #[command(flatten)]
        send: SendArgs,
    },
}

#[derive(Subcommand, Debug)]
enum EvidenceCommand {
    /// Hand evidence (two conflicting votes by one validator) to a node of its shard, which slashes and jails
    /// the validator in its next block. FILE holds the evidence as hex (its bincode encoding) or JSON
    Submit {
        /// The evidence file
        file: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Generate a new random key, encrypted under a new password
    Create {
        /// The key's name
        name: String,
        /// Replace an existing key of that name (its key is lost unless exported)
        #[arg(long)]
        force: bool,
    },
    /// List the keys with their addresses and shards (no password needed)
    List,
    /// A key's address and shard (no password needed)
    Show {
        /// The key's name [default: the selected key]
        name: Option<String>,
    },
    /// Import a 32-byte seed given as 64 hex digits (from --seed-file, a prompt, or stdin)
    Import {
        /// The name to store it under
        name: String,
        /// File holding the seed as hex
        #[arg(long, value_name = "FILE")]
        seed_file: Option<PathBuf>,
        /// Replace an existing key of that name
        #[arg(long)]
        force: bool,
    },
    /// Store the INSECURE dev key derived from NAME (alice, bob, carol, dave, faucet); dev chains only
    ImportDev {
        /// The dev name, also the key's name
        name: String,
        /// Encrypt with cheap KDF parameters (fine for public dev keys only)
        #[arg(long)]
        insecure_fast_kdf: bool,
        /// Replace an existing key of that name
        #[arg(long)]
        force: bool,
    },
    /// Print a key's secret seed as hex (asks for the password)
    Export {
        /// The key's name
        name: String,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors; everything else exits 1.
            return if e.use_stderr() { ExitCode::FAILURE } else { ExitCode::SUCCESS };
        }
    };
    let format = if cli.json { Format::Json } else { Format::Human };
    match run(cli, format) {
        Ok(report) => {
            print_report(format, &report);
            ExitCode::SUCCESS
        }
        Err(error) => {
            print_error(format, &error);
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, format: Format) -> Result<Report> {
    let home = resolve_home(cli.home)?;
    let config = Config::load(&home)?;
    let ctx = Context {
        home,
        config,
        format,
        node: cli.node,
        genesis: cli.genesis,
        key: cli.key,
        password_file: cli.password_file,
    };
    match cli.command {
        Command::Keys(command) => match command {
            KeysCommand::Create { name, force } => keys::create(&ctx, &name, force),
            KeysCommand::List => keys::list(&ctx),
            KeysCommand::Show { name } => keys::show(&ctx, name.as_deref()),
            KeysCommand::Import { name, seed_file, force } => keys::import(&ctx, &name, seed_file.as_deref(), force),
            KeysCommand::ImportDev { name, insecure_fast_kdf, force } => {
                keys::import_dev(&ctx, &name, insecure_fast_kdf, force)
            }
            KeysCommand::Export { name } => keys::export(&ctx, &name),
        },
        Command::Balance { target, prove } => block_on(balance::balance(&ctx, target.as_deref(), prove)),
        Command::Transfer { to, amount, send } => {
            let request = TransferRequest { to, amount, sending: send.sending() };
            block_on(transfer::transfer(&ctx, &request))
        }
        Command::Stake(StakeCommand::Bond { proof_file, amount, send }) => {
            block_on(stake::bond(&ctx, &proof_file, &amount, &send.sending()))
        }
        Command::Stake(StakeCommand::Unbond { validator, amount, send }) => {
            block_on(stake::unbond(&ctx, &validator, &amount, &send.sending()))
        }
        Command::Tx { id } => block_on(chain::tx(&ctx, &id)),
        Command::Status => block_on(chain::status(&ctx)),
        Command::Fee => block_on(chain::fee(&ctx)),
        Command::Block { shard, height } => block_on(chain::block(&ctx, shard, height)),
        Command::Validators { shard } => block_on(slashing::validators(&ctx, shard)),
        Command::Evidence(EvidenceCommand::Submit { file }) => block_on(slashing::submit_evidence(&ctx, &file)),
    }
}

/// Runs one command's future on a single-threaded runtime.
fn block_on<F: Future<Output = Result<Report>>>(future: F) -> Result<Report> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| WalletError::Io { action: "start", path: "the async runtime".into(), source })?;
    runtime.block_on(future)
}
