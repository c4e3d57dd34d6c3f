//! The live test suite every natter server binary must pass.
//!
//! Each public function here is one behaviour of PROTOCOL.md checked against a
//! server binary started on `127.0.0.1:0`. A backend runs them all with one
//! line in its `tests/`:
//!
//! ```ignore
//! natter_conformance::server_suite!(env!("CARGO_BIN_EXE_natter-smol"));
//! ```
//!
//! Waits are bounded and poll for a condition; no test sleeps for a fixed time
//! to let something happen.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::server::ServerProcess;
use crate::testclient::{
    http_request, masked_frame, ClientEvent, ConnectError, RawClient, TestClient,
};

/// Expands into one `#[test]` per behaviour of the suite, run against the
/// server binary at the given path (an expression giving a `&str`).
#[macro_export]
macro_rules! server_suite {
    ($binary:expr) => {
        $crate::server_suite!(@tests $binary;
            members_chat_with_the_exact_protocol_json,
            welcome_lists_the_roster,
            join_and_leave_reach_the_others,
            empty_room_is_removed,
            concurrent_senders_see_one_order,
            racing_joins_and_leaves_are_never_lost,
            room_emptied_while_a_join_waits_starts_afresh,
            stalled_member_is_dropped_while_others_keep_up,
            a_roster_larger_than_the_queue_bound_still_admits_joiners,
            dropped_member_gets_whole_frames_then_close_1008,
            ping_flood_without_reading_is_dropped,
            blank_lines_are_ignored,
            malformed_request_is_refused_with_400,
            bad_query_is_refused_with_400,
            foreign_origin_is_refused_with_403,
            unknown_path_is_refused_with_404,
            other_method_is_refused_with_405,
            duplicate_session_is_refused_with_409,
            missing_upgrade_is_refused_with_426,
            wrong_version_is_refused_with_426,
            oversized_head_is_refused_with_431,
            connection_limit_is_refused_with_503,
            connection_limit_counts_silent_connections,
            a_flood_past_the_limit_gets_503s_without_holding_sockets,
            health_and_metrics_answer,
            first_frame_may_share_the_request_write,
            vanished_clients_leave_nothing_behind,
            burst_past_the_rate_limit_gets_an_error_event,
            sigterm_closes_members_with_1001_and_exits_0,
            shutdown_gives_up_on_silent_members_after_the_grace,
            echo_returns_messages_of_every_size_whole,
            echo_over_its_limit_closes_with_1009,
            close_for_an_oversized_message_ends_without_a_reset,
            binary_chat_message_closes_with_1003,
            oversized_chat_line_closes_with_1009,
            ping_is_answered_with_the_same_payload,
            silent_connection_is_pinged_then_closed,
            bad_flag_exits_with_2,
        );
    };
    (@tests $binary:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::suite::$name(::std::path::Path::new($binary));
            }
        )*
    };
}

/// Longest any single step waits for the server.
const STEP: Duration = Duration::from_secs(10);

/// Starts the server with `args`, panicking with its output if it fails.
fn start(binary: &Path, args: &[&str]) -> ServerProcess {
    match ServerProcess::start(binary, args) {
        Ok(server) => server,
        Err(e) => panic!("could not start {}: {e}", binary.display()),
    }
}

/// Returns the `/joinRoom` path for the three parameters (no escaping needed
/// for the names the suite uses).
fn join_path(room: &str, user: &str, session: &str) -> String {
    format!("/joinRoom?user_name={user}&room_code={room}&session_id={session}")
}

/// Joins `room` and returns the client with its welcome event.
fn join(addr: SocketAddr, room: &str, user: &str, session: &str) -> (TestClient, Value) {
    let mut client = match TestClient::connect(addr, &join_path(room, user, session)) {
        Ok(client) => client,
        Err(e) => panic!("{user} could not join {room}: {e}"),
    };
    let welcome = expect_json(&mut client, "welcome");
    assert_eq!(welcome["type"], "welcome", "first event: {welcome}");
    (client, welcome)
}

/// Returns the next JSON event, panicking when none comes in time.
fn expect_json(client: &mut TestClient, what: &str) -> Value {
    match client.next_json(STEP) {
        Some(value) => value,
        None => panic!(
            "no {what} event arrived (closed: {:?})",
            client.close_info()
        ),
    }
}

/// Returns the next event of `kind`, skipping others, panicking if none comes.
fn expect_kind(client: &mut TestClient, kind: &str) -> Value {
    let deadline = Instant::now() + STEP;
    while Instant::now() < deadline {
        let value = expect_json(client, kind);
        if value["type"] == kind {
            return value;
        }
    }
    panic!("no {kind} event arrived");
}

/// Removes `ts` from an event, checking it is a plausible Unix time in ms.
fn take_ts(event: &mut Value) -> u64 {
    let ts = event
        .as_object_mut()
        .and_then(|object| object.remove("ts"))
        .and_then(|ts| ts.as_u64());
    match ts {
        // 2020-01-01 in milliseconds; anything earlier is seconds or garbage.
        Some(ts) if ts > 1_577_836_800_000 => ts,
        _ => panic!("event without a millisecond ts: {event}"),
    }
}

/// Checks an event equals `expected` once its `ts` is checked and removed.
fn assert_timed_event(mut actual: Value, expected: Value) {
    take_ts(&mut actual);
    assert_eq!(actual, expected);
}

/// Returns a member object as the protocol writes it.
fn member(user: &str, session: &str) -> Value {
    json!({"user_name": user, "session_id": session})
}

