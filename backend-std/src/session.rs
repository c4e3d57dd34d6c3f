//! One connection's reader thread: the upgrade handshake, then the answer
//! to what was asked for: a refusal, `/healthz`, `/metrics`, an `/echo`
//! session or a room member's session.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use natter_core::close::CloseCode;
use natter_core::connection::{CloseInfo, Connection, ConnectionConfig, Event, Message, Role};
use natter_core::handshake::{
    health_response, ok_response, JoinParams, Progress, Refusal, Request, ServerHandshake, Upgrade,
    METRICS_CONTENT_TYPE,
};
use natter_core::metrics::Metrics;
use natter_core::room::{Member, MemberId};

use crate::outlet::run_writer;
use crate::peer::Peer;
use crate::rooms::{SharedRoom, Wakes};
use crate::server::{Server, Slot, THREAD_STACK_BYTES};

/// Size of each connection's read buffer, reused for its whole life: a
/// chat line is at most 4 KiB and the core decodes input in pieces, so a
/// small buffer costs an idle member little and a busy one a few reads.
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// Size of an `/echo` connection's read buffer: echo messages run to
/// megabytes and the endpoint is for conformance runs, not small boards.
const ECHO_BUFFER_BYTES: usize = 64 * 1024;

/// Most bytes read and dropped after a plain HTTP answer, so closing with
/// unread input does not reset the connection before the peer reads it.
const LINGER_BYTES: usize = 64 * 1024;

/// Longest wait for the peer to close after a plain HTTP answer.
const LINGER_TIME: Duration = Duration::from_secs(2);

/// What one blocking read gave.
#[derive(Debug)]
enum Input {
    /// This many bytes are at the front of the buffer.
    Data(usize),
    /// The deadline passed first.
    TimedOut,
    /// The peer ended its stream, or the socket failed.
    Ended,
}

/// Serves one accepted connection to its end; `slot` is given back then.
pub fn run(server: Arc<Server>, slot: Slot, stream: Arc<TcpStream>, addr: SocketAddr) {
    let _ = stream.set_nodelay(true);
    server.track(slot.id(), &stream);
    let mut buf = vec![0; READ_BUFFER_BYTES];
    let Some((request, leftover)) = read_request(&server, &stream, addr, &mut buf) else {
        return;
    };

    match request {
        Request::Refuse(refusal) => refuse(&server, &stream, addr, &refusal),
        Request::Health => answer(&server, &stream, &health_response()),
        Request::Metrics => {
            let body = server.metrics().render();
            answer(
                &server,
                &stream,
                &ok_response(METRICS_CONTENT_TYPE, body.as_bytes()),
            );
        }
        Request::Echo { upgrade } => {
            drop(buf);
            run_echo(&server, &stream, addr, upgrade, &leftover);
        }
        Request::Join { params, upgrade } => {
            // A member is closed through its room on shutdown.
            server.untrack(slot.id());
            let member = Joining {
                params,
                upgrade,
                id: slot.id(),
            };
            run_member(&server, stream, addr, member, &leftover, &mut buf);
        }
    }
    drop(slot);
}

/// Reads until the request head is complete, the peer leaves, or the
/// handshake deadline passes.
fn read_request(
    server: &Server,
    stream: &TcpStream,
    addr: SocketAddr,
    buf: &mut [u8],
) -> Option<(Request, Vec<u8>)> {
    let mut handshake = ServerHandshake::new(server.config(), Instant::now());
    loop {
        let n = match read_until(
            stream,
            Some(handshake.poll_timeout()),
            buf,
            server.metrics(),
        ) {
            Input::Data(n) => n,
            Input::TimedOut => {
                log::debug!("{addr}: dropped: request head not complete in time");
                return None;
            }
            Input::Ended => {
                log::debug!("{addr}: left before completing its request head");
                return None;
            }
        };

        if let Progress::Done { request, leftover } = handshake.handle_input(&buf[..n]) {
            return Some((request, leftover));
        }
    }
}

