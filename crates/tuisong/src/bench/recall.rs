//! `recall`: M messages delivered to connected devices and acked, then each recalled
//! (`POST /v1/messages/{msgid}/recall`) at a steady pace; measured from the start of the
//! recall request to the `recall` frame (the tombstone) on the device, p50/p99.
//!
//! Baseline: the same tombstone carried by Mosquitto — a QoS 1 publish of a payload of
//! the tombstone frame's size to the user's topic, at the same pace, publish → subscriber.

use super::common::{
    App, Latency, Recorder, ServerProc, connect_all, now_us, paced, spawn_device, stamp_page,
    timed_phase, wait_until,
};
use super::http::Conn;
use super::mqtt::{self, Publisher, Subscribers};
use super::report::{Better, Context, Row, ScenarioResult, Target};
use super::{Plan, StoreChoice};
use anyhow::bail;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Recalls per second: a steady trickle, so each latency is the recall's own.
const RECALL_RATE: f64 = 100.0;
const WORKERS: usize = 8;

pub async fn run(plan: &Plan, store: &StoreChoice, ctx: Context) -> anyhow::Result<ScenarioResult> {
    let m = plan.recalls;
    let k = plan.devices.min(m).max(1);
    eprintln!(
        "── recall ({}): {m} messages on {k} devices, recalled at {RECALL_RATE}/s",
        store.label()
    );
    let mut server = ServerProc::start(store).await?;
    let app = Arc::new(App::prepare(&server).await?);
    let users = app.users(k, true, "recall: subscribing users").await?;
    let sockets = connect_all(server.addr, &users, 0, "recall: connecting devices").await?;
    let cards = Arc::new(Recorder::default());
    let tombstones = Arc::new(Recorder::default());
    let devices: Vec<_> = sockets
        .into_iter()
        .map(|ws| spawn_device(ws, cards.clone(), tombstones.clone()))
        .collect();

    // 1. Deliver M messages (devices ack each), keeping their msgids.
    let msgids = Arc::new(Mutex::new(Vec::with_capacity(m)));
    {
        let mut conns = Vec::new();
        for _ in 0..WORKERS {
            conns.push(tokio::sync::Mutex::new(Conn::connect(app.addr).await?));
        }
        let conns = Arc::new(conns);
        let (app, openids, ids) = (
            app.clone(),
            Arc::new(users.iter().map(|u| u.openid.clone()).collect::<Vec<_>>()),
            msgids.clone(),
        );
        let path = Arc::new(app.send_path());
        paced(2000.0, m as u64, WORKERS, move |w, i| {
            let (app, openids, conns, ids, path) = (
                app.clone(),
                openids.clone(),
                conns.clone(),
                ids.clone(),
                path.clone(),
            );
            async move {
                let body =
                    app.send_body(&openids[i as usize % openids.len()], &stamp_page(now_us()));
                let mut c = conns[w].lock().await;
                let (s, b) = c.call("POST", &path, None, &body).await?;
                let v: serde_json::Value = serde_json::from_slice(b).unwrap_or_default();
                match (s, v["errcode"].as_i64(), v["msgid"].as_u64()) {
                    (200, Some(0), Some(id)) => {
                        ids.lock().map_err(|_| anyhow::anyhow!("lock"))?.push(id);
                        Ok(())
                    }
                    _ => bail!("send answered {s}: {v}"),
                }
            }
        })
        .await?;
    }
    let c = cards.clone();
    if !wait_until(Duration::from_secs(30), || c.count() >= m as u64).await {
        bail!("devices received {} of {m} messages", cards.count());
    }
    // Let the acks land, so each recall finds a delivered message.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // 2. Recall each, timing request start → tombstone on the device.
    let ids: Arc<Vec<u64>> = Arc::new(msgids.lock().map_err(|_| anyhow::anyhow!("lock"))?.clone());
    let started = Arc::new(Mutex::new(Vec::with_capacity(m)));
    let mut conns = Vec::new();
    for _ in 0..WORKERS {
        conns.push(tokio::sync::Mutex::new(Conn::connect(app.addr).await?));
    }
    let conns = Arc::new(conns);
    let t = tombstones.clone();
    let progress = tokio::spawn(timed_phase(
        "recall: tuisong",
        m as f64 / RECALL_RATE,
        move || format!("{} tombstones", t.count()),
    ));
    {
        let (ids, started, token) = (ids.clone(), started.clone(), Arc::new(app.token.clone()));
        paced(RECALL_RATE, m as u64, WORKERS, move |w, i| {
            let (ids, started, conns, token) =
                (ids.clone(), started.clone(), conns.clone(), token.clone());
            async move {
                let id = ids[i as usize];
                let mut c = conns[w].lock().await;
                let t0 = now_us();
                let (s, b) = c
                    .call(
                        "POST",
                        &format!("/v1/messages/{id}/recall"),
                        Some(&token),
                        "",
                    )
                    .await?;
                if s != 200 {
                    bail!("recall {id} answered {s}: {}", String::from_utf8_lossy(b));
                }
                started
                    .lock()
                    .map_err(|_| anyhow::anyhow!("lock"))?
                    .push((id, t0));
                Ok(())
            }
        })
        .await?;
    }
    let _ = progress.await;
    let t = tombstones.clone();
    if !wait_until(Duration::from_secs(30), || t.count() >= m as u64).await {
        bail!("devices received {} of {m} tombstones", tombstones.count());
    }
    let size = tombstones
        .frame_bytes
        .load(std::sync::atomic::Ordering::Relaxed)
        .max(16);
    let got: std::collections::HashMap<u64, u64> = tombstones.take().into_iter().collect();
    let lat: Vec<u64> = started
        .lock()
        .map_err(|_| anyhow::anyhow!("lock"))?
        .iter()
        .filter_map(|(id, t0)| Some(got.get(id)?.saturating_sub(*t0)))
        .collect();
    if lat.len() != m {
        bail!("{} of {m} recalls matched a tombstone", lat.len());
    }
    let real = Latency::of(lat);
    server.check_alive()?;
    for d in devices {
        d.abort();
    }
    server.stop().await;

    // 3. The baseline: the same tombstones through Mosquitto.
    let base = match mqtt::reachable(&plan.mqtt).await {
        Err(why) => Err(why),
        Ok(()) => match plan.mqtt.parse::<SocketAddr>() {
            Err(e) => Err(format!("--mqtt {}: {e}", plan.mqtt)),
            Ok(addr) => mqtt_tombstones(addr, k, m, size)
                .await
                .map_err(|e| format!("{e:#}")),
        },
    };
    if let Err(why) = &base {
        eprintln!("recall: the Mosquitto baseline is skipped: {why}");
    }
    let base_name = if base.is_ok() {
        "Mosquitto QoS 1 tombstone"
    } else {
        "Mosquitto: skipped"
    };
    let b = base.as_ref().ok().copied();
    let mut r = ScenarioResult::new(
        "recall",
        ctx,
        json!({"recalls": m, "devices": k, "rate": RECALL_RATE, "tombstone_bytes": size,
               "tuisong_ms": real, "mosquitto_ms": b, "skipped": base.as_ref().err()}),
    );
    r.rows.push(
        Row::new("recall→tombstone p50", "ms", real.p50, Better::Lower)
            .baseline(base_name, b.map(|l| l.p50)),
    );
    r.rows.push(
        Row::new("recall→tombstone p99", "ms", real.p99, Better::Lower)
            .baseline(base_name, b.map(|l| l.p99))
            .target(Target::AtMost(50.0)),
    );
    r.notes.push(format!(
        "A recall is a durable state change (message → recalled, a tombstone entry in the user's inbox, the push event queued, fsync) before the answer, then the tombstone goes to every connected device of the user; measured from the request's start to the device. The baseline publishes a {size}-byte payload (the tombstone frame's size) at QoS 1 and measures publish → subscriber; {m} of each at {RECALL_RATE}/s."
    ));
    if let Err(why) = &base {
        r.notes
            .push(format!("The Mosquitto baseline was skipped: {why}."));
    }
    Ok(r)
}

