//! The client side of the upgrade: WebSocket URLs, the request, and the
//! checks on the server's answer (RFC 6455 §4.1).

use std::fmt;
use std::net::Ipv6Addr;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::query::percent_encode;
use super::{accept_key, has_token, header_values, single_header, HeadReader, HeadStep};

/// Largest response head the client reads, in bytes.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;

/// Largest refusal body the client keeps, in bytes; the rest is not read.
const MAX_REFUSAL_BODY: usize = 64 * 1024;

/// A parsed `ws://` or `wss://` URL (RFC 6455 §3).
///
/// # Examples
///
/// ```
/// use natter_core::handshake::WsUrl;
///
/// let url = WsUrl::parse("ws://[::1]:9000/echo").unwrap();
/// assert_eq!((url.host(), url.port(), url.path_and_query()), ("::1", 9000, "/echo"));
/// assert_eq!(url.host_header(), "[::1]:9000");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    secure: bool,
    host: String,
    port: u16,
    path_and_query: String,
}

/// Why a WebSocket URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidUrl {
    /// The URL does not start with `ws://` or `wss://`.
    UnsupportedScheme,
    /// The URL names no host.
    MissingHost,
    /// The host holds a character a host name may not.
    BadHostCharacter(char),
    /// A bracketed host is not an IPv6 address, or lacks its `]`.
    BadIpv6Literal,
    /// The port is empty, not a number, 0 or over 65535.
    BadPort(String),
    /// The URL carries `user@` credentials, which natter does not use.
    UserInfo,
    /// The URL has a `#fragment`, which RFC 6455 §3 forbids.
    Fragment,
    /// The path or query holds a space, control or non-ASCII character.
    BadPathCharacter(char),
}

impl fmt::Display for InvalidUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidUrl::UnsupportedScheme => f.write_str("url must start with ws:// or wss://"),
            InvalidUrl::MissingHost => f.write_str("url has no host"),
            InvalidUrl::BadHostCharacter(c) => {
                write!(f, "host may not contain '{}'", c.escape_default())
            }
            InvalidUrl::BadIpv6Literal => f.write_str("bracketed host is not an IPv6 address"),
            InvalidUrl::BadPort(port) => {
                write!(
                    f,
                    "port '{}' is not a number from 1 to 65535",
                    port.escape_default()
                )
            }
            InvalidUrl::UserInfo => f.write_str("url may not contain user credentials"),
            InvalidUrl::Fragment => f.write_str("websocket url may not have a #fragment"),
            InvalidUrl::BadPathCharacter(c) => {
                write!(
                    f,
                    "path may not contain '{}'; percent-encode it",
                    c.escape_default()
                )
            }
        }
    }
}

impl std::error::Error for InvalidUrl {}

impl WsUrl {
    /// Parses `ws://host[:port][/path][?query]` or the `wss://` form.
    ///
    /// The port defaults to 80 (`ws`) or 443 (`wss`), the path to `/`. An
    /// IPv6 host is written in brackets, as in `ws://[::1]:9000/`.
    ///
    /// # Errors
    ///
    /// [`InvalidUrl`] naming the first part that is wrong.
    pub fn parse(text: &str) -> Result<WsUrl, InvalidUrl> {
        let (secure, rest) = split_scheme(text.trim()).ok_or(InvalidUrl::UnsupportedScheme)?;

        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        if tail.contains('#') {
            return Err(InvalidUrl::Fragment);
        }
        if authority.contains('@') {
            return Err(InvalidUrl::UserInfo);
        }

        let (host, port) = split_host_port(authority)?;
        let default_port = if secure { 443 } else { 80 };
        let port = match port {
            None => default_port,
            Some(text) => match text.parse::<u16>() {
                Ok(port) if port != 0 => port,
                _ => return Err(InvalidUrl::BadPort(text.to_owned())),
            },
        };

        if let Some(c) = tail.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(InvalidUrl::BadPathCharacter(c));
        }
        let path_and_query = match tail {
            "" => "/".to_owned(),
            query if query.starts_with('?') => format!("/{query}"),
            path => path.to_owned(),
        };
        Ok(WsUrl {
            secure,
            host: host.to_owned(),
            port,
            path_and_query,
        })
    }

    /// Says whether the URL is `wss://` (TLS).
    pub fn is_secure(&self) -> bool {
        self.secure
    }

    /// Returns the host to connect to, without brackets for IPv6.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Returns the port, explicit or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Returns the request target: the path and any query, at least `/`.
    pub fn path_and_query(&self) -> &str {
        &self.path_and_query
    }

    /// Returns the `Host` header value: the host (bracketed for IPv6) and
    /// the port unless it is the scheme's default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };

        let default_port = if self.secure { 443 } else { 80 };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl fmt::Display for WsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "wss" } else { "ws" };
        write!(
            f,
            "{scheme}://{}{}",
            self.host_header(),
            self.path_and_query
        )
    }
}

