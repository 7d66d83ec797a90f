//! The node's JSON-RPC interface as a client sees it: method names, the
//! JSON shapes of results and the stable error codes (docs/rpc.md).
//!
//! Hashes and ids are lowercase hex, addresses `pal1…` bech32m, signatures
//! and proofs hex; a block header is [`BlockHeader`] itself, which serialises
//! to JSON in that form. Every amount appears twice: `*_units` (an integer of base
//! units, exact) and the human decimal PAL string (`"1.5"`, also exact).
//! These types only depend on the ledger and serde, so a client (the wallet,
//! the testnet tool) deserialises exactly what the node serialises.

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "client")]
pub mod route;
mod staking;
pub mod verify;

pub use staking::{BondedJson, MemberJson, PossessionJson, StakingJson, UnbondingJson, staking_view};

use palisade_consensus::CommitCertificate;
use serde::{Deserialize, Serialize};

use crate::{Address, Block, BlockHeader, Hash, ShardId, SignedTx, TxKind};

/// Method names.
pub mod method {
    /// Node status.
    pub const STATUS: &str = "palisade_status";
    /// An account, optionally with a proof.
    pub const ACCOUNT: &str = "palisade_account";
    /// Submit a signed transaction.
    pub const SUBMIT_TRANSACTION: &str = "palisade_submitTransaction";
    /// Submit a batch of signed transactions in one call (high-rate clients).
    pub const SUBMIT_TRANSACTIONS: &str = "palisade_submitTransactions";
    /// Where a transaction stands.
    pub const TRANSACTION: &str = "palisade_transaction";
    /// A final block with its certificate.
    pub const BLOCK: &str = "palisade_block";
    /// Committees and validator records.
    pub const VALIDATORS: &str = "palisade_validators";
    /// Whether a shard credited a cross-shard receipt.
    pub const RECEIPT: &str = "palisade_receipt";
    /// WebSocket: subscribe to a shard's final blocks.
    pub const SUBSCRIBE_FINAL_BLOCKS: &str = "palisade_subscribeFinalBlocks";
    /// WebSocket: the notifications of [`SUBSCRIBE_FINAL_BLOCKS`].
    pub const FINAL_BLOCK_NOTIFICATION: &str = "palisade_finalBlock";
    /// WebSocket: end a final-block subscription.
    pub const UNSUBSCRIBE_FINAL_BLOCKS: &str = "palisade_unsubscribeFinalBlocks";
    /// Submit equivocation evidence for slashing.
    pub const SUBMIT_EVIDENCE: &str = "palisade_submitEvidence";

    /// Every callable method (the values of the `method` label of
    /// `palisade_rpc_requests_total`, with `unknown` for anything else).
    pub const METHODS: &[&str] = &[
        STATUS,
        ACCOUNT,
        SUBMIT_TRANSACTION,
        SUBMIT_TRANSACTIONS,
        TRANSACTION,
        BLOCK,
        VALIDATORS,
        RECEIPT,
        SUBSCRIBE_FINAL_BLOCKS,
        UNSUBSCRIBE_FINAL_BLOCKS,
        SUBMIT_EVIDENCE,
    ];
}

/// The error codes clients switch on. Standard codes (-32700 … -32603) mean
/// what JSON-RPC 2.0 says; Palisade's own sit in the server range and are
/// stable. jsonrpsee itself may return -32007 (request too big) and -32008
/// (response too big).
pub mod code {
    /// The parameters are missing, of the wrong type or invalid.
    pub const INVALID_PARAMS: i32 = -32602;
    /// A local fault (storage); details are in the node's log.
    pub const INTERNAL_ERROR: i32 = -32603;
    /// Invalid request: used for a batch over the limit.
    pub const INVALID_REQUEST: i32 = -32600;
    /// The client sent more calls per second than its allowance.
    pub const RATE_LIMITED: i32 = -32005;
    /// The shard the call is about is not run by this node.
    pub const SHARD_NOT_TRACKED: i32 = -32010;
    /// The transaction was refused (by the mempool or by the forwarding checks).
    pub const TX_REJECTED: i32 = -32020;
    /// The shard did not take the call (queue full, stopping or slow): retry.
    pub const SHARD_BUSY: i32 = -32021;
    /// The call took longer than the server's request timeout.
    pub const TIMED_OUT: i32 = -32030;
    /// jsonrpsee's: the request body is over the server's limit.
    pub const REQUEST_TOO_BIG: i32 = -32007;
    /// jsonrpsee's: the response would be over the server's limit.
    pub const RESPONSE_TOO_BIG: i32 = -32008;
}

