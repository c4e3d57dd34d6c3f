//! Payload expressions: how the vector files write bytes without holding them.
//!
//! An expression is one or more terms joined by ` + `:
//! - `"text"`: the UTF-8 bytes of the text; `\"` and `\\` escape, nothing
//!   else does, so any other byte must be written as hex;
//! - `hex(ce ba e1)`: bytes in hex, spaces allowed between pairs;
//! - `0xfe`: one byte;
//! - `u16(1000)`: two bytes, big-endian (a close code);
//! - `repeat(TERM, N)`: `TERM` (any term but another `repeat`) N times.
//!
//! `repeat("*", 16777216)` is how a 16 MiB payload stays a short line.

use std::fmt;

/// One piece of an expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// Text written between quotes.
    Text(String),
    /// Raw bytes written in hex (a single byte is written `0xNN`).
    Hex(Vec<u8>),
    /// A big-endian 16-bit number, as close codes travel.
    U16(u16),
    /// A term repeated a number of times.
    Repeat(Box<Term>, usize),
}

/// A payload expression: the concatenation of its terms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expr {
    /// The terms, in order.
    pub terms: Vec<Term>,
}

/// Why an expression could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError(pub String);

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad payload expression: {}", self.0)
    }
}

impl std::error::Error for ExprError {}

impl Term {
    /// Returns the number of bytes the term stands for.
    pub fn len(&self) -> usize {
        match self {
            Term::Text(text) => text.len(),
            Term::Hex(bytes) => bytes.len(),
            Term::U16(_) => 2,
            Term::Repeat(term, count) => term.len().saturating_mul(*count),
        }
    }

    /// Tells whether the term stands for no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the term's bytes to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Term::Text(text) => out.extend_from_slice(text.as_bytes()),
            Term::Hex(bytes) => out.extend_from_slice(bytes),
            Term::U16(value) => out.extend_from_slice(&value.to_be_bytes()),
            Term::Repeat(term, count) => {
                let mut unit = Vec::new();
                term.write_to(&mut unit);
                out.reserve(unit.len().saturating_mul(*count));
                for _ in 0..*count {
                    out.extend_from_slice(&unit);
                }
            }
        }
    }
}

impl Expr {
    /// Returns the expression for a text.
    pub fn text(text: &str) -> Expr {
        Expr {
            terms: vec![Term::Text(text.to_owned())],
        }
    }

    /// Returns the expression for raw bytes.
    pub fn hex(bytes: &[u8]) -> Expr {
        Expr {
            terms: vec![Term::Hex(bytes.to_vec())],
        }
    }

    /// Returns the expression for a term repeated `count` times.
    pub fn repeat(term: Term, count: usize) -> Expr {
        Expr {
            terms: vec![Term::Repeat(Box::new(term), count)],
        }
    }

    /// Returns the expression for the bytes `bytes`, as text when they are
    /// printable UTF-8 and as hex otherwise.
    pub fn bytes(bytes: &[u8]) -> Expr {
        match std::str::from_utf8(bytes) {
            Ok(text) if text.chars().all(|c| !c.is_control()) => Expr::text(text),
            _ => Expr::hex(bytes),
        }
    }

    /// Returns this expression followed by `other`.
    pub fn then(mut self, other: Expr) -> Expr {
        self.terms.extend(other.terms);
        self
    }

    /// Returns the number of bytes the expression stands for.
    pub fn len(&self) -> usize {
        self.terms.iter().map(Term::len).sum()
    }

    /// Tells whether the expression stands for no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns the bytes the expression stands for.
    pub fn eval(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        for term in &self.terms {
            term.write_to(&mut out);
        }
        out
    }

    /// Reads an expression from its text form.
    ///
    /// # Errors
    ///
    /// Fails on anything but terms joined by `+`, with the reason.
    pub fn parse(text: &str) -> Result<Expr, ExprError> {
        let mut parser = Parser { rest: text.trim() };
        let mut terms = vec![parser.term()?];

        loop {
            parser.skip_spaces();
            if parser.rest.is_empty() {
                return Ok(Expr { terms });
            }
            parser.expect("+")?;
            terms.push(parser.term()?);
        }
    }
}

/// A cursor over the text of an expression.
struct Parser<'a> {
    rest: &'a str,
}

