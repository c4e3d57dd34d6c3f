//! The full-screen client: raw mode and the alternate screen, keys in,
//! network events in, redraws out.
//!
//! One loop on the UI thread owns the [`ClientState`]. Raw input bytes come
//! from a reader thread and network news from the network thread, both over
//! one channel; the loop decodes the bytes into keys itself (see
//! [`crate::keys`]), so no input can stop the keyboard. A short tick polls
//! the terminal size (termion has no SIGWINCH) and counts down the
//! reconnect delay. If the reader thread ends, however it ends, the client
//! quits and restores the terminal.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGTERM};
use termion::color::{AnsiValue, Bg, Fg};
use termion::event::Key;
use termion::raw::{IntoRawMode, RawTerminal};
use termion::screen::{AlternateScreen, IntoAlternateScreen};
use termion::{clear, cursor, style};

use crate::keys::KeyDecoder;
use crate::net::{self, NetCommand, NetConfig, NetEvent, NetHandle};
use crate::render::{self, render, Screen, Style};
use crate::state::{ClientState, ConnectionState};

/// How often the size and the countdown are checked while nothing happens.
const TICK: Duration = Duration::from_millis(150);

/// How long to wait for the network thread to close on quit.
const QUIT_WAIT: Duration = Duration::from_secs(3);

/// Rows a PgUp or PgDn key scrolls when the screen size is unknown.
const DEFAULT_PAGE: usize = 10;

/// How long an ESC waits for the rest of a sequence before it counts as
/// the Esc key.
const ESC_WAIT: Duration = Duration::from_millis(50);

/// How many failed reads of stdin in a row end the keyboard.
const MAX_READ_ERRORS: u32 = 10;

/// What the UI loop wakes up for.
enum UiEvent {
    /// Bytes read from the keyboard.
    Input(Vec<u8>),
    /// The keyboard reader stopped: `None` at the end of stdin, else why.
    KeysEnded(Option<String>),
    /// News from the network thread.
    Net(NetEvent),
}

/// Raw mode and the alternate screen, left again when dropped, however the
/// UI ends.
pub struct TerminalGuard {
    /// Always `Some` until dropped; taken so that it can be dropped first.
    out: Option<AlternateScreen<RawTerminal<io::Stdout>>>,
}

impl TerminalGuard {
    /// Switches the terminal to raw mode and the alternate screen.
    ///
    /// # Errors
    ///
    /// Fails when stdout is not a terminal whose mode can be changed.
    pub fn enter() -> io::Result<TerminalGuard> {
        let out = io::stdout().into_raw_mode()?.into_alternate_screen()?;
        Ok(TerminalGuard { out: Some(out) })
    }

    /// Writes a whole screen.
    fn draw(&mut self, screen: &Screen) -> io::Result<()> {
        match &mut self.out {
            Some(out) => draw(out, screen),
            None => Ok(()),
        }
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        let Some(mut out) = self.out.take() else {
            return;
        };
        let _ = write!(out, "{}{}", style::Reset, cursor::Show);

        // Dropping leaves the alternate screen and restores the saved mode;
        // the switch is only buffered, so flush it now, before anything
        // (a panic message) is printed that it would otherwise hide.
        drop(out);
        let _ = io::stdout().flush();
    }
}