/// The local testnet's ports (`palisade-testnet up`): node `i`, counting
/// validators in genesis order, listens for libp2p on `base + 3i`, JSON-RPC
/// on `base + 3i + 1` and metrics on `base + 3i + 2`. The wallet's default
/// nodes follow the same layout.
pub mod local {
    use crate::{Genesis, ShardId};

    /// `palisade-testnet up`'s default base port.
    pub const BASE_PORT: u16 = 27_000;
    /// Ports each node uses.
    pub const PORTS_PER_NODE: u16 = 3;
    /// libp2p's port within a node's three.
    pub const P2P_OFFSET: u16 = 0;
    /// JSON-RPC's.
    pub const RPC_OFFSET: u16 = 1;
    /// Health and metrics'.
    pub const METRICS_OFFSET: u16 = 2;

    /// Port `offset` of node `index` above `base` (None past 65535).
    pub fn port(base: u16, index: usize, offset: u16) -> Option<u16> {
        let step = u16::try_from(index).ok()?.checked_mul(PORTS_PER_NODE)?.checked_add(offset)?;
        base.checked_add(step)
    }

    /// The JSON-RPC URL of `shard`'s first validator on a local testnet
    /// started from `genesis` at `base`.
    pub fn shard_rpc_url(genesis: &Genesis, shard: ShardId, base: u16) -> Option<String> {
        shard_rpc_urls(genesis, shard, base).into_iter().next()
    }

    /// The JSON-RPC URLs of all `shard`'s validators on that testnet, in
    /// committee order (empty for no such shard, or ports past 65535).
    pub fn shard_rpc_urls(genesis: &Genesis, shard: ShardId, base: u16) -> Vec<String> {
        let mut index = 0usize;
        for committee in &genesis.committees {
            if committee.shard == shard {
                return (index..index.saturating_add(committee.validators.len()))
                    .map_while(|i| Some(format!("http://127.0.0.1:{}", port(base, i, RPC_OFFSET)?)))
                    .collect();
            }
            index = index.saturating_add(committee.validators.len());
        }
        Vec::new()
    }
}

/// The stable labels of [`TxRejection::reason`] (also the `reason` label of
/// `palisade_mempool_rejected_total`).
pub mod reason {
    /// The signature does not verify.
    pub const BAD_SIGNATURE: &str = "bad_signature";
    /// For another network.
    pub const WRONG_CHAIN: &str = "wrong_chain";
    /// Sent to a shard that is not the sender's.
    pub const WRONG_SHARD: &str = "wrong_shard";
    /// Not the nonce execution expects.
    pub const BAD_NONCE: &str = "bad_nonce";
    /// The sender cannot pay amount and fee.
    pub const INSUFFICIENT_FUNDS: &str = "insufficient_funds";
    /// An amount overflows.
    pub const OVERFLOW: &str = "overflow";
    /// The nonce is already executed.
    pub const STALE_NONCE: &str = "stale_nonce";
    /// The nonce leaves a gap after the sender's pending chain.
    pub const NONCE_GAP: &str = "nonce_gap";
    /// Another transaction with this sender and nonce is pending.
    pub const NONCE_TAKEN: &str = "nonce_taken";
    /// This very transaction is pending.
    pub const DUPLICATE: &str = "duplicate";
    /// The mempool is full (see `retry_after_ms`, `min_fee_units`).
    pub const FULL: &str = "full";
    /// Larger than the mempool may hold.
    pub const TOO_LARGE: &str = "too_large";
    /// The fee is below the shard's base fee (see `min_fee_units`).
    pub const FEE_BELOW_BASE: &str = "fee_below_base";
    /// Past its expiry height.
    pub const EXPIRED: &str = "expired";
    /// The sender's submissions spiked: the intake breaker refuses it for a
    /// while (see `retry_after_ms`).
    pub const THROTTLED: &str = "throttled";
    /// A bond or unbond breaks a staking rule (the message says which).
    pub const STAKE_REFUSED: &str = "stake_refused";

