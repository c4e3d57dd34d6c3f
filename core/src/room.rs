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
/// Ids are never reused within a room: an id kept after its member left
/// finds nobody, never a later member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemberId {
    slot: usize,
    generation: u64,
}

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
    member: Member,
    outlet: T,
    bucket: Option<TokenBucket>,
}

/// A slot of the member table; its generation rises each time it is
/// reused, so stale ids miss.
#[derive(Debug)]
struct Slot<T> {
    generation: u64,
    entry: Option<Entry<T>>,
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
    slots: Vec<Slot<T>>,
    free: Vec<usize>,
    order: Vec<MemberId>,
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
            member,
            outlet,
            bucket,
        });
        self.order.push(id);
        self.sessions.insert(session_id, id);
        self.seq = seq;

        if let Some(metrics) = &self.metrics {
            metrics.member_joined();
            metrics.delivered(self.order.len());
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
        if slot.generation != id.generation {
            return None;
        }
        let entry = slot.entry.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.slot);

        // Leaves are rare next to messages, so a linear search keeps the
        // join order without a second index.
        self.order.retain(|&other| other != id);
        self.sessions.remove(&entry.member.session_id);
        self.seq = self.seq.wrapping_add(1);
        let frame = self.encoder.leave(self.seq, &entry.member, unix_ms);

        if let Some(metrics) = &self.metrics {
            metrics.members_left(1);
            metrics.delivered(self.order.len());
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
        let Some(slot) = self.slots.get_mut(id.slot) else {
            return TextOutcome::UnknownMember;
        };
        let entry = match &mut slot.entry {
            Some(entry) if slot.generation == id.generation => entry,
            _ => return TextOutcome::UnknownMember,
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
            metrics.delivered(self.order.len());
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
        let slot = self.slots.get_mut(id.slot)?;
        match &mut slot.entry {
            Some(entry) if slot.generation == id.generation => Some(&mut entry.outlet),
            _ => None,
        }
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
        self.order.len()
    }

    /// Tells whether the room has no members; the driver then removes it.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
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
        if let Some(index) = self.free.pop() {
            if let Some(slot) = self.slots.get_mut(index) {
                slot.entry = Some(entry);
                return MemberId {
                    slot: index,
                    generation: slot.generation,
                };
            }
        }

        self.slots.push(Slot {
            generation: 0,
            entry: Some(entry),
        });
        MemberId {
            slot: self.slots.len() - 1,
            generation: 0,
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
fn entry_in<T>(slots: &[Slot<T>], id: MemberId) -> Option<&Entry<T>> {
    let slot = slots.get(id.slot)?;
    slot.entry
        .as_ref()
        .filter(|_| slot.generation == id.generation)
}

impl<T> Drop for Room<T> {
    fn drop(&mut self) {
        if let Some(metrics) = &self.metrics {
            metrics.members_left(self.order.len());
            metrics.room_removed();
        }
    }
}
