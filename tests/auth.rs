//! The server token (`[server] token_env`): without it the details (`/status`,
//! `/metrics`, the full `/health`) are refused and `/health` says only the
//! verdict; probes stay open; `check` sends the token from its environment.

mod common;

use common::*;

#[test]
fn detail_hiding_with_a_server_token() {
    // PST_SERVER_TOKEN_T is "view-token-1" (common::TEST_ENV).
    let (dir, cfg) = demo_world("[server]\ntoken_env = \"PST_SERVER_TOKEN_T\"\n");
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    let auth = [("Authorization", "Bearer view-token-1")];
    for path in [
        "/status",
        "/status/deploy",
        "/status/tasks/task-overdue-sync",
        "/status/events",
        "/status/notify",
        "/metrics",
    ] {
        let r = get(run.addr, path);
        assert_eq!(r.status, 401, "{path}");
        assert!(r.json()["error"].is_string());
        assert_eq!(
            request(
                run.addr,
                "GET",
                path,
                &[("Authorization", "Bearer nope")],
                b""
            )
            .status,
            401
        );
        assert_eq!(
            request(run.addr, "GET", path, &auth, b"").status,
            200,
            "{path}"
        );
    }
    let public = get(run.addr, "/health").json();
    assert_eq!(public.as_object().unwrap().len(), 1, "{public}");
    assert!(public["status"].is_string());
    let full = request(run.addr, "GET", "/health", &auth, b"").json();
    assert!(full["head_sha"].is_string(), "{full}");
    assert_eq!(get(run.addr, "/livez").status, 200);
    assert_eq!(get(run.addr, "/readyz").status, 200);
    let (code, out) = check_command(
        &run.url(),
        &[],
        &[("PYNCHY_STATUS_SERVER_TOKEN", "view-token-1")],
    );
    assert!(code == 1 || code == 2, "{out}");
    drop(run);
    // Token off: everything open.
    let (dir, cfg) = demo_world("");
    let run = start_in(dir.path(), &cfg, vec![]);
    ready(run.addr);
    assert_eq!(get(run.addr, "/status").status, 200);
    assert!(get(run.addr, "/health").json()["head_sha"].is_string());
}

/// `pynchy_status_auth_failures_total{endpoint}` as `/metrics` says it.
fn failures(metrics: &str, endpoint: &str) -> Option<u64> {
    let prefix = format!("pynchy_status_auth_failures_total{{endpoint=\"{endpoint}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
}

#[test]
fn refused_tokens_are_counted_and_logged_once_a_minute() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let config = "[pynchy]\nroot = \".\"\n[gateway]\nmode = \"none\"\n\
                  [server]\ntoken_env = \"PST_AUTH_T\"\n[push]\ntoken_env = \"PST_AUTH_PUSH_T\"\n";
    let env = [
        ("PST_AUTH_T", "view-token"),
        ("PST_AUTH_PUSH_T", "push-token"),
    ];
    let (child, addr) = spawn_serve(dir.path(), config, &env);
    wait_for(Duration::from_secs(10), "ready", || {
        (get(addr, "/readyz").status == 200).then_some(())
    });
    let wrong = [("Authorization", "Bearer nope")];
    for _ in 0..30 {
        assert_eq!(request(addr, "GET", "/status", &wrong, b"").status, 401);
    }
    for _ in 0..5 {
        assert_eq!(get(addr, "/status/deploy").status, 401);
    }
    let push = request(addr, "PUT", "/push/channels", &wrong, b"{}");
    assert_eq!(push.status, 403);
    let auth = [("Authorization", "Bearer view-token")];
    let m = request(addr, "GET", "/metrics", &auth, b"");
    assert_eq!(m.status, 200);
    let text = String::from_utf8(m.body).unwrap();
    assert_eq!(failures(&text, "/status"), Some(30), "{text}");
    assert_eq!(failures(&text, "/status/{section}"), Some(5), "{text}");
    assert_eq!(failures(&text, "/push/{section}"), Some(1), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(text.matches("# EOF").count(), 1);
    // 36 refusals within a minute: one log line.
    signal(child.id(), "-TERM");
    let out = child.output_within(Duration::from_secs(10));
    let log = String::from_utf8_lossy(&out.stderr);
    let lines = log
        .lines()
        .filter(|l| l.contains("refused for a missing or wrong token"));
    assert_eq!(lines.count(), 1, "{log}");
    // The tokens themselves, right or wrong, are never logged.
    for token in ["nope", "view-token", "push-token"] {
        assert!(!log.contains(token), "{token} in the log: {log}");
    }
}
