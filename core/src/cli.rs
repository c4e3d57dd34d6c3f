//! The command line both servers share, so `natter-smol` and `natter-std`
//! take exactly the same flags with the same defaults.

use std::net::SocketAddr;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser};

use crate::config::{RateLimit, ServerConfig};

/// Flags of a natter server; see `--help` for each one.
#[derive(Debug, Clone, Parser)]
#[command(version, about = "natter chat server: ephemeral rooms over WebSocket")]
pub struct ServerArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: SocketAddr,

    /// Serve GET /echo, the conformance endpoint that sends every message back.
    #[arg(long)]
    pub echo: bool,

    /// Largest HTTP request head accepted, in bytes; a larger one gets 431.
    #[arg(long, default_value_t = 8192, value_name = "BYTES", value_parser = parse_head_limit)]
    pub max_head_bytes: usize,

    /// Largest chat line accepted, in bytes; a larger one closes with 1009.
    #[arg(long, default_value_t = 4096, value_name = "BYTES", value_parser = parse_positive)]
    pub max_message_bytes: usize,

    /// Largest /echo message accepted, in bytes; a larger one closes with 1009.
    #[arg(
        long,
        default_value_t = 16 * 1024 * 1024,
        value_name = "BYTES",
        value_parser = parse_positive
    )]
    pub max_echo_bytes: usize,

    /// Time a client has to finish its upgrade request (e.g. 10s, 500ms).
    #[arg(long, default_value = "10s", value_parser = parse_duration, value_name = "TIME")]
    pub handshake_timeout: Duration,

    /// Silence after which the server pings a connection.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "TIME")]
    pub ping_after: Duration,

    /// Further silence after that ping before the connection is closed.
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "TIME")]
    pub pong_timeout: Duration,

    /// Time to wait for a peer's close frame after sending ours.
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "TIME")]
    pub close_timeout: Duration,

    /// Bytes a member's outgoing queue may hold; past it the member is
    /// disconnected with 1008 so the room never waits for it.
    #[arg(
        long,
        default_value_t = 1024 * 1024,
        value_name = "BYTES",
        value_parser = parse_queue_limit
    )]
    pub max_queue_bytes: usize,

    /// Chat lines a member may send back to back.
    #[arg(
        long,
        default_value_t = 20,
        value_name = "LINES",
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub rate_burst: u32,

    /// Chat lines a second a member may keep sending.
    #[arg(long, default_value_t = 10.0, value_name = "LINES", value_parser = parse_rate)]
    pub rate_per_second: f64,

    /// Switch the chat rate limit off (for benchmarks).
    #[arg(long)]
    pub no_rate_limit: bool,

    /// Most connections held at once, handshakes included; more get 503.
    #[arg(long, default_value_t = 10_000, value_name = "N", value_parser = parse_positive)]
    pub max_connections: usize,

    /// An Origin allowed to connect (repeatable); without this flag every origin is allowed.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    pub allowed_origins: Vec<String>,

    /// Time members get to answer the 1001 close on shutdown.
    #[arg(long, default_value = "3s", value_parser = parse_duration, value_name = "TIME")]
    pub shutdown_grace: Duration,

    /// Log level (error, warn, info, debug, trace); RUST_LOG overrides it.
    #[arg(
        long,
        default_value = "info",
        value_name = "LEVEL",
        value_parser = ["off", "error", "warn", "info", "debug", "trace"],
        ignore_case = true
    )]
    pub log_level: String,
}

/// Room a chat line needs in a member's queue beyond its escaped text: the
/// JSON around it (names, ids, seq, ts) and the frame header.
const EVENT_OVERHEAD_BYTES: usize = 1024;

/// Most bytes one byte of a chat line can take in a `message` event: a
/// control character is written as a six-byte `\u00XX` escape.
const JSON_ESCAPE_FACTOR: usize = 6;

impl ServerArgs {
    /// Parses the command line of the server binary `name` (which `--help`
    /// and `--version` then show), checking the flags against each other.
    ///
    /// Exits with a message and status 2 on a bad flag, and with status 0
    /// after `--help` or `--version`, as clap does.
    pub fn parse_for(name: &'static str) -> ServerArgs {
        let mut command = ServerArgs::command().name(name).bin_name(name);
        let parsed = ServerArgs::from_arg_matches(&command.get_matches_mut())
            .and_then(|args| args.check().map(|()| args));
        parsed.unwrap_or_else(|error| error.format(&mut command).exit())
    }

    /// Checks flags that are only wrong together.
    ///
    /// # Errors
    ///
    /// A clap error naming the flags when the event carrying a chat line of
    /// the largest size, escaped in the worst way, could not fit in a
    /// member's queue: one such line would drop every member of its room.
    pub fn check(&self) -> Result<(), clap::Error> {
        let needed = self
            .max_message_bytes
            .saturating_mul(JSON_ESCAPE_FACTOR)
            .saturating_add(EVENT_OVERHEAD_BYTES);
        if self.max_queue_bytes < needed {
            let message = format!(
                "--max-queue-bytes {} cannot hold a chat line of --max-message-bytes {}: \
                 it needs at least {needed}",
                self.max_queue_bytes, self.max_message_bytes
            );
            return Err(clap::Error::raw(ErrorKind::ArgumentConflict, message));
        }
        Ok(())
    }

