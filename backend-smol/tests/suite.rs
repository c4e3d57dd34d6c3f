//! The shared live server suite, run against natter-smol.
natter_conformance::server_suite!(env!("CARGO_BIN_EXE_natter-smol"));
