//! RFC 6455 §5 framing: opcodes, headers, encoding.

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
    out.reserve(14 + payload.len());
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
pub fn apply_mask(data: &mut [u8], key: [u8; 4], offset: usize) {
    for (index, byte) in data.iter_mut().enumerate() {
        *byte ^= key[(offset + index) & 3];
    }
}
