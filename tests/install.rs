//! Beside a real pynchy install, with no config of our own: a pynchy root laid
//! out the way pynchy lays it out (config.toml with keys we do not read, .env,
//! data/messages.db with pynchy's schema and more, worktrees under
//! data/worktrees/<owner>/<repo>/<folder> on branches worktree/<folder>, one
//! mid-rebase, one stopped in a cherry-pick conflict, a repo with no worktrees
//! folder, a configured repo not cloned yet). Discovery, the verdicts and the
//! git answers are checked against git, sqlite3 and pynchy's own rules.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use common::*;
use pynchy_status::app::Daemon;
use pynchy_status::config::{Config, GatewayMode, Origin};
use serde_json::{json, Value};

const KEY: &str = "sk-install-fixture-9d1e";

fn ts(minutes_from_now: i64) -> String {
    (Utc::now() + chrono::Duration::minutes(minutes_from_now))
        .to_rfc3339_opts(SecondsFormat::Micros, false)
}

/// A repo at `dir` with one commit on `main`, cloned from a bare origin.
fn repo(dir: &Path, origin: &Path) {
    git_ok(
        dir.parent().unwrap(),
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            origin.to_str().unwrap(),
        ],
    );
    std::fs::create_dir_all(dir).unwrap();
    git_ok(dir, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("app.py"), "print('one')\n").unwrap();
    std::fs::write(dir.join(".gitignore"), "data/\nconfig.toml\n.env\n").unwrap();
    git_ok(dir, &["add", "-A"]);
    git_ok(dir, &["commit", "-qm", "initial"]);
    git_ok(dir, &["remote", "add", "origin", origin.to_str().unwrap()]);
    git_ok(dir, &["push", "-q", "origin", "main"]);
    git_ok(dir, &["remote", "set-head", "origin", "main"]);
}

/// A worktree of `repo` at `data/worktrees/<slug>/<folder>` on `worktree/<folder>`.
fn worktree(root: &Path, repo: &Path, slug: &str, folder: &str) -> PathBuf {
    let path = root.join("data/worktrees").join(slug).join(folder);
    let branch = format!("worktree/{folder}");
    git_ok(
        repo,
        &[
            "worktree",
            "add",
            "-q",
            "-b",
            &branch,
            path.to_str().unwrap(),
            "main",
        ],
    );
    path
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    rebasing: PathBuf,
    picking: PathBuf,
}

fn fixture() -> Fixture {
    test_env();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pynchy");
    repo(&root, &dir.path().join("origin.git"));
    std::fs::write(root.join("app.py"), "print('two')\n").unwrap();
    git_ok(&root, &["commit", "-qam", "two"]);
    let other = dir.path().join("other");
    repo(&other, &dir.path().join("other.git"));

    // Mid-rebase: the branch has one commit, main two more; the rebase stops
    // on a conflict with HEAD detached at main.
    let rebasing = worktree(&root, &root, "acme/pynchy", "rebaser");
    std::fs::write(rebasing.join("app.py"), "print('mine')\n").unwrap();
    git_ok(&rebasing, &["commit", "-qam", "mine"]);
    // main moves on, with a long subject: pynchy cuts it at 72 characters.
    std::fs::write(root.join("app.py"), "print('three')\n").unwrap();
    let subject = format!("feat: {}", "a very long subject line ".repeat(4));
    git_ok(&root, &["commit", "-qam", &subject]);
    let out = git_command_status(&rebasing, &["rebase", "main"]);
    assert!(!out, "the rebase stops on a conflict");

    // A cherry-pick stopped on a conflict.
    let picking = worktree(&root, &root, "acme/pynchy", "picker");
    std::fs::write(picking.join("app.py"), "print('theirs')\n").unwrap();
    git_ok(&picking, &["commit", "-qam", "theirs"]);
    git_ok(&picking, &["reset", "-q", "--hard", "HEAD~1"]);
    std::fs::write(picking.join("app.py"), "print('ours')\n").unwrap();
    git_ok(&picking, &["commit", "-qam", "ours"]);
    let theirs = git(&picking, &["rev-parse", "worktree/picker@{1}"]);
    assert!(!git_command_status(&picking, &["cherry-pick", &theirs]));

    write_config(&root);
    write_db(&root);
    Fixture {
        _dir: dir,
        root,
        rebasing,
        picking,
    }
}

