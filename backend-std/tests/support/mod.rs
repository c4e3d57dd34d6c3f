//! Helpers the integration tests of natter-std share: starting the binary,
//! waiting on it, and reading its metrics.
//!
//! Each test file is a crate of its own that uses only some of them.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use natter_conformance::server::ServerProcess;
use natter_conformance::testclient::http_request;

/// Longest any wait for the server lasts.
pub const STEP: Duration = Duration::from_secs(10);

/// Starts natter-std with `args` on an ephemeral loopback port.
pub fn start(args: &[&str]) -> ServerProcess {
    let binary = Path::new(env!("CARGO_BIN_EXE_natter-std"));
    match ServerProcess::start(binary, args) {
        Ok(server) => server,
        Err(e) => panic!("server did not start: {e}"),
    }
}

/// Returns the path that joins `room` as a member named `u` with `session`.
pub fn join_path(room: &str, session: &str) -> String {
    format!("/joinRoom?user_name=u&room_code={room}&session_id={session}")
}

/// Polls `condition` until it holds, panicking after [`STEP`].
pub fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Returns one gauge or counter from `/metrics`.
pub fn metric(addr: SocketAddr, name: &str) -> f64 {
    let response =
        http_request(addr, b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n").expect("metrics");
    let body = String::from_utf8_lossy(&response.body).into_owned();
    body.lines()
        .filter_map(|line| line.rsplit_once(' '))
        .find(|(sample, _)| *sample == name)
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0.0)
}
