//! The `Store` contract: behaviour every backend must have, especially under concurrency.
//! Each case is a function taking a [`Backend`]; `contract!` runs it twice, as
//! `<case>::sqlite` (always) and `<case>::postgres` (when `TUISONG_TEST_PG` holds a
//! connection URL; each run gets a fresh schema of its own, dropped afterwards).
//! Backend-specific cases are named for their backend: `sqlite_reopening_…` here, and the
//! several-node cases in `postgres`.

mod postgres;

use std::collections::BTreeMap;
use std::sync::Arc;
use tuisong_core::consent::{ConsumeRule, Decision, PromptEffect, PromptStatus};
use tuisong_core::ids::{AppId, OpenId, Secret, TemplateId, UserId, generate_original_id};
use tuisong_core::library::Library;
use tuisong_core::store::{
    AccessToken, AddTemplateOutcome, App, CodeOutcome, LoginCode, MessageStatus, NewMessage,
    SendOutcome, StopOutcome, Store, TokenKind, User,
};
// The sub-traits, for calls on a concrete store.
#[allow(unused_imports)]
use tuisong_core::store::{AppStore, ConsentStore, TemplateStore};
use tuisong_core::template::{PrivateTemplate, example_data};
use tuisong_core::values::{IdempotencyKey, Lang, MiniprogramState, Page};
use tuisong_store::{PgStore, SqliteSettings, SqliteStore};

struct Backend {
    name: &'static str,
    store: Arc<dyn Store>,
    _keep: Keep,
}

/// What a backend needs kept alive beside it (and cleaned up after it).
#[allow(dead_code)]
enum Keep {
    Dir(tempfile::TempDir),
    Schema(postgres::Schema),
}

async fn sqlite_backend() -> Backend {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite =
        SqliteStore::open(SqliteSettings::new(dir.path().join("t.db"))).expect("sqlite opens");
    Backend {
        name: "sqlite",
        store: Arc::new(sqlite),
        _keep: Keep::Dir(dir),
    }
}

/// None (after saying why) when `TUISONG_TEST_PG` is not set.
async fn postgres_backend() -> Option<Backend> {
    let schema = postgres::Schema::create().await?;
    let pg = PgStore::connect(&schema.url, 8)
        .await
        .expect("postgres connects and migrates");
    Some(Backend {
        name: "postgres",
        store: Arc::new(pg),
        _keep: Keep::Schema(schema),
    })
}

