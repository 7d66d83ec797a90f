//! Assembles a running node: opens the store, starts one thread per shard
//! this node validates or follows, the network task, the JSON-RPC server and
//! the health/metrics server, then waits for SIGTERM or SIGINT (or a shard's
//! fatal error) and shuts everything down in order: stop taking requests,
//! stop the shards (each finishes the input at hand, so every commit it
//! acknowledged is on disk), then the network.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use palisade_ledger::genesis::Genesis;
use palisade_ledger::store::Store;
use palisade_ledger::{Keypair, ShardId};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::config::NodeConfig;
use crate::context::NodeContext;
use crate::mempool::MempoolConfig;
use crate::metrics::Metrics;
use crate::net::{self, COMMAND_QUEUE, NetConfig, NetHandle, SyncServer};
use crate::shard::{self, QueueBounds, ShardConfig, ShardError, ShardHandle, store::StoreReader};
use crate::wire::SyncResponse;
use crate::{health, rpc};

/// How long shutdown waits for each part before giving up on it.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The shards `key` sits on the committee of.
pub fn validated_shards(genesis: &Genesis, key: Option<&Keypair>) -> BTreeSet<ShardId> {
    let Some(key) = key else { return BTreeSet::new() };
    let address = key.address();
    genesis.committees.iter().filter(|c| c.validators.iter().any(|v| v.address == address)).map(|c| c.shard).collect()
}

/// Test-only options, refused on anything but a dev chain (`palisade-node
/// run --misbehave`, `--dev-clock-offset-ms`).
#[derive(Clone, Copy, Debug, Default)]
pub struct DevOptions {
    /// Misbehave on purpose as a validator.
    pub misbehave: Option<crate::byzantine::Misbehaviour>,
    /// Run the shards' clocks this far ahead of the system clock, ms.
    pub clock_offset_ms: i64,
}

impl DevOptions {
    /// Refuses any of them on a chain that is not a dev chain.
    pub fn check(&self, genesis: &Genesis) -> Result<(), String> {
        if let Some(mode) = self.misbehave {
            crate::byzantine::check_allowed(mode, genesis)?;
        }
        if self.clock_offset_ms != 0 && !genesis.is_dev_chain() {
            return Err(format!(
                "--dev-clock-offset-ms is a test-only option, refused on chain `{}` (dev chains only)",
                genesis.chain_id
            ));
        }
        Ok(())
    }
}

