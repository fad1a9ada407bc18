//! `pynchy-status config`: the effective configuration as TOML, each key
//! followed by where its value came from (like `git config --show-origin`).
//! Secrets are shown as `<set>` or `<unset>`, never their value.

use std::fmt::Write as _;

use super::{secret, size_text, Config, Origin};

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn dur(d: std::time::Duration) -> String {
    quote(&humantime::format_duration(d).to_string())
}

fn set_or_unset(set: bool) -> String {
    quote(if set { "<set>" } else { "<unset>" })
}

struct Out<'a> {
    cfg: &'a Config,
    text: String,
    /// Every `key = value` line: its dotted key, value text and origin.
    entries: Vec<(String, String, Origin)>,
}

impl Out<'_> {
    fn table(&mut self, name: &str) {
        let _ = writeln!(self.text, "\n[{name}]");
    }

    /// `leaf = value  # origin`, the origin looked up under `key`.
    fn line(&mut self, key: &str, value: String) {
        let origin = self
            .cfg
            .origins
            .get(key)
            .cloned()
            .unwrap_or(Origin::Default);
        let leaf = key.rsplit('.').next().unwrap_or(key);
        let _ = writeln!(self.text, "{leaf} = {value}  # {origin}");
        self.entries.push((key.to_string(), value, origin));
    }
}

/// The effective configuration, as TOML with origins.
pub fn render(cfg: &Config) -> String {
    print(cfg).text
}

/// Every key the printout states with its value (TOML text) and origin:
/// with the defaults' config, what `stated_defaults` derives from.
pub(super) fn entries(cfg: &Config) -> Vec<(String, String, Origin)> {
    print(cfg).entries
}

fn print(cfg: &Config) -> Out<'_> {
    let mut o = Out {
        cfg,
        text: String::from(
            "# pynchy-status: the effective configuration; after each key, where it came from\n",
        ),
        entries: Vec::new(),
    };
    o.line("listen", quote(&cfg.listen.to_string()));
    pynchy(&mut o);
    for r in &cfg.repos {
        let _ = writeln!(o.text, "\n[[repos]]  # {}", origin_of(cfg, "repos"));
        let _ = writeln!(o.text, "slug = {}", quote(&r.slug));
        let _ = writeln!(o.text, "path = {}", quote(&r.path.display().to_string()));
        if let Some(w) = &r.worktrees {
            let _ = writeln!(o.text, "worktrees = {}", quote(&w.display().to_string()));
        }
    }
    gateway(&mut o);
    llm(&mut o);
    notify(&mut o);
    o.table("push");
    o.line("push.token_env", quote(&cfg.push.token_env));
    let token = secret(&cfg.push.token_env).is_some();
    let _ = writeln!(o.text, "# token: {}", set_or_unset(token));
    o.line("push.ttl", dur(cfg.push.ttl));
    if let Some(u) = &cfg.push.pull_url {
        o.line("push.pull_url", quote(u));
    }
    o.table("server");
    if let Some(t) = &cfg.server.token_env {
        o.line("server.token_env", quote(t));
        let _ = writeln!(o.text, "# token: {}", set_or_unset(secret(t).is_some()));
    }
    o.line("server.max_streams", cfg.server.max_streams.to_string());
    o.line(
        "server.max_connections",
        cfg.server.max_connections.to_string(),
    );
    o.line("server.workers", cfg.server.workers.to_string());
    rollup(&mut o);
    o.table("limits");
    let l = cfg.limits;
    o.line("limits.gateway_body", quote(&size_text(l.gateway_body)));
    o.line("limits.docker_body", quote(&size_text(l.docker_body)));
    o.line("limits.pull_body", quote(&size_text(l.pull_body)));
    o.table("watch");
    o.line("watch.enabled", cfg.watch.enabled.to_string());
    o
}

fn pynchy(o: &mut Out) {
    o.table("pynchy");
    let p = &o.cfg.pynchy;
    o.line("pynchy.root", quote(&p.root.display().to_string()));
    o.line("pynchy.database", quote(&p.database.display().to_string()));
    o.line("pynchy.timezone", quote(p.timezone.name()));
    o.line("pynchy.overdue_grace", dur(p.overdue_grace));
    o.line("pynchy.poll_interval", dur(p.poll_interval));
    o.line("pynchy.container_timeout", dur(p.container_timeout));
    o.line("pynchy.url", quote(&p.url));
    o.line("pynchy.max_concurrent", p.max_concurrent.to_string());
    o.line("pynchy.unresponsive_grace", dur(p.unresponsive_grace));
    o.line("pynchy.restart_grace", dur(p.restart_grace));
    o.line("pynchy.agent_slack", dur(p.agent_slack));
    o.line("pynchy.systemd_unit", quote(&p.systemd_unit));
    o.line(
        "pynchy.systemd_bus",
        quote(p.systemd_bus.as_deref().unwrap_or("off")),
    );
}

fn origin_of(cfg: &Config, key: &str) -> Origin {
    cfg.origins.get(key).cloned().unwrap_or(Origin::Default)
}

