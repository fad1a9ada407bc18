//! What one target has been told, and what it is to be told next: the
//! conditions told as active, the grouping window, repeats and
//! Alertmanager's resends. Pure: it takes a snapshot's reasons and an
//! instant, and queues messages on the target's outbox.

use std::collections::HashMap;
use std::time::Instant;

use chrono::Utc;

use super::message::{Item, Message, Why};
use super::outbox::Outbox;
use crate::config::{MinLevel, NotifyKind, NotifyTarget};
use crate::engine::rollup::Level;
use crate::engine::snapshot::Alerts;

/// A condition told as active, and when it was last told.
struct Told {
    item: Item,
    last_sent: Instant,
}

/// What one target has been told.
#[derive(Default)]
pub(super) struct Watch {
    told: HashMap<String, Told>,
    /// Conditions present now, or flapping: what a window's end may tell.
    seen: HashMap<String, Item>,
    /// A change was seen at this instant: its message goes at the end of
    /// `group_wait`.
    window: Option<Instant>,
    /// The verdict in the last message.
    verdict_told: Option<Level>,
    last_resend: Option<Instant>,
    primed: bool,
}

fn wanted(t: &NotifyTarget, level: Level, section: &str, rule: &str) -> bool {
    let level_ok = match t.min_level {
        MinLevel::Degraded => level != Level::Ok,
        MinLevel::Down => level == Level::Down,
    };
    level_ok
        && (t.sections.is_empty() || t.sections.iter().any(|s| s == section))
        && (t.rules.is_empty() || t.rules.iter().any(|r| r == rule))
}

impl Watch {
    /// How many conditions it has told as active.
    pub(super) fn active(&self) -> usize {
        self.told.len()
    }

    fn message(&self, why: Why, alerts: &Alerts) -> Message {
        Message {
            why,
            appeared: Vec::new(),
            resolved: Vec::new(),
            active: Vec::new(),
            verdict: alerts.verdict.unwrap_or(Level::Ok),
            previous: self.verdict_told,
            at: Utc::now(),
        }
    }

    /// Takes in one snapshot's reasons; queues what is to be told; returns
    /// when it must look again even if nothing changes.
    pub(super) fn step(
        &mut self,
        t: &NotifyTarget,
        out: &Outbox,
        alerts: &Alerts,
        now: Instant,
    ) -> Option<Instant> {
        let current: HashMap<&str, Item> = alerts
            .reasons
            .iter()
            .filter(|(_, r)| wanted(t, r.level, &r.section, &r.rule))
            .map(|(k, r)| (k.as_str(), Item::of(k, r)))
            .collect();
        if !self.primed {
            self.prime(t, out, alerts, &current, now);
        }
        let mut next = self.changes(t, out, alerts, &current, now);
        for (k, told) in self.told.iter_mut() {
            // Its words and since as they are now; its level as told (a
            // change of level is told by `changes`, at its window's end).
            if let Some(i) = current.get(k.as_str()) {
                let level = told.item.level;
                told.item = i.clone();
                told.item.level = level;
            }
            told.item.flapping = alerts.flapping.contains(k);
        }
        let later = match t.kind {
            NotifyKind::Alertmanager => self.resend(t, out, alerts, now),
            _ => self.repeat(t, out, alerts, now),
        };
        if let Some(at) = later {
            next = Some(next.map_or(at, |n: Instant| n.min(at)));
        }
        next
    }

    /// The first complete snapshot: what is wrong is known, not news.
    fn prime(
        &mut self,
        t: &NotifyTarget,
        out: &Outbox,
        alerts: &Alerts,
        current: &HashMap<&str, Item>,
        now: Instant,
    ) {
        self.primed = true;
        self.verdict_told = alerts.verdict;
        for (k, i) in current {
            self.told.insert(
                k.to_string(),
                Told {
                    item: i.clone(),
                    last_sent: now,
                },
            );
        }
        if t.kind == NotifyKind::Alertmanager && !self.told.is_empty() {
            let mut m = self.message(Why::Resend, alerts);
            m.active = self.told.values().map(|x| x.item.clone()).collect();
            out.push(m);
            self.last_resend = Some(now);
        }
    }

