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
///
/// # Examples
///
/// ```
/// use std::time::Instant;
/// use natter_core::hub::Hub;
/// use natter_core::names::{RoomCode, SessionId, UserName};
/// use natter_core::room::Member;
///
/// let mut hub = Hub::new(None, None);
/// let lobby = RoomCode::parse("lobby").unwrap();
/// let ana = Member {
///     user_name: UserName::parse("ana").unwrap(),
///     session_id: SessionId::parse("k3J9x0aa").unwrap(),
/// };
/// let joined = hub.join(&lobby, ana, "ana's queue", Instant::now(), 0).unwrap();
/// assert_eq!(hub.len(), 1);
///
/// let (queue, _leave) = hub.leave(&lobby, joined.id, 1).unwrap();
/// assert_eq!(queue, "ana's queue");
/// assert!(hub.is_empty());
/// ```
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
        let joined = room.join(member, outlet, now, unix_ms);

        // A fresh room cannot hold a duplicate, but no empty room may stay.
        if room.is_empty() {
            self.rooms.remove(code);
        }
        joined
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

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::names::{SessionId, UserName};

    fn member(name: &str, session: &str) -> Member {
        Member {
            user_name: UserName::parse(name).unwrap(),
            session_id: SessionId::parse(session).unwrap(),
        }
    }

    fn code(text: &str) -> RoomCode {
        RoomCode::parse(text).unwrap()
    }

    fn seq(frame: &SharedFrame) -> u64 {
        let value: Value = serde_json::from_slice(frame.payload()).unwrap();
        value["seq"].as_u64().unwrap()
    }

    #[test]
    fn room_lives_from_first_join_to_last_leave() {
        let metrics = Arc::new(Metrics::new());
        let mut hub = Hub::new(None, Some(metrics.clone()));
        let now = Instant::now();
        let lobby = code("lobby");
        assert!(hub.room(&lobby).is_none());

        let ana = hub
            .join(&lobby, member("ana", "k3J9x0aa"), 'a', now, 1)
            .unwrap();
        let bo = hub
            .join(&lobby, member("bo", "Zq81mmpp"), 'b', now, 2)
            .unwrap();
        assert_eq!(hub.len(), 1);
        assert_eq!(hub.room(&lobby).map(Room::len), Some(2));
        assert_eq!(metrics.snapshot().rooms, 1);

        assert_eq!(
            hub.leave(&lobby, ana.id, 3).map(|(outlet, _)| outlet),
            Some('a')
        );
        assert!(hub.room(&lobby).is_some());
        assert_eq!(
            hub.leave(&lobby, bo.id, 4).map(|(outlet, _)| outlet),
            Some('b')
        );
        assert!(hub.room(&lobby).is_none());
        assert!(hub.is_empty());
        assert_eq!(metrics.snapshot().rooms, 0);
        assert_eq!(metrics.snapshot().members, 0);

        // The code used again names a fresh room.
        let again = hub
            .join(&lobby, member("cy", "p0p0p0p0"), 'c', now, 5)
            .unwrap();
        assert_eq!(seq(&again.welcome), 1);
        assert_eq!(hub.room(&lobby).map(Room::seq), Some(1));
        assert!(hub.leave(&lobby, ana.id, 6).is_none());
    }

    #[test]
    fn duplicate_session_is_refused_per_room() {
        let mut hub = Hub::new(None, None);
        let now = Instant::now();
        hub.join(&code("lobby"), member("ana", "k3J9x0aa"), 1, now, 1)
            .unwrap();

        let refused = hub.join(&code("lobby"), member("ana", "k3J9x0aa"), 2, now, 2);
        assert_eq!(refused.unwrap_err().into_outlet(), 2);
        assert!(hub
            .join(&code("other"), member("ana", "k3J9x0aa"), 3, now, 3)
            .is_ok());
        assert_eq!(hub.len(), 2);
    }

    /// Pushes `frame` onto the queue of every member of `code` but `except`.
    fn deliver(
        hub: &Hub<usize>,
        queues: &mut [Vec<SharedFrame>],
        code: &RoomCode,
        frame: &SharedFrame,
        except: Option<MemberId>,
    ) {
        let room = hub.room(code).unwrap();
        for (id, &queue) in room.outlets() {
            if Some(id) != except {
                queues[queue].push(frame.clone());
            }
        }
    }

    #[test]
    fn every_member_sees_the_same_events_in_seq_order() {
        let mut hub = Hub::new(None, None);
        let mut queues: Vec<Vec<SharedFrame>> = vec![Vec::new(); 3];
        let now = Instant::now();
        let lobby = code("lobby");

        let mut ids = Vec::new();
        for (queue, name) in ["ana", "bo", "cy"].into_iter().enumerate() {
            let session = format!("{name}-session");
            let joined = hub
                .join(&lobby, member(name, &session), queue, now, 1)
                .unwrap();
            queues[queue].push(joined.welcome);
            deliver(&hub, &mut queues, &lobby, &joined.announce, Some(joined.id));
            ids.push(joined.id);
        }
        for (step, &sender) in [0, 2, 1, 0].iter().enumerate() {
            let text = format!("line {step}");
            let TextOutcome::Broadcast(frame) = hub.handle_text(&lobby, ids[sender], &text, now, 2)
            else {
                panic!("expected a broadcast");
            };
            deliver(&hub, &mut queues, &lobby, &frame, None);
        }

        // Each queue starts with its welcome, then runs without a gap to
        // the last message; the later a member joined, the later it starts.
        let seqs: Vec<Vec<u64>> = queues.iter().map(|q| q.iter().map(seq).collect()).collect();
        assert_eq!(seqs[0], [1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(seqs[1], [2, 3, 4, 5, 6, 7]);
        assert_eq!(seqs[2], [3, 4, 5, 6, 7]);

        // From the last join on, all three hold the very same frames.
        for index in 0..4 {
            let shared = &queues[2][index + 1];
            assert!(SharedFrame::ptr_eq(&queues[0][index + 3], shared));
            assert!(SharedFrame::ptr_eq(&queues[1][index + 2], shared));
        }
    }

    #[test]
    fn no_empty_room_is_kept() {
        let mut hub = Hub::<u8>::new(None, None);
        let now = Instant::now();
        let lobby = code("lobby");
        let ana = hub
            .join(&lobby, member("ana", "k3J9x0aa"), 1, now, 1)
            .unwrap();
        hub.leave(&lobby, ana.id, 2).unwrap();

        assert!(hub.rooms().all(|room| !room.is_empty()));
        assert!(hub.is_empty());
    }

    #[test]
    fn rooms_keep_their_own_seq() {
        let mut hub = Hub::new(Some(RateLimit::default()), None);
        let now = Instant::now();
        let (a, b) = (code("a"), code("b"));
        let ana = hub
            .join(&a, member("ana", "k3J9x0aa"), (), now, 1)
            .unwrap()
            .id;
        hub.join(&a, member("bo", "Zq81mmpp"), (), now, 1).unwrap();
        let cy = hub
            .join(&b, member("cy", "p0p0p0p0"), (), now, 1)
            .unwrap()
            .id;

        let TextOutcome::Broadcast(in_a) = hub.handle_text(&a, ana, "x", now, 2) else {
            panic!("expected a broadcast");
        };
        let TextOutcome::Broadcast(in_b) = hub.handle_text(&b, cy, "y", now, 2) else {
            panic!("expected a broadcast");
        };
        assert_eq!((seq(&in_a), seq(&in_b)), (3, 2));

        let lost = hub.handle_text(&code("nowhere"), ana, "z", now, 3);
        assert!(matches!(lost, TextOutcome::UnknownMember));
        assert!(hub.leave(&code("nowhere"), ana, 3).is_none());
    }
}
