//! Checking a node's answers without trusting the node: a light client (the
//! wallet's `balance --prove`, `block`) trusts only its genesis document.
//!
//! [`verify_account`] follows the chain from the answer to genesis:
//!
//! 1. the answer is about the shard the address maps to, at the height its
//!    proof is for;
//! 2. at height ≥ 1 ([`verify_header`]): the header names this chain, this
//!    shard and the genesis committee's hash, and hashes to the claimed block
//!    hash; the commit certificate, decoded from its canonical bytes (bounded),
//!    is for that hash and height and holds valid commit votes of a stake
//!    quorum of the shard's genesis committee. At height 0 there is no header:
//!    the block hash must be the genesis hash and the state root the genesis
//!    state root, both recomputed here from the genesis document;
//! 3. the state root the answer names is that certified root, and the Merkle
//!    proof is for this account's key and shows, against that root, the value
//!    the answer claims (or its absence);
//! 4. the proven value decodes to an account whose balance and nonce are the
//!    ones the answer states.
//!
//! Any failed step is a [`ProofError`]; nothing is partly trusted. What a
//! proof cannot show is freshness: a node may prove an old height truthfully.
//! Callers show the certified height so a user can judge it.

use palisade_consensus::{CommitCertificate, ValidatorIndex};

use super::{AccountResponse, BlockResponse, CertificateJson, TxJson};
use crate::block::tx_root_of_ids;
use crate::codec;
use crate::committee::{CertifiedError, verify_certified};
use crate::keys::Signature;
use crate::mem::MemState;
use crate::state::{Account, MAX_STATE_VALUE_BYTES, StateKey};
use crate::tree::StateProof;
use crate::{Address, Amount, BlockHeader, Genesis, Hash, ShardId, SignedTx, TxBody, TxKind};

/// Largest encoded commit certificate accepted (the node's own bound): a full
/// committee of 256 signatures is about 17 KiB.
pub const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;
/// Largest encoded state proof accepted: a sibling path of at most 256
/// hashes, a leaf and a small value are under 10 KiB.
pub const MAX_PROOF_BYTES: usize = 64 * 1024;

/// Why an answer is not proven.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    /// The answer carries no proof (it was not asked for, or the node left it out).
    #[error("the answer has no proof")]
    NoProof,
    /// The genesis has no such shard.
    #[error("shard {0} is not in the genesis in use")]
    UnknownShard(ShardId),
    /// The answer is about another shard than the one the address maps to.
    #[error("the answer is for shard {claimed}, but {address} lives in shard {expected}")]
    WrongShard {
        /// The account.
        address: Address,
        /// Where the genesis puts it.
        expected: ShardId,
        /// What the answer says.
        claimed: ShardId,
    },
    /// Parts of the answer name different heights.
    #[error("{what} is for height {found}, the answer for height {expected}")]
    WrongHeight {
        /// Which part.
        what: &'static str,
        /// The answer's height.
        expected: u64,
        /// The part's height.
        found: u64,
    },
    /// A part a proof above genesis needs is missing, or one genesis has not is present.
    #[error("{0}")]
    Incomplete(&'static str),
    /// Hex or bytes that do not decode.
    #[error("{what} does not decode: {reason}")]
    Decode {
        /// What.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The header is for another network.
    #[error("the header is for chain {found:?}, the genesis in use is {expected:?}")]
    WrongChain {
        /// The genesis chain id.
        expected: String,
        /// The header's.
        found: String,
    },
    /// Two hashes that must be equal are not.
    #[error("{what}: expected {expected}, found {found}")]
    HashMismatch {
        /// Which hashes.
        what: &'static str,
        /// The one we computed or trust.
        expected: Hash,
        /// The one the answer gave.
        found: Hash,
    },
    /// The certificate does not prove the block final for the shard's
    /// committee (its genesis committee minus the jailed).
    #[error("the commit certificate does not prove the block final for shard {shard}'s committee: {source}")]
    Certificate {
        /// The shard.
        shard: ShardId,
        /// What failed.
        source: CertifiedError,
    },
    /// The proof is for another state key.
    #[error("the proof is for {found:?}, not for account {address}")]
    WrongKey {
        /// The account asked about.
        address: Address,
        /// The key the proof proves.
        found: StateKey,
    },
    /// The value the answer shows is not the value the proof proves.
    #[error("the answer's value differs from the value inside the proof")]
    ValueMismatch,
    /// The Merkle path does not lead from the value to the certified root.
    #[error("the Merkle proof does not verify against the certified state root: {0}")]
    Merkle(String),
    /// The proven account differs from what the answer states.
    #[error("the answer says {field} {claimed}, the proof shows {proven}")]
    Mismatch {
        /// `balance` or `nonce`.
        field: &'static str,
        /// What the answer says.
        claimed: String,
        /// What is proven.
        proven: String,
    },
}

/// A block the genesis committee of its shard certified final (or the
/// genesis itself, at height 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Certified {
    /// The shard.
    pub shard: ShardId,
    /// The height.
    pub height: u64,
    /// The header hash (the genesis hash at height 0).
    pub block_hash: Hash,
    /// The state root after the block.
    pub state_root: Hash,
    /// The header's timestamp (the genesis time at height 0).
    pub timestamp_ms: u64,
    /// Committee indices whose commit votes the certificate holds (none at genesis).
    pub signers: Vec<u32>,
    /// Their stake.
    pub signed_stake: u64,
    /// The committee's whole stake.
    pub total_stake: u64,
    /// How many validators the committee has.
    pub committee_size: usize,
}

