//! Every HTTP vector replayed through natter-core's `ServerHandshake`.

use natter_conformance::http::{judge_http, parse_http_cases, run_core};
use natter_conformance::load::{default_vectors_dir, files_with_extension};

#[test]
fn every_http_vector_passes_against_the_core() {
    let dir = default_vectors_dir().join("http");
    let files = files_with_extension(&dir, "http").expect("the http vectors exist");
    let (mut passed, mut failed, mut unsupported) = (0, 0, 0);
    let mut report = String::new();

    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable vector file");
        let cases = parse_http_cases(&text).expect("the http vectors parse");
        for case in cases {
            if let Some(reason) = &case.unsupported {
                println!("{} unsupported: {reason}", case.id);
                unsupported += 1;
                continue;
            }
            let verdict = run_core(&case).map_err(|e| vec![e]);
            match verdict.and_then(|response| judge_http(&case, &response)) {
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
    }

    println!("{passed} passed, {failed} failed, {unsupported} unsupported");
    assert!(passed > 0, "no http vector ran");
    assert!(failed == 0, "{failed} http vectors failed:{report}");
}
