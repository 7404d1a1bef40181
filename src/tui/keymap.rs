//! Which key asks for which [`Action`], one table per mode. Key dispatch
//! ([`action_for`]), the help screen ([`help`]) and the status bar's hints
//! ([`Keymap::hints`]) all read these tables, so what the help says a key does is
//! what it does.
//!
//! `k` kills (it asks first), as the status bar says; moving up is `↑`,
//! since `k` cannot mean both. Ctrl with a letter is never the letter
//! (Ctrl-K is not Kill): only the bindings written with Ctrl match it.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::action::Action;
use super::app::Modal;
use super::filter::View;

/// A key as a table names it: a code, with or without Ctrl (Shift is in
/// the character: `G` is Shift-g).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    code: KeyCode,
    ctrl: bool,
}

const fn key(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}

const fn ch(c: char) -> Key {
    key(KeyCode::Char(c))
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: true,
    }
}

impl Key {
    /// How the help and the status bar write it.
    pub fn label(self) -> String {
        let name = match self.code {
            KeyCode::Char(' ') => "Space".to_owned(),
            KeyCode::Char(c) => c.to_string(),
            KeyCode::Tab => "Tab".into(),
            KeyCode::BackTab => "S-Tab".into(),
            KeyCode::Up => "↑".into(),
            KeyCode::Down => "↓".into(),
            KeyCode::Left => "←".into(),
            KeyCode::Right => "→".into(),
            KeyCode::PageUp => "PgUp".into(),
            KeyCode::PageDown => "PgDn".into(),
            KeyCode::Home => "Home".into(),
            KeyCode::End => "End".into(),
            KeyCode::Enter => "Enter".into(),
            KeyCode::Esc => "Esc".into(),
            KeyCode::Backspace => "Bksp".into(),
            other => format!("{other:?}"),
        };
        if self.ctrl {
            format!("Ctrl-{}", name.to_uppercase())
        } else {
            name
        }
    }

    fn matches(self, event: KeyEvent) -> bool {
        let ctrl = event.modifiers.contains(KeyModifiers::CONTROL);
        self.ctrl == ctrl && self.code == event.code
    }
}

/// Keys that ask for one action, and what the help says of it.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    /// The keys; the first is the one the status bar shows.
    pub keys: &'static [Key],
    /// What they ask for.
    pub action: Action,
    /// The help's line.
    pub help: &'static str,
    /// The status bar's word, for the keys a user needs first.
    pub hint: Option<&'static str>,
}

const fn bind(keys: &'static [Key], action: Action, help: &'static str) -> Binding {
    Binding {
        keys,
        action,
        help,
        hint: None,
    }
}

impl Binding {
    const fn hint(mut self, word: &'static str) -> Self {
        self.hint = Some(word);
        self
    }