    /// Returns the limits these flags describe.
    pub fn config(&self) -> ServerConfig {
        ServerConfig {
            max_head_bytes: self.max_head_bytes,
            max_chat_bytes: self.max_message_bytes,
            max_echo_bytes: self.max_echo_bytes,
            echo_enabled: self.echo,
            handshake_timeout: self.handshake_timeout,
            idle_ping_after: self.ping_after,
            pong_timeout: self.pong_timeout,
            close_timeout: self.close_timeout,
            max_queue_bytes: self.max_queue_bytes,
            rate_limit: (!self.no_rate_limit).then_some(RateLimit {
                burst: self.rate_burst,
                per_second: self.rate_per_second,
            }),
            max_connections: self.max_connections,
            allowed_origins: self.allowed_origins.clone(),
            shutdown_grace: self.shutdown_grace,
        }
    }
}

/// Parses a duration such as `10s`, `500ms`, `2m` or a bare number of seconds.
///
/// # Errors
///
/// A message naming the accepted forms when `text` is none of them, or when
/// the value is zero (every natter timeout must be able to fire).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, scale_ms) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1_000.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        (text, 1_000.0)
    };

    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a duration (try 10s, 500ms or 2m)"))?;
    let millis = value * scale_ms;
    if !millis.is_finite() || !(1.0..=1e12).contains(&millis) {
        return Err(format!("'{text}' is out of range (1ms to about 30 years)"));
    }
    Ok(Duration::from_millis(millis as u64))
}

/// Parses a count or size that must be at least 1.
fn parse_positive(text: &str) -> Result<usize, String> {
    parse_at_least(text, 1)
}

/// Parses the head limit: at least 256 bytes, the size of a real upgrade
/// request with its required headers.
fn parse_head_limit(text: &str) -> Result<usize, String> {
    parse_at_least(text, 256)
}

/// Parses the queue bound: at least 4096 bytes, so a welcome to a small room
/// still fits.
fn parse_queue_limit(text: &str) -> Result<usize, String> {
    parse_at_least(text, 4096)
}

fn parse_at_least(text: &str, min: usize) -> Result<usize, String> {
    let value: usize = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a whole number"))?;
    if value < min {
        return Err(format!("'{text}' is too small; the least allowed is {min}"));
    }
    Ok(value)
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("'{text}' is not a number"))?;
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(format!(
            "'{text}' must be a positive number of lines a second"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_form() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn bad_durations_are_refused() {
        for bad in ["", "abc", "0", "-1s", "nan", "inf", "1e300"] {
            assert!(parse_duration(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn defaults_match_the_protocol() {
        let args = ServerArgs::try_parse_from(["natter"]).expect("no flags parse");
        assert_eq!(args.config(), ServerConfig::default());
    }

    #[test]
    fn bad_flag_is_an_error() {
        for bad in [
            &["--max-connections", "x"][..],
            &["--bogus"],
            &["--max-connections", "0"],
            &["--max-connections", "-1"],
            &["--max-head-bytes", "0"],
            &["--max-message-bytes", "0"],
            &["--max-queue-bytes", "10"],
            &["--rate-burst", "0"],
            &["--log-level", "loud"],
            &["--listen", "nonsense"],
        ] {
            let args = std::iter::once("natter").chain(bad.iter().copied());
            assert!(
                ServerArgs::try_parse_from(args).is_err(),
                "{bad:?} was accepted"
            );
        }
        let upper = ServerArgs::try_parse_from(["natter", "--log-level", "DEBUG"]);
        assert!(upper.is_ok());
    }

    #[test]
    fn a_queue_too_small_for_the_largest_line_is_refused() {
        let args = [
            "natter",
            "--max-message-bytes",
            "20000",
            "--max-queue-bytes",
            "4096",
        ];
        let parsed = ServerArgs::try_parse_from(args).expect("each flag is valid alone");
        assert!(parsed.check().is_err());
        let defaults = ServerArgs::try_parse_from(["natter"]).expect("no flags parse");
        assert!(defaults.check().is_ok());
    }

    #[test]
    fn the_queue_must_hold_a_line_of_control_characters_escaped() {
        let with_queue = |queue: &str| {
            let args = [
                "natter",
                "--max-message-bytes",
                "4096",
                "--max-queue-bytes",
                queue,
            ];
            ServerArgs::try_parse_from(args).expect("each flag is valid alone")
        };
        assert!(
            with_queue("24576").check().is_err(),
            "6 x 4096 leaves no room"
        );
        assert!(with_queue("25600").check().is_ok());
    }
}
