//! `connections`: N idle WebSocket devices (each its own user, past hello and welcome,
//! answering the server's pings). Measured from /proc of the server process: RSS per
//! connection = (RSS with N connected − RSS before any) / N, and CPU while idle over a
//! window. Devices connect from 127.0.0.2, .3, … (20,000 per address) so ephemeral ports
//! never run out; the open-file limit is raised for the bench and, inherited, the server.
//!
//! Baseline: a private Mosquitto process with N idle MQTT clients (CONNECT, keep-alive
//! off), measured the same way.

use super::common::{
    App, PER_SOURCE_ADDRESS, Progress, Recorder, ServerProc, connect_all, cpu_secs, nofile_limit,
    rss_kib, spawn_device,
};
use super::mqtt::{PrivateBroker, idle_client};
use super::report::{Better, Context, Row, ScenarioResult, Target};
use super::{Plan, StoreChoice};
use anyhow::bail;
use futures_util::StreamExt;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What one N measured on one side.
#[derive(Clone, Copy, Debug, serde::Serialize)]
struct Point {
    n: usize,
    rss_before_kib: u64,
    rss_kib: u64,
    kib_per_connection: f64,
    idle_cpu_percent: f64,
}

/// CPU% of `pid` over `secs`.
async fn idle_cpu(pid: u32, secs: f64, label: String) -> anyhow::Result<f64> {
    let a = cpu_secs(pid)?;
    let t = Instant::now();
    super::common::timed_phase(&label, secs, || "idle".into()).await;
    let b = cpu_secs(pid)?;
    Ok((b - a) / t.elapsed().as_secs_f64() * 100.0)
}

