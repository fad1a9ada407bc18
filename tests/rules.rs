//! A table test of every rollup rule: each rule's firing and non-firing case,
//! its reason text and default level, and a severity override (to `down`, and
//! to `ignore`). The bodies are the sections' own typed bodies; the verdict is
//! the rollup's, as `/status` serves it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use pynchy_status::config::{RollupConfig, Severity};
use pynchy_status::rollup::{compute, Level};
use pynchy_status::sections::channels::{self, ChannelsBody};
use pynchy_status::sections::gateway::{GatewayBody, LitellmBody};
use pynchy_status::sections::host_jobs::{HostJobBody, HostJobsBody};
use pynchy_status::sections::llm::LlmBody;
use pynchy_status::sections::mcp::{McpBody, McpContainerBody};
use pynchy_status::sections::messages::MessagesBody;
use pynchy_status::sections::queue::{
    self, ContainerBody, ContainerKind, DockerView, GroupBody, QueueBody,
};
use pynchy_status::sections::repos::{RepoBody, ReposBody, WorktreeBody};
use pynchy_status::sections::service::{self, ProcessView, ServiceBody, ServiceStatus, UnitBody};
use pynchy_status::sections::tasks::{TaskBody, TasksBody};
use pynchy_status::sections::{CollectError, ErrorKind};
use pynchy_status::sources::push::ChannelState;
use pynchy_status::testing::{fresh, SectionRecord};
use pynchy_status::SectionId;

fn service_body(status: ServiceStatus) -> ServiceBody {
    ServiceBody {
        status,
        started_at: None,
        uptime_seconds: None,
        source: service::Source::Observed,
        port: 8484,
        process: ProcessView::Readable,
        pid: Some(4242),
        last_answer_at: None,
        unresponsive_since: None,
        probe_error: None,
        restarts_last_10m: 0,
        deploys_last_10m: 0,
        last_exit_at: None,
        deploy_at: None,
        unit: None,
        unit_error: None,
    }
}

/// An `llm` body from its JSON: `groups` as (name, requests, failures) over
/// the recent window, and `budgets` as (kind, name, spend, limit).
fn llm(groups: &[(&str, u64, u64)], budgets: &[(&str, &str, f64, f64)]) -> SectionRecord {
    let counts = |r: u64, f: u64| {
        serde_json::json!({"requests_recent": r, "failures_recent": f, "requests_1h": r, "failures_1h": f,
            "failure_rate_1h": null, "requests_24h": r, "failures_24h": f, "failure_rate_24h": null,
            "last_failure_at": null, "p50_ms_1h": null, "p95_ms_1h": null, "spend_24h": 0.0})
    };
    let (mut r, mut f) = (0, 0);
    let named: Vec<serde_json::Value> = groups
        .iter()
        .map(|(n, req, fail)| {
            r += req;
            f += fail;
            let mut c = counts(*req, *fail);
            c["name"] = serde_json::json!(n);
            c["top_errors"] =
                serde_json::json!([{"class": "RateLimitError", "failures_24h": fail}]);
            c
        })
        .collect();
    let budgets: Vec<serde_json::Value> = budgets
        .iter()
        .map(|(kind, name, spend, limit)| {
            serde_json::json!({"kind": kind, "name": name, "spend": spend, "limit": limit,
                "used": spend / limit, "period": "30d", "resets_at": null, "resets_with_proxy": false,
                "approximate": *kind == "deployment"})
        })
        .collect();
    let body: LlmBody = serde_json::from_value(serde_json::json!({
        "state": "tracking", "note": null, "as_of": null, "recent_window_seconds": 900,
        "window": null, "totals": counts(r, f), "model_groups": named, "providers": [],
        "errors": [], "cooldowns": [], "cooldown_time_seconds": null, "spend": null,
        "budgets": budgets, "budgets_checked_at": null, "read_errors": [],
        "thresholds": {"failure_rate": 0.5, "min_requests": 10, "all_failing_min": 5, "budget_warn": 0.9}
    }))
    .unwrap();
    fresh(SectionId::Llm, body)
}

