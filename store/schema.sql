-- gymforge store: one ledger row per event (upsert by id), plus tables per entity that the sink keeps
-- current. Every write is an upsert whose result does not depend on the order events arrive in.

CREATE TABLE IF NOT EXISTS ledger (
    id          TEXT PRIMARY KEY,
    type        TEXT NOT NULL,
    subject     TEXT NOT NULL,
    trace_id    TEXT,
    parent_id   TEXT,
    producer    TEXT,
    time        TEXT NOT NULL,
    stream_seq  INTEGER,
    valid       INTEGER NOT NULL DEFAULT 1,
    reason      TEXT,
    payload     TEXT
);
CREATE INDEX IF NOT EXISTS ledger_type ON ledger(type);
CREATE INDEX IF NOT EXISTS ledger_trace ON ledger(trace_id);
CREATE INDEX IF NOT EXISTS ledger_seq ON ledger(stream_seq);

CREATE TABLE IF NOT EXISTS topics (
    id          TEXT PRIMARY KEY,           -- the topic.proposed event id (= its trace id)
    title       TEXT NOT NULL,
    domain      TEXT,
    task_type   TEXT,
    status      TEXT NOT NULL,              -- proposed | dataset_verified | dataset_rejected
    reason      TEXT,
    time        TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS datasets (
    id          TEXT PRIMARY KEY,           -- the dataset.verified / rejected event id
    trace_id    TEXT,
    dataset_id  TEXT,
    source      TEXT,
    task_type   TEXT,
    verified    INTEGER NOT NULL,
    reasons     TEXT,
    split_sizes TEXT,
    data_key    TEXT,
    time        TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS tasks (
    task_id        TEXT PRIMARY KEY,
    trace_id       TEXT,
    name           TEXT,
    task_type      TEXT,
    metric         TEXT,
    direction      TEXT,
    status         TEXT NOT NULL,           -- drafted | validated | rejected | graded
    revision       INTEGER NOT NULL DEFAULT 0,
    rounds         INTEGER,
    baseline_score REAL,
    runtime_s      REAL,
    reason         TEXT,
    solve_rate     REAL,
    attempts       INTEGER,
    accepted       INTEGER,
    best_score     REAL,
    gain           REAL,
    bundle         TEXT,
    time           TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS task_revisions (
    task_id     TEXT NOT NULL,
    revision    INTEGER NOT NULL,
    event_id    TEXT NOT NULL,
    answers_error TEXT,
    files       TEXT,
    time        TEXT NOT NULL,
    PRIMARY KEY (task_id, revision)
);

CREATE TABLE IF NOT EXISTS trajectories (
    id          TEXT PRIMARY KEY,           -- the trajectory.completed event id
    task_id     TEXT,
    attempt     INTEGER,
    trace_id    TEXT,
    status      TEXT NOT NULL,              -- completed | accepted | rejected
    exit_status TEXT,
    submitted   INTEGER,
    score       REAL,
    baseline_score REAL,
    gain        REAL,
    tokens      INTEGER,
    steps       INTEGER,
    reasons     TEXT,
    traj        TEXT,
    time        TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS trajectories_attempt ON trajectories(task_id, attempt);

CREATE TABLE IF NOT EXISTS usage (
    id          TEXT PRIMARY KEY,
    trace_id    TEXT,
    role        TEXT,
    model       TEXT,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    cached_tokens     INTEGER,             -- of prompt_tokens, served from the provider's prefix cache
    reasoning_tokens  INTEGER,             -- of completion_tokens, spent thinking
    cost_usd    REAL,
    latency_s   REAL,
    retries     INTEGER,
    time        TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS dead_letters (
    id          TEXT PRIMARY KEY,
    role        TEXT,
    reason      TEXT,
    subject     TEXT,
    data        TEXT,
    data_encoding TEXT,
    deliveries  INTEGER,
    stream_seq  INTEGER,
    replayed    INTEGER NOT NULL DEFAULT 0,
    time        TEXT NOT NULL
);
