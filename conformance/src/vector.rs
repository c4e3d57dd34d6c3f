//! WebSocket vectors: the cases of `vectors/ws/*.vec`, their text format and
//! the byte deliveries they describe.
//!
//! A file holds cases separated by blank lines; `#` starts a comment line.
//! A case reads top to bottom:
//!
//! ```text
//! case 6.4.1
//! about Invalid UTF-8 in the 2nd of 3 frames, sent with pauses between them.
//! note Autobahn grades a failure after the 3rd frame NON-STRICT; here it fails.
//! frame op=text fin=0 payload=hex(cebae1bdb9cf83cebcceb5)
//! pause
//! frame op=cont fin=0 payload=hex(f4908080)
//! pause
//! frame op=cont payload="edited"
//! expect close 1007 by-delivery 2
//! ```
//!
//! - `frame` fields: `op` (`text`, `binary`, `cont`, `close`, `ping`, `pong` or
//!   a number), `fin` (default 1), `rsv` (0 to 7, default 0), `mask` (`auto`,
//!   a key such as `0x37fa213d`, or `none`), `split` (payload offsets where
//!   the frame is cut into separate deliveries), `times` (the same frame sent
//!   N times), and last `payload=` with an expression (see [`crate::expr`]).
//! - `pause` ends a delivery; `deliver whole` (default: everything between
//!   pauses in one delivery), `deliver per-frame`, or `deliver chunks N`
//!   (every delivery then cut into N-byte pieces) say how the bytes are cut.
//! - `expect text|binary|pong EXPR`, optionally `expect 1000x text EXPR`: the
//!   events the server must send, in this order and no others.
//! - `alternative LABEL`: the `expect` lines after it (before `then` and
//!   `expect close`) form another event list that passes too, where the RFC
//!   allows it; the label says why, such as Autobahn's NON-STRICT grade.
//! - `then close CODE`: once those events arrived, the harness closes.
//! - `expect close CODES [by-delivery N]`: the server's close frame, with one of
//!   the codes (`1000|3000`, `empty` for a close without a code), sent no
//!   later than right after delivery N (deliveries count from 1).
//! - `unsupported REASON`: the case cannot apply to natter, and why.
//! - `live-only REASON`: too slow for a debug `cargo test`; the live runner
//!   and release builds still run it.

use std::fmt;

use crate::expr::{Expr, ExprError};

/// The masking key used when a frame says `mask=auto`, varied per frame.
const AUTO_MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// How a frame is masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mask {
    /// A key derived from the frame's position in the case.
    Auto,
    /// This key.
    Key([u8; 4]),
    /// Not masked at all (a client must mask, RFC 6455 §5.1).
    None,
}

/// One frame a case sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameSpec {
    /// The FIN bit.
    pub fin: bool,
    /// The three RSV bits, RSV1 the highest.
    pub rsv: u8,
    /// The 4-bit opcode, reserved values included.
    pub opcode: u8,
    /// The masking.
    pub mask: Mask,
    /// Payload offsets where the frame is cut into separate deliveries.
    pub split: Vec<usize>,
    /// How many times the frame is sent.
    pub times: usize,
    /// The payload.
    pub payload: Expr,
}

/// An item of a case's input, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A frame.
    Frame(FrameSpec),
    /// The end of a delivery.
    Pause,
}

/// How the bytes between pauses are cut into deliveries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Delivery {
    /// In one delivery.
    #[default]
    Whole,
    /// One delivery per frame.
    PerFrame,
    /// In pieces of this many bytes.
    Chunks(usize),
}

/// What kind of event a case expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A text message.
    Text,
    /// A binary message.
    Binary,
    /// A pong.
    Pong,
}

/// An expected event, possibly repeated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// How many times in a row.
    pub times: usize,
    /// The event's kind.
    pub kind: EventKind,
    /// Its payload.
    pub payload: Expr,
}

/// Another list of events a case accepts, with why it is acceptable.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Alternative {
    /// Why this outcome is acceptable too, such as Autobahn's grade for it.
    pub label: String,
    /// The events, in order.
    pub expect: Vec<Expected>,
}

/// The close the server must send.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CloseExpectation {
    /// The codes accepted; `None` stands for a close frame without a code.
    pub codes: Vec<Option<u16>>,
    /// The delivery after which the close must already be out.
    pub by_delivery: Option<usize>,
}

