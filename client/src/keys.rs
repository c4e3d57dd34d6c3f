//! Turns raw terminal input bytes into keys, whatever the bytes are.
//!
//! termion's own key parser panics on some escape sequences (an overlong
//! number such as `ESC [ 5 ; 99999 ~`, a number over 255 in `ESC [ 300 ~`,
//! too few fields in `ESC [ 1 ; 2 M`, ...), and a panic in the thread that
//! reads keys leaves the UI deaf. So the client decodes keys itself: a byte
//! at a time, with its state kept between reads, so a sequence split across
//! reads decodes like a whole one.
//!
//! Control sequences follow ECMA-48: `ESC [`, parameter bytes (0x30-0x3F),
//! intermediate bytes (0x20-0x2F), one final byte (0x40-0x7E). Only the
//! sequences of real keys are turned into keys; any other sequence, or one
//! with a number longer than [`MAX_DIGITS`], is consumed and dropped. A byte
//! that cannot be part of a sequence (a control character, DEL, or a byte
//! of UTF-8) ends it and is then read as a key of its own, so Enter and
//! Ctrl-C always work, even straight after a broken sequence.
//!
//! Control strings, `ESC ]` (OSC), `ESC P` (DCS), `ESC X` (SOS), `ESC ^`
//! (PM) and `ESC _` (APC), are dropped whole up to their terminator, BEL or
//! ST (`ESC \`), so a pasted title or terminal reply leaves nothing in the
//! input line. As in a sequence, a control byte ends the string early and
//! is read as a key (Ctrl-C works inside one), an ESC that does not make ST
//! starts a new sequence, and a string longer than [`MAX_STRING_BYTES`] is
//! given up on: the bytes after its limit are read as keys again.

use termion::event::Key;

/// The most digits a number in a key's escape sequence may have; real keys
/// use one or two.
pub const MAX_DIGITS: usize = 5;

/// The most parameter bytes kept for one sequence; a longer one is dropped.
const MAX_PARAMS: usize = 32;

/// The most body bytes of a control string (OSC, DCS, SOS, PM, APC) that
/// are dropped waiting for its terminator; the decoder reads keys again
/// after them, so a lost terminator cannot swallow the input for ever.
pub const MAX_STRING_BYTES: usize = 4 * 1024;

/// ESC.
const ESC: u8 = 0x1b;

/// BEL, which ends a control string as ST does.
const BEL: u8 = 0x07;

/// Where the decoder is inside a key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Between keys.
    Ground,
    /// After ESC.
    Esc,
    /// Inside `ESC [`.
    Csi {
        /// The parameter bytes so far, up to [`MAX_PARAMS`].
        params: Vec<u8>,
        /// Digits in the number being read.
        digits: usize,
        /// Whether the sequence is already known to be no key: too long,
        /// intermediates, or parameters after them.
        junk: bool,
        /// Whether an intermediate byte has been seen.
        intermediates: bool,
    },
    /// After `ESC [ [`, the Linux console's F1-F5.
    CsiBracket,
    /// After `ESC O`, function and application-mode cursor keys.
    Ss3,
    /// Inside a control string (OSC, DCS, SOS, PM or APC), which is
    /// dropped.
    Str {
        /// Body bytes dropped so far, up to [`MAX_STRING_BYTES`].
        len: usize,
        /// Whether the last byte was an ESC, which may start ST.
        esc: bool,
    },
    /// Inside a UTF-8 character.
    Utf8 {
        /// The bytes so far.
        bytes: [u8; 4],
        /// How many of `bytes` are filled.
        len: usize,
        /// How many bytes the character has.
        need: usize,
    },
}

/// Decodes keys from raw input bytes, keeping unfinished keys between
/// calls.
#[derive(Debug, Clone)]
pub struct KeyDecoder {
    state: State,
}

impl Default for KeyDecoder {
    fn default() -> KeyDecoder {
        KeyDecoder::new()
    }
}

impl KeyDecoder {
    /// Creates a decoder between keys.
    pub fn new() -> KeyDecoder {
        KeyDecoder {
            state: State::Ground,
        }
    }

