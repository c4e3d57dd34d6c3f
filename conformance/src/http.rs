//! HTTP vectors (`vectors/http/*.http`): a raw request head, the response it
//! must get, replayed through natter-core's `ServerHandshake` or a live
//! server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use natter_core::config::ServerConfig;
use natter_core::handshake::{
    health_response, ok_response, Progress, Refusal, Request, ServerHandshake, METRICS_CONTENT_TYPE,
};

use crate::expr::Expr;
use crate::vector::{parse_case_blocks, VectorError};

/// One HTTP case.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpCase {
    /// The case's id, such as `http.post`.
    pub id: String,
    /// What it checks, in a sentence.
    pub about: String,
    /// Remarks.
    pub notes: Vec<String>,
    /// Why the case cannot apply, if it cannot.
    pub unsupported: Option<String>,
    /// Server settings the case needs, as `name=value`.
    pub config: Vec<(String, String)>,
    /// Connections the harness opens to `/echo` and keeps open while the
    /// request is answered, to bring the server to its connection limit.
    pub hold: usize,
    /// The request bytes.
    pub request: Vec<u8>,
    /// The status the response must have.
    pub status: u16,
    /// Headers the response must carry, name and exact value.
    pub headers: Vec<(String, String)>,
    /// The exact body, when the case names one.
    pub body: Option<String>,
}

impl HttpCase {
    /// Returns the server configuration the case runs under.
    pub fn server_config(&self) -> ServerConfig {
        let mut config = ServerConfig {
            echo_enabled: true,
            ..ServerConfig::default()
        };
        for (name, value) in &self.config {
            match name.as_str() {
                "echo" => config.echo_enabled = value != "off",
                "allowed-origin" => config.allowed_origins.push(value.clone()),
                "max-connections" => {
                    config.max_connections = value.parse().unwrap_or(config.max_connections);
                }
                _ => {}
            }
        }
        config
    }

    /// Returns the flags a server needs for this case, besides `--echo`.
    pub fn server_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if !self.config.iter().any(|(n, v)| n == "echo" && v == "off") {
            flags.push("--echo".to_owned());
        }
        for (name, value) in &self.config {
            if matches!(name.as_str(), "allowed-origin" | "max-connections") {
                flags.push(format!("--{name}"));
                flags.push(value.clone());
            }
        }
        flags
    }
}

/// Parses every case of an HTTP vector file.
///
/// # Errors
///
/// Fails at the first line that is not part of the format, naming it.
pub fn parse_http_cases(text: &str) -> Result<Vec<HttpCase>, VectorError> {
    let new_case = |id: &str| HttpCase {
        id: id.to_owned(),
        ..HttpCase::default()
    };
    parse_case_blocks(text, new_case, parse_http_line)
}

fn parse_http_line(case: &mut HttpCase, line: &str) -> Result<(), String> {
    if let Some(expr) = line.strip_prefix(">+ ") {
        case.request.extend(Expr::parse(expr)?.eval());
        case.request.extend_from_slice(b"\r\n");
        return Ok(());
    }
    if let Some(rest) = line.strip_prefix('>') {
        case.request
            .extend_from_slice(rest.strip_prefix(' ').unwrap_or(rest).as_bytes());
        case.request.extend_from_slice(b"\r\n");
        return Ok(());
    }

    let (keyword, rest) = line.split_once(' ').unwrap_or((line, ""));
    match keyword {
        "about" => case.about = rest.to_owned(),
        "note" => case.notes.push(rest.to_owned()),
        "unsupported" => case.unsupported = Some(rest.to_owned()),
        "hold" => {
            case.hold = rest
                .parse()
                .map_err(|_| format!("bad hold count `{rest}`"))?
        }
        "config" => {
            let (name, value) = rest.split_once('=').ok_or("config needs name=value")?;
            case.config.push((name.to_owned(), value.to_owned()));
        }
        "expect" => parse_http_expect(case, rest)?,
        other => return Err(format!("unknown keyword `{other}`")),
    }
    Ok(())
}

fn parse_http_expect(case: &mut HttpCase, text: &str) -> Result<(), String> {
    let (what, rest) = text.split_once(' ').unwrap_or((text, ""));
    match what {
        "status" => case.status = rest.parse().map_err(|_| format!("bad status `{rest}`"))?,
        "header" => {
            let (name, value) = rest.split_once(':').ok_or("a header needs `Name: value`")?;
            case.headers
                .push((name.trim().to_owned(), value.trim().to_owned()));
        }
        "body" => case.body = Some(rest.to_owned()),
        other => return Err(format!("unknown expectation `{other}`")),
    }
    Ok(())
}

/// A response as read back.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The header fields, in order.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// Parses a complete response; `None` when it is not one.
    pub fn parse(bytes: &[u8]) -> Option<Response> {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&bytes[..end]).ok()?;
        let mut lines = head.split("\r\n");
        let status = lines
            .next()?
            .strip_prefix("HTTP/1.1 ")?
            .get(..3)?
            .parse()
            .ok()?;
        let headers = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
            .collect();
        Some(Response {
            status,
            headers,
            body: bytes[end + 4..].to_vec(),
        })
    }

    /// Returns the value of the header `name`, ignoring case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Checks a response against the case; every difference is one failure.
