//! Conformance harness for natter.
pub mod server;
