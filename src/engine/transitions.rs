//! Since when: the store's memory of how things changed. At each render it
//! compares the verdict, the reasons and each section's state (ok, error,
//! stale) with the last render's, stamps each reason with `since` (when its
//! condition was first seen, held while it stays continuously true), the
//! verdict with `status_since`, each section with `state_since`, and keeps
//! the last [`KEEP`] transitions, newest first (`GET /status/events`, and
//! `transition` events on the stream).
//!
//! A reason's condition is its section, its rule and the subject its finding
//! names (`Finding::about`), never its text ("stale: last good data is 31 s
//! old" is one condition as it ages).
//!
//! Flap damping (the rule Nagios and Consul use, in its simplest form): a
//! condition that appears or clears more than [`FLAPS`] times within
//! [`FLAP_WINDOW`] is *flapping*: that is recorded once, its appearing and
//! clearing are no longer recorded one by one, and its `since` holds from
//! before it started flapping. It stops flapping after a whole window without
//! a flip, which is recorded once too. The verdict and each section's state
//! are damped the same way (a `flapping` record with no rule), so a flood of
//! flips never pushes the record of what flaps out of the log.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::engine::record::State;
use crate::engine::rollup::{Level, Reason, Rollup};
use crate::section_id::SectionId;
use crate::stamp::rfc3339 as stamp;

/// Transitions kept.
pub const KEEP: usize = 500;
/// Conditions remembered at most: past it, those gone longest are forgotten
/// first (a flood of distinct reasons must not grow memory or slow renders).
pub const MAX_CONDITIONS: usize = 2_000;
/// More flips than this within [`FLAP_WINDOW`] is flapping.
pub const FLAPS: usize = 4;
pub const FLAP_WINDOW: Duration = Duration::from_secs(600);

/// What kind of change a [`Transition`] records.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TransitionKind {
    /// The verdict changed.
    Verdict,
    ReasonAppeared,
    ReasonCleared,
    /// A section's state (ok, error, stale) changed.
    Section,
    /// Something started flapping: its flips are no longer recorded one by one.
    Flapping,
    FlappingStopped,
}

impl TransitionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TransitionKind::Verdict => "verdict",
            TransitionKind::ReasonAppeared => "reason_appeared",
            TransitionKind::ReasonCleared => "reason_cleared",
            TransitionKind::Section => "section",
            TransitionKind::Flapping => "flapping",
            TransitionKind::FlappingStopped => "flapping_stopped",
        }
    }
}

impl PartialEq<&str> for TransitionKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One change, as `/status/events` serves it.
#[derive(Debug, Clone, Serialize, PartialEq, schemars::JsonSchema)]
pub struct Transition {
    /// When it was seen (RFC 3339).
    pub at: String,
    pub kind: TransitionKind,
    pub section: Option<String>,
    pub rule: Option<String>,
    pub reason: Option<String>,
    /// The state or verdict before and after (`verdict`, `section`).
    pub from: Option<String>,
    pub to: Option<String>,
    pub level: Option<Level>,
}

/// The flips of one thing that changes (a reason's condition, the verdict,
/// a section's state) within [`FLAP_WINDOW`], and whether it flaps.
#[derive(Default)]
struct Damper {
    flips: VecDeque<Instant>,
    flapping: bool,
}

impl Damper {
    /// Forgets flips older than the window.
    fn prune(&mut self, now: Instant) {
        while self
            .flips
            .front()
            .is_some_and(|t| now.duration_since(*t) > FLAP_WINDOW)
        {
            self.flips.pop_front();
        }
    }

    /// Records a flip now: what to say of it — `kind`, `flapping` when this
    /// flip starts it, nothing while it flaps.
    fn flip(&mut self, now: Instant, kind: TransitionKind) -> Option<TransitionKind> {
        self.flips.push_back(now);
        self.prune(now);
        if self.flapping {
            return None;
        }
        if self.flips.len() > FLAPS {
            self.flapping = true;
            return Some(TransitionKind::Flapping);
        }
        Some(kind)
    }

    /// True when it stops flapping now (a whole window without a flip).
    fn settle(&mut self, now: Instant) -> bool {
        self.prune(now);
        if self.flapping && self.flips.is_empty() {
            self.flapping = false;
            return true;
        }
        false
    }
}

impl Transition {
    /// A transition of the verdict (no section) or of a section's state.
    fn of(
        kind: TransitionKind,
        wall: DateTime<Utc>,
        section: Option<SectionId>,
        from_to: Option<(&str, &str)>,
    ) -> Transition {
        Transition {
            at: stamp(wall),
            kind,
            section: section.map(|id| id.name().into()),
            rule: None,
            reason: None,
            from: from_to.map(|(f, _)| f.into()),
            to: from_to.map(|(_, t)| t.into()),
            level: None,
        }
    }
}