fn service(status: ServiceStatus) -> SectionRecord {
    fresh(SectionId::Service, service_body(status))
}

fn service_with(status: ServiceStatus, f: impl FnOnce(&mut ServiceBody)) -> SectionRecord {
    let mut b = service_body(status);
    f(&mut b);
    fresh(SectionId::Service, b)
}

/// pynchy.service as systemd says it after six failed starts.
fn failed_unit() -> UnitBody {
    UnitBody {
        name: "pynchy.service".into(),
        active_state: "failed".into(),
        sub_state: "failed".into(),
        result: "exit-code".into(),
        n_restarts: 6,
        exec_main: Some("exit code 1".into()),
        active_enter_at: None,
    }
}

fn channels(slack: bool) -> SectionRecord {
    let mut m = BTreeMap::new();
    m.insert("whatsapp".to_string(), ChannelState { connected: true });
    m.insert("slack".to_string(), ChannelState { connected: slack });
    fresh(
        SectionId::Channels,
        ChannelsBody {
            connected: Some(true),
            source: channels::Source::Pushed,
            channels: m,
            checked_at: None,
            error: None,
        },
    )
}

/// pynchy's `/health` said `channels_connected: any`.
fn channels_observed(any: Option<bool>) -> SectionRecord {
    fresh(
        SectionId::Channels,
        ChannelsBody {
            connected: any,
            source: channels::Source::Observed,
            channels: BTreeMap::new(),
            checked_at: None,
            error: any
                .is_none()
                .then(|| "GET /health: connection refused".into()),
        },
    )
}

fn litellm(f: impl FnOnce(&mut LitellmBody)) -> SectionRecord {
    let mut b = LitellmBody {
        mode: pynchy_status::config::GatewayMode::Litellm,
        litellm_container: "running".into(),
        postgres_container: "running".into(),
        healthy_models: Some(2),
        unhealthy_models: Some(0),
        unhealthy: Some(vec![]),
        unhealthy_names: None,
        docker: DockerView::Ok,
        proxy: pynchy_status::sections::gateway::ProxyState::Ready,
        models_error: None,
        models_checked_at: None,
    };
    f(&mut b);
    fresh(SectionId::Gateway, GatewayBody::Litellm(Box::new(b)))
}

/// One MCP container in `state` that restarted `restarts` times this hour.
fn mcp(state: &str, restarts: u64) -> SectionRecord {
    let c = McpContainerBody {
        state: state.into(),
        started_at: None,
        restart_count: restarts,
        restarts_last_hour: restarts,
        health: None,
    };
    fresh(
        SectionId::Mcp,
        McpBody(std::collections::BTreeMap::from([(
            "pynchy-mcp-gdrive".to_string(),
            c,
        )])),
    )
}

fn queue(active: u64, waiting: u64) -> SectionRecord {
    fresh(
        SectionId::Queue,
        QueueBody {
            active_containers: Some(active),
            max_concurrent: 2,
            groups_waiting: Some(waiting),
            source: queue::Source::Pushed,
            docker: DockerView::Ok,
            per_group: BTreeMap::new(),
            overrun_after_seconds: 2100,
        },
    )
}

/// One task container of group `ops` that started `minutes` ago.
fn agent_running(minutes: i64) -> SectionRecord {
    let started = chrono::Utc::now() - chrono::Duration::minutes(minutes);
    let c = ContainerBody {
        name: "pynchy-ops-1767225600000".into(),
        kind: ContainerKind::Task,
        state: "running".into(),
        started_at: Some(started.to_rfc3339()),
    };
    let g = GroupBody {
        active: true,
        is_task: true,
        containers: vec![c],
        ..GroupBody::default()
    };
    fresh(
        SectionId::Queue,
        QueueBody {
            active_containers: Some(1),
            max_concurrent: 10,
            groups_waiting: None,
            source: queue::Source::Observed,
            docker: DockerView::Ok,
            per_group: BTreeMap::from([("ops".to_string(), g)]),
            overrun_after_seconds: 2100,
        },
    )
}

