//! The JSON objects a server sends to members, encoded by hand, and the
//! shared frames that carry them.
//!
//! Each object is written exactly as docs/PROTOCOL.md ("A chat session")
//! shows it: the same fields in the same order, integers plain, every string
//! JSON-escaped by [`write_json_string`]. An event is encoded once, framed
//! once, and then shared by every member's queue as a [`SharedFrame`].

use std::fmt;
use std::sync::Arc;

use crate::frame::{encode_frame, OpCode};
use crate::names::RoomCode;
use crate::room::Member;

/// The `reason` of the error object sent when a line is over the rate limit.
pub const RATE_LIMITED_REASON: &str = "rate limited";

/// Scratch buffers above this capacity are released after use, so one huge
/// event does not pin its memory for the life of a room.
const SCRATCH_KEEP_BYTES: usize = 64 * 1024;

/// A complete, unmasked server text frame, ready to be written to any
/// member's socket as it is.
///
/// Cloning one only bumps a reference count: every queue that receives an
/// event holds the same bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedFrame(pub(crate) Arc<[u8]>);

impl SharedFrame {
    /// Frames `payload` as one final, unmasked text frame (a server's frames
    /// are never masked, RFC 6455 §5.1).
    ///
    /// The caller vouches that `payload` is UTF-8, as RFC 6455 §5.6 requires
    /// of text; every encoder in this module produces only UTF-8.
    pub fn text(payload: &[u8]) -> SharedFrame {
        let mut frame = Vec::with_capacity(payload.len() + 10);
        encode_frame(&mut frame, OpCode::Text, true, payload, None);
        SharedFrame(Arc::from(frame))
    }

    /// Returns the whole frame: header and payload.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Returns the length of the whole frame in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Tells whether the frame has no bytes, which never holds for a frame
    /// built by this module (a header is at least two bytes).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Returns the payload: the frame without its header.
    pub fn payload(&self) -> &[u8] {
        let bytes = self.as_bytes();
        let header = match bytes.get(1).map(|second| second & 0x7F) {
            Some(127) => 10,
            Some(126) => 4,
            Some(_) => 2,
            None => return &[],
        };
        bytes.get(header..).unwrap_or(&[])
    }

    /// Tells whether two handles share the same bytes in memory.
    pub fn ptr_eq(a: &SharedFrame, b: &SharedFrame) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl AsRef<[u8]> for SharedFrame {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// Shows the length only: a frame may carry chat text, which must never
/// reach a log by way of a `{:?}`.
impl fmt::Debug for SharedFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedFrame")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// Encodes events into shared frames, reusing its scratch buffers so that
/// each event costs one allocation: the shared frame itself.
///
/// A [`Room`](crate::room::Room) keeps one; a driver that builds frames of
/// its own may keep another.
///
/// # Examples
///
/// ```
/// use natter_core::event::EventEncoder;
///
/// let mut encoder = EventEncoder::new();
/// let frame = encoder.error("rate limited");
/// assert_eq!(frame.payload(), br#"{"type":"error","reason":"rate limited"}"#);
/// assert_eq!(frame.as_bytes()[0], 0x81); // FIN + text
/// ```
#[derive(Debug, Default)]
pub struct EventEncoder {
    json: Vec<u8>,
    frame: Vec<u8>,
}

impl EventEncoder {
    /// Creates an encoder with empty scratch buffers.
    pub fn new() -> EventEncoder {
        EventEncoder::default()
    }

    /// Encodes a `welcome` object (see [`write_welcome`]).
    pub fn welcome<'a>(
        &mut self,
        room_code: &RoomCode,
        seq: u64,
        you: &Member,
        users: impl IntoIterator<Item = &'a Member>,
    ) -> SharedFrame {
        write_welcome(&mut self.json, room_code, seq, you, users);
        self.finish()
    }

    /// Encodes a `join` object (see [`write_join`]).
    pub fn join(&mut self, seq: u64, member: &Member, ts: u64) -> SharedFrame {
        write_join(&mut self.json, seq, member, ts);
        self.finish()
    }

    /// Encodes a `leave` object (see [`write_leave`]).
    pub fn leave(&mut self, seq: u64, member: &Member, ts: u64) -> SharedFrame {
        write_leave(&mut self.json, seq, member, ts);
        self.finish()
    }

    /// Encodes a `message` object (see [`write_message`]).
    pub fn message(&mut self, seq: u64, member: &Member, text: &str, ts: u64) -> SharedFrame {
        write_message(&mut self.json, seq, member, text, ts);
        self.finish()
    }

    /// Encodes an `error` object (see [`write_error`]).
    pub fn error(&mut self, reason: &str) -> SharedFrame {
        write_error(&mut self.json, reason);
        self.finish()
    }

    /// Frames the JSON written so far and clears both scratch buffers.
    fn finish(&mut self) -> SharedFrame {
        self.frame.clear();
        encode_frame(&mut self.frame, OpCode::Text, true, &self.json, None);
        let shared = SharedFrame(Arc::from(self.frame.as_slice()));

        self.json.clear();
        self.frame.clear();
        if self.frame.capacity() > SCRATCH_KEEP_BYTES {
            self.json = Vec::new();
            self.frame = Vec::new();
        }
        shared
    }
}

/// Appends a `welcome` object: the room, the joiner's own `seq`, the joiner
/// as `you`, and every member in `users` (the joiner among them).
pub fn write_welcome<'a>(
    out: &mut Vec<u8>,
    room_code: &RoomCode,
    seq: u64,
    you: &Member,
    users: impl IntoIterator<Item = &'a Member>,
) {
    out.extend_from_slice(b"{\"type\":\"welcome\",\"room_code\":");
    write_json_string(out, room_code.as_str());
    out.extend_from_slice(b",\"seq\":");
    write_u64(out, seq);
    out.extend_from_slice(b",\"you\":");
    write_member_object(out, you);

    out.extend_from_slice(b",\"users\":[");
    for (index, user) in users.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write_member_object(out, user);
    }
    out.extend_from_slice(b"]}");
}