/// One WebSocket conformance case.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WsCase {
    /// The case's id, such as `6.4.1`.
    pub id: String,
    /// What the case sends, in a sentence.
    pub about: String,
    /// Remarks on accepted alternatives and grading.
    pub notes: Vec<String>,
    /// Why the case cannot apply to natter, if it cannot.
    pub unsupported: Option<String>,
    /// Why the case runs only in release or live mode, if it does.
    pub live_only: Option<String>,
    /// How the bytes are cut.
    pub delivery: Delivery,
    /// Frames and pauses.
    pub items: Vec<Item>,
    /// The events expected, in order.
    pub expect: Vec<Expected>,
    /// Other event lists that also pass, where the RFC allows them.
    pub alternatives: Vec<Alternative>,
    /// The close code the harness sends once the events arrived.
    pub then_close: Option<u16>,
    /// The close the server must send.
    pub close: CloseExpectation,
}

/// A line of a vector file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorError {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// Splits a vector file into its cases and hands each line to its case.
///
/// Every format here shares the same frame: a case begins at a `case ID`
/// line, blank lines and `#` comments are skipped, and every other line,
/// with trailing white space removed, belongs to the case above it;
/// `new_case` makes a case from its id and `apply` reads one of its lines.
///
/// # Errors
///
/// Fails at a line before the first `case` or the first line `apply`
/// refuses, naming its line number.
pub fn parse_case_blocks<C>(
    text: &str,
    new_case: impl Fn(&str) -> C,
    mut apply: impl FnMut(&mut C, &str) -> Result<(), String>,
) -> Result<Vec<C>, VectorError> {
    let mut cases = Vec::new();
    let mut current: Option<C> = None;

    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim_end();
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let error = |reason: String| VectorError {
            line: index + 1,
            reason,
        };

        if let Some(id) = line.trim_start().strip_prefix("case ") {
            cases.extend(current.take());
            current = Some(new_case(id.trim()));
            continue;
        }
        let Some(case) = current.as_mut() else {
            return Err(error("a line before the first `case`".to_owned()));
        };
        apply(case, line).map_err(error)?;
    }
    cases.extend(current);
    Ok(cases)
}

impl fmt::Display for VectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

impl std::error::Error for VectorError {}

impl From<ExprError> for String {
    fn from(error: ExprError) -> String {
        error.to_string()
    }
}

impl WsCase {
    /// Returns the number of the section the case belongs to (`6` for 6.4.1).
    pub fn section(&self) -> &str {
        self.id.split('.').next().unwrap_or("")
    }

    /// Returns the bytes to send, cut into deliveries, masked.
    pub fn deliveries(&self) -> Vec<Vec<u8>> {
        let mut groups: Vec<Vec<u8>> = Vec::new();
        let mut current = Vec::new();
        let mut frame_index = 0;

        for item in &self.items {
            let Item::Frame(frame) = item else {
                flush(&mut groups, &mut current);
                continue;
            };
            for _ in 0..frame.times {
                let bytes = frame.encode(frame_index);
                frame_index += 1;

                if frame.split.is_empty() {
                    current.extend_from_slice(&bytes);
                } else {
                    flush(&mut groups, &mut current);
                    let header = bytes.len() - frame.payload.len();
                    let mut start = 0;
                    for &cut in &frame.split {
                        let end = (header + cut).min(bytes.len());
                        groups.push(bytes[start..end].to_vec());
                        start = end;
                    }
                    groups.push(bytes[start..].to_vec());
                }
                if self.delivery == Delivery::PerFrame {
                    flush(&mut groups, &mut current);
                }
            }
        }
        flush(&mut groups, &mut current);

        match self.delivery {
            Delivery::Chunks(size) if size > 0 => groups
                .iter()
                .flat_map(|group| group.chunks(size).map(<[u8]>::to_vec))
                .collect(),
            _ => groups,
        }
    }
}

/// Moves the current delivery into the list, if it holds anything.
fn flush(groups: &mut Vec<Vec<u8>>, current: &mut Vec<u8>) {
    if !current.is_empty() {
        groups.push(std::mem::take(current));
    }
}