    /// Appeared and cleared conditions, grouped over `group_wait`: the
    /// window opens at the first change and closes `group_wait` later,
    /// whatever happens meanwhile; then what differs from what was told is
    /// one message. A flapping condition is told once, as appeared (marked
    /// flapping), and not told clearing while it flaps.
    fn changes(
        &mut self,
        t: &NotifyTarget,
        out: &Outbox,
        alerts: &Alerts,
        current: &HashMap<&str, Item>,
        now: Instant,
    ) -> Option<Instant> {
        let (mut appeared, cleared) = self.pending(alerts, current);
        let changed = !appeared.is_empty() || !cleared.is_empty();
        let opened = match self.window {
            Some(at) => at,
            None if changed => *self.window.insert(now),
            None => return None,
        };
        let due = opened + t.group_wait;
        if now < due {
            return Some(due);
        }
        self.window = None;
        let mut m = self.message(Why::Change, alerts);
        // Cleared first: a condition whose level changed is both.
        for k in cleared {
            if let Some(told) = self.told.remove(&k) {
                if t.resolved {
                    m.resolved.push(told.item);
                }
            }
        }
        appeared.sort_by(|a, b| (&a.1.section, &a.1.reason).cmp(&(&b.1.section, &b.1.reason)));
        for (k, item) in appeared {
            m.appeared.push(item.clone());
            let told = Told {
                item,
                last_sent: now,
            };
            self.told.insert(k, told);
        }
        m.resolved
            .sort_by(|a, b| (&a.section, &a.reason).cmp(&(&b.section, &b.reason)));
        if !m.appeared.is_empty() || !m.resolved.is_empty() {
            self.verdict_told = alerts.verdict;
            out.push(m);
            if t.kind == NotifyKind::Alertmanager {
                // The change carried every active alert's state just now.
                self.last_resend = Some(now);
            }
        }
        None
    }

    /// What differs from what was told: conditions to tell (present now,
    /// or flapping) and conditions cleared (not while they flap).
    fn pending(
        &mut self,
        alerts: &Alerts,
        current: &HashMap<&str, Item>,
    ) -> (Vec<(String, Item)>, Vec<String>) {
        for (k, i) in current {
            self.seen.insert(k.to_string(), i.clone());
        }
        self.seen
            .retain(|k, _| current.contains_key(k.as_str()) || alerts.flapping.contains(k));
        let appeared: Vec<(String, Item)> = self
            .seen
            .iter()
            .filter(|(k, _)| !self.told.contains_key(*k))
            .map(|(k, i)| {
                let mut i = i.clone();
                i.flapping = alerts.flapping.contains(k);
                (k.clone(), i)
            })
            .collect();
        let mut cleared: Vec<String> = self
            .told
            .keys()
            .filter(|k| !current.contains_key(k.as_str()) && !alerts.flapping.contains(*k))
            .cloned()
            .collect();
        // A condition whose level changed (degraded to down) is news: the
        // old is cleared and the new told, in one message.
        let mut appeared: Vec<(String, Item)> = appeared;
        for (k, told) in &self.told {
            if let Some(now) = current
                .get(k.as_str())
                .filter(|i| i.level != told.item.level)
            {
                cleared.push(k.clone());
                appeared.push((k.clone(), now.clone()));
            }
        }
        (appeared, cleared)
    }

    /// Problems still there after `repeat`: told again, in one message.
    fn repeat(
        &mut self,
        t: &NotifyTarget,
        out: &Outbox,
        alerts: &Alerts,
        now: Instant,
    ) -> Option<Instant> {
        let every = t.repeat?;
        let mut m = self.message(Why::Repeat, alerts);
        for told in self.told.values_mut() {
            if now >= told.last_sent + every {
                told.last_sent = now;
                m.active.push(told.item.clone());
            }
        }
        if !m.active.is_empty() {
            m.active
                .sort_by(|a, b| (&a.section, &a.reason).cmp(&(&b.section, &b.reason)));
            self.verdict_told = alerts.verdict;
            out.push(m);
        }
        self.told.values().map(|x| x.last_sent + every).min()
    }

