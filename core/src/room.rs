//! One chat room: its members, their order, the room's `seq`, and the
//! frames each join, leave and line produces.
//!
//! A [`Room`] does no IO. The driver hands it a member's outlet (whatever
//! reaches that member's outgoing queue: a channel sender, a queue index) and
//! takes back [`SharedFrame`]s together with who should get them. Every
//! event is encoded once; each recipient's queue receives a clone of the
//! same bytes.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::config::RateLimit;
use crate::event::{EventEncoder, SharedFrame, RATE_LIMITED_REASON};
use crate::metrics::Metrics;
use crate::names::{RoomCode, SessionId, UserName};
use crate::rate::TokenBucket;

/// Who a member is: the name shown to others and the session that tells two
/// people with the same name apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Member {
    /// The name the member joined with.
    pub user_name: UserName,
    /// The member's session identity, unique within a room.
    pub session_id: SessionId,
}

/// A handle on one member of one room, valid until that member leaves.
///
/// Ids are never reused, in any room of the process: an id kept after its
/// member left, or used on another room (or on a later room with the same
/// code), finds nobody, never another member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemberId {
    slot: usize,
    serial: u64,
}

/// The serial of the next member to join any room. Shared by every room so
/// that an id from a removed room cannot name a member of its successor; a
/// u64 counter does not run out.
static NEXT_SERIAL: AtomicU64 = AtomicU64::new(0);

/// What a successful [`Room::join`] gives back.
#[derive(Debug, Clone)]
pub struct Joined {
    /// The new member's handle.
    pub id: MemberId,
    /// The `welcome` object, for the new member only, before anything else.
    pub welcome: SharedFrame,
    /// The `join` object, for every other member.
    pub announce: SharedFrame,
}

/// Why a [`Room::join`] was refused.
pub enum JoinError<T> {
    /// The session id is already connected in this room (PROTOCOL.md: a
    /// 409 that leaves the connected session alone); the outlet comes back.
    DuplicateSession {
        /// The outlet the caller passed in, unused.
        outlet: T,
    },
}

impl<T> JoinError<T> {
    /// Returns the outlet that was not used.
    pub fn into_outlet(self) -> T {
        match self {
            JoinError::DuplicateSession { outlet } => outlet,
        }
    }
}

impl<T> fmt::Debug for JoinError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::DuplicateSession { .. } => f.write_str("DuplicateSession { .. }"),
        }
    }
}

impl<T> fmt::Display for JoinError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::DuplicateSession { .. } => {
                f.write_str("session_id is already connected in this room")
            }
        }
    }
}

impl<T> std::error::Error for JoinError<T> {}

/// What became of one chat line given to [`Room::handle_text`].
#[derive(Debug, Clone)]
pub enum TextOutcome {
    /// The line was empty or only white space; nothing is sent.
    Ignored,
    /// The line became a `message` object, for every member, the sender
    /// included.
    Broadcast(SharedFrame),
    /// The line was over the sender's rate limit and dropped; the `error`
    /// object goes to the sender only.
    RateLimited(SharedFrame),
    /// No member with that id is in the room.
    UnknownMember,
}

/// One member's entry in the room.
#[derive(Debug)]
struct Entry<T> {
    serial: u64,
    member: Member,
    outlet: T,
    bucket: Option<TokenBucket>,
}

