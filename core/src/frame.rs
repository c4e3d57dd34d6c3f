//! RFC 6455 §5 framing: opcodes, headers, encoding and incremental decoding.
//!
//! [`encode_frame`] writes one complete frame. [`FrameDecoder`] reads frames
//! from a byte stream split anywhere: it yields each [`FrameHeader`] as soon
//! as the header is complete and checked, then hands the payload over in
//! pieces as the bytes arrive, unmasked, so a large frame is held only once.

use std::fmt;

/// The longest frame header: 2 fixed bytes, an 8-byte length, a 4-byte key.
pub const MAX_HEADER_LEN: usize = 14;

/// The largest payload a control frame may carry (RFC 6455 §5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// The 4-bit frame opcode (RFC 6455 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// A continuation of a fragmented message.
    Continuation,
    /// The first frame of a text message.
    Text,
    /// The first frame of a binary message.
    Binary,
    /// A close frame.
    Close,
    /// A ping frame.
    Ping,
    /// A pong frame.
    Pong,
}

impl OpCode {
    /// Returns the opcode's wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Returns the opcode for a wire value, or `None` for a reserved one.
    pub fn from_u8(value: u8) -> Option<OpCode> {
        match value {
            0x0 => Some(OpCode::Continuation),
            0x1 => Some(OpCode::Text),
            0x2 => Some(OpCode::Binary),
            0x8 => Some(OpCode::Close),
            0x9 => Some(OpCode::Ping),
            0xA => Some(OpCode::Pong),
            _ => None,
        }
    }

    /// Tells whether this is a control opcode (close, ping, pong).
    pub fn is_control(self) -> bool {
        self.to_u8() & 0x8 != 0
    }
}

/// Appends one complete frame to `out`: header, then the payload, masked
/// with `mask` when one is given (a client's frames must be, RFC 6455 §5.3).
///
/// The shortest length encoding is always used, as §5.2 requires.
pub fn encode_frame(
    out: &mut Vec<u8>,
    opcode: OpCode,
    fin: bool,
    payload: &[u8],
    mask: Option<[u8; 4]>,
) {
    let first = if fin { 0x80 } else { 0x00 } | opcode.to_u8();
    let mask_bit = if mask.is_some() { 0x80 } else { 0x00 };
    out.reserve(MAX_HEADER_LEN + payload.len());
    out.push(first);

    let len = payload.len();
    if len < 126 {
        out.push(mask_bit | len as u8);
    } else if len <= 0xFFFF {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }

    match mask {
        None => out.extend_from_slice(payload),
        Some(key) => {
            out.extend_from_slice(&key);
            let start = out.len();
            out.extend_from_slice(payload);
            apply_mask(&mut out[start..], key, 0);
        }
    }
}

/// XORs `data` with the masking key, starting at byte `offset` of the key
/// cycle, so a payload may be unmasked in pieces as it arrives.
///
/// Works eight bytes at a time; only the last few bytes go one by one.
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    // Rotate the key so that data[0] meets key[offset % 4].
    let mut rotated = key;
    rotated.rotate_left(offset & 3);
    let [a, b, c, d] = rotated;
    let word = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);

    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }

    // Eight is a multiple of four, so the remainder starts on key byte 0.
    for (byte, mask) in chunks
        .into_remainder()
        .iter_mut()
        .zip(rotated.iter().cycle())
    {
        *byte ^= mask;
    }
}

/// One checked frame header (RFC 6455 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Whether this is the final frame of its message.
    pub fin: bool,
    /// The three reserved bits, RSV1 as 0b100; zero unless an extension
    /// defines them, and natter negotiates none.
    pub rsv: u8,
    /// The frame's opcode.
    pub opcode: OpCode,
    /// The masking key, present when the frame is masked.
    pub mask: Option<[u8; 4]>,
    /// The declared payload length in bytes.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Tells whether the frame's payload is masked.
    pub fn is_masked(&self) -> bool {
        self.mask.is_some()
    }
}

/// Which frames a decoder accepts with respect to masking (RFC 6455 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Masking {
    /// Every frame must be masked: the frames a server receives.
    Required,
    /// No frame may be masked: the frames a client receives.
    Forbidden,
    /// Either is accepted: for tools that read both directions.
    Any,
}

