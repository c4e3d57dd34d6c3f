//! The few wire operations a load generator needs, kept cheap: a fixed
//! upgrade request, pre-built masked frames whose payload is patched in
//! place, and a zero-copy split of the server's unmasked frames.
//!
//! The server's frames are read without the core's streaming decoder on
//! purpose: the generator must cost far less CPU than the server it measures,
//! so it only looks at headers and a few bytes of each payload, and trusts
//! the server (conformance is the harness's job, not this tool's).

use std::io;

use async_net::TcpStream;
use futures_lite::{AsyncReadExt, AsyncWriteExt};

/// The masking key of every generated frame. All zero is a valid key
/// (RFC 6455 §5.3 asks for unpredictability against proxies, which a
/// loopback benchmark does not have) and makes masking the identity, so a
/// timestamp can be written straight into a pre-built frame.
const ZERO_MASK: [u8; 4] = [0; 4];

/// Opens a TCP connection and completes the upgrade for `path_and_query`.
///
/// Returns the stream and any bytes that followed the `101` head.
pub async fn upgrade(server: &str, path_and_query: &str) -> io::Result<(TcpStream, Vec<u8>)> {
    let mut stream = TcpStream::connect(server).await?;
    stream.set_nodelay(true)?;
    let request = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;

    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed during upgrade",
            ));
        }
        head.extend_from_slice(&chunk[..read]);

        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            if !head.starts_with(b"HTTP/1.1 101") {
                let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
                let status = String::from_utf8_lossy(line).into_owned();
                return Err(io::Error::other(format!("upgrade refused: {status}")));
            }
            return Ok((stream, head.split_off(end + 4)));
        }
        if head.len() > 16 * 1024 {
            return Err(io::Error::other("upgrade answer head too large"));
        }
    }
}

/// A masked client frame built once and re-sent with a patched payload.
pub struct PrebuiltFrame {
    bytes: Vec<u8>,
    payload_start: usize,
}

impl PrebuiltFrame {
    /// Builds a final, masked frame of `opcode` carrying `payload`.
    pub fn new(opcode: u8, payload: &[u8]) -> PrebuiltFrame {
        let mut bytes = Vec::with_capacity(payload.len() + 14);
        bytes.push(0x80 | opcode);
        match payload.len() {
            len @ 0..=125 => bytes.push(0x80 | len as u8),
            len @ 126..=0xFFFF => {
                bytes.push(0x80 | 126);
                bytes.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                bytes.push(0x80 | 127);
                bytes.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        bytes.extend_from_slice(&ZERO_MASK);
        let payload_start = bytes.len();
        bytes.extend_from_slice(payload);
        PrebuiltFrame {
            bytes,
            payload_start,
        }
    }

    /// Returns the payload for patching in place (the zero mask keeps it
    /// plain on the wire).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.bytes[self.payload_start..]
    }

    /// Returns the whole frame as it goes on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// One server frame found in a read buffer.
pub struct FrameRef {
    /// The frame's opcode.
    pub opcode: u8,
    /// Where its payload sits in the buffer.
    pub payload: std::ops::Range<usize>,
}

/// Finds the complete unmasked frame at the start of `buf`, if one is there.
///
/// Returns the frame and the bytes it takes, or `None` until more arrive.
pub fn split_frame(buf: &[u8]) -> Option<(FrameRef, usize)> {
    let (&first, rest) = buf.split_first()?;
    let (&second, rest) = rest.split_first()?;
    let (len, header) = match second & 0x7F {
        126 => (
            u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize,
            4,
        ),
        127 => (
            u64::from_be_bytes(rest.get(..8)?.try_into().ok()?) as usize,
            10,
        ),
        short => (short as usize, 2usize),
    };

    let end = header.checked_add(len)?;
    if buf.len() < end {
        return None;
    }
    Some((
        FrameRef {
            opcode: first & 0x0F,
            payload: header..end,
        },
        end,
    ))
}

/// Returns the number that follows `key` (such as `"seq":`) in `json`.
pub fn number_after(json: &[u8], key: &[u8]) -> Option<u64> {
    let at = find(json, key)? + key.len();
    let digits = json.get(at..)?.iter().take_while(|b| b.is_ascii_digit());
    let mut value: u64 = 0;
    let mut any = false;
    for &digit in digits {
        value = value
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
        any = true;
    }
    any.then_some(value)
}

/// Returns the position of the last `needle` in `haystack`.
pub fn find_last(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .rposition(|window| window == needle)
}

/// Returns the position of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prebuilt_frames_split_back() {
        for size in [0, 125, 126, 65535, 65536] {
            let frame = PrebuiltFrame::new(0x1, &vec![b'a'; size]);
            // A server frame has no mask: drop the mask bit and key to read it.
            let mut server = frame.as_bytes().to_vec();
            server[1] &= 0x7F;
            let key_at = frame.payload_start - 4;
            server.drain(key_at..frame.payload_start);
            let (found, used) = split_frame(&server).expect("whole frame");
            assert_eq!(used, server.len());
            assert_eq!(found.payload.len(), size);
            assert!(split_frame(&server[..server.len() - 1]).is_none() || size == 0);
        }
    }

    #[test]
    fn numbers_are_found_after_keys() {
        let json = br#"{"type":"message","seq":42,"ts":1764856801000}"#;
        assert_eq!(number_after(json, b"\"seq\":"), Some(42));
        assert_eq!(number_after(json, b"\"ts\":"), Some(1_764_856_801_000));
        assert_eq!(number_after(json, b"\"nope\":"), None);
    }
}