/// One reason's condition, and what it was last called.
struct Condition {
    section: String,
    rule: String,
    reason: String,
    since: DateTime<Utc>,
    present: bool,
    damper: Damper,
}

impl Condition {
    fn flip(&mut self, now: Instant, kind: TransitionKind) -> Option<TransitionKind> {
        self.damper.flip(now, kind)
    }

    fn transition(
        &self,
        kind: TransitionKind,
        wall: DateTime<Utc>,
        level: Option<Level>,
    ) -> Transition {
        Transition {
            at: stamp(wall),
            kind,
            section: Some(self.section.clone()),
            rule: Some(self.rule.clone()),
            reason: Some(self.reason.clone()),
            from: None,
            to: None,
            level,
        }
    }
}

/// What the store remembers between renders.
#[derive(Default)]
pub struct Tracker {
    conditions: HashMap<String, Condition>,
    verdict: Option<(Level, DateTime<Utc>)>,
    /// The verdict's flips: a verdict that flaps is said once, like a reason.
    verdict_damper: Damper,
    sections: HashMap<SectionId, (State, DateTime<Utc>)>,
    section_dampers: HashMap<SectionId, Damper>,
    events: VecDeque<Transition>,
    /// Transitions recorded since start (what `observe` counts new ones by).
    recorded: usize,
}

/// The condition a reason stands for: its section, its rule and what it is
/// about ([`crate::sections::Finding::about`]) — never its text, which may
/// change as the condition ages ("31 s old", "6 restarts").
pub fn key(r: &Reason) -> String {
    let subject = r.subject.as_deref().unwrap_or("");
    format!("{}\u{1f}{}\u{1f}{subject}", r.section, r.rule)
}

impl Tracker {
    fn push(&mut self, t: Transition) {
        self.events.push_front(t);
        self.events.truncate(KEEP);
        self.recorded += 1;
    }

    /// Takes in this render's verdict, reasons and section states (id, state),
    /// stamping the reasons' `since`; returns how many transitions it added.
    pub fn observe(
        &mut self,
        rollup: &mut Rollup,
        sections: &[(SectionId, State)],
        wall: DateTime<Utc>,
        now: Instant,
    ) -> usize {
        let before = self.recorded;
        self.verdict(rollup.status, wall, now);
        for &(id, state) in sections {
            self.section(id, state, wall, now);
        }
        self.reasons(&mut rollup.reasons, wall, now);
        (self.recorded - before).min(KEEP)
    }

    fn verdict(&mut self, status: Level, wall: DateTime<Utc>, now: Instant) {
        match self.verdict {
            Some((l, _)) if l == status => {}
            Some((l, _)) => {
                self.verdict = Some((status, wall));
                let said = self.verdict_damper.flip(now, TransitionKind::Verdict);
                let from_to = (l.as_str(), status.as_str());
                if let Some(kind) = said {
                    let mut t = Transition::of(kind, wall, None, Some(from_to));
                    t.level = Some(status);
                    self.push(t);
                }
            }
            None => self.verdict = Some((status, wall)),
        }
    }

    fn section(&mut self, id: SectionId, state: State, wall: DateTime<Utc>, now: Instant) {
        match self.sections.get(&id).copied() {
            Some((s, _)) if s == state => {}
            Some((s, _)) => {
                self.sections.insert(id, (state, wall));
                let said = self
                    .section_dampers
                    .entry(id)
                    .or_default()
                    .flip(now, TransitionKind::Section);
                if let Some(kind) = said {
                    self.push(Transition::of(
                        kind,
                        wall,
                        Some(id),
                        Some((s.as_str(), state.as_str())),
                    ));
                }
            }
            None => {
                self.sections.insert(id, (state, wall));
            }
        }
    }

    fn reasons(&mut self, reasons: &mut [Reason], wall: DateTime<Utc>, now: Instant) {
        self.settle(wall, now);
        let mut seen = std::collections::HashSet::new();
        let mut said = Vec::new();
        for r in reasons.iter_mut() {
            let k = key(r);
            let c = self
                .conditions
                .entry(k.clone())
                .or_insert_with(|| Condition {
                    section: r.section.clone(),
                    rule: r.rule.clone(),
                    reason: String::new(),
                    since: wall,
                    present: false,
                    damper: Damper::default(),
                });
            c.reason.clone_from(&r.reason);
            if !c.present {
                c.present = true;
                let was_flapping = c.damper.flapping;
                let kind = c.flip(now, TransitionKind::ReasonAppeared);
                // Flapping (or starting to): since holds from before.
                if !was_flapping && !c.damper.flapping {
                    c.since = wall;
                }
                let level = (kind == Some(TransitionKind::ReasonAppeared)).then_some(r.level);
                said.extend(kind.map(|k| c.transition(k, wall, level)));
            }
            r.since = Some(stamp(c.since));
            seen.insert(k);
        }
        for (k, c) in self.conditions.iter_mut() {
            if c.present && !seen.contains(k) {
                c.present = false;
                let kind = c.flip(now, TransitionKind::ReasonCleared);
                said.extend(kind.map(|k| c.transition(k, wall, None)));
            }
        }
        for t in said {
            self.push(t);
        }
    }

