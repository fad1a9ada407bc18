//! `messages`: is traffic flowing? Inbound and outbound totals, the latest of
//! each, and deliveries still pending — five aggregates in one read of
//! pynchy's database.

use std::sync::Arc;
use std::time::Duration;

use diesel::sql_types::{BigInt, Nullable, Text};
use diesel::{QueryableByName, RunQueryDsl};
use serde::Serialize;

use super::{CollectError, Schedule, Section, Work};
use crate::context::Context;
use crate::sources::db::Db;

/// The seed's `messages` body (also the query's row).
#[derive(Debug, Serialize, QueryableByName, PartialEq)]
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

/// Inbound messages are `is_from_me = 0`; outbound ones are the ledger's rows.
pub const QUERY: &str = "SELECT \
    (SELECT COUNT(*) FROM messages WHERE is_from_me = 0) AS total_inbound, \
    (SELECT COUNT(*) FROM outbound_ledger) AS total_outbound, \
    (SELECT MAX(timestamp) FROM messages WHERE is_from_me = 0) AS last_received_at, \
    (SELECT MAX(timestamp) FROM outbound_ledger) AS last_sent_at, \
    (SELECT COUNT(*) FROM outbound_deliveries WHERE delivered_at IS NULL) AS pending_deliveries";

const SCHEDULE: Schedule = Schedule::every(Duration::from_secs(5), Duration::from_secs(5));

pub struct Messages {
    db: Arc<Db>,
}

impl Messages {
    pub fn new(ctx: Arc<Context>) -> Self {
        Messages {
            db: Arc::new(super::db_for(&ctx, "messages", SCHEDULE)),
        }
    }
}

/// Reads the `messages` body from `db`.
pub fn read(db: &Db) -> Result<MessagesBody, CollectError> {
    db.read(|c| diesel::sql_query(QUERY).get_result::<MessagesBody>(c))
        .map_err(|e| CollectError::new(e.to_string()))
}

impl Section for Messages {
    fn name(&self) -> &'static str {
        "messages"
    }

    fn default_schedule(&self) -> Schedule {
        SCHEDULE
    }

    fn collect(&self) -> Work {
        let db = self.db.clone();
        Work::blocking(move || super::to_body(read(&db)?))
    }
}
