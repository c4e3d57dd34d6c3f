//! natter-std: the natter chat server on blocking std sockets and threads,
//! for small single-core boards and for people who want no async runtime.
//!
//! It takes the same flags as `natter-smol` ([`natter_core::cli::ServerArgs`]),
//! speaks the same protocol, and leaves every WebSocket and room decision to
//! natter-core; this crate only moves bytes between sockets, the core's state
//! machines and members' queues.
//!
//! # Threads
//!
//! - The main thread waits for SIGINT or SIGTERM and then runs the shutdown.
//! - One accept thread takes connections up to `--max-connections` (503
//!   beyond).
//! - Each connection has a reader thread: handshake, reads, the core's
//!   `Connection`, its timers (as socket read timeouts), and the room calls.
//! - Each room member also has a writer thread, the only one that writes its
//!   socket: it drains the member's bounded queue with one write per batch,
//!   so a slow peer never holds up the room.
//!
//! Every connection thread runs on a 96 KiB stack, of which it touches about
//! 10 KiB, and a member's memory is bounded: one 4 KiB read buffer, the
//! core's per-connection state, and a queue of shared frames capped by
//! `--max-queue-bytes`.
//!
//! # Cost and capacity
//!
//! Measured on a release build pinned to one core (`taskset`), driven over
//! loopback by `natter-load` on a second core:
//!
//! - Threads: 2 (main, accept), plus 2 per member, or 1 per connection
//!   still in its handshake.
//! - RSS: 3.0 MiB at start, then 32.9 KiB per idle member (2,000 members
//!   in rooms of 100), about 20 KiB of it the touched pages of its two
//!   stacks.
//! - One room of 100 with 10 senders, no rate limit: 1.5 to 2.5 M
//!   deliveries/s at 100 % of the core (0.39 to 0.67 µs each).
//! - 100 rooms of 10, every member sending a line a second: 10,000
//!   deliveries/s at 8 % of the core, p50 latency 4.2 ms.
//! - One room of 1,000 with one sender at 10 lines/s: 10,000 deliveries/s
//!   at 20 % of the core, p50 latency 12 ms.
//! - Churn (connect, join, welcome, leave, two threads started and ended
//!   each time): 5,500 a second at 95 % of the core.
//! - `/echo`, 100 connections of 20-byte messages: 63,000 to 98,000
//!   messages/s with one in flight each, 590,000 to 820,000 in bursts of 8.
//!
//! A delivery costs one thread wake-up and one write when lines come one at
//! a time (8 to 20 µs) and far less in bursts, when a writer sends many
//! frames with one write. Memory is what runs out first: the server
//! is meant for up to about 2,000 members on one core (some 65 MiB), with
//! `--max-connections` set to what the board's memory allows; the default of
//! 10,000 would take about 320 MiB and 20,000 threads.
//!
//! # Shutdown
//!
//! On SIGINT or SIGTERM the accept loop stops, every member is sent close
//! 1001 through its queue, and the process waits for the connections to end,
//! at most `--shutdown-grace`, then exits 0. Connections that are not members
//! have their reading half shut: one still in its handshake ends at once, and
//! an `/echo` connection sends 1001 but cannot read the peer's answer (its
//! thread writes the socket itself, which is the endpoint's backpressure).
//! A second signal is not needed and changes nothing: the grace is bounded.
#![forbid(unsafe_code)]

mod outlet;
mod peer;
mod rooms;
mod server;
mod session;

use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;

use natter_core::cli::ServerArgs;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::server::Server;

fn main() -> ExitCode {
    let args = ServerArgs::parse_for("natter-std");
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(&args.log_level))
        .format_timestamp_millis()
        .init();

    let listener = match TcpListener::bind(args.listen) {
        Ok(listener) => listener,
        Err(e) => {
            log::error!("cannot listen on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            log::error!("cannot read the listen address: {e}");
            return ExitCode::FAILURE;
        }
    };

    let mut signals = match Signals::new([SIGINT, SIGTERM]) {
        Ok(signals) => signals,
        Err(e) => {
            log::error!("cannot install the signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };

    let server = Arc::new(Server::new(args.config()));
    let accepter = Arc::clone(&server);
    let spawned = thread::Builder::new()
        .name("accept".into())
        .stack_size(server::THREAD_STACK_BYTES)
        .spawn(move || accepter.run_accept_loop(&listener));
    if let Err(e) = spawned {
        log::error!("cannot start the accept thread: {e}");
        return ExitCode::FAILURE;
    }
    log::info!("listening on {addr}");
    log::info!("limits: {}", server.config());

    if let Some(signal) = signals.forever().next() {
        log::info!("signal {signal}: shutting down");
    }
    server.shut_down(addr);
    ExitCode::SUCCESS
}
