//! A chat member's connection: join the room, then one task per member
//! reads, hands bytes to the core's `Connection`, forwards its lines to the
//! room task, and writes the member's queue, its control frames behind the
//! room's frames.

use std::future::{poll_fn, Future};
use std::net::{SocketAddr, TcpStream};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use futures_lite::Stream;
use natter_core::close::CloseCode;
use natter_core::connection::{CloseInfo, Connection, ConnectionConfig, Event, Message, Role};
use natter_core::handshake::{JoinParams, Upgrade};
use natter_core::room::{Member, MemberId};
use smol::{Async, Timer};

use crate::deadline::Deadline;
use crate::outlet::{Flushed, Outlet, Writer};
use crate::rooms::{RoomCommand, Rooms};
use crate::scratch;
use crate::server::{ConnectionGuard, Server};
use crate::session;

/// Commands a room task may have waiting before its members stop reading
/// for a moment, so senders faster than the room cannot grow its queue
/// without bound.
const MAX_ROOM_BACKLOG: usize = 1024;

/// How long a member pauses its reading while its room is behind.
const BACKLOG_PAUSE: Duration = Duration::from_millis(1);

/// What the handshake leaves for the member.
pub struct Input {
    /// Bytes that followed the request head, such as a pipelined frame.
    pub leftover: Vec<u8>,
    /// Keeps the connection counted for as long as the member lives.
    pub guard: ConnectionGuard,
}

/// Serves a `/joinRoom` upgrade: joins the room (answering 409 if the
/// session is already there), writes the 101, and spawns the member's task.
pub async fn run(
    server: &Arc<Server>,
    mut stream: async_net::TcpStream,
    peer: SocketAddr,
    params: JoinParams,
    upgrade: Upgrade,
    input: Input,
) {
    let JoinParams {
        user_name,
        room_code,
        session_id,
    } = params;
    let label = format!(
        "room {}: member {} ({peer})",
        room_code.as_str(),
        session_id.as_str()
    );
    let member = Member {
        user_name,
        session_id,
    };

    // The room answers before the 101 goes out, so a 409 is still possible.
    let (outlet, writer) = Outlet::new(server.config.max_queue_bytes);
    let joined = Rooms::join(server, room_code, member, outlet).await;
    let membership = match joined {
        Ok(membership) => membership,
        Err(refusal) => return session::refuse(server, stream, peer, &refusal).await,
    };
    let response = upgrade.response_bytes();
    if session::write_all(server, &mut stream, &response)
        .await
        .is_err()
    {
        let leave = RoomCommand::Leave { id: membership.id };
        let _ = membership.room.try_send(leave);
        return;
    }
    log::debug!("{label} joined");

    // The welcome is already queued; the member's task writes it first. The
    // task is spawned afresh so that it holds only what a member needs, not
    // the handshake's larger state.
    let now = Instant::now();
    let mut conn = Connection::new(Role::Server, ConnectionConfig::chat(&server.config), now);
    if !input.leftover.is_empty() {
        conn.handle_input(now, &input.leftover);
    }
    let task = MemberTask {
        server: Arc::clone(server),
        stream: stream.into(),
        conn,
        writer,
        room: membership.room,
        id: membership.id,
        deadline: Deadline::new(),
        watch_shutdown: true,
        kick_seen: false,
        label: label.into_boxed_str(),
        _guard: input.guard,
    };
    server.executor.spawn(task.run()).detach();
}

/// Everything a joined member holds while it lives.
struct MemberTask {
    server: Arc<Server>,
    stream: Arc<Async<TcpStream>>,
    conn: Connection,
    writer: Writer,
    room: Sender<RoomCommand>,
    id: MemberId,
    deadline: Deadline,
    watch_shutdown: bool,
    kick_seen: bool,
    /// Names the member in the logs: room, session and peer.
    label: Box<str>,
    _guard: ConnectionGuard,
}