    /// Every label.
    pub const ALL: &[&str] = &[
        BAD_SIGNATURE,
        WRONG_CHAIN,
        WRONG_SHARD,
        BAD_NONCE,
        INSUFFICIENT_FUNDS,
        OVERFLOW,
        STALE_NONCE,
        NONCE_GAP,
        NONCE_TAKEN,
        DUPLICATE,
        FULL,
        TOO_LARGE,
        FEE_BELOW_BASE,
        EXPIRED,
        THROTTLED,
        STAKE_REFUSED,
    ];
}

/// Why a node refused a transaction: the `data` of a [`code::TX_REJECTED`] error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TxRejection {
    /// One of [`reason`]'s labels.
    pub reason: String,
    /// The node's explanation.
    pub message: String,
    /// When the pool is full: when a retry has a fair chance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// When the pool is full: the fee to beat; when the fee is below the
    /// base fee: the base fee. Base units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_fee_units: Option<u64>,
}

/// `palisade_status`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// The network.
    pub chain_id: String,
    /// Its genesis hash.
    pub genesis_hash: Hash,
    /// This node's libp2p peer id.
    pub peer_id: String,
    /// Shards in the network.
    pub shard_count: u32,
    /// One entry per shard this node runs.
    pub shards: Vec<ShardStatusJson>,
}

/// One running shard in [`StatusResponse`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardStatusJson {
    /// The shard.
    pub shard: ShardId,
    /// This node's committee index, or null if it only follows the shard.
    pub validator_index: Option<u32>,
    /// Committed height.
    pub height: u64,
    /// Hash of the block at `height` (the genesis hash at 0).
    pub last_block_hash: Hash,
    /// Consensus view at the height being decided.
    pub view: u64,
    /// Committee index of the member leading view 0 of `height + 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_leader: Option<u32>,
    /// Committee indices left out of the leader rotation for failing their
    /// recent turns as leader (they still vote; see docs/node.md).
    #[serde(default)]
    pub benched: Vec<u32>,
    /// Highest height peers reported.
    pub peer_height: u64,
    /// Senders whose submissions this node's intake breaker refuses now.
    #[serde(default)]
    pub throttled_senders: usize,
    /// Client addresses whose submissions this node's intake breaker
    /// refuses now.
    #[serde(default)]
    pub throttled_clients: usize,
    /// Why this validator withholds its votes on the shard, if it does: it
    /// cannot trust its own state, clock or disk (docs/node.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quarantined: Option<String>,
    /// The base fee the shard's next block charges, base units: every
    /// transaction must pay at least this (docs/rpc.md).
    #[serde(default)]
    pub base_fee_units: u64,
    /// The same in PAL.
    #[serde(default)]
    pub base_fee: String,
    /// Transactions waiting in the mempool.
    pub mempool_txs: usize,
    /// Since this node committed `height` (or started).
    pub seconds_since_last_commit: f64,
    /// Whether the shard is healthy here, as `/health` says.
    #[serde(default)]
    pub healthy: bool,
    /// Why not, as `/health` says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_reason: Option<String>,
    /// The shard's committee, in committee (index) order.
    pub committee: Vec<CommitteeMember>,
}

/// A committee member as genesis defines it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommitteeMember {
    /// Position in the committee (what certificates name).
    pub index: u32,
    /// Its genesis name.
    pub name: String,
    /// Its account (its consensus key).
    pub address: Address,
    /// Genesis stake in base units.
    pub stake_units: u64,
    /// Genesis stake in PAL.
    pub stake: String,
}

/// `palisade_account`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountResponse {
    /// The account.
    pub address: Address,
    /// The shard it lives in.
    pub shard: ShardId,
    /// Spendable base units.
    pub balance_units: u64,
    /// Spendable PAL.
    pub balance: String,
    /// The nonce its next transaction must carry.
    pub nonce: u64,
    /// Bonded base units, if the address sits on this shard's committee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stake_units: Option<u64>,
    /// Bonded PAL, likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stake: Option<String>,
    /// Whether that validator was jailed, likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jailed: Option<bool>,
    /// The committed height the values are read at.
    pub height: u64,
    /// Present when asked for (`prove: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<AccountProof>,
}