/// Returns the `users` of a welcome sorted by session, for order-free checks.
fn sorted_users(welcome: &Value) -> Vec<Value> {
    let mut users = welcome["users"].as_array().cloned().unwrap_or_default();
    users.sort_by(|a, b| a["session_id"].as_str().cmp(&b["session_id"].as_str()));
    users
}

/// Fetches `/metrics` and returns its samples by name (labels included).
fn metrics(addr: SocketAddr) -> HashMap<String, f64> {
    let request = b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n";
    let response = match http_request(addr, request) {
        Ok(response) => response,
        Err(e) => panic!("GET /metrics failed: {e}"),
    };
    assert_eq!(response.status, 200);
    let body = String::from_utf8_lossy(&response.body);
    body.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Returns one sample of `/metrics`, or 0 when it is absent.
fn metric(addr: SocketAddr, name: &str) -> f64 {
    metrics(addr).get(name).copied().unwrap_or(0.0)
}

/// Polls `condition` until it holds, panicking after [`STEP`].
fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + STEP;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the server reports no members, rooms or other connections.
fn wait_until_idle(addr: SocketAddr) {
    wait_for("gauges back to zero", || {
        let m = metrics(addr);
        let gauge = |name: &str| m.get(name).copied().unwrap_or(-1.0);
        // The /metrics request itself is the one open connection left.
        gauge("natter_members") == 0.0
            && gauge("natter_rooms") == 0.0
            && gauge("natter_connections_open") <= 1.0
    });
}

/// Reads events until the connection closes and returns the close code.
fn expect_close_code(client: &mut TestClient) -> Option<u16> {
    match client.wait_closed(STEP) {
        Some(info) => info.code,
        None => panic!("connection did not close"),
    }
}

/// Sends a raw request and checks its status; returns the response.
fn expect_refusal(addr: SocketAddr, request: &[u8], status: u16) -> crate::testclient::Response {
    let response = match http_request(addr, request) {
        Ok(response) => response,
        Err(e) => panic!("request failed: {e}"),
    };
    assert_eq!(
        response.status,
        status,
        "body: {}",
        String::from_utf8_lossy(&response.body)
    );
    let length = response.header("content-length").unwrap_or_default();
    assert_eq!(length, response.body.len().to_string(), "Content-Length");
    response
}

/// Returns an upgrade request head for `path` with extra header lines.
fn upgrade_request(path: &str, extra: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
    .into_bytes()
}

/// Three members chat and every one receives the protocol's exact objects.
pub fn members_chat_with_the_exact_protocol_json(binary: &Path) {
    let server = start(binary, &[]);
    let addr = server.addr();

    let (mut ana, welcome) = join(addr, "lobby", "ana", "k3J9x0aa");
    let expected = json!({
        "type": "welcome", "room_code": "lobby", "seq": 1,
        "you": member("ana", "k3J9x0aa"), "users": [member("ana", "k3J9x0aa")],
    });
    assert_eq!(welcome, expected);

    let (mut bo, _) = join(addr, "lobby", "bo", "Zq81mmpp");
    let joined = json!({"type": "join", "seq": 2, "user_name": "bo", "session_id": "Zq81mmpp"});
    assert_timed_event(expect_json(&mut ana, "join"), joined);

    bo.send_text("hi all \"quoted\" \\ é").expect("send");
    let said = json!({
        "type": "message", "seq": 3, "user_name": "bo", "session_id": "Zq81mmpp",
        "text": "hi all \"quoted\" \\ é",
    });
    assert_timed_event(expect_json(&mut ana, "message"), said.clone());
    assert_timed_event(expect_json(&mut bo, "message"), said);

    bo.close(1000);
    let left = json!({"type": "leave", "seq": 4, "user_name": "bo", "session_id": "Zq81mmpp"});
    assert_timed_event(expect_json(&mut ana, "leave"), left);
}

/// The welcome lists every member, the joiner included, at the latest seq.
pub fn welcome_lists_the_roster(binary: &Path) {
    let server = start(binary, &[]);
    let addr = server.addr();

    let (_ana, _) = join(addr, "room-1", "ana", "session-a");
    let (_bo, _) = join(addr, "room-1", "bo", "session-b");
    let (_other, _) = join(addr, "room-2", "zed", "session-z");
    let (_cy, welcome) = join(addr, "room-1", "cy", "session-c");

    assert_eq!(welcome["room_code"], "room-1");
    assert_eq!(welcome["seq"], 3);
    assert_eq!(welcome["you"], member("cy", "session-c"));
    let expected = vec![
        member("ana", "session-a"),
        member("bo", "session-b"),
        member("cy", "session-c"),
    ];
    assert_eq!(sorted_users(&welcome), expected);
}

/// Joins and leaves reach the other members in seq order, and a member who
/// left is gone from the next welcome.
pub fn join_and_leave_reach_the_others(binary: &Path) {
    let server = start(binary, &[]);
    let addr = server.addr();

    let (mut ana, _) = join(addr, "r", "ana", "session-a");
    let (bo, _) = join(addr, "r", "bo", "session-b");
    let joined = json!({"type": "join", "seq": 2, "user_name": "bo", "session_id": "session-b"});
    assert_timed_event(expect_json(&mut ana, "join"), joined);

    // A vanished socket counts as a leave just like a close frame does.
    drop(bo);
    let left = json!({"type": "leave", "seq": 3, "user_name": "bo", "session_id": "session-b"});
    assert_timed_event(expect_json(&mut ana, "leave"), left);

    let (_cy, welcome) = join(addr, "r", "cy", "session-c");
    assert_eq!(welcome["seq"], 4);
    let expected = vec![member("ana", "session-a"), member("cy", "session-c")];
    assert_eq!(sorted_users(&welcome), expected);
    let joined = json!({"type": "join", "seq": 4, "user_name": "cy", "session_id": "session-c"});
    assert_timed_event(expect_json(&mut ana, "join"), joined);
}

/// A room disappears with its last member and restarts its seq at 1.
pub fn empty_room_is_removed(binary: &Path) {
    let server = start(binary, &[]);
    let addr = server.addr();

    let (mut ana, _) = join(addr, "short-lived", "ana", "session-a");
    let (mut bo, _) = join(addr, "short-lived", "bo", "session-b");
    assert_eq!(metric(addr, "natter_rooms"), 1.0);
    assert_eq!(metric(addr, "natter_members"), 2.0);

    ana.close(1000);
    bo.close(1000);
    expect_close_code(&mut ana);
    expect_close_code(&mut bo);
    wait_until_idle(addr);

    let (_cy, welcome) = join(addr, "short-lived", "cy", "session-c");
    assert_eq!(welcome["seq"], 1);
    assert_eq!(sorted_users(&welcome), vec![member("cy", "session-c")]);
}

/// Members sending at the same time are all seen in one seq order by all.
pub fn concurrent_senders_see_one_order(binary: &Path) {
    const MEMBERS: usize = 4;
    const LINES: usize = 10;
    let server = start(binary, &[]);
    let addr = server.addr();

    let clients: Vec<TestClient> = (0..MEMBERS)
        .map(|i| join(addr, "busy", &format!("user{i}"), &format!("session-{i}")).0)
        .collect();

    let threads: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            thread::spawn(move || {
                for line in 0..LINES {
                    client.send_text(&format!("{i}:{line}")).expect("send");
                }
                let mut seen = Vec::new();
                while seen.len() < MEMBERS * LINES {
                    let event = expect_json(&mut client, "message");
                    if event["type"] == "message" {
                        let seq = event["seq"].as_u64().expect("seq");
                        seen.push((seq, event["text"].as_str().unwrap_or("").to_string()));
                    }
                }
                seen
            })
        })
        .collect();

    let orders: Vec<Vec<(u64, String)>> = threads
        .into_iter()
        .map(|t| t.join().expect("member thread"))
        .collect();
    for order in &orders {
        assert_eq!(order, &orders[0], "members saw different orders");
        assert!(order.windows(2).all(|w| w[0].0 < w[1].0), "seq not rising");
    }

    // Each sender's own lines keep the order it sent them in.
    for i in 0..MEMBERS {
        let mine: Vec<&str> = orders[0]
            .iter()
            .map(|(_, text)| text.as_str())
            .filter(|text| text.starts_with(&format!("{i}:")))
            .collect();
        let sent: Vec<String> = (0..LINES).map(|line| format!("{i}:{line}")).collect();
        assert_eq!(mine, sent);
    }
}

