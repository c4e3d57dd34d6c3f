//! The registry of active rooms and the task that owns each one.
//!
//! A room task starts with its first join and ends when its last member
//! leaves. The registry maps a room code to the room task's command channel
//! and is touched only on join and on a room's end, never on the message
//! path. Joins are sent while the registry lock is held, and an emptied room
//! removes itself under the same lock only if no command is waiting; so a
//! join can never land in a room that is about to disappear. When commands
//! are waiting, the emptied room is still dropped and the task goes on with
//! a new one, so the join behind the last leave finds a new room (seq 1).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use async_channel::{Receiver, Sender};
use natter_core::event::SharedFrame;
use natter_core::handshake::{Refusal, RefusalKind};
use natter_core::names::RoomCode;
use natter_core::room::{JoinError, Member, MemberId, Room, TextOutcome};

use crate::outlet::{Outlet, PushError};
use crate::server::{unix_ms, Server};

/// What a member's connection asks of its room task.
pub enum RoomCommand {
    /// Adds a member; the answer is its id or the refusal to send.
    Join {
        /// Who joins.
        member: Member,
        /// Where the member's frames go.
        outlet: Outlet,
        /// Receives the outcome.
        reply: Sender<Result<MemberId, Refusal>>,
    },
    /// A chat line from a member.
    Text {
        /// The sender.
        id: MemberId,
        /// The line as received.
        text: String,
    },
    /// A member's connection ended.
    Leave {
        /// The member who left.
        id: MemberId,
    },
}

/// A room task's entry in the registry.
struct Entry {
    /// Tells this room task apart from an earlier one with the same code.
    generation: u64,
    /// The room task's command channel.
    commands: Sender<RoomCommand>,
}

/// The registry of active rooms.
pub struct Rooms {
    map: Mutex<HashMap<RoomCode, Entry>>,
    generations: AtomicU64,
}

/// A member's place in a room: its id and the room task's channel.
pub struct Membership {
    /// The member's id in the room.
    pub id: MemberId,
    /// The room task's command channel.
    pub room: Sender<RoomCommand>,
}

impl Rooms {
    /// Creates an empty registry.
    pub fn new() -> Rooms {
        Rooms {
            map: Mutex::new(HashMap::new()),
            generations: AtomicU64::new(0),
        }
    }

    /// Locks the registry; a poisoned lock is still a consistent map, since
    /// every critical section leaves it whole.
    fn lock(&self) -> MutexGuard<'_, HashMap<RoomCode, Entry>> {
        self.map
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Joins `member` to room `code`, starting the room task if the room is
    /// new, and waits for the room's answer.
    ///
    /// # Errors
    ///
    /// The refusal to send instead of the 101: a 409 for a session already
    /// in the room.
    pub async fn join(
        server: &Arc<Server>,
        code: RoomCode,
        member: Member,
        outlet: Outlet,
    ) -> Result<Membership, Refusal> {
        let (reply_tx, reply_rx) = async_channel::bounded(1);
        let mut command = RoomCommand::Join {
            member,
            outlet,
            reply: reply_tx,
        };

        // Send while holding the lock, so the room cannot end in between.
        let room = {
            let rooms = &server.rooms;
            let mut map = rooms.lock();
            loop {
                let entry = map
                    .entry(code.clone())
                    .or_insert_with(|| start_room(server, code.clone()));
                match entry.commands.try_send(command) {
                    Ok(()) => break entry.commands.clone(),
                    // A room task that ended without removing itself;
                    // replace it.
                    Err(e) => {
                        command = e.into_inner();
                        map.remove(&code);
                    }
                }
            }
        };

        match reply_rx.recv().await {
            Ok(Ok(id)) => Ok(Membership { id, room }),
            Ok(Err(refusal)) => Err(refusal),
            Err(_) => Err(Refusal::new(
                RefusalKind::ServerBusy,
                "room ended unexpectedly",
            )),
        }
    }
}

/// Spawns the task of a new room and returns its registry entry.
fn start_room(server: &Arc<Server>, code: RoomCode) -> Entry {
    let generation = server.rooms.generations.fetch_add(1, Ordering::Relaxed);
    let (commands, receiver) = async_channel::unbounded();
    log::debug!("room {} created", code.as_str());
    let task = run_room(Arc::clone(server), code, generation, receiver);
    server.executor.spawn(task).detach();
    Entry {
        generation,
        commands,
    }
}

