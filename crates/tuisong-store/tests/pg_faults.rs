//! PostgreSQL faults under the store: connections terminated by the server
//! (`pg_terminate_backend`, as an operator or a failover does), and a database that
//! cannot be reached at all (a TCP proxy in front of it, cut and restored). Needs
//! `TUISONG_TEST_PG`; without it each test prints why it is skipped.
//!
//! Each test's store connects with an `application_name` of its own, so it terminates
//! only its own backends; other tests may share the database.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio_postgres::NoTls;
use tuisong_core::consent::{ConsumeRule, Decision, PromptEffect, PromptStatus};
use tuisong_core::ids::{AppId, OpenId, Secret, UserId, generate_original_id};
use tuisong_core::library::Library;
use tuisong_core::store::{
    AddTemplateOutcome, App, AppStore, ConsentStore, DeliveryStore, MessageFilter, MessageStore,
    NewMessage, SendOutcome, Store, StoreError, User,
};
use tuisong_core::template::{PrivateTemplate, example_data};
use tuisong_core::values::{Lang, MiniprogramState};
use tuisong_store::PgStore;

const ENV: &str = "TUISONG_TEST_PG";

fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A schema of its own and an application name of its own on the test database.
struct Db {
    base: String,
    schema: String,
    app_name: String,
    admin: tokio_postgres::Client,
}

impl Db {
    /// None (after saying so) when `TUISONG_TEST_PG` is not set.
    async fn create(test: &str) -> Option<Db> {
        let Ok(base) = std::env::var(ENV) else {
            println!("skipped {test}: {ENV} not set");
            return None;
        };
        let (admin, conn) = tokio_postgres::connect(&base, NoTls)
            .await
            .unwrap_or_else(|e| panic!("{ENV}: cannot connect: {e}"));
        tokio::spawn(conn);
        let schema = unique("tuisong_fault");
        admin
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("create schema");
        Some(Db {
            base,
            app_name: format!("{schema}_store"),
            schema,
            admin,
        })
    }

    /// The store's URL: `base` (or another address of the same server) with this
    /// test's schema and application name.
    fn url(&self, base: &str) -> String {
        self.url_as(base, &self.app_name)
    }

    fn url_as(&self, base: &str, app_name: &str) -> String {
        let sep = if base.contains('?') { '&' } else { '?' };
        format!(
            "{base}{sep}options=-csearch_path%3D{}&application_name={app_name}",
            self.schema
        )
    }

    /// Terminates every backend of this test's store; returns how many.
    async fn terminate(&self, only_waiting: bool) -> usize {
        let rows = self
            .admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()
                   AND application_name = $1 AND (NOT $2 OR wait_event_type = 'Lock')",
                &[&self.app_name, &only_waiting],
            )
            .await
            .expect("terminate");
        rows.len()
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let (base, schema) = (self.base.clone(), self.schema.clone());
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
                        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .await;
                }
            });
        })
        .join();
    }
}

struct World {
    app: App,
    user: User,
    openid: OpenId,
    template: PrivateTemplate,
}

async fn world(store: &dyn Store) -> World {
    let app = App {
        appid: AppId::generate(),
        name: "faults".into(),
        secret: Secret::new("0".repeat(32)),
        original_id: generate_original_id(),
        created_at: 0,
    };
    store.create_app(&app).await.expect("app");
    let user = User {
        user_id: UserId::generate(),
        nickname: "n".into(),
        token_hash: unique("hash"),
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
        .find(|t| t.kind.code() == 2)
        .expect("a one-time template");
    let kids: Vec<u32> = public.keywords.iter().take(3).map(|k| k.kid).collect();
    let template =
        PrivateTemplate::build(lib, &app.appid, public.tid, &kids, "", 0).expect("template");
    assert_eq!(
        store.add_template(&template, 25).await.expect("add"),
        AddTemplateOutcome::Added
    );
    World {
        app,
        user,
        openid: sub.openid,
        template,
    }
}

fn grant(w: &World) -> PromptEffect {
    PromptEffect {
        template_id: w.template.id.clone(),
        result: PromptStatus::Accept,
        shown: true,
        grant: true,
        set_status: Some(Decision::Accept),
        set_kept: None,
    }
}

fn message(w: &World) -> NewMessage {
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
        idempotency: None,
        urgent: false,
        hold: None,
        expires_at: None,
        quotas: Vec::new(),
        created_at: 1,
    }
}