/// Members joining and leaving one room from several threads always get
/// their welcome, however the joins race the room's end, and the room is
/// gone afterwards.
pub fn racing_joins_and_leaves_are_never_lost(binary: &Path) {
    const THREADS: usize = 4;
    const CYCLES: usize = 25;
    let server = start(binary, &[]);
    let addr = server.addr();

    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            thread::spawn(move || {
                for cycle in 0..CYCLES {
                    let session = format!("session-{t}-{cycle}");
                    let (mut client, welcome) = join(addr, "churn", "user", &session);
                    assert_eq!(welcome["you"]["session_id"], session.as_str());
                    client.close(1000);
                    expect_close_code(&mut client);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("churn thread");
    }
    wait_until_idle(addr);
}

/// A room emptied by its last leave is gone even when the next join is
/// already on its way: every one of many join-then-leave rounds on one code
/// is welcomed into a new room (seq 1, the joiner alone).
///
/// Each member sends a burst of lines just before its close, so the room may
/// still be busy with them when the next join arrives behind the leave.
pub fn room_emptied_while_a_join_waits_starts_afresh(binary: &Path) {
    const ROUNDS: usize = 50;
    const BURST: usize = 1_000;
    let server = start(binary, &["--no-rate-limit"]);
    let addr = server.addr();

    for round in 0..ROUNDS {
        let session = format!("session-{round}");
        let path = join_path("again", "user", &session);
        let mut client = RawClient::upgrade(addr, &path).expect("upgrade");
        let frame = client.read_frame(STEP).expect("read").expect("welcome");
        let welcome: Value = serde_json::from_slice(&frame.payload).expect("welcome JSON");
        assert_eq!(welcome["type"], "welcome", "round {round}: {welcome}");
        assert_eq!(welcome["seq"], 1, "round {round}: {welcome}");
        assert_eq!(
            welcome["users"],
            json!([member("user", &session)]),
            "round {round}: {welcome}"
        );

        // A burst and a close in one write, then read to the end of the
        // stream: the server hangs up only once it has handed the leave to
        // the room.
        let mut close = 1000u16.to_be_bytes().to_vec();
        close.extend_from_slice(b"bye");
        let mut bytes = masked_frame(0x1, true, b"line").repeat(BURST);
        bytes.extend(masked_frame(0x8, true, &close));
        client.write(&bytes).expect("burst and close");
        loop {
            match client.read_frame(STEP) {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => panic!("round {round}: no hang-up after the close: {e}"),
            }
        }
    }
    wait_until_idle(addr);
}

/// A member that never reads is dropped once its queue is full, while the
/// others keep receiving every line in order.
pub fn stalled_member_is_dropped_while_others_keep_up(binary: &Path) {
    // A round stays well under the 64 KiB bound so that only the member
    // that never reads can pass it.
    const ROUND: usize = 10;
    const MAX_ROUNDS: usize = 2_000;
    let server = start(binary, &["--max-queue-bytes", "65536", "--no-rate-limit"]);
    let addr = server.addr();

    let (mut stalled, _) = join(addr, "stall", "slow", "session-slow");
    let (mut sender, _) = join(addr, "stall", "sender", "session-send");
    let (mut watcher, _) = join(addr, "stall", "watcher", "session-watch");
    expect_kind(&mut sender, "join");

    let padding = "x".repeat(3000);
    let mut last_seq = 3;
    let mut stalled_left = false;
    let mut rounds = 0;
    let mut tail_rounds = 0;
    while tail_rounds < 2 {
        assert!(rounds < MAX_ROUNDS, "the stalled member was never dropped");
        rounds += 1;
        for line in 0..ROUND {
            sender
                .send_text(&format!("{rounds}.{line} {padding}"))
                .expect("send");
        }

        // The watcher sees every line, with no gap in seq but the leave.
        let mut received = 0;
        while received < ROUND {
            let event = expect_json(&mut watcher, "message");
            let seq = event["seq"].as_u64().expect("seq");
            assert_eq!(seq, last_seq + 1, "gap before {event}");
            last_seq = seq;
            match event["type"].as_str() {
                Some("message") => received += 1,
                Some("leave") => {
                    assert_eq!(event["session_id"], "session-slow");
                    stalled_left = true;
                }
                _ => panic!("unexpected event {event}"),
            }
        }
        let mut echoed = 0;
        while echoed < ROUND {
            if expect_json(&mut sender, "message")["type"] == "message" {
                echoed += 1;
            }
        }
        if stalled_left {
            tail_rounds += 1;
        }
    }
    assert!(metric(addr, "natter_slow_consumer_disconnects_total") >= 1.0);

    // The stalled member finds its connection ended: with 1008 if the close
    // frame got past the backlog before the server gave up waiting for an
    // answer, else by the server hanging up (1006).
    match stalled.wait_closed(STEP * 3) {
        Some(info) => assert!(
            matches!(info.code, Some(1008) | Some(1006)),
            "stalled member closed with {info:?}"
        ),
        None => panic!("the stalled member's connection never ended"),
    }
}

/// A member dropped for a full queue, which reads again well inside the
/// close timeout, gets whole frames only (the one being written when it was
/// dropped is finished) and then the close frame with 1008; none of the
/// room's frames from its leave on reach it.
pub fn dropped_member_gets_whole_frames_then_close_1008(binary: &Path) {
    const ROUND: usize = 20;
    const MAX_ROUNDS: usize = 5_000;
    const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
    let args = [
        "--max-queue-bytes",
        "65536",
        "--no-rate-limit",
        "--close-timeout",
        "2s",
    ];
    let server = start(binary, &args);
    let addr = server.addr();

    let mut slow =
        RawClient::upgrade(addr, &join_path("kick", "slow", "session-slow")).expect("upgrade");
    // The slow member has been quiet for longer than the close timeout when
    // it is dropped, as a member that only listens usually has: the timeout
    // runs from the drop, not from the member's last word.
    thread::sleep(CLOSE_TIMEOUT + Duration::from_millis(500));
    let (mut sender, _) = join(addr, "kick", "sender", "session-send");

    // Send until the sender sees the slow member leave.
    let line = "z".repeat(1000);
    let mut leave_seq = None;
    let mut rounds = 0;
    while leave_seq.is_none() {
        assert!(rounds < MAX_ROUNDS, "the slow member was never dropped");
        rounds += 1;
        for _ in 0..ROUND {
            sender.send_text(&line).expect("send");
        }
        let mut echoed = 0;
        while echoed < ROUND {
            let event = expect_json(&mut sender, "message");
            match event["type"].as_str() {
                Some("message") => echoed += 1,
                Some("leave") => {
                    assert_eq!(event["session_id"], "session-slow");
                    leave_seq = event["seq"].as_u64();
                }
                _ => {}
            }
        }
    }
    let Some(leave_seq) = leave_seq else {
        unreachable!("the loop ends only with a leave seq")
    };

    // Stay away for a while, well inside the close timeout, then read
    // everything: the stream must hold only whole frames up to a close 1008.
    thread::sleep(CLOSE_TIMEOUT / 2);
    let mut last_seq = 0;
    let close = loop {
        let frame = match slow.read_frame(STEP) {
            Ok(Some(frame)) => frame,
            Ok(None) => panic!("stream ended without a close frame (after seq {last_seq})"),
            Err(e) => {
                panic!("reading the dropped member's stream failed: {e} (after seq {last_seq})")
            }
        };
        if frame.opcode == 0x8 {
            break frame;
        }
        assert_eq!(frame.opcode, 0x1, "unexpected frame {frame:?}");
        let event: Value = match serde_json::from_slice(&frame.payload) {
            Ok(event) => event,
            Err(e) => panic!("frame after seq {last_seq} is not JSON: {e}"),
        };
        let seq = event["seq"].as_u64().expect("room frames have a seq");
        assert!(seq > last_seq, "seq {seq} after {last_seq}");
        assert!(
            seq < leave_seq,
            "seq {seq} reached a member that left at {leave_seq}"
        );
        last_seq = seq;
    };
    assert_eq!(
        close.payload.get(..2),
        Some(&1008u16.to_be_bytes()[..]),
        "{close:?}"
    );
}

/// A member that sends pings but never reads its pongs is dropped once they
/// pass its queue bound, instead of piling them up.
pub fn ping_flood_without_reading_is_dropped(binary: &Path) {
    const PINGS_PER_WRITE: usize = 1_000;
    const MAX_WRITES: usize = 400;
    let args = [
        "--max-queue-bytes",
        "16384",
        "--max-message-bytes",
        "2048",
        "--close-timeout",
        "200ms",
    ];
    let server = start(binary, &args);
    let addr = server.addr();
    let path = join_path("r", "ana", "session-a");
    let mut flooder = RawClient::upgrade(addr, &path).expect("upgrade");

    let ping = masked_frame(0x9, true, &[b'p'; 125]);
    let burst: Vec<u8> = ping.repeat(PINGS_PER_WRITE);
    let mut writes = 0;
    while metric(addr, "natter_members") > 0.0 {
        assert!(writes < MAX_WRITES, "the flooding member was never dropped");
        writes += 1;
        // The server may hang up mid-write once it has had enough.
        if flooder.write(&burst).is_err() {
            break;
        }
    }
    wait_until_idle(addr);
}

/// Empty and white-space lines are dropped without a seq.
pub fn blank_lines_are_ignored(binary: &Path) {
    let server = start(binary, &[]);
    let (mut ana, _) = join(server.addr(), "quiet", "ana", "session-a");

    for line in ["", "   ", "\t\n"] {
        ana.send_text(line).expect("send");
    }
    ana.send_text("real").expect("send");
    let said = json!({
        "type": "message", "seq": 2, "user_name": "ana", "session_id": "session-a",
        "text": "real",
    });
    assert_timed_event(expect_json(&mut ana, "message"), said);
}

/// A request that is not HTTP gets 400.
pub fn malformed_request_is_refused_with_400(binary: &Path) {
    let server = start(binary, &[]);
    let response = expect_refusal(server.addr(), b"\x16\x03\x01 hello\r\n\r\n", 400);
    assert!(!response.body.is_empty(), "400 without a reason");
}

/// A missing or invalid query parameter gets 400 with a reason.
pub fn bad_query_is_refused_with_400(binary: &Path) {
    let server = start(binary, &[]);
    let cases = [
        "/joinRoom?room_code=r&session_id=session-a",
        "/joinRoom?user_name=ana&room_code=r%21&session_id=session-a",
        "/joinRoom?user_name=ana&room_code=r&session_id=short",
        "/joinRoom?user_name=%20%20&room_code=r&session_id=session-a",
    ];
    for path in cases {
        let request = upgrade_request(path, "Sec-WebSocket-Version: 13\r\n");
        let response = expect_refusal(server.addr(), &request, 400);
        assert!(!response.body.is_empty(), "400 without a reason for {path}");
    }
    let bad_key = format!(
        "GET {} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n",
        join_path("r", "ana", "session-a")
    );
    expect_refusal(server.addr(), bad_key.as_bytes(), 400);
}

/// An Origin outside the configured allow-list gets 403; a listed one joins.
pub fn foreign_origin_is_refused_with_403(binary: &Path) {
    let server = start(binary, &["--allowed-origin", "https://chat.example"]);
    let path = join_path("r", "ana", "session-a");

    let request = upgrade_request(
        &path,
        "Sec-WebSocket-Version: 13\r\nOrigin: https://evil.example\r\n",
    );
    expect_refusal(server.addr(), &request, 403);

    let headers = [("Origin", "https://chat.example")];
    let mut client = TestClient::connect_with(server.addr(), &path, &headers, None)
        .expect("allowed origin joins");
    assert_eq!(expect_json(&mut client, "welcome")["type"], "welcome");
}

/// Any other path gets 404.
pub fn unknown_path_is_refused_with_404(binary: &Path) {
    let server = start(binary, &[]);
    expect_refusal(server.addr(), b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n", 404);
    // /echo is not served without --echo.
    let echo = upgrade_request("/echo", "Sec-WebSocket-Version: 13\r\n");
    expect_refusal(server.addr(), &echo, 404);
    assert_eq!(
        metric(server.addr(), "natter_refusals_total{status=\"404\"}"),
        2.0
    );
}

/// A method other than GET gets 405 with `Allow: GET`.
pub fn other_method_is_refused_with_405(binary: &Path) {
    let server = start(binary, &[]);
    let request = b"POST /joinRoom HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n";
    let response = expect_refusal(server.addr(), request, 405);
    assert_eq!(response.header("allow").as_deref(), Some("GET"));
}

/// A session already in the room gets 409 and the first one stays connected.
pub fn duplicate_session_is_refused_with_409(binary: &Path) {
    let server = start(binary, &[]);
    let addr = server.addr();
    let (mut first, _) = join(addr, "r", "ana", "session-a");

    match TestClient::connect(addr, &join_path("r", "ana2", "session-a")) {
        Err(ConnectError::Refused { status, .. }) => assert_eq!(status, 409),
        Err(e) => panic!("expected 409, got {e}"),
        Ok(_) => panic!("expected 409, got 101"),
    }

    // The same session may be in another room, and the first one still chats.
    let (_elsewhere, _) = join(addr, "other", "ana", "session-a");
    first.send_text("still here").expect("send");
    assert_eq!(expect_json(&mut first, "message")["text"], "still here");
}

/// A join without an upgrade gets 426 with `Upgrade: websocket`.
pub fn missing_upgrade_is_refused_with_426(binary: &Path) {
    let server = start(binary, &[]);
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: t\r\n\r\n",
        join_path("r", "ana", "session-a")
    );
    let response = expect_refusal(server.addr(), request.as_bytes(), 426);
    let upgrade = response.header("upgrade").unwrap_or_default();
    assert!(
        upgrade.eq_ignore_ascii_case("websocket"),
        "Upgrade: {upgrade}"
    );
}

/// A WebSocket version other than 13 gets 426 naming version 13.
pub fn wrong_version_is_refused_with_426(binary: &Path) {
    let server = start(binary, &[]);
    let path = join_path("r", "ana", "session-a");
    let request = upgrade_request(&path, "Sec-WebSocket-Version: 8\r\n");
    let response = expect_refusal(server.addr(), &request, 426);
    assert_eq!(
        response.header("sec-websocket-version").as_deref(),
        Some("13")
    );
}

/// A request head over the limit gets 431.
pub fn oversized_head_is_refused_with_431(binary: &Path) {
    let server = start(binary, &[]);
    let filler = "a".repeat(9 * 1024);
    let request = format!("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Filler: {filler}\r\n\r\n");
    expect_refusal(server.addr(), request.as_bytes(), 431);
}

/// Past `--max-connections` a request gets 503; a freed slot is reusable.
pub fn connection_limit_is_refused_with_503(binary: &Path) {
    let server = start(binary, &["--max-connections", "1"]);
    let addr = server.addr();
    let (mut ana, _) = join(addr, "r", "ana", "session-a");

    match TestClient::connect(addr, &join_path("r", "bo", "session-b")) {
        Err(ConnectError::Refused { status, .. }) => assert_eq!(status, 503),
        Err(e) => panic!("expected 503, got {e}"),
        Ok(_) => panic!("expected 503, got 101"),
    }

    ana.close(1000);
    expect_close_code(&mut ana);
    wait_for("the slot to free up", || {
        TestClient::connect(addr, &join_path("r", "bo", "session-b")).is_ok()
    });
}

/// Connections that never send their request head count toward
/// `--max-connections`: past the limit the next one gets its 503 at once,
/// without sending anything, and is closed.
pub fn connection_limit_counts_silent_connections(binary: &Path) {
    let server = start(
        binary,
        &["--max-connections", "2", "--handshake-timeout", "30s"],
    );
    let addr = server.addr();
    let silent: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    // The server accepts in order, so both are counted before the third.
    let mut third = TcpStream::connect(addr).expect("connect");
    third.set_read_timeout(Some(STEP)).expect("read timeout");
    let mut response = Vec::new();
    match third.read_to_end(&mut response) {
        Ok(_) => {}
        Err(e) => panic!(
            "no complete answer without a request: {e}; got {:?}",
            String::from_utf8_lossy(&response)
        ),
    }
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 503 "), "answer: {text:?}");
    drop(silent);
}

/// A flood of connections past `--max-connections` each get a 503 and the
/// end of the stream, and the server does not keep a socket open for each
/// of them while they stay connected.
pub fn a_flood_past_the_limit_gets_503s_without_holding_sockets(binary: &Path) {
    const FLOOD: usize = 400;
    let server = start(
        binary,
        &["--max-connections", "1", "--handshake-timeout", "30s"],
    );
    let addr = server.addr();
    let _holder = TcpStream::connect(addr).expect("connect");

    let mut flood = Vec::with_capacity(FLOOD);
    for index in 0..FLOOD {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(STEP)).expect("read timeout");
        let mut response = Vec::new();
        if let Err(e) = stream.read_to_end(&mut response) {
            panic!("connection {index}: no complete answer: {e}");
        }
        let text = String::from_utf8_lossy(&response);
        assert!(
            text.starts_with("HTTP/1.1 503 "),
            "connection {index}: {text:?}"
        );
        // Kept open: a server that lingers on each would hold its socket.
        flood.push(stream);
    }

    let held = open_descriptors(server.pid());
    assert!(
        held < FLOOD / 2,
        "the server holds {held} descriptors for {FLOOD} refused connections"
    );
}

/// Counts the descriptors process `pid` has open.
fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| entries.count())
        .expect("read the server's /proc fd folder")
}