/// A broken framing rule, found while reading a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// A reserved bit was set though no extension defines it (RFC 6455 §5.2).
    ReservedBitsSet {
        /// The three bits as they came, RSV1 as 0b100.
        bits: u8,
    },
    /// The opcode is one RFC 6455 §5.2 reserves.
    ReservedOpCode {
        /// The wire value.
        value: u8,
    },
    /// A control frame did not have FIN set (RFC 6455 §5.5).
    FragmentedControl {
        /// The control frame's opcode.
        opcode: OpCode,
    },
    /// A control frame declared more than 125 payload bytes (RFC 6455 §5.5).
    ControlTooLong {
        /// The control frame's opcode.
        opcode: OpCode,
        /// The declared length.
        len: u64,
    },
    /// A frame that must be masked was not (RFC 6455 §5.1).
    MissingMask,
    /// A frame that must not be masked was (RFC 6455 §5.1).
    UnexpectedMask,
    /// A length used a longer encoding than needed (RFC 6455 §5.2).
    NonMinimalLength {
        /// The declared length.
        len: u64,
    },
    /// A 64-bit length had its most significant bit set (RFC 6455 §5.2).
    LengthTopBitSet,
    /// The declared payload length is over the configured maximum.
    PayloadTooLong {
        /// The declared length.
        len: u64,
        /// The maximum.
        max: u64,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::ReservedBitsSet { bits } => write!(f, "reserved bits set: {bits:#05b}"),
            FrameError::ReservedOpCode { value } => write!(f, "reserved opcode {value:#x}"),
            FrameError::FragmentedControl { opcode } => {
                write!(f, "fragmented control frame ({opcode:?})")
            }
            FrameError::ControlTooLong { opcode, len } => {
                write!(f, "control frame too long ({opcode:?}, {len} bytes)")
            }
            FrameError::MissingMask => f.write_str("unmasked frame from a client"),
            FrameError::UnexpectedMask => f.write_str("masked frame from a server"),
            FrameError::NonMinimalLength { len } => {
                write!(f, "length {len} not minimally encoded")
            }
            FrameError::LengthTopBitSet => f.write_str("64-bit length with top bit set"),
            FrameError::PayloadTooLong { len, max } => {
                write!(f, "frame of {len} bytes over the limit of {max}")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// What one call to [`FrameDecoder::decode`] produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// All the input was taken and a header is still incomplete.
    NeedMore,
    /// A complete, checked header; its payload follows in later calls (none
    /// when `payload_len` is zero, and the frame is then complete).
    Header {
        /// The header.
        header: FrameHeader,
        /// Input bytes used.
        consumed: usize,
    },
    /// Payload bytes were appended, unmasked, to the caller's buffer.
    Payload {
        /// Input bytes used, which is also the number appended.
        consumed: usize,
        /// Whether the frame's payload is now complete.
        frame_done: bool,
    },
}

/// Where a decoder is in the stream.
#[derive(Debug, Clone)]
enum DecodeState {
    /// Collecting a header; `filled` bytes of `buf` hold it so far.
    ExpectHeader {
        buf: [u8; MAX_HEADER_LEN],
        filled: usize,
    },
    /// Passing on a payload; `offset` is the position in the key cycle.
    ExpectPayload {
        mask: Option<[u8; 4]>,
        offset: usize,
        remaining: u64,
    },
    /// The stream lost its framing; every call returns this error.
    Failed(FrameError),
}

/// An incremental RFC 6455 frame decoder.
///
/// Feed it the stream in pieces of any size with [`decode`](Self::decode),
/// looping while input remains: each call yields a checked [`FrameHeader`],
/// a piece of payload appended to the caller's buffer, or
/// [`Decoded::NeedMore`]. Only an incomplete header (at most
/// [`MAX_HEADER_LEN`] bytes) is held inside; a declared length over the
/// maximum fails with the header, before any payload byte is taken.
///
/// # Examples
///
/// ```
/// use natter_core::frame::{encode_frame, Decoded, FrameDecoder, Masking, OpCode};
///
/// let mut wire = Vec::new();
/// encode_frame(&mut wire, OpCode::Text, true, b"hi", Some([1, 2, 3, 4]));
///
/// let mut decoder = FrameDecoder::new(Masking::Required, 1024);
/// let mut payload = Vec::new();
/// let Ok(Decoded::Header { header, consumed }) = decoder.decode(&wire, &mut payload) else {
///     panic!("expected a header");
/// };
/// assert_eq!(header.payload_len, 2);
/// let step = decoder.decode(&wire[consumed..], &mut payload);
/// assert_eq!(step, Ok(Decoded::Payload { consumed: 2, frame_done: true }));
/// assert_eq!(payload, b"hi");
/// ```
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    masking: Masking,
    max_payload: u64,
    state: DecodeState,
}