/// A contract case: `async fn $name(b: Backend)`, run as `$name::sqlite` and
/// `$name::postgres` (the latter skipped, saying so, without `TUISONG_TEST_PG`).
macro_rules! contract {
    ($(#[$m:meta])* $name:ident) => {
        mod $name {
            $(#[$m])*
            async fn sqlite() {
                super::$name(super::sqlite_backend().await).await;
            }

            $(#[$m])*
            #[cfg_attr(tuisong_no_pg, ignore = "needs PostgreSQL: set TUISONG_TEST_PG=postgres://…")]
            async fn postgres() {
                if let Some(b) = super::postgres_backend().await {
                    super::$name(b).await;
                }
            }
        }
    };
}

// The push outbox's fairness and leases (the cases use `contract!`, so after it).
mod push;
// Acks and opens of another user's message.
mod delivery;
// Readiness: the store's ping.
mod health;
// Retention sweeps, the login-code bound, the schema upgrade, the embedded store's files.
mod retention;

struct World {
    app: App,
    openid: OpenId,
    template: PrivateTemplate,
}

async fn world(store: &Arc<dyn Store>, kind_long_term: bool) -> World {
    let app = App {
        appid: AppId::generate(),
        name: "contract".into(),
        secret: Secret::new("0".repeat(32)),
        original_id: generate_original_id(),
        created_at: 0,
    };
    store.create_app(&app).await.expect("app");
    let user = User {
        user_id: UserId::generate(),
        nickname: "n".into(),
        token_hash: format!("{:064}", rand_u64()),
        created_at: 0,
    };
    store.create_user(&user).await.expect("user");
    let sub = store
        .subscriber_for_user(&app.appid, &user.user_id, &OpenId::generate(), 0)
        .await
        .expect("subscriber");
    let lib = Library::builtin();
    let public = lib
        .templates
        .iter()
        .find(|t| (t.kind.code() == 3) == kind_long_term)
        .expect("a template of that kind");
    let kids: Vec<u32> = public.keywords.iter().take(3).map(|k| k.kid).collect();
    let template =
        PrivateTemplate::build(lib, &app.appid, public.tid, &kids, "", 0).expect("template");
    assert_eq!(
        store.add_template(&template, 25).await.expect("add"),
        AddTemplateOutcome::Added
    );
    World {
        app,
        openid: sub.openid,
        template,
    }
}

fn rand_u64() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::SeqCst) * 7919 + std::process::id() as u64
}

fn grant(t: &TemplateId) -> PromptEffect {
    PromptEffect {
        template_id: t.clone(),
        result: PromptStatus::Accept,
        shown: true,
        grant: true,
        set_status: Some(Decision::Accept),
        set_kept: None,
    }
}

fn message(w: &World, idem: Option<(&str, &str)>) -> NewMessage {
    NewMessage {
        appid: w.app.appid.clone(),
        openid: w.openid.clone(),
        template_id: w.template.id.clone(),
        title: w.template.title.clone(),
        page: None,
        rows: w.template.render(&example_data(&w.template)).expect("rows"),
        data: BTreeMap::new(),
        lang: Lang::ZhCn,
        miniprogram_state: MiniprogramState::Formal,
        consume: ConsumeRule::from(w.template.kind),
        idempotency: idem.map(|(k, h)| (IdempotencyKey::parse(k).expect("key"), h.to_owned())),
        urgent: false,
        hold: None,
        expires_at: None,
        quotas: Vec::new(),
        created_at: 1,
    }
}

contract!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    consent_is_consumed_exactly_once_per_grant_under_concurrency
);
async fn consent_is_consumed_exactly_once_per_grant_under_concurrency(b: Backend) {
    let w = world(&b.store, false).await;
    for _ in 0..10 {
        b.store
            .apply_prompt(&w.app.appid, &w.openid, &[grant(&w.template.id)], 1)
            .await
            .expect("grant");
    }
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let (s, m) = (b.store.clone(), message(&w, None));
        tasks.push(tokio::spawn(async move { s.send(&m).await.expect("send") }));
    }
    let mut accepted = std::collections::HashSet::new();
    let mut refused = 0;
    for t in tasks {
        match t.await.expect("task") {
            SendOutcome::Accepted { msgid: id, .. } => {
                assert!(accepted.insert(id), "msgids are unique")
            }
            SendOutcome::NoConsent => refused += 1,
            other => panic!("{}: unexpected {other:?}", b.name),
        }
    }
    assert_eq!((accepted.len(), refused), (10, 190), "{}", b.name);
    let c = b
        .store
        .consents(&w.app.appid, &w.openid)
        .await
        .expect("consents");
    assert_eq!(
        (c[0].remaining, c[0].consumed_total, c[0].granted_total),
        (0, 10, 10),
        "{}",
        b.name
    );
}

contract!(
    #[tokio::test]
    a_send_to_an_unknown_openid_or_a_switched_off_template_takes_nothing
);
async fn a_send_to_an_unknown_openid_or_a_switched_off_template_takes_nothing(b: Backend) {
    let w = world(&b.store, false).await;
    b.store
        .apply_prompt(&w.app.appid, &w.openid, &[grant(&w.template.id)], 1)
        .await
        .expect("grant");
    let mut m = message(&w, None);
    m.openid = OpenId::generate();
    assert_eq!(
        b.store.send(&m).await.expect("send"),
        SendOutcome::UnknownOpenId,
        "{}",
        b.name
    );
    b.store
        .set_item_switch(&w.app.appid, &w.openid, &w.template.id, false, 2)
        .await
        .expect("off");
    assert_eq!(
        b.store.send(&message(&w, None)).await.expect("send"),
        SendOutcome::NoConsent
    );
    b.store
        .set_item_switch(&w.app.appid, &w.openid, &w.template.id, true, 3)
        .await
        .expect("on");
    b.store
        .set_main_switch(&w.app.appid, &w.openid, false)
        .await
        .expect("main off");
    assert_eq!(
        b.store.send(&message(&w, None)).await.expect("send"),
        SendOutcome::NoConsent
    );
    b.store
        .set_main_switch(&w.app.appid, &w.openid, true)
        .await
        .expect("main on");
    assert!(matches!(
        b.store.send(&message(&w, None)).await.expect("send"),
        SendOutcome::Accepted { msgid: _, .. }
    ));
}