/// A Merkle proof of an account against a certified state root.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountProof {
    /// Height of the state the proof is against.
    pub height: u64,
    /// The state root at that height (equals `header.state_root`).
    pub state_root: Hash,
    /// The proven value: the account's canonical (bincode) encoding, or null
    /// if the proof shows the account does not exist.
    pub value: Option<String>,
    /// `palisade_ledger::tree::StateProof` (key, value, sibling path), bincode,
    /// hex. `StateProof::verify(state_root)` checks it.
    pub proof: String,
    /// The header of the block at `height` (null at genesis, height 0).
    pub header: Option<BlockHeader>,
    /// Its hash.
    pub block_hash: Hash,
    /// The certificate that made it final (null at genesis).
    pub certificate: Option<CertificateJson>,
}

/// A commit certificate: commit votes of a stake quorum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CertificateJson {
    /// The certified height.
    pub height: u64,
    /// The view the votes were cast in.
    pub view: u64,
    /// The certified header hash.
    pub block_hash: Hash,
    /// Committee indices of the signers, ascending.
    pub signers: Vec<u32>,
    /// Their ed25519 signatures (hex), in `signers` order.
    pub signatures: Vec<String>,
    /// The certificate's canonical (bincode) encoding, hex, for verifiers.
    pub encoded: String,
    /// Committee indices jailed at this height (their stake does not count;
    /// see [`crate::committee::verify_certified`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jailed: Vec<u32>,
}

impl CertificateJson {
    /// The JSON form of `certificate`, whose stored bytes are `encoded`.
    pub fn new(certificate: &CommitCertificate, encoded: &[u8]) -> Self {
        CertificateJson {
            height: certificate.height,
            view: certificate.view,
            block_hash: Hash(certificate.block_hash),
            signers: certificate.signatures.iter().map(|s| s.signer.0).collect(),
            signatures: certificate.signatures.iter().map(|s| hex::encode(s.signature.0)).collect(),
            encoded: hex::encode(encoded),
            jailed: Vec::new(),
        }
    }

    /// With `jailed`, the committee's jailed members at the certified height.
    pub fn with_jailed(mut self, jailed: &[palisade_consensus::ValidatorIndex]) -> Self {
        self.jailed = jailed.iter().map(|index| index.0).collect();
        self
    }
}

/// `palisade_submitTransaction`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubmitResponse {
    /// The transaction id.
    pub id: Hash,
    /// The sender's shard, which will execute it.
    pub shard: ShardId,
    /// True when this node does not run that shard and gossiped it there.
    pub forwarded: bool,
}

/// Most transactions in one `palisade_submitTransactions` call.
pub const MAX_SUBMIT_BATCH: usize = 512;

/// One transaction's answer in `palisade_submitTransactions`, in the order
/// submitted: what `palisade_submitTransaction` would have answered for it
/// alone, its result or its error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubmitOutcome {
    /// Admitted (or forwarded).
    Ok(SubmitResponse),
    /// Refused: the error object (`code`, `message`, `data`) a single
    /// submission would have failed with.
    Error(ErrorJson),
}

/// A JSON-RPC error object, as one transaction's answer in a batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorJson {
    /// The JSON-RPC code (see [`code`]).
    pub code: i32,
    /// What went wrong, for people.
    pub message: String,
    /// Details (a [`TxRejection`] for `TX_REJECTED`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

/// `palisade_transaction`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TransactionResponse {
    /// Executed in a final block.
    Final {
        /// The id.
        id: Hash,
        /// The executing shard.
        shard: ShardId,
        /// The block height.
        height: u64,
        /// Position in the block.
        position: u32,
        /// Fee paid, base units.
        fee_units: u64,
        /// Fee paid, PAL.
        fee: String,
        /// A transfer to another shard: the shard that credits it (ask a node
        /// of that shard with `palisade_receipt`). Absent for same-shard ones.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dest_shard: Option<ShardId>,
    },
    /// Waiting in a local shard's mempool.
    Pending {
        /// The id.
        id: Hash,
        /// The shard holding it.
        shard: ShardId,
    },
    /// Refused by a local shard's mempool or dropped by its block builder.
    Rejected {
        /// The id.
        id: Hash,
        /// The shard.
        shard: ShardId,
        /// Why.
        reason: String,
    },
    /// Not known to this node.
    Unknown {
        /// The id.
        id: Hash,
    },
}

