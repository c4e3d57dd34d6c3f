//! Line mode, for scripts and pipes: no screen, one line per event.
//!
//! Each line read from stdin is sent as one chat line (blank lines are
//! skipped, as the server would ignore them). Each server event is
//! written to stdout as one line, sanitised and flushed at once:
//!
//! ```text
//! welcome room=ROOM seq=SEQ users=COUNT you=NAME
//! [SEQ] <NAME> TEXT
//! [SEQ] * NAME joined
//! [SEQ] * NAME left
//! error: REASON
//! ```
//!
//! Lines are sent no faster than the protocol's default rate limit (see
//! the network thread), so a default server takes them all. Should the
//! server still answer `rate limited` (its limit is lower), the line is
//! lost: the error is printed as usual, and at the end the client says on
//! stderr how many lines were dropped and exits 1.
//!
//! Connection news (lost, reconnecting, rejoining, refused) goes to stderr,
//! prefixed `natter: `. Lines read while the client is away are held and
//! sent once it is back in. At the end of stdin the client sends what it
//! still holds, closes with 1000, waits briefly for the server's close and
//! exits 0; it exits 1 when the server refuses it for good, keeps holding
//! its dropped connection past the rejoin time, or cannot be reached, or
//! dropped lines over its rate limit.

use std::io::{self, BufRead, Write};
use std::sync::mpsc;
use std::thread;

use crate::event::ServerEvent;
use crate::net::{self, NetCommand, NetConfig, NetEvent};
use crate::sanitize::sanitize;

/// Failed attempts in a row after which line mode gives up.
const MAX_FAILURES: u32 = 5;

/// The reason of the error that replaces a line over the server's rate
/// limit (docs/PROTOCOL.md).
const RATE_LIMITED: &str = "rate limited";

/// Runs line mode until stdin ends or the connection fails for good;
/// returns the process exit code.
pub fn run(mut config: NetConfig, max_line_bytes: usize) -> i32 {
    config.max_failures = Some(MAX_FAILURES);
    let (events_tx, events) = mpsc::channel();
    let net = match net::spawn(config, events_tx, |e| e) {
        Ok(net) => net,
        Err(e) => {
            say!("natter: cannot start the network thread: {e}");
            return 1;
        }
    };

    // stdin is read on its own thread, as it blocks.
    let commands = net.commands();
    let reader = thread::Builder::new()
        .name("natter-stdin".into())
        .spawn(move || forward_stdin(&commands, max_line_bytes));
    if let Err(e) = reader {
        say!("natter: cannot start the input thread: {e}");
        net.send(NetCommand::Quit);
    }

    let stdout = io::stdout();
    let mut reader_gone = false;
    let mut dropped = 0;
    for event in events {
        let mut out = stdout.lock();
        match event {
            NetEvent::Server(event) => {
                if is_rate_limited(&event) {
                    dropped += 1;
                }
                let line = format_event(&event);
                let written = writeln!(out, "{line}").and_then(|()| out.flush());
                // Nobody reads our output any more: leave the room.
                if written.is_err() && !reader_gone {
                    reader_gone = true;
                    net.send(NetCommand::Quit);
                }
            }
            NetEvent::Finished { error } => {
                let (code, news) = ending(error, dropped);
                for line in news {
                    say!("natter: {line}");
                }
                return code;
            }
            other => {
                if let Some(news) = describe(&other) {
                    say!("natter: {news}");
                }
            }
        }
    }
    1
}

/// Sends each stdin line as a chat line, then asks to quit at its end.
///
/// Bytes that are not UTF-8 are replaced with U+FFFD rather than ending
/// the input.
fn forward_stdin(commands: &mpsc::Sender<NetCommand>, max_line_bytes: usize) {
    let mut stdin = io::stdin().lock();
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match stdin.read_until(b'\n', &mut raw) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                say!("natter: cannot read stdin: {e}");
                break;
            }
        }
        let text = String::from_utf8_lossy(&raw);
        let line = text.trim_end_matches(['\n', '\r']);

        // The server ignores blank lines; sending one would only delay the
        // end, waiting for an echo that never comes.
        if line.trim().is_empty() {
            continue;
        }
        if line.len() > max_line_bytes {
            let len = line.len();
            say!("natter: line of {len} bytes not sent (at most {max_line_bytes})");
            continue;
        }
        if commands.send(NetCommand::Send(line.to_owned())).is_err() {
            return;
        }
    }
    let _ = commands.send(NetCommand::Quit);
}

/// Formats a server event as its stdout line.
pub fn format_event(event: &ServerEvent) -> String {
    let line = match event {
        ServerEvent::Welcome {
            room_code,
            seq,
            you,
            users,
        } => format!(
            "welcome room={room_code} seq={seq} users={} you={}",
            users.len(),
            you.user_name
        ),
        ServerEvent::Join { seq, member, .. } => format!("[{seq}] * {} joined", member.user_name),
        ServerEvent::Leave { seq, member, .. } => format!("[{seq}] * {} left", member.user_name),
        ServerEvent::Message {
            seq, member, text, ..
        } => format!("[{seq}] <{}> {text}", member.user_name),
        ServerEvent::Error { reason } => format!("error: {reason}"),
    };
    sanitize(&line)
}

