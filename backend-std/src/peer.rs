//! One room member as the threads see it: its socket, the core's
//! `Connection`, and the outlet its writer thread drains.

use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use natter_core::close::CloseCode;
use natter_core::connection::Connection;
use natter_core::metrics::Metrics;
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
    /// The server's counters, for the drops [`kick`](Peer::kick) makes.
    metrics: Arc<Metrics>,
}

impl Peer {
    /// Wraps an upgraded connection whose output is bounded by `queue_limit`;
    /// its drops for a full queue are counted in `metrics`.
    pub fn new(
        stream: Arc<TcpStream>,
        addr: SocketAddr,
        conn: Connection,
        session: SessionId,
        queue_limit: usize,
        metrics: Arc<Metrics>,
    ) -> Peer {
        Peer {
            stream,
            addr,
            outlet: Outlet::new(queue_limit),
            conn: Mutex::new(conn),
            session,
            metrics,
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

        if self.kick_locked(conn) {
            log::info!(
                "{}: member {} dropped: queue over its bound (close 1008)",
                self.addr,
                self.session
            );
        }
    }

    /// Drops the member for a queue over its bound: counts it as a slow
    /// consumer, empties its queue and queues close 1008 in its place.
    ///
    /// Returns `false`, and does nothing, when the connection was already
    /// closing: a reader and a room may both find the queue full at once,
    /// and the drop must be counted once.
    pub fn kick(&self) -> bool {
        let mut conn = self.conn();
        self.kick_locked(&mut conn)
    }

    /// Does [`kick`](Peer::kick) with the connection already locked.
    fn kick_locked(&self, conn: &mut Connection) -> bool {
        if !conn.can_send_data() {
            return false;
        }

        self.metrics.slow_consumer_disconnected();
        self.outlet.discard();
        conn.close(
            Instant::now(),
            CloseCode::POLICY_VIOLATION,
            "queue over its bound",
        );
        let mut close = Vec::new();
        conn.poll_transmit(&mut close);
        let _ = self.outlet.push_control(close, true);
        true
    }
}

#[cfg(test)]
pub mod tests {
    use std::net::{TcpListener, TcpStream};

    use natter_conformance::testclient::masked_frame;
    use natter_core::config::ServerConfig;
    use natter_core::connection::{ConnectionConfig, Role};

    use super::*;

    /// Returns a peer on a loopback socket pair (the far end is returned to
    /// keep it open) whose queue holds `limit` bytes and whose drops count
    /// in `metrics`; its upgrade is not queued yet.
    pub fn loopback_peer(
        session: &str,
        limit: usize,
        metrics: Arc<Metrics>,
    ) -> (Arc<Peer>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let far = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (near, addr) = listener.accept().unwrap();
        let config = ConnectionConfig::chat(&ServerConfig::default());
        let conn = Connection::new(Role::Server, config, Instant::now());
        let session = SessionId::parse(session).unwrap();
        let peer = Peer::new(Arc::new(near), addr, conn, session, limit, metrics);
        (Arc::new(peer), far)
    }

    /// Pongs that pass the bound close the member with 1008, counted once
    /// however many pings follow.
    #[test]
    fn unread_pongs_past_the_bound_close_with_1008_and_count_once() {
        let metrics = Arc::new(Metrics::new());
        let (peer, _far) = loopback_peer("session-a", 4096, Arc::clone(&metrics));
        peer.outlet.upgrade(Vec::new()).unwrap();
        let pings = masked_frame(0x9, true, &[b'p'; 125]).repeat(10);

        for _ in 0..20 {
            let mut conn = peer.conn();
            conn.handle_input(Instant::now(), &pings);
            peer.flush(&mut conn);
        }

        assert_eq!(metrics.snapshot().slow_consumers, 1);
        let queued = peer.outlet.snapshot();
        assert_eq!(queued.len(), 1, "only the close frame is left");
        assert_eq!(queued[0][0], 0x88);
        assert_eq!(&queued[0][2..4], &1008u16.to_be_bytes());
    }

    /// A member found full by two threads at once is dropped and counted
    /// by the first only.
    #[test]
    fn a_second_kick_does_nothing() {
        let metrics = Arc::new(Metrics::new());
        let (peer, _far) = loopback_peer("session-a", 4096, Arc::clone(&metrics));
        peer.outlet.upgrade(Vec::new()).unwrap();

        assert!(peer.kick());
        assert!(!peer.kick());
        assert_eq!(metrics.snapshot().slow_consumers, 1);
        assert_eq!(peer.outlet.snapshot().len(), 1);
    }
}