/// `palisade_receipt`: where a destination shard stands on the receipt of
/// a cross-shard transfer (its id is the transfer's id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ReceiptResponse {
    /// Credited to the recipient by a final block of `shard`.
    Credited {
        /// The receipt (and transfer) id.
        id: Hash,
        /// The destination shard.
        shard: ShardId,
        /// The destination block that credited it.
        height: u64,
        /// The shard that debited the sender.
        source_shard: ShardId,
        /// The source block that emitted the receipt.
        source_height: u64,
    },
    /// Not credited by `shard` (yet): in flight, or no such receipt.
    NotCredited {
        /// The id asked about.
        id: Hash,
        /// The shard asked.
        shard: ShardId,
        /// Verified and waiting in this node's receipt pool for a block.
        pooled: bool,
    },
}

/// `palisade_block`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlockResponse {
    /// The header hash (the block's identity).
    pub hash: Hash,
    /// The header.
    pub header: BlockHeader,
    /// Transactions in block order.
    pub txs: Vec<TxJson>,
    /// The certificate that made it final.
    pub certificate: CertificateJson,
}

/// A transaction in a block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TxJson {
    /// Its id.
    pub id: Hash,
    /// The network.
    pub chain_id: String,
    /// Sender (pays the fee).
    pub sender: Address,
    /// Sender's nonce.
    pub nonce: u64,
    /// Fee, base units.
    pub fee_units: u64,
    /// Fee, PAL.
    pub fee: String,
    /// `"transfer"`, `"bond"` or `"unbond"`.
    pub kind: String,
    /// The recipient of a transfer; the validator of a bond or unbond.
    pub to: Address,
    /// Amount (transferred, bonded or unbonded), base units.
    pub amount_units: u64,
    /// Amount, PAL.
    pub amount: String,
    /// A bond's shard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardId>,
    /// A bond's p2p key, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p2p_key: Option<String>,
    /// A bond's proof of possession, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
    /// The sender's signature, hex.
    pub signature: String,
    /// The last height whose block may include it, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
}

impl From<&SignedTx> for TxJson {
    fn from(tx: &SignedTx) -> Self {
        let (kind, to, amount, bond) = match &tx.body.kind {
            TxKind::Transfer { to, amount } => ("transfer", to, amount, None),
            TxKind::Bond { validator, shard, amount, p2p_key, proof } => {
                ("bond", validator, amount, Some((*shard, hex::encode(p2p_key), hex::encode(proof.0))))
            }
            TxKind::Unbond { validator, amount } => ("unbond", validator, amount, None),
        };
        let (shard, p2p_key, proof) = match bond {
            Some((shard, p2p_key, proof)) => (Some(shard), Some(p2p_key), Some(proof)),
            None => (None, None, None),
        };
        TxJson {
            id: tx.id(),
            chain_id: tx.body.chain_id.clone(),
            sender: tx.body.sender,
            nonce: tx.body.nonce,
            fee_units: tx.body.fee.units(),
            fee: tx.body.fee.to_string(),
            kind: kind.into(),
            to: *to,
            amount_units: amount.units(),
            amount: amount.to_string(),
            shard,
            p2p_key,
            proof,
            signature: hex::encode(tx.signature.0),
            expires_at: tx.body.expires_at,
        }
    }
}

impl BlockResponse {
    /// The JSON form of a stored block and its certificate.
    pub fn new(block: &Block, certificate: CertificateJson) -> Self {
        BlockResponse {
            hash: block.hash(),
            header: block.header.clone(),
            txs: block.txs.iter().map(TxJson::from).collect(),
            certificate,
        }
    }
}

