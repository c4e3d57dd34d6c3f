//! One WebSocket endpoint as a sans-IO state machine (RFC 6455 §5-§7).

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::close::{self, CloseCode, InvalidClose, ABNORMAL_CLOSURE};
use crate::config::ServerConfig;
use crate::frame::{encode_frame, Decoded, FrameDecoder, FrameError, FrameHeader, Masking, OpCode};
use crate::utf8::{self, InvalidUtf8, Utf8Validator};

/// The most discarded payload bytes handled in one step.
const DISCARD_PIECE: usize = 4096;

/// The most transmit buffer capacity kept once its bytes are handed out.
const KEEP_TRANSMIT_CAPACITY: usize = 64 * 1024;

/// Which end of the connection this endpoint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The server: frames it receives must be masked, its own are not.
    Server,
    /// The client: it masks every frame with keys drawn from a generator
    /// seeded with `mask_seed`, so a test can replay its output.
    Client {
        /// The seed of the masking key generator.
        mask_seed: u64,
    },
}

/// The limits and timeouts of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// The largest message accepted, all fragments together (over it: 1009).
    pub max_message_bytes: usize,
    /// Whether binary messages are accepted (if not: 1003).
    pub allow_binary: bool,
    /// Silence after which a ping is sent; `None` sends no pings.
    pub idle_ping_after: Option<Duration>,
    /// Further silence after that ping before the connection is given up.
    pub pong_timeout: Duration,
    /// Time to wait for the peer's close frame once ours is sent.
    pub close_timeout: Duration,
}

impl ConnectionConfig {
    /// Returns the configuration of a chat member's connection: text only,
    /// up to the chat limit.
    pub fn chat(server: &ServerConfig) -> ConnectionConfig {
        ConnectionConfig {
            max_message_bytes: server.max_chat_bytes,
            allow_binary: false,
            idle_ping_after: Some(server.idle_ping_after),
            pong_timeout: server.pong_timeout,
            close_timeout: server.close_timeout,
        }
    }

    /// Returns the configuration of an `/echo` connection: text and binary,
    /// up to the echo limit.
    pub fn echo(server: &ServerConfig) -> ConnectionConfig {
        ConnectionConfig {
            max_message_bytes: server.max_echo_bytes,
            allow_binary: true,
            ..ConnectionConfig::chat(server)
        }
    }

    /// Returns the configuration of a client's connection: messages up to
    /// 16 MiB of either kind, a ping after 30 s of silence, and the
    /// protocol's default timeouts.
    pub fn client() -> ConnectionConfig {
        let defaults = ServerConfig::default();
        ConnectionConfig {
            max_message_bytes: 16 * 1024 * 1024,
            allow_binary: true,
            ..ConnectionConfig::chat(&defaults)
        }
    }
}

/// A complete message received from the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A text message, valid UTF-8.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

/// Something the driver must act on, from [`Connection::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A whole message arrived.
    Message(Message),
    /// A pong arrived, with its payload (answers to our pings and
    /// unsolicited ones alike).
    Pong(Vec<u8>),
    /// The connection is finished: write what
    /// [`poll_transmit`](Connection::poll_transmit) still gives, then drop
    /// the transport. Emitted once, and last.
    Closed(CloseInfo),
}

/// How and why a connection finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The code of the close frame that started the closing handshake (the
    /// peer's or ours); `None` when the peer's close carried no code; 1006
    /// when the connection ended without a handshake.
    pub code: Option<u16>,
    /// The reason that came with that code.
    pub reason: String,
    /// Who or what ended the connection.
    pub cause: CloseCause,
}

/// Who or what ended a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseCause {
    /// The peer sent a close frame and this endpoint answered it.
    ClosedByPeer,
    /// This endpoint called [`Connection::close`]; `acknowledged` tells
    /// whether the peer's close arrived before the close timeout.
    ClosedByUs {
        /// Whether the peer answered with its own close frame.
        acknowledged: bool,
    },
    /// The peer broke the protocol; a close frame with the matching code
    /// was queued unless ours had already gone out.
    Violation(ProtocolError),
    /// The peer stayed silent through a ping and the pong timeout.
    TimedOut,
    /// The driver reported the end of the byte stream before any close.
    ConnectionLost,
}

impl CloseInfo {
    /// Tells whether the connection ended with a completed closing
    /// handshake, an ordinary goodbye rather than a lost peer.
    ///
    /// Servers log a lost member at `info` and an ordinary goodbye at
    /// `debug`; this is where the two are told apart.
    pub fn is_orderly(&self) -> bool {
        matches!(
            self.cause,
            CloseCause::ClosedByPeer | CloseCause::ClosedByUs { acknowledged: true }
        )
    }
}

impl fmt::Display for CloseCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseCause::ClosedByPeer => f.write_str("closed by the peer"),
            CloseCause::ClosedByUs { acknowledged: true } => f.write_str("closed by us"),
            CloseCause::ClosedByUs {
                acknowledged: false,
            } => f.write_str("no answer to our close"),
            CloseCause::Violation(error) => write!(f, "protocol violation: {error}"),
            CloseCause::TimedOut => f.write_str("silent through a ping"),
            CloseCause::ConnectionLost => f.write_str("connection lost"),
        }
    }
}

/// A rule of RFC 6455 (or of this connection's configuration) that the
/// peer broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// A frame header was malformed (RFC 6455 §5.2).
    Frame(FrameError),
    /// A continuation frame arrived with no message open (RFC 6455 §5.4).
    ContinuationWithoutStart,
    /// A text or binary frame arrived while a fragmented message was still
    /// open (RFC 6455 §5.4).
    MessageAlreadyOpen,
    /// A message (its fragments together) is over the configured limit.
    MessageTooBig {
        /// The size the message would reach.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A binary message arrived where only text is accepted.
    BinaryNotAllowed,
    /// A text message was not valid UTF-8 (RFC 6455 §8.1).
    InvalidUtf8(InvalidUtf8),
    /// A close frame's payload was invalid (RFC 6455 §5.5.1).
    InvalidClose(InvalidClose),
}

impl ProtocolError {
    /// Returns the close code that answers this violation.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::Frame(FrameError::PayloadTooLong { .. }) => CloseCode::MESSAGE_TOO_BIG,
            ProtocolError::Frame(_)
            | ProtocolError::ContinuationWithoutStart
            | ProtocolError::MessageAlreadyOpen => CloseCode::PROTOCOL_ERROR,
            ProtocolError::MessageTooBig { .. } => CloseCode::MESSAGE_TOO_BIG,
            ProtocolError::BinaryNotAllowed => CloseCode::UNSUPPORTED_DATA,
            ProtocolError::InvalidUtf8(_) => CloseCode::INVALID_PAYLOAD,
            ProtocolError::InvalidClose(error) => error.close_code(),
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Frame(error) => error.fmt(f),
            ProtocolError::ContinuationWithoutStart => f.write_str("continuation without a start"),
            ProtocolError::MessageAlreadyOpen => f.write_str("new message inside a fragmented one"),
            ProtocolError::MessageTooBig { size, max } => {
                write!(f, "message of {size} bytes over the limit of {max}")
            }
            ProtocolError::BinaryNotAllowed => f.write_str("binary messages not accepted"),
            ProtocolError::InvalidUtf8(error) => error.fmt(f),
            ProtocolError::InvalidClose(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Why a message could not be queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// Our close frame has gone out; no data frame may follow it
    /// (RFC 6455 §5.5.1).
    CloseSent,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::CloseSent => f.write_str("close frame already sent"),
        }
    }
}

