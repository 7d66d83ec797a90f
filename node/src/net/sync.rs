//! The block-sync protocol, `/palisade/sync/1`: a request-response exchange
//! of one [`SyncRequest`] for one [`SyncResponse`], each encoded with the
//! canonical bincode codec on its own stream and held to a hard size limit
//! before a byte of it is decoded.
//!
//! This module owns the codec, the checks on both sides (what a server
//! agrees to serve, what a client accepts as an answer), trimming a served
//! response to the limit, and choosing which peer to ask ([`SyncPeers`]).
//! The network task drives them; the blocks themselves are verified by the
//! shard, against their commit certificates.

use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{PeerId, StreamProtocol, request_response};
use palisade_ledger::codec;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::wire::{MAX_SYNC_REQUEST_BYTES, MAX_SYNC_RESPONSE_BYTES, SyncRequest, SyncResponse};

/// The protocol name.
pub(crate) const PROTOCOL: StreamProtocol = StreamProtocol::new("/palisade/sync/1");
/// How long a client waits for an answer (and a server for a request).
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Encoding overhead allowed on top of [`MAX_SYNC_RESPONSE_BYTES`] of blocks.
const RESPONSE_SLACK_BYTES: usize = 64 * 1024;
/// Largest encoded response accepted (and sent).
pub(crate) const MAX_RESPONSE_BYTES: usize = MAX_SYNC_RESPONSE_BYTES + RESPONSE_SLACK_BYTES;
/// Bytes a response spends besides its blocks: shard, tip height and the
/// block count, each a varint of at most 9 bytes, rounded up.
const RESPONSE_HEADER_BYTES: usize = 32;
/// Bytes each block spends besides its contents: two length varints.
const BLOCK_OVERHEAD_BYTES: usize = 18;
/// Inbound requests served at once (each reads the store on a blocking
/// thread); more are answered at once with an empty response.
pub(crate) const MAX_SERVING: usize = 4;
/// Outbound requests waiting for an answer at once.
pub(crate) const MAX_REQUESTING: usize = 16;
/// Streams of this protocol open at once, in and out (request-response's
/// own bound, above the two limits above so they are the ones that bite).
pub(crate) const MAX_STREAMS: usize = 32;
/// How long a peer that failed a request is asked only when nobody else can.
const FAILURE_MEMORY: Duration = Duration::from_secs(30);
/// Most failing peers remembered.
const MAX_FAILURES_KEPT: usize = 1_024;

/// The request-response behaviour of the protocol.
pub(crate) type SyncBehaviour = request_response::Behaviour<SyncCodec>;

/// The behaviour, with the codec, limits and timeout of the protocol.
pub(crate) fn behaviour() -> SyncBehaviour {
    request_response::Behaviour::with_codec(
        SyncCodec,
        [(PROTOCOL, request_response::ProtocolSupport::Full)],
        request_response::Config::default()
            .with_request_timeout(REQUEST_TIMEOUT)
            .with_max_concurrent_streams(MAX_STREAMS),
    )
}

/// Bounded bincode over one stream per direction: the writer sends the value
/// and closes; the reader reads at most the limit (plus one byte, to tell
/// "exactly the limit" from "more").
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SyncCodec;

async fn read_bounded<T, R>(io: &mut R, limit: usize) -> io::Result<T>
where
    T: DeserializeOwned,
    R: AsyncRead + Unpin + Send,
{
    let mut bytes = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    io.take(cap).read_to_end(&mut bytes).await?;
    codec::decode(&bytes, limit).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

async fn write_bounded<T, W>(io: &mut W, value: &T, limit: usize) -> io::Result<()>
where
    T: Serialize,
    W: AsyncWrite + Unpin + Send,
{
    let bytes = codec::encode(value);
    if bytes.len() > limit {
        // The peer would refuse it; do not waste the bandwidth.
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} bytes exceeds the limit of {limit}", bytes.len()),
        ));
    }
    io.write_all(&bytes).await
}

