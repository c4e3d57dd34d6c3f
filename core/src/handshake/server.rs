//! The server side of the upgrade: an incremental request-head reader that
//! decides what the peer asked for.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::query::parse_join_query;
use super::response::{Refusal, RefusalKind};
use super::{accept_key, has_token, header_values, single_header, HeadReader, HeadStep};
use crate::config::ServerConfig;
use crate::names::{RoomCode, SessionId, UserName};

/// The three validated identifiers of a `/joinRoom` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinParams {
    /// The member's display name.
    pub user_name: UserName,
    /// The room to join.
    pub room_code: RoomCode,
    /// The member's session identity.
    pub session_id: SessionId,
}

/// An accepted WebSocket upgrade, holding the value of
/// `Sec-WebSocket-Accept` derived from the client's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    accept: String,
}

impl Upgrade {
    /// Creates the upgrade answering a (trimmed) `Sec-WebSocket-Key`.
    pub fn for_key(key: &str) -> Upgrade {
        Upgrade {
            accept: accept_key(key),
        }
    }

    /// Returns the `Sec-WebSocket-Accept` value.
    pub fn accept(&self) -> &str {
        &self.accept
    }

    /// Renders the complete `101 Switching Protocols` response (RFC 6455
    /// §4.2.2); frames may follow it at once.
    pub fn response_bytes(&self) -> Vec<u8> {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
            self.accept
        )
        .into_bytes()
    }
}

/// What a complete request head asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// A WebSocket upgrade on `/joinRoom` with valid parameters.
    Join {
        /// Who joins which room.
        params: JoinParams,
        /// The upgrade to answer with, once the server agrees.
        upgrade: Upgrade,
    },
    /// A WebSocket upgrade on `/echo` (only when the server enables it).
    Echo {
        /// The upgrade to answer with.
        upgrade: Upgrade,
    },
    /// `GET /healthz`; answer with [`super::health_response`].
    Health,
    /// `GET /metrics`; answer with [`super::ok_response`].
    Metrics,
    /// A request to refuse with the given response.
    Refuse(Refusal),
}

/// What one call to [`ServerHandshake::handle_input`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The head is not complete yet; feed more bytes.
    NeedMore,
    /// The head is complete (or refused as too large).
    Done {
        /// What the head asks for.
        request: Request,
        /// Every byte that followed the head's CRLFCRLF in the input, such as
        /// a pipelined first frame; empty after a 431.
        leftover: Vec<u8>,
    },
}

/// The state of one server handshake.
#[derive(Debug, Clone)]
enum State {
    /// Reading the request head.
    ExpectHead(HeadReader),
    /// A [`Progress::Done`] has been given.
    Finished,
}

/// The server side of the HTTP/1.1 upgrade for one connection.
///
/// Drive it like this:
/// 1. create it with [`ServerHandshake::new`] when the connection is
///    accepted;
/// 2. pass everything read from the socket to
///    [`handle_input`](Self::handle_input) until it returns
///    [`Progress::Done`], in pieces of any size;
/// 3. if nothing completes by [`poll_timeout`](Self::poll_timeout), drop the
///    connection.
///
/// The decision is final once `Done` is returned. A [`Request::Refuse`]'s
/// bytes are written and the connection closed; [`Request::Health`] and
/// [`Request::Metrics`] are answered likewise; for `Join` and `Echo` the
/// server writes [`Upgrade::response_bytes`] (or a refusal of its own such
/// as [`Refusal::duplicate_session`]) and hands the leftover bytes to the
/// WebSocket connection.
///
/// # Order of checks
///
/// Method (405), path (404), `Host` on HTTP/1.1 (400), then `/healthz` and
/// `/metrics` are answered; for the WebSocket endpoints: HTTP/1.1 or later
/// (400), upgrade (426), version (426), key (400), origin (403), and for
/// `/joinRoom` the query (400). A head that httparse cannot read is a 400
/// before any of these; one over the size limit is a 431 as soon as that is
/// certain. Within the size limit, any number of header fields is read.
///
/// # Origin
///
/// When `allowed_origins` is configured, an `Origin` outside it (compared
/// case-insensitively) is refused with 403, but a request with no `Origin`
/// at all is allowed: browsers always send one, so the check still protects
/// browser users, and non-browser clients (the terminal client, websocat)
/// send none.
///
/// # Examples
///
/// ```
/// use std::time::Instant;
/// use natter_core::config::ServerConfig;
/// use natter_core::handshake::{Progress, Request, ServerHandshake};
///
/// let mut handshake = ServerHandshake::new(&ServerConfig::default(), Instant::now());
/// assert_eq!(handshake.handle_input(b"GET /healthz HTTP/1.1\r\n"), Progress::NeedMore);
/// let progress = handshake.handle_input(b"Host: a\r\n\r\n");
/// assert!(matches!(progress, Progress::Done { request: Request::Health, .. }));
/// ```
#[derive(Debug, Clone)]
pub struct ServerHandshake {
    state: State,
    deadline: Instant,
    policy: Policy,
}