fn repos(conflict: bool) -> SectionRecord {
    let wt = WorktreeBody {
        sha: None,
        dirty: Some(false),
        ahead: Some(0),
        behind: Some(0),
        conflict: Some(conflict),
        branch: None,
        error: None,
    };
    let repo = RepoBody {
        head_sha: None,
        dirty: Some(false),
        unpushed_commits: None,
        worktrees: [("merge-bot".to_string(), wt)].into_iter().collect(),
        error: None,
        cloned: true,
    };
    let mut m = IndexMap::new();
    m.insert("crypdick/pynchy".to_string(), repo);
    fresh(SectionId::Repos, ReposBody(m))
}

fn messages(pending: i64) -> SectionRecord {
    fresh(
        SectionId::Messages,
        MessagesBody {
            total_inbound: 1,
            total_outbound: 1,
            last_received_at: None,
            last_sent_at: None,
            pending_deliveries: pending,
            hourly: Default::default(),
        },
    )
}

fn task_body(id: &str, overdue: bool, schedule_error: Option<&str>) -> TaskBody {
    TaskBody {
        id: Some(id.into()),
        group: None,
        schedule_type: None,
        schedule_value: None,
        status: Some("active".into()),
        next_run: None,
        last_run: None,
        last_result: None,
        last_result_cut: false,
        overdue,
        schedule_error: schedule_error.map(str::to_string),
        last_run_status: None,
        failures_24h: 0,
        consecutive_failures: 0,
        recent_statuses: vec![],
    }
}

fn task(overdue: bool, schedule_error: Option<&str>) -> SectionRecord {
    fresh(
        SectionId::Tasks,
        TasksBody::new(vec![task_body("t1", overdue, schedule_error)]),
    )
}

/// Task t1 with `status` whose newest `failed` runs failed in a row.
fn failing(status: &str, failed: u64) -> SectionRecord {
    let mut t = task_body("t1", false, None);
    t.status = Some(status.into());
    t.consecutive_failures = failed;
    t.last_run_status = Some(if failed > 0 { "error" } else { "success" }.into());
    fresh(SectionId::Tasks, TasksBody::new(vec![t]))
}

fn host_job(overdue: bool) -> SectionRecord {
    fresh(
        SectionId::HostJobs,
        HostJobsBody(vec![HostJobBody {
            id: Some("j1".into()),
            name: Some("backup-db".into()),
            schedule_type: None,
            schedule_value: None,
            status: Some("active".into()),
            enabled: true,
            next_run: None,
            last_run: None,
            overdue,
            schedule_error: None,
        }]),
    )
}

fn failed(id: SectionId, kind: ErrorKind) -> SectionRecord {
    let mut s = messages(0);
    s.id = id;
    s.error = Some(CollectError {
        message: "boom".into(),
        kind,
    });
    s
}

fn stale(collected_ago: Option<Duration>) -> SectionRecord {
    let mut s = messages(0);
    s.collected = collected_ago.map(|ago| pynchy_status::Stamp {
        at: chrono::Utc::now() - chrono::Duration::from_std(ago).unwrap(),
        instant: Instant::now() - ago,
    });
    s
}

struct Case {
    rule: &'static str,
    fires: SectionRecord,
    quiet: SectionRecord,
    section: &'static str,
    reason: &'static str,
    level: Level,
}

fn case(
    rule: &'static str,
    fires: SectionRecord,
    quiet: SectionRecord,
    reason: &'static str,
    level: Level,
) -> Case {
    let section = fires.id.name();
    Case {
        rule,
        fires,
        quiet,
        section,
        reason,
        level,
    }
}

