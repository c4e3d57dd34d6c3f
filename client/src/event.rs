//! The server's JSON events (docs/PROTOCOL.md, "A chat session"), parsed
//! from the text of one WebSocket message.
//!
//! Names and texts are kept as the server sent them; sanitising happens
//! where they are shown.

use serde_json::Value;
use std::fmt;

/// A room member as events name one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The display name.
    pub user_name: String,
    /// The member's session id, which tells apart two people of one name.
    pub session_id: String,
}

/// One event from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// Sent first, to the joiner only: who is in the room and who we are.
    Welcome {
        /// The room joined.
        room_code: String,
        /// The room's latest sequence number.
        seq: u64,
        /// Ourselves, as the server sees us.
        you: Member,
        /// Everyone in the room, us included.
        users: Vec<Member>,
    },
    /// Someone joined the room.
    Join {
        /// The event's place in the room's order.
        seq: u64,
        /// Who joined.
        member: Member,
        /// Server time in Unix milliseconds.
        ts: u64,
    },
    /// Someone left the room.
    Leave {
        /// The event's place in the room's order.
        seq: u64,
        /// Who left.
        member: Member,
        /// Server time in Unix milliseconds.
        ts: u64,
    },
    /// A chat line.
    Message {
        /// The event's place in the room's order.
        seq: u64,
        /// Who wrote it.
        member: Member,
        /// The line as typed.
        text: String,
        /// Server time in Unix milliseconds.
        ts: u64,
    },
    /// A notice about our own connection, such as being rate limited.
    Error {
        /// The server's reason.
        reason: String,
    },
}

/// Why a server message could not be read as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidEvent {
    /// The text is not a JSON object.
    NotJson,
    /// The object has a `type` this client does not know.
    UnknownType(String),
    /// A field the event needs is missing or of the wrong kind.
    MissingField(&'static str),
}

impl fmt::Display for InvalidEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidEvent::NotJson => f.write_str("event is not a json object"),
            InvalidEvent::UnknownType(kind) => write!(f, "unknown event type {kind:?}"),
            InvalidEvent::MissingField(field) => write!(f, "event lacks field {field:?}"),
        }
    }
}

impl std::error::Error for InvalidEvent {}

impl ServerEvent {
    /// Parses the text of one server message.
    ///
    /// # Errors
    ///
    /// [`InvalidEvent`] when the text is not a JSON object, has an unknown
    /// `type`, or lacks a field its type needs.
    pub fn parse(text: &str) -> Result<ServerEvent, InvalidEvent> {
        let value: Value = serde_json::from_str(text).map_err(|_| InvalidEvent::NotJson)?;
        if !value.is_object() {
            return Err(InvalidEvent::NotJson);
        }

        let kind = string(&value, "type")?;
        let event = match kind.as_str() {
            "welcome" => ServerEvent::Welcome {
                room_code: string(&value, "room_code")?,
                seq: number(&value, "seq")?,
                you: member(value.get("you").ok_or(InvalidEvent::MissingField("you"))?)?,
                users: members(&value)?,
            },
            "join" => ServerEvent::Join {
                seq: number(&value, "seq")?,
                member: member(&value)?,
                ts: number(&value, "ts")?,
            },
            "leave" => ServerEvent::Leave {
                seq: number(&value, "seq")?,
                member: member(&value)?,
                ts: number(&value, "ts")?,
            },
            "message" => ServerEvent::Message {
                seq: number(&value, "seq")?,
                member: member(&value)?,
                text: string(&value, "text")?,
                ts: number(&value, "ts")?,
            },
            "error" => ServerEvent::Error {
                reason: string(&value, "reason")?,
            },
            _ => return Err(InvalidEvent::UnknownType(kind)),
        };
        Ok(event)
    }
}

/// Reads a string field.
fn string(value: &Value, field: &'static str) -> Result<String, InvalidEvent> {
    value
        .get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or(InvalidEvent::MissingField(field))
}

/// Reads a non-negative integer field.
fn number(value: &Value, field: &'static str) -> Result<u64, InvalidEvent> {
    value
        .get(field)
        .and_then(Value::as_u64)
        .ok_or(InvalidEvent::MissingField(field))
}

/// Reads the `user_name` and `session_id` of an object.
fn member(value: &Value) -> Result<Member, InvalidEvent> {
    Ok(Member {
        user_name: string(value, "user_name")?,
        session_id: string(value, "session_id")?,
    })
}

/// Reads the `users` list of a welcome.
fn members(value: &Value) -> Result<Vec<Member>, InvalidEvent> {
    let users = value
        .get("users")
        .and_then(Value::as_array)
        .ok_or(InvalidEvent::MissingField("users"))?;
    users.iter().map(member).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ana() -> Member {
        Member {
            user_name: "ana".into(),
            session_id: "k3J9x0aa".into(),
        }
    }

    #[test]
    fn parses_the_protocol_examples() {
        let welcome = r#"{"type":"welcome","room_code":"lobby","seq":7,
            "you":{"user_name":"ana","session_id":"k3J9x0aa"},
            "users":[{"user_name":"ana","session_id":"k3J9x0aa"}]}"#;
        assert_eq!(
            ServerEvent::parse(welcome),
            Ok(ServerEvent::Welcome {
                room_code: "lobby".into(),
                seq: 7,
                you: ana(),
                users: vec![ana()],
            })
        );

        let message = r#"{"type":"message","seq":9,"user_name":"ana",
            "session_id":"k3J9x0aa","text":"hi all","ts":1764856801000}"#;
        assert_eq!(
            ServerEvent::parse(message),
            Ok(ServerEvent::Message {
                seq: 9,
                member: ana(),
                text: "hi all".into(),
                ts: 1_764_856_801_000,
            })
        );

        let leave = r#"{"type":"leave","seq":10,"user_name":"ana","session_id":"k3J9x0aa","ts":5}"#;
        assert!(matches!(
            ServerEvent::parse(leave),
            Ok(ServerEvent::Leave { seq: 10, .. })
        ));
        assert_eq!(
            ServerEvent::parse(r#"{"type":"error","reason":"rate limited"}"#),
            Ok(ServerEvent::Error {
                reason: "rate limited".into()
            })
        );
    }

    #[test]
    fn rejects_malformed_events() {
        assert_eq!(ServerEvent::parse("nope"), Err(InvalidEvent::NotJson));
        assert_eq!(ServerEvent::parse("[1]"), Err(InvalidEvent::NotJson));
        assert_eq!(
            ServerEvent::parse(r#"{"type":"dance"}"#),
            Err(InvalidEvent::UnknownType("dance".into()))
        );
        assert_eq!(
            ServerEvent::parse(r#"{"type":"join","seq":-1}"#),
            Err(InvalidEvent::MissingField("seq"))
        );
        assert_eq!(
            ServerEvent::parse(r#"{"seq":1}"#),
            Err(InvalidEvent::MissingField("type"))
        );
    }
}
