//! Lays the client state out as screen lines: a pure function from
//! ([`ClientState`], width, height) to a [`Screen`], so that layout, wrapping
//! and sanitising are tested without a terminal.
//!
//! The screen is a header row, the message area (with the member list on
//! its right when the terminal is wide enough) and the input row. Every
//! piece of text passes through [`crate::sanitize`] here, and every line is
//! cut or padded to exactly the width it is given.

use crate::event::Member;
use crate::sanitize::{char_width, sanitize, text_width, truncate, wrap};
use crate::state::{ClientState, ConnectionState, Entry};

/// The narrowest terminal that still shows the member list.
pub const MEMBER_LIST_MIN_WIDTH: usize = 60;

/// Columns of the member list, its separator included.
const MEMBER_COLUMN: usize = 20;

/// Columns a continuation row of a message is indented by (the time's width).
const INDENT: usize = 6;

/// The prompt before the input text.
const PROMPT: &str = "> ";

/// Background colour (256-colour index) of our own lines.
pub const OWN_BACKGROUND: u8 = 236;

/// Foreground colour (256-colour index) of notices.
const NOTICE_COLOUR: u8 = 178;

/// Name colours (256-colour indices) readable on dark and light backgrounds.
const NAME_COLOURS: [u8; 12] = [33, 37, 40, 69, 75, 106, 130, 135, 166, 170, 172, 199];

/// How a span is drawn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    /// Foreground colour, a 256-colour index.
    pub fg: Option<u8>,
    /// Background colour, a 256-colour index.
    pub bg: Option<u8>,
    /// Bold text.
    pub bold: bool,
    /// Faint text.
    pub dim: bool,
    /// Swapped foreground and background.
    pub reverse: bool,
}

/// A run of sanitised text in one style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The text, free of control characters.
    pub text: String,
    /// How it is drawn.
    pub style: Style,
}

/// One screen row made of styled spans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Line {
    /// The spans, left to right.
    pub spans: Vec<Span>,
}

/// A rendered screen: exactly `height` lines of exactly `width` columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Screen {
    /// The rows, top to bottom.
    pub lines: Vec<Line>,
    /// The cursor as (column, row), both from 0.
    pub cursor: (usize, usize),
    /// The scroll-back actually shown, which may be less than asked for.
    pub scroll: usize,
}

impl Line {
    /// Returns the line's text without styles.
    #[cfg(test)]
    pub fn text(&self) -> String {
        self.spans.iter().map(|s| s.text.as_str()).collect()
    }

    /// Returns the columns the line takes.
    pub fn width(&self) -> usize {
        self.spans.iter().map(|s| text_width(&s.text)).sum()
    }

    /// Appends sanitised `text` in `style`.
    fn push(&mut self, text: &str, style: Style) {
        if !text.is_empty() {
            self.spans.push(Span {
                text: sanitize(text),
                style,
            });
        }
    }

    /// Cuts the line to `width` columns, or pads it with spaces in `pad`.
    fn fit(mut self, width: usize, pad: Style) -> Line {
        let mut used = 0;
        let mut kept = Vec::new();
        for span in self.spans.drain(..) {
            let room = width - used;
            if room == 0 {
                break;
            }
            let text = truncate(&span.text, room);
            used += text_width(&text);
            kept.push(Span { text, ..span });
        }

        let mut line = Line { spans: kept };
        line.push(&" ".repeat(width - used), pad);
        line
    }

    /// Sets the background of every span.
    fn with_background(mut self, bg: u8) -> Line {
        for span in &mut self.spans {
            span.style.bg = Some(bg);
        }
        self
    }
}

/// Returns the colour of a member's name, stable for a session id.
pub fn name_colour(session_id: &str) -> u8 {
    // FNV-1a: small, stable across runs and platforms, unlike std's hasher.
    let hash = session_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    NAME_COLOURS[(hash % NAME_COLOURS.len() as u64) as usize]
}

