//! PostgreSQL only: a fresh schema per test, and what only several nodes can show —
//! two pools (two nodes) on one database racing for the same grants and outbox rows, and
//! nodes starting at once migrating once.

use super::*;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio_postgres::NoTls;
use tuisong_core::push::{ClaimLimits, PushAttempt, PushConfig, PushFormat, PushMode};

const ENV: &str = "TUISONG_TEST_PG";

/// A schema of its own on the test database; `url` puts it first on the search path.
/// Dropped (best effort) when this is dropped.
pub struct Schema {
    pub url: String,
    base: String,
    name: String,
}

impl Schema {
    /// None (after saying so) when `TUISONG_TEST_PG` is not set.
    pub async fn create() -> Option<Schema> {
        let Ok(base) = std::env::var(ENV) else {
            println!("skipped postgres: {ENV} not set");
            return None;
        };
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .subsec_nanos();
        let name = format!(
            "tuisong_test_{}_{}_{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        let (client, conn) = tokio_postgres::connect(&base, NoTls)
            .await
            .unwrap_or_else(|e| panic!("{ENV}={base}: cannot connect: {e}"));
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .expect("create schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        Some(Schema {
            url: format!("{base}{sep}options=-csearch_path%3D{name}"),
            base,
            name,
        })
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        // Drop may run inside a runtime (or while a test panics): use a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok((client, conn)) = tokio_postgres::connect(&base, NoTls).await {
                    tokio::spawn(conn);
                    let _ = client
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .await;
                }
            });
        })
        .join();
    }
}

