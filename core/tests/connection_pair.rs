//! Whole conversations between a client and a server `Connection`, wired
//! back to back without sockets, on a clock that jumps from one deadline to
//! the next.

use std::time::{Duration, Instant};

use natter_core::close::CloseCode;
use natter_core::config::ServerConfig;
use natter_core::connection::{
    CloseCause, CloseInfo, Connection, ConnectionConfig, Event, Message, Role,
};

/// A client and a server, and the bytes in flight between them.
struct Pair {
    client: Connection,
    server: Connection,
    now: Instant,
    /// Largest piece handed to `handle_input` at once, like a socket read.
    read_size: usize,
    /// Whether bytes from the client still reach the server.
    client_link_up: bool,
    /// Whether bytes from the server still reach the client.
    server_link_up: bool,
}

impl Pair {
    fn new(server_config: ConnectionConfig) -> Pair {
        let now = Instant::now();
        Pair {
            client: Connection::new(
                Role::Client { mask_seed: 3 },
                ConnectionConfig::client(),
                now,
            ),
            server: Connection::new(Role::Server, server_config, now),
            now,
            read_size: 1000,
            client_link_up: true,
            server_link_up: true,
        }
    }

    fn echo() -> Pair {
        Pair::new(ConnectionConfig::echo(&ServerConfig::default()))
    }