/// An account proven against a certified state root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedAccount {
    /// The account.
    pub address: Address,
    /// Its proven balance and nonce (zero if the proof shows it absent).
    pub account: Account,
    /// The block whose state it was read from.
    pub certified: Certified,
}

/// Checks a `palisade_account` answer made with `prove: true` against
/// `genesis` (see the module doc for every step).
pub fn verify_account(genesis: &Genesis, answer: &AccountResponse) -> Result<VerifiedAccount, ProofError> {
    let proof = answer.proof.as_ref().ok_or(ProofError::NoProof)?;
    let expected = answer.address.shard(genesis.shard_count);
    if answer.shard != expected {
        return Err(ProofError::WrongShard { address: answer.address, expected, claimed: answer.shard });
    }
    let shard = expected;
    if proof.height != answer.height {
        return Err(ProofError::WrongHeight { what: "the proof", expected: answer.height, found: proof.height });
    }
    let certified = match (&proof.header, &proof.certificate) {
        (Some(header), Some(certificate)) => {
            if header.height != proof.height {
                return Err(ProofError::WrongHeight {
                    what: "the header",
                    expected: proof.height,
                    found: header.height,
                });
            }
            verify_header(genesis, shard, header, &proof.block_hash, certificate)?
        }
        (None, None) if proof.height == 0 => genesis_block(genesis, shard, &proof.block_hash)?,
        (None, None) => return Err(ProofError::Incomplete("a proof above genesis needs a header and a certificate")),
        _ => {
            return Err(ProofError::Incomplete("a proof needs both a header and a certificate, or neither at genesis"));
        }
    };
    if proof.state_root != certified.state_root {
        return Err(ProofError::HashMismatch {
            what: "the answer's state root is not the certified one",
            expected: certified.state_root,
            found: proof.state_root,
        });
    }

    let state_proof: StateProof = decode_hex("the state proof", &proof.proof, MAX_PROOF_BYTES)?;
    let key = StateKey::Account(answer.address);
    if state_proof.key != key {
        return Err(ProofError::WrongKey { address: answer.address, found: state_proof.key });
    }
    let claimed_value = proof
        .value
        .as_deref()
        .map(|text| hex::decode(text).map_err(|e| ProofError::Decode { what: "the value", reason: e.to_string() }))
        .transpose()?;
    if claimed_value != state_proof.value {
        return Err(ProofError::ValueMismatch);
    }
    state_proof.verify(&certified.state_root).map_err(ProofError::Merkle)?;

    let account: Account = match &state_proof.value {
        None => Account::default(),
        Some(bytes) => codec::decode(bytes, MAX_STATE_VALUE_BYTES)
            .map_err(|e| ProofError::Decode { what: "the proven account", reason: e.to_string() })?,
    };
    let mismatch = |field, claimed: String, proven: String| ProofError::Mismatch { field, claimed, proven };
    if account.balance.units() != answer.balance_units || account.balance.to_string() != answer.balance {
        return Err(mismatch(
            "balance",
            format!("{} units ({} PAL)", answer.balance_units, answer.balance),
            format!("{} units", account.balance.units()),
        ));
    }
    if account.nonce != answer.nonce {
        return Err(mismatch("nonce", answer.nonce.to_string(), account.nonce.to_string()));
    }
    Ok(VerifiedAccount { address: answer.address, account, certified })
}

