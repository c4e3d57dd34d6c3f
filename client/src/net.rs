//! The network thread: connects, upgrades, runs the WebSocket session and
//! reconnects with backoff, talking to the UI through `std::sync::mpsc`.
//!
//! The UI sends [`NetCommand`]s; the thread sends back [`NetEvent`]s, ending
//! with exactly one [`NetEvent::Finished`]. Sockets are blocking with a short
//! read timeout, so one thread both reads and serves the commands. The
//! protocol itself (framing, masking, pings, the closing handshake) is
//! natter-core's [`Connection`]; this module only moves bytes and time.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use natter_core::close::CloseCode;
use natter_core::config::RateLimit;
use natter_core::connection::{
    CloseCause, CloseInfo, Connection, ConnectionConfig, Event, Message, Role,
};
use natter_core::handshake::{ClientHandshake, ClientHandshakeError, WsUrl};
use natter_core::names::{RoomCode, SessionId, UserName};
use natter_core::rate::TokenBucket;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::CertificateDer;

use crate::event::ServerEvent;
use crate::retry::{Backoff, Refusals, RetryPolicy, Verdict};
use crate::server_url::ServerUrl;

/// How long a read waits before the thread looks at its commands again.
const READ_TICK: Duration = Duration::from_millis(25);

/// How long connecting to one address may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one write may block before the connection counts as lost.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the upgrade may take once connected.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for the server's close after ours on quit.
const QUIT_GRACE: Duration = Duration::from_secs(2);

/// Most chat lines held while disconnected; older ones are dropped. While
/// connected, further lines wait in the command channel instead.
const PENDING_LIMIT: usize = 1_000;

/// Where and as whom to connect.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// The server, and the path prefix it is mounted under.
    pub url: ServerUrl,
    /// Our display name.
    pub name: UserName,
    /// The room to join.
    pub room: RoomCode,
    /// Our session id, kept across reconnects.
    pub session_id: SessionId,
    /// Failed attempts in a row (without a session between) before giving
    /// up; `None` retries for ever.
    pub max_failures: Option<u32>,
    /// The delays between attempts, and how long a 409 is retried.
    pub retry: RetryPolicy,
    /// Certificates trusted for `wss://` beside the public roots.
    pub extra_roots: Vec<CertificateDer<'static>>,
}

/// What the UI asks of the network thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetCommand {
    /// Sends a chat line (held while disconnected).
    Send(String),
    /// Sends what is held, closes with 1000 and ends the thread.
    Quit,
}

/// What the network thread tells the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// An attempt to connect has started.
    Connecting,
    /// The upgrade succeeded; the server's welcome follows.
    Connected,
    /// An event from the server.
    Server(ServerEvent),
    /// The connection ended and will be tried again after `retry_in`.
    Lost {
        /// What happened, in one line.
        reason: String,
        /// The delay before the next attempt.
        retry_in: Duration,
    },
    /// The server refused the upgrade with 409 after we had joined: it
    /// still holds our dropped connection, until its dead-peer detection
    /// notices. Attempts go on, and queued lines wait for the rejoin.
    Rejoining {
        /// The server's one-line reason, sanitised.
        reason: String,
        /// The delay before the next attempt.
        retry_in: Duration,
        /// How long until the thread stops retrying and gives up.
        gives_up_in: Duration,
    },
    /// The server refused the upgrade.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The server's one-line reason, sanitised.
        reason: String,
        /// The delay before the next attempt, or `None` when the refusal
        /// is final.
        retry_in: Option<Duration>,
    },
    /// While connected, this many chat lines are held back by the rate
    /// limit (sent in this session as it allows); sent when it changes.
    Held(usize),
    /// The thread has ended; `error` says why unless it was asked to quit.
    Finished {
        /// Why the thread gave up, if it did.
        error: Option<String>,
    },
}

/// The UI's side of a running network thread.
#[derive(Debug)]
pub struct NetHandle {
    commands: Sender<NetCommand>,
    thread: JoinHandle<()>,
}

impl NetHandle {
    /// Passes a command to the thread; ignored once the thread has ended.
    pub fn send(&self, command: NetCommand) {
        let _ = self.commands.send(command);
    }

    /// Returns a sender of commands, for another thread to use.
    pub fn commands(&self) -> Sender<NetCommand> {
        self.commands.clone()
    }

    /// Returns whether the thread has ended (normally or by a panic).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }
}

/// Starts the network thread; each [`NetEvent`] goes to `events` through
/// `wrap`, so the UI can merge it with its other inputs on one channel.
///
/// # Errors
///
/// Fails when the thread cannot be spawned.
pub fn spawn<E: Send + 'static>(
    config: NetConfig,
    events: Sender<E>,
    wrap: fn(NetEvent) -> E,
) -> io::Result<NetHandle> {
    let (commands, command_rx) = mpsc::channel();
    let worker = Worker {
        config,
        commands: command_rx,
        events,
        wrap,
        pending: Pacer::new(RateLimit::default(), Instant::now()),
        quitting: false,
        tls: None,
    };
    let thread = thread::Builder::new()
        .name("natter-net".into())
        .spawn(move || worker.run())?;
    Ok(NetHandle { commands, thread })
}

