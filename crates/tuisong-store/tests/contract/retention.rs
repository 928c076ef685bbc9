//! Retention: the bounded sweeps of each kind (never a pending or deliverable message),
//! the per-user bound on login codes, and — per backend — the schema upgrade from
//! version 1, the WAL truncation and the file modes of the embedded store.

use super::{
    Backend, World, grant, message, postgres, postgres_backend, rand_u64, sqlite_backend, world,
};
use std::sync::Arc;
use tuisong_core::ids::{OpenId, Secret, UserId};
use tuisong_core::push::{ClaimLimits, PushAttempt, PushConfig, PushFormat, PushMode};
use tuisong_core::store::{
    CodeOutcome, LoginCode, MAX_OPEN_LOGIN_CODES, MessageStatus, SendOutcome, Store, Sweep, User,
};
use tuisong_store::{PgStore, SqliteSettings, SqliteStore};

fn code(w: &World, openid: &OpenId, name: &str, expires_at: i64) -> LoginCode {
    LoginCode {
        code: name.into(),
        appid: w.app.appid.clone(),
        openid: openid.clone(),
        session_key: "k".into(),
        expires_at,
    }
}

/// Sweeps `what` in batches of `limit` until a short one; returns each batch's count.
async fn sweep_all(s: &Arc<dyn Store>, what: Sweep, cutoff: i64, limit: usize) -> Vec<u64> {
    let mut out = Vec::new();
    loop {
        let n = s.sweep(what, cutoff, limit).await.expect("sweep");
        out.push(n);
        if n < limit as u64 {
            return out;
        }
    }
}

contract!(
    #[tokio::test]
    expired_login_codes_are_swept_in_bounded_batches_and_live_ones_stay
);
async fn expired_login_codes_are_swept_in_bounded_batches_and_live_ones_stay(b: Backend) {
    let w = world(&b.store, false).await;
    // One user per code, so the per-user bound plays no part here.
    for i in 0..25 {
        let c = code(&w, &OpenId::generate(), &format!("old{i}"), 100 + i);
        b.store.insert_login_code(&c).await.expect("code");
    }
    for i in 0..3 {
        let c = code(&w, &OpenId::generate(), &format!("live{i}"), 10_000);
        b.store.insert_login_code(&c).await.expect("code");
    }
    assert_eq!(
        sweep_all(&b.store, Sweep::LoginCodes, 1_000, 10).await,
        vec![10, 10, 5],
        "{}",
        b.name
    );
    for i in 0..3 {
        assert!(matches!(
            b.store
                .consume_login_code(&format!("live{i}"), &w.app.appid, 1_000)
                .await
                .expect("consume"),
            CodeOutcome::Valid { .. }
        ));
    }
    assert_eq!(
        b.store
            .consume_login_code("old3", &w.app.appid, 50)
            .await
            .expect("consume"),
        CodeOutcome::Unknown,
        "swept"
    );
}

contract!(
    #[tokio::test]
    a_user_keeps_only_the_newest_unused_login_codes
);
async fn a_user_keeps_only_the_newest_unused_login_codes(b: Backend) {
    let w = world(&b.store, false).await;
    let n = MAX_OPEN_LOGIN_CODES as i64;
    // One used code, then bound + 2 unused ones: the used one does not count.
    b.store
        .insert_login_code(&code(&w, &w.openid, "used", 10_000))
        .await
        .expect("code");
    assert!(matches!(
        b.store
            .consume_login_code("used", &w.app.appid, 1)
            .await
            .expect("consume"),
        CodeOutcome::Valid { .. }
    ));
    for i in 0..n + 2 {
        let c = code(&w, &w.openid, &format!("c{i}"), 10_000 + i);
        b.store.insert_login_code(&c).await.expect("code");
    }
    // Another user's codes are not touched.
    let other = OpenId::generate();
    b.store
        .insert_login_code(&code(&w, &other, "other", 9_000))
        .await
        .expect("code");
    let outcome = |c: String| {
        let (s, appid) = (b.store.clone(), w.app.appid.clone());
        async move { s.consume_login_code(&c, &appid, 2).await.expect("consume") }
    };
    for i in 0..2 {
        assert_eq!(
            outcome(format!("c{i}")).await,
            CodeOutcome::Unknown,
            "{}: c{i} was replaced",
            b.name
        );
    }
    for i in 2..n + 2 {
        assert!(
            matches!(outcome(format!("c{i}")).await, CodeOutcome::Valid { .. }),
            "{}: c{i} is among the newest",
            b.name
        );
    }
    assert_eq!(outcome("used".into()).await, CodeOutcome::Used);
    assert!(matches!(
        outcome("other".into()).await,
        CodeOutcome::Valid { .. }
    ));
}

