//! Conformance harness for natter.
pub mod chat;
pub mod core_chat;
pub mod core_ws;
pub mod expr;
pub mod generate;
pub mod http;
pub mod live;
pub mod live_chat;
pub mod load;
pub mod server;
pub mod suite;
pub mod testclient;
pub mod vector;
pub mod verdict;
pub mod wire;
