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
//!   socket: it drains the member's bounded queue with one vectored write
//!   per batch, so a slow peer never holds up the room.
//!
//! Every connection thread runs on a small stack (see
//! [`server::THREAD_STACK_BYTES`]) and a member's memory is bounded: one
//! read buffer, the core's per-connection state, and a queue of shared
//! frames capped by `--max-queue-bytes`.
//!
//! # Cost and capacity
//!
//! See the figures measured for this crate in its README section of the
//! report; in short, an idle member costs two threads and a few tens of KiB
//! of resident memory.
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

use clap::Parser;
use natter_core::cli::ServerArgs;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::server::Server;

fn main() -> ExitCode {
    let args = ServerArgs::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(&args.log_level))
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
    log::info!(
        "listening on {addr} (max {} connections)",
        server.config().max_connections
    );

    if let Some(signal) = signals.forever().next() {
        log::info!("signal {signal} received");
    }
    server.shut_down(addr);
    ExitCode::SUCCESS
}