impl request_response::Codec for SyncCodec {
    type Protocol = StreamProtocol;
    type Request = SyncRequest;
    type Response = SyncResponse;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncRequest>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_bounded(io, MAX_SYNC_REQUEST_BYTES).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<SyncResponse>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_bounded(io, MAX_RESPONSE_BYTES).await
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, request: SyncRequest) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_bounded(io, &request, MAX_SYNC_REQUEST_BYTES).await
    }

    async fn write_response<T>(&mut self, _: &StreamProtocol, io: &mut T, response: SyncResponse) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_bounded(io, &response, MAX_RESPONSE_BYTES).await
    }
}

/// Cuts what the sync server returned down to what the request asked for and
/// what fits in [`MAX_RESPONSE_BYTES`], keeping a prefix (blocks must stay
/// consecutive from the requested height). A receipt scan over the limit
/// (the server keeps under it) is answered as if nothing was scanned.
pub(crate) fn trim(response: &mut SyncResponse, request: &SyncRequest) {
    let receipt_bytes = response.receipts.iter().map(|r| r.len().saturating_add(9)).fold(0, usize::saturating_add);
    if receipt_bytes > MAX_RESPONSE_BYTES - RESPONSE_HEADER_BYTES {
        *response = SyncResponse::empty(request);
    }
    let max_blocks = usize::try_from(request.cap()).unwrap_or(usize::MAX);
    let budget = MAX_RESPONSE_BYTES - RESPONSE_HEADER_BYTES;
    let mut used = 0usize;
    let mut keep = 0usize;
    for block in response.blocks.iter().take(max_blocks) {
        let size = block.block.len().saturating_add(block.certificate.len()).saturating_add(BLOCK_OVERHEAD_BYTES);
        match used.checked_add(size) {
            Some(total) if total <= budget => {
                used = total;
                keep += 1;
            }
            _ => break,
        }
    }
    response.blocks.truncate(keep);
}

/// An outbound request waiting for its answer.
#[derive(Debug)]
pub(crate) struct Pending {
    /// What was asked.
    pub(crate) request: SyncRequest,
}

/// Chooses whom to ask: the candidates in turn, so no single peer (a slow
/// or lying one) is always chosen, skipping those that failed recently
/// unless nobody else is left.
#[derive(Debug, Default)]
pub(crate) struct SyncPeers {
    turn: usize,
    failed_at: HashMap<PeerId, Instant>,
}

impl SyncPeers {
    /// The next peer to ask among `candidates` (in any order).
    pub(crate) fn pick(&mut self, mut candidates: Vec<PeerId>, now: Instant) -> Option<PeerId> {
        let count = candidates.len();
        if count == 0 {
            return None;
        }
        candidates.sort_unstable();
        let start = self.turn % count;
        self.turn = self.turn.wrapping_add(1);
        let mut in_turn = candidates.iter().cycle().skip(start).take(count);
        let first = in_turn.clone().next().copied();
        in_turn.find(|peer| !self.failed_recently(peer, now)).copied().or(first)
    }

    fn failed_recently(&self, peer: &PeerId, now: Instant) -> bool {
        self.failed_at.get(peer).is_some_and(|at| now.saturating_duration_since(*at) < FAILURE_MEMORY)
    }

    /// `peer` did not answer, or answered nonsense.
    pub(crate) fn failed(&mut self, peer: PeerId, now: Instant) {
        if self.failed_at.len() >= MAX_FAILURES_KEPT {
            self.failed_at.retain(|_, at| now.saturating_duration_since(*at) < FAILURE_MEMORY);
        }
        if self.failed_at.len() < MAX_FAILURES_KEPT || self.failed_at.contains_key(&peer) {
            self.failed_at.insert(peer, now);
        }
    }