impl FrameDecoder {
    /// Creates a decoder that applies `masking` and refuses frames declaring
    /// more than `max_payload` bytes.
    pub fn new(masking: Masking, max_payload: u64) -> FrameDecoder {
        FrameDecoder {
            masking,
            max_payload,
            state: DecodeState::expect_header(),
        }
    }

    /// Returns the payload bytes of the current frame still to come, zero
    /// while a header is expected.
    pub fn payload_remaining(&self) -> u64 {
        match self.state {
            DecodeState::ExpectHeader { .. } | DecodeState::Failed(_) => 0,
            DecodeState::ExpectPayload { remaining, .. } => remaining,
        }
    }

    /// Decodes from the front of `input`, appending any payload bytes to
    /// `payload` unmasked.
    ///
    /// Call again with the rest of `input` (after `consumed` bytes) until it
    /// is empty; a frame's payload may be spread over several calls.
    ///
    /// # Errors
    ///
    /// Returns the broken rule when a header violates RFC 6455 §5 or
    /// declares more than the maximum. The stream has then lost its framing,
    /// and every later call returns the same error.
    pub fn decode(&mut self, input: &[u8], payload: &mut Vec<u8>) -> Result<Decoded, FrameError> {
        match &mut self.state {
            DecodeState::Failed(error) => Err(*error),
            DecodeState::ExpectHeader { buf, filled } => {
                let read = read_header(buf, filled, input, self.masking, self.max_payload);
                let (consumed, header) = read.inspect_err(|error| {
                    self.state = DecodeState::Failed(*error);
                })?;
                let Some(header) = header else {
                    return Ok(Decoded::NeedMore);
                };

                self.state = if header.payload_len > 0 {
                    DecodeState::ExpectPayload {
                        mask: header.mask,
                        offset: 0,
                        remaining: header.payload_len,
                    }
                } else {
                    DecodeState::expect_header()
                };
                Ok(Decoded::Header { header, consumed })
            }
            DecodeState::ExpectPayload {
                mask,
                offset,
                remaining,
            } => {
                let consumed = take_payload(input, payload, *mask, offset, remaining);
                let frame_done = *remaining == 0;
                if frame_done {
                    self.state = DecodeState::expect_header();
                }
                Ok(Decoded::Payload {
                    consumed,
                    frame_done,
                })
            }
        }
    }
}

impl DecodeState {
    /// Returns the state at the start of a frame.
    fn expect_header() -> DecodeState {
        DecodeState::ExpectHeader {
            buf: [0; MAX_HEADER_LEN],
            filled: 0,
        }
    }
}

/// Appends as much of the frame's remaining payload as `input` holds to
/// `payload`, unmasked, advances the key offset and the count, and returns
/// the bytes taken.
fn take_payload(
    input: &[u8],
    payload: &mut Vec<u8>,
    mask: Option<[u8; 4]>,
    offset: &mut usize,
    remaining: &mut u64,
) -> usize {
    let take = input
        .len()
        .min(usize::try_from(*remaining).unwrap_or(usize::MAX));
    let start = payload.len();
    payload.extend_from_slice(&input[..take]);
    if let Some(key) = mask {
        apply_mask(&mut payload[start..], key, *offset);
        *offset = (*offset + take) & 3;
    }
    *remaining -= take as u64;
    take
}