    /// Alertmanager: every active alert again each `resend`.
    fn resend(
        &mut self,
        t: &NotifyTarget,
        out: &Outbox,
        alerts: &Alerts,
        now: Instant,
    ) -> Option<Instant> {
        if self.told.is_empty() {
            self.last_resend = None;
            return None;
        }
        let due = self.last_resend.map_or(now, |at| at + t.resend);
        if now < due {
            return Some(due);
        }
        let mut m = self.message(Why::Resend, alerts);
        m.active = self.told.values().map(|x| x.item.clone()).collect();
        out.push(m);
        self.last_resend = Some(now);
        Some(now + t.resend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::UrlSource;
    use crate::engine::rollup::Reason;
    use std::time::Duration;

    fn target(kind: NotifyKind) -> NotifyTarget {
        NotifyTarget {
            name: "t".into(),
            kind,
            url: UrlSource::Given("http://127.0.0.1:9".into()),
            token_env: None,
            min_level: MinLevel::Degraded,
            sections: Vec::new(),
            rules: Vec::new(),
            resolved: true,
            repeat: Some(Duration::from_secs(3600)),
            group_wait: Duration::from_secs(5),
            resend: Duration::from_secs(60),
            queue: 10,
            retry_for: Duration::from_secs(60),
            timeout: Duration::from_secs(1),
            instance: "h".into(),
            link: None,
        }
    }

    #[test]
    fn a_change_of_level_is_news() {
        let t = target(NotifyKind::Webhook);
        let out = Outbox::new(t.clone(), std::sync::Arc::default());
        let mut w = Watch::default();
        let start = Instant::now();
        let mut down = alerts(&["a"], &[]);
        down.reasons[0].1.level = Level::Down;
        w.step(&t, &out, &alerts(&["a"], &[]), start);
        w.step(&t, &out, &down, start + Duration::from_secs(1));
        w.step(&t, &out, &down, start + Duration::from_secs(7));
        let m = out.pop().expect("a message");
        assert_eq!(m.resolved[0].level, Level::Degraded);
        assert_eq!(m.appeared[0].level, Level::Down);
        assert!(out.pop().is_none());
    }

    fn alerts(reasons: &[&str], flapping: &[&str]) -> Alerts {
        Alerts {
            verdict: Some(if reasons.is_empty() {
                Level::Ok
            } else {
                Level::Degraded
            }),
            reasons: reasons
                .iter()
                .map(|r| {
                    let reason = Reason {
                        section: "s".into(),
                        reason: r.to_string(),
                        level: Level::Degraded,
                        rule: "rule".into(),
                        since: None,
                        subject: Some(r.to_string()),
                    };
                    (crate::engine::transitions::key(&reason), reason)
                })
                .collect(),
            flapping: flapping
                .iter()
                .map(|r| format!("s\u{1f}rule\u{1f}{r}"))
                .collect(),
        }
    }

    /// A queued message as (why, appeared, resolved, active) reason texts.
    type Told = (Why, Vec<String>, Vec<String>, Vec<String>);

    /// Steps `w` through `(seconds, reasons, flapping)` and returns the
    /// messages queued, as (why, appeared, resolved, active) reason texts.
    fn run(kind: NotifyKind, steps: &[(u64, &[&str], &[&str])]) -> Vec<Told> {
        let t = target(kind);
        let out = Outbox::new(t.clone(), std::sync::Arc::default());
        let mut w = Watch::default();
        let start = Instant::now();
        for (at, reasons, flapping) in steps {
            w.step(
                &t,
                &out,
                &alerts(reasons, flapping),
                start + Duration::from_secs(*at),
            );
        }
        let texts = |v: &[Item]| v.iter().map(|i| i.reason.clone()).collect::<Vec<_>>();
        std::iter::from_fn(|| out.pop())
            .map(|m| {
                (
                    m.why,
                    texts(&m.appeared),
                    texts(&m.resolved),
                    texts(&m.active),
                )
            })
            .collect()
    }

    #[test]
    fn known_at_start_is_not_news_and_changes_are_grouped() {
        let got = run(
            NotifyKind::Webhook,
            &[
                (0, &["old"], &[]),
                (1, &["old", "a"], &[]),
                (3, &["old", "a", "b"], &[]),
                (6, &["old", "a", "b"], &[]),
            ],
        );
        assert_eq!(
            got,
            [(Why::Change, vec!["a".into(), "b".into()], vec![], vec![])]
        );
    }

    #[test]
    fn a_blip_within_the_window_is_no_message() {
        let got = run(
            NotifyKind::Webhook,
            &[
                (0, &[], &[]),
                (1, &["a"], &[]),
                (2, &[], &[]),
                (7, &[], &[]),
            ],
        );
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn a_flapping_condition_is_told_once_and_not_cleared_while_it_flaps() {
        let got = run(
            NotifyKind::Webhook,
            &[
                (0, &[], &[]),
                (1, &["a"], &[]),
                (2, &[], &["a"]),
                (7, &[], &["a"]),
                (20, &[], &["a"]),
                (30, &[], &[]),
                (40, &[], &[]),
            ],
        );
        assert_eq!(
            got,
            [
                (Why::Change, vec!["a".into()], vec![], vec![]),
                (Why::Change, vec![], vec!["a".into()], vec![])
            ]
        );
    }

    #[test]
    fn repeats_and_resends() {
        let got = run(
            NotifyKind::Webhook,
            &[
                (0, &[], &[]),
                (1, &["a"], &[]),
                (7, &["a"], &[]),
                (3000, &["a"], &[]),
                (3610, &["a"], &[]),
            ],
        );
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!(got[1], (Why::Repeat, vec![], vec![], vec!["a".to_string()]));
        // Alertmanager: what is active at start is sent at once, then every `resend`.
        let got = run(
            NotifyKind::Alertmanager,
            &[
                (0, &["a"], &[]),
                (30, &["a"], &[]),
                (61, &["a"], &[]),
                (90, &["a"], &[]),
            ],
        );
        let whys: Vec<Why> = got.iter().map(|m| m.0).collect();
        // Nothing sends here: the second resend replaced the first, waiting.
        assert_eq!(whys, [Why::Resend]);
    }
}
