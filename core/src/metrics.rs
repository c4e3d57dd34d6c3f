//! Server-wide counters and gauges, and their Prometheus text rendering.
//!
//! One [`Metrics`] lives in an `Arc` shared by every task or thread. Each
//! value is a single atomic updated with `Relaxed` ordering: the numbers are
//! for dashboards, and no other memory depends on them.
//!
//! Who updates what:
//! - a [`Room`](crate::room::Room) given the handle at construction keeps
//!   `rooms`, `members`, `chat_messages`, `deliveries` and `rate_limited`
//!   itself, so no driver can forget them;
//! - the drivers own the rest: connections accepted and open, bytes in and
//!   out, refusals by status, slow-consumer disconnects and echo messages.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// The HTTP statuses counted on their own; any other refusal counts as
/// `"other"`.
pub const REFUSAL_STATUSES: [u16; 8] = [400, 403, 404, 405, 409, 426, 431, 503];

/// Slots for refusals: one per status in [`REFUSAL_STATUSES`], then "other".
const REFUSAL_SLOTS: usize = REFUSAL_STATUSES.len() + 1;

/// Atomic counters and gauges describing a running server.
///
/// Counters only rise; gauges rise and fall and are signed, so a stray extra
/// decrement shows as a negative number instead of wrapping. Read them all
/// at once with [`Metrics::snapshot`], or render them for `/metrics` with
/// [`Metrics::render`].
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use natter_core::metrics::Metrics;
///
/// let metrics = Arc::new(Metrics::new());
/// metrics.connection_opened();
/// metrics.refused(404);
/// assert_eq!(metrics.snapshot().connections_open, 1);
/// assert!(metrics.render().contains("natter_refusals_total{status=\"404\"} 1"));
/// ```
#[derive(Debug, Default)]
pub struct Metrics {
    connections_accepted: AtomicU64,
    connections_open: AtomicI64,
    rooms: AtomicI64,
    members: AtomicI64,
    chat_messages: AtomicU64,
    deliveries: AtomicU64,
    bytes_received: AtomicU64,
    bytes_sent: AtomicU64,
    refusals: [AtomicU64; REFUSAL_SLOTS],
    rate_limited: AtomicU64,
    slow_consumers: AtomicU64,
    echo_messages: AtomicU64,
}

/// A plain copy of every value in [`Metrics`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Connections accepted since start.
    pub connections_accepted: u64,
    /// Connections open now, handshakes included.
    pub connections_open: i64,
    /// Rooms that exist now.
    pub rooms: i64,
    /// Members in all rooms now.
    pub members: i64,
    /// Chat lines received from members, including ignored and rate-limited
    /// ones.
    pub chat_messages: u64,
    /// Frames handed to member queues: each event counts once per member
    /// it is for, as the room saw them when the event happened.
    pub deliveries: u64,
    /// Bytes read from sockets.
    pub bytes_received: u64,
    /// Bytes written to sockets.
    pub bytes_sent: u64,
    /// Refusals per status, in the order of [`REFUSAL_STATUSES`], then
    /// every other status.
    pub refusals: [u64; REFUSAL_SLOTS],
    /// Chat lines dropped by the rate limit.
    pub rate_limited: u64,
    /// Members disconnected because their queue passed its bound.
    pub slow_consumers: u64,
    /// Messages sent back by `/echo`.
    pub echo_messages: u64,
}

impl MetricsSnapshot {
    /// Returns the number of refusals counted under `status` (statuses not
    /// in [`REFUSAL_STATUSES`] share the "other" count).
    pub fn refusals_for(&self, status: u16) -> u64 {
        self.refusals
            .get(refusal_slot(status))
            .copied()
            .unwrap_or(0)
    }
}

/// One open connection in the `connections_open` gauge, which it leaves
/// when dropped (see [`Metrics::track_connection`]).
#[derive(Debug)]
pub struct OpenConnection {
    metrics: Arc<Metrics>,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics.connection_closed();
    }
}

/// Maps a status to its slot in the refusal counters.
fn refusal_slot(status: u16) -> usize {
    REFUSAL_STATUSES
        .iter()
        .position(|&known| known == status)
        .unwrap_or(REFUSAL_STATUSES.len())
}

