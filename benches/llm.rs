//! The `llm` section's memory and collection cost with a 24 h window of
//! 200,000 LiteLLM requests (5 model groups, 3 providers, 10 % failures of
//! 6 error classes). Criterion; `cargo bench --bench llm`. Under
//! `cargo test` a small window.
//!
//! - memory: the window's rows and ids (`Window::bytes`) and the process's
//!   RSS growth while it fills, printed once;
//! - `judge_and_render`: the figures over the whole window, the body and its
//!   JSON — the CPU of one collection besides its HTTP calls;
//! - `page_of_500`: one `/spend/logs/v2` page parsed and added (the steady
//!   state reads about one page a collection).

use chrono::{Duration, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use pynchy_status::config::LlmConfig;
use pynchy_status::sections::llm::body;
use pynchy_status::sections::llm_read::{Outcome, State};
use pynchy_status::sources::litellm_api::{parse_logs, LogRow, RowError};

#[path = "support/proc.rs"]
mod proc;

fn rows() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        200_000
    } else {
        2_000
    }
}

const GROUPS: [&str; 5] = ["sonnet", "opus", "haiku", "gpt", "gemini"];
const PROVIDERS: [&str; 3] = ["anthropic", "openai", "vertex_ai"];
const CLASSES: [&str; 6] = [
    "RateLimitError",
    "AuthenticationError",
    "BadRequestError",
    "Timeout",
    "ServiceUnavailableError",
    "RouterRateLimitError",
];

fn row(i: usize, n: usize) -> LogRow {
    let now = Utc::now();
    let start = now - Duration::milliseconds((i as i64 * 86_000_000) / n as i64);
    let failed = i.is_multiple_of(10);
    LogRow {
        request_id: format!("req-{i:08}"),
        start,
        end: start + Duration::milliseconds(500 + (i % 20_000) as i64),
        model_group: GROUPS[i % 5].into(),
        model_id: format!("{}-d{}", GROUPS[i % 5], i % 2),
        provider: PROVIDERS[i % 3].into(),
        spend: 0.003,
        failed,
        duration_ms: 500 + (i % 20_000) as u64,
        error: failed.then(|| RowError {
            class: CLASSES[i % 6].into(),
            code: "429".into(),
            message: "litellm.RateLimitError: upstream said no".into(),
        }),
    }
}

fn page_json(from: usize, n: usize) -> Vec<u8> {
    let now = Utc::now();
    let data: Vec<serde_json::Value> = (from..from + n)
        .map(|i| {
            serde_json::json!({"request_id": format!("new-{i}"), "call_type": "acompletion", "api_key": "88dc",
                "spend": 0.003, "total_tokens": 100, "startTime": now.to_rfc3339(), "endTime": now.to_rfc3339(),
                "model": "anthropic/claude", "model_id": "sonnet-d0", "model_group": "sonnet",
                "custom_llm_provider": "anthropic", "api_base": "https://x.invalid", "user": "",
                "metadata": {"user_api_key_alias": "agents", "error_information": {}},
                "cache_hit": "False", "status": "success", "request_duration_ms": 900})
        })
        .collect();
    serde_json::to_vec(
        &serde_json::json!({"data": data, "total": n, "page": 1, "page_size": n,
        "total_pages": 1, "total_is_capped": false}),
    )
    .unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    let n = rows();
    let me = std::process::id();
    let before = proc::rss_kib(me);
    let mut st = State::default();
    let now = Utc::now();
    st.window.plan(now, now - Duration::hours(1));
    for i in 0..n {
        st.window.add(&row(i, n));
    }
    let after = proc::rss_kib(me);
    println!(
        "llm window: {n} rows, {:.1} MiB held by rows and ids, RSS +{:.1} MiB",
        st.window.bytes() as f64 / 1_048_576.0,
        (after.saturating_sub(before)) as f64 / 1024.0
    );
    let cfg = LlmConfig::default();
    st.window.slide(Utc::now());
    c.bench_function("llm/judge_and_render", |b| {
        b.iter(|| {
            let body = body(&st, Outcome::Tracked, &cfg, Utc::now());
            serde_json::to_vec(&body).unwrap_or_default().len()
        })
    });
    // Last: each iteration adds 500 rows to the window.
    let page = page_json(0, 500);
    let mut next = 0usize;
    c.bench_function("llm/page_of_500", |b| {
        b.iter(|| {
            let mut p = parse_logs(&page).unwrap_or_else(|e| panic!("{e}"));
            for r in &mut p.rows {
                next += 1;
                r.request_id = format!("bench-{next}");
                st.window.add(r);
            }
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