    /// Decodes the bytes of one read, appending the keys to `out`.
    ///
    /// Keys do not depend on how the bytes were cut into reads. An ESC at
    /// the end waits for the next byte; see [`KeyDecoder::waits_after_esc`].
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<Key>) {
        for &b in bytes {
            self.byte(b, out);
        }
    }

    /// Returns whether the last byte was an ESC that may start a sequence.
    /// If no byte follows soon, it was the Esc key: call
    /// [`KeyDecoder::flush_esc`].
    pub fn waits_after_esc(&self) -> bool {
        self.state == State::Esc
    }

    /// Takes a waiting ESC as the Esc key.
    pub fn flush_esc(&mut self, out: &mut Vec<Key>) {
        if self.state == State::Esc {
            self.state = State::Ground;
            out.push(Key::Esc);
        }
    }

    /// Ends the input: an unfinished key is dropped, except a lone ESC,
    /// which is the Esc key.
    pub fn finish(&mut self, out: &mut Vec<Key>) {
        self.flush_esc(out);
        self.state = State::Ground;
    }

    /// Decodes one byte.
    fn byte(&mut self, b: u8, out: &mut Vec<Key>) {
        let state = std::mem::replace(&mut self.state, State::Ground);
        match state {
            State::Ground => self.ground(b, out),
            State::Esc => match b {
                b'[' => self.state = csi_start(),
                b'O' => self.state = State::Ss3,
                b']' | b'P' | b'X' | b'^' | b'_' => {
                    self.state = State::Str { len: 0, esc: false };
                }
                0x20..=0x7e => out.push(Key::Alt(char::from(b))),
                // ESC before a control key or a non-ASCII character is the
                // Esc key, and the byte is a key of its own.
                _ => {
                    out.push(Key::Esc);
                    self.ground(b, out);
                }
            },
            State::Csi {
                mut params,
                mut digits,
                mut junk,
                mut intermediates,
            } => match b {
                0x30..=0x3f => {
                    digits = if b.is_ascii_digit() { digits + 1 } else { 0 };
                    junk |= intermediates || digits > MAX_DIGITS || params.len() >= MAX_PARAMS;
                    if !junk {
                        params.push(b);
                    }
                    self.state = State::Csi {
                        params,
                        digits,
                        junk,
                        intermediates,
                    };
                }
                0x20..=0x2f => {
                    intermediates = true;
                    self.state = State::Csi {
                        params,
                        digits,
                        junk: true,
                        intermediates,
                    };
                }
                b'[' if params.is_empty() && !junk => self.state = State::CsiBracket,
                0x40..=0x7e => {
                    if !junk {
                        out.extend(csi_key(&params, b));
                    }
                }
                // Not part of a sequence: the sequence is cut short and
                // dropped, and the byte is read on its own.
                _ => self.ground(b, out),
            },
            State::CsiBracket => match b {
                b'A'..=b'E' => out.push(Key::F(1 + b - b'A')),
                0x20..=0x7e => {}
                _ => self.ground(b, out),
            },
            State::Ss3 => match b {
                b'P'..=b'S' => out.push(Key::F(1 + b - b'P')),
                b'A'..=b'D' | b'H' | b'F' => out.extend(csi_key(b"", b)),
                0x20..=0x7e => {}
                _ => self.ground(b, out),
            },
            State::Str { esc: true, .. } => {
                // ST ends the string. Any other byte shows the ESC was no
                // ST: the string is cut short and the ESC starts whatever
                // comes next.
                if b != b'\\' {
                    self.state = State::Esc;
                    self.byte(b, out);
                }
            }
            State::Str { len, esc: false } => match b {
                BEL => {}
                ESC => self.state = State::Str { len, esc: true },
                // A control byte ends the string and is a key of its own.
                0x00..=0x1f => self.ground(b, out),
                // Past the limit the string is given up on.
                _ if len >= MAX_STRING_BYTES => self.ground(b, out),
                _ => {
                    self.state = State::Str {
                        len: len + 1,
                        esc: false,
                    }
                }
            },
            State::Utf8 {
                mut bytes,
                mut len,
                need,
            } => {
                if b & 0xc0 != 0x80 {
                    // A broken character is dropped; the byte starts anew.
                    self.ground(b, out);
                    return;
                }
                bytes[len] = b;
                len += 1;
                if len < need {
                    self.state = State::Utf8 { bytes, len, need };
                } else if let Some(c) = std::str::from_utf8(&bytes[..len])
                    .ok()
                    .and_then(|s| s.chars().next())
                {
                    out.push(Key::Char(c));
                }
            }
        }
    }

    /// Decodes a byte between keys.
    fn ground(&mut self, b: u8, out: &mut Vec<Key>) {
        let need = match b {
            ESC => {
                self.state = State::Esc;
                return;
            }
            b'\n' | b'\r' => return out.push(Key::Char('\n')),
            b'\t' => return out.push(Key::Char('\t')),
            0x7f => return out.push(Key::Backspace),
            0 => return out.push(Key::Null),
            0x01..=0x1a => return out.push(Key::Ctrl(char::from(b - 0x01 + b'a'))),
            0x1c..=0x1f => return out.push(Key::Ctrl(char::from(b - 0x1c + b'4'))),
            0x20..=0x7e => return out.push(Key::Char(char::from(b))),
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            0xf0..=0xf4 => 4,
            // A stray continuation byte or one that never starts UTF-8.
            _ => return,
        };
        let mut bytes = [0; 4];
        bytes[0] = b;
        self.state = State::Utf8 {
            bytes,
            len: 1,
            need,
        };
    }
}