fn cases() -> Vec<Case> {
    use Level::{Degraded, Down};
    vec![
        case(
            "service_shutting_down",
            service(ServiceStatus::ShuttingDown),
            service(ServiceStatus::Ok),
            "pynchy is shutting down",
            Down,
        ),
        case(
            "service_down",
            service_with(ServiceStatus::Down, |b| {
                b.process = ProcessView::None;
                b.pid = None;
                b.unit = Some(failed_unit());
            }),
            service(ServiceStatus::Ok),
            "pynchy is not running: nothing listens on port 8484; pynchy.service failed, last exit: exit code 1, 6 restarts",
            Down,
        ),
        case(
            "service_unresponsive",
            service_with(ServiceStatus::Unresponsive, |b| {
                b.unresponsive_since = Some("2026-12-02T10:00:00Z".into());
            }),
            service(ServiceStatus::Ok),
            "pynchy holds port 8484 but does not answer (since 2026-12-02T10:00:00Z)",
            Degraded,
        ),
        case(
            "service_restarting",
            service_with(ServiceStatus::Restarting, |b| {
                b.deploy_at = Some("2026-12-02T10:00:00.123456+00:00".into());
            }),
            service(ServiceStatus::Ok),
            "pynchy is restarting after a deploy (deploy at 2026-12-02T10:00:00.123456+00:00)",
            Degraded,
        ),
        case(
            "service_starting",
            service(ServiceStatus::Starting),
            service(ServiceStatus::Ok),
            "pynchy is starting (pid 4242): port 8484 is not open yet",
            Degraded,
        ),
        case(
            "service_crash_loop",
            service_with(ServiceStatus::Ok, |b| {
                b.restarts_last_10m = 7;
                b.deploys_last_10m = 1;
            }),
            service_with(ServiceStatus::Ok, |b| {
                b.restarts_last_10m = 3;
                b.deploys_last_10m = 1;
            }),
            "pynchy restarted 6 times in the last 10 min",
            Degraded,
        ),
        case(
            "channel_disconnected",
            channels(false),
            channels(true),
            "channel slack disconnected",
            Degraded,
        ),
        case(
            "channel_disconnected",
            channels_observed(Some(false)),
            channels_observed(None),
            "no chat channel connected (pynchy's /health)",
            Degraded,
        ),
        case(
            "agent_overrun",
            agent_running(40),
            agent_running(30),
            "agent container pynchy-ops-1767225600000 (a task of ops) has run for 40 min, past pynchy's timeout",
            Degraded,
        ),
        case(
            "litellm_not_running",
            litellm(|b| b.litellm_container = "exited".into()),
            litellm(|_| {}),
            "LiteLLM container is exited",
            Down,
        ),
        case(
            "postgres_not_running",
            litellm(|b| b.postgres_container = "not_found".into()),
            litellm(|_| {}),
            "Postgres container is not found",
            Degraded,
        ),
        case(
            "docker_unreachable",
            litellm(|b| {
                b.docker = DockerView::Unreachable;
                b.litellm_container = "unreachable".into();
                b.postgres_container = "unreachable".into();
            }),
            litellm(|_| {}),
            "Docker daemon unreachable: container states unknown",
            Degraded,
        ),
        case(
            "gateway_not_ready",
            litellm(|b| b.proxy = pynchy_status::sections::gateway::ProxyState::NotReady),
            litellm(|_| {}),
            "LiteLLM proxy is not ready",
            Degraded,
        ),
        case(
            "llm_failure_rate",
            llm(&[("sonnet", 10, 5), ("opus", 40, 0)], &[]),
            // A single failure, and 9 of 9 below the minimum count, page no one.
            llm(&[("sonnet", 1, 1), ("opus", 9, 4), ("haiku", 10, 4)], &[]),
            "model group sonnet: 5 of 10 requests failed in the last 15m; most: RateLimitError",
            Degraded,
        ),
        case(
            "llm_all_failing",
            llm(&[("sonnet", 3, 3), ("opus", 2, 2)], &[]),
            // Four of four: under all_failing_min.
            llm(&[("sonnet", 4, 4)], &[]),
            "every LLM request failed in the last 15m: 5 of 5",
            Down,
        ),
        case(
            "llm_budget_near",
            llm(&[], &[("key", "agents", 91.0, 100.0)]),
            llm(&[], &[("key", "agents", 89.0, 100.0)]),
            "key budget agents is 91% used: $91.00 of $100.00",
            Degraded,
        ),
        case(
            "llm_budget_exhausted",
            llm(&[], &[("provider", "anthropic", 100.0, 100.0)]),
            llm(&[], &[("provider", "anthropic", 10.0, 100.0)]),
            "provider budget anthropic is spent: $100.00 of $100.00",
            Down,
        ),
        case(
            "model_unhealthy",
            litellm(|b| {
                b.unhealthy_models = Some(1);
                b.unhealthy = Some(vec!["openai/bad".into()]);
            }),
            litellm(|_| {}),
            "model openai/bad unhealthy",
            Degraded,
        ),
        case(
            "queue_saturated",
            queue(2, 1),
            queue(2, 0),
            "queue at max_concurrent (2) with 1 groups waiting",
            Degraded,
        ),
        case(
            "mcp_restarting",
            mcp("restarting", 0),
            mcp("exited", 3),
            "MCP container pynchy-mcp-gdrive is restarting",
            Degraded,
        ),
        case(
            "worktree_conflict",
            repos(true),
            repos(false),
            "worktree merge-bot of crypdick/pynchy in conflict",
            Degraded,
        ),
        case(
            "pending_deliveries",
            messages(11),
            messages(10),
            "11 pending deliveries (more than 10)",
            Degraded,
        ),
        case(
            "task_overdue",
            task(true, None),
            task(false, None),
            "task t1 overdue",
            Degraded,
        ),
        case(
            "task_failing",
            failing("active", 3),
            failing("active", 2),
            "task t1: its last 3 runs failed",
            Degraded,
        ),
        case(
            "host_job_overdue",
            host_job(true),
            host_job(false),
            "host job backup-db overdue",
            Degraded,
        ),
        case(
            "schedule_invalid",
            task(false, Some("unknown schedule_type `weekly`")),
            task(false, None),
            "task t1: unknown schedule_type `weekly`",
            Degraded,
        ),
        case(
            "section_error",
            failed(SectionId::Deploy, ErrorKind::Failed),
            messages(0),
            "last collection failed: boom",
            Degraded,
        ),
        case(
            "database_unreadable",
            failed(SectionId::Tasks, ErrorKind::Unreadable),
            messages(0),
            "database cannot be read: boom",
            Down,
        ),
        case(
            "section_stale",
            stale(Some(Duration::from_secs(3600))),
            stale(Some(Duration::ZERO)),
            "stale: last good data is 3600 s old",
            Degraded,
        ),
    ]
}