impl FrameSpec {
    /// Returns a final, unmasked-by-default frame of `opcode` with `payload`.
    pub fn new(opcode: u8, payload: Expr) -> FrameSpec {
        FrameSpec {
            fin: true,
            rsv: 0,
            opcode,
            mask: Mask::Auto,
            split: Vec::new(),
            times: 1,
            payload,
        }
    }

    /// Returns the frame's bytes as a client sends them; `index` varies the
    /// automatic masking key.
    pub fn encode(&self, index: usize) -> Vec<u8> {
        let payload = self.payload.eval();
        let mut out = Vec::with_capacity(payload.len() + 14);
        out.push(u8::from(self.fin) << 7 | (self.rsv & 7) << 4 | (self.opcode & 0xf));

        let mask_bit = if self.mask == Mask::None { 0 } else { 0x80 };
        let len = payload.len();
        if len < 126 {
            out.push(mask_bit | len as u8);
        } else if len <= 0xffff {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }

        let key = match self.mask {
            Mask::None => {
                out.extend_from_slice(&payload);
                return out;
            }
            Mask::Key(key) => key,
            Mask::Auto => {
                let vary = (index as u32).wrapping_mul(0x9e37_79b9).to_be_bytes();
                std::array::from_fn(|i| AUTO_MASK[i] ^ vary[i])
            }
        };
        out.extend_from_slice(&key);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i & 3]));
        out
    }
}

/// Returns the name a vector file gives an opcode.
fn opcode_name(opcode: u8) -> Option<&'static str> {
    Some(match opcode {
        0x0 => "cont",
        0x1 => "text",
        0x2 => "binary",
        0x8 => "close",
        0x9 => "ping",
        0xa => "pong",
        _ => return None,
    })
}

/// Reads an opcode written by name or number.
fn parse_opcode(text: &str) -> Result<u8, String> {
    for value in 0..16 {
        if opcode_name(value) == Some(text) {
            return Ok(value);
        }
    }
    match text.parse::<u8>() {
        Ok(value) if value < 16 => Ok(value),
        _ => Err(format!("unknown opcode `{text}`")),
    }
}

/// Parses every case of a vector file.
///
/// # Errors
///
/// Fails at the first line that is not part of the format, naming it.
pub fn parse_cases(text: &str) -> Result<Vec<WsCase>, VectorError> {
    let new_case = |id: &str| WsCase {
        id: id.to_owned(),
        ..WsCase::default()
    };
    parse_case_blocks(text, new_case, |case, line| {
        let line = line.trim();
        let (keyword, rest) = line.split_once(' ').unwrap_or((line, ""));
        parse_line(case, keyword, rest.trim())
    })
}

/// Applies one line of a case.
fn parse_line(case: &mut WsCase, keyword: &str, rest: &str) -> Result<(), String> {
    match keyword {
        "about" => case.about = rest.to_owned(),
        "note" => case.notes.push(rest.to_owned()),
        "unsupported" => case.unsupported = Some(rest.to_owned()),
        "live-only" => case.live_only = Some(rest.to_owned()),
        "pause" => case.items.push(Item::Pause),
        "deliver" => case.delivery = parse_delivery(rest)?,
        "frame" => case.items.push(Item::Frame(parse_frame(rest)?)),
        "expect" => parse_expect(case, rest)?,
        "alternative" => case.alternatives.push(Alternative {
            label: rest.to_owned(),
            expect: Vec::new(),
        }),
        "then" => {
            let code = rest
                .strip_prefix("close ")
                .and_then(|code| code.trim().parse().ok())
                .ok_or_else(|| format!("expected `then close CODE`, got `{rest}`"))?;
            case.then_close = Some(code);
        }
        other => return Err(format!("unknown keyword `{other}`")),
    }
    Ok(())
}

fn parse_delivery(text: &str) -> Result<Delivery, String> {
    match text.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["whole"] => Ok(Delivery::Whole),
        ["per-frame"] => Ok(Delivery::PerFrame),
        ["chunks", size] => match size.parse() {
            Ok(size) if size > 0 => Ok(Delivery::Chunks(size)),
            _ => Err(format!("bad chunk size `{size}`")),
        },
        _ => Err(format!("unknown delivery `{text}`")),
    }
}