/// Owns one room: applies its members' commands in order and delivers the
/// frames they produce, until the room is empty and nothing is waiting.
///
/// A room that empties while commands wait ends all the same: it is dropped
/// (so the metrics see it removed) and a new one serves what comes next.
/// Commands of the old room's members find nobody in it, since member ids
/// are never reused.
async fn run_room(
    server: Arc<Server>,
    code: RoomCode,
    generation: u64,
    commands: Receiver<RoomCommand>,
) {
    let config = &server.config;
    loop {
        let metrics = Some(Arc::clone(&server.metrics));
        let mut room: Room<Outlet> = Room::new(code.clone(), config.rate_limit, metrics);
        let closed = serve_until_empty(&mut room, &commands).await;
        drop(room);
        if closed || remove_if_idle(&server, &code, generation, &commands) {
            log::debug!("room {} removed", code.as_str());
            return;
        }
        log::debug!(
            "room {} emptied with commands waiting: starting it afresh",
            code.as_str()
        );
    }
}

/// Applies commands to `room` until one leaves it empty; returns `true`
/// when the channel closed first.
async fn serve_until_empty(room: &mut Room<Outlet>, commands: &Receiver<RoomCommand>) -> bool {
    while let Ok(command) = commands.recv().await {
        match command {
            RoomCommand::Join {
                member,
                outlet,
                reply,
            } => handle_join(room, member, outlet, &reply),
            RoomCommand::Text { id, text } => handle_text(room, id, &text),
            RoomCommand::Leave { id } => {
                if let Some((_, frame)) = room.leave(id, unix_ms()) {
                    broadcast(room, &frame);
                }
            }
        }
        if room.is_empty() {
            return false;
        }
    }
    true
}

/// Removes an empty room from the registry unless a command is waiting for
/// it; returns whether it was removed.
fn remove_if_idle(
    server: &Server,
    code: &RoomCode,
    generation: u64,
    commands: &Receiver<RoomCommand>,
) -> bool {
    let mut map = server.rooms.lock();
    if !commands.is_empty() {
        return false;
    }
    if map
        .get(code)
        .is_some_and(|entry| entry.generation == generation)
    {
        map.remove(code);
    }
    true
}

/// Adds a member and sends the welcome to it and the join to the others.
fn handle_join(
    room: &mut Room<Outlet>,
    member: Member,
    outlet: Outlet,
    reply: &Sender<Result<MemberId, Refusal>>,
) {
    let joined = match room.join(member, outlet, Instant::now(), unix_ms()) {
        Ok(joined) => joined,
        Err(JoinError::DuplicateSession { .. }) => {
            let _ = reply.try_send(Err(Refusal::duplicate_session()));
            return;
        }
    };

    // The joiner's queue is new and empty, so only a bound smaller than the
    // welcome itself refuses it; the connection then closes with 1008.
    if let Some(outlet) = room.outlet(joined.id) {
        let _ = outlet.push_welcome(&joined.welcome);
    }
    let slow = push_all(room, &joined.announce, Some(joined.id));
    let _ = reply.try_send(Ok(joined.id));
    drop_slow_members(room, slow);
}

/// Applies one chat line and delivers what it produced.
fn handle_text(room: &mut Room<Outlet>, id: MemberId, text: &str) {
    match room.handle_text(id, text, Instant::now(), unix_ms()) {
        TextOutcome::Broadcast(frame) => broadcast(room, &frame),
        TextOutcome::RateLimited(frame) => {
            log::debug!("room {}: member rate limited", room.code().as_str());
            if let Some(outlet) = room.outlet(id) {
                if outlet.push(&frame) == Err(PushError::Full) {
                    drop_slow_members(room, vec![id]);
                }
            }
        }
        TextOutcome::Ignored | TextOutcome::UnknownMember => {}
    }
}

/// Delivers `frame` to every member, then drops those whose queue is full.
fn broadcast(room: &mut Room<Outlet>, frame: &SharedFrame) {
    let slow = push_all(room, frame, None);
    drop_slow_members(room, slow);
}

/// Pushes `frame` to every member but `except`, returning the members whose
/// queue refused it for being full (no allocation when there are none).
fn push_all(room: &Room<Outlet>, frame: &SharedFrame, except: Option<MemberId>) -> Vec<MemberId> {
    let mut slow = Vec::new();
    for (id, outlet) in room.outlets() {
        if Some(id) != except && outlet.push(frame) == Err(PushError::Full) {
            slow.push(id);
        }
    }
    slow
}

/// Removes members whose queue passed its bound, announcing each leave to
/// those who remain (which may find more full queues).
fn drop_slow_members(room: &mut Room<Outlet>, mut slow: Vec<MemberId>) {
    while let Some(id) = slow.pop() {
        let Some((outlet, frame)) = room.leave(id, unix_ms()) else {
            continue;
        };
        // The outlet marked itself kicked when it refused the frame; its
        // connection closes with 1008 on its own.
        outlet.mark_kicked();
        log::debug!(
            "room {}: dropping a member with a full queue",
            room.code().as_str()
        );
        slow.extend(push_all(room, &frame, None));
    }
}