contract!(
    #[tokio::test]
    a_long_term_subscription_is_not_used_up
);
async fn a_long_term_subscription_is_not_used_up(b: Backend) {
    let w = world(&b.store, true).await;
    assert_eq!(
        b.store.send(&message(&w, None)).await.expect("send"),
        SendOutcome::NoConsent
    );
    let mut e = grant(&w.template.id);
    e.grant = false;
    b.store
        .apply_prompt(&w.app.appid, &w.openid, &[e], 1)
        .await
        .expect("accept");
    for _ in 0..5 {
        assert!(
            matches!(
                b.store.send(&message(&w, None)).await.expect("send"),
                SendOutcome::Accepted { msgid: _, .. }
            ),
            "{}",
            b.name
        );
    }
}

contract!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    concurrent_sends_with_one_idempotency_key_make_one_message
);
async fn concurrent_sends_with_one_idempotency_key_make_one_message(b: Backend) {
    let w = world(&b.store, false).await;
    for _ in 0..5 {
        b.store
            .apply_prompt(&w.app.appid, &w.openid, &[grant(&w.template.id)], 1)
            .await
            .expect("grant");
    }
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (s, m) = (b.store.clone(), message(&w, Some(("k1", "h1"))));
        tasks.push(tokio::spawn(async move { s.send(&m).await.expect("send") }));
    }
    let mut ids = std::collections::HashSet::new();
    let mut accepted = 0;
    for t in tasks {
        match t.await.expect("task") {
            SendOutcome::Accepted { msgid: id, .. } => {
                accepted += 1;
                ids.insert(id);
            }
            SendOutcome::Replayed(id) => {
                ids.insert(id);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((accepted, ids.len()), (1, 1), "{}", b.name);
    assert_eq!(
        b.store
            .send(&message(&w, Some(("k1", "other"))))
            .await
            .expect("send"),
        SendOutcome::IdempotencyConflict
    );
    let c = b
        .store
        .consents(&w.app.appid, &w.openid)
        .await
        .expect("consents");
    assert_eq!(c[0].remaining, 4, "{}: one grant taken", b.name);
}

contract!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    a_quota_admits_exactly_its_limit_per_window
);
async fn a_quota_admits_exactly_its_limit_per_window(b: Backend) {
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let s = b.store.clone();
        tasks.push(tokio::spawn(async move {
            s.take_quota("q", 1000, 30).await.expect("quota")
        }));
    }
    let mut yes = 0;
    for t in tasks {
        yes += usize::from(t.await.expect("task"));
    }
    assert_eq!(yes, 30, "{}", b.name);
    assert!(
        b.store.take_quota("q", 2000, 30).await.expect("quota"),
        "a new window resets"
    );
    assert!(
        !b.store.take_quota("other", 1000, 0).await.expect("quota"),
        "limit 0 admits none"
    );
}

contract!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    the_template_cap_and_duplicates_hold_under_concurrency
);
async fn the_template_cap_and_duplicates_hold_under_concurrency(b: Backend) {
    let appid = AppId::generate();
    let lib = Library::builtin();
    let mut tasks = Vec::new();
    for public in lib.templates.iter().take(40) {
        let t = PrivateTemplate::build(lib, &appid, public.tid, &[1, 2], "", 0).expect("template");
        let s = b.store.clone();
        tasks.push(tokio::spawn(async move {
            s.add_template(&t, 25).await.expect("add")
        }));
    }
    let mut added = 0;
    for t in tasks {
        if t.await.expect("task") == AddTemplateOutcome::Added {
            added += 1;
        }
    }
    assert_eq!(added, 25, "{}", b.name);
    let first = &lib.templates[0];
    let dup =
        PrivateTemplate::build(lib, &AppId::generate(), first.tid, &[2, 1], "", 0).expect("t");
    assert_eq!(
        b.store.add_template(&dup, 25).await.expect("add"),
        AddTemplateOutcome::Added
    );
    let again = PrivateTemplate::build(lib, &dup.appid, first.tid, &[1, 2], "", 0).expect("t");
    assert_eq!(
        b.store.add_template(&again, 25).await.expect("add"),
        AddTemplateOutcome::Duplicate
    );
}

