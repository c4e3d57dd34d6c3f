//! `natter-conformance`: writes the vector files, or replays them against a
//! live server.

use std::process::ExitCode;

use natter_conformance::load::{default_vectors_dir, write_generated};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("generate") {
        return match write_generated(&default_vectors_dir()) {
            Ok(count) => {
                println!("wrote {count} vector files");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        };
    }
    ExitCode::FAILURE
}