impl std::error::Error for SendError {}

/// Where the closing handshake stands.
#[derive(Debug, Clone)]
enum State {
    /// Data flows both ways.
    Open,
    /// Our close went out; waiting for the peer's until `deadline`.
    ClosedByUs {
        code: CloseCode,
        reason: String,
        deadline: Option<Instant>,
    },
    /// Finished: the `Closed` event is queued and nothing more is read.
    Finished,
}

/// How reading ended, once the peer's input decided it.
#[derive(Debug, Clone)]
enum Ending {
    /// The peer broke a rule.
    Violation(ProtocolError),
    /// The peer's valid close frame arrived.
    PeerClose {
        code: Option<CloseCode>,
        reason: String,
    },
}

/// The kind of the message being reassembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MessageKind {
    Text,
    Binary,
}

/// Where the payload of the frame being read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Into the message being reassembled.
    Message,
    /// Into the control payload buffer.
    Control(OpCode),
    /// Nowhere: data arriving after our close.
    Discard,
}

/// The frame whose payload is being read.
#[derive(Debug, Clone, Copy)]
struct FrameInProgress {
    target: Target,
    fin: bool,
}

/// One WebSocket endpoint, after the upgrade, as a sans-IO state machine.
///
/// The driver owns the socket and the clock; the connection owns the
/// protocol. Its methods come in families:
/// - input: [`handle_input`](Self::handle_input) with every byte read,
///   [`handle_timeout`](Self::handle_timeout) when the deadline passes,
///   [`handle_eof`](Self::handle_eof) when the stream ends;
/// - output, pulled until empty after each input, in this order:
///   [`poll_event`](Self::poll_event), [`poll_transmit`](Self::poll_transmit),
///   then [`poll_timeout`](Self::poll_timeout) to re-arm the timer;
/// - commands: [`send_text`](Self::send_text),
///   [`send_binary`](Self::send_binary), [`close`](Self::close);
/// - state: [`is_closed`](Self::is_closed),
///   [`can_send_data`](Self::can_send_data).
///
/// When [`Event::Closed`] comes out, write what `poll_transmit` still gives
/// and drop the transport. When the input that ends the connection (a
/// violation, the peer's close) follows messages in the same call, the
/// ending waits until those messages are polled: a reply sent to them, as
/// `/echo` does, goes out before the close frame. Time only moves through the `now` arguments; a
/// command uses the latest `now` it has seen.
///
/// # Examples
///
/// ```
/// use std::time::Instant;
/// use natter_core::config::ServerConfig;
/// use natter_core::connection::{Connection, ConnectionConfig, Event, Message, Role};
///
/// let now = Instant::now();
/// let config = ConnectionConfig::echo(&ServerConfig::default());
/// let mut server = Connection::new(Role::Server, config, now);
/// let client_config = ConnectionConfig::client();
/// let mut client = Connection::new(Role::Client { mask_seed: 7 }, client_config, now);
///
/// client.send_text("hello").unwrap();
/// let mut wire = Vec::new();
/// client.poll_transmit(&mut wire);
/// server.handle_input(now, &wire);
/// assert_eq!(server.poll_event(), Some(Event::Message(Message::Text("hello".into()))));
/// ```
pub struct Connection {
    config: ConnectionConfig,
    /// The masking key source; present only for a client.
    rng: Option<fastrand::Rng>,
    decoder: FrameDecoder,
    state: State,
    frame: Option<FrameInProgress>,
    message: Option<MessageKind>,
    message_buf: Vec<u8>,
    validator: Utf8Validator,
    /// Whether the validator has seen the current message; a text message
    /// that arrives whole in one piece is checked once, at its end.
    validating: bool,
    control_buf: Vec<u8>,
    /// Payload of discarded frames, cleared before each use.
    scratch: Vec<u8>,
    transmit: Vec<u8>,
    events: VecDeque<Event>,
    /// An ending decided while messages before it were still undelivered;
    /// applied once they are polled, so that a server's answers to them
    /// (an echo) go out before the close.
    pending_end: Option<Ending>,
    now: Instant,
    last_activity: Instant,
    ping_sent_at: Option<Instant>,
}