    /// Ends flapping after a quiet window; forgets conditions long gone.
    fn settle(&mut self, wall: DateTime<Utc>, now: Instant) {
        let mut stopped = Vec::new();
        self.conditions.retain(|_, c| {
            if c.damper.settle(now) {
                stopped.push(c.transition(TransitionKind::FlappingStopped, wall, None));
                return c.present;
            }
            c.present || !c.damper.flips.is_empty()
        });
        if self.conditions.len() > MAX_CONDITIONS {
            let mut gone: Vec<(Option<Instant>, String)> = self
                .conditions
                .iter()
                .filter(|(_, c)| !c.present)
                .map(|(k, c)| (c.damper.flips.back().copied(), k.clone()))
                .collect();
            gone.sort();
            let over = self.conditions.len() - MAX_CONDITIONS;
            for (_, k) in gone.into_iter().take(over) {
                self.conditions.remove(&k);
            }
        }
        if self.verdict_damper.settle(now) {
            stopped.push(Transition::of(
                TransitionKind::FlappingStopped,
                wall,
                None,
                None,
            ));
        }
        for (id, d) in self.section_dampers.iter_mut() {
            if d.settle(now) {
                stopped.push(Transition::of(
                    TransitionKind::FlappingStopped,
                    wall,
                    Some(*id),
                    None,
                ));
            }
        }
        for t in stopped {
            self.push(t);
        }
    }

    /// Since when the verdict is what it is.
    pub fn status_since(&self) -> Option<String> {
        self.verdict.map(|(_, t)| stamp(t))
    }

    /// A section's state and since when.
    pub fn section_since(&self, id: SectionId) -> Option<String> {
        self.sections.get(&id).map(|(_, t)| stamp(*t))
    }

