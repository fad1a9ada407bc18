//! `messages`: is traffic flowing? Inbound and outbound totals, the latest of
//! each, and deliveries still pending — five aggregates in one read of
//! pynchy's database — and the last 24 hours' volume per hour (the
//! dashboard's sparkline), read within the last 24 hours' rows only.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::{Connection, QueryResult, QueryableByName, RunQueryDsl, SqliteConnection};
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};

use super::{prom, Body, Builtin, CollectError, Finding, Rule, Schedule, Section, Work};
use crate::config::{Config, RollupConfig, Severity};
use crate::context::Context;
use crate::section_id::SectionId;
use crate::sources::db::{Db, Int};
use crate::sources::watch::Changes;

/// The `messages` body.
#[derive(Debug, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct MessagesBody {
    pub total_inbound: i64,
    pub total_outbound: i64,
    pub last_received_at: Option<String>,
    pub last_sent_at: Option<String>,
    pub pending_deliveries: i64,
    /// The last 24 hours, hour by hour (UTC), oldest first: the last entry
    /// is the hour in progress.
    pub hourly: Hourly,
}

/// Messages per hour over the last 24 hours.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, schemars::JsonSchema)]
pub struct Hourly {
    /// The first hour's start (`YYYY-MM-DDTHH:00:00Z`).
    pub from: String,
    /// Inbound messages (`is_from_me = 0`) per hour, 24 entries.
    pub inbound: Vec<u64>,
    /// Outbound messages (the ledger's rows) per hour, 24 entries.
    pub outbound: Vec<u64>,
}

/// The totals' row.
#[derive(QueryableByName)]
struct Totals {
    #[diesel(sql_type = BigInt)]
    total_inbound: i64,
    #[diesel(sql_type = BigInt)]
    total_outbound: i64,
    #[diesel(sql_type = Nullable<Text>)]
    last_received_at: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    last_sent_at: Option<String>,
    #[diesel(sql_type = BigInt)]
    pending_deliveries: i64,
}

/// One hour's count.
#[derive(QueryableByName)]
struct HourRow {
    #[diesel(sql_type = Text)]
    hour: String,
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Hours in the sparkline.
const HOURS: usize = 24;
/// Ledger rows read per step backwards from the newest.
const LEDGER_STEP: i64 = 1000;

/// The last 24 hours of `now`, per hour: inbound through pynchy's
/// `messages(timestamp)` index (the window's rows only), outbound by the
/// ledger's id backwards from the newest until a row is older than the
/// window (the ledger has no timestamp index; pynchy appends to it, so ids
/// follow time). Timestamps are pynchy's UTC isoformat, compared as text.
fn hourly(c: &mut SqliteConnection, now: chrono::DateTime<chrono::Utc>) -> QueryResult<Hourly> {
    use chrono::{DurationRound, TimeDelta};
    let first =
        now.duration_trunc(TimeDelta::hours(1)).unwrap_or(now) - TimeDelta::hours(HOURS as i64 - 1);
    let from = first.format("%Y-%m-%dT%H:00:00").to_string();
    let index = |hour: &str| -> Option<usize> {
        let t =
            chrono::NaiveDateTime::parse_from_str(&format!("{hour}:00:00"), "%Y-%m-%dT%H:%M:%S")
                .ok()?
                .and_utc();
        usize::try_from((t - first).num_hours())
            .ok()
            .filter(|i| *i < HOURS)
    };
    let mut inbound = vec![0; HOURS];
    let rows = diesel::sql_query(
        "SELECT substr(timestamp, 1, 13) AS hour, COUNT(*) AS n FROM messages \
         WHERE timestamp >= ? AND is_from_me = 0 GROUP BY hour",
    )
    .bind::<Text, _>(&from)
    .load::<HourRow>(c)?;
    for r in rows {
        if let Some(i) = index(&r.hour) {
            inbound[i] += u64::try_from(r.n).unwrap_or(0);
        }
    }
    let outbound = outbound_hourly(c, &from, index)?;
    Ok(Hourly {
        from: format!("{from}Z"),
        inbound,
        outbound,
    })
}

/// The ledger's rows per hour since `from` (`index` gives an hour's slot),
/// read newest first by rowid a step at a time, stopping at the first older
/// row: the ledger has no index on its timestamp.
fn outbound_hourly(
    c: &mut SqliteConnection,
    from: &str,
    index: impl Fn(&str) -> Option<usize>,
) -> QueryResult<Vec<u64>> {
    #[derive(QueryableByName)]
    struct Step {
        #[diesel(sql_type = BigInt)]
        id: i64,
        #[diesel(sql_type = Text)]
        timestamp: String,
    }
    let mut outbound = vec![0; HOURS];
    let mut below = i64::MAX;
    loop {
        let step = diesel::sql_query(
            "SELECT id, timestamp FROM outbound_ledger WHERE id < ? ORDER BY id DESC LIMIT ?",
        )
        .bind::<BigInt, _>(below)
        .bind::<BigInt, _>(LEDGER_STEP)
        .load::<Step>(c)?;
        let Some(last) = step.last() else { break };
        below = last.id;
        let mut older = false;
        for r in &step {
            if r.timestamp.as_str() < from {
                older = true;
                continue;
            }
            if let Some(i) = r.timestamp.get(..13).and_then(&index) {
                outbound[i] += 1;
            }
        }
        if older || (step.len() as i64) < LEDGER_STEP {
            break;
        }
    }
    Ok(outbound)
}

pub static PENDING_DELIVERIES: Rule = Rule {
    name: "pending_deliveries",
    default: Severity::Degraded,
    what: "pending deliveries exceed [rollup] pending_deliveries_max",
};

impl Body for MessagesBody {
    fn findings(&self, cfg: &RollupConfig, out: &mut Vec<Finding>) {
        let pending = u64::try_from(self.pending_deliveries).unwrap_or(0);
        if pending > cfg.pending_deliveries_max {
            out.push(Finding::new(
                &PENDING_DELIVERIES,
                format!(
                    "{pending} pending deliveries (more than {})",
                    cfg.pending_deliveries_max
                ),
            ));
        }
    }

