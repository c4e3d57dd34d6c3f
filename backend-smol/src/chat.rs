//! A chat member's connection: join the room, then read, hand bytes to the
//! core's `Connection`, forward its lines to the room task, and queue its
//! control frames behind the room's frames.

use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use async_net::TcpStream;
use futures_lite::{future, AsyncReadExt, FutureExt};
use natter_core::close::CloseCode;
use natter_core::connection::{
    CloseCause, CloseInfo, Connection, ConnectionConfig, Event, Message, Role,
};
use natter_core::handshake::{JoinParams, Upgrade};
use natter_core::room::{Member, MemberId};
use smol::{Task, Timer};

use crate::deadline::Deadline;
use crate::outlet::{run_writer, Outlet};
use crate::rooms::{RoomCommand, Rooms};
use crate::server::Server;
use crate::session;

/// Commands a room task may have waiting before its members' readers stop
/// reading for a moment, so senders faster than the room cannot grow its
/// queue without bound.
const MAX_ROOM_BACKLOG: usize = 1024;

/// How long a reader pauses while its room is behind.
const BACKLOG_PAUSE: Duration = Duration::from_millis(1);

/// What woke a member's reader.
enum Wake {
    /// The socket produced bytes, ended (`Ok(0)`) or failed.
    Read(std::io::Result<usize>),
    /// The connection's timer passed.
    Timer,
    /// The server is shutting down.
    Shutdown,
    /// The room dropped the member for a full queue.
    Kicked,
    /// The room was behind, and the reader paused instead of reading.
    Paused,
}

/// What the handshake leaves for the member's reader.
pub struct Input {
    /// Bytes that followed the request head, such as a pipelined frame.
    pub leftover: Vec<u8>,
    /// The connection's read buffer, reused.
    pub buf: Vec<u8>,
}

/// Serves a `/joinRoom` upgrade: joins the room (answering 409 if the
/// session is already there), writes the 101, and runs the member until
/// its connection ends.
pub async fn run(
    server: &Arc<Server>,
    mut stream: TcpStream,
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
    let session = session_id.as_str().to_owned();
    let member = Member {
        user_name,
        session_id,
    };

    // The room answers before the 101 goes out, so a 409 is still possible.
    let (outlet, ends) = Outlet::new(server.config.max_queue_bytes);
    let joined = Rooms::join(server, room_code.clone(), member, outlet.clone()).await;
    let membership = match joined {
        Ok(membership) => membership,
        Err(refusal) => return session::refuse(server, stream, peer, &refusal).await,
    };
    let response = upgrade.response_bytes();
    let wrote = session::write_all(server, &mut stream, &response).await;
    if wrote.is_err() {
        let leave = RoomCommand::Leave { id: membership.id };
        let _ = membership.room.try_send(leave);
        return;
    }

    log::debug!(
        "room {}: member {session} ({peer}) joined",
        room_code.as_str()
    );

    // The welcome is already queued; the writer sends it first.
    let metrics = Arc::clone(&server.metrics);
    let writer = run_writer(stream.clone(), outlet.clone(), ends.queue, metrics);
    let writer = server.executor.spawn(writer);
    let config = ConnectionConfig::chat(&server.config);
    let reader = MemberReader {
        server,
        conn: Connection::new(Role::Server, config, Instant::now()),
        outlet,
        room: membership.room,
        id: membership.id,
    };
    let info = reader.drive(stream, input, ends.kicked).await;

    let_writer_finish(server, writer, &info.cause).await;
    let code = info
        .code
        .map_or_else(|| "none".to_owned(), |c| c.to_string());
    log::info!(
        "room {}: member {session} ({peer}) left: close {code} {:?} ({:?})",
        room_code.as_str(),
        info.reason,
        info.cause,
    );
}

