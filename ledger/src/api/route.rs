//! Routing around a failed node (feature `client`): the nodes that answer
//! for one shard, tried in turn. Every call goes to the node that answered
//! last; when it cannot be reached (refused, reset, timed out) the next
//! one is asked, so a user's call survives a node killed under it. A node
//! that answers with an error has answered: its error is the call's.
//!
//! [`Route::wait_final`] also submits the transaction again to a node that
//! does not know it (the one that took it may have died before gossiping
//! it): resubmitting the same signed bytes is safe, a node keeps one copy
//! per id and a nonce is spent once.

use std::time::Duration;

use super::TransactionResponse;
use super::client::{Client, ClientError, is_settled, poll_until};
use crate::{Hash, SignedTx};

/// A shard's nodes, in the order to try them, the one that answered last
/// first. Never empty.
#[derive(Clone, Debug)]
pub struct Route {
    clients: Vec<Client>,
}

impl Route {
    /// A route over `clients`, the first asked first; `None` if empty.
    pub fn new(clients: Vec<Client>) -> Option<Route> {
        (!clients.is_empty()).then_some(Route { clients })
    }

    /// `call` on the current node, then on each other one while they
    /// cannot be reached; the node that answers becomes the current one.
    /// If none can be reached, the first node's error.
    pub async fn call<T>(
        &mut self,
        mut call: impl AsyncFnMut(&Client) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        let mut first_error = None;
        for _ in 0..self.clients.len() {
            let Some(client) = self.clients.first() else { break };
            match call(client).await {
                Err(e @ ClientError::Unreachable { .. }) => {
                    first_error.get_or_insert(e);
                    // The next node is asked next, now and from now on.
                    self.clients.rotate_left(1);
                }
                answered => return answered,
            }
        }
        Err(first_error.unwrap_or_else(|| ClientError::BadUrl { url: String::new(), cause: "no node".into() }))
    }

    /// Polls every `poll` until `tx` is final or rejected, or `timeout`
    /// passes (then its last known state), moving to the next node when one
    /// cannot be reached and submitting `tx` again to a node that does not
    /// know it.
    pub async fn wait_final(
        &mut self,
        tx: &SignedTx,
        poll: Duration,
        timeout: Duration,
    ) -> Result<TransactionResponse, ClientError> {
        let id: Hash = tx.id();
        let ask = async || {
            let answer = self.call(async |client| client.transaction(&id).await).await?;
            if let TransactionResponse::Unknown { .. } = answer {
                // Lost with the node that took it, or not gossiped here
                // yet: offer it again (a duplicate is refused harmlessly;
                // any other refusal shows in the next poll).
                let _ = self.call(async |client| client.submit(tx).await).await;
            }
            Ok(answer)
        };
        // Every node unreachable at once: keep polling until the timeout.
        let retry = |e: &ClientError| e.is_retryable() || matches!(e, ClientError::Unreachable { .. });
        poll_until(poll, timeout, ask, retry, is_settled).await
    }
}
