//! The `llm` section's memory: LiteLLM's spend-log rows of the last 24 h,
//! each read once, in a compact form (no prompt, no response, no key), and
//! the plan of what is still to read.
//!
//! Rows are windowed by their `startTime`, as LiteLLM's own filters are. The
//! head of the window (`startTime` within `[llm] late_rows`, 1 h) is asked
//! newest `endTime` first, and only down to what is already held (less
//! `[llm] write_lag`: rows are written seconds after they end). The rest of
//! the day is read once, in slices of 1 h going back (10 min where LiteLLM
//! caps its count at 10,000), a bounded number of pages per collection.
//! Rows are told apart by `request_id`: a row seen twice counts once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};

use chrono::{DateTime, Duration, Utc};

use crate::sources::litellm_api::LogRow;

/// The window's length.
pub const DAY: Duration = Duration::hours(24);

/// A held row: 40 bytes.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub id: u64,
    /// `startTime`, ms since the epoch.
    pub start_ms: i64,
    /// `endTime − startTime`, ms.
    pub end_after_ms: u32,
    pub duration_ms: u32,
    pub spend: f32,
    pub group: u16,
    pub provider: u16,
    pub deployment: u16,
    /// The error class, [`NONE`] for a success.
    pub class: u16,
    pub failed: bool,
}

/// No error class.
pub const NONE: u16 = u16::MAX;

/// A failure saying this means the router had no deployment left: some are
/// cooling down.
pub const NO_DEPLOYMENTS: &str = "No deployments available";

impl Row {
    pub fn end_ms(&self) -> i64 {
        self.start_ms + i64::from(self.end_after_ms)
    }
}

/// Names (model groups, providers, deployments, error classes) as numbers.
/// At most 60,000: more are all called "other".
#[derive(Debug, Default)]
pub struct Names {
    by_name: HashMap<String, u16>,
    names: Vec<String>,
}

const MAX_NAMES: usize = 60_000;

impl Names {
    pub fn id(&mut self, name: &str) -> u16 {
        if let Some(&i) = self.by_name.get(name) {
            return i;
        }
        if self.names.len() >= MAX_NAMES {
            return self.id_other();
        }
        let i = self.names.len() as u16;
        self.names.push(name.to_string());
        self.by_name.insert(name.to_string(), i);
        i
    }

    fn id_other(&mut self) -> u16 {
        match self.by_name.get("other") {
            Some(&i) => i,
            None => {
                // The last slot is kept for it.
                let i = self.names.len().min(MAX_NAMES) as u16;
                if (i as usize) < self.names.len() {
                    self.names[i as usize] = "other".into();
                } else {
                    self.names.push("other".into());
                }
                self.by_name.insert("other".into(), i);
                i
            }
        }
    }

    /// The number of `name`, if it has one.
    pub fn find(&self, name: &str) -> Option<u16> {
        self.by_name.get(name).copied()
    }

    pub fn name(&self, i: u16) -> &str {
        self.names.get(i as usize).map_or("?", String::as_str)
    }
}

/// The latest failure of one error class.
#[derive(Debug, Clone, PartialEq)]
pub struct Latest {
    pub end_ms: i64,
    pub code: String,
    pub message: String,
    pub group: u16,
}

/// A `startTime` range still to read, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slice {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// The page of it to read next (pages of `page_size`; 1 when its
    /// bounds or the page size change).
    pub page: u32,
}

impl Slice {
    pub fn new(from: DateTime<Utc>, to: DateTime<Utc>) -> Slice {
        Slice { from, to, page: 1 }
    }
}

/// The rows held, and what is still to read.
#[derive(Debug, Default)]
pub struct Window {
    pub rows: Vec<Row>,
    ids: HashSet<u64>,
    pub groups: Names,
    pub providers: Names,
    pub deployments: Names,
    pub classes: Names,
    /// The latest failure of each class, by class.
    pub latest: HashMap<u16, Latest>,
    /// The latest "No deployments available" failure of each model group
    /// (its end, ms): the router had no deployment left for it.
    pub no_deployments: HashMap<u16, i64>,
    /// The newest `endTime` the head has read.
    pub head_end: Option<DateTime<Utc>>,
    /// Slices of the window not read yet, newest first.
    pub pending: VecDeque<Slice>,
    /// When the window was first planned (the start of the reads).
    pub planned: bool,
    /// Rows skipped because LiteLLM's row had no id or no time.
    pub skipped: u64,
    /// Slices narrowed because LiteLLM capped their count.
    pub narrowed: u64,
}

fn hash_id(id: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    h.finish()
}

