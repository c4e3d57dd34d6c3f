//! Strict verdicts, graded the way Autobahn grades its cases: the events must
//! match exactly and in order, the close must come with an accepted code, and
//! a connection that must fail fast must fail no later than the vector says.

use crate::expr::describe;
use crate::vector::{EventKind, Expected, WsCase};
use crate::wire::Seen;

/// What happened while a case ran.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    /// The server's events other than its close, in order.
    pub events: Vec<Seen>,
    /// The server's close code (`None` for a close without one) and the
    /// number of deliveries handed over before it was seen.
    pub close: Option<(Option<u16>, usize)>,
    /// The number of deliveries the case has.
    pub deliveries: usize,
    /// Whether the harness had sent its own close when the server's came.
    pub closed_by_harness: bool,
    /// Anything else that went wrong (timeouts, transport errors, frames
    /// after the close), each a failure.
    pub problems: Vec<String>,
}

impl Observation {
    /// Records one event seen after `delivered` deliveries.
    pub fn record(&mut self, seen: Seen, delivered: usize, harness_closed: bool) {
        if self.close.is_some() {
            self.problems
                .push(format!("{} after the close", seen.describe()));
            return;
        }
        match seen {
            Seen::Close(code, _) => {
                self.close = Some((code, delivered));
                self.closed_by_harness = harness_closed;
            }
            other => self.events.push(other),
        }
    }

    /// Tells whether the events seen so far are exactly those `case`
    /// expects, which is when the harness may start its close.
    pub fn has_expected_events(&self, case: &WsCase) -> bool {
        accepted_lists(case).contains(&self.events)
    }

    /// Tells whether the events seen so far could still become those
    /// expected (a prefix of them).
    pub fn is_on_track(&self, case: &WsCase) -> bool {
        accepted_lists(case).iter().any(|expected| {
            self.events.len() <= expected.len()
                && self
                    .events
                    .iter()
                    .zip(expected)
                    .all(|(seen, want)| seen == want)
        })
    }

    /// Describes what was seen, one item per event, for a report.
    pub fn describe(&self) -> Vec<String> {
        let mut lines: Vec<String> = compress(self.events.iter().map(Seen::describe));
        match self.close {
            Some((code, delivered)) => {
                let code = code.map_or("without code".to_owned(), |c| c.to_string());
                lines.push(format!(
                    "close {code} after delivery {delivered} of {}",
                    self.deliveries
                ));
            }
            None => lines.push("no close".to_owned()),
        }
        lines.extend(self.problems.iter().map(|p| format!("problem: {p}")));
        lines
    }
}

/// Collapses runs of equal lines into `N x line`.
fn compress(lines: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for line in lines {
        match out.last_mut() {
            Some((count, last)) if *last == line => *count += 1,
            _ => out.push((1, line)),
        }
    }
    out.into_iter()
        .map(|(count, line)| {
            if count == 1 {
                line
            } else {
                format!("{count}x {line}")
            }
        })
        .collect()
}

/// Returns every event list `case` accepts, expanded: its main list first,
/// then its alternatives.
pub fn accepted_lists(case: &WsCase) -> Vec<Vec<Seen>> {
    let mut lists = vec![expected_events(&case.expect)];
    lists.extend(case.alternatives.iter().map(|a| expected_events(&a.expect)));
    lists
}

/// Returns the events of `list`, expanded.
pub fn expected_events(list: &[Expected]) -> Vec<Seen> {
    let mut out = Vec::new();
    for expected in list {
        let bytes = expected.payload.eval();
        for _ in 0..expected.times {
            out.push(match expected.kind {
                EventKind::Text => Seen::Text(bytes.clone()),
                EventKind::Binary => Seen::Binary(bytes.clone()),
                EventKind::Pong => Seen::Pong(bytes.clone()),
            });
        }
    }
    out
}

