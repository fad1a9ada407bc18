//! pynchy's systemd user unit over D-Bus: a real `dbus-daemon` session bus,
//! with a stand-in object implementing the `org.freedesktop.systemd1`
//! Manager's `GetUnit` and the Unit and Service properties the service
//! section reads (real systemd does not run on these machines); `busctl` is
//! the client-side ground truth. Its words go into the reason; the unit
//! follows as it changes; a bus that goes away is the body's `unit_error`.

mod common;

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use zbus::zvariant::OwnedObjectPath;

const UNIT_PATH: &str = "/org/freedesktop/systemd1/unit/pynchy_2eservice";

#[derive(Clone)]
struct UnitFacts {
    active_state: String,
    sub_state: String,
    result: String,
    n_restarts: u32,
    exec_main_code: i32,
    exec_main_status: i32,
    active_enter_timestamp: u64,
}

type Shared = Arc<Mutex<UnitFacts>>;

#[derive(Debug, zbus::DBusError)]
#[zbus(prefix = "org.freedesktop.systemd1")]
enum SdError {
    #[zbus(error)]
    ZBus(zbus::Error),
    NoSuchUnit(String),
}

struct Manager;

#[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
impl Manager {
    #[zbus(name = "GetUnit")]
    fn get_unit(&self, name: &str) -> Result<OwnedObjectPath, SdError> {
        if name == "pynchy.service" {
            Ok(OwnedObjectPath::try_from(UNIT_PATH).unwrap())
        } else {
            Err(SdError::NoSuchUnit(format!("Unit {name} not loaded.")))
        }
    }
}

struct Unit(Shared);

#[zbus::interface(name = "org.freedesktop.systemd1.Unit")]
impl Unit {
    #[zbus(property, name = "ActiveState")]
    fn active_state(&self) -> String {
        self.0.lock().unwrap().active_state.clone()
    }
    #[zbus(property, name = "SubState")]
    fn sub_state(&self) -> String {
        self.0.lock().unwrap().sub_state.clone()
    }
    #[zbus(property, name = "ActiveEnterTimestamp")]
    fn active_enter_timestamp(&self) -> u64 {
        self.0.lock().unwrap().active_enter_timestamp
    }
}

struct Service(Shared);

#[zbus::interface(name = "org.freedesktop.systemd1.Service")]
impl Service {
    #[zbus(property, name = "Result")]
    fn result(&self) -> String {
        self.0.lock().unwrap().result.clone()
    }
    #[zbus(property, name = "NRestarts")]
    fn n_restarts(&self) -> u32 {
        self.0.lock().unwrap().n_restarts
    }
    #[zbus(property, name = "ExecMainCode")]
    fn exec_main_code(&self) -> i32 {
        self.0.lock().unwrap().exec_main_code
    }
    #[zbus(property, name = "ExecMainStatus")]
    fn exec_main_status(&self) -> i32 {
        self.0.lock().unwrap().exec_main_status
    }
}

