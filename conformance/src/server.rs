//! A natter server binary run as a child process for the live tests.
//!
//! [`ServerProcess::start`] runs a server on `127.0.0.1:0`, learns the port
//! it bound from its `listening on ADDR` log line, and keeps reading its
//! stderr so the child never blocks on a full pipe. [`locate_binary`] finds
//! (or builds) the binary of a workspace package.

use std::collections::VecDeque;
use std::io::{self, BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Time a server gets to print its listen address after it starts.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Time a server gets to exit after SIGTERM before it is killed.
const TERMINATE_TIMEOUT: Duration = Duration::from_secs(10);

/// Number of stderr lines kept for error messages.
const KEPT_LINES: usize = 200;

/// The marker the servers log once they accept connections.
const LISTEN_MARKER: &str = "listening on ";

/// A running server child process, killed when dropped.
///
/// # Examples
///
/// ```no_run
/// use natter_conformance::server::{locate_binary, ServerProcess};
///
/// let binary = locate_binary("natter-smol", "natter-smol");
/// let server = ServerProcess::start(&binary, &["--echo"])?;
/// println!("serving on {}", server.addr());
/// let status = server.terminate()?;
/// assert!(status.success());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl ServerProcess {
    /// Starts `binary --listen 127.0.0.1:0 EXTRA_ARGS` and waits for its listen address.
    ///
    /// # Errors
    ///
    /// Fails when the binary cannot be spawned, exits before it listens, or
    /// prints no `listening on ADDR` line within ten seconds; the error names
    /// the last lines it wrote.
    pub fn start(binary: &Path, extra_args: &[&str]) -> io::Result<ServerProcess> {
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("spawn {}: {e}", binary.display())))?;

        let Some(stderr) = child.stderr.take() else {
            let _ = child.kill();
            return Err(io::Error::other("child has no stderr pipe"));
        };
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (addr_tx, addr_rx) = mpsc::channel();
        spawn_stderr_reader(stderr, Arc::clone(&log), addr_tx);

        let mut process = ServerProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        match addr_rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => {
                process.addr = addr;
                Ok(process)
            }
            Err(_) => {
                let status = process.child.try_wait().ok().flatten();
                let why = match status {
                    Some(status) => format!("server exited ({status}) before listening"),
                    None => "server printed no listen address in time".to_string(),
                };
                Err(io::Error::other(format!(
                    "{why}; stderr:\n{}",
                    process.recent_log()
                )))
            }
        }
    }

    /// Returns the address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Returns the process id of the server.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Returns the last lines the server wrote to stderr, joined by newlines.
    pub fn recent_log(&self) -> String {
        // Wait briefly for the reader thread to take in what the child wrote last.
        thread::sleep(Duration::from_millis(20));
        match self.log.lock() {
            Ok(lines) => lines.iter().cloned().collect::<Vec<_>>().join("\n"),
            Err(_) => String::from("(log unavailable)"),
        }
    }

    /// Returns whether any stderr line so far contains `needle`.
    pub fn log_contains(&self, needle: &str) -> bool {
        match self.log.lock() {
            Ok(lines) => lines.iter().any(|line| line.contains(needle)),
            Err(_) => false,
        }
    }

    /// Returns the exit status if the server has exited, without waiting.
    ///
    /// # Errors
    ///
    /// Fails when the operating system cannot report on the child.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.child.try_wait()
    }

    /// Sends SIGTERM to the server without waiting for it to exit.
    ///
    /// # Errors
    ///
    /// Fails when the `kill` command cannot be run or reports failure.
    pub fn signal_terminate(&self) -> io::Result<()> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!("kill -TERM failed: {status}")))
        }
    }

    /// Waits up to `timeout` for the server to exit and returns its status.
    ///
    /// # Errors
    ///
    /// Fails with `TimedOut` when the server is still running at the deadline.
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("server still running; stderr:\n{}", self.recent_log()),
                ));
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends SIGTERM, waits for the server to exit and returns its status.
    ///
    /// # Errors
    ///
    /// Fails when the signal cannot be sent or the server has not exited
    /// within ten seconds (it is then killed).
    pub fn terminate(mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            return Ok(status);
        }
        self.signal_terminate()?;
        self.wait_timeout(TERMINATE_TIMEOUT)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Reads the child's stderr to its end, keeping the last lines and sending
