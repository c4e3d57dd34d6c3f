//! Everything the screen shows, updated from server events, connection news
//! and the keyboard, and read by [`crate::render`].

use crate::event::{Member, ServerEvent};
use crate::input::InputLine;

/// The most entries the message area keeps; older ones scroll away for good.
const LOG_LIMIT: usize = 5_000;

/// What the connection is doing, as the header shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionState {
    /// Opening the socket and upgrading.
    Connecting,
    /// Joined the room.
    Connected,
    /// Waiting to try again after a loss or a refusal that may pass.
    Reconnecting {
        /// Whole seconds until the next attempt, rounded up.
        in_secs: u64,
    },
    /// Waiting to try again while the server still holds our dropped
    /// connection (a 409 after we had joined).
    Rejoining {
        /// Whole seconds until the next attempt, rounded up.
        in_secs: u64,
        /// Whole seconds until the attempts stop, rounded up.
        gives_up_in_secs: u64,
    },
    /// The server refused us for good; the reason is in the message area.
    Refused,
    /// The session is over (we quit, or the server closed it for good).
    Closed,
}

/// One entry of the message area.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// A chat line.
    Chat {
        /// Server time in Unix milliseconds.
        ts: u64,
        /// Who wrote it.
        member: Member,
        /// The text as sent.
        text: String,
    },
    /// Someone joined.
    Joined {
        /// Server time in Unix milliseconds.
        ts: u64,
        /// Who joined.
        member: Member,
    },
    /// Someone left.
    Left {
        /// Server time in Unix milliseconds.
        ts: u64,
        /// Who left.
        member: Member,
    },
    /// A line from the client itself: a command's answer, a connection
    /// change, a refusal reason, a rate-limit notice.
    Notice(String),
}

/// The whole client state behind one screen.
#[derive(Debug, Clone)]
pub struct ClientState {
    /// The room code we join.
    pub room: String,
    /// The server URL as given.
    pub server: String,
    /// Our display name.
    pub name: String,
    /// Our session id; lines carrying it are ours.
    pub session_id: String,
    /// The connection's state for the header.
    pub connection: ConnectionState,
    /// The room's members, sorted by name.
    pub members: Vec<Member>,
    /// The message area's entries, oldest first.
    pub log: Vec<Entry>,
    /// How many screen rows the message area is scrolled back from the end.
    pub scroll: usize,
    /// The line being typed.
    pub input: InputLine,
    /// Our chat lines held back by the rate limit, still to be sent.
    pub held: usize,
}

impl ClientState {
    /// Creates the state of a client about to connect.
    pub fn new(room: &str, server: &str, name: &str, session_id: &str) -> ClientState {
        ClientState {
            room: room.to_owned(),
            server: server.to_owned(),
            name: name.to_owned(),
            session_id: session_id.to_owned(),
            connection: ConnectionState::Connecting,
            members: Vec::new(),
            log: Vec::new(),
            scroll: 0,
            input: InputLine::new(),
            held: 0,
        }
    }

    /// Returns whether `member` is us.
    pub fn is_me(&self, member: &Member) -> bool {
        member.session_id == self.session_id
    }

    /// Applies one server event to the member list and the message area.
    pub fn handle_event(&mut self, event: ServerEvent) {
        match event {
            ServerEvent::Welcome { users, .. } => {
                self.connection = ConnectionState::Connected;
                self.members = users;
                self.sort_members();
                let count = self.members.len();
                self.notice(format!("joined {} ({count} here)", self.room));
            }
            ServerEvent::Join { member, ts, .. } => {
                if !self.members.contains(&member) {
                    self.members.push(member.clone());
                    self.sort_members();
                }
                self.push(Entry::Joined { ts, member });
            }
            ServerEvent::Leave { member, ts, .. } => {
                self.members.retain(|m| m.session_id != member.session_id);
                self.push(Entry::Left { ts, member });
            }
            ServerEvent::Message {
                member, text, ts, ..
            } => self.push(Entry::Chat { ts, member, text }),
            ServerEvent::Error { reason } => self.notice(format!("server: {reason}")),
        }
    }

    /// Adds a notice line to the message area.
    pub fn notice(&mut self, text: impl Into<String>) {
        self.push(Entry::Notice(text.into()));
    }

    /// Adds a notice unless it repeats the newest entry, so a long outage
    /// does not fill the screen with the same line.
    pub fn notice_once(&mut self, text: impl Into<String>) {
        let entry = Entry::Notice(text.into());
        if self.log.last() != Some(&entry) {
            self.push(entry);
        }
    }

    /// Scrolls the message area back by `rows`.
    pub fn scroll_up(&mut self, rows: usize) {
        self.scroll = self.scroll.saturating_add(rows);
    }

    /// Scrolls the message area forward by `rows`, stopping at the end.
    pub fn scroll_down(&mut self, rows: usize) {
        self.scroll = self.scroll.saturating_sub(rows);
    }

    /// Appends an entry, forgetting the oldest past the limit.
    fn push(&mut self, entry: Entry) {
        self.log.push(entry);
        if self.log.len() > LOG_LIMIT {
            self.log.remove(0);
        }
    }

    /// Sorts members by name, then session id, so the list is stable.
    fn sort_members(&mut self) {
        self.members.sort_by(|a, b| {
            (a.user_name.to_lowercase(), &a.session_id)
                .cmp(&(b.user_name.to_lowercase(), &b.session_id))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, session_id: &str) -> Member {
        Member {
            user_name: name.into(),
            session_id: session_id.into(),
        }
    }

    #[test]
    fn welcome_join_and_leave_keep_the_member_list() {
        let mut state = ClientState::new("lobby", "ws://x", "ana", "aaaaaaaa");
        state.handle_event(ServerEvent::Welcome {
            room_code: "lobby".into(),
            seq: 1,
            you: member("ana", "aaaaaaaa"),
            users: vec![member("zed", "zzzzzzzz"), member("ana", "aaaaaaaa")],
        });
        assert_eq!(state.connection, ConnectionState::Connected);
        assert_eq!(state.members[0].user_name, "ana");

        state.handle_event(ServerEvent::Join {
            seq: 2,
            member: member("bo", "bbbbbbbb"),
            ts: 0,
        });
        assert_eq!(state.members.len(), 3);
        assert_eq!(state.members[1].user_name, "bo");

        state.handle_event(ServerEvent::Leave {
            seq: 3,
            member: member("zed", "zzzzzzzz"),
            ts: 0,
        });
        assert_eq!(state.members.len(), 2);
        assert!(matches!(state.log.last(), Some(Entry::Left { .. })));
    }

    #[test]
    fn a_rate_limit_error_becomes_a_notice() {
        let mut state = ClientState::new("lobby", "ws://x", "ana", "aaaaaaaa");
        state.handle_event(ServerEvent::Error {
            reason: "rate limited".into(),
        });
        assert_eq!(
            state.log,
            vec![Entry::Notice("server: rate limited".into())]
        );
    }

    #[test]
    fn repeated_notices_show_once() {
        let mut state = ClientState::new("lobby", "ws://x", "ana", "aaaaaaaa");
        state.notice_once("connection refused");
        state.notice_once("connection refused");
        assert_eq!(state.log.len(), 1);
        state.notice("other");
        state.notice_once("connection refused");
        assert_eq!(state.log.len(), 3);
    }

    #[test]
    fn scrolling_stops_at_the_end() {
        let mut state = ClientState::new("lobby", "ws://x", "ana", "aaaaaaaa");
        state.scroll_up(5);
        state.scroll_down(10);
        assert_eq!(state.scroll, 0);
    }
}