fn verdict(s: &SectionRecord, cfg: &RollupConfig) -> (Level, Vec<(String, String, Level)>) {
    let r = compute(std::slice::from_ref(s), cfg, Instant::now());
    let reasons = r
        .reasons
        .into_iter()
        .map(|r| (r.section, r.reason, r.level))
        .collect();
    (r.status, reasons)
}

#[test]
fn every_rule_fires_says_why_and_obeys_its_severity() {
    let default = RollupConfig::default();
    for c in cases() {
        let (status, reasons) = verdict(&c.fires, &default);
        assert_eq!(status, c.level, "{}: verdict", c.rule);
        assert!(
            reasons.contains(&(c.section.to_string(), c.reason.to_string(), c.level)),
            "{}: expected reason {:?} in {reasons:?}",
            c.rule,
            c.reason
        );
        let (status, reasons) = verdict(&c.quiet, &default);
        assert_eq!(
            (status, reasons),
            (Level::Ok, vec![]),
            "{}: quiet case",
            c.rule
        );

        for (severity, expect) in [
            (Severity::Down, Some(Level::Down)),
            (Severity::Degraded, Some(Level::Degraded)),
            (Severity::Ignore, None),
        ] {
            let mut cfg = default.clone();
            cfg.severity.insert(c.rule.to_string(), severity);
            let (status, reasons) = verdict(&c.fires, &cfg);
            let ours = reasons.iter().find(|(_, r, _)| r == c.reason);
            assert_eq!(ours.map(|(_, _, l)| *l), expect, "{}: {severity:?}", c.rule);
            assert_eq!(
                status,
                expect.unwrap_or(Level::Ok),
                "{}: {severity:?}",
                c.rule
            );
        }
    }
}

