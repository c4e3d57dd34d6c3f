//! Chat vectors (`vectors/chat/*.chat`): scripted sessions of several members
//! in a room, with every object each member must receive, in order.
//!
//! A file holds cases; `#` starts a comment line. A case reads top to bottom:
//!
//! ```text
//! case chat.line-reaches-everyone
//! about A line comes back to every member, the sender in its place.
//! room lobby
//! > ana join "ana" k3J9x0aa
//! < ana {"type":"welcome","room_code":"lobby","seq":1,...}
//! > ana text "hi all"
//! < ana {"type":"message","seq":2,"user_name":"ana",...,"ts":TS}
//! > ana leave
//! < ana close 1000
//! ```
//!
//! - `room CODE`: the room the members join unless a join names another.
//!   The live runner replaces each code with one unique to the run, and maps
//!   it back in what it receives, so parallel cases never share a room.
//! - `> MEMBER join NAME SESSION [ROOM]`: `MEMBER` connects to `/joinRoom`
//!   with the user name `NAME` (a payload expression, see [`crate::expr`]),
//!   the session id `SESSION`, and the room `ROOM`.
//! - `> MEMBER text EXPR`: sends one text message; `> MEMBER burst N EXPR`
//!   sends it `N` times in one write; `> MEMBER binary EXPR` sends one
//!   binary message; `> MEMBER leave` sends a close with 1000.
//! - `> wait MS`: lets `MS` milliseconds pass (the core replay moves its
//!   clock; the live runner sleeps).
//! - `< MEMBER LINE`: what `MEMBER` must receive next: a JSON object, exact
//!   to the byte except that `TS` stands for any `ts` number; `close CODE`,
//!   the server's close frame; or `refused STATUS`, the HTTP answer to its
//!   join, which must also be a well-formed refusal.
//!
//! Each member must receive exactly its `<` lines, in order, and nothing
//! else. The order between members is not observable and not checked; the
//! runners finish a step's expectations before they take the next step.

use std::fmt;

use crate::expr::{describe, Expr};
use crate::vector::{parse_case_blocks, VectorError};

/// The placeholder for a `ts` value in an expected object.
pub const TS_PLACEHOLDER: &str = "TS";

/// What a member (or the harness) does in one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Connects to `/joinRoom`.
    Join {
        /// The user name, as sent (percent-encoded on the wire).
        user_name: String,
        /// The session id.
        session_id: String,
        /// The room code, as the case writes it.
        room: String,
    },
    /// Sends the same text message `times` times in one write.
    Text {
        /// The message's bytes (a payload expression may make them invalid
        /// UTF-8 on purpose).
        payload: Expr,
        /// How many copies go out back to back.
        times: usize,
    },
    /// Sends one binary message.
    Binary(Expr),
    /// Sends a close frame with 1000.
    Leave,
    /// Lets this many milliseconds pass.
    Wait(u64),
}

/// One `>` line and the `<` lines that follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The member acting; empty for `wait`.
    pub member: String,
    /// What it does.
    pub action: Action,
    /// What members must receive because of it: member and line, in order.
    pub expect: Vec<(String, String)>,
}

/// One chat conformance case.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChatCase {
    /// The case's id, such as `chat.rate-limit`.
    pub id: String,
    /// What it checks, in a sentence.
    pub about: String,
    /// Remarks.
    pub notes: Vec<String>,
    /// Why the case cannot apply, if it cannot.
    pub unsupported: Option<String>,
    /// The default room code.
    pub room: String,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

impl ChatCase {
    /// Returns the members in the order they first appear.
    pub fn members(&self) -> Vec<String> {
        let mut members: Vec<String> = Vec::new();
        let named = self.steps.iter().flat_map(|step| {
            std::iter::once(&step.member).chain(step.expect.iter().map(|(member, _)| member))
        });
        for member in named {
            if !member.is_empty() && !members.contains(member) {
                members.push(member.clone());
            }
        }
        members
    }

    /// Returns every line `member` must receive, in order.
    pub fn expected_for(&self, member: &str) -> Vec<String> {
        self.steps
            .iter()
            .flat_map(|step| &step.expect)
            .filter(|(who, _)| who == member)
            .map(|(_, line)| line.clone())
            .collect()
    }

    /// Returns every room code the case uses, the default room first.
    pub fn rooms(&self) -> Vec<String> {
        let mut rooms = vec![self.room.clone()];
        for step in &self.steps {
            if let Action::Join { room, .. } = &step.action {
                if !rooms.contains(room) {
                    rooms.push(room.clone());
                }
            }
        }
        rooms
    }
}

/// What each member received while a case ran.
#[derive(Debug, Clone, Default)]
pub struct ChatObservation {
    /// Per member, in [`ChatCase::members`] order: the lines received, in
    /// the form the vectors write them.
    pub seen: Vec<(String, Vec<String>)>,
    /// Anything else that went wrong, each a failure.
    pub problems: Vec<String>,
}