/// Blocks in one read until data arrives or `deadline` passes.
fn read_until(
    mut stream: &TcpStream,
    deadline: Option<Instant>,
    buf: &mut [u8],
    metrics: &Metrics,
) -> Input {
    let timeout = match deadline {
        None => None,
        Some(deadline) => {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Input::TimedOut;
            }
            Some(left)
        }
    };
    if stream.set_read_timeout(timeout).is_err() {
        return Input::Ended;
    }

    loop {
        match stream.read(buf) {
            Ok(0) => return Input::Ended,
            Ok(n) => {
                metrics.bytes_received(n);
                return Input::Data(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => return Input::TimedOut,
            Err(_) => return Input::Ended,
        }
    }
}

/// Says whether an IO error is a socket timeout expiring.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Answers with a refusal and closes.
fn refuse(server: &Server, stream: &TcpStream, addr: SocketAddr, refusal: &Refusal) {
    log::debug!("{addr}: refused: {refusal}");
    server.metrics().refused(refusal.status());
    answer(server, stream, &refusal.to_bytes());
}

/// Writes a complete HTTP response and closes the connection.
fn answer(server: &Server, mut stream: &TcpStream, response: &[u8]) {
    let _ = stream.set_write_timeout(Some(server.config().close_timeout));
    if stream.write_all(response).is_ok() {
        server.metrics().bytes_sent(response.len());
    }
    linger_close(stream);
}

/// Ends our side, then reads and drops what the peer still sends until it
/// closes, for a bounded time and size, so unread input does not turn our
/// close into a reset that could destroy the answer in flight.
fn linger_close(mut stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(LINGER_TIME));

    let mut sink = [0; 1024];
    let mut total = 0;
    while total < LINGER_BYTES {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
    }
}

/// Serves `/echo`: every message comes back whole. Nothing more is read
/// while a reply is unsent, which is the endpoint's backpressure.
fn run_echo(
    server: &Server,
    stream: &TcpStream,
    addr: SocketAddr,
    upgrade: Upgrade,
    leftover: &[u8],
) {
    let config = server.config();
    let stall = config.idle_ping_after + config.pong_timeout;
    let _ = stream.set_write_timeout(Some(stall));
    if write_counted(stream, &upgrade.response_bytes(), server.metrics()).is_err() {
        return;
    }

    let info = echo_until_closed(server, stream, leftover);
    log::debug!(
        "echo peer {addr} left: close {:?} {:?} ({:?})",
        info.code,
        info.reason,
        info.cause
    );
    let _ = stream.shutdown(Shutdown::Both);
}

/// Sends every message of an upgraded `/echo` connection back until the
/// connection finishes, and returns how it finished.
fn echo_until_closed(server: &Server, stream: &TcpStream, leftover: &[u8]) -> CloseInfo {
    let metrics = server.metrics();
    let mut buf = vec![0; ECHO_BUFFER_BYTES];
    let now = Instant::now();
    let mut conn = Connection::new(Role::Server, ConnectionConfig::echo(server.config()), now);
    conn.handle_input(now, leftover);
    let mut out = Vec::new();
    let mut closed = None;
    loop {
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Message(Message::Text(text)) => {
                    metrics.echo_message();
                    let _ = conn.send_text(&text);
                }
                Event::Message(Message::Binary(data)) => {
                    metrics.echo_message();
                    let _ = conn.send_binary(&data);
                }
                Event::Pong(_) => {}
                Event::Closed(info) => closed = Some(info),
            }
        }

        out.clear();
        if conn.poll_transmit(&mut out) && write_counted(stream, &out, metrics).is_err() {
            // A peer we cannot write to is lost; the next events say so.
            conn.handle_eof();
            continue;
        }
        if let Some(info) = closed.take() {
            return info;
        }

        match read_until(stream, conn.poll_timeout(), &mut buf, metrics) {
            Input::Data(n) => conn.handle_input(Instant::now(), &buf[..n]),
            Input::TimedOut => conn.handle_timeout(Instant::now()),
            // Shutdown ends our reading half: say goodbye before the end.
            Input::Ended if server.is_stopping() && conn.can_send_data() => {
                conn.close(
                    Instant::now(),
                    CloseCode::GOING_AWAY,
                    "server shutting down",
                );
            }
            Input::Ended => conn.handle_eof(),
        }
    }
}

/// Writes all of `bytes` and counts them.
fn write_counted(mut stream: &TcpStream, bytes: &[u8], metrics: &Metrics) -> io::Result<()> {
    stream.write_all(bytes)?;
    metrics.bytes_sent(bytes.len());
    Ok(())
}

/// What a `/joinRoom` request brings to its member session.
#[derive(Debug)]
struct Joining {
    params: JoinParams,
    upgrade: Upgrade,
    /// The connection's number, for thread names.
    id: u64,
}

