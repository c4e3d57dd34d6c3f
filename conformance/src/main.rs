//! `natter-conformance`: replays the WebSocket, chat and HTTP vectors against a
//! live server (`--server` or `--spawn`), or rewrites the generated vector
//! files (`--generate`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Parser;
use natter_conformance::chat::{judge_chat, ChatCase};
use natter_conformance::http::{judge_http, run_live, HttpCase};
use natter_conformance::load::{
    chat_cases, default_vectors_dir, glob_matches, write_generated, ws_cases,
};
use natter_conformance::server::{locate_binary, ServerProcess};
use natter_conformance::vector::WsCase;
use natter_conformance::verdict::{describe_expectation, judge, Observation};
use natter_conformance::{live, live_chat};
use serde_json::json;

/// Replays natter's conformance vectors against a live server.
#[derive(Debug, Parser)]
#[command(name = "natter-conformance")]
struct Args {
    /// The server to test, such as ws://127.0.0.1:9001 (its /echo is used).
    #[arg(long, value_name = "URL", conflicts_with = "spawn")]
    server: Option<String>,
    /// Start this server (smol or std) on 127.0.0.1:0 with --echo and
    /// otherwise default flags, test it, and stop it.
    #[arg(long, value_name = "BACKEND")]
    spawn: Option<String>,
    /// Run only the cases whose id matches this glob, such as `6.4.*`.
    #[arg(long, value_name = "GLOB", default_value = "*")]
    cases: String,
    /// Where to write the JSON report.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Cases run at once.
    #[arg(long, default_value_t = 4)]
    jobs: usize,
    /// Seconds each wait for the server may take.
    #[arg(long, default_value_t = 5)]
    timeout: u64,
    /// The vectors directory.
    #[arg(long, value_name = "DIR")]
    vectors: Option<PathBuf>,
    /// Rewrite the generated vector files instead of testing.
    #[arg(long)]
    generate: bool,
}

/// One case's result.
struct Outcome {
    seen: Observation,
    failures: Vec<String>,
    /// The label of the accepted alternative that matched, if one did.
    alternative: Option<String>,
    millis: u128,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let vectors = args.vectors.clone().unwrap_or_else(default_vectors_dir);
    if args.generate {
        return match write_generated(&vectors) {
            Ok(count) => {
                println!("wrote {count} vector files under {}", vectors.display());
                ExitCode::SUCCESS
            }
            Err(error) => fail(&format!("cannot write the vectors: {error}")),
        };
    }

    let cases = match ws_cases(&vectors) {
        Ok(cases) => cases,
        Err(error) => return fail(&format!("cannot read the vectors: {error}")),
    };
    let cases: Vec<WsCase> = cases
        .into_iter()
        .filter(|case| glob_matches(&args.cases, &case.id))
        .collect();

    // The spawned server lives until the end of main and is killed on drop.
    let (addr, _server) = match target(&args) {
        Ok(target) => target,
        Err(error) => return fail(&error),
    };
    let report = args
        .report
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("reports/report.json"));
    let http = match http_cases(&vectors, &args.cases) {
        Ok(http) => http,
        Err(error) => return fail(&format!("cannot read the http vectors: {error}")),
    };
    let chat = match chat_cases(&vectors) {
        Ok(chat) => chat
            .into_iter()
            .filter(|case| glob_matches(&args.cases, &case.id))
            .collect::<Vec<_>>(),
        Err(error) => return fail(&format!("cannot read the chat vectors: {error}")),
    };
    let mut tally = Tally::default();
    run_all(addr, &cases, &args, &mut tally);
    run_chat(addr, &chat, &args, &mut tally);
    run_http(addr, &http, &args, &mut tally);
    tally.finish(&report)
}

/// Counts and report entries of a whole run.
#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    entries: Vec<serde_json::Value>,
}

impl Tally {
    /// Prints and records a case that was not run, under `label`
    /// (`UNSUPPORTED` or `NOT RUN`), with the reason.
    fn skip(&mut self, label: &str, id: &str, reason: &str) {
        println!("{label} {id} {reason}");
        let verdict = label.to_lowercase();
        self.entries
            .push(json!({"id": id, "verdict": verdict, "reason": reason}));
    }