fn gateway(o: &mut Out) {
    let g = &o.cfg.gateway;
    o.table("gateway");
    o.line("gateway.mode", quote(g.mode.as_str()));
    o.line("gateway.url", quote(&g.url));
    o.line("gateway.key_env", quote(&g.key_env));
    let from_env = secret(&g.key_env).is_some();
    let key = if from_env {
        format!("{}  # environment ({})", set_or_unset(true), g.key_env)
    } else {
        let origin = origin_of(o.cfg, "gateway.master_key");
        format!("{}  # {origin}", set_or_unset(g.master_key.0.is_some()))
    };
    let _ = writeln!(o.text, "# master key: {key}");
    o.line("gateway.litellm_container", quote(&g.litellm_container));
    o.line("gateway.postgres_container", quote(&g.postgres_container));
    o.line("gateway.docker_host", quote(&g.docker_host));
    let models = g.models_interval.map_or_else(|| quote("off"), dur);
    o.line("gateway.models_interval", models);
    o.line("gateway.models_min_gap", dur(g.models_min_gap));
    if let Some(ca) = &g.ca_file {
        o.line("gateway.ca_file", quote(&ca.display().to_string()));
    }
}

fn llm(o: &mut Out) {
    let l = &o.cfg.llm;
    o.table("llm");
    o.line("llm.enabled", l.enabled.to_string());
    o.line("llm.failure_rate", l.failure_rate.to_string());
    o.line("llm.min_requests", l.min_requests.to_string());
    o.line("llm.all_failing_min", l.all_failing_min.to_string());
    o.line("llm.rate_window", dur(l.rate_window));
    o.line("llm.budget_warn", l.budget_warn.to_string());
    o.line("llm.late_rows", dur(l.late_rows));
    o.line("llm.write_lag", dur(l.write_lag));
    o.line("llm.page_size", l.page_size.to_string());
    o.line(
        "llm.pages_per_collection",
        l.pages_per_collection.to_string(),
    );
    o.line("llm.budgets_interval", dur(l.budgets_interval));
}

/// Each `[[notify]]` target: the names of the env vars that hold secrets,
/// and whether they are set; never their values.
fn notify(o: &mut Out) {
    for t in &o.cfg.notify {
        let _ = writeln!(o.text, "\n[[notify]]  # {}", origin_of(o.cfg, "notify"));
        let _ = writeln!(o.text, "name = {}", quote(&t.name));
        let _ = writeln!(o.text, "kind = {}", quote(t.kind.as_str()));
        match &t.url {
            crate::config::UrlSource::Given(u) => {
                let _ = writeln!(o.text, "url = {}", quote(u));
            }
            crate::config::UrlSource::Env(e) => {
                let _ = writeln!(
                    o.text,
                    "url_env = {}  # {}",
                    quote(e),
                    set_or_unset(secret(e).is_some())
                );
            }
        }
        if let Some(e) = &t.token_env {
            let _ = writeln!(
                o.text,
                "token_env = {}  # {}",
                quote(e),
                set_or_unset(secret(e).is_some())
            );
        }
        let level = match t.min_level {
            crate::config::MinLevel::Degraded => "degraded",
            crate::config::MinLevel::Down => "down",
        };
        let _ = writeln!(o.text, "min_level = {}", quote(level));
        let list = |v: &[String]| {
            format!(
                "[{}]",
                v.iter().map(|s| quote(s)).collect::<Vec<_>>().join(", ")
            )
        };
        let _ = writeln!(o.text, "sections = {}", list(&t.sections));
        let _ = writeln!(o.text, "rules = {}", list(&t.rules));
        let _ = writeln!(o.text, "resolved = {}", t.resolved);
        let _ = writeln!(
            o.text,
            "repeat = {}",
            t.repeat.map_or_else(|| quote("0s"), dur)
        );
        let _ = writeln!(o.text, "group_wait = {}", dur(t.group_wait));
        let _ = writeln!(o.text, "resend = {}", dur(t.resend));
        let _ = writeln!(o.text, "queue = {}", t.queue);
        let _ = writeln!(o.text, "retry_for = {}", dur(t.retry_for));
        let _ = writeln!(o.text, "timeout = {}", dur(t.timeout));
        let _ = writeln!(o.text, "instance = {}", quote(&t.instance));
        if let Some(l) = &t.link {
            let _ = writeln!(o.text, "link = {}", quote(l));
        }
    }
}

fn rollup(o: &mut Out) {
    let r = &o.cfg.rollup;
    o.table("rollup");
    o.line(
        "rollup.pending_deliveries_max",
        r.pending_deliveries_max.to_string(),
    );
    o.line("rollup.mcp_restarts_max", r.mcp_restarts_max.to_string());
    o.line(
        "rollup.service_restarts_max",
        r.service_restarts_max.to_string(),
    );
    o.line("rollup.task_failing_runs", r.task_failing_runs.to_string());
    o.line("rollup.ok_http_status", r.ok_http_status.to_string());
    o.line(
        "rollup.degraded_http_status",
        r.degraded_http_status.to_string(),
    );
    o.line("rollup.down_http_status", r.down_http_status.to_string());
    if !r.severity.is_empty() {
        o.table("rollup.severity");
        for (rule, sev) in &r.severity {
            let sev = format!("{sev:?}").to_ascii_lowercase();
            o.line(&format!("rollup.severity.{rule}"), quote(&sev));
        }
    }
    for (id, s) in &o.cfg.sections {
        o.table(&format!("sections.{id}"));
        let _ = writeln!(o.text, "# this config file");
        for (k, v) in [
            ("interval", s.interval),
            ("timeout", s.timeout),
            ("stale_after", s.stale_after),
        ] {
            if let Some(v) = v {
                let _ = writeln!(o.text, "{k} = {}", dur(v));
            }
        }
    }
}
