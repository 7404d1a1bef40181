//! Untrusted output made safe to draw: a bounded buffer of styled lines.
//!
//! Bytes go through a real terminal parser (vte), so escape sequences split
//! across chunks are recognised whole. What is kept: printable text,
//! newlines, tabs (expanded to stops of 8), SGR colours and attributes, and
//! a bare carriage return (the line starts over, as progress bars expect).
//! Everything else is dropped: OSC (titles, clipboard), DCS, cursor movement,
//! screen clears, C0 and C1 controls. Raw bytes stay in the run log.
//! Which characters reach the screen is [`crate::sanitize`]'s to say, for
//! the dashboard and the command line alike.

use std::collections::VecDeque;
use std::time::Duration;

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use vte::{Params, Parser, Perform};

pub use crate::sanitize::PlainText;
use crate::sanitize::displayable;

/// Characters a line may hold; longer output continues on a new line, so a
/// flood without newlines stays bounded.
pub const MAX_LINE_CHARS: usize = 4096;
const TAB_STOP: usize = 8;

/// One sanitised line and when it started.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputLine {
    /// Time since the session started.
    pub at: Duration,
    /// The text, as styled spans.
    pub spans: Vec<(Style, String)>,
}

impl OutputLine {
    fn new(at: Duration) -> Self {
        Self {
            at,
            spans: Vec::new(),
        }
    }

    /// The text without styles.
    pub fn text(&self) -> String {
        self.spans.iter().map(|(_, s)| s.as_str()).collect()
    }

    /// For drawing.
    pub fn to_line(&self) -> Line<'static> {
        Line::from(
            self.spans
                .iter()
                .map(|(style, text)| Span::styled(text.clone(), *style))
                .collect::<Vec<_>>(),
        )
    }
}

/// The sanitised output of one stream: at most `max_lines` lines.
pub struct OutputBuffer {
    parser: Parser,
    sink: Sink,
}

#[derive(Debug)]
struct Sink {
    lines: VecDeque<OutputLine>,
    current: OutputLine,
    /// Characters in `current`.
    column: usize,
    style: Style,
    /// A CR came; the next printable character starts the line over.
    carriage_return: bool,
    max_lines: usize,
    now: Duration,
    /// Lines dropped from the front to stay bounded.
    dropped: u64,
}

impl std::fmt::Debug for OutputBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputBuffer")
            .field("lines", &self.len())
            .field("dropped", &self.sink.dropped)
            .finish_non_exhaustive()
    }
}

impl OutputBuffer {
    /// An empty buffer keeping at most `max_lines` complete lines.
    pub fn new(max_lines: usize) -> Self {
        Self {
            parser: Parser::new(),
            sink: Sink {
                lines: VecDeque::new(),
                current: OutputLine::new(Duration::ZERO),
                column: 0,
                style: Style::default(),
                carriage_return: false,
                max_lines: max_lines.max(1),
                now: Duration::ZERO,
                dropped: 0,
            },
        }
    }

    /// Feeds bytes written at `at` (time since the session started).
    pub fn push(&mut self, bytes: &[u8], at: Duration) {
        self.sink.now = at;
        if self.sink.current.spans.is_empty() {
            self.sink.current.at = at;
        }
        self.parser.advance(&mut self.sink, bytes);
    }

    /// Complete lines, oldest first, then the line being written (if any).
    pub fn lines(&self) -> impl Iterator<Item = &OutputLine> {
        let partial = (!self.sink.current.spans.is_empty()).then_some(&self.sink.current);
        self.sink.lines.iter().chain(partial)
    }

    /// How many lines [`lines`](Self::lines) yields.
    pub fn len(&self) -> usize {
        self.sink.lines.len() + usize::from(!self.sink.current.spans.is_empty())
    }

    /// True when nothing was printed (or all of it was dropped).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lines dropped from the front to stay within the bound.
    pub fn dropped(&self) -> u64 {
        self.sink.dropped
    }
}

impl Sink {
    fn newline(&mut self) {
        let next = OutputLine::new(self.now);
        self.lines
            .push_back(std::mem::replace(&mut self.current, next));
        self.column = 0;
        self.carriage_return = false;
        while self.lines.len() > self.max_lines {
            self.lines.pop_front();
            self.dropped += 1;
        }
    }

