//! The registry of rooms and the delivery of room frames to members'
//! outlets.
//!
//! Locks are always taken in this order: the registry, then one room, then
//! a member's connection, then its outlet. A reader thread never waits for
//! a room while it holds its own connection, so a room owner may close any
//! member's connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use natter_core::close::CloseCode;
use natter_core::config::RateLimit;
use natter_core::event::SharedFrame;
use natter_core::metrics::Metrics;
use natter_core::names::RoomCode;
use natter_core::room::{JoinError, Joined, Member, MemberId, Room, TextOutcome};

use crate::outlet::PushError;
use crate::peer::Peer;
use crate::server::lock;

/// A room shared by the reader threads of its members.
pub type SharedRoom = Arc<Mutex<Room<Arc<Peer>>>>;

/// Every room of the server, keyed by code; touched only on join and leave.
#[derive(Debug)]
pub struct Rooms {
    map: Mutex<HashMap<RoomCode, SharedRoom>>,
    rate_limit: Option<RateLimit>,
    metrics: Arc<Metrics>,
}

/// Members whose writers were left asleep by quiet pushes, to be woken
/// once the pushing is over and the room's lock released.
#[derive(Debug, Default)]
pub struct Wakes(Vec<Arc<Peer>>);

impl Wakes {
    /// Wakes every writer noted and forgets them.
    pub fn wake_all(&mut self) {
        for peer in self.0.drain(..) {
            peer.outlet.notify();
        }
    }
}

/// Returns the wall clock in milliseconds since the Unix epoch, for `ts`.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl Rooms {
    /// Creates an empty registry whose rooms apply `rate_limit`.
    pub fn new(rate_limit: Option<RateLimit>, metrics: Arc<Metrics>) -> Rooms {
        Rooms {
            map: Mutex::new(HashMap::new()),
            rate_limit,
            metrics,
        }
    }

    /// Adds `peer` as `member` of the room `code`, creating the room if
    /// needed, and queues the 101 response, the welcome and the join.
    ///
    /// The registry stays locked until the room is, so a last member
    /// leaving cannot remove the room between the two.
    ///
    /// # Errors
    ///
    /// [`JoinError::DuplicateSession`] when the session is already in the
    /// room; nothing was queued and an empty room just created is removed.
    pub fn join(
        &self,
        code: &RoomCode,
        member: Member,
        peer: &Arc<Peer>,
        response: Vec<u8>,
    ) -> Result<(SharedRoom, MemberId), JoinError<Arc<Peer>>> {
        let mut map = lock(&self.map);
        let shared = Arc::clone(map.entry(code.clone()).or_insert_with(|| {
            log::debug!("room {} created", code.as_str());
            let room = Room::new(
                code.clone(),
                self.rate_limit,
                Some(Arc::clone(&self.metrics)),
            );
            Arc::new(Mutex::new(room))
        }));
        let mut room = lock(&shared);

        let joined = match room.join(member, Arc::clone(peer), Instant::now(), unix_ms()) {
            Ok(joined) => joined,
            Err(refused) => {
                if room.is_empty() {
                    map.remove(code);
                    log::debug!("room {} removed", code.as_str());
                }
                return Err(refused);
            }
        };
        drop(map);

        let Joined {
            id,
            welcome,
            announce,
        } = joined;
        // The 101 goes first whatever follows: a kick keeps it queued. The
        // welcome is taken whatever its size, outside the queue's bound.
        let _ = peer.outlet.upgrade(response);
        let _ = peer.outlet.push_welcome(welcome);
        let mut wakes = Wakes::default();
        deliver(&mut room, &announce, Some(id), &mut wakes);
        drop(room);

        wakes.wake_all();
        Ok((shared, id))
    }

    /// Hands one chat line of member `id` to its room and queues what it
    /// produces; the writers to wake are added to `wakes`.
    pub fn handle_text(&self, room: &SharedRoom, id: MemberId, text: &str, wakes: &mut Wakes) {
        let mut room = lock(room);
        match room.handle_text(id, text, Instant::now(), unix_ms()) {
            TextOutcome::Broadcast(frame) => deliver(&mut room, &frame, None, wakes),
            TextOutcome::RateLimited(frame) => {
                let full = room.outlet(id).map(|peer| peer.outlet.push_frame(frame));
                if full != Some(Err(PushError::Full)) {
                    return;
                }
                if let Some(leave) = drop_member(&mut room, id) {
                    deliver(&mut room, &leave, None, wakes);
                }
            }
            TextOutcome::Ignored | TextOutcome::UnknownMember => {}
        }
    }

    /// Removes member `id` when its connection ends, unless a room owner
    /// already dropped it, and removes the room if it is then empty.
    ///
    /// Returns whether the member was still in the room.
    pub fn leave(&self, code: &RoomCode, room: &SharedRoom, id: MemberId) -> bool {
        let mut guard = lock(room);
        let Some((_, frame)) = guard.leave(id, unix_ms()) else {
            return false;
        };
        let mut wakes = Wakes::default();
        deliver(&mut guard, &frame, None, &mut wakes);
        let empty = guard.is_empty();
        drop(guard);

        wakes.wake_all();
        if empty {
            self.remove_if_empty(code, room);
        }
        true
    }

    /// Removes the room `code` if it is `room` and still empty, checked
    /// under the registry lock so a concurrent join keeps it.
    fn remove_if_empty(&self, code: &RoomCode, room: &SharedRoom) {
        let mut map = lock(&self.map);
        let Some(current) = map.get(code) else {
            return;
        };
        if Arc::ptr_eq(current, room) && lock(current).is_empty() {
            map.remove(code);
            log::debug!("room {} removed", code.as_str());
        }
    }

    /// Starts the closing handshake with 1001 on every member of every
    /// room, and returns how many members there were.
    pub fn close_all(&self) -> usize {
        let rooms: Vec<SharedRoom> = lock(&self.map).values().cloned().collect();
        let mut count = 0;
        for shared in rooms {
            let room = lock(&shared);
            for (_, peer) in room.outlets() {
                peer.close(CloseCode::GOING_AWAY, "server shutting down");
                count += 1;
            }
        }
        count
    }
}