    /// Moves bytes both ways, in reads of `read_size`, until both are quiet.
    fn exchange(&mut self) {
        let mut wire = Vec::new();
        loop {
            let mut moved = false;
            if self.client.poll_transmit(&mut wire) {
                if self.client_link_up {
                    for piece in wire.chunks(self.read_size) {
                        self.server.handle_input(self.now, piece);
                    }
                }
                wire.clear();
                moved = true;
            }
            if self.server.poll_transmit(&mut wire) {
                if self.server_link_up {
                    for piece in wire.chunks(self.read_size) {
                        self.client.handle_input(self.now, piece);
                    }
                }
                wire.clear();
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }

    /// Jumps to the earlier deadline, fires it on both sides and exchanges;
    /// returns false when no timer runs.
    fn advance(&mut self) -> bool {
        let deadlines = [self.client.poll_timeout(), self.server.poll_timeout()];
        let Some(next) = deadlines.into_iter().flatten().min() else {
            return false;
        };
        self.now = self.now.max(next);
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
        self.exchange();
        true
    }
}

/// Echoes every message `conn` received, as `/echo` does, and returns the
/// other events.
fn echo_all(conn: &mut Connection) -> Vec<Event> {
    let mut others = Vec::new();
    while let Some(event) = conn.poll_event() {
        // A refused send (our close went out) drops the reply, as servers do.
        let _ = match &event {
            Event::Message(Message::Text(text)) => conn.send_text(text),
            Event::Message(Message::Binary(data)) => conn.send_binary(data),
            _ => {
                others.push(event);
                Ok(())
            }
        };
    }
    others
}

fn events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

fn closed(events: &[Event]) -> &CloseInfo {
    match events.last() {
        Some(Event::Closed(info)) => info,
        other => panic!("expected Closed last, got {other:?}"),
    }
}

#[test]
fn a_large_binary_message_is_echoed_whole_through_small_reads() {
    let mut pair = Pair::echo();
    let payload: Vec<u8> = (0..1_048_576u32)
        .map(|i| (i * 7 + i / 1000) as u8)
        .collect();
    pair.client.send_binary(&payload).unwrap();
    pair.exchange();

    assert!(echo_all(&mut pair.server).is_empty());
    pair.exchange();
    assert_eq!(
        events(&mut pair.client),
        vec![Event::Message(Message::Binary(payload))]
    );
}

#[test]
fn text_in_many_languages_survives_one_byte_reads() {
    let mut pair = Pair::echo();
    pair.read_size = 1;
    let lines = ["ça va?", "Привет", "世界", "🦀 crab", ""];
    for line in lines {
        pair.client.send_text(line).unwrap();
    }
    pair.exchange();
    echo_all(&mut pair.server);
    pair.exchange();

    let expected: Vec<Event> = lines
        .iter()
        .map(|line| Event::Message(Message::Text((*line).into())))
        .collect();
    assert_eq!(events(&mut pair.client), expected);
}

#[test]
fn a_client_close_is_answered_and_both_sides_finish() {
    let mut pair = Pair::echo();
    let now = pair.now;
    pair.client.close(now, CloseCode::NORMAL, "bye");
    pair.exchange();

    let server_events = events(&mut pair.server);
    let info = closed(&server_events);
    assert_eq!((info.code, info.reason.as_str()), (Some(1000), "bye"));
    assert_eq!(info.cause, CloseCause::ClosedByPeer);

    let client_events = events(&mut pair.client);
    assert_eq!(
        closed(&client_events).cause,
        CloseCause::ClosedByUs { acknowledged: true }
    );
    assert!(pair.client.is_closed() && pair.server.is_closed());
    assert!(!pair.advance(), "no timer runs once both are closed");
}

#[test]
fn an_over_limit_chat_line_closes_with_1009_seen_by_the_client() {
    let mut pair = Pair::new(ConnectionConfig::chat(&ServerConfig::default()));
    pair.client.send_text(&"x".repeat(4096)).unwrap();
    pair.client.send_text(&"y".repeat(4097)).unwrap();
    pair.exchange();

    let server_events = events(&mut pair.server);
    assert!(matches!(&server_events[0], Event::Message(Message::Text(t)) if t.len() == 4096));
    assert_eq!(closed(&server_events).code, Some(1009));

    // The close was held until the line before it had been polled.
    pair.exchange();
    let client_events = events(&mut pair.client);
    let info = closed(&client_events);
    assert_eq!(
        (info.code, &info.cause),
        (Some(1009), &CloseCause::ClosedByPeer)
    );
}

#[test]
fn a_binary_chat_message_closes_with_1003() {
    let mut pair = Pair::new(ConnectionConfig::chat(&ServerConfig::default()));
    pair.client.send_binary(b"\x00\x01").unwrap();
    pair.exchange();
    assert_eq!(closed(&events(&mut pair.client)).code, Some(1003));
}

#[test]
fn an_idle_pair_stays_up_on_heartbeats_alone() {
    let mut pair = Pair::new(ConnectionConfig::chat(&ServerConfig::default()));
    let start = pair.now;
    while pair.now < start + Duration::from_secs(3600) {
        assert!(pair.advance());
    }
    assert!(!pair.client.is_closed() && !pair.server.is_closed());
}

#[test]
fn a_server_that_goes_silent_is_given_up_by_the_client() {
    let mut pair = Pair::echo();
    let start = pair.now;
    pair.server_link_up = false;
    pair.client_link_up = false;
    while !pair.client.is_closed() {
        assert!(pair.advance());
    }

    // A ping after 30 s of silence, then 30 s more without an answer.
    assert_eq!(pair.now, start + Duration::from_secs(60));
    let info = closed(&events(&mut pair.client)).clone();
    assert_eq!((info.code, info.cause), (Some(1006), CloseCause::TimedOut));
}

#[test]
fn a_shutdown_close_gives_up_on_a_peer_that_never_answers() {
    let mut pair = Pair::echo();
    pair.server_link_up = false;
    let now = pair.now;
    pair.server
        .close(now, CloseCode::GOING_AWAY, "server shutting down");
    pair.exchange();
    assert!(!pair.server.can_send_data());

    let start = pair.now;
    while !pair.server.is_closed() {
        assert!(pair.advance());
    }
    assert_eq!(pair.now, start + ServerConfig::default().close_timeout);
    let info = closed(&events(&mut pair.server)).clone();
    assert_eq!(info.code, Some(1001));
    assert_eq!(
        info.cause,
        CloseCause::ClosedByUs {
            acknowledged: false
        }
    );
}