/// The state just after `ESC [`.
fn csi_start() -> State {
    State::Csi {
        params: Vec::new(),
        digits: 0,
        junk: false,
        intermediates: false,
    }
}

/// The key a complete, short control sequence stands for, if any.
///
/// The same keys as termion's parser: cursor keys alone or with Shift, Alt
/// or Ctrl (`1;2`, `1;3`, `1;5`), Home and End, the `~` keys with one
/// number, and Shift-Tab.
fn csi_key(params: &[u8], last: u8) -> Option<Key> {
    let params = std::str::from_utf8(params).ok()?;
    let mut nums = Vec::new();
    if !params.is_empty() {
        for field in params.split(';') {
            nums.push(field.parse::<u32>().ok()?);
        }
    }
    match (last, nums.as_slice()) {
        (b'A'..=b'D' | b'H' | b'F', [] | [1]) => Some(match last {
            b'A' => Key::Up,
            b'B' => Key::Down,
            b'C' => Key::Right,
            b'D' => Key::Left,
            b'H' => Key::Home,
            _ => Key::End,
        }),
        (b'A'..=b'D' | b'H' | b'F', [1, modifier]) => modified(last, *modifier),
        (b'Z', []) => Some(Key::BackTab),
        (b'~', [n]) => match n {
            1 | 7 => Some(Key::Home),
            2 => Some(Key::Insert),
            3 => Some(Key::Delete),
            4 | 8 => Some(Key::End),
            5 => Some(Key::PageUp),
            6 => Some(Key::PageDown),
            11..=15 => u8::try_from(n - 10).ok().map(Key::F),
            17..=21 => u8::try_from(n - 11).ok().map(Key::F),
            23..=24 => u8::try_from(n - 12).ok().map(Key::F),
            _ => None,
        },
        _ => None,
    }
}

