//! What a key means: input is turned into an [`Action`], and only actions
//! change the [`App`](super::app::App).
//!
//! `k` kills (it asks first), as the status bar says; moving up is `↑`,
//! since `k` cannot mean both. `j`/`↓` move down, `h`/`l`/`←`/`→` and Tab move
//! between panes.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::app::Modal;
use super::filter::View;

/// Something the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Quit (asks when sessions this process started still run).
    Quit,
    /// Show or hide the key help.
    Help,
    /// Close the dialog.
    Close,
    /// Focus the next pane.
    FocusNext,
    /// Focus the previous pane.
    FocusPrev,
    /// Move up in a list, or scroll up in an output pane.
    Up,
    /// Move down, or scroll down.
    Down,
    /// A page up.
    PageUp,
    /// A page down.
    PageDown,
    /// To the top.
    Top,
    /// To the bottom (and follow again).
    Bottom,
    /// Kill the selected session (asks).
    Kill,
    /// Clean up the selected session (asks when it runs).
    Cleanup,
    /// Ask the selected session's runtime `poll()`.
    Poll,
    /// Follow new output or stay where the view is.
    ToggleFollow,
    /// Wrap long lines or cut them.
    ToggleWrap,
    /// Show when each line was printed.
    ToggleTimestamps,
    /// Side by side, stacked, merged.
    CycleLayout,
    /// Yes, in a dialog.
    Yes,
    /// No, in a dialog.
    No,
    /// Quit leaving this process's sessions as they are.
    Leave,
    /// Open the new-run form (on the selected environment).
    NewRun,
    /// Run the selected session's command again.
    Rerun,
    /// Enter on a list: open the selected environment in the new-run form.
    Open,
    /// Type a character into the form.
    Type(char),
    /// Delete the character before the cursor in the form.
    Erase,
    /// Next form field.
    NextField,
    /// Previous form field.
    PrevField,
    /// Start typing a search in the focused output.
    Search,
    /// Next search match (`n` while a search is active in an output pane).
    NextMatch,
    /// Previous search match.
    PrevMatch,
    /// Open the leaked-containers view.
    Leftovers,
    /// Remove the selected container (leaked-containers view).
    Remove,
    /// Load the list again (leaked-containers view).
    Refresh,
    /// Pause or resume the replay.
    Pause,
    /// Replay faster.
    Faster,
    /// Replay slower.
    Slower,
    /// Replay: 5 s back.
    SeekBack,
    /// Replay: 5 s on.
    SeekForward,
    /// Release the mouse (so text can be selected) or take it back.
    ToggleMouse,
    /// Clear the terminal and draw everything again (Ctrl-L).
    Redraw,
    /// Show only runs of this kind of state (again: all runs).
    ShowView(View),
    /// Select the next failed or timed-out run.
    NextFailure,
    /// Select the previous one.
    PrevFailure,
    /// Show the selected run's details.
    Details,
    /// Give the focused pane the whole screen, or take it back.
    Zoom,
}

/// The action of `key` in the current dialog (or on the main screen, where
/// `←` and `→` seek while a replay plays).
pub fn action_for(key: KeyEvent, modal: &Modal, replaying: bool) -> Option<Action> {
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        // Ctrl with a letter is never the letter (Ctrl-K is not Kill).
        return match key.code {
            KeyCode::Char('c') => Some(Action::Quit),
            KeyCode::Char('l') => Some(Action::Redraw),
            _ => None,
        };
    }
    match modal {
        Modal::None if replaying && key.code == KeyCode::Left => Some(Action::SeekBack),
        Modal::None if replaying && key.code == KeyCode::Right => Some(Action::SeekForward),
        Modal::None => main_action(key),
        Modal::Details(_) => match key.code {
            KeyCode::Esc | KeyCode::Char('d') | KeyCode::Char('q') | KeyCode::Enter => {
                Some(Action::Close)
            }
            _ => None,
        },
        Modal::Help => match key.code {
            KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q') => Some(Action::Close),
            _ => None,
        },
        Modal::ConfirmKill(_)
        | Modal::ConfirmKillMarked(_)
        | Modal::ConfirmCleanup(_)
        | Modal::ConfirmRemove(_) => match key.code {
            KeyCode::Char('y') | KeyCode::Enter => Some(Action::Yes),
            KeyCode::Char('n') | KeyCode::Esc => Some(Action::No),
            _ => None,
        },
        Modal::Leftovers => match key.code {
            KeyCode::Esc | KeyCode::Char('o') | KeyCode::Char('q') => Some(Action::Close),
            KeyCode::Down | KeyCode::Char('j') => Some(Action::Down),
            KeyCode::Up => Some(Action::Up),
            KeyCode::Char('k') => Some(Action::Kill),
            KeyCode::Char('x') => Some(Action::Remove),
            KeyCode::Char('r') => Some(Action::Refresh),
            _ => None,
        },
        Modal::Search | Modal::Filter => match key.code {
            KeyCode::Esc => Some(Action::Close),
            KeyCode::Enter => Some(Action::Yes),
            KeyCode::Backspace => Some(Action::Erase),
            KeyCode::Char(c) => Some(Action::Type(c)),
            _ => None,
        },
        Modal::NewRun => match key.code {
            KeyCode::Esc => Some(Action::Close),
            KeyCode::Enter => Some(Action::Yes),
            KeyCode::Tab | KeyCode::Down => Some(Action::NextField),
            KeyCode::BackTab | KeyCode::Up => Some(Action::PrevField),
            KeyCode::Backspace => Some(Action::Erase),
            KeyCode::Char(c) => Some(Action::Type(c)),
            _ => None,
        },
        Modal::ConfirmQuit => match key.code {
            KeyCode::Char('y') | KeyCode::Enter => Some(Action::Yes),
            KeyCode::Char('l') => Some(Action::Leave),
            KeyCode::Char('n') | KeyCode::Esc => Some(Action::No),
            _ => None,
        },
    }
}

