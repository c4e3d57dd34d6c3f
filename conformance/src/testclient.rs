//! Blocking WebSocket and HTTP clients for the live tests.
//!
//! [`TestClient`] drives the core's client-side [`Connection`] over a std
//! `TcpStream`, so it speaks exactly the protocol the terminal client does.
//! [`RawClient`] reads frames straight off the socket, for tests that must
//! see what the core would answer by itself (an idle ping). [`http_request`]
//! sends any bytes and parses the HTTP response that comes back.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use natter_core::close::CloseCode;
use natter_core::connection::{CloseInfo, Connection, ConnectionConfig, Event, Message, Role};
use natter_core::frame::{encode_frame, OpCode};
use natter_core::handshake::{ClientHandshake, ClientHandshakeError};

/// Longest the clients wait for a response head or a handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest response head the clients accept.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// Largest message a test client accepts (the echo limit is 16 MiB).
const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

/// Size of each socket read.
const READ_CHUNK: usize = 64 * 1024;

/// What a [`TestClient`] received, in the order it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A whole text message.
    Text(String),
    /// A whole binary message.
    Binary(Vec<u8>),
    /// A pong, with its payload.
    Pong(Vec<u8>),
    /// The connection finished; nothing follows.
    Closed(ClientClose),
}

/// How a [`TestClient`]'s connection finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientClose {
    /// The close code that started the closing handshake; 1006 when the
    /// stream ended without one, `None` for a close frame with no code.
    pub code: Option<u16>,
    /// The reason that came with the code.
    pub reason: String,
}

impl From<CloseInfo> for ClientClose {
    fn from(info: CloseInfo) -> ClientClose {
        ClientClose {
            code: info.code,
            reason: info.reason,
        }
    }
}

/// Why [`TestClient::connect`] did not open a WebSocket.
#[derive(Debug)]
pub enum ConnectError {
    /// The socket failed.
    Io(io::Error),
    /// The server answered with a status other than 101.
    Refused {
        /// The HTTP status.
        status: u16,
        /// The response body (natter's one-line reason).
        body: Vec<u8>,
    },
    /// The server's answer broke the upgrade rules of RFC 6455 §4.1.
    Handshake(ClientHandshakeError),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Io(e) => write!(f, "io error: {e}"),
            ConnectError::Refused { status, body } => {
                write!(
                    f,
                    "refused with {status}: {}",
                    String::from_utf8_lossy(body)
                )
            }
            ConnectError::Handshake(e) => write!(f, "bad upgrade answer: {e}"),
        }
    }
}

impl From<ClientHandshakeError> for ConnectError {
    fn from(e: ClientHandshakeError) -> ConnectError {
        match e {
            ClientHandshakeError::Refused { status, body, .. } => ConnectError::Refused {
                status,
                body: body.into_bytes(),
            },
            other => ConnectError::Handshake(other),
        }
    }
}

impl std::error::Error for ConnectError {}

impl From<io::Error> for ConnectError {
    fn from(e: io::Error) -> ConnectError {
        ConnectError::Io(e)
    }
}

/// A blocking WebSocket client for tests, driving the core's [`Connection`].
///
/// Pings are answered by the connection itself; every other thing the
/// server sends comes out of [`next_event`](Self::next_event). Dropping the
/// client drops the socket without a close frame, like a vanished peer.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use natter_conformance::testclient::TestClient;
///
/// let addr = "127.0.0.1:8080".parse().unwrap();
/// let path = "/joinRoom?user_name=ana&room_code=lobby&session_id=k3J9x0aa";
/// let mut client = TestClient::connect(addr, path)?;
/// let welcome = client.next_json(Duration::from_secs(5));
/// client.send_text("hello")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct TestClient {
    stream: TcpStream,
    conn: Connection,
    read_buf: Vec<u8>,
    out: Vec<u8>,
    close_info: Option<ClientClose>,
}