/// One chat room: members in join order, the room's `seq`, and the frames
/// its events produce.
///
/// Drive it with three inputs, each of which returns the frames to deliver:
/// - [`Room::join`] → a [`Joined`]: send `welcome` to the new member first,
///   then `announce` to every other member;
/// - [`Room::handle_text`] → a [`TextOutcome`];
/// - [`Room::leave`] → the outlet back and the `leave` object for those who
///   remain.
///
/// Deliver a frame to everyone by walking [`Room::outlets`]. `seq` starts at
/// 1 with the first join and rises by one for each join, leave and message,
/// so every member sees the same objects in the same order.
///
/// Time comes in as arguments: `now` for the rate limit, `unix_ms` for the
/// `ts` of events.
///
/// The room does not remove itself when its last member leaves: the driver
/// owns the registry of rooms and drops an empty room (see
/// [`Hub`](crate::hub::Hub) for a simple one). With a [`Metrics`] handle the
/// room keeps the `rooms`, `members`, `chat_messages`, `deliveries` and
/// `rate_limited` values itself, including on drop.
///
/// # Examples
///
/// ```
/// use std::time::Instant;
/// use natter_core::names::{RoomCode, SessionId, UserName};
/// use natter_core::room::{Member, Room, TextOutcome};
///
/// let mut room = Room::new(RoomCode::parse("lobby").unwrap(), None, None);
/// let ana = Member {
///     user_name: UserName::parse("ana").unwrap(),
///     session_id: SessionId::parse("k3J9x0aa").unwrap(),
/// };
/// let joined = room.join(ana, "ana's queue", Instant::now(), 0).unwrap();
///
/// let outcome = room.handle_text(joined.id, "hi", Instant::now(), 1);
/// let TextOutcome::Broadcast(frame) = outcome else { panic!() };
/// for (_, queue) in room.outlets() {
///     // push `frame.clone()` onto `queue`
/// #   let _ = (queue, &frame);
/// }
/// ```
#[derive(Debug)]
pub struct Room<T> {
    code: RoomCode,
    seq: u64,
    slots: Vec<Option<Entry<T>>>,
    free: Vec<usize>,
    /// Ids in join order; may still hold ids of members who left, which
    /// lookups skip, until there are as many of those as members.
    order: Vec<MemberId>,
    members: usize,
    sessions: HashMap<SessionId, MemberId>,
    rate_limit: Option<RateLimit>,
    metrics: Option<Arc<Metrics>>,
    encoder: EventEncoder,
    rate_limited: SharedFrame,
}

impl<T> Room<T> {
    /// Creates an empty room; `rate_limit` of `None` lets members send
    /// freely, and `metrics`, when given, is kept up to date by the room.
    pub fn new(
        code: RoomCode,
        rate_limit: Option<RateLimit>,
        metrics: Option<Arc<Metrics>>,
    ) -> Room<T> {
        if let Some(metrics) = &metrics {
            metrics.room_created();
        }

        let mut encoder = EventEncoder::new();
        let rate_limited = encoder.error(RATE_LIMITED_REASON);
        Room {
            code,
            seq: 0,
            slots: Vec::new(),
            free: Vec::new(),
            order: Vec::new(),
            members: 0,
            sessions: HashMap::new(),
            rate_limit,
            metrics,
            encoder,
            rate_limited,
        }
    }

    /// Adds a member whose frames go to `outlet`, as of `now` (rate limit)
    /// and `unix_ms` (the `join` object's `ts`).
    ///
    /// # Errors
    ///
    /// [`JoinError::DuplicateSession`], with `outlet` inside, when the
    /// session id is already in the room; nothing changes.
    pub fn join(
        &mut self,
        member: Member,
        outlet: T,
        now: Instant,
        unix_ms: u64,
    ) -> Result<Joined, JoinError<T>> {
        if self.sessions.contains_key(&member.session_id) {
            return Err(JoinError::DuplicateSession { outlet });
        }

        // The joiner is listed last: the others are already in join order.
        let seq = self.seq.wrapping_add(1);
        let slots = &self.slots;
        let others = self.order.iter().filter_map(|&id| entry_in(slots, id));
        let users = others.map(|entry| &entry.member).chain([&member]);
        let welcome = self.encoder.welcome(&self.code, seq, &member, users);
        let announce = self.encoder.join(seq, &member, unix_ms);

        let session_id = member.session_id.clone();
        let bucket = self.rate_limit.map(|limit| TokenBucket::new(limit, now));
        let id = self.insert(Entry {
            serial: NEXT_SERIAL.fetch_add(1, Ordering::Relaxed),
            member,
            outlet,
            bucket,
        });
        self.order.push(id);
        self.members += 1;
        self.sessions.insert(session_id, id);
        self.seq = seq;

        if let Some(metrics) = &self.metrics {
            metrics.member_joined();
            metrics.delivered(self.members);
        }
        Ok(Joined {
            id,
            welcome,
            announce,
        })
    }

