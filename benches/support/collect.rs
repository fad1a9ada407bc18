//! Running a section's collection directly, outside a poller.

use std::sync::Arc;

use pynchy_status::sections::{DynSection, Run};

/// Runs one collection of `s` to its end and checks it succeeded: blocking
/// work on this thread, async work (the queue: Docker, then the database on
/// a blocking thread) on a runtime of its own. The gate only orders reads
/// between sections: it is passed over here.
pub fn run_blocking(s: &Arc<dyn DynSection>) {
    static RT: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    match s.collect_erased().run {
        Run::Blocking(f) | Run::Gated { work: f, .. } => {
            f().expect("collection succeeds");
        }
        Run::Async(fut) => {
            let rt = RT.get_or_init(|| tokio::runtime::Runtime::new().expect("a runtime"));
            rt.block_on(fut).expect("collection succeeds");
        }
        Run::Done(result) => {
            result.expect("collection succeeds");
        }
    }
}