pub async fn run(plan: &Plan, store: &StoreChoice, ctx: Context) -> anyhow::Result<ScenarioResult> {
    let idle_secs = if plan.smoke { 2.0 } else { plan.seconds as f64 };
    let limit = nofile_limit() as usize;
    // Each side holds one descriptor per connection, plus the server's store and
    // listener; a sandbox without CAP_SYS_RESOURCE cannot go past its hard limit.
    let fits = limit.saturating_sub(1000) / 1000 * 1000;
    let mut ns: Vec<usize> = plan
        .idle_connections
        .iter()
        .copied()
        .filter(|&n| n <= fits)
        .collect();
    let skipped_ns: Vec<usize> = plan
        .idle_connections
        .iter()
        .copied()
        .filter(|&n| n > fits)
        .collect();
    if !skipped_ns.is_empty() && fits > 0 && !ns.contains(&fits) {
        ns.push(fits);
    }
    let limit_note = (!skipped_ns.is_empty()).then(|| {
        format!(
            "{} connections could not be measured here: the open-file limit is {limit} (hard limit, and this sandbox has no CAP_SYS_RESOURCE to raise it), so one process holds at most ~{fits} sockets; {fits} is measured instead as the largest that fits",
            skipped_ns.iter().map(|n| super::report::num(*n as f64)).collect::<Vec<_>>().join(" and ")
        )
    });
    if let Some(n) = &limit_note {
        eprintln!("connections: {n}");
    }
    let max = *ns.last().unwrap_or(&0);
    if max == 0 {
        bail!("the open-file limit ({limit}) leaves no room for connections");
    }
    eprintln!(
        "── connections ({}): {ns:?} idle devices, {idle_secs} s idle each; open-file limit {limit}",
        store.label()
    );
    if max > PER_SOURCE_ADDRESS * 250 {
        bail!("{max} connections need more than 250 source addresses");
    }
    let mut server = ServerProc::start(store).await?;
    let app = Arc::new(App::prepare(&server).await?);
    let users = app.users(max, false, "connections: creating users").await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss0 = server.rss_kib()?;
    let cards = Arc::new(Recorder::default());
    let mut devices = Vec::with_capacity(max);
    let mut tuisong = Vec::new();
    for &n in &ns {
        let have = devices.len();
        let sockets = connect_all(
            server.addr,
            &users[have..n],
            have,
            &format!("connections: tuisong to {n}"),
        )
        .await?;
        devices.extend(
            sockets
                .into_iter()
                .map(|ws| spawn_device(ws, cards.clone(), cards.clone())),
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        server.check_alive()?;
        let rss = server.rss_kib()?;
        let cpu = idle_cpu(
            server.pid,
            idle_secs,
            format!("connections: tuisong idle at {n}"),
        )
        .await?;
        let alive = devices.iter().filter(|d| !d.is_finished()).count();
        if alive < n {
            bail!("only {alive} of {n} device connections are still open");
        }
        let p = Point {
            n,
            rss_before_kib: rss0,
            rss_kib: rss,
            kib_per_connection: (rss.saturating_sub(rss0)) as f64 / n as f64,
            idle_cpu_percent: cpu,
        };
        eprintln!(
            "   tuisong {n}: RSS {} → {} KiB, {:.2} KiB/connection, idle CPU {:.2}%",
            p.rss_before_kib, p.rss_kib, p.kib_per_connection, p.idle_cpu_percent
        );
        tuisong.push(p);
    }
    for d in &devices {
        d.abort();
    }
    drop(devices);
    server.stop().await;

    let (mosquitto, skipped) = match mosquitto_points(&ns, idle_secs).await {
        Ok(p) => (p, None),
        Err(e) => {
            eprintln!("connections: the Mosquitto baseline is skipped: {e:#}");
            (Vec::new(), Some(format!("{e:#}")))
        }
    };
    let base_name = if skipped.is_none() {
        "Mosquitto, idle MQTT clients"
    } else {
        "Mosquitto: skipped"
    };
    let mut r = ScenarioResult::new(
        "connections",
        ctx,
        json!({"connections": ns, "not_measured": skipped_ns, "open_file_limit": limit, "idle_seconds": idle_secs, "tuisong": tuisong, "mosquitto": mosquitto, "skipped": skipped}),
    );
    for p in &tuisong {
        let b = mosquitto.iter().find(|m| m.n == p.n);
        r.rows.push(
            Row::new(
                format!(
                    "server RSS per idle connection at {}",
                    super::report::num(p.n as f64)
                ),
                "KiB",
                p.kib_per_connection,
                Better::Lower,
            )
            .baseline(base_name, b.map(|m| m.kib_per_connection))
            .target(Target::AtMost(8.0))
            .note(format!(
                "RSS {} → {} MiB",
                p.rss_before_kib / 1024,
                p.rss_kib / 1024
            )),
        );
    }
    for p in &tuisong {
        let b = mosquitto.iter().find(|m| m.n == p.n);
        r.rows.push(
            Row::new(
                format!(
                    "server CPU while idle at {}",
                    super::report::num(p.n as f64)
                ),
                "%",
                p.idle_cpu_percent,
                Better::Lower,
            )
            .baseline(base_name, b.map(|m| m.idle_cpu_percent))
            .note(format!("of one core, over {idle_secs} s")),
        );
    }
    r.notes.push(format!(
        "Each tuisong device is a user with a WebSocket session (hello, welcome, the server's ping every 30 s answered with pong); each Mosquitto client is a bare MQTT 3.1.1 connection with keep-alive off. RSS is VmRSS of the server process alone; the kernel's socket buffers are not in it. Idle CPU is over {idle_secs} s, which catches about a third of tuisong's 30-second ping round."
    ));
    if let Some(n) = limit_note {
        r.notes.push(format!("{n}."));
    }
    Ok(r)
}

async fn mosquitto_points(ns: &[usize], idle_secs: f64) -> anyhow::Result<Vec<Point>> {
    let broker = PrivateBroker::start().await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss0 = rss_kib(broker.pid)?;
    let mut clients = Vec::new();
    let mut points = Vec::new();
    for &n in ns {
        let have = clients.len();
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        let total = n - have;
        let progress = Progress::start(format!("connections: Mosquitto to {n}"), move || {
            let k = d.load(Ordering::Relaxed);
            (
                k as f64 / total.max(1) as f64,
                format!("{k}/{total} clients"),
            )
        });
        let addr = broker.addr;
        let got: Vec<anyhow::Result<tokio::net::TcpStream>> = futures_util::stream::iter(have..n)
            .map(|i| {
                let done = done.clone();
                async move {
                    let s = idle_client(addr, i).await;
                    done.fetch_add(1, Ordering::Relaxed);
                    s
                }
            })
            .buffered(256)
            .collect()
            .await;
        progress.finish().await;
        for c in got {
            clients.push(c?);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss = rss_kib(broker.pid)?;
        let cpu = idle_cpu(
            broker.pid,
            idle_secs,
            format!("connections: Mosquitto idle at {n}"),
        )
        .await?;
        let p = Point {
            n,
            rss_before_kib: rss0,
            rss_kib: rss,
            kib_per_connection: rss.saturating_sub(rss0) as f64 / n as f64,
            idle_cpu_percent: cpu,
        };
        eprintln!(
            "   Mosquitto {n}: RSS {} → {} KiB, {:.2} KiB/connection, idle CPU {:.2}%",
            p.rss_before_kib, p.rss_kib, p.kib_per_connection, p.idle_cpu_percent
        );
        points.push(p);
    }
    drop(clients);
    broker.stop().await;
    Ok(points)
}