/// The bookkeeping of one session beside its connection.
#[derive(Debug, Default)]
struct Progress {
    /// Our lines sent in this session that have not come back yet.
    unechoed: usize,
    /// Whether the server's welcome arrived: the session really began.
    welcomed: bool,
    /// Until when a quit waits for our lines to come back.
    echo_deadline: Option<Instant>,
    /// Set once our close is sent: until when we wait for the server's.
    quit_deadline: Option<Instant>,
    /// The number of held lines last told to the UI.
    reported_held: usize,
}

/// How one connection attempt ended.
#[derive(Debug)]
enum Outcome {
    /// We quit and the session is closed.
    Quit,
    /// The connection failed or ended; `joined` says the server had
    /// welcomed us, so a session had begun.
    Lost { reason: String, joined: bool },
    /// The server refused the upgrade.
    Refused { status: u16, reason: String },
}

/// The state of the network thread.
struct Worker<E> {
    config: NetConfig,
    commands: Receiver<NetCommand>,
    events: Sender<E>,
    wrap: fn(NetEvent) -> E,
    /// Chat lines not yet handed to a connection, let out at the
    /// protocol's rate limit.
    pending: Pacer,
    /// Set once the UI asked to quit (or went away).
    quitting: bool,
    /// The TLS settings, made on the first `wss://` attempt.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl<E> Worker<E> {
    /// Runs attempts until quit or a final failure, then reports the end.
    fn run(mut self) {
        let error = self.attempts();
        log::debug!("network thread done: {error:?}");
        self.emit(NetEvent::Finished { error });
    }

    /// Connects again and again as the outcomes allow; returns why it
    /// stopped, `None` for a quit.
    fn attempts(&mut self) -> Option<String> {
        let policy = self.config.retry;
        let mut backoff = Backoff::new(&policy);
        let mut failures = 0;
        let mut refusals = Refusals::default();
        loop {
            self.emit(NetEvent::Connecting);
            let outcome = self.attempt();
            log::info!("connection attempt ended: {outcome:?}");

            let (delay, event) = match outcome {
                Outcome::Quit => return None,
                Outcome::Lost { reason, joined } => {
                    if joined {
                        (backoff, failures) = (Backoff::new(&policy), 0);
                        refusals.joined();
                    }
                    failures += 1;
                    if self.is_done() {
                        return None;
                    }
                    if self.config.max_failures.is_some_and(|m| failures >= m) {
                        return Some(self.unsent(reason));
                    }
                    let retry_in = backoff.next_delay();
                    (retry_in, NetEvent::Lost { reason, retry_in })
                }
                Outcome::Refused { status, reason } => {
                    let verdict = refusals.judge(status, Instant::now(), &policy);
                    let retry_in = backoff.next_delay();
                    match verdict {
                        _ if self.is_done() => return Some(self.refused_for_good(status, reason)),
                        Verdict::GiveUp => return Some(self.refused_for_good(status, reason)),
                        Verdict::RejoinTimedOut { waited } => {
                            let secs = waited.as_secs();
                            return Some(self.unsent(format!(
                                "gave up rejoining after {secs}s: the server still holds this \
                                 session's dropped connection (refused ({status}): {reason})"
                            )));
                        }
                        Verdict::Retry => {
                            let event = NetEvent::Refused {
                                status,
                                reason,
                                retry_in: Some(retry_in),
                            };
                            (retry_in, event)
                        }
                        Verdict::Rejoin { gives_up_in } => {
                            // The last attempt comes when the time is up,
                            // not a whole backoff step after.
                            let retry_in = retry_in.min(gives_up_in);
                            let event = NetEvent::Rejoining {
                                reason,
                                retry_in,
                                gives_up_in,
                            };
                            (retry_in, event)
                        }
                    }
                }
            };

            self.emit(event);
            if !self.wait(delay) {
                return None;
            }
        }
    }

    /// Tells the UI that the refusal with `status` is final; returns the
    /// error to end with, naming the lines never sent.
    fn refused_for_good(&self, status: u16, reason: String) -> String {
        let error = self.unsent(format!("refused ({status}): {reason}"));
        self.emit(NetEvent::Refused {
            status,
            reason,
            retry_in: None,
        });
        error
    }