impl TestClient {
    /// Opens a WebSocket to `path_and_query` on `addr`.
    ///
    /// # Errors
    ///
    /// [`ConnectError::Refused`] with the status, headers and body when the
    /// server does not answer 101; `Io` or `BadUpgrade` otherwise.
    pub fn connect(addr: SocketAddr, path_and_query: &str) -> Result<TestClient, ConnectError> {
        TestClient::connect_with(addr, path_and_query, &[], None)
    }

    /// Opens a WebSocket with extra request headers, optionally writing a
    /// first text message in the same write as the request head.
    ///
    /// The request comes from the core's [`ClientHandshake`]; an `Origin`
    /// among `headers` is passed to it, any other header is added as given.
    ///
    /// # Errors
    ///
    /// As [`TestClient::connect`].
    pub fn connect_with(
        addr: SocketAddr,
        path_and_query: &str,
        headers: &[(&str, &str)],
        pipelined_text: Option<&str>,
    ) -> Result<TestClient, ConnectError> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        let (mut handshake, mut request) = client_request(addr, path_and_query, headers);

        let config = ConnectionConfig {
            max_message_bytes: MAX_MESSAGE_BYTES,
            idle_ping_after: None,
            ..ConnectionConfig::client()
        };
        let role = Role::Client {
            mask_seed: fastrand::u64(..),
        };
        let mut conn = Connection::new(role, config, Instant::now());
        if let Some(text) = pipelined_text {
            // Our close has not gone out, so queuing cannot fail.
            let _ = conn.send_text(text);
            conn.poll_transmit(&mut request);
        }
        stream.write_all(&request)?;

        let leftover = finish_handshake(&mut stream, &mut handshake)?;
        conn.handle_input(Instant::now(), &leftover);
        Ok(TestClient {
            stream,
            conn,
            read_buf: vec![0; READ_CHUNK],
            out: Vec::new(),
            close_info: None,
        })
    }

    /// Sends one text message.
    ///
    /// # Errors
    ///
    /// Fails when the socket write fails or the connection is closing.
    pub fn send_text(&mut self, text: &str) -> io::Result<()> {
        self.conn.send_text(text).map_err(io::Error::other)?;
        self.flush()
    }

    /// Sends one binary message.
    ///
    /// # Errors
    ///
    /// Fails when the socket write fails or the connection is closing.
    pub fn send_binary(&mut self, data: &[u8]) -> io::Result<()> {
        self.conn.send_binary(data).map_err(io::Error::other)?;
        self.flush()
    }

    /// Writes bytes to the socket as they are, bypassing the connection.
    ///
    /// # Errors
    ///
    /// Fails when the socket write fails.
    pub fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Starts the closing handshake with `code`; the server's answer comes
    /// out of [`next_event`](Self::next_event) as [`ClientEvent::Closed`].
    pub fn close(&mut self, code: u16) {
        let code = CloseCode::new(code).unwrap_or(CloseCode::NORMAL);
        self.conn.close(Instant::now(), code, "");
        let _ = self.flush();
    }

    /// Returns how the connection finished, once it has.
    pub fn close_info(&self) -> Option<&ClientClose> {
        self.close_info.as_ref()
    }

    /// Returns the next event, reading the socket for up to `timeout`;
    /// `None` when nothing came in time or the connection already finished.
    pub fn next_event(&mut self, timeout: Duration) -> Option<ClientEvent> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(event) = self.conn.poll_event() {
                let _ = self.flush();
                return Some(self.convert(event));
            }
            if self.close_info.is_some() {
                return None;
            }

            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            if self.conn.poll_timeout().is_some_and(|at| at <= now) {
                self.conn.handle_timeout(now);
                let _ = self.flush();
                continue;
            }
            self.read_once(now, deadline);
        }
    }

    /// Returns the next text message parsed as JSON, skipping pongs; `None`
    /// when the connection finished or nothing came in time.
    ///
    /// # Panics
    ///
    /// Panics when a binary message or a text that is not JSON arrives: the
    /// chat protocol sends neither.
    pub fn next_json(&mut self, timeout: Duration) -> Option<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next_event(left)? {
                ClientEvent::Text(text) => match serde_json::from_str(&text) {
                    Ok(value) => return Some(value),
                    Err(e) => panic!("server sent text that is not JSON ({e}): {text}"),
                },
                ClientEvent::Binary(data) => panic!("server sent binary: {data:?}"),
                ClientEvent::Pong(_) => {}
                ClientEvent::Closed(_) => return None,
            }
        }
    }

    /// Reads and discards messages until the connection finishes, for up to
    /// `timeout`; returns how it finished.
    pub fn wait_closed(&mut self, timeout: Duration) -> Option<ClientClose> {
        let deadline = Instant::now() + timeout;
        while self.close_info.is_none() {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.next_event(left)?;
        }
        self.close_info.clone()
    }

    /// Returns the client's local socket address.
    ///
    /// # Errors
    ///
    /// Fails when the socket cannot report it.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stream.local_addr()
    }

    /// Maps a core event to a client event, remembering a close.
    fn convert(&mut self, event: Event) -> ClientEvent {
        match event {
            Event::Message(Message::Text(text)) => ClientEvent::Text(text),
            Event::Message(Message::Binary(data)) => ClientEvent::Binary(data),
            Event::Pong(payload) => ClientEvent::Pong(payload),
            Event::Closed(info) => {
                let close = ClientClose::from(info);
                self.close_info = Some(close.clone());
                ClientEvent::Closed(close)
            }
        }
    }

    /// Reads once, waiting until the earlier of `deadline` and the
    /// connection's own timer, and hands what came to the connection.
    fn read_once(&mut self, now: Instant, deadline: Instant) {
        let until = match self.conn.poll_timeout() {
            Some(timer) => timer.min(deadline),
            None => deadline,
        };
        let wait = until
            .saturating_duration_since(now)
            .max(Duration::from_millis(1));
        if self.stream.set_read_timeout(Some(wait)).is_err() {
            self.conn.handle_eof();
            return;
        }

        match self.stream.read(&mut self.read_buf) {
            Ok(0) => self.conn.handle_eof(),
            Ok(n) => {
                let bytes = &self.read_buf[..n];
                self.conn.handle_input(Instant::now(), bytes);
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => self.conn.handle_eof(),
        }
        let _ = self.flush();
    }

    /// Writes whatever the connection has to send.
    fn flush(&mut self) -> io::Result<()> {
        self.out.clear();
        if self.conn.poll_transmit(&mut self.out) {
            self.stream.write_all(&self.out)?;
        }
        Ok(())
    }
}

