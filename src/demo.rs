//! The demo world: a throwaway pynchy install in a temp folder, laid out the
//! way pynchy lays out its own.
//!
//! It builds, with git2 and diesel (no subprocesses): a bare `origin`, pynchy's
//! checkout (its install root) with one unpushed commit, pynchy's
//! `config.toml` and `.env` there, three linked worktrees under
//! `data/worktrees/<owner>/<repo>/` (one ahead and dirty, one behind, one
//! stopped in a merge conflict), `data/messages.db` with pynchy's schema and
//! sample rows, and a configured repo pynchy has not cloned yet.
//! pynchy-status discovers all of it from the root alone. The folder is
//! deleted when the [`World`] is dropped.

use std::path::{Path, PathBuf};

use chrono::{Duration as ChronoDuration, SecondsFormat, Utc};
use diesel::connection::SimpleConnection;
use diesel::{Connection, SqliteConnection};
use git2::{BranchType, IndexAddOption, Oid, Repository, RepositoryInitOptions, Signature};

/// pynchy's SQLite schema: the tables and columns pynchy creates.
pub const SCHEMA: &str = include_str!("pynchy_schema.sql");

/// Why the demo world could not be built.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("git: {0}")]
    Git(#[from] git2::Error),
    #[error("sqlite: {0}")]
    Db(String),
    #[error("file system: {0}")]
    Io(#[from] std::io::Error),
}

/// A built demo world. Dropping it deletes the folder.
pub struct World {
    dir: tempfile::TempDir,
    pub config_path: PathBuf,
    /// pynchy's `[server] port` in the world's config.
    pub pynchy_port: u16,
}

impl World {
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// pynchy's install root (its checkout).
    pub fn pynchy_root(&self) -> PathBuf {
        self.dir.path().join("pynchy")
    }

    /// pynchy's database.
    pub fn database(&self) -> PathBuf {
        self.pynchy_root().join("data/messages.db")
    }

    /// Starts the stand-in pynchy (`exe stand-in`) on the world's port.
    pub fn start_pynchy(&self, exe: &Path) -> std::io::Result<Pynchy> {
        start_pynchy(exe, self.pynchy_port, &self.database(), true)
    }

    /// The linked worktree of the demo repo called `name`.
    pub fn worktree(&self, name: &str) -> PathBuf {
        self.pynchy_root().join(WORKTREES).join(name)
    }

    /// Runs agent containers as pynchy runs them, through the `docker` CLI
    /// (as pynchy does, on `$DOCKER_HOST`): the `code-improver` group's
    /// interactive session (`pynchy-<folder>`, kept warm) and one scheduled
    /// run of `admin` (`pynchy-<folder>-<epoch ms>`), each with its
    /// `data/ipc/<folder>` mounted at `/workspace/ipc`, sleeping in `image`.
    /// Nothing is pulled: where Docker does not answer or `image` is not
    /// there, the error says so and the demo runs without them.
    pub fn start_agents(&self, image: &str) -> Result<Agents, String> {
        let docker = |args: &[&str]| {
            std::process::Command::new("docker")
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        if !docker(&["version"]) {
            return Err("no Docker daemon answers (the docker CLI, $DOCKER_HOST)".into());
        }
        if !docker(&["image", "inspect", image]) {
            return Err(format!(
                "image {image} is not here (the demo pulls nothing; --agent-image names another)"
            ));
        }
        let ms = chrono::Utc::now().timestamp_millis();
        let mut agents = Agents { names: Vec::new() };
        for (folder, name) in [
            ("code-improver", "pynchy-code-improver".to_string()),
            ("admin", format!("pynchy-admin-{ms}")),
        ] {
            let ipc = self.pynchy_root().join("data/ipc").join(folder);
            std::fs::create_dir_all(&ipc).map_err(|e| format!("{}: {e}", ipc.display()))?;
            let mount = format!("{}:/workspace/ipc", ipc.display());
            let args = [
                "run",
                "-d",
                "--network",
                "none",
                "--name",
                &name,
                "-v",
                &mount,
            ];
            if !docker(&[&args[..], &[image, "sleep", "86400"]].concat()) {
                return Err(format!(
                    "docker run {name} failed (a container of that name?)"
                ));
            }
            agents.names.push(name);
        }
        Ok(agents)
    }
}

/// The demo's agent containers; removed (`docker rm -f`) when dropped.
pub struct Agents {
    pub names: Vec<String>,
}

impl Drop for Agents {
    fn drop(&mut self) {
        if self.names.is_empty() {
            return;
        }
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f"])
            .args(&self.names)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Where pynchy keeps the demo repo's worktrees, under its root.
pub const WORKTREES: &str = "data/worktrees/crypdick/pynchy";

/// pynchy's own `config.toml` for the demo (keys pynchy-status does not read,
/// such as the images, are there because pynchy requires them).
const PYNCHY_CONFIG: &str = r#"# pynchy's config.toml (written by `pynchy-status demo`)
[server]
port = PYNCHY_PORT                  # the stand-in pynchy's HTTP server

[gateway]
litellm_config = "litellm_config.yaml"
port = 9                            # nothing listens here: the demo has no gateway
host = "0.0.0.0"
container_host = "host.docker.internal"
litellm_image = "ghcr.io/berriai/litellm:main-stable"
postgres_image = "postgres:16-alpine"

[scheduler]
timezone = "Europe/Berlin"
poll_interval = 60.0

[container]
max_concurrent = 10

[repos."crypdick/pynchy"]
path = "."

[repos."crypdick/pynchy-docs"]    # pynchy clones this one on first use: not yet
"#;

fn sig() -> Result<Signature<'static>, git2::Error> {
    Signature::now("pynchy demo", "demo@pynchy.invalid")
}

fn write(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text)
}

/// Stages everything not ignored and commits it on HEAD.
fn commit_all(repo: &Repository, message: &str) -> Result<Oid, git2::Error> {
    let mut index = repo.index()?;
    index.add_all(["*"].iter(), IndexAddOption::DEFAULT, None)?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let parent = match repo.head() {
        Ok(h) => Some(h.peel_to_commit()?),
        Err(_) => None,
    };
    let parents: Vec<&git2::Commit> = parent.iter().collect();
    let s = sig()?;
    repo.commit(Some("HEAD"), &s, &s, message, &tree, &parents)
}

/// pynchy's checkout under `root` with a bare origin: two pushed commits and
/// one unpushed. Returns the repo and its first and last commits.
fn init_checkout(root: &Path, checkout: &Path) -> Result<(Repository, Oid, Oid), DemoError> {
    let origin_path = root.join("origin.git");
    let origin = Repository::init_bare(&origin_path)?;
    origin.set_head("refs/heads/main")?;

    let mut opts = RepositoryInitOptions::new();
    opts.initial_head("main");
    let repo = Repository::init_opts(checkout, &opts)?;
    write(
        &checkout.join(".gitignore"),
        "data/\n*.log\nconfig.toml\n.env\n",
    )?;
    write(&checkout.join("README.md"), "# pynchy\n\nAn agent host.\n")?;
    let app = "def route(message):\n    return deliver(message)\n";
    write(&checkout.join("src/pynchy/router.py"), app)?;
    let c1 = commit_all(&repo, "initial commit")?;
    write(
        &checkout.join("src/pynchy/router.py"),
        "def route(message):\n    return queue.submit(message)\n",
    )?;
    let c2 = commit_all(&repo, "feat: per-group container queue")?;

    {
        let mut remote = repo.remote("origin", &origin_path.to_string_lossy())?;
        remote.push(&["refs/heads/main:refs/heads/main"], None)?;
    }
    repo.reference("refs/remotes/origin/main", c2, true, "demo: track origin")?;
    repo.find_branch("main", BranchType::Local)?
        .set_upstream(Some("origin/main"))?;

    write(
        &checkout.join("src/pynchy/dedupe.py"),
        "def seen(message_id, cache):\n    return message_id in cache\n",
    )?;
    let c3 = commit_all(&repo, "fix: deduplicate message routing")?;
    // An ignored file: it must never make the checkout dirty.
    write(&checkout.join("service.log"), "started\n")?;
    Ok((repo, c1, c3))
}

/// Builds the git part of the world under `root`; returns pynchy's checkout.
pub fn build_git(root: &Path) -> Result<PathBuf, DemoError> {
    let checkout = root.join("pynchy");
    let (repo, c1, c3) = init_checkout(root, &checkout)?;
    let worktrees = checkout.join(WORKTREES);
    std::fs::create_dir_all(&worktrees)?;
    let add_worktree = |name: &str, at: Oid| -> Result<Repository, DemoError> {
        let commit = repo.find_commit(at)?;
        let branch = repo.branch(&format!("worktree/{name}"), &commit, false)?;
        let reference = branch.into_reference();
        let mut wopts = git2::WorktreeAddOptions::new();
        wopts.reference(Some(&reference));
        let wt = repo.worktree(name, &worktrees.join(name), Some(&wopts))?;
        Ok(Repository::open_from_worktree(&wt)?)
    };

    // Two commits ahead of main, with an untracked file: dirty.
    let improver = add_worktree("code-improver", c3)?;
    let wdir = worktrees.join("code-improver");
    write(&wdir.join("src/pynchy/cache.py"), "CACHE_SIZE = 512\n")?;
    commit_all(&improver, "perf: bounded dedupe cache")?;
    write(&wdir.join("src/pynchy/cache.py"), "CACHE_SIZE = 1024\n")?;
    commit_all(&improver, "perf: larger dedupe cache")?;
    write(&wdir.join("notes.txt"), "try an LRU next\n")?;

    // Two commits behind main, clean.
    add_worktree("docs-writer", c1)?;

    // Diverged on router.py and stopped in a merge of main: in conflict.
    let merger = add_worktree("merge-bot", c1)?;
    let mdir = worktrees.join("merge-bot");
    write(
        &mdir.join("src/pynchy/router.py"),
        "def route(message):\n    return broadcast(message)\n",
    )?;
    commit_all(&merger, "feat: broadcast routing")?;
    let theirs = merger.find_annotated_commit(c3)?;
    merger.merge(&[&theirs], None, None)?;

    Ok(checkout)
}

/// Inbound messages of the code-improver workspace too (its last activity).
fn code_improver_messages(ts: impl Fn(i64) -> String) -> String {
    (0..3)
        .map(|i| {
            format!(
                "INSERT INTO messages VALUES ('c{i}','code@g.us','u2','Bo','please fix {i}','{t}',0,'user',NULL);",
                t = ts(300 - i * 60),
            )
        })
        .collect()
}

/// Run history, as pynchy writes it (finish time in isoformat with
/// microseconds, a float duration): the digest succeeds every 5 minutes;
/// the hourly sync failed its last 4 runs.
fn run_history(now: chrono::DateTime<Utc>) -> String {
    let mut sql = String::new();
    let run_at = |minutes_ago: i64| {
        (now - ChronoDuration::minutes(minutes_ago))
            .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
            .to_string()
    };
    for i in 0..30 {
        sql.push_str(&format!(
            "INSERT INTO task_run_logs (task_id, run_at, duration_ms, status, result, error) \
             VALUES ('task-daily-digest','{t}',{d},'success','Digest sent.',NULL);",
            t = run_at(1 + i * 5),
            d = 41_000.5 + (i % 7) as f64 * 1_250.25,
        ));
    }
    for i in 0..12 {
        let (status, result, error) = if i < 4 {
            (
                "error",
                "NULL",
                "'git fetch failed: Could not resolve host: github.com\nTraceback (most recent call last):\n  ...'",
            )
        } else {
            ("success", "'Upstream synced.'", "NULL")
        };
        sql.push_str(&format!(
            "INSERT INTO task_run_logs (task_id, run_at, duration_ms, status, result, error) \
             VALUES ('task-overdue-sync','{t}',{d},'{status}',{result},{error});",
            t = run_at(105 + i * 60),
            d = 12_000.25 + i as f64 * 500.0,
        ));
    }
    sql
}

/// Creates pynchy's database at `path` with sample rows relative to now.
pub fn build_db(path: &Path) -> Result<(), DemoError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let url = path.to_string_lossy();
    let mut conn = SqliteConnection::establish(&url).map_err(|e| DemoError::Db(e.to_string()))?;
    let now = Utc::now();
    let ts = |minutes_ago: i64| {
        (now - ChronoDuration::minutes(minutes_ago)).to_rfc3339_opts(SecondsFormat::Secs, false)
    };
    let mut sql = String::from(SCHEMA);
    sql.push_str(&format!(
        "INSERT INTO registered_groups VALUES
           ('admin@g.us','Admin','admin','@pynchy','{a}',NULL,NULL,1),
           ('code@g.us','Code improver','code-improver','@code','{a}',NULL,NULL,0),
           ('docs@g.us','Docs','docs-writer','@docs','{a}',NULL,NULL,0);
         INSERT INTO sessions VALUES ('admin','sess-1'),('code-improver','sess-2');
         INSERT INTO chats VALUES ('admin@g.us','Admin','{m1}',NULL);
         INSERT INTO router_state VALUES ('last_deploy_at','{d}');
         INSERT INTO scheduled_tasks VALUES
           ('task-daily-digest','admin','admin@g.us','Summarise the day','cron','*/5 * * * *','{next_ok}','{last_ok}','ok','active','{a}','isolated',NULL),
           ('task-overdue-sync','code-improver','code@g.us','Sync upstream','interval','3600000','{next_late}','{last_late}','Error: git fetch failed: Could not resolve host: github.com','active','{a}','isolated',NULL),
           ('task-paused','docs-writer','docs@g.us','Rewrite docs','cron','*/30 * * * *','{next_late}',NULL,NULL,'paused','{a}','isolated',NULL),
           ('task-typo','admin','admin@g.us','Weekly report','cron','0 9 * * Mon-Fry','{next_ok}',NULL,NULL,'active','{a}','isolated',NULL);
         INSERT INTO host_jobs VALUES
           ('job-backup','backup-db','sqlite3 data/messages.db .dump','cron','*/5 * * * *','{next_ok}','{last_ok}','active','{a}','admin',NULL,600,1),
           ('job-prune','prune-worktrees','git worktree prune','interval','86400000','{next_late}','{last_late}','active','{a}','admin',NULL,600,0);
        ",
        a = ts(60 * 24 * 7),
        m1 = ts(2),
        d = ts(90),
        next_ok = (now + ChronoDuration::minutes(4)).to_rfc3339_opts(SecondsFormat::Secs, false),
        last_ok = ts(1),
        next_late = ts(45),
        last_late = ts(105),
    ));
    for i in 0..40 {
        let from_me = i % 4 == 3;
        sql.push_str(&format!(
            "INSERT INTO messages VALUES ('m{i}','admin@g.us','u1','Ada','hello {i}','{t}',{f},'user',NULL);",
            t = ts(200 - i * 5),
            f = i32::from(from_me),
        ));
    }
    sql.push_str(&code_improver_messages(ts));
    sql.push_str(&run_history(now));
    for i in 1..=12 {
        sql.push_str(&format!(
            "INSERT INTO outbound_ledger (chat_jid, content, timestamp, source) VALUES ('admin@g.us','reply {i}','{t}','agent');
             INSERT INTO outbound_deliveries VALUES ({i},'whatsapp',{d},NULL);",
            t = ts(190 - i * 15),
            d = if i > 10 { "NULL".to_string() } else { format!("'{}'", ts(189 - i * 15)) },
        ));
    }
    conn.batch_execute(&sql)
        .map_err(|e| DemoError::Db(e.to_string()))?;
    Ok(())
}

/// Builds the whole world and writes its config. `listen` goes into the config.
pub fn build(listen: &str) -> Result<World, DemoError> {
    let dir = tempfile::Builder::new()
        .prefix("pynchy-status-demo-")
        .tempdir()?;
    let root = dir.path();
    let checkout = build_git(root)?;
    let sha = Repository::open(&checkout)?
        .head()?
        .peel_to_commit()?
        .id()
        .to_string();
    build_db(&checkout.join("data/messages.db"))?;
    let mut conn =
        SqliteConnection::establish(&checkout.join("data/messages.db").to_string_lossy())
            .map_err(|e| DemoError::Db(e.to_string()))?;
    conn.batch_execute(&format!(
        "INSERT INTO router_state VALUES ('last_deploy_sha','{sha}');"
    ))
    .map_err(|e| DemoError::Db(e.to_string()))?;
    drop(conn);

    // pynchy's HTTP server (the stand-in) on a port free now.
    let pynchy_port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    write(
        &checkout.join("config.toml"),
        &PYNCHY_CONFIG.replace("PYNCHY_PORT", &pynchy_port.to_string()),
    )?;
    write(
        &checkout.join(".env"),
        "GATEWAY__MASTER_KEY=sk-demo-not-a-real-key\n",
    )?;
    // Only what the demo changes: its listen address. Everything else is
    // discovered from pynchy's install, as `serve --pynchy-root` does.
    let config_path = root.join("pynchy-status.toml");
    write(
        &config_path,
        &format!(
            "# Written by `pynchy-status demo`; paths are relative to this file.\n\
             listen = \"{listen}\"\n\n[pynchy]\nroot = \"pynchy\"\n"
        ),
    )?;
    Ok(World {
        dir,
        config_path,
        pynchy_port,
    })
}

/// A stand-in pynchy process (`pynchy-status stand-in`): killed when dropped.
pub struct Pynchy {
    child: std::process::Child,
    pub addr: std::net::SocketAddr,
}

impl Pynchy {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Pynchy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `exe stand-in` (this binary) as pynchy's HTTP server on
/// `127.0.0.1:port`, serving the groups of `db`; returns once it listens.
pub fn start_pynchy(
    exe: &Path,
    port: u16,
    db: &Path,
    channels_connected: bool,
) -> std::io::Result<Pynchy> {
    use std::io::BufRead;
    let mut child = std::process::Command::new(exe)
        .arg("stand-in")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--db")
        .arg(db)
        .arg("--channels-connected")
        .arg(channels_connected.to_string())
        .stdout(std::process::Stdio::piped())
        .stdin(std::process::Stdio::null())
        .spawn()?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        std::io::BufReader::new(out).read_line(&mut line)?;
    }
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok());
    match addr {
        Some(addr) => Ok(Pynchy { child, addr }),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(std::io::Error::other(format!(
                "the stand-in pynchy did not start: {line:?}"
            )))
        }
    }
}