/// Pushes `frame` to every member but `except`, then drops each member
/// whose queue overflowed, which sends its leave to the rest in turn.
fn deliver(
    room: &mut Room<Arc<Peer>>,
    frame: &SharedFrame,
    except: Option<MemberId>,
    wakes: &mut Wakes,
) {
    let mut overflowed = Vec::new();
    push_all(room, frame, except, &mut overflowed, wakes);

    while let Some(id) = overflowed.pop() {
        if let Some(leave) = drop_member(room, id) {
            push_all(room, &leave, None, &mut overflowed, wakes);
        }
    }
}

/// Pushes `frame` to every member but `except`, noting who is full.
fn push_all(
    room: &Room<Arc<Peer>>,
    frame: &SharedFrame,
    except: Option<MemberId>,
    overflowed: &mut Vec<MemberId>,
    wakes: &mut Wakes,
) {
    for (id, peer) in room.outlets() {
        if Some(id) == except {
            continue;
        }
        match peer.outlet.push_frame_quietly(frame.clone()) {
            Ok(true) => wakes.0.push(Arc::clone(peer)),
            Ok(false) | Err(PushError::Closed) => {}
            Err(PushError::Full) => overflowed.push(id),
        }
    }
}

/// Removes a member whose queue passed its bound and closes its
/// connection with 1008 (counted there); returns the leave frame for the
/// others.
fn drop_member(room: &mut Room<Arc<Peer>>, id: MemberId) -> Option<SharedFrame> {
    let (peer, leave) = room.leave(id, unix_ms())?;
    if peer.kick() {
        log::info!(
            "room {}: member {} dropped: queue over its bound (close 1008)",
            room.code(),
            peer.session_label(),
        );
    }
    Some(leave)
}

#[cfg(test)]
mod tests {
    use std::net::TcpStream;

    use natter_core::names::{SessionId, UserName};

    use super::*;
    use crate::peer::tests::loopback_peer;