#[cfg_attr(
    tuisong_no_pg,
    ignore = "needs PostgreSQL: set TUISONG_TEST_PG=postgres://…"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_share_grants_exactly_and_never_claim_the_same_push_event() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let a: Arc<dyn Store> = Arc::new(PgStore::connect(&schema.url, 8).await.expect("node a"));
    let b: Arc<dyn Store> = Arc::new(PgStore::connect(&schema.url, 8).await.expect("node b"));

    // 1000 sends, half through each node, against 10 one-time grants.
    let w = world(&a, false).await;
    for _ in 0..10 {
        b.apply_prompt(&w.app.appid, &w.openid, &[grant(&w.template.id)], 1)
            .await
            .expect("grant");
    }
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let m = message(&w, None);
        tasks.push(tokio::spawn(async move { s.send(&m).await.expect("send") }));
    }
    let mut accepted = std::collections::HashSet::new();
    let mut refused = 0;
    for t in tasks {
        match t.await.expect("task") {
            SendOutcome::Accepted { msgid, entry } => {
                assert!(accepted.insert(msgid), "msgids are unique");
                assert!(entry.is_some());
            }
            SendOutcome::NoConsent => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((accepted.len(), refused), (10, 990));
    let c = a.consents(&w.app.appid, &w.openid).await.expect("consents");
    assert_eq!((c[0].remaining, c[0].consumed_total), (0, 10));
    let sub = b
        .subscriber(&w.app.appid, &w.openid)
        .await
        .expect("s")
        .expect("sub");
    let seqs: Vec<u64> = a
        .inbox(&sub.user_id, 0, 100)
        .await
        .expect("inbox")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>(), "gap-free across nodes");

    // Outbox: 40 users of one app with 3 events each, written through both nodes.
    let cfg = PushConfig {
        url: "http://127.0.0.1:9/cb".into(),
        token: Secret::new("token1"),
        encoding_aes_key: None,
        format: PushFormat::Json,
        mode: PushMode::Plaintext,
        extension_events: false,
        updated_at: 0,
    };
    a.set_push_config(&w.app.appid, Some(&cfg))
        .await
        .expect("config");
    let mut users = Vec::new();
    for _ in 0..40 {
        let user = User {
            user_id: UserId::generate(),
            nickname: "n".into(),
            token_hash: format!("{:064}", rand_u64()),
            created_at: 0,
        };
        a.create_user(&user).await.expect("user");
        let sub = b
            .subscriber_for_user(&w.app.appid, &user.user_id, &OpenId::generate(), 0)
            .await
            .expect("subscriber");
        users.push(sub.openid);
    }
    let mut writes = Vec::new();
    for (i, openid) in users.iter().enumerate() {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (appid, openid, tid) = (w.app.appid.clone(), openid.clone(), w.template.id.clone());
        writes.push(tokio::spawn(async move {
            for at in 1..=3 {
                s.apply_prompt(&appid, &openid, &[grant(&tid)], at)
                    .await
                    .expect("prompt");
            }
        }));
    }
    for t in writes {
        t.await.expect("writer");
    }
    let expected = users.len() * 3;

    // Eight workers, four per node, claim and finish until every event is delivered.
    let claimed: Arc<Mutex<Vec<(u64, String, i64)>>> = Arc::new(Mutex::new(Vec::new()));
    let order = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for i in 0..8 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (claimed, order, appid) = (claimed.clone(), order.clone(), w.app.appid.clone());
        workers.push(tokio::spawn(async move {
            for _ in 0..2_000 {
                if claimed.lock().expect("lock").len() >= expected {
                    break;
                }
                let items = s
                    .claim_push(100, 10_000_000, &ClaimLimits::up_to(3))
                    .await
                    .expect("claim");
                if items.is_empty() {
                    tokio::task::yield_now().await;
                    continue;
                }
                for item in items {
                    let n = order.fetch_add(1, Ordering::SeqCst);
                    claimed
                        .lock()
                        .expect("lock")
                        .push((n, item.openid.clone(), item.id));
                    let attempt = PushAttempt {
                        at: 100,
                        outbox_id: item.id,
                        event: "subscribe_msg_popup_event".into(),
                        openid: item.openid.clone(),
                        attempt: 1,
                        ok: true,
                        http_status: Some(200),
                        error: None,
                        duration_ms: 1,
                        outcome: "delivered".into(),
                    };
                    s.finish_push(&appid, &attempt, None).await.expect("finish");
                }
            }
        }));
    }
    for t in workers {
        t.await.expect("worker");
    }
    let mut claimed = claimed.lock().expect("lock").clone();
    let mut ids: Vec<i64> = claimed.iter().map(|c| c.2).collect();
    ids.sort_unstable();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, ids.len(), "an outbox row was handed out twice");
    assert_eq!(ids.len(), expected, "every event was handed out");
    // Per user, events were handed out in the order they were written.
    claimed.sort_unstable();
    let mut last: HashMap<String, i64> = HashMap::new();
    for (_, openid, id) in claimed {
        if let Some(prev) = last.insert(openid, id) {
            assert!(
                prev < id,
                "a later event of a user went before an earlier one"
            );
        }
    }
    assert!(
        a.claim_push(100, 10_000_000, &ClaimLimits::up_to(10))
            .await
            .expect("c")
            .is_empty()
    );

    // Held messages of 20 users, some of them past their TTL: both nodes release and
    // expire at once; each message is released or expired exactly once, and every
    // user's inbox still counts 1, 2, 3 … without gaps.
    let lt = world(&a, true).await;
    let mut held = Vec::new();
    for i in 0..20 {
        let user = User {
            user_id: UserId::generate(),
            nickname: "n".into(),
            token_hash: format!("{:064}", rand_u64()),
            created_at: 0,
        };
        a.create_user(&user).await.expect("user");
        let sub = b
            .subscriber_for_user(&lt.app.appid, &user.user_id, &OpenId::generate(), 0)
            .await
            .expect("subscriber");
        let mut accept = grant(&lt.template.id);
        accept.grant = false;
        a.apply_prompt(&lt.app.appid, &sub.openid, &[accept], 1)
            .await
            .expect("accept");
        for j in 0..5 {
            let mut m = message(&lt, None);
            m.openid = sub.openid.clone();
            m.hold = Some((MessageStatus::Held, 100 + j * 50 + i));
            if (i + j) % 3 == 0 {
                m.expires_at = Some(400);
            }
            let s = if j % 2 == 0 { &a } else { &b };
            let SendOutcome::Accepted { msgid, .. } = s.send(&m).await.expect("send") else {
                panic!("held")
            };
            held.push((user.user_id.clone(), msgid, m.expires_at.is_some()));
        }
    }
    let released: Arc<Mutex<Vec<(UserId, u64, u64)>>> = Arc::new(Mutex::new(Vec::new()));
    let expired: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for i in 0..6 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (released, expired) = (released.clone(), expired.clone());
        workers.push(tokio::spawn(async move {
            let mut idle = 0;
            while idle < 20 {
                let r = s.release_due(600, 7).await.expect("release");
                let e = s.expire_due(600, 7).await.expect("expire");
                if r.is_empty() && e.is_empty() {
                    idle += 1;
                    tokio::task::yield_now().await;
                    continue;
                }
                idle = 0;
                released
                    .lock()
                    .expect("lock")
                    .extend(r.into_iter().map(|e| (e.user_id, e.seq, e.message.msgid.0)));
                expired
                    .lock()
                    .expect("lock")
                    .extend(e.into_iter().map(|m| m.0));
            }
        }));
    }
    for t in workers {
        t.await.expect("worker");
    }
    let released = released.lock().expect("lock").clone();
    let mut expired = expired.lock().expect("lock").clone();
    let mut want_released: Vec<u64> = held.iter().filter(|h| !h.2).map(|h| h.1.0).collect();
    let mut want_expired: Vec<u64> = held.iter().filter(|h| h.2).map(|h| h.1.0).collect();
    let mut got_released: Vec<u64> = released.iter().map(|r| r.2).collect();
    for v in [
        &mut want_released,
        &mut want_expired,
        &mut got_released,
        &mut expired,
    ] {
        v.sort_unstable();
    }
    assert_eq!(got_released, want_released, "each released exactly once");
    assert_eq!(expired, want_expired, "each expired exactly once");
    let mut per_user: HashMap<UserId, Vec<u64>> = HashMap::new();
    for (user, seq, _) in &released {
        per_user.entry(user.clone()).or_default().push(*seq);
    }
    for (user, mut seqs) in per_user {
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
        let inbox = b.inbox(&user, 0, 100).await.expect("inbox");
        assert_eq!(inbox.len(), seqs.len(), "no other entries");
    }
    drop((a, b));
    drop(schema);
}