/// Tells whether a read error only means the read timeout passed.
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Returns the core's client handshake for `path_and_query` and the
/// request to write, with `headers` added (an `Origin` goes through the
/// handshake itself).
fn client_request(
    addr: SocketAddr,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> (ClientHandshake, Vec<u8>) {
    let key: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    let origin = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("origin"))
        .map(|(_, value)| *value);
    let host = addr.to_string();
    let (handshake, mut request) = ClientHandshake::new(&host, path_and_query, key, origin);

    // The request ends with the blank line; other headers go before it.
    let others = headers
        .iter()
        .filter(|(name, _)| !name.eq_ignore_ascii_case("origin"));
    let mut extra = Vec::new();
    for (name, value) in others {
        extra.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    let end = request.len().saturating_sub(2);
    request.splice(end..end, extra);
    (handshake, request)
}

/// Reads the server's answer through `handshake` and returns the bytes that
/// followed a 101.
fn finish_handshake(
    stream: &mut TcpStream,
    handshake: &mut ClientHandshake,
) -> Result<Vec<u8>, ConnectError> {
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            handshake.handle_eof()?;
            return Err(ClientHandshakeError::ClosedBeforeResponse.into());
        }
        if let Some(leftover) = handshake.handle_input(&chunk[..n])? {
            return Ok(leftover);
        }
    }
}

/// A parsed HTTP response head.
#[derive(Debug, Clone)]
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
}

impl Head {
    /// Returns the first value of a header, compared case-insensitively.
    fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// Returns the first value of header `name` in `headers`, ignoring case.
fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Reads a response head and returns it with the bytes read past it.
fn read_head(stream: &mut TcpStream) -> io::Result<(Head, Vec<u8>)> {
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(io::Error::other("response head too large"));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("stream ended after {} bytes of head", buf.len()),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };

