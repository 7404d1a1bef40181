//! The leaked-containers view (`o`): containers and Slurm jobs whose
//! owner is gone, what `k` and `x` do to them (a removal asks first), and
//! the list as the daemon last reported it. Drawn by `panes::leftovers`.

use super::action::Action;
use super::app::{App, Effect, Modal};
use crate::runtime::leftovers::{ManagedContainer, Verdict};

impl App {
    /// Replaces the leaked-container list: those whose owner is gone, and
    /// those kept on purpose (containers of running owners are not leaks).
    pub fn set_leftovers(&mut self, found: Result<Vec<ManagedContainer>, String>) {
        self.leftovers = found.map(|all| {
            all.into_iter()
                .filter(|c| c.verdict != Verdict::OwnerAlive)
                .collect()
        });
        let count = self.leftovers.as_ref().map_or(0, Vec::len) + self.leftover_jobs.len();
        self.selected_leftover = self.selected_leftover.min(count.saturating_sub(1));
        self.dirty = true;
    }

    /// The id of leaked container `index` of the list.
    pub(super) fn leftover_id(&self, index: Option<usize>) -> Option<String> {
        let list = self.leftovers.as_ref().ok()?;
        Some(list.get(index?)?.id.clone())
    }

    /// A key in the leaked-containers view.
    pub(super) fn leftovers_key(&mut self, action: Action) -> Option<Effect> {
        let containers = self.leftovers.as_ref().map_or(0, Vec::len);
        let count = containers + self.leftover_jobs.len();
        let selected = (count > 0).then_some(self.selected_leftover.min(count - 1));
        // A job (below the containers): k and x cancel it, by its id.
        if let Some(job) = selected
            .and_then(|i| i.checked_sub(containers))
            .and_then(|i| self.leftover_jobs.get(i))
            && matches!(action, Action::Kill | Action::Remove)
        {
            self.modal = Modal::ConfirmCancelJob(job.job_id.clone());
            return None;
        }
        match action {
            Action::Close => self.modal = Modal::None,
            Action::Down => {
                self.selected_leftover = (self.selected_leftover + 1).min(count.saturating_sub(1))
            }
            Action::Up => self.selected_leftover = self.selected_leftover.saturating_sub(1),
            Action::Refresh => return Some(Effect::LoadLeftovers),
            Action::Kill => return self.leftover_id(selected).map(Effect::KillContainer),
            Action::Remove => {
                if let Some(id) = self.leftover_id(selected) {
                    self.modal = Modal::ConfirmRemove(id);
                }
            }
            _ => {}
        }
        None
    }

    /// A key in the question whether to remove a leaked container or
    /// cancel a leftover job.
    pub(super) fn confirm_remove_key(&mut self, action: Action) -> Option<Effect> {
        let effect = match &self.modal {
            Modal::ConfirmRemove(id) => Effect::RemoveContainer(id.clone()),
            Modal::ConfirmCancelJob(id) => Effect::CancelJob(id.clone()),
            _ => return None,
        };
        match action {
            Action::Yes => {
                self.modal = Modal::Leftovers;
                return Some(effect);
            }
            Action::No | Action::Close => self.modal = Modal::Leftovers,
            _ => {}
        }
        None
    }
}
