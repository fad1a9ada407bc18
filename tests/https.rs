//! HTTPS upstreams: the gateway's `https://` url through rustls, trusting a
//! private CA given in `[gateway] ca_file` (made with the openssl CLI); a
//! local TLS server (Python's `http.server` behind `ssl`) speaks the LiteLLM
//! proxy's wire format. Without the CA the proxy is unreachable (never
//! trusted blindly); a key about to travel over plain HTTP beyond loopback is
//! warned about at start-up.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use pynchy_status::config::Config;
use serde_json::json;

fn openssl(dir: &Path, args: &[&str]) {
    let out = output_within(
        Command::new("openssl").args(args).current_dir(dir),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA (ca.pem) and a certificate for 127.0.0.1 signed by it (leaf.pem, leaf.key).
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=pynchy-status test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
        ],
    );
}

const SERVER: &str = r#"
import http.server, json, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body = {"healthy_endpoints": [{"model": "openai/good"}], "unhealthy_endpoints": [],
                    "healthy_count": 1, "unhealthy_count": 0}
        else:
            body = {"status": "healthy"}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

/// The TLS stand-in: its guard and port.
fn tls_server(dir: &Path) -> (ChildGuard, u16) {
    let mut child = ChildGuard::spawn(
        Command::new("python3")
            .args(["-c", SERVER])
            .arg(dir.join("leaf.pem"))
            .arg(dir.join("leaf.key"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    )
    .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().parse().unwrap())
}

fn gateway_config(port: u16, extra: &str) -> String {
    format!(
        "[gateway]\nmode = \"litellm\"\nurl = \"https://127.0.0.1:{port}\"\n\
         docker_host = \"unix:///nonexistent/pynchy-status-https.sock\"\n{extra}\n\
         [sections.gateway]\ninterval = \"300ms\"\n"
    )
}

fn tools_missing() -> bool {
    for (tool, arg) in [("openssl", "version"), ("python3", "--version")] {
        let found = Command::new(tool)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            missing_part(&format!("{tool} (from scripts/setup)"));
            return true;
        }
    }
    false
}

#[test]
fn an_https_gateway_is_trusted_through_ca_file_only() {
    if tools_missing() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let (_server, port) = tls_server(dir.path());

    let trusted = gateway_config(
        port,
        &format!("ca_file = \"{}\"", dir.path().join("ca.pem").display()),
    );
    let run = start_in(dir.path(), &trusted, vec![]);
    let gw = wait_for(Duration::from_secs(20), "the model check over TLS", || {
        let g = get_json(run.addr, "/status/gateway")["gateway"].clone();
        (g["healthy_models"] == json!(1)).then_some(g)
    });
    assert_eq!(gw["proxy"], json!("ready"));
    assert_eq!(gw["models_error"], json!(null));
    drop(run);

    // Without the CA: refused, never trusted blindly.
    let run = start_in(dir.path(), &gateway_config(port, ""), vec![]);
    let gw = wait_for(Duration::from_secs(20), "the refusal", || {
        let g = get_json(run.addr, "/status/gateway")["gateway"].clone();
        g["models_error"].is_string().then_some(g)
    });
    assert_eq!(gw["models_error"], json!("gateway unreachable"));
    assert_eq!(gw["proxy"], json!("unreachable"));
    assert_eq!(gw["healthy_models"], json!(null));
}

#[test]
fn a_ca_file_must_hold_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("not.pem"), "hello\n").unwrap();
    let err = Config::parse("[gateway]\nca_file = \"not.pem\"\n", dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("gateway.ca_file") && err.contains("no PEM certificate"),
        "{err}"
    );
    let err = Config::parse("[gateway]\nca_file = \"missing.pem\"\n", dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("gateway.ca_file") && err.contains("cannot read"),
        "{err}"
    );
    let err = Config::parse("[gateway]\nurl = \"ftp://x\"\n", dir.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("gateway.url"), "{err}");
}

#[test]
fn a_key_over_plain_http_beyond_loopback_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let config = "[pynchy]\nroot = \".\"\n[gateway]\nmode = \"litellm\"\n\
                  url = \"http://192.0.2.1:4000\"\nkey_env = \"PST_HTTPS_KEY\"\n\
                  docker_host = \"unix:///nonexistent/x.sock\"\n";
    let (mut child, _) = spawn_serve(dir.path(), config, &[("PST_HTTPS_KEY", "sk-test")]);
    let mut line = String::new();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut log = String::new();
    while stderr.read_line(&mut line).is_ok_and(|n| n > 0) {
        log.push_str(&line);
        if line.contains("plain HTTP") {
            break;
        }
        line.clear();
    }
    assert!(
        log.contains("the gateway key is sent over plain HTTP"),
        "{log}"
    );
    assert!(!log.contains("sk-test"), "{log}");
}