/// Formats Unix milliseconds as `HH:MM` in UTC.
pub fn clock(ts: u64) -> String {
    let minutes = (ts / 60_000) % (24 * 60);
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// Lays out the whole screen for a terminal of `width` by `height`.
pub fn render(state: &ClientState, width: usize, height: usize) -> Screen {
    if height == 0 {
        return Screen {
            lines: Vec::new(),
            cursor: (0, 0),
            scroll: 0,
        };
    }

    let (input, cursor_col) = input_line(state, width);
    let mut lines = Vec::with_capacity(height);
    let mut scroll = 0;
    if height >= 2 {
        lines.push(header(state, width));
    }

    // The message area and the member list share the rows between.
    let rows = height.saturating_sub(2);
    if rows > 0 {
        let show_members = width >= MEMBER_LIST_MIN_WIDTH;
        let message_width = message_width(width);
        let (messages, shown) = message_rows(state, message_width, rows);
        scroll = shown;
        let members = member_rows(state, rows);
        for (mut line, member) in messages.into_iter().zip(members) {
            if show_members {
                line.spans.extend(member.spans);
            }
            lines.push(line);
        }
    }

    lines.push(input);
    Screen {
        cursor: (cursor_col, lines.len() - 1),
        lines,
        scroll,
    }
}

/// Returns the width of the message area on a terminal `width` wide.
fn message_width(width: usize) -> usize {
    if width >= MEMBER_LIST_MIN_WIDTH {
        width - MEMBER_COLUMN
    } else {
        width
    }
}

/// Returns how many rows the entries from index `from` on take on a
/// terminal `width` wide; the UI adds them to the scroll-back so that a
/// scrolled view stays put as new lines arrive.
pub fn rows_since(state: &ClientState, from: usize, width: usize) -> usize {
    let width = message_width(width);
    let entries = state.log.get(from..).unwrap_or_default();
    entries
        .iter()
        .map(|e| entry_rows(state, e, width).len())
        .sum()
}

/// Returns the header row: room, server, connection state, member count.
fn header(state: &ClientState, width: usize) -> Line {
    let connection = match &state.connection {
        ConnectionState::Connecting => "connecting".to_owned(),
        ConnectionState::Connected => "connected".to_owned(),
        ConnectionState::Reconnecting { in_secs } => format!("reconnecting in {in_secs}s"),
        ConnectionState::Rejoining {
            in_secs,
            gives_up_in_secs,
        } => format!("rejoining in {in_secs}s, giving up in {gives_up_in_secs}s"),
        ConnectionState::Refused => "refused".to_owned(),
        ConnectionState::Closed => "closed".to_owned(),
    };
    let count = state.members.len();
    let plural = if count == 1 { "" } else { "s" };
    let sending = match state.held {
        0 => String::new(),
        1 => " | sending 1 queued line".to_owned(),
        n => format!(" | sending {n} queued lines"),
    };
    let mut text = format!(
        " natter | {} | {connection}{sending} | {count} member{plural} | as {} | {}",
        state.room, state.name, state.server
    );
    if state.scroll > 0 {
        text.push_str(" | scrolled back");
    }

    let style = Style {
        reverse: true,
        bold: true,
        ..Style::default()
    };
    let mut line = Line::default();
    line.push(&text, style);
    line.fit(width, style)
}

/// Returns the `rows` message rows ending `state.scroll` rows before the
/// newest, and the scroll-back actually used.
fn message_rows(state: &ClientState, width: usize, rows: usize) -> (Vec<Line>, usize) {
    // Wrap from the newest entry back, only as far as the screen needs.
    let wanted = rows.saturating_add(state.scroll);
    let mut wrapped: Vec<Line> = Vec::new();
    for entry in state.log.iter().rev() {
        let mut entry_rows = entry_rows(state, entry, width);
        entry_rows.reverse();
        wrapped.extend(entry_rows);
        if wrapped.len() >= wanted {
            break;
        }
    }
    wrapped.reverse();

    let scroll = state.scroll.min(wrapped.len().saturating_sub(rows));
    let end = wrapped.len() - scroll;
    let start = end.saturating_sub(rows);
    let mut shown: Vec<Line> = wrapped.drain(start..end).collect();
    let blank = rows - shown.len();
    let mut out: Vec<Line> = (0..blank)
        .map(|_| Line::default().fit(width, Style::default()))
        .collect();
    out.append(&mut shown);
    (out, scroll)
}

/// Wraps one entry into rows of exactly `width` columns.
fn entry_rows(state: &ClientState, entry: &Entry, width: usize) -> Vec<Line> {
    let dim = Style {
        dim: true,
        ..Style::default()
    };
    let (prefix, text, text_style, own) = match entry {
        Entry::Chat { ts, member, text } => {
            let mut prefix = Line::default();
            prefix.push(&format!("{} ", clock(*ts)), dim);
            prefix.push(&format!("<{}>", member.user_name), name_style(member));
            prefix.push(" ", Style::default());
            (prefix, text.as_str(), Style::default(), state.is_me(member))
        }
        Entry::Joined { ts, member } | Entry::Left { ts, member } => {
            let verb = if matches!(entry, Entry::Joined { .. }) {
                "joined"
            } else {
                "left"
            };
            let mut prefix = Line::default();
            prefix.push(&format!("{} * ", clock(*ts)), dim);
            let text = format!("{} {verb}", member.user_name);
            return wrap_entry(prefix, &text, dim, width, false);
        }
        Entry::Notice(text) => {
            let style = Style {
                fg: Some(NOTICE_COLOUR),
                ..Style::default()
            };
            let mut prefix = Line::default();
            prefix.push("-- ", style);
            (prefix, text.as_str(), style, false)
        }
    };
    wrap_entry(prefix, text, text_style, width, own)
}

/// Wraps `text` after `prefix`, indenting continuation rows, and highlights
/// the rows when `own` is set.
fn wrap_entry(prefix: Line, text: &str, style: Style, width: usize, own: bool) -> Vec<Line> {
    let indent = if width > INDENT * 2 { INDENT } else { 0 };
    let first = width.saturating_sub(prefix.width());
    let pieces = wrap(text, first, width - indent);

    let pad = if own {
        Style {
            bg: Some(OWN_BACKGROUND),
            ..Style::default()
        }
    } else {
        Style::default()
    };
    let mut rows = Vec::with_capacity(pieces.len());
    for (i, piece) in pieces.iter().enumerate() {
        let mut line = if i == 0 {
            prefix.clone()
        } else {
            let mut line = Line::default();
            line.push(&" ".repeat(indent), Style::default());
            line
        };
        line.push(piece, style);
        let mut line = line.fit(width, pad);
        if own {
            line = line.with_background(OWN_BACKGROUND);
        }
        rows.push(line);
    }
    rows
}

/// Returns the style of a member's name.
fn name_style(member: &Member) -> Style {
    Style {
        fg: Some(name_colour(&member.session_id)),
        bold: true,
        ..Style::default()
    }
}

/// Returns the `rows` rows of the member list, separator included.
fn member_rows(state: &ClientState, rows: usize) -> Vec<Line> {
    let inner = MEMBER_COLUMN - 2;
    let separator = Style {
        dim: true,
        ..Style::default()
    };
    let mut out = Vec::with_capacity(rows);
    for row in 0..rows {
        let mut line = Line::default();
        line.push("│ ", separator);
        let overflow = state.members.len() > rows && row == rows - 1;
        match state.members.get(row) {
            Some(_) if overflow => {
                let more = state.members.len() - row;
                line.push(&format!("+{more} more"), separator);
            }
            Some(member) => {
                let mut style = name_style(member);
                if state.is_me(member) {
                    style.bg = Some(OWN_BACKGROUND);
                }
                line.push(&member.user_name, style);
            }
            None => {}
        }

        // Cut the name part alone, so the separator always stays.
        let mut name = Line {
            spans: line.spans.split_off(1),
        }
        .fit(inner, Style::default());
        line.spans.append(&mut name.spans);
        out.push(line);
    }
    out
}

/// Returns the input row, scrolled so that the cursor shows, and the
/// cursor's column on it.
fn input_line(state: &ClientState, width: usize) -> (Line, usize) {
    let prompt_style = Style {
        bold: true,
        ..Style::default()
    };
    let room = width.saturating_sub(PROMPT.len()).max(1);

    // Drop characters from the left until the cursor fits.
    let before = &state.input.text()[..state.input.cursor()];
    let mut start = 0;
    let mut cursor_col = state.input.cursor_column();
    for c in before.chars() {
        if cursor_col < room {
            break;
        }
        start += c.len_utf8();
        cursor_col -= char_width(c);
    }

    let mut line = Line::default();
    line.push(PROMPT, prompt_style);
    line.push(&state.input.text()[start..], Style::default());
    let col = (PROMPT.len() + cursor_col).min(width.saturating_sub(1));
    (line.fit(width, Style::default()), col)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ServerEvent;

    const ME: &str = "mmmmmmmm";

    fn member(name: &str, session_id: &str) -> Member {
        Member {
            user_name: name.into(),
            session_id: session_id.into(),
        }
    }

    fn state_with(entries: Vec<Entry>) -> ClientState {
        let mut state = ClientState::new("lobby", "ws://127.0.0.1:8080", "me", ME);
        state.handle_event(ServerEvent::Welcome {
            room_code: "lobby".into(),
            seq: 1,
            you: member("me", ME),
            users: vec![member("me", ME), member("bo", "bbbbbbbb")],
        });
        state.log = entries;
        state
    }

    fn chat(name: &str, session_id: &str, text: &str) -> Entry {
        Entry::Chat {
            ts: 1_764_856_801_000,
            member: member(name, session_id),
            text: text.into(),
        }
    }

    fn texts(screen: &Screen) -> Vec<String> {
        screen.lines.iter().map(Line::text).collect()
    }

    fn assert_exact_size(screen: &Screen, width: usize, height: usize) {
        assert_eq!(screen.lines.len(), height);
        for line in &screen.lines {
            assert_eq!(line.width(), width, "{:?}", line.text());
        }
    }

    #[test]
    fn lays_out_header_messages_and_input() {
        let state = state_with(vec![chat("bo", "bbbbbbbb", "hi all")]);
        let screen = render(&state, 80, 6);
        assert_exact_size(&screen, 80, 6);

        let lines = texts(&screen);
        assert!(lines[0].starts_with(" natter | lobby | connected | 2 members | as me"));
        assert!(lines[0].contains("connected"));
        assert!(lines[0].contains("2 members"));
        assert!(lines[4].starts_with("14:00 <bo> hi all"));
        assert!(lines[5].starts_with("> "));
        assert_eq!(screen.cursor, (2, 5));
    }

    #[test]
    fn the_header_shows_lines_held_by_the_rate_limit() {
        let mut state = state_with(vec![]);
        state.held = 7;
        let lines = texts(&render(&state, 100, 4));
        assert!(
            lines[0]
                .starts_with(" natter | lobby | connected | sending 7 queued lines | 2 members"),
            "{}",
            lines[0]
        );
        state.held = 1;
        assert!(texts(&render(&state, 100, 4))[0].contains("| sending 1 queued line |"));
        state.held = 0;
        assert!(!texts(&render(&state, 100, 4))[0].contains("sending"));
    }

    #[test]
    fn long_lines_wrap_by_width() {
        let text = "word ".repeat(12);
        let state = state_with(vec![chat("bo", "bbbbbbbb", &text)]);
        let screen = render(&state, 30, 8);
        assert_exact_size(&screen, 30, 8);

        let lines = texts(&screen);
        assert!(lines[4].starts_with("14:00 <bo> word word"));
        assert!(lines[5].starts_with("      word"));
        let shown: String = lines[4..7].concat().split_whitespace().collect();
        assert!(shown.contains(&"word".repeat(12)));
    }

    #[test]
    fn wide_and_combining_characters_are_measured() {
        let text = "日本語のテキストと🦀とe\u{301}";
        let state = state_with(vec![chat("bo", "bbbbbbbb", text)]);
        for width in [12, 13, 17, 31] {
            let screen = render(&state, width, 10);
            assert_exact_size(&screen, width, 10);
            let shown: String = texts(&screen).concat();
            assert!(shown.contains("e\u{301}"), "width {width}");
        }
    }

    #[test]
    fn own_lines_are_highlighted() {
        let state = state_with(vec![
            chat("me", ME, "mine"),
            chat("bo", "bbbbbbbb", "theirs"),
        ]);
        let screen = render(&state, 40, 4);
        let own = &screen.lines[1];
        let other = &screen.lines[2];
        assert!(own.text().contains("mine"));
        assert!(own.spans.iter().all(|s| s.style.bg == Some(OWN_BACKGROUND)));
        assert!(other.spans.iter().all(|s| s.style.bg.is_none()));
    }

    #[test]
    fn names_keep_their_colour() {
        assert_eq!(name_colour("bbbbbbbb"), name_colour("bbbbbbbb"));
        let state = state_with(vec![chat("bo", "bbbbbbbb", "x")]);
        let screen = render(&state, 40, 3);
        let name = screen.lines[1]
            .spans
            .iter()
            .find(|s| s.text == "<bo>")
            .map(|s| s.style.fg);
        assert_eq!(name, Some(Some(name_colour("bbbbbbbb"))));
    }

    #[test]
    fn escapes_in_names_and_messages_are_inert() {
        let state = state_with(vec![
            chat(
                "\u{1b}[2Jevil",
                "eeeeeeee",
                "\u{1b}]0;pwned\u{7}\u{9b}31m\u{202e}txt",
            ),
            Entry::Joined {
                ts: 0,
                member: member("\u{1b}[31mred", "rrrrrrrr"),
            },
        ]);
        let screen = render(&state, 80, 5);
        assert_exact_size(&screen, 80, 5);
        for line in &screen.lines {
            for span in &line.spans {
                assert!(!span.text.chars().any(char::is_control), "{:?}", span.text);
                assert!(!span.text.contains('\u{202e}'));
            }
        }
        let all = texts(&screen).concat();
        assert!(all.contains("\u{241b}[2Jevil"));
        assert!(all.contains("\u{241b}[31mred joined"));
    }

    #[test]
    fn bidi_controls_show_labelled_and_keep_the_layout() {
        let mut state = state_with(vec![chat("b\u{202e}o", "bbbbbbbb", "x\u{2067}yz\u{2069}")]);
        "a\u{202e}b".chars().for_each(|c| state.input.insert(c));
        let screen = render(&state, 80, 6);
        assert_exact_size(&screen, 80, 6);
        let lines = texts(&screen);
        assert!(
            lines[4].starts_with("14:00 <b⟨RLO⟩o> x⟨RLI⟩yz⟨PDI⟩"),
            "{}",
            lines[4]
        );
        assert!(lines[5].starts_with("> a⟨RLO⟩b "));
        // "> " and "a⟨RLO⟩b" come before the cursor: 2 + 7 columns.
        assert_eq!(screen.cursor, (9, 5));
        assert!(lines.iter().all(|l| !l.contains('\u{fffd}')));
    }

    #[test]
    fn member_list_shows_only_when_wide() {
        let state = state_with(vec![]);
        let wide = texts(&render(&state, MEMBER_LIST_MIN_WIDTH, 5));
        assert!(wide[1].contains("│ bo"));
        assert!(wide[2].contains("│ me"));

        let narrow = texts(&render(&state, MEMBER_LIST_MIN_WIDTH - 1, 5));
        assert!(narrow[1..4].iter().all(|l| !l.contains('│')));
    }

    #[test]
    fn joins_and_leaves_are_dim() {
        let state = state_with(vec![Entry::Left {
            ts: 0,
            member: member("bo", "bbbbbbbb"),
        }]);
        let screen = render(&state, 40, 3);
        assert_eq!(screen.lines[1].text().trim_end(), "00:00 * bo left");
        assert!(screen.lines[1].spans[0].style.dim);
    }

    #[test]
    fn scrollback_shows_older_rows_and_is_clamped() {
        let entries = (0..10)
            .map(|i| chat("bo", "bbbbbbbb", &format!("line{i}")))
            .collect();
        let mut state = state_with(entries);
        state.scroll = 3;
        let screen = render(&state, 40, 5);
        assert!(screen.lines[3].text().contains("line6"));
        assert_eq!(screen.scroll, 3);

        state.scroll = 100;
        let screen = render(&state, 40, 5);
        assert!(screen.lines[1].text().contains("line0"));
        assert_eq!(screen.scroll, 7);
    }

    #[test]
    fn new_rows_are_counted_for_a_steady_scroll() {
        let entries = vec![
            chat("bo", "bbbbbbbb", "one"),
            chat("bo", "bbbbbbbb", &"x ".repeat(30)),
        ];
        let state = state_with(entries);
        assert_eq!(rows_since(&state, 0, 40), 3);
        assert_eq!(rows_since(&state, 1, 40), 2);
        assert_eq!(rows_since(&state, 2, 40), 0);
        assert_eq!(rows_since(&state, 9, 40), 0);
    }

    #[test]
    fn input_scrolls_to_keep_the_cursor_visible() {
        let mut state = state_with(vec![]);
        "0123456789日本語"
            .chars()
            .for_each(|c| state.input.insert(c));
        let screen = render(&state, 10, 3);
        assert_exact_size(&screen, 10, 3);
        assert!(screen.lines[2].text().contains("語"));
        assert!(screen.cursor.0 < 10);

        state.input.move_home();
        let screen = render(&state, 10, 3);
        assert_eq!(screen.cursor, (2, 2));
        assert!(screen.lines[2].text().starts_with("> 0123"));
    }

    #[test]
    fn random_text_always_fits_the_screen() {
        let mut rng = fastrand::Rng::with_seed(42);
        let alphabet = [
            'a', ' ', '日', '🦀', 'e', '\u{301}', '\u{1b}', '\u{9b}', '\u{202e}', '\n',
        ];
        for _ in 0..300 {
            let mut text = String::new();
            for _ in 0..rng.usize(0..80) {
                text.push(alphabet[rng.usize(..alphabet.len())]);
            }
            let mut state = state_with(vec![chat(&text, "bbbbbbbb", &text)]);
            text.chars().for_each(|c| state.input.insert(c));
            state.scroll = rng.usize(0..5);
            let (width, height) = (rng.usize(0..90), rng.usize(0..12));
            let screen = render(&state, width, height);
            assert_exact_size(&screen, width, height);
            assert!(height == 0 || screen.cursor.0 < width.max(1));
        }
    }

    #[test]
    fn tiny_terminals_do_not_panic() {
        let mut state = state_with(vec![chat("bo", "bbbbbbbb", "日本語 text")]);
        state.input.insert('日');
        for width in 0..8 {
            for height in 0..5 {
                let screen = render(&state, width, height);
                assert_eq!(screen.lines.len(), height);
            }
        }
    }
}
