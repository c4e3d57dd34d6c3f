//! natter-core: the sans-IO heart of the natter chat server and client.
//!
//! Nothing in this crate opens a socket, spawns, sleeps or reads a clock.
//! Drivers feed it bytes and the current time, and take back events and the
//! bytes to send. Both servers (`natter-smol`, `natter-std`), the terminal
//! client and the conformance harness drive the same code.
//!
//! The layers, bottom up:
//! - [`frame`]: RFC 6455 frame encoding and an incremental decoder.
//! - [`connection`]: one WebSocket connection (server or client role):
//!   reassembly, UTF-8 checks, control frames, closing handshake, deadlines.
//! - [`handshake`]: the HTTP/1.1 upgrade, server side and client side.
//! - [`room`], [`event`], [`rate`], [`metrics`]: the chat itself.
//! - [`config`]: every limit and timeout, with the protocol's defaults.
#![forbid(unsafe_code)]

#[cfg(feature = "cli")]
pub mod cli;
pub mod close;
pub mod config;
pub mod connection;
pub mod event;
pub mod frame;
pub mod handshake;
pub mod hub;
pub mod metrics;
pub mod names;
pub mod rate;
pub mod room;
pub mod utf8;
