//! `deliver`: K connected devices, one user each; the app server sends each user its own
//! messages and every device acks every card. Measured: delivered messages/s and
//! send→device latency (p50/p99/p999) at a fixed rate and at saturation. The send time
//! travels in the card's `page` (`pages/b?t=<µs>`), so latency is the device's receive
//! time minus it, on one clock.
//!
//! Baseline: Mosquitto with K QoS 1 subscribers on per-user topics (`…/u/<i>`), payloads
//! of the same size with the same stamp, at the same rate; at saturation several
//! publishers with their inflight windows full. Phases alternate (tuisong at the fixed
//! rate, Mosquitto at the fixed rate, tuisong saturated, Mosquitto saturated) so drift on
//! a shared machine hits both sides alike.

use super::common::{
    App, Latency, Recorder, ServerProc, connect_all, now_us, paced, spawn_device, stamp_page,
    timed_phase,
};
use super::http::Conn;
use super::mqtt::{self, Publisher, Subscribers};
use super::report::{Better, Context, Row, ScenarioResult, Target};
use super::send::closed_loop;
use super::{Plan, StoreChoice};
use anyhow::{Context as _, bail};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Connections the app server sends on at the fixed rate (open loop: each has its own
/// schedule).
const PACED_CONNECTIONS: usize = 16;
/// Publishers of the saturated MQTT phase.
const MQTT_PUBLISHERS: usize = 4;

/// What one phase measured: messages received per second in the window and the latency
/// of the messages sent in it.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct PhaseResult {
    pub delivered_per_s: f64,
    pub latency: Latency,
    pub sent: u64,
    pub received: u64,
    /// The server's CPU over the window, in cores (tuisong phases only).
    pub server_cores: Option<f64>,
}

/// Splits the records of a phase: throughput over [w0, w1) by receive time, latency of
/// the messages stamped in [w0, w1).
fn summarize(
    pairs: &[(u64, u64)],
    w0: u64,
    w1: u64,
    sent: u64,
    server_cores: Option<f64>,
) -> PhaseResult {
    let received_in = pairs.iter().filter(|(_, r)| *r >= w0 && *r < w1).count();
    let lat: Vec<u64> = pairs
        .iter()
        .filter(|(s, _)| *s >= w0 && *s < w1)
        .map(|(s, r)| r.saturating_sub(*s))
        .collect();
    PhaseResult {
        delivered_per_s: received_in as f64 / ((w1 - w0) as f64 / 1e6),
        latency: Latency::of(lat),
        sent,
        received: pairs.len() as u64,
        server_cores,
    }
}

