//! The HTTP/1.1 upgrade that opens every natter connection, both sides
//! (RFC 6455 §4, docs/PROTOCOL.md "Endpoints").
//!
//! - [`ServerHandshake`] reads a request head in pieces and decides what it
//!   asks for: a [`Request`] to join a room, to echo, for health or metrics,
//!   or a [`Refusal`] rendered as a complete HTTP/1.1 response.
//! - [`ClientHandshake`] writes the upgrade request for a [`WsUrl`] and
//!   checks the server's answer, surfacing a refusal's status and reason.
//! - [`accept_key`] derives the `Sec-WebSocket-Accept` value both sides agree
//!   on.
//!
//! Neither side reads a clock or a randomness source: the server takes `now`
//! as an argument and the client takes its 16 key bytes from the caller.

mod client;
mod query;
mod response;
mod server;

pub use client::{join_path, ClientHandshake, ClientHandshakeError, InvalidUrl, WsUrl};
pub use query::{parse_join_query, percent_decode, percent_encode, DecodeError, InvalidQuery};
pub use response::{
    health_response, ok_response, reason_phrase, Refusal, RefusalKind, METRICS_CONTENT_TYPE,
};
pub use server::{JoinParams, Progress, Request, ServerHandshake, Upgrade};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// The GUID RFC 6455 §1.3 appends to a client's key before hashing.
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Most header fields either side parses in one head; more is refused.
const MAX_HEADERS: usize = 64;

/// Derives the `Sec-WebSocket-Accept` value for a client's
/// `Sec-WebSocket-Key` (RFC 6455 §4.2.2, item 5.4).
///
/// The key is used exactly as given, so callers trim surrounding white space
/// first.
///
/// # Examples
///
/// ```
/// use natter_core::handshake::accept_key;
///
/// assert_eq!(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &str) -> String {
    let mut hasher = Sha1::new();
    hasher.update(key.as_bytes());
    hasher.update(WEBSOCKET_GUID.as_bytes());
    STANDARD.encode(hasher.finalize())
}

/// Finds the empty line that ends an HTTP head, one byte at a time.
///
/// It remembers where in a line the bytes seen so far end, so every byte is
/// looked at once, however the head is split.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum HeadEnd {
    /// Inside a line (the request or status line at first).
    #[default]
    InLine,
    /// Just after a line's LF: an empty line would end the head here.
    LineStart,
    /// A CR at the start of a line: its LF ends the head.
    LineStartCr,
}

impl HeadEnd {
    /// Returns the offset just past the empty line that ends the head in
    /// `bytes`, if it ends there.
    ///
    /// Lines end in CRLF or, as RFC 9112 §2.2 lets a recipient accept, in a
    /// bare LF, so a head ending `\r\n\r\n`, `\n\n` or a mix of them is
    /// recognised rather than left to time out.
    fn feed(&mut self, bytes: &[u8]) -> Option<usize> {
        for (i, &byte) in bytes.iter().enumerate() {
            *self = match (*self, byte) {
                (HeadEnd::LineStart | HeadEnd::LineStartCr, b'\n') => return Some(i + 1),
                (HeadEnd::LineStart, b'\r') => HeadEnd::LineStartCr,
                (_, b'\n') => HeadEnd::LineStart,
                _ => HeadEnd::InLine,
            };
        }
        None
    }
}

/// What one piece of input did to a [`HeadReader`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeadStep {
    /// The head is not complete yet.
    Partial,
    /// The head is complete; the piece's bytes from this offset on follow it.
    Complete(usize),
    /// The head cannot end within the limit.
    TooLarge,
}

/// Collects an HTTP head up to its CRLFCRLF, never holding more than the
/// limit.
#[derive(Debug, Clone)]
struct HeadReader {
    head: Vec<u8>,
    end: HeadEnd,
    limit: usize,
}

impl HeadReader {
    fn new(limit: usize) -> Self {
        HeadReader {
            head: Vec::new(),
            end: HeadEnd::default(),
            limit,
        }
    }

