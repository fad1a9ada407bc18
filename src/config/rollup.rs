//! `[rollup]`: the rules' thresholds and severities, `/health`'s status codes.

use super::*;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRollup {
    pub(super) pending_deliveries_max: Option<u64>,
    pub(super) mcp_restarts_max: Option<u64>,
    pub(super) service_restarts_max: Option<u64>,
    pub(super) task_failing_runs: Option<u64>,
    pub(super) ok_http_status: Option<u16>,
    pub(super) degraded_http_status: Option<u16>,
    pub(super) down_http_status: Option<u16>,
    #[serde(default)]
    pub(super) severity: BTreeMap<String, Severity>,
}

/// `[rollup]`: thresholds, rule severities, `/health`'s status codes.
#[derive(Debug, Clone, PartialEq)]
pub struct RollupConfig {
    pub pending_deliveries_max: u64,
    /// `mcp_restarting` fires past this many restarts in an hour.
    pub mcp_restarts_max: u64,
    /// pynchy restarts (not deploys) within 10 minutes before `service_crash_loop`.
    pub service_restarts_max: u64,
    /// `task_failing` fires when this many of a task's last runs all failed (1 to 20).
    pub task_failing_runs: u64,
    /// Severity overrides by rule name (checked against the rules when the
    /// daemon is built).
    pub severity: BTreeMap<String, Severity>,
    pub ok_http_status: u16,
    pub degraded_http_status: u16,
    pub down_http_status: u16,
}

impl Default for RollupConfig {
    fn default() -> Self {
        RollupConfig {
            pending_deliveries_max: defaults::PENDING_DELIVERIES_MAX,
            mcp_restarts_max: defaults::MCP_RESTARTS_MAX,
            service_restarts_max: defaults::SERVICE_RESTARTS_MAX,
            task_failing_runs: defaults::TASK_FAILING_RUNS,
            severity: BTreeMap::new(),
            ok_http_status: defaults::OK_HTTP_STATUS,
            degraded_http_status: defaults::DEGRADED_HTTP_STATUS,
            down_http_status: defaults::DOWN_HTTP_STATUS,
        }
    }
}

pub(super) fn build(raw: RawRollup) -> Result<RollupConfig, ConfigError> {
    for (key, code) in [
        ("ok_http_status", raw.ok_http_status),
        ("degraded_http_status", raw.degraded_http_status),
        ("down_http_status", raw.down_http_status),
    ] {
        if code.is_some_and(|c| !(200..=599).contains(&c)) {
            return Err(invalid(
                format!("rollup.{key}"),
                "must be an HTTP status from 200 to 599",
            ));
        }
    }
    if raw
        .task_failing_runs
        .is_some_and(|n| !(1..=20).contains(&n))
    {
        return Err(invalid(
            "rollup.task_failing_runs",
            "must be from 1 to 20 (a task's page holds its last 20 runs)",
        ));
    }
    let d = RollupConfig::default();
    Ok(RollupConfig {
        pending_deliveries_max: raw
            .pending_deliveries_max
            .unwrap_or(d.pending_deliveries_max),
        mcp_restarts_max: raw.mcp_restarts_max.unwrap_or(d.mcp_restarts_max),
        service_restarts_max: raw.service_restarts_max.unwrap_or(d.service_restarts_max),
        task_failing_runs: raw.task_failing_runs.unwrap_or(d.task_failing_runs),
        severity: raw.severity,
        ok_http_status: raw.ok_http_status.unwrap_or(d.ok_http_status),
        degraded_http_status: raw.degraded_http_status.unwrap_or(d.degraded_http_status),
        down_http_status: raw.down_http_status.unwrap_or(d.down_http_status),
    })
}