/// Appends a `join` object for `member`, ordered at `seq`, stamped `ts`
/// (Unix milliseconds).
pub fn write_join(out: &mut Vec<u8>, seq: u64, member: &Member, ts: u64) {
    write_member_event(out, "join", seq, member, None, ts);
}

/// Appends a `leave` object for `member`, ordered at `seq`, stamped `ts`
/// (Unix milliseconds).
pub fn write_leave(out: &mut Vec<u8>, seq: u64, member: &Member, ts: u64) {
    write_member_event(out, "leave", seq, member, None, ts);
}

/// Appends a `message` object: `text` as `member` sent it, ordered at
/// `seq`, stamped `ts` (Unix milliseconds).
pub fn write_message(out: &mut Vec<u8>, seq: u64, member: &Member, text: &str, ts: u64) {
    write_member_event(out, "message", seq, member, Some(text), ts);
}

/// Appends an `error` object with its `reason`.
pub fn write_error(out: &mut Vec<u8>, reason: &str) {
    out.extend_from_slice(b"{\"type\":\"error\",\"reason\":");
    write_json_string(out, reason);
    out.push(b'}');
}

/// Appends the objects that name a member and carry a `ts`: `join`,
/// `leave` and, with `text`, `message`.
fn write_member_event(
    out: &mut Vec<u8>,
    kind: &str,
    seq: u64,
    member: &Member,
    text: Option<&str>,
    ts: u64,
) {
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"seq\":");
    write_u64(out, seq);
    out.push(b',');
    write_member_fields(out, member);

    if let Some(text) = text {
        out.extend_from_slice(b",\"text\":");
        write_json_string(out, text);
    }

    out.extend_from_slice(b",\"ts\":");
    write_u64(out, ts);
    out.push(b'}');
}

/// Appends `{"user_name":…,"session_id":…}`.
fn write_member_object(out: &mut Vec<u8>, member: &Member) {
    out.push(b'{');
    write_member_fields(out, member);
    out.push(b'}');
}

/// Appends `"user_name":…,"session_id":…`.
fn write_member_fields(out: &mut Vec<u8>, member: &Member) {
    out.extend_from_slice(b"\"user_name\":");
    write_json_string(out, member.user_name.as_str());
    out.extend_from_slice(b",\"session_id\":");
    write_json_string(out, member.session_id.as_str());
}

/// Appends `value` in decimal.
fn write_u64(out: &mut Vec<u8>, mut value: u64) {
    // u64::MAX has 20 digits.
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        if let Some(slot) = digits.get_mut(start) {
            *slot = b'0' + (value % 10) as u8;
        }
        value /= 10;
        if value == 0 || start == 0 {
            break;
        }
    }
    out.extend_from_slice(digits.get(start..).unwrap_or(&[]));
}