/// Checks a `palisade_block` answer: the header is certified final by the
/// shard's genesis committee (see [`verify_header`]), and the transactions
/// listed are exactly the ones its transaction root commits to, in order.
pub fn verify_block(genesis: &Genesis, block: &BlockResponse) -> Result<Certified, ProofError> {
    let certified = verify_header(genesis, block.header.shard, &block.header, &block.hash, &block.certificate)?;
    let mut ids = Vec::with_capacity(block.txs.len());
    for json in &block.txs {
        let id = signed_tx(json)?.id();
        if id != json.id {
            return Err(ProofError::HashMismatch {
                what: "a transaction's fields do not hash to its id",
                expected: id,
                found: json.id,
            });
        }
        ids.push(id);
    }
    let root = tx_root_of_ids(&ids);
    if root != block.header.tx_root {
        return Err(ProofError::HashMismatch {
            what: "the transactions listed are not the ones the header commits to",
            expected: block.header.tx_root,
            found: root,
        });
    }
    Ok(certified)
}

/// The signed transaction a [`TxJson`] spells out.
fn signed_tx(json: &TxJson) -> Result<SignedTx, ProofError> {
    let amount = Amount(json.amount_units);
    let kind = match json.kind.as_str() {
        "transfer" => TxKind::Transfer { to: json.to, amount },
        "unbond" => TxKind::Unbond { validator: json.to, amount },
        "bond" => {
            let missing = |what| ProofError::Decode { what, reason: "missing".into() };
            TxKind::Bond {
                validator: json.to,
                shard: json.shard.ok_or_else(|| missing("a bond's shard"))?,
                amount,
                p2p_key: hex_bytes(
                    json.p2p_key.as_deref().ok_or_else(|| missing("a bond's p2p key"))?,
                    "a bond's p2p key",
                )?,
                proof: Signature(hex_bytes(
                    json.proof.as_deref().ok_or_else(|| missing("a bond's proof"))?,
                    "a bond's proof",
                )?),
            }
        }
        other => {
            return Err(ProofError::Decode { what: "a transaction", reason: format!("unknown kind {other:?}") });
        }
    };
    let signature = hex_bytes(&json.signature, "a transaction signature")?;
    Ok(SignedTx {
        body: TxBody {
            chain_id: json.chain_id.clone(),
            sender: json.sender,
            nonce: json.nonce,
            fee: Amount(json.fee_units),
            kind,
            expires_at: json.expires_at,
        },
        signature: Signature(signature),
    })
}

/// Fixed-size bytes from hex, naming `what` if they are not.
fn hex_bytes<T: hex::FromHex<Error = hex::FromHexError>>(text: &str, what: &'static str) -> Result<T, ProofError> {
    T::from_hex(text).map_err(|e| ProofError::Decode { what, reason: e.to_string() })
}

