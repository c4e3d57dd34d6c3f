//! The `/echo` endpoint: every message comes back whole, with backpressure.
//!
//! One loop per connection reads, hands the bytes to the core, queues every
//! message back, and writes all of it before reading again, so a peer that
//! does not read its answers stops being read.

use std::future::poll_fn;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use async_channel::Receiver;
use futures_lite::Stream;
use natter_core::close::CloseCode;
use natter_core::connection::{CloseInfo, Connection, ConnectionConfig, Event, Message, Role};
use natter_core::handshake::Upgrade;
use smol::Async;

use crate::deadline::Deadline;
use crate::scratch;
use crate::server::Server;
use crate::session;

/// Capacity above which the write buffer is given back after a large
/// message, so one big echo does not pin its memory for the connection's
/// life.
const KEEP_OUT_CAPACITY: usize = 1024 * 1024;

/// Serves an `/echo` upgrade until the connection ends.
pub async fn run(
    server: &Arc<Server>,
    mut stream: async_net::TcpStream,
    peer: SocketAddr,
    upgrade: Upgrade,
    leftover: Vec<u8>,
) {
    let response = upgrade.response_bytes();
    if session::write_all(server, &mut stream, &response)
        .await
        .is_err()
    {
        return;
    }

    let now = Instant::now();
    let config = ConnectionConfig::echo(&server.config);
    let mut conn = Connection::new(Role::Server, config, now);
    if !leftover.is_empty() {
        conn.handle_input(now, &leftover);
    }
    let mut echo = Echo {
        server,
        stream: stream.into(),
        conn,
        out: Vec::new(),
        written: 0,
        deadline: Deadline::new(),
        watch_shutdown: true,
        closed: None,
    };
    let mut shutdown = pin!(server.shutdown_signal());
    let info = poll_fn(|cx| echo.poll(cx, shutdown.as_mut())).await;
    if session::peer_reads(&info.cause) {
        session::drain_before_close(&echo.stream).await;
    }
    log::debug!(
        "echo peer {peer} left: close {:?} {:?} ({:?})",
        info.code,
        info.reason,
        info.cause
    );
}

/// One echo connection's state between wakeups.
struct Echo<'a> {
    server: &'a Server,
    stream: Arc<Async<TcpStream>>,
    conn: Connection,
    /// Bytes to write, of which the first `written` are written.
    out: Vec<u8>,
    written: usize,
    deadline: Deadline,
    watch_shutdown: bool,
    /// How the connection finished, returned once `out` is written.
    closed: Option<CloseInfo>,
}

impl Echo<'_> {
    /// Runs the loop until the connection finishes; returns how it did.
    fn poll(
        &mut self,
        cx: &mut Context<'_>,
        mut shutdown: Pin<&mut Receiver<()>>,
    ) -> Poll<CloseInfo> {
        loop {
            let mut progressed = false;
            if self.watch_shutdown && shutdown.as_mut().poll_next(cx).is_ready() {
                self.watch_shutdown = false;
                self.conn.close(
                    Instant::now(),
                    CloseCode::GOING_AWAY,
                    "server shutting down",
                );
            }

            // Write everything before reading again: this is the
            // backpressure.
            self.echo_events();
            match self.poll_write(cx) {
                Poll::Pending => {}
                Poll::Ready(()) => {
                    if let Some(info) = self.closed.take() {
                        return Poll::Ready(info);
                    }
                    progressed |= self.poll_read(cx);
                }
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

    /// Writes what the connection transmits; ready once all of it is
    /// written (or the write failed and the connection is lost).
    fn poll_write(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if self.written == self.out.len() {
                self.out.clear();
                self.written = 0;
                if self.out.capacity() > KEEP_OUT_CAPACITY {
                    self.out = Vec::new();
                }
                if !self.conn.poll_transmit(&mut self.out) {
                    return Poll::Ready(());
                }
            }

            let pending = self.out.get(self.written..).unwrap_or_default();
            match self.stream.get_ref().write(pending) {
                Ok(0) => self.lose(),
                Ok(n) => {
                    self.written += n;
                    self.server.metrics.bytes_sent(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.stream.poll_writable(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.lose(),
            }
        }
    }

    /// Gives up on a connection whose writes fail: nothing more is written.
    fn lose(&mut self) {
        self.conn.handle_eof();
        self.echo_events();
        self.out.clear();
        self.written = 0;
        let mut unsent = Vec::new();
        self.conn.poll_transmit(&mut unsent);
    }

    /// Reads once if the socket is readable; returns whether it was.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> bool {
        scratch::poll_feed(&self.stream, cx, &mut self.conn, &self.server.metrics)
    }

    /// Queues every received message back and keeps the close once it
    /// comes.
    fn echo_events(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            let sent = match event {
                Event::Message(Message::Text(text)) => self.conn.send_text(&text),
                Event::Message(Message::Binary(data)) => self.conn.send_binary(&data),
                Event::Pong(_) => continue,
                Event::Closed(info) => {
                    self.closed.get_or_insert(info);
                    continue;
                }
            };
            if sent.is_ok() {
                self.server.metrics.echo_message();
            }
        }
    }
}