/// `busctl get-property` on the stand-in: its answer, e.g. `u 6`.
fn busctl(address: &str, iface: &str, prop: &str) -> String {
    let out = Command::new("busctl")
        .args([
            &format!("--address={address}"),
            "get-property",
            "org.freedesktop.systemd1",
            UNIT_PATH,
            iface,
            prop,
        ])
        .output()
        .expect("busctl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `s "failed"` → `failed`; `u 6` → `6`.
fn value(busctl: &str) -> String {
    let v = busctl.split_once(' ').map_or(busctl, |(_, v)| v);
    v.trim_matches('"').to_string()
}

fn unit(addr: std::net::SocketAddr) -> Value {
    get_json(addr, "/status/service")["service"].clone()
}

#[test]
fn the_unit_over_a_real_session_bus() {
    let tools = ["dbus-daemon", "busctl"];
    if tools
        .iter()
        .any(|t| Command::new(t).arg("--version").output().is_err())
    {
        return missing_part("dbus-daemon and busctl (apt-get install dbus systemd)");
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("bus");
    let address = format!("unix:path={}", socket.display());
    let mut bus = ChildGuard::spawn(
        Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile"])
            .arg(format!("--address={address}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    )
    .unwrap();
    wait_for(Duration::from_secs(10), "the bus socket", || {
        socket.exists().then_some(())
    });
    let facts: Shared = Arc::new(Mutex::new(UnitFacts {
        active_state: "failed".into(),
        sub_state: "failed".into(),
        result: "exit-code".into(),
        n_restarts: 6,
        exec_main_code: 1,
        exec_main_status: 1,
        active_enter_timestamp: 1_767_225_600_000_000,
    }));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _conn = rt.block_on(async {
        zbus::connection::Builder::address(address.as_str())
            .unwrap()
            .name("org.freedesktop.systemd1")
            .unwrap()
            .serve_at("/org/freedesktop/systemd1", Manager)
            .unwrap()
            .serve_at(UNIT_PATH, Unit(facts.clone()))
            .unwrap()
            .serve_at(UNIT_PATH, Service(facts.clone()))
            .unwrap()
            .build()
            .await
            .unwrap()
    });
    // Nothing listens on pynchy's port: down, with the unit's words.
    let cfg = format!(
        "[pynchy]\nroot = \".\"\nurl = \"http://127.0.0.1:{}\"\nsystemd_bus = \"{address}\"\n\
         [gateway]\nmode = \"none\"\n[sections.service]\ninterval = \"300ms\"\n",
        free_port()
    );
    let run = start_in(dir.path(), &cfg, vec![]);
    let s = wait_for(Duration::from_secs(10), "the unit", || {
        let s = unit(run.addr);
        s["unit"].is_object().then_some(s)
    });
    let u = &s["unit"];
    let sd = "org.freedesktop.systemd1.Service";
    let un = "org.freedesktop.systemd1.Unit";
    assert_eq!(
        u["active_state"],
        json!(value(&busctl(&address, un, "ActiveState")))
    );
    assert_eq!(
        u["sub_state"],
        json!(value(&busctl(&address, un, "SubState")))
    );
    assert_eq!(u["result"], json!(value(&busctl(&address, sd, "Result"))));
    assert_eq!(
        u["n_restarts"].to_string(),
        value(&busctl(&address, sd, "NRestarts"))
    );
    assert_eq!(
        u["exec_main"],
        json!(format!(
            "exit code {}",
            value(&busctl(&address, sd, "ExecMainStatus"))
        ))
    );
    let enter: i64 = value(&busctl(&address, un, "ActiveEnterTimestamp"))
        .parse()
        .unwrap();
    assert_eq!(
        u["active_enter_at"],
        json!(chrono::DateTime::from_timestamp_micros(enter)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    );
    let d = get_json(run.addr, "/status");
    assert!(
        has_reason(
            &d,
            "pynchy.service failed, last exit: exit code 1, 6 restarts"
        ),
        "{:?}",
        reasons(&d)
    );
    // The unit changes: it follows.
    {
        let mut f = facts.lock().unwrap();
        f.active_state = "activating".into();
        f.sub_state = "auto-restart".into();
        f.n_restarts = 7;
    }
    wait_for(Duration::from_secs(10), "the new state", || {
        let u = unit(run.addr)["unit"].clone();
        (u["sub_state"] == "auto-restart" && u["n_restarts"] == 7).then_some(())
    });
    // The bus goes away: no unit, said in unit_error; the section keeps going.
    let _ = bus.kill();
    let _ = bus.wait();
    let s = wait_for(Duration::from_secs(10), "the bus gone", || {
        let s = unit(run.addr);
        (s["unit"].is_null() && s["unit_error"].is_string()).then_some(s)
    });
    assert_eq!(s["status"], "down");
    drop(run);
    drop(rt);
}
