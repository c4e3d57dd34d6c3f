//! Limits and timeouts shared by every driver, with the defaults of the
//! natter protocol (docs/PROTOCOL.md).

use std::fmt;
use std::time::Duration;

/// Every limit and timeout a natter server enforces.
///
/// `Default` gives the values the protocol documents; both servers build one
/// from their command line (the `cli` module, behind the `cli` feature).
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Largest accepted HTTP request head, in bytes (over it: 431).
    pub max_head_bytes: usize,
    /// Largest chat line a member may send, in bytes (over it: close 1009).
    pub max_chat_bytes: usize,
    /// Largest message `/echo` accepts, in bytes (over it: close 1009).
    pub max_echo_bytes: usize,
    /// Whether `/echo` is served at all.
    pub echo_enabled: bool,
    /// Time a peer has to finish its upgrade request.
    pub handshake_timeout: Duration,
    /// Silence after which the server pings a connection.
    pub idle_ping_after: Duration,
    /// Further silence after that ping before the connection is closed.
    pub pong_timeout: Duration,
    /// Time to wait for the peer's close frame once ours is sent.
    pub close_timeout: Duration,
    /// Bytes a member's outgoing queue may hold before it is disconnected
    /// with 1008.
    pub max_queue_bytes: usize,
    /// The chat rate limit; `None` switches it off.
    pub rate_limit: Option<RateLimit>,
    /// Most connections held at once, handshakes included (over it: 503).
    pub max_connections: usize,
    /// Origins allowed to connect; empty means any origin (and none).
    pub allowed_origins: Vec<String>,
    /// Time members get to answer the 1001 close on shutdown.
    pub shutdown_grace: Duration,
}

/// A token bucket's shape: `burst` lines at once, refilled at
/// `per_second` lines a second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Lines a member may send back to back after a quiet spell.
    pub burst: u32,
    /// Lines a second a member may keep sending.
    pub per_second: f64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            burst: 20,
            per_second: 10.0,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_head_bytes: 8 * 1024,
            max_chat_bytes: 4096,
            max_echo_bytes: 16 * 1024 * 1024,
            echo_enabled: false,
            handshake_timeout: Duration::from_secs(10),
            idle_ping_after: Duration::from_secs(30),
            pong_timeout: Duration::from_secs(30),
            close_timeout: Duration::from_secs(5),
            max_queue_bytes: 1024 * 1024,
            rate_limit: Some(RateLimit::default()),
            max_connections: 10_000,
            allowed_origins: Vec::new(),
            shutdown_grace: Duration::from_secs(3),
        }
    }
}

/// One line naming every limit in force, for a server's start-up log.
impl fmt::Display for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} connections, head {} B, chat line {} B, echo {} up to {} B, queue {} B, ",
            self.max_connections,
            self.max_head_bytes,
            self.max_chat_bytes,
            if self.echo_enabled { "on" } else { "off" },
            self.max_echo_bytes,
            self.max_queue_bytes,
        )?;
        match self.rate_limit {
            Some(limit) => write!(
                f,
                "rate {} lines then {}/s, ",
                limit.burst, limit.per_second
            )?,
            None => f.write_str("rate off, ")?,
        }
        write!(
            f,
            "handshake {:?}, ping after {:?}, pong timeout {:?}, close timeout {:?}, \
             shutdown grace {:?}",
            self.handshake_timeout,
            self.idle_ping_after,
            self.pong_timeout,
            self.close_timeout,
            self.shutdown_grace,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limits_line_names_every_limit() {
        let line = ServerConfig::default().to_string();
        assert!(line.starts_with("10000 connections, head 8192 B, chat line 4096 B"));
        assert!(line.contains("rate 20 lines then 10/s"));
        assert!(line.ends_with("close timeout 5s, shutdown grace 3s"));
        assert!(!line.contains('\n'));
    }
}
