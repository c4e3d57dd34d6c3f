//! The listener, the state every task shares, and the orderly shutdown.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_channel::{Receiver, Sender};
use async_net::TcpListener;
use futures_lite::FutureExt;
use natter_core::config::ServerConfig;
use natter_core::metrics::{Metrics, OpenConnection};
use smol::{Executor, Timer};

use crate::rooms::Rooms;
use crate::session;

/// Pause after a failed accept (such as running out of file descriptors),
/// so the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Most connections over the limit answered gently at once (each may keep
/// its socket for about a second); past it, a flood of them is answered
/// with one write and closed at once, so it cannot hold many descriptors.
const MAX_GENTLE_REFUSALS: usize = 128;

/// What every connection and room task shares.
pub struct Server {
    /// The limits and timeouts in force.
    pub config: ServerConfig,
    /// The counters behind `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The registry of active rooms.
    pub rooms: Rooms,
    /// The executor that runs every task.
    pub executor: Arc<Executor<'static>>,
    /// Closed when the server shuts down; every connection watches it.
    shutdown: Receiver<()>,
    /// A clone lives in every connection, so the server knows when the last
    /// one has ended (its receiver sees every sender dropped).
    alive: Sender<()>,
    /// Connections held now, handshakes included.
    connections: AtomicUsize,
    /// Connections over the limit still being answered with 503.
    refusing: AtomicUsize,
}

impl Server {
    /// Returns a receiver that errors once the server is shutting down.
    pub fn shutdown_signal(&self) -> Receiver<()> {
        self.shutdown.clone()
    }

    /// Counts a new connection and returns its guard, or `None` when the
    /// connection limit is reached (nothing is counted then).
    pub fn open_connection(self: &Arc<Self>) -> Option<ConnectionGuard> {
        let limit = self.config.max_connections;
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                (held < limit).then_some(held + 1)
            })
            .ok()?;
        Some(ConnectionGuard {
            server: Arc::clone(self),
            _open: self.metrics.track_connection(),
            _alive: self.alive.clone(),
        })
    }
}

/// Keeps one connection counted, by the limit and by the metrics, until it
/// is dropped.
pub struct ConnectionGuard {
    server: Arc<Server>,
    _open: OpenConnection,
    _alive: Sender<()>,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.server.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Returns the wall clock in milliseconds since the Unix epoch, for `ts`.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Listens on `listen` and serves until `stop` fires, then closes every
/// connection with 1001 and waits up to the shutdown grace for them.
///
/// # Errors
///
/// Fails when the address cannot be bound.
pub async fn serve(
    executor: Arc<Executor<'static>>,
    listen: SocketAddr,
    config: ServerConfig,
    stop: Receiver<()>,
) -> io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    log::info!("listening on {addr}");
    log::info!("limits: {config}");

    let (shutdown_tx, shutdown_rx) = async_channel::bounded(1);
    let (alive_tx, alive_rx) = async_channel::bounded::<()>(1);
    let grace = config.shutdown_grace;
    let server = Arc::new(Server {
        config,
        metrics: Arc::new(Metrics::new()),
        rooms: Rooms::new(),
        executor,
        shutdown: shutdown_rx,
        alive: alive_tx,
        connections: AtomicUsize::new(0),
        refusing: AtomicUsize::new(0),
    });

    accept_until_stopped(&server, &listener, &stop).await;
    drop(listener);

    // Tell every connection, then wait for the last one to end.
    let open = server.connections.load(Ordering::Acquire);
    let noun = if open == 1 {
        "connection"
    } else {
        "connections"
    };
    log::info!("closing {open} {noun} (grace {grace:?})");
    shutdown_tx.close();
    drop(server);
    let all_ended = async {
        let _ = alive_rx.recv().await;
        true
    };
    let expired = async {
        Timer::after(grace).await;
        false
    };
    if all_ended.or(expired).await {
        log::info!("every connection ended; exiting");
    } else {
        log::warn!("shutdown grace of {grace:?} expired with connections still open");
    }
    Ok(())
}

/// Accepts connections and spawns a session for each until `stop` fires.
///
/// The connection limit is applied here, in accept order and before a byte
/// is read: a connection over it is answered 503 at once, whether or not it
/// ever sends a request, so silent connections cannot pile up past it.
async fn accept_until_stopped(server: &Arc<Server>, listener: &TcpListener, stop: &Receiver<()>) {
    loop {
        let accepted = async { Some(listener.accept().await) };
        let stopped = async {
            let _ = stop.recv().await;
            None
        };
        match accepted.or(stopped).await {
            None => return,
            Some(Ok((stream, peer))) => match server.open_connection() {
                Some(guard) => {
                    let task = session::run(Arc::clone(server), stream, peer, guard);
                    server.executor.spawn(task).detach();
                }
                None => refuse_over_limit(server, stream, peer),
            },
            Some(Err(e)) => {
                log::error!("accept failed: {e}");
                Timer::after(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Answers a connection over the connection limit with 503: gently, in a
/// task that lets the answer drain, unless [`MAX_GENTLE_REFUSALS`] are
/// already doing so; then at once.
fn refuse_over_limit(server: &Arc<Server>, stream: async_net::TcpStream, peer: SocketAddr) {
    let taken = server
        .refusing
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
            (held < MAX_GENTLE_REFUSALS).then_some(held + 1)
        });
    if taken.is_err() {
        session::refuse_busy_now(server, stream, peer);
        return;
    }

    let refusing = Arc::clone(server);
    let task = async move {
        session::refuse_busy(Arc::clone(&refusing), stream, peer).await;
        refusing.refusing.fetch_sub(1, Ordering::AcqRel);
    };
    server.executor.spawn(task).detach();
}