/// Waits until `rec` has `expected` records (or stops growing for 3 s).
async fn drain(rec: &Recorder, expected: u64) -> bool {
    let mut last = rec.count();
    let mut still = 0;
    loop {
        if rec.count() >= expected {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = rec.count();
        if now == last {
            still += 1;
            if still >= 30 {
                return false;
            }
        } else {
            still = 0;
            last = now;
        }
    }
}

struct Tuisong {
    server: ServerProc,
    app: Arc<App>,
    openids: Arc<Vec<String>>,
    cards: Arc<Recorder>,
}

impl Tuisong {
    async fn fixed_rate(&self, rate: u64, secs: u64) -> anyhow::Result<PhaseResult> {
        self.cards.take();
        let n = rate * (secs + 1);
        let mut conns = Vec::new();
        for _ in 0..PACED_CONNECTIONS {
            conns.push(tokio::sync::Mutex::new(Conn::connect(self.app.addr).await?));
        }
        let conns = Arc::new(conns);
        let ok = Arc::new(AtomicU64::new(0));
        let (app, openids, o) = (self.app.clone(), self.openids.clone(), ok.clone());
        let path = Arc::new(app.send_path());
        let w0 = now_us() + 1_000_000;
        let w1 = w0 + secs * 1_000_000;
        let cpu0 = Arc::new(std::sync::Mutex::new(None));
        let (c0, pid) = (cpu0.clone(), self.server.pid);
        // The CPU reading starts with the window: a side task.
        let cpu_task = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if let Ok(mut c) = c0.lock() {
                *c = super::common::cpu_secs(pid).ok();
            }
        });
        let rec = self.cards.clone();
        let progress = tokio::spawn(timed_phase(
            format!("deliver: tuisong at {rate}/s"),
            (secs + 1) as f64,
            move || format!("{} received", rec.count()),
        ));
        paced(rate as f64, n, PACED_CONNECTIONS, move |w, i| {
            let (app, openids, conns, ok, path) = (
                app.clone(),
                openids.clone(),
                conns.clone(),
                o.clone(),
                path.clone(),
            );
            async move {
                let body = app.send_body(
                    &openids[(i as usize) % openids.len()],
                    &stamp_page(now_us()),
                );
                let mut c = conns[w].lock().await;
                match c.call("POST", &path, None, &body).await? {
                    (200, b) if b.starts_with(br#"{"errcode":0"#) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        Ok(())
                    }
                    (s, b) => bail!("send answered {s}: {}", String::from_utf8_lossy(b)),
                }
            }
        })
        .await?;
        let cpu1 = super::common::cpu_secs(pid).ok();
        let _ = cpu_task.await;
        let _ = progress.await;
        let sent = ok.load(Ordering::Relaxed);
        let cores = match (*cpu0.lock().map_err(|_| anyhow::anyhow!("lock"))?, cpu1) {
            (Some(a), Some(b)) => Some((b - a) / ((now_us() - w0) as f64 / 1e6)),
            _ => None,
        };
        if !drain(&self.cards, sent).await {
            bail!("devices received {} of {sent} messages", self.cards.count());
        }
        Ok(summarize(&self.cards.take(), w0, w1, sent, cores))
    }

    async fn saturated(&self, connections: usize, secs: u64) -> anyhow::Result<PhaseResult> {
        self.cards.take();
        let (app, openids) = (self.app.clone(), self.openids.clone());
        let k = openids.len();
        let body: Arc<dyn Fn(usize, u64) -> String + Send + Sync> = Arc::new(move |w, i| {
            let u = (w + i as usize * connections) % k;
            app.send_body(&openids[u], &stamp_page(now_us()))
        });
        let w0 = now_us() + 1_000_000;
        let pid = self.server.pid;
        let cpu_task = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let a = super::common::cpu_secs(pid).ok();
            tokio::time::sleep(Duration::from_secs(secs)).await;
            let b = super::common::cpu_secs(pid).ok();
            Some((b? - a?) / secs as f64)
        });
        let out = closed_loop(
            "deliver: tuisong saturated",
            &[self.app.addr],
            self.app.send_path(),
            connections,
            secs,
            body,
        )
        .await?;
        let w1 = w0 + (out.secs * 1e6) as u64;
        if out.errors > 0 {
            bail!(
                "{} sends failed; first: {}",
                out.errors,
                out.first_error.unwrap_or_default()
            );
        }
        let cores = cpu_task.await.ok().flatten();
        if !drain(&self.cards, out.ok_total).await {
            bail!(
                "devices received {} of {} messages",
                self.cards.count(),
                out.ok_total
            );
        }
        Ok(summarize(&self.cards.take(), w0, w1, out.ok_total, cores))
    }
}

struct Mosquitto {
    addr: SocketAddr,
    prefix: String,
    k: usize,
    subs: Subscribers,
    rec: Arc<Recorder>,
}

impl Mosquitto {
    async fn fixed_rate(&self, rate: u64, secs: u64, size: usize) -> anyhow::Result<PhaseResult> {
        self.rec.take();
        let publisher = Arc::new(Publisher::start(self.addr, format!("{}-p", self.prefix)).await?);
        let n = rate * (secs + 1);
        let w0 = now_us() + 1_000_000;
        let w1 = w0 + secs * 1_000_000;
        let (p, prefix, k) = (publisher.clone(), self.prefix.clone(), self.k);
        let rec = self.rec.clone();
        let progress = tokio::spawn(timed_phase(
            format!("deliver: Mosquitto at {rate}/s"),
            (secs + 1) as f64,
            move || format!("{} received", rec.count()),
        ));
        paced(rate as f64, n, 1, move |_, i| {
            let (p, prefix) = (p.clone(), prefix.clone());
            async move {
                let topic = format!("{prefix}/u/{}", i as usize % k);
                p.publish(topic, mqtt::payload(now_us(), size)).await
            }
        })
        .await?;
        let _ = progress.await;
        let ok = drain(&self.rec, n).await;
        if let Ok(p) = Arc::try_unwrap(publisher) {
            p.stop().await;
        }
        if !ok {
            bail!("MQTT subscribers received {} of {n}", self.rec.count());
        }
        Ok(summarize(&self.rec.take(), w0, w1, n, None))
    }

