//! Behaviour particular to natter-std's thread-per-connection design: the
//! threads a member costs come back, and a peer that stops reading cannot
//! keep its threads once it has been closed.

mod support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use natter_conformance::server::ServerProcess;
use natter_conformance::testclient::{masked_frame, RawClient, TestClient};

use support::{join_path, metric, start, wait_for, STEP};

/// Returns the server's thread count from /proc.
fn threads(server: &ServerProcess) -> usize {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", server.pid())).expect("server status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|count| count.trim().parse().ok())
        .expect("Threads line")
}

/// Joins without ever reading a byte or answering anything afterwards.
fn join_and_go_silent(addr: SocketAddr, room: &str, session: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        join_path(room, session)
    );
    stream.write_all(request.as_bytes()).expect("request");
    stream
}

#[test]
fn each_member_costs_two_threads_that_come_back() {
    let server = start(&[]);
    let idle = threads(&server);

    let mut members = Vec::new();
    for index in 0..10 {
        let client =
            TestClient::connect(server.addr(), &join_path("r", &format!("session-{index}")));
        members.push(client.expect("join"));
    }
    wait_for("two threads per member", || threads(&server) == idle + 20);

    for member in &mut members {
        member.close(1000);
    }
    drop(members);
    wait_for("threads back to idle", || threads(&server) == idle);
}

#[test]
fn silent_member_dropped_for_its_queue_frees_its_threads() {
    let server = start(&[
        "--max-queue-bytes",
        "16384",
        "--max-message-bytes",
        "2048",
        "--no-rate-limit",
        "--close-timeout",
        "200ms",
    ]);
    let addr = server.addr();
    let idle = threads(&server);

    let _silent = join_and_go_silent(addr, "r", "session-silent");
    let mut sender = TestClient::connect(addr, &join_path("r", "session-sender")).expect("join");
    let line = "x".repeat(2000);

    // The silent member never reads, so its socket buffers fill and then
    // its queue passes the bound; it is dropped even though it will never
    // answer the close frame.
    let deadline = Instant::now() + STEP;
    while metric(addr, "natter_slow_consumer_disconnects_total") < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the silent member was never dropped"
        );
        for _ in 0..20 {
            sender.send_text(&line).expect("send");
        }
        while sender.next_event(Duration::from_millis(5)).is_some() {}
    }

    wait_for("the silent member's threads to end", || {
        threads(&server) == idle + 2 && metric(addr, "natter_connections_open") <= 2.0
    });
}

#[test]
fn shutdown_does_not_wait_past_the_grace_for_a_silent_member() {
    let server = start(&["--shutdown-grace", "300ms"]);
    let _silent = join_and_go_silent(server.addr(), "r", "session-silent");
    wait_for("the member to join", || {
        metric(server.addr(), "natter_members") == 1.0
    });

    let status = server.terminate().expect("server exits");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn shutdown_closes_echo_connections_with_1001() {
    let mut server = start(&["--echo"]);
    let mut echo = TestClient::connect(server.addr(), "/echo").expect("echo upgrade");
    echo.send_text("ping").expect("send");
    assert!(echo.next_event(STEP).is_some(), "no echo came back");

    server.signal_terminate().expect("SIGTERM");
    let close = echo.wait_closed(STEP).expect("echo connection closed");
    assert_eq!(close.code, Some(1001));
    let status = server.wait_timeout(STEP).expect("server exits");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn shutdown_ends_connections_still_in_their_handshake() {
    let mut server = start(&["--handshake-timeout", "60s", "--shutdown-grace", "30s"]);
    let mut half = TcpStream::connect(server.addr()).expect("connect");
    half.write_all(b"GET /joinRoom HTTP/1.1\r\n")
        .expect("partial head");
    wait_for("the connection to be counted", || {
        metric(server.addr(), "natter_connections_open") >= 2.0
    });

    // With a 30 s grace, only ending the half-read request lets the server
    // exit within the step.
    server.signal_terminate().expect("SIGTERM");
    let status = server.wait_timeout(STEP).expect("server exits");
    assert!(status.success(), "exit status {status}");
}

/// A member whose unread pongs pass its queue bound is closed with 1008 and
/// counted once as a slow consumer, like one whose room frames pass it.
#[test]
fn member_that_pings_but_never_reads_is_dropped_and_counted_once() {
    let args = ["--max-queue-bytes", "16384", "--max-message-bytes", "2048"];
    let server = start(&[&args[..], &["--close-timeout", "200ms"]].concat());
    let addr = server.addr();
    let mut pinger = RawClient::upgrade(addr, &join_path("r", "session-ping")).expect("join");
    wait_for("the member to join", || {
        metric(addr, "natter_members") == 1.0
    });

    // Every ping asks for a pong; with nothing read, the pongs fill the
    // socket buffers and then the queue, which must stay bounded.
    let ping = masked_frame(0x9, true, &[b'p'; 125]);
    let burst: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 500)
        .collect();
    let deadline = Instant::now() + STEP;
    while metric(addr, "natter_members") > 0.0 {
        assert!(
            Instant::now() < deadline,
            "the pinging member was never dropped"
        );
        if pinger.write(&burst).is_err() {
            break;
        }
    }
    wait_for("the member to be gone", || {
        metric(addr, "natter_members") == 0.0
    });
    assert_eq!(metric(addr, "natter_slow_consumer_disconnects_total"), 1.0);
}