contract!(
    #[tokio::test]
    finished_messages_go_with_their_rows_and_pending_or_deliverable_ones_stay
);
async fn finished_messages_go_with_their_rows_and_pending_or_deliverable_ones_stay(b: Backend) {
    let s = &b.store;
    let w = world(s, true).await;
    s.apply_prompt(&w.app.appid, &w.openid, &[grant(&w.template.id)], 1)
        .await
        .expect("grant");
    let send = async |held: bool| {
        let mut m = message(&w, None);
        if held {
            m.hold = Some((MessageStatus::Held, 1_000_000_000_000));
        }
        match s.send(&m).await.expect("send") {
            SendOutcome::Accepted { msgid, .. } => msgid,
            other => panic!("{}: {other:?}", b.name),
        }
    };
    let (delivered, cancelled, recalled) =
        (send(false).await, send(false).await, send(false).await);
    let (accepted, held) = (send(false).await, send(true).await);
    let user = s
        .get_message(&w.app.appid, delivered)
        .await
        .expect("get")
        .expect("message")
        .user_id;
    for id in [delivered, recalled] {
        let _ = s.ack(&user, id, "phone", 100).await.expect("ack");
    }
    s.stop_message(&w.app.appid, cancelled, false, 100)
        .await
        .expect("cancel");
    s.stop_message(&w.app.appid, recalled, true, 100)
        .await
        .expect("recall");
    // Last changed at 100: not before a cutoff of 50.
    assert_eq!(s.sweep(Sweep::Messages, 50, 10).await.expect("sweep"), 0);
    assert_eq!(
        sweep_all(s, Sweep::Messages, i64::MAX, 2).await,
        vec![2, 1],
        "{}",
        b.name
    );
    for id in [delivered, cancelled, recalled] {
        assert!(
            s.get_message(&w.app.appid, id)
                .await
                .expect("get")
                .is_none()
        );
        assert!(s.timeline(id).await.expect("timeline").is_empty());
    }
    for (id, status) in [
        (accepted, MessageStatus::Accepted),
        (held, MessageStatus::Held),
    ] {
        let m = s.get_message(&w.app.appid, id).await.expect("get");
        assert_eq!(m.map(|m| m.status), Some(status), "{}", b.name);
    }
    let inbox = s.inbox(&user, 0, 100).await.expect("inbox");
    let left: Vec<_> = inbox.iter().map(|e| e.message.msgid).collect();
    assert_eq!(
        left,
        vec![accepted],
        "{}: only the deliverable card",
        b.name
    );
}

