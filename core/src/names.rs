//! The three identifiers a member joins with, validated once at the edge so
//! that every later holder of one knows it is well formed (docs/PROTOCOL.md,
//! "Query parameters").

use std::fmt;

/// A display name: 1 to 32 Unicode scalar values after trimming surrounding
/// white space, with no control characters (category Cc).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserName(String);

/// A room code: 1 to 64 characters from `A-Z a-z 0-9 - _ .`, case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RoomCode(String);

/// A session identity: 8 to 128 characters from `A-Z a-z 0-9 - _`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

/// Why a query value was refused; its text is the one-line reason of a 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidName {
    /// The value is empty (after trimming, for a user name).
    Empty {
        /// The parameter's name.
        field: &'static str,
    },
    /// The value has fewer characters than the rule allows.
    TooShort {
        /// The parameter's name.
        field: &'static str,
        /// Characters it has.
        len: usize,
        /// Fewest characters allowed.
        min: usize,
    },
    /// The value has more characters than the rule allows.
    TooLong {
        /// The parameter's name.
        field: &'static str,
        /// Characters it has.
        len: usize,
        /// Most characters allowed.
        max: usize,
    },
    /// The value holds a character the rule does not allow.
    BadCharacter {
        /// The parameter's name.
        field: &'static str,
        /// The first character refused.
        found: char,
    },
}

impl fmt::Display for InvalidName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidName::Empty { field } => write!(f, "{field} is empty"),
            InvalidName::TooShort { field, len, min } => {
                write!(f, "{field} has {len} characters, at least {min} are needed")
            }
            InvalidName::TooLong { field, len, max } => {
                write!(f, "{field} has {len} characters, at most {max} are allowed")
            }
            InvalidName::BadCharacter { field, found } => {
                write!(f, "{field} may not contain '{}'", found.escape_default())
            }
        }
    }
}

impl std::error::Error for InvalidName {}

/// Checks length (in chars) and the allowed set shared by room codes and
/// session ids.
fn check_token(
    field: &'static str,
    value: &str,
    min: usize,
    max: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), InvalidName> {
    if value.is_empty() {
        return Err(InvalidName::Empty { field });
    }

    if let Some(found) = value.chars().find(|&c| !allowed(c)) {
        return Err(InvalidName::BadCharacter { field, found });
    }

    let len = value.chars().count();
    if len < min {
        return Err(InvalidName::TooShort { field, len, min });
    }
    if len > max {
        return Err(InvalidName::TooLong { field, len, max });
    }
    Ok(())
}

impl UserName {
    /// Most Unicode scalar values in a user name.
    pub const MAX_CHARS: usize = 32;

    /// Validates a decoded `user_name`, trimming surrounding white space.
    ///
    /// # Errors
    ///
    /// [`InvalidName`] when the trimmed value is empty, longer than 32
    /// characters, or holds a control character.
    pub fn parse(value: &str) -> Result<UserName, InvalidName> {
        let field = "user_name";
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err(InvalidName::Empty { field });
        }

        if let Some(found) = trimmed.chars().find(|c| c.is_control()) {
            return Err(InvalidName::BadCharacter { field, found });
        }

        let len = trimmed.chars().count();
        if len > Self::MAX_CHARS {
            return Err(InvalidName::TooLong {
                field,
                len,
                max: Self::MAX_CHARS,
            });
        }
        Ok(UserName(trimmed.to_owned()))
    }

    /// Returns the name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl RoomCode {
    /// Validates a decoded `room_code`.
    ///
    /// # Errors
    ///
    /// [`InvalidName`] when the value is empty, over 64 characters, or holds
    /// a character outside `A-Z a-z 0-9 - _ .`.
    pub fn parse(value: &str) -> Result<RoomCode, InvalidName> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
        check_token("room_code", value, 1, 64, allowed)?;
        Ok(RoomCode(value.to_owned()))
    }

    /// Returns the code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl SessionId {
    /// Validates a decoded `session_id`.
    ///
    /// # Errors
    ///
    /// [`InvalidName`] when the value has fewer than 8 or more than 128
    /// characters, or one outside `A-Z a-z 0-9 - _`.
    pub fn parse(value: &str) -> Result<SessionId, InvalidName> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_');
        check_token("session_id", value, 8, 128, allowed)?;
        Ok(SessionId(value.to_owned()))
    }

    /// Returns the id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! display_as_str {
    ($($name:ident),*) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}

display_as_str!(UserName, RoomCode, SessionId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_trimmed_and_checked() {
        assert_eq!(UserName::parse("  ana ").unwrap().as_str(), "ana");
        assert_eq!(
            UserName::parse(&"é".repeat(32))
                .unwrap()
                .as_str()
                .chars()
                .count(),
            32
        );
        assert!(matches!(
            UserName::parse("   "),
            Err(InvalidName::Empty { .. })
        ));
        assert!(matches!(
            UserName::parse(&"x".repeat(33)),
            Err(InvalidName::TooLong { .. })
        ));
        assert!(matches!(
            UserName::parse("a\u{1b}[31m"),
            Err(InvalidName::BadCharacter { .. })
        ));
        assert!(matches!(
            UserName::parse("a\u{85}b"),
            Err(InvalidName::BadCharacter { .. })
        ));
        assert!(UserName::parse("ana 🦀 bo").is_ok());
    }

    #[test]
    fn room_codes_allow_only_their_set() {
        assert!(RoomCode::parse("lobby-1_A.b").is_ok());
        assert!(RoomCode::parse(&"r".repeat(64)).is_ok());
        assert!(matches!(
            RoomCode::parse(&"r".repeat(65)),
            Err(InvalidName::TooLong { .. })
        ));
        assert!(matches!(
            RoomCode::parse(""),
            Err(InvalidName::Empty { .. })
        ));
        assert!(matches!(
            RoomCode::parse("a b"),
            Err(InvalidName::BadCharacter { .. })
        ));
        assert!(matches!(
            RoomCode::parse("lobbé"),
            Err(InvalidName::BadCharacter { .. })
        ));
        assert_ne!(
            RoomCode::parse("Lobby").unwrap(),
            RoomCode::parse("lobby").unwrap()
        );
    }

    #[test]
    fn session_ids_have_a_length_range() {
        assert!(SessionId::parse("k3J9x0aa").is_ok());
        assert!(SessionId::parse(&"s".repeat(128)).is_ok());
        assert!(matches!(
            SessionId::parse("short"),
            Err(InvalidName::TooShort { .. })
        ));
        assert!(matches!(
            SessionId::parse(&"s".repeat(129)),
            Err(InvalidName::TooLong { .. })
        ));
        assert!(matches!(
            SessionId::parse("abcd.efgh"),
            Err(InvalidName::BadCharacter { .. })
        ));
    }

    #[test]
    fn reasons_read_as_one_line() {
        let reason = RoomCode::parse("a b").unwrap_err().to_string();
        assert_eq!(reason, "room_code may not contain ' '");
        assert!(!reason.contains('\n'));
    }
}