impl ChatObservation {
    /// Creates an observation with an empty list for each member of `case`.
    pub fn for_case(case: &ChatCase) -> ChatObservation {
        ChatObservation {
            seen: case
                .members()
                .into_iter()
                .map(|m| (m, Vec::new()))
                .collect(),
            problems: Vec::new(),
        }
    }

    /// Returns what `member` received so far.
    pub fn of(&self, member: &str) -> &[String] {
        self.seen
            .iter()
            .find(|(who, _)| who == member)
            .map_or(&[][..], |(_, lines)| lines.as_slice())
    }

    /// Records one line received by `member`.
    pub fn push(&mut self, member: &str, line: String) {
        match self.seen.iter_mut().find(|(who, _)| who == member) {
            Some((_, lines)) => lines.push(line),
            None => self.seen.push((member.to_owned(), vec![line])),
        }
    }
}

/// Returns a text message from the server in the form the vectors write it:
/// its JSON with every `ts` number replaced by [`TS_PLACEHOLDER`]. A payload
/// that is not UTF-8 is described as bytes instead.
///
/// Inside a JSON string every `"` is escaped, so `"ts":` followed by digits
/// can only be the `ts` member itself.
pub fn normalize_text(payload: &[u8]) -> String {
    let Ok(text) = std::str::from_utf8(payload) else {
        return format!("text {}", describe(payload));
    };

    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("\"ts\":") {
        let (before, after) = rest.split_at(at + "\"ts\":".len());
        out.push_str(before);
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            out.push_str(TS_PLACEHOLDER);
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// Checks what each member received against the case; every difference is
/// one failure.
///
/// # Errors
///
/// Returns the failures, each naming the member, the position, what was
/// expected and what was seen.
pub fn judge_chat(case: &ChatCase, seen: &ChatObservation) -> Result<(), Vec<String>> {
    let mut failures = Vec::new();

    for member in case.members() {
        let expected = case.expected_for(&member);
        let got = seen.of(&member);
        for index in 0..expected.len().max(got.len()) {
            let failure = match (expected.get(index), got.get(index)) {
                (Some(want), Some(saw)) if want == saw => continue,
                (Some(want), Some(saw)) => format!("expected {want}\n       saw      {saw}"),
                (Some(want), None) => format!("expected {want}\n       saw nothing"),
                (None, Some(saw)) => format!("unexpected {saw}"),
                (None, None) => break,
            };
            failures.push(format!("{member} #{}: {failure}", index + 1));
            break;
        }
    }

    failures.extend(seen.problems.iter().cloned());
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}

/// Parses every case of a chat vector file.
///
/// # Errors
///
/// Fails at the first line that is not part of the format, naming it.
pub fn parse_chat_cases(text: &str) -> Result<Vec<ChatCase>, VectorError> {
    let new_case = |id: &str| ChatCase {
        id: id.to_owned(),
        ..ChatCase::default()
    };
    let cases = parse_case_blocks(text, new_case, |case, line| {
        parse_chat_line(case, line.trim())
    })?;

    for case in &cases {
        check_case(case).map_err(|reason| VectorError { line: 0, reason })?;
    }
    Ok(cases)
}

/// Applies one line of a case.
fn parse_chat_line(case: &mut ChatCase, line: &str) -> Result<(), String> {
    if let Some(rest) = line.strip_prefix("> ") {
        let step = parse_step(case, rest.trim())?;
        case.steps.push(step);
        return Ok(());
    }
    if let Some(rest) = line.strip_prefix("< ") {
        let (member, expected) = rest
            .trim()
            .split_once(' ')
            .ok_or("`<` needs a member and a line")?;
        let expected = parse_expected(expected.trim())?;
        let step = case
            .steps
            .last_mut()
            .ok_or("a `<` line before the first `>` line")?;
        step.expect.push((member.to_owned(), expected));
        return Ok(());
    }

    let (keyword, rest) = line.split_once(' ').unwrap_or((line, ""));
    let rest = rest.trim();
    match keyword {
        "about" => case.about = rest.to_owned(),
        "note" => case.notes.push(rest.to_owned()),
        "unsupported" => case.unsupported = Some(rest.to_owned()),
        "room" => case.room = rest.to_owned(),
        other => return Err(format!("unknown keyword `{other}`")),
    }
    Ok(())
}

/// Reads what follows `< MEMBER`.
fn parse_expected(text: &str) -> Result<String, String> {
    if text.starts_with('{') {
        return Ok(text.to_owned());
    }
    match text.split_once(' ') {
        Some(("close" | "refused", number)) if number.parse::<u16>().is_ok() => Ok(text.to_owned()),
        _ => Err(format!(
            "expected a JSON object, `close CODE` or `refused STATUS`, got `{text}`"
        )),
    }
}

/// Reads what follows `>`.
fn parse_step(case: &ChatCase, text: &str) -> Result<Step, String> {
    let (member, rest) = text
        .split_once(' ')
        .ok_or("`>` needs a member and a verb")?;
    if member == "wait" {
        let millis = rest
            .trim()
            .parse()
            .map_err(|_| format!("bad wait `{rest}`"))?;
        return Ok(Step {
            member: String::new(),
            action: Action::Wait(millis),
            expect: Vec::new(),
        });
    }

    let (verb, rest) = rest.trim().split_once(' ').unwrap_or((rest.trim(), ""));
    let rest = rest.trim();
    let action = match verb {
        "join" => parse_join(case, rest)?,
        "text" => Action::Text {
            payload: Expr::parse(rest)?,
            times: 1,
        },
        "burst" => {
            let (times, payload) = rest.split_once(' ').ok_or("`burst` needs N and EXPR")?;
            Action::Text {
                payload: Expr::parse(payload)?,
                times: times
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("bad count `{times}`"))?,
            }
        }
        "binary" => Action::Binary(Expr::parse(rest)?),
        "leave" => Action::Leave,
        other => return Err(format!("unknown verb `{other}`")),
    };
    Ok(Step {
        member: member.to_owned(),
        action,
        expect: Vec::new(),
    })
}

/// Reads `NAME SESSION [ROOM]`, the name a payload expression that may hold
/// spaces: the shortest leading run of words that parses as one is the name.
fn parse_join(case: &ChatCase, text: &str) -> Result<Action, String> {
    let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
    for split in 1..words.len() {
        let (name, rest) = words.split_at(split);
        let (session, room) = match rest {
            [session] => (*session, case.room.as_str()),
            [session, room] => (*session, *room),
            _ => continue,
        };
        let Ok(name) = Expr::parse(&name.join(" ")) else {
            continue;
        };
        let user_name = String::from_utf8(name.eval()).map_err(|_| "a user name must be UTF-8")?;
        return Ok(Action::Join {
            user_name,
            session_id: session.to_owned(),
            room: room.to_owned(),
        });
    }
    Err(format!("`join` needs NAME SESSION [ROOM], got `{text}`"))
}

/// Checks the rules a whole case must keep.
fn check_case(case: &ChatCase) -> Result<(), String> {
    if case.room.is_empty() {
        return Err(format!("case {} has no `room`", case.id));
    }
    if case.about.is_empty() {
        return Err(format!("case {} has no `about`", case.id));
    }
    Ok(())
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Join {
                user_name,
                session_id,
                room,
            } => write!(f, "join {user_name:?} {session_id} {room}"),
            Action::Text { payload, times: 1 } => write!(f, "text {payload}"),
            Action::Text { payload, times } => write!(f, "burst {times} {payload}"),
            Action::Binary(payload) => write!(f, "binary {payload}"),
            Action::Leave => f.write_str("leave"),
            Action::Wait(millis) => write!(f, "wait {millis}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# a comment
case chat.sample
about A sample.
room lobby
> ana join \"ana maría\" k3J9x0aa
< ana {\"type\":\"welcome\"}
> bo join \"bo\" Zq81mmpp other
< bo {\"type\":\"welcome\"}
> bo burst 3 \"x\" + 0x21
> wait 150
> ana leave
< ana close 1000
";

    #[test]
    fn steps_and_expectations_parse() {
        let cases = parse_chat_cases(SAMPLE).unwrap();
        let case = &cases[0];
        assert_eq!(case.members(), ["ana", "bo"]);
        assert_eq!(case.rooms(), ["lobby", "other"]);
        assert_eq!(
            case.steps[0].action,
            Action::Join {
                user_name: "ana maría".to_owned(),
                session_id: "k3J9x0aa".to_owned(),
                room: "lobby".to_owned(),
            }
        );
        assert!(matches!(
            &case.steps[2].action,
            Action::Text { times: 3, .. }
        ));
        assert_eq!(case.steps[3].action, Action::Wait(150));
        assert_eq!(
            case.expected_for("ana"),
            ["{\"type\":\"welcome\"}", "close 1000"]
        );
    }

    #[test]
    fn ts_numbers_become_the_placeholder() {
        let seen = br#"{"type":"message","text":"\"ts\":5","ts":1764856801000}"#;
        assert_eq!(
            normalize_text(seen),
            r#"{"type":"message","text":"\"ts\":5","ts":TS}"#
        );
    }

    #[test]
    fn malformed_lines_are_errors() {
        assert!(parse_chat_cases("case a\nabout A.\nroom r\n< ana {}\n").is_err());
        assert!(parse_chat_cases("case a\nabout A.\nroom r\n> ana fly\n").is_err());
        assert!(parse_chat_cases("case a\nabout A.\n> ana leave\n").is_err());
        let bad_expect = "case a\nabout A.\nroom r\n> ana leave\n< ana hello\n";
        assert!(parse_chat_cases(bad_expect).is_err());
    }

    #[test]
    fn the_first_difference_per_member_fails() {
        let case = &parse_chat_cases(SAMPLE).unwrap()[0];
        let mut seen = ChatObservation::for_case(case);
        seen.push("ana", "{\"type\":\"welcome\"}".to_owned());
        seen.push("ana", "close 1003".to_owned());
        let failures = judge_chat(case, &seen).unwrap_err();
        assert_eq!(failures.len(), 2);
        assert!(failures[0].starts_with("ana #2: expected close 1000"));
        assert!(failures[1].starts_with("bo #1: expected"));
    }
}
