//! The `palisade` binary as a user runs it, against a temporary home and no
//! node (or one that cannot be reached): keys, password handling, file
//! modes, address and shard checks, error messages and `--json`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failure report

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use palisade_ledger::{Genesis, Keypair};
use serde_json::Value;

const PASSWORD: &str = "correct horse battery staple";
const UNREACHABLE: &str = "http://127.0.0.1:1";

/// A wallet home with a password file, and the `palisade` command run in it.
struct Wallet {
    dir: tempfile::TempDir,
}

impl Wallet {
    fn new() -> Wallet {
        let wallet = Wallet { dir: tempfile::tempdir().unwrap() };
        std::fs::write(wallet.password_file(), format!("{PASSWORD}\n")).unwrap();
        wallet
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn password_file(&self) -> PathBuf {
        self.dir.path().join("password")
    }

    /// `palisade --home HOME ARGS` with no stdin and no PALISADE_* variables.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_palisade"));
        for (name, _) in std::env::vars() {
            if name.starts_with("PALISADE_") {
                command.env_remove(name);
            }
        }
        command.arg("--home").arg(self.home()).args(args).stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Runs with the password file; panics with the output unless it succeeds.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.command(args).arg("--password-file").arg(self.password_file()).output().unwrap();
        assert!(output.status.success(), "palisade {args:?} failed:\n{}", text(&output.stderr));
        text(&output.stdout)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ok(&all);
        serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not one JSON object ({e}): {out}"))
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the run failed with exit code 1 and an `error:` naming `needle`; returns stderr.
fn fails_with(output: &Output, needle: &str) -> String {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "expected exit 1; stderr:\n{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in:\n{stderr}");
    stderr
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn keys_create_list_show_export_import_round_trip() {
    let wallet = Wallet::new();
    let created = wallet.json(&["keys", "create", "main"]);
    let address = created["address"].as_str().unwrap().to_string();
    let file = PathBuf::from(created["file"].as_str().unwrap());
    assert_eq!(file, wallet.home().join("keys").join("main.json"));
    assert_eq!(mode(&file), 0o600, "key file mode");
    assert_eq!(mode(&wallet.home().join("keys")), 0o700, "key directory mode");

    // Shown and listed without a password, with its shard in the built-in genesis.
    let shown = wallet.run(&["keys", "show", "main"]);
    assert!(shown.status.success());
    assert!(text(&shown.stdout).contains(&address));
    let shard = created["shard"].as_u64().unwrap();
    assert!(shard < 4, "{created}");
    let listed = wallet.json(&["keys", "list"]);
    assert_eq!(listed["keys"][0]["name"], "main");
    assert_eq!(listed["keys"][0]["address"], address.as_str());

    // Export, then import the seed under another name: the same key.
    let seed = wallet.ok(&["keys", "export", "main"]).trim().to_string();
    assert_eq!(seed.len(), 64, "{seed}");
    let seed_file = wallet.dir.path().join("seed.hex");
    std::fs::write(&seed_file, format!("{seed}\n")).unwrap();
    let imported = wallet.json(&["keys", "import", "copy", "--seed-file", seed_file.to_str().unwrap()]);
    assert_eq!(imported["address"], address.as_str());

    // A known seed comes back out of export unchanged.
    let known = "7f".repeat(32);
    std::fs::write(&seed_file, &known).unwrap();
    let imported = wallet.json(&["keys", "import", "known", "--seed-file", seed_file.to_str().unwrap()]);
    assert_eq!(imported["address"], Keypair::from_seed([0x7f; 32]).address().to_string());
    assert_eq!(wallet.json(&["keys", "export", "known"])["seed"], known.as_str());
    assert_eq!(mode(&wallet.home().join("keys").join("known.json")), 0o600);

    // Nothing is overwritten without --force; with it, it is.
    let again = wallet.command(&["keys", "import", "known", "--seed-file", seed_file.to_str().unwrap()]);
    let stderr = fails_with(&{ again }.output().unwrap(), "already exists");
    assert!(stderr.contains("hint: pass --force"), "{stderr}");
    std::fs::write(&seed_file, "01".repeat(32)).unwrap();
    wallet.ok(&["keys", "import", "known", "--force", "--seed-file", seed_file.to_str().unwrap()]);
    assert_eq!(wallet.json(&["keys", "export", "known"])["seed"], "01".repeat(32).as_str());

    // Three keys and no default: commands that need one say which exist.
    let which = wallet.run(&["keys", "show"]);
    let stderr = fails_with(&which, "which key?");
    assert!(stderr.contains("copy, known, main"), "{stderr}");
}

#[test]
fn a_wrong_password_is_a_clear_error_and_nothing_is_printed() {
    let wallet = Wallet::new();
    wallet.ok(&["keys", "create", "main"]);
    let wrong = wallet.dir.path().join("wrong");
    std::fs::write(&wrong, "not the password").unwrap();
    let output = wallet.run(&["keys", "export", "main", "--password-file", wrong.to_str().unwrap()]);
    let stderr = fails_with(&output, "wrong password");
    assert!(stderr.contains("key `main`"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    assert!(output.stdout.is_empty(), "printed something: {}", text(&output.stdout));

    // The environment variable works too, and is checked the same way.
    let output = wallet.command(&["keys", "export", "main"]).env("PALISADE_PASSWORD", "nope").output().unwrap();
    fails_with(&output, "wrong password");
    let output = wallet.command(&["keys", "export", "main"]).env("PALISADE_PASSWORD", PASSWORD).output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));

    // No password source and no terminal: fail at once, saying how to give one.
    let output = wallet.run(&["keys", "export", "main"]);
    let stderr = fails_with(&output, "stdin is not a terminal");
    assert!(stderr.contains("--password-file") && stderr.contains("PALISADE_PASSWORD"), "{stderr}");

    // --json: the error is the one object on stdout.
    let output = wallet.run(&["--json", "keys", "export", "main", "--password-file", wrong.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(error["error"]["kind"], "wrong_password");
}

#[test]
fn a_bad_address_checksum_is_caught_before_anything_else() {
    let wallet = Wallet::new();
    let good = Keypair::dev("bob").address().to_string();
    let mut chars: Vec<char> = good.chars().collect();
    let last = chars.len() - 1;
    chars[last] = if chars[last] == 'q' { 'p' } else { 'q' };
    let typo: String = chars.into_iter().collect();

    let output = wallet.run(&["--node", UNREACHABLE, "transfer", "--to", &typo, "--amount", "1"]);
    let stderr = fails_with(&output, "not a valid address");
    assert!(stderr.contains("checksum") && stderr.contains(&typo), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    let output = wallet.run(&["--node", UNREACHABLE, "balance", &typo]);
    fails_with(&output, "not a valid address");
    // Not an address and not a key either.
    let output = wallet.run(&["--node", UNREACHABLE, "balance", "nobody"]);
    fails_with(&output, "neither an address");
}

#[test]
fn an_unreachable_node_is_named_with_a_hint() {
    let wallet = Wallet::new();
    let address = Keypair::dev("alice").address().to_string();
    for args in [vec!["balance", address.as_str()], vec!["status"], vec!["block", "0", "1"]] {
        let mut all = vec!["--node", UNREACHABLE];
        all.extend(args.iter().copied());
        let output = wallet.run(&all);
        let stderr = fails_with(&output, "unreachable");
        assert!(stderr.contains(UNREACHABLE), "{stderr}");
        assert!(stderr.contains("hint: is the local testnet running?"), "{stderr}");
        assert!(stderr.contains("palisade-testnet -- up") && stderr.contains("--node URL"), "{stderr}");
    }
    // The node also comes from the environment and the config file.
    let output = wallet.command(&["balance", &address]).env("PALISADE_NODE", UNREACHABLE).output().unwrap();
    fails_with(&output, UNREACHABLE);
    std::fs::create_dir_all(wallet.home()).unwrap();
    std::fs::write(wallet.home().join("config.toml"), "node = \"http://127.0.0.1:2\"\n").unwrap();
    let output = wallet.run(&["balance", &address]);
    fails_with(&output, "http://127.0.0.1:2");

    let output = wallet.run(&["--json", "--node", UNREACHABLE, "status"]);
    assert_eq!(output.status.code(), Some(1));
    let error: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(error["error"]["kind"], "node_unreachable");
    assert!(error["error"]["hint"].as_str().unwrap().contains("testnet"));
}

#[test]
fn dev_keys_import_by_name_and_transfers_stay_in_the_senders_shard() {
    let wallet = Wallet::new();
    let imported = wallet.json(&["keys", "import-dev", "alice", "--insecure-fast-kdf"]);
    let alice = Keypair::dev("alice").address();
    assert_eq!(imported["address"], alice.to_string());

    // The built-in genesis is the committed dev genesis: 4 shards.
    let genesis = Genesis::from_json(include_str!("../../genesis.json")).unwrap().0;
    let home_shard = alice.shard(genesis.shard_count);
    assert_eq!(imported["shard"], home_shard);
    let elsewhere = (0..)
        .map(|i| Keypair::dev(&format!("elsewhere-{i}")).address())
        .find(|a| a.shard(genesis.shard_count) != home_shard)
        .unwrap();
    // Another shard is a fine destination: the wallet goes on to ask the
    // sender's node (unreachable here) for the account.
    let output = wallet.run(&["--node", UNREACHABLE, "transfer", "--to", &elsewhere.to_string(), "--amount", "1"]);
    fails_with(&output, "unreachable");

    // A bad amount is refused as clearly.
    let output = wallet.run(&["--node", UNREACHABLE, "transfer", "--to", &alice.to_string(), "--amount", "1.2.3"]);
    fails_with(&output, "is not an amount");

    // Dev keys only on dev chains.
    let mut real = genesis.clone();
    real.chain_id = "palisade-main".into();
    let real_file = wallet.dir.path().join("real-genesis.json");
    std::fs::write(&real_file, real.to_json()).unwrap();
    let output = wallet.run(&["--genesis", real_file.to_str().unwrap(), "keys", "import-dev", "bob"]);
    fails_with(&output, "not a dev chain");
}

#[test]
fn json_output_is_one_object_per_command() {
    let wallet = Wallet::new();
    let empty = wallet.json(&["keys", "list"]);
    assert_eq!(empty["keys"], Value::Array(Vec::new()));
    wallet.ok(&["keys", "import-dev", "bob", "--insecure-fast-kdf"]);
    let shown = wallet.json(&["keys", "show"]);
    assert_eq!(shown["name"], "bob");
    assert_eq!(shown["address"], Keypair::dev("bob").address().to_string());
    // Help is not an error.
    let help = wallet.run(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(text(&help.stdout).contains("transfer"));
    // A usage error exits 1.
    assert_eq!(wallet.run(&["transfer"]).status.code(), Some(1));
}

#[test]
fn stake_moves_are_checked_before_anything_is_signed() {
    let wallet = Wallet::new();
    wallet.json(&["keys", "import-dev", "alice", "--insecure-fast-kdf"]);
    let alice = Keypair::dev("alice").address();
    let validator = Keypair::dev("newcomer");
    // The built-in dev genesis has staking off.
    let output = wallet.run(&[
        "--node",
        UNREACHABLE,
        "stake",
        "unbond",
        "--validator",
        &validator.address().to_string(),
        "--amount",
        "1",
    ]);
    fails_with(&output, "staking is off");

    // A single-shard network with staking on.
    let mut genesis = Genesis::dev(1, 4);
    genesis.params.staking = Some(palisade_ledger::stake::StakingParams {
        epoch_blocks: 10,
        min_stake_units: 1,
        max_committee_size: 8,
        unbonding_epochs: 1,
    });
    let genesis_file = wallet.dir.path().join("staking-genesis.json");
    std::fs::write(&genesis_file, genesis.to_json()).unwrap();
    let proof_file = wallet.dir.path().join("proof.json");
    let bond = |proof: &palisade_ledger::api::PossessionJson| {
        std::fs::write(&proof_file, serde_json::to_string(proof).unwrap()).unwrap();
        let (g, p) = (genesis_file.to_str().unwrap(), proof_file.to_str().unwrap());
        wallet.run(&["--node", UNREACHABLE, "--genesis", g, "stake", "bond", "--proof-file", p, "--amount", "5"])
    };
    let proof_for = |operator: palisade_ledger::Address| {
        let p2p = [4u8; 32];
        let proof = palisade_ledger::stake::prove_possession(&validator, &genesis.chain_id, 0, &operator, &p2p);
        palisade_ledger::api::PossessionJson {
            chain_id: genesis.chain_id.clone(),
            shard: 0,
            validator: validator.address(),
            operator,
            p2p_key: hex::encode(p2p),
            proof: hex::encode(proof.0),
        }
    };
    // Made for another operator than the selected key.
    let bob = Keypair::dev("bob").address();
    fails_with(&bond(&proof_for(bob)), "not the selected key");
    // Made for alice but tampered with.
    let mut forged = proof_for(alice);
    forged.p2p_key = hex::encode([5u8; 32]);
    fails_with(&bond(&forged), "does not verify");
    // For another chain.
    let mut other = proof_for(alice);
    other.chain_id = "palisade-dev-other".into();
    fails_with(&bond(&other), "the proof is for chain");
    // A genuine proof gets as far as the (unreachable) node.
    fails_with(&bond(&proof_for(alice)), "unreachable");
    std::fs::write(&proof_file, "not json").unwrap();
    let p = proof_file.to_str().unwrap();
    let output = wallet.run(&["--node", UNREACHABLE, "stake", "bond", "--proof-file", p, "--amount", "5"]);
    fails_with(&output, "is no proof of possession");
}