/// Says whether `event` tells that the server dropped one of our lines
/// over its rate limit.
fn is_rate_limited(event: &ServerEvent) -> bool {
    matches!(event, ServerEvent::Error { reason } if reason == RATE_LIMITED)
}

/// Returns the exit code and the stderr lines for the end of line mode:
/// `error` from the network thread, and `dropped` lines the server refused
/// over its rate limit.
fn ending(error: Option<String>, dropped: usize) -> (i32, Vec<String>) {
    let mut news: Vec<String> = error.into_iter().collect();
    match dropped {
        0 => {}
        1 => news.push("1 line dropped by the server's rate limit".to_owned()),
        n => news.push(format!("{n} lines dropped by the server's rate limit")),
    }
    let code = if news.is_empty() { 0 } else { 1 };
    (code, news)
}

/// Describes connection news for stderr.
fn describe(event: &NetEvent) -> Option<String> {
    match event {
        NetEvent::Lost { reason, retry_in } => Some(format!(
            "{reason}; reconnecting in {:.1}s",
            retry_in.as_secs_f64()
        )),
        NetEvent::Rejoining {
            reason,
            retry_in,
            gives_up_in,
        } => Some(format!(
            "refused (409): {reason}; the server still holds our dropped connection; \
             retrying in {:.1}s, giving up in {}s",
            retry_in.as_secs_f64(),
            gives_up_in.as_secs()
        )),
        NetEvent::Refused {
            status,
            reason,
            retry_in: Some(retry_in),
        } => Some(format!(
            "refused ({status}): {reason}; retrying in {:.1}s",
            retry_in.as_secs_f64()
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Member;
    use std::time::Duration;

    fn bo() -> Member {
        Member {
            user_name: "bo".into(),
            session_id: "bbbbbbbb".into(),
        }
    }

    #[test]
    fn events_format_as_stable_lines() {
        let cases = [
            (
                ServerEvent::Welcome {
                    room_code: "lobby".into(),
                    seq: 3,
                    you: bo(),
                    users: vec![bo()],
                },
                "welcome room=lobby seq=3 users=1 you=bo",
            ),
            (
                ServerEvent::Message {
                    seq: 4,
                    member: bo(),
                    text: "hi all".into(),
                    ts: 0,
                },
                "[4] <bo> hi all",
            ),
            (
                ServerEvent::Join {
                    seq: 5,
                    member: bo(),
                    ts: 0,
                },
                "[5] * bo joined",
            ),
            (
                ServerEvent::Leave {
                    seq: 6,
                    member: bo(),
                    ts: 0,
                },
                "[6] * bo left",
            ),
            (
                ServerEvent::Error {
                    reason: "rate limited".into(),
                },
                "error: rate limited",
            ),
        ];
        for (event, line) in cases {
            assert_eq!(format_event(&event), line);
        }
    }

    #[test]
    fn rate_limit_errors_are_counted_and_fail_the_run() {
        let error = |reason: &str| ServerEvent::Error {
            reason: reason.into(),
        };
        assert!(is_rate_limited(&error("rate limited")));
        assert!(!is_rate_limited(&error("something else")));
        let chat = ServerEvent::Message {
            seq: 1,
            member: bo(),
            text: "rate limited".into(),
            ts: 0,
        };
        assert!(!is_rate_limited(&chat));

        assert_eq!(ending(None, 0), (0, vec![]));
        assert_eq!(
            ending(None, 10),
            (
                1,
                vec!["10 lines dropped by the server's rate limit".to_owned()]
            )
        );
        assert_eq!(
            ending(None, 1),
            (
                1,
                vec!["1 line dropped by the server's rate limit".to_owned()]
            )
        );
        assert_eq!(
            ending(Some("refused (400): bad name".into()), 2),
            (
                1,
                vec![
                    "refused (400): bad name".to_owned(),
                    "2 lines dropped by the server's rate limit".to_owned()
                ]
            )
        );
        assert_eq!(ending(Some("lost".into()), 0), (1, vec!["lost".to_owned()]));
    }

    #[test]
    fn rejoining_is_told_with_both_countdowns() {
        let rejoining = NetEvent::Rejoining {
            reason: "session_id is already connected in this room".into(),
            retry_in: Duration::from_millis(1_500),
            gives_up_in: Duration::from_secs(90),
        };
        assert_eq!(
            describe(&rejoining).as_deref(),
            Some(
                "refused (409): session_id is already connected in this room; the server \
                 still holds our dropped connection; retrying in 1.5s, giving up in 90s"
            )
        );
    }

    #[test]
    fn event_lines_are_sanitised() {
        let event = ServerEvent::Message {
            seq: 1,
            member: bo(),
            text: "two\nlines\u{1b}[2J".into(),
            ts: 0,
        };
        let line = format_event(&event);
        assert!(!line.chars().any(char::is_control));
        assert_eq!(line, "[1] <bo> two\u{240a}lines\u{241b}[2J");
    }
}