fn git_command_status(dir: &Path, args: &[&str]) -> bool {
    Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .unwrap()
        .status
        .success()
}

fn write_config(root: &Path) {
    std::fs::write(
        root.join("config.toml"),
        r#"# pynchy's own config: we read a few keys and ignore the rest.
[agent]
name = "pynchy"
trigger = "@pynchy"

[server]
port = 8600

[gateway]
port = 4123
host = "0.0.0.0"
container_host = "host.docker.internal"
litellm_image = "ghcr.io/berriai/litellm:main-stable"
postgres_image = "postgres:16-alpine"

[scheduler]
timezone = "America/Los_Angeles"

[container]
max_concurrent = 3
timeout_ms = 900000

[sandbox.admin]
schedule = "0 9 * * *"
prompt = "Summarise"

[repos."acme/pynchy"]
path = "."

[repos."acme/other"]
path = "../other"

[repos."acme/later"]
"#,
    )
    .unwrap();
    std::fs::write(
        root.join(".env"),
        format!("GATEWAY__MASTER_KEY={KEY}\nSCHEDULER__POLL_INTERVAL=30\n"),
    )
    .unwrap();
}

fn write_db(root: &Path) {
    let db = root.join("data/messages.db");
    std::fs::create_dir_all(db.parent().unwrap()).unwrap();
    let sql = format!(
        "{schema}
         CREATE TABLE memories (id INTEGER PRIMARY KEY, text TEXT);
         ALTER TABLE messages ADD COLUMN reply_to TEXT;
         INSERT INTO registered_groups VALUES
           ('tui://pynchy','Admin','admin','@pynchy','{a}',NULL,NULL,1),
           ('slack:C1','Code','code','@code','{a}',NULL,NULL,0);
         INSERT INTO sessions VALUES ('admin','s-1'),('code',''),('gone','s-3');
         INSERT INTO scheduled_tasks (id, group_folder, chat_jid, prompt, schedule_type,
             schedule_value, next_run, last_run, status, created_at) VALUES
           ('t-seconds','admin','tui://pynchy','p','cron','0 9 * * * 30','{future}',NULL,'active','{a}'),
           ('t-macro','admin','tui://pynchy','p','cron','@daily','{future}',NULL,'active','{a}'),
           ('t-lastfri','admin','tui://pynchy','p','cron','0 0 * * L5','{future}',NULL,'active','{a}'),
           ('t-paused-junk','admin','tui://pynchy','p','cron','not a cron','{late}',NULL,'paused','{a}'),
           ('t-done','admin','tui://pynchy','p','once','2026-01-01T10:00:00',NULL,'{a}','completed','{a}'),
           ('t-rewritten','admin','tui://pynchy','p','cron','*/5 * * * *','{future}','{old}','active','{a}'),
           ('t-just-due','admin','tui://pynchy','p','interval','60000','{just}',NULL,'active','{a}'),
           ('t-waiting','code','slack:C1','p','interval','60000','{late}',NULL,'active','{b}'),
           ('t-late','admin','tui://pynchy','p','interval','60000','{late}',NULL,'active','{b}');",
        schema = pynchy_status::demo::SCHEMA,
        a = ts(-60 * 24 * 30),
        b = ts(-60 * 24),
        future = ts(30),
        late = ts(-10),
        just = ts(-2),
        old = ts(-60 * 24 * 10),
    );
    sqlite3_write(&db, &sql);
}