    async fn saturated(&self, secs: u64, size: usize) -> anyhow::Result<PhaseResult> {
        self.rec.take();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for p in 0..MQTT_PUBLISHERS {
            let publisher = Publisher::start(self.addr, format!("{}-p{p}", self.prefix)).await?;
            let (stop, sent, prefix, k) = (stop.clone(), sent.clone(), self.prefix.clone(), self.k);
            tasks.push(tokio::spawn(async move {
                let mut i = p;
                while !stop.load(Ordering::Relaxed) {
                    let topic = format!("{prefix}/u/{}", i % k);
                    i += MQTT_PUBLISHERS;
                    publisher
                        .publish(topic, mqtt::payload(now_us(), size))
                        .await?;
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                anyhow::Ok(publisher)
            }));
        }
        let w0 = now_us() + 1_000_000;
        let rec = self.rec.clone();
        let t0 = std::time::Instant::now();
        timed_phase(
            "deliver: Mosquitto saturated",
            (secs + 1) as f64,
            move || {
                let e = t0.elapsed().as_secs_f64();
                format!("{:.0} msg/s", rec.count() as f64 / e.max(0.001))
            },
        )
        .await;
        let w1 = now_us();
        stop.store(true, Ordering::SeqCst);
        for t in tasks {
            t.await??.stop().await;
        }
        let n = sent.load(Ordering::SeqCst);
        if !drain(&self.rec, n).await {
            bail!("MQTT subscribers received {} of {n}", self.rec.count());
        }
        Ok(summarize(&self.rec.take(), w0, w1, n, None))
    }
}

pub async fn run(plan: &Plan, store: &StoreChoice, ctx: Context) -> anyhow::Result<ScenarioResult> {
    let k = plan.devices;
    let (rate, secs) = (plan.rate, plan.seconds);
    eprintln!(
        "── deliver ({}): {k} devices, {rate}/s and saturated, {secs} s per phase",
        store.label()
    );
    let (server, peer) = ServerProc::start_nodes(store).await?;
    let app = Arc::new(App::prepare(&server).await?);
    let users = app.users(k, true, "deliver: subscribing users").await?;
    let sockets = connect_all(server.addr, &users, 0, "deliver: connecting devices").await?;
    // With two nodes every card crosses: devices on node A, sends through node B.
    let app = match &peer {
        Some(p) => Arc::new(App {
            addr: p.addr,
            ..(*app).clone()
        }),
        None => app,
    };
    let cards = Arc::new(Recorder::default());
    let recalls = Arc::new(Recorder::default());
    let devices: Vec<_> = sockets
        .into_iter()
        .map(|ws| spawn_device(ws, cards.clone(), recalls.clone()))
        .collect();
    let mut tuisong = Tuisong {
        server,
        app,
        openids: Arc::new(users.iter().map(|u| u.openid.clone()).collect()),
        cards,
    };

    let mqtt_addr: Result<SocketAddr, String> = match mqtt::reachable(&plan.mqtt).await {
        Ok(()) => plan
            .mqtt
            .parse()
            .map_err(|e| format!("--mqtt {}: {e}", plan.mqtt)),
        Err(why) => Err(why),
    };
    let mosquitto = match mqtt_addr {
        Ok(addr) => {
            let prefix = format!("tuisong-bench/{}", std::process::id());
            let rec = Arc::new(Recorder::default());
            match Subscribers::start(addr, k, &prefix, rec.clone()).await {
                Ok(subs) => Ok(Mosquitto {
                    addr,
                    prefix,
                    k,
                    subs,
                    rec,
                }),
                Err(e) => Err(format!("MQTT subscribers failed: {e:#}")),
            }
        }
        Err(why) => Err(why),
    };
    if let Err(why) = &mosquitto {
        eprintln!("deliver: the Mosquitto baseline is skipped: {why}");
    }

    let t_fixed = tuisong
        .fixed_rate(rate, secs)
        .await
        .context("tuisong at the fixed rate")?;
    let size = tuisong.cards.frame_bytes.load(Ordering::Relaxed).max(64);
    let m_fixed = match &mosquitto {
        Ok(m) => Some(
            m.fixed_rate(rate, secs, size)
                .await
                .context("Mosquitto at the fixed rate")?,
        ),
        Err(_) => None,
    };
    let t_sat = tuisong
        .saturated(plan.http_connections, secs)
        .await
        .context("tuisong saturated")?;
    let m_sat = match &mosquitto {
        Ok(m) => Some(
            m.saturated(secs, size)
                .await
                .context("Mosquitto saturated")?,
        ),
        Err(_) => None,
    };
    tuisong.server.check_alive()?;
    let rss = tuisong.server.rss_kib().unwrap_or(0);
    for d in devices {
        d.abort();
    }
    tuisong.server.stop().await;
    let skipped = mosquitto.as_ref().err().cloned();
    if let Ok(m) = mosquitto {
        m.subs.stop().await;
    }

    let base_name = match &skipped {
        None => "Mosquitto QoS 1".to_owned(),
        Some(_) => "Mosquitto: skipped".to_owned(),
    };
    let mut r = ScenarioResult::new(
        "deliver",
        ctx,
        json!({"devices": k, "rate": rate, "seconds": secs, "payload_bytes": size,
               "saturation_http_connections": plan.http_connections, "mqtt_publishers_saturated": MQTT_PUBLISHERS,
               "server_rss_kib_after": rss,
               "tuisong": {"fixed": t_fixed, "saturated": t_sat},
               "mosquitto": {"fixed": m_fixed, "saturated": m_sat, "skipped": skipped}}),
    );
    let cores = |p: &PhaseResult| {
        p.server_cores
            .map_or(String::new(), |c| format!("server CPU {:.2} cores", c))
    };
    r.rows.push(
        Row::new(
            format!("delivered msg/s, saturated ({k} devices)"),
            "msg/s",
            t_sat.delivered_per_s,
            Better::Higher,
        )
        .baseline(&base_name, m_sat.map(|m| m.delivered_per_s))
        .target(Target::RatioAtLeast(1.0))
        .note(cores(&t_sat)),
    );
    r.rows.push(
        Row::new(
            format!("delivered msg/s at {rate}/s offered"),
            "msg/s",
            t_fixed.delivered_per_s,
            Better::Higher,
        )
        .baseline(&base_name, m_fixed.map(|m| m.delivered_per_s))
        .note(cores(&t_fixed)),
    );
    for (name, f, target) in [
        ("p50", (|l: &Latency| l.p50) as fn(&Latency) -> f64, None),
        ("p99", |l: &Latency| l.p99, Some(5.0)),
        ("p999", |l: &Latency| l.p999, None),
    ] {
        let mut row = Row::new(
            format!("send→device {name} at {rate}/s"),
            "ms",
            f(&t_fixed.latency),
            Better::Lower,
        )
        .baseline(&base_name, m_fixed.map(|m| f(&m.latency)));
        if let Some(t) = target {
            row = row.target(Target::AtMost(t));
        }
        r.rows.push(row);
    }
    for (name, f) in [
        ("p50", (|l: &Latency| l.p50) as fn(&Latency) -> f64),
        ("p99", |l: &Latency| l.p99),
        ("p999", |l: &Latency| l.p999),
    ] {
        r.rows.push(
            Row::new(
                format!("send→device {name}, saturated"),
                "ms",
                f(&t_sat.latency),
                Better::Lower,
            )
            .baseline(&base_name, m_sat.map(|m| f(&m.latency))),
        );
    }
    r.notes.push(format!(
        "tuisong's latency is the app server's HTTP send (durable: fsync before the answer) through to the device's WebSocket; every card is acked by the device, which is one more durable write. Mosquitto's is a QoS 1 publish to its subscriber, {size}-byte payloads like tuisong's frames, with Mosquitto's own persistence (in memory, saved periodically). Saturated: tuisong with {} closed-loop HTTP connections, Mosquitto with {MQTT_PUBLISHERS} publishers, each 100 in flight.",
        plan.http_connections
    ));
    if let Some(why) = skipped {
        r.notes
            .push(format!("The Mosquitto baseline was skipped: {why}."));
    }
    Ok(r)
}
