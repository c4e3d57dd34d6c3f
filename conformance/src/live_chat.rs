//! Replays chat vectors against a live server's `/joinRoom` over TCP.
//!
//! Every room code of a case is replaced by one unique to the run, so cases
//! can run in parallel, and mapped back in what the members receive. After
//! each step the runner waits until every member named in the step's `<`
//! lines has received that many lines (or something else, or nothing in
//! time); at the end it listens a moment longer for anything unexpected.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use natter_core::handshake::join_path;

use crate::chat::{Action, ChatCase, ChatObservation, Step};
use crate::core_chat::describe_seen;
use crate::http::{judge_http, HttpCase, Response};
use crate::wire::{client_frame, read_response_head, FrameReader, Seen};

/// How long the runner listens for stray lines once a case is done.
const QUIET_WAIT: Duration = Duration::from_millis(150);

/// Time the server gets to close TCP after the closing handshake.
const TCP_CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Longest room code the protocol accepts.
const MAX_ROOM_CODE: usize = 64;

/// What a member's reading thread reports.
enum FromServer {
    Frames(Vec<Seen>),
    Eof,
}

/// One member's connection.
struct LiveMember {
    label: String,
    stream: Option<TcpStream>,
    frames: Option<Receiver<FromServer>>,
    harness_closed: bool,
}

/// The state of one live case.
struct LiveRun<'a> {
    addr: SocketAddr,
    timeout: Duration,
    case: &'a ChatCase,
    /// The case's room codes and the codes used on the server.
    rooms: Vec<(String, String)>,
    members: Vec<LiveMember>,
    seen: ChatObservation,
}

/// Runs `case` against the server at `addr`; `tag` makes its room codes
/// unique (letters, digits, `-`, `_` and `.` only), and `timeout` bounds
/// each wait.
pub fn run_chat_case(
    addr: SocketAddr,
    case: &ChatCase,
    tag: &str,
    timeout: Duration,
) -> ChatObservation {
    let rooms = case
        .rooms()
        .into_iter()
        .map(|room| {
            let mut live = format!("{room}.{tag}");
            live.truncate(MAX_ROOM_CODE);
            (room, live)
        })
        .collect();
    let mut run = LiveRun {
        addr,
        timeout,
        case,
        rooms,
        members: case
            .members()
            .into_iter()
            .map(|label| LiveMember {
                label,
                stream: None,
                frames: None,
                harness_closed: false,
            })
            .collect(),
        seen: ChatObservation::for_case(case),
    };

    for (number, step) in case.steps.iter().enumerate() {
        run.take(step);
        if !run.await_expectations(number) {
            break;
        }
    }
    run.finish();
    run.seen
}