/// The state a pynchy process would push: one channel disconnected, one group
/// with a pending task.
pub fn sample_pushes(started_at: chrono::DateTime<Utc>) -> Vec<(&'static str, String)> {
    vec![
        (
            "service",
            serde_json::json!({"status": "ok", "started_at": started_at.to_rfc3339_opts(SecondsFormat::Secs, false)})
                .to_string(),
        ),
        (
            "channels",
            serde_json::json!({"whatsapp": {"connected": true}, "slack": {"connected": false}})
                .to_string(),
        ),
        (
            "queue",
            serde_json::json!({
                "active_containers": 1, "max_concurrent": 10, "groups_waiting": 0,
                "per_group": {
                    "admin": {"active": true, "is_task": false, "pending_messages": true, "pending_tasks": 0},
                    "code-improver": {"active": false, "is_task": false, "pending_messages": false, "pending_tasks": 1}
                }
            })
            .to_string(),
        ),
        ("groups", serde_json::json!({"active_sessions": 2}).to_string()),
    ]
}

/// Pushes `body` to `PUT /push/{section}` on `addr`, as a patched pynchy would.
pub fn push(addr: std::net::SocketAddr, section: &str, body: &str) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
    write!(
        s,
        "PUT /push/{section} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status in the answer"))
}

/// Plays pynchy for the demo: pushes the sample state now and every 10 s, on a
/// thread of its own, until the process ends.
pub fn keep_pushing(addr: std::net::SocketAddr) {
    let started_at = Utc::now() - ChronoDuration::hours(2);
    std::thread::spawn(move || loop {
        for (section, body) in sample_pushes(started_at) {
            if let Err(e) = push(addr, section, &body) {
                tracing::debug!(error = %e, "demo push failed");
            }
        }
        std::thread::sleep(std::time::Duration::from_secs(10));
    });
}
