//! The `--server` URL: where to connect, and the path prefix the server is
//! mounted under, so a reverse proxy may serve natter below a path.
//!
//! `ws://h/chat` and `ws://h/chat/` both join at `/chat/joinRoom?...`;
//! `ws://h` and `ws://h/` at `/joinRoom?...`. The client writes the query
//! itself, so a query string in `--server` is refused, like a fragment.

use std::fmt;

use natter_core::handshake::{join_path, WsUrl};

/// A checked `--server` URL: a [`WsUrl`] without query, and its path as a
/// prefix for the join request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    /// Where to connect: scheme, host and port.
    url: WsUrl,
    /// The path without its trailing slashes: empty at the root, else
    /// starting with `/`, as in `/chat`.
    prefix: String,
}

impl ServerUrl {
    /// Parses `ws://host[:port][/prefix]` or the `wss://` form.
    ///
    /// # Errors
    ///
    /// Returns the reason to show: the URL is not a WebSocket URL (see
    /// [`WsUrl::parse`], which also refuses a `#fragment`), or it carries a
    /// query string, which would clash with the one the client writes.
    pub fn parse(text: &str) -> Result<ServerUrl, String> {
        let url = WsUrl::parse(text).map_err(|e| e.to_string())?;

        // With no query left, the request target is exactly the path.
        let path = url.path_and_query();
        if path.contains('?') {
            return Err("a query string is not allowed; give only the path prefix \
                        (the client adds its own query)"
                .to_owned());
        }
        let prefix = path.trim_end_matches('/').to_owned();
        Ok(ServerUrl { url, prefix })
    }

    /// Returns where to connect: scheme, host and port (its path is the
    /// prefix, never needed apart from [`ServerUrl::join_target`]).
    pub fn ws_url(&self) -> &WsUrl {
        &self.url
    }

    /// Returns the path prefix without trailing slashes, empty at the root.
    #[cfg(test)]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Returns the request target that joins `room_code` as `user_name`
    /// under `session_id`, below the prefix.
    pub fn join_target(&self, user_name: &str, room_code: &str, session_id: &str) -> String {
        format!(
            "{}{}",
            self.prefix,
            join_path(user_name, room_code, session_id)
        )
    }
}

impl fmt::Display for ServerUrl {
    /// Writes the URL in one form whatever trailing slashes were given:
    /// `ws://host[:port]/` or `ws://host[:port]/prefix/`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.url.is_secure() { "wss" } else { "ws" };
        write!(f, "{scheme}://{}{}/", self.url.host_header(), self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_becomes_the_prefix_of_the_join_request() {
        let cases = [
            ("ws://h", "", "ws://h/"),
            ("ws://h/", "", "ws://h/"),
            ("ws://h:9000/chat", "/chat", "ws://h:9000/chat/"),
            ("ws://h/chat/", "/chat", "ws://h/chat/"),
            ("wss://h:443/a/b//", "/a/b", "wss://h/a/b/"),
            ("ws://[::1]:9/x", "/x", "ws://[::1]:9/x/"),
        ];
        for (given, prefix, shown) in cases {
            let url = ServerUrl::parse(given).unwrap();
            assert_eq!(url.prefix(), prefix, "{given}");
            assert_eq!(url.to_string(), shown, "{given}");
            assert_eq!(
                url.join_target("ana", "lobby", "k3J9x0aa"),
                format!("{prefix}/joinRoom?user_name=ana&room_code=lobby&session_id=k3J9x0aa"),
                "{given}"
            );
        }
    }

    #[test]
    fn a_query_or_fragment_is_refused() {
        for given in ["ws://h/chat?x=1", "ws://h?", "ws://h/?room_code=a"] {
            let reason = ServerUrl::parse(given).unwrap_err();
            assert!(
                reason.contains("query string is not allowed"),
                "{given}: {reason}"
            );
        }
        let reason = ServerUrl::parse("ws://h/chat#top").unwrap_err();
        assert!(reason.contains("fragment"), "{reason}");
        assert!(ServerUrl::parse("http://h/").is_err());
    }
}