contract!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    a_login_code_is_used_once_even_when_raced
);
async fn a_login_code_is_used_once_even_when_raced(b: Backend) {
    let w = world(&b.store, false).await;
    let code = LoginCode {
        code: "race".into(),
        appid: w.app.appid.clone(),
        openid: w.openid.clone(),
        session_key: "k".into(),
        expires_at: 10_000,
    };
    b.store.insert_login_code(&code).await.expect("code");
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (s, appid) = (b.store.clone(), w.app.appid.clone());
        tasks.push(tokio::spawn(async move {
            s.consume_login_code("race", &appid, 5_000)
                .await
                .expect("consume")
        }));
    }
    let mut valid = 0;
    for t in tasks {
        match t.await.expect("task") {
            CodeOutcome::Valid { .. } => valid += 1,
            CodeOutcome::Used => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(valid, 1, "{}", b.name);
    let mine = LoginCode {
        code: "mine".into(),
        ..code.clone()
    };
    b.store.insert_login_code(&mine).await.expect("code");
    assert_eq!(
        b.store
            .consume_login_code("mine", &AppId::generate(), 5_000)
            .await
            .expect("c"),
        CodeOutcome::Unknown,
        "another app's credentials neither use nor see the code"
    );
    assert!(matches!(
        b.store
            .consume_login_code("mine", &w.app.appid, 5_000)
            .await
            .expect("c"),
        CodeOutcome::Valid { .. }
    ));
    assert_eq!(
        b.store
            .consume_login_code("nope", &w.app.appid, 5_000)
            .await
            .expect("c"),
        CodeOutcome::Unknown
    );
    let late = LoginCode {
        code: "late".into(),
        ..code
    };
    b.store.insert_login_code(&late).await.expect("code");
    assert_eq!(
        b.store
            .consume_login_code("late", &w.app.appid, 10_001)
            .await
            .expect("c"),
        CodeOutcome::Expired
    );
}

contract!(
    #[tokio::test]
    issuing_a_token_cuts_the_older_ones_to_the_grace_period
);
async fn issuing_a_token_cuts_the_older_ones_to_the_grace_period(b: Backend) {
    let appid = AppId::generate();
    let t = |token: &str, kind, at: i64| AccessToken {
        token: token.into(),
        appid: appid.clone(),
        kind,
        created_at: at,
        expires_at: at + 7_200_000,
        superseded: false,
    };
    b.store
        .issue_token(&t("a", TokenKind::Normal, 0), 300_000)
        .await
        .expect("a");
    b.store
        .issue_token(&t("s", TokenKind::Stable, 0), 300_000)
        .await
        .expect("s");
    b.store
        .issue_token(&t("b", TokenKind::Normal, 1000), 301_000)
        .await
        .expect("b");
    let a = b.store.get_token("a").await.expect("get").expect("a");
    assert_eq!((a.expires_at, a.superseded), (301_000, true), "{}", b.name);
    let s = b.store.get_token("s").await.expect("get").expect("s");
    assert_eq!(
        (s.expires_at, s.superseded),
        (7_200_000, false),
        "stable tokens are isolated"
    );
    let latest = b
        .store
        .latest_token(&appid, TokenKind::Normal)
        .await
        .expect("latest")
        .expect("b");
    assert_eq!(latest.token, "b");
    assert!(b.store.get_token("zzz").await.expect("get").is_none());
}

#[tokio::test]
async fn sqlite_reopening_the_database_keeps_everything() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("r.db");
    let (appid, openid, tid) = {
        let s: Arc<dyn Store> =
            Arc::new(SqliteStore::open(SqliteSettings::new(&path)).expect("open"));
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
            SendOutcome::Accepted { msgid: _, .. }
        ));
        (w.app.appid, w.openid, w.template.id)
    };
    let s = SqliteStore::open(SqliteSettings::new(&path)).expect("reopen");
    assert!(s.get_app(&appid).await.expect("app").is_some());
    assert!(s.get_template(&tid).await.expect("t").is_some());
    let c = s.consents(&appid, &openid).await.expect("consents");
    assert_eq!((c[0].remaining, c[0].consumed_total), (1, 1));
}

