//! The listener: the accept loop, the connection limit, one thread per
//! connection, and the shutdown that closes every member with 1001.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use natter_core::config::ServerConfig;
use natter_core::handshake::Refusal;
use natter_core::metrics::Metrics;

use crate::rooms::Rooms;
use crate::session;

/// Stack of every connection thread (reader and writer): the deepest call
/// chain is a handshake parse or a room call, a few KiB deep; buffers live
/// on the heap.
pub const THREAD_STACK_BYTES: usize = 96 * 1024;

/// Pause after an accept error such as running out of file descriptors, so
/// the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// State every connection thread shares with the listener.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    metrics: Arc<Metrics>,
    rooms: Rooms,
    /// Connections held now, handshakes included; the limit applies to it.
    open: Mutex<usize>,
    /// Signalled each time `open` falls, for the shutdown wait.
    drained: Condvar,
    stopping: AtomicBool,
    next_id: AtomicU64,
    /// Sockets of connections that are not room members (handshakes,
    /// `/echo`), so shutdown can wake their threads.
    loose: Mutex<HashMap<u64, Arc<TcpStream>>>,
}

/// A connection's place under the limit, given back when it drops.
#[derive(Debug)]
pub struct Slot {
    server: Arc<Server>,
    id: u64,
}

impl Slot {
    /// Returns the number that names this connection in logs.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.server.untrack(self.id);
        self.server.metrics.connection_closed();
        let mut open = lock(&self.server.open);
        *open = open.saturating_sub(1);
        self.server.drained.notify_all();
    }
}

/// Locks `mutex`, taking the value even if a thread panicked holding it:
/// every value guarded in this crate stays consistent between statements.
pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Server {
    /// Creates the shared state for a server with `config`.
    pub fn new(config: ServerConfig) -> Server {
        let metrics = Arc::new(Metrics::new());
        Server {
            rooms: Rooms::new(config.rate_limit, Arc::clone(&metrics)),
            config,
            metrics,
            open: Mutex::new(0),
            drained: Condvar::new(),
            stopping: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            loose: Mutex::new(HashMap::new()),
        }
    }

    /// Returns the limits and timeouts in force.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Returns the server's counters.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Returns the room registry.
    pub fn rooms(&self) -> &Rooms {
        &self.rooms
    }

    /// Notes the socket of a connection that is not a room member, so that
    /// shutdown can end its blocking read; one noted after shutdown began
    /// has it ended at once.
    pub fn track(&self, id: u64, stream: &Arc<TcpStream>) {
        let mut loose = lock(&self.loose);
        loose.insert(id, Arc::clone(stream));
        if self.is_stopping() {
            let _ = stream.shutdown(Shutdown::Read);
        }
    }

    /// Forgets the socket noted by [`track`](Server::track).
    pub fn untrack(&self, id: u64) {
        lock(&self.loose).remove(&id);
    }

    /// Says whether shutdown has begun.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// Accepts connections until shutdown begins, giving each one a thread.
    pub fn run_accept_loop(self: &Arc<Self>, listener: &TcpListener) {
        for incoming in listener.incoming() {
            if self.is_stopping() {
                break;
            }

            match incoming {
                Ok(stream) => self.admit(stream),
                Err(e) if is_transient(&e) => log::debug!("accept: {e}"),
                Err(e) if is_out_of_resources(&e) => {
                    log::warn!("accept: {e}; pausing before the next one");
                    thread::sleep(ACCEPT_BACKOFF);
                }
                Err(e) => {
                    log::error!("accept failed: {e}");
                    thread::sleep(ACCEPT_BACKOFF);
                }
            }
        }
        log::debug!("accept loop stopped");
    }

    /// Takes a slot for `stream` and starts its thread, or refuses it with
    /// 503 when the limit is reached or no thread can be had.
    fn admit(self: &Arc<Self>, stream: TcpStream) {
        let peer = stream
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let Some(slot) = self.take_slot() else {
            refuse_now(&stream, peer, &Refusal::server_busy(), &self.metrics);
            return;
        };

        let server = Arc::clone(self);
        let stream = Arc::new(stream);
        let spawned = thread::Builder::new()
            .name(format!("conn-{}", slot.id()))
            .stack_size(THREAD_STACK_BYTES)
            .spawn({
                let stream = Arc::clone(&stream);
                move || session::run(server, slot, stream, peer)
            });
        if let Err(e) = spawned {
            log::warn!("cannot start a connection thread: {e}");
            refuse_now(&stream, peer, &Refusal::server_busy(), &self.metrics);
        }
    }

    /// Counts a new connection if the limit allows it.
    fn take_slot(self: &Arc<Self>) -> Option<Slot> {
        let mut open = lock(&self.open);
        if *open >= self.config.max_connections {
            return None;
        }

        *open += 1;
        self.metrics.connection_opened();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        Some(Slot {
            server: Arc::clone(self),
            id,
        })
    }

    /// Stops accepting, sends 1001 to every member, and waits up to the
    /// shutdown grace for the connections to end.
    pub fn shut_down(&self, listen_addr: SocketAddr) {
        self.stopping.store(true, Ordering::SeqCst);
        wake_accept_loop(listen_addr);

        let closed = self.rooms.close_all();
        let loose: Vec<Arc<TcpStream>> = lock(&self.loose).values().cloned().collect();
        for stream in &loose {
            let _ = stream.shutdown(Shutdown::Read);
        }
        log::info!(
            "closing {closed} members with 1001 and ending {} other connections",
            loose.len()
        );

        let deadline = Instant::now() + self.config.shutdown_grace;
        let mut open = lock(&self.open);
        while *open > 0 {
            let now = Instant::now();
            if now >= deadline {
                log::info!("{} connections still open after the grace period", *open);
                return;
            }
            open = match self.drained.wait_timeout(open, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        log::info!("all connections closed");
    }
}

/// Writes a refusal to a connection that has no thread of its own: the
/// response is small and the socket's send buffer empty, so a non-blocking
/// write takes it whole or the peer loses nothing it could use.
///
/// What the peer already sent is read and dropped first, as far as it has
/// arrived, so that closing over unread input is less likely to reset the
/// connection before the peer reads the answer.
fn refuse_now(mut stream: &TcpStream, peer: SocketAddr, refusal: &Refusal, metrics: &Metrics) {
    log::debug!("{peer}: refused: {refusal}");
    metrics.refused(refusal.status());
    let _ = stream.set_nonblocking(true);
    if let Ok(count) = stream.write(&refusal.to_bytes()) {
        metrics.bytes_sent(count);
    }

    let mut sink = [0; 2048];
    for _ in 0..4 {
        match stream.read(&mut sink) {
            Ok(n) if n > 0 => metrics.bytes_received(n),
            _ => break,
        }
    }
    let _ = stream.shutdown(Shutdown::Write);
}

/// Says whether an accept error concerns only the one connection.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

/// Says whether an accept error is a local limit (descriptors, memory)
/// that passes once connections end.
fn is_out_of_resources(e: &io::Error) -> bool {
    // EMFILE, ENFILE, ENOBUFS and ENOMEM on Linux.
    matches!(e.raw_os_error(), Some(24 | 23 | 105 | 12))
}

/// Connects to our own listener so a blocked `accept` returns and sees the
/// stop flag.
fn wake_accept_loop(listen_addr: SocketAddr) {
    let mut target = listen_addr;
    if target.ip().is_unspecified() {
        target.set_ip(match target.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    if let Err(e) = TcpStream::connect_timeout(&target, Duration::from_secs(1)) {
        log::debug!("could not wake the accept loop: {e}");
    }
}
