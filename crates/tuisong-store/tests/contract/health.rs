//! Readiness: `HealthStore::ping` answers on a live store, and on PostgreSQL it fails
//! once the database cannot be reached (what `/readyz` reports as `store`).

use super::{Backend, postgres, postgres_backend, sqlite_backend};
use std::sync::{Arc, Mutex};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tuisong_core::store::HealthStore;
use tuisong_store::PgStore;

async fn a_live_store_answers_ping(b: Backend) {
    for _ in 0..3 {
        b.store
            .ping()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", b.name));
    }
}

contract!(
    #[tokio::test]
    a_live_store_answers_ping
);

/// A TCP relay to `target` that can be cut: its listener and every relayed connection end.
struct Relay {
    addr: std::net::SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Relay {
    async fn start(target: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let held = tasks.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let relay = tokio::spawn(async move {
                    if let Ok(mut out) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
                held.lock().expect("lock").push(relay);
            }
        });
        tasks.lock().expect("lock").push(accept);
        Relay { addr, tasks }
    }

    fn cut(&self) {
        for t in self.tasks.lock().expect("lock").drain(..) {
            t.abort();
        }
    }
}

#[cfg_attr(
    tuisong_no_pg,
    ignore = "needs PostgreSQL: set TUISONG_TEST_PG=postgres://…"
)]
#[tokio::test]
async fn postgres_ping_fails_when_the_database_is_unreachable() {
    let Some(schema) = postgres::Schema::create().await else {
        return;
    };
    let config: tokio_postgres::Config = schema.url.parse().expect("url");
    let (Some(tokio_postgres::config::Host::Tcp(host)), Some(port)) =
        (config.get_hosts().first(), config.get_ports().first())
    else {
        println!("skipped: the test database is not on TCP");
        return;
    };
    let target = format!("{host}:{port}");
    if !schema.url.contains(&target) {
        println!("skipped: cannot point {} at a relay", schema.url);
        return;
    }
    let relay = Relay::start(target.clone()).await;
    let url = schema.url.replacen(&target, &relay.addr.to_string(), 1);
    let store = PgStore::connect(&url, 2).await.expect("connects");
    store.ping().await.expect("live");
    relay.cut();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        store.ping().await.is_err(),
        "ping answered with the database gone"
    );
}