fn parse_frame(text: &str) -> Result<FrameSpec, String> {
    let (fields, payload) = text
        .split_once("payload=")
        .ok_or_else(|| "a frame needs `payload=` last".to_owned())?;
    let mut frame = FrameSpec::new(0x1, Expr::parse(payload)?);
    let mut has_opcode = false;

    for field in fields.split_whitespace() {
        let (name, value) = field
            .split_once('=')
            .ok_or_else(|| format!("field `{field}` has no value"))?;
        let bad = || format!("bad value in `{field}`");
        match name {
            "op" => {
                frame.opcode = parse_opcode(value)?;
                has_opcode = true;
            }
            "fin" => frame.fin = parse_bit(value).ok_or_else(bad)?,
            "rsv" => frame.rsv = value.parse().ok().filter(|v| *v < 8).ok_or_else(bad)?,
            "times" => frame.times = value.parse().ok().filter(|v| *v > 0).ok_or_else(bad)?,
            "mask" => frame.mask = parse_mask(value).ok_or_else(bad)?,
            "split" => {
                frame.split = value
                    .split(',')
                    .map(|cut| cut.parse().map_err(|_| bad()))
                    .collect::<Result<_, _>>()?;
            }
            other => return Err(format!("unknown frame field `{other}`")),
        }
    }

    if !has_opcode {
        return Err("a frame needs `op=`".to_owned());
    }
    Ok(frame)
}

fn parse_bit(text: &str) -> Option<bool> {
    match text {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

fn parse_mask(text: &str) -> Option<Mask> {
    match text {
        "auto" => Some(Mask::Auto),
        "none" => Some(Mask::None),
        key => {
            let value = u32::from_str_radix(key.strip_prefix("0x")?, 16).ok()?;
            Some(Mask::Key(value.to_be_bytes()))
        }
    }
}

fn parse_expect(case: &mut WsCase, text: &str) -> Result<(), String> {
    let (mut word, mut rest) = text.split_once(' ').unwrap_or((text, ""));
    let mut times = 1;
    if let Some(count) = word.strip_suffix('x').and_then(|n| n.parse().ok()) {
        times = count;
        (word, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    }

    let kind = match word {
        "text" => EventKind::Text,
        "binary" => EventKind::Binary,
        "pong" => EventKind::Pong,
        "close" => return parse_close(case, rest),
        other => return Err(format!("unknown expectation `{other}`")),
    };
    let expected = Expected {
        times,
        kind,
        payload: Expr::parse(rest)?,
    };
    match case.alternatives.last_mut() {
        Some(alternative) => alternative.expect.push(expected),
        None => case.expect.push(expected),
    }
    Ok(())
}

fn parse_close(case: &mut WsCase, text: &str) -> Result<(), String> {
    let mut words = text.split_whitespace();
    let codes = words.next().ok_or("`expect close` needs codes")?;

    for code in codes.split('|') {
        let code = match code {
            "empty" => None,
            number => Some(
                number
                    .parse()
                    .map_err(|_| format!("bad close code `{number}`"))?,
            ),
        };
        case.close.codes.push(code);
    }

    match (words.next(), words.next(), words.next()) {
        (None, _, _) => Ok(()),
        (Some("by-delivery"), Some(number), None) => {
            let number = number
                .parse()
                .map_err(|_| format!("bad delivery `{number}`"))?;
            case.close.by_delivery = Some(number);
            Ok(())
        }
        _ => Err(format!(
            "unexpected words after the close codes in `{text}`"
        )),
    }
}

impl fmt::Display for FrameSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match opcode_name(self.opcode) {
            Some(name) => write!(f, "frame op={name}")?,
            None => write!(f, "frame op={}", self.opcode)?,
        }
        if !self.fin {
            f.write_str(" fin=0")?;
        }
        if self.rsv != 0 {
            write!(f, " rsv={}", self.rsv)?;
        }
        match self.mask {
            Mask::Auto => {}
            Mask::None => f.write_str(" mask=none")?,
            Mask::Key(key) => write!(f, " mask=0x{:08x}", u32::from_be_bytes(key))?,
        }
        if !self.split.is_empty() {
            let cuts: Vec<String> = self.split.iter().map(usize::to_string).collect();
            write!(f, " split={}", cuts.join(","))?;
        }
        if self.times != 1 {
            write!(f, " times={}", self.times)?;
        }
        write!(f, " payload={}", self.payload)
    }
}

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expect ")?;
        if self.times != 1 {
            write!(f, "{}x ", self.times)?;
        }
        let kind = match self.kind {
            EventKind::Text => "text",
            EventKind::Binary => "binary",
            EventKind::Pong => "pong",
        };
        write!(f, "{kind} {}", self.payload)
    }
}

