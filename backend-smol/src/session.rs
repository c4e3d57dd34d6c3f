//! One accepted connection: the upgrade handshake, then routing to a chat
//! member, the echo endpoint, or a plain HTTP answer.

use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_net::TcpStream;
use futures_lite::{AsyncReadExt, AsyncWriteExt, FutureExt};
use natter_core::connection::CloseCause;
use natter_core::handshake::{
    health_response, ok_response, Progress, Refusal, Request, ServerHandshake, METRICS_CONTENT_TYPE,
};
use smol::{Async, Timer};

use crate::server::{ConnectionGuard, Server};
use crate::{chat, echo};

/// Size of the buffer the request head is read into; it lives only until the
/// handshake ends.
const READ_CHUNK: usize = 4096;

/// Longest a peer gets to stop sending once our last bytes (a refusal, a
/// close frame) are out, so that closing the socket does not reset them
/// away.
const LINGER: Duration = Duration::from_secs(1);

/// Most bytes read and discarded while lingering: enough for the rest of
/// a message that was refused for its size while it was being sent.
const LINGER_BYTES: usize = 1024 * 1024;

/// Serves one accepted connection, counted under the limit by `guard`, to
/// its end.
pub async fn run(
    server: Arc<Server>,
    mut stream: TcpStream,
    peer: SocketAddr,
    guard: ConnectionGuard,
) {
    let _ = stream.set_nodelay(true);

    // A heap buffer keeps the task itself small while it waits for the head.
    let mut buf = vec![0u8; READ_CHUNK];
    let Some((request, leftover)) = read_request(&server, &mut stream, peer, &mut buf).await else {
        return;
    };

    match request {
        Request::Join { params, upgrade } => {
            let input = chat::Input { leftover, guard };
            chat::run(&server, stream, peer, params, upgrade, input).await;
        }
        Request::Echo { upgrade } => {
            echo::run(&server, stream, peer, upgrade, leftover).await;
        }
        Request::Health => answer(&server, stream, &health_response()).await,
        Request::Metrics => {
            let body = server.metrics.render();
            let response = ok_response(METRICS_CONTENT_TYPE, body.as_bytes());
            answer(&server, stream, &response).await;
        }
        Request::Refuse(refusal) => refuse(&server, stream, peer, &refusal).await,
    }
}

/// How reading a request head ended.
enum HeadOutcome {
    /// The core decided what the head asks for.
    Done(Request, Vec<u8>),
    /// The peer closed the stream or it failed.
    Left,
    /// The handshake deadline passed.
    Expired,
    /// The server is shutting down.
    Stopped,
}

/// Reads the request head until the core decides what it asks for; `None`
/// when the peer left, failed or ran out of time, or the server stops.
async fn read_request(
    server: &Server,
    stream: &mut TcpStream,
    peer: SocketAddr,
    buf: &mut [u8],
) -> Option<(Request, Vec<u8>)> {
    let mut handshake = ServerHandshake::new(&server.config, Instant::now());
    let deadline = Timer::at(handshake.poll_timeout());
    let shutdown = server.shutdown_signal();

    let expired = async {
        deadline.await;
        HeadOutcome::Expired
    };
    let stopped = async {
        let _ = shutdown.recv().await;
        HeadOutcome::Stopped
    };
    let read = async {
        loop {
            let n = match stream.read(buf).await {
                Ok(0) | Err(_) => return HeadOutcome::Left,
                Ok(n) => n,
            };
            server.metrics.bytes_received(n);
            let input = buf.get(..n).unwrap_or_default();
            if let Progress::Done { request, leftover } = handshake.handle_input(input) {
                return HeadOutcome::Done(request, leftover);
            }
        }
    };

    match stopped.or(expired).or(read).await {
        HeadOutcome::Done(request, leftover) => return Some((request, leftover)),
        HeadOutcome::Left => log::debug!("{peer} left during the handshake"),
        HeadOutcome::Expired => log::debug!("{peer} did not finish its handshake in time"),
        HeadOutcome::Stopped => log::debug!("{peer} dropped mid-handshake by the shutdown"),
    }
    None
}

