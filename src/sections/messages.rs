//! `messages`: is traffic flowing? Inbound and outbound totals, the latest of
//! each, and deliveries still pending — five aggregates in one read of
//! pynchy's database.

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

/// The `messages` body (also the query's row).
#[derive(Debug, Serialize, Deserialize, QueryableByName, PartialEq, schemars::JsonSchema)]
pub struct MessagesBody {
    #[diesel(sql_type = BigInt)]
    pub total_inbound: i64,
    #[diesel(sql_type = BigInt)]
    pub total_outbound: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_received_at: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_sent_at: Option<String>,
    #[diesel(sql_type = BigInt)]
    pub pending_deliveries: i64,
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
            let mut body = diesel::sql_query(REST).get_result::<MessagesBody>(c)?;
            body.total_inbound = match count_inbound(c, &mut tally) {
                Ok(n) => n,
                // A table without rowids: count in full.
                Err(_) => {
                    *tally = None;
                    diesel::sql_query(QUERY)
                        .get_result::<MessagesBody>(c)?
                        .total_inbound
                }
            };
            Ok(body)
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

    fn changes(&self) -> Option<Arc<tokio::sync::Notify>> {
        Some(self.changes.notify.clone())
    }

    fn refresh(&self) -> super::Refresh {
        super::refresh_of(&self.changes)
    }

    fn failed(&self) {
        self.changes.failed();
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