    /// Removes a member, returning its outlet and the `leave` object (stamped
    /// `unix_ms`) for the members who remain, or `None` for an unknown id.
    pub fn leave(&mut self, id: MemberId, unix_ms: u64) -> Option<(T, SharedFrame)> {
        let slot = self.slots.get_mut(id.slot)?;
        if slot.as_ref()?.serial != id.serial {
            return None;
        }
        let entry = slot.take()?;
        self.free.push(id.slot);

        // The id stays in `order` for now (lookups skip it); sweeping only
        // once half the ids are stale keeps each leave O(1) on average.
        self.members = self.members.saturating_sub(1);
        if self.order.len() > 2 * self.members + 8 {
            let slots = &self.slots;
            self.order.retain(|&other| entry_in(slots, other).is_some());
        }
        self.sessions.remove(&entry.member.session_id);
        self.seq = self.seq.wrapping_add(1);
        let frame = self.encoder.leave(self.seq, &entry.member, unix_ms);

        if let Some(metrics) = &self.metrics {
            metrics.members_left(1);
            metrics.delivered(self.members);
        }
        Some((entry.outlet, frame))
    }

    /// Takes one chat line from a member, as of `now` (rate limit) and
    /// `unix_ms` (the `message` object's `ts`).
    ///
    /// The text is sent as typed, untrimmed. Size limits and binary
    /// messages are the connection's to refuse before this point.
    pub fn handle_text(
        &mut self,
        id: MemberId,
        text: &str,
        now: Instant,
        unix_ms: u64,
    ) -> TextOutcome {
        let Some(entry) = entry_in_mut(&mut self.slots, id) else {
            return TextOutcome::UnknownMember;
        };
        if let Some(metrics) = &self.metrics {
            metrics.chat_message_received();
        }

        if text.trim().is_empty() {
            return TextOutcome::Ignored;
        }

        let allowed = entry
            .bucket
            .as_mut()
            .is_none_or(|bucket| bucket.try_take(now));
        if !allowed {
            if let Some(metrics) = &self.metrics {
                metrics.rate_limited();
                metrics.delivered(1);
            }
            return TextOutcome::RateLimited(self.rate_limited.clone());
        }

        self.seq = self.seq.wrapping_add(1);
        let frame = self.encoder.message(self.seq, &entry.member, text, unix_ms);
        if let Some(metrics) = &self.metrics {
            metrics.delivered(self.members);
        }
        TextOutcome::Broadcast(frame)
    }

