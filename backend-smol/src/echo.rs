//! The `/echo` endpoint: every message comes back whole, with backpressure.
//!
//! One loop per connection reads, hands the bytes to the core, queues every
//! message back, and writes all of it before reading again, so a peer that
//! does not read its answers stops being read.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Instant;

use async_net::TcpStream;
use futures_lite::{future, AsyncReadExt, FutureExt};
use natter_core::close::CloseCode;
use natter_core::connection::{CloseInfo, Connection, ConnectionConfig, Event, Message, Role};
use natter_core::handshake::Upgrade;

use crate::deadline::Deadline;
use crate::server::Server;
use crate::session;

/// Size of the reused read buffer, larger than a chat member's since echo
/// messages run to megabytes.
const READ_CHUNK: usize = 64 * 1024;

/// Capacity above which the write buffer is given back after a large
/// message, so one big echo does not pin its memory for the connection's
/// life.
const KEEP_OUT_CAPACITY: usize = 1024 * 1024;

/// What woke the echo loop.
enum Wake {
    /// The socket produced bytes, ended (`Ok(0)`) or failed.
    Read(std::io::Result<usize>),
    /// The connection's timer passed.
    Timer,
    /// The server is shutting down.
    Shutdown,
}

/// Serves an `/echo` upgrade until the connection ends.
pub async fn run(
    server: &Arc<Server>,
    mut stream: TcpStream,
    peer: SocketAddr,
    upgrade: Upgrade,
    leftover: Vec<u8>,
    mut buf: Vec<u8>,
) {
    let response = upgrade.response_bytes();
    if session::write_all(server, &mut stream, &response)
        .await
        .is_err()
    {
        return;
    }

    let config = ConnectionConfig::echo(&server.config);
    let mut conn = Connection::new(Role::Server, config, Instant::now());
    if !leftover.is_empty() {
        conn.handle_input(Instant::now(), &leftover);
    }
    buf.resize(READ_CHUNK, 0);
    let info = drive(server, &mut stream, &mut conn, &mut buf).await;
    log::debug!(
        "echo peer {peer} left: close {:?} {:?} ({:?})",
        info.code,
        info.reason,
        info.cause
    );
}

/// Runs the echo loop until the connection finishes; returns how it did.
async fn drive(
    server: &Server,
    stream: &mut TcpStream,
    conn: &mut Connection,
    buf: &mut [u8],
) -> CloseInfo {
    // One future waits for the shutdown for the whole loop, so no wakeup
    // registers and drops a listener again.
    let shutdown = server.shutdown_signal();
    let mut shutdown = pin!(shutdown.recv());
    let mut watch_shutdown = true;
    let mut deadline = Deadline::new();
    let mut out = Vec::new();
    let mut closed = None;

    loop {
        closed = echo_events(server, conn).or(closed);

        // Write everything before reading again: this is the backpressure.
        out.clear();
        if conn.poll_transmit(&mut out) && session::write_all(server, stream, &out).await.is_err() {
            conn.handle_eof();
            closed = echo_events(server, conn).or(closed);
        }
        if out.capacity() > KEEP_OUT_CAPACITY {
            out = Vec::new();
        }
        if let Some(info) = closed.take() {
            return info;
        }

        deadline.arm(conn.poll_timeout());
        let stop = async {
            if !watch_shutdown {
                future::pending::<()>().await;
            }
            let _ = shutdown.as_mut().await;
            Wake::Shutdown
        };
        let timer = async {
            deadline.wait().await;
            Wake::Timer
        };
        let read = async { Wake::Read(stream.read(buf).await) };
        match stop.or(timer).or(read).await {
            Wake::Read(Ok(0)) | Wake::Read(Err(_)) => conn.handle_eof(),
            Wake::Read(Ok(n)) => {
                server.metrics.bytes_received(n);
                conn.handle_input(Instant::now(), buf.get(..n).unwrap_or_default());
            }
            Wake::Timer => conn.handle_timeout(Instant::now()),
            Wake::Shutdown => {
                watch_shutdown = false;
                conn.close(CloseCode::GOING_AWAY, "server shutting down");
            }
        }
    }
}

/// Queues every received message back; returns the close once it comes.
fn echo_events(server: &Server, conn: &mut Connection) -> Option<CloseInfo> {
    while let Some(event) = conn.poll_event() {
        let sent = match event {
            Event::Message(Message::Text(text)) => conn.send_text(&text),
            Event::Message(Message::Binary(data)) => conn.send_binary(&data),
            Event::Pong(_) => continue,
            Event::Closed(info) => return Some(info),
        };
        if sent.is_ok() {
            server.metrics.echo_message();
        }
    }
    None
}