    let head = parse_head(&buf[..end])?;
    Ok((head, buf[end..].to_vec()))
}

/// Parses a status line and header lines.
fn parse_head(bytes: &[u8]) -> io::Result<Head> {
    let text = std::str::from_utf8(bytes).map_err(|_| io::Error::other("head not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let status = parts.next().and_then(|s| s.parse().ok());
    let status = match status {
        Some(status) if version.starts_with("HTTP/1.") => status,
        _ => return Err(io::Error::other(format!("bad status line {status_line:?}"))),
    };

    let mut headers = Vec::new();
    for line in lines.filter(|line| !line.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(io::Error::other(format!("bad header line {line:?}")));
        };
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    Ok(Head { status, headers })
}

/// Reads the body that follows `head`: `Content-Length` bytes when given,
/// else everything until the server closes.
fn read_body(stream: &mut TcpStream, head: &Head, mut body: Vec<u8>) -> io::Result<Vec<u8>> {
    let length = head
        .header("content-length")
        .and_then(|value| value.parse::<usize>().ok());
    let mut chunk = [0u8; 4096];
    while length.is_none_or(|length| body.len() < length) {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A reset after the whole response is only the server hanging up.
            Err(_) if length.is_none() => break,
            Err(e) => return Err(e),
        }
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(io::Error::other("response body too large"));
        }
    }
    if let Some(length) = length {
        body.truncate(length);
    }
    Ok(body)
}

/// An HTTP response read by [`http_request`].
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, names as sent.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// Returns the first value of a header, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<String> {
        find_header(&self.headers, name).map(str::to_string)
    }
}

/// Sends `raw` as it is on a new connection and reads the response.
///
/// A write that fails because the server already answered and hung up (as
/// it may for an oversized head) is not an error: the response is read all
/// the same.
///
/// # Errors
///
/// Fails when connecting fails, when no complete response head arrives
/// within ten seconds, or when the body is cut short.
pub fn http_request(addr: SocketAddr, raw: &[u8]) -> io::Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
    if let Err(e) = stream.write_all(raw) {
        if !matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ) {
            return Err(e);
        }
    }

    let (head, leftover) = read_head(&mut stream)?;
    let body = read_body(&mut stream, &head, leftover)?;
    Ok(Response {
        status: head.status,
        headers: head.headers,
        body,
    })
}

/// Returns one masked client frame, as a client would send it.
///
/// `opcode` is the raw 4-bit value, so tests can send reserved ones too.
pub fn masked_frame(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = Vec::with_capacity(payload.len() + 14);
    match OpCode::from_u8(opcode) {
        Some(opcode) => encode_frame(&mut out, opcode, fin, payload, Some(mask)),
        None => {
            // Reserved opcodes have no OpCode; build a text frame and patch it.
            encode_frame(&mut out, OpCode::Text, fin, payload, Some(mask));
            if let Some(first) = out.first_mut() {
                *first = (*first & 0xf0) | (opcode & 0x0f);
            }
        }
    }
    out
}

/// One frame as read off the wire by [`RawClient`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// The FIN bit.
    pub fin: bool,
    /// The 4-bit opcode.
    pub opcode: u8,
    /// The payload, unmasked.
    pub payload: Vec<u8>,
}

/// A WebSocket client that leaves the protocol to the test: it upgrades,
/// then reads whole frames straight off the socket and writes raw bytes.
#[derive(Debug)]
pub struct RawClient {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    /// Upgrades a connection to `path_and_query` on `addr`.
    ///
    /// # Errors
    ///
    /// Fails on socket errors and when the answer is not a 101.
    pub fn upgrade(addr: SocketAddr, path_and_query: &str) -> io::Result<RawClient> {
        let mut stream = TcpStream::connect(addr)?;
        let (mut handshake, request) = client_request(addr, path_and_query, &[]);
        stream.write_all(&request)?;
        match finish_handshake(&mut stream, &mut handshake) {
            Ok(leftover) => Ok(RawClient {
                stream,
                buf: leftover,
            }),
            Err(ConnectError::Io(e)) => Err(e),
            Err(other) => Err(io::Error::other(other.to_string())),
        }
    }