/// M tombstone-sized QoS 1 publishes to K per-user topics at `RECALL_RATE`.
async fn mqtt_tombstones(
    addr: SocketAddr,
    k: usize,
    m: usize,
    size: usize,
) -> anyhow::Result<Latency> {
    let prefix = format!("tuisong-bench/{}/recall", std::process::id());
    let rec = Arc::new(Recorder::default());
    let subs = Subscribers::start(addr, k, &prefix, rec.clone()).await?;
    let publisher =
        Arc::new(Publisher::start(addr, format!("{}-p", prefix.replace('/', "-"))).await?);
    let r = rec.clone();
    let progress = tokio::spawn(timed_phase(
        "recall: Mosquitto",
        m as f64 / RECALL_RATE,
        move || format!("{} tombstones", r.count()),
    ));
    let (p, pre) = (publisher.clone(), prefix.clone());
    paced(RECALL_RATE, m as u64, 1, move |_, i| {
        let (p, pre) = (p.clone(), pre.clone());
        async move {
            p.publish(
                format!("{pre}/u/{}", i as usize % k),
                mqtt::payload(now_us(), size),
            )
            .await
        }
    })
    .await?;
    let _ = progress.await;
    let r = rec.clone();
    let ok = wait_until(Duration::from_secs(10), || r.count() >= m as u64).await;
    if let Ok(p) = Arc::try_unwrap(publisher) {
        p.stop().await;
    }
    subs.stop().await;
    if !ok {
        bail!("MQTT subscribers received {} of {m}", rec.count());
    }
    Ok(Latency::of(
        rec.take()
            .into_iter()
            .map(|(s, r)| r.saturating_sub(s))
            .collect(),
    ))
}