contract!(
    #[tokio::test]
    push_logs_analytics_and_stale_counters_are_swept_by_age
);
async fn push_logs_analytics_and_stale_counters_are_swept_by_age(b: Backend) {
    let s = &b.store;
    let w = world(s, false).await;
    let cfg = PushConfig {
        url: "https://receiver.example/cb".into(),
        token: Secret::new("token1"),
        encoding_aes_key: None,
        format: PushFormat::Json,
        mode: PushMode::Plaintext,
        extension_events: false,
        updated_at: 0,
    };
    s.set_push_config(&w.app.appid, Some(&cfg))
        .await
        .expect("config");
    for at in [2, 3] {
        s.apply_prompt(&w.app.appid, &w.openid, &[grant(&w.template.id)], at)
            .await
            .expect("prompt");
    }
    let first = s
        .claim_push(10, 1_000, &ClaimLimits::up_to(10))
        .await
        .expect("claim");
    assert_eq!(first.len(), 1);
    let attempt = PushAttempt {
        at: 30,
        outbox_id: first[0].id,
        event: "subscribe_msg_popup_event".into(),
        openid: w.openid.to_string(),
        attempt: 1,
        ok: true,
        http_status: Some(200),
        error: None,
        duration_ms: 1,
        outcome: "delivered".into(),
    };
    s.finish_push(&w.app.appid, &attempt, None)
        .await
        .expect("delivered");
    // The delivered row goes; the pending one stays and is handed out next.
    assert_eq!(sweep_all(s, Sweep::PushOutbox, 1_000, 10).await, vec![1]);
    let next = s
        .claim_push(60, 2_000, &ClaimLimits::up_to(10))
        .await
        .expect("claim");
    assert_eq!(next.len(), 1, "{}: the pending event stays", b.name);
    assert_ne!(next[0].id, first[0].id);
    assert_eq!(s.sweep(Sweep::PushAttempts, 30, 10).await.expect("s"), 0);
    assert_eq!(s.sweep(Sweep::PushAttempts, 31, 10).await.expect("s"), 1);
    assert!(
        s.push_attempts(&w.app.appid, 10)
            .await
            .expect("a")
            .is_empty()
    );

    const HOUR: i64 = 3_600_000;
    let tmpl = w.template.id.to_string();
    for hour in [5, 100] {
        s.record_refusal(&w.app.appid, &tmpl, "43101", hour * HOUR)
            .await
            .expect("refusal");
    }
    assert!(s.sweep(Sweep::Stats, 50 * HOUR, 10).await.expect("s") >= 1);
    let rows = s
        .stats(&w.app.appid, None, 0, 1_000 * HOUR)
        .await
        .expect("stats");
    assert!(
        !rows.is_empty() && rows.iter().all(|r| r.hour >= 50 * HOUR),
        "{rows:?}"
    );

    for (key, start) in [("old", 10), ("new", 500)] {
        assert!(s.take_quota(key, start, 1).await.expect("quota"));
    }
    assert_eq!(s.sweep(Sweep::Counters, 100, 10).await.expect("s"), 1);
    assert!(
        !s.take_quota("new", 500, 1).await.expect("quota"),
        "{}: the current window's counter is kept",
        b.name
    );
    assert!(
        s.take_quota("old", 10, 1).await.expect("quota"),
        "swept: starts over"
    );
}

#[tokio::test]
async fn sqlite_a_sweep_then_compact_truncates_the_wal() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("t.db");
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(SqliteSettings::new(&path)).expect("opens"));
    let w = world(&store, false).await;
    let mut tasks = Vec::new();
    for i in 0..2_000 {
        let (s, c) = (
            store.clone(),
            code(&w, &OpenId::generate(), &format!("c{i}"), 5),
        );
        tasks.push(tokio::spawn(async move { s.insert_login_code(&c).await }));
    }
    for t in tasks {
        t.await.expect("task").expect("code");
    }
    let wal = path.with_file_name("t.db-wal");
    let before = std::fs::metadata(&wal).expect("a WAL").len();
    assert!(before > 100_000, "the inserts grew the WAL: {before} bytes");
    let swept = sweep_all(&store, Sweep::LoginCodes, 10, 1000).await;
    assert_eq!(swept.iter().sum::<u64>(), 2_000);
    store.compact().await.expect("compact");
    let after = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert_eq!(after, 0, "truncated (was {before} bytes)");
    // The store goes on working on the truncated WAL.
    store
        .insert_login_code(&code(&w, &w.openid, "after", 100))
        .await
        .expect("write after truncation");
}