    /// The conditions flapping now, present or not (their key).
    pub fn flapping(&self) -> std::collections::HashSet<String> {
        self.conditions
            .iter()
            .filter(|(_, c)| c.damper.flapping)
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The last transitions, newest first.
    pub fn events(&self) -> impl Iterator<Item = &Transition> {
        self.events.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollup(reasons: &[(&str, &str)]) -> Rollup {
        Rollup {
            status: if reasons.is_empty() {
                Level::Ok
            } else {
                Level::Degraded
            },
            reasons: reasons
                .iter()
                .map(|(rule, text)| Reason {
                    section: "repos".into(),
                    rule: (*rule).into(),
                    reason: (*text).into(),
                    level: Level::Degraded,
                    since: None,
                    subject: None,
                })
                .collect(),
        }
    }

    #[test]
    fn since_holds_while_true_and_numbers_do_not_reset_it() {
        let mut t = Tracker::default();
        let (w0, i0) = (Utc::now(), Instant::now());
        t.observe(&mut rollup(&[]), &[], w0, i0);
        let mut r = rollup(&[("section_stale", "stale: last good data is 31 s old")]);
        let w1 = w0 + chrono::Duration::seconds(1);
        assert_eq!(t.observe(&mut r, &[], w1, i0 + Duration::from_secs(1)), 2);
        assert_eq!(r.reasons[0].since, Some(stamp(w1)));
        let mut r = rollup(&[("section_stale", "stale: last good data is 45 s old")]);
        let w2 = w0 + chrono::Duration::seconds(15);
        assert_eq!(t.observe(&mut r, &[], w2, i0 + Duration::from_secs(15)), 0);
        assert_eq!(r.reasons[0].since, Some(stamp(w1)));
        assert_eq!(t.status_since(), Some(stamp(w1)));
        // Cleared, then back: a new since.
        t.observe(&mut rollup(&[]), &[], w2, i0 + Duration::from_secs(16));
        let mut r = rollup(&[("section_stale", "stale: last good data is 1 s old")]);
        let w3 = w0 + chrono::Duration::seconds(20);
        t.observe(&mut r, &[], w3, i0 + Duration::from_secs(20));
        assert_eq!(r.reasons[0].since, Some(stamp(w3)));
        let kinds: Vec<&str> = t.events().map(|e| e.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "reason_appeared",
                "verdict",
                "reason_cleared",
                "verdict",
                "reason_appeared",
                "verdict"
            ]
        );
    }

    #[test]
    fn a_flapping_condition_is_said_once() {
        let mut t = Tracker::default();
        let (w0, i0) = (Utc::now(), Instant::now());
        for i in 0..20u64 {
            let reasons: &[(&str, &str)] = if i % 2 == 0 {
                &[("worktree_conflict", "w in conflict")]
            } else {
                &[]
            };
            let mut r = rollup(reasons);
            t.observe(&mut r, &[], w0, i0 + Duration::from_secs(i));
        }
        let flaps = |kind: &str| {
            t.events()
                .filter(|e| e.kind == kind && e.rule.is_some())
                .count()
        };
        let appeared = t.events().filter(|e| e.kind == "reason_appeared").count();
        assert_eq!(flaps("flapping"), 1);
        assert_eq!(appeared, 2, "the first flips, then one flapping");
        // Quiet for a window: it stops flapping, once.
        let mut r = rollup(&[("worktree_conflict", "w in conflict")]);
        t.observe(
            &mut r,
            &[],
            w0,
            i0 + Duration::from_secs(20) + FLAP_WINDOW + Duration::from_secs(1),
        );
        assert_eq!(
            t.events()
                .filter(|e| e.kind == "flapping_stopped" && e.rule.is_some())
                .count(),
            1
        );
    }

    #[test]
    fn a_flood_of_verdict_and_section_flips_keeps_the_flapping_record() {
        let mut t = Tracker::default();
        let (w0, i0) = (Utc::now(), Instant::now());
        let id = SectionId::Channels;
        for i in 0..10_000u64 {
            let (reasons, state): (&[(&str, &str)], State) = if i % 2 == 0 {
                (
                    &[("channel_disconnected", "whatsapp disconnected")],
                    State::Error,
                )
            } else {
                (&[], State::Ok)
            };
            let mut r = rollup(reasons);
            let now = i0 + Duration::from_millis(i);
            t.observe(&mut r, &[(id, state)], w0, now);
        }
        let count = |t: &Tracker, kind: &str| t.events().filter(|e| e.kind == kind).count();
        // Each of the three (the reason, the verdict, the section) flips a
        // few times, then is said to flap once.
        assert_eq!(
            count(&t, "flapping"),
            3,
            "{:?}",
            t.events().collect::<Vec<_>>()
        );
        assert!(count(&t, "verdict") <= FLAPS, "{}", count(&t, "verdict"));
        assert!(count(&t, "section") <= FLAPS, "{}", count(&t, "section"));
        assert!(t.events().count() < 20);
        assert_eq!(t.status_since(), Some(stamp(w0)));
        // Quiet for a window: each stops flapping, once.
        let later = i0 + Duration::from_millis(10_000) + FLAP_WINDOW + Duration::from_secs(1);
        t.observe(&mut rollup(&[]), &[(id, State::Ok)], w0, later);
        assert_eq!(count(&t, "flapping_stopped"), 3);
    }

    #[test]
    fn distinct_reasons_beyond_the_bound_are_forgotten_oldest_first() {
        let mut t = Tracker::default();
        let (w0, i0) = (Utc::now(), Instant::now());
        for i in 0..(MAX_CONDITIONS as u64 + 200) {
            let text = format!("channel c{i} disconnected");
            let mut r = rollup(&[("channel_disconnected", &text)]);
            t.observe(&mut r, &[], w0, i0 + Duration::from_millis(i));
        }
        assert!(
            t.conditions.len() <= MAX_CONDITIONS + 1,
            "{}",
            t.conditions.len()
        );
        // The one present now is kept.
        assert!(t.conditions.values().any(|c| c.present));
    }
}

#[cfg(test)]
mod key_tests {
    use super::*;

    fn k(rule: &str, subject: Option<&str>, text: &str) -> String {
        key(&Reason {
            section: "s".into(),
            rule: rule.into(),
            reason: text.into(),
            level: Level::Degraded,
            since: None,
            subject: subject.map(str::to_string),
        })
    }

    #[test]
    fn a_condition_is_its_rule_and_subject_not_its_text() {
        assert_eq!(
            k("section_stale", None, "stale: last good data is 31 s old"),
            k("section_stale", None, "stale: last good data is 45 s old")
        );
        assert_eq!(
            k(
                "crash_loop",
                None,
                "pynchy restarted 3 times in the last 10 min"
            ),
            k(
                "crash_loop",
                None,
                "pynchy restarted 6 times in the last 10 min"
            )
        );
        assert_ne!(
            k(
                "worktree_conflict",
                Some("a/b w1"),
                "worktree w1 of a/b in conflict"
            ),
            k(
                "worktree_conflict",
                Some("a/b w2"),
                "worktree w2 of a/b in conflict"
            )
        );
        assert_ne!(
            k("section_stale", None, "stale"),
            k("section_error", None, "stale")
        );
    }
}