impl Parser<'_> {
    fn skip_spaces(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn expect(&mut self, token: &str) -> Result<(), ExprError> {
        self.skip_spaces();
        match self.rest.strip_prefix(token) {
            Some(rest) => {
                self.rest = rest;
                Ok(())
            }
            None => Err(ExprError(format!("expected `{token}` at `{}`", self.rest))),
        }
    }

    /// Reads everything up to the next `)` and moves past it.
    fn until_close(&mut self) -> Result<&str, ExprError> {
        let end = self
            .rest
            .find(')')
            .ok_or_else(|| ExprError("missing `)`".to_owned()))?;
        let inside = &self.rest[..end];
        self.rest = &self.rest[end + 1..];
        Ok(inside.trim())
    }

    fn term(&mut self) -> Result<Term, ExprError> {
        self.skip_spaces();

        if self.rest.starts_with('"') {
            return self.quoted().map(Term::Text);
        }
        if let Some(rest) = self.rest.strip_prefix("hex(") {
            self.rest = rest;
            return parse_hex(self.until_close()?).map(Term::Hex);
        }
        if let Some(rest) = self.rest.strip_prefix("u16(") {
            self.rest = rest;
            let inside = self.until_close()?;
            let value = inside
                .parse()
                .map_err(|_| ExprError(format!("`{inside}` is not a 16-bit number")))?;
            return Ok(Term::U16(value));
        }
        if let Some(rest) = self.rest.strip_prefix("repeat(") {
            self.rest = rest;
            return self.repeat();
        }
        if let Some(rest) = self.rest.strip_prefix("0x") {
            let digits = rest.get(..2).unwrap_or(rest);
            self.rest = rest.get(2..).unwrap_or("");
            return parse_hex(digits).map(Term::Hex);
        }
        Err(ExprError(format!("unknown term at `{}`", self.rest)))
    }

    fn repeat(&mut self) -> Result<Term, ExprError> {
        let unit = self.term()?;
        if matches!(unit, Term::Repeat(..)) {
            return Err(ExprError("repeat inside repeat".to_owned()));
        }
        self.expect(",")?;

        let inside = self.until_close()?;
        let count = inside
            .replace('_', "")
            .parse()
            .map_err(|_| ExprError(format!("`{inside}` is not a count")))?;
        Ok(Term::Repeat(Box::new(unit), count))
    }

    fn quoted(&mut self) -> Result<String, ExprError> {
        let mut text = String::new();
        let mut chars = self.rest.char_indices().skip(1);

        while let Some((at, c)) = chars.next() {
            match c {
                '"' => {
                    self.rest = &self.rest[at + 1..];
                    return Ok(text);
                }
                '\\' => match chars.next() {
                    Some((_, escaped @ ('"' | '\\'))) => text.push(escaped),
                    _ => return Err(ExprError("only \\\" and \\\\ may be escaped".to_owned())),
                },
                other => text.push(other),
            }
        }
        Err(ExprError("unterminated text".to_owned()))
    }
}

/// Reads hex digit pairs, ignoring spaces.
fn parse_hex(text: &str) -> Result<Vec<u8>, ExprError> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.len() % 2 != 0 {
        return Err(ExprError(format!("odd number of hex digits in `{text}`")));
    }

    digits
        .chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).unwrap_or("zz");
            u8::from_str_radix(pair, 16).map_err(|_| ExprError(format!("`{pair}` is not hex")))
        })
        .collect()
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Term::Text(text) => {
                f.write_str("\"")?;
                for c in text.chars() {
                    if c == '"' || c == '\\' {
                        f.write_str("\\")?;
                    }
                    write!(f, "{c}")?;
                }
                f.write_str("\"")
            }
            Term::Hex(bytes) if bytes.len() == 1 => write!(f, "0x{:02x}", bytes[0]),
            Term::Hex(bytes) => {
                f.write_str("hex(")?;
                for byte in bytes {
                    write!(f, "{byte:02x}")?;
                }
                f.write_str(")")
            }
            Term::U16(value) => write!(f, "u16({value})"),
            Term::Repeat(term, count) => write!(f, "repeat({term}, {count})"),
        }
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.terms.is_empty() {
            return f.write_str("\"\"");
        }

        for (index, term) in self.terms.iter().enumerate() {
            if index > 0 {
                f.write_str(" + ")?;
            }
            write!(f, "{term}")?;
        }
        Ok(())
    }
}

/// Describes a payload for a report: the bytes themselves when short, their
/// length and a digest when long.
pub fn describe(bytes: &[u8]) -> String {
    const SHOWN: usize = 64;

    if bytes.len() <= SHOWN {
        return Expr::bytes(bytes).to_string();
    }
    format!("{} bytes, fnv1a64 {:016x}", bytes.len(), fnv1a64(bytes))
}

/// Returns the 64-bit FNV-1a digest of `bytes`: enough to tell payloads apart
/// in a report, not a security measure.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions_round_trip_through_text() {
        let samples = [
            "\"\"",
            "\"Hello, world!\"",
            "hex(cebae1bdb9cf83cebcceb5) + \"edited\"",
            "u16(1000) + \"a \\\"quoted\\\" \\\\ reason\"",
            "repeat(0xfe, 65536)",
            "repeat(\"BAsd7&jh23\", 26624)",
        ];
        for sample in samples {
            let expr = Expr::parse(sample).unwrap();
            assert_eq!(expr.to_string(), sample);
        }
    }

    #[test]
    fn repeat_evaluates_to_its_length() {
        let expr = Expr::parse("repeat(\"ab\", 3) + 0x00 + u16(1002)").unwrap();
        assert_eq!(expr.eval(), b"ababab\x00\x03\xea");
        assert_eq!(expr.len(), 9);
    }

    #[test]
    fn malformed_expressions_are_errors() {
        for bad in [
            "",
            "hex(abc)",
            "repeat(\"a\"",
            "\"open",
            "u16(70000)",
            "1 + 2",
        ] {
            assert!(Expr::parse(bad).is_err(), "{bad} parsed");
        }
    }
}