/// A cursor key with a modifier: 2 Shift, 3 Alt, 5 Ctrl.
fn modified(last: u8, modifier: u32) -> Option<Key> {
    Some(match (modifier, last) {
        (2, b'A') => Key::ShiftUp,
        (2, b'B') => Key::ShiftDown,
        (2, b'C') => Key::ShiftRight,
        (2, b'D') => Key::ShiftLeft,
        (3, b'A') => Key::AltUp,
        (3, b'B') => Key::AltDown,
        (3, b'C') => Key::AltRight,
        (3, b'D') => Key::AltLeft,
        (5, b'A') => Key::CtrlUp,
        (5, b'B') => Key::CtrlDown,
        (5, b'C') => Key::CtrlRight,
        (5, b'D') => Key::CtrlLeft,
        (5, b'H') => Key::CtrlHome,
        (5, b'F') => Key::CtrlEnd,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `bytes` in one read, then ends the input.
    fn keys(bytes: &[u8]) -> Vec<Key> {
        let mut decoder = KeyDecoder::new();
        let mut out = Vec::new();
        decoder.feed(bytes, &mut out);
        decoder.finish(&mut out);
        out
    }

    /// Decodes `bytes` in reads of the given lengths, then ends the input.
    fn keys_in_reads(bytes: &[u8], cuts: &[usize]) -> Vec<Key> {
        let mut decoder = KeyDecoder::new();
        let mut out = Vec::new();
        let mut start = 0;
        for &cut in cuts.iter().chain([&bytes.len()]) {
            decoder.feed(&bytes[start..cut], &mut out);
            start = cut;
        }
        decoder.finish(&mut out);
        out
    }

    fn chars(text: &str) -> Vec<Key> {
        text.chars().map(Key::Char).collect()
    }

    #[test]
    fn ordinary_keys_decode() {
        assert_eq!(keys(b"ab 1"), chars("ab 1"));
        assert_eq!(
            keys(b"\r\n\t\x7f\x03\x01\x17\x00"),
            vec![
                Key::Char('\n'),
                Key::Char('\n'),
                Key::Char('\t'),
                Key::Backspace,
                Key::Ctrl('c'),
                Key::Ctrl('a'),
                Key::Ctrl('w'),
                Key::Null,
            ]
        );
    }

    #[test]
    fn utf8_is_kept() {
        assert_eq!(keys("héllo 日本 🦀".as_bytes()), chars("héllo 日本 🦀"));
    }

    #[test]
    fn broken_utf8_is_dropped_and_the_rest_kept() {
        assert_eq!(keys(b"a\xe6\x97b\xffc\x80d"), chars("abcd"));
        // An overlong encoding and a surrogate are no characters.
        assert_eq!(keys(b"\xe0\x80\xaf\xed\xa0\x80x"), chars("x"));
    }

    #[test]
    fn key_sequences_decode() {
        let cases: &[(&[u8], Key)] = &[
            (b"\x1b[A", Key::Up),
            (b"\x1b[B", Key::Down),
            (b"\x1b[C", Key::Right),
            (b"\x1b[D", Key::Left),
            (b"\x1b[H", Key::Home),
            (b"\x1b[F", Key::End),
            (b"\x1b[1~", Key::Home),
            (b"\x1b[4~", Key::End),
            (b"\x1b[3~", Key::Delete),
            (b"\x1b[5~", Key::PageUp),
            (b"\x1b[6~", Key::PageDown),
            (b"\x1b[15~", Key::F(5)),
            (b"\x1b[24~", Key::F(12)),
            (b"\x1b[1;5C", Key::CtrlRight),
            (b"\x1b[1;2A", Key::ShiftUp),
            (b"\x1b[Z", Key::BackTab),
            (b"\x1bOA", Key::Up),
            (b"\x1bOP", Key::F(1)),
            (b"\x1b[[B", Key::F(2)),
            (b"\x1bx", Key::Alt('x')),
        ];
        for (bytes, key) in cases {
            assert_eq!(keys(bytes), vec![*key], "{bytes:?}");
        }
    }

    #[test]
    fn a_lone_escape_waits_for_the_next_byte_or_a_flush() {
        let mut decoder = KeyDecoder::new();
        let mut out = Vec::new();
        decoder.feed(b"a\x1b", &mut out);
        assert_eq!(out, chars("a"));
        assert!(decoder.waits_after_esc());
        decoder.flush_esc(&mut out);
        assert!(!decoder.waits_after_esc());
        decoder.feed(b"[A", &mut out);
        assert_eq!(out, [chars("a"), vec![Key::Esc], chars("[A")].concat());

        // Without a flush, the next byte decides.
        out.clear();
        decoder.feed(b"\x1b", &mut out);
        decoder.feed(b"[A", &mut out);
        assert_eq!(out, vec![Key::Up]);
        assert_eq!(keys(b"\x1b\x1b[A"), vec![Key::Esc, Key::Up]);
        assert_eq!(keys(b"a\x1b"), vec![Key::Char('a'), Key::Esc]);
    }

    #[test]
    fn overlong_numbers_are_dropped_and_input_goes_on() {
        for bad in [
            &b"\x1b[5;99999~"[..],
            b"\x1b[999999999999999999999A",
            b"\x1b[123456~",
            b"\x1b[1;123456C",
        ] {
            let mut bytes = bad.to_vec();
            bytes.extend_from_slice(b"hi\r\x03");
            let expected = [chars("hi"), vec![Key::Char('\n'), Key::Ctrl('c')]].concat();
            assert_eq!(keys(&bytes), expected, "{bad:?}");
        }
    }

    #[test]
    fn numbers_up_to_the_limit_are_read() {
        // Five digits are read (and are no key); leading zeros count.
        assert_eq!(keys(b"\x1b[00005~x"), vec![Key::PageUp, Key::Char('x')]);
        assert_eq!(keys(b"\x1b[000005~x"), chars("x"));
    }

    #[test]
    fn unknown_and_malformed_sequences_are_dropped() {
        for bad in [
            &b"\x1b[300~"[..],
            b"\x1b[5;5~",
            b"\x1b[1;2M",
            b"\x1b[M",
            b"\x1b[<0;1;2M",
            b"\x1b[<9;;M",
            b"\x1b[;;~",
            b"\x1b[1 q",
            b"\x1b[1 2~",
            b"\x1b[?1049h",
            b"\x1b[2;3;4;5;6;7;8;9;1;2;3;4;5;6;7;8;9;1;2;3;4;5;6;7;8;9~",
            b"\x1bOz",
            b"\x1b[[z",
        ] {
            let mut bytes = bad.to_vec();
            bytes.extend_from_slice(b"ok");
            assert_eq!(keys(&bytes), chars("ok"), "{bad:?}");
        }
    }

    #[test]
    fn a_control_byte_cuts_a_sequence_short() {
        assert_eq!(
            keys(b"\x1b[12\x03"),
            vec![Key::Ctrl('c')],
            "Ctrl-C inside a sequence"
        );
        assert_eq!(keys(b"\x1b[5;\r"), vec![Key::Char('\n')]);
        assert_eq!(keys(b"\x1b[5\x1b[A"), vec![Key::Up]);
        assert_eq!(keys(b"\x1b[1\xc3\xa9"), chars("é"));
        assert_eq!(keys(b"\x1bO\x03"), vec![Key::Ctrl('c')]);
        assert_eq!(keys(b"\x1b\x03"), vec![Key::Esc, Key::Ctrl('c')]);
    }

    #[test]
    fn an_endless_sequence_uses_bounded_memory() {
        let mut decoder = KeyDecoder::new();
        let mut out = Vec::new();
        decoder.feed(b"\x1b[", &mut out);
        for _ in 0..1_000 {
            decoder.feed(&[b'9'; 1_000], &mut out);
            decoder.feed(b";", &mut out);
        }
        match &decoder.state {
            State::Csi { params, .. } => assert!(params.len() <= MAX_PARAMS),
            other => panic!("unexpected state {other:?}"),
        }
        decoder.feed(b"~a", &mut out);
        assert_eq!(out, chars("a"));
    }

    #[test]
    fn a_split_at_every_byte_decodes_the_same() {
        let input: &[u8] = b"a\x1b[5;99999~b\x1b[A\xe6\x97\xa5\x1b[999999999999999999999Ac\
            \x1b[6~\x1bOP\x1b[1;5D\xf0\x9f\xa6\x80\x1b[300~d\r\x03";
        let whole = keys(input);
        let expected = vec![
            Key::Char('a'),
            Key::Char('b'),
            Key::Up,
            Key::Char('日'),
            Key::Char('c'),
            Key::PageDown,
            Key::F(1),
            Key::CtrlLeft,
            Key::Char('🦀'),
            Key::Char('d'),
            Key::Char('\n'),
            Key::Ctrl('c'),
        ];
        assert_eq!(whole, expected);
        for cut in 1..input.len() {
            assert_eq!(keys_in_reads(input, &[cut]), expected, "cut at {cut}");
        }
        for a in 1..input.len() {
            for b in a + 1..input.len() {
                assert_eq!(keys_in_reads(input, &[a, b]), expected, "cuts {a}, {b}");
            }
        }
        let every_byte: Vec<usize> = (1..input.len()).collect();
        assert_eq!(keys_in_reads(input, &every_byte), expected);
    }

    #[test]
    fn control_strings_are_dropped_whole() {
        for string in [
            &b"\x1b]0;title\x07"[..],
            b"\x1b]0;title\x1b\\",
            b"\x1b]8;;https://example.com/\x1b\\",
            b"\x1b]52;c;aGVsbG8=\x07",
            b"\x1bPdcs body $q\"p\x1b\\",
            b"\x1bP1$r0m\x07",
            b"\x1bXsos text\x1b\\",
            b"\x1b^pm text\x1b\\",
            b"\x1b_apc text\x07",
            b"\x1b]\x07",
            b"\x1b]2;t\xc3\xa9tr\xe6\x97\xa5\x7f\x1b\\",
        ] {
            let mut bytes = b"a".to_vec();
            bytes.extend_from_slice(string);
            bytes.extend_from_slice(b"b");
            assert_eq!(keys(&bytes), chars("ab"), "{string:?}");
        }
    }

    #[test]
    fn a_control_byte_or_a_new_sequence_cuts_a_string_short() {
        assert_eq!(
            keys(b"\x1b]0;ti\x03ok"),
            [vec![Key::Ctrl('c')], chars("ok")].concat(),
            "Ctrl-C inside a string"
        );
        assert_eq!(keys(b"\x1bPab\rc"), vec![Key::Char('\n'), Key::Char('c')]);
        // An ESC that is no ST starts the next sequence.
        assert_eq!(keys(b"\x1b]0;x\x1b[Ay"), vec![Key::Up, Key::Char('y')]);
        assert_eq!(keys(b"\x1b_x\x1b]1;y\x07z"), chars("z"));
        assert_eq!(keys(b"\x1b]0;x\x1b\x03"), vec![Key::Esc, Key::Ctrl('c')]);
        // The string is still pending at the end of the input: dropped.
        assert_eq!(keys(b"\x1b]0;unfinished"), vec![]);
        assert_eq!(keys(b"\x1b]0;unfinished\x1b"), vec![]);
    }

    #[test]
    fn an_endless_string_is_given_up_after_its_limit() {
        // A body of exactly the limit is still dropped whole.
        let mut bytes = b"\x1b]".to_vec();
        bytes.extend_from_slice(&[b'x'; MAX_STRING_BYTES]);
        bytes.extend_from_slice(b"\x07ok");
        assert_eq!(keys(&bytes), chars("ok"));

        // One byte more, and the bytes after the limit are keys again.
        let mut bytes = b"\x1bP".to_vec();
        bytes.extend_from_slice(&[b'x'; MAX_STRING_BYTES]);
        bytes.extend_from_slice(b"ok");
        assert_eq!(keys(&bytes), chars("ok"));

        // The decoder keeps nothing of the body meanwhile.
        let mut decoder = KeyDecoder::new();
        let mut out = Vec::new();
        decoder.feed(b"\x1b]", &mut out);
        decoder.feed(&[b'y'; 1_000], &mut out);
        assert_eq!(
            decoder.state,
            State::Str {
                len: 1_000,
                esc: false
            }
        );
        assert!(out.is_empty());
    }

    #[test]
    fn control_strings_split_at_every_position_decode_the_same() {
        let input: &[u8] = b"a\x1b]0;title\x07b\x1bPdcs\x1b\\c\x1bXs\x1b\\\x1b^p\x07\
            \x1b_apc\x1b\\d\x1b]2;t\x03e\x1b]x\x1b[Af\r";
        let expected = vec![
            Key::Char('a'),
            Key::Char('b'),
            Key::Char('c'),
            Key::Char('d'),
            Key::Ctrl('c'),
            Key::Char('e'),
            Key::Up,
            Key::Char('f'),
            Key::Char('\n'),
        ];
        assert_eq!(keys(input), expected);
        for a in 1..input.len() {
            assert_eq!(keys_in_reads(input, &[a]), expected, "cut at {a}");
            for b in a + 1..input.len() {
                assert_eq!(keys_in_reads(input, &[a, b]), expected, "cuts {a}, {b}");
            }
        }
        let every_byte: Vec<usize> = (1..input.len()).collect();
        assert_eq!(keys_in_reads(input, &every_byte), expected);
    }

    #[test]
    fn random_bytes_never_panic_and_keys_still_work_after() {
        let mut rng = fastrand::Rng::with_seed(11);
        let alphabet = b"\x1b[O;0123456789~ABCDHFMZ<?$ \r\x03a\xc3\xa9\xe6\xff\x80]PX^_\\\x07";
        for _ in 0..2_000 {
            let mut decoder = KeyDecoder::new();
            let mut out = Vec::new();
            let len = rng.usize(..64);
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.usize(..alphabet.len())])
                .collect();
            let mut start = 0;
            while start < bytes.len() {
                let end = rng.usize(start + 1..=bytes.len());
                decoder.feed(&bytes[start..end], &mut out);
                start = end;
            }
            // Whatever came before, Ctrl-C after a control byte gets through.
            out.clear();
            decoder.feed(b"\r\x03", &mut out);
            assert!(out.contains(&Key::Ctrl('c')), "{bytes:?} then {out:?}");
        }
    }
}
