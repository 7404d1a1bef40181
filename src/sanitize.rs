//! What of untrusted text reaches a terminal: output a submission printed,
//! ids and names from a batch file, folder names in the store, messages
//! that quote them. One rule for the dashboard and the command line.
//!
//! Bytes go through a real terminal parser (vte), so an escape sequence is
//! recognised whole and dropped whole: OSC (titles, clipboard), DCS, CSI
//! (cursor movement, clears), C0 and C1 controls never reach the terminal.
//! What is kept: printable text, and (in [`PlainText`]) newlines and tabs.
//! The dashboard's panes (`tui::sanitize`) also keep SGR colours.

use vte::{Parser, Perform};

/// What of `c` reaches the screen. C1 controls arrive here as characters
/// and are not text; zero-width and format characters (U+200B, joiners,
/// bidi overrides, soft hyphens, combining marks) have no cell of their own
/// and would shift what a terminal draws after them, so they go; regional
/// indicators (flag halves), which terminals pair into one wide glyph, show
/// as `?`.
pub(crate) fn displayable(c: char) -> Option<char> {
    use unicode_width::UnicodeWidthChar;
    if c.is_control() {
        return None;
    }
    if ('\u{1F1E6}'..='\u{1F1FF}').contains(&c) {
        return Some('?');
    }
    match c.width() {
        Some(width) if width > 0 => Some(c),
        _ => None,
    }
}

/// Untrusted output as plain text, for a pager: what the panes keep
/// (printable text, newlines, tabs), without colours; escape sequences and
/// other controls dropped, so that nothing the submission printed drives
/// the terminal the pager draws on. A carriage return ends the line (a
/// progress bar shows each of its states).
#[derive(Default)]
pub struct PlainText {
    parser: Parser,
    sink: PlainSink,
}

#[derive(Default)]
struct PlainSink {
    text: String,
}

impl Perform for PlainSink {
    fn print(&mut self, c: char) {
        if let Some(c) = displayable(c) {
            self.text.push(c);
        }
    }

    fn execute(&mut self, byte: u8) {
        match byte {
            b'\n' | b'\r' => self.text.push('\n'),
            b'\t' => self.text.push('\t'),
            _ => {}
        }
    }
}

impl PlainText {
    /// Reads `bytes` (a sequence may continue in the next call); returns
    /// the text they completed.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.parser.advance(&mut self.sink, bytes);
        std::mem::take(&mut self.sink.text)
    }
}

/// `text` on one line, as it may reach a terminal: escape sequences and
/// controls dropped, line breaks and tabs shown as spaces. For ids, names
/// and paths quoted in messages.
pub fn plain(text: &str) -> String {
    // Printable ASCII is kept as it is (most ids, names, commands).
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return text.to_owned();
    }
    let mut plain = PlainText::default();
    plain
        .push(text.as_bytes())
        .chars()
        .map(|c| if c == '\n' || c == '\t' { ' ' } else { c })
        .collect()
}

/// [`plain`] of a path, which need not be UTF-8.
pub fn path(path: &std::path::Path) -> String {
    plain(&path.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_keeps_text_and_drops_every_sequence() {
        let mut plain = PlainText::default();
        let mut text = plain.push(b"ok \x1b[31mred\x1b[0m\x1b]0;ti");
        text += &plain.push(b"tle\x07\x1b[2J\tend\r\n\x07\xe2\x80");
        text += &plain.push(b"\x8b\xc3\xa9\n");
        assert_eq!(
            text, "ok red\tend\n\n\u{e9}\n",
            "U+200B dropped, é kept across chunks"
        );
    }

    #[test]
    fn a_hostile_name_reaches_a_message_harmless() {
        assert_eq!(
            plain("sub\x1b]0;pwned\x07mission\x1b[2J\nnext\u{202e}"),
            "submission next"
        );
    }
}