    fn metrics(&self, reg: &mut Registry) {
        for (name, v, help) in [
            (
                "pynchy_messages_inbound",
                self.total_inbound,
                "Inbound messages in pynchy's database",
            ),
            (
                "pynchy_messages_outbound",
                self.total_outbound,
                "Outbound messages in pynchy's ledger",
            ),
            (
                "pynchy_messages_pending_deliveries",
                self.pending_deliveries,
                "Deliveries not yet delivered",
            ),
        ] {
            prom::gauge(reg, name, help, v as f64);
        }
    }

    fn summary(&self) -> String {
        format!(
            "in {} out {} pending {} last in {}",
            self.total_inbound,
            self.total_outbound,
            self.pending_deliveries,
            self.last_received_at.as_deref().unwrap_or("-")
        )
    }
}

/// Inbound messages are `is_from_me = 0`; outbound ones are the ledger's rows.
/// This is the plain form, run in full (the tests compare it with `sqlite3`).
pub const QUERY: &str = "SELECT \
    (SELECT COUNT(*) FROM messages WHERE is_from_me = 0) AS total_inbound, \
    (SELECT COUNT(*) FROM outbound_ledger) AS total_outbound, \
    (SELECT MAX(timestamp) FROM messages WHERE is_from_me = 0) AS last_received_at, \
    (SELECT MAX(timestamp) FROM outbound_ledger) AS last_sent_at, \
    (SELECT COUNT(*) FROM outbound_deliveries WHERE delivered_at IS NULL) AS pending_deliveries";

/// Everything but the inbound count, which [`Tally`] keeps incrementally.
const REST: &str = "SELECT 0 AS total_inbound, \
    (SELECT COUNT(*) FROM outbound_ledger) AS total_outbound, \
    (SELECT MAX(timestamp) FROM messages WHERE is_from_me = 0) AS last_received_at, \
    (SELECT MAX(timestamp) FROM outbound_ledger) AS last_sent_at, \
    (SELECT COUNT(*) FROM outbound_deliveries WHERE delivered_at IS NULL) AS pending_deliveries";

/// Counting `is_from_me = 0` means reading every row of `messages` (no index
/// covers it, and we may not add one): about 45 ms at a million rows. pynchy only
/// appends messages, so the count is kept by rowid: each cycle counts the rows
/// above the last seen rowid, and checks the table's total (answered from an
/// index) against what it expects. Any mismatch (rows deleted, the file
/// replaced) and every 60th cycle recount in full.
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    watermark: i64,
    rows: i64,
    inbound: i64,
    cycles: u32,
}

