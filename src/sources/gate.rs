//! A source's gate (pynchy's database, pynchy's checkout): reads run side by
//! side while the source answers; once one has run longer than its caller's
//! timeout — stuck in a read that may never return (a FIFO as the path, an
//! NFS stall) — no new read starts until it returns, and callers hear at once
//! that the source "did not answer". Stuck threads never pile up: at most the
//! reads already running when the source hung, one per section, and none
//! after. A leaf of the module graph.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The reads of one source in flight.
#[derive(Debug)]
pub struct SourceGate {
    what: &'static str,
    /// Each read let in: its id, when it started, and when it counts as
    /// stuck (its caller's timeout).
    inflight: Mutex<Vec<(u64, Instant, Instant)>>,
    next: AtomicU64,
}

/// One read let in; it leaves the gate when dropped (when the read returns,
/// however late).
#[derive(Debug)]
pub struct Ticket {
    gate: Arc<SourceGate>,
    id: u64,
}

impl SourceGate {
    /// A gate for the source named `what` ("pynchy's database").
    pub fn new(what: &'static str) -> Arc<SourceGate> {
        Arc::new(SourceGate {
            what,
            inflight: Mutex::new(Vec::new()),
            next: AtomicU64::new(0),
        })
    }

    pub fn what(&self) -> &'static str {
        self.what
    }

    /// Lets a read in (it counts as stuck after `stuck_after`, its own
    /// timeout), unless one already in is past its own: then the source's
    /// "did not answer" message.
    pub fn enter(self: &Arc<Self>, stuck_after: Duration) -> Result<Ticket, String> {
        let mut inflight = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let stuck = inflight
            .iter()
            .filter(|(_, _, deadline)| now > *deadline)
            .map(|(_, started, _)| *started)
            .min();
        if let Some(started) = stuck {
            let running = now.duration_since(started);
            return Err(format!(
                "{} did not answer: a read has been waiting {} for it",
                self.what,
                humantime::format_duration(Duration::from_secs(running.as_secs().max(1)))
            ));
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        inflight.push((id, now, now + stuck_after));
        Ok(Ticket {
            gate: self.clone(),
            id,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut inflight = self.gate.inflight.lock().unwrap_or_else(|p| p.into_inner());
        inflight.retain(|(id, _, _)| *id != self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_share_the_gate_until_one_is_stuck() {
        let gate = SourceGate::new("the source");
        let a = gate.enter(Duration::from_millis(50)).unwrap();
        let b = gate.enter(Duration::from_millis(50)).unwrap();
        drop(b);
        std::thread::sleep(Duration::from_millis(80));
        let refused = gate.enter(Duration::from_millis(50)).unwrap_err();
        assert!(
            refused.starts_with("the source did not answer"),
            "{refused}"
        );
        drop(a);
        assert!(gate.enter(Duration::from_millis(50)).is_ok());
    }
}
