//! Command-line flags, and the name, room and session id they lead to.

use clap::Parser;
use natter_core::names::{InvalidName, RoomCode, SessionId, UserName};
use std::time::{SystemTime, UNIX_EPOCH};

/// The server used when `--server` is not given.
pub const DEFAULT_SERVER: &str = "ws://127.0.0.1:8080";

/// Flags of the `natter` binary.
#[derive(Debug, Parser)]
#[command(
    name = "natter",
    version,
    about = "Terminal client for natter chat rooms"
)]
pub struct Args {
    /// The server's WebSocket URL, ws:// or wss://; a path is the prefix the
    /// server is mounted under (ws://host/chat joins at /chat/joinRoom).
    #[arg(long, value_name = "URL", default_value = DEFAULT_SERVER)]
    pub server: String,

    /// The name to chat under (asked for when missing).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// The room code to join (asked for when missing).
    #[arg(long, value_name = "CODE")]
    pub room: Option<String>,

    /// A PEM file of CA certificates to trust for wss://, beside the public
    /// roots: for a server with a self-signed or private certificate.
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<std::path::PathBuf>,
}

/// Parses a user name, or returns the reason to show.
pub fn parse_name(text: &str) -> Result<UserName, InvalidName> {
    UserName::parse(text)
}

/// Parses a room code, surrounding white space ignored, or returns the
/// reason to show.
pub fn parse_room(text: &str) -> Result<RoomCode, InvalidName> {
    RoomCode::parse(text.trim())
}

/// Makes a fresh session id: the current Unix time in milliseconds in base
/// 36, a dash, and 12 random letters and digits.
pub fn new_session_id() -> SessionId {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let mut id = base36(millis);
    id.push('-');
    id.extend((0..12).map(|_| fastrand::alphanumeric()));

    // Letters, digits and one dash, 14 to 40 characters: always valid; the
    // fallback is only there to keep the type's promise without a panic.
    SessionId::parse(&id).unwrap_or_else(|_| fallback_session_id())
}

/// Returns a session id of random letters and digits only.
fn fallback_session_id() -> SessionId {
    loop {
        let id: String = (0..16).map(|_| fastrand::alphanumeric()).collect();
        if let Ok(id) = SessionId::parse(&id) {
            return id;
        }
    }
}

/// Writes `value` in base 36 with lowercase digits.
fn base36(mut value: u128) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(value % 36) as usize]);
        value /= 36;
        if value == 0 {
            break;
        }
    }
    out.reverse();
    out.into_iter().map(char::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_valid_and_distinct() {
        let a = new_session_id();
        let b = new_session_id();
        assert_ne!(a, b);
        assert!(a.as_str().len() >= 14);
        assert!(SessionId::parse(a.as_str()).is_ok());
    }

    #[test]
    fn base36_writes_digits() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36 * 36), "100");
    }

    #[test]
    fn flags_parse() {
        let args = Args::try_parse_from(["natter", "--name", "ana", "--room", "lobby"]);
        let args = args.unwrap();
        assert_eq!(args.server, DEFAULT_SERVER);
        assert_eq!(args.name.as_deref(), Some("ana"));
        assert!(Args::try_parse_from(["natter", "--bogus"]).is_err());
    }

    #[test]
    fn names_and_rooms_are_validated() {
        assert!(parse_name("  ana ").is_ok());
        assert!(parse_name("\u{1b}[31m").is_err());
        assert!(parse_room(" lobby ").is_ok());
        assert!(parse_room("no spaces").is_err());
    }
}
