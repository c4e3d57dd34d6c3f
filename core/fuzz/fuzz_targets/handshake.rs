//! Feeds arbitrary bytes, cut into arbitrary pieces, to both handshake sides.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use natter_core::config::ServerConfig;
use natter_core::handshake::{ClientHandshake, ServerHandshake};

fuzz_target!(|input: (Vec<u8>, Vec<u8>)| {
    let (cuts, bytes) = input;
    let mut server = ServerHandshake::new(&ServerConfig::default(), Instant::now());
    let (mut client, _) = ClientHandshake::new("localhost", "/", [0; 16], None);

    let mut rest = bytes.as_slice();
    for cut in cuts {
        let (piece, tail) = rest.split_at(usize::from(cut) % (rest.len() + 1));
        let _ = server.handle_input(piece);
        let _ = client.handle_input(piece);
        rest = tail;
    }
    let _ = server.handle_input(rest);
    let _ = client.handle_input(rest);
    let _ = client.handle_eof();
});
