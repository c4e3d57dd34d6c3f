//! Replays WebSocket vectors against natter-core's [`Connection`] directly,
//! driven the way both servers drive their `/echo` connections.

use std::time::Instant;

use natter_core::config::ServerConfig;
use natter_core::connection::{Connection, ConnectionConfig, Event, Message, Role};

use crate::vector::WsCase;
use crate::verdict::Observation;
use crate::wire::{client_frame, FrameReader, Seen};

/// Runs `case` against a server-role connection configured like `/echo`
/// and returns what it sent back.
///
/// Each delivery is one `handle_input` call, followed by what a server does
/// after a read: echo every message, then write what `poll_transmit` gives.
/// So a close that the core queues late shows up after a later delivery.
pub fn run_case(case: &WsCase) -> Observation {
    let config = ServerConfig {
        echo_enabled: true,
        ..ServerConfig::default()
    };
    let now = Instant::now();
    let mut connection = Connection::new(Role::Server, ConnectionConfig::echo(&config), now);
    let mut driver = Driver {
        reader: FrameReader::new(),
        seen: Observation::default(),
        harness_closed: false,
    };
    let deliveries = case.deliveries();
    driver.seen.deliveries = deliveries.len();

    for (index, delivery) in deliveries.iter().enumerate() {
        connection.handle_input(now, delivery);
        driver.pump(&mut connection, index + 1);
        // A server stops reading once its close has gone out.
        if driver.seen.close.is_some() || connection.is_closed() {
            break;
        }
    }

    // Autobahn closes once the expected events arrived, and only then.
    if let Some(code) = case.then_close {
        if driver.seen.close.is_none() && driver.seen.has_expected_events(case) {
            driver.harness_closed = true;
            connection.handle_input(now, &client_frame(0x8, &code.to_be_bytes()));
            driver.pump(&mut connection, deliveries.len());
        }
    }
    driver.seen
}

/// The server loop's side of one connection.
struct Driver {
    reader: FrameReader,
    seen: Observation,
    harness_closed: bool,
}

impl Driver {
    /// Handles events and writes until the connection has nothing more.
    fn pump(&mut self, connection: &mut Connection, delivered: usize) {
        loop {
            while let Some(event) = connection.poll_event() {
                // A refused send is what a server sees after its close went
                // out; it drops the message, as the servers do.
                let _ = match event {
                    Event::Message(Message::Text(text)) => connection.send_text(&text),
                    Event::Message(Message::Binary(data)) => connection.send_binary(&data),
                    Event::Pong(_) | Event::Closed(_) => Ok(()),
                };
            }

            let mut out = Vec::new();
            if !connection.poll_transmit(&mut out) {
                return;
            }
            let mut frames: Vec<Seen> = Vec::new();
            self.reader.push(&out, &mut frames);
            for seen in frames {
                self.seen.record(seen, delivered, self.harness_closed);
            }
        }
    }
}