/// Waits, within the close timeout, for the writer to deliver the last
/// frames when the peer is still reading: it answered or started the
/// closing handshake, or broke the protocol and should learn the code.
/// Otherwise nobody reads them and the writer is dropped at once.
async fn let_writer_finish(server: &Server, writer: Task<io::Result<()>>, cause: &CloseCause) {
    let peer_reads = match cause {
        CloseCause::ClosedByPeer | CloseCause::Violation(_) => true,
        CloseCause::ClosedByUs { acknowledged } => *acknowledged,
        CloseCause::TimedOut | CloseCause::ConnectionLost => false,
    };
    if !peer_reads {
        return;
    }

    let expired = async {
        Timer::after(server.config.close_timeout).await;
        Ok(())
    };
    let _ = writer.or(expired).await;
}

/// The reading half of a member's connection.
struct MemberReader<'a> {
    server: &'a Server,
    conn: Connection,
    outlet: Outlet,
    room: Sender<RoomCommand>,
    id: MemberId,
}

impl MemberReader<'_> {
    /// Runs the connection until it finishes, then leaves the room; returns
    /// how it finished.
    async fn drive(
        mut self,
        mut stream: TcpStream,
        input: Input,
        kicked: Receiver<()>,
    ) -> CloseInfo {
        // The two signals are waited on by futures that live as long as the
        // loop, so no wakeup registers and drops a listener again.
        let shutdown = self.server.shutdown_signal();
        let mut shutdown = pin!(shutdown.recv());
        let mut kicked = pin!(kicked.recv());
        let mut watch_shutdown = true;
        let mut watch_kick = true;
        let mut deadline = Deadline::new();
        let Input { leftover, mut buf } = input;
        if !leftover.is_empty() {
            self.conn.handle_input(Instant::now(), &leftover);
        }

        let info = loop {
            let closed = self.forward_events();
            self.transmit();
            if let Some(info) = closed {
                break info;
            }

            // Wait for whichever comes first; the rare wakeups are polled
            // before the socket so a busy peer cannot starve them.
            deadline.arm(self.conn.poll_timeout());
            let stop = async {
                if !watch_shutdown {
                    future::pending::<()>().await;
                }
                let _ = shutdown.as_mut().await;
                Wake::Shutdown
            };
            let kick = async {
                if !watch_kick {
                    future::pending::<()>().await;
                }
                let _ = kicked.as_mut().await;
                Wake::Kicked
            };
            let timer = async {
                deadline.wait().await;
                Wake::Timer
            };
            let room_behind = self.room.len() > MAX_ROOM_BACKLOG;
            let read = async {
                if room_behind {
                    Timer::after(BACKLOG_PAUSE).await;
                    return Wake::Paused;
                }
                Wake::Read(stream.read(&mut buf).await)
            };
            let wake = stop.or(kick).or(timer).or(read).await;
            watch_shutdown &= !matches!(wake, Wake::Shutdown);
            watch_kick &= !matches!(wake, Wake::Kicked);
            self.handle_wake(wake, &buf);
        };

        let _ = self.room.try_send(RoomCommand::Leave { id: self.id });
        info
    }

    /// Feeds what woke the reader to the connection; `buf` holds the bytes
    /// of a read.
    fn handle_wake(&mut self, wake: Wake, buf: &[u8]) {
        match wake {
            Wake::Read(Ok(0)) | Wake::Read(Err(_)) => self.conn.handle_eof(),
            Wake::Read(Ok(n)) => {
                self.server.metrics.bytes_received(n);
                let bytes = buf.get(..n).unwrap_or(buf);
                self.conn.handle_input(Instant::now(), bytes);
            }
            Wake::Timer => self.conn.handle_timeout(Instant::now()),
            Wake::Paused => {}
            Wake::Shutdown => {
                let reason = "server shutting down";
                self.conn.close(CloseCode::GOING_AWAY, reason);
            }
            Wake::Kicked => {
                self.server.metrics.slow_consumer_disconnected();
                let reason = "outgoing queue full";
                self.conn.close(CloseCode::POLICY_VIOLATION, reason);
            }
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
            self.outlet.push_control(out, closes);
        }
    }
}
