//! Every WebSocket vector replayed against natter-core, and the committed
//! vector files checked against their generator.

use natter_conformance::core_ws::run_case;
use natter_conformance::generate::vector_files;
use natter_conformance::load::{default_vectors_dir, ws_cases};
use natter_conformance::verdict::{describe_expectation, judge};

#[test]
fn committed_vectors_match_the_generator() {
    let dir = default_vectors_dir().join("ws");
    for file in vector_files() {
        let path = dir.join(file.name);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == file.render(),
            "{} differs from the generator's output; run \
             `cargo run -p natter-conformance --bin natter-conformance -- --generate`",
            path.display()
        );
    }
}

#[test]
fn every_websocket_vector_passes_against_the_core() {
    let cases = ws_cases(&default_vectors_dir()).expect("the vector files parse");
    let (mut passed, mut failed, mut unsupported, mut deferred) = (0, 0, 0, 0);
    let mut report = String::new();

    for case in &cases {
        if let Some(reason) = &case.unsupported {
            println!("{} unsupported: {reason}", case.id);
            unsupported += 1;
            continue;
        }
        if case.live_only.is_some() && cfg!(debug_assertions) {
            println!("{} live-only in debug builds", case.id);
            deferred += 1;
            continue;
        }

        let seen = run_case(case);
        match judge(case, &seen) {
            Ok(None) => passed += 1,
            Ok(Some(alternative)) => {
                println!("{} passes as its alternative: {alternative}", case.id);
                passed += 1;
            }
            Err(failures) => {
                failed += 1;
                report.push_str(&format!("\n{} FAILED: {}\n", case.id, case.about));
                report.push_str(&format!(
                    "  expected: {}\n",
                    describe_expectation(case).join("; ")
                ));
                report.push_str(&format!("  seen:     {}\n", seen.describe().join("; ")));
                for failure in failures {
                    report.push_str(&format!("  - {failure}\n"));
                }
            }
        }
    }

    println!("{passed} passed, {failed} failed, {unsupported} unsupported, {deferred} live-only");
    assert!(
        failed == 0,
        "{failed} of {} vectors failed:{report}",
        cases.len()
    );
}