    /// Waits `delay` while still taking commands; returns false on quit.
    fn wait(&mut self, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            match self.commands.recv_timeout(left) {
                Ok(command) => {
                    self.take(command);
                    if self.is_done() {
                        return false;
                    }
                }
                Err(RecvTimeoutError::Timeout) => return true,
                Err(RecvTimeoutError::Disconnected) => {
                    self.quitting = true;
                    if self.is_done() {
                        return false;
                    }
                    thread::sleep(left);
                    return true;
                }
            }
        }
    }

    /// Says whether the UI asked to quit and every line has gone out; until
    /// then a quit still connects to deliver the lines held.
    fn is_done(&self) -> bool {
        self.quitting && self.pending.is_empty()
    }

    /// Adds to `reason` how many lines were never sent, if any.
    fn unsent(&self, reason: String) -> String {
        match self.pending.len() {
            0 => reason,
            1 => format!("{reason}; 1 line not sent"),
            n => format!("{reason}; {n} lines not sent"),
        }
    }

    /// Files one command.
    fn take(&mut self, command: NetCommand) {
        match command {
            NetCommand::Send(line) => self.pending.push(line),
            NetCommand::Quit => self.quitting = true,
        }
    }

    /// Files the commands waiting, noting when the UI has gone. Once
    /// [`PENDING_LIMIT`] lines are held, the rest wait in the channel, so
    /// none is dropped while the rate limit lets them out.
    fn take_commands(&mut self) {
        while self.pending.len() < PENDING_LIMIT {
            match self.commands.try_recv() {
                Ok(command) => self.take(command),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => {
                    self.quitting = true;
                    return;
                }
            }
        }
    }

    /// Returns the TLS settings, making them the first time.
    fn tls_config(&mut self) -> io::Result<Arc<rustls::ClientConfig>> {
        if let Some(tls) = &self.tls {
            return Ok(Arc::clone(tls));
        }
        let tls = tls_config(&self.config.extra_roots)?;
        self.tls = Some(Arc::clone(&tls));
        Ok(tls)
    }

    /// Makes one attempt: connect, upgrade, run the session.
    fn attempt(&mut self) -> Outcome {
        let lost = |reason: String| Outcome::Lost {
            reason,
            joined: false,
        };
        let url = self.config.url.ws_url().clone();
        let tls = match url.is_secure() {
            true => match self.tls_config() {
                Ok(tls) => Some(tls),
                Err(e) => return lost(format!("cannot set up TLS: {e}")),
            },
            false => None,
        };
        let mut stream = match Stream::open(&url, tls) {
            Ok(stream) => stream,
            Err(e) => return lost(format!("cannot connect to {}: {e}", self.config.url)),
        };

        let target = self.config.url.join_target(
            self.config.name.as_str(),
            self.config.room.as_str(),
            self.config.session_id.as_str(),
        );
        let leftover = match upgrade(&mut stream, &url, &target) {
            Ok(leftover) => leftover,
            Err(UpgradeError::Refused { status, body }) => {
                let reason = one_line(&body);
                log::debug!("refused with {status}: {reason}");
                return Outcome::Refused { status, reason };
            }
            Err(UpgradeError::Failed(reason)) => return lost(reason),
        };

        self.emit(NetEvent::Connected);
        self.session(stream, &leftover)
    }

    /// Runs the WebSocket session on an upgraded stream until it ends.
    fn session(&mut self, mut stream: Stream, leftover: &[u8]) -> Outcome {
        let role = Role::Client {
            mask_seed: fastrand::u64(..),
        };
        let mut conn = Connection::new(role, ConnectionConfig::client(), Instant::now());
        conn.handle_input(Instant::now(), leftover);
        let mut progress = Progress::default();
        let mut buf = vec![0; 16 * 1024];
        let mut out = Vec::new();
        loop {
            self.feed(&mut conn, &mut progress);

            // Pass on what arrived, then write what the connection has.
            let closed = self.drain_events(&mut conn, &mut progress);
            out.clear();
            conn.poll_transmit(&mut out);
            let written = stream.write_all(&out).and_then(|()| stream.flush());
            // `Some(None)`: a clean end; `Some(Some(why))`: a loss, which
            // still counts as a quit once our close has gone out.
            let ended = match (closed, written) {
                _ if progress.quit_deadline.is_some_and(|d| Instant::now() >= d) => Some(None),
                (Some(info), _) => Some(Some(describe_close(&info))),
                (None, Err(e)) => Some(Some(format!("write failed: {e}"))),
                (None, Ok(())) => None,
            };
            if let Some(reason) = ended {
                return match (progress.quit_deadline, reason) {
                    (Some(_), _) | (None, None) => Outcome::Quit,
                    (None, Some(reason)) => Outcome::Lost {
                        reason,
                        joined: progress.welcomed,
                    },
                };
            }

            // Let deadlines fire, then read for a tick.
            let now = Instant::now();
            if conn.poll_timeout().is_some_and(|t| t <= now) {
                conn.handle_timeout(now);
                continue;
            }
            match stream.read(&mut buf) {
                Ok(0) => conn.handle_eof(),
                Ok(n) => conn.handle_input(Instant::now(), &buf[..n]),
                Err(e) if is_tick(&e) => {}
                Err(e) => {
                    log::debug!("read failed: {e}");
                    conn.handle_eof();
                }
            }
        }
    }

    /// Hands the connection the lines the UI sent, as fast as the rate
    /// limit allows (the rest stay held and go out on later turns, at most a
    /// read tick apart), and closes with 1000 on quit once our lines have
    /// come back (so a script sees them) or the grace time is over.
    fn feed(&mut self, conn: &mut Connection, progress: &mut Progress) {
        self.take_commands();
        while conn.can_send_data() {
            let Some(line) = self.pending.next(Instant::now()) else {
                break;
            };
            if conn.send_text(&line).is_ok() {
                progress.unechoed += 1;
            }
        }
        let held = self.pending.len();
        if held != progress.reported_held {
            progress.reported_held = held;
            self.emit(NetEvent::Held(held));
        }

        if !self.quitting || progress.quit_deadline.is_some() || !self.pending.is_empty() {
            return;
        }
        let now = Instant::now();
        let echo_by = *progress.echo_deadline.get_or_insert(now + QUIT_GRACE);
        if progress.unechoed == 0 || now >= echo_by {
            conn.close(now, CloseCode::NORMAL, "");
            progress.quit_deadline = Some(now + QUIT_GRACE);
        }
    }

    /// Forwards the connection's events and notes our lines coming back;
    /// returns how the connection closed, if it did.
    fn drain_events(
        &mut self,
        conn: &mut Connection,
        progress: &mut Progress,
    ) -> Option<CloseInfo> {
        let mut closed = None;
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Message(Message::Text(text)) => match ServerEvent::parse(&text) {
                    Ok(event) => {
                        if self.answers_our_line(&event) {
                            progress.unechoed = progress.unechoed.saturating_sub(1);
                        }
                        if matches!(event, ServerEvent::Welcome { .. }) {
                            progress.welcomed = true;
                        }
                        self.emit(NetEvent::Server(event));
                    }
                    Err(e) => log::debug!("ignored server message: {e}"),
                },
                Event::Message(Message::Binary(data)) => {
                    log::debug!("ignored binary message of {} bytes", data.len());
                }
                Event::Pong(_) => {}
                Event::Closed(info) => closed = Some(info),
            }
        }
        closed
    }

    /// Says whether `event` is one of our lines coming back, or the error
    /// that replaces one the rate limit dropped.
    fn answers_our_line(&self, event: &ServerEvent) -> bool {
        match event {
            ServerEvent::Message { member, .. } => {
                member.session_id == self.config.session_id.as_str()
            }
            ServerEvent::Error { .. } => true,
            _ => false,
        }
    }

    /// Sends an event to the UI, which may have gone already.
    fn emit(&self, event: NetEvent) {
        let _ = self.events.send((self.wrap)(event));
    }
}

