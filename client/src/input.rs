//! The input line: a text buffer with a cursor, word and line deletion, and
//! a history of the lines entered.
//!
//! The cursor is a byte offset that always sits on a char boundary, and the
//! left and right moves step over a character together with the combining
//! marks that follow it, so no edit can split a UTF-8 sequence.

use crate::sanitize::char_width;

/// The most lines the history keeps; older ones are forgotten.
const HISTORY_LIMIT: usize = 500;

/// The line being typed, its cursor and the history of lines entered.
#[derive(Debug, Default, Clone)]
pub struct InputLine {
    /// The text typed so far.
    text: String,
    /// Byte offset of the cursor in `text`, always on a char boundary.
    cursor: usize,
    /// Lines entered (sent, or commands run), oldest first.
    history: Vec<String>,
    /// Index into `history` while browsing it, `None` when editing a new line.
    browsing: Option<usize>,
    /// The unsent line put aside when browsing started.
    draft: String,
}

impl InputLine {
    /// Creates an empty input line with no history.
    pub fn new() -> InputLine {
        InputLine::default()
    }

    /// Returns the text typed so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Returns the cursor as a byte offset into [`InputLine::text`].
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Returns the number of columns the text before the cursor takes.
    pub fn cursor_column(&self) -> usize {
        self.text[..self.cursor].chars().map(char_width).sum()
    }

    /// Inserts `c` at the cursor; control characters are ignored.
    pub fn insert(&mut self, c: char) {
        if c.is_control() {
            return;
        }
        self.text.insert(self.cursor, c);
        self.cursor += c.len_utf8();
    }

    /// Moves the cursor one character to the left, over any combining marks.
    pub fn move_left(&mut self) {
        while let Some(c) = self.text[..self.cursor].chars().next_back() {
            self.cursor -= c.len_utf8();
            if char_width(c) > 0 {
                break;
            }
        }
    }

    /// Moves the cursor one character to the right, over any combining marks.
    pub fn move_right(&mut self) {
        if let Some(c) = self.text[self.cursor..].chars().next() {
            self.cursor += c.len_utf8();
        }
        while let Some(c) = self.text[self.cursor..].chars().next() {
            if char_width(c) > 0 {
                break;
            }
            self.cursor += c.len_utf8();
        }
    }

    /// Moves the cursor to the start of the line.
    pub fn move_home(&mut self) {
        self.cursor = 0;
    }

    /// Moves the cursor to the end of the line.
    pub fn move_end(&mut self) {
        self.cursor = self.text.len();
    }

    /// Deletes the character before the cursor.
    pub fn backspace(&mut self) {
        if let Some(c) = self.text[..self.cursor].chars().next_back() {
            self.cursor -= c.len_utf8();
            self.text.remove(self.cursor);
        }
    }

    /// Deletes the character under the cursor.
    pub fn delete(&mut self) {
        if self.cursor < self.text.len() {
            self.text.remove(self.cursor);
        }
    }