/// Runs the full-screen client until the user quits; returns the exit code.
///
/// # Errors
///
/// Fails when the terminal cannot be set up or written to.
pub fn run(mut state: ClientState, config: NetConfig, max_line_bytes: usize) -> io::Result<i32> {
    let (tx, rx) = mpsc::channel();
    let net = net::spawn(config, tx.clone(), UiEvent::Net)?;
    let keys_tx = tx;
    let keys = thread::Builder::new()
        .name("natter-keys".into())
        .spawn(move || read_keys(keys_tx))?;

    // A polite kill ends the loop like /quit, so the guard restores the
    // terminal; a failed registration only loses that nicety.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGHUP] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            log::warn!("cannot watch signal {signal}: {e}");
        }
    }

    let mut guard = TerminalGuard::enter()?;
    let mut ui = Ui::new(max_line_bytes);
    let mut size = (0, 0);
    let mut dirty = true;
    state.notice("type /help for commands");
    while !ui.quit && !stop.load(Ordering::Relaxed) {
        let now_size = termion::terminal_size().unwrap_or((80, 24));
        if now_size != size || dirty {
            size = now_size;
            ui.page = usize::from(size.1).saturating_sub(3).max(1);
            let screen = render(&state, usize::from(size.0), usize::from(size.1));
            state.scroll = screen.scroll;
            guard.draw(&screen)?;
        }

        // A waiting ESC with nothing after it is the Esc key.
        let mut wait = TICK;
        if let Some(deadline) = ui.esc_deadline {
            let now = Instant::now();
            if now >= deadline {
                ui.flush_esc(&mut state, &net);
                dirty = true;
                continue;
            }
            wait = wait.min(deadline - now);
        }

        match rx.recv_timeout(wait) {
            Ok(event) => {
                dirty = true;
                let (logged, scrolled) = (state.log.len(), state.scroll > 0);
                ui.handle(&mut state, &net, event);
                while let Ok(event) = rx.try_recv() {
                    ui.handle(&mut state, &net, event);
                }

                // Keep a scrolled-back view where it is as lines arrive.
                if scrolled && state.scroll > 0 {
                    let added = render::rows_since(&state, logged, usize::from(size.0));
                    state.scroll_up(added);
                }
            }
            Err(RecvTimeoutError::Timeout) => dirty = ui.tick(&mut state),
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if net.is_finished() && !ui.net_done {
            // Take its last words, if any: without them it panicked.
            while let Ok(event) = rx.try_recv() {
                ui.handle(&mut state, &net, event);
            }
            if !ui.net_done {
                state.connection = ConnectionState::Closed;
                state.notice("the network thread stopped");
                ui.net_done = true;
            }
            dirty = true;
        }
        if keys.is_finished() && ui.keys_ended.is_none() {
            // Its last words say why; without them it panicked.
            while let Ok(event) = rx.try_recv() {
                ui.handle(&mut state, &net, event);
            }
            if ui.keys_ended.is_none() {
                ui.keys_ended = Some(Some("the keyboard reader stopped".into()));
            }
            ui.quit = true;
        }
    }

    close_politely(&net, &rx, ui.net_done);
    drop(guard);
    match ui.keys_ended {
        Some(Some(reason)) => {
            say!("natter: {reason}");
            Ok(1)
        }
        _ => Ok(0),
    }
}

