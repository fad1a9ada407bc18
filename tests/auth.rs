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
    for path in ["/status", "/status/deploy", "/metrics"] {
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