    /// Returns every member's id and outlet, in join order.
    pub fn outlets(&self) -> impl Iterator<Item = (MemberId, &T)> + '_ {
        self.entries().map(|(id, entry)| (id, &entry.outlet))
    }

    /// Returns every member's id and identity, in join order.
    pub fn members(&self) -> impl Iterator<Item = (MemberId, &Member)> + '_ {
        self.entries().map(|(id, entry)| (id, &entry.member))
    }

    /// Returns the outlet of a member, or `None` for an unknown id.
    pub fn outlet(&self, id: MemberId) -> Option<&T> {
        self.find(id).map(|entry| &entry.outlet)
    }

    /// Returns the outlet of a member for changing, or `None` for an unknown
    /// id.
    pub fn outlet_mut(&mut self, id: MemberId) -> Option<&mut T> {
        entry_in_mut(&mut self.slots, id).map(|entry| &mut entry.outlet)
    }

    /// Returns a member's identity, or `None` for an unknown id.
    pub fn member(&self, id: MemberId) -> Option<&Member> {
        self.find(id).map(|entry| &entry.member)
    }

    /// Returns the id of the member connected with `session_id`, if any.
    pub fn find_session(&self, session_id: &SessionId) -> Option<MemberId> {
        self.sessions.get(session_id).copied()
    }

    /// Returns the number of members.
    pub fn len(&self) -> usize {
        self.members
    }

    /// Tells whether the room has no members; the driver then removes it.
    pub fn is_empty(&self) -> bool {
        self.members == 0
    }

    /// Returns the `seq` of the room's latest event (0 before any).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Returns the room's code.
    pub fn code(&self) -> &RoomCode {
        &self.code
    }

    /// Stores an entry in a free slot, or a new one, and returns its id.
    fn insert(&mut self, entry: Entry<T>) -> MemberId {
        let serial = entry.serial;
        if let Some(index) = self.free.pop() {
            if let Some(slot) = self.slots.get_mut(index) {
                *slot = Some(entry);
                return MemberId {
                    slot: index,
                    serial,
                };
            }
        }

        self.slots.push(Some(entry));
        MemberId {
            slot: self.slots.len() - 1,
            serial,
        }
    }

    /// Returns the entry an id names, if it is still there.
    fn find(&self, id: MemberId) -> Option<&Entry<T>> {
        entry_in(&self.slots, id)
    }

    /// Returns every entry with its id, in join order.
    fn entries(&self) -> impl Iterator<Item = (MemberId, &Entry<T>)> + '_ {
        self.order
            .iter()
            .filter_map(|&id| self.find(id).map(|entry| (id, entry)))
    }
}

/// Returns the entry an id names in `slots`, if it is still there.
fn entry_in<T>(slots: &[Option<Entry<T>>], id: MemberId) -> Option<&Entry<T>> {
    let entry = slots.get(id.slot)?.as_ref()?;
    (entry.serial == id.serial).then_some(entry)
}

/// Returns the entry an id names in `slots` for changing, if it is still
/// there.
fn entry_in_mut<T>(slots: &mut [Option<Entry<T>>], id: MemberId) -> Option<&mut Entry<T>> {
    let entry = slots.get_mut(id.slot)?.as_mut()?;
    (entry.serial == id.serial).then_some(entry)
}

