//! The `palisade-node` binary as an operator uses it: `init`, `keys`, and
//! the errors of `run` that come before the node starts, each in a tempdir.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a panic in a test is a failure report

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use palisade_ledger::Genesis;
use palisade_ledger::keystore::{KdfParams, KeyFile};

const PASSWORD: &str = "dev password";

fn node(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_palisade-node"))
        .args(args)
        .current_dir(dir)
        .env_remove("PALISADE_KEY_PASSWORD")
        .env_remove("RUST_LOG")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn ok(args: &[&str], dir: &Path) -> String {
    let out = node(args, dir);
    assert!(out.status.success(), "palisade-node {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail cleanly: status 1, a line `error: …`, no panic.
fn fails(args: &[&str], dir: &Path) -> String {
    let out = node(args, dir);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "palisade-node {args:?}: {stderr}");
    // Log lines (on stderr too) may come first once `run` has started logging.
    assert!(stderr.lines().any(|l| l.starts_with("error: ")), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn repo_genesis() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("genesis.json")
}

fn genesis_address(name: &str) -> String {
    let (genesis, _) = Genesis::load(&repo_genesis()).unwrap();
    genesis
        .committees
        .iter()
        .flat_map(|c| &c.validators)
        .find(|v| v.name == name)
        .map(|v| v.address.to_string())
        .unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn init_creates_config_and_p2p_key_and_refuses_a_second_time() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ok(&["init", "--data-dir", "node-a"], tmp.path());
    let dir = tmp.path().join("node-a");
    let config_path = dir.join("config.toml");
    let p2p_key = dir.join("p2p.key");
    assert!(out.contains("peer id"), "{out}");
    assert_eq!(mode(&p2p_key), 0o600);
    assert_eq!(mode(&dir), 0o700);
    let key_bytes = std::fs::read(&p2p_key).unwrap();
    assert!(libp2p::identity::Keypair::from_protobuf_encoding(&key_bytes).is_ok());

    // The config is the defaults with this data directory, made absolute.
    let config = palisade_node::config::NodeConfig::load(Some(&config_path), &Default::default()).unwrap();
    assert_eq!(config.node.data_dir, dir.canonicalize().unwrap());
    let mut expected = palisade_node::config::NodeConfig::default();
    expected.node.data_dir = config.node.data_dir.clone();
    assert_eq!(config, expected);

    let err = fails(&["init", "--data-dir", "node-a"], tmp.path());
    assert!(err.contains("already exists; pass --force"), "{err}");
    // --force rewrites the config and keeps the identity.
    std::fs::write(&config_path, "# edited\n").unwrap();
    ok(&["init", "--data-dir", "node-a", "--force"], tmp.path());
    assert!(std::fs::read_to_string(&config_path).unwrap().contains("[p2p]"));
    assert_eq!(std::fs::read(&p2p_key).unwrap(), key_bytes);
}

#[test]
fn import_dev_then_show_prints_the_genesis_address() {
    let tmp = tempfile::tempdir().unwrap();
    let password = tmp.path().join("password");
    std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
    let key = tmp.path().join("keys").join("validator.key");
    let genesis = repo_genesis();
    let out = ok(
        &[
            "keys",
            "import-dev",
            "validator-0-0",
            "--genesis",
            s(&genesis),
            "--insecure-fast-kdf",
            "--password-file",
            s(&password),
            "--key-file",
            s(&key),
        ],
        tmp.path(),
    );
    let address = genesis_address("validator-0-0");
    assert!(out.contains(&address), "{out}");
    assert_eq!(mode(&key), 0o600);

    let shown = ok(&["keys", "show", "--key-file", s(&key)], tmp.path());
    assert_eq!(shown.trim(), address);

    // The trailing newline of the password file is not part of the password.
    let file = KeyFile::read(&key).unwrap();
    assert_eq!(file.kdf_params(), KdfParams::insecure_fast());
    assert_eq!(file.decrypt(PASSWORD.as_bytes()).unwrap().address().to_string(), address);

    // A second import does not replace the key.
    let err = fails(
        &[
            "keys",
            "import-dev",
            "validator-0-1",
            "--genesis",
            s(&genesis),
            "--insecure-fast-kdf",
            "--password-file",
            s(&password),
            "--key-file",
            s(&key),
        ],
        tmp.path(),
    );
    assert!(err.contains("already exists; pass --force"), "{err}");
    assert_eq!(ok(&["keys", "show", "--key-file", s(&key)], tmp.path()).trim(), address);
}

#[test]
fn import_dev_is_refused_on_a_non_dev_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut genesis, _) = Genesis::load(&repo_genesis()).unwrap();
    genesis.chain_id = "palisade-mainnet".to_string();
    let path = tmp.path().join("genesis.json");
    std::fs::write(&path, genesis.to_json()).unwrap();
    std::fs::write(tmp.path().join("password"), PASSWORD).unwrap();
    let err = fails(
        &["keys", "import-dev", "validator-0-0", "--genesis", s(&path), "--password-file", "password"],
        tmp.path(),
    );
    assert!(err.contains("not a dev chain"), "{err}");
    assert!(!tmp.path().join("palisade-data").exists());
}

#[test]
fn new_and_import_keys_take_the_password_from_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_palisade-node"))
        .args(["keys", "new", "--data-dir", "d"])
        .current_dir(tmp.path())
        .env("PALISADE_KEY_PASSWORD", PASSWORD)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = tmp.path().join("d").join("validator.key");
    let file = KeyFile::read(&key).unwrap();
    assert_eq!(file.kdf_params(), KdfParams::default());
    let shown = ok(&["keys", "show", "--data-dir", "d"], tmp.path());
    assert_eq!(shown.trim(), file.address().to_string());

    // import: the seed of a known dev key gives its address.
    let seed = palisade_ledger::Keypair::dev("alice").seed();
    std::fs::write(tmp.path().join("seed.hex"), format!("0x{}\n", hex::encode(seed))).unwrap();
    std::fs::write(tmp.path().join("password"), PASSWORD).unwrap();
    let out = ok(
        &["keys", "import", "--seed-hex-file", "seed.hex", "--key-file", "alice.key", "--password-file", "password"],
        tmp.path(),
    );
    let alice = palisade_ledger::Keypair::dev("alice").address().to_string();
    assert!(out.contains(&alice), "{out}");
    assert!(!out.contains(&hex::encode(seed)), "the seed must not be printed");
    std::fs::write(tmp.path().join("bad.hex"), "abcd").unwrap();
    let err = fails(
        &["keys", "import", "--seed-hex-file", "bad.hex", "--key-file", "bad.key", "--password-file", "password"],
        tmp.path(),
    );
    assert!(err.contains("expected 64 hex digits"), "{err}");
}