/// The configuration the checks read.
#[derive(Debug, Clone)]
struct Policy {
    echo_enabled: bool,
    allowed_origins: Vec<String>,
}

impl ServerHandshake {
    /// Creates the handshake of a connection accepted at `now`.
    pub fn new(config: &ServerConfig, now: Instant) -> ServerHandshake {
        ServerHandshake {
            state: State::ExpectHead(HeadReader::new(config.max_head_bytes)),
            deadline: deadline_after(now, config.handshake_timeout),
            policy: Policy {
                echo_enabled: config.echo_enabled,
                allowed_origins: config.allowed_origins.clone(),
            },
        }
    }

    /// Takes the next bytes read from the socket.
    ///
    /// Returns [`Progress::NeedMore`] until the head's CRLFCRLF arrives, then
    /// [`Progress::Done`] once. Each byte is scanned once, however the input
    /// is split. Calling it again after `Done` is a driver bug; it answers
    /// with a 400 refusal and hands the bytes back as leftover.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Progress {
        let State::ExpectHead(reader) = &mut self.state else {
            let refusal = Refusal::new(RefusalKind::MalformedRequest, "handshake already finished");
            return Progress::Done {
                request: Request::Refuse(refusal),
                leftover: bytes.to_vec(),
            };
        };

        let (request, leftover) = match reader.push(bytes) {
            HeadStep::Partial => return Progress::NeedMore,
            HeadStep::TooLarge => {
                let reason = format!("request head is over {} bytes", reader.limit);
                let refusal = Refusal::new(RefusalKind::HeadTooLarge, reason);
                (Request::Refuse(refusal), Vec::new())
            }
            HeadStep::Complete(used) => {
                let request = self.policy.decide(&reader.head);
                (request, bytes.get(used..).unwrap_or_default().to_vec())
            }
        };

        self.state = State::Finished;
        Progress::Done { request, leftover }
    }

    /// Returns the deadline by which the head must be complete.
    pub fn poll_timeout(&self) -> Instant {
        self.deadline
    }
}

impl Policy {
    /// Parses a complete head and decides what it asks for.
    fn decide(&self, head: &[u8]) -> Request {
        let mut headers = [httparse::EMPTY_HEADER; super::MAX_HEADERS];
        if let Some(request) = self.decide_with(head, &mut headers) {
            return request;
        }

        // More fields than usual: room for as many as a head of this size
        // can hold, each at least three bytes ("a:" and a line end). The
        // head is already within the size limit, so this is bounded too.
        let mut headers = vec![httparse::EMPTY_HEADER; head.len() / 3 + 1];
        self.decide_with(head, &mut headers)
            .unwrap_or_else(|| refuse(RefusalKind::MalformedRequest, "malformed request head"))
    }

    /// Parses `head` into `headers` and decides what it asks for; `None`
    /// when it has more header fields than `headers` holds.
    fn decide_with<'h>(
        &self,
        head: &'h [u8],
        headers: &mut [httparse::Header<'h>],
    ) -> Option<Request> {
        let mut parsed = httparse::Request::new(headers);
        match parsed.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            Ok(httparse::Status::Partial) => {
                return Some(refuse(
                    RefusalKind::MalformedRequest,
                    "malformed request head",
                ));
            }
            Err(httparse::Error::TooManyHeaders) => return None,
            Err(error) => {
                let reason = format!("malformed request: {error}");
                return Some(refuse(RefusalKind::MalformedRequest, reason));
            }
        }

