//! What natter-std logs, line by line, where operators look for it.

mod support;

use natter_conformance::testclient::TestClient;

use support::{join_path, start, wait_for, STEP};

/// At debug, a room's creation and removal and an `/echo` peer's departure
/// are logged in the words natter-smol uses.
#[test]
fn debug_log_tells_rooms_created_and_removed_and_echo_peers_leaving() {
    let server = start(&["--log-level", "debug", "--echo"]);
    let addr = server.addr();

    let mut member = TestClient::connect(addr, &join_path("lobby", "session-a")).expect("join");
    wait_for("the room's creation to be logged", || {
        server.log_contains("room lobby created")
    });
    member.close(1000);
    assert!(member.wait_closed(STEP).is_some(), "the member never left");
    wait_for("the room's removal to be logged", || {
        server.log_contains("room lobby removed")
    });

    let mut echo = TestClient::connect(addr, "/echo").expect("echo upgrade");
    let peer = echo.local_addr().expect("local address");
    echo.close(1000);
    assert!(echo.wait_closed(STEP).is_some(), "the echo peer never left");
    let left = format!("echo peer {peer} left: close Some(1000) \"\" (ClosedByPeer)");
    wait_for("the echo peer's departure to be logged", || {
        server.log_contains(&left)
    });
}