fn main_action(key: KeyEvent) -> Option<Action> {
    Some(match key.code {
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Char('?') => Action::Help,
        KeyCode::Tab | KeyCode::Char('l') | KeyCode::Right => Action::FocusNext,
        KeyCode::BackTab | KeyCode::Char('h') | KeyCode::Left => Action::FocusPrev,
        KeyCode::Up => Action::Up,
        KeyCode::Down | KeyCode::Char('j') => Action::Down,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown => Action::PageDown,
        KeyCode::Char('g') | KeyCode::Home => Action::Top,
        KeyCode::Char('G') | KeyCode::End => Action::Bottom,
        KeyCode::Char('k') => Action::Kill,
        KeyCode::Char('c') => Action::Cleanup,
        KeyCode::Char('p') => Action::Poll,
        KeyCode::Char('f') => Action::ToggleFollow,
        KeyCode::Char('w') => Action::ToggleWrap,
        KeyCode::Char('t') => Action::ToggleTimestamps,
        KeyCode::Char('s') => Action::CycleLayout,
        KeyCode::Char('/') => Action::Search,
        KeyCode::Char('o') => Action::Leftovers,
        KeyCode::Char('m') => Action::ToggleMouse,
        KeyCode::Char(' ') => Action::Pause,
        KeyCode::Char('+') => Action::Faster,
        KeyCode::Char('-') => Action::Slower,
        KeyCode::Char('N') => Action::PrevMatch,
        KeyCode::Char('n') => Action::NewRun,
        KeyCode::Char('r') => Action::Rerun,
        KeyCode::Char('R') => Action::ShowView(View::Running),
        KeyCode::Char('F') => Action::ShowView(View::Failed),
        KeyCode::Char('T') => Action::ShowView(View::TimedOut),
        KeyCode::Char('e') => Action::NextFailure,
        KeyCode::Char('d') => Action::Details,
        KeyCode::Char('z') => Action::Zoom,
        KeyCode::Char('E') => Action::PrevFailure,
        KeyCode::Enter => Action::Open,
        KeyCode::Esc => Action::Close,
        _ => return None,
    })
}

/// Every key, for the help screen: (keys, what they do).
pub const KEYS: &[(&str, &str)] = &[
    ("Tab h l ← →", "move between panes"),
    ("j ↓  ↑", "move down / up, scroll output"),
    (
        "PgUp PgDn g G",
        "scroll a page; top / bottom (G follows again)",
    ),
    ("n", "new run (Enter on an environment: on that one)"),
    ("r", "run the selected session's command again"),
    (
        "d",
        "details: env, dir, process or container, exit, bytes, log",
    ),
    ("k c", "kill the selected session (asks) / clean it up"),
    ("p", "poll: ask the runtime how it is"),
    (
        "/",
        "on Sessions: filter as you type (id, name, command, state)",
    ),
    (
        "R F T",
        "show only running / failed / timed-out runs (again: all)",
    ),
    ("e E", "next / previous failed or timed-out run"),
    (
        "Space",
        "mark the run; k then kills all marked ones, asking once",
    ),
    ("/  n N", "in an output: search it; next / previous match"),
    (
        "f w t",
        "follow new output / wrap long lines / timestamps: on, off",
    ),
    (
        "s z",
        "layout: side by side, stacked, merged; zoom the focused pane",
    ),
    ("o", "leaked containers: k kill, x remove (asks), r refresh"),
    ("Enter", "on a finished run: replay it with its timing"),
    (
        "Space + - ← →",
        "replay: pause, speed, seek 5 s; Home End; Esc stops",
    ),
    (
        "m",
        "release the mouse to select text (again: take it back)",
    ),
    ("Ctrl-L", "clear and redraw the screen"),
    ("? q Ctrl-C", "this help; quit (asks when sessions run)"),
];