#[test]
fn discovers_the_install_from_its_root_alone() {
    let f = fixture();
    let cfg = Config::resolve(None, Some(&f.root)).unwrap();
    assert_eq!(
        cfg.listen.to_string(),
        "127.0.0.1:8601",
        "pynchy's port + 1"
    );
    assert_eq!(cfg.pynchy.database, f.root.join("data/messages.db"));
    assert_eq!(cfg.pynchy.root, f.root);
    assert_eq!(cfg.pynchy.timezone.name(), "America/Los_Angeles");
    assert_eq!(cfg.pynchy.poll_interval, Duration::from_secs(30));
    assert_eq!(cfg.pynchy.container_timeout, Duration::from_secs(900));
    assert_eq!(cfg.gateway.mode, GatewayMode::Builtin);
    assert_eq!(cfg.gateway.url, "http://127.0.0.1:4123");
    assert_eq!(cfg.gateway.master_key.0.as_deref(), Some(KEY));
    let repos: Vec<(&str, PathBuf, Option<PathBuf>, bool)> = cfg
        .repos
        .iter()
        .map(|r| {
            (
                r.slug.as_str(),
                r.path.clone(),
                r.worktrees.clone(),
                r.auto_clone,
            )
        })
        .collect();
    let wt = |slug: &str| Some(f.root.join("data/worktrees").join(slug));
    assert!(repos.contains(&("acme/pynchy", f.root.join("."), wt("acme/pynchy"), false)));
    assert!(repos.contains(&(
        "acme/other",
        f.root.join("../other"),
        wt("acme/other"),
        false
    )));
    let later = f.root.join("data/repos/acme/later");
    assert!(repos.contains(&("acme/later", later, wt("acme/later"), true)));
    assert_eq!(
        cfg.origins.get("pynchy.poll_interval"),
        Some(&Origin::DotEnv)
    );
    assert_eq!(cfg.origins.get("gateway.master_key"), Some(&Origin::DotEnv));
    assert_eq!(
        cfg.origins.get("pynchy.timezone"),
        Some(&Origin::PynchyToml)
    );

    // Our own file wins over what was discovered.
    let own = f.root.parent().unwrap().join("own.toml");
    std::fs::write(
        &own,
        "listen = \"127.0.0.1:9999\"\n[gateway]\nurl = \"http://127.0.0.1:1\"\n",
    )
    .unwrap();
    let cfg = Config::resolve(Some(&own), Some(&f.root)).unwrap();
    assert_eq!(cfg.listen.to_string(), "127.0.0.1:9999");
    assert_eq!(cfg.gateway.url, "http://127.0.0.1:1");
    assert_eq!(cfg.pynchy.timezone.name(), "America/Los_Angeles");
}

#[test]
fn config_command_shows_origins_and_hides_secrets() {
    let f = fixture();
    let out = Command::new(env!("CARGO_BIN_EXE_pynchy-status"))
        .args(["config", "--pynchy-root"])
        .arg(&f.root)
        .env_remove("GATEWAY__MASTER_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains(KEY), "the key is never printed:\n{text}");
    assert!(
        text.contains("# master key: \"<set>\"  # pynchy's .env"),
        "{text}"
    );
    assert!(
        text.contains("timezone = \"America/Los_Angeles\"  # pynchy's config.toml"),
        "{text}"
    );
    assert!(
        text.contains("poll_interval = \"30s\"  # pynchy's .env"),
        "{text}"
    );
    assert!(text.contains("root = "), "{text}");
    assert!(text.contains("# command line"), "{text}");
    assert!(text.contains("overdue_grace = \"5m\"  # default"), "{text}");
    // It is TOML: it parses (comments and all).
    text.parse::<toml::Table>().unwrap();

    // A config.toml pynchy could not parse: exit 2, naming the file and line.
    std::fs::write(f.root.join("config.toml"), "[server]\nport = \n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pynchy-status"))
        .args(["config", "--pynchy-root"])
        .arg(&f.root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("config.toml") && err.contains("line 2"),
        "{err}"
    );
    // A key of the wrong type: named, with its line.
    std::fs::write(f.root.join("config.toml"), "[gateway]\nport = \"x\"\n").unwrap();
    let e = Config::resolve(None, Some(&f.root))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("config.toml, line 2") && e.contains("gateway.port"),
        "{e}"
    );
}