impl fmt::Display for CloseExpectation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let codes: Vec<String> = self
            .codes
            .iter()
            .map(|code| code.map_or("empty".to_owned(), |c| c.to_string()))
            .collect();
        write!(f, "expect close {}", codes.join("|"))?;
        if let Some(delivery) = self.by_delivery {
            write!(f, " by-delivery {delivery}")?;
        }
        Ok(())
    }
}

impl fmt::Display for WsCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "case {}", self.id)?;
        writeln!(f, "about {}", self.about)?;
        for note in &self.notes {
            writeln!(f, "note {note}")?;
        }
        if let Some(reason) = &self.unsupported {
            writeln!(f, "unsupported {reason}")?;
        }
        if let Some(reason) = &self.live_only {
            writeln!(f, "live-only {reason}")?;
        }

        match self.delivery {
            Delivery::Whole => {}
            Delivery::PerFrame => writeln!(f, "deliver per-frame")?,
            Delivery::Chunks(size) => writeln!(f, "deliver chunks {size}")?,
        }
        for item in &self.items {
            match item {
                Item::Frame(frame) => writeln!(f, "{frame}")?,
                Item::Pause => writeln!(f, "pause")?,
            }
        }

        for expected in &self.expect {
            writeln!(f, "{expected}")?;
        }
        for alternative in &self.alternatives {
            writeln!(f, "alternative {}", alternative.label)?;
            for expected in &alternative.expect {
                writeln!(f, "{expected}")?;
            }
        }
        if let Some(code) = self.then_close {
            writeln!(f, "then close {code}")?;
        }
        writeln!(f, "{}", self.close)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# a comment
case 6.4.1
about Invalid UTF-8 in the middle frame.
frame op=text fin=0 payload=hex(cebae1bdb9cf83cebcceb5)
pause
frame op=cont fin=0 payload=hex(f4908080)
pause
frame op=cont payload=\"edited\"
expect close 1007 by-delivery 2

case 2.10
about Ten pings.
deliver chunks 1
frame op=ping mask=0x01020304 times=10 payload=\"p\"
expect 10x pong \"p\"
alternative fewer pongs are fine here
expect 9x pong \"p\"
then close 1000
expect close 1000|empty
";

    #[test]
    fn cases_round_trip_through_text() {
        let cases = parse_cases(SAMPLE).unwrap();
        assert_eq!(cases.len(), 2);
        let again: String = cases.iter().map(|c| format!("{c}\n")).collect();
        assert_eq!(parse_cases(&again).unwrap(), cases);
        assert_eq!(cases[1].close.codes, vec![Some(1000), None]);
    }

    #[test]
    fn pauses_and_chunks_cut_deliveries() {
        let cases = parse_cases(SAMPLE).unwrap();
        let pieces = cases[0].deliveries();
        assert_eq!(pieces.len(), 3);
        assert_eq!(pieces[1].len(), 2 + 4 + 4);

        // Ten 7-byte pings cut into single bytes.
        assert_eq!(cases[1].deliveries().len(), 70);
    }

    #[test]
    fn split_cuts_a_frame_at_payload_offsets() {
        let mut frame = FrameSpec::new(1, Expr::text("abcdef"));
        frame.split = vec![2, 4];
        let case = WsCase {
            items: vec![Item::Frame(frame)],
            ..WsCase::default()
        };
        let lens: Vec<usize> = case.deliveries().iter().map(Vec::len).collect();
        assert_eq!(lens, vec![2 + 4 + 2, 2, 2]);
    }

    #[test]
    fn unknown_lines_are_errors_with_line_numbers() {
        let error = parse_cases("case 1\nframe op=99 payload=\"\"\n").unwrap_err();
        assert_eq!(error.line, 2);
        assert!(parse_cases("frame op=text payload=\"\"").is_err());
        assert!(parse_cases("case 1\nexpect close\n").is_err());
    }
}
