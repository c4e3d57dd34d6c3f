//! One room member as the threads see it: its socket, the core's
//! `Connection`, and the outlet its writer thread drains.

use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use natter_core::close::CloseCode;
use natter_core::connection::Connection;
use natter_core::names::SessionId;

use crate::outlet::{Outlet, PushError};
use crate::server::lock;

/// A room member's connection, shared by its reader thread, its writer
/// thread and (through the room) every room owner.
///
/// The reader holds [`conn`](Peer::conn) only while it feeds input and
/// collects output, never while it waits for a room, so a room owner may
/// lock it to close the member.
#[derive(Debug)]
pub struct Peer {
    /// The socket: the reader reads it, the writer thread writes it.
    pub stream: Arc<TcpStream>,
    /// The remote address, for logs.
    pub addr: SocketAddr,
    /// The member's outgoing queue.
    pub outlet: Outlet,
    conn: Mutex<Connection>,
    session: SessionId,
}

impl Peer {
    /// Wraps an upgraded connection whose output is bounded by `queue_limit`.
    pub fn new(
        stream: Arc<TcpStream>,
        addr: SocketAddr,
        conn: Connection,
        session: SessionId,
        queue_limit: usize,
    ) -> Peer {
        Peer {
            stream,
            addr,
            outlet: Outlet::new(queue_limit),
            conn: Mutex::new(conn),
            session,
        }
    }

    /// Locks the core's connection state.
    pub fn conn(&self) -> MutexGuard<'_, Connection> {
        lock(&self.conn)
    }

    /// Returns the member's session id, for logs.
    pub fn session_label(&self) -> &SessionId {
        &self.session
    }

    /// Starts the closing handshake with `code` and queues the close frame.
    pub fn close(&self, code: CloseCode, reason: &str) {
        let mut conn = self.conn();
        conn.close(Instant::now(), code, reason);
        self.flush(&mut conn);
    }

    /// Moves what the connection has to send into the outlet, marking the
    /// chunk that carries the close frame as the last one.
    ///
    /// Output that would pass the queue's bound (pongs to a peer that pings
    /// but never reads) closes the connection with 1008 instead.
    pub fn flush(&self, conn: &mut Connection) {
        let mut out = Vec::new();
        if !conn.poll_transmit(&mut out) {
            return;
        }
        if self.outlet.push_control(out, !conn.can_send_data()) != Err(PushError::Full) {
            return;
        }

        log::info!(
            "{}: member {} dropped: queue over its bound (close 1008)",
            self.addr,
            self.session
        );
        self.outlet.discard();
        conn.close(
            Instant::now(),
            CloseCode::POLICY_VIOLATION,
            "queue over its bound",
        );
        let mut close = Vec::new();
        conn.poll_transmit(&mut close);
        let _ = self.outlet.push_control(close, true);
    }
}
