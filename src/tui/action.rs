//! What a user can ask for: input is turned into an [`Action`] (by the
//! tables of [`keymap`](super::keymap)), and only actions change the
//! [`App`](super::app::App).

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
    /// Show every status-bar message of this dashboard in full.
    Messages,
    /// Give the focused pane the whole screen, or take it back.
    Zoom,
    /// Sort the runs by the next key (start, duration, state).
    Sort,
    /// Open the selected run's whole output in `$PAGER`.
    Pager,
    /// Save the selected run's whole output to a file.
    Save,
}
