//! A single-threaded registry of rooms for simple drivers and tests.
//!
//! A room exists while it has a member (docs/PROTOCOL.md, "A chat session"):
//! [`Hub`] creates one on its first join and drops it on its last leave,
//! so a room code used again later starts afresh at `seq` 1.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::config::RateLimit;
use crate::event::SharedFrame;
use crate::metrics::Metrics;
use crate::names::RoomCode;
use crate::room::{JoinError, Joined, Member, MemberId, Room, TextOutcome};

/// Every room of a server, keyed by code, created and removed as members
/// come and go.
///
/// The outcomes are those of [`Room`]; the hub only adds the room code to
/// each call. A multi-threaded server may keep its own registry instead and
/// use [`Room`] directly.
#[derive(Debug)]
pub struct Hub<T> {
    rooms: HashMap<RoomCode, Room<T>>,
    rate_limit: Option<RateLimit>,
    metrics: Option<Arc<Metrics>>,
}

impl<T> Hub<T> {
    /// Creates a hub with no rooms; each room it creates gets `rate_limit`
    /// and `metrics`.
    pub fn new(rate_limit: Option<RateLimit>, metrics: Option<Arc<Metrics>>) -> Hub<T> {
        Hub {
            rooms: HashMap::new(),
            rate_limit,
            metrics,
        }
    }

    /// Adds a member to the room `code`, creating the room if it does not
    /// exist (see [`Room::join`]).
    ///
    /// # Errors
    ///
    /// [`JoinError::DuplicateSession`], with `outlet` inside, when the
    /// session id is already in that room.
    pub fn join(
        &mut self,
        code: &RoomCode,
        member: Member,
        outlet: T,
        now: Instant,
        unix_ms: u64,
    ) -> Result<Joined, JoinError<T>> {
        let room = match self.rooms.get_mut(code) {
            Some(room) => room,
            None => {
                let room = Room::new(code.clone(), self.rate_limit, self.metrics.clone());
                self.rooms.entry(code.clone()).or_insert(room)
            }
        };
        room.join(member, outlet, now, unix_ms)
    }

    /// Removes a member from the room `code`, dropping the room if it is
    /// then empty (see [`Room::leave`]).
    pub fn leave(
        &mut self,
        code: &RoomCode,
        id: MemberId,
        unix_ms: u64,
    ) -> Option<(T, SharedFrame)> {
        let room = self.rooms.get_mut(code)?;
        let left = room.leave(id, unix_ms);

        if room.is_empty() {
            self.rooms.remove(code);
        }
        left
    }

    /// Takes one chat line from a member of the room `code` (see
    /// [`Room::handle_text`]); an unknown room answers
    /// [`TextOutcome::UnknownMember`].
    pub fn handle_text(
        &mut self,
        code: &RoomCode,
        id: MemberId,
        text: &str,
        now: Instant,
        unix_ms: u64,
    ) -> TextOutcome {
        match self.rooms.get_mut(code) {
            Some(room) => room.handle_text(id, text, now, unix_ms),
            None => TextOutcome::UnknownMember,
        }
    }

    /// Returns the room `code`, if it exists.
    pub fn room(&self, code: &RoomCode) -> Option<&Room<T>> {
        self.rooms.get(code)
    }

    /// Returns the room `code` for changing, if it exists.
    pub fn room_mut(&mut self, code: &RoomCode) -> Option<&mut Room<T>> {
        self.rooms.get_mut(code)
    }

    /// Returns every room, in no particular order.
    pub fn rooms(&self) -> impl Iterator<Item = &Room<T>> + '_ {
        self.rooms.values()
    }

    /// Returns the number of rooms.
    pub fn len(&self) -> usize {
        self.rooms.len()
    }

    /// Tells whether there are no rooms.
    pub fn is_empty(&self) -> bool {
        self.rooms.is_empty()
    }
}