#[test]
fn task_failing_follows_its_run_count_and_spares_tasks_that_no_longer_run() {
    let default = RollupConfig::default();
    // A paused or finished task's old failures are not a reason.
    for status in ["paused", "completed"] {
        assert_eq!(verdict(&failing(status, 5), &default), (Level::Ok, vec![]));
    }
    let (_, reasons) = verdict(&failing("active", 20), &default);
    assert_eq!(reasons[0].1, "task t1: its last 20 (or more) runs failed");
    let cfg = RollupConfig {
        task_failing_runs: 1,
        ..default
    };
    assert_eq!(verdict(&failing("active", 1), &cfg).0, Level::Degraded);
}

#[test]
fn the_table_covers_every_rule() {
    let tested: BTreeSet<&str> = cases().iter().map(|c| c.rule).collect();
    let all: BTreeSet<&str> = pynchy_status::app::all_rules()
        .iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(tested, all);
}

#[test]
fn never_collected_is_stale_with_no_data() {
    let (status, reasons) = verdict(&stale(None), &RollupConfig::default());
    assert_eq!(status, Level::Degraded);
    assert_eq!(
        reasons,
        vec![(
            "messages".to_string(),
            "stale: no data collected yet".to_string(),
            Level::Degraded
        )]
    );
}

#[test]
fn one_section_says_at_most_twenty_reasons_and_folds_the_rest() {
    let tasks: Vec<TaskBody> = (0..30)
        .map(|i| task_body(&format!("t{i:02}"), true, None))
        .collect();
    let s = fresh(SectionId::Tasks, TasksBody::new(tasks));
    let (level, reasons) = verdict(&s, &RollupConfig::default());
    assert_eq!(level, Level::Degraded);
    assert_eq!(reasons.len(), 21, "{reasons:?}");
    assert!(reasons[0].1.contains("t00"), "{reasons:?}");
    assert_eq!(
        reasons[20],
        (
            "tasks".into(),
            "and 10 more reasons".into(),
            Level::Degraded
        )
    );
    // The fold keeps the worst level of what it folds.
    let mut cfg = RollupConfig::default();
    cfg.severity.insert("task_overdue".into(), Severity::Down);
    assert_eq!(verdict(&s, &cfg).0, Level::Down);
}

#[test]
fn many_unhealthy_models_make_one_reason() {
    let names: Vec<String> = (0..50).map(|i| format!("m{i:02}")).collect();
    let s = litellm(|b| {
        b.unhealthy_models = Some(7000);
        b.unhealthy = Some(names);
        b.unhealthy_names = Some(6000);
    });
    let (_, reasons) = verdict(&s, &RollupConfig::default());
    assert_eq!(
        reasons,
        vec![(
            "gateway".to_string(),
            "6000 models unhealthy: m00, m01, m02 and 5997 more".to_string(),
            Level::Degraded
        )]
    );
}

#[test]
fn an_mcp_container_restarting_often_is_a_reason_past_the_threshold() {
    let cfg = RollupConfig::default();
    assert_eq!(verdict(&mcp("running", 3), &cfg).0, Level::Ok);
    let (level, reasons) = verdict(&mcp("running", 4), &cfg);
    assert_eq!(level, Level::Degraded);
    assert_eq!(
        reasons[0].1,
        "MCP container pynchy-mcp-gdrive restarted 4 times in the last hour"
    );
}

#[test]
fn a_deployments_approximated_spend_is_never_an_outage() {
    let (status, reasons) = verdict(
        &llm(&[], &[("deployment", "sonnet (d1)", 120.0, 100.0)]),
        &RollupConfig::default(),
    );
    assert_eq!(status, Level::Degraded);
    assert_eq!(
        reasons,
        [(
            "llm".to_string(),
            "deployment budget sonnet (d1) is about 120% used: $120.00 of $100.00".to_string(),
            Level::Degraded
        )]
    );
}