        let head = Head {
            method: parsed.method.unwrap_or_default(),
            target: parsed.path.unwrap_or_default(),
            minor_version: parsed.version.unwrap_or_default(),
            headers: parsed.headers,
        };
        match self.check(&head) {
            Ok(request) | Err(request) => Some(request),
        }
    }

    /// Applies the checks in their documented order; `Err` carries the
    /// first refusal.
    fn check(&self, head: &Head<'_>) -> Result<Request, Request> {
        if head.method != "GET" {
            let reason = format!("method {} is not allowed; use GET", head.method);
            return Err(refuse(RefusalKind::MethodNotAllowed, reason));
        }

        let target = origin_form(head.target);
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let endpoint = match path {
            "/joinRoom" => Endpoint::Join,
            "/echo" if self.echo_enabled => Endpoint::Echo,
            "/healthz" => Endpoint::Health,
            "/metrics" => Endpoint::Metrics,
            _ => {
                return Err(refuse(
                    RefusalKind::NotFound,
                    format!("no such path: {path}"),
                ))
            }
        };

        // RFC 9112 §3.2: an HTTP/1.1 request carries exactly one Host.
        if head.minor_version >= 1 {
            check_host(head.headers)?;
        }

        // A body would be read as WebSocket frames after an upgrade, and a
        // proxy in front may frame it differently (request smuggling): a
        // GET here carries none.
        if has_body(head.headers) {
            let reason = "a GET request may not carry a body";
            return Err(refuse(RefusalKind::MalformedRequest, reason));
        }

        match endpoint {
            Endpoint::Health => return Ok(Request::Health),
            Endpoint::Metrics => return Ok(Request::Metrics),
            Endpoint::Join | Endpoint::Echo => {}
        }

        let upgrade = self.check_upgrade(head)?;
        if endpoint == Endpoint::Echo {
            return Ok(Request::Echo { upgrade });
        }

        match parse_join_query(query) {
            Ok(params) => Ok(Request::Join { params, upgrade }),
            Err(error) => Err(refuse(RefusalKind::BadQuery, error)),
        }
    }

    /// Checks what RFC 6455 §4.2.1 asks of an opening handshake, then the
    /// origin.
    fn check_upgrade(&self, head: &Head<'_>) -> Result<Upgrade, Request> {
        // RFC 6455 §4.1: the upgrade request is HTTP/1.1 or later.
        if head.minor_version == 0 {
            let reason = "websocket upgrade needs HTTP/1.1, got HTTP/1.0";
            return Err(refuse(RefusalKind::MalformedRequest, reason));
        }

        let upgrades = has_token(head.headers, "upgrade", "websocket");
        if !upgrades || !has_token(head.headers, "connection", "upgrade") {
            let reason = "expected a websocket upgrade (Upgrade: websocket, Connection: Upgrade)";
            return Err(refuse(RefusalKind::UpgradeRequired, reason));
        }

        match single_header(head.headers, "sec-websocket-version") {
            Ok(Some("13")) => {}
            Ok(Some(other)) => {
                let reason = format!("sec-websocket-version {other} is not supported; use 13");
                return Err(refuse(RefusalKind::UnsupportedVersion, reason));
            }
            Ok(None) | Err(()) => {
                let reason = "expected one sec-websocket-version header with 13";
                return Err(refuse(RefusalKind::UnsupportedVersion, reason));
            }
        }

        let upgrade = check_key(head.headers)?;
        self.check_origin(head.headers)?;
        Ok(upgrade)
    }

    /// Refuses an `Origin` outside a configured allow-list.
    fn check_origin(&self, headers: &[httparse::Header<'_>]) -> Result<(), Request> {
        if self.allowed_origins.is_empty() {
            return Ok(());
        }

        let origins: Vec<&[u8]> = header_values(headers, "origin").collect();
        let origin = match origins.as_slice() {
            // No Origin: not a browser; see the type's documentation.
            [] => return Ok(()),
            [origin] => origin.trim_ascii(),
            _ => {
                let reason = "request has more than one origin header";
                return Err(refuse(RefusalKind::OriginNotAllowed, reason));
            }
        };
        let allowed = self
            .allowed_origins
            .iter()
            .any(|allowed| allowed.trim().as_bytes().eq_ignore_ascii_case(origin));
        if !allowed {
            let reason = format!("origin {} is not allowed", String::from_utf8_lossy(origin));
            return Err(refuse(RefusalKind::OriginNotAllowed, reason));
        }
        Ok(())
    }
}

