//! A silent validator: its replica runs, but nothing it signs leaves the
//! node and it answers no sync request. To the others it is a crashed node
//! that never comes back, so it tests liveness with `f` faulty members.

use palisade_consensus::{SignedMessage, ValidatorIndex};

use super::{Byzantine, Ctx, Kind, Outgoing};

/// Sends nothing.
pub struct Silent;

impl Byzantine for Silent {
    fn kind(&self) -> Kind {
        Kind::Silent
    }

    fn outgoing(&mut self, _ctx: &Ctx<'_>, _message: SignedMessage, _recipients: &[ValidatorIndex]) -> Outgoing {
        Vec::new()
    }

    fn answers_sync(&self) -> bool {
        false
    }
}
