-- tuisong embedded schema, version 1. Times are Unix milliseconds.
CREATE TABLE apps (
    appid        TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    secret       TEXT NOT NULL,
    original_id  TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE TABLE access_tokens (
    token       TEXT PRIMARY KEY,
    appid       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    superseded  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX access_tokens_app ON access_tokens (appid, kind, created_at);
CREATE TABLE counters (
    key           TEXT PRIMARY KEY,
    window_start  INTEGER NOT NULL,
    count         INTEGER NOT NULL
);
CREATE TABLE users (
    user_id     TEXT PRIMARY KEY,
    nickname    TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    -- last seq of the user's inbox: entries count 1, 2, 3 … without gaps
    inbox_seq   INTEGER NOT NULL DEFAULT 0,
    quiet_hours TEXT
);
CREATE TABLE subscribers (
    appid        TEXT NOT NULL,
    openid       TEXT NOT NULL,
    user_id      TEXT NOT NULL,
    main_switch  INTEGER NOT NULL DEFAULT 1,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (appid, openid),
    UNIQUE (appid, user_id)
);
CREATE TABLE login_codes (
    code         TEXT PRIMARY KEY,
    appid        TEXT NOT NULL,
    openid       TEXT NOT NULL,
    session_key  TEXT NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_at      INTEGER
);
CREATE TABLE templates (
    pri_tmpl_id  TEXT PRIMARY KEY,
    appid        TEXT NOT NULL,
    tid          INTEGER NOT NULL,
    title        TEXT NOT NULL,
    kind         INTEGER NOT NULL,
    kid_set      TEXT NOT NULL,
    keywords     TEXT NOT NULL,
    scene_desc   TEXT NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX templates_app ON templates (appid, created_at);
CREATE TABLE consents (
    appid           TEXT NOT NULL,
    openid          TEXT NOT NULL,
    tmpl_id         TEXT NOT NULL,
    status          TEXT,
    remaining       INTEGER NOT NULL DEFAULT 0,
    switched_off    INTEGER NOT NULL DEFAULT 0,
    kept            TEXT,
    granted_total   INTEGER NOT NULL DEFAULT 0,
    consumed_total  INTEGER NOT NULL DEFAULT 0,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (appid, openid, tmpl_id)
);
CREATE TABLE messages (
    msgid              INTEGER PRIMARY KEY AUTOINCREMENT,
    appid              TEXT NOT NULL,
    openid             TEXT NOT NULL,
    user_id            TEXT NOT NULL,
    tmpl_id            TEXT NOT NULL,
    title              TEXT NOT NULL,
    page               TEXT,
    rows               TEXT NOT NULL,
    data               TEXT NOT NULL,
    lang               TEXT NOT NULL,
    miniprogram_state  TEXT NOT NULL,
    status             TEXT NOT NULL,
    idempotency_key    TEXT,
    request_hash       TEXT,
    created_at         INTEGER NOT NULL,
    urgent             INTEGER NOT NULL DEFAULT 0,
    consume_rule       TEXT NOT NULL,
    release_at         INTEGER NOT NULL,
    expires_at         INTEGER,
    delivered_at       INTEGER,
    opened_at          INTEGER,
    final_at           INTEGER
);
CREATE UNIQUE INDEX messages_idempotency ON messages (appid, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX messages_user ON messages (appid, openid, msgid);
CREATE INDEX messages_due ON messages (release_at) WHERE status IN ('held', 'scheduled');
CREATE INDEX messages_ttl ON messages (expires_at) WHERE expires_at IS NOT NULL AND status IN ('held', 'scheduled', 'accepted');
-- each user's ordered stream of cards and tombstones
CREATE TABLE inbox (
    user_id  TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    msgid    INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    PRIMARY KEY (user_id, seq)
) WITHOUT ROWID;
CREATE TABLE deliveries (
    msgid   INTEGER NOT NULL,
    device  TEXT NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (msgid, device)
) WITHOUT ROWID;
CREATE TABLE message_events (
    id      INTEGER PRIMARY KEY,
    msgid   INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    event   TEXT NOT NULL,
    device  TEXT,
    detail  TEXT
);
CREATE INDEX message_events_msg ON message_events (msgid, id);
CREATE TABLE policies (
    appid   TEXT PRIMARY KEY,
    policy  TEXT NOT NULL
);
-- message push (消息推送): config, durable outbox, attempt log
CREATE TABLE push_configs (
    appid             TEXT PRIMARY KEY,
    config            TEXT NOT NULL,
    extension_events  INTEGER NOT NULL
);
CREATE TABLE push_outbox (
    id               INTEGER PRIMARY KEY,
    appid            TEXT NOT NULL,
    openid           TEXT NOT NULL,
    event            TEXT NOT NULL,
    status           TEXT NOT NULL DEFAULT 'pending',
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    created_at       INTEGER NOT NULL
);
CREATE INDEX push_outbox_due ON push_outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX push_outbox_user ON push_outbox (appid, openid, id) WHERE status = 'pending';
CREATE TABLE push_attempts (
    id           INTEGER PRIMARY KEY,
    appid        TEXT NOT NULL,
    at           INTEGER NOT NULL,
    outbox_id    INTEGER NOT NULL,
    event        TEXT NOT NULL,
    openid       TEXT NOT NULL,
    attempt      INTEGER NOT NULL,
    ok           INTEGER NOT NULL,
    http_status  INTEGER,
    error        TEXT,
    duration_ms  INTEGER NOT NULL,
    outcome      TEXT NOT NULL
);
CREATE INDEX push_attempts_app ON push_attempts (appid, id);
-- analytics: counters per app, template and hour, bumped in the same transaction as
-- what they count
CREATE TABLE stats (
    appid    TEXT NOT NULL,
    tmpl_id  TEXT NOT NULL,
    hour     INTEGER NOT NULL,
    metric   TEXT NOT NULL,
    count    INTEGER NOT NULL,
    value    REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (appid, hour, tmpl_id, metric)
) WITHOUT ROWID;
CREATE INDEX messages_app_list ON messages (appid, msgid);