/// `/healthz` answers `ok` and `/metrics` answers Prometheus text.
pub fn health_and_metrics_answer(binary: &Path) {
    let server = start(binary, &[]);
    let response = http_request(server.addr(), b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .expect("GET /healthz");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"ok");

    let (_ana, _) = join(server.addr(), "r", "ana", "session-a");
    let samples = metrics(server.addr());
    assert_eq!(samples.get("natter_members"), Some(&1.0));
    assert_eq!(samples.get("natter_rooms"), Some(&1.0));
    assert!(samples.contains_key("natter_refusals_total{status=\"404\"}"));
}

/// A frame written together with the request head is not lost.
pub fn first_frame_may_share_the_request_write(binary: &Path) {
    let server = start(binary, &[]);
    let path = join_path("r", "ana", "session-a");
    let mut client = TestClient::connect_with(server.addr(), &path, &[], Some("early bird"))
        .expect("pipelined join");

    assert_eq!(expect_json(&mut client, "welcome")["type"], "welcome");
    let said = expect_json(&mut client, "message");
    assert_eq!(said["text"], "early bird");
    assert_eq!(said["seq"], 2);
}

/// Clients that vanish mid-handshake or mid-frame leave nothing behind.
pub fn vanished_clients_leave_nothing_behind(binary: &Path) {
    let server = start(binary, &[]);
    let addr = server.addr();

    // Half a request head, then gone.
    let mut half = TcpStream::connect(addr).expect("connect");
    let head = upgrade_request(&join_path("r", "ana", "session-a"), "");
    half.write_all(&head[..head.len() / 2]).expect("write");
    drop(half);

    // Half a frame header, then gone.
    let (mut bo, _) = join(addr, "r", "bo", "session-b");
    let frame = masked_frame(0x1, true, b"never finished");
    bo.send_raw(&frame[..1]).expect("write");
    drop(bo);

    // A header and half the payload, then gone.
    let (mut cy, _) = join(addr, "r2", "cy", "session-c");
    cy.send_raw(&frame[..frame.len() - 4]).expect("write");
    drop(cy);

    wait_until_idle(addr);
}

