//! Which audit events a caller may see, in the log and on the live stream alike: a token
//! limited to some models sees only those models' events, and the events of no model
//! (users, tokens, runtimes, webhooks) are for admins without model globs.

use crate::auth::Caller;
use crate::catalog::events::EventFilter;

/// `filter`, narrowed to what `caller` may see.
pub fn visible_to(caller: &Caller, filter: EventFilter) -> EventFilter {
    EventFilter { model_globs: caller.models.clone(), hide_instance_wide: !caller.is_instance_admin(), ..filter }
}