    /// `peer` answered.
    pub(crate) fn succeeded(&mut self, peer: &PeerId) {
        self.failed_at.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use futures::io::Cursor;
    use libp2p::request_response::Codec;

    use super::*;
    use std::collections::BTreeSet;

    use crate::wire::SyncedBlock;

    fn request(max_blocks: u32) -> SyncRequest {
        SyncRequest { max_blocks, ..SyncRequest::blocks(1, 5) }
    }

    fn block(size: usize) -> SyncedBlock {
        SyncedBlock { block: vec![7; size], certificate: vec![9; 100] }
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        futures::executor::block_on(future)
    }

    #[test]
    fn codec_round_trips() {
        let mut codec = SyncCodec;
        let mut wire = Vec::new();
        block_on(codec.write_request(&PROTOCOL, &mut Cursor::new(&mut wire), request(3))).expect("write");
        let read = block_on(codec.read_request(&PROTOCOL, &mut Cursor::new(&wire))).expect("read");
        assert_eq!(read, request(3));

        let response = SyncResponse::blocks(1, 9, vec![block(10), block(20)]);
        let mut wire = Vec::new();
        block_on(codec.write_response(&PROTOCOL, &mut Cursor::new(&mut wire), response.clone())).expect("write");
        let read = block_on(codec.read_response(&PROTOCOL, &mut Cursor::new(&wire))).expect("read");
        assert_eq!(read, response);
    }

    #[test]
    fn codec_refuses_oversized_and_malformed_input() {
        let mut codec = SyncCodec;
        let oversized = vec![0u8; MAX_SYNC_REQUEST_BYTES + 1];
        assert!(block_on(codec.read_request(&PROTOCOL, &mut Cursor::new(&oversized))).is_err());
        let garbage = vec![0xff; 16];
        assert!(block_on(codec.read_request(&PROTOCOL, &mut Cursor::new(&garbage))).is_err());
        // A valid request followed by junk is not a request.
        let mut trailing = codec::encode(&request(1));
        trailing.push(0);
        assert!(block_on(codec.read_request(&PROTOCOL, &mut Cursor::new(&trailing))).is_err());
    }

    #[test]
    fn trim_keeps_a_prefix_within_count_and_bytes() {
        let mut response = SyncResponse::blocks(1, 9, vec![block(1); 10]);
        trim(&mut response, &request(4));
        assert_eq!(response.blocks.len(), 4);

        let big = MAX_SYNC_RESPONSE_BYTES / 2;
        let mut response = SyncResponse::blocks(1, 9, vec![block(big); 3]);
        trim(&mut response, &request(10));
        assert_eq!(response.blocks.len(), 2);
        assert!(codec::encode(&response).len() <= MAX_RESPONSE_BYTES);
    }

    #[test]
    fn peers_are_asked_in_turn_and_recent_failures_last() {
        let now = Instant::now();
        let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        let mut choose = SyncPeers::default();
        let picked: BTreeSet<PeerId> = (0..3).filter_map(|_| choose.pick(peers.clone(), now)).collect();
        assert_eq!(picked.len(), 3, "each peer gets a turn");

        let mut sorted = peers.clone();
        sorted.sort_unstable();
        let mut choose = SyncPeers::default();
        choose.failed(sorted[0], now);
        choose.failed(sorted[1], now);
        for _ in 0..5 {
            assert_eq!(choose.pick(peers.clone(), now), Some(sorted[2]));
        }
        // Everyone failing: still ask someone.
        choose.failed(sorted[2], now);
        assert!(choose.pick(peers.clone(), now).is_some());
        // Failures are forgotten after a while, or on success.
        let later = now + FAILURE_MEMORY;
        assert!(!choose.failed_recently(&sorted[0], later));
        choose.succeeded(&sorted[1]);
        assert!(!choose.failed_recently(&sorted[1], now));
        assert_eq!(SyncPeers::default().pick(Vec::new(), now), None);
    }
}