    /// Takes the next piece of input; only the head's own bytes are kept.
    fn push(&mut self, bytes: &[u8]) -> HeadStep {
        match self.end.feed(bytes) {
            Some(used) => {
                if self.head.len() + used > self.limit {
                    return HeadStep::TooLarge;
                }
                self.head
                    .extend_from_slice(bytes.get(..used).unwrap_or_default());
                HeadStep::Complete(used)
            }
            None => {
                // A head still missing its last byte that already fills the
                // limit can only end beyond it.
                if self.head.len() + bytes.len() >= self.limit {
                    return HeadStep::TooLarge;
                }
                self.head.extend_from_slice(bytes);
                HeadStep::Partial
            }
        }
    }
}

/// Returns every value of the header `name`, compared case-insensitively.
fn header_values<'a>(
    headers: &'a [httparse::Header<'a>],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .iter()
        .filter(move |h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// Says whether the comma-separated lists in the headers `name` hold
/// `token`, compared case-insensitively (RFC 9110 §5.6.1).
fn has_token(headers: &[httparse::Header<'_>], name: &str, token: &str) -> bool {
    header_values(headers, name)
        .flat_map(|value| value.split(|&b| b == b','))
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// Returns the only value of the header `name` as trimmed text, `Ok(None)`
/// when it is absent, or `Err(())` when it repeats or is not UTF-8.
fn single_header<'a>(
    headers: &'a [httparse::Header<'a>],
    name: &'a str,
) -> Result<Option<&'a str>, ()> {
    let mut values = header_values(headers, name);
    let first = values.next();
    if values.next().is_some() {
        return Err(());
    }

    match first {
        None => Ok(None),
        Some(value) => std::str::from_utf8(value)
            .map(|text| Some(text.trim()))
            .map_err(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_matches_the_rfc_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn head_end_is_found_across_any_split() {
        let text = b"GET / HTTP/1.1\r\nA: b\r\r\n\r\n\r\nrest";
        let end = text.len() - 6;
        for split in 0..=text.len() {
            let (a, b) = text.split_at(split);
            let mut finder = HeadEnd::default();
            let found = match finder.feed(a) {
                Some(at) => at,
                None => finder.feed(b).map(|at| at + a.len()).unwrap_or(0),
            };
            assert_eq!(found, end, "split at {split}");
        }
    }

    #[test]
    fn bare_lf_lines_end_a_head_too() {
        for text in [
            &b"GET / HTTP/1.1\nA: b\n\nrest"[..],
            b"GET / HTTP/1.1\r\nA: b\n\r\nrest",
        ] {
            let mut finder = HeadEnd::default();
            assert_eq!(finder.feed(text), Some(text.len() - 4));
        }
        let mut finder = HeadEnd::default();
        assert_eq!(finder.feed(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
    }

    #[test]
    fn head_reader_keeps_only_the_head() {
        let mut reader = HeadReader::new(100);
        assert_eq!(reader.push(b"GET / HTTP/1.1\r\n\r"), HeadStep::Partial);
        assert_eq!(reader.push(b"\nxyz"), HeadStep::Complete(1));
        assert_eq!(reader.head, b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn tokens_are_found_in_lists_whatever_their_case() {
        let headers = [
            httparse::Header {
                name: "connection",
                value: b"keep-alive, UPGRADE",
            },
            httparse::Header {
                name: "Upgrade",
                value: b"h2c",
            },
            httparse::Header {
                name: "upgrade",
                value: b" WebSocket ",
            },
        ];
        assert!(has_token(&headers, "Connection", "upgrade"));
        assert!(has_token(&headers, "UPGRADE", "websocket"));
        assert!(!has_token(&headers, "Connection", "close"));
        assert_eq!(
            single_header(&headers, "connection"),
            Ok(Some("keep-alive, UPGRADE"))
        );
        assert_eq!(single_header(&headers, "upgrade"), Err(()));
        assert_eq!(single_header(&headers, "host"), Ok(None));
    }
}
