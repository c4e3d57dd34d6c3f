//! The read buffer every connection on a thread shares.
//!
//! A connection reads only once its socket is readable, and hands the bytes
//! to its core `Connection` before it waits again; the core copies what it
//! must keep. So one buffer per executor thread serves every connection,
//! and an idle member holds no read buffer at all.

use std::cell::RefCell;
use std::io::{self, Read};
use std::net::TcpStream;
use std::task::{Context, Poll};
use std::time::Instant;

use natter_core::connection::Connection;
use natter_core::metrics::Metrics;
use smol::Async;

/// Size of each thread's read buffer: large enough for an echo of big
/// messages to move in few reads.
const SCRATCH_BYTES: usize = 64 * 1024;

thread_local! {
    static SCRATCH: RefCell<Box<[u8]>> =
        RefCell::new(vec![0u8; SCRATCH_BYTES].into_boxed_slice());
}

/// Makes one read from `stream` into this thread's buffer and hands `f`
/// the bytes read (empty at the end of the stream) or the error; a read
/// cut short by a signal is retried.
pub fn read_with<R>(stream: &TcpStream, f: impl FnOnce(io::Result<&[u8]>) -> R) -> R {
    SCRATCH.with(|scratch| {
        // `f` gets a shared slice and cannot reach this thread-local again
        // through a connection, so the buffer is never borrowed twice; a
        // nested use would still be served, from a fresh buffer.
        let mut guard = scratch.try_borrow_mut();
        let mut fallback;
        let buf: &mut [u8] = match guard.as_deref_mut() {
            Ok(buf) => buf,
            Err(_) => {
                fallback = vec![0u8; SCRATCH_BYTES];
                &mut fallback
            }
        };
        loop {
            match (&*stream).read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return f(Err(e)),
                Ok(n) => return f(Ok(buf.get(..n).unwrap_or_default())),
            }
        }
    })
}

/// Reads once from `stream` if it is readable and hands the bytes (or the
/// end of the stream) to `conn`; returns whether the socket was readable,
/// otherwise `cx` is woken when it becomes so.
pub fn poll_feed(
    stream: &Async<TcpStream>,
    cx: &mut Context<'_>,
    conn: &mut Connection,
    metrics: &Metrics,
) -> bool {
    match stream.poll_readable(cx) {
        Poll::Pending => false,
        Poll::Ready(Err(_)) => {
            conn.handle_eof();
            true
        }
        Poll::Ready(Ok(())) => {
            read_with(stream.get_ref(), |read| match read {
                Ok([]) => conn.handle_eof(),
                Ok(bytes) => {
                    metrics.bytes_received(bytes.len());
                    conn.handle_input(Instant::now(), bytes);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => conn.handle_eof(),
            });
            true
        }
    }
}