fn serve(f: &Fixture) -> pynchy_status::app::Running {
    let mut cfg = Config::resolve(None, Some(&f.root)).unwrap();
    cfg.listen = "127.0.0.1:0".parse().unwrap();
    Daemon::new(cfg)
        .unwrap()
        .spawn(std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .unwrap()
}

fn push(addr: std::net::SocketAddr, section: &str, body: Value) {
    let code = pynchy_status::demo::push(addr, section, &body.to_string()).unwrap();
    assert_eq!(code, 200, "push {section}");
}

#[test]
fn serves_pynchy_state_with_pynchys_verdicts() {
    let f = fixture();
    let run = serve(&f);
    let started = "2026-11-28T01:00:00.123456+00:00";
    push(
        run.addr,
        "service",
        json!({"status": "ok", "started_at": started}),
    );
    push(run.addr, "channels", json!({"slack": true}));
    push(
        run.addr,
        "queue",
        json!({"active_containers": 1, "max_concurrent": 3, "groups_waiting": 0,
               "per_group": {"code": {"active": true, "is_task": true, "pending_messages": false, "pending_tasks": 1}}}),
    );
    ready(run.addr);
    // The tasks' verdict reads the pushed queue: collect them again now.
    let r = request(run.addr, "POST", "/refresh/tasks", &[], b"");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let d = wait_for(Duration::from_secs(20), "every section fresh", || {
        let d = get_json(run.addr, "/status");
        let fresh = d["meta"].as_object()?.values().all(|m| m["stale"] == false);
        (fresh && d["service"]["status"] == "ok").then_some(d)
    });

    // Compatible with what pynchy serves.
    assert_eq!(d["service"]["started_at"], json!(started), "echoed exactly");
    assert_eq!(
        d["channels"]["channels"],
        json!({"slack": {"connected": true}})
    );
    let subject = git(&f.root, &["log", "-1", "--format=%s"]);
    assert!(subject.chars().count() > 72);
    let cut: String = subject.chars().take(71).chain(['…']).collect();
    assert_eq!(d["deploy"]["head_commit"], json!(cut));
    assert_eq!(get_json(run.addr, "/health")["head_commit"], json!(cut));
    let sessions = sqlite3_write(
        &f.root.join("data/messages.db"),
        "SELECT COUNT(*) FROM sessions s JOIN registered_groups g ON g.folder = s.group_folder WHERE s.session_id <> ''",
    );
    assert_eq!(
        d["groups"]["active_sessions"],
        json!(sessions.parse::<u64>().unwrap())
    );
    let order: Vec<&str> = d["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    let truth = sqlite3_write(
        &f.root.join("data/messages.db"),
        "SELECT id FROM scheduled_tasks ORDER BY created_at DESC, id",
    );
    assert_eq!(order, truth.lines().collect::<Vec<_>>(), "pynchy's order");

    // Verdicts: only what pynchy's own state justifies.
    let task = |id: &str| {
        d["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["id"] == id)
            .unwrap()
            .clone()
    };
    for id in ["t-seconds", "t-macro", "t-lastfri"] {
        assert_eq!(
            task(id)["schedule_error"],
            Value::Null,
            "{id}: croniter accepts it"
        );
    }
    assert_eq!(
        task("t-late")["overdue"],
        json!(true),
        "due 10 min, idle group"
    );
    for id in [
        "t-paused-junk",
        "t-done",
        "t-rewritten",
        "t-just-due",
        "t-waiting",
    ] {
        assert_eq!(task(id)["overdue"], json!(false), "{id}");
    }
    let mut reasons: Vec<String> = d["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{}: {}",
                r["section"].as_str().unwrap(),
                r["reason"].as_str().unwrap()
            )
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            "repos: worktree picker of acme/pynchy in conflict",
            "repos: worktree rebaser of acme/pynchy in conflict",
            "tasks: task t-late overdue",
        ],
        "{d:#}"
    );

    // pynchy's git layout.
    let repos = &d["repos"];
    assert_eq!(repos["acme/later"]["cloned"], json!(false));
    assert_eq!(repos["acme/later"]["error"], Value::Null);
    assert_eq!(repos["acme/other"]["worktrees"], json!({}));
    assert_eq!(repos["acme/other"]["error"], Value::Null);
    let rebaser = &repos["acme/pynchy"]["worktrees"]["rebaser"];
    let count = |range: &str| {
        git(&f.root, &["rev-list", "--count", range])
            .parse::<u64>()
            .unwrap()
    };
    assert_eq!(rebaser["conflict"], json!(true));
    assert_eq!(rebaser["error"], Value::Null, "{rebaser}");
    assert_eq!(rebaser["branch"], json!("worktree/rebaser"));
    assert_eq!(rebaser["ahead"], json!(count("main..worktree/rebaser")));
    assert_eq!(rebaser["behind"], json!(count("worktree/rebaser..main")));
    assert!(f.rebasing.join(".git").exists());
    let picker = &repos["acme/pynchy"]["worktrees"]["picker"];
    assert_eq!(picker["conflict"], json!(true));
    assert_eq!(picker["ahead"], json!(count("main..worktree/picker")));
    assert!(f.picking.exists());
    let unpushed = count("origin/main..HEAD");
    assert_eq!(repos["acme/pynchy"]["unpushed_commits"], json!(unpushed));
    assert_eq!(d["deploy"]["unpushed_commits"], json!(unpushed));
}