/// Appends `text` as a quoted JSON string.
///
/// Escaped: `"` and `\`; every control character U+0000 to U+001F (`\b`,
/// `\t`, `\n`, `\f`, `\r` in their short forms, the rest as `\u00XX`); and
/// U+007F, U+2028 and U+2029 as `\u` escapes, which any parser accepts and
/// which keep JavaScript clients and terminals safe. Everything else is
/// copied as UTF-8.
///
/// # Examples
///
/// ```
/// use natter_core::event::write_json_string;
///
/// let mut out = Vec::new();
/// write_json_string(&mut out, "say \"hi\"\u{1b}[2J 🦀");
/// assert_eq!(String::from_utf8(out).unwrap(), r#""say \"hi\"\u001b[2J 🦀""#);
/// ```
pub fn write_json_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');

    // Copy runs of plain bytes whole; stop only at a byte that needs work.
    let mut run_start = 0;
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        let (escape, width): (Option<&[u8]>, usize) = match byte {
            b'"' => (Some(b"\\\""), 1),
            b'\\' => (Some(b"\\\\"), 1),
            b'\n' => (Some(b"\\n"), 1),
            b'\r' => (Some(b"\\r"), 1),
            b'\t' => (Some(b"\\t"), 1),
            0x08 => (Some(b"\\b"), 1),
            0x0C => (Some(b"\\f"), 1),
            0x00..=0x1F | 0x7F => (None, 1),
            // U+2028 and U+2029 are E2 80 A8 and E2 80 A9 in UTF-8.
            0xE2 if matches!(bytes.get(index + 1..index + 3), Some([0x80, 0xA8 | 0xA9])) => {
                (None, 3)
            }
            _ => {
                index += 1;
                continue;
            }
        };

        out.extend_from_slice(bytes.get(run_start..index).unwrap_or(&[]));
        match escape {
            Some(short) => out.extend_from_slice(short),
            None => {
                let code: u32 = if width == 3 {
                    0x2028 + u32::from(bytes.get(index + 2) == Some(&0xA9))
                } else {
                    u32::from(byte)
                };
                // A nibble is below 16, so it always indexes `HEX`.
                let nibble = |shift: u32| HEX[((code >> shift) & 0xF) as usize];
                out.extend_from_slice(b"\\u");
                out.extend_from_slice(&[nibble(12), nibble(8), nibble(4), nibble(0)]);
            }
        }
        index += width;
        run_start = index;
    }

    out.extend_from_slice(bytes.get(run_start..).unwrap_or(&[]));
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;
    use crate::names::{SessionId, UserName};

    fn member(name: &str, session: &str) -> Member {
        Member {
            user_name: UserName::parse(name).unwrap(),
            session_id: SessionId::parse(session).unwrap(),
        }
    }

    fn escaped(text: &str) -> String {
        let mut out = Vec::new();
        write_json_string(&mut out, text);
        String::from_utf8(out).unwrap()
    }

    fn parsed(frame: &SharedFrame) -> Value {
        serde_json::from_slice(frame.payload()).unwrap()
    }

    #[test]
    fn events_match_the_protocol_text() {
        let ana = member("ana", "k3J9x0aa");
        let bo = member("bo", "Zq81mmpp");
        let cy = member("cy", "p0p0p0p0");
        let lobby = RoomCode::parse("lobby").unwrap();
        let mut encoder = EventEncoder::new();

        let cases = [
            (
                encoder.welcome(&lobby, 7, &ana, [&ana, &bo]),
                r#"{"type":"welcome","room_code":"lobby","seq":7,"you":{"user_name":"ana","session_id":"k3J9x0aa"},"users":[{"user_name":"ana","session_id":"k3J9x0aa"},{"user_name":"bo","session_id":"Zq81mmpp"}]}"#,
            ),
            (
                encoder.join(8, &cy, 1_764_856_800_123),
                r#"{"type":"join","seq":8,"user_name":"cy","session_id":"p0p0p0p0","ts":1764856800123}"#,
            ),
            (
                encoder.message(9, &bo, "hi all", 1_764_856_801_000),
                r#"{"type":"message","seq":9,"user_name":"bo","session_id":"Zq81mmpp","text":"hi all","ts":1764856801000}"#,
            ),
            (
                encoder.leave(10, &cy, 1_764_856_802_000),
                r#"{"type":"leave","seq":10,"user_name":"cy","session_id":"p0p0p0p0","ts":1764856802000}"#,
            ),
            (
                encoder.error(RATE_LIMITED_REASON),
                r#"{"type":"error","reason":"rate limited"}"#,
            ),
        ];

        for (frame, expected) in cases {
            assert_eq!(frame.payload(), expected.as_bytes());
            assert_eq!(frame, SharedFrame::text(expected.as_bytes()));
        }
    }

    #[test]
    fn frames_are_final_unmasked_text() {
        for size in [0, 125, 126, 65_535, 65_536, 200_000] {
            let text = "x".repeat(size);
            let frame = EventEncoder::new().error(&text);
            let bytes = frame.as_bytes();
            assert_eq!(bytes.first(), Some(&0x81));
            assert_eq!(bytes.get(1).map(|b| b & 0x80), Some(0), "never masked");
            assert_eq!(frame.payload().len(), size + 28);
            assert_eq!(parsed(&frame)["reason"].as_str(), Some(text.as_str()));
        }
    }

    #[test]
    fn empty_welcome_list_is_valid_json() {
        let ana = member("ana", "k3J9x0aa");
        let lobby = RoomCode::parse("lobby").unwrap();
        let frame = EventEncoder::new().welcome(&lobby, 1, &ana, []);
        assert_eq!(parsed(&frame)["users"], json!([]));
    }

    #[test]
    fn escapes_follow_the_rules() {
        let table = [
            ("plain", r#""plain""#),
            ("", r#""""#),
            ("say \"hi\"", r#""say \"hi\"""#),
            ("back\\slash", r#""back\\slash""#),
            ("\n\r\t\u{8}\u{c}", r#""\n\r\t\b\f""#),
            ("\u{0}", r#""\u0000""#),
            ("\u{1b}[2J", r#""\u001b[2J""#),
            ("\u{1f}\u{7f}", r#""\u001f\u007f""#),
            ("a\u{2028}b\u{2029}c", r#""a\u2028b\u2029c""#),
            ("\u{2027}\u{202a}", "\"\u{2027}\u{202a}\""),
            ("héllo 🦀 日本", "\"héllo 🦀 日本\""),
            ("\u{80}\u{9b}", "\"\u{80}\u{9b}\""),
        ];

        for (input, expected) in table {
            assert_eq!(escaped(input), expected, "{input:?}");
        }
    }

    #[test]
    fn hostile_text_round_trips() {
        let hostile = [
            "\"},{\"type\":\"join\"",
            "\\\\\\\"",
            "nul\u{0}byte",
            "\u{1b}[2J\u{1b}]0;title\u{7}",
            "🦀👨‍👩‍👧\u{2028}\u{2029}",
            "\u{feff}\u{200b}\u{10ffff}",
        ];
        let bo = member("bo\"\\\u{2028}", "Zq81mmpp");
        let mut encoder = EventEncoder::new();

        for text in hostile {
            let frame = encoder.message(3, &bo, text, 42);
            let value = parsed(&frame);
            assert_eq!(value["text"].as_str(), Some(text));
            assert_eq!(value["user_name"].as_str(), Some(bo.user_name.as_str()));

            // No raw control byte or line separator reaches the wire.
            let payload = std::str::from_utf8(frame.payload()).unwrap();
            assert!(!payload.chars().any(|c| c < ' ' || c == '\u{7f}'));
            assert!(!payload.contains(['\u{2028}', '\u{2029}']));
        }
    }

    #[test]
    fn every_control_character_is_escaped() {
        let all: String = (0u8..0x80).map(char::from).collect();
        let text = escaped(&all);
        assert!(text.bytes().all(|b| b >= b' ' && b != 0x7F));
        assert_eq!(serde_json::from_str::<String>(&text).unwrap(), all);
    }

    #[test]
    fn integers_are_plain() {
        for value in [0, 1, 9, 10, 99, 1_764_856_800_123, u64::MAX] {
            let mut out = Vec::new();
            write_u64(&mut out, value);
            assert_eq!(out, value.to_string().into_bytes());
        }
    }

    proptest! {
        #[test]
        fn any_text_round_trips(text in any::<String>()) {
            let quoted = escaped(&text);
            prop_assert_eq!(serde_json::from_str::<String>(&quoted).unwrap(), text);
            let unsafe_char = |c: char| c < ' ' || matches!(c, '\u{7f}' | '\u{2028}' | '\u{2029}');
            prop_assert!(!quoted.chars().any(unsafe_char));
        }

        #[test]
        fn any_message_parses_back(
            text in any::<String>(),
            seq in any::<u64>(),
            ts in any::<u64>(),
        ) {
            let bo = member("bo", "Zq81mmpp");
            let frame = EventEncoder::new().message(seq, &bo, &text, ts);
            let value = parsed(&frame);
            prop_assert_eq!(value["seq"].as_u64(), Some(seq));
            prop_assert_eq!(value["ts"].as_u64(), Some(ts));
            prop_assert_eq!(value["text"].as_str(), Some(text.as_str()));
        }
    }

    #[test]
    fn debug_output_hides_the_text() {
        let frame = EventEncoder::new().message(1, &member("bo", "Zq81mmpp"), "secret", 0);
        let shown = format!("{frame:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains(&frame.len().to_string()));
    }

    #[test]
    fn clones_share_one_allocation() {
        let frame = SharedFrame::text(b"{}");
        let copy = frame.clone();
        assert!(SharedFrame::ptr_eq(&frame, &copy));
        assert!(!SharedFrame::ptr_eq(&frame, &SharedFrame::text(b"{}")));
        assert_eq!(Arc::strong_count(&frame.0), 2);
    }
}