contract!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    inbox_seqs_count_without_gaps_under_concurrency
);
async fn inbox_seqs_count_without_gaps_under_concurrency(b: Backend) {
    let w = world(&b.store, true).await;
    let mut e = grant(&w.template.id);
    e.grant = false;
    b.store
        .apply_prompt(&w.app.appid, &w.openid, &[e], 1)
        .await
        .expect("accept");
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (s, m) = (b.store.clone(), message(&w, None));
        tasks.push(tokio::spawn(async move { s.send(&m).await.expect("send") }));
    }
    let mut seqs = Vec::new();
    for t in tasks {
        match t.await.expect("task") {
            SendOutcome::Accepted { entry: Some(e), .. } => seqs.push(e.seq),
            other => panic!("unexpected {other:?}"),
        }
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=100).collect::<Vec<u64>>(), "{}", b.name);
    let sub = b
        .store
        .subscriber(&w.app.appid, &w.openid)
        .await
        .expect("s")
        .expect("sub");
    let inbox = b.store.inbox(&sub.user_id, 90, 50).await.expect("inbox");
    assert_eq!(
        inbox.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (91..=100).collect::<Vec<_>>()
    );
}

contract!(
    #[tokio::test]
    cancelling_and_expiring_give_one_time_grants_back_once
);
async fn cancelling_and_expiring_give_one_time_grants_back_once(b: Backend) {
    let w = world(&b.store, false).await;
    for _ in 0..2 {
        b.store
            .apply_prompt(&w.app.appid, &w.openid, &[grant(&w.template.id)], 1)
            .await
            .expect("grant");
    }
    let SendOutcome::Accepted { msgid: a, .. } =
        b.store.send(&message(&w, None)).await.expect("send")
    else {
        panic!("accepted")
    };
    let mut m = message(&w, None);
    m.expires_at = Some(100);
    let SendOutcome::Accepted { msgid: x, .. } = b.store.send(&m).await.expect("send") else {
        panic!("accepted")
    };
    let remaining = |s: &Arc<dyn Store>| {
        let (s, app, o) = (s.clone(), w.app.appid.clone(), w.openid.clone());
        async move { s.consents(&app, &o).await.expect("c")[0].remaining }
    };
    assert_eq!(remaining(&b.store).await, 0);
    let out = b
        .store
        .stop_message(&w.app.appid, a, false, 10)
        .await
        .expect("stop");
    assert!(
        matches!(
            out,
            StopOutcome::Cancelled {
                refunded: true,
                tombstone: Some(_)
            }
        ),
        "{}: {out:?}",
        b.name
    );
    assert_eq!(remaining(&b.store).await, 1);
    assert_eq!(
        b.store
            .stop_message(&w.app.appid, a, true, 11)
            .await
            .expect("stop"),
        StopOutcome::TooLate(MessageStatus::Cancelled)
    );
    assert_eq!(b.store.expire_due(99, 10).await.expect("expire"), vec![]);
    assert_eq!(b.store.expire_due(100, 10).await.expect("expire"), vec![x]);
    assert_eq!(
        b.store.expire_due(200, 10).await.expect("expire"),
        vec![],
        "expired once"
    );
    assert_eq!(remaining(&b.store).await, 2);
    assert_eq!(
        b.store
            .stop_message(&AppId::generate(), x, true, 12)
            .await
            .expect("stop"),
        StopOutcome::NotFound
    );
}