#[cfg_attr(
    tuisong_no_pg,
    ignore = "needs PostgreSQL: set TUISONG_TEST_PG=postgres://…"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_at_once_migrate_once_and_a_restart_keeps_everything() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let mut starts = Vec::new();
    for _ in 0..6 {
        let url = schema.url.clone();
        starts.push(tokio::spawn(async move {
            PgStore::connect(&url, 2).await.expect("connect")
        }));
    }
    let mut nodes = Vec::new();
    for s in starts {
        nodes.push(s.await.expect("start"));
    }
    let (client, conn) = tokio_postgres::connect(&schema.url, NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let versions: i64 = client
        .query_one("SELECT COUNT(*) FROM schema_version", &[])
        .await
        .expect("versions")
        .get(0);
    assert_eq!(versions, 1, "migrated once");

    let s: Arc<dyn Store> = Arc::new(nodes.pop().expect("a node"));
    let w = world(&s, false).await;
    s.apply_prompt(
        &w.app.appid,
        &w.openid,
        &[grant(&w.template.id), grant(&w.template.id)],
        1,
    )
    .await
    .expect("g");
    assert!(matches!(
        s.send(&message(&w, None)).await.expect("send"),
        SendOutcome::Accepted { .. }
    ));
    drop((s, nodes));
    let s = PgStore::connect(&schema.url, 2).await.expect("restart");
    assert!(s.get_app(&w.app.appid).await.expect("app").is_some());
    let t = s
        .get_template(&w.template.id)
        .await
        .expect("t")
        .expect("kept");
    assert_eq!(
        format!("{t:?}"),
        format!("{:?}", w.template),
        "a template round-trips exactly"
    );
    let c = s.consents(&w.app.appid, &w.openid).await.expect("consents");
    assert_eq!((c[0].remaining, c[0].consumed_total), (1, 1));
    drop(s);
    drop(schema);
}