/// The line after a burst of 20 is dropped with an error to its sender.
pub fn burst_past_the_rate_limit_gets_an_error_event(binary: &Path) {
    // A slow refill keeps the test about the burst alone.
    let server = start(binary, &["--rate-burst", "20", "--rate-per-second", "0.01"]);
    let addr = server.addr();
    let (mut ana, _) = join(addr, "r", "ana", "session-a");
    let (mut bo, _) = join(addr, "r", "bo", "session-b");
    expect_kind(&mut ana, "join");

    let burst: Vec<u8> = (1..=21)
        .flat_map(|i| masked_frame(0x1, true, format!("line {i}").as_bytes()))
        .collect();
    ana.send_raw(&burst).expect("send burst");

    for i in 1..=20 {
        assert_eq!(
            expect_json(&mut ana, "message")["text"],
            format!("line {i}")
        );
    }
    let error = expect_json(&mut ana, "error");
    assert_eq!(error, json!({"type": "error", "reason": "rate limited"}));

    // The others never see the dropped line: bo's next event after the 20
    // lines is his own.
    for i in 1..=20 {
        assert_eq!(expect_json(&mut bo, "message")["text"], format!("line {i}"));
    }
    bo.send_text("after").expect("send");
    let after = expect_json(&mut bo, "message");
    assert_eq!(after["text"], "after");
    assert_eq!(after["seq"], 23);
}

