//! `palisade-testnet`: run a whole Palisade network on one machine.
//!
//! Today it generates the dev genesis; the deterministic simulator (`sim`)
//! and the local process testnet (`up`, `status`, `bench`, `chaos`, …) land
//! with their issues. Commands that do not exist yet are not listed.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use palisade_ledger::Genesis;

#[derive(Parser)]
#[command(name = "palisade-testnet", version, about = "Run a whole Palisade network on one machine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the dev genesis: S shards × N validators and the well-known dev
    /// accounts (alice, bob, carol, dave, faucet), all with keys derived from
    /// their names. INSECURE by design: for local networks only.
    Genesis {
        /// Number of shards.
        #[arg(long, default_value_t = 4)]
        shards: u32,
        /// Validators on each shard's committee.
        #[arg(long, default_value_t = 4)]
        validators_per_shard: u32,
        /// Where to write it; `-` for stdout.
        #[arg(long, default_value = "genesis.json")]
        out: PathBuf,
        /// Do not write: fail if the file differs from what would be written.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Genesis { shards, validators_per_shard, out, check } => {
            genesis(shards, validators_per_shard, &out, check)
        }
    }
}

fn genesis(shards: u32, validators_per_shard: u32, out: &PathBuf, check: bool) -> Result<()> {
    let genesis = Genesis::dev(shards, validators_per_shard);
    let warnings = genesis.validate().context("generated genesis is invalid")?;
    for warning in warnings {
        eprintln!("warning: {}: {}", warning.field, warning.reason);
    }
    let text = genesis.to_json();
    if check {
        let existing = std::fs::read_to_string(out).with_context(|| format!("reading {}", out.display()))?;
        if existing != text {
            bail!(
                "{} differs from the generated dev genesis; regenerate it with `palisade-testnet genesis`",
                out.display()
            );
        }
        println!("{} is the dev genesis ({shards} shards × {validators_per_shard} validators)", out.display());
        return Ok(());
    }
    if out.as_os_str() == "-" {
        print!("{text}");
    } else {
        std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
        println!(
            "wrote {} ({shards} shards × {validators_per_shard} validators, chain {})",
            out.display(),
            genesis.chain_id
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_genesis_is_the_generated_dev_genesis() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../genesis.json");
        let committed = std::fs::read_to_string(path).expect("genesis.json at the repository root");
        assert_eq!(committed, Genesis::dev(4, 4).to_json(), "regenerate with `palisade-testnet genesis`");
        let (loaded, warnings) = Genesis::from_json(&committed).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(loaded.shard_count, 4);
        assert_eq!(loaded.committees.iter().map(|c| c.validators.len()).sum::<usize>(), 16);
    }
}
