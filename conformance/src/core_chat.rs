//! Replays chat vectors against natter-core alone: each member's upgrade
//! request goes through [`ServerHandshake`], its frames through a
//! server-role [`Connection`] in the chat configuration, and its lines
//! through a [`Hub`], on a fake clock.
//!
//! The driver does what both servers do for a member: forward each text
//! message to the room, write the room's frames and then the connection's
//! own, and leave the room once the connection reports `Closed`.

use std::time::{Duration, Instant};

use natter_core::config::ServerConfig;
use natter_core::connection::{Connection, ConnectionConfig, Event, Message, Role};
use natter_core::event::SharedFrame;
use natter_core::handshake::{join_path, Progress, Refusal, Request, ServerHandshake};
use natter_core::hub::Hub;
use natter_core::names::RoomCode;
use natter_core::room::{JoinError, Member, MemberId, TextOutcome};

use crate::chat::{normalize_text, Action, ChatCase, ChatObservation};
use crate::http::{judge_http, HttpCase, Response};
use crate::wire::{client_frame, FrameReader, Seen};

/// The wall clock the fake clock starts at, in Unix milliseconds.
const START_UNIX_MS: u64 = 1_764_856_800_000;

/// One member as the core replay holds it.
struct CoreMember {
    label: String,
    connection: Option<Connection>,
    joined: Option<(RoomCode, MemberId)>,
    reader: FrameReader,
    /// Whether the server's close has reached this member.
    saw_close: bool,
    /// Whether the harness has sent its own close frame.
    harness_closed: bool,
}

/// The whole replay: the hub, its members, the fake clock and what each
/// member received.
struct Replay {
    config: ServerConfig,
    hub: Hub<usize>,
    members: Vec<CoreMember>,
    start: Instant,
    elapsed: Duration,
    seen: ChatObservation,
}

/// Runs `case` against natter-core with the server's default configuration
/// and returns what each member received.
pub fn run_chat_case(case: &ChatCase) -> ChatObservation {
    let config = ServerConfig::default();
    let mut replay = Replay {
        hub: Hub::new(config.rate_limit, None),
        config,
        members: case
            .members()
            .into_iter()
            .map(|label| CoreMember {
                label,
                connection: None,
                joined: None,
                reader: FrameReader::new(),
                saw_close: false,
                harness_closed: false,
            })
            .collect(),
        start: Instant::now(),
        elapsed: Duration::ZERO,
        seen: ChatObservation::for_case(case),
    };

    for step in &case.steps {
        let index = replay.members.iter().position(|m| m.label == step.member);
        match (&step.action, index) {
            (Action::Wait(millis), _) => replay.elapsed += Duration::from_millis(*millis),
            (Action::Join { .. }, Some(index)) => replay.join(index, &step.action),
            (Action::Text { payload, times }, Some(index)) => {
                let frame = client_frame(0x1, &payload.eval());
                replay.input(index, &frame.repeat(*times));
            }
            (Action::Binary(payload), Some(index)) => {
                replay.input(index, &client_frame(0x2, &payload.eval()));
            }
            (Action::Leave, Some(index)) => {
                replay.members[index].harness_closed = true;
                replay.input(index, &client_frame(0x8, &1000u16.to_be_bytes()));
            }
            (_, None) => replay
                .seen
                .problems
                .push("a step names no member".to_owned()),
        }
    }
    replay.seen
}

impl Replay {
    /// Returns the fake clock's `Instant` and Unix milliseconds.
    fn now(&self) -> (Instant, u64) {
        let unix_ms = START_UNIX_MS + self.elapsed.as_millis() as u64;
        (self.start + self.elapsed, unix_ms)
    }

    /// Runs a member's upgrade request through the handshake and the hub.
    fn join(&mut self, index: usize, action: &Action) {
        let Action::Join {
            user_name,
            session_id,
            room,
        } = action
        else {
            return;
        };
        let (now, unix_ms) = self.now();
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            join_path(user_name, room, session_id)
        );

        let mut handshake = ServerHandshake::new(&self.config, now);
        let Progress::Done { request, .. } = handshake.handle_input(request.as_bytes()) else {
            let problem = format!(
                "{}: the handshake wants more than a whole request",
                self.label(index)
            );
            self.seen.problems.push(problem);
            return;
        };
        let params = match request {
            Request::Join { params, .. } => params,
            Request::Refuse(refusal) => return self.refused(index, &refusal),
            other => {
                let problem = format!("{}: a join became {other:?}", self.label(index));
                self.seen.problems.push(problem);
                return;
            }
        };

        let member = Member {
            user_name: params.user_name,
            session_id: params.session_id,
        };
        let joined = match self
            .hub
            .join(&params.room_code, member, index, now, unix_ms)
        {
            Ok(joined) => joined,
            Err(JoinError::DuplicateSession { .. }) => {
                return self.refused(index, &Refusal::duplicate_session())
            }
        };