    /// Deletes the word before the cursor and the white space after it.
    pub fn delete_word(&mut self) {
        let start = self.word_start_before();
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Moves the cursor to the start of the word before it (or the one it
    /// is in).
    pub fn move_word_left(&mut self) {
        self.cursor = self.word_start_before();
    }

    /// Moves the cursor past the end of the word after it (or the one it is
    /// in).
    pub fn move_word_right(&mut self) {
        self.cursor = self.word_end_after();
    }

    /// Deletes from the cursor to the end of the word after it.
    pub fn delete_word_forward(&mut self) {
        let end = self.word_end_after();
        self.text.replace_range(self.cursor..end, "");
    }

    /// Deletes everything from the cursor to the end of the line.
    pub fn delete_to_end(&mut self) {
        self.text.truncate(self.cursor);
    }

    /// Returns where the word before the cursor starts, skipping the white
    /// space just before the cursor.
    fn word_start_before(&self) -> usize {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end();
        trimmed
            .char_indices()
            .rev()
            .find(|(_, c)| c.is_whitespace())
            .map_or(0, |(i, c)| i + c.len_utf8())
    }

    /// Returns where the word after the cursor ends, skipping the white
    /// space just after the cursor.
    fn word_end_after(&self) -> usize {
        let after = &self.text[self.cursor..];
        let skipped = after.len() - after.trim_start().len();
        let word = &after[skipped..];
        let word_len = word.find(char::is_whitespace).unwrap_or(word.len());
        self.cursor + skipped + word_len
    }

    /// Deletes everything before the cursor.
    pub fn delete_to_start(&mut self) {
        self.text.replace_range(..self.cursor, "");
        self.cursor = 0;
    }

    /// Replaces the line with the previous history entry, if there is one.
    pub fn history_prev(&mut self) {
        let index = match self.browsing {
            None if self.history.is_empty() => return,
            None => {
                self.draft = std::mem::take(&mut self.text);
                self.history.len() - 1
            }
            Some(0) => return,
            Some(i) => i - 1,
        };
        if let Some(line) = self.history.get(index).cloned() {
            self.browsing = Some(index);
            self.show(line);
        }
    }

    /// Replaces the line with the next history entry, or the draft after the
    /// newest one.
    pub fn history_next(&mut self) {
        let Some(index) = self.browsing else {
            return;
        };

        if let Some(line) = self.history.get(index + 1).cloned() {
            self.browsing = Some(index + 1);
            self.show(line);
        } else {
            self.browsing = None;
            let draft = std::mem::take(&mut self.draft);
            self.show(draft);
        }
    }

    /// Takes the line for sending or running, leaving the input empty, and
    /// adds it to the history unless it is blank or repeats the newest entry.
    pub fn take(&mut self) -> String {
        let line = std::mem::take(&mut self.text);
        self.cursor = 0;
        self.browsing = None;
        self.draft.clear();

        let repeat = self.history.last().is_some_and(|last| *last == line);
        if !line.trim().is_empty() && !repeat {
            self.history.push(line.clone());
            if self.history.len() > HISTORY_LIMIT {
                self.history.remove(0);
            }
        }
        line
    }

    /// Shows `text` with the cursor at its end.
    fn show(&mut self, text: String) {
        self.text = text;
        self.cursor = self.text.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(text: &str) -> InputLine {
        let mut input = InputLine::new();
        text.chars().for_each(|c| input.insert(c));
        input
    }

    #[test]
    fn inserts_at_the_cursor() {
        let mut input = typed("ac");
        input.move_left();
        input.insert('b');
        assert_eq!(input.text(), "abc");
        assert_eq!(input.cursor(), 2);
    }

    #[test]
    fn control_characters_are_not_inserted() {
        let input = typed("a\u{1b}[31m\u{7}b");
        assert_eq!(input.text(), "a[31mb");
    }

    #[test]
    fn moves_stop_at_the_ends() {
        let mut input = typed("ab");
        input.move_right();
        assert_eq!(input.cursor(), 2);
        input.move_home();
        input.move_left();
        assert_eq!(input.cursor(), 0);
        input.move_end();
        assert_eq!(input.cursor(), 2);
    }

    #[test]
    fn moves_step_over_whole_multibyte_chars() {
        let mut input = typed("aé日🦀");
        input.move_left();
        assert_eq!(&input.text()[input.cursor()..], "🦀");
        input.move_left();
        input.move_left();
        assert_eq!(&input.text()[input.cursor()..], "é日🦀");
        assert_eq!(input.cursor_column(), 1);
        input.move_right();
        input.move_right();
        assert_eq!(input.cursor_column(), 4);
    }

    #[test]
    fn moves_step_over_combining_marks() {
        let mut input = typed("xe\u{301}y");
        input.move_left();
        input.move_left();
        assert_eq!(&input.text()[input.cursor()..], "e\u{301}y");
        input.move_right();
        assert_eq!(&input.text()[input.cursor()..], "y");
    }

    #[test]
    fn backspace_and_delete_remove_one_char() {
        let mut input = typed("日本語");
        input.backspace();
        assert_eq!(input.text(), "日本");
        input.move_home();
        input.delete();
        assert_eq!(input.text(), "本");
        input.move_end();
        input.delete();
        input.backspace();
        input.backspace();
        assert_eq!(input.text(), "");
    }

    #[test]
    fn ctrl_w_deletes_the_previous_word() {
        let mut input = typed("hello wörld  ");
        input.delete_word();
        assert_eq!(input.text(), "hello ");
        input.delete_word();
        assert_eq!(input.text(), "");
        input.delete_word();
        assert_eq!(input.cursor(), 0);
    }

    #[test]
    fn ctrl_w_keeps_text_after_the_cursor() {
        let mut input = typed("one two three");
        (0..5).for_each(|_| input.move_left());
        input.delete_word();
        assert_eq!(input.text(), "one three");
        assert_eq!(input.cursor(), 4);
    }

    #[test]
    fn ctrl_u_deletes_to_line_start() {
        let mut input = typed("abc日def");
        (0..3).for_each(|_| input.move_left());
        input.delete_to_start();
        assert_eq!(input.text(), "def");
        assert_eq!(input.cursor(), 0);
    }

    #[test]
    fn history_walks_back_and_restores_the_draft() {
        let mut input = InputLine::new();
        for line in ["one", "two"] {
            line.chars().for_each(|c| input.insert(c));
            assert_eq!(input.take(), line);
        }
        input.insert('x');

        input.history_prev();
        assert_eq!(input.text(), "two");
        input.history_prev();
        input.history_prev();
        assert_eq!(input.text(), "one");
        input.history_next();
        assert_eq!(input.text(), "two");
        input.history_next();
        assert_eq!(input.text(), "x");
        input.history_next();
        assert_eq!(input.text(), "x");
    }

    #[test]
    fn history_skips_blank_and_repeated_lines() {
        let mut input = InputLine::new();
        for line in ["a", "a", "  ", "b"] {
            line.chars().for_each(|c| input.insert(c));
            input.take();
        }
        input.history_prev();
        assert_eq!(input.text(), "b");
        input.history_prev();
        assert_eq!(input.text(), "a");
        input.history_prev();
        assert_eq!(input.text(), "a");
    }

    #[test]
    fn no_sequence_of_edits_panics() {
        let mut rng = fastrand::Rng::with_seed(7);
        let chars = ['a', ' ', 'é', '日', '🦀', '\u{301}', '\n'];
        let mut input = InputLine::new();
        for _ in 0..5_000 {
            match rng.u8(..11) {
                0 => input.move_left(),
                1 => input.move_right(),
                2 => input.backspace(),
                3 => input.delete(),
                4 => input.delete_word(),
                5 => input.delete_to_start(),
                6 => input.history_prev(),
                7 => input.history_next(),
                8 => drop(input.take()),
                _ => input.insert(chars[rng.usize(..chars.len())]),
            }
            assert!(input.text().is_char_boundary(input.cursor()));
        }
    }

    #[test]
    fn word_moves_and_deletions_stop_at_white_space() {
        let mut input = InputLine::new();
        for c in "héllo  wörld   again".chars() {
            input.insert(c);
        }

        input.move_word_left();
        assert_eq!(&input.text()[input.cursor()..], "again");
        input.move_word_left();
        assert_eq!(&input.text()[input.cursor()..], "wörld   again");
        input.move_word_right();
        assert_eq!(&input.text()[input.cursor()..], "   again");
        input.move_home();
        input.move_word_right();
        assert_eq!(input.cursor(), "héllo".len());

        input.delete_word_forward();
        assert_eq!(input.text(), "héllo   again");
        input.delete_to_end();
        assert_eq!(input.text(), "héllo");
        input.move_home();
        input.move_word_left();
        assert_eq!(input.cursor(), 0);
        input.move_end();
        input.move_word_right();
        assert_eq!(input.cursor(), input.text().len());
    }
}
