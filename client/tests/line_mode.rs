//! Line mode against a live natter-smol: two `natter` processes join one
//! room through pipes, see each other arrive, talk and leave.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::Duration;

use natter_conformance::server::{locate_binary, ServerProcess};

/// How long to wait for a line before failing instead of hanging; it only
/// catches a stuck client, nothing asserts on speed.
const WATCHDOG: Duration = Duration::from_secs(30);

/// One `natter` process in line mode.
struct Client {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Client {
    /// Starts `natter` with pipes for stdin and stdout.
    fn start(server: &ServerProcess, name: &'static str, room: &str) -> Client {
        let url = format!("ws://{}", server.addr());
        let mut child = Command::new(env!("CARGO_BIN_EXE_natter"))
            .args(["--server", &url, "--name", name, "--room", room])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("natter starts");

        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Client {
            name,
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    /// Sends one chat line.
    fn say(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin still open");
        writeln!(stdin, "{text}").expect("natter reads stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Reads lines until one equals `wanted` (after its `[seq] ` prefix, if
    /// any) and returns the whole line.
    fn expect(&mut self, wanted: &str) -> String {
        loop {
            let Ok(line) = self.lines.recv_timeout(WATCHDOG) else {
                panic!(
                    "{} never printed {wanted:?}; it printed {:?}",
                    self.name, self.seen
                );
            };
            self.seen.push(line.clone());
            let body = match line.split_once("] ") {
                Some((seq, body)) if seq.starts_with('[') => body,
                _ => line.as_str(),
            };
            if body == wanted {
                return line;
            }
        }
    }

    /// Closes stdin and waits for the process to exit.
    fn finish(mut self) -> ExitStatus {
        drop(self.stdin.take());
        let (tx, rx) = mpsc::channel();
        let mut child = self.child;
        thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        match rx.recv_timeout(WATCHDOG) {
            Ok(status) => status.expect("wait for natter"),
            Err(_) => panic!("{} did not exit after the end of its stdin", self.name),
        }
    }
}

/// Returns the `seq` of a `[seq] ...` line.
fn seq(line: &str) -> u64 {
    line.trim_start_matches('[')
        .split(']')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no seq in {line:?}"))
}

#[test]
fn two_line_mode_clients_talk_through_natter_smol() {
    let binary = locate_binary("natter-smol", "natter-smol");
    let server = ServerProcess::start(&binary, &[]).expect("natter-smol starts");
    let room = "line-mode";

    let mut ana = Client::start(&server, "ana", room);
    ana.expect("welcome room=line-mode seq=1 users=1 you=ana");
    let mut bo = Client::start(&server, "bo", room);
    bo.expect("welcome room=line-mode seq=2 users=2 you=bo");
    ana.expect("* bo joined");

    // Both see each line, the sender included, with the same seq.
    ana.say("hello from ana");
    let at_bo = bo.expect("<ana> hello from ana");
    let at_ana = ana.expect("<ana> hello from ana");
    assert_eq!(seq(&at_bo), seq(&at_ana));

    // Escape sequences from the network arrive inert; wide text intact.
    bo.say("\u{1b}[31mred 日本語");
    ana.expect("<bo> \u{241b}[31mred 日本語");

    let status = bo.finish();
    assert!(status.success(), "bo exited with {status}");
    ana.expect("* bo left");

    let status = ana.finish();
    assert!(status.success(), "ana exited with {status}");
    server.terminate().expect("natter-smol stops");
}

#[test]
fn a_missing_name_without_a_terminal_exits_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_natter"))
        .args(["--room", "lobby"])
        .stdin(Stdio::null())
        .output()
        .expect("natter runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--name is required"), "{stderr}");
}

#[test]
fn an_invalid_room_is_refused_before_connecting() {
    let output = Command::new(env!("CARGO_BIN_EXE_natter"))
        .args([
            "--name",
            "ana",
            "--room",
            "no spaces",
            "--server",
            "ws://127.0.0.1:9",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("natter runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("room_code may not contain ' '"), "{stderr}");
}

#[test]
fn a_query_or_fragment_in_the_server_url_exits_2_before_connecting() {
    for server in ["ws://127.0.0.1:9/chat?room=x", "ws://127.0.0.1:9/chat#top"] {
        let output = Command::new(env!("CARGO_BIN_EXE_natter"))
            .args(["--name", "ana", "--room", "lobby", "--server", server])
            .stdin(Stdio::null())
            .output()
            .expect("natter runs");
        assert_eq!(output.status.code(), Some(2), "{server}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("bad --server"), "{server}: {stderr}");
    }
}

#[test]
fn a_closed_stderr_does_not_crash_the_client() {
    // Nothing listens on the port: the client reports each failed attempt
    // on stderr, whose reader is gone, then gives up with status 1.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_natter"))
        .args(["--server", &format!("ws://127.0.0.1:{port}")])
        .args(["--name", "ana", "--room", "lobby"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start natter");
    drop(child.stderr.take());
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"hi\n");
    }

    let status = child.wait().expect("natter exits");
    assert_eq!(status.code(), Some(1), "{status}");
}
