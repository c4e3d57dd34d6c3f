//! How natter-std applies `--max-queue-bytes` to what a member is sent: the
//! joiner's welcome goes out whatever its size, and everything else counts.

mod support;

use natter_conformance::testclient::TestClient;

use support::{start, STEP};

/// Returns the join path of member `index` of room `room`, with the longest
/// name there is, of characters JSON doubles (`"`), and the longest session
/// id, so each member takes as much of a welcome's roster as it can.
fn long_member_path(room: &str, index: usize) -> String {
    let name = "%22".repeat(32);
    let session = format!("{index:04}{}", "s".repeat(124));
    format!("/joinRoom?user_name={name}&room_code={room}&session_id={session}")
}

/// A joiner to a room whose roster passes `--max-queue-bytes` gets its welcome
/// and stays a member.
#[test]
fn joiner_whose_welcome_passes_the_queue_bound_gets_it_and_stays() {
    const MEMBERS: usize = 20;
    let args = ["--max-queue-bytes", "4096", "--max-message-bytes", "256"];
    let server = start(&args);
    let addr = server.addr();

    // Each roster entry takes some 220 bytes: 20 members pass the bound.
    let mut members = Vec::new();
    for index in 0..MEMBERS {
        let member = TestClient::connect(addr, &long_member_path("big", index));
        members.push(member.expect("member joins"));
    }
    let mut joiner =
        TestClient::connect(addr, &long_member_path("big", MEMBERS)).expect("joiner upgrades");

    let welcome = joiner.next_json(STEP).expect("the joiner gets a welcome");
    assert_eq!(welcome["type"], "welcome");
    let users = welcome["users"].as_array().expect("users");
    assert_eq!(users.len(), MEMBERS + 1);
    assert!(welcome.to_string().len() > 4096, "the roster is too small");

    // Still a member: its own line comes back to it.
    joiner.send_text("still here").expect("send");
    let echoed = joiner
        .next_json(STEP)
        .expect("the joiner's line comes back");
    assert_eq!(echoed["type"], "message");
    assert_eq!(echoed["text"], "still here");
}