/// Shows the state and buffer sizes, never message contents or keys.
impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            State::Open if self.pending_end.is_some() => "ending",
            State::Open => "open",
            State::ClosedByUs { .. } => "closed by us",
            State::Finished => "finished",
        };
        f.debug_struct("Connection")
            .field("client", &self.rng.is_some())
            .field("state", &state)
            .field("message_bytes", &self.message_buf.len())
            .field("transmit_bytes", &self.transmit.len())
            .field("events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Creates an open connection for `role`, its heartbeat starting at
    /// `now`.
    pub fn new(role: Role, config: ConnectionConfig, now: Instant) -> Connection {
        let (masking, rng) = match role {
            Role::Server => (Masking::Required, None),
            Role::Client { mask_seed } => (
                Masking::Forbidden,
                Some(fastrand::Rng::with_seed(mask_seed)),
            ),
        };
        let max = u64::try_from(config.max_message_bytes).unwrap_or(u64::MAX);
        Connection {
            config,
            rng,
            decoder: FrameDecoder::new(masking, max),
            state: State::Open,
            frame: None,
            message: None,
            message_buf: Vec::new(),
            validator: Utf8Validator::new(),
            validating: false,
            control_buf: Vec::with_capacity(crate::frame::MAX_CONTROL_PAYLOAD),
            scratch: Vec::new(),
            transmit: Vec::new(),
            events: VecDeque::new(),
            pending_end: None,
            now,
            last_activity: now,
            ping_sent_at: None,
        }
    }

    /// Processes bytes read from the peer at `now`.
    ///
    /// Bytes after the peer's close frame or a protocol violation are
    /// ignored; so is everything once the connection is finished.
    pub fn handle_input(&mut self, now: Instant, input: &[u8]) {
        self.now = now;
        if !self.is_reading() || input.is_empty() {
            return;
        }
        self.last_activity = now;
        self.ping_sent_at = None;

        let mut input = input;
        while !input.is_empty() && self.is_reading() {
            match self.step(input) {
                Ok(used) => input = &input[used..],
                Err(error) => return self.end(Ending::Violation(error)),
            }
        }
    }

    /// Reports that the peer's byte stream ended; unless the connection had
    /// already finished, it finishes as lost, with code 1006.
    pub fn handle_eof(&mut self) {
        if !self.is_reading() {
            return;
        }

        // After our close, a peer that hangs up instead of answering has
        // still been told our code: report the close we started.
        if matches!(self.state, State::ClosedByUs { .. }) {
            self.finish_unanswered();
            return;
        }
        self.finish(
            Some(ABNORMAL_CLOSURE),
            "connection lost".into(),
            CloseCause::ConnectionLost,
        );
    }

    /// Advances the timers to `now`: sends the idle ping, gives up on a
    /// silent peer, or stops waiting for the peer's close.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        match self.state {
            State::Open => self.check_heartbeat(now),
            State::ClosedByUs { deadline, .. } => {
                if deadline.is_some_and(|deadline| now >= deadline) {
                    self.finish_unanswered();
                }
            }
            State::Finished => {}
        }
    }

    /// Returns the next event, or `None` when there is none for now.
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(event) = self.events.pop_front() {
            return Some(event);
        }
        let ending = self.pending_end.take()?;
        self.apply_end(ending);
        self.events.pop_front()
    }

    /// Appends the bytes waiting to be written to `out`, and tells whether
    /// there were any.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        if self.transmit.is_empty() {
            return false;
        }
        if out.is_empty() {
            std::mem::swap(out, &mut self.transmit);
        } else {
            out.extend_from_slice(&self.transmit);
            self.transmit.clear();
        }

        // An idle connection should not keep the room a large message took.
        if self.transmit.capacity() > KEEP_TRANSMIT_CAPACITY {
            self.transmit = Vec::new();
        }
        true
    }

    /// Returns the next deadline, when [`handle_timeout`](Self::handle_timeout)
    /// should be called, or `None` when no timer is running.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Open if self.pending_end.is_some() => None,
            State::Open => {
                let idle = self.config.idle_ping_after?;
                match self.ping_sent_at {
                    None => self.last_activity.checked_add(idle),
                    Some(sent) => sent.checked_add(self.config.pong_timeout),
                }
            }
            State::ClosedByUs { deadline, .. } => *deadline,
            State::Finished => None,
        }
    }

    /// Queues a text message.
    ///
    /// # Errors
    ///
    /// Fails once our close frame has been queued.
    pub fn send_text(&mut self, text: &str) -> Result<(), SendError> {
        self.send_data(OpCode::Text, text.as_bytes())
    }

    /// Queues a binary message.
    ///
    /// # Errors
    ///
    /// Fails once our close frame has been queued.
    pub fn send_binary(&mut self, data: &[u8]) -> Result<(), SendError> {
        self.send_data(OpCode::Binary, data)
    }

    /// Starts the closing handshake at `now`: queues a close frame with
    /// `code` and `reason` (cut to fit), then waits for the peer's close
    /// until the close timeout, counted from `now`. Does nothing once a
    /// close has been sent or received.
    pub fn close(&mut self, now: Instant, code: CloseCode, reason: &str) {
        if !matches!(self.state, State::Open) {
            return;
        }
        self.now = now;
        let reason = close::truncate_reason(reason);
        self.queue_close(Some(code), reason);

        // A message being received will never be delivered now.
        self.message = None;
        self.message_buf = Vec::new();
        if let Some(frame) = &mut self.frame {
            if frame.target == Target::Message {
                frame.target = Target::Discard;
            }
        }
        self.state = State::ClosedByUs {
            code,
            reason: reason.to_owned(),
            deadline: self.now.checked_add(self.config.close_timeout),
        };
    }

    /// Tells whether the connection is finished: once transmit is drained,
    /// the transport may be dropped.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Finished)
    }

    /// Tells whether data frames may still be sent (no close has gone out).
    pub fn can_send_data(&self) -> bool {
        matches!(self.state, State::Open)
    }

    /// Tells whether input is still read: not finished, no ending pending.
    fn is_reading(&self) -> bool {
        !matches!(self.state, State::Finished) && self.pending_end.is_none()
    }

    /// Decodes one step from the front of `input` and returns the bytes it
    /// used.
    fn step(&mut self, input: &[u8]) -> Result<usize, ProtocolError> {
        let target = self.frame.map(|frame| frame.target);
        let mut input = input;
        let buffer = match target {
            Some(Target::Message) => &mut self.message_buf,
            Some(Target::Control(_)) => &mut self.control_buf,
            Some(Target::Discard) | None => {
                // Discarded payload passes through a small buffer, a bounded
                // piece at a time.
                input = &input[..input.len().min(DISCARD_PIECE)];
                self.scratch.clear();
                &mut self.scratch
            }
        };

        match self
            .decoder
            .decode(input, buffer)
            .map_err(ProtocolError::Frame)?
        {
            Decoded::NeedMore => Ok(input.len()),
            Decoded::Header { header, consumed } => {
                self.start_frame(&header)?;
                Ok(consumed)
            }
            Decoded::Payload {
                consumed,
                frame_done,
            } => {
                self.take_payload(consumed, frame_done)?;
                Ok(consumed)
            }
        }
    }

    /// Checks a new frame against the message state and decides where its
    /// payload goes.
    fn start_frame(&mut self, header: &FrameHeader) -> Result<(), ProtocolError> {
        let closing = !matches!(self.state, State::Open);
        let target = match header.opcode {
            OpCode::Continuation | OpCode::Text | OpCode::Binary if closing => Target::Discard,
            OpCode::Continuation => {
                if self.message.is_none() {
                    return Err(ProtocolError::ContinuationWithoutStart);
                }
                self.check_size(header.payload_len)?;
                Target::Message
            }
            OpCode::Text | OpCode::Binary => {
                self.start_message(header)?;
                Target::Message
            }
            opcode => {
                self.control_buf.clear();
                Target::Control(opcode)
            }
        };

        self.frame = Some(FrameInProgress {
            target,
            fin: header.fin,
        });
        if header.payload_len == 0 {
            self.end_frame()?;
        }
        Ok(())
    }

    /// Opens a message with its first frame (RFC 6455 §5.4).
    fn start_message(&mut self, header: &FrameHeader) -> Result<(), ProtocolError> {
        if self.message.is_some() {
            return Err(ProtocolError::MessageAlreadyOpen);
        }
        let kind = if header.opcode == OpCode::Binary {
            if !self.config.allow_binary {
                return Err(ProtocolError::BinaryNotAllowed);
            }
            MessageKind::Binary
        } else {
            MessageKind::Text
        };

        self.message_buf.clear();
        self.check_size(header.payload_len)?;
        self.message = Some(kind);
        self.validator.reset();
        self.validating = false;
        Ok(())
    }

    /// Refuses a frame that would take the message over the limit.
    fn check_size(&self, frame_len: u64) -> Result<(), ProtocolError> {
        let max = u64::try_from(self.config.max_message_bytes).unwrap_or(u64::MAX);
        let size = (self.message_buf.len() as u64).saturating_add(frame_len);
        if size > max {
            return Err(ProtocolError::MessageTooBig { size, max });
        }
        Ok(())
    }

    /// Handles `len` payload bytes just appended to the frame's buffer.
    fn take_payload(&mut self, len: usize, frame_done: bool) -> Result<(), ProtocolError> {
        let Some(frame) = self.frame else {
            return Ok(());
        };
        if frame.target == Target::Message && self.message == Some(MessageKind::Text) {
            // A message arriving whole in one piece is checked once at its end;
            // anything else is checked as it comes, to fail at the first bad byte.
            let whole =
                frame.fin && frame_done && !self.validating && len == self.message_buf.len();
            if !whole {
                self.validating = true;
                let start = self.message_buf.len().saturating_sub(len);
                let piece = self.message_buf.get(start..).unwrap_or_default();
                self.validator
                    .feed(piece)
                    .map_err(ProtocolError::InvalidUtf8)?;
            }
        }

        if frame_done {
            self.end_frame()?;
        }
        Ok(())
    }

    /// Acts on a frame whose payload is complete.
    fn end_frame(&mut self) -> Result<(), ProtocolError> {
        let Some(frame) = self.frame.take() else {
            return Ok(());
        };
        match frame.target {
            Target::Message if frame.fin => self.end_message(),
            Target::Message | Target::Discard => Ok(()),
            Target::Control(OpCode::Ping) => {
                // RFC 6455 §5.5.2: answer with the same payload, unless our
                // close is out and nothing may follow it.
                if matches!(self.state, State::Open) {
                    let payload = std::mem::take(&mut self.control_buf);
                    self.queue_frame(OpCode::Pong, &payload);
                    self.control_buf = payload;
                }
                Ok(())
            }
            Target::Control(OpCode::Pong) => {
                self.events.push_back(Event::Pong(self.control_buf.clone()));
                Ok(())
            }
            Target::Control(_) => self.receive_close(),
        }
    }

    /// Delivers the reassembled message.
    fn end_message(&mut self) -> Result<(), ProtocolError> {
        let data = std::mem::take(&mut self.message_buf);
        let message = match self.message.take() {
            Some(MessageKind::Binary) => Message::Binary(data),
            Some(MessageKind::Text) => {
                if self.validating {
                    self.validator
                        .finish()
                        .map_err(ProtocolError::InvalidUtf8)?;
                }
                match String::from_utf8(data) {
                    Ok(text) => Message::Text(text),
                    Err(error) => {
                        let invalid = utf8::validate(error.as_bytes()).err();
                        let invalid = invalid.unwrap_or(InvalidUtf8 { offset: 0 });
                        return Err(ProtocolError::InvalidUtf8(invalid));
                    }
                }
            }
            None => return Ok(()),
        };
        self.events.push_back(Event::Message(message));
        Ok(())
    }

    /// Handles the peer's close frame: answers it, or takes it as the answer
    /// to ours, and finishes (RFC 6455 §5.5.1).
    fn receive_close(&mut self) -> Result<(), ProtocolError> {
        let parsed =
            close::parse_close_payload(&self.control_buf).map_err(ProtocolError::InvalidClose)?;
        let (code, reason) = match parsed {
            Some((code, reason)) => (Some(code), reason.to_owned()),
            None => (None, String::new()),
        };
        self.end(Ending::PeerClose { code, reason });
        Ok(())
    }

    /// Stops reading: ends the connection now, or once the messages already
    /// queued have been polled.
    fn end(&mut self, ending: Ending) {
        let undelivered = self
            .events
            .iter()
            .any(|event| matches!(event, Event::Message(_)));
        if undelivered && matches!(self.state, State::Open) {
            self.frame = None;
            self.pending_end = Some(ending);
        } else {
            self.apply_end(ending);
        }
    }

    /// Carries out an ending in the current state.
    fn apply_end(&mut self, ending: Ending) {
        match ending {
            Ending::Violation(error) => self.fail(error),
            Ending::PeerClose { code, reason } => match &self.state {
                State::Open => {
                    self.queue_close(code, "");
                    self.finish(code.map(CloseCode::get), reason, CloseCause::ClosedByPeer);
                }
                State::ClosedByUs { code, reason, .. } => {
                    let (code, reason) = (code.get(), reason.clone());
                    let cause = CloseCause::ClosedByUs { acknowledged: true };
                    self.finish(Some(code), reason, cause);
                }
                State::Finished => {}
            },
        }
    }

    /// Sends the idle ping, or gives up on a peer silent since it.
    fn check_heartbeat(&mut self, now: Instant) {
        let Some(idle) = self.config.idle_ping_after else {
            return;
        };
        if self.pending_end.is_some() {
            return;
        }
        match self.ping_sent_at {
            None => {
                if self
                    .last_activity
                    .checked_add(idle)
                    .is_some_and(|due| now >= due)
                {
                    self.queue_frame(OpCode::Ping, &[]);
                    self.ping_sent_at = Some(now);
                }
            }
            Some(sent) => {
                if sent
                    .checked_add(self.config.pong_timeout)
                    .is_some_and(|due| now >= due)
                {
                    let code = Some(ABNORMAL_CLOSURE);
                    self.finish(code, "timed out".into(), CloseCause::TimedOut);
                }
            }
        }
    }

    /// Gives up waiting for the peer's answer to our close.
    fn finish_unanswered(&mut self) {
        if let State::ClosedByUs { code, reason, .. } = &self.state {
            let (code, reason) = (code.get(), reason.clone());
            let cause = CloseCause::ClosedByUs {
                acknowledged: false,
            };
            self.finish(Some(code), reason, cause);
        }
    }

    /// Answers a violation: queues a close with its code (unless ours is
    /// already out) and finishes.
    fn fail(&mut self, error: ProtocolError) {
        let (code, reason) = match &self.state {
            State::Open => {
                let (code, reason) = (error.close_code(), error.to_string());
                self.queue_close(Some(code), close::truncate_reason(&reason));
                (code, reason)
            }
            // Our close already went out and told the peer its code.
            State::ClosedByUs { code, reason, .. } => (*code, reason.clone()),
            State::Finished => return,
        };
        self.finish(Some(code.get()), reason, CloseCause::Violation(error));
    }

    /// Ends the connection: stops reading and emits `Closed`.
    fn finish(&mut self, code: Option<u16>, reason: String, cause: CloseCause) {
        self.state = State::Finished;
        self.pending_end = None;
        self.frame = None;
        self.message = None;
        self.message_buf = Vec::new();
        self.scratch = Vec::new();
        self.events.push_back(Event::Closed(CloseInfo {
            code,
            reason,
            cause,
        }));
    }

    /// Queues a data frame.
    fn send_data(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), SendError> {
        if !matches!(self.state, State::Open) {
            return Err(SendError::CloseSent);
        }
        self.queue_frame(opcode, payload);
        Ok(())
    }

    /// Queues a close frame: empty without a code.
    fn queue_close(&mut self, code: Option<CloseCode>, reason: &str) {
        let mut payload = Vec::new();
        if let Some(code) = code {
            close::encode_close_payload(&mut payload, code, reason);
        }
        self.queue_frame(OpCode::Close, &payload);
    }

    /// Encodes one whole frame into the transmit buffer, masked for a
    /// client.
    fn queue_frame(&mut self, opcode: OpCode, payload: &[u8]) {
        let mask = self.rng.as_mut().map(|rng| rng.u32(..).to_ne_bytes());
        encode_frame(&mut self.transmit, opcode, true, payload, mask);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_completed_closing_handshake_is_orderly() {
        let info = |cause| CloseInfo {
            code: Some(1000),
            reason: String::new(),
            cause,
        };
        assert!(info(CloseCause::ClosedByPeer).is_orderly());
        assert!(info(CloseCause::ClosedByUs { acknowledged: true }).is_orderly());
        assert!(!info(CloseCause::ClosedByUs {
            acknowledged: false
        })
        .is_orderly());
        assert!(!info(CloseCause::TimedOut).is_orderly());
        assert!(!info(CloseCause::ConnectionLost).is_orderly());
        assert_eq!(CloseCause::TimedOut.to_string(), "silent through a ping");
    }
    use proptest::prelude::*;

    const KEY: [u8; 4] = [0x12, 0x34, 0x56, 0x78];

    fn config() -> ConnectionConfig {
        ConnectionConfig {
            max_message_bytes: 1000,
            allow_binary: true,
            idle_ping_after: Some(Duration::from_secs(30)),
            pong_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(5),
        }
    }

    fn server_with(config: ConnectionConfig) -> (Connection, Instant) {
        let now = Instant::now();
        (Connection::new(Role::Server, config, now), now)
    }

    fn server() -> (Connection, Instant) {
        server_with(config())
    }

    /// Encodes a frame as a client would send it.
    fn masked(opcode: OpCode, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(&mut out, opcode, fin, payload, Some(KEY));
        out
    }

    fn close_payload(code: u16, reason: &str) -> Vec<u8> {
        let mut out = code.to_be_bytes().to_vec();
        out.extend_from_slice(reason.as_bytes());
        out
    }

    fn events(conn: &mut Connection) -> Vec<Event> {
        std::iter::from_fn(|| conn.poll_event()).collect()
    }

    /// Decodes everything `conn` wants to transmit into (opcode, payload).
    fn sent(conn: &mut Connection, masking: Masking) -> Vec<(OpCode, Vec<u8>)> {
        let mut wire = Vec::new();
        conn.poll_transmit(&mut wire);
        let mut decoder = FrameDecoder::new(masking, u64::MAX);
        let mut frames = Vec::new();
        let mut opcode = None;
        let mut payload = Vec::new();
        let mut rest = &wire[..];
        while !rest.is_empty() {
            match decoder.decode(rest, &mut payload).expect("valid output") {
                Decoded::NeedMore => panic!("truncated output"),
                Decoded::Header { header, consumed } => {
                    rest = &rest[consumed..];
                    assert!(header.fin, "we never fragment");
                    if header.payload_len == 0 {
                        frames.push((header.opcode, Vec::new()));
                    } else {
                        opcode = Some(header.opcode);
                    }
                }
                Decoded::Payload {
                    consumed,
                    frame_done,
                } => {
                    rest = &rest[consumed..];
                    if frame_done {
                        let opcode = opcode.take().expect("header first");
                        frames.push((opcode, std::mem::take(&mut payload)));
                    }
                }
            }
        }
        frames
    }

    fn server_sent(conn: &mut Connection) -> Vec<(OpCode, Vec<u8>)> {
        sent(conn, Masking::Forbidden)
    }

    fn text(text: &str) -> Event {
        Event::Message(Message::Text(text.to_owned()))
    }

    /// Asserts that `conn` failed with `code`: a close frame with it went
    /// out and `Closed` came last.
    fn assert_failed(conn: &mut Connection, code: CloseCode) -> ProtocolError {
        let frames = server_sent(conn);
        let (opcode, payload) = frames.last().expect("a close frame was queued");
        assert_eq!(*opcode, OpCode::Close);
        assert_eq!(payload[..2], code.get().to_be_bytes());
        assert!(conn.is_closed());
        assert!(!conn.can_send_data());

        let events = events(conn);
        match events.last() {
            Some(Event::Closed(CloseInfo {
                code: got,
                cause: CloseCause::Violation(error),
                ..
            })) => {
                assert_eq!(*got, Some(code.get()));
                assert_eq!(error.close_code(), code);
                error.clone()
            }
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    /// Feeds `input` to a fresh server and asserts it fails with `code`.
    fn fails_with(input: &[u8], code: CloseCode) -> ProtocolError {
        let (mut conn, now) = server();
        conn.handle_input(now, input);
        assert_failed(&mut conn, code)
    }

    #[test]
    fn text_and_binary_messages_are_delivered() {
        let (mut conn, now) = server();
        let mut input = masked(OpCode::Text, true, "héllo".as_bytes());
        input.extend(masked(OpCode::Binary, true, &[0, 255, 7]));
        input.extend(masked(OpCode::Text, true, b""));
        conn.handle_input(now, &input);

        let expected = vec![
            text("héllo"),
            Event::Message(Message::Binary(vec![0, 255, 7])),
            text(""),
        ];
        assert_eq!(events(&mut conn), expected);
        assert!(!conn.poll_transmit(&mut Vec::new()));
    }

    #[test]
    fn fragments_are_reassembled_with_a_ping_between_them() {
        let (mut conn, now) = server();
        let mut input = masked(OpCode::Text, false, b"Hel");
        input.extend(masked(OpCode::Ping, true, b"are you there"));
        input.extend(masked(OpCode::Continuation, false, b"lo, "));
        input.extend(masked(OpCode::Continuation, true, b"world"));
        conn.handle_input(now, &input);

        assert_eq!(events(&mut conn), vec![text("Hello, world")]);
        let pong = (OpCode::Pong, b"are you there".to_vec());
        assert_eq!(server_sent(&mut conn), vec![pong]);
    }

    #[test]
    fn each_ping_is_answered_and_pongs_are_surfaced() {
        let (mut conn, now) = server();
        let mut input = masked(OpCode::Ping, true, b"1");
        input.extend(masked(OpCode::Ping, true, b""));
        input.extend(masked(OpCode::Pong, true, b"unsolicited"));
        conn.handle_input(now, &input);

        assert_eq!(
            events(&mut conn),
            vec![Event::Pong(b"unsolicited".to_vec())]
        );
        let expected = vec![(OpCode::Pong, b"1".to_vec()), (OpCode::Pong, Vec::new())];
        assert_eq!(server_sent(&mut conn), expected);
        assert!(!conn.is_closed());
    }

    #[test]
    fn framing_violations_answer_protocol_error() {
        let mut reserved_bits = masked(OpCode::Text, true, b"x");
        reserved_bits[0] |= 0x40;
        let mut unmasked = Vec::new();
        encode_frame(&mut unmasked, OpCode::Text, true, b"x", None);
        let mut long_ping = vec![0x89, 0xFE, 0x00, 0x7E];
        long_ping.extend(KEY);
        long_ping.extend([0; 126]);

        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("reserved bits", reserved_bits),
            ("unmasked from a client", unmasked),
            ("control over 125 bytes", long_ping),
            ("fragmented ping", masked(OpCode::Ping, false, b"")),
            ("fragmented close", masked(OpCode::Close, false, b"")),
            (
                "continuation first",
                masked(OpCode::Continuation, true, b"x"),
            ),
            ("non-minimal length", vec![0x81, 0xFE, 0x00, 0x05]),
            ("top bit set", vec![0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0]),
        ];
        for (name, input) in cases {
            let (mut conn, now) = server();
            conn.handle_input(now, &input);
            let error = assert_failed(&mut conn, CloseCode::PROTOCOL_ERROR);
            assert!(!error.to_string().is_empty(), "{name}");
        }

        for opcode in (0x3..=0x7).chain(0xB..=0xF) {
            let error = fails_with(&[0x80 | opcode, 0x80], CloseCode::PROTOCOL_ERROR);
            assert_eq!(
                error,
                ProtocolError::Frame(FrameError::ReservedOpCode { value: opcode })
            );
        }
    }

    #[test]
    fn new_message_inside_a_fragmented_one_is_refused() {
        let mut input = masked(OpCode::Text, false, b"part");
        input.extend(masked(OpCode::Text, true, b"other"));
        let error = fails_with(&input, CloseCode::PROTOCOL_ERROR);
        assert_eq!(error, ProtocolError::MessageAlreadyOpen);
    }

    #[test]
    fn masked_frame_from_a_server_is_refused_by_a_client() {
        let now = Instant::now();
        let mut client = Connection::new(Role::Client { mask_seed: 1 }, config(), now);
        client.handle_input(now, &masked(OpCode::Text, true, b"hi"));
        assert!(client.is_closed());

        let frames = sent(&mut client, Masking::Required);
        assert_eq!(frames[0].0, OpCode::Close);
        assert_eq!(frames[0].1[..2], 1002u16.to_be_bytes());
    }

    #[test]
    fn invalid_utf8_fails_within_a_frame_arriving_in_pieces() {
        let (mut conn, now) = server();
        let wire = masked(OpCode::Text, true, b"abc\xC0 and more text");

        // Header (6 bytes) and the payload up to and including the bad byte.
        conn.handle_input(now, &wire[..6 + 3]);
        assert!(!conn.is_closed());
        conn.handle_input(now, &wire[9..10]);
        let error = assert_failed(&mut conn, CloseCode::INVALID_PAYLOAD);
        assert_eq!(error, ProtocolError::InvalidUtf8(InvalidUtf8 { offset: 3 }));
    }

    #[test]
    fn invalid_utf8_split_across_fragments_fails_at_the_first_bad_byte() {
        let (mut conn, now) = server();
        conn.handle_input(now, &masked(OpCode::Text, false, b"ok \xF4"));
        assert!(events(&mut conn).is_empty());

        // 0xF4 0x90 can never be valid: no more input is needed to know.
        let second = masked(OpCode::Continuation, true, b"\x90\x80\x80 tail");
        conn.handle_input(now, &second[..6 + 1]);
        let error = assert_failed(&mut conn, CloseCode::INVALID_PAYLOAD);
        assert_eq!(error, ProtocolError::InvalidUtf8(InvalidUtf8 { offset: 4 }));
    }

    #[test]
    fn text_ending_mid_sequence_is_invalid() {
        let mut input = masked(OpCode::Text, false, b"a\xE2\x82");
        input.extend(masked(OpCode::Continuation, true, b""));
        fails_with(&input, CloseCode::INVALID_PAYLOAD);

        fails_with(
            &masked(OpCode::Text, true, b"a\xE2\x82"),
            CloseCode::INVALID_PAYLOAD,
        );
    }

    #[test]
    fn declared_length_over_the_limit_fails_before_any_payload() {
        // Only the header's first four bytes: a 5000-byte binary frame.
        let error = fails_with(&[0x82, 0xFE, 0x13, 0x88], CloseCode::MESSAGE_TOO_BIG);
        let expected = FrameError::PayloadTooLong {
            len: 5000,
            max: 1000,
        };
        assert_eq!(error, ProtocolError::Frame(expected));
    }

    #[test]
    fn fragments_over_the_limit_together_fail_at_the_header() {
        let (mut conn, now) = server();
        conn.handle_input(now, &masked(OpCode::Binary, false, &[1; 600]));
        assert!(!conn.is_closed());

        let next = masked(OpCode::Continuation, true, &[2; 500]);
        conn.handle_input(now, &next[..8]);
        let error = assert_failed(&mut conn, CloseCode::MESSAGE_TOO_BIG);
        assert_eq!(
            error,
            ProtocolError::MessageTooBig {
                size: 1100,
                max: 1000
            }
        );
    }

    #[test]
    fn message_at_the_limit_is_accepted() {
        let (mut conn, now) = server();
        let mut input = masked(OpCode::Binary, false, &[1; 400]);
        input.extend(masked(OpCode::Continuation, true, &[2; 600]));
        conn.handle_input(now, &input);
        let events = events(&mut conn);
        assert!(matches!(&events[..], [Event::Message(Message::Binary(b))] if b.len() == 1000));
    }

    #[test]
    fn binary_is_refused_on_a_text_only_connection_at_its_header() {
        let (mut conn, now) = server_with(ConnectionConfig::chat(&ServerConfig::default()));
        // The header alone (with its key), none of the payload.
        conn.handle_input(now, &masked(OpCode::Binary, false, b"data")[..6]);
        let error = assert_failed(&mut conn, CloseCode::UNSUPPORTED_DATA);
        assert_eq!(error, ProtocolError::BinaryNotAllowed);
    }

    #[test]
    fn invalid_close_payloads_are_answered_with_their_code() {
        for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
            let error = fails_with(
                &masked(OpCode::Close, true, &close_payload(code, "")),
                CloseCode::PROTOCOL_ERROR,
            );
            assert_eq!(
                error,
                ProtocolError::InvalidClose(InvalidClose::Code { code })
            );
        }

        let error = fails_with(
            &masked(OpCode::Close, true, &[0x03]),
            CloseCode::PROTOCOL_ERROR,
        );
        assert_eq!(error, ProtocolError::InvalidClose(InvalidClose::OneByte));

        let mut bad_reason = close_payload(1000, "");
        bad_reason.extend(b"\xFF");
        fails_with(
            &masked(OpCode::Close, true, &bad_reason),
            CloseCode::INVALID_PAYLOAD,
        );
    }

    #[test]
    fn peer_close_is_echoed_and_finishes() {
        let (mut conn, now) = server();
        conn.handle_input(
            now,
            &masked(OpCode::Close, true, &close_payload(4001, "bye")),
        );

        assert_eq!(
            server_sent(&mut conn),
            vec![(OpCode::Close, close_payload(4001, ""))]
        );
        let closed = CloseInfo {
            code: Some(4001),
            reason: "bye".into(),
            cause: CloseCause::ClosedByPeer,
        };
        assert_eq!(events(&mut conn), vec![Event::Closed(closed)]);
        assert!(conn.is_closed());
        assert_eq!(conn.poll_timeout(), None);
        assert_eq!(conn.send_text("late"), Err(SendError::CloseSent));
    }

    #[test]
    fn empty_close_is_answered_with_an_empty_close() {
        let (mut conn, now) = server();
        conn.handle_input(now, &masked(OpCode::Close, true, b""));
        assert_eq!(server_sent(&mut conn), vec![(OpCode::Close, Vec::new())]);
        let events = events(&mut conn);
        assert!(matches!(
            &events[..],
            [Event::Closed(CloseInfo { code: None, .. })]
        ));
    }

    #[test]
    fn nothing_after_the_peer_close_is_processed() {
        let (mut conn, now) = server();
        let mut input = masked(OpCode::Close, true, &close_payload(1000, ""));
        input.extend(masked(OpCode::Text, true, b"ignored"));
        input.extend(masked(OpCode::Ping, true, b"ignored"));
        input.extend([0xFF; 20]);
        conn.handle_input(now, &input);
        conn.handle_input(now, &masked(OpCode::Text, true, b"later"));

        assert_eq!(server_sent(&mut conn).len(), 1);
        let events = events(&mut conn);
        assert!(matches!(&events[..], [Event::Closed(_)]), "{events:?}");
    }

    #[test]
    fn after_our_close_data_is_ignored_until_the_peer_answers() {
        let (mut conn, now) = server();
        conn.close(now, CloseCode::GOING_AWAY, "shutting down");
        assert!(!conn.can_send_data());
        assert!(!conn.is_closed());
        assert_eq!(conn.send_binary(b"x"), Err(SendError::CloseSent));
        let close = (OpCode::Close, close_payload(1001, "shutting down"));
        assert_eq!(server_sent(&mut conn), vec![close]);

        let mut input = masked(OpCode::Text, true, b"still talking");
        input.extend(masked(OpCode::Ping, true, b"p"));
        input.extend(masked(OpCode::Close, true, &close_payload(1000, "")));
        conn.handle_input(now, &input);

        assert!(server_sent(&mut conn).is_empty(), "no pong after our close");
        let closed = CloseInfo {
            code: Some(1001),
            reason: "shutting down".into(),
            cause: CloseCause::ClosedByUs { acknowledged: true },
        };
        assert_eq!(events(&mut conn), vec![Event::Closed(closed)]);
        assert!(conn.is_closed());
    }

    #[test]
    fn large_frames_after_our_close_are_skipped_in_any_pieces() {
        let (mut conn, now) = server();
        conn.handle_input(now, &masked(OpCode::Text, false, &[b'a'; 500]));
        conn.close(now, CloseCode::NORMAL, "");
        server_sent(&mut conn);

        let mut input = masked(OpCode::Continuation, false, &[b'b'; 900]);
        input.extend(masked(OpCode::Continuation, true, &[0xFF; 900]));
        input.extend(masked(OpCode::Close, true, b""));
        for piece in input.chunks(700) {
            conn.handle_input(now, piece);
        }
        let events = events(&mut conn);
        let acknowledged = CloseCause::ClosedByUs { acknowledged: true };
        assert!(matches!(&events[..], [Event::Closed(info)] if info.cause == acknowledged));
    }

    #[test]
    fn a_violation_after_our_close_finishes_without_a_second_close() {
        let (mut conn, now) = server();
        conn.close(now, CloseCode::GOING_AWAY, "bye");
        server_sent(&mut conn);

        conn.handle_input(now, &[0x83]);
        assert!(conn.is_closed());
        assert!(server_sent(&mut conn).is_empty());
        let events = events(&mut conn);
        let Some(Event::Closed(info)) = events.last() else {
            panic!("expected Closed, got {events:?}");
        };
        assert_eq!((info.code, info.reason.as_str()), (Some(1001), "bye"));
        let reserved = ProtocolError::Frame(FrameError::ReservedOpCode { value: 3 });
        assert_eq!(info.cause, CloseCause::Violation(reserved));
    }

    #[test]
    fn messages_before_a_violation_can_be_answered_before_the_close() {
        let (mut conn, now) = server();
        let mut input = masked(OpCode::Text, true, b"first");
        input.extend(masked(OpCode::Text, true, b"second"));
        input.extend([0x85, 0x80, 0, 0, 0, 0]);
        input.extend(masked(OpCode::Text, true, b"never read"));
        conn.handle_input(now, &input);
        assert_eq!(conn.poll_timeout(), None, "no timer while the ending waits");

        assert_eq!(conn.poll_event(), Some(text("first")));
        conn.send_text("first").unwrap();
        assert_eq!(conn.poll_event(), Some(text("second")));
        conn.send_text("second").unwrap();
        assert!(!conn.is_closed());
        assert!(matches!(conn.poll_event(), Some(Event::Closed(_))));
        assert_eq!(conn.poll_event(), None);

        let frames = server_sent(&mut conn);
        let opcodes: Vec<OpCode> = frames.iter().map(|(opcode, _)| *opcode).collect();
        assert_eq!(opcodes, [OpCode::Text, OpCode::Text, OpCode::Close]);
        assert!(conn.is_closed());
    }

    #[test]
    fn messages_before_the_peer_close_can_be_answered_before_the_echo() {
        let (mut conn, now) = server();
        let mut input = masked(OpCode::Text, true, b"last words");
        input.extend(masked(OpCode::Close, true, &close_payload(1000, "")));
        input.extend(masked(OpCode::Ping, true, b"ignored"));
        conn.handle_input(now, &input);

        assert_eq!(conn.poll_event(), Some(text("last words")));
        conn.send_text("last words").unwrap();
        let closed = conn.poll_event();
        assert!(matches!(
            closed,
            Some(Event::Closed(CloseInfo {
                code: Some(1000),
                ..
            }))
        ));

        let expected = vec![
            (OpCode::Text, b"last words".to_vec()),
            (OpCode::Close, close_payload(1000, "")),
        ];
        assert_eq!(server_sent(&mut conn), expected);
    }

    #[test]
    fn our_close_times_out_without_an_answer() {
        let (mut conn, now) = server();
        conn.close(now, CloseCode::NORMAL, "");
        let deadline = now + Duration::from_secs(5);
        assert_eq!(conn.poll_timeout(), Some(deadline));

        conn.handle_timeout(deadline - Duration::from_millis(1));
        assert!(!conn.is_closed());
        conn.handle_timeout(deadline);
        assert!(conn.is_closed());
        let events = events(&mut conn);
        let acknowledged = CloseCause::ClosedByUs {
            acknowledged: false,
        };
        assert!(matches!(&events[..], [Event::Closed(info)] if info.cause == acknowledged));
    }

    #[test]
    fn a_hang_up_after_our_close_reports_our_code() {
        let (mut conn, now) = server();
        conn.close(now, CloseCode::POLICY_VIOLATION, "queue over its bound");
        conn.handle_eof();
        let events = events(&mut conn);
        let unanswered = CloseCause::ClosedByUs {
            acknowledged: false,
        };
        assert!(matches!(
            &events[..],
            [Event::Closed(info)] if info.code == Some(1008) && info.cause == unanswered
        ));
    }

    #[test]
    fn the_close_timeout_counts_from_the_close_not_the_last_input() {
        let (mut conn, now) = server();
        let much_later = now + Duration::from_secs(20);
        conn.close(
            much_later,
            CloseCode::POLICY_VIOLATION,
            "queue over its bound",
        );
        assert_eq!(
            conn.poll_timeout(),
            Some(much_later + Duration::from_secs(5))
        );

        conn.handle_timeout(much_later + Duration::from_secs(1));
        assert!(!conn.is_closed());
    }

    #[test]
    fn a_silent_peer_is_pinged_then_given_up() {
        let (mut conn, start) = server();
        let idle = start + Duration::from_secs(30);
        assert_eq!(conn.poll_timeout(), Some(idle));

        conn.handle_timeout(idle - Duration::from_secs(1));
        assert!(server_sent(&mut conn).is_empty());
        conn.handle_timeout(idle);
        assert_eq!(server_sent(&mut conn), vec![(OpCode::Ping, Vec::new())]);
        let give_up = idle + Duration::from_secs(10);
        assert_eq!(conn.poll_timeout(), Some(give_up));

        conn.handle_timeout(give_up);
        assert!(conn.is_closed());
        assert!(
            server_sent(&mut conn).is_empty(),
            "no handshake with a silent peer"
        );
        let closed = CloseInfo {
            code: Some(1006),
            reason: "timed out".into(),
            cause: CloseCause::TimedOut,
        };
        assert_eq!(events(&mut conn), vec![Event::Closed(closed)]);
    }

    #[test]
    fn any_received_byte_counts_as_activity() {
        let (mut conn, start) = server();
        let ping_at = start + Duration::from_secs(30);
        conn.handle_timeout(ping_at);
        assert_eq!(server_sent(&mut conn).len(), 1);

        // One byte of a frame header, no pong: the peer is alive.
        let later = ping_at + Duration::from_secs(5);
        conn.handle_input(later, &[0x81]);
        assert_eq!(conn.poll_timeout(), Some(later + Duration::from_secs(30)));
        conn.handle_timeout(ping_at + Duration::from_secs(10));
        assert!(!conn.is_closed());
    }

    #[test]
    fn end_of_stream_finishes_as_lost() {
        let (mut conn, _) = server();
        conn.handle_eof();
        conn.handle_eof();
        let events = events(&mut conn);
        let lost = |info: &CloseInfo| info.cause == CloseCause::ConnectionLost;
        assert!(matches!(&events[..], [Event::Closed(info)] if lost(info)));
    }

    /// A client input stream touching every path: fragments, controls
    /// between them, empty frames, 16-bit lengths, and a close.
    fn sample_stream() -> Vec<u8> {
        let mut input = masked(OpCode::Text, false, "Grüß".as_bytes());
        input.extend(masked(OpCode::Ping, true, b"ping"));
        input.extend(masked(OpCode::Continuation, false, b""));
        input.extend(masked(OpCode::Continuation, true, "€ and 𝄞".as_bytes()));
        input.extend(masked(OpCode::Binary, true, &[0xAB; 300]));
        input.extend(masked(OpCode::Pong, true, b""));
        input.extend(masked(OpCode::Text, true, &[b'z'; 126]));
        input.extend(masked(OpCode::Close, true, &close_payload(1000, "done")));
        input
    }

    /// Feeds `input` split at the given positions and returns the events
    /// and transmitted bytes.
    fn run_split(input: &[u8], splits: &[usize]) -> (Vec<Event>, Vec<u8>) {
        let (mut conn, now) = server();
        let mut start = 0;
        for &end in splits.iter().chain(std::iter::once(&input.len())) {
            let end = end.clamp(start, input.len());
            conn.handle_input(now, &input[start..end]);
            start = end;
        }
        let mut wire = Vec::new();
        conn.poll_transmit(&mut wire);
        (events(&mut conn), wire)
    }

    #[test]
    fn every_split_position_gives_the_same_events() {
        let input = sample_stream();
        let whole = run_split(&input, &[]);
        assert_eq!(whole.0.len(), 5, "{:?}", whole.0);

        for split in 0..=input.len() {
            assert!(run_split(&input, &[split]) == whole, "split at {split}");
        }
        let bytewise: Vec<usize> = (1..input.len()).collect();
        assert!(run_split(&input, &bytewise) == whole);
    }

    /// Two connections wired back to back, with a shared clock.
    struct Pair {
        client: Connection,
        server: Connection,
        now: Instant,
    }

    impl Pair {
        fn new(server_config: ConnectionConfig) -> Pair {
            let now = Instant::now();
            Pair {
                client: Connection::new(Role::Client { mask_seed: 42 }, config(), now),
                server: Connection::new(Role::Server, server_config, now),
                now,
            }
        }

        /// Moves bytes both ways until neither side has any to send.
        fn exchange(&mut self) {
            let mut wire = Vec::new();
            loop {
                let mut moved = false;
                if self.client.poll_transmit(&mut wire) {
                    self.server.handle_input(self.now, &wire);
                    wire.clear();
                    moved = true;
                }
                if self.server.poll_transmit(&mut wire) {
                    self.client.handle_input(self.now, &wire);
                    wire.clear();
                    moved = true;
                }
                if !moved {
                    return;
                }
            }
        }

        /// Jumps to the earlier deadline of the two and fires it.
        fn advance(&mut self) -> bool {
            let deadlines = [self.client.poll_timeout(), self.server.poll_timeout()];
            let Some(next) = deadlines.into_iter().flatten().min() else {
                return false;
            };
            self.now = next;
            self.client.handle_timeout(next);
            self.server.handle_timeout(next);
            self.exchange();
            true
        }
    }

    #[test]
    fn client_and_server_converse_and_close_cleanly() {
        let mut pair = Pair::new(ConnectionConfig::echo(&ServerConfig::default()));
        pair.client.send_text("hello").unwrap();
        pair.client.send_binary(&[1, 2, 3]).unwrap();
        pair.exchange();

        // The server echoes what it got, as /echo does.
        let received = events(&mut pair.server);
        assert_eq!(received[0], text("hello"));
        for event in received {
            match event {
                Event::Message(Message::Text(text)) => pair.server.send_text(&text).unwrap(),
                Event::Message(Message::Binary(data)) => pair.server.send_binary(&data).unwrap(),
                other => panic!("unexpected {other:?}"),
            }
        }
        pair.exchange();
        let echoed = vec![
            text("hello"),
            Event::Message(Message::Binary(vec![1, 2, 3])),
        ];
        assert_eq!(events(&mut pair.client), echoed);

        let now = pair.now;
        pair.server.close(now, CloseCode::GOING_AWAY, "restart");
        pair.exchange();
        assert!(pair.server.is_closed() && pair.client.is_closed());
        let client_closed = events(&mut pair.client);
        let by_peer = |info: &CloseInfo| {
            info.code == Some(1001)
                && info.reason == "restart"
                && info.cause == CloseCause::ClosedByPeer
        };
        assert!(matches!(&client_closed[..], [Event::Closed(info)] if by_peer(info)));
        let server_closed = events(&mut pair.server);
        let acked = CloseCause::ClosedByUs { acknowledged: true };
        assert!(matches!(&server_closed[..], [Event::Closed(info)] if info.cause == acked));
    }

    #[test]
    fn heartbeats_keep_an_idle_pair_alive() {
        let mut pair = Pair::new(config());
        for _ in 0..50 {
            assert!(pair.advance());
        }
        assert!(!pair.client.is_closed() && !pair.server.is_closed());
        assert!(events(&mut pair.server).contains(&Event::Pong(Vec::new())));
    }

    #[test]
    fn debug_output_shows_no_message_text() {
        let (mut conn, now) = server();
        conn.handle_input(now, &masked(OpCode::Text, false, b"secret words"));
        conn.send_text("private reply").unwrap();
        let shown = format!("{conn:?}");
        assert!(
            !shown.contains("secret") && !shown.contains("private"),
            "{shown}"
        );
        assert!(shown.contains("message_bytes: 12"), "{shown}");
    }

    #[test]
    fn a_client_replays_its_masks_from_its_seed() {
        let now = Instant::now();
        let run = || {
            let mut client = Connection::new(Role::Client { mask_seed: 9 }, config(), now);
            client.send_text("same bytes").unwrap();
            let mut wire = Vec::new();
            client.poll_transmit(&mut wire);
            wire
        };
        assert_eq!(run(), run());
    }

    fn any_message() -> impl Strategy<Value = (bool, Vec<u8>, usize)> {
        let text = ".{0,40}".prop_map(String::into_bytes);
        let data = proptest::collection::vec(any::<u8>(), 0..200);
        (any::<bool>(), prop_oneof![text, data], 1usize..4)
    }

    /// Encodes a message as `fragments` client frames, pinging between them.
    fn encode_message(out: &mut Vec<u8>, is_text: bool, payload: &[u8], fragments: usize) {
        let size = payload.len().div_ceil(fragments).max(1);
        let mut pieces: Vec<&[u8]> = payload.chunks(size).collect();
        if pieces.is_empty() {
            pieces.push(&[]);
        }
        let last = pieces.len() - 1;
        for (index, piece) in pieces.into_iter().enumerate() {
            let opcode = match (index, is_text) {
                (0, true) => OpCode::Text,
                (0, false) => OpCode::Binary,
                _ => OpCode::Continuation,
            };
            out.extend(masked(opcode, index == last, piece));
            if index != last {
                out.extend(masked(OpCode::Ping, true, &[index as u8]));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn any_split_of_a_valid_stream_gives_the_same_events(
            messages in proptest::collection::vec(any_message(), 0..6),
            splits in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut input = Vec::new();
            for (is_text, payload, fragments) in &messages {
                let is_text = *is_text && std::str::from_utf8(payload).is_ok();
                encode_message(&mut input, is_text, payload, *fragments);
            }
            let mut splits: Vec<usize> = splits.iter().map(|s| s.index(input.len() + 1)).collect();
            splits.sort_unstable();

            let whole = run_split(&input, &[]);
            prop_assert_eq!(whole.0.len(), messages.len());
            prop_assert_eq!(run_split(&input, &splits), whole);
        }

        #[test]
        fn arbitrary_input_never_panics_and_stays_consistent(
            input in proptest::collection::vec(any::<u8>(), 0..300),
            chunk in 1usize..16,
        ) {
            let (mut conn, now) = server();
            for piece in input.chunks(chunk) {
                conn.handle_input(now, piece);
            }
            let events = events(&mut conn);
            let closed = events.iter().filter(|e| matches!(e, Event::Closed(_))).count();
            prop_assert_eq!(closed, usize::from(conn.is_closed()));
            if closed == 1 {
                prop_assert!(matches!(events.last(), Some(Event::Closed(_))));
            }
        }
    }
}
