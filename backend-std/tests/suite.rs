//! The shared live suite of natter servers, run against natter-std.

natter_conformance::server_suite!(env!("CARGO_BIN_EXE_natter-std"));
