//! Feeds arbitrary bytes to a server connection, in pieces sized by the
//! first byte, and drains everything it produces: nothing may panic.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use natter_core::config::ServerConfig;
use natter_core::connection::{Connection, ConnectionConfig, Role};

fuzz_target!(|data: &[u8]| {
    let Some((&chunk, input)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let config = ConnectionConfig::echo(&ServerConfig::default());
    let mut conn = Connection::new(Role::Server, config, now);
    let mut out = Vec::new();

    for piece in input.chunks(usize::from(chunk).max(1)) {
        conn.handle_input(now, piece);
        while conn.poll_event().is_some() {}
        conn.poll_transmit(&mut out);
    }
    conn.handle_timeout(now + Duration::from_secs(3600));
    while conn.poll_event().is_some() {}
    conn.poll_transmit(&mut out);
});
