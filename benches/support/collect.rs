//! Running a database section's collection directly, outside a poller.

use std::sync::Arc;

use pynchy_status::sections::{DynSection, Work};

/// Runs one collection of `s` on this thread and checks it succeeded. The
/// gate only orders reads between sections: it is passed over here.
pub fn run_blocking(s: &Arc<dyn DynSection>) {
    match s.collect_erased() {
        Work::Blocking { work: f, .. } | Work::Gated { work: f, .. } => {
            f().expect("collection succeeds");
        }
        _ => panic!("database sections are blocking work"),
    }
}