impl MemberTask {
    /// Runs the connection until it finishes, leaves the room, and lets the
    /// last frames out when the peer still reads them.
    async fn run(mut self) {
        let mut shutdown = pin!(self.server.shutdown_signal());
        let info = poll_fn(|cx| self.poll_open(cx, shutdown.as_mut())).await;
        let _ = self.room.try_send(RoomCommand::Leave { id: self.id });

        if session::peer_reads(&info.cause) {
            let mut expired = Timer::after(self.server.config.close_timeout);
            poll_fn(|cx| self.poll_last_frames(cx, &mut expired)).await;
            session::drain_before_close(&self.stream).await;
        }
        let code = info
            .code
            .map_or_else(|| "none".to_owned(), |c| c.to_string());
        if info.is_orderly() {
            log::debug!("{} left (close {code})", self.label);
        } else {
            log::info!("{} lost (close {code}, {})", self.label, info.cause);
        }
    }

    /// Serves the open connection: handles whatever woke the task, then
    /// writes what is queued; returns how the connection finished.
    fn poll_open(
        &mut self,
        cx: &mut Context<'_>,
        mut shutdown: Pin<&mut Receiver<()>>,
    ) -> Poll<CloseInfo> {
        loop {
            let mut progressed = false;
            if self.watch_shutdown && shutdown.as_mut().poll_next(cx).is_ready() {
                self.watch_shutdown = false;
                self.close(CloseCode::GOING_AWAY, "server shutting down");
            }
            if !self.kick_seen && self.writer.outlet().is_kicked() {
                self.kick_seen = true;
                self.server.metrics.slow_consumer_disconnected();
                log::info!("{} dropped: queue over its bound (close 1008)", self.label);
                self.close(CloseCode::POLICY_VIOLATION, "queue over its bound");
            }
            progressed |= self.poll_read(cx);

            let closed = self.forward_events();
            self.transmit();
            let metrics = &self.server.metrics;
            if self.writer.poll_flush(cx, &self.stream, metrics).is_err() {
                self.conn.handle_eof();
                progressed = true;
            }
            if let Some(info) = closed {
                return Poll::Ready(info);
            }
            // Arming only registers the timer once it is polled.
            self.deadline.arm(self.conn.poll_timeout());
            if self.deadline.poll_expired(cx) {
                self.conn.handle_timeout(Instant::now());
                progressed = true;
            }
            if !progressed {
                return Poll::Pending;
            }
        }
    }

    /// Starts the closing handshake now, so the peer gets the whole close
    /// timeout from here.
    fn close(&mut self, code: CloseCode, reason: &str) {
        self.conn.close(Instant::now(), code, reason);
    }

    /// Reads once if the socket is readable, unless the room is behind;
    /// returns whether anything happened.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> bool {
        if self.room.len() > MAX_ROOM_BACKLOG {
            self.deadline.arm(Instant::now().checked_add(BACKLOG_PAUSE));
            return false;
        }
        scratch::poll_feed(&self.stream, cx, &mut self.conn, &self.server.metrics)
    }

    /// Writes the frames still queued once the connection has finished,
    /// until the close frame is out, nothing is left, the write fails or
    /// `expired` fires.
    fn poll_last_frames(&mut self, cx: &mut Context<'_>, expired: &mut Timer) -> Poll<()> {
        let metrics = &self.server.metrics;
        match self.writer.poll_flush(cx, &self.stream, metrics) {
            Ok(Flushed::Blocked) if Pin::new(expired).poll(cx).is_pending() => Poll::Pending,
            _ => Poll::Ready(()),
        }
    }

    /// Hands every event to the room; returns the close once it comes.
    fn forward_events(&mut self) -> Option<CloseInfo> {
        while let Some(event) = self.conn.poll_event() {
            match event {
                Event::Message(Message::Text(text)) => {
                    let _ = self.room.try_send(RoomCommand::Text { id: self.id, text });
                }
                // The chat configuration refuses binary messages with 1003
                // inside the core, and pongs need no answer.
                Event::Message(Message::Binary(_)) | Event::Pong(_) => {}
                Event::Closed(info) => return Some(info),
            }
        }
        None
    }

    /// Queues the connection's own frames behind what the room queued.
    fn transmit(&mut self) {
        let mut out = Vec::new();
        if self.conn.poll_transmit(&mut out) {
            let closes = !self.conn.can_send_data();
            self.writer.outlet().push_control(out, closes);
        }
    }
}