/// SIGTERM sends close 1001 to every member and echo peer, and the server
/// exits with 0.
pub fn sigterm_closes_members_with_1001_and_exits_0(binary: &Path) {
    let mut server = start(binary, &["--echo"]);
    let addr = server.addr();
    let (mut ana, _) = join(addr, "r", "ana", "session-a");
    let (mut bo, _) = join(addr, "r2", "bo", "session-b");
    let mut echo = TestClient::connect(addr, "/echo").expect("echo upgrade");

    server.signal_terminate().expect("send SIGTERM");
    assert_eq!(expect_close_code(&mut ana), Some(1001));
    assert_eq!(expect_close_code(&mut bo), Some(1001));
    assert_eq!(expect_close_code(&mut echo), Some(1001));
    let status = server.wait_timeout(STEP).expect("server exits");
    assert!(status.success(), "exit status {status}");
}

/// A member that never answers the 1001 does not hold the server past its
/// shutdown grace.
pub fn shutdown_gives_up_on_silent_members_after_the_grace(binary: &Path) {
    let args = ["--shutdown-grace", "300ms", "--close-timeout", "60s"];
    let mut server = start(binary, &args);
    let path = join_path("r", "ana", "session-a");
    let mut silent = RawClient::upgrade(server.addr(), &path).expect("upgrade");
    let welcome = silent
        .read_frame(STEP)
        .expect("read")
        .expect("welcome frame");
    assert_eq!(welcome.opcode, 0x1);

    server.signal_terminate().expect("send SIGTERM");
    let close = silent.read_frame(STEP).expect("read").expect("close frame");
    assert_eq!(close.opcode, 0x8);
    assert_eq!(close.payload.get(..2), Some(&[0x03, 0xe9][..]), "code 1001");

    // The close timeout is far away, so only the grace can end the process.
    let status = server
        .wait_timeout(STEP)
        .expect("server exits within the grace");
    assert!(status.success(), "exit status {status}");
}

