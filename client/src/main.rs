//! natter, the terminal chat client.
//!
//! `natter [--server URL] [--name NAME] [--room CODE] [--ca-file PATH]`
//! joins a room on a natter server (default `ws://127.0.0.1:8080`; `wss://`
//! uses TLS, trusting the public roots and the `--ca-file` ones; a path in
//! the URL is a prefix, see [`server_url`]). With a
//! terminal on both stdin and stdout it runs full screen; otherwise it runs
//! in line mode (see [`line`]) for scripts. Logs go to stderr, only when
//! `RUST_LOG` is set.

/// Writes a line to stderr like `eprintln!`, but never panics: a closed or
/// broken stderr (a pipe whose reader left) must not crash the client.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod args;
mod event;
mod input;
mod keys;
mod line;
mod net;
mod render;
mod retry;
mod sanitize;
mod server_url;
mod state;
mod tui;

use std::io::{self, BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Mutex;

use clap::Parser;
use natter_core::config::ServerConfig;
use natter_core::names::InvalidName;

use crate::args::Args;
use crate::net::NetConfig;
use crate::server_url::ServerUrl;
use crate::state::ClientState;

/// Exit code for bad flags or missing input.
const USAGE: u8 = 2;

/// A panic's message, kept until the terminal is restored.
static PANIC_MESSAGE: Mutex<Option<String>> = Mutex::new(None);

fn main() -> ExitCode {
    let args = Args::parse();
    let interactive = io::stdin().is_terminal() && io::stdout().is_terminal();

    // Logs go to stderr, and never onto the full screen.
    if std::env::var_os("RUST_LOG").is_some() {
        if interactive && io::stderr().is_terminal() {
            say!("natter: RUST_LOG ignored: stderr is the screen; redirect it (2>file)");
        } else {
            env_logger::Builder::from_default_env()
                .target(env_logger::Target::Stderr)
                .init();
        }
    }

    let url = match ServerUrl::parse(args.server.trim()) {
        Ok(url) => url,
        Err(e) => return usage(&format!("bad --server {:?}: {e}", args.server)),
    };
    let name = match resolve(args.name, "name", args::parse_name) {
        Ok(name) => name,
        Err(message) => return usage(&message),
    };
    let room = match resolve(args.room, "room", args::parse_room) {
        Ok(room) => room,
        Err(message) => return usage(&message),
    };
    let extra_roots = match &args.ca_file {
        None => Vec::new(),
        Some(_) if !url.ws_url().is_secure() => {
            return usage("--ca-file applies only to a wss:// server");
        }
        Some(path) => match net::read_ca_file(path) {
            Ok(roots) => roots,
            Err(message) => return usage(&format!("bad --ca-file {}: {message}", path.display())),
        },
    };
    let config = NetConfig {
        url,
        name,
        room,
        session_id: args::new_session_id(),
        max_failures: None,
        retry: retry::RetryPolicy::default(),
        extra_roots,
    };
    log::info!(
        "joining {} on {} as {}",
        config.room,
        config.url,
        config.session_id
    );

    let max_line_bytes = ServerConfig::default().max_chat_bytes;
    if interactive {
        run_tui(config, max_line_bytes)
    } else {
        ExitCode::from(clamp_code(line::run(config, max_line_bytes)))
    }
}

/// Runs the full-screen client, restoring the terminal before any panic
/// message is printed.
fn run_tui(config: NetConfig, max_line_bytes: usize) -> ExitCode {
    // The hook only records: the terminal guard is still in place when it
    // runs, and the message would be lost on the alternate screen.
    std::panic::set_hook(Box::new(|info| {
        if let Ok(mut slot) = PANIC_MESSAGE.lock() {
            slot.get_or_insert_with(|| info.to_string());
        }
    }));

    let state = ClientState::new(
        config.room.as_str(),
        &config.url.to_string(),
        config.name.as_str(),
        config.session_id.as_str(),
    );
    let result = std::panic::catch_unwind(move || tui::run(state, config, max_line_bytes));
    let _ = std::panic::take_hook();

    // The guard is dropped by now, on every path, so the screen is back.
    if let Some(message) = PANIC_MESSAGE.lock().ok().and_then(|mut m| m.take()) {
        say!("natter: {message}");
        return ExitCode::from(101);
    }
    match result {
        Ok(Ok(code)) => ExitCode::from(clamp_code(code)),
        Ok(Err(e)) => {
            say!("natter: terminal error: {e}");
            ExitCode::FAILURE
        }
        Err(_) => ExitCode::from(101),
    }
}

/// Takes a flag's value, or asks for one when stdin is a terminal.
fn resolve<T>(
    given: Option<String>,
    what: &str,
    parse: fn(&str) -> Result<T, InvalidName>,
) -> Result<T, String> {
    if let Some(text) = given {
        return parse(&text).map_err(|e| format!("bad --{what}: {e}"));
    }
    if !io::stdin().is_terminal() {
        return Err(format!("--{what} is required when stdin is not a terminal"));
    }

    // Ask on stderr so that a redirected stdout stays clean.
    let stdin = io::stdin();
    loop {
        eprint!("{what}: ");
        let _ = io::stderr().flush();
        let mut line = String::new();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => return Err(format!("no {what} given")),
            Ok(_) => {}
        }
        match parse(line.trim_end_matches(['\r', '\n'])) {
            Ok(value) => return Ok(value),
            Err(e) => say!("{e}; try again"),
        }
    }
}

/// Prints a usage error and returns its exit code.
fn usage(message: &str) -> ExitCode {
    say!("natter: {}", sanitize::sanitize(message));
    ExitCode::from(USAGE)
}

/// Fits an exit code into the byte a process returns.
fn clamp_code(code: i32) -> u8 {
    u8::try_from(code).unwrap_or(1)
}