/// One shard of `palisade_validators`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardValidators {
    /// The shard.
    pub shard: ShardId,
    /// Whether this node runs it (and so `state` is filled in).
    pub tracked: bool,
    /// The height `state` was read at (tracked shards only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    /// The committee in index order.
    pub validators: Vec<ValidatorJson>,
    /// Block rewards the shard created up to `height` (tracked shards only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minted_units: Option<u64>,
    /// Stake the shard burned by slashing up to `height` (tracked shards only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burned_units: Option<u64>,
    /// Base fees the shard's transactions burned up to `height` (tracked
    /// shards only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fees_burned_units: Option<u64>,
    /// The epoch, its committee and every bonded validator (tracked shards
    /// of a network with staking on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staking: Option<StakingJson>,
}

/// A committee member with its genesis stake and (on tracked shards) its
/// current record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidatorJson {
    /// Committee index.
    pub index: u32,
    /// Genesis name.
    pub name: String,
    /// Account / consensus key.
    pub address: Address,
    /// Genesis stake, base units.
    pub genesis_stake_units: u64,
    /// Current record in the shard's state (tracked shards only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<ValidatorState>,
}

/// A validator's record in its committee shard's state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidatorState {
    /// Bonded, base units.
    pub stake_units: u64,
    /// Bonded, PAL.
    pub stake: String,
    /// Fees earned, base units.
    pub rewards_units: u64,
    /// Fees earned, PAL.
    pub rewards: String,
    /// Removed from the committee for misbehaviour.
    pub jailed: bool,
    /// The offence it was slashed for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slashed: Option<SlashJson>,
}

/// The evidence a validator was slashed on and what it cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlashJson {
    /// Height of the two conflicting votes.
    pub offence_height: u64,
    /// Their view.
    pub view: u64,
    /// Their phase (`Propose`, `Prepare`, `Commit`).
    pub phase: String,
    /// The block that executed the evidence; jailed from the next height.
    pub included_at: u64,
    /// Stake burned, base units.
    pub burned_units: u64,
    /// Hash of the evidence.
    pub evidence: Hash,
}

/// `palisade_submitEvidence`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvidenceResponse {
    /// Hash of the evidence.
    pub evidence: Hash,
    /// The shard whose committee the offender sits on.
    pub shard: ShardId,
    /// The offender.
    pub offender: Address,
}

/// What `palisade_subscribeFinalBlocks` pushes for each final block.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FinalBlockNotice {
    /// The shard.
    pub shard: ShardId,
    /// The height.
    pub height: u64,
    /// The header hash.
    pub hash: Hash,
    /// Transactions in it.
    pub tx_count: usize,
    /// Its timestamp, ms since the Unix epoch.
    pub timestamp_ms: u64,
}

/// A node's default `health_stale_after_ms`: a validated shard without a
/// commit for this long makes `/health` answer 503.
pub const DEFAULT_HEALTH_STALE_AFTER_MS: u64 = 5_000;

/// `GET /health`'s body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    /// Every validated shard committed recently.
    pub healthy: bool,
    /// Each shard this node runs.
    pub shards: Vec<ShardHealth>,
}

/// One shard in a [`HealthReport`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardHealth {
    /// The shard.
    pub shard: ShardId,
    /// Whether this node validates it (only those decide `healthy`).
    pub validating: bool,
    /// It hears a quorum, is not behind its peers, and committed within
    /// the limit.
    pub healthy: bool,
    /// Committed height.
    pub height: u64,
    /// Highest height its peers showed it.
    #[serde(default)]
    pub peer_height: u64,
    /// Active committee members it heard within a leader timeout, itself
    /// included.
    #[serde(default)]
    pub validators_heard: usize,
    /// Active committee members.
    #[serde(default)]
    pub validators: usize,
    /// Since the last commit here (or the node's start).
    pub seconds_since_last_commit: f64,
    /// Why it is not healthy, e.g. `no quorum: hears 2 of 4 validators
    /// within 400 ms` or `no commit for 12.3 s (limit 5 s)`; reasons are
    /// joined with `; `.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Healthy but shedding load, and why: e.g. `intake breaker: 2 senders
    /// throttled` (their submissions spiked ten times over their usual
    /// rate). A degraded shard still counts as healthy (200).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degraded: Option<String>,
}