/// Checks that there is exactly one `Host` header and that it is text,
/// naming what is wrong otherwise.
fn check_host(headers: &[httparse::Header<'_>]) -> Result<(), Request> {
    let hosts: Vec<&[u8]> = header_values(headers, "host").collect();
    let reason = match hosts.as_slice() {
        [] => "request needs a host header",
        [host] if std::str::from_utf8(host).is_err() => "host header is not valid UTF-8",
        [_] => return Ok(()),
        _ => "request has more than one host header",
    };
    Err(refuse(RefusalKind::MalformedRequest, reason))
}

/// The parts of a parsed head the checks read.
struct Head<'a> {
    method: &'a str,
    target: &'a str,
    minor_version: u8,
    headers: &'a [httparse::Header<'a>],
}

/// The endpoints a GET may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Join,
    Echo,
    Health,
    Metrics,
}

/// Checks `Sec-WebSocket-Key`: one header, 16 bytes in base64 (RFC 6455
/// §4.1, item 7).
fn check_key(headers: &[httparse::Header<'_>]) -> Result<Upgrade, Request> {
    let key = match single_header(headers, "sec-websocket-key") {
        Ok(Some(key)) => key,
        Ok(None) => return Err(refuse(RefusalKind::BadKey, "missing sec-websocket-key")),
        Err(()) => {
            let reason = "expected one sec-websocket-key header";
            return Err(refuse(RefusalKind::BadKey, reason));
        }
    };

    // Sixteen bytes are always 24 base64 characters; checking that first
    // keeps the decoder's allocation small.
    let decoded_len = match key.len() {
        24 => STANDARD.decode(key).map(|bytes| bytes.len()).ok(),
        _ => None,
    };
    if decoded_len != Some(16) {
        let reason = "sec-websocket-key must be 16 bytes in base64";
        return Err(refuse(RefusalKind::BadKey, reason));
    }
    Ok(Upgrade::for_key(key))
}

/// Wraps a refusal of `kind` as a request.
fn refuse(kind: RefusalKind, reason: impl std::fmt::Display) -> Request {
    Request::Refuse(Refusal::new(kind, reason))
}

/// Returns `now + timeout`, or a far deadline if that cannot be represented.
fn deadline_after(now: Instant, timeout: Duration) -> Instant {
    const FAR: Duration = Duration::from_secs(365 * 24 * 60 * 60);

    now.checked_add(timeout)
        .or_else(|| now.checked_add(FAR))
        .unwrap_or(now)
}

/// Returns the path and query of a request target, dropping the scheme and
/// authority of an absolute-form target (`http://host/path`), which RFC 9112
/// §3.2.2 asks servers to accept.
fn origin_form(target: &str) -> &str {
    let lower_scheme = |scheme: &str| {
        target
            .get(..scheme.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(scheme))
    };
    let Some(scheme_len) = ["http://", "https://", "ws://", "wss://"]
        .into_iter()
        .find(|scheme| lower_scheme(scheme))
        .map(str::len)
    else {
        return target;
    };

    let after_scheme = target.get(scheme_len..).unwrap_or_default();
    match after_scheme.find(['/', '?']) {
        Some(at) => after_scheme.get(at..).unwrap_or("/"),
        None => "/",
    }
}

/// Tells whether a request announces a body: any `Transfer-Encoding`, or a
/// `Content-Length` other than zero (RFC 9112 §6.1, §6.2).
fn has_body(headers: &[httparse::Header<'_>]) -> bool {
    headers.iter().any(|header| {
        let value = header.value.trim_ascii();
        header.name.eq_ignore_ascii_case("transfer-encoding")
            || (header.name.eq_ignore_ascii_case("content-length") && value != b"0")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const JOIN: &str = "/joinRoom?user_name=ana&room_code=lobby&session_id=k3J9x0aa";
    const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
    const UPGRADE_HEADERS: [&str; 5] = [
        "Host: localhost:9000",
        "Upgrade: websocket",
        "Connection: Upgrade",
        KEY,
        "Sec-WebSocket-Version: 13",
    ];

    /// Builds a GET head for `target` with `headers`.
    fn head(target: &str, headers: &[&str]) -> String {
        let mut text = format!("GET {target} HTTP/1.1\r\n");
        for header in headers {
            text.push_str(header);
            text.push_str("\r\n");
        }
        text.push_str("\r\n");
        text
    }

    /// Builds an upgrade head for `target`, with `replace` swapped in for
    /// the standard header of the same name (or added) and `drop` removed.
    fn upgrade_head(target: &str, replace: &[&str], drop: &[&str]) -> String {
        let name = |line: &str| line.split(':').next().unwrap_or("").to_ascii_lowercase();
        let mut headers: Vec<&str> = UPGRADE_HEADERS
            .iter()
            .copied()
            .filter(|line| !drop.iter().any(|d| d.eq_ignore_ascii_case(&name(line))))
            .filter(|line| !replace.iter().any(|r| name(r) == name(line)))
            .collect();
        headers.extend_from_slice(replace);
        head(target, &headers)
    }

    fn config() -> ServerConfig {
        ServerConfig {
            echo_enabled: true,
            ..ServerConfig::default()
        }
    }

    fn decide_with(config: &ServerConfig, bytes: &[u8]) -> (Request, Vec<u8>) {
        let mut handshake = ServerHandshake::new(config, Instant::now());
        match handshake.handle_input(bytes) {
            Progress::Done { request, leftover } => (request, leftover),
            Progress::NeedMore => panic!("head not complete"),
        }
    }

    fn decide(text: &str) -> Request {
        decide_with(&config(), text.as_bytes()).0
    }

    fn refusal(request: Request) -> Refusal {
        match request {
            Request::Refuse(refusal) => refusal,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_join_is_accepted() {
        let Request::Join { params, upgrade } = decide(&upgrade_head(JOIN, &[], &[])) else {
            panic!("expected a join");
        };
        assert_eq!(params.user_name.as_str(), "ana");
        assert_eq!(params.room_code.as_str(), "lobby");
        assert_eq!(params.session_id.as_str(), "k3J9x0aa");
        assert_eq!(upgrade.accept(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert_eq!(
            upgrade.response_bytes(),
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
    }

    #[test]
    fn other_endpoints_are_recognised() {
        assert!(matches!(
            decide(&upgrade_head("/echo?x=1", &[], &[])),
            Request::Echo { .. }
        ));
        assert_eq!(decide(&head("/healthz", &["Host: a"])), Request::Health);
        assert_eq!(decide(&head("/metrics?x", &["Host: a"])), Request::Metrics);

        let no_echo = ServerConfig::default();
        let text = upgrade_head("/echo", &[], &[]);
        let (request, _) = decide_with(&no_echo, text.as_bytes());
        assert_eq!(refusal(request).status(), 404);
    }

    #[test]
    fn absolute_form_targets_reach_their_endpoint() {
        let text = "GET http://chat.example:8080/healthz HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(decide(text), Request::Health);
        assert_eq!(origin_form("HTTP://a/joinRoom?x=1"), "/joinRoom?x=1");
        assert_eq!(origin_form("http://a?x=1"), "?x=1");
        assert_eq!(origin_form("http://a"), "/");
        assert_eq!(origin_form("/echo"), "/echo");
    }

    #[test]
    fn bare_lf_heads_are_answered() {
        let text = "GET /healthz HTTP/1.1\nHost: a\n\n";
        assert_eq!(decide(text), Request::Health);
        let zero_length = head("/healthz", &["Host: a", "Content-Length: 0"]);
        assert_eq!(decide(&zero_length), Request::Health);
    }

    #[test]
    fn every_refusal_of_the_table_has_its_status_and_header() {
        let post = upgrade_head(JOIN, &[], &[]).replacen("GET", "POST", 1);
        let http10 = upgrade_head(JOIN, &[], &[]).replacen("HTTP/1.1", "HTTP/1.0", 1);
        let cases: Vec<(&str, String, u16, Option<&str>)> = vec![
            ("other path", upgrade_head("/join", &[], &[]), 404, None),
            ("post", post, 405, Some("Allow: GET\r\n")),
            (
                "no upgrade",
                head(JOIN, &["Host: a"]),
                426,
                Some("Upgrade: websocket\r\n"),
            ),
            (
                "no connection token",
                upgrade_head(JOIN, &["Connection: keep-alive"], &[]),
                426,
                Some("Upgrade: websocket\r\n"),
            ),
            (
                "version 8",
                upgrade_head(JOIN, &["Sec-WebSocket-Version: 8"], &[]),
                426,
                Some("Sec-WebSocket-Version: 13\r\n"),
            ),
            (
                "no version",
                upgrade_head(JOIN, &[], &["sec-websocket-version"]),
                426,
                Some("Sec-WebSocket-Version: 13\r\n"),
            ),
            ("malformed", "GET\r\n\r\n".to_owned(), 400, None),
            ("no host", upgrade_head(JOIN, &[], &["host"]), 400, None),
            (
                "a body",
                upgrade_head(JOIN, &["Content-Length: 5"], &[]),
                400,
                None,
            ),
            (
                "chunked",
                upgrade_head(JOIN, &["Transfer-Encoding: chunked"], &[]),
                400,
                None,
            ),
            ("http/1.0", http10, 400, None),
            (
                "no key",
                upgrade_head(JOIN, &[], &["sec-websocket-key"]),
                400,
                None,
            ),
            (
                "bad query",
                upgrade_head("/joinRoom?user_name=a", &[], &[]),
                400,
                None,
            ),
        ];
        for (name, text, status, extra) in cases {
            let refused = refusal(decide(&text));
            assert_eq!(refused.status(), status, "{name}: {}", refused.reason());
            let bytes = String::from_utf8(refused.to_bytes()).unwrap();
            if let Some(extra) = extra {
                assert!(bytes.contains(extra), "{name}: {bytes}");
            }
            assert!(bytes.contains("Connection: close\r\n"), "{name}");
            assert!(
                bytes.ends_with(&format!("\r\n\r\n{}\n", refused.reason())),
                "{name}"
            );
        }
    }

    #[test]
    fn bad_keys_are_refused() {
        let keys = [
            "not base64 at all!!!!!!!",
            "AAAAAAAAAAAAAAAAAAAA",     // 15 bytes
            "AAAAAAAAAAAAAAAAAAAAAA==", // 16 bytes: accepted below
            "AAAAAAAAAAAAAAAAAAAAAAA=", // 17 bytes
        ];
        let status = |key: &str| {
            let line = format!("Sec-WebSocket-Key: {key}");
            match decide(&upgrade_head(JOIN, &[&line], &[])) {
                Request::Refuse(refusal) => refusal.status(),
                _ => 101,
            }
        };
        assert_eq!(status(keys[0]), 400);
        assert_eq!(status(keys[1]), 400);
        assert_eq!(status(keys[2]), 101);
        assert_eq!(status(keys[3]), 400);

        let twice = upgrade_head(JOIN, &[KEY, KEY], &[]);
        assert_eq!(refusal(decide(&twice)).kind(), RefusalKind::BadKey);
    }

    #[test]
    fn origins_are_checked_only_when_configured() {
        let config = ServerConfig {
            allowed_origins: vec!["https://chat.example".to_owned()],
            ..ServerConfig::default()
        };
        let status = |config: &ServerConfig, origin: Option<&str>| {
            let line = origin.map(|o| format!("Origin: {o}"));
            let extra: Vec<&str> = line.iter().map(String::as_str).collect();
            let text = upgrade_head(JOIN, &extra, &[]);
            match decide_with(config, text.as_bytes()).0 {
                Request::Refuse(refusal) => refusal.status(),
                _ => 101,
            }
        };
        assert_eq!(status(&config, Some("https://evil.example")), 403);
        assert_eq!(status(&config, Some("HTTPS://Chat.Example")), 101);

        let two = [
            "Origin: https://chat.example",
            "Origin: https://evil.example",
        ];
        let refused = refusal(decide_with(&config, upgrade_head(JOIN, &two, &[]).as_bytes()).0);
        assert_eq!(refused.status(), 403);
        assert!(
            refused.to_string().contains("more than one origin"),
            "{refused}"
        );
        assert_eq!(status(&config, None), 101);
        assert_eq!(
            status(&ServerConfig::default(), Some("https://evil.example")),
            101
        );
    }

    #[test]
    fn host_refusals_say_what_is_wrong() {
        let reason = |text: &[u8]| refusal(decide_with(&config(), text).0).to_string();
        let healthz = |hosts: &[u8]| [b"GET /healthz HTTP/1.1\r\n", hosts, b"\r\n"].concat();

        assert!(reason(&healthz(b"")).contains("needs a host"));
        assert!(reason(&healthz(b"Host: a\r\nHost: b\r\n")).contains("more than one host"));
        assert!(reason(&healthz(b"Host: \xff\xfe\r\n")).contains("not valid UTF-8"));
    }

    #[test]
    fn checks_follow_the_documented_order() {
        // A POST to an unknown path without an upgrade: the method wins.
        let text = head("/nope", &[]).replacen("GET", "POST", 1);
        assert_eq!(refusal(decide(&text)).status(), 405);

        // Unknown path without an upgrade: 404 before 426.
        assert_eq!(refusal(decide(&head("/nope", &["Host: a"]))).status(), 404);

        // Health needs no upgrade but HTTP/1.1 needs a host.
        assert_eq!(refusal(decide(&head("/healthz", &[]))).status(), 400);

        // Bad version and bad key: the version wins.
        let text = upgrade_head(
            JOIN,
            &["Sec-WebSocket-Version: 7", "Sec-WebSocket-Key: x"],
            &[],
        );
        assert_eq!(refusal(decide(&text)).status(), 426);

        // Bad key and bad query: the key wins.
        let text = upgrade_head("/joinRoom", &["Sec-WebSocket-Key: x"], &[]);
        assert_eq!(refusal(decide(&text)).kind(), RefusalKind::BadKey);
    }

    #[test]
    fn http_1_0_may_ask_for_health_but_not_upgrade() {
        let health = "GET /healthz HTTP/1.0\r\n\r\n";
        assert_eq!(decide(health), Request::Health);

        let join = upgrade_head(JOIN, &[], &[]).replacen("HTTP/1.1", "HTTP/1.0", 1);
        let refused = refusal(decide(&join));
        assert_eq!(refused.status(), 400);
        assert!(
            refused.reason().contains("HTTP/1.1"),
            "{}",
            refused.reason()
        );
    }

    #[test]
    fn header_names_and_tokens_ignore_case() {
        let text = head(
            JOIN,
            &[
                "HOST: a",
                "upgrade: WebSocket",
                "CONNECTION: keep-alive, upgrade",
                "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==",
                "SEC-WEBSOCKET-VERSION: 13",
            ],
        );
        assert!(matches!(decide(&text), Request::Join { .. }));

        let split = upgrade_head(
            JOIN,
            &["Connection: keep-alive", "Connection: Upgrade"],
            &[],
        );
        assert!(matches!(decide(&split), Request::Join { .. }));
    }

    #[test]
    fn query_values_are_percent_decoded() {
        let target = "/joinRoom?user_name=ana+%F0%9F%A6%80%26bo&room_code=lo%62by\
                      &session_id=k3J9x0aa&extra=%zz";
        let Request::Join { params, .. } = decide(&upgrade_head(target, &[], &[])) else {
            panic!("expected a join");
        };
        assert_eq!(params.user_name.as_str(), "ana 🦀&bo");
        assert_eq!(params.room_code.as_str(), "lobby");

        let bad = upgrade_head(
            "/joinRoom?user_name=%FF&room_code=a&session_id=k3J9x0aa",
            &[],
            &[],
        );
        assert_eq!(refusal(decide(&bad)).status(), 400);

        let space = upgrade_head(
            "/joinRoom?user_name=a&room_code=a+b&session_id=k3J9x0aa",
            &[],
            &[],
        );
        assert_eq!(
            refusal(decide(&space)).reason(),
            "room_code may not contain ' '"
        );
    }

    #[test]
    fn bytes_after_the_head_are_leftover() {
        let mut bytes = upgrade_head(JOIN, &[], &[]).into_bytes();
        let frame = [0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2];
        bytes.extend_from_slice(&frame);
        let (request, leftover) = decide_with(&config(), &bytes);
        assert!(matches!(request, Request::Join { .. }));
        assert_eq!(leftover, frame);
    }

    #[test]
    fn a_head_split_anywhere_gives_the_same_result() {
        let mut bytes = upgrade_head(JOIN, &[], &[]).into_bytes();
        bytes.extend_from_slice(b"tail");
        let whole = decide_with(&config(), &bytes);

        for split in 0..=bytes.len() {
            let (a, b) = bytes.split_at(split);
            let mut handshake = ServerHandshake::new(&config(), Instant::now());
            let result = match handshake.handle_input(a) {
                Progress::Done { request, leftover } => {
                    let mut leftover = leftover;
                    leftover.extend_from_slice(b);
                    (request, leftover)
                }
                Progress::NeedMore => match handshake.handle_input(b) {
                    Progress::Done { request, leftover } => (request, leftover),
                    Progress::NeedMore => panic!("split at {split}: no result"),
                },
            };
            assert_eq!(result, whole, "split at {split}");
        }

        let mut handshake = ServerHandshake::new(&config(), Instant::now());
        let mut result = None;
        for (i, byte) in bytes.iter().enumerate() {
            if let Progress::Done { request, leftover } = handshake.handle_input(&[*byte]) {
                let mut leftover = leftover;
                leftover.extend_from_slice(bytes.get(i + 1..).unwrap_or_default());
                result = Some((request, leftover));
                break;
            }
        }
        assert_eq!(result, Some(whole));
    }

    #[test]
    fn a_head_exactly_at_the_limit_is_read_and_one_byte_more_is_431() {
        let base = upgrade_head(JOIN, &[], &[]);
        let limited = |limit: usize| ServerConfig {
            max_head_bytes: limit,
            ..ServerConfig::default()
        };

        let (request, _) = decide_with(&limited(base.len()), base.as_bytes());
        assert!(matches!(request, Request::Join { .. }));

        let (request, _) = decide_with(&limited(base.len() - 1), base.as_bytes());
        assert_eq!(refusal(request).status(), 431);

        // An endless head is refused as soon as it reaches the limit.
        let mut handshake = ServerHandshake::new(&limited(100), Instant::now());
        assert_eq!(handshake.handle_input(&[b'a'; 99]), Progress::NeedMore);
        match handshake.handle_input(b"a") {
            Progress::Done { request, leftover } => {
                assert_eq!(refusal(request).status(), 431);
                assert!(leftover.is_empty());
            }
            Progress::NeedMore => panic!("expected 431"),
        }
    }

    #[test]
    fn any_number_of_header_fields_within_the_size_limit_is_read() {
        let lines: Vec<String> = (0..900).map(|i| format!("X{i}:")).collect();
        let mut lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let request = decide(&upgrade_head(JOIN, &lines, &[]));
        assert!(matches!(request, Request::Join { .. }), "{request:?}");

        // The fields that matter are found among the many.
        lines.push("Sec-WebSocket-Version: 12");
        assert_eq!(
            refusal(decide(&upgrade_head(JOIN, &lines, &[]))).status(),
            426
        );
    }

    #[test]
    fn the_deadline_is_the_handshake_timeout_away() {
        let now = Instant::now();
        let handshake = ServerHandshake::new(&ServerConfig::default(), now);
        assert_eq!(handshake.poll_timeout(), now + Duration::from_secs(10));

        let forever = ServerConfig {
            handshake_timeout: Duration::MAX,
            ..ServerConfig::default()
        };
        assert!(ServerHandshake::new(&forever, now).poll_timeout() > now);
    }

    #[test]
    fn input_after_done_is_refused_not_lost() {
        let mut handshake = ServerHandshake::new(&config(), Instant::now());
        let _ = handshake.handle_input(head("/healthz", &["Host: a"]).as_bytes());
        match handshake.handle_input(b"more") {
            Progress::Done { request, leftover } => {
                assert_eq!(refusal(request).status(), 400);
                assert_eq!(leftover, b"more");
            }
            Progress::NeedMore => panic!("expected done"),
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..2048),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let config = ServerConfig { max_head_bytes: 512, ..config() };
            let mut handshake = ServerHandshake::new(&config, Instant::now());
            let mut rest = bytes.as_slice();
            for cut in cuts {
                let (piece, tail) = rest.split_at(cut % (rest.len() + 1));
                let _ = handshake.handle_input(piece);
                rest = tail;
            }
            let _ = handshake.handle_input(rest);
        }

        #[test]
        fn any_split_of_a_valid_request_gives_the_same_request(
            cuts in proptest::collection::btree_set(any::<usize>(), 0..6),
        ) {
            let mut bytes = upgrade_head(JOIN, &[], &[]).into_bytes();
            bytes.extend_from_slice(b"\x81\x80abcd");
            let whole = decide_with(&config(), &bytes);

            let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut handshake = ServerHandshake::new(&config(), Instant::now());
            let mut start = 0;
            let mut result = None;
            for end in points.into_iter().chain([bytes.len()]) {
                let piece = bytes.get(start..end).unwrap_or_default();
                if let Progress::Done { request, mut leftover } = handshake.handle_input(piece) {
                    leftover.extend_from_slice(bytes.get(end..).unwrap_or_default());
                    result = Some((request, leftover));
                    break;
                }
                start = end;
            }
            prop_assert_eq!(result, Some(whole));
        }
    }
}
