//! Close codes and the validation of received close payloads (RFC 6455
//! §5.5.1, §7.4).

use std::fmt;

use crate::utf8::{self, InvalidUtf8};

/// The longest close reason that fits a control frame beside its code.
pub const MAX_REASON_LEN: usize = 123;

/// The code reported locally when a connection ended without a close frame
/// (RFC 6455 §7.4.1); it is never sent.
pub const ABNORMAL_CLOSURE: u16 = 1006;

/// A close code that may appear in a close frame.
///
/// Valid by construction: [`CloseCode::new`] refuses the codes RFC 6455
/// §7.4 reserves or leaves unassigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CloseCode(u16);

impl CloseCode {
    /// The purpose of the connection has been fulfilled.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// The endpoint is going away (server shutdown, page left).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// The peer sent a kind of data this endpoint does not accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// A message's data did not match its type (bad UTF-8 in text).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// The peer broke this endpoint's policy.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// A message was too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// The client needed an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// The server hit an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// The server is restarting.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// The server is overloaded; try again later.
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);
    /// A gateway got a bad answer upstream.
    pub const BAD_GATEWAY: CloseCode = CloseCode(1014);

    /// Returns the code for `value`, or `None` when a close frame may not
    /// carry it.
    pub fn new(value: u16) -> Option<CloseCode> {
        is_sendable(value).then_some(CloseCode(value))
    }

    /// Returns the code's numeric value.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.0
    }
}

/// Tells whether a close frame may carry `value` (RFC 6455 §7.4.1, §7.4.2):
/// the registered codes in use, and 3000-4999 for libraries and
/// applications.
fn is_sendable(value: u16) -> bool {
    matches!(value, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A received close payload that breaks RFC 6455 §5.5.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidClose {
    /// The payload was one byte: too long for none, too short for a code.
    OneByte,
    /// The code is reserved, unassigned or out of range.
    Code {
        /// The code received.
        code: u16,
    },
    /// The reason is not valid UTF-8.
    Reason(InvalidUtf8),
}

impl InvalidClose {
    /// Returns the code to close with in answer: 1007 for a bad reason,
    /// 1002 otherwise.
    pub fn close_code(&self) -> CloseCode {
        match self {
            InvalidClose::Reason(_) => CloseCode::INVALID_PAYLOAD,
            InvalidClose::OneByte | InvalidClose::Code { .. } => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for InvalidClose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidClose::OneByte => f.write_str("one-byte close payload"),
            InvalidClose::Code { code } => write!(f, "invalid close code {code}"),
            InvalidClose::Reason(error) => write!(f, "close reason: {error}"),
        }
    }
}

impl std::error::Error for InvalidClose {}

/// Parses and checks a received close payload: `None` for an empty one,
/// else its code and reason.
///
/// # Errors
///
/// Returns the broken rule: a one-byte payload, a code that may not be
/// sent, or a reason that is not UTF-8.
///
/// # Examples
///
/// ```
/// use natter_core::close::{parse_close_payload, CloseCode, InvalidClose};
///
/// assert_eq!(parse_close_payload(b""), Ok(None));
/// assert_eq!(parse_close_payload(b"\x03\xe8bye"), Ok(Some((CloseCode::NORMAL, "bye"))));
/// assert_eq!(parse_close_payload(b"\x03\xed"), Err(InvalidClose::Code { code: 1005 }));
/// ```
pub fn parse_close_payload(payload: &[u8]) -> Result<Option<(CloseCode, &str)>, InvalidClose> {
    let (code, reason) = match payload {
        [] => return Ok(None),
        [_] => return Err(InvalidClose::OneByte),
        [high, low, reason @ ..] => (u16::from_be_bytes([*high, *low]), reason),
    };

    let code = CloseCode::new(code).ok_or(InvalidClose::Code { code })?;
    let reason = utf8::validate(reason).map_err(InvalidClose::Reason)?;
    Ok(Some((code, reason)))
}

/// Appends a close payload to `out`: the code, then as much of `reason` as
/// fits in [`MAX_REASON_LEN`] bytes, cut at a character boundary.
pub fn encode_close_payload(out: &mut Vec<u8>, code: CloseCode, reason: &str) {
    out.extend_from_slice(&code.get().to_be_bytes());
    out.extend_from_slice(truncate_reason(reason).as_bytes());
}

/// Returns the longest prefix of `reason` that fits a close frame.
pub fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= MAX_REASON_LEN {
        return reason;
    }
    let mut end = MAX_REASON_LEN;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(code: u16, reason: &[u8]) -> Vec<u8> {
        let mut out = code.to_be_bytes().to_vec();
        out.extend_from_slice(reason);
        out
    }

    #[test]
    fn invalid_codes_answer_protocol_error() {
        for code in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65_535,
        ] {
            let error = parse_close_payload(&payload(code, b"")).unwrap_err();
            assert_eq!(error, InvalidClose::Code { code });
            assert_eq!(error.close_code(), CloseCode::PROTOCOL_ERROR, "code {code}");
        }
    }

    #[test]
    fn valid_codes_are_accepted_with_their_reason() {
        let valid = [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014,
        ];
        for code in valid.into_iter().chain([3000, 3999, 4000, 4999]) {
            let bytes = payload(code, b"why");
            let parsed = parse_close_payload(&bytes).unwrap();
            assert_eq!(parsed.map(|(c, r)| (c.get(), r)), Some((code, "why")));
        }
    }

    #[test]
    fn one_byte_payload_is_a_protocol_error() {
        let error = parse_close_payload(&[0x03]).unwrap_err();
        assert_eq!(error, InvalidClose::OneByte);
        assert_eq!(error.close_code(), CloseCode::PROTOCOL_ERROR);
    }

    #[test]
    fn empty_payload_carries_no_code() {
        assert_eq!(parse_close_payload(&[]), Ok(None));
    }

    #[test]
    fn invalid_reason_answers_invalid_payload() {
        let error = parse_close_payload(&payload(1000, b"ok\xCE\xBA\xE1\xBD")).unwrap_err();
        // The reason stops inside a sequence: the fault is at its end.
        assert_eq!(error, InvalidClose::Reason(InvalidUtf8 { offset: 6 }));
        assert_eq!(error.close_code(), CloseCode::INVALID_PAYLOAD);
    }

    #[test]
    fn codes_that_may_not_be_sent_cannot_be_built() {
        assert_eq!(CloseCode::new(1005), None);
        assert_eq!(CloseCode::new(ABNORMAL_CLOSURE), None);
        assert_eq!(CloseCode::new(4321).map(u16::from), Some(4321));
    }

    #[test]
    fn long_reasons_are_cut_at_a_character_boundary() {
        let reason = "é".repeat(100);
        let cut = truncate_reason(&reason);
        assert_eq!(cut.len(), 122);

        let mut out = Vec::new();
        encode_close_payload(&mut out, CloseCode::GOING_AWAY, &reason);
        assert_eq!(out.len(), 124);
        assert_eq!(&out[..2], &[0x03, 0xE9]);
        assert!(parse_close_payload(&out).is_ok());
    }
}