    /// Writes bytes as they are.
    ///
    /// # Errors
    ///
    /// Fails when the socket write fails.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Reads the next whole frame, waiting up to `timeout`; `Ok(None)` when
    /// the stream ended first.
    ///
    /// # Errors
    ///
    /// Fails when the socket fails, when nothing whole arrives in time
    /// (`TimedOut`), or when a frame declares more than 32 MiB.
    pub fn read_frame(&mut self, timeout: Duration) -> io::Result<Option<RawFrame>> {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 4096];
        loop {
            if let Some((frame, used)) = parse_frame(&self.buf)? {
                self.buf.drain(..used);
                return Ok(Some(frame));
            }

            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if is_timeout(&e) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Parses one whole frame from the front of `buf`, returning it and the
/// bytes it took, or `None` when more bytes are needed.
fn parse_frame(buf: &[u8]) -> io::Result<Option<(RawFrame, usize)>> {
    let (Some(&first), Some(&second)) = (buf.first(), buf.get(1)) else {
        return Ok(None);
    };
    let masked = second & 0x80 != 0;
    let (len, mut at) = match second & 0x7f {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 4),
            None => return Ok(None),
        },
        127 => match buf.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(b) => (u64::from_be_bytes(b), 10),
            None => return Ok(None),
        },
        short => (u64::from(short), 2),
    };
    if len > MAX_MESSAGE_BYTES as u64 {
        return Err(io::Error::other(format!("frame declares {len} bytes")));
    }

    let mask = if masked {
        let Some(key) = buf.get(at..at + 4) else {
            return Ok(None);
        };
        at += 4;
        Some([key[0], key[1], key[2], key[3]])
    } else {
        None
    };
    // The length was checked against the limit above, so it fits a usize.
    let end = at + len as usize;
    let Some(payload) = buf.get(at..end) else {
        return Ok(None);
    };
    let mut payload = payload.to_vec();
    if let Some(key) = mask {
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= key[i % 4];
        }
    }

    let frame = RawFrame {
        fin: first & 0x80 != 0,
        opcode: first & 0x0f,
        payload,
    };
    Ok(Some((frame, end)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_frames_parse_in_every_length_form() {
        for len in [0, 125, 126, 65_535, 65_536] {
            let mut wire = Vec::new();
            let payload = vec![9u8; len];
            encode_frame(&mut wire, OpCode::Binary, true, &payload, None);
            let (frame, used) = parse_frame(&wire).expect("valid").expect("whole");
            assert_eq!(used, wire.len());
            assert_eq!(frame.payload, payload);
            assert_eq!(parse_frame(&wire[..wire.len() - 1]).expect("valid"), None);
        }
    }

    #[test]
    fn masked_frames_unmask() {
        let wire = masked_frame(0x9, true, b"abc");
        let (frame, _) = parse_frame(&wire).expect("valid").expect("whole");
        assert_eq!((frame.opcode, frame.payload), (0x9, b"abc".to_vec()));
    }

    #[test]
    fn huge_declared_length_is_refused_without_allocating() {
        let wire = [0x82, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
        assert!(parse_frame(&wire).is_err());
    }

    #[test]
    fn response_heads_parse() {
        let head = parse_head(b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n\r\n")
            .expect("valid head");
        assert_eq!(head.status, 405);
        assert_eq!(head.header("allow"), Some("GET"));
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
    }

    #[test]
    fn extra_headers_go_before_the_blank_line() {
        let addr = SocketAddr::from(([127, 0, 0, 1], 9));
        let headers = [("Origin", "https://a.example"), ("X-Test", "1")];
        let (_, request) = client_request(addr, "/echo", &headers);
        let text = String::from_utf8(request).expect("ASCII request");
        assert!(text.contains("\r\nOrigin: https://a.example\r\n"));
        assert!(text.ends_with("\r\nX-Test: 1\r\n\r\n"));
    }
}
