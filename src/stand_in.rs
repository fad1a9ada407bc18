//! A stand-in for pynchy's own HTTP server, speaking its wire format (install
//! notes §9), run as a process of its own (`pynchy-status stand-in`): what
//! the demo plays an unpatched pynchy with, and what the tests start, stop,
//! SIGSTOP and restart. It answers
//!
//! - `GET /api/groups`: each registered group's jid, name and folder, from
//!   `registered_groups` of the database (read-only, once at start);
//! - `GET /health`: pynchy's health answer ([`PynchyHealth`]);
//! - `GET /__stand_in/counts`: how many requests it had, by method and path
//!   (so a test can show what pynchy-status never asks: `/status`,
//!   `/api/events`, any `POST`).
//!
//! Everything else is 404, and counted.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// pynchy's `GET /health` answer, field for field (`http_server.py`).
#[derive(serde::Serialize)]
pub struct PynchyHealth {
    pub status: &'static str,
    pub uptime_seconds: u64,
    pub head_sha: &'static str,
    pub head_commit: &'static str,
    pub dirty: bool,
    pub channels_connected: bool,
}

/// What the stand-in says.
pub struct StandIn {
    groups: String,
    channels_connected: bool,
    started: Instant,
    counts: Mutex<BTreeMap<String, u64>>,
}

/// `registered_groups` as pynchy's `/api/groups` lists it.
fn groups_json(db: Option<&Path>) -> String {
    #[derive(diesel::QueryableByName, serde::Serialize)]
    struct Group {
        #[diesel(sql_type = diesel::sql_types::Text)]
        jid: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
        #[diesel(sql_type = diesel::sql_types::Text)]
        folder: String,
    }
    let rows: Vec<Group> = db
        .map(|p| crate::sources::db::Db::new(p, std::time::Duration::from_secs(2)))
        .and_then(|db| {
            db.read(|c| {
                use diesel::RunQueryDsl;
                diesel::sql_query("SELECT jid, name, folder FROM registered_groups ORDER BY folder")
                    .load::<Group>(c)
            })
            .ok()
        })
        .unwrap_or_default();
    serde_json::to_string(&rows).unwrap_or_else(|_| "[]".into())
}

impl StandIn {
    pub fn new(db: Option<&Path>, channels_connected: bool) -> Arc<StandIn> {
        Arc::new(StandIn {
            groups: groups_json(db),
            channels_connected,
            started: Instant::now(),
            counts: Mutex::new(BTreeMap::new()),
        })
    }

    fn answer(&self, method: &str, path: &str) -> (u16, String) {
        let key = format!("{method} {path}");
        let counts_json = {
            let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            if path != "/__stand_in/counts" {
                *c.entry(key).or_default() += 1;
            }
            serde_json::to_string(&*c).unwrap_or_default()
        };
        match (method, path) {
            ("GET", "/api/groups") => (200, self.groups.clone()),
            ("GET", "/health") => {
                let health = PynchyHealth {
                    status: "ok",
                    uptime_seconds: self.started.elapsed().as_secs(),
                    head_sha: "unknown",
                    head_commit: "",
                    dirty: false,
                    channels_connected: self.channels_connected,
                };
                (200, serde_json::to_string(&health).unwrap_or_default())
            }
            ("GET", "/__stand_in/counts") => (200, counts_json),
            _ => (404, r#"{"error":"not found"}"#.into()),
        }
    }

    fn serve_one(&self, stream: TcpStream) -> std::io::Result<()> {
        stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let mut parts = line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        if method.is_empty() {
            // A connection closed before any request (pynchy-status looking
            // whether the port is open): no handler runs, nothing to count.
            return Ok(());
        }
        let path = target.split('?').next().unwrap_or("");
        // The headers, up to the blank line (no request here has a body).
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
                break;
            }
        }
        let (code, body) = self.answer(method, path);
        let reason = if code == 200 { "OK" } else { "Not Found" };
        let mut out = stream;
        write!(
            out,
            "HTTP/1.1 {code} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        out.flush()
    }

    /// Serves `listener` until the process ends, a thread per connection.
    pub fn serve(self: Arc<StandIn>, listener: TcpListener) {
        for stream in listener.incoming().flatten() {
            let me = self.clone();
            std::thread::spawn(move || {
                let _ = me.serve_one(stream);
            });
        }
    }
}

/// `pynchy-status stand-in`: binds `listen`, says so on stdout (one line,
/// `listening on ADDR`), and serves until killed. It ends with its parent
/// (the demo) on Linux.
pub fn run(listen: &str, db: Option<&Path>, channels_connected: bool) -> std::io::Result<()> {
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and has no
    // memory effects.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
    let listener = TcpListener::bind(listen)?;
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    StandIn::new(db, channels_connected).serve(listener);
    Ok(())
}