impl<T> Drop for Room<T> {
    fn drop(&mut self) {
        if let Some(metrics) = &self.metrics {
            metrics.members_left(self.members);
            metrics.room_removed();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;

    fn member(name: &str, session: &str) -> Member {
        Member {
            user_name: UserName::parse(name).unwrap(),
            session_id: SessionId::parse(session).unwrap(),
        }
    }

    fn lobby<T>(rate_limit: Option<RateLimit>) -> Room<T> {
        Room::new(RoomCode::parse("lobby").unwrap(), rate_limit, None)
    }

    fn parsed(frame: &SharedFrame) -> Value {
        serde_json::from_slice(frame.payload()).unwrap()
    }

    fn broadcast(outcome: TextOutcome) -> SharedFrame {
        match outcome {
            TextOutcome::Broadcast(frame) => frame,
            other => panic!("expected a broadcast, got {other:?}"),
        }
    }

    fn user(name: &str, session: &str) -> Value {
        json!({"user_name": name, "session_id": session})
    }

    #[test]
    fn welcome_lists_every_member_in_join_order() {
        let now = Instant::now();
        let mut room = lobby(None);
        room.join(member("ana", "k3J9x0aa"), 'a', now, 1).unwrap();
        room.join(member("bo", "Zq81mmpp"), 'b', now, 2).unwrap();
        let joined = room.join(member("cy", "p0p0p0p0"), 'c', now, 3).unwrap();

        let welcome = parsed(&joined.welcome);
        assert_eq!(welcome["type"], "welcome");
        assert_eq!(welcome["room_code"], "lobby");
        assert_eq!(welcome["seq"], 3);
        assert_eq!(welcome["you"], user("cy", "p0p0p0p0"));
        let users = [
            user("ana", "k3J9x0aa"),
            user("bo", "Zq81mmpp"),
            user("cy", "p0p0p0p0"),
        ];
        assert_eq!(welcome["users"], json!(users));

        let announce = parsed(&joined.announce);
        assert_eq!(
            announce,
            json!({"type": "join", "seq": 3, "user_name": "cy",
                   "session_id": "p0p0p0p0", "ts": 3})
        );
        assert_eq!(room.len(), 3);
        assert_eq!(room.seq(), 3);
    }

    #[test]
    fn first_joiner_is_welcomed_alone_at_seq_one() {
        let mut room = lobby(None);
        assert_eq!(room.seq(), 0);
        assert!(room.is_empty());

        let joined = room
            .join(member("ana", "k3J9x0aa"), (), Instant::now(), 9)
            .unwrap();
        let welcome = parsed(&joined.welcome);
        assert_eq!(welcome["seq"], 1);
        assert_eq!(welcome["users"], json!([user("ana", "k3J9x0aa")]));
    }

    #[test]
    fn duplicate_session_is_refused_with_its_outlet() {
        let now = Instant::now();
        let mut room = lobby(None);
        let first = room
            .join(member("ana", "k3J9x0aa"), "first", now, 1)
            .unwrap();

        let refused = room.join(member("other", "k3J9x0aa"), "second", now, 2);
        let error = refused.unwrap_err();
        assert_eq!(
            error.to_string(),
            "session_id is already connected in this room"
        );
        assert_eq!(error.into_outlet(), "second");

        // The connected session is left alone and nothing was ordered.
        assert_eq!(room.len(), 1);
        assert_eq!(room.seq(), 1);
        assert_eq!(room.outlet(first.id), Some(&"first"));
        assert_eq!(room.member(first.id).unwrap().user_name.as_str(), "ana");
    }

    #[test]
    fn same_name_with_another_session_is_welcome() {
        let now = Instant::now();
        let mut room = lobby(None);
        room.join(member("ana", "k3J9x0aa"), 1, now, 1).unwrap();
        assert!(room.join(member("ana", "k3J9x0bb"), 2, now, 1).is_ok());
        assert_eq!(room.len(), 2);
    }

    #[test]
    fn seq_rises_by_one_across_interleaved_events() {
        let now = Instant::now();
        let mut room = lobby(None);
        let ana = room
            .join(member("ana", "k3J9x0aa"), 'a', now, 1)
            .unwrap()
            .id;
        let bo = room.join(member("bo", "Zq81mmpp"), 'b', now, 2).unwrap().id;

        let mut seen = Vec::new();
        for (step, sender) in [ana, bo, bo, ana, bo].into_iter().enumerate() {
            let line = format!("line {step}");
            let frame = broadcast(room.handle_text(sender, &line, now, 10));
            let value = parsed(&frame);
            assert_eq!(value["text"], line.as_str());
            seen.push(value["seq"].as_u64().unwrap());
        }
        assert_eq!(seen, [3, 4, 5, 6, 7]);

        let (_, left) = room.leave(bo, 20).unwrap();
        assert_eq!(parsed(&left)["seq"], 8);
        let cy = room.join(member("cy", "p0p0p0p0"), 'c', now, 30).unwrap();
        assert_eq!(parsed(&cy.announce)["seq"], 9);
        let frame = broadcast(room.handle_text(cy.id, "hi", now, 40));
        assert_eq!(parsed(&frame)["seq"], 10);
        assert_eq!(room.seq(), 10);
    }

    #[test]
    fn message_carries_sender_text_and_ts() {
        let now = Instant::now();
        let mut room = lobby(None);
        let bo = room.join(member("bo", "Zq81mmpp"), (), now, 1).unwrap().id;

        let frame = broadcast(room.handle_text(bo, "  hi all \n", now, 1_764_856_801_000));
        assert_eq!(
            parsed(&frame),
            json!({"type": "message", "seq": 2, "user_name": "bo",
                   "session_id": "Zq81mmpp", "text": "  hi all \n",
                   "ts": 1_764_856_801_000_u64})
        );
    }

    #[test]
    fn blank_lines_are_ignored_without_a_seq() {
        let now = Instant::now();
        let mut room = lobby(Some(RateLimit {
            burst: 1,
            per_second: 0.0,
        }));
        let ana = room.join(member("ana", "k3J9x0aa"), (), now, 1).unwrap().id;

        for blank in ["", " ", "\t\r\n", "\u{3000}\u{a0}"] {
            assert!(matches!(
                room.handle_text(ana, blank, now, 2),
                TextOutcome::Ignored
            ));
        }
        assert_eq!(room.seq(), 1);

        // Ignored lines took no token: the one line of the burst still goes.
        broadcast(room.handle_text(ana, "x", now, 3));
    }

    #[test]
    fn leave_returns_the_outlet_and_tells_the_rest() {
        let now = Instant::now();
        let mut room = lobby(None);
        let ana = room
            .join(member("ana", "k3J9x0aa"), "qa", now, 1)
            .unwrap()
            .id;
        let bo = room
            .join(member("bo", "Zq81mmpp"), "qb", now, 2)
            .unwrap()
            .id;

        let (outlet, frame) = room.leave(ana, 5).unwrap();
        assert_eq!(outlet, "qa");
        assert_eq!(
            parsed(&frame),
            json!({"type": "leave", "seq": 3, "user_name": "ana",
                   "session_id": "k3J9x0aa", "ts": 5})
        );

        let rest: Vec<_> = room.outlets().collect();
        assert_eq!(rest, [(bo, &"qb")]);
        assert_eq!(room.members().count(), 1);
        assert!(room.leave(ana, 6).is_none());
        assert_eq!(room.seq(), 3);
        assert!(room
            .find_session(&SessionId::parse("k3J9x0aa").unwrap())
            .is_none());
    }

    #[test]
    fn stale_ids_never_reach_a_later_member() {
        let now = Instant::now();
        let mut room = lobby(None);
        let ana = room
            .join(member("ana", "k3J9x0aa"), "qa", now, 1)
            .unwrap()
            .id;
        room.leave(ana, 2).unwrap();

        // The new member takes the freed slot under a new serial.
        let bo = room
            .join(member("bo", "Zq81mmpp"), "qb", now, 3)
            .unwrap()
            .id;
        assert_ne!(ana, bo);
        assert!(matches!(
            room.handle_text(ana, "hi", now, 4),
            TextOutcome::UnknownMember
        ));
        assert!(room.outlet(ana).is_none());
        assert!(room.outlet_mut(ana).is_none());
        assert!(room.member(ana).is_none());
        assert!(room.leave(ana, 5).is_none());
        assert_eq!(room.outlet(bo), Some(&"qb"));
        assert_eq!(room.seq(), 3);
    }

    #[test]
    fn ids_from_another_room_are_unknown() {
        let now = Instant::now();
        let mut big = lobby(None);
        let mut small = lobby::<()>(None);
        let own = small.join(member("y", "session0"), (), now, 1).unwrap().id;
        let mut last = None;
        for index in 0..5 {
            let session = format!("session{index}");
            last = Some(big.join(member("x", &session), (), now, 1).unwrap().id);
        }

        let foreign = last.unwrap();
        assert!(matches!(
            small.handle_text(foreign, "x", now, 1),
            TextOutcome::UnknownMember
        ));
        assert!(small.leave(foreign, 1).is_none());
        assert!(small.outlet(own).is_some());

        // The first id of each room shares a slot but not a serial.
        let first_big = big.members().next().map(|(id, _)| id).unwrap();
        assert!(small.member(first_big).is_none());
        assert!(big.member(own).is_none());
    }

    #[test]
    fn one_frame_is_shared_by_every_queue() {
        let now = Instant::now();
        let mut room = lobby(None);
        let mut queues: Vec<Vec<SharedFrame>> = vec![Vec::new(); 5];
        let mut ids = Vec::new();
        for index in 0..queues.len() {
            let session = format!("session{index}");
            ids.push(room.join(member("x", &session), index, now, 1).unwrap().id);
        }

        let frame = broadcast(room.handle_text(ids[2], "hello", now, 2));
        for (_, &queue) in room.outlets() {
            queues[queue].push(frame.clone());
        }

        assert_eq!(Arc::strong_count(&frame.0), 6);
        for queue in &queues {
            assert!(SharedFrame::ptr_eq(&queue[0], &frame));
        }
    }

    #[test]
    fn rate_limit_drops_the_excess_and_refills() {
        let t0 = Instant::now();
        let mut room = lobby(Some(RateLimit::default()));
        let ana = room.join(member("ana", "k3J9x0aa"), (), t0, 1).unwrap().id;
        let bo = room.join(member("bo", "Zq81mmpp"), (), t0, 1).unwrap().id;

        for _ in 0..20 {
            broadcast(room.handle_text(ana, "spam", t0, 2));
        }
        let TextOutcome::RateLimited(first) = room.handle_text(ana, "spam", t0, 2) else {
            panic!("the 21st line should be limited");
        };
        let TextOutcome::RateLimited(second) = room.handle_text(ana, "spam", t0, 2) else {
            panic!("the 22nd line should be limited");
        };
        assert_eq!(
            parsed(&first),
            json!({"type": "error", "reason": "rate limited"})
        );
        assert!(SharedFrame::ptr_eq(&first, &second));
        assert_eq!(room.seq(), 22);

        // Each member has a bucket of its own.
        broadcast(room.handle_text(bo, "calm", t0, 3));

        let later = t0 + Duration::from_millis(100);
        let frame = broadcast(room.handle_text(ana, "again", later, 4));
        assert_eq!(parsed(&frame)["seq"], 24);
        assert!(matches!(
            room.handle_text(ana, "x", later, 4),
            TextOutcome::RateLimited(_)
        ));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Join(usize),
        Leave(usize),
        Text(usize, String),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..6usize).prop_map(Op::Join),
            (0..6usize).prop_map(Op::Leave),
            (0..6usize, any::<String>()).prop_map(|(who, text)| Op::Text(who, text)),
            (0..6usize, "[ \t]{0,3}").prop_map(|(who, text)| Op::Text(who, text)),
        ]
    }