/// Every `Store` method, in one script, on a fresh store; one line per answer.
async fn script(s: &Arc<dyn Store>, ids: &ScriptIds) -> Vec<String> {
    use tuisong_core::ids::MsgId;
    use tuisong_core::policy::{CapRule, Policy, QuietHours, QuotaCheck};
    use tuisong_core::push::PushEvent;
    use tuisong_core::store::MessageFilter;
    let mut out: Vec<String> = Vec::new();
    macro_rules! log {
        ($label:expr, $e:expr) => {{
            let v = $e;
            out.push(format!("{}: {:?}", $label, v));
            v
        }};
    }
    let (appid, app2) = (&ids.apps[0], &ids.apps[1]);
    let (u1, u2) = (&ids.users[0], &ids.users[1]);
    let (t1, t2, t3) = (&ids.templates[0], &ids.templates[1], &ids.templates[2]);
    let app = |appid: &AppId, at| App {
        appid: appid.clone(),
        name: "n".into(),
        secret: Secret::new("s".repeat(32)),
        original_id: "gh_0123456789ab".into(),
        created_at: at,
    };
    s.create_app(&app(appid, 0)).await.expect("app");
    s.create_app(&app(app2, 5)).await.expect("app");
    log!("list_apps", s.list_apps().await.expect("x"));
    log!(
        "set secret",
        s.set_app_secret(appid, &Secret::new("t".repeat(32)))
            .await
            .expect("x")
    );
    log!(
        "set secret unknown",
        s.set_app_secret(&AppId::generate(), &Secret::new("x"))
            .await
            .expect("x")
    );
    log!(
        "get_app",
        s.get_app(appid)
            .await
            .expect("x")
            .map(|a| a.secret.expose().to_owned())
    );

    let tok = |t: &str, kind, at: i64| AccessToken {
        token: format!("{t}-{}", appid.as_str()),
        appid: appid.clone(),
        kind,
        created_at: at,
        expires_at: at + 7_200_000,
        superseded: false,
    };
    s.issue_token(&tok("a", TokenKind::Normal, 0), 300_000)
        .await
        .expect("x");
    s.issue_token(&tok("b", TokenKind::Normal, 0), 300_000)
        .await
        .expect("x");
    s.issue_token(&tok("s", TokenKind::Stable, 10), 310)
        .await
        .expect("x");
    s.issue_token(&tok("c", TokenKind::Console, 20), 20)
        .await
        .expect("x");
    for t in ["a", "b", "s", "c"] {
        log!(
            t,
            s.get_token(&format!("{t}-{}", appid.as_str()))
                .await
                .expect("x")
        );
    }
    for k in [TokenKind::Normal, TokenKind::Stable, TokenKind::Console] {
        log!("latest", s.latest_token(appid, k).await.expect("x"));
    }
    for (w, l) in [(0, 2), (0, 2), (0, 2), (1, 2), (1, 0)] {
        log!(
            "quota",
            s.take_quota(&format!("q-{}", appid.as_str()), w, l)
                .await
                .expect("x")
        );
    }

    for (i, u) in [u1, u2].into_iter().enumerate() {
        s.create_user(&User {
            user_id: u.clone(),
            nickname: format!("n{i}"),
            token_hash: format!("{}-{i}", appid.as_str()),
            created_at: 3,
        })
        .await
        .expect("user");
    }
    log!(
        "by hash",
        s.user_by_token_hash(&format!("{}-1", appid.as_str()))
            .await
            .expect("x")
    );
    let o1 = log!(
        "sub",
        s.subscriber_for_user(appid, u1, &ids.openids[0], 4)
            .await
            .expect("x")
    )
    .openid;
    log!(
        "sub again",
        s.subscriber_for_user(appid, u1, &ids.openids[2], 4)
            .await
            .expect("x")
    );
    let o2 = s
        .subscriber_for_user(appid, u2, &ids.openids[1], 4)
        .await
        .expect("x")
        .openid;
    s.set_main_switch(appid, &o2, false).await.expect("x");
    log!("subscriber", s.subscriber(appid, &o2).await.expect("x"));
    log!(
        "subscriber unknown",
        s.subscriber(app2, &o2).await.expect("x")
    );
    s.set_main_switch(appid, &o2, true).await.expect("x");

    let code = |c: &str, exp| LoginCode {
        code: format!("{c}-{}", appid.as_str()),
        appid: appid.clone(),
        openid: o1.clone(),
        session_key: "k".into(),
        expires_at: exp,
    };
    s.insert_login_code(&code("x", 100)).await.expect("x");
    s.insert_login_code(&code("y", 10)).await.expect("x");
    let cx = format!("x-{}", appid.as_str());
    log!(
        "code",
        s.consume_login_code(&cx, app2, 50).await.expect("x")
    );
    log!(
        "code",
        s.consume_login_code(&cx, appid, 50).await.expect("x")
    );
    log!(
        "code",
        s.consume_login_code(&cx, appid, 50).await.expect("x")
    );
    log!(
        "code",
        s.consume_login_code(&format!("y-{}", appid.as_str()), appid, 50)
            .await
            .expect("x")
    );

    for t in [t1, t2, t3] {
        log!("add", s.add_template(t, 3).await.expect("x"));
    }
    let mut dup = t1.clone();
    dup.id = ids.spare_template.clone();
    log!("dup", s.add_template(&dup, 4).await.expect("x"));
    log!("cap", s.add_template(&dup, 3).await.expect("x"));
    log!("list", s.list_templates(appid).await.expect("x"));
    log!("delete", s.delete_template(appid, &t3.id).await.expect("x"));
    log!("delete", s.delete_template(appid, &t3.id).await.expect("x"));
    log!("get", s.get_template(&t2.id).await.expect("x"));

    log!("policy", s.get_policy(appid).await.expect("x"));
    s.set_policy(appid, &Policy::default()).await.expect("x");
    log!("policy", s.get_policy(appid).await.expect("x"));
    let q = QuietHours {
        start: "22:00".into(),
        end: "07:30".into(),
        utc_offset: "+08:00".into(),
    };
    s.set_user_quiet_hours(u1, Some(&q)).await.expect("x");
    log!("quiet", s.user_quiet_hours(u1).await.expect("x"));
    s.set_user_quiet_hours(u1, None).await.expect("x");
    log!("quiet", s.user_quiet_hours(u1).await.expect("x"));

    let cfg = PushConfig {
        url: "http://127.0.0.1:9/cb".into(),
        token: Secret::new("token1"),
        encoding_aes_key: Some(Secret::new("k".repeat(43))),
        format: PushFormat::Xml,
        mode: PushMode::Safe,
        extension_events: true,
        updated_at: 7,
    };
    s.set_push_config(appid, Some(&cfg)).await.expect("x");
    log!("push config", s.get_push_config(appid).await.expect("x"));

    let effect = |t: &TemplateId, result, grant, status, kept| PromptEffect {
        template_id: t.clone(),
        result,
        shown: true,
        grant,
        set_status: status,
        set_kept: kept,
    };
    let acc = Some(Decision::Accept);
    s.apply_prompt(
        appid,
        &o1,
        &[
            effect(&t2.id, PromptStatus::Accept, false, acc, acc),
            effect(&t1.id, PromptStatus::Accept, true, acc, None),
            effect(&t1.id, PromptStatus::Accept, true, acc, None),
        ],
        10,
    )
    .await
    .expect("x");
    s.apply_prompt(
        appid,
        &o2,
        &[effect(
            &t1.id,
            PromptStatus::Reject,
            false,
            Some(Decision::Reject),
            None,
        )],
        11,
    )
    .await
    .expect("x");
    log!("consents", s.consents(appid, &o1).await.expect("x"));
    log!("consents", s.consents(appid, &o2).await.expect("x"));

    let msg = |t: &PrivateTemplate, at: i64| NewMessage {
        appid: appid.clone(),
        openid: o1.clone(),
        template_id: t.id.clone(),
        title: t.title.clone(),
        page: Some(Page::parse("pages/a?x=1").expect("page")),
        rows: t.render(&example_data(t)).expect("rows"),
        data: BTreeMap::from([("k".to_owned(), "v 值".to_owned())]),
        lang: Lang::ZhCn,
        miniprogram_state: MiniprogramState::Trial,
        consume: ConsumeRule::from(t.kind),
        idempotency: None,
        urgent: at % 2 == 0,
        hold: None,
        expires_at: None,
        quotas: Vec::new(),
        created_at: at,
    };
    let m1 = match log!("m1", s.send(&msg(t1, 20)).await.expect("x")) {
        SendOutcome::Accepted { msgid, .. } => msgid,
        other => panic!("{other:?}"),
    };
    let mut m = msg(t2, 21);
    m.idempotency = Some((IdempotencyKey::parse("key").expect("key"), "h".into()));
    let m2 = match log!("m2", s.send(&m).await.expect("x")) {
        SendOutcome::Accepted { msgid, .. } => msgid,
        other => panic!("{other:?}"),
    };
    log!("replay", s.send(&m).await.expect("x"));
    m.idempotency = Some((IdempotencyKey::parse("key").expect("key"), "other".into()));
    log!("conflict", s.send(&m).await.expect("x"));
    let mut m = msg(t2, 22);
    m.hold = Some((MessageStatus::Held, 500));
    let m3 = match log!("m3", s.send(&m).await.expect("x")) {
        SendOutcome::Accepted { msgid, .. } => msgid,
        other => panic!("{other:?}"),
    };
    let mut m = msg(t2, 23);
    m.hold = Some((MessageStatus::Scheduled, 300));
    m.expires_at = Some(250);
    log!("m4", s.send(&m).await.expect("x"));
    let mut m = msg(t1, 24);
    m.expires_at = Some(100);
    log!("m5", s.send(&m).await.expect("x"));
    let mut m = msg(t2, 25);
    m.quotas = vec![QuotaCheck {
        key: format!("cap-{}", appid.as_str()),
        window_start: 0,
        limit: 1,
        rule: CapRule::PerUser,
    }];
    log!("capped ok", s.send(&m).await.expect("x"));
    log!("capped", s.send(&m).await.expect("x"));
    log!("no grants", s.send(&msg(t1, 26)).await.expect("x"));
    let mut m = msg(t1, 27);
    m.openid = ids.openids[2].clone();
    log!("unknown openid", s.send(&m).await.expect("x"));
    log!("consents", s.consents(appid, &o1).await.expect("x"));
    log!("inbox", s.inbox(u1, 0, 100).await.expect("x"));
    log!("inbox tail", s.inbox(u1, 2, 1).await.expect("x"));

    log!("ack", s.ack(u1, m1, "d1", 30).await.expect("x"));
    log!("ack", s.ack(u1, m1, "d2", 31).await.expect("x"));
    log!("ack", s.ack(u1, m1, "d1", 32).await.expect("x"));
    log!("ack other", s.ack(u2, m2, "d1", 33).await.expect("x"));
    log!("open", s.open(u1, m1, "d1", 34).await.expect("x"));
    log!("open", s.open(u1, m1, "d2", 35).await.expect("x"));
    log!("open other", s.open(u2, m1, "d1", 36).await.expect("x"));
    let ev = PushEvent::extension(
        "tuisong_msg_converted",
        t1.id.as_str(),
        m1.0,
        &[("Value", "9.5".into())],
    );
    log!(
        "event",
        s.add_event(
            appid,
            m1,
            "converted",
            Some("order 1"),
            Some(9.5),
            Some(&ev),
            37
        )
        .await
        .expect("x")
    );
    log!(
        "event",
        s.add_event(appid, m1, "converted", None, Some(0.25), None, 38)
            .await
            .expect("x")
    );
    log!(
        "event other",
        s.add_event(app2, m1, "converted", None, None, None, 39)
            .await
            .expect("x")
    );
    log!(
        "event huge",
        s.add_event(appid, MsgId(u64::MAX), "x", None, None, None, 39)
            .await
            .expect("x")
    );

    log!("release", s.release_due(200, 10).await.expect("x"));
    log!("expire", s.expire_due(99, 10).await.expect("x"));
    log!("expire", s.expire_due(260, 10).await.expect("x"));
    log!("release", s.release_due(500, 10).await.expect("x"));
    log!("release", s.release_due(600, 10).await.expect("x"));

    log!(
        "cancel m2",
        s.stop_message(appid, m2, false, 40).await.expect("x")
    );
    log!(
        "cancel m1",
        s.stop_message(appid, m1, false, 41).await.expect("x")
    );
    log!(
        "recall m1",
        s.stop_message(appid, m1, true, 42).await.expect("x")
    );
    log!(
        "recall m1",
        s.stop_message(appid, m1, true, 43).await.expect("x")
    );
    log!(
        "recall m3",
        s.stop_message(appid, m3, true, 44).await.expect("x")
    );
    log!(
        "stop other",
        s.stop_message(app2, m3, true, 45).await.expect("x")
    );
    log!(
        "stop huge",
        s.stop_message(appid, MsgId(u64::MAX), true, 45)
            .await
            .expect("x")
    );

    s.set_item_switch(appid, &o1, &t1.id, false, 50)
        .await
        .expect("x");
    s.set_item_switch(appid, &o1, &t1.id, false, 51)
        .await
        .expect("x");
    log!("consents", s.consents(appid, &o1).await.expect("x"));
    s.set_item_switch(appid, &o1, &t1.id, true, 52)
        .await
        .expect("x");
    s.set_item_switch(appid, &o2, &t3.id, true, 53)
        .await
        .expect("x");
    s.set_item_switch(appid, &o2, &t2.id, false, 54)
        .await
        .expect("x");
    log!("consents", s.consents(appid, &o1).await.expect("x"));
    log!("consents", s.consents(appid, &o2).await.expect("x"));
    log!(
        "unsubscribe",
        s.unsubscribe_from_message(u1, m2, 55).await.expect("x")
    );
    log!(
        "unsubscribe other",
        s.unsubscribe_from_message(u2, m2, 56).await.expect("x")
    );
    log!("consents", s.consents(appid, &o1).await.expect("x"));
    s.record_refusal(appid, t1.id.as_str(), "43101", 57)
        .await
        .expect("x");
    s.record_refusal(appid, t1.id.as_str(), "43101", 58)
        .await
        .expect("x");

    for id in 1..=8 {
        log!("timeline", s.timeline(MsgId(id)).await.expect("x"));
        log!("message", s.get_message(appid, MsgId(id)).await.expect("x"));
    }
    log!(
        "stats",
        s.stats(appid, None, 0, 3_600_000).await.expect("x")
    );
    log!(
        "stats t1",
        s.stats(appid, Some(t1.id.as_str()), 0, 3_600_000)
            .await
            .expect("x")
    );
    log!(
        "stats later",
        s.stats(appid, None, 3_600_000, 7_200_000).await.expect("x")
    );
    let f = |status, template_id: Option<&TemplateId>, openid: Option<&OpenId>, before, limit| {
        MessageFilter {
            status,
            template_id: template_id.map(|t| t.to_string()),
            openid: openid.map(|o| o.to_string()),
            before,
            limit,
        }
    };
    log!(
        "list",
        s.list_messages(appid, &f(None, None, None, None, 50))
            .await
            .expect("x")
    );
    log!(
        "list",
        s.list_messages(
            appid,
            &f(Some(MessageStatus::Expired), None, None, None, 50)
        )
        .await
        .expect("x")
    );
    log!(
        "list",
        s.list_messages(appid, &f(None, Some(&t2.id), Some(&o1), Some(6), 2))
            .await
            .expect("x")
    );
    log!(
        "list",
        s.list_messages(appid, &f(None, None, Some(&o2), None, 0))
            .await
            .expect("x")
    );
    log!("inbox", s.inbox(u1, 0, 100).await.expect("x"));

    let mut round = 0;
    loop {
        round += 1;
        let items = log!(
            "claim",
            s.claim_push(1_000 * round, 1_000 * round + 500, &ClaimLimits::up_to(100))
                .await
                .expect("x")
        );
        if items.is_empty() || round > 40 {
            break;
        }
        for (i, item) in items.iter().enumerate() {
            let ok = (item.id + round) % 3 != 0;
            let next = if ok || i % 2 == 0 {
                None
            } else {
                Some(1_000 * round + 700)
            };
            let a = PushAttempt {
                at: 1_000 * round,
                outbox_id: item.id,
                event: "e".into(),
                openid: item.openid.clone(),
                attempt: item.attempts + 1,
                ok,
                http_status: if ok { Some(200) } else { None },
                error: if ok { None } else { Some("timeout".into()) },
                duration_ms: 12,
                outcome: "o".into(),
            };
            s.finish_push(appid, &a, next).await.expect("x");
        }
    }
    log!("attempts", s.push_attempts(appid, 1_000).await.expect("x"));
    s.set_push_config(appid, None).await.expect("x");
    log!("push config", s.get_push_config(appid).await.expect("x"));
    out
}