/// Asks the network thread to close the session with 1000, and waits for
/// it a little, never long enough to make quitting hang.
fn close_politely(net: &NetHandle, rx: &mpsc::Receiver<UiEvent>, net_done: bool) {
    net.send(NetCommand::Quit);
    let deadline = Instant::now() + QUIT_WAIT;
    while !net_done && !net.is_finished() {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(UiEvent::Net(NetEvent::Finished { .. })) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// Forwards raw keyboard bytes until stdin ends or fails, or the UI goes
/// away. The UI always hears that it stopped, even by a panic.
fn read_keys(tx: mpsc::Sender<UiEvent>) {
    let mut ended = KeysEndedNotice {
        tx,
        reason: Some("the keyboard reader stopped".into()),
    };
    // Larger than stdin's own buffer, so every read goes straight through.
    let mut buf = vec![0; 16 * 1024];
    let mut stdin = io::stdin().lock();
    let mut errors = 0;
    loop {
        match stdin.read(&mut buf) {
            Ok(0) => {
                ended.reason = None;
                return;
            }
            Ok(n) => {
                errors = 0;
                let bytes = buf.get(..n).unwrap_or(&[]).to_vec();
                if ended.tx.send(UiEvent::Input(bytes)).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                errors += 1;
                if errors >= MAX_READ_ERRORS {
                    ended.reason = Some(format!("cannot read the keyboard: {e}"));
                    return;
                }
            }
        }
    }
}

/// Tells the UI that the keyboard reader stopped when dropped, which is
/// also the case when the reader panics.
struct KeysEndedNotice {
    tx: mpsc::Sender<UiEvent>,
    reason: Option<String>,
}

impl Drop for KeysEndedNotice {
    fn drop(&mut self) {
        let _ = self.tx.send(UiEvent::KeysEnded(self.reason.take()));
    }
}

/// Where the UI sends its commands for the network thread.
trait Commands {
    /// Passes one command on.
    fn send(&self, command: NetCommand);
}

impl Commands for NetHandle {
    fn send(&self, command: NetCommand) {
        NetHandle::send(self, command);
    }
}

/// The UI loop's own bookkeeping beside the client state.
struct Ui {
    max_line_bytes: usize,
    /// When the next connection attempt is due, while waiting for it.
    retry_at: Option<Instant>,
    /// While rejoining after a 409, when the attempts stop.
    give_up_at: Option<Instant>,
    quit: bool,
    net_done: bool,
    /// Rows one PgUp or PgDn scrolls.
    page: usize,
    /// Turns keyboard bytes into keys.
    decoder: KeyDecoder,
    /// When a waiting ESC becomes the Esc key.
    esc_deadline: Option<Instant>,
    /// Set once the keyboard reader stopped: `Some(None)` at the end of
    /// stdin, `Some(Some(reason))` when it failed.
    keys_ended: Option<Option<String>>,
}

impl Ui {
    /// Starts with nothing typed, nothing waiting and no quit asked for.
    fn new(max_line_bytes: usize) -> Ui {
        Ui {
            max_line_bytes,
            retry_at: None,
            give_up_at: None,
            quit: false,
            net_done: false,
            page: DEFAULT_PAGE,
            decoder: KeyDecoder::new(),
            esc_deadline: None,
            keys_ended: None,
        }
    }

    /// Applies one event.
    fn handle(&mut self, state: &mut ClientState, net: &dyn Commands, event: UiEvent) {
        match event {
            UiEvent::Input(bytes) => self.handle_input(state, net, &bytes),
            UiEvent::KeysEnded(reason) => {
                let mut keys = Vec::new();
                self.decoder.finish(&mut keys);
                for key in keys {
                    self.handle_key(state, net, key);
                }
                self.keys_ended = Some(reason);
                self.quit = true;
            }
            UiEvent::Net(event) => self.handle_net(state, event),
        }
    }

    /// Decodes keyboard bytes and applies the keys.
    fn handle_input(&mut self, state: &mut ClientState, net: &dyn Commands, bytes: &[u8]) {
        let mut keys = Vec::new();
        self.decoder.feed(bytes, &mut keys);
        for key in keys {
            self.handle_key(state, net, key);
        }
        self.esc_deadline = self
            .decoder
            .waits_after_esc()
            .then(|| Instant::now() + ESC_WAIT);
    }

    /// Takes a waiting ESC as the Esc key.
    fn flush_esc(&mut self, state: &mut ClientState, net: &dyn Commands) {
        self.esc_deadline = None;
        let mut keys = Vec::new();
        self.decoder.flush_esc(&mut keys);
        for key in keys {
            self.handle_key(state, net, key);
        }
    }

    /// Applies one key.
    fn handle_key(&mut self, state: &mut ClientState, net: &dyn Commands, key: Key) {
        let input = &mut state.input;
        match key {
            Key::Ctrl('c') => self.quit = true,
            Key::Char('\n') => self.enter(state, net),
            Key::Char(c) => input.insert(c),
            Key::Left => input.move_left(),
            Key::Right => input.move_right(),
            Key::Home | Key::Ctrl('a') => input.move_home(),
            Key::End | Key::Ctrl('e') => input.move_end(),
            Key::Backspace | Key::Ctrl('h') => input.backspace(),
            Key::Delete | Key::Ctrl('d') => input.delete(),
            Key::Ctrl('w') => input.delete_word(),
            Key::Ctrl('u') => input.delete_to_start(),
            Key::Ctrl('k') => input.delete_to_end(),
            Key::Alt('b') | Key::CtrlLeft | Key::AltLeft => input.move_word_left(),
            Key::Alt('f') | Key::CtrlRight | Key::AltRight => input.move_word_right(),
            Key::Alt('d') => input.delete_word_forward(),
            Key::Up => input.history_prev(),
            Key::Down => input.history_next(),
            Key::PageUp => state.scroll_up(self.page),
            Key::PageDown => state.scroll_down(self.page),
            _ => {}
        }
    }

    /// Sends the input line, or runs it as a command, recording it in the
    /// history; a line the client refuses stays in the input instead.
    fn enter(&mut self, state: &mut ClientState, net: &dyn Commands) {
        // A line the client refuses stays in the input, to be corrected,
        // and stays out of the history, which holds only lines acted on.
        if let Some(notice) = refusal(state.input.text(), self.max_line_bytes) {
            state.notice(notice);
            return;
        }
        let line = state.input.take();
        match parse_line(&line) {
            Line::Blank => {}
            Line::Chat(text) => {
                state.scroll = 0;
                if state.connection != ConnectionState::Connected {
                    state.notice("not connected; the line is sent once connected");
                }
                net.send(NetCommand::Send(text.to_owned()));
            }
            Line::Command("quit") => self.quit = true,
            Line::Command("who") => {
                let names: Vec<&str> = state.members.iter().map(|m| m.user_name.as_str()).collect();
                let count = names.len();
                state.notice(format!("{count} here: {}", names.join(", ")));
            }
            Line::Command("help") => {
                for text in HELP {
                    state.notice(*text);
                }
            }
            // Unknown commands were refused above.
            Line::Command(_) => {}
        }
    }

    /// Applies news from the network thread.
    fn handle_net(&mut self, state: &mut ClientState, event: NetEvent) {
        match event {
            NetEvent::Connecting => {
                (self.retry_at, self.give_up_at) = (None, None);
                state.held = 0;
                state.connection = ConnectionState::Connecting;
            }
            NetEvent::Connected => {}
            NetEvent::Held(held) => state.held = held,
            NetEvent::Server(event) => state.handle_event(event),
            NetEvent::Lost { reason, retry_in } => {
                state.members.clear();
                state.notice_once(format!("{reason}; reconnecting"));
                self.wait(state, retry_in);
            }
            NetEvent::Rejoining {
                reason,
                retry_in,
                gives_up_in,
            } => {
                state.members.clear();
                state.notice_once(format!(
                    "refused (409): {reason}; the server still holds our dropped connection, \
                     retrying until it lets go; queued lines are kept"
                ));
                self.give_up_at = Some(Instant::now() + gives_up_in);
                self.wait(state, retry_in);
            }
            NetEvent::Refused {
                status,
                reason,
                retry_in,
            } => {
                state.notice_once(format!("refused ({status}): {reason}"));
                match retry_in {
                    Some(delay) => self.wait(state, delay),
                    None => state.connection = ConnectionState::Refused,
                }
            }
            NetEvent::Finished { error } => {
                self.net_done = true;
                if let Some(error) = error {
                    if state.connection != ConnectionState::Refused {
                        state.connection = ConnectionState::Closed;
                        state.notice(error);
                    }
                    state.notice("press Ctrl-C or type /quit to leave");
                }
            }
        }
    }

    /// Shows the countdown to the next attempt.
    fn wait(&mut self, state: &mut ClientState, delay: Duration) {
        self.retry_at = Some(Instant::now() + delay);
        self.tick(state);
    }

    /// Updates the countdown; returns whether the screen changed.
    fn tick(&mut self, state: &mut ClientState) -> bool {
        let Some(at) = self.retry_at else {
            return false;
        };
        let now = Instant::now();
        let in_secs = whole_secs(at.saturating_duration_since(now));
        let shown = match self.give_up_at {
            Some(end) => ConnectionState::Rejoining {
                in_secs,
                gives_up_in_secs: whole_secs(end.saturating_duration_since(now)),
            },
            None => ConnectionState::Reconnecting { in_secs },
        };
        let changed = state.connection != shown;
        state.connection = shown;
        changed
    }
}

/// Returns `duration` in whole seconds, rounded up, for a countdown.
fn whole_secs(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis().div_ceil(1000)).unwrap_or(u64::MAX)
}

/// The answer to /help.
const HELP: &[&str] = &[
    "/who lists the room, /quit leaves (or Ctrl-C), /help shows this",
    "Left/Right, Home/End (Ctrl-A/Ctrl-E), Ctrl-Left/Right or Alt-B/F by words",
    "Ctrl-W deletes a word back, Alt-D one forward, Ctrl-U to the start, Ctrl-K to the end",
    "Up/Down recall lines entered, PgUp/PgDn scroll; start a line with // to send a /",
];

/// What an input line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Line<'a> {
    /// Nothing: the line is blank.
    Blank,
    /// A chat line to send.
    Chat(&'a str),
    /// A command, named without its slash.
    Command(&'a str),
}

/// Sorts an input line into chat or command; `//` sends a literal `/`.
fn parse_line(line: &str) -> Line<'_> {
    if line.trim().is_empty() {
        return Line::Blank;
    }
    if let Some(text) = line.strip_prefix('/').filter(|t| t.starts_with('/')) {
        return Line::Chat(text);
    }
    match line.strip_prefix('/') {
        Some(command) => Line::Command(command.split_whitespace().next().unwrap_or("")),
        None => Line::Chat(line),
    }
}

/// The commands the client knows, named without their slash.
const COMMANDS: &[&str] = &["quit", "who", "help"];

/// Returns why the client refuses `line`: a chat line longer than `max`
/// bytes, or an unknown command. Such a line is neither sent nor recorded
/// in the history; it stays in the input line to be corrected.
fn refusal(line: &str, max: usize) -> Option<String> {
    match parse_line(line) {
        Line::Chat(text) if text.len() > max => {
            let len = text.len();
            Some(format!(
                "line not sent: {len} bytes, at most {max}; shorten it and press Enter"
            ))
        }
        Line::Command(name) if !COMMANDS.contains(&name) => Some(format!(
            "unknown command /{name}; try /help, or start with // to send a /"
        )),
        _ => None,
    }
}

/// Writes a whole screen in one go.
fn draw(out: &mut impl Write, screen: &Screen) -> io::Result<()> {
    let mut buf = Vec::new();
    write!(buf, "{}", cursor::Hide)?;
    for (row, line) in screen.lines.iter().enumerate() {
        let row = u16::try_from(row + 1).unwrap_or(u16::MAX);
        write!(buf, "{}{}", cursor::Goto(1, row), clear::UntilNewline)?;
        for span in &line.spans {
            write_style(&mut buf, span.style)?;
            buf.extend_from_slice(span.text.as_bytes());
            write!(buf, "{}", style::Reset)?;
        }
    }

    let (col, row) = screen.cursor;
    let col = u16::try_from(col + 1).unwrap_or(u16::MAX);
    let row = u16::try_from(row + 1).unwrap_or(u16::MAX);
    write!(buf, "{}{}", cursor::Goto(col, row), cursor::Show)?;
    out.write_all(&buf)?;
    out.flush()
}

/// Writes the escape sequences that select `s`.
fn write_style(buf: &mut Vec<u8>, s: Style) -> io::Result<()> {
    if let Some(fg) = s.fg {
        write!(buf, "{}", Fg(AnsiValue(fg)))?;
    }
    if let Some(bg) = s.bg {
        write!(buf, "{}", Bg(AnsiValue(bg)))?;
    }
    if s.bold {
        write!(buf, "{}", style::Bold)?;
    }
    if s.dim {
        write!(buf, "{}", style::Faint)?;
    }
    if s.reverse {
        write!(buf, "{}", style::Invert)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Entry;

    #[test]
    fn lines_sort_into_chat_and_commands() {
        assert_eq!(parse_line("  "), Line::Blank);
        assert_eq!(parse_line("hello"), Line::Chat("hello"));
        assert_eq!(parse_line("/who"), Line::Command("who"));
        assert_eq!(parse_line("/quit now"), Line::Command("quit"));
        assert_eq!(parse_line("/"), Line::Command(""));
        assert_eq!(parse_line("//etc/hosts"), Line::Chat("/etc/hosts"));
    }

    /// Records the commands the UI sends.
    #[derive(Default)]
    struct Sent(std::cell::RefCell<Vec<NetCommand>>);

    impl Commands for Sent {
        fn send(&self, command: NetCommand) {
            self.0.borrow_mut().push(command);
        }
    }

    fn client() -> (Ui, ClientState, Sent) {
        let state = ClientState::new("lobby", "ws://127.0.0.1:1", "me", "s1");
        (Ui::new(16), state, Sent::default())
    }

    fn sent(net: &Sent) -> Vec<NetCommand> {
        net.0.borrow().clone()
    }

    #[test]
    fn a_broken_escape_sequence_leaves_the_keyboard_working() {
        for junk in [&b"\x1b[5;99999~"[..], b"\x1b[999999999999999999999A"] {
            let (mut ui, mut state, net) = client();
            ui.handle(&mut state, &net, UiEvent::Input(junk.to_vec()));
            ui.handle(&mut state, &net, UiEvent::Input(b"hi\r".to_vec()));
            assert_eq!(sent(&net), vec![NetCommand::Send("hi".into())]);
            assert!(!ui.quit);
            ui.handle(&mut state, &net, UiEvent::Input(b"\x03".to_vec()));
            assert!(ui.quit);
        }
    }

    #[test]
    fn a_sequence_split_across_reads_is_one_key() {
        let (mut ui, mut state, net) = client();
        ui.handle(&mut state, &net, UiEvent::Input(b"ab\x1b".to_vec()));
        assert!(ui.esc_deadline.is_some());
        ui.handle(&mut state, &net, UiEvent::Input(b"[D".to_vec()));
        assert!(ui.esc_deadline.is_none());
        ui.handle(&mut state, &net, UiEvent::Input(b"x".to_vec()));
        assert_eq!(state.input.text(), "axb");
    }

    #[test]
    fn word_keys_move_and_delete_by_words() {
        let (mut ui, mut state, net) = client();
        ui.handle(&mut state, &net, UiEvent::Input(b"one two three".to_vec()));
        // Ctrl-Left, then Alt-B: two words back; Alt-D deletes "two".
        ui.handle(
            &mut state,
            &net,
            UiEvent::Input(b"\x1b[1;5D\x1bb\x1bd".to_vec()),
        );
        assert_eq!(state.input.text(), "one  three");
        // Ctrl-Right to the end; then Ctrl-A, Alt-F past "one", Ctrl-K.
        ui.handle(&mut state, &net, UiEvent::Input(b"\x1b[1;5C".to_vec()));
        assert_eq!(state.input.cursor(), "one  three".len());
        ui.handle(&mut state, &net, UiEvent::Input(b"\x01\x1bf\x0b".to_vec()));
        assert_eq!(state.input.text(), "one");
    }

    #[test]
    fn a_waiting_esc_is_flushed_and_the_next_key_kept() {
        let (mut ui, mut state, net) = client();
        ui.handle(&mut state, &net, UiEvent::Input(b"\x1b".to_vec()));
        ui.flush_esc(&mut state, &net);
        ui.handle(&mut state, &net, UiEvent::Input(b"h".to_vec()));
        assert_eq!(state.input.text(), "h");
    }

    #[test]
    fn the_end_of_the_keyboard_quits() {
        let (mut ui, mut state, net) = client();
        ui.handle(&mut state, &net, UiEvent::KeysEnded(Some("gone".into())));
        assert!(ui.quit);
        assert_eq!(ui.keys_ended, Some(Some("gone".into())));
    }

    #[test]
    fn the_reader_tells_the_ui_when_it_stops_even_by_a_panic() {
        let (tx, rx) = mpsc::channel();
        let reader = thread::spawn(move || {
            let _notice = KeysEndedNotice {
                tx,
                reason: Some("stopped".into()),
            };
            panic!("reader broke");
        });
        assert!(reader.join().is_err());
        assert!(matches!(
            rx.try_recv(),
            Ok(UiEvent::KeysEnded(Some(reason))) if reason == "stopped"
        ));
    }

    #[test]
    fn a_line_too_long_stays_in_the_input() {
        let (mut ui, mut state, net) = client();
        let long = "x".repeat(17);
        ui.handle(
            &mut state,
            &net,
            UiEvent::Input(format!("{long}\r").into_bytes()),
        );
        assert_eq!(sent(&net), vec![]);
        assert_eq!(state.input.text(), long);

        // Shortened, it goes.
        ui.handle(&mut state, &net, UiEvent::Input(b"\x7f\r".to_vec()));
        assert_eq!(sent(&net), vec![NetCommand::Send("x".repeat(16))]);
        assert_eq!(state.input.text(), "");
    }

    #[test]
    fn only_long_chat_lines_and_unknown_commands_are_refused() {
        assert_eq!(refusal("abcd", 4), None);
        assert_eq!(refusal("//abc", 4), None);
        assert!(refusal("abcde", 4).is_some_and(|n| n.contains("5 bytes, at most 4")));
        assert!(refusal("日日", 4).is_some());
        assert_eq!(refusal("/quit now and forever", 4), None);
        assert_eq!(refusal("/who", 4), None);
        assert_eq!(refusal("      ", 4), None);
        assert!(refusal("/bogus", 4).is_some_and(|n| n.contains("unknown command /bogus")));
        assert!(refusal("/", 4).is_some());
    }

    #[test]
    fn history_holds_lines_acted_on_but_not_an_unknown_command() {
        let (mut ui, mut state, net) = client();
        ui.handle(&mut state, &net, UiEvent::Input(b"hello\r/who\r".to_vec()));
        ui.handle(&mut state, &net, UiEvent::Input(b"/bogus\r".to_vec()));
        assert_eq!(sent(&net), vec![NetCommand::Send("hello".into())]);
        assert_eq!(state.input.text(), "/bogus", "kept to be corrected");
        assert!(matches!(
            state.log.last(),
            Some(Entry::Notice(n)) if n.starts_with("unknown command /bogus")
        ));

        // Cleared, Up recalls the lines acted on, newest first.
        ui.handle(&mut state, &net, UiEvent::Input(b"\x15\x1b[A".to_vec()));
        assert_eq!(state.input.text(), "/who");
        ui.handle(&mut state, &net, UiEvent::Input(b"\x1b[A".to_vec()));
        assert_eq!(state.input.text(), "hello");
        ui.handle(&mut state, &net, UiEvent::Input(b"\x1b[A".to_vec()));
        assert_eq!(state.input.text(), "hello", "nothing older");
    }

    #[test]
    fn rejoining_shows_its_countdowns_and_why() {
        let (mut ui, mut state, _) = client();
        let rejoining = NetEvent::Rejoining {
            reason: "session_id is already connected in this room".into(),
            retry_in: Duration::from_millis(1_500),
            gives_up_in: Duration::from_secs(90),
        };
        ui.handle_net(&mut state, rejoining.clone());
        assert_eq!(
            state.connection,
            ConnectionState::Rejoining {
                in_secs: 2,
                gives_up_in_secs: 90
            }
        );
        ui.handle_net(&mut state, NetEvent::Connecting);
        ui.handle_net(&mut state, rejoining);
        let notices = state.log.iter().filter(
            |e| matches!(e, Entry::Notice(n) if n.contains("still holds our dropped connection")),
        );
        assert_eq!(notices.count(), 1, "said once: {:?}", state.log);

        // A plain loss afterwards counts down without a give-up time.
        let lost = NetEvent::Lost {
            reason: "connection lost".into(),
            retry_in: Duration::from_secs(1),
        };
        ui.handle_net(&mut state, NetEvent::Connecting);
        ui.handle_net(&mut state, lost);
        assert_eq!(
            state.connection,
            ConnectionState::Reconnecting { in_secs: 1 }
        );
    }

    #[test]
    fn styles_write_no_raw_text() {
        let mut buf = Vec::new();
        let style = Style {
            fg: Some(33),
            bg: Some(236),
            bold: true,
            dim: true,
            reverse: true,
        };
        write_style(&mut buf, style).unwrap();
        assert!(buf.starts_with(b"\x1b["));
    }
}