/// Says whether a read error only means the read timeout passed.
fn is_tick(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Describes how a session ended, in one line.
fn describe_close(info: &CloseInfo) -> String {
    let code = info
        .code
        .map_or("no code".to_owned(), |c| format!("code {c}"));
    let reason = one_line(&info.reason);
    let why = match &info.cause {
        CloseCause::ClosedByPeer => "server closed the connection".to_owned(),
        CloseCause::ClosedByUs { .. } => "connection closed".to_owned(),
        CloseCause::Violation(e) => format!("protocol error: {e}"),
        CloseCause::TimedOut => "server stopped answering".to_owned(),
        CloseCause::ConnectionLost => "connection lost".to_owned(),
    };
    match reason.as_str() {
        "" => format!("{why} ({code})"),
        _ => format!("{why} ({code}: {reason})"),
    }
}

/// Returns the first non-empty line of `text`, sanitised and cut to 200
/// characters.
fn one_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    crate::sanitize::sanitize(&line.chars().take(200).collect::<String>())
}

/// Why the upgrade did not happen.
#[derive(Debug)]
enum UpgradeError {
    /// The server answered with another status than 101.
    Refused { status: u16, body: String },
    /// Anything else: I/O, a bad response, a timeout.
    Failed(String),
}

/// Writes the upgrade request for the request target `target` and reads the
/// answer; returns the bytes that followed the response head.
fn upgrade(stream: &mut Stream, url: &WsUrl, target: &str) -> Result<Vec<u8>, UpgradeError> {
    let key: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    let (mut handshake, request) = ClientHandshake::new(&url.host_header(), target, key, None);
    let failed = |e: &dyn std::fmt::Display| UpgradeError::Failed(format!("upgrade failed: {e}"));
    stream
        .write_all(&request)
        .and_then(|()| stream.flush())
        .map_err(|e| failed(&e))?;

    let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
    let mut buf = vec![0; 8 * 1024];
    loop {
        if Instant::now() >= deadline {
            return Err(failed(&"no answer in time"));
        }
        let result = match stream.read(&mut buf) {
            Ok(0) => handshake.handle_eof().map(|()| Some(Vec::new())),
            Ok(n) => handshake.handle_input(&buf[..n]),
            Err(e) if is_tick(&e) => continue,
            Err(e) => return Err(failed(&e)),
        };
        match result {
            Ok(Some(leftover)) => return Ok(leftover),
            Ok(None) => {}
            Err(ClientHandshakeError::Refused { status, body, .. }) => {
                return Err(UpgradeError::Refused { status, body })
            }
            Err(e) => return Err(failed(&e)),
        }
    }
}