    fn session(who: usize) -> String {
        format!("session{who}")
    }

    /// Checks one room against a model (members in join order, `seq`)
    /// through one operation.
    fn step(room: &mut Room<usize>, model: &mut Vec<(usize, MemberId)>, gone: &[MemberId], op: Op) {
        let now = Instant::now();
        let seq = room.seq();
        let present = model.iter().position(|&(who, _)| who == op_who(&op));
        let stale = gone.last().copied();

        match (op, present) {
            (Op::Join(who), Some(_)) => {
                let refused = room.join(member("x", &session(who)), who, now, 0);
                assert_eq!(refused.unwrap_err().into_outlet(), who);
                assert_eq!(room.seq(), seq);
            }
            (Op::Join(who), None) => {
                let joined = room.join(member("x", &session(who)), who, now, 0).unwrap();
                model.push((who, joined.id));
                let welcome = parsed(&joined.welcome);
                assert_eq!(welcome["seq"].as_u64(), Some(seq + 1));
                let listed: Vec<_> = welcome["users"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|user| user["session_id"].as_str().unwrap().to_owned())
                    .collect();
                let expected: Vec<_> = model.iter().map(|&(who, _)| session(who)).collect();
                assert_eq!(listed, expected);
                assert_eq!(parsed(&joined.announce)["seq"].as_u64(), Some(seq + 1));
            }
            (Op::Leave(_), Some(index)) => {
                let (who, id) = model.remove(index);
                let (outlet, frame) = room.leave(id, 0).unwrap();
                assert_eq!(outlet, who);
                assert_eq!(parsed(&frame)["seq"].as_u64(), Some(seq + 1));
            }
            (Op::Leave(_), None) => {
                if let Some(stale) = stale {
                    assert!(room.leave(stale, 0).is_none());
                }
                assert_eq!(room.seq(), seq);
            }
            (Op::Text(_, text), Some(index)) => {
                let outcome = room.handle_text(model[index].1, &text, now, 0);
                if text.trim().is_empty() {
                    assert!(matches!(outcome, TextOutcome::Ignored));
                    assert_eq!(room.seq(), seq);
                } else {
                    let value = parsed(&broadcast(outcome));
                    assert_eq!(value["seq"].as_u64(), Some(seq + 1));
                    assert_eq!(value["text"].as_str(), Some(text.as_str()));
                }
            }
            (Op::Text(_, text), None) => {
                if let Some(stale) = stale {
                    let outcome = room.handle_text(stale, &text, now, 0);
                    assert!(matches!(outcome, TextOutcome::UnknownMember));
                }
                assert_eq!(room.seq(), seq);
            }
        }

        let ids: Vec<_> = room.members().map(|(id, _)| id).collect();
        let expected: Vec<_> = model.iter().map(|&(_, id)| id).collect();
        assert_eq!(ids, expected);
        assert_eq!(room.len(), model.len());
        assert!(
            room.order.len() <= 2 * room.len() + 8,
            "stale ids are swept"
        );
    }