impl LiveRun<'_> {
    /// Takes one step.
    fn take(&mut self, step: &Step) {
        let Some(index) = self.members.iter().position(|m| m.label == step.member) else {
            if let Action::Wait(millis) = step.action {
                thread::sleep(Duration::from_millis(millis));
            }
            return;
        };
        let bytes = match &step.action {
            Action::Join { .. } => return self.join(index, &step.action),
            Action::Text { payload, times } => client_frame(0x1, &payload.eval()).repeat(*times),
            Action::Binary(payload) => client_frame(0x2, &payload.eval()),
            Action::Leave => {
                self.members[index].harness_closed = true;
                client_frame(0x8, &1000u16.to_be_bytes())
            }
            Action::Wait(_) => return,
        };

        let member = &mut self.members[index];
        let written = member.stream.as_mut().map(|s| s.write_all(&bytes));
        if !matches!(written, Some(Ok(()))) {
            let problem = format!("{}: could not send {}", member.label, step.action);
            self.seen.problems.push(problem);
        }
    }

    /// Connects a member to `/joinRoom` and reads the answer to its upgrade.
    fn join(&mut self, index: usize, action: &Action) {
        let Action::Join {
            user_name,
            session_id,
            room,
        } = action
        else {
            return;
        };
        let live_room = self.live_room(room);
        let path = join_path(user_name, &live_room, session_id);
        let label = self.members[index].label.clone();

        match upgrade(self.addr, &path, self.timeout) {
            Ok(Upgraded::Open(stream, frames)) => {
                self.members[index].stream = Some(stream);
                self.members[index].frames = Some(frames);
            }
            Ok(Upgraded::Refused(response)) => {
                self.seen
                    .push(&label, format!("refused {}", response.status));
                let wanted = HttpCase {
                    status: response.status,
                    ..HttpCase::default()
                };
                if let Err(failures) = judge_http(&wanted, &response) {
                    let problems = failures.into_iter().map(|f| format!("{label}: {f}"));
                    self.seen.problems.extend(problems);
                }
            }
            Err(error) => {
                let problem = format!("{label}: could not join {live_room}: {error}");
                self.seen.problems.push(problem);
            }
        }
    }

    /// Waits until every member has received the lines it must have by the
    /// end of step `number`; false when one did not, or got another line.
    fn await_expectations(&mut self, number: usize) -> bool {
        let Some(step) = self.case.steps.get(number) else {
            return false;
        };
        let deadline = Instant::now() + self.timeout;

        for index in 0..self.members.len() {
            let label = self.members[index].label.clone();
            if !step.expect.iter().any(|(who, _)| *who == label) {
                continue;
            }
            let wanted: Vec<String> = self.case.steps[..=number]
                .iter()
                .flat_map(|s| &s.expect)
                .filter(|(who, _)| *who == label)
                .map(|(_, line)| line.clone())
                .collect();

            while self.seen.of(&label).len() < wanted.len() {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || !self.receive(index, left) {
                    let secs = self.timeout.as_secs();
                    let problem = format!("{label}: waited {secs} s for {}", step.action);
                    self.seen.problems.push(problem);
                    return false;
                }
                if !wanted.starts_with(self.seen.of(&label)) {
                    return false;
                }
            }
        }
        true
    }

    /// Records what a member's reader has, waiting up to `wait` for it;
    /// false when nothing came because the connection is over or silent.
    fn receive(&mut self, index: usize, wait: Duration) -> bool {
        let member = &mut self.members[index];
        let Some(frames) = member.frames.as_ref() else {
            return false;
        };
        let frames = match frames.recv_timeout(wait) {
            Ok(FromServer::Frames(frames)) => frames,
            Ok(FromServer::Eof) | Err(RecvTimeoutError::Disconnected) => {
                member.frames = None;
                return false;
            }
            Err(RecvTimeoutError::Timeout) => return false,
        };

        let label = member.label.clone();
        for frame in frames {
            if let Seen::Close(code, _) = frame {
                self.answer_close(index, code);
            }
            let line = self.local_rooms(&describe_seen(&frame));
            self.seen.push(&label, line);
        }
        true
    }

    /// Answers the server's close as a client does, then waits for the
    /// server to close TCP, so that its leave has happened before the next
    /// step.
    fn answer_close(&mut self, index: usize, code: Option<u16>) {
        let member = &mut self.members[index];
        if !member.harness_closed {
            member.harness_closed = true;
            let payload = code.map(u16::to_be_bytes);
            let payload = payload.as_ref().map_or(&[][..], |p| &p[..]);
            if let Some(stream) = member.stream.as_mut() {
                let _ = stream.write_all(&client_frame(0x8, payload));
            }
        }

        let deadline = Instant::now() + TCP_CLOSE_WAIT;
        while let Some(frames) = member.frames.as_ref() {
            let left = deadline.saturating_duration_since(Instant::now());
            match frames.recv_timeout(left) {
                Ok(FromServer::Frames(more)) => {
                    let more = more
                        .iter()
                        .map(|f| format!("{} after the close", f.describe()));
                    self.seen.problems.extend(more);
                }
                Ok(FromServer::Eof) | Err(RecvTimeoutError::Disconnected) => {
                    member.frames = None;
                }
                Err(RecvTimeoutError::Timeout) => {
                    let problem = format!("{}: TCP still open after the close", member.label);
                    self.seen.problems.push(problem);
                    return;
                }
            }
        }
    }

    /// Listens a moment for stray lines, then hangs up every member.
    fn finish(&mut self) {
        let deadline = Instant::now() + QUIET_WAIT;
        for index in 0..self.members.len() {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() || !self.receive(index, left) {
                    break;
                }
            }
        }
        for member in &mut self.members {
            if let Some(stream) = member.stream.take() {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }

    /// Returns the code used on the server for a room of the case.
    fn live_room(&self, room: &str) -> String {
        self.rooms
            .iter()
            .find(|(local, _)| local == room)
            .map_or_else(|| room.to_owned(), |(_, live)| live.clone())
    }

    /// Puts the case's room codes back into a received line.
    fn local_rooms(&self, line: &str) -> String {
        let mut line = line.to_owned();
        for (local, live) in &self.rooms {
            let from = format!("\"room_code\":\"{live}\"");
            line = line.replace(&from, &format!("\"room_code\":\"{local}\""));
        }
        line
    }
}

/// How a join went.
enum Upgraded {
    /// A 101: the stream and the frames read from it.
    Open(TcpStream, Receiver<FromServer>),
    /// Any other answer.
    Refused(Response),
}

/// Sends an upgrade request for `path` and reads the answer: on a 101, only
/// its head, then a thread reads frames; otherwise the whole response.
fn upgrade(addr: SocketAddr, path: &str, timeout: Duration) -> std::io::Result<Upgraded> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;

    let mut head = read_response_head(&mut stream)?;
    if !head.starts_with(b"HTTP/1.1 101") {
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
        head.extend_from_slice(&rest);
        let response = Response::parse(&head)
            .ok_or_else(|| std::io::Error::other("the answer is not HTTP"))?;
        return Ok(Upgraded::Refused(response));
    }

    let mut reading = stream.try_clone()?;
    reading.set_read_timeout(None)?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = FrameReader::new();
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let n = match reading.read(&mut buffer) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(FromServer::Eof);
                    return;
                }
                Ok(n) => n,
            };
            let mut frames = Vec::new();
            reader.push(&buffer[..n], &mut frames);
            if !frames.is_empty() && tx.send(FromServer::Frames(frames)).is_err() {
                return;
            }
        }
    });
    Ok(Upgraded::Open(stream, rx))
}
