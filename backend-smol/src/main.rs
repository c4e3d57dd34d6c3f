//! natter-smol: the natter chat server on the smol runtime.
//!
//! One multi-threaded executor runs a task per connection and a task per
//! active room; a joined member gets one task that both reads and writes.
//! Every protocol decision comes from `natter-core`, this crate only moves
//! bytes between sockets and tasks.
#![forbid(unsafe_code)]

mod chat;
mod deadline;
mod echo;
mod outlet;
mod rooms;
mod scratch;
mod server;
mod session;

use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;

use natter_core::cli::ServerArgs;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use smol::Executor;

/// Parses the flags, starts the executor threads and serves until a signal.
fn main() -> ExitCode {
    let args = ServerArgs::parse_for("natter-smol");
    init_logging(&args.log_level);

    // Signals are caught before anything listens, so none is ever missed.
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    if let Err(e) = watch_signals(stop_tx) {
        log::error!("cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }

    // Every core runs the executor; the main thread runs it too, driving the
    // server future itself.
    let executor: Arc<Executor<'static>> = Arc::new(Executor::new());
    let threads = thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let (done_tx, done_rx) = async_channel::bounded::<()>(1);
    for i in 1..threads {
        let executor = Arc::clone(&executor);
        let done = done_rx.clone();
        let spawned = thread::Builder::new()
            .name(format!("natter-smol-{i}"))
            .spawn(move || smol::block_on(executor.run(done.recv())));
        if let Err(e) = spawned {
            log::warn!("running on {i} threads: cannot start more: {e}");
            break;
        }
    }

    let config = args.config();
    let serve = server::serve(Arc::clone(&executor), args.listen, config, stop_rx);
    let result = smol::block_on(executor.run(serve));
    done_tx.close();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Sends the logs to stderr at `level`, unless `RUST_LOG` says otherwise.
fn init_logging(level: &str) {
    let env = env_logger::Env::default().default_filter_or(level);
    env_logger::Builder::from_env(env)
        .format_timestamp_millis()
        .init();
}

/// Starts a thread that turns SIGINT and SIGTERM into a stop request; a
/// second signal ends the process at once.
fn watch_signals(stop: async_channel::Sender<()>) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    thread::Builder::new()
        .name("natter-smol-signals".into())
        .spawn(move || {
            let mut seen = 0;
            for signal in signals.forever() {
                seen += 1;
                if seen > 1 {
                    log::warn!("second signal {signal}: exiting now");
                    std::process::exit(1);
                }
                log::info!("signal {signal}: shutting down");
                let _ = stop.try_send(());
            }
        })?;
    Ok(())
}
