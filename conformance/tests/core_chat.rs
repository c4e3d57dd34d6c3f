//! Every chat vector replayed against natter-core: the handshake, a chat
//! connection per member, and a hub on a fake clock.

use natter_conformance::chat::judge_chat;
use natter_conformance::core_chat::run_chat_case;
use natter_conformance::load::{chat_cases, default_vectors_dir};

#[test]
fn every_chat_vector_passes_against_the_core() {
    let cases = chat_cases(&default_vectors_dir()).expect("the chat vectors parse");
    let (mut passed, mut failed, mut unsupported) = (0, 0, 0);
    let mut report = String::new();

    for case in &cases {
        if let Some(reason) = &case.unsupported {
            println!("{} unsupported: {reason}", case.id);
            unsupported += 1;
            continue;
        }

        let seen = run_chat_case(case);
        match judge_chat(case, &seen) {
            Ok(()) => passed += 1,
            Err(failures) => {
                failed += 1;
                report.push_str(&format!("\n{} FAILED: {}\n", case.id, case.about));
                for failure in failures {
                    report.push_str(&format!("  - {failure}\n"));
                }
            }
        }
    }

    println!("{passed} passed, {failed} failed, {unsupported} unsupported");
    assert!(passed >= 15, "only {passed} chat vectors ran");
    assert!(
        failed == 0,
        "{failed} of {} chat vectors failed:{report}",
        cases.len()
    );
}