/// Checks that `header` (of `shard`) hashes to `block_hash` and that
/// `certificate` proves it final: commit votes for exactly that hash and
/// height from a stake quorum of the shard's committee at that height
/// (see [`crate::committee::verify_certified`]).
pub fn verify_header(
    genesis: &Genesis,
    shard: ShardId,
    header: &BlockHeader,
    block_hash: &Hash,
    certificate: &CertificateJson,
) -> Result<Certified, ProofError> {
    let committee = genesis.consensus_committee(shard).ok_or(ProofError::UnknownShard(shard))?;
    if header.chain_id != genesis.chain_id {
        return Err(ProofError::WrongChain { expected: genesis.chain_id.clone(), found: header.chain_id.clone() });
    }
    if header.shard != shard {
        return Err(ProofError::Incomplete("the header is for another shard"));
    }
    let hash = header.hash();
    if hash != *block_hash {
        return Err(ProofError::HashMismatch {
            what: "the header does not hash to the claimed block hash",
            expected: hash,
            found: *block_hash,
        });
    }
    let decoded: CommitCertificate = decode_hex("the certificate", &certificate.encoded, MAX_CERTIFICATE_BYTES)?;
    if decoded.block_hash != hash.0 {
        return Err(ProofError::HashMismatch {
            what: "the certificate is for another block",
            expected: hash,
            found: Hash(decoded.block_hash),
        });
    }
    if decoded.height != header.height {
        return Err(ProofError::WrongHeight {
            what: "the certificate",
            expected: header.height,
            found: decoded.height,
        });
    }
    let jailed: Vec<ValidatorIndex> = certificate.jailed.iter().copied().map(ValidatorIndex).collect();
    let committee = verify_certified(&committee, &jailed, &genesis.chain_id, header, &decoded)
        .map_err(|source| ProofError::Certificate { shard, source })?;
    let signers: Vec<u32> = decoded.signatures.iter().map(|s| s.signer.0).collect();
    Ok(Certified {
        shard,
        height: header.height,
        block_hash: hash,
        state_root: header.state_root,
        timestamp_ms: header.timestamp_ms,
        signed_stake: committee.stake_of(signers.iter().copied().map(ValidatorIndex)),
        signers,
        total_stake: committee.total_stake(),
        committee_size: committee.len(),
    })
}

/// Height 0 of `shard`, recomputed from `genesis`; `block_hash` must be the genesis hash.
fn genesis_block(genesis: &Genesis, shard: ShardId, block_hash: &Hash) -> Result<Certified, ProofError> {
    let committee = genesis.consensus_committee(shard).ok_or(ProofError::UnknownShard(shard))?;
    let state = MemState::genesis(genesis, shard).ok_or(ProofError::UnknownShard(shard))?;
    let hash = genesis.hash();
    if *block_hash != hash {
        return Err(ProofError::HashMismatch {
            what: "the block at height 0 is not the genesis in use",
            expected: hash,
            found: *block_hash,
        });
    }
    Ok(Certified {
        shard,
        height: 0,
        block_hash: hash,
        state_root: state.root(),
        timestamp_ms: genesis.genesis_time_ms,
        signers: Vec::new(),
        signed_stake: 0,
        total_stake: committee.total_stake(),
        committee_size: committee.len(),
    })
}

