//! The full-screen client: raw mode and the alternate screen, keys in,
//! network events in, redraws out.
//!
//! One loop on the UI thread owns the [`ClientState`]. Keys come from a
//! reader thread and network news from the network thread, both over one
//! channel; a short tick polls the terminal size (termion has no SIGWINCH)
//! and counts down the reconnect delay.

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use signal_hook::consts::{SIGHUP, SIGTERM};
use termion::color::{AnsiValue, Bg, Fg};
use termion::event::Key;
use termion::input::TermRead;
use termion::raw::{IntoRawMode, RawTerminal};
use termion::screen::{AlternateScreen, IntoAlternateScreen};
use termion::{clear, cursor, style};

use crate::net::{self, NetCommand, NetConfig, NetEvent, NetHandle};
use crate::render::{self, render, Screen, Style};
use crate::state::{ClientState, ConnectionState};

/// How often the size and the countdown are checked while nothing happens.
const TICK: Duration = Duration::from_millis(150);

/// How long to wait for the network thread to close on quit.
const QUIT_WAIT: Duration = Duration::from_secs(3);

/// Rows a PgUp or PgDn key scrolls when the screen size is unknown.
const DEFAULT_PAGE: usize = 10;

/// What the UI loop wakes up for.
enum UiEvent {
    /// A key was pressed.
    Key(Key),
    /// The keyboard reader stopped (stdin closed).
    KeysEnded,
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
    thread::Builder::new()
        .name("natter-keys".into())
        .spawn(move || read_keys(&keys_tx))?;

    // A polite kill ends the loop like /quit, so the guard restores the
    // terminal; a failed registration only loses that nicety.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGHUP] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            log::warn!("cannot watch signal {signal}: {e}");
        }
    }

    let mut guard = TerminalGuard::enter()?;
    let mut ui = Ui {
        max_line_bytes,
        retry_at: None,
        quit: false,
        net_done: false,
        page: DEFAULT_PAGE,
    };
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

        match rx.recv_timeout(TICK) {
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
    }

    close_politely(&net, &rx, ui.net_done);
    drop(guard);
    Ok(0)
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

/// Forwards keys until stdin ends or the UI goes away.
///
/// An escape sequence termion cannot parse is an error for that key only,
/// so it is skipped; only a long run of errors means stdin itself failed.
fn read_keys(tx: &mpsc::Sender<UiEvent>) {
    const MAX_ERRORS_IN_A_ROW: u32 = 100;
    let mut errors = 0;
    for key in io::stdin().keys() {
        match key {
            Ok(key) => {
                errors = 0;
                if tx.send(UiEvent::Key(key)).is_err() {
                    return;
                }
            }
            Err(e) => {
                log::debug!("unreadable key input: {e}");
                errors += 1;
                if errors >= MAX_ERRORS_IN_A_ROW {
                    break;
                }
            }
        }
    }
    let _ = tx.send(UiEvent::KeysEnded);
}

/// The UI loop's own bookkeeping beside the client state.
struct Ui {
    max_line_bytes: usize,
    /// When the next connection attempt is due, while waiting for it.
    retry_at: Option<Instant>,
    quit: bool,
    net_done: bool,
    /// Rows one PgUp or PgDn scrolls.
    page: usize,
}

impl Ui {
    /// Applies one event.
    fn handle(&mut self, state: &mut ClientState, net: &NetHandle, event: UiEvent) {
        match event {
            UiEvent::Key(key) => self.handle_key(state, net, key),
            UiEvent::KeysEnded => self.quit = true,
            UiEvent::Net(event) => self.handle_net(state, event),
        }
    }

    /// Applies one key.
    fn handle_key(&mut self, state: &mut ClientState, net: &NetHandle, key: Key) {
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
            Key::Up => input.history_prev(),
            Key::Down => input.history_next(),
            Key::PageUp => state.scroll_up(self.page),
            Key::PageDown => state.scroll_down(self.page),
            _ => {}
        }
    }

    /// Sends the input line, or runs it as a command.
    fn enter(&mut self, state: &mut ClientState, net: &NetHandle) {
        let line = state.input.take();
        match parse_line(&line) {
            Line::Blank => {}
            Line::Chat(text) if text.len() > self.max_line_bytes => {
                let (len, max) = (text.len(), self.max_line_bytes);
                state.notice(format!("line not sent: {len} bytes, at most {max}"));
            }
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
            Line::Command(other) => {
                state.notice(format!("unknown command /{other}; try /help"));
            }
        }
    }

    /// Applies news from the network thread.
    fn handle_net(&mut self, state: &mut ClientState, event: NetEvent) {
        match event {
            NetEvent::Connecting => {
                self.retry_at = None;
                state.connection = ConnectionState::Connecting;
            }
            NetEvent::Connected => {}
            NetEvent::Server(event) => state.handle_event(event),
            NetEvent::Lost { reason, retry_in } => {
                state.members.clear();
                state.notice_once(format!("{reason}; reconnecting"));
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
        let left = at.saturating_duration_since(Instant::now());
        let in_secs = left.as_millis().div_ceil(1000) as u64;
        let shown = ConnectionState::Reconnecting { in_secs };
        let changed = state.connection != shown;
        state.connection = shown;
        changed
    }
}

/// The answer to /help.
const HELP: &[&str] = &[
    "/who lists the room, /quit leaves (or Ctrl-C), /help shows this",
    "Left/Right, Home/End (Ctrl-A/Ctrl-E), Ctrl-W deletes a word, Ctrl-U the line start",
    "Up/Down recall sent lines, PgUp/PgDn scroll; start a line with // to send a /",
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

    #[test]
    fn lines_sort_into_chat_and_commands() {
        assert_eq!(parse_line("  "), Line::Blank);
        assert_eq!(parse_line("hello"), Line::Chat("hello"));
        assert_eq!(parse_line("/who"), Line::Command("who"));
        assert_eq!(parse_line("/quit now"), Line::Command("quit"));
        assert_eq!(parse_line("/"), Line::Command(""));
        assert_eq!(parse_line("//etc/hosts"), Line::Chat("/etc/hosts"));
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
