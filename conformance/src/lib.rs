//! Conformance harness for natter.
pub mod server;
pub mod suite;
pub mod testclient;