/// Splits off `ws://` or `wss://` (any case), saying whether it was secure.
fn split_scheme(text: &str) -> Option<(bool, &str)> {
    let (scheme, rest) = text.split_once("://")?;
    if scheme.eq_ignore_ascii_case("ws") {
        Some((false, rest))
    } else if scheme.eq_ignore_ascii_case("wss") {
        Some((true, rest))
    } else {
        None
    }
}

/// Splits an authority into a checked host and the port text, if any.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), InvalidUrl> {
    let (host, after_host) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (literal, after) = bracketed
                .split_once(']')
                .ok_or(InvalidUrl::BadIpv6Literal)?;
            if literal.parse::<Ipv6Addr>().is_err() {
                return Err(InvalidUrl::BadIpv6Literal);
            }
            (literal, after)
        }
        None => {
            let end = authority.find(':').unwrap_or(authority.len());
            let (host, after) = authority.split_at(end);
            let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~');
            if let Some(c) = host.chars().find(|&c| !allowed(c)) {
                return Err(InvalidUrl::BadHostCharacter(c));
            }
            (host, after)
        }
    };

    if host.is_empty() {
        return Err(InvalidUrl::MissingHost);
    }
    match after_host {
        "" => Ok((host, None)),
        other => match other.strip_prefix(':') {
            Some(port) => Ok((host, Some(port))),
            None => Err(InvalidUrl::BadPort(other.to_owned())),
        },
    }
}

/// Builds the `/joinRoom` request target, percent-encoding every byte of
/// the three values outside the unreserved set.
///
/// # Examples
///
/// ```
/// use natter_core::handshake::join_path;
///
/// assert_eq!(
///     join_path("ana b", "lobby", "k3J9x0aa"),
///     "/joinRoom?user_name=ana%20b&room_code=lobby&session_id=k3J9x0aa"
/// );
/// ```
pub fn join_path(user_name: &str, room_code: &str, session_id: &str) -> String {
    format!(
        "/joinRoom?user_name={}&room_code={}&session_id={}",
        percent_encode(user_name),
        percent_encode(room_code),
        percent_encode(session_id)
    )
}

/// Why the client's handshake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientHandshakeError {
    /// The server answered with a status other than 101.
    Refused {
        /// The response's status code.
        status: u16,
        /// The status line's reason phrase.
        reason_phrase: String,
        /// The body (natter's one-line reason), lossily decoded and cut at
        /// 64 KiB; it may hold control characters, so escape it before
        /// showing it on a terminal.
        body: String,
    },
    /// The response head is not valid HTTP.
    MalformedResponse(String),
    /// The response head did not end within the limit.
    HeadTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// A 101 without `Upgrade: websocket`.
    MissingUpgrade,
    /// A 101 without `upgrade` in `Connection`.
    MissingConnectionUpgrade,
    /// A 101 whose `Sec-WebSocket-Accept` does not match the key sent.
    AcceptMismatch {
        /// The value the key requires.
        expected: String,
        /// The value received, if there was exactly one.
        found: Option<String>,
    },
    /// A 101 that picked an extension or subprotocol the client did not
    /// offer (RFC 6455 §4.1, items 5 and 6); holds the header's name.
    Unrequested(&'static str),
    /// The connection ended before a complete response head.
    ClosedBeforeResponse,
}