/// the listen address once it appears.
fn spawn_stderr_reader(
    stderr: std::process::ChildStderr,
    log: Arc<Mutex<VecDeque<String>>>,
    addr_tx: mpsc::Sender<SocketAddr>,
) {
    thread::spawn(move || {
        let mut addr_tx = Some(addr_tx);
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };

            if let Some(addr) = addr_tx.as_ref().and_then(|_| parse_listen_line(&line)) {
                if let Some(tx) = addr_tx.take() {
                    let _ = tx.send(addr);
                }
            }

            if let Ok(mut lines) = log.lock() {
                if lines.len() == KEPT_LINES {
                    lines.pop_front();
                }
                lines.push_back(line);
            }
        }
    });
}

/// Returns the socket address after `listening on ` in a log line.
fn parse_listen_line(line: &str) -> Option<SocketAddr> {
    let start = line.find(LISTEN_MARKER)? + LISTEN_MARKER.len();
    let rest = &line[start..];
    // The address ends at the first character no socket address holds, such
    // as a space, a comma or the escape of a colour code.
    let end = rest
        .find(|c: char| !(c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Returns the path of the binary `name` from `package`, building it if needed.
///
/// The binary is looked for in the target profile directory of the running
/// test (`target/<profile>/`, found from the current executable, which sits
/// there or in its `deps/`). When it is missing, `cargo build -p PACKAGE
/// --bin NAME` is run with the same profile (`$CARGO` or `cargo`).
///
/// # Panics
///
/// Panics when the binary is missing and cannot be built: the tests that
/// call this cannot run without it.
pub fn locate_binary(name: &str, package: &str) -> PathBuf {
    let profile_dir = profile_dir();
    let file_name = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    if let Some(dir) = &profile_dir {
        let candidate = dir.join(&file_name);
        if candidate.is_file() {
            return candidate;
        }
    }

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command.args(["build", "--quiet", "-p", package, "--bin", name]);
    let profile = profile_dir
        .as_ref()
        .and_then(|dir| dir.file_name())
        .and_then(|p| p.to_str())
        .map(str::to_string);
    match profile.as_deref() {
        Some("release") => {
            command.arg("--release");
        }
        Some(other) if other != "debug" => {
            command.args(["--profile", other]);
        }
        _ => {}
    }
    if let Some(target_dir) = profile_dir.as_ref().and_then(|d| d.parent()) {
        command.arg("--target-dir").arg(target_dir);
    }

    let status = command.status();
    assert!(
        matches!(status, Ok(s) if s.success()),
        "cargo build of {name} failed: {status:?}"
    );
    let dir = profile_dir.unwrap_or_else(|| PathBuf::from("target/debug"));
    dir.join(file_name)
}

/// Returns `target/<profile>` for the running executable, if it can be found.
fn profile_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().map(Path::to_path_buf)
    } else {
        Some(dir.to_path_buf())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_line_yields_its_address() {
        let line = "[2026-01-01T00:00:00Z INFO  natter_smol] listening on 127.0.0.1:4242";
        assert_eq!(
            parse_listen_line(line),
            Some(SocketAddr::from(([127, 0, 0, 1], 4242)))
        );
        let coloured = "\u{1b}[32mINFO\u{1b}[0m listening on 127.0.0.1:9\u{1b}[0m";
        assert_eq!(
            parse_listen_line(coloured),
            Some(SocketAddr::from(([127, 0, 0, 1], 9)))
        );
        let with_limits = "listening on [::1]:80, max connections 10";
        assert_eq!(with_limits.find(LISTEN_MARKER), Some(0));
        assert!(parse_listen_line(with_limits).is_some());
    }

    #[test]
    fn other_lines_yield_nothing() {
        assert_eq!(parse_listen_line("starting"), None);
        assert_eq!(parse_listen_line("listening on nowhere"), None);
    }
}