/// Returns the first place where `seen` differs from what `case` expects.
fn first_difference(expected: &[Seen], seen: &[Seen]) -> Option<String> {
    for index in 0..expected.len().max(seen.len()) {
        match (expected.get(index), seen.get(index)) {
            (Some(want), Some(got)) if want == got => continue,
            (Some(want), Some(got)) => {
                return Some(format!(
                    "event {}: expected {}, saw {}",
                    index + 1,
                    want.describe(),
                    got.describe()
                ))
            }
            (Some(want), None) => {
                return Some(format!(
                    "event {}: expected {}, saw nothing",
                    index + 1,
                    want.describe()
                ))
            }
            (None, Some(got)) => {
                return Some(format!(
                    "event {}: unexpected {}",
                    index + 1,
                    got.describe()
                ))
            }
            (None, None) => break,
        }
    }
    None
}

/// Describes what `case` expects, one item per line, for a report.
pub fn describe_expectation(case: &WsCase) -> Vec<String> {
    let mut lines: Vec<String> = case.expect.iter().map(describe_expected).collect();
    for alternative in &case.alternatives {
        let events: Vec<String> = alternative.expect.iter().map(describe_expected).collect();
        let events = if events.is_empty() {
            "no events".to_owned()
        } else {
            events.join(", ")
        };
        lines.push(format!("or {events} ({})", alternative.label));
    }
    if let Some(code) = case.then_close {
        lines.push(format!("(harness closes with {code})"));
    }
    lines.push(
        case.close
            .to_string()
            .trim_start_matches("expect ")
            .to_owned(),
    );
    lines
}

/// Describes one expected event.
fn describe_expected(e: &Expected) -> String {
    let kind = match e.kind {
        EventKind::Text => "text",
        EventKind::Binary => "binary",
        EventKind::Pong => "pong",
    };
    let times = if e.times == 1 {
        String::new()
    } else {
        format!("{}x ", e.times)
    };
    let payload = if e.payload.len() > 64 {
        e.payload.to_string()
    } else {
        describe(&e.payload.eval())
    };
    format!("{times}{kind} {payload}")
}

/// Judges an observation: `Ok` when the case passed (with the label of the
/// alternative that matched, if the main events did not), otherwise every
/// reason it failed.
///
/// # Errors
///
/// Returns the failures, each a sentence saying what was expected and what
/// was seen.
pub fn judge(case: &WsCase, seen: &Observation) -> Result<Option<String>, Vec<String>> {
    let mut failures = Vec::new();
    let mut accepted_as = None;

    if let Some(difference) = first_difference(&expected_events(&case.expect), &seen.events) {
        let alternative = case
            .alternatives
            .iter()
            .find(|a| expected_events(&a.expect) == seen.events);
        match alternative {
            Some(alternative) => accepted_as = Some(alternative.label.clone()),
            None if case.alternatives.is_empty() => failures.push(difference),
            None => failures.push(format!("{difference} (no alternative matches either)")),
        }
    }

    let codes = &case.close.codes;
    let wanted = case.close.to_string();
    let wanted = wanted.trim_start_matches("expect ");
    match seen.close {
        None => failures.push(format!("expected {wanted}, saw no close")),
        Some((code, _)) if !codes.contains(&code) => {
            let got = code.map_or("a close without code".to_owned(), |c| format!("close {c}"));
            failures.push(format!("expected {wanted}, saw {got}"));
        }
        Some(_) => {}
    }

    if let (Some(limit), Some((_, delivered))) = (case.close.by_delivery, seen.close) {
        if delivered > limit {
            failures.push(format!(
                "failed late: the close had to follow delivery {limit} of {}, \
                 it followed {delivered}",
                seen.deliveries
            ));
        }
    }
    if case.then_close.is_some() && seen.close.is_some() && !seen.closed_by_harness {
        failures.push("the server closed before the harness started the closing handshake".into());
    }

    failures.extend(seen.problems.iter().cloned());
    if failures.is_empty() {
        Ok(accepted_as)
    } else {
        Err(failures)
    }
}
