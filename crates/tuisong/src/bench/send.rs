//! `send`: consent-checked, durable sends/s through `/cgi-bin/message/subscribe/send` at
//! N concurrent HTTP connections (one subscribed user each, long-term consent, caps off,
//! fsync on), next to the baseline: a trivial axum handler that answers like a successful
//! send, in its own process on the same runtime settings as `serve`, hit by the same load
//! generator. Closed loop: each connection sends its next request when the answer comes.

use super::common::{App, Latency, Progress, ServerProc, stamp_page};
use super::http::Conn;
use super::report::{Better, Context, Row, ScenarioResult, Target};
use super::{Plan, StoreChoice};
use anyhow::{Context as _, bail};
use serde_json::json;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

/// The result of one closed-loop load.
pub struct Outcome {
    /// Good answers in the measured window.
    pub ok: u64,
    /// Good answers in the whole run, warm-up included (what the devices must receive).
    pub ok_total: u64,
    pub errors: u64,
    pub secs: f64,
    pub latency: Latency,
    pub first_error: Option<String>,
}

impl Outcome {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.secs
    }
}

/// Closed-loop load: `connections` keep-alive connections (spread over `addrs`), each posting
/// `body(connection, i)` to `path` as soon as the previous answer arrived; one second of
/// warm-up, then `secs` measured. A good answer is HTTP 200 with errcode 0.
pub async fn closed_loop(
    label: &str,
    addrs: &[SocketAddr],
    path: String,
    connections: usize,
    secs: u64,
    body: Arc<dyn Fn(usize, u64) -> String + Send + Sync>,
) -> anyhow::Result<Outcome> {
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let ok_total = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let mut tasks = Vec::new();
    for w in 0..connections {
        let mut conn = Conn::connect(addrs[w % addrs.len()]).await?;
        let (path, body) = (path.clone(), body.clone());
        let (stop, measuring, ok, ok_total, errors, first_error) = (
            stop.clone(),
            measuring.clone(),
            ok.clone(),
            ok_total.clone(),
            errors.clone(),
            first_error.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(1 << 16);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let b = body(w, i);
                i += 1;
                let t0 = Instant::now();
                let good = match conn.call("POST", &path, None, &b).await {
                    Ok((200, body)) if body.starts_with(br#"{"errcode":0"#) => Ok(()),
                    Ok((s, body)) => Err(format!("HTTP {s}: {}", String::from_utf8_lossy(body))),
                    Err(e) => Err(format!("{e:#}")),
                };
                if good.is_ok() {
                    ok_total.fetch_add(1, Ordering::Relaxed);
                }
                let broken = conn_broken(&good);
                if measuring.load(Ordering::Relaxed) {
                    match good {
                        Ok(()) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            lat.push(t0.elapsed().as_micros() as u64);
                        }
                        Err(e) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            if let Ok(mut f) = first_error.lock() {
                                f.get_or_insert(e);
                            }
                        }
                    }
                }
                if broken {
                    break;
                }
            }
            lat
        }));
    }
    let t_start = Instant::now();
    let total = 1.0 + secs as f64;
    let okp = ok.clone();
    let progress = Progress::start(label, move || {
        let e = t_start.elapsed().as_secs_f64();
        let rate = okp.load(Ordering::Relaxed) as f64 / (e - 1.0).max(0.001);
        let text = if e < 1.0 {
            "warming up".to_owned()
        } else {
            format!("{rate:.0} req/s")
        };
        (e / total, text)
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    measuring.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    measuring.store(false, Ordering::SeqCst);
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    progress.finish().await;
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await?);
    }
    let first_error = first_error.lock().ok().and_then(|mut f| f.take());
    Ok(Outcome {
        ok: ok.load(Ordering::SeqCst),
        ok_total: ok_total.load(Ordering::SeqCst),
        errors: errors.load(Ordering::SeqCst),
        secs: elapsed,
        latency: Latency::of(latencies),
        first_error,
    })
}

/// A transport error leaves the connection in an unknown state: that worker stops.
fn conn_broken(r: &Result<(), String>) -> bool {
    matches!(r, Err(e) if !e.starts_with("HTTP "))
}