    fn put_char(&mut self, c: char) {
        if self.carriage_return {
            self.current.spans.clear();
            self.column = 0;
            self.carriage_return = false;
        }
        if self.column >= MAX_LINE_CHARS {
            self.newline();
        }
        match self.current.spans.last_mut() {
            Some((style, text)) if *style == self.style => text.push(c),
            _ => self.current.spans.push((self.style, c.to_string())),
        }
        self.column += 1;
    }

    fn sgr(&mut self, params: &Params) {
        // Flatten `38;2;r;g;b` and `38:2::r:g:b` alike.
        let values: Vec<u16> = params.iter().flat_map(|p| p.iter().copied()).collect();
        if values.is_empty() {
            self.style = Style::default();
            return;
        }
        let mut i = 0;
        while i < values.len() {
            let v = values[i];
            let mut s = self.style;
            match v {
                0 => s = Style::default(),
                1 => s = s.add_modifier(Modifier::BOLD),
                2 => s = s.add_modifier(Modifier::DIM),
                3 => s = s.add_modifier(Modifier::ITALIC),
                4 => s = s.add_modifier(Modifier::UNDERLINED),
                7 => s = s.add_modifier(Modifier::REVERSED),
                9 => s = s.add_modifier(Modifier::CROSSED_OUT),
                22 => s = s.remove_modifier(Modifier::BOLD | Modifier::DIM),
                23 => s = s.remove_modifier(Modifier::ITALIC),
                24 => s = s.remove_modifier(Modifier::UNDERLINED),
                27 => s = s.remove_modifier(Modifier::REVERSED),
                29 => s = s.remove_modifier(Modifier::CROSSED_OUT),
                30..=37 => s.fg = Some(Color::Indexed((v - 30) as u8)),
                39 => s.fg = None,
                40..=47 => s.bg = Some(Color::Indexed((v - 40) as u8)),
                49 => s.bg = None,
                90..=97 => s.fg = Some(Color::Indexed((v - 90 + 8) as u8)),
                100..=107 => s.bg = Some(Color::Indexed((v - 100 + 8) as u8)),
                38 | 48 => {
                    let (color, used) = extended_color(&values[i + 1..]);
                    if let Some(color) = color {
                        if v == 38 {
                            s.fg = Some(color);
                        } else {
                            s.bg = Some(color);
                        }
                    }
                    i += used;
                }
                _ => {}
            }
            self.style = s;
            i += 1;
        }
    }
}

/// `5;n` or `2;r;g;b` after a 38 or 48: the colour and how many values it used.
fn extended_color(rest: &[u16]) -> (Option<Color>, usize) {
    match rest {
        [5, n, ..] => (Some(Color::Indexed(*n as u8)), 2),
        [2, r, g, b, ..] => (Some(Color::Rgb(*r as u8, *g as u8, *b as u8)), 4),
        _ => (None, rest.len()),
    }
}

impl Perform for Sink {
    fn print(&mut self, c: char) {
        if let Some(c) = displayable(c) {
            self.put_char(c);
        }
    }

    fn execute(&mut self, byte: u8) {
        match byte {
            b'\n' => self.newline(),
            b'\r' => self.carriage_return = true,
            b'\t' => {
                let spaces = TAB_STOP - self.column % TAB_STOP;
                for _ in 0..spaces {
                    self.put_char(' ');
                }
            }
            _ => {} // BEL, BS and other controls: dropped
        }
    }

    fn csi_dispatch(&mut self, params: &Params, intermediates: &[u8], ignore: bool, action: char) {
        if action == 'm' && intermediates.is_empty() && !ignore {
            self.sgr(params);
        }
        // Every other CSI (cursor movement, clears, modes) is dropped.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(buffer: &OutputBuffer) -> Vec<String> {
        buffer.lines().map(OutputLine::text).collect()
    }

    fn feed(bytes: &[u8]) -> OutputBuffer {
        let mut buffer = OutputBuffer::new(100);
        buffer.push(bytes, Duration::ZERO);
        buffer
    }

    #[test]
    fn hostile_sequences_are_dropped_and_colours_kept() {
        let b = feed(b"\x1b]52;c;cHduZWQ=\x07\x1b]0;pwned\x07\x1b[2J\x1b[H\x1bP1$r\x1b\\ok \x1b[31mred\x1b[0m\n");
        assert_eq!(texts(&b), ["ok red"]);
        let line = b.lines().next().unwrap();
        assert_eq!(
            line.spans[1],
            (Style::default().fg(Color::Indexed(1)), "red".to_owned())
        );
    }