impl fmt::Display for ClientHandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientHandshakeError::Refused {
                status,
                reason_phrase,
                body,
            } => {
                write!(
                    f,
                    "server refused with {status} {}",
                    reason_phrase.escape_default()
                )?;
                match body.trim() {
                    "" => Ok(()),
                    body => write!(f, ": {}", body.escape_default()),
                }
            }
            ClientHandshakeError::MalformedResponse(why) => {
                write!(f, "malformed response: {why}")
            }
            ClientHandshakeError::HeadTooLarge { limit } => {
                write!(f, "response head is over {limit} bytes")
            }
            ClientHandshakeError::MissingUpgrade => {
                f.write_str("101 response lacks upgrade: websocket")
            }
            ClientHandshakeError::MissingConnectionUpgrade => {
                f.write_str("101 response lacks connection: upgrade")
            }
            ClientHandshakeError::AcceptMismatch { expected, found } => match found {
                Some(found) => write!(
                    f,
                    "sec-websocket-accept is {}, expected {expected}",
                    found.escape_default()
                ),
                None => write!(
                    f,
                    "expected one sec-websocket-accept header with {expected}"
                ),
            },
            ClientHandshakeError::Unrequested(header) => {
                write!(f, "server sent {header}, which was not requested")
            }
            ClientHandshakeError::ClosedBeforeResponse => {
                f.write_str("connection closed before the response head was complete")
            }
        }
    }
}

impl std::error::Error for ClientHandshakeError {}

/// The state of one client handshake.
#[derive(Debug, Clone)]
enum State {
    /// Reading the response head.
    ExpectHead(HeadReader),
    /// Reading the body of a refusal.
    ExpectRefusalBody {
        status: u16,
        reason_phrase: String,
        body: Vec<u8>,
        /// Bytes to read, when `Content-Length` says; else up to EOF.
        wanted: Option<usize>,
    },
    /// The server switched to WebSocket.
    Upgraded,
    /// The handshake failed with this error.
    Failed(ClientHandshakeError),
}

/// The client side of the HTTP/1.1 upgrade for one connection.
///
/// Drive it like this:
/// 1. create it with [`ClientHandshake::new`], which also returns the
///    request bytes to write;
/// 2. pass everything read from the socket to
///    [`handle_input`](Self::handle_input) until it returns `Ok(Some(_))`
///    (the WebSocket is open; the bytes are the first of its frames) or an
///    error;
/// 3. if the socket reaches end of file first, call
///    [`handle_eof`](Self::handle_eof) to learn why.
///
/// The caller draws the 16 key bytes from a random source; this type reads
/// none.
///
/// # Examples
///
/// ```
/// use natter_core::handshake::ClientHandshake;
///
/// let (mut client, request) = ClientHandshake::new("localhost:9000", "/echo", [7; 16], None);
/// assert!(request.starts_with(b"GET /echo HTTP/1.1\r\nHost: localhost:9000\r\n"));
/// assert_eq!(client.handle_input(b"HTTP/1.1 101 Switching"), Ok(None));
/// ```
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    state: State,
    expected_accept: String,
}

impl ClientHandshake {
    /// Creates the handshake and the request to write for it.
    ///
    /// `host_header` is the `Host` value (see [`WsUrl::host_header`]) and
    /// `path_and_query` the request target (see [`join_path`]). So that no
    /// value can break the request's framing, control characters are dropped
    /// from `host_header` and `origin`, and spaces, control and non-ASCII
    /// characters of the target are percent-encoded.
    pub fn new(
        host_header: &str,
        path_and_query: &str,
        key: [u8; 16],
        origin: Option<&str>,
    ) -> (ClientHandshake, Vec<u8>) {
        let key = STANDARD.encode(key);
        let mut request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
            safe_target(path_and_query),
            without_controls(host_header)
        );
        if let Some(origin) = origin {
            request.push_str(&format!("Origin: {}\r\n", without_controls(origin)));
        }
        request.push_str("\r\n");

