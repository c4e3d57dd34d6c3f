//! Every HTTP response the server writes outside a WebSocket session:
//! refusals, `/healthz` and `/metrics` (docs/PROTOCOL.md, "Endpoints").

use std::fmt;

/// The `Content-Type` of a `/metrics` answer (Prometheus text format 0.0.4).
pub const METRICS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The `Content-Type` of a refusal's and `/healthz`'s plain-text body.
const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// Longest reason, in characters, a refusal carries; longer ones are cut.
const MAX_REASON_CHARS: usize = 200;

/// The rule a refused request broke; each maps to one status in
/// [`RefusalKind::status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RefusalKind {
    /// The request is not well-formed HTTP/1.1 or lacks a required header
    /// (400).
    MalformedRequest,
    /// The path names no endpoint (404).
    NotFound,
    /// The method is not GET (405, with `Allow: GET`).
    MethodNotAllowed,
    /// A WebSocket endpoint was asked for without an upgrade (426, with
    /// `Upgrade: websocket`).
    UpgradeRequired,
    /// `Sec-WebSocket-Version` is missing or not 13 (426, with
    /// `Sec-WebSocket-Version: 13`).
    UnsupportedVersion,
    /// `Sec-WebSocket-Key` is missing, repeated, or not 16 bytes in base64
    /// (400).
    BadKey,
    /// A join query parameter is missing, repeated or invalid (400).
    BadQuery,
    /// The request head is over the size limit or has too many fields (431).
    HeadTooLarge,
    /// `Origin` is not in the configured allow-list (403).
    OriginNotAllowed,
    /// The session id is already connected in the room (409).
    DuplicateSession,
    /// The server is at its connection limit (503).
    ServerBusy,
}

impl RefusalKind {
    /// Returns the HTTP status code a refusal of this kind answers with.
    pub fn status(self) -> u16 {
        match self {
            RefusalKind::MalformedRequest | RefusalKind::BadKey | RefusalKind::BadQuery => 400,
            RefusalKind::OriginNotAllowed => 403,
            RefusalKind::NotFound => 404,
            RefusalKind::MethodNotAllowed => 405,
            RefusalKind::DuplicateSession => 409,
            RefusalKind::UpgradeRequired | RefusalKind::UnsupportedVersion => 426,
            RefusalKind::HeadTooLarge => 431,
            RefusalKind::ServerBusy => 503,
        }
    }

    /// Returns the extra header line (name, value) this kind's response
    /// carries, if any.
    fn extra_header(self) -> Option<(&'static str, &'static str)> {
        match self {
            RefusalKind::MethodNotAllowed => Some(("Allow", "GET")),
            RefusalKind::UpgradeRequired => Some(("Upgrade", "websocket")),
            RefusalKind::UnsupportedVersion => Some(("Sec-WebSocket-Version", "13")),
            _ => None,
        }
    }
}

/// Returns the reason phrase for every status natter answers with, and
/// `"Unknown"` for any other.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// A refused request: the rule it broke and a one-line reason for the peer.
///
/// [`Refusal::to_bytes`] renders it as a complete HTTP/1.1 response with
/// `Content-Length` and `Connection: close`; the server writes that and
/// closes the connection.
///
/// # Examples
///
/// ```
/// use natter_core::handshake::Refusal;
///
/// let busy = Refusal::server_busy();
/// assert_eq!(busy.status(), 503);
/// assert!(busy.to_bytes().starts_with(b"HTTP/1.1 503 Service Unavailable\r\n"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    kind: RefusalKind,
    reason: String,
}

impl Refusal {
    /// Creates a refusal of `kind`; the reason is kept to one printable line
    /// of at most 200 characters.
    pub fn new(kind: RefusalKind, reason: impl fmt::Display) -> Refusal {
        let mut line = String::new();
        for c in reason.to_string().chars().take(MAX_REASON_CHARS) {
            if c.is_control() {
                line.extend(c.escape_default());
            } else {
                line.push(c);
            }
        }
        Refusal { kind, reason: line }
    }

    /// Creates the 409 for a session id already connected in its room.
    pub fn duplicate_session() -> Refusal {
        Refusal::new(
            RefusalKind::DuplicateSession,
            "session_id is already connected in this room",
        )
    }

    /// Creates the 503 for a server at its connection limit.
    pub fn server_busy() -> Refusal {
        Refusal::new(RefusalKind::ServerBusy, "server is at its connection limit")
    }

    /// Returns the rule the request broke.
    pub fn kind(&self) -> RefusalKind {
        self.kind
    }

    /// Returns the HTTP status code of the response.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// Returns the one-line reason sent as the body (without its newline).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Renders the complete HTTP/1.1 response: status line, the kind's
    /// extra header, plain-text headers, and the reason plus a newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let body = format!("{}\n", self.reason);
        render(
            self.status(),
            self.kind.extra_header(),
            TEXT_CONTENT_TYPE,
            body.as_bytes(),
        )
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status(),
            reason_phrase(self.status()),
            self.reason
        )
    }
}

/// Renders the `200` answer to `/healthz`, body `ok`.
pub fn health_response() -> Vec<u8> {
    ok_response(TEXT_CONTENT_TYPE, b"ok")
}

/// Renders a complete `200` response with `body` of `content_type`, closing
/// the connection after it; `/metrics` passes [`METRICS_CONTENT_TYPE`].
pub fn ok_response(content_type: &str, body: &[u8]) -> Vec<u8> {
    render(200, None, content_type, body)
}

/// Renders one complete response that closes the connection.
fn render(status: u16, extra: Option<(&str, &str)>, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status));
    if let Some((name, value)) = extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }

    head.push_str(&format!(
        "Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_renders_a_complete_response() {
        let refusal = Refusal::new(RefusalKind::MethodNotAllowed, "method POST is not allowed");
        let text = String::from_utf8(refusal.to_bytes()).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Length: 27\r\n\
             Connection: close\r\n\r\nmethod POST is not allowed\n"
        );
    }

    #[test]
    fn reasons_stay_on_one_short_line() {
        let refusal = Refusal::new(RefusalKind::NotFound, format!("a\r\nb{}", "x".repeat(500)));
        assert!(refusal.reason().starts_with("a\\r\\nb"));
        assert!(!refusal.reason().contains('\n'));
        assert!(refusal.reason().chars().count() <= MAX_REASON_CHARS * 2);
    }

    #[test]
    fn server_side_constructors_have_their_status() {
        assert_eq!(Refusal::duplicate_session().status(), 409);
        assert_eq!(Refusal::server_busy().status(), 503);
        assert!(Refusal::server_busy()
            .to_bytes()
            .starts_with(b"HTTP/1.1 503 Service Unavailable\r\n"));
    }

    #[test]
    fn health_and_metrics_answers_are_complete() {
        let health = String::from_utf8(health_response()).unwrap();
        assert!(health.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(health.contains("Content-Length: 2\r\n"));
        assert!(health.ends_with("\r\n\r\nok"));

        let metrics = String::from_utf8(ok_response(METRICS_CONTENT_TYPE, b"a 1\n")).unwrap();
        assert!(metrics.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
        assert!(metrics.contains("Connection: close\r\n"));
    }
}
