//! Publishing sections at once: after a push (or a pull) is taken into the
//! push store, each section it touched publishes its outcome from the push
//! and its last observation, asking nothing (even while a collection of it
//! runs), and the sections that read it collect again; the caller waits
//! until a published snapshot holds them, so a push is visible in the very
//! next GET; and `POST /refresh/{section}`. Used by the push route and the
//! pull loop alike.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::context::Context;
use crate::engine::poller::Kick;
use crate::section_id::SectionId;
use crate::sources::push::PushStore;

/// The pollers to kick after a push or a refresh.
pub struct Publisher {
    pub ctx: Arc<Context>,
    /// Section → its poller.
    pub kicks: HashMap<SectionId, Kick>,
    /// Pushed section → the sections whose collection reads it.
    pub followers: HashMap<SectionId, Vec<SectionId>>,
}

impl Publisher {
    /// Where pushes are written.
    pub fn store(&self) -> &PushStore {
        &self.ctx.push_store
    }

    /// `POST /refresh/{section}`: the section collects now, including what
    /// it otherwise checks rarely (the gateway's model check). False for a
    /// section that does not run here.
    pub async fn refresh(&self, id: SectionId) -> bool {
        if !self.kicks.contains_key(&id) {
            return false;
        }
        self.ctx.refresh.request(id);
        self.publish(&[id]).await;
        true
    }

    /// A push (or pull) of these sections was accepted: each publishes its
    /// body from the push and what it last observed, with no I/O, and the
    /// sections that read them collect again. Waits until a published
    /// snapshot holds the pushed sections (they ask nothing: at once; at
    /// most 2 s for one that must collect), and at most 2 s for their
    /// followers.
    pub async fn after_push(&self, sections: &[SectionId]) {
        // Bounded all the same (a section that cannot build its body from
        // the push alone waits for a collection): a PUT never hangs on a poller.
        within_cap(self.kicks_of(sections).map(Kick::publish_push)).await;
        let mut followers: Vec<SectionId> = Vec::new();
        for s in sections {
            for f in self.followers.get(s).into_iter().flatten() {
                if !followers.contains(f) && !sections.contains(f) {
                    followers.push(*f);
                }
            }
        }
        self.publish(&followers).await;
    }

    /// Collects these sections and waits (at most 2 s) until a published
    /// snapshot holds them.
    pub async fn publish(&self, sections: &[SectionId]) {
        within_cap(self.kicks_of(sections).map(Kick::collect_and_publish)).await;
    }

    /// The pollers of these sections (those that run here).
    fn kicks_of<'a>(&'a self, sections: &'a [SectionId]) -> impl Iterator<Item = &'a Kick> {
        sections.iter().filter_map(|s| self.kicks.get(s))
    }
}

/// Waits for `waits` together, at most 2 s.
async fn within_cap<F: std::future::Future>(waits: impl Iterator<Item = F>) {
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        futures_util::future::join_all(waits),
    )
    .await;
}