        let handshake = ClientHandshake {
            state: State::ExpectHead(HeadReader::new(MAX_RESPONSE_HEAD)),
            expected_accept: accept_key(&key),
        };
        (handshake, request.into_bytes())
    }

    /// Takes the next bytes read from the socket.
    ///
    /// Returns `Ok(None)` while more is needed, and `Ok(Some(leftover))`
    /// once the server has switched protocols, `leftover` being the bytes
    /// after the response head. Input after that is handed back unchanged.
    ///
    /// # Errors
    ///
    /// [`ClientHandshakeError::Refused`] for an answer other than 101 (once
    /// its body has arrived per `Content-Length`, or 64 KiB of it), and the
    /// other variants for a 101 that breaks RFC 6455 §4.1 or a response
    /// that is not HTTP. After an error every call returns it again.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<Option<Vec<u8>>, ClientHandshakeError> {
        match &mut self.state {
            State::ExpectHead(reader) => match reader.push(bytes) {
                HeadStep::Partial => Ok(None),
                HeadStep::TooLarge => self.fail(ClientHandshakeError::HeadTooLarge {
                    limit: MAX_RESPONSE_HEAD,
                }),
                HeadStep::Complete(used) => {
                    let head = std::mem::take(&mut reader.head);
                    let rest = bytes.get(used..).unwrap_or_default();
                    self.handle_head(&head, rest)
                }
            },
            State::ExpectRefusalBody { body, wanted, .. } => {
                let room = wanted
                    .unwrap_or(MAX_REFUSAL_BODY)
                    .saturating_sub(body.len());
                body.extend_from_slice(bytes.get(..room).unwrap_or(bytes));
                let complete = body.len() >= wanted.unwrap_or(MAX_REFUSAL_BODY);
                if complete {
                    return Err(self.finish_refusal());
                }
                Ok(None)
            }
            State::Upgraded => Ok(Some(bytes.to_vec())),
            State::Failed(error) => Err(error.clone()),
        }
    }

    /// Reports that the socket reached end of file.
    ///
    /// # Errors
    ///
    /// Always, unless the server had already switched protocols:
    /// [`ClientHandshakeError::Refused`] with the body received so far when
    /// a refusal's head was complete, else
    /// [`ClientHandshakeError::ClosedBeforeResponse`] (or the earlier error).
    pub fn handle_eof(&mut self) -> Result<(), ClientHandshakeError> {
        match &self.state {
            State::ExpectHead(_) => self.fail(ClientHandshakeError::ClosedBeforeResponse),
            State::ExpectRefusalBody { .. } => Err(self.finish_refusal()),
            State::Upgraded => Ok(()),
            State::Failed(error) => Err(error.clone()),
        }
    }

    /// Parses a complete response head; `rest` is what followed it.
    fn handle_head(
        &mut self,
        head: &[u8],
        rest: &[u8],
    ) -> Result<Option<Vec<u8>>, ClientHandshakeError> {
        let mut headers = [httparse::EMPTY_HEADER; super::MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => {
                let why = "incomplete head".to_owned();
                return self.fail(ClientHandshakeError::MalformedResponse(why));
            }
            Err(error) => {
                return self.fail(ClientHandshakeError::MalformedResponse(error.to_string()));
            }
        }

        let status = response.code.unwrap_or_default();
        if status != 101 {
            self.state = State::ExpectRefusalBody {
                status,
                reason_phrase: response.reason.unwrap_or_default().to_owned(),
                body: Vec::new(),
                wanted: content_length(response.headers).map(|n| n.min(MAX_REFUSAL_BODY)),
            };
            return self.handle_input(rest);
        }

        match check_switch(response.headers, &self.expected_accept) {
            Ok(()) => {
                self.state = State::Upgraded;
                Ok(Some(rest.to_vec()))
            }
            Err(error) => self.fail(error),
        }
    }

    /// Turns the refusal read so far into its error and remembers it.
    fn finish_refusal(&mut self) -> ClientHandshakeError {
        let error = match &self.state {
            State::ExpectRefusalBody {
                status,
                reason_phrase,
                body,
                ..
            } => ClientHandshakeError::Refused {
                status: *status,
                reason_phrase: reason_phrase.clone(),
                body: String::from_utf8_lossy(body).into_owned(),
            },
            // Only called while a refusal's body is read; keep any error.
            State::Failed(error) => error.clone(),
            _ => ClientHandshakeError::ClosedBeforeResponse,
        };
        self.state = State::Failed(error.clone());
        error
    }

    /// Moves to the failed state with `error`.
    fn fail<T>(&mut self, error: ClientHandshakeError) -> Result<T, ClientHandshakeError> {
        self.state = State::Failed(error.clone());
        Err(error)
    }
}