/// `/echo` sends back text and binary messages of every size class whole.
pub fn echo_returns_messages_of_every_size_whole(binary: &Path) {
    let server = start(binary, &["--echo"]);
    let mut client = TestClient::connect(server.addr(), "/echo").expect("echo upgrade");
    let sizes = [0, 125, 126, 65_535, 65_536, 1 << 20, 16 << 20];

    for size in sizes {
        let text: String = (0..size)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        client.send_text(&text).expect("send text");
        match client.next_event(STEP * 3) {
            Some(ClientEvent::Text(back)) => assert!(back == text, "text of {size} changed"),
            other => panic!("text of {size}: got {other:?}"),
        }

        let binary: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        client.send_binary(&binary).expect("send binary");
        match client.next_event(STEP * 3) {
            Some(ClientEvent::Binary(back)) => assert!(back == binary, "binary of {size} changed"),
            other => panic!("binary of {size}: got {other:?}"),
        }
    }
    client.close(1000);
    assert_eq!(expect_close_code(&mut client), Some(1000));
}

/// An echo message over `--max-echo-bytes` closes the connection with 1009.
pub fn echo_over_its_limit_closes_with_1009(binary: &Path) {
    let server = start(binary, &["--echo", "--max-echo-bytes", "1000"]);
    let mut client = TestClient::connect(server.addr(), "/echo").expect("echo upgrade");
    client.send_binary(&[7; 1000]).expect("send");
    assert_eq!(
        client.next_event(STEP),
        Some(ClientEvent::Binary(vec![7; 1000]))
    );

    client.send_binary(&[7; 1001]).expect("send");
    assert_eq!(expect_close_code(&mut client), Some(1009));
}