/// Decodes hex of a canonical encoding, refusing more than `limit` bytes
/// before decoding the hex.
fn decode_hex<T: serde::de::DeserializeOwned>(what: &'static str, text: &str, limit: usize) -> Result<T, ProofError> {
    if text.len() > limit.saturating_mul(2) {
        return Err(ProofError::Decode { what, reason: format!("longer than {limit} bytes") });
    }
    let bytes = hex::decode(text).map_err(|e| ProofError::Decode { what, reason: e.to_string() })?;
    codec::decode(&bytes, limit).map_err(|e| ProofError::Decode { what, reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::arithmetic_side_effects)]

    use super::*;
    use crate::api::AccountProof;
    use crate::{Block, Keypair, build_block};

    const SHARDS: u32 = 2;
    const AMOUNT: Amount = Amount(1_500_000_000);
    const FEE: Amount = Amount(1_000);

    #[test]
    fn every_kind_of_transaction_is_rebuilt_from_its_json() {
        let (operator, validator) = (Keypair::dev("operator"), Keypair::dev("validator"));
        let txs = [
            SignedTx::transfer(&operator, "c", 0, validator.address(), AMOUNT, FEE),
            crate::stake::bond_tx(&operator, &validator, "c", 1, 1, AMOUNT, [7; 32], FEE),
            crate::stake::unbond_tx(&operator, "c", 2, validator.address(), AMOUNT, FEE),
        ];
        for tx in txs {
            let json = TxJson::from(&tx);
            assert_eq!(signed_tx(&json).unwrap(), tx, "{}", json.kind);
            let mut broken = json.clone();
            broken.kind = "mint".into();
            assert!(signed_tx(&broken).is_err());
        }
        let mut bond = TxJson::from(&crate::stake::bond_tx(&operator, &validator, "c", 1, 1, AMOUNT, [7; 32], FEE));
        bond.proof = None;
        assert!(matches!(signed_tx(&bond), Err(ProofError::Decode { what: "a bond's proof", .. })));
    }

    /// The shard the test chain runs: where the dev account "alice" lives.
    fn home() -> ShardId {
        Keypair::dev("alice").address().shard(SHARDS)
    }

    /// The other shard.
    fn away() -> ShardId {
        (home() + 1) % SHARDS
    }

    /// A shard with one certified block: a dev account sent `AMOUNT` to a
    /// fresh address on its shard.
    struct Chain {
        genesis: Genesis,
        state: MemState,
        block: Block,
        certificate: CommitCertificate,
        sender: Keypair,
        sender_genesis_units: u64,
        recipient: Address,
    }

    fn key_in(shard: ShardId, prefix: &str) -> Keypair {
        (0..).map(|i| Keypair::dev(&format!("{prefix}-{i}"))).find(|k| k.address().shard(SHARDS) == shard).unwrap()
    }

    /// Commit votes for `block` by validators `signers` of `committee_shard`.
    fn certify(genesis: &Genesis, block: &Block, committee_shard: ShardId, signers: &[u32]) -> CommitCertificate {
        crate::workload::dev_certificate(genesis, block, committee_shard, signers)
    }

    fn chain() -> Chain {
        let genesis = Genesis::dev(SHARDS, 4);
        let sender = Keypair::dev("alice");
        let sender_genesis_units =
            genesis.accounts.iter().find(|a| a.address == sender.address()).unwrap().balance_units;
        let recipient = key_in(home(), "recipient").address();
        let mut state = MemState::genesis(&genesis, home()).unwrap();
        let tx = TxBody {
            chain_id: genesis.chain_id.clone(),
            sender: sender.address(),
            nonce: 0,
            fee: FEE,
            kind: TxKind::Transfer { to: recipient, amount: AMOUNT },
            expires_at: None,
        }
        .sign(&sender);
        let proposer = genesis.committee(home()).unwrap().validators[0].address;
        let built = build_block(&state, proposer, genesis.genesis_time_ms + 1_000, Vec::new(), [tx]).unwrap();
        assert!(built.rejected.is_empty());
        state.commit(&built.outcome);
        let certificate = certify(&genesis, &built.block, home(), &[0, 1, 3]);
        Chain { genesis, state, block: built.block, certificate, sender, sender_genesis_units, recipient }
    }

    /// What a node answers for `address` with `prove: true` (as the node's
    /// `account_proof` builds it).
    fn answer(chain: &Chain, address: Address) -> AccountResponse {
        let proof = chain.state.prove(StateKey::Account(address)).unwrap();
        let account: Account =
            proof.value.as_ref().map(|v| codec::decode(v, MAX_STATE_VALUE_BYTES).unwrap()).unwrap_or_default();
        let encoded = codec::encode(&chain.certificate);
        AccountResponse {
            address,
            shard: home(),
            balance_units: account.balance.units(),
            balance: account.balance.to_string(),
            nonce: account.nonce,
            stake_units: None,
            stake: None,
            jailed: None,
            height: 1,
            proof: Some(AccountProof {
                height: 1,
                state_root: chain.state.root(),
                value: proof.value.as_ref().map(hex::encode),
                proof: hex::encode(codec::encode(&proof)),
                header: Some(chain.block.header.clone()),
                block_hash: chain.block.hash(),
                certificate: Some(CertificateJson::new(&chain.certificate, &encoded)),
            }),
        }
    }

    fn proof_mut(answer: &mut AccountResponse) -> &mut AccountProof {
        answer.proof.as_mut().unwrap()
    }

    /// Re-encodes the answer's certificate after `edit`.
    fn edit_certificate(answer: &mut AccountResponse, edit: impl FnOnce(&mut CommitCertificate)) {
        let json = proof_mut(answer).certificate.as_mut().unwrap();
        let mut certificate: CommitCertificate = codec::decode(&hex::decode(&json.encoded).unwrap(), 1 << 20).unwrap();
        edit(&mut certificate);
        *json = CertificateJson::new(&certificate, &codec::encode(&certificate));
    }

    #[test]
    fn honest_answers_verify_for_sender_recipient_and_absent_accounts() {
        let chain = chain();
        let sender = verify_account(&chain.genesis, &answer(&chain, chain.sender.address())).unwrap();
        let spent = AMOUNT.checked_add(FEE).unwrap().units();
        assert_eq!(sender.account.balance.units(), chain.sender_genesis_units - spent);
        assert_eq!(sender.account.nonce, 1);
        assert_eq!(sender.certified.height, 1);
        assert_eq!(sender.certified.block_hash, chain.block.hash());
        assert_eq!(sender.certified.signers, vec![0, 1, 3]);
        assert_eq!(sender.certified.committee_size, 4);

        let recipient = verify_account(&chain.genesis, &answer(&chain, chain.recipient)).unwrap();
        assert_eq!(recipient.account.balance, AMOUNT);

        let nobody = key_in(home(), "nobody").address();
        let absent = verify_account(&chain.genesis, &answer(&chain, nobody)).unwrap();
        assert_eq!(absent.account, Account::default());
        assert!(answer(&chain, nobody).proof.unwrap().value.is_none());
    }

    #[test]
    fn a_claimed_balance_or_nonce_other_than_the_proven_one_fails() {
        let chain = chain();
        let honest = answer(&chain, chain.sender.address());
        let mut richer = honest.clone();
        richer.balance_units += 1;
        richer.balance = Amount(richer.balance_units).to_string();
        assert!(matches!(verify_account(&chain.genesis, &richer), Err(ProofError::Mismatch { field: "balance", .. })));
        let mut text_only = honest.clone();
        text_only.balance = "1000000000".into();
        assert!(matches!(verify_account(&chain.genesis, &text_only), Err(ProofError::Mismatch { .. })));
        let mut nonce = honest;
        nonce.nonce = 0;
        assert!(matches!(verify_account(&chain.genesis, &nonce), Err(ProofError::Mismatch { field: "nonce", .. })));
        // An absent account claimed to hold money.
        let mut absent = answer(&chain, key_in(home(), "nobody").address());
        absent.balance_units = 5;
        absent.balance = Amount(5).to_string();
        assert!(verify_account(&chain.genesis, &absent).is_err());
    }

    #[test]
    fn a_forged_value_fails_the_merkle_check() {
        let chain = chain();
        let mut forged = answer(&chain, chain.sender.address());
        let rich = Account { balance: Amount(u64::MAX / 2), nonce: 1 };
        let mut state_proof: StateProof =
            codec::decode(&hex::decode(&forged.proof.as_ref().unwrap().proof).unwrap(), MAX_PROOF_BYTES).unwrap();
        state_proof.value = Some(codec::encode(&rich));
        forged.balance_units = rich.balance.units();
        forged.balance = rich.balance.to_string();
        let proof = proof_mut(&mut forged);
        proof.proof = hex::encode(codec::encode(&state_proof));
        proof.value = Some(hex::encode(codec::encode(&rich)));
        assert!(matches!(verify_account(&chain.genesis, &forged), Err(ProofError::Merkle(_))));

        // The value shown beside the proof must be the proven one.
        let mut shown = answer(&chain, chain.sender.address());
        proof_mut(&mut shown).value = Some(hex::encode(codec::encode(&rich)));
        assert!(matches!(verify_account(&chain.genesis, &shown), Err(ProofError::ValueMismatch)));

        // Another account's proof does not prove this one.
        let mut other = answer(&chain, chain.recipient);
        other.address = chain.sender.address();
        assert!(verify_account(&chain.genesis, &other).is_err());
    }

    #[test]
    fn a_tampered_signature_or_too_few_signers_fail() {
        let chain = chain();
        let mut flipped = answer(&chain, chain.sender.address());
        edit_certificate(&mut flipped, |c| c.signatures[1].signature.0[7] ^= 1);
        let err = verify_account(&chain.genesis, &flipped).unwrap_err();
        assert!(matches!(err, ProofError::Certificate { source: CertifiedError::Certificate(_), .. }), "{err}");

        let mut two = answer(&chain, chain.sender.address());
        edit_certificate(&mut two, |c| {
            c.signatures.truncate(2);
        });
        let err = verify_account(&chain.genesis, &two).unwrap_err();
        assert!(matches!(err, ProofError::Certificate { source: CertifiedError::Certificate(_), .. }), "{err}");

        // Signed by another shard's committee: the signatures are not the genesis committee's.
        let mut foreign = answer(&chain, chain.sender.address());
        let other = certify(&chain.genesis, &chain.block, away(), &[0, 1, 2]);
        proof_mut(&mut foreign).certificate = Some(CertificateJson::new(&other, &codec::encode(&other)));
        assert!(matches!(verify_account(&chain.genesis, &foreign), Err(ProofError::Certificate { .. })));

        // Garbage in place of the certificate.
        let mut garbage = answer(&chain, chain.sender.address());
        proof_mut(&mut garbage).certificate.as_mut().unwrap().encoded = "00ff".into();
        assert!(matches!(verify_account(&chain.genesis, &garbage), Err(ProofError::Decode { .. })));
    }

    #[test]
    fn a_tampered_root_or_header_fails() {
        let chain = chain();
        let other_root = Hash::plain(b"another state");

        // The answer's root alone.
        let mut root = answer(&chain, chain.sender.address());
        proof_mut(&mut root).state_root = other_root;
        assert!(matches!(verify_account(&chain.genesis, &root), Err(ProofError::HashMismatch { .. })));

        // The header's root: the header no longer hashes to the block hash.
        let mut header = answer(&chain, chain.sender.address());
        proof_mut(&mut header).header.as_mut().unwrap().state_root = other_root;
        proof_mut(&mut header).state_root = other_root;
        assert!(matches!(verify_account(&chain.genesis, &header), Err(ProofError::HashMismatch { .. })));

        // Header and block hash changed together: the certificate is for another block.
        let mut both = answer(&chain, chain.sender.address());
        let proof = proof_mut(&mut both);
        let json = proof.header.as_mut().unwrap();
        json.state_root = other_root;
        proof.block_hash = json.hash();
        proof.state_root = other_root;
        assert!(matches!(verify_account(&chain.genesis, &both), Err(ProofError::HashMismatch { .. })));

        // ... and a certificate re-pointed at that block no longer verifies.
        let new_hash = both.proof.as_ref().unwrap().block_hash;
        edit_certificate(&mut both, |c| c.block_hash = new_hash.0);
        assert!(matches!(verify_account(&chain.genesis, &both), Err(ProofError::Certificate { .. })));

        // Missing parts.
        let mut bare = answer(&chain, chain.sender.address());
        proof_mut(&mut bare).certificate = None;
        assert!(matches!(verify_account(&chain.genesis, &bare), Err(ProofError::Incomplete(_))));
        let mut none = answer(&chain, chain.sender.address());
        none.proof = None;
        assert!(matches!(verify_account(&chain.genesis, &none), Err(ProofError::NoProof)));
    }

    #[test]
    fn another_genesis_or_shard_or_height_fails() {
        let chain = chain();
        let honest = answer(&chain, chain.sender.address());
        let mut other = chain.genesis.clone();
        other.chain_id = "palisade-dev-other".into();
        assert!(matches!(verify_account(&other, &honest), Err(ProofError::WrongChain { .. })));
        let bigger = Genesis::dev(SHARDS, 5);
        assert!(verify_account(&bigger, &honest).is_err());

        let mut shard = honest.clone();
        shard.shard = away();
        assert!(matches!(verify_account(&chain.genesis, &shard), Err(ProofError::WrongShard { .. })));
        let mut height = honest;
        height.height = 2;
        assert!(matches!(verify_account(&chain.genesis, &height), Err(ProofError::WrongHeight { .. })));
    }

    #[test]
    fn genesis_answers_are_checked_against_the_recomputed_genesis_state() {
        let genesis = Genesis::dev(SHARDS, 4);
        let state = MemState::genesis(&genesis, home()).unwrap();
        let address = Keypair::dev("alice").address();
        let proof = state.prove(StateKey::Account(address)).unwrap();
        let units = genesis.accounts.iter().find(|a| a.address == address).unwrap().balance_units;
        let honest = AccountResponse {
            address,
            shard: home(),
            balance_units: units,
            balance: Amount(units).to_string(),
            nonce: 0,
            stake_units: None,
            stake: None,
            jailed: None,
            height: 0,
            proof: Some(AccountProof {
                height: 0,
                state_root: state.root(),
                value: proof.value.as_ref().map(hex::encode),
                proof: hex::encode(codec::encode(&proof)),
                header: None,
                block_hash: genesis.hash(),
                certificate: None,
            }),
        };
        let verified = verify_account(&genesis, &honest).unwrap();
        assert_eq!(verified.account.balance.units(), units);
        assert!(verified.certified.signers.is_empty());

        let mut richer = honest.clone();
        richer.balance_units += 1;
        richer.balance = Amount(richer.balance_units).to_string();
        assert!(verify_account(&genesis, &richer).is_err());
        // A genesis whose balances differ has another root (and hash).
        let mut other = genesis.clone();
        other.accounts[0].balance_units += 1;
        assert!(verify_account(&other, &honest).is_err());
    }

    #[test]
    fn blocks_verify_only_with_their_certificate() {
        let chain = chain();
        let encoded = codec::encode(&chain.certificate);
        let honest = BlockResponse::new(&chain.block, CertificateJson::new(&chain.certificate, &encoded));
        let certified = verify_block(&chain.genesis, &honest).unwrap();
        assert_eq!(certified.block_hash, chain.block.hash());
        assert_eq!(certified.signed_stake * 4, certified.total_stake * 3);

        let mut flipped = chain.certificate.clone();
        flipped.signatures[0].signature.0[0] ^= 1;
        let forged = BlockResponse::new(&chain.block, CertificateJson::new(&flipped, &codec::encode(&flipped)));
        assert!(matches!(verify_block(&chain.genesis, &forged), Err(ProofError::Certificate { .. })));

        let mut proposer = honest.clone();
        proposer.header.proposer = chain.recipient;
        assert!(matches!(verify_block(&chain.genesis, &proposer), Err(ProofError::HashMismatch { .. })));

        // The listed transactions must be the committed ones.
        let mut amount = honest.clone();
        amount.txs[0].amount_units += 1;
        assert!(matches!(verify_block(&chain.genesis, &amount), Err(ProofError::HashMismatch { .. })));
        let mut dropped = honest;
        dropped.txs.clear();
        assert!(matches!(verify_block(&chain.genesis, &dropped), Err(ProofError::HashMismatch { .. })));
    }
}