    /// Returns a peer on a loopback socket pair (the far end is returned to
    /// keep it open) whose queue holds `limit` bytes and whose drops count
    /// in the metrics of `rooms`.
    fn peer(rooms: &Rooms, session: &str, limit: usize) -> (Arc<Peer>, TcpStream) {
        loopback_peer(session, limit, Arc::clone(&rooms.metrics))
    }

    fn member(session: &str) -> Member {
        Member {
            user_name: UserName::parse("u").unwrap(),
            session_id: SessionId::parse(session).unwrap(),
        }
    }

    fn payloads(peer: &Peer) -> Vec<String> {
        peer.outlet
            .snapshot()
            .iter()
            .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
            .collect()
    }

    fn rooms() -> Rooms {
        Rooms::new(None, Arc::new(Metrics::new()))
    }

    #[test]
    fn joiner_gets_the_response_then_its_welcome_and_others_the_join() {
        let rooms = rooms();
        let code = RoomCode::parse("r").unwrap();
        let (ana, _a) = peer(&rooms, "session-a", 1 << 20);
        let (bo, _b) = peer(&rooms, "session-b", 1 << 20);
        rooms
            .join(&code, member("session-a"), &ana, b"101".to_vec())
            .unwrap();
        rooms
            .join(&code, member("session-b"), &bo, b"101".to_vec())
            .unwrap();

        let ana_seen = payloads(&ana);
        assert_eq!(ana_seen.len(), 3);
        assert!(ana_seen[1].contains("\"welcome\""));
        assert!(ana_seen[2].contains("\"join\"") && ana_seen[2].contains("session-b"));
        let bo_seen = payloads(&bo);
        assert_eq!(bo_seen[0], "101");
        assert!(bo_seen[1].contains("\"welcome\""));
        assert_eq!(bo_seen.len(), 2);
    }

    /// A joiner kicked before its writer took the 101 still reads it before close 1008.
    #[test]
    fn member_dropped_before_its_writer_runs_still_gets_the_101_first() {
        let rooms = rooms();
        let code = RoomCode::parse("r").unwrap();
        let (slow, _a) = peer(&rooms, "session-a", 600);
        let (sender, _b) = peer(&rooms, "session-b", 1 << 20);
        rooms
            .join(&code, member("session-a"), &slow, b"101".to_vec())
            .unwrap();
        let (room, sender_id) = rooms
            .join(&code, member("session-b"), &sender, b"101".to_vec())
            .unwrap();

        // No writer drains the slow member's queue: its 101 is still queued
        // when the room drops it.
        let mut wakes = Wakes::default();
        for _ in 0..10 {
            rooms.handle_text(&room, sender_id, &"x".repeat(100), &mut wakes);
        }
        wakes.wake_all();

        let slow_seen = slow.outlet.snapshot();
        assert_eq!(slow_seen.len(), 2, "{slow_seen:?}");
        assert_eq!(slow_seen[0], b"101");
        assert_eq!(slow_seen[1][0], 0x88);
        assert_eq!(&slow_seen[1][2..4], &1008u16.to_be_bytes());
    }