/// Serves a room member: starts its writer, joins the room (or answers 409),
/// reads until the connection ends, then leaves.
fn run_member(
    server: &Arc<Server>,
    stream: Arc<TcpStream>,
    addr: SocketAddr,
    joining: Joining,
    leftover: &[u8],
    buf: &mut [u8],
) {
    let config = server.config();
    let JoinParams {
        user_name,
        room_code,
        session_id,
    } = joining.params;
    let conn = Connection::new(Role::Server, ConnectionConfig::chat(config), Instant::now());
    let peer = Arc::new(Peer::new(
        stream,
        addr,
        conn,
        session_id.clone(),
        config.max_queue_bytes,
        Arc::clone(server.metrics()),
    ));

    let writer = match spawn_writer(server, &peer, joining.id) {
        Ok(writer) => writer,
        Err(e) => {
            log::warn!("cannot start a writer thread: {e}");
            refuse(server, &peer.stream, addr, &Refusal::server_busy());
            return;
        }
    };

    let member = Member {
        user_name,
        session_id,
    };
    let response = joining.upgrade.response_bytes();
    let Ok((room, id)) = server.rooms().join(&room_code, member, &peer, response) else {
        let refusal = Refusal::duplicate_session();
        log::debug!("{addr}: refused: {refusal}");
        server.metrics().refused(refusal.status());
        let _ = peer.outlet.refuse(refusal.to_bytes());
        end_writer(&peer, writer);
        linger_close(&peer.stream);
        return;
    };
    log::debug!(
        "{addr}: joined room {room_code} as {}",
        peer.session_label()
    );
    if server.is_stopping() {
        peer.close(CloseCode::GOING_AWAY, "server shutting down");
    }

    let info = read_member(server, &peer, &room, id, leftover, buf);
    if server.rooms().leave(&room_code, &room, id) {
        log_departure(&room_code.to_string(), &peer, &info);
    }
    end_writer(&peer, writer);
    let _ = peer.stream.shutdown(Shutdown::Both);
}

/// Starts the thread that writes a member's socket.
fn spawn_writer(server: &Server, peer: &Arc<Peer>, id: u64) -> io::Result<JoinHandle<()>> {
    let peer = Arc::clone(peer);
    let metrics = Arc::clone(server.metrics());
    let give_up_after = server.config().close_timeout;
    thread::Builder::new()
        .name(format!("write-{id}"))
        .stack_size(THREAD_STACK_BYTES)
        .spawn(move || run_writer(&peer.outlet, &peer.stream, give_up_after, &metrics))
}

/// Lets the writer send what is queued, then waits for it to stop.
fn end_writer(peer: &Peer, writer: JoinHandle<()>) {
    peer.outlet.finish();
    if writer.join().is_err() {
        log::warn!("{}: writer thread panicked", peer.addr);
    }
}

/// Reads a member's input until its connection is finished, handing chat
/// lines to the room, and returns how it ended.
fn read_member(
    server: &Server,
    peer: &Peer,
    room: &SharedRoom,
    id: MemberId,
    leftover: &[u8],
    buf: &mut [u8],
) -> CloseInfo {
    let mut events = Vec::new();
    let mut wakes = Wakes::default();
    let mut deadline = feed(peer, &mut events, |conn| {
        conn.handle_input(Instant::now(), leftover);
    });
    loop {
        for event in events.drain(..) {
            match event {
                Event::Message(Message::Text(text)) => {
                    server.rooms().handle_text(room, id, &text, &mut wakes);
                }
                // The chat configuration refuses binary messages; the core
                // closes with 1003 before one could get here.
                Event::Message(Message::Binary(_)) | Event::Pong(_) => {}
                Event::Closed(info) => {
                    wakes.wake_all();
                    return info;
                }
            }
        }
        wakes.wake_all();

        let input = read_until(&peer.stream, deadline, buf, server.metrics());
        deadline = feed(peer, &mut events, |conn| match input {
            Input::Data(n) => conn.handle_input(Instant::now(), &buf[..n]),
            Input::TimedOut => conn.handle_timeout(Instant::now()),
            Input::Ended => conn.handle_eof(),
        });
    }
}

/// Applies one input to the member's connection under its lock, collects
/// the events, queues what it transmits, and returns the next deadline.
fn feed(
    peer: &Peer,
    events: &mut Vec<Event>,
    input: impl FnOnce(&mut Connection),
) -> Option<Instant> {
    let mut conn = peer.conn();
    input(&mut conn);
    while let Some(event) = conn.poll_event() {
        events.push(event);
    }
    peer.flush(&mut conn);
    conn.poll_timeout()
}

/// Logs a member's end: at info when it was lost (no completed closing
/// handshake), at debug for an ordinary goodbye.
fn log_departure(room_code: &str, peer: &Peer, info: &CloseInfo) {
    let code = info
        .code
        .map_or_else(|| "none".to_string(), |c| c.to_string());
    let session = peer.session_label();
    if info.is_orderly() {
        log::debug!("room {room_code}: member {session} left (close {code})");
    } else {
        log::info!(
            "room {room_code}: member {session} lost from {} (close {code}, {})",
            peer.addr,
            info.cause
        );
    }
}