    fn op_who(op: &Op) -> usize {
        match op {
            Op::Join(who) | Op::Leave(who) | Op::Text(who, _) => *who,
        }
    }

    proptest! {
        #[test]
        fn room_matches_its_model(ops in proptest::collection::vec(op(), 0..60)) {
            let mut room = lobby(None);
            let mut model = Vec::new();
            let mut gone = Vec::new();

            for op in ops {
                let before: Vec<_> = model.iter().map(|&(_, id)| id).collect();
                step(&mut room, &mut model, &gone, op);
                gone.extend(before.into_iter().filter(|id| room.member(*id).is_none()));
            }
        }
    }

    #[test]
    fn churn_keeps_join_order_and_sweeps_stale_ids() {
        let now = Instant::now();
        let mut room = lobby(None);
        let mut ids = Vec::new();
        for index in 0..100 {
            let session = format!("session{index}");
            ids.push(room.join(member("x", &session), index, now, 1).unwrap().id);
        }

        // Three members in four leave, then newcomers take freed slots.
        for (index, id) in ids.iter().enumerate() {
            if index % 4 != 0 {
                room.leave(*id, 2).unwrap();
            }
        }
        assert!(room.order.len() < 100, "a sweep ran");
        for index in 100..110 {
            let session = format!("session{index}");
            room.join(member("x", &session), index, now, 3).unwrap();
        }

        let outlets: Vec<usize> = room.outlets().map(|(_, &outlet)| outlet).collect();
        let expected: Vec<usize> = (0..100).step_by(4).chain(100..110).collect();
        assert_eq!(outlets, expected);
        assert_eq!(room.len(), 35);
        assert!(room.order.len() <= 2 * room.len() + 8);
    }