    #[test]
    fn sequences_split_across_chunks_are_still_recognised() {
        let mut b = OutputBuffer::new(10);
        b.push(b"a\x1b]0;ti", Duration::ZERO);
        b.push(b"tle\x07b\x1b[3", Duration::ZERO);
        b.push(b"2mc\n", Duration::ZERO);
        assert_eq!(texts(&b), ["abc"]);
        assert_eq!(
            b.lines().next().unwrap().spans[1].0.fg,
            Some(Color::Indexed(2))
        );
    }

    #[test]
    fn tabs_expand_and_carriage_returns_start_over() {
        assert_eq!(texts(&feed(b"a\tb\n")), ["a       b"]);
        assert_eq!(texts(&feed(b"10%\r50%\r100%\n")), ["100%"]);
        assert_eq!(texts(&feed(b"crlf\r\nnext\n")), ["crlf", "next"]);
    }

    #[test]
    fn c1_controls_and_bells_are_dropped() {
        // UTF-8 C1 CSI is not a sequence start here: the control itself is
        // dropped and what follows is plain, harmless text.
        let text = texts(&feed("x\u{9b}2Jy\x07\x08z\n".as_bytes()));
        assert_eq!(text, ["x2Jyz"]);
        assert!(text[0].chars().all(|c| !c.is_control()));
    }

    #[test]
    fn extended_colours_in_both_notations() {
        let b = feed(b"\x1b[38;2;1;2;3mrgb\x1b[48:5:200mbg\n");
        let spans = &b.lines().next().unwrap().spans;
        assert_eq!(spans[0].0.fg, Some(Color::Rgb(1, 2, 3)));
        assert_eq!(spans[1].0.bg, Some(Color::Indexed(200)));
    }

    #[test]
    fn memory_is_bounded_in_lines_and_line_length() {
        let mut b = OutputBuffer::new(3);
        for i in 0..10 {
            b.push(format!("line {i}\n").as_bytes(), Duration::ZERO);
        }
        assert_eq!(texts(&b), ["line 7", "line 8", "line 9"]);
        assert_eq!(b.dropped(), 7);
        let long = feed(&vec![b'x'; MAX_LINE_CHARS * 2 + 5]);
        let lens: Vec<usize> = long.lines().map(|l| l.text().len()).collect();
        assert_eq!(lens, [MAX_LINE_CHARS, MAX_LINE_CHARS, 5]);
    }

    #[test]
    fn zero_width_and_format_characters_take_no_cells() {
        let text = texts(&feed(
            "a\u{200b}b\u{200d}c\u{202e}d\u{feff}e\u{ad}f\u{301}\n".as_bytes(),
        ));
        assert_eq!(text, ["abcdef"]);
        let flag = texts(&feed("\u{1F1EB}\u{1F1F7}!\n".as_bytes()));
        assert_eq!(flag, ["??!"]);
        // Wide characters stay: they have cells of their own.
        assert_eq!(texts(&feed("日本\n".as_bytes())), ["日本"]);
    }

    #[test]
    fn invalid_utf8_shows_as_replacement_characters() {
        assert_eq!(texts(&feed(b"a\xffb\n")), ["a\u{fffd}b"]);
    }
}

/// Where `needle` occurs in `text`, as byte offsets: ignoring ASCII case
/// unless the needle has an upper-case letter ("smart case", as `less -i`
/// and vim's `smartcase` do).
pub fn find_all(text: &str, needle: &str) -> Vec<usize> {
    if needle.is_empty() {
        return Vec::new();
    }
    let exact = needle.chars().any(char::is_uppercase);
    let (hay, pin) = if exact {
        (
            std::borrow::Cow::Borrowed(text),
            std::borrow::Cow::Borrowed(needle),
        )
    } else {
        // ASCII lower-casing keeps every byte offset where it was.
        (
            std::borrow::Cow::Owned(text.to_ascii_lowercase()),
            std::borrow::Cow::Owned(needle.to_ascii_lowercase()),
        )
    };
    hay.match_indices(pin.as_ref()).map(|(at, _)| at).collect()
}

#[cfg(test)]
mod find_tests {
    use super::find_all;

    #[test]
    fn lower_case_finds_any_case_and_upper_case_only_itself() {
        assert_eq!(find_all("Error: error ERROR", "error"), [0, 7, 13]);
        assert_eq!(find_all("Error: error ERROR", "Error"), [0]);
        assert!(find_all("abc", "").is_empty());
    }
}
