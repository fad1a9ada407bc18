//! Delivery of pynchy's pushed (or pulled) state: after a push or a pull is
//! accepted into memory, the sections it touched are collected at once, and
//! delivery waits until a published snapshot holds them — so a push is
//! visible in the very next GET. Used by the ingest handler and the pull loop
//! alike.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::context::Context;
use crate::poller::Kick;
use crate::section_id::SectionId;
use crate::sources::host_state::MemoryHostState;

/// Where pushes land, and the pollers to kick after them.
pub struct Delivery {
    pub ctx: Arc<Context>,
    /// Section → its poller.
    pub kicks: HashMap<SectionId, Kick>,
    /// Pushed section → the sections whose collection reads it.
    pub followers: HashMap<SectionId, Vec<SectionId>>,
}

impl Delivery {
    /// Where pushes are written.
    pub fn memory(&self) -> &MemoryHostState {
        &self.ctx.pushed
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

    /// A push (or pull) of these sections was accepted: each builds its body
    /// from the push and what it last observed, with no I/O, and delivery
    /// waits until a published snapshot holds them.
    pub async fn pushed(&self, sections: &[SectionId]) {
        for s in sections {
            self.ctx.push_arrived.request(*s);
        }
        self.publish(sections).await;
    }

    /// Collects these sections and waits (at most 2 s) until a published
    /// snapshot holds them.
    pub async fn publish(&self, sections: &[SectionId]) {
        let mut all = sections.to_vec();
        for s in sections {
            for f in self.followers.get(s).into_iter().flatten() {
                if !all.contains(f) {
                    all.push(*f);
                }
            }
        }
        let waits = all
            .iter()
            .filter_map(|s| self.kicks.get(s))
            .map(|k| k.collect_and_publish());
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            futures_util::future::join_all(waits),
        )
        .await;
    }
}