    #[test]
    fn metrics_follow_the_room() {
        let metrics = Arc::new(Metrics::new());
        let now = Instant::now();
        let code = RoomCode::parse("lobby").unwrap();
        let limit = RateLimit {
            burst: 1,
            per_second: 0.0,
        };
        let mut room = Room::new(code, Some(limit), Some(metrics.clone()));
        assert_eq!(metrics.snapshot().rooms, 1);

        let ana = room.join(member("ana", "k3J9x0aa"), (), now, 1).unwrap().id;
        room.join(member("bo", "Zq81mmpp"), (), now, 1).unwrap();
        room.join(member("cy", "p0p0p0p0"), (), now, 1).unwrap();
        room.handle_text(ana, "hi", now, 2);
        room.handle_text(ana, "hi again", now, 2);
        room.handle_text(ana, " ", now, 2);
        room.leave(ana, 3).unwrap();

        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.members, 2);
        assert_eq!(snapshot.chat_messages, 3);
        assert_eq!(snapshot.rate_limited, 1);
        // Joins 1 + 2 + 3, the line 3, the error 1, the leave 2.
        assert_eq!(snapshot.deliveries, 12);

        drop(room);
        let snapshot = metrics.snapshot();
        assert_eq!((snapshot.rooms, snapshot.members), (0, 0));
    }
}