        let config = ConnectionConfig::chat(&self.config);
        self.members[index].connection = Some(Connection::new(Role::Server, config, now));
        self.members[index].joined = Some((params.room_code.clone(), joined.id));
        self.deliver_to(index, &joined.welcome);
        self.broadcast(&params.room_code, &joined.announce, Some(joined.id));
    }

    /// Records a refused join, checking the response the core renders.
    fn refused(&mut self, index: usize, refusal: &Refusal) {
        let label = self.label(index);
        self.seen
            .push(&label, format!("refused {}", refusal.status()));

        let wanted = HttpCase {
            status: refusal.status(),
            ..HttpCase::default()
        };
        let checked = Response::parse(&refusal.to_bytes())
            .ok_or_else(|| vec!["the refusal does not parse as HTTP".to_owned()])
            .and_then(|response| judge_http(&wanted, &response));
        if let Err(failures) = checked {
            for failure in failures {
                self.seen.problems.push(format!("{label}: {failure}"));
            }
        }
    }

    /// Feeds bytes from a member and handles all that follows from them.
    fn input(&mut self, index: usize, bytes: &[u8]) {
        let (now, _) = self.now();
        let Some(connection) = self.members[index].connection.as_mut() else {
            let problem = format!("{} sends without a connection", self.label(index));
            self.seen.problems.push(problem);
            return;
        };
        connection.handle_input(now, bytes);
        self.pump(index);
    }

    /// Forwards the member's events to the room and writes its own frames,
    /// answering the server's close as a client does, until nothing is left.
    fn pump(&mut self, index: usize) {
        loop {
            let (now, unix_ms) = self.now();
            let Some(connection) = self.members[index].connection.as_mut() else {
                return;
            };
            let event = connection.poll_event();
            let mut out = Vec::new();
            let wrote = event.is_none() && connection.poll_transmit(&mut out);

            match event {
                Some(Event::Message(Message::Text(text))) => self.text(index, &text, now, unix_ms),
                Some(Event::Closed(_)) => self.leave(index, unix_ms),
                Some(Event::Message(Message::Binary(_)) | Event::Pong(_)) => {}
                None if wrote => self.write(index, &out),
                None => return,
            }

            // The harness answers the server's close, once.
            let member = &mut self.members[index];
            if member.saw_close && !member.harness_closed {
                member.harness_closed = true;
                if let Some(connection) = member.connection.as_mut() {
                    connection.handle_input(now, &client_frame(0x8, &[]));
                }
            }
        }
    }

    /// Hands one chat line to the hub and delivers what it produces.
    fn text(&mut self, index: usize, text: &str, now: Instant, unix_ms: u64) {
        let Some((code, id)) = self.members[index].joined.clone() else {
            return;
        };
        match self.hub.handle_text(&code, id, text, now, unix_ms) {
            TextOutcome::Broadcast(frame) => self.broadcast(&code, &frame, None),
            TextOutcome::RateLimited(frame) => self.deliver_to(index, &frame),
            TextOutcome::Ignored => {}
            TextOutcome::UnknownMember => {
                let problem = format!("{}: the hub does not know it", self.label(index));
                self.seen.problems.push(problem);
            }
        }
    }

    /// Removes the member from its room and tells those who remain.
    fn leave(&mut self, index: usize, unix_ms: u64) {
        let Some((code, id)) = self.members[index].joined.take() else {
            return;
        };
        if let Some((_, frame)) = self.hub.leave(&code, id, unix_ms) {
            self.broadcast(&code, &frame, None);
        }
    }

    /// Delivers a frame to every member of a room but `except`.
    fn broadcast(&mut self, code: &RoomCode, frame: &SharedFrame, except: Option<MemberId>) {
        let Some(room) = self.hub.room(code) else {
            return;
        };
        let targets: Vec<usize> = room
            .outlets()
            .filter(|(id, _)| Some(*id) != except)
            .map(|(_, &index)| index)
            .collect();
        for target in targets {
            self.deliver_to(target, frame);
        }
    }

    /// Writes a room frame to one member, unless its close already went out.
    fn deliver_to(&mut self, index: usize, frame: &SharedFrame) {
        let can_send = self.members[index]
            .connection
            .as_ref()
            .is_none_or(Connection::can_send_data);
        if can_send {
            self.write(index, frame.as_bytes());
        }
    }

    /// Decodes bytes the server writes to a member and records them.
    fn write(&mut self, index: usize, bytes: &[u8]) {
        let mut frames = Vec::new();
        self.members[index].reader.push(bytes, &mut frames);
        let label = self.label(index);
        for frame in frames {
            if let Seen::Close(..) = frame {
                self.members[index].saw_close = true;
            }
            self.seen.push(&label, describe_seen(&frame));
        }
    }

    fn label(&self, index: usize) -> String {
        self.members[index].label.clone()
    }
}

/// Returns a frame a member received in the form the vectors write it.
pub fn describe_seen(seen: &Seen) -> String {
    match seen {
        Seen::Text(bytes) => normalize_text(bytes),
        Seen::Close(Some(code), _) => format!("close {code}"),
        Seen::Close(None, _) => "close without code".to_owned(),
        other => other.describe(),
    }
}