/// Gathers header bytes from `input` into `buf`, checking each field as
/// soon as its bytes are in, and returns the bytes used and, once complete,
/// the header.
fn read_header(
    buf: &mut [u8; MAX_HEADER_LEN],
    filled: &mut usize,
    input: &[u8],
    masking: Masking,
    max_payload: u64,
) -> Result<(usize, Option<FrameHeader>), FrameError> {
    let mut used = 0;
    loop {
        // The next point where something can be checked: the first byte,
        // the second, the extended length, then the whole header.
        let target = match *filled {
            0 => 1,
            1 => 2,
            _ => {
                let (ext_len, total) = header_size(buf[1]);
                if *filled < 2 + ext_len {
                    2 + ext_len
                } else {
                    total
                }
            }
        };

        if *filled < target {
            let take = (target - *filled).min(input.len() - used);
            buf[*filled..*filled + take].copy_from_slice(&input[used..used + take]);
            *filled += take;
            used += take;
            if *filled < target {
                return Ok((used, None));
            }
        }

        match *filled {
            1 => check_first_byte(buf[0])?,
            2 => check_second_byte(buf[0], buf[1], masking, max_payload)?,
            _ => {}
        }
        let (ext_len, total) = header_size(buf[1]);
        if *filled == 2 + ext_len && ext_len > 0 {
            check_length(buf, ext_len, max_payload)?;
        }
        if *filled == total {
            return Ok((used, Some(finish_header(buf, ext_len))));
        }
    }
}

/// Returns the extended length's size and the whole header's size that a
/// header's second byte announces.
fn header_size(second: u8) -> (usize, usize) {
    let ext_len = match second & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask_len = if second & 0x80 != 0 { 4 } else { 0 };
    (ext_len, 2 + ext_len + mask_len)
}

/// Checks the reserved bits and the opcode (RFC 6455 §5.2, §5.5).
fn check_first_byte(first: u8) -> Result<(), FrameError> {
    let bits = (first >> 4) & 0x7;
    if bits != 0 {
        return Err(FrameError::ReservedBitsSet { bits });
    }

    let value = first & 0x0F;
    let opcode = OpCode::from_u8(value).ok_or(FrameError::ReservedOpCode { value })?;
    if opcode.is_control() && first & 0x80 == 0 {
        return Err(FrameError::FragmentedControl { opcode });
    }
    Ok(())
}

/// Checks the mask bit and a short length: a control frame's limit, and
/// the maximum when no extended length follows.
fn check_second_byte(
    first: u8,
    second: u8,
    masking: Masking,
    max_payload: u64,
) -> Result<(), FrameError> {
    let masked = second & 0x80 != 0;
    match masking {
        Masking::Required if !masked => return Err(FrameError::MissingMask),
        Masking::Forbidden if masked => return Err(FrameError::UnexpectedMask),
        _ => {}
    }

    let len = u64::from(second & 0x7F);
    if let Some(opcode) = OpCode::from_u8(first & 0x0F) {
        if opcode.is_control() && len > MAX_CONTROL_PAYLOAD as u64 {
            return Err(FrameError::ControlTooLong { opcode, len });
        }
    }
    if len < 126 {
        check_max(len, max_payload)?;
    }
    Ok(())
}

/// Reads the extended length that follows the two fixed bytes.
fn extended_length(buf: &[u8; MAX_HEADER_LEN], ext_len: usize) -> u64 {
    let mut bytes = [0u8; 8];
    bytes[8 - ext_len..].copy_from_slice(&buf[2..2 + ext_len]);
    u64::from_be_bytes(bytes)
}

/// Checks an extended length: minimal, top bit clear, within the maximum.
fn check_length(
    buf: &[u8; MAX_HEADER_LEN],
    ext_len: usize,
    max_payload: u64,
) -> Result<(), FrameError> {
    let len = extended_length(buf, ext_len);
    if ext_len == 8 && len >> 63 != 0 {
        return Err(FrameError::LengthTopBitSet);
    }
    let minimal = match ext_len {
        2 => len >= 126,
        _ => len > 0xFFFF,
    };
    if !minimal {
        return Err(FrameError::NonMinimalLength { len });
    }
    check_max(len, max_payload)
}

/// Refuses a declared length over the maximum.
fn check_max(len: u64, max: u64) -> Result<(), FrameError> {
    if len > max {
        return Err(FrameError::PayloadTooLong { len, max });
    }
    Ok(())
}