/// A joiner's welcome lists the whole room and may be larger than the
/// queue bound; it is delivered all the same and the joiner stays.
pub fn a_roster_larger_than_the_queue_bound_still_admits_joiners(binary: &Path) {
    const MEMBERS: usize = 130;
    let args = ["--max-queue-bytes", "25600", "--max-message-bytes", "4096"];
    let server = start(binary, &args);
    let addr = server.addr();

    // 32 quotes (64 bytes escaped) and a 128-character session id each:
    // about 230 bytes of roster per member, 30 KB in all.
    let name = "%22".repeat(32);
    let session = |index: usize| format!("{index:0>128}");
    let mut members: Vec<TestClient> = (0..MEMBERS - 1)
        .map(|index| join(addr, "big", &name, &session(index)).0)
        .collect();
    let (mut last, welcome) = join(addr, "big", &name, &session(MEMBERS - 1));
    let roster = welcome.to_string();
    assert!(
        roster.len() > 25_600,
        "the roster is only {} bytes",
        roster.len()
    );

    last.send_text("still here").expect("send");
    let line = expect_json(&mut last, "message");
    assert_eq!(line["text"], "still here");
    members.truncate(1);
    let first = &mut members[0];
    loop {
        let event = expect_json(first, "the last joiner's line");
        if event["type"] == "message" {
            assert_eq!(event["text"], "still here");
            break;
        }
        assert_eq!(event["type"], "join", "unexpected {event}");
    }
}

/// When the server closes with 1009 while the peer is still sending the
/// oversized message, it reads and drops the rest instead of resetting the
/// connection, so the peer gets the close frame and then a clean end.
pub fn close_for_an_oversized_message_ends_without_a_reset(binary: &Path) {
    let server = start(binary, &["--echo", "--max-echo-bytes", "1000"]);
    let mut client = RawClient::upgrade(server.addr(), "/echo").expect("echo upgrade");

    // A binary frame declaring 1 MiB, of which 200 KiB is sent.
    let mut bytes = vec![0x82, 0x80 | 127];
    bytes.extend_from_slice(&(1u64 << 20).to_be_bytes());
    bytes.extend_from_slice(&[0; 4]);
    bytes.resize(bytes.len() + 200 * 1024, b'z');
    client.write(&bytes).expect("send");

    let close = client
        .read_frame(STEP)
        .expect("the close frame")
        .expect("a frame");
    assert_eq!(close.opcode, 0x8);
    assert_eq!(close.payload.get(..2), Some(&1009u16.to_be_bytes()[..]));
    match client.read_frame(STEP) {
        Ok(None) => {}
        Ok(Some(frame)) => panic!("a frame after the close: opcode {}", frame.opcode),
        Err(e) => panic!("the stream did not end cleanly: {e}"),
    }
}

/// A binary message in a chat room closes the connection with 1003.
pub fn binary_chat_message_closes_with_1003(binary: &Path) {
    let server = start(binary, &[]);
    let (mut ana, _) = join(server.addr(), "r", "ana", "session-a");
    ana.send_binary(b"\x00\x01").expect("send");
    assert_eq!(expect_close_code(&mut ana), Some(1003));
    wait_until_idle(server.addr());
}

/// A chat line of 4096 bytes passes and one of 4097 closes with 1009.
pub fn oversized_chat_line_closes_with_1009(binary: &Path) {
    let server = start(binary, &[]);
    let (mut ana, _) = join(server.addr(), "r", "ana", "session-a");

    let longest = "y".repeat(4096);
    ana.send_text(&longest).expect("send");
    assert_eq!(expect_json(&mut ana, "message")["text"], longest.as_str());

    ana.send_text(&"z".repeat(4097)).expect("send");
    assert_eq!(expect_close_code(&mut ana), Some(1009));
}

/// A ping is answered with a pong carrying the same payload.
pub fn ping_is_answered_with_the_same_payload(binary: &Path) {
    let server = start(binary, &["--echo"]);
    let (mut ana, _) = join(server.addr(), "r", "ana", "session-a");
    ana.send_raw(&masked_frame(0x9, true, b"are you there"))
        .expect("ping");
    let pong = ana.next_event(STEP);
    assert_eq!(pong, Some(ClientEvent::Pong(b"are you there".to_vec())));

    let mut echo = TestClient::connect(server.addr(), "/echo").expect("echo upgrade");
    echo.send_raw(&masked_frame(0x9, true, b"")).expect("ping");
    assert_eq!(echo.next_event(STEP), Some(ClientEvent::Pong(Vec::new())));
}

/// A silent connection is pinged after `--ping-after`, then closed when it
/// stays silent past `--pong-timeout`.
pub fn silent_connection_is_pinged_then_closed(binary: &Path) {
    let args = ["--ping-after", "300ms", "--pong-timeout", "300ms"];
    let server = start(binary, &args);
    let path = join_path("r", "ana", "session-a");
    let mut raw = RawClient::upgrade(server.addr(), &path).expect("upgrade");

    let welcome = raw.read_frame(STEP).expect("read").expect("welcome frame");
    assert_eq!(welcome.opcode, 0x1);
    let ping = raw.read_frame(STEP).expect("read").expect("a ping");
    assert_eq!(ping.opcode, 0x9, "expected a ping, got {ping:?}");

    // Never answer: the server gives up with a close frame or by hanging up.
    if let Ok(Some(frame)) = raw.read_frame(STEP) {
        assert_eq!(frame.opcode, 0x8, "expected a close, got {frame:?}");
    }
    wait_until_idle(server.addr());
}

/// An unknown flag makes the binary exit with status 2 (clap's usage error).
pub fn bad_flag_exits_with_2(binary: &Path) {
    let output = std::process::Command::new(binary)
        .arg("--no-such-flag")
        .output()
        .expect("run the server binary");
    assert_eq!(output.status.code(), Some(2));

    let help = std::process::Command::new(binary)
        .arg("--help")
        .output()
        .expect("run the server binary");
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--max-queue-bytes"));
}
