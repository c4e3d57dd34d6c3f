//! Incremental UTF-8 validation for text messages that arrive in pieces.

use std::fmt;

/// A byte that cannot start or continue a valid UTF-8 sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8 {
    /// The position of the offending byte, counted from the first byte fed
    /// since the validator was created or reset.
    pub offset: u64,
}

impl fmt::Display for InvalidUtf8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid utf-8 at byte {}", self.offset)
    }
}

impl std::error::Error for InvalidUtf8 {}

/// An incremental UTF-8 validator.
///
/// Feed a text message's bytes in pieces of any size with
/// [`feed`](Self::feed); it fails at the first byte that cannot start or
/// continue a valid sequence (an overlong lead like 0xC0 at once, 0xF4 0x90
/// at the 0x90, a surrogate 0xED 0xA0 at the 0xA0), even when more bytes
/// would be needed to finish the sequence. [`finish`](Self::finish) then
/// refuses a message that stops in the middle of a sequence.
///
/// # Examples
///
/// ```
/// use natter_core::utf8::Utf8Validator;
///
/// let mut validator = Utf8Validator::new();
/// assert!(validator.feed(&[0xE2, 0x82]).is_ok());
/// assert!(validator.is_mid_sequence());
/// assert!(validator.feed(&[0xAC]).is_ok());
/// assert!(validator.finish().is_ok());
///
/// assert!(validator.feed(&[0xF4]).is_ok());
/// assert_eq!(validator.feed(&[0x90]).map_err(|e| e.offset), Err(4));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    /// The start of a sequence split across pieces (at most 3 bytes).
    carry: [u8; 4],
    carry_len: usize,
    /// Bytes fed so far.
    fed: u64,
    /// The first failure; once failed, the validator stays failed.
    failed: Option<InvalidUtf8>,
}

impl Utf8Validator {
    /// Creates a validator at the start of a message.
    pub fn new() -> Utf8Validator {
        Utf8Validator::default()
    }

    /// Forgets everything fed, ready for a new message.
    pub fn reset(&mut self) {
        *self = Utf8Validator::default();
    }

    /// Tells whether the bytes so far end inside a multi-byte sequence.
    pub fn is_mid_sequence(&self) -> bool {
        self.carry_len > 0
    }

    /// Checks the next piece of the message.
    ///
    /// # Errors
    ///
    /// Returns the position of the first byte that cannot start or continue
    /// a valid sequence; every later call returns the same error.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), InvalidUtf8> {
        if let Some(error) = self.failed {
            return Err(error);
        }

        let base = self.fed;
        self.fed += bytes.len() as u64;
        let rest = match self.complete_carry(bytes) {
            Ok(used) => &bytes[used..],
            Err(at) => return Err(self.fail(base + at as u64)),
        };
        let rest_at = bytes.len() - rest.len();

        // SIMD validation of the bulk; the error it reports carries the same
        // `valid_up_to` and `error_len` as the standard library's.
        match simdutf8::compat::from_utf8(rest) {
            Ok(_) => Ok(()),
            Err(error) => {
                let valid = error.valid_up_to();
                let tail = &rest[valid..];
                match error.error_len() {
                    Some(len) => {
                        let bad = valid + bad_byte_in(tail, len);
                        Err(self.fail(base + (rest_at + bad) as u64))
                    }
                    None => {
                        // An unfinished but so far valid sequence: at most 3
                        // bytes, or from_utf8 would have judged it.
                        self.carry[..tail.len()].copy_from_slice(tail);
                        self.carry_len = tail.len();
                        Ok(())
                    }
                }
            }
        }
    }

    /// Checks that the message does not end inside a sequence.
    ///
    /// # Errors
    ///
    /// Returns the earlier failure, or the position just past the end when
    /// a sequence is unfinished.
    pub fn finish(&self) -> Result<(), InvalidUtf8> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        if self.carry_len > 0 {
            return Err(InvalidUtf8 { offset: self.fed });
        }
        Ok(())
    }

    /// Completes a carried sequence from the front of `bytes`, one byte at
    /// a time, and returns how many bytes it took or where it failed.
    fn complete_carry(&mut self, bytes: &[u8]) -> Result<usize, usize> {
        let mut used = 0;
        while self.carry_len > 0 && used < bytes.len() {
            self.carry[self.carry_len] = bytes[used];
            self.carry_len += 1;
            match std::str::from_utf8(&self.carry[..self.carry_len]) {
                Ok(_) => self.carry_len = 0,
                Err(error) if error.error_len().is_none() => {}
                Err(_) => return Err(used),
            }
            used += 1;
        }
        Ok(used)
    }

    /// Records a failure at `offset` and returns it.
    fn fail(&mut self, offset: u64) -> InvalidUtf8 {
        let error = InvalidUtf8 { offset };
        self.failed = Some(error);
        self.carry_len = 0;
        error
    }
}

/// Checks a complete text in one go and returns it as a `str`.
///
/// # Errors
///
/// Returns the position of the first byte that cannot start or continue a
/// valid sequence, or the length of `bytes` when it ends inside one.
pub fn validate(bytes: &[u8]) -> Result<&str, InvalidUtf8> {
    std::str::from_utf8(bytes).map_err(|_| {
        let mut validator = Utf8Validator::new();
        match validator.feed(bytes).and_then(|()| validator.finish()) {
            Err(error) => error,
            // from_utf8 and the validator agree; this arm is never taken.
            Ok(()) => InvalidUtf8 {
                offset: bytes.len() as u64,
            },
        }
    })
}

