//! Reading what a server sends: frames decoded into the events a case judges.

use std::io::Read;

use crate::expr::describe;

/// Something the server sent, as a case sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A whole text message (its bytes, which may be invalid UTF-8).
    Text(Vec<u8>),
    /// A whole binary message.
    Binary(Vec<u8>),
    /// A pong.
    Pong(Vec<u8>),
    /// A ping (the echo endpoint sends none within a case's lifetime).
    Ping(Vec<u8>),
    /// A close frame: its code, if any, and its reason bytes.
    Close(Option<u16>, Vec<u8>),
    /// A frame the server must never send, and why.
    Malformed(String),
}

impl Seen {
    /// Describes the event for a report.
    pub fn describe(&self) -> String {
        match self {
            Seen::Text(bytes) => format!("text {}", describe(bytes)),
            Seen::Binary(bytes) => format!("binary {}", describe(bytes)),
            Seen::Pong(bytes) => format!("pong {}", describe(bytes)),
            Seen::Ping(bytes) => format!("ping {}", describe(bytes)),
            Seen::Close(Some(code), reason) if reason.is_empty() => format!("close {code}"),
            Seen::Close(Some(code), reason) => format!("close {code} {}", describe(reason)),
            Seen::Close(None, _) => "close without code".to_owned(),
            Seen::Malformed(why) => format!("malformed frame: {why}"),
        }
    }
}

/// An incremental decoder of server frames (unmasked, RFC 6455 §5.1) that
/// joins fragments into messages.
#[derive(Debug, Default)]
pub struct FrameReader {
    buffer: Vec<u8>,
    /// Start of the unread bytes in `buffer`.
    start: usize,
    /// The opcode and bytes of a fragmented message in progress.
    message: Option<(u8, Vec<u8>)>,
    /// Set once a malformed frame was seen: nothing after it is read.
    broken: bool,
}

impl FrameReader {
    /// Creates an empty reader.
    pub fn new() -> FrameReader {
        FrameReader::default()
    }

    /// Takes bytes from the server and appends the events they complete.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Seen>) {
        if self.broken {
            return;
        }
        self.buffer.extend_from_slice(bytes);

        while let Some((used, event)) = self.next_frame() {
            self.start += used;
            if let Some(event) = event {
                if matches!(event, Seen::Malformed(_)) {
                    self.broken = true;
                    out.push(event);
                    return;
                }
                out.push(event);
            }
        }

        // Drop consumed bytes once they are the larger part of the buffer.
        if self.start > self.buffer.len() / 2 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
    }

    /// Decodes one complete frame from the unread bytes, if there is one.
    fn next_frame(&mut self) -> Option<(usize, Option<Seen>)> {
        let data = &self.buffer[self.start..];
        let (&first, &second) = (data.first()?, data.get(1)?);
        let (len, header) = match second & 0x7f {
            126 => (
                u64::from(u16::from_be_bytes([*data.get(2)?, *data.get(3)?])),
                4,
            ),
            127 => {
                let bytes: [u8; 8] = data.get(2..10)?.try_into().ok()?;
                (u64::from_be_bytes(bytes), 10)
            }
            short => (u64::from(short), 2),
        };
        let malformed = |why: String| Some((data.len(), Some(Seen::Malformed(why))));

        if second & 0x80 != 0 {
            return malformed("a server frame is masked".to_owned());
        }
        if first & 0x70 != 0 {
            return malformed(format!("reserved bits {:#x} set", (first >> 4) & 7));
        }
        let total = usize::try_from(len).ok()?.checked_add(header)?;
        let payload = data.get(header..total)?.to_vec();
        let (fin, opcode) = (first & 0x80 != 0, first & 0x0f);
        Some((total, self.frame(fin, opcode, payload)))
    }

    /// Turns one frame into an event, joining fragments.
    fn frame(&mut self, fin: bool, opcode: u8, payload: Vec<u8>) -> Option<Seen> {
        let message = |opcode: u8, bytes: Vec<u8>| {
            if opcode == 0x1 {
                Seen::Text(bytes)
            } else {
                Seen::Binary(bytes)
            }
        };

        match opcode {
            0x1 | 0x2 if self.message.is_some() => Some(Seen::Malformed(
                "a new message inside a fragmented one".to_owned(),
            )),
            0x1 | 0x2 if fin => Some(message(opcode, payload)),
            0x1 | 0x2 => {
                self.message = Some((opcode, payload));
                None
            }
            0x0 => {
                let Some((first, mut bytes)) = self.message.take() else {
                    return Some(Seen::Malformed(
                        "a continuation with nothing to continue".into(),
                    ));
                };
                bytes.extend_from_slice(&payload);
                if fin {
                    return Some(message(first, bytes));
                }
                self.message = Some((first, bytes));
                None
            }
            0x8 => Some(match payload.as_slice() {
                [] => Seen::Close(None, Vec::new()),
                [hi, lo, reason @ ..] => {
                    Seen::Close(Some(u16::from_be_bytes([*hi, *lo])), reason.to_vec())
                }
                [_] => Seen::Malformed("a close payload of one byte".to_owned()),
            }),
            0x9 => Some(Seen::Ping(payload)),
            0xa => Some(Seen::Pong(payload)),
            other => Some(Seen::Malformed(format!("reserved opcode {other}"))),
        }
    }
}

/// Returns a masked client frame, as the harness sends its own close.
pub fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let spec = crate::vector::FrameSpec::new(opcode, crate::expr::Expr::hex(payload));
    spec.encode(0)
}

/// Reads an HTTP response head (through its empty line) byte by byte, so
/// no byte of a frame that follows it is taken.
///
/// # Errors
///
/// Fails when the stream ends or fails first, or the head passes 8 KiB.
pub fn read_response_head(stream: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 || head.len() > 8192 {
            return Err(std::io::Error::other("no complete response head"));
        }
        head.push(byte[0]);
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fragments_are_joined_and_controls_pass_between() {
        let mut reader = FrameReader::new();
        let mut seen = Vec::new();
        let bytes = b"\x01\x02ab\x89\x01p\x80\x01c\x88\x02\x03\xe8";
        for byte in bytes {
            reader.push(&[*byte], &mut seen);
        }
        assert_eq!(
            seen,
            vec![
                Seen::Ping(b"p".to_vec()),
                Seen::Text(b"abc".to_vec()),
                Seen::Close(Some(1000), Vec::new())
            ]
        );
    }

    #[test]
    fn masked_server_frames_are_malformed() {
        let mut seen = Vec::new();
        FrameReader::new().push(b"\x81\x80\x00\x00\x00\x00", &mut seen);
        assert!(matches!(seen.as_slice(), [Seen::Malformed(_)]));
    }
}