/// Builds the header from its complete, already checked bytes.
fn finish_header(buf: &[u8; MAX_HEADER_LEN], ext_len: usize) -> FrameHeader {
    let payload_len = if ext_len == 0 {
        u64::from(buf[1] & 0x7F)
    } else {
        extended_length(buf, ext_len)
    };

    let mask = if buf[1] & 0x80 != 0 {
        let key_at = 2 + ext_len;
        Some([
            buf[key_at],
            buf[key_at + 1],
            buf[key_at + 2],
            buf[key_at + 3],
        ])
    } else {
        None
    };

    // check_first_byte let only known opcodes through.
    let opcode = OpCode::from_u8(buf[0] & 0x0F).unwrap_or(OpCode::Continuation);
    FrameHeader {
        fin: buf[0] & 0x80 != 0,
        rsv: (buf[0] >> 4) & 0x7,
        opcode,
        mask,
        payload_len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A decoded frame: its header and whole payload.
    type Frame = (FrameHeader, Vec<u8>);

    /// Gathers whole frames from a decoder fed piece by piece.
    struct Collector {
        decoder: FrameDecoder,
        frames: Vec<Frame>,
        header: Option<FrameHeader>,
        payload: Vec<u8>,
    }

    impl Collector {
        fn new(masking: Masking, max: u64) -> Collector {
            Collector {
                decoder: FrameDecoder::new(masking, max),
                frames: Vec::new(),
                header: None,
                payload: Vec::new(),
            }
        }

        fn feed(&mut self, mut input: &[u8]) -> Result<(), FrameError> {
            while !input.is_empty() {
                match self.decoder.decode(input, &mut self.payload)? {
                    Decoded::NeedMore => input = &[],
                    Decoded::Header { header, consumed } => {
                        input = &input[consumed..];
                        if header.payload_len == 0 {
                            self.frames.push((header, Vec::new()));
                        } else {
                            self.header = Some(header);
                        }
                    }
                    Decoded::Payload {
                        consumed,
                        frame_done,
                    } => {
                        input = &input[consumed..];
                        if frame_done {
                            let header = self.header.take().expect("payload follows a header");
                            self.frames
                                .push((header, std::mem::take(&mut self.payload)));
                        }
                    }
                }
            }
            Ok(())
        }
    }

    /// Decodes `input` fed in pieces of `chunk` bytes.
    fn decode_chunked(
        input: &[u8],
        masking: Masking,
        max: u64,
        chunk: usize,
    ) -> Result<Vec<Frame>, FrameError> {
        let mut collector = Collector::new(masking, max);
        for piece in input.chunks(chunk.max(1)) {
            collector.feed(piece)?;
        }
        Ok(collector.frames)
    }

    /// Decodes `input` in one piece with a permissive decoder.
    fn decode_one(input: &[u8], masking: Masking, max: u64) -> Result<Vec<Frame>, FrameError> {
        decode_chunked(input, masking, max, input.len())
    }

    fn encoded(opcode: OpCode, fin: bool, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(&mut out, opcode, fin, payload, mask);
        out
    }

    #[test]
    fn lengths_use_the_shortest_encoding_and_round_trip() {
        for (len, header_len) in [(0, 2), (125, 2), (126, 4), (65_535, 4), (65_536, 10)] {
            let payload = vec![0x5A; len];
            let wire = encoded(OpCode::Binary, true, &payload, None);
            assert_eq!(wire.len(), header_len + len, "length {len}");

            let frames = decode_one(&wire, Masking::Forbidden, u64::MAX).unwrap();
            assert_eq!(frames.len(), 1);
            assert_eq!(frames[0].0.payload_len, len as u64);
            assert_eq!(frames[0].1, payload);
        }
    }

    #[test]
    fn masked_frame_round_trips_and_masks_on_the_wire() {
        let key = [0x37, 0xFA, 0x21, 0x3D];
        let wire = encoded(OpCode::Text, true, b"Hello", Some(key));
        assert_eq!(
            wire,
            [0x81, 0x85, 0x37, 0xFA, 0x21, 0x3D, 0x7F, 0x9F, 0x4D, 0x51, 0x58]
        );

        let frames = decode_one(&wire, Masking::Required, 1024).unwrap();
        let (header, payload) = &frames[0];
        assert!(header.fin && header.is_masked());
        assert_eq!(
            (header.opcode, header.mask, header.rsv),
            (OpCode::Text, Some(key), 0)
        );
        assert_eq!(payload, b"Hello");
    }

    #[test]
    fn unmasked_frame_round_trips() {
        let wire = encoded(OpCode::Ping, true, b"abc", None);
        assert_eq!(wire, [0x89, 0x03, b'a', b'b', b'c']);
        let frames = decode_one(&wire, Masking::Forbidden, 1024).unwrap();
        assert_eq!(frames[0].1, b"abc");
        assert!(!frames[0].0.is_masked());
    }

    #[test]
    fn every_split_position_gives_the_same_frames() {
        let mut wire = encoded(OpCode::Text, false, &[7; 300], Some([9, 8, 7, 6]));
        wire.extend(encoded(OpCode::Ping, true, b"p", Some([1, 2, 3, 4])));
        wire.extend(encoded(
            OpCode::Continuation,
            true,
            &[3; 200],
            Some([5, 5, 6, 6]),
        ));
        let whole = decode_one(&wire, Masking::Required, u64::MAX).unwrap();
        assert_eq!(whole.len(), 3);

        for split in 0..=wire.len() {
            let mut collector = Collector::new(Masking::Required, u64::MAX);
            collector.feed(&wire[..split]).unwrap();
            collector.feed(&wire[split..]).unwrap();
            assert!(collector.frames == whole, "split at {split}");
        }

        // A 64-bit length, fed in pieces of several sizes.
        wire.extend(encoded(
            OpCode::Binary,
            true,
            &[4; 70_000],
            Some([1, 0, 0, 1]),
        ));
        let whole = decode_one(&wire, Masking::Required, u64::MAX).unwrap();
        assert_eq!(whole.len(), 4);
        for chunk in [1, 2, 3, 5, 13, 4096] {
            assert_eq!(
                decode_chunked(&wire, Masking::Required, u64::MAX, chunk).unwrap(),
                whole
            );
        }
    }

    #[test]
    fn non_minimal_lengths_are_refused() {
        let cases: [(&[u8], u64); 3] = [
            (&[0x82, 126, 0x00, 125], 125),
            (&[0x82, 126, 0x00, 0x00], 0),
            (&[0x82, 127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF], 65_535),
        ];
        for (wire, len) in cases {
            let error = decode_one(wire, Masking::Forbidden, u64::MAX).unwrap_err();
            assert_eq!(error, FrameError::NonMinimalLength { len });
        }
    }

    #[test]
    fn top_bit_of_a_64_bit_length_is_refused() {
        let wire = [0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0];
        let error = decode_one(&wire, Masking::Forbidden, u64::MAX).unwrap_err();
        assert_eq!(error, FrameError::LengthTopBitSet);
    }

    #[test]
    fn over_limit_length_fails_at_the_header_before_the_key_or_payload() {
        // 70 000 bytes declared, limit 65 536: the error comes with the length
        // bytes, before the masking key or any payload is there.
        let mut decoder = FrameDecoder::new(Masking::Required, 65_536);
        let mut payload = Vec::new();
        let wire = [0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0x11, 0x70];
        let error = decoder.decode(&wire, &mut payload).unwrap_err();
        assert_eq!(
            error,
            FrameError::PayloadTooLong {
                len: 70_000,
                max: 65_536
            }
        );
        assert!(payload.is_empty());

        let error = decode_one(&[0x81, 0x8A], Masking::Required, 9).unwrap_err();
        assert_eq!(error, FrameError::PayloadTooLong { len: 10, max: 9 });
    }

    #[test]
    fn header_rules_fail_at_the_byte_that_breaks_them() {
        let first_byte_cases = [
            (0xC1, FrameError::ReservedBitsSet { bits: 0b100 }),
            (0x91, FrameError::ReservedBitsSet { bits: 0b001 }),
            (0x83, FrameError::ReservedOpCode { value: 3 }),
            (0x8F, FrameError::ReservedOpCode { value: 0xF }),
            (
                0x09,
                FrameError::FragmentedControl {
                    opcode: OpCode::Ping,
                },
            ),
        ];
        for (first, expected) in first_byte_cases {
            let error = decode_one(&[first], Masking::Any, 1024).unwrap_err();
            assert_eq!(error, expected, "first byte {first:#x}");
        }

        let control = decode_one(&[0x88, 0xFE], Masking::Any, 1024).unwrap_err();
        assert_eq!(
            control,
            FrameError::ControlTooLong {
                opcode: OpCode::Close,
                len: 126
            }
        );
        let missing = decode_one(&[0x81, 0x05], Masking::Required, 1024).unwrap_err();
        assert_eq!(missing, FrameError::MissingMask);
        let unexpected = decode_one(&[0x81, 0x85], Masking::Forbidden, 1024).unwrap_err();
        assert_eq!(unexpected, FrameError::UnexpectedMask);
    }

    #[test]
    fn incomplete_header_asks_for_more_and_holds_the_bytes() {
        let mut decoder = FrameDecoder::new(Masking::Required, 1024);
        let mut payload = Vec::new();
        for byte in [0x81, 0x82, 1, 2, 3] {
            assert_eq!(decoder.decode(&[byte], &mut payload), Ok(Decoded::NeedMore));
        }
        let step = decoder
            .decode(&[4, b'h' ^ 1, b'i' ^ 2], &mut payload)
            .unwrap();
        let Decoded::Header { header, consumed } = step else {
            panic!("expected a header, got {step:?}");
        };
        assert_eq!((consumed, header.payload_len), (1, 2));
        assert_eq!(decoder.payload_remaining(), 2);
    }

    #[test]
    fn a_failed_decoder_keeps_failing() {
        let mut decoder = FrameDecoder::new(Masking::Required, 1024);
        let mut payload = Vec::new();
        let error = FrameError::MissingMask;
        assert_eq!(decoder.decode(&[0x81, 0x00], &mut payload), Err(error));
        let valid = [0x81, 0x80, 0, 0, 0, 0];
        assert_eq!(decoder.decode(&valid, &mut payload), Err(error));
    }

    #[test]
    fn apply_mask_continues_the_key_cycle_between_pieces() {
        let key = [1, 2, 4, 8];
        let data: Vec<u8> = (0..=255).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, key, 0);

        let mut pieces = data.clone();
        let (a, rest) = pieces.split_at_mut(3);
        let (b, c) = rest.split_at_mut(17);
        apply_mask(a, key, 0);
        apply_mask(b, key, 3);
        apply_mask(c, key, 20);
        assert_eq!(pieces, whole);
    }

    fn any_opcode() -> impl Strategy<Value = OpCode> {
        prop_oneof![
            Just(OpCode::Continuation),
            Just(OpCode::Text),
            Just(OpCode::Binary),
            Just(OpCode::Close),
            Just(OpCode::Ping),
            Just(OpCode::Pong),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn apply_mask_matches_the_byte_by_byte_definition(
            data in proptest::collection::vec(any::<u8>(), 0..100),
            key in any::<[u8; 4]>(),
            offset in 0usize..8,
        ) {
            let mut fast = data.clone();
            apply_mask(&mut fast, key, offset);
            let slow: Vec<u8> =
                data.iter().enumerate().map(|(i, b)| b ^ key[(offset + i) % 4]).collect();
            prop_assert_eq!(fast, slow);
        }

        #[test]
        fn any_frame_round_trips_through_any_split(
            opcode in any_opcode(),
            fin in any::<bool>(),
            payload in proptest::collection::vec(any::<u8>(), 0..70_000),
            mask in proptest::option::of(any::<[u8; 4]>()),
            chunk in 1usize..5000,
        ) {
            let keep = if opcode.is_control() { payload.len().min(125) } else { payload.len() };
            let payload = &payload[..keep];
            let fin = fin || opcode.is_control();
            let wire = encoded(opcode, fin, payload, mask);
            let frames = decode_chunked(&wire, Masking::Any, u64::MAX, chunk).unwrap();
            prop_assert_eq!(frames.len(), 1);
            let (header, decoded) = &frames[0];
            prop_assert_eq!((header.opcode, header.fin, header.mask), (opcode, fin, mask));
            prop_assert_eq!(&decoded[..], payload);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            input in proptest::collection::vec(any::<u8>(), 0..200),
            chunk in 1usize..20,
        ) {
            let _ = decode_chunked(&input, Masking::Any, 1000, chunk);
        }
    }
}