/// Returns the position, within an invalid sequence of `len` bytes that
/// `from_utf8` reported at the front of `tail`, of the byte that broke it.
///
/// A byte that can never lead a sequence is itself the culprit; otherwise
/// the lead and its `len - 1` good continuations were fine and the byte
/// after them is the one that cannot continue.
fn bad_byte_in(tail: &[u8], len: usize) -> usize {
    match tail.first() {
        Some(&lead) if can_lead(lead) => len,
        _ => 0,
    }
}

/// Tells whether a byte may start a sequence (RFC 3629 §4).
fn can_lead(byte: u8) -> bool {
    matches!(byte, 0x00..=0x7F | 0xC2..=0xF4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Feeds `bytes` one byte at a time and returns the offset of the call
    /// that failed, if one did.
    fn fail_offset_bytewise(bytes: &[u8]) -> Option<u64> {
        let mut validator = Utf8Validator::new();
        bytes.iter().enumerate().find_map(|(index, byte)| {
            let result = validator.feed(std::slice::from_ref(byte));
            result.err().map(|error| {
                assert_eq!(error.offset, index as u64, "failed at the byte just fed");
                error.offset
            })
        })
    }

    #[test]
    fn fails_at_the_first_byte_that_cannot_start_or_continue() {
        let cases: &[(&str, &[u8], u64)] = &[
            ("lead beyond U+10FFFF range", &[0xF4, 0x90, 0x80, 0x80], 1),
            ("overlong two-byte lead", &[0xC0, 0x80], 0),
            ("overlong two-byte lead 0xC1", &[0xC1, 0xBF], 0),
            ("surrogate", &[0xED, 0xA0, 0x80], 1),
            ("overlong three-byte", &[0xE0, 0x80, 0x80], 1),
            ("overlong four-byte", &[0xF0, 0x80, 0x80, 0x80], 1),
            ("lone continuation", &[b'a', 0x80], 1),
            ("lead 0xF5", &[0xF5], 0),
            ("lead 0xFF", &[0xFF], 0),
            ("ascii after lead", &[0xE2, 0x82, b'x'], 2),
            ("four-byte broken late", &[0xF0, 0x90, 0x80, 0x41], 3),
            ("after valid text", "κόσμε".as_bytes(), u64::MAX),
        ];
        for (name, bytes, expected) in cases {
            let whole = Utf8Validator::new().feed(bytes).err().map(|e| e.offset);
            let bytewise = fail_offset_bytewise(bytes);
            let expected = (*expected != u64::MAX).then_some(*expected);
            assert_eq!(whole, expected, "{name}, whole");
            assert_eq!(bytewise, expected, "{name}, byte by byte");
        }
    }

    #[test]
    fn sequences_split_across_pieces_are_accepted() {
        let text = "a€𝄞ü z";
        let bytes = text.as_bytes();
        for split in 0..=bytes.len() {
            let mut validator = Utf8Validator::new();
            validator.feed(&bytes[..split]).unwrap();
            validator.feed(&bytes[split..]).unwrap();
            assert_eq!(validator.finish(), Ok(()), "split at {split}");
        }
    }

    #[test]
    fn ending_mid_sequence_is_known_and_refused_by_finish() {
        let mut validator = Utf8Validator::new();
        validator.feed(b"ok\xF0\x9F").unwrap();
        assert!(validator.is_mid_sequence());
        assert_eq!(validator.finish(), Err(InvalidUtf8 { offset: 4 }));

        validator.feed(b"\x98").unwrap();
        assert!(validator.is_mid_sequence());
        validator.feed(b"\x80").unwrap();
        assert!(!validator.is_mid_sequence());
        assert_eq!(validator.finish(), Ok(()));
    }

    #[test]
    fn whole_text_check_names_the_offending_byte() {
        assert_eq!(validate("ok €".as_bytes()), Ok("ok €"));
        assert_eq!(
            validate(b"ab\xF4\x90\x80\x80"),
            Err(InvalidUtf8 { offset: 3 })
        );
        assert_eq!(validate(b"ab\xE2\x82"), Err(InvalidUtf8 { offset: 4 }));
    }

    #[test]
    fn a_failure_sticks_until_reset() {
        let mut validator = Utf8Validator::new();
        assert_eq!(validator.feed(b"ab\xFF"), Err(InvalidUtf8 { offset: 2 }));
        assert_eq!(validator.feed(b"fine"), Err(InvalidUtf8 { offset: 2 }));
        assert!(validator.finish().is_err());

        validator.reset();
        assert_eq!(validator.feed(b"fine"), Ok(()));
    }

    proptest! {
        #[test]
        fn any_split_of_valid_text_is_accepted(
            text in ".*",
            split in any::<prop::sample::Index>(),
        ) {
            let bytes = text.as_bytes();
            let split = split.index(bytes.len() + 1);
            let mut validator = Utf8Validator::new();
            prop_assert!(validator.feed(&bytes[..split]).is_ok());
            prop_assert!(validator.feed(&bytes[split..]).is_ok());
            prop_assert!(validator.finish().is_ok());
        }

        #[test]
        fn verdict_and_position_do_not_depend_on_pieces(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let whole = {
                let mut validator = Utf8Validator::new();
                validator.feed(&bytes).and_then(|()| validator.finish())
            };
            prop_assert_eq!(whole.is_ok(), std::str::from_utf8(&bytes).is_ok());
            if let Err(error) = std::str::from_utf8(&bytes) {
                let offset = whole.unwrap_err().offset;
                prop_assert!(offset >= error.valid_up_to() as u64);
            }

            let bytewise = fail_offset_bytewise(&bytes);
            if let Some(offset) = bytewise {
                prop_assert_eq!(whole, Err(InvalidUtf8 { offset }));
            }
        }
    }
}
