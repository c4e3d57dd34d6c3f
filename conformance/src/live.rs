//! Replays WebSocket vectors against a live server's `/echo` over TCP.
//!
//! Every wait has a deadline: a case never hangs, it fails saying what it
//! was waiting for.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use crate::vector::WsCase;
use crate::verdict::Observation;
use crate::wire::{client_frame, read_response_head, FrameReader, Seen};

/// The upgrade request for `/echo`, with the key of RFC 6455 §1.3.
const UPGRADE: &str = "GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
                       Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                       Sec-WebSocket-Version: 13\r\n\r\n";

/// Time the server gets to close TCP after the closing handshake.
const TCP_CLOSE_WAIT: Duration = Duration::from_secs(2);

/// What the reading thread reports.
enum FromServer {
    Events(Vec<Seen>),
    Eof,
}

/// Runs `case` against the server at `addr`; `timeout` bounds each wait
/// (big cases get a second more per MiB).
pub fn run_case(addr: SocketAddr, case: &WsCase, timeout: Duration) -> Observation {
    let deliveries = case.deliveries();
    let mut seen = Observation {
        deliveries: deliveries.len(),
        ..Observation::default()
    };
    let bytes: usize = deliveries.iter().map(Vec::len).sum();
    let timeout = timeout + Duration::from_secs((bytes >> 20) as u64);

    let (mut stream, events) = match open(addr, timeout) {
        Ok(open) => open,
        Err(error) => {
            seen.problems.push(format!("could not open /echo: {error}"));
            return seen;
        }
    };
    let mut session = Session {
        events,
        seen,
        harness_closed: false,
        eof: false,
        delivered: 0,
    };
    session.send_deliveries(&mut stream, case, &deliveries, timeout);
    session.finish(&mut stream, case, timeout);
    session.seen
}

/// Connects, upgrades, and starts the thread that reads server frames.
fn open(addr: SocketAddr, timeout: Duration) -> std::io::Result<(TcpStream, Receiver<FromServer>)> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(UPGRADE.as_bytes())?;

    let head = read_response_head(&mut stream)?;
    if !head.starts_with(b"HTTP/1.1 101") {
        let line = String::from_utf8_lossy(&head);
        let line = line.lines().next().unwrap_or("").to_owned();
        return Err(std::io::Error::other(format!("answered `{line}`")));
    }

    let mut reading = stream.try_clone()?;
    reading.set_read_timeout(None)?;
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = FrameReader::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match reading.read(&mut buffer) {
                Ok(0) | Err(_) => {
                    let _ = tx.send(FromServer::Eof);
                    return;
                }
                Ok(n) => {
                    let mut out = Vec::new();
                    reader.push(&buffer[..n], &mut out);
                    if !out.is_empty() && tx.send(FromServer::Events(out)).is_err() {
                        return;
                    }
                }
            }
        }
    });
    Ok((stream, rx))
}

/// The harness's side of one live connection.
struct Session {
    events: Receiver<FromServer>,
    seen: Observation,
    harness_closed: bool,
    eof: bool,
    delivered: usize,
}

impl Session {
    /// Takes what the reader has, waiting up to `wait` for the first batch.
    fn drain(&mut self, wait: Duration) {
        let mut wait = wait;
        loop {
            let message = if wait.is_zero() {
                self.events
                    .try_recv()
                    .map_err(|_| RecvTimeoutError::Timeout)
            } else {
                self.events.recv_timeout(wait)
            };
            match message {
                Ok(FromServer::Events(events)) => {
                    for event in events {
                        self.seen.record(event, self.delivered, self.harness_closed);
                    }
                }
                Ok(FromServer::Eof) | Err(RecvTimeoutError::Disconnected) => {
                    self.eof = true;
                    return;
                }
                Err(RecvTimeoutError::Timeout) => return,
            }
            wait = Duration::ZERO;
        }
    }

    /// Waits until `done` holds, the server hangs up, or `timeout` passes.
    fn wait_for(&mut self, timeout: Duration, done: impl Fn(&Observation) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while !done(&self.seen) && !self.eof {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            self.drain(left.min(Duration::from_millis(50)));
        }
        done(&self.seen)
    }

    fn send_deliveries(
        &mut self,
        stream: &mut TcpStream,
        case: &WsCase,
        deliveries: &[Vec<u8>],
        timeout: Duration,
    ) {
        // Few deliveries get a short gap so each arrives as its own read.
        let gap = (deliveries.len() <= 20).then_some(Duration::from_millis(5));

        for (index, delivery) in deliveries.iter().enumerate() {
            self.drain(Duration::ZERO);
            if self.seen.close.is_some() || self.eof {
                return;
            }
            if stream.write_all(delivery).is_err() {
                // The server may have failed the connection already.
                self.wait_for(timeout, |seen| seen.close.is_some());
                return;
            }
            self.delivered = index + 1;

            if case.close.by_delivery == Some(index + 1) {
                if !self.wait_for(timeout, |seen| seen.close.is_some()) {
                    let waited = timeout.as_secs_f32();
                    self.seen.problems.push(format!(
                        "no close within {waited:.0} s of delivery {}",
                        index + 1
                    ));
                }
            } else if let Some(gap) = gap {
                thread::sleep(gap);
            }
        }
    }

    fn finish(&mut self, stream: &mut TcpStream, case: &WsCase, timeout: Duration) {
        let done = |seen: &Observation| {
            seen.close.is_some()
                || (case.then_close.is_some() && seen.has_expected_events(case))
                || !seen.is_on_track(case)
        };
        if !self.wait_for(timeout, done) && self.seen.close.is_none() {
            let secs = timeout.as_secs_f32();
            self.seen
                .problems
                .push(format!("timed out after {secs:.0} s waiting for events"));
        }

        if let Some(code) = case.then_close {
            if self.seen.close.is_none() && self.seen.has_expected_events(case) {
                self.harness_closed = true;
                let _ = stream.write_all(&client_frame(0x8, &code.to_be_bytes()));
                self.wait_for(timeout, |seen| seen.close.is_some());
            }
        }

        match self.seen.close {
            Some((code, _)) if !self.harness_closed => {
                // Answer the server's close, as a well-behaved client does.
                let payload = code.map(u16::to_be_bytes).unwrap_or_default();
                let payload = if code.is_some() {
                    &payload[..]
                } else {
                    &[][..]
                };
                let _ = stream.write_all(&client_frame(0x8, payload));
            }
            _ => {}
        }

        if self.seen.close.is_some() && !self.wait_for(TCP_CLOSE_WAIT, |_| false) && !self.eof {
            self.seen
                .problems
                .push("the server did not close TCP after the closing handshake".to_owned());
        }
    }
}