#[cfg_attr(
    tuisong_no_pg,
    ignore = "needs PostgreSQL: set TUISONG_TEST_PG=postgres://…"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_whose_backend_is_terminated_mid_transaction_runs_again_and_takes_one_grant() {
    let Some(db) = Db::create("pg terminate mid-transaction").await else {
        return;
    };
    let store = Arc::new(PgStore::connect(&db.url(&db.base), 4).await.expect("store"));
    let w = world(store.as_ref()).await;
    for _ in 0..3 {
        store
            .apply_prompt(&w.app.appid, &w.openid, &[grant(&w)], 1)
            .await
            .expect("grant");
    }
    // Hold the user's row: the send consumes its grant, then waits for the inbox seq.
    let (mut holder, conn) = tokio_postgres::connect(&db.url_as(&db.base, "holder"), NoTls)
        .await
        .expect("holder connects");
    tokio::spawn(conn);
    let tx = holder.transaction().await.expect("begin");
    tx.execute(
        "SELECT 1 FROM users WHERE user_id = $1 FOR UPDATE",
        &[&w.user.user_id.as_str()],
    )
    .await
    .expect("lock the user row");
    let send = tokio::spawn({
        let (store, m) = (store.clone(), message(&w));
        async move { store.send(&m).await }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.terminate(true).await == 0 {
        assert!(
            Instant::now() < deadline,
            "the send never waited on the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tx.commit().await.expect("release the row");
    let outcome = send
        .await
        .expect("task")
        .expect("the send runs again and succeeds");
    assert!(
        matches!(outcome, SendOutcome::Accepted { .. }),
        "{outcome:?}"
    );
    let c = store
        .consents(&w.app.appid, &w.openid)
        .await
        .expect("consents");
    assert_eq!(
        (c[0].granted_total, c[0].consumed_total, c[0].remaining),
        (3, 1, 2),
        "the terminated attempt was rolled back; the second took one grant"
    );
    let messages = store
        .list_messages(
            &w.app.appid,
            &MessageFilter {
                status: None,
                template_id: None,
                openid: None,
                before: None,
                limit: 100,
            },
        )
        .await
        .expect("messages");
    assert_eq!(messages.len(), 1, "one message, not two");
    let inbox = store.inbox(&w.user.user_id, 0, 10).await.expect("inbox");
    assert_eq!(inbox.len(), 1);
}

#[cfg_attr(
    tuisong_no_pg,
    ignore = "needs PostgreSQL: set TUISONG_TEST_PG=postgres://…"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_and_writes_after_every_connection_was_terminated_succeed_on_fresh_ones() {
    let Some(db) = Db::create("pg terminate idle connections").await else {
        return;
    };
    let store = PgStore::connect(&db.url(&db.base), 4).await.expect("store");
    let w = world(&store).await;
    for round in 0..5 {
        // Warm several pooled connections, then kill them all while idle.
        let reads = (0..4).map(|_| store.get_app(&w.app.appid));
        for r in join_all(reads).await {
            assert!(r.expect("read").is_some());
        }
        assert!(db.terminate(false).await > 0, "round {round}: our backends");
        assert!(
            store.get_app(&w.app.appid).await.expect("a read").is_some(),
            "round {round}"
        );
        assert!(db.terminate(false).await > 0);
        store
            .apply_prompt(&w.app.appid, &w.openid, &[grant(&w)], 1)
            .await
            .unwrap_or_else(|e| panic!("round {round}: a write: {e}"));
    }
    let c = store
        .consents(&w.app.appid, &w.openid)
        .await
        .expect("consents");
    assert_eq!(c[0].granted_total, 5, "each write applied once");
}

/// Runs the futures concurrently on this task.
async fn join_all<F: std::future::Future>(fs: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut handles: Vec<_> = fs.map(|f| Some(Box::pin(f))).collect();
    let mut results: Vec<Option<F::Output>> = handles.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (h, r) in handles.iter_mut().zip(results.iter_mut()) {
            if let Some(f) = h {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *r = Some(v);
                        *h = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    results.into_iter().map(|r| r.expect("done")).collect()
}

/// A TCP proxy in front of PostgreSQL that can be cut (every connection through it
/// closed, new ones closed at once) and restored. Counts the connections it accepted.
struct Proxy {
    addr: std::net::SocketAddr,
    up: tokio::sync::watch::Sender<bool>,
    accepted: Arc<AtomicUsize>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (up, up_rx) = tokio::sync::watch::channel(true);
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut up = up_rx.clone();
                if !*up.borrow() {
                    drop(client);
                    continue;
                }
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = up.wait_for(|u| !*u) => {}
                    }
                });
            }
        });
        Proxy { addr, up, accepted }
    }

    fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

/// `url` with its `host:port` replaced, when it is a `postgres://` URL.
fn via(url: &str, addr: std::net::SocketAddr) -> Option<(String, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let (user, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), authority),
    };
    let target = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    Some((target, format!("{scheme}://{user}{addr}{tail}")))
}

#[cfg_attr(
    tuisong_no_pg,
    ignore = "needs PostgreSQL: set TUISONG_TEST_PG=postgres://…"
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_database_is_unreachable_calls_fail_fast_and_reconnects_are_paced() {
    let Some(db) = Db::create("pg unreachable").await else {
        return;
    };
    let Some((target, _)) = via(&db.base, "127.0.0.1:1".parse().expect("addr")) else {
        println!("skipped pg unreachable: {ENV} is not a postgres:// URL");
        return;
    };
    let proxy = Proxy::start(target).await;
    let (_, base) = via(&db.base, proxy.addr).expect("url");
    let store = PgStore::connect(&db.url(&base), 4).await.expect("store");
    let w = world(&store).await;

    proxy.set_up(false);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = proxy.accepted.load(Ordering::SeqCst);
    let started = Instant::now();
    let mut unavailable = 0;
    // One second of requests, 20 at a time.
    while started.elapsed() < Duration::from_secs(1) {
        for r in join_all((0..20).map(|_| store.get_app(&w.app.appid))).await {
            match r {
                Err(StoreError::Unavailable(_)) => unavailable += 1,
                other => panic!("the store is cut off: {other:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let attempts = proxy.accepted.load(Ordering::SeqCst) - before;
    // The first failures of a healthy pool (at most its 4 connections), then one probe
    // per window: 100, 200, 400 ms … — a handful in a second, not one per request.
    assert!(unavailable >= 500, "{unavailable} requests answered");
    assert!(
        attempts <= 4 + 4,
        "{attempts} connect attempts for {unavailable} requests"
    );

    proxy.set_up(true);
    let restored = Instant::now();
    loop {
        match store.get_app(&w.app.appid).await {
            Ok(app) => {
                assert!(app.is_some());
                break;
            }
            Err(StoreError::Unavailable(_)) => {
                assert!(
                    restored.elapsed() < Duration::from_secs(7),
                    "no reconnect within the longest backoff"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    store
        .apply_prompt(&w.app.appid, &w.openid, &[grant(&w)], 1)
        .await
        .expect("writes work again");
}