/// `bench baseline-server`: what `send` is compared with. Runs in `main`'s runtime, the
/// one `serve` runs in; prints its address.
pub async fn baseline_server() -> anyhow::Result<()> {
    async fn ok() -> axum::Json<serde_json::Value> {
        axum::Json(json!({"errcode": 0, "errmsg": "ok", "msgid": 1}))
    }
    let router =
        axum::Router::new().route("/cgi-bin/message/subscribe/send", axum::routing::post(ok));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("baseline listening on {}", l.local_addr()?);
    axum::serve(l, router).await?;
    Ok(())
}

/// The baseline server as a child process: (child, address).
async fn spawn_baseline() -> anyhow::Result<(tokio::process::Child, SocketAddr)> {
    let exe = std::env::current_exe()?;
    let mut child = tokio::process::Command::new(exe)
        .args(["bench", "baseline-server"])
        .env("TUISONG_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("starting the baseline server")?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().context("stdout")?).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .context("the baseline server did not start")??
        .context("the baseline server exited")?;
    let addr = line
        .strip_prefix("baseline listening on ")
        .context("baseline banner")?
        .parse()?;
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, addr))
}

pub async fn run(plan: &Plan, store: &StoreChoice, ctx: Context) -> anyhow::Result<ScenarioResult> {
    let conns = plan.http_connections;
    let secs = plan.seconds;
    eprintln!(
        "── send ({}): {conns} connections, {secs} s per target",
        store.label()
    );
    let (server, peer) = ServerProc::start_nodes(store).await?;
    let app = Arc::new(App::prepare(&server).await?);
    let users = app.users(conns, true, "send: subscribing users").await?;
    let (mut baseline, base_addr) = spawn_baseline().await?;

    let openids: Arc<Vec<String>> = Arc::new(users.into_iter().map(|u| u.openid).collect());
    let (a, o) = (app.clone(), openids.clone());
    let body: Arc<dyn Fn(usize, u64) -> String + Send + Sync> =
        Arc::new(move |w, i| a.send_body(&o[w % o.len()], &stamp_page(i)));

    let base = closed_loop(
        "send: baseline (trivial axum)",
        &[base_addr],
        "/cgi-bin/message/subscribe/send".into(),
        conns,
        secs,
        body.clone(),
    )
    .await?;
    let real = closed_loop(
        "send: tuisong subscribe/send",
        &std::iter::once(server.addr)
            .chain(peer.as_ref().map(|p| p.addr))
            .collect::<Vec<_>>(),
        app.send_path(),
        conns,
        secs,
        body,
    )
    .await?;
    let _ = baseline.kill().await;
    let rss = server.rss_kib().unwrap_or(0);
    if let Some(p) = peer {
        p.stop().await;
    }
    server.stop().await;
    if real.errors > 0 || real.ok == 0 {
        bail!(
            "{} sends failed ({} succeeded); first: {}",
            real.errors,
            real.ok,
            real.first_error.unwrap_or_default()
        );
    }
    let mut r = ScenarioResult::new(
        "send",
        ctx,
        json!({"connections": conns, "seconds": secs, "server_rss_kib_after": rss,
               "tuisong": {"ok": real.ok, "errors": real.errors, "latency_ms": real.latency},
               "baseline": {"ok": base.ok, "errors": base.errors, "latency_ms": base.latency}}),
    );
    r.rows.push(
        Row::new(
            format!("sends/s at {conns} connections"),
            "req/s",
            real.rate(),
            Better::Higher,
        )
        .baseline("trivial axum handler", Some(base.rate()))
        .target(Target::RatioAtLeast(0.5))
        .target(Target::AtLeast(20_000.0))
        .note(format!(
            "request latency p50 {:.2} / p99 {:.2} ms (baseline {:.2} / {:.2})",
            real.latency.p50, real.latency.p99, base.latency.p50, base.latency.p99
        )),
    );
    r.notes.push(
        "Each send is authenticated, validated, consent-checked (long-term grant), written with its inbox entry and committed with fsync (SQLite WAL, synchronous=FULL, group commit) before the answer; the baseline only answers. The load generator is a minimal keep-alive HTTP/1.1 client in the bench process, the same for both, sharing the machine's cores with the server.".into(),
    );
    Ok(r)
}