    /// Prints and records a case that ran: its PASS or FAIL line, then the
    /// `notes` for that verdict, then each failure; `details` joins the
    /// report entry.
    fn record(
        &mut self,
        case: (&str, &str),
        failures: &[String],
        notes: &[String],
        millis: u128,
        details: serde_json::Value,
    ) {
        let (id, about) = case;
        let passed = failures.is_empty();
        if passed {
            self.passed += 1;
            println!("PASS {id} ({millis} ms) {about}");
        } else {
            self.failed += 1;
            println!("FAIL {id} {about}");
        }
        for note in notes {
            println!("     {note}");
        }
        for failure in failures {
            println!("     - {failure}");
        }

        let mut entry = json!({
            "id": id,
            "about": about,
            "verdict": if passed { "pass" } else { "fail" },
            "failures": failures,
            "millis": millis as u64,
        });
        if let (Some(entry), serde_json::Value::Object(details)) = (entry.as_object_mut(), details)
        {
            entry.extend(details);
        }
        self.entries.push(entry);
    }

    /// Writes the report, prints the summary line, and picks the exit code.
    fn finish(self, report: &Path) -> ExitCode {
        let document = json!({
            "passed": self.passed,
            "failed": self.failed,
            "cases": self.entries,
        });
        if let Err(error) = write_report(report, &document) {
            eprintln!("warning: cannot write {}: {error}", report.display());
        }
        println!("{} passed, {} failed", self.passed, self.failed);
        if self.failed == 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }
}

/// Reads the HTTP cases whose id matches `glob`.
fn http_cases(vectors: &Path, glob: &str) -> std::io::Result<Vec<HttpCase>> {
    let mut cases = natter_conformance::load::http_cases(vectors)?;
    cases.retain(|case| glob_matches(glob, &case.id));
    Ok(cases)
}

/// Says which server a case needs when it is not the one under test.
fn needs_server(flags: &[String]) -> String {
    if flags.is_empty() {
        "needs a server started without --echo".to_owned()
    } else {
        format!("needs a server started with {}", flags.join(" "))
    }
}

/// Runs the HTTP cases; those needing other server flags get a server of
/// their own under `--spawn`, and are listed as not run against `--server`.
fn run_http(addr: SocketAddr, cases: &[HttpCase], args: &Args, tally: &mut Tally) {
    let timeout = Duration::from_secs(args.timeout);
    let default_flags = vec!["--echo".to_owned()];

    for case in cases {
        let flags = case.server_flags();
        let skip = match &case.unsupported {
            Some(reason) => Some(("UNSUPPORTED", reason.clone())),
            None if flags != default_flags && args.spawn.is_none() => {
                Some(("NOT RUN", needs_server(&flags)))
            }
            None => None,
        };
        if let Some((label, reason)) = skip {
            tally.skip(label, &case.id, &reason);
            continue;
        }

        let started = Instant::now();
        let result = if flags == default_flags {
            run_live(addr, case, timeout)
        } else {
            spawn_for(args, &flags)
                .and_then(|(server_addr, _server)| run_live(server_addr, case, timeout))
        };
        let failures = match result.map_err(|e| vec![e]) {
            Ok(response) => judge_http(case, &response).err().unwrap_or_default(),
            Err(failures) => failures,
        };
        let case_id = (case.id.as_str(), case.about.as_str());
        let millis = started.elapsed().as_millis();
        tally.record(case_id, &failures, &[], millis, json!({}));
    }
}

/// Starts the `--spawn` backend with `flags`.
fn spawn_for(args: &Args, flags: &[String]) -> Result<(SocketAddr, ServerProcess), String> {
    let name = backend_binary(args.spawn.as_deref())?;
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = ServerProcess::start(&locate_binary(name, name), &flags)
        .map_err(|error| format!("cannot start {name}: {error}"))?;
    Ok((server.addr(), server))
}