struct ScriptIds {
    apps: Vec<AppId>,
    users: Vec<UserId>,
    openids: Vec<OpenId>,
    templates: Vec<PrivateTemplate>,
    spare_template: TemplateId,
}

#[cfg_attr(
    tuisong_no_pg,
    ignore = "needs PostgreSQL: set TUISONG_TEST_PG=postgres://…"
)]
#[tokio::test]
async fn the_postgres_store_answers_every_call_as_the_embedded_one() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let apps = vec![AppId::generate(), AppId::generate()];
    let lib = Library::builtin();
    let one_time: Vec<_> = lib
        .templates
        .iter()
        .filter(|t| t.kind.code() != 3)
        .collect();
    let long_term = lib
        .templates
        .iter()
        .find(|t| t.kind.code() == 3)
        .expect("a long-term template");
    let build = |tid, kids: &[u32], at| {
        PrivateTemplate::build(lib, &apps[0], tid, kids, "场景", at).expect("template")
    };
    let kids = |t: &tuisong_core::library::PubTemplate| -> Vec<u32> {
        t.keywords.iter().take(3).map(|k| k.kid).collect()
    };
    let ids = ScriptIds {
        templates: vec![
            build(one_time[0].tid, &kids(one_time[0]), 1),
            build(long_term.tid, &kids(long_term), 1),
            build(one_time[1].tid, &kids(one_time[1]), 2),
        ],
        apps,
        users: vec![UserId::generate(), UserId::generate()],
        openids: vec![OpenId::generate(), OpenId::generate(), OpenId::generate()],
        spare_template: TemplateId::generate(),
    };
    let dir = tempfile::tempdir().expect("dir");
    let sqlite: Arc<dyn Store> =
        Arc::new(SqliteStore::open(SqliteSettings::new(dir.path().join("d.db"))).expect("sqlite"));
    let pg: Arc<dyn Store> = Arc::new(PgStore::connect(&schema.url, 4).await.expect("pg"));
    let want = script(&sqlite, &ids).await;
    let got = script(&pg, &ids).await;
    for (w, g) in want.iter().zip(&got) {
        assert_eq!(
            g, w,
            "postgres (left) answers differently from sqlite (right)"
        );
    }
    assert_eq!(got.len(), want.len());
    drop(pg);
    drop(schema);
}