impl Window {
    /// Plans the first reads: the day before `head_from`, in 1 h slices,
    /// newest first. LiteLLM compares `startTime` with whole seconds, both
    /// ends inclusive: neighbouring slices share their boundary second (a
    /// row exactly on it is read twice and counted once), so that a row at
    /// `…:59.5` is in one of them.
    pub fn plan(&mut self, now: DateTime<Utc>, head_from: DateTime<Utc>) {
        if self.planned {
            return;
        }
        self.planned = true;
        let oldest = now - DAY;
        let mut to = head_from;
        while to > oldest {
            let from = (to - Duration::hours(1)).max(oldest);
            self.pending.push_back(Slice::new(from, to));
            to = from;
        }
    }

    /// Adds a row unless it is held already; whether it was new.
    pub fn add(&mut self, r: &LogRow) -> bool {
        let id = hash_id(&r.request_id);
        if !self.ids.insert(id) {
            return false;
        }
        let start_ms = r.start.timestamp_millis();
        let end_ms = r.end.timestamp_millis().max(start_ms);
        let class = match &r.error {
            Some(e) => {
                let c = self.classes.id(&e.class);
                let group = self.groups.id(&r.model_group);
                if e.message.contains(NO_DEPLOYMENTS) {
                    let last = self.no_deployments.entry(group).or_default();
                    *last = (*last).max(end_ms);
                }
                let newer = self.latest.get(&c).is_none_or(|l| l.end_ms <= end_ms);
                if newer {
                    self.latest.insert(
                        c,
                        Latest {
                            end_ms,
                            code: e.code.clone(),
                            message: e.message.clone(),
                            group,
                        },
                    );
                }
                c
            }
            None if r.failed => self.classes.id("unknown"),
            None => NONE,
        };
        self.rows.push(Row {
            id,
            start_ms,
            end_after_ms: (end_ms - start_ms).min(i64::from(u32::MAX)) as u32,
            duration_ms: r.duration_ms.min(u64::from(u32::MAX)) as u32,
            spend: r.spend as f32,
            group: self.groups.id(&r.model_group),
            provider: self.providers.id(&r.provider),
            deployment: self.deployments.id(&r.model_id),
            class,
            failed: r.failed,
        });
        true
    }

    /// Drops rows that started before `now − 24 h`, and the slices and
    /// latest failures that fell out with them.
    pub fn slide(&mut self, now: DateTime<Utc>) {
        let oldest = now - DAY;
        let cut = oldest.timestamp_millis();
        let ids = &mut self.ids;
        self.rows.retain(|r| {
            let keep = r.start_ms >= cut;
            if !keep {
                ids.remove(&r.id);
            }
            keep
        });
        self.pending.retain(|s| s.to >= oldest);
        for s in self.pending.iter_mut() {
            if s.from < oldest {
                // Its rows shift under the pages read: read it again whole.
                s.from = oldest;
                s.page = 1;
            }
        }
        self.latest.retain(|_, l| l.end_ms >= cut);
        self.no_deployments.retain(|_, end| *end >= cut);
    }

    /// Whether every slice of the day has been read.
    pub fn complete(&self) -> bool {
        self.planned && self.pending.is_empty()
    }

    /// The oldest `startTime` from which every row is held.
    pub fn complete_from(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        match self.pending.front() {
            Some(s) => s.to,
            None => now - DAY,
        }
    }

    /// A slice whose count LiteLLM capped, cut in six (sharing boundary
    /// seconds, as [`Window::plan`]'s), to be read first. Not below 6 s.
    pub fn narrow(&mut self, s: Slice) -> bool {
        let len = (s.to - s.from).num_seconds();
        if len < 6 {
            return false;
        }
        self.narrowed += 1;
        let step = len / 6;
        // Oldest first onto the front: the newest ends up first.
        let mut from = s.from;
        for i in 0..6 {
            let to = if i == 5 {
                s.to
            } else {
                from + Duration::seconds(step)
            };
            self.pending.push_front(Slice::new(from, to));
            from = to;
        }
        true
    }

    /// Memory held by the rows and their ids, in bytes (approximate).
    pub fn bytes(&self) -> usize {
        self.rows.capacity() * std::mem::size_of::<Row>() + self.ids.capacity() * 9
    }
}

/// Counts of one model group, one provider, or all of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub requests_recent: u64,
    pub failures_recent: u64,
    pub requests_1h: u64,
    pub failures_1h: u64,
    pub requests_24h: u64,
    pub failures_24h: u64,
    pub spend_24h: f64,
    pub last_failure_ms: Option<i64>,
    /// Durations of the last hour's requests, ms (sorted by `finish`).
    pub durations_1h: Vec<u32>,
    /// Failures in 24 h by error class.
    pub classes_24h: HashMap<u16, u64>,
    /// The recent window's failures by error class.
    pub classes_recent: HashMap<u16, u64>,
}