/// A plain or TLS byte stream to the server.
enum Stream {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`, boxed because the TLS state is large.
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    /// Connects to the URL's host, with TLS when `tls` is given.
    fn open(url: &WsUrl, tls: Option<Arc<rustls::ClientConfig>>) -> io::Result<Stream> {
        let tcp = connect(url.host(), url.port())?;
        tcp.set_nodelay(true)?;
        tcp.set_read_timeout(Some(READ_TICK))?;
        tcp.set_write_timeout(Some(WRITE_TIMEOUT))?;
        let Some(tls) = tls else {
            return Ok(Stream::Plain(tcp));
        };

        let name = rustls::pki_types::ServerName::try_from(url.host().to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tls = rustls::ClientConnection::new(tls, name).map_err(io::Error::other)?;
        Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(tls, tcp))))
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Connects to the first address of `host` that answers.
fn connect(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "host has no address");
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Returns the TLS settings: the ring provider, the webpki roots and
/// `extra_roots`.
fn tls_config(extra_roots: &[CertificateDer<'static>]) -> io::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra_roots {
        roots.add(cert.clone()).map_err(io::Error::other)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Reads the certificates of a PEM file for `--ca-file`, checking each is
/// one rustls can trust, so a wrong file is refused before connecting.
///
/// # Errors
///
/// Returns the reason to show: the file cannot be read or parsed, holds no
/// certificate, or holds one that cannot serve as a root.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    // Read at most one byte past the limit, so a device or a pipe that
    // never ends (`/dev/zero`) is refused instead of filling the memory.
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut contents = Vec::new();
    file.take(MAX_CA_FILE_BYTES + 1)
        .read_to_end(&mut contents)
        .map_err(|e| e.to_string())?;
    if contents.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(format!("larger than {MAX_CA_FILE_BYTES} bytes"));
    }

    let certs = CertificateDer::pem_slice_iter(&contents)
        .map(|cert| cert.map(CertificateDer::into_owned))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| describe_pem_error(&e))?;
    if certs.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into());
    }

    let mut check = rustls::RootCertStore::empty();
    for (index, cert) in certs.iter().enumerate() {
        check
            .add(cert.clone())
            .map_err(|e| format!("certificate {} is not usable: {e}", index + 1))?;
    }
    Ok(certs)
}

/// Largest `--ca-file` read: far above any bundle of CA certificates.
const MAX_CA_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Words a PEM reading error for the user; the marker bytes some errors
/// carry are left out, as they may be anything the file holds.
fn describe_pem_error(error: &pem::Error) -> String {
    match error {
        pem::Error::Io(e) => e.to_string(),
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line".into(),
        pem::Error::IllegalSectionStart { .. } => "a malformed BEGIN line".into(),
        pem::Error::Base64Decode(_) => "a PEM section is not valid base64".into(),
        other => format!("cannot read it as PEM: {other}"),
    }
}

/// Chat lines waiting to be sent, let out no faster than the protocol's
/// rate limit, so the server never drops one as over it.
///
/// The pacer's bucket has the server's rate but holds one token less, so
/// the server's bucket always keeps a token in hand over ours: a line that
/// reaches the server up to one token's time (100 ms at the default rate)
/// earlier than its pacing, through network jitter, or rounding in the
/// float arithmetic, is still within the limit. It lives as long as the
/// network thread: a reconnect does not refill it, which only makes it more
/// careful than the server's new one.
#[derive(Debug)]
struct Pacer {
    lines: VecDeque<String>,
    bucket: TokenBucket,
}

impl Pacer {
    /// An empty queue with a full bucket for the server's `limit`, one
    /// token short of it, as of `now`.
    fn new(limit: RateLimit, now: Instant) -> Pacer {
        let ours = RateLimit {
            burst: limit.burst.saturating_sub(1).max(1),
            ..limit
        };
        Pacer {
            lines: VecDeque::new(),
            bucket: TokenBucket::new(ours, now),
        }
    }

    /// Queues a line; past [`PENDING_LIMIT`] the oldest is dropped.
    fn push(&mut self, line: String) {
        self.lines.push_back(line);
        if self.lines.len() > PENDING_LIMIT {
            self.lines.pop_front();
        }
    }

    /// Takes the next line if the rate limit allows one as of `now`.
    fn next(&mut self, now: Instant) -> Option<String> {
        if self.lines.is_empty() || !self.bucket.try_take(now) {
            return None;
        }
        self.lines.pop_front()
    }

    /// The number of lines queued.
    fn len(&self) -> usize {
        self.lines.len()
    }

    /// Whether no line is queued.
    fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use natter_conformance::server::{locate_binary, ServerProcess};
    use std::net::TcpListener;

    /// Starts a TLS server on 127.0.0.1 that reads one request head, answers
    /// `reply` and returns the head; gives its port and certificate.
    fn tls_server(
        reply: &'static str,
    ) -> (
        u16,
        rustls::pki_types::CertificateDer<'static>,
        JoinHandle<Option<String>>,
    ) {
        let names = vec!["127.0.0.1".to_owned()];
        let rcgen::CertifiedKey { cert, signing_key } =
            rcgen::generate_simple_self_signed(names).unwrap();
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(signing_key.serialize_der());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key.into())
            .unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = thread::spawn(move || {
            let (tcp, _) = listener.accept().ok()?;
            let conn = rustls::ServerConnection::new(Arc::new(config)).ok()?;
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let head = read_head(&mut tls)?;
            tls.write_all(reply.as_bytes()).ok()?;
            tls.conn.send_close_notify();
            tls.flush().ok()?;
            Some(head)
        });
        (port, cert.der().clone(), server)
    }

    /// Starts a plain server on 127.0.0.1 that reads one request head,
    /// answers `reply` and returns the head; gives its port.
    fn plain_server(reply: &'static str) -> (u16, JoinHandle<Option<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = thread::spawn(move || {
            let (mut tcp, _) = listener.accept().ok()?;
            let head = read_head(&mut tcp)?;
            tcp.write_all(reply.as_bytes()).ok()?;
            Some(head)
        });
        (port, server)
    }

    /// Reads an HTTP request head, byte by byte so nothing after it is
    /// taken; `None` when the stream fails first.
    fn read_head(stream: &mut impl Read) -> Option<String> {
        let mut head = Vec::new();
        let mut byte = [0];
        while !head.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).ok()?;
            head.push(byte[0]);
        }
        String::from_utf8(head).ok()
    }

    /// Returns the settings to join lobby as ana on `url`, giving up after
    /// one failed attempt.
    fn config(url: &str) -> NetConfig {
        NetConfig {
            url: ServerUrl::parse(url).unwrap(),
            name: UserName::parse("ana").unwrap(),
            room: RoomCode::parse("lobby").unwrap(),
            session_id: SessionId::parse("k3J9x0aa").unwrap(),
            max_failures: Some(1),
            retry: RetryPolicy::default(),
            extra_roots: Vec::new(),
        }
    }

    /// Returns a worker for `url` whose events are dropped.
    fn worker(url: &str) -> Worker<NetEvent> {
        let (events, _) = mpsc::channel();
        let (_, commands) = mpsc::channel();
        Worker {
            config: config(url),
            commands,
            events,
            wrap: |e| e,
            pending: Pacer::new(RateLimit::default(), Instant::now()),
            quitting: false,
            tls: None,
        }
    }

    /// A TCP relay on 127.0.0.1 in front of a server that can cut the
    /// client side of its connections while their server side stays open,
    /// as a proxy that loses one half would: the server then holds a
    /// silent member until its dead-peer detection gives up on it.
    struct HalfCutRelay {
        /// The port clients connect to.
        port: u16,
        /// The client side of each connection so far, to cut.
        client_sides: Arc<std::sync::Mutex<Vec<TcpStream>>>,
    }

    impl HalfCutRelay {
        /// Starts relaying every connection to `server`. The server sides
        /// are never closed by the relay; the server closes them.
        fn start(server: std::net::SocketAddr) -> HalfCutRelay {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let port = listener.local_addr().unwrap().port();
            let client_sides = Arc::new(std::sync::Mutex::new(Vec::new()));
            let sides = Arc::clone(&client_sides);
            thread::spawn(move || {
                let mut server_sides = Vec::new();
                for client in listener.incoming() {
                    let (Ok(client), Ok(upstream)) = (client, TcpStream::connect(server)) else {
                        return;
                    };
                    sides.lock().unwrap().push(client.try_clone().unwrap());
                    server_sides.push(upstream.try_clone().unwrap());
                    relay(
                        client.try_clone().unwrap(),
                        upstream.try_clone().unwrap(),
                        false,
                    );
                    relay(upstream, client, true);
                }
            });
            HalfCutRelay { port, client_sides }
        }

        /// Closes the client side of every connection so far; their server
        /// side hears nothing of it.
        fn cut_client_sides(&self) {
            for side in self.client_sides.lock().unwrap().drain(..) {
                let _ = side.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    /// Copies `from` to `to` on a thread of its own; at the end of `from`,
    /// ends `to`'s writing too when `pass_end` is set.
    fn relay(mut from: TcpStream, mut to: TcpStream, pass_end: bool) {
        thread::spawn(move || {
            if io::copy(&mut from, &mut to).is_ok() && pass_end {
                let _ = to.shutdown(std::net::Shutdown::Write);
            }
        });
    }

    /// Returns the events up to and including the first that `wanted`
    /// accepts; fails after 30 s rather than hang.
    fn events_until(events: &Receiver<NetEvent>, wanted: fn(&NetEvent) -> bool) -> Vec<NetEvent> {
        let mut seen = Vec::new();
        loop {
            match events.recv_timeout(Duration::from_secs(30)) {
                Ok(event) => {
                    let done = wanted(&event);
                    seen.push(event);
                    if done {
                        return seen;
                    }
                }
                Err(e) => panic!("{e} waiting; saw {seen:?}"),
            }
        }
    }

    /// Joins through a relay in front of a natter-smol started with
    /// `server_flags`, then cuts the relay's client side so that the
    /// server keeps the session; returns the server, the running network
    /// thread (with short backoffs, retrying 409s for `rejoin_for`) and its
    /// events from the loss on.
    fn join_then_drop_silently(
        server_flags: &[&str],
        rejoin_for: Duration,
    ) -> (ServerProcess, NetHandle, Receiver<NetEvent>) {
        let binary = locate_binary("natter-smol", "natter-smol");
        let server = ServerProcess::start(&binary, server_flags).unwrap();
        let relay = HalfCutRelay::start(server.addr());
        let mut config = config(&format!("ws://127.0.0.1:{}", relay.port));
        config.max_failures = None;
        config.retry = RetryPolicy {
            first_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            rejoin_for,
        };
        let (tx, events) = mpsc::channel();
        let net = spawn(config, tx, |e| e).unwrap();
        events_until(&events, |e| {
            matches!(e, NetEvent::Server(ServerEvent::Welcome { .. }))
        });

        relay.cut_client_sides();
        events_until(&events, |e| matches!(e, NetEvent::Lost { .. }));
        (server, net, events)
    }

    #[test]
    fn queued_lines_are_sent_once_the_server_frees_our_dropped_connection() {
        // The server notices the dead peer after 1 s + 1 s; meanwhile the
        // client's attempts, 20-100 ms apart, get many more 409s than the
        // few a first join would retry.
        let flags = ["--ping-after", "1s", "--pong-timeout", "1s"];
        let (server, net, events) = join_then_drop_silently(&flags, Duration::from_secs(30));
        net.send(NetCommand::Send("kept 1".into()));
        net.send(NetCommand::Send("kept 2".into()));
        net.send(NetCommand::Quit);

        let seen = events_until(&events, |e| matches!(e, NetEvent::Finished { .. }));
        let rejoins = seen
            .iter()
            .filter(|e| matches!(e, NetEvent::Rejoining { .. }))
            .count();
        assert!(rejoins > 5, "{rejoins} rejoin attempts: {seen:?}");
        let echoed: Vec<&str> = seen
            .iter()
            .filter_map(|e| match e {
                NetEvent::Server(ServerEvent::Message { text, .. }) => Some(text.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(echoed, ["kept 1", "kept 2"], "{seen:?}");
        assert_eq!(seen.last(), Some(&NetEvent::Finished { error: None }));
        server.terminate().unwrap();
    }

    #[test]
    fn rejoining_gives_up_with_a_clear_reason_once_its_time_is_over() {
        let (server, net, events) = join_then_drop_silently(&[], Duration::from_millis(300));
        net.send(NetCommand::Send("never sent".into()));

        let seen = events_until(&events, |e| matches!(e, NetEvent::Finished { .. }));
        assert!(seen.iter().any(|e| matches!(e, NetEvent::Rejoining { .. })));
        let Some(NetEvent::Finished { error: Some(error) }) = seen.last() else {
            panic!("expected an error at the end: {seen:?}");
        };
        assert!(error.starts_with("gave up rejoining after 0s"), "{error}");
        assert!(
            error.contains("dropped connection (refused (409): "),
            "{error}"
        );
        assert!(error.ends_with("; 1 line not sent"), "{error}");
        server.terminate().unwrap();
    }

    #[test]
    fn wss_upgrades_over_tls_and_reads_a_refusal() {
        let reply = "HTTP/1.1 400 Bad Request\r\nContent-Length: 20\r\n\r\nuser_name is empty\r\n";
        let (port, cert, server) = tls_server(reply);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();

        let mut worker = worker(&format!("wss://127.0.0.1:{port}/"));
        worker.tls = Some(Arc::new(config));
        match worker.attempt() {
            Outcome::Refused { status, reason } => {
                assert_eq!((status, reason.as_str()), (400, "user_name is empty"));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        let head = server.join().unwrap().unwrap();
        let expected = "GET /joinRoom?user_name=ana&room_code=lobby&session_id=k3J9x0aa ";
        assert!(head.starts_with(expected), "{head}");
    }

    #[test]
    fn the_join_request_goes_below_the_servers_path_prefix() {
        let reply = "HTTP/1.1 400 Bad Request\r\nContent-Length: 4\r\n\r\nnope";
        for (path, target) in [
            ("/chat", "/chat/joinRoom?"),
            ("/chat/", "/chat/joinRoom?"),
            ("", "/joinRoom?"),
            ("/", "/joinRoom?"),
        ] {
            let (port, server) = plain_server(reply);
            let mut worker = worker(&format!("ws://127.0.0.1:{port}{path}"));
            assert!(matches!(
                worker.attempt(),
                Outcome::Refused { status: 400, .. }
            ));
            let head = server.join().unwrap().unwrap();
            let expected = format!("GET {target}user_name=ana&room_code=lobby&session_id=");
            assert!(head.starts_with(&expected), "{path:?}: {head}");
        }
    }

    /// Writes `contents` to a fresh file under the system's temporary
    /// folder and returns its path.
    fn temp_file(name: &str, contents: &[u8]) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!(
            "natter-client-{}-{}-{name}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn wss_trusts_a_certificate_from_the_ca_file() {
        let reply = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 6\r\n\r\nbusy\r\n";
        let (port, cert, server) = tls_server(reply);
        let pem = format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            base64_lines(&cert)
        );
        let path = temp_file("ca.pem", pem.as_bytes());
        let roots = read_ca_file(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(roots, vec![cert]);

        let mut worker = worker(&format!("wss://127.0.0.1:{port}/"));
        worker.config.extra_roots = roots;
        match worker.attempt() {
            Outcome::Refused { status, reason } => {
                assert_eq!((status, reason.as_str()), (503, "busy"));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(server.join().unwrap().is_some());
    }

    /// Encodes `der` in standard base64, 64 characters a line.
    fn base64_lines(der: &[u8]) -> String {
        use base64::Engine;
        let text = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = text
            .as_bytes()
            .chunks(64)
            .map(|chunk| std::str::from_utf8(chunk).unwrap())
            .collect();
        lines.join("\n")
    }

    #[test]
    fn ca_files_without_usable_certificates_are_refused_with_a_reason() {
        let cases: [(&str, &[u8], &str); 4] = [
            ("empty", b"", "no PEM certificate"),
            (
                "key",
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "no PEM",
            ),
            ("cut", b"-----BEGIN CERTIFICATE-----\nAAAA\n", "no END line"),
            (
                "junk",
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "not usable",
            ),
        ];
        for (name, contents, expected) in cases {
            let path = temp_file(name, contents);
            let result = read_ca_file(&path);
            std::fs::remove_file(&path).unwrap();
            match result {
                Err(reason) => assert!(reason.contains(expected), "{name}: {reason}"),
                Ok(roots) => panic!("{name}: accepted {} certificates", roots.len()),
            }
        }

        let missing = std::env::temp_dir().join("natter-client-no-such-file.pem");
        assert!(read_ca_file(&missing).is_err());

        // A file that never ends is cut off at the limit, not read forever.
        let endless = read_ca_file(Path::new("/dev/zero")).unwrap_err();
        assert!(endless.contains("larger than"), "{endless}");
    }

    #[test]
    fn wss_refuses_a_certificate_outside_the_public_roots() {
        let (port, _, server) = tls_server("HTTP/1.1 500 Nope\r\n\r\n");
        let mut worker = worker(&format!("wss://127.0.0.1:{port}/"));
        match worker.attempt() {
            Outcome::Lost { reason, joined } => {
                assert!(!joined);
                assert!(reason.contains("certificate"), "{reason}");
            }
            other => panic!("expected a failed attempt, got {other:?}"),
        }
        assert_eq!(server.join().unwrap(), None);
    }

    /// Sends what the pacer allows at `at`, returning the lines.
    fn drain(pacer: &mut Pacer, at: Instant) -> Vec<String> {
        std::iter::from_fn(|| pacer.next(at)).collect()
    }

    #[test]
    fn the_pacer_sends_a_burst_then_ten_lines_a_second() {
        // The server allows 20 at once; the pacer sends 19, keeping one
        // token in hand.
        let start = Instant::now();
        let ms = |n: u64| start + Duration::from_millis(n);
        let mut pacer = Pacer::new(RateLimit::default(), start);
        assert_eq!(pacer.next(start), None, "nothing queued");
        for i in 0..30 {
            pacer.push(format!("line {i}"));
        }

        let burst = drain(&mut pacer, start);
        assert_eq!(burst.len(), 19);
        assert_eq!(
            (burst[0].as_str(), burst[18].as_str()),
            ("line 0", "line 18")
        );
        assert_eq!(pacer.len(), 11);
        assert_eq!(drain(&mut pacer, ms(99)), Vec::<String>::new());
        assert_eq!(drain(&mut pacer, ms(100)), ["line 19"]);
        assert_eq!(drain(&mut pacer, ms(150)), Vec::<String>::new());
        // Half a second later, five more: one every 100 ms, in order.
        assert_eq!(
            drain(&mut pacer, ms(600)),
            ["line 20", "line 21", "line 22", "line 23", "line 24"]
        );
        assert_eq!(drain(&mut pacer, ms(1_000)).len(), 4);
        assert_eq!(drain(&mut pacer, ms(1_099)), Vec::<String>::new());
        assert_eq!(drain(&mut pacer, ms(1_100)), ["line 29"]);
        assert!(pacer.is_empty());
    }

    #[test]
    fn the_pacer_never_beats_the_servers_bucket() {
        // Whatever the arrival pattern, each line the pacer lets out at some
        // instant is one the server's bucket (same limit, started no
        // earlier) accepts, even arriving up to 90 ms early (jitter).
        let start = Instant::now();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut pacer = Pacer::new(RateLimit::default(), start);
        let mut server = TokenBucket::new(RateLimit::default(), start);
        let mut now = start;
        let mut last_arrival = start;
        let mut sent = 0;
        for _ in 0..2_000 {
            for _ in 0..rng.usize(..4) {
                pacer.push("x".into());
            }
            let early = Duration::from_millis(rng.u64(..90));
            for _ in drain(&mut pacer, now) {
                let arrival = (now - early).max(last_arrival);
                last_arrival = arrival;
                assert!(
                    server.try_take(arrival),
                    "over the limit after {sent} lines"
                );
                sent += 1;
            }
            now += Duration::from_millis(rng.u64(..60));
        }
        assert!(sent > 550, "only {sent} sent");
    }

    #[test]
    fn the_pacer_holds_at_most_the_pending_limit() {
        let start = Instant::now();
        let mut pacer = Pacer::new(RateLimit::default(), start);
        for i in 0..PENDING_LIMIT + 2 {
            pacer.push(i.to_string());
        }
        assert_eq!(pacer.len(), PENDING_LIMIT);
        assert_eq!(pacer.next(start).as_deref(), Some("2"));
    }

    #[test]
    fn lines_past_the_pending_limit_wait_in_the_channel_while_connected() {
        let mut worker = worker("ws://127.0.0.1:1/");
        let (commands, rx) = mpsc::channel();
        worker.commands = rx;
        for i in 0..PENDING_LIMIT + 5 {
            commands.send(NetCommand::Send(i.to_string())).unwrap();
        }
        commands.send(NetCommand::Quit).unwrap();
        worker.take_commands();
        assert_eq!(worker.pending.len(), PENDING_LIMIT);
        assert!(!worker.quitting, "the quit waits behind the lines");
        assert_eq!(worker.pending.next(Instant::now()).as_deref(), Some("0"));
        worker.take_commands();
        assert_eq!(worker.pending.len(), PENDING_LIMIT);
        assert_eq!(
            worker.pending.lines.back().map(String::as_str),
            Some("1000")
        );
    }

    #[test]
    fn refusal_bodies_become_one_safe_line() {
        assert_eq!(one_line("\n  bad name\r\nmore"), "bad name");
        assert_eq!(one_line("a\u{1b}[2Jb"), "a\u{241b}[2Jb");
        assert_eq!(one_line(&"x".repeat(500)).len(), 200);
    }

    #[test]
    fn closes_are_described() {
        let info = CloseInfo {
            code: Some(1001),
            reason: "shutting down".into(),
            cause: CloseCause::ClosedByPeer,
        };
        assert_eq!(
            describe_close(&info),
            "server closed the connection (code 1001: shutting down)"
        );
    }
}