    /// A roster larger than the joiner's bound does not kick it; later frames count.
    #[test]
    fn joiner_whose_welcome_passes_its_bound_stays_and_the_bound_still_applies() {
        let rooms = rooms();
        let code = RoomCode::parse("r").unwrap();
        let mut others = Vec::new();
        for index in 0..10 {
            let session = format!("session-{index}");
            let (other, far) = peer(&rooms, &session, 1 << 20);
            let (_, id) = rooms
                .join(&code, member(&session), &other, Vec::new())
                .unwrap();
            others.push((id, other, far));
        }
        let (joiner, _far) = peer(&rooms, "session-joiner", 300);
        let (room, joiner_id) = rooms
            .join(&code, member("session-joiner"), &joiner, b"101".to_vec())
            .unwrap();

        let seen = payloads(&joiner);
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0], "101");
        assert!(seen[1].len() > 300 && seen[1].contains("\"welcome\""));
        assert_eq!(lock(&room).len(), 11);

        // The frames after the welcome count in full: one line of about 200
        // bytes fits in the bound of 300, a second passes it.
        let sender_id = others[0].0;
        let mut wakes = Wakes::default();
        rooms.handle_text(&room, sender_id, &"x".repeat(100), &mut wakes);
        assert_eq!(lock(&room).len(), 11);
        rooms.handle_text(&room, sender_id, &"x".repeat(100), &mut wakes);
        wakes.wake_all();
        assert_eq!(lock(&room).len(), 10);
        assert!(!rooms.leave(&code, &room, joiner_id));
    }

    /// A member whose own `rate limited` errors pass its bound is dropped
    /// like any other, and the rest of the room sees it leave.
    #[test]
    fn member_dropped_over_its_rate_limit_errors_is_seen_leaving() {
        let limit = RateLimit {
            burst: 1,
            per_second: 0.001,
        };
        let rooms = Rooms::new(Some(limit), Arc::new(Metrics::new()));
        let code = RoomCode::parse("r").unwrap();
        let (spammer, _a) = peer(&rooms, "session-a", 300);
        let (watcher, _b) = peer(&rooms, "session-b", 1 << 20);
        let (room, spammer_id) = rooms
            .join(&code, member("session-a"), &spammer, Vec::new())
            .unwrap();
        rooms
            .join(&code, member("session-b"), &watcher, Vec::new())
            .unwrap();

        let mut wakes = Wakes::default();
        for _ in 0..20 {
            rooms.handle_text(&room, spammer_id, "spam", &mut wakes);
        }
        wakes.wake_all();

        assert_eq!(lock(&room).len(), 1);
        assert_eq!(rooms.metrics.snapshot().slow_consumers, 1);
        let seen = payloads(&watcher);
        let last = seen.last().map(String::as_str).unwrap_or_default();
        assert!(
            last.contains("\"leave\"") && last.contains("session-a"),
            "{seen:?}"
        );
    }

    #[test]
    fn duplicate_session_leaves_no_room_behind() {
        let rooms = rooms();
        let code = RoomCode::parse("r").unwrap();
        let (first, _a) = peer(&rooms, "session-a", 1 << 20);
        let (second, _b) = peer(&rooms, "session-a", 1 << 20);
        let (room, id) = rooms
            .join(&code, member("session-a"), &first, Vec::new())
            .unwrap();
        assert!(rooms
            .join(&code, member("session-a"), &second, Vec::new())
            .is_err());
        assert!(second.outlet.snapshot().is_empty());

        assert!(rooms.leave(&code, &room, id));
        assert!(lock(&rooms.map).is_empty());
    }

    #[test]
    fn member_over_its_bound_is_dropped_and_the_others_see_it_leave() {
        let rooms = rooms();
        let code = RoomCode::parse("r").unwrap();
        let (sender, _a) = peer(&rooms, "session-a", 1 << 20);
        let (slow, _b) = peer(&rooms, "session-b", 600);
        let (room, sender_id) = rooms
            .join(&code, member("session-a"), &sender, Vec::new())
            .unwrap();
        let (_, slow_id) = rooms
            .join(&code, member("session-b"), &slow, Vec::new())
            .unwrap();

        let mut wakes = Wakes::default();
        for _ in 0..10 {
            rooms.handle_text(&room, sender_id, &"x".repeat(100), &mut wakes);
        }
        wakes.wake_all();

        let seen = payloads(&sender);
        let leave = seen.iter().position(|event| event.contains("\"leave\""));
        assert!(leave.is_some_and(|at| at < seen.len() - 1), "{seen:?}");
        // The slow member's queue was emptied for its close frame (1008).
        let slow_seen = slow.outlet.snapshot();
        assert_eq!(slow_seen.len(), 1);
        assert_eq!(slow_seen[0][0], 0x88);
        assert_eq!(&slow_seen[0][2..4], &1008u16.to_be_bytes());
        // Its own leave later finds it gone, and the room stays for the sender.
        assert!(!rooms.leave(&code, &room, slow_id));
        assert_eq!(lock(&room).len(), 1);
        assert_eq!(rooms.metrics.snapshot().slow_consumers, 1);
    }
}