/// Checks a 101 against RFC 6455 §4.1's list for the client.
fn check_switch(
    headers: &[httparse::Header<'_>],
    expected_accept: &str,
) -> Result<(), ClientHandshakeError> {
    if !has_token(headers, "upgrade", "websocket") {
        return Err(ClientHandshakeError::MissingUpgrade);
    }
    if !has_token(headers, "connection", "upgrade") {
        return Err(ClientHandshakeError::MissingConnectionUpgrade);
    }

    let found = single_header(headers, "sec-websocket-accept")
        .ok()
        .flatten();
    if found != Some(expected_accept) {
        return Err(ClientHandshakeError::AcceptMismatch {
            expected: expected_accept.to_owned(),
            found: found.map(str::to_owned),
        });
    }

    // The client offers no extension and no subprotocol.
    for name in ["Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol"] {
        if header_values(headers, name).any(|value| !value.trim_ascii().is_empty()) {
            return Err(ClientHandshakeError::Unrequested(name));
        }
    }
    Ok(())
}

/// Returns the `Content-Length` when there is exactly one valid value.
fn content_length(headers: &[httparse::Header<'_>]) -> Option<usize> {
    single_header(headers, "content-length")
        .ok()
        .flatten()
        .and_then(|text| text.parse().ok())
}

/// Percent-encodes the characters a request target may not hold as they
/// are.
fn safe_target(target: &str) -> String {
    let mut out = String::with_capacity(target.len());
    for c in target.chars() {
        if c.is_ascii_graphic() {
            out.push(c);
        } else {
            out.push_str(&percent_encode(c.encode_utf8(&mut [0; 4])));
        }
    }
    out
}

/// Returns `text` without control characters.
fn without_controls(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use proptest::prelude::*;

    use super::*;
    use crate::config::ServerConfig;
    use crate::handshake::{Progress, Refusal, RefusalKind, Request, ServerHandshake};

    const KEY: [u8; 16] = *b"the sample nonce";

    /// Feeds `bytes` one at a time, returning the first non-`Ok(None)`.
    fn feed_bytewise(
        client: &mut ClientHandshake,
        bytes: &[u8],
    ) -> Result<Option<Vec<u8>>, ClientHandshakeError> {
        for (i, byte) in bytes.iter().enumerate() {
            match client.handle_input(&[*byte]) {
                Ok(None) => {}
                Ok(Some(mut leftover)) => {
                    leftover.extend_from_slice(bytes.get(i + 1..).unwrap_or_default());
                    return Ok(Some(leftover));
                }
                Err(error) => return Err(error),
            }
        }
        Ok(None)
    }

    /// Runs the server core on `request`, expecting a decision.
    fn serve(request: &[u8]) -> Request {
        let mut server = ServerHandshake::new(&ServerConfig::default(), Instant::now());
        match server.handle_input(request) {
            Progress::Done { request, .. } => request,
            Progress::NeedMore => panic!("request head not complete"),
        }
    }

    #[test]
    fn urls_parse_with_defaults() {
        let url = WsUrl::parse("ws://localhost:9000/joinRoom?a=b").unwrap();
        assert!(!url.is_secure());
        assert_eq!(url.host(), "localhost");
        assert_eq!(url.port(), 9000);
        assert_eq!(url.path_and_query(), "/joinRoom?a=b");
        assert_eq!(url.host_header(), "localhost:9000");

        let url = WsUrl::parse("WSS://chat.example").unwrap();
        assert!(url.is_secure());
        assert_eq!((url.port(), url.path_and_query()), (443, "/"));
        assert_eq!(url.host_header(), "chat.example");
        assert_eq!(url.to_string(), "wss://chat.example/");

        let url = WsUrl::parse("ws://[::1]?x=1").unwrap();
        assert_eq!((url.host(), url.port()), ("::1", 80));
        assert_eq!(url.path_and_query(), "/?x=1");
        assert_eq!(url.host_header(), "[::1]");
        assert_eq!(WsUrl::parse("ws://h:443/").unwrap().host_header(), "h:443");
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        let cases = [
            ("http://h/", InvalidUrl::UnsupportedScheme),
            ("localhost:9000", InvalidUrl::UnsupportedScheme),
            ("ws://", InvalidUrl::MissingHost),
            ("ws://:80/", InvalidUrl::MissingHost),
            ("ws://h:", InvalidUrl::BadPort(String::new())),
            ("ws://h:99999", InvalidUrl::BadPort("99999".to_owned())),
            ("ws://h:0", InvalidUrl::BadPort("0".to_owned())),
            ("ws://u:p@h/", InvalidUrl::UserInfo),
            ("ws://h/#top", InvalidUrl::Fragment),
            ("ws://[::1/", InvalidUrl::BadIpv6Literal),
            ("ws://[zz]:80", InvalidUrl::BadIpv6Literal),
            ("ws://[::1]x", InvalidUrl::BadPort("x".to_owned())),
            ("ws://h\u{d}h/", InvalidUrl::BadHostCharacter('\r')),
            ("ws://h/a b", InvalidUrl::BadPathCharacter(' ')),
        ];
        for (text, expected) in cases {
            assert_eq!(WsUrl::parse(text), Err(expected), "{text}");
        }
        assert_eq!(
            InvalidUrl::BadPort("x".to_owned()).to_string(),
            "port 'x' is not a number from 1 to 65535"
        );
    }

    #[test]
    fn the_client_accepts_the_servers_own_101() {
        let path = join_path("ana", "lobby", "k3J9x0aa");
        let (mut client, request) = ClientHandshake::new("localhost:9000", &path, KEY, None);
        let Request::Join { upgrade, .. } = serve(&request) else {
            panic!("expected a join");
        };

        let mut answer = upgrade.response_bytes();
        let frame = [0x81, 0x02, b'h', b'i'];
        answer.extend_from_slice(&frame);
        assert_eq!(
            feed_bytewise(&mut client, &answer),
            Ok(Some(frame.to_vec()))
        );
        assert_eq!(client.handle_input(b"more"), Ok(Some(b"more".to_vec())));
        assert_eq!(client.handle_eof(), Ok(()));
    }

    #[test]
    fn a_refusal_surfaces_status_and_body() {
        let refusal = Refusal::new(RefusalKind::BadQuery, "room_code may not contain ' '");
        let answer = refusal.to_bytes();
        for split in 0..=answer.len() {
            let (mut client, _) = ClientHandshake::new("h", "/", KEY, None);
            let (a, b) = answer.split_at(split);
            let result = match client.handle_input(a) {
                Ok(None) => client.handle_input(b),
                other => other,
            };
            let expected = ClientHandshakeError::Refused {
                status: 400,
                reason_phrase: "Bad Request".to_owned(),
                body: "room_code may not contain ' '\n".to_owned(),
            };
            assert_eq!(result, Err(expected.clone()), "split at {split}");
            assert_eq!(client.handle_input(b"x"), Err(expected));
        }
    }

    #[test]
    fn a_refusal_without_length_is_read_to_eof() {
        let (mut client, _) = ClientHandshake::new("h", "/", KEY, None);
        let answer = b"HTTP/1.1 503 Service Unavailable\r\nX: y\r\n\r\nbusy";
        assert_eq!(client.handle_input(answer), Ok(None));
        let error = client.handle_eof().unwrap_err();
        assert_eq!(
            error.to_string(),
            "server refused with 503 Service Unavailable: busy"
        );

        let (mut client, _) = ClientHandshake::new("h", "/", KEY, None);
        let answer = b"HTTP/1.1 409 Conflict\r\nContent-Length: 10\r\n\r\ntaken";
        assert_eq!(client.handle_input(answer), Ok(None));
        assert!(matches!(
            client.handle_eof(),
            Err(ClientHandshakeError::Refused { status: 409, ref body, .. }) if body == "taken"
        ));
    }

    #[test]
    fn a_huge_refusal_body_is_cut() {
        let (mut client, _) = ClientHandshake::new("h", "/", KEY, None);
        let head = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 1000000000\r\n\r\n";
        assert_eq!(client.handle_input(head), Ok(None));
        let result = client.handle_input(&vec![b'a'; MAX_REFUSAL_BODY + 10]);
        assert!(matches!(
            result,
            Err(ClientHandshakeError::Refused { ref body, .. }) if body.len() == MAX_REFUSAL_BODY
        ));
    }

    #[test]
    fn a_wrong_101_names_what_is_wrong() {
        let expected = accept_key(&STANDARD.encode(KEY));
        let answer = |headers: &str| format!("HTTP/1.1 101 Switching Protocols\r\n{headers}\r\n");
        let accept = format!("Sec-WebSocket-Accept: {expected}\r\n");
        let cases = [
            (
                answer("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n"),
                ClientHandshakeError::AcceptMismatch {
                    expected: expected.clone(),
                    found: Some("x".to_owned()),
                },
            ),
            (
                answer("Upgrade: websocket\r\nConnection: Upgrade\r\n"),
                ClientHandshakeError::AcceptMismatch {
                    expected: expected.clone(),
                    found: None,
                },
            ),
            (
                answer(&format!("Connection: Upgrade\r\n{accept}")),
                ClientHandshakeError::MissingUpgrade,
            ),
            (
                answer(&format!(
                    "Upgrade: websocket\r\nConnection: close\r\n{accept}"
                )),
                ClientHandshakeError::MissingConnectionUpgrade,
            ),
            (
                answer(&format!(
                    "Upgrade: websocket\r\nConnection: Upgrade\r\n{accept}\
                     Sec-WebSocket-Extensions: permessage-deflate\r\n"
                )),
                ClientHandshakeError::Unrequested("Sec-WebSocket-Extensions"),
            ),
            (
                "HTTP/1.1 abc\r\n\r\n".to_owned(),
                ClientHandshakeError::MalformedResponse("invalid response status".to_owned()),
            ),
        ];
        for (text, error) in cases {
            let (mut client, _) = ClientHandshake::new("h", "/", KEY, None);
            assert_eq!(client.handle_input(text.as_bytes()), Err(error), "{text}");
        }

        let (mut client, _) = ClientHandshake::new("h", "/", KEY, None);
        let fine = answer(&format!(
            "upgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\n{accept}"
        ));
        assert_eq!(client.handle_input(fine.as_bytes()), Ok(Some(Vec::new())));
    }

    #[test]
    fn a_response_head_over_16_kib_fails() {
        let (mut client, _) = ClientHandshake::new("h", "/", KEY, None);
        assert_eq!(client.handle_input(b"HTTP/1.1 101 OK\r\n"), Ok(None));
        let result = client.handle_input(&vec![b'x'; MAX_RESPONSE_HEAD]);
        assert_eq!(
            result,
            Err(ClientHandshakeError::HeadTooLarge {
                limit: MAX_RESPONSE_HEAD
            })
        );
    }

    #[test]
    fn eof_before_the_head_is_an_error() {
        let (mut client, _) = ClientHandshake::new("h", "/", KEY, None);
        assert_eq!(client.handle_input(b"HTTP/1.1 1"), Ok(None));
        assert_eq!(
            client.handle_eof(),
            Err(ClientHandshakeError::ClosedBeforeResponse)
        );
    }

    #[test]
    fn the_request_cannot_be_split_by_its_inputs() {
        let (_, request) =
            ClientHandshake::new("h\r\nX: 1", "/a b\r\nY: 2", KEY, Some("https://o\r\nZ: 3"));
        let text = String::from_utf8(request).unwrap();
        assert!(text.starts_with("GET /a%20b%0D%0AY:%202 HTTP/1.1\r\nHost: hX: 1\r\n"));
        assert!(text.contains("Origin: https://oZ: 3\r\n"));
        assert!(text.contains("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
    }

    #[test]
    fn join_path_round_trips_hostile_names() {
        let names = [
            "a b",
            "a&room_code=evil",
            "x=y",
            "100% sure",
            "1+1",
            "🦀 crab",
            "%41",
            "?#/",
        ];
        for name in names {
            let path = join_path(name, "lobby-1_A.b", "k3J9x0aa-_");
            let (_, request) = ClientHandshake::new("h", &path, KEY, Some("https://o"));
            let Request::Join { params, .. } = serve(&request) else {
                panic!("{name}: expected a join");
            };
            assert_eq!(params.user_name.as_str(), name);
            assert_eq!(params.room_code.as_str(), "lobby-1_A.b");
            assert_eq!(params.session_id.as_str(), "k3J9x0aa-_");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_responses_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..4096),
            cut in any::<usize>(),
        ) {
            let (mut client, _) = ClientHandshake::new("h", "/", KEY, None);
            let (a, b) = bytes.split_at(cut % (bytes.len() + 1));
            let _ = client.handle_input(a);
            let _ = client.handle_input(b);
            let _ = client.handle_eof();
        }

        #[test]
        fn any_user_name_round_trips(name in "[^\\p{Cc}]{1,32}") {
            let trimmed = name.trim();
            prop_assume!(!trimmed.is_empty());
            let query = join_path(trimmed, "r", "abcdefgh");
            let query = query.split_once('?').map(|(_, q)| q).unwrap_or_default();
            let params = crate::handshake::parse_join_query(query).unwrap();
            prop_assert_eq!(params.user_name.as_str(), trimmed);
        }
    }
}
