//! `tuisong bench send`: consent-checked, durable sends/s through
//! `/cgi-bin/message/subscribe/send` at N concurrent connections, next to a baseline
//! measured in the same run: a trivial axum handler on the same runtime, hit by the same
//! load generator. The ratio is the claim; absolute numbers drift on shared machines.

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tuisong_server::{Application, BuildOptions, Settings};

#[derive(Clone, Copy, ValueEnum)]
pub enum Scenario {
    Send,
}

#[derive(Args)]
pub struct BenchArgs {
    scenario: Scenario,
    /// Concurrent HTTP connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Seconds measured per target (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// A few seconds only: checks the bench still works (CI).
    #[arg(long)]
    smoke: bool,
}

struct Outcome {
    ok: u64,
    errors: u64,
    secs: f64,
    latencies_us: Vec<u64>,
}

impl Outcome {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.secs
    }
    fn pct(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() as f64 - 1.0) * p).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

/// Runs `connections` workers posting `body_for(worker)` to `url` for `secs` seconds.
async fn load(
    url: String,
    bodies: Vec<String>,
    connections: usize,
    secs: u64,
) -> anyhow::Result<Outcome> {
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..connections {
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()?;
        let (url, body) = (url.clone(), bodies[w % bodies.len()].clone());
        let (stop, measuring, ok, errors) =
            (stop.clone(), measuring.clone(), ok.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t0 = Instant::now();
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                let good = match r {
                    Ok(resp) => match resp.bytes().await {
                        Ok(b) => b.starts_with(br#"{"errcode":0"#),
                        Err(_) => false,
                    },
                    Err(_) => false,
                };
                if measuring.load(Ordering::Relaxed) {
                    if good {
                        ok.fetch_add(1, Ordering::Relaxed);
                        lat.push(t0.elapsed().as_micros() as u64);
                    } else {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    measuring.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    measuring.store(false, Ordering::SeqCst);
    let elapsed = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let mut latencies_us = Vec::new();
    for t in tasks {
        latencies_us.extend(t.await?);
    }
    latencies_us.sort_unstable();
    Ok(Outcome {
        ok: ok.load(Ordering::SeqCst),
        errors: errors.load(Ordering::SeqCst),
        secs: elapsed,
        latencies_us,
    })
}

/// The baseline: an axum handler that answers like a successful send and does nothing.
async fn baseline_server() -> anyhow::Result<String> {
    async fn ok() -> axum::Json<Value> {
        axum::Json(json!({"errcode": 0, "errmsg": "ok", "msgid": 1}))
    }
    let router =
        axum::Router::new().route("/cgi-bin/message/subscribe/send", axum::routing::post(ok));
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/cgi-bin/message/subscribe/send", l.local_addr()?);
    tokio::spawn(async move { axum::serve(l, router).await });
    Ok(url)
}

async fn post_json(
    c: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    body: Value,
) -> anyhow::Result<Value> {
    let mut r = c.post(url).json(&body);
    if let Some(b) = bearer {
        r = r.bearer_auth(b);
    }
    Ok(r.send().await?.json().await?)
}

/// Starts tuisong on a fresh data dir and prepares one subscribed user per connection.
async fn tuisong_server(
    dir: &std::path::Path,
    users: usize,
) -> anyhow::Result<(String, Vec<String>)> {
    let settings = Settings {
        data_dir: dir.to_owned(),
        listen: "127.0.0.1:0".parse()?,
        ..Settings::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let app = Application::build_with(
        settings,
        BuildOptions {
            listener: Some(listener),
            ..Default::default()
        },
    )
    .await?;
    let demo = app.demo.as_ref().context("the bench needs the demo app")?;
    let base = format!("http://{}", app.local_addr());
    let appid = demo.app.appid.to_string();
    let secret = demo.app.secret.expose().to_owned();
    let template = demo
        .templates
        .iter()
        .find(|t| t.kind.code() == 3)
        .context("the demo app has a long-term template")?
        .clone();
    tokio::spawn(app.run_until(std::future::pending()));
    let c = reqwest::Client::new();
    let tok: Value = c
        .get(format!(
            "{base}/cgi-bin/token?grant_type=client_credential&appid={appid}&secret={secret}"
        ))
        .send()
        .await?
        .json()
        .await?;
    let token = tok["access_token"].as_str().context("token")?.to_owned();
    let data: serde_json::Map<String, Value> = template
        .keywords
        .iter()
        .map(|k| (k.key(), json!({"value": k.example})))
        .collect();
    let mut bodies = Vec::new();
    for i in 0..users {
        let u = post_json(
            &c,
            &format!("{base}/client/v1/users"),
            None,
            json!({"nickname": format!("bench{i}")}),
        )
        .await?;
        let dt = u["device_token"]
            .as_str()
            .context("device token")?
            .to_owned();
        let code = post_json(
            &c,
            &format!("{base}/client/v1/login"),
            Some(&dt),
            json!({"appid": appid}),
        )
        .await?;
        let code = code["code"].as_str().context("code")?;
        let s: Value = c
            .get(format!("{base}/sns/jscode2session?appid={appid}&secret={secret}&js_code={code}&grant_type=authorization_code"))
            .send()
            .await?
            .json()
            .await?;
        let openid = s["openid"].as_str().context("openid")?.to_owned();
        let tid = template.id.to_string();
        let r = post_json(
            &c,
            &format!("{base}/client/v1/subscribe"),
            Some(&dt),
            json!({"appid": appid, "tmplIds": [tid], "decisions": {tid.clone(): "accept"}}),
        )
        .await?;
        if r[&tid] != "accept" {
            bail!("subscribing failed: {r}");
        }
        bodies.push(json!({"touser": openid, "template_id": tid, "data": data}).to_string());
    }
    Ok((
        format!("{base}/cgi-bin/message/subscribe/send?access_token={token}"),
        bodies,
    ))
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.scenario {
        Scenario::Send => {}
    }
    let secs = if args.smoke { 2 } else { args.seconds };
    let dir = tempfile::tempdir()?;
    eprintln!(
        "bench send: {} connections, {secs}s per target",
        args.connections
    );
    let (send_url, bodies) = tuisong_server(dir.path(), args.connections).await?;
    let base_url = baseline_server().await?;
    eprintln!("measuring the baseline (trivial axum handler)…");
    let base = load(base_url, bodies.clone(), args.connections, secs).await?;
    eprintln!("measuring tuisong subscribe/send (SQLite, fsync on)…");
    let real = load(send_url, bodies, args.connections, secs).await?;
    if real.errors > 0 || real.ok == 0 {
        bail!("{} sends failed ({} succeeded)", real.errors, real.ok);
    }
    let ratio = real.rate() / base.rate();
    let result = json!({
        "scenario": "send",
        "connections": args.connections,
        "seconds": secs,
        "baseline": {"rps": base.rate(), "p50_ms": base.pct(0.5), "p99_ms": base.pct(0.99)},
        "tuisong": {"rps": real.rate(), "p50_ms": real.pct(0.5), "p99_ms": real.pct(0.99), "errors": real.errors},
        "ratio": ratio,
    });
    println!("| target | req/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    println!(
        "| baseline: trivial axum handler | {:.0} | {:.2} | {:.2} |",
        base.rate(),
        base.pct(0.5),
        base.pct(0.99)
    );
    println!(
        "| tuisong subscribe/send | {:.0} | {:.2} | {:.2} |",
        real.rate(),
        real.pct(0.5),
        real.pct(0.99)
    );
    println!("ratio tuisong/baseline: {ratio:.2}");
    println!("{}", serde_json::to_string(&result)?);
    Ok(())
}
