//! pynchy's systemd user unit (`pynchy.service`), read over D-Bus with zbus:
//! the manager's `GetUnit`, then the unit's `ActiveState`, `SubState`,
//! `ActiveEnterTimestamp` and the service's `Result`, `NRestarts`,
//! `ExecMainCode`, `ExecMainStatus`. No `systemctl` subprocess. Without a
//! reachable bus (pynchy-status runs as another user, or no systemd) the
//! caller carries on without it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use zbus::zvariant::OwnedObjectPath;

const DEST: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const UNIT: &str = "org.freedesktop.systemd1.Unit";
const SERVICE: &str = "org.freedesktop.systemd1.Service";

/// A unit's state as systemd tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitState {
    /// `active`, `activating`, `deactivating`, `inactive`, `failed`, `reloading`.
    pub active_state: String,
    /// `running`, `auto-restart`, `dead`, `failed`, `start-pre`, …
    pub sub_state: String,
    /// The service's `Result`: `success`, `exit-code`, `signal`, `core-dump`, `timeout`, …
    pub result: String,
    /// Restarts systemd made (`Restart=always`) since the unit was last started by hand.
    pub n_restarts: u32,
    /// How the main process last ended: `exited`, `killed`, `dumped` (from `ExecMainCode`).
    pub exec_main_code: Option<&'static str>,
    /// Its exit code, or the signal that ended it.
    pub exec_main_status: i32,
    /// When the unit last entered `active`.
    pub active_enter_at: Option<DateTime<Utc>>,
}

impl UnitState {
    /// systemctl's words for how the main process ended: "exit code 1",
    /// "signal 9", or nothing while it has not ended.
    pub fn ended(&self) -> Option<String> {
        match self.exec_main_code {
            Some("exited") => Some(format!("exit code {}", self.exec_main_status)),
            Some("killed") | Some("dumped") => Some(format!("signal {}", self.exec_main_status)),
            _ => None,
        }
    }
}

/// Why the unit could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SystemdError {
    #[error("systemd bus unreachable: {0}")]
    Bus(String),
    #[error("unit {0} not loaded")]
    NoUnit(String),
    #[error("systemd answered: {0}")]
    Call(String),
}

/// A connection to the user manager's bus, made on first use.
pub async fn connect(address: &str, timeout: Duration) -> Result<zbus::Connection, SystemdError> {
    let build = async {
        zbus::connection::Builder::address(address)
            .map_err(|e| SystemdError::Bus(e.to_string()))?
            .build()
            .await
            .map_err(|e| SystemdError::Bus(e.to_string()))
    };
    tokio::time::timeout(timeout, build)
        .await
        .map_err(|_| SystemdError::Bus("no answer".into()))?
}

async fn proxy<'a>(
    conn: &zbus::Connection,
    path: OwnedObjectPath,
    iface: &'static str,
) -> Result<zbus::Proxy<'a>, SystemdError> {
    zbus::proxy::Builder::new(conn)
        .destination(DEST)
        .and_then(|b| b.path(path))
        .and_then(|b| b.interface(iface))
        .map(|b| b.cache_properties(zbus::proxy::CacheProperties::No))
        .map_err(|e| SystemdError::Call(e.to_string()))?
        .build()
        .await
        .map_err(|e| SystemdError::Call(e.to_string()))
}

fn call_error(e: zbus::Error) -> SystemdError {
    match e {
        zbus::Error::InputOutput(io) => SystemdError::Bus(io.to_string()),
        other => SystemdError::Call(other.to_string()),
    }
}

/// Reads `unit`'s state, giving up after `timeout`.
pub async fn unit_state(
    conn: &zbus::Connection,
    unit: &str,
    timeout: Duration,
) -> Result<UnitState, SystemdError> {
    tokio::time::timeout(timeout, read(conn, unit))
        .await
        .map_err(|_| SystemdError::Bus("no answer".into()))?
}

async fn read(conn: &zbus::Connection, unit: &str) -> Result<UnitState, SystemdError> {
    let manager_path =
        OwnedObjectPath::try_from(MANAGER_PATH).map_err(|e| SystemdError::Call(e.to_string()))?;
    let manager = proxy(conn, manager_path, MANAGER).await?;
    let path: OwnedObjectPath = match manager.call("GetUnit", &(unit,)).await {
        Ok(p) => p,
        Err(zbus::Error::MethodError(name, _, _))
            if name.as_str() == "org.freedesktop.systemd1.NoSuchUnit" =>
        {
            return Err(SystemdError::NoUnit(unit.to_string()))
        }
        Err(e) => return Err(call_error(e)),
    };
    let u = proxy(conn, path.clone(), UNIT).await?;
    let s = proxy(conn, path, SERVICE).await?;
    let active_state: String = u.get_property("ActiveState").await.map_err(call_error)?;
    let sub_state: String = u.get_property("SubState").await.map_err(call_error)?;
    let enter: u64 = u
        .get_property("ActiveEnterTimestamp")
        .await
        .map_err(call_error)?;
    let result: String = s.get_property("Result").await.map_err(call_error)?;
    let n_restarts: u32 = s.get_property("NRestarts").await.map_err(call_error)?;
    let code: i32 = s.get_property("ExecMainCode").await.map_err(call_error)?;
    let exec_main_status: i32 = s.get_property("ExecMainStatus").await.map_err(call_error)?;
    Ok(UnitState {
        active_state,
        sub_state,
        result,
        n_restarts,
        // siginfo's si_code: CLD_EXITED 1, CLD_KILLED 2, CLD_DUMPED 3.
        exec_main_code: match code {
            1 => Some("exited"),
            2 => Some("killed"),
            3 => Some("dumped"),
            _ => None,
        },
        exec_main_status,
        active_enter_at: (enter > 0)
            .then(|| i64::try_from(enter).ok())
            .flatten()
            .and_then(DateTime::from_timestamp_micros),
    })
}
