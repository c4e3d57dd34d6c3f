//! The `/joinRoom` query string: percent-decoding with `+` as a space, and
//! the three parameters a member joins with (docs/PROTOCOL.md, "Query
//! parameters").

use std::fmt;

use super::server::JoinParams;
use crate::names::{InvalidName, RoomCode, SessionId, UserName};

/// Why a query string was refused; its text is the one-line reason of a
/// 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidQuery {
    /// A required parameter is absent.
    Missing(&'static str),
    /// A parameter natter reads appears more than once.
    Duplicate(&'static str),
    /// A `%` is not followed by two hex digits.
    BadEscape(&'static str),
    /// The decoded bytes are not UTF-8.
    NotUtf8(&'static str),
    /// The decoded value breaks its parameter's rule.
    Name(InvalidName),
}

impl fmt::Display for InvalidQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidQuery::Missing(field) => write!(f, "missing {field}"),
            InvalidQuery::Duplicate(field) => write!(f, "{field} is given more than once"),
            InvalidQuery::BadEscape(field) => write!(f, "{field} has a bad percent-escape"),
            InvalidQuery::NotUtf8(field) => {
                write!(f, "{field} is not UTF-8 after percent-decoding")
            }
            InvalidQuery::Name(name) => name.fmt(f),
        }
    }
}

impl std::error::Error for InvalidQuery {}

/// Why [`percent_decode`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// A `%` is not followed by two hex digits.
    BadEscape,
    /// The decoded bytes are not UTF-8.
    NotUtf8,
}

/// Decodes one query component: `%XX` becomes the byte `XX`, `+` a space
/// (the form encoding of the HTML standard, which browsers use).
///
/// # Errors
///
/// [`DecodeError::BadEscape`] for a `%` without two hex digits after it,
/// [`DecodeError::NotUtf8`] when the decoded bytes are not UTF-8.
pub fn percent_decode(text: &str) -> Result<String, DecodeError> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        match byte {
            b'+' => out.push(b' '),
            b'%' => {
                let high = bytes.next().and_then(hex_value);
                let low = bytes.next().and_then(hex_value);
                match (high, low) {
                    (Some(high), Some(low)) => out.push(high << 4 | low),
                    _ => return Err(DecodeError::BadEscape),
                }
            }
            _ => out.push(byte),
        }
    }
    String::from_utf8(out).map_err(|_| DecodeError::NotUtf8)
}

/// Returns the value of one hex digit.
fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|v| u8::try_from(v).ok())
}

/// Encodes `text` for a query component: every byte outside the unreserved
/// set `A-Z a-z 0-9 - . _ ~` (RFC 3986 §2.3) becomes `%XX`.
pub fn percent_encode(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";

    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xF)]));
        }
    }
    out
}

/// Reads `user_name`, `room_code` and `session_id` from a query string
/// (without its `?`); other parameters are ignored.
///
/// # Errors
///
/// [`InvalidQuery`] naming the first parameter, in that order, that is
/// missing, repeated, badly encoded or invalid.
pub fn parse_join_query(query: &str) -> Result<JoinParams, InvalidQuery> {
    const FIELDS: [&str; 3] = ["user_name", "room_code", "session_id"];

    // Raw (still encoded) values, one slot per field.
    let mut raw: [Option<&str>; 3] = [None; 3];
    let mut duplicate: [bool; 3] = [false; 3];
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let Ok(name) = percent_decode(name) else {
            continue;
        };
        if let Some(slot) = FIELDS.iter().position(|&field| field == name) {
            duplicate[slot] |= raw[slot].is_some();
            raw[slot] = Some(value);
        }
    }

    let mut decoded = Vec::with_capacity(FIELDS.len());
    for ((field, value), repeated) in FIELDS.into_iter().zip(raw).zip(duplicate) {
        if repeated {
            return Err(InvalidQuery::Duplicate(field));
        }
        let value = value.ok_or(InvalidQuery::Missing(field))?;
        decoded.push(percent_decode(value).map_err(|error| match error {
            DecodeError::BadEscape => InvalidQuery::BadEscape(field),
            DecodeError::NotUtf8 => InvalidQuery::NotUtf8(field),
        })?);
    }

    let [user_name, room_code, session_id] = decoded.as_slice() else {
        return Err(InvalidQuery::Missing("user_name"));
    };
    Ok(JoinParams {
        user_name: UserName::parse(user_name).map_err(InvalidQuery::Name)?,
        room_code: RoomCode::parse(room_code).map_err(InvalidQuery::Name)?,
        session_id: SessionId::parse(session_id).map_err(InvalidQuery::Name)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoding_handles_escapes_and_plus() {
        assert_eq!(percent_decode("a+b%20c%2B%26").unwrap(), "a b c+&");
        assert_eq!(percent_decode("%F0%9F%A6%80").unwrap(), "🦀");
        assert_eq!(percent_decode("%e2%82%ac").unwrap(), "€");
        assert_eq!(percent_decode("%"), Err(DecodeError::BadEscape));
        assert_eq!(percent_decode("%4"), Err(DecodeError::BadEscape));
        assert_eq!(percent_decode("%zz"), Err(DecodeError::BadEscape));
        assert_eq!(percent_decode("%FF"), Err(DecodeError::NotUtf8));
    }

    #[test]
    fn encoding_keeps_only_unreserved_bytes() {
        assert_eq!(percent_encode("a-b.c_d~e"), "a-b.c_d~e");
        assert_eq!(percent_encode("a b&c=d%+"), "a%20b%26c%3Dd%25%2B");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }

    #[test]
    fn join_query_reads_the_three_parameters() {
        let params =
            parse_join_query("x=1&user_name=ana+b&&room_code=lobby&session_id=k3J9x0aa&y").unwrap();
        assert_eq!(params.user_name.as_str(), "ana b");
        assert_eq!(params.room_code.as_str(), "lobby");
        assert_eq!(params.session_id.as_str(), "k3J9x0aa");
    }

    #[test]
    fn join_query_reasons_name_the_parameter() {
        let reason = |query: &str| parse_join_query(query).unwrap_err().to_string();
        assert_eq!(
            reason("room_code=a&session_id=k3J9x0aa"),
            "missing user_name"
        );
        assert_eq!(
            reason("user_name=a&room_code=a&room_code=b&session_id=k3J9x0aa"),
            "room_code is given more than once"
        );
        assert_eq!(
            reason("user_name=a&room_code=a+b&session_id=k3J9x0aa"),
            "room_code may not contain ' '"
        );
        assert_eq!(
            reason("user_name=%zz&room_code=a&session_id=k3J9x0aa"),
            "user_name has a bad percent-escape"
        );
        assert_eq!(
            reason("user_name=%C3&room_code=a&session_id=k3J9x0aa"),
            "user_name is not UTF-8 after percent-decoding"
        );
        assert_eq!(
            reason("user_name=a&room_code=a&session_id=short"),
            "session_id has 5 characters, at least 8 are needed"
        );
    }
}