/// Adds one to a counter.
fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Creates a set of metrics, all zero.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// Records an accepted connection: counts it and adds it to the open
    /// gauge.
    pub fn connection_opened(&self) {
        bump(&self.connections_accepted);
        self.connections_open.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the end of a connection counted by
    /// [`Metrics::connection_opened`].
    pub fn connection_closed(&self) {
        self.connections_open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Records an accepted connection and returns a guard that records its
    /// end when dropped, however the connection's task or thread ends.
    pub fn track_connection(self: &Arc<Self>) -> OpenConnection {
        self.connection_opened();
        OpenConnection {
            metrics: Arc::clone(self),
        }
    }

    /// Records a new room (kept by [`Room`](crate::room::Room)).
    pub fn room_created(&self) {
        self.rooms.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a room that is gone (kept by [`Room`](crate::room::Room)).
    pub fn room_removed(&self) {
        self.rooms.fetch_sub(1, Ordering::Relaxed);
    }

    /// Records a member joining a room (kept by [`Room`](crate::room::Room)).
    pub fn member_joined(&self) {
        self.members.fetch_add(1, Ordering::Relaxed);
    }

    /// Records `count` members leaving (kept by [`Room`](crate::room::Room)).
    pub fn members_left(&self, count: usize) {
        let count = i64::try_from(count).unwrap_or(i64::MAX);
        self.members.fetch_sub(count, Ordering::Relaxed);
    }

    /// Records one chat line received from a member (kept by
    /// [`Room`](crate::room::Room)).
    pub fn chat_message_received(&self) {
        bump(&self.chat_messages);
    }

    /// Records `count` frames handed to member queues (kept by
    /// [`Room`](crate::room::Room)).
    pub fn delivered(&self, count: usize) {
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        self.deliveries.fetch_add(count, Ordering::Relaxed);
    }

    /// Records bytes read from a socket.
    pub fn bytes_received(&self, count: usize) {
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        self.bytes_received.fetch_add(count, Ordering::Relaxed);
    }

    /// Records bytes written to a socket.
    pub fn bytes_sent(&self, count: usize) {
        let count = u64::try_from(count).unwrap_or(u64::MAX);
        self.bytes_sent.fetch_add(count, Ordering::Relaxed);
    }

    /// Records a request refused with HTTP `status`.
    pub fn refused(&self, status: u16) {
        if let Some(counter) = self.refusals.get(refusal_slot(status)) {
            bump(counter);
        }
    }

    /// Records a chat line dropped by the rate limit (kept by
    /// [`Room`](crate::room::Room)).
    pub fn rate_limited(&self) {
        bump(&self.rate_limited);
    }

    /// Records a member disconnected because its queue passed its bound.
    pub fn slow_consumer_disconnected(&self) {
        bump(&self.slow_consumers);
    }

    /// Records a message sent back by `/echo`.
    pub fn echo_message(&self) {
        bump(&self.echo_messages);
    }

    /// Returns a copy of every value.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let gauge = |gauge: &AtomicI64| gauge.load(Ordering::Relaxed);
        MetricsSnapshot {
            connections_accepted: load(&self.connections_accepted),
            connections_open: gauge(&self.connections_open),
            rooms: gauge(&self.rooms),
            members: gauge(&self.members),
            chat_messages: load(&self.chat_messages),
            deliveries: load(&self.deliveries),
            bytes_received: load(&self.bytes_received),
            bytes_sent: load(&self.bytes_sent),
            refusals: std::array::from_fn(|slot| self.refusals.get(slot).map(load).unwrap_or(0)),
            rate_limited: load(&self.rate_limited),
            slow_consumers: load(&self.slow_consumers),
            echo_messages: load(&self.echo_messages),
        }
    }

    /// Renders every value in the Prometheus text exposition format, version
    /// 0.0.4, ready to be the body of a `/metrics` response.
    pub fn render(&self) -> String {
        let s = self.snapshot();
        let mut out = String::with_capacity(2048);

        let counters = [
            (
                "connections_accepted",
                "Connections accepted.",
                s.connections_accepted,
            ),
            (
                "chat_messages",
                "Chat lines received from members.",
                s.chat_messages,
            ),
            (
                "deliveries",
                "Frames handed to member queues.",
                s.deliveries,
            ),
            (
                "bytes_received",
                "Bytes read from sockets.",
                s.bytes_received,
            ),
            ("bytes_sent", "Bytes written to sockets.", s.bytes_sent),
            (
                "rate_limited",
                "Chat lines dropped by the rate limit.",
                s.rate_limited,
            ),
            (
                "slow_consumer_disconnects",
                "Members disconnected for a full outgoing queue.",
                s.slow_consumers,
            ),
            (
                "echo_messages",
                "Messages sent back by /echo.",
                s.echo_messages,
            ),
        ];
        for (name, help, value) in counters {
            write_header(&mut out, &format!("natter_{name}_total"), help, "counter");
            let _ = writeln!(out, "natter_{name}_total {value}");
        }

        let gauges = [
            (
                "connections_open",
                "Connections open now.",
                s.connections_open,
            ),
            ("rooms", "Rooms that exist now.", s.rooms),
            ("members", "Members in all rooms now.", s.members),
        ];
        for (name, help, value) in gauges {
            write_header(&mut out, &format!("natter_{name}"), help, "gauge");
            let _ = writeln!(out, "natter_{name} {value}");
        }

        let name = "natter_refusals_total";
        write_header(
            &mut out,
            name,
            "HTTP requests refused, by status.",
            "counter",
        );
        let labels = REFUSAL_STATUSES.iter().map(|status| status.to_string());
        for (label, value) in labels.chain(["other".to_owned()]).zip(s.refusals) {
            let _ = writeln!(out, "{name}{{status=\"{label}\"}} {value}");
        }
        out
    }
}

/// Writes the `# HELP` and `# TYPE` lines of one metric.
fn write_header(out: &mut String, name: &str, help: &str, kind: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn is_metric_name(name: &str) -> bool {
        let mut chars = name.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
        first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    /// Parses rendered text into (name, labels) → value, checking the
    /// format's rules on the way.
    fn parse(text: &str) -> HashMap<String, f64> {
        let mut helped = HashMap::new();
        let mut typed = HashMap::new();
        let mut samples = HashMap::new();

        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let (name, help) = rest.split_once(' ').expect("help text");
                assert!(!help.is_empty());
                assert!(helped.insert(name.to_owned(), ()).is_none(), "{name}");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("type");
                assert!(matches!(kind, "counter" | "gauge"), "{line}");
                assert!(typed.insert(name.to_owned(), kind.to_owned()).is_none());
            } else {
                let (series, value) = line.rsplit_once(' ').expect("sample");
                let name = series.split('{').next().unwrap_or(series);
                assert!(is_metric_name(name), "{name}");
                assert!(name.starts_with("natter_"), "{name}");
                assert!(helped.contains_key(name), "no HELP before {line}");
                let kind = typed.get(name).expect("no TYPE before sample");
                assert_eq!(kind == "counter", name.ends_with("_total"), "{name}");
                let value: f64 = value.parse().expect("numeric value");
                assert!(samples.insert(series.to_owned(), value).is_none());
            }
        }
        samples
    }

    #[test]
    fn starts_at_zero() {
        let metrics = Metrics::new();
        assert_eq!(metrics.snapshot(), MetricsSnapshot::default());
        let samples = parse(&metrics.render());
        assert!(samples.values().all(|&value| value == 0.0));
    }

    #[test]
    fn rendered_text_parses_back() {
        let metrics = Metrics::new();
        metrics.connection_opened();
        metrics.connection_opened();
        metrics.connection_closed();
        metrics.room_created();
        metrics.member_joined();
        metrics.member_joined();
        metrics.members_left(1);
        metrics.chat_message_received();
        metrics.delivered(7);
        metrics.bytes_received(100);
        metrics.bytes_sent(250);
        metrics.refused(409);
        metrics.refused(409);
        metrics.refused(418);
        metrics.rate_limited();
        metrics.slow_consumer_disconnected();
        metrics.echo_message();

        let text = metrics.render();
        assert!(text.ends_with('\n'));
        let samples = parse(&text);
        let expected = [
            ("natter_connections_accepted_total", 2.0),
            ("natter_connections_open", 1.0),
            ("natter_rooms", 1.0),
            ("natter_members", 1.0),
            ("natter_chat_messages_total", 1.0),
            ("natter_deliveries_total", 7.0),
            ("natter_bytes_received_total", 100.0),
            ("natter_bytes_sent_total", 250.0),
            ("natter_rate_limited_total", 1.0),
            ("natter_slow_consumer_disconnects_total", 1.0),
            ("natter_echo_messages_total", 1.0),
            ("natter_refusals_total{status=\"409\"}", 2.0),
            ("natter_refusals_total{status=\"other\"}", 1.0),
            ("natter_refusals_total{status=\"400\"}", 0.0),
        ];
        for (series, value) in expected {
            assert_eq!(samples.get(series), Some(&value), "{series}");
        }
        assert_eq!(samples.len(), 11 + REFUSAL_SLOTS);
    }

    #[test]
    fn refusals_are_sorted_by_status() {
        let metrics = Metrics::new();
        for status in [400, 403, 404, 405, 409, 426, 431, 503, 500, 200] {
            metrics.refused(status);
        }

        let snapshot = metrics.snapshot();
        for status in REFUSAL_STATUSES {
            assert_eq!(snapshot.refusals_for(status), 1, "{status}");
        }
        assert_eq!(snapshot.refusals_for(500), 2);
    }

    #[test]
    fn gauges_go_negative_instead_of_wrapping() {
        let metrics = Metrics::new();
        metrics.connection_closed();
        metrics.members_left(usize::MAX);
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.connections_open, -1);
        assert_eq!(snapshot.members, -i64::MAX);
        assert!(parse(&metrics.render())["natter_connections_open"] < 0.0);
    }

    #[test]
    fn open_connection_guard_closes_on_drop() {
        let metrics = std::sync::Arc::new(Metrics::new());
        let first = metrics.track_connection();
        let second = metrics.track_connection();
        assert_eq!(metrics.snapshot().connections_open, 2);

        drop(first);
        assert_eq!(metrics.snapshot().connections_open, 1);
        drop(second);
        let snapshot = metrics.snapshot();
        assert_eq!(
            (snapshot.connections_open, snapshot.connections_accepted),
            (0, 2)
        );
    }

    #[test]
    fn shared_between_threads() {
        let metrics = std::sync::Arc::new(Metrics::new());
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let metrics = metrics.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        metrics.chat_message_received();
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().expect("thread");
        }
        assert_eq!(metrics.snapshot().chat_messages, 4000);
    }
}