/// Returns the binary of a `--spawn` backend name.
fn backend_binary(spawn: Option<&str>) -> Result<&'static str, String> {
    match spawn {
        Some("smol") => Ok("natter-smol"),
        Some("std") => Ok("natter-std"),
        Some(other) => Err(format!("unknown backend `{other}`: smol or std")),
        None => Err("give --server URL or --spawn smol|std".to_owned()),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// Finds the server to test, starting it when asked to.
fn target(args: &Args) -> Result<(SocketAddr, Option<ServerProcess>), String> {
    if let Some(url) = &args.server {
        let rest = url.strip_prefix("ws://").unwrap_or(url);
        let host = rest.split('/').next().unwrap_or(rest);
        let addr = host
            .parse()
            .map_err(|_| format!("`{url}` is not ws://IP:PORT"))?;
        return Ok((addr, None));
    }

    let name = backend_binary(args.spawn.as_deref())?;
    let binary = locate_binary(name, name);
    let server = ServerProcess::start(&binary, &["--echo"])
        .map_err(|error| format!("cannot start {name}: {error}"))?;
    Ok((server.addr(), Some(server)))
}

/// One chat case's result.
struct ChatOutcome {
    failures: Vec<String>,
    /// What each member received, one line per member.
    seen: Vec<String>,
    millis: u128,
}

/// Runs the chat cases, a few at once, each in rooms of its own, and prints
/// one line each (with what every member expected and saw, on failure).
fn run_chat(addr: SocketAddr, cases: &[ChatCase], args: &Args, tally: &mut Tally) {
    let timeout = Duration::from_secs(args.timeout);
    let run = run_tag();
    let skip = |case: &ChatCase| case.unsupported.is_some();
    let results = run_parallel(cases, args.jobs, skip, |index, case| {
        let started = Instant::now();
        let tag = format!("{run}-{index}");
        let seen = live_chat::run_chat_case(addr, case, &tag, timeout);
        let failures = judge_chat(case, &seen).err().unwrap_or_default();
        let lines = seen
            .seen
            .iter()
            .map(|(member, lines)| format!("{member}: {}", lines.join(" | ")))
            .collect();
        ChatOutcome {
            failures,
            seen: lines,
            millis: started.elapsed().as_millis(),
        }
    });

    for (case, result) in cases.iter().zip(results) {
        let Some(ChatOutcome {
            failures,
            seen,
            millis,
        }) = result
        else {
            let reason = case.unsupported.as_deref().unwrap_or("not run");
            tally.skip("UNSUPPORTED", &case.id, reason);
            continue;
        };
        let case_id = (case.id.as_str(), case.about.as_str());
        tally.record(case_id, &failures, &[], millis, json!({ "seen": seen }));
    }
}

/// Returns a short tag unique to this run, for room codes.
fn run_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}{:x}", std::process::id(), nanos & 0xff_ffff)
}

/// Runs `run` on every case `skip` does not exclude, `jobs` at a time on
/// scoped threads; returns each case's outcome in case order (`None` for a
/// skipped one).
fn run_parallel<C: Sync, O: Send>(
    cases: &[C],
    jobs: usize,
    skip: impl Fn(&C) -> bool + Sync,
    run: impl Fn(usize, &C) -> O + Sync,
) -> Vec<Option<O>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<O>>> = Mutex::new((0..cases.len()).map(|_| None).collect());

    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(case) = cases.get(index) else {
                    return;
                };
                if skip(case) {
                    continue;
                }
                let outcome = run(index, case);
                if let Ok(mut results) = results.lock() {
                    results[index] = Some(outcome);
                }
            });
        }
    });
    results.into_inner().unwrap_or_default()
}

/// Runs every case, a few at once, prints one line each and the summary,
/// and writes the report.
fn run_all(addr: SocketAddr, cases: &[WsCase], args: &Args, tally: &mut Tally) {
    let timeout = Duration::from_secs(args.timeout);
    let skip = |case: &WsCase| case.unsupported.is_some();
    let results = run_parallel(cases, args.jobs, skip, |_, case| {
        let started = Instant::now();
        let seen = live::run_case(addr, case, timeout);
        let (alternative, failures) = match judge(case, &seen) {
            Ok(alternative) => (alternative, Vec::new()),
            Err(failures) => (None, failures),
        };
        Outcome {
            seen,
            failures,
            alternative,
            millis: started.elapsed().as_millis(),
        }
    });
    summarise(cases, &results, tally);
}

fn summarise(cases: &[WsCase], results: &[Option<Outcome>], tally: &mut Tally) {
    for (case, outcome) in cases.iter().zip(results) {
        let Some(outcome) = outcome else {
            let reason = case.unsupported.as_deref().unwrap_or("not run");
            tally.skip("UNSUPPORTED", &case.id, reason);
            continue;
        };

        let expected = describe_expectation(case);
        let seen = outcome.seen.describe();
        let notes = if outcome.failures.is_empty() {
            let accepted = outcome.alternative.iter();
            accepted
                .map(|alternative| format!("accepted as: {alternative}"))
                .collect()
        } else {
            vec![
                format!("expected: {}", expected.join("; ")),
                format!("seen:     {}", seen.join("; ")),
            ]
        };
        let details = json!({
            "expected": expected,
            "seen": seen,
            "alternative": outcome.alternative,
        });
        let case_id = (case.id.as_str(), case.about.as_str());
        tally.record(case_id, &outcome.failures, &notes, outcome.millis, details);
    }
}

fn write_report(path: &Path, document: &serde_json::Value) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(document).map_err(std::io::Error::other)?;
    std::fs::write(path, text)
}