#[tokio::test]
async fn sqlite_a_version_1_database_is_upgraded_in_place() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("v1.db");
    {
        let c = rusqlite::Connection::open(&path).expect("v1 db");
        c.execute_batch(include_str!("../../src/schema_sqlite.sql"))
            .expect("v1 schema");
        c.execute_batch(
            "PRAGMA user_version = 1;
             INSERT INTO apps (appid, name, secret, original_id, created_at)
                 VALUES ('wx00000000000000a1', 'old', 'secret', 'gh_0', 1);
             INSERT INTO login_codes (code, appid, openid, session_key, expires_at)
                 VALUES ('kept', 'wx00000000000000a1', 'o1', 'k', 10000);",
        )
        .expect("v1 rows");
    }
    let store = SqliteStore::open(SqliteSettings::new(&path)).expect("upgrades");
    let appid = tuisong_core::ids::AppId::parse("wx00000000000000a1").expect("appid");
    use tuisong_core::store::{AppStore, UserStore};
    assert_eq!(
        store.get_app(&appid).await.expect("get").map(|a| a.name),
        Some("old".to_owned()),
        "the data survived"
    );
    assert!(matches!(
        store
            .consume_login_code("kept", &appid, 5)
            .await
            .expect("consume"),
        CodeOutcome::Valid { .. }
    ));
    drop(store);
    let c = rusqlite::Connection::open(&path).expect("db");
    let version: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .expect("version");
    assert_eq!(version, 2);
    let index: i64 = c
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'login_codes_expiry'",
            [],
            |r| r.get(0),
        )
        .expect("index");
    assert_eq!(index, 1, "the expiry index exists");
    // Opening again changes nothing.
    drop(c);
    SqliteStore::open(SqliteSettings::new(&path)).expect("opens again");
}

#[cfg(unix)]
#[tokio::test]
async fn sqlite_the_directory_and_database_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    let top = tempfile::tempdir().expect("dir");
    let dir = top.path().join("data");
    let path = dir.join("t.db");
    let files = |p: &std::path::Path| ["t.db", "t.db-wal", "t.db-shm"].map(|n| p.with_file_name(n));
    {
        let store = SqliteStore::open(SqliteSettings::new(&path)).expect("opens");
        use tuisong_core::store::UserStore;
        let user = User {
            user_id: UserId::generate(),
            nickname: "n".into(),
            token_hash: format!("{:064}", rand_u64()),
            created_at: 0,
        };
        store.create_user(&user).await.expect("a write");
        assert_eq!(mode(&dir), 0o700);
        for f in files(&path) {
            assert_eq!(mode(&f), 0o600, "{}", f.display());
        }
    }
    // Files an older release left readable are tightened at the next start.
    for f in files(&path) {
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let _store = SqliteStore::open(SqliteSettings::new(&path)).expect("opens");
    for f in files(&path) {
        assert_eq!(mode(&f), 0o600, "{}", f.display());
    }
}

/// A schema made by the previous release (version 1 only) is upgraded to version 2
/// when a node connects, and its data survives.
#[cfg_attr(
    tuisong_no_pg,
    ignore = "needs PostgreSQL: set TUISONG_TEST_PG=postgres://…"
)]
#[tokio::test]
async fn postgres_a_version_1_schema_is_upgraded_in_place() {
    let Some(schema) = postgres::Schema::create().await else {
        return;
    };
    {
        let (client, conn) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        client
            .batch_execute(include_str!("../../src/schema_postgres.sql"))
            .await
            .expect("v1 schema");
        client
            .batch_execute(
                "DROP INDEX login_codes_expiry;
                 CREATE TABLE schema_version (version BIGINT NOT NULL);
                 INSERT INTO schema_version VALUES (1);
                 INSERT INTO apps (appid, name, secret, original_id, created_at)
                     VALUES ('wx00000000000000a1', 'old', 'secret', 'gh_0', 1);",
            )
            .await
            .expect("v1 rows");
    }
    let store = PgStore::connect(&schema.url, 2).await.expect("upgrades");
    let appid = tuisong_core::ids::AppId::parse("wx00000000000000a1").expect("appid");
    use tuisong_core::store::AppStore;
    assert_eq!(
        store.get_app(&appid).await.expect("get").map(|a| a.name),
        Some("old".to_owned())
    );
    let (client, conn) = tokio_postgres::connect(&schema.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let version: i64 = client
        .query_one("SELECT MAX(version) FROM schema_version", &[])
        .await
        .expect("version")
        .get(0);
    assert_eq!(version, 2);
    let indexes: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema()
               AND indexname IN ('login_codes_expiry', 'login_codes_user', 'messages_finished')",
            &[],
        )
        .await
        .expect("indexes")
        .get(0);
    assert_eq!(indexes, 3);
    drop(store);
    PgStore::connect(&schema.url, 2)
        .await
        .expect("connects again");
}