/// Answers a connection over the connection limit with 503 at once, without
/// waiting for its request, then closes it; the whole takes at most the
/// close timeout for the write and [`LINGER`] after it.
pub async fn refuse_busy(server: Arc<Server>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    refuse(&server, stream, peer, &Refusal::server_busy()).await;
}

/// Answers a connection over the connection limit with 503 in one
/// non-blocking write, reads what it already sent, and closes it, all
/// without waiting: for floods, when the gentle answers are too many.
pub fn refuse_busy_now(server: &Server, stream: TcpStream, peer: SocketAddr) {
    let refusal = Refusal::server_busy();
    log::debug!("refused {peer} at once: {refusal}");
    server.metrics.refused(refusal.status());
    let stream: Arc<smol::Async<std::net::TcpStream>> = stream.into();
    let mut socket = stream.get_ref();
    if let Ok(count) = socket.write(&refusal.to_bytes()) {
        server.metrics.bytes_sent(count);
    }

    // Reading what is there keeps the close from becoming a reset that
    // would discard the answer, in the common case of a request already
    // received.
    let mut sink = [0u8; 2048];
    for _ in 0..4 {
        match socket.read(&mut sink) {
            Ok(n) if n > 0 => server.metrics.bytes_received(n),
            _ => break,
        }
    }
    let _ = socket.shutdown(Shutdown::Write);
}

/// Sends a refusal as the core renders it, then closes.
pub async fn refuse(server: &Server, stream: TcpStream, peer: SocketAddr, refusal: &Refusal) {
    log::debug!("refused {peer}: {refusal}");
    server.metrics.refused(refusal.status());
    answer(server, stream, &refusal.to_bytes()).await;
}

/// Writes a complete HTTP response, then closes the connection gently:
/// our side first, then whatever the peer still sends is read and dropped
/// for a moment, so unread input does not turn the close into a reset that
/// could destroy the response on its way.
///
/// A peer that does not take the response within the close timeout is
/// dropped, so an answer never holds a connection for long.
async fn answer(server: &Server, mut stream: TcpStream, response: &[u8]) {
    let written = async { write_all(server, &mut stream, response).await.is_ok() };
    let expired = async {
        Timer::after(server.config.close_timeout).await;
        false
    };
    if !written.or(expired).await {
        return;
    }
    drain_before_close(&stream.into()).await;
}

/// Ends our side of a connection whose last bytes are written: shuts our
/// sending half, then reads and drops whatever the peer still sends until
/// it closes, [`LINGER`] passes or [`LINGER_BYTES`] are read. Closing with
/// unread input would send a reset, which can destroy our last bytes (a
/// response, a close frame) before the peer reads them.
pub async fn drain_before_close(stream: &Arc<Async<std::net::TcpStream>>) {
    let _ = stream.get_ref().shutdown(Shutdown::Write);

    let drain = async {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut total = 0;
        while total < LINGER_BYTES {
            match (&**stream).read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    };
    let linger = async {
        Timer::after(LINGER).await;
    };
    drain.or(linger).await;
}

/// Writes all of `bytes` and counts them.
///
/// # Errors
///
/// Fails when the socket write fails.
pub async fn write_all(server: &Server, stream: &mut TcpStream, bytes: &[u8]) -> io::Result<()> {
    stream.write_all(bytes).await?;
    server.metrics.bytes_sent(bytes.len());
    stream.flush().await
}

/// Tells whether the peer still reads after the connection finished: it
/// answered or started the closing handshake, or broke the protocol and
/// should learn the code. Otherwise nobody reads the last frames.
pub fn peer_reads(cause: &CloseCause) -> bool {
    match cause {
        CloseCause::ClosedByPeer | CloseCause::Violation(_) => true,
        CloseCause::ClosedByUs { acknowledged } => *acknowledged,
        CloseCause::TimedOut | CloseCause::ConnectionLost => false,
    }
}