#[derive(QueryableByName)]
struct Slice {
    #[diesel(sql_type = BigInt)]
    rows: i64,
    #[diesel(sql_type = BigInt)]
    inbound: i64,
    #[diesel(sql_type = BigInt)]
    top: i64,
}

const FULL_RECOUNT_EVERY: u32 = 60;

fn count_inbound(c: &mut SqliteConnection, tally: &mut Option<Tally>) -> QueryResult<i64> {
    let slice = |c: &mut SqliteConnection, above: i64| {
        diesel::sql_query(
            "SELECT COUNT(*) AS rows, IFNULL(SUM(is_from_me = 0), 0) AS inbound, \
             IFNULL(MAX(rowid), ?) AS top FROM messages WHERE rowid > ?",
        )
        .bind::<BigInt, _>(above)
        .bind::<BigInt, _>(above)
        .get_result::<Slice>(c)
    };
    if let Some(t) = tally.filter(|t| t.cycles < FULL_RECOUNT_EVERY) {
        let new = slice(c, t.watermark)?;
        let total = diesel::sql_query("SELECT COUNT(*) AS n FROM messages").get_result::<Int>(c)?;
        if total.n == t.rows + new.rows {
            let next = Tally {
                watermark: new.top,
                rows: total.n,
                inbound: t.inbound + new.inbound,
                cycles: t.cycles + 1,
            };
            *tally = Some(next);
            return Ok(next.inbound);
        }
    }
    let all = slice(c, i64::MIN)?;
    *tally = Some(Tally {
        watermark: all.top,
        rows: all.rows,
        inbound: all.inbound,
        cycles: 0,
    });
    Ok(all.inbound)
}

pub struct Messages {
    /// One read of the database at a time, across sections.
    gate: super::Gate,
    db: Arc<Db>,
    tally: Arc<Mutex<Option<Tally>>>,
    changes: Arc<Changes>,
    verify: Duration,
}

fn read(db: &Db, tally: &Mutex<Option<Tally>>) -> Result<MessagesBody, CollectError> {
    let mut tally = tally.lock().unwrap_or_else(|p| p.into_inner());
    let result = db.read(|c| {
        c.transaction(|c| {
            let mut t = diesel::sql_query(REST).get_result::<Totals>(c)?;
            t.total_inbound = match count_inbound(c, &mut tally) {
                Ok(n) => n,
                // A table without rowids: count in full.
                Err(_) => {
                    *tally = None;
                    diesel::sql_query(QUERY)
                        .get_result::<Totals>(c)?
                        .total_inbound
                }
            };
            Ok(MessagesBody {
                total_inbound: t.total_inbound,
                total_outbound: t.total_outbound,
                last_received_at: t.last_received_at,
                last_sent_at: t.last_sent_at,
                pending_deliveries: t.pending_deliveries,
                hourly: hourly(c, chrono::Utc::now())?,
            })
        })
    });
    if result.is_err() {
        *tally = None;
    }
    Ok(result?)
}

impl Section for Messages {
    type Body = MessagesBody;

    fn collect(&self) -> Work<MessagesBody> {
        if !self.changes.must_read(self.verify) {
            return Work::same();
        }
        let (db, tally, changes) = (self.db.clone(), self.tally.clone(), self.changes.clone());
        Work::blocking(move || {
            let body = read(&db, &tally);
            if body.is_err() {
                changes.failed();
            }
            body
        })
        .gated(self.gate.clone())
    }

    fn changes(&self) -> Option<Arc<crate::sources::watch::Changes>> {
        Some(self.changes.clone())
    }
}

impl Builtin for Messages {
    const ID: SectionId = SectionId::Messages;
    const READS_DATABASE: bool = true;
    const RULES: &'static [&'static Rule] = &[&PENDING_DELIVERIES];

    /// Every 5 s when polling; with events every 10 s, in step with the
    /// other sections so their unchanged ticks share one render.
    fn default_schedule(config: &Config) -> Schedule {
        let every = if config.watch.enabled { 10 } else { 5 };
        Schedule::every(Duration::from_secs(every), Duration::from_secs(5))
    }

    fn new(ctx: &Arc<Context>, schedule: Schedule) -> Self {
        let changes = Changes::new();
        super::watch_database(ctx, &changes);
        Messages {
            db: Arc::new(super::db_for(ctx, schedule)),
            gate: super::db_gate(ctx),
            tally: Arc::default(),
            changes,
            verify: schedule.verify,
        }
    }
}