impl Tally {
    fn add(&mut self, r: &Row, recent: bool, hour: bool) {
        self.requests_24h += 1;
        self.spend_24h += f64::from(r.spend);
        if hour {
            self.requests_1h += 1;
            self.durations_1h.push(r.duration_ms);
        }
        if recent {
            self.requests_recent += 1;
        }
        if r.failed {
            self.failures_24h += 1;
            *self.classes_24h.entry(r.class).or_default() += 1;
            self.last_failure_ms = self.last_failure_ms.max(Some(r.end_ms()));
            if hour {
                self.failures_1h += 1;
            }
            if recent {
                self.failures_recent += 1;
                *self.classes_recent.entry(r.class).or_default() += 1;
            }
        }
    }

    /// The `q` quantile (nearest rank) of the last hour's durations.
    pub fn quantile(&self, q: f64) -> Option<u32> {
        let d = &self.durations_1h;
        if d.is_empty() {
            return None;
        }
        let rank = ((q * d.len() as f64).ceil() as usize).clamp(1, d.len());
        Some(d[rank - 1])
    }

    fn finish(&mut self) {
        self.durations_1h.sort_unstable();
    }
}

/// What the window says as of `now`: by model group, by provider, in all,
/// by error class, and spend by deployment.
#[derive(Debug, Default)]
pub struct Figures {
    pub all: Tally,
    pub groups: HashMap<u16, Tally>,
    pub providers: HashMap<u16, Tally>,
    /// Failures by class: last hour and 24 h.
    pub classes: HashMap<u16, (u64, u64)>,
    /// Spend by deployment over 24 h.
    pub deployment_spend: HashMap<u16, f64>,
}

impl Window {
    /// One pass over the rows held: the counts over the recent window
    /// (`recent`), the last hour and the day.
    pub fn figures(&self, now: DateTime<Utc>, recent: std::time::Duration) -> Figures {
        let now_ms = now.timestamp_millis();
        let day_from = now_ms - DAY.num_milliseconds();
        let hour_from = now_ms - 3_600_000;
        let recent_from = now_ms - recent.as_millis() as i64;
        let mut f = Figures::default();
        for r in self.rows.iter().filter(|r| r.start_ms >= day_from) {
            let (rec, hour) = (r.start_ms >= recent_from, r.start_ms >= hour_from);
            f.all.add(r, rec, hour);
            f.groups.entry(r.group).or_default().add(r, rec, hour);
            f.providers.entry(r.provider).or_default().add(r, rec, hour);
            *f.deployment_spend.entry(r.deployment).or_default() += f64::from(r.spend);
            if r.failed {
                let c = f.classes.entry(r.class).or_default();
                c.1 += 1;
                if hour {
                    c.0 += 1;
                }
            }
        }
        f.all.finish();
        f.groups.values_mut().for_each(Tally::finish);
        f.providers.values_mut().for_each(Tally::finish);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::litellm_api::{parse_time, RowError};

    fn row(id: &str, start: &str, failed: bool) -> LogRow {
        let start = parse_time(start).unwrap();
        LogRow {
            request_id: id.into(),
            start,
            end: start + Duration::seconds(2),
            model_group: "sonnet".into(),
            model_id: "d1".into(),
            provider: "anthropic".into(),
            spend: 0.5,
            failed,
            duration_ms: 2000,
            error: failed.then(|| RowError {
                class: "RateLimitError".into(),
                code: "429".into(),
                message: "slow down".into(),
            }),
        }
    }

    #[test]
    fn a_row_counts_once_and_the_day_slides() {
        let mut w = Window::default();
        assert!(w.add(&row("a", "2026-12-03T10:00:00Z", false)));
        assert!(!w.add(&row("a", "2026-12-03T10:00:00Z", false)));
        assert!(w.add(&row("b", "2026-12-04T09:00:00Z", true)));
        assert_eq!(w.rows.len(), 2);
        w.slide(parse_time("2026-12-04T10:00:01Z").unwrap());
        assert_eq!(w.rows.len(), 1);
        // Its id went with it: read again, it is new.
        assert!(w.add(&row("a", "2026-12-04T09:30:00Z", false)));
        assert_eq!(w.latest.len(), 1);
    }

    #[test]
    fn the_plan_covers_the_day_once() {
        let mut w = Window::default();
        let now = parse_time("2026-12-04T10:00:00Z").unwrap();
        w.plan(now, now - Duration::hours(1));
        assert_eq!(w.pending.len(), 23);
        let mut covered = 0;
        let mut last_from = None;
        for s in &w.pending {
            if let Some(f) = last_from {
                assert_eq!(s.to, f);
            }
            covered += (s.to - s.from).num_seconds();
            last_from = Some(s.from);
        }
        assert_eq!(covered, 23 * 3600);
        let s = w.pending.pop_front().unwrap();
        assert!(w.narrow(s));
        let parts: Vec<Slice> = w.pending.iter().take(6).copied().collect();
        assert_eq!(parts[5].from, s.from);
        assert_eq!(parts[0].to, s.to);
        let n: i64 = parts.iter().map(|p| (p.to - p.from).num_seconds()).sum();
        assert_eq!(n, 3600);
    }
}