contract!(
    #[tokio::test]
    held_messages_are_released_when_due_and_not_before
);
async fn held_messages_are_released_when_due_and_not_before(b: Backend) {
    let w = world(&b.store, true).await;
    let mut e = grant(&w.template.id);
    e.grant = false;
    b.store
        .apply_prompt(&w.app.appid, &w.openid, &[e], 1)
        .await
        .expect("accept");
    let mut m = message(&w, None);
    m.hold = Some((MessageStatus::Held, 500));
    let SendOutcome::Accepted { msgid, entry } = b.store.send(&m).await.expect("send") else {
        panic!("accepted")
    };
    assert!(entry.is_none(), "a held message has no inbox entry yet");
    assert!(
        b.store
            .release_due(499, 10)
            .await
            .expect("release")
            .is_empty()
    );
    let released = b.store.release_due(500, 10).await.expect("release");
    assert_eq!(released.len(), 1, "{}", b.name);
    assert_eq!((released[0].message.msgid, released[0].seq), (msgid, 1));
    assert!(
        b.store
            .release_due(600, 10)
            .await
            .expect("release")
            .is_empty(),
        "released once"
    );
}

contract!(
    #[tokio::test]
    the_push_outbox_hands_out_one_event_per_user_in_order_and_leases_it
);
async fn the_push_outbox_hands_out_one_event_per_user_in_order_and_leases_it(b: Backend) {
    use tuisong_core::push::{ClaimLimits, PushAttempt, PushConfig, PushFormat, PushMode};
    let w = world(&b.store, false).await;
    // No config: nothing is queued.
    b.store
        .apply_prompt(&w.app.appid, &w.openid, &[grant(&w.template.id)], 1)
        .await
        .expect("g");
    assert!(
        b.store
            .claim_push(10, 20, &ClaimLimits::up_to(10))
            .await
            .expect("claim")
            .is_empty()
    );
    let cfg = PushConfig {
        url: "http://127.0.0.1:9/cb".into(),
        token: Secret::new("token1"),
        encoding_aes_key: None,
        format: PushFormat::Json,
        mode: PushMode::Plaintext,
        extension_events: false,
        updated_at: 0,
    };
    b.store
        .set_push_config(&w.app.appid, Some(&cfg))
        .await
        .expect("config");
    b.store
        .apply_prompt(&w.app.appid, &w.openid, &[grant(&w.template.id)], 2)
        .await
        .expect("g");
    b.store
        .apply_prompt(&w.app.appid, &w.openid, &[grant(&w.template.id)], 3)
        .await
        .expect("g");
    let first = b
        .store
        .claim_push(10, 1_000, &ClaimLimits::up_to(10))
        .await
        .expect("claim");
    assert_eq!(first.len(), 1, "{}: only the oldest of one user", b.name);
    assert!(
        b.store
            .claim_push(20, 2_000, &ClaimLimits::up_to(10))
            .await
            .expect("claim")
            .is_empty(),
        "leased, and it blocks the next"
    );
    let attempt = |id, ok| PushAttempt {
        at: 30,
        outbox_id: id,
        event: "subscribe_msg_popup_event".into(),
        openid: w.openid.to_string(),
        attempt: 1,
        ok,
        http_status: Some(500),
        error: None,
        duration_ms: 1,
        outcome: String::new(),
    };
    b.store
        .finish_push(&w.app.appid, &attempt(first[0].id, false), Some(50))
        .await
        .expect("retry");
    assert!(
        b.store
            .claim_push(40, 2_000, &ClaimLimits::up_to(10))
            .await
            .expect("claim")
            .is_empty(),
        "not before the retry time"
    );
    let again = b
        .store
        .claim_push(50, 2_000, &ClaimLimits::up_to(10))
        .await
        .expect("claim");
    assert_eq!(again[0].id, first[0].id);
    assert_eq!(again[0].attempts, 1);
    b.store
        .finish_push(&w.app.appid, &attempt(first[0].id, true), None)
        .await
        .expect("done");
    let next = b
        .store
        .claim_push(60, 2_000, &ClaimLimits::up_to(10))
        .await
        .expect("claim");
    assert_eq!(next.len(), 1);
    assert!(next[0].id > first[0].id, "then the next one of that user");
    assert_eq!(
        b.store
            .push_attempts(&w.app.appid, 10)
            .await
            .expect("attempts")
            .len(),
        2
    );
}