///
/// # Errors
///
/// Returns the failures, each saying what was expected and what was seen.
pub fn judge_http(case: &HttpCase, response: &Response) -> Result<(), Vec<String>> {
    let mut failures = Vec::new();
    if response.status != case.status {
        failures.push(format!(
            "expected status {}, saw {}",
            case.status, response.status
        ));
    }
    for (name, value) in &case.headers {
        match response.header(name) {
            Some(seen) if seen == value => {}
            Some(seen) => failures.push(format!("expected {name}: {value}, saw {name}: {seen}")),
            None => failures.push(format!("expected {name}: {value}, saw no {name}")),
        }
    }
    if let Some(body) = &case.body {
        if response.body != body.as_bytes() {
            let seen = String::from_utf8_lossy(&response.body);
            failures.push(format!("expected body {body:?}, saw {seen:?}"));
        }
    }

    if response.status != 101 {
        let length = response
            .header("Content-Length")
            .and_then(|v| v.parse::<usize>().ok());
        if length != Some(response.body.len()) {
            failures.push(format!(
                "Content-Length {length:?} does not match the {}-byte body",
                response.body.len()
            ));
        }
    }
    if response.status >= 400 {
        let body = String::from_utf8_lossy(&response.body);
        if body.trim().is_empty() || body.trim_end_matches('\n').contains('\n') {
            failures.push(format!("expected a one-line reason, saw {body:?}"));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}

/// Runs the request through `ServerHandshake`, whole and then one byte at a
/// time, and returns the response a server would write.
///
/// A case that holds as many connections as the server allows gets the
/// core's [`Refusal::server_busy`], the answer both servers send then:
/// only the server's count of open connections decides it.
///
/// # Errors
///
/// Fails when the handshake wants more bytes after the whole head, or when
/// the two ways of feeding it disagree.
pub fn run_core(case: &HttpCase) -> Result<Response, String> {
    let config = case.server_config();
    let whole = decide(&config, [case.request.as_slice()].into_iter())?;
    let bytewise = decide(&config, case.request.chunks(1))?;
    if whole != bytewise {
        return Err("the request fed byte by byte got another answer than whole".to_owned());
    }

    if case.hold >= config.max_connections {
        let busy = Refusal::server_busy().to_bytes();
        return Response::parse(&busy).ok_or_else(|| "the 503 does not parse".to_owned());
    }
    Response::parse(&whole).ok_or_else(|| "the core's response does not parse".to_owned())
}

fn decide<'a>(
    config: &ServerConfig,
    pieces: impl Iterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, String> {
    let mut handshake = ServerHandshake::new(config, Instant::now());
    for piece in pieces {
        if let Progress::Done { request, .. } = handshake.handle_input(piece) {
            return Ok(match request {
                Request::Join { upgrade, .. } | Request::Echo { upgrade } => {
                    upgrade.response_bytes()
                }
                Request::Health => health_response(),
                Request::Metrics => ok_response(METRICS_CONTENT_TYPE, b""),
                Request::Refuse(refusal) => refusal.to_bytes(),
            });
        }
    }
    Err("the handshake still wants more bytes after the whole request".to_owned())
}

/// Sends the request to a live server and reads its response: to the end
/// of the head for a 101, to the end of the stream otherwise.
///
/// # Errors
///
/// Fails on a transport error, a timeout, or a response that does not parse.
pub fn run_live(addr: SocketAddr, case: &HttpCase, timeout: Duration) -> Result<Response, String> {
    // The held connections stay open until the response is read.
    let _held = (0..case.hold)
        .map(|_| hold_echo(addr, timeout))
        .collect::<Result<Vec<_>, _>>()?;

    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    // A server may answer (431) before the whole request is written.
    let _ = stream.write_all(&case.request);

    let deadline = Instant::now() + timeout;
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(response) = Response::parse(&bytes) {
            let complete = match response.header("Content-Length") {
                Some(length) => length.parse().ok() == Some(response.body.len()),
                None => response.status == 101,
            };
            if complete {
                return Ok(response);
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no complete response within {} s",
                timeout.as_secs()
            ));
        }
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buffer[..n]),
            Err(error) if bytes.is_empty() => return Err(error.to_string()),
            Err(_) => break,
        }
    }
    Response::parse(&bytes).ok_or_else(|| {
        let text = String::from_utf8_lossy(&bytes);
        format!(
            "no HTTP response, saw {:?}",
            text.chars().take(80).collect::<String>()
        )
    })
}

/// Opens an `/echo` connection and reads its 101, so that the server
/// counts it before the case's own request arrives.
fn hold_echo(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    let failed = |e: std::io::Error| format!("cannot hold a connection open: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(failed)?;
    stream.set_read_timeout(Some(timeout)).map_err(failed)?;
    let upgrade = "GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
                   Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                   Sec-WebSocket-Version: 13\r\n\r\n";
    stream.write_all(upgrade.as_bytes()).map_err(failed)?;

    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => return Err("a held connection was closed before its 101".to_owned()),
            Err(error) => return Err(failed(error)),
        }
    }
    if head.starts_with(b"HTTP/1.1 101") {
        Ok(stream)
    } else {
        Err("a held connection was not upgraded".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_expectations_parse() {
        let text = "case a\nabout A.\nconfig echo=off\n> GET / HTTP/1.1\n>+ \"X: \" + \
                    repeat(\"a\", 3)\n>\nexpect status 404\nexpect header Allow: GET\n";
        let cases = parse_http_cases(text).unwrap();
        assert_eq!(cases[0].request, b"GET / HTTP/1.1\r\nX: aaa\r\n\r\n");
        assert_eq!(cases[0].status, 404);
        assert_eq!(
            cases[0].headers,
            vec![("Allow".to_owned(), "GET".to_owned())]
        );
        assert!(!cases[0].server_config().echo_enabled);
    }

    #[test]
    fn responses_are_checked_for_length_and_one_line_reasons() {
        let case = HttpCase {
            status: 400,
            ..HttpCase::default()
        };
        let good = Response::parse(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 4\r\n\r\nbad\n");
        assert!(judge_http(&case, &good.unwrap()).is_ok());
        let bad = Response::parse(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 9\r\n\r\nbad\n");
        assert!(judge_http(&case, &bad.unwrap()).is_err());
    }
}