#[test]
fn run_refuses_a_config_with_an_unknown_key_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("config.toml"),
        "[node]\ndata_dir = \"d\"\n\n[p2p]\nlisen = \"/ip4/0.0.0.0/tcp/1\"\n",
    )
    .unwrap();
    let err = fails(&["run", "--config", "config.toml"], tmp.path());
    assert!(err.contains("unknown field `lisen`"), "{err}");
    assert!(err.contains("line 5"), "{err}");

    std::fs::write(tmp.path().join("bad.toml"), "[p2p]\nlisten = \"/ip4/x\"\n").unwrap();
    let err = fails(&["run", "--config", "bad.toml"], tmp.path());
    assert!(err.contains("p2p.listen: \"/ip4/x\" is not a multiaddr"), "{err}");

    let err = fails(&["run", "--mempool-max-txs", "0"], tmp.path());
    assert!(err.contains("mempool.max_txs must be at least 1"), "{err}");

    let err = fails(&["run", "--config", "missing.toml"], tmp.path());
    assert!(err.contains("cannot read config file missing.toml"), "{err}");
}

#[test]
fn run_explains_a_missing_genesis_and_a_wrong_password() {
    let tmp = tempfile::tempdir().unwrap();
    let err = fails(&["run", "--data-dir", "d", "--genesis", "nope.json"], tmp.path());
    assert!(err.contains("loading genesis nope.json"), "{err}");

    std::fs::write(tmp.path().join("password"), PASSWORD).unwrap();
    std::fs::write(tmp.path().join("wrong"), "not it").unwrap();
    let genesis = repo_genesis();
    ok(
        &[
            "keys",
            "import-dev",
            "validator-0-0",
            "--genesis",
            s(&genesis),
            "--insecure-fast-kdf",
            "--password-file",
            "password",
            "--data-dir",
            "d",
        ],
        tmp.path(),
    );
    let err = fails(&["run", "--data-dir", "d", "--genesis", s(&genesis), "--password-file", "wrong"], tmp.path());
    assert!(err.contains("wrong password (or the file was altered)"), "{err}");
    // No prompt without a terminal: a clear error instead.
    let err = fails(&["run", "--data-dir", "d", "--genesis", s(&genesis)], tmp.path());
    assert!(err.contains("cannot prompt for the password"), "{err}");
    // An explicitly configured key file that is missing is an error, not "follow only".
    let err = fails(&["run", "--data-dir", "d", "--genesis", s(&genesis), "--key-file", "typo.key"], tmp.path());
    assert!(err.contains("node.key_file: typo.key does not exist"), "{err}");
}