    /// Its keys, as the help writes them.
    pub fn label(&self) -> String {
        self.keys
            .iter()
            .map(|k| k.label())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The bindings of one mode.
#[derive(Debug)]
pub struct Keymap {
    /// Its heading in the help.
    pub title: &'static str,
    /// Its bindings, most needed first (the status bar's hints keep this
    /// order).
    pub bindings: &'static [Binding],
    /// Other characters are typed into a field.
    pub types: bool,
}

impl Keymap {
    /// Its status-bar hints: (key, word), in table order.
    pub fn hints(&self) -> Vec<(String, &'static str)> {
        self.bindings
            .iter()
            .filter_map(|b| Some((b.keys[0].label(), b.hint?)))
            .collect()
    }
}

use Action as A;
use KeyCode as K;

/// Everywhere, before the mode's own keys.
pub const GLOBAL: Keymap = Keymap {
    title: "Everywhere",
    bindings: &[
        bind(&[ctrl('c')], A::Quit, "quit (asks when sessions run)"),
        bind(&[ctrl('l')], A::Redraw, "clear and redraw the screen"),
    ],
    types: false,
};

/// The main screen.
pub const MAIN: Keymap = Keymap {
    title: "Main screen",
    bindings: &[
        bind(
            &[ch('n')],
            A::NewRun,
            "new run (in an output with a search: next match)",
        )
        .hint("new"),
        bind(
            &[ch('/')],
            A::Search,
            "on Sessions: filter as you type (id, name, command, state, label=value); in an output: search it",
        )
        .hint("filter"),
        bind(
            &[ch('F')],
            A::ShowView(View::Failed),
            "show only failed runs (again: all)",
        )
        .hint("failed"),
        bind(
            &[ch('e')],
            A::NextFailure,
            "select the next failed or timed-out run",
        )
        .hint("next failure"),
        bind(
            &[ch('k')],
            A::Kill,
            "kill the selected run, or the marked ones (asks first)",
        )
        .hint("kill"),
        bind(
            &[key(K::Enter)],
            A::Open,
            "on a finished run: replay it with its timing; on an environment: new run on it",
        )
        .hint("replay"),
        bind(
            &[ch('r')],
            A::Rerun,
            "run the selected run's command again (its dir and timeout)",
        )
        .hint("rerun"),
        bind(&[ch('o')], A::Leftovers, "leaked containers and Slurm jobs").hint("leaks"),
        bind(&[ch('?')], A::Help, "this help").hint("help"),
        bind(&[ch('q')], A::Quit, "quit (asks when sessions run)").hint("quit"),
        bind(
            &[key(K::Tab), ch('l'), key(K::Right)],
            A::FocusNext,
            "next pane",
        ),
        bind(
            &[key(K::BackTab), ch('h'), key(K::Left)],
            A::FocusPrev,
            "previous pane",
        ),
        bind(
            &[ch('j'), key(K::Down)],
            A::Down,
            "move down a list, scroll an output down",
        ),
        bind(&[key(K::Up)], A::Up, "move up a list, scroll an output up"),
        bind(&[key(K::PageUp)], A::PageUp, "a page up"),
        bind(&[key(K::PageDown)], A::PageDown, "a page down"),
        bind(&[ch('g'), key(K::Home)], A::Top, "to the top"),
        bind(
            &[ch('G'), key(K::End)],
            A::Bottom,
            "to the bottom (an output follows again)",
        ),
        bind(
            &[ch('R')],
            A::ShowView(View::Running),
            "show only running runs (again: all)",
        ),
        bind(
            &[ch('T')],
            A::ShowView(View::TimedOut),
            "show only timed-out runs (again: all)",
        ),
        bind(
            &[ch('E')],
            A::PrevFailure,
            "select the previous failed or timed-out run",
        ),
        bind(
            &[ch('S')],
            A::Sort,
            "sort runs: by start, by duration, by state, grouped by batch",
        ),
        bind(
            &[ch(' ')],
            A::Pause,
            "mark the run (k then kills the marked ones, asking once)",
        ),
        bind(
            &[ch('d')],
            A::Details,
            "details: environment, dir, process or container, exit, bytes, log",
        ),
        bind(&[ch('c')], A::Cleanup, "clean up the selected session"),
        bind(&[ch('p')], A::Poll, "poll: ask the runtime how it is"),
        bind(
            &[ch('N')],
            A::PrevMatch,
            "in an output with a search: previous match",
        ),
        bind(
            &[ch('v')],
            A::Pager,
            "open the selected run's whole output in $PAGER (less)",
        ),
        bind(
            &[ch('W')],
            A::Save,
            "save the selected run's whole output to a file",
        ),
        bind(&[ch('f')], A::ToggleFollow, "follow new output: on, off"),
        bind(&[ch('w')], A::ToggleWrap, "wrap long lines: on, off"),
        bind(&[ch('t')], A::ToggleTimestamps, "timestamps: on, off"),
        bind(
            &[ch('s')],
            A::CycleLayout,
            "layout: side by side, stacked, merged",
        ),
        bind(&[ch('z')], A::Zoom, "zoom the focused pane (again: back)"),
        bind(
            &[ch('M')],
            A::Messages,
            "every message the status bar showed, in full, newest first",
        ),
        bind(
            &[ch('m')],
            A::ToggleMouse,
            "release the mouse to select text (again: take it back)",
        ),
        bind(
            &[key(K::Esc)],
            A::Close,
            "clear the search; stop a replay",
        ),
    ],
    types: false,
};

/// While a replay plays, before the main screen's keys.
pub const REPLAY: Keymap = Keymap {
    title: "Replay",
    bindings: &[
        bind(&[ch(' ')], A::Pause, "pause, play").hint("pause"),
        bind(&[ch('+')], A::Faster, "faster").hint("faster"),
        bind(&[ch('-')], A::Slower, "slower").hint("slower"),
        bind(&[key(K::Left)], A::SeekBack, "5 s back").hint("-5 s"),
        bind(&[key(K::Right)], A::SeekForward, "5 s on").hint("+5 s"),
        bind(&[key(K::Home), ch('g')], A::Top, "to the start"),
        bind(&[key(K::End), ch('G')], A::Bottom, "to the end"),
        bind(&[key(K::Esc)], A::Close, "stop: back to the whole output").hint("stop"),
    ],
    types: false,
};

/// The leaked-containers view.
pub const LEFTOVERS: Keymap = Keymap {
    title: "Leaked containers and jobs (o)",
    bindings: &[
        bind(
            &[ch('k')],
            A::Kill,
            "kill the container (it stays, stopped); a job: cancel it (asks)",
        ),
        bind(
            &[ch('x')],
            A::Remove,
            "remove the container (asks); a job: cancel it (asks)",
        ),
        bind(&[ch('r')], A::Refresh, "list them again"),
        bind(&[ch('j'), key(K::Down)], A::Down, "down"),
        bind(&[key(K::Up)], A::Up, "up"),
        bind(&[key(K::Esc), ch('o'), ch('q')], A::Close, "close"),
    ],
    types: false,
};

/// A yes/no question.
pub const QUESTION: Keymap = Keymap {
    title: "Questions",
    bindings: &[
        bind(&[ch('y'), key(K::Enter)], A::Yes, "yes"),
        bind(&[ch('n'), key(K::Esc)], A::No, "no"),
    ],
    types: false,
};

/// The question whether to quit while sessions run.
pub const QUIT: Keymap = Keymap {
    title: "Quit while sessions run",
    bindings: &[
        bind(&[ch('y'), key(K::Enter)], A::Yes, "clean them up and quit"),
        bind(&[ch('l')], A::Leave, "quit, leaving them running"),
        bind(&[ch('n'), key(K::Esc)], A::No, "stay"),
    ],
    types: false,
};

/// The new-run form.
pub const FORM: Keymap = Keymap {
    title: "New run form",
    bindings: &[
        bind(&[key(K::Enter)], A::Yes, "start the run"),
        bind(&[key(K::Tab)], A::NextField, "next field"),
        bind(&[key(K::BackTab)], A::PrevField, "previous field"),
        bind(
            &[key(K::Up)],
            A::Up,
            "environment: the previous one; command: an earlier command; else the previous field",
        ),
        bind(
            &[key(K::Down)],
            A::Down,
            "environment: the next one; command: a later command; else the next field",
        ),
        bind(&[key(K::Backspace)], A::Erase, "delete a character"),
        bind(&[key(K::Esc)], A::Close, "close the form"),
    ],
    types: true,
};

/// Typing a search or the Sessions filter.
pub const PROMPT: Keymap = Keymap {
    title: "Search and filter",
    bindings: &[
        bind(&[key(K::Enter)], A::Yes, "search: find; filter: keep it"),
        bind(&[key(K::Backspace)], A::Erase, "delete a character"),
        bind(&[key(K::Esc)], A::Close, "cancel (the filter is cleared)"),
    ],
    types: true,
};

/// The help.
pub const HELP: Keymap = Keymap {
    title: "Help",
    bindings: &[
        bind(&[ch('j'), key(K::Down)], A::Down, "scroll down"),
        bind(&[key(K::Up)], A::Up, "scroll up"),
        bind(&[key(K::PageDown), ch(' ')], A::PageDown, "a page down"),
        bind(&[key(K::PageUp)], A::PageUp, "a page up"),
        bind(&[ch('g'), key(K::Home)], A::Top, "to the top"),
        bind(&[key(K::Esc), ch('?'), ch('q')], A::Close, "close"),
    ],
    types: false,
};

/// The details of a run.
pub const DETAILS: Keymap = Keymap {
    title: "Details (d)",
    bindings: &[bind(
        &[key(K::Esc), ch('d'), ch('q'), key(K::Enter)],
        A::Close,
        "close",
    )],
    types: false,
};

/// The status bar's messages.
pub const MESSAGES: Keymap = Keymap {
    title: "Messages (M)",
    bindings: &[bind(
        &[key(K::Esc), ch('M'), ch('q'), key(K::Enter)],
        A::Close,
        "close",
    )],
    types: false,
};

/// Every table, in the help's order.
pub const ALL: &[&Keymap] = &[
    &MAIN, &REPLAY, &FORM, &PROMPT, &LEFTOVERS, &QUESTION, &QUIT, &HELP, &DETAILS, &MESSAGES,
    &GLOBAL,
];

/// The tables that apply in `modal`, first match wins.
pub fn keymaps(modal: &Modal, replaying: bool) -> &'static [&'static Keymap] {
    match modal {
        Modal::None if replaying => &[&GLOBAL, &REPLAY, &MAIN],
        Modal::None => &[&GLOBAL, &MAIN],
        Modal::Help => &[&GLOBAL, &HELP],
        Modal::Details(_) => &[&GLOBAL, &DETAILS],
        Modal::Messages => &[&GLOBAL, &MESSAGES],
        Modal::ConfirmKill(_)
        | Modal::ConfirmKillMarked(_)
        | Modal::ConfirmCleanup(_)
        | Modal::ConfirmRemove(_)
        | Modal::ConfirmCancelJob(_) => &[&GLOBAL, &QUESTION],
        Modal::ConfirmQuit => &[&GLOBAL, &QUIT],
        Modal::Leftovers => &[&GLOBAL, &LEFTOVERS],
        Modal::Search | Modal::Filter => &[&GLOBAL, &PROMPT],
        Modal::NewRun => &[&GLOBAL, &FORM],
    }
}

/// The action of `key` in the current dialog (or on the main screen, where
/// the replay's keys come first while one plays).
pub fn action_for(event: KeyEvent, modal: &Modal, replaying: bool) -> Option<Action> {
    let maps = keymaps(modal, replaying);
    let bound = maps
        .iter()
        .flat_map(|map| map.bindings)
        .find(|b| b.keys.iter().any(|k| k.matches(event)))
        .map(|b| b.action);
    if bound.is_some() {
        return bound;
    }
    let typing = maps.iter().any(|map| map.types);
    match event.code {
        KeyCode::Char(c) if typing && !event.modifiers.contains(KeyModifiers::CONTROL) => {
            Some(Action::Type(c))
        }
        _ => None,
    }
}

/// The help: each table's title, then (keys, what) per binding.
pub fn help() -> Vec<(&'static str, Vec<(String, &'static str)>)> {
    ALL.iter()
        .map(|map| {
            let lines = map.bindings.iter().map(|b| (b.label(), b.help)).collect();
            (map.title, lines)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn press(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn no_key_means_two_things_in_one_table() {
        for map in ALL {
            let keys: Vec<Key> = map.bindings.iter().flat_map(|b| b.keys).copied().collect();
            for (i, k) in keys.iter().enumerate() {
                assert!(
                    !keys[i + 1..].contains(k),
                    "{} binds {} twice",
                    map.title,
                    k.label()
                );
            }
        }
    }

    #[test]
    fn ctrl_letters_are_not_the_letters() {
        let ctrl_k = press(KeyCode::Char('k'), KeyModifiers::CONTROL);
        assert_eq!(action_for(ctrl_k, &Modal::None, false), None);
        let ctrl_l = press(KeyCode::Char('l'), KeyModifiers::CONTROL);
        assert_eq!(action_for(ctrl_l, &Modal::NewRun, false), Some(A::Redraw));
        // Ctrl with a letter types nothing into a field either.
        assert_eq!(action_for(ctrl_k, &Modal::NewRun, false), None);
    }

    #[test]
    fn the_replay_keys_come_first_while_one_plays() {
        let left = press(KeyCode::Left, KeyModifiers::NONE);
        assert_eq!(action_for(left, &Modal::None, true), Some(A::SeekBack));
        assert_eq!(action_for(left, &Modal::None, false), Some(A::FocusPrev));
    }

    #[test]
    fn a_form_types_what_it_does_not_bind() {
        let q = press(KeyCode::Char('q'), KeyModifiers::NONE);
        assert_eq!(action_for(q, &Modal::NewRun, false), Some(A::Type('q')));
        let big_g = press(KeyCode::Char('G'), KeyModifiers::SHIFT);
        assert_eq!(action_for(big_g, &Modal::Filter, false), Some(A::Type('G')));
        assert_eq!(action_for(big_g, &Modal::None, false), Some(A::Bottom));
    }

    #[test]
    fn the_hints_are_bound_to_what_they_say() {
        let hints = MAIN.hints();
        let words: Vec<&str> = hints.iter().map(|h| h.1).collect();
        assert_eq!(
            words[..4],
            ["new", "filter", "failed", "next failure"],
            "most needed first"
        );
        for (label, word) in hints {
            let binding = MAIN.bindings.iter().find(|b| b.hint == Some(word)).unwrap();
            assert_eq!(binding.keys[0].label(), label);
        }
    }
}
