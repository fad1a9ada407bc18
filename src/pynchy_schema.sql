-- pynchy's SQLite schema: the tables, columns and indexes pynchy itself creates.
-- The demo and the tests create databases with it; the daemon only reads.
CREATE TABLE chats (
    jid TEXT PRIMARY KEY,
    name TEXT,
    last_message_time TEXT,
    cleared_at TEXT
);
CREATE TABLE messages (
    id TEXT,
    chat_jid TEXT,
    sender TEXT,
    sender_name TEXT,
    content TEXT,
    timestamp TEXT,
    is_from_me INTEGER,
    message_type TEXT DEFAULT 'user',
    metadata TEXT,
    PRIMARY KEY (id, chat_jid)
);
CREATE INDEX idx_messages_timestamp ON messages(timestamp);
CREATE INDEX idx_messages_chat_ts ON messages(chat_jid, timestamp);
CREATE TABLE scheduled_tasks (
    id TEXT PRIMARY KEY,
    group_folder TEXT NOT NULL,
    chat_jid TEXT NOT NULL,
    prompt TEXT NOT NULL,
    schedule_type TEXT NOT NULL,
    schedule_value TEXT NOT NULL,
    next_run TEXT,
    last_run TEXT,
    last_result TEXT,
    status TEXT DEFAULT 'active',
    created_at TEXT NOT NULL,
    context_mode TEXT DEFAULT 'isolated',
    repo_access TEXT
);
CREATE INDEX idx_tasks_next_run ON scheduled_tasks(next_run);
CREATE INDEX idx_tasks_status ON scheduled_tasks(status);
CREATE INDEX idx_tasks_group ON scheduled_tasks(group_folder);
CREATE TABLE task_run_logs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL,
    run_at TEXT NOT NULL,
    duration_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    result TEXT,
    error TEXT
);
CREATE INDEX idx_task_run_logs ON task_run_logs(task_id, run_at);
CREATE TABLE host_jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    command TEXT NOT NULL,
    schedule_type TEXT NOT NULL,
    schedule_value TEXT NOT NULL,
    next_run TEXT,
    last_run TEXT,
    status TEXT DEFAULT 'active',
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    cwd TEXT,
    timeout_seconds INTEGER DEFAULT 600,
    enabled INTEGER DEFAULT 1
);
CREATE INDEX idx_host_jobs_next_run ON host_jobs(next_run);
CREATE INDEX idx_host_jobs_status ON host_jobs(status);
CREATE TABLE outbound_ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    chat_jid TEXT NOT NULL,
    content TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX idx_outbound_chat ON outbound_ledger(chat_jid);
CREATE TABLE outbound_deliveries (
    ledger_id INTEGER NOT NULL,
    channel_name TEXT NOT NULL,
    delivered_at TEXT,
    error TEXT,
    PRIMARY KEY (ledger_id, channel_name)
);
CREATE INDEX idx_outbound_pending ON outbound_deliveries(channel_name) WHERE delivered_at IS NULL;
CREATE TABLE router_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE sessions (
    group_folder TEXT PRIMARY KEY,
    session_id TEXT NOT NULL
);
CREATE TABLE registered_groups (
    jid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    folder TEXT NOT NULL UNIQUE,
    trigger_pattern TEXT NOT NULL,
    added_at TEXT NOT NULL,
    container_config TEXT,
    security_profile TEXT,
    is_admin INTEGER DEFAULT 0
);