#[test]
fn help_works_for_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    let top = ok(&["--help"], tmp.path());
    for word in ["init", "keys", "run", "Set up and run a validator"] {
        assert!(top.contains(word), "{word} missing from\n{top}");
    }
    let run = ok(&["run", "--help"], tmp.path());
    for word in [
        "--config <FILE>",
        "--p2p-listen <MULTIADDR>",
        "[default: /ip4/0.0.0.0/tcp/26656]",
        "--mempool-max-txs <N>",
        "[default: 100000]",
        "--log-format <FORMAT>",
        "[env: RUST_LOG",
    ] {
        assert!(run.contains(word), "{word} missing from\n{run}");
    }
    for args in [&["keys", "--help"][..], &["keys", "import-dev", "--help"], &["init", "--help"]] {
        ok(args, tmp.path());
    }
    assert!(ok(&["--version"], tmp.path()).contains(env!("CARGO_PKG_VERSION")));
    // A usage error is clap's, status 2.
    let out = node(&["run", "--p2p-listen", "/ip4/x"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn prove_possession_signs_for_the_operator_and_the_nodes_p2p_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, password) = (tmp.path().join("data"), tmp.path().join("password"));
    std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
    let mut genesis = Genesis::dev(1, 4);
    let staking_file = tmp.path().join("staking.json");
    let off_file = tmp.path().join("off.json");
    std::fs::write(&off_file, genesis.to_json()).unwrap();
    genesis.params.staking = Some(palisade_ledger::stake::StakingParams {
        epoch_blocks: 10,
        min_stake_units: 1,
        max_committee_size: 8,
        unbonding_epochs: 1,
    });
    std::fs::write(&staking_file, genesis.to_json()).unwrap();
    let operator = palisade_ledger::Keypair::dev("operator").address().to_string();
    let prove = |genesis: &Path, shard: &str| {
        vec![
            "keys".to_string(),
            "prove-possession".into(),
            "--operator".into(),
            operator.clone(),
            "--shard".into(),
            shard.into(),
            "--genesis".into(),
            s(genesis).into(),
            "--password-file".into(),
            s(&password).into(),
            "--data-dir".into(),
            s(&dir).into(),
        ]
    };
    let run = |args: Vec<String>| node(&args.iter().map(String::as_str).collect::<Vec<_>>(), tmp.path());
    // No data directory yet: it says to run init.
    let out = run(prove(&staking_file, "0"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("palisade-node init"), "{out:?}");
    ok(&["init", "--data-dir", s(&dir)], tmp.path());
    let key = dir.join("validator.key");
    let import = ["keys", "import-dev", "newcomer", "--genesis", s(&staking_file), "--insecure-fast-kdf"];
    let mut import = import.to_vec();
    import.extend(["--password-file", s(&password), "--key-file", s(&key)]);
    ok(&import, tmp.path());

    let out = run(prove(&staking_file, "0"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let proof: palisade_ledger::api::PossessionJson = serde_json::from_slice(&out.stdout).unwrap();
    let validator = palisade_ledger::Keypair::dev("newcomer").address();
    assert_eq!((proof.validator, proof.operator.to_string(), proof.shard), (validator, operator.clone(), 0));
    let mut p2p = [0u8; 32];
    hex::decode_to_slice(&proof.p2p_key, &mut p2p).unwrap();
    let mut signature = [0u8; 64];
    hex::decode_to_slice(&proof.proof, &mut signature).unwrap();
    assert!(palisade_ledger::stake::verify_possession(
        &genesis.chain_id,
        0,
        &validator,
        &proof.operator,
        &p2p,
        &palisade_ledger::keys::Signature(signature)
    ));
    // Refused: a shard the network lacks, a network without staking.
    let out = run(prove(&staking_file, "3"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the network has 1 shards"), "{out:?}");
    let out = run(prove(&off_file, "0"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("staking is off"), "{out:?}");
}
