//! Deterministic workloads: named, funded dev accounts that sign transfers
//! with locally tracked nonces. Shared by tests, the crash test, benchmarks
//! and the simulator so they all exercise the same transaction shapes.

use crate::{
    address::Address,
    amount::Amount,
    genesis::{Genesis, GenesisAccount},
    keys::Keypair,
    tx::SignedTx,
};

/// A set of accounts with dev keys and the next nonce of each.
pub struct Wallets {
    chain_id: String,
    keys: Vec<Keypair>,
    nonces: Vec<u64>,
}

impl Wallets {
    /// `count` accounts named `{prefix}-{i}` (dev keys: INSECURE).
    pub fn new(chain_id: &str, prefix: &str, count: usize) -> Wallets {
        let keys = (0..count).map(|i| Keypair::dev(&format!("{prefix}-{i}"))).collect();
        Wallets { chain_id: chain_id.to_string(), keys, nonces: vec![0; count] }
    }

    /// Adds each account to `genesis` with `balance`.
    pub fn fund(&self, genesis: &mut Genesis, prefix: &str, balance: Amount) {
        for (i, key) in self.keys.iter().enumerate() {
            genesis.accounts.push(GenesisAccount {
                name: format!("{prefix}-{i}"),
                address: key.address(),
                balance_units: balance.units(),
            });
        }
    }

    /// How many accounts.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The address of account `i` (wrapping).
    pub fn address(&self, i: usize) -> Address {
        self.keypair(i).address()
    }

    /// Account indices wrap around, so any `usize` names an account.
    fn slot(&self, i: usize) -> usize {
        i.checked_rem(self.keys.len()).unwrap_or(0)
    }

    /// The key of account `i` (wrapping), to sign hand-made bodies.
    pub fn keypair(&self, i: usize) -> &Keypair {
        #[allow(clippy::indexing_slicing)] // slot() < len; using an empty set is a caller bug
        &self.keys[self.slot(i)]
    }

    /// A signed transfer from account `from` to `to` with the sender's next
    /// nonce, which is then advanced (so the caller must get it executed, or
    /// [`Wallets::set_nonce`] back).
    pub fn transfer(&mut self, from: usize, to: Address, amount: Amount, fee: Amount) -> SignedTx {
        let index = self.slot(from);
        let nonce = self.nonces.get(index).copied().unwrap_or(0);
        if let Some(slot) = self.nonces.get_mut(index) {
            *slot = nonce.saturating_add(1);
        }
        SignedTx::transfer(self.keypair(index), &self.chain_id, nonce, to, amount, fee)
    }

    /// Resets account `i`'s next nonce (after a transaction was dropped).
    pub fn set_nonce(&mut self, i: usize, nonce: u64) {
        let index = self.slot(i);
        if let Some(slot) = self.nonces.get_mut(index) {
            *slot = nonce;
        }
    }
}

/// A commit certificate for `block` carrying the commit votes of validators
/// `signers` of `committee_shard`'s dev committee (keys `validator-S-I`, as
/// [`Genesis::dev`] names them), as that shard's replicas would assemble it.
/// Signing with another shard's committee forges one that must not verify.
pub fn dev_certificate(
    genesis: &Genesis,
    block: &crate::Block,
    committee_shard: u32,
    signers: &[u32],
) -> palisade_consensus::CommitCertificate {
    use palisade_consensus::{Message, Phase, SignedMessage, ValidatorIndex, Vote, VoteSignature};
    let shard = block.header.shard;
    let (height, block_hash) = (block.header.height, block.hash().0);
    let signatures = signers
        .iter()
        .map(|&i| {
            let seed = Keypair::dev(&format!("validator-{committee_shard}-{i}")).seed();
            let key = ed25519_dalek::SigningKey::from_bytes(&seed);
            let vote = Message::Vote(Vote { phase: Phase::Commit, height, view: 0, block_hash });
            let signed = SignedMessage::sign(&genesis.chain_id, shard, ValidatorIndex(i), vote, &key);
            VoteSignature { signer: ValidatorIndex(i), signature: signed.signature }
        })
        .collect();
    palisade_consensus::CommitCertificate { height, view: 0, block_hash, signatures }
}

/// Evidence that dev validator `validator-{shard}-{index}` signed two
/// different prepare votes at `(height, view 0)`, as a twin (two processes
/// with one key) would: for tests.
pub fn dev_evidence(genesis: &Genesis, shard: u32, index: u32, height: u64) -> palisade_consensus::Evidence {
    use palisade_consensus::{Evidence, Message, Phase, SignedMessage, SignedVote, ValidatorIndex, Vote};
    let seed = Keypair::dev(&format!("validator-{shard}-{index}")).seed();
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let signed = |block_hash: [u8; 32]| {
        let vote = Vote { phase: Phase::Prepare, height, view: 0, block_hash };
        let message = SignedMessage::sign(&genesis.chain_id, shard, ValidatorIndex(index), Message::Vote(vote), &key);
        SignedVote { vote, signature: message.signature }
    };
    Evidence { shard, signer: ValidatorIndex(index), first: signed([1; 32]), second: signed([2; 32]) }
}