/// Runs the node until SIGTERM/SIGINT or a fatal error.
pub async fn run(
    config: NodeConfig,
    key: Option<Keypair>,
    p2p_key: libp2p::identity::Keypair,
    genesis: Genesis,
    dev: DevOptions,
) -> Result<()> {
    let DevOptions { misbehave, clock_offset_ms } = dev;
    let genesis = Arc::new(genesis);
    let validated = validated_shards(&genesis, key.as_ref());
    if let Some(key) = &key
        && validated.is_empty()
    {
        warn!(address = %key.address(), "the validator key is on no committee of this genesis; following only");
    }
    let mut shards = validated.clone();
    for &shard in &config.node.track_shards {
        if shard >= genesis.shard_count {
            bail!("node.track_shards: shard {shard} does not exist (genesis has {} shards)", genesis.shard_count);
        }
        shards.insert(shard);
    }
    if shards.is_empty() {
        bail!("nothing to run: no validator key on a committee and node.track_shards is empty");
    }

    let db_path = config.node.data_dir.join("db");
    std::fs::create_dir_all(&config.node.data_dir)
        .with_context(|| format!("creating data directory {}", config.node.data_dir.display()))?;
    let store = Store::open(&db_path).with_context(|| format!("opening the database at {}", db_path.display()))?;
    let metrics = Arc::new(Metrics::new(shards.iter().copied()));
    let (net_handle, commands) = NetHandle::channel(COMMAND_QUEUE);
    let mempool = MempoolConfig {
        max_txs: config.mempool.max_txs,
        max_bytes: config.mempool.max_bytes,
        max_nonce_gap: config.mempool.max_nonce_gap,
    };

    let mut handles: BTreeMap<ShardId, ShardHandle> = BTreeMap::new();
    let mut threads = Vec::new();
    for &shard in &shards {
        let status = shard::initial_status(shard, &store, &genesis)?;
        let (handle, queues) = shard::shard_channel(status, QueueBounds::default());
        let (shard_key, misbehave) = if validated.contains(&shard) { (key.clone(), misbehave) } else { (None, None) };
        let thread = shard::spawn(
            ShardConfig {
                shard,
                genesis: genesis.clone(),
                key: shard_key,
                mempool,
                misbehave,
                client_floor_per_second: config.rpc.client_tx_floor_per_second,
            },
            store.clone(),
            queues,
            net_handle.clone(),
            metrics.clone(),
            clock_offset_ms,
        )?;
        handles.insert(shard, handle);
        threads.push((shard, thread));
    }

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // One reader per served shard, made once: a reader holds the shard's
    // genesis committee, whose keys cost a curve decompression each to build.
    let readers: BTreeMap<ShardId, StoreReader> =
        shards.iter().filter_map(|&shard| Some((shard, StoreReader::new(store.clone(), &genesis, shard)?))).collect();
    let sync_genesis = genesis.clone();
    let sync_server: SyncServer = Arc::new(move |request| {
        let served = readers
            .get(&request.shard)
            .map(|chain| palisade_shard_core::serve::serve_sync(chain, &sync_genesis, &request))
            .unwrap_or_else(|| Ok(SyncResponse::empty(&request)));
        served.unwrap_or_else(|e| {
            error!(shard = request.shard, error = %e, "cannot read blocks for a sync request");
            SyncResponse::empty(&request)
        })
    });
    let max_consensus_bytes = shards
        .iter()
        .filter_map(|&s| genesis.committee(s).map(|c| c.validators.len()))
        .map(|n| palisade_consensus::max_message_bytes(n, shard::driver::max_block_bytes(&genesis)))
        .max()
        .unwrap_or(0);
    let net_config = NetConfig {
        chain_id: genesis.chain_id.clone(),
        keypair: p2p_key,
        listen: vec![config.p2p.listen.clone()],
        bootstrap: config.p2p.bootstrap.clone(),
        shards: shards.iter().copied().collect(),
        max_consensus_bytes,
        max_connections: config.p2p.max_connections,
        max_connections_per_peer: config.p2p.max_connections_per_peer,
        ban_duration: Duration::from_secs(config.p2p.ban_secs),
    };
    let started = net::spawn(net_config, commands, handles.clone(), sync_server, metrics.clone(), shutdown_rx.clone())
        .await
        .context("starting the network")?;

    let ctx = Arc::new(NodeContext {
        genesis_hash: genesis.hash(),
        contexts: NodeContext::shard_contexts(&genesis),
        genesis: genesis.clone(),
        store: store.clone(),
        shards: handles.clone(),
        net: net_handle,
        metrics: metrics.clone(),
        peer_id: started.peer_id.to_string(),
        health_stale_after_ms: config.node.health_stale_after_ms,
    });
    let rpc_config = rpc::RpcConfig {
        listen: config.rpc.listen,
        max_request_bytes: config.rpc.max_request_bytes,
        max_batch: config.rpc.max_batch,
        max_connections: config.rpc.max_connections,
        requests_per_second_per_client: config.rpc.requests_per_second_per_client,
        ..rpc::RpcConfig::default()
    };
    let (rpc_addr, rpc_task) =
        rpc::serve(ctx.clone(), rpc_config, shutdown_rx.clone()).await.context("starting RPC")?;
    let (metrics_addr, health_task) =
        health::serve(ctx.clone(), config.metrics.listen, shutdown_rx.clone()).await.context("starting metrics")?;
    info!(
        peer_id = %started.peer_id,
        p2p = ?started.listen_addrs,
        rpc = %rpc_addr,
        metrics = %metrics_addr,
        validates = ?validated,
        follows = ?shards.difference(&validated).collect::<Vec<_>>(),
        "node started"
    );

    let failure = wait_for_stop(&threads).await;

    info!("shutting down");
    let _ = shutdown_tx.send(true);
    for handle in handles.values() {
        handle.shutdown();
    }
    let mut errors: Vec<String> = failure.into_iter().collect();
    for (shard, thread) in threads {
        let joined = tokio::task::spawn_blocking(move || thread.join());
        match tokio::time::timeout(SHUTDOWN_GRACE, joined).await {
            Ok(Ok(Ok(Ok(())))) => {}
            Ok(Ok(Ok(Err(e)))) => errors.push(e.to_string()),
            Ok(Ok(Err(_))) => errors.push(format!("shard {shard} thread panicked")),
            Ok(Err(e)) => errors.push(format!("shard {shard}: {e}")),
            Err(_) => errors.push(format!("shard {shard} did not stop within {SHUTDOWN_GRACE:?}")),
        }
    }
    for task in [rpc_task, health_task, started.task] {
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, task).await;
    }
    errors.dedup();
    if errors.is_empty() {
        info!("stopped");
        Ok(())
    } else {
        bail!("{}", errors.join("; "))
    }
}

/// Waits for SIGTERM, SIGINT, or a shard thread that stopped on its own
/// (returned as the reason).
async fn wait_for_stop(threads: &[(ShardId, std::thread::JoinHandle<Result<(), ShardError>>)]) -> Option<String> {
    let mut sigterm = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            warn!(error = %e, "cannot listen for SIGTERM");
            None
        }
    };
    let mut check = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return None,
            Some(()) = async { match sigterm.as_mut() { Some(s) => s.recv().await, None => std::future::pending().await } } => return None,
            _ = check.tick() => {
                if let Some((shard, _)) = threads.iter().find(|(_, t)| t.is_finished()) {
                    return Some(format!("shard {shard} stopped unexpectedly"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skewed_clock_is_for_dev_chains_only() {
        let mut genesis = Genesis::dev(1, 4);
        let skewed = DevOptions { clock_offset_ms: -20_000, ..DevOptions::default() };
        assert_eq!(skewed.check(&genesis), Ok(()));
        genesis.chain_id = "palisade-mainnet".into();
        assert_eq!(DevOptions::default().check(&genesis), Ok(()));
        let refused = skewed.check(&genesis).unwrap_err();
        assert!(refused.starts_with("--dev-clock-offset-ms is a test-only option"), "{refused}");
    }
}
