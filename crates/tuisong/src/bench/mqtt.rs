//! The MQTT side of the baselines: Mosquitto with QoS 1 subscribers on per-user topics
//! (rumqttc clients, acking every publish as a device acks every card), publishers that
//! stamp their payloads like tuisong's sends, a private Mosquitto process for the idle
//! connection baseline, and bare idle MQTT clients (CONNECT, CONNACK, then nothing).

use super::common::{PER_SOURCE_ADDRESS, Recorder, now_us, source_ip};
use anyhow::{Context, bail};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;

/// Whether a broker answers at `addr`; the reason when not.
pub async fn reachable(addr: &str) -> Result<(), String> {
    match tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!(
            "Mosquitto is not reachable at {addr}: {e} (start it with `mosquitto -d -c /etc/mosquitto/mosquitto.conf`)"
        )),
        Err(_) => Err(format!("Mosquitto at {addr} did not answer within 2 s")),
    }
}

fn options(id: String, addr: SocketAddr) -> MqttOptions {
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_inflight(100)
        .set_request_channel_capacity(64)
        .set_max_packet_size(64 * 1024, 64 * 1024);
    o
}

/// The payload: `t=<µs>;` then padding to `size` bytes (the size of tuisong's frame).
pub fn payload(stamp: u64, size: usize) -> Vec<u8> {
    let mut p = format!("t={stamp};").into_bytes();
    if p.len() < size {
        p.resize(size, b'x');
    }
    p
}

fn stamp_of(p: &[u8]) -> Option<u64> {
    let s = p.strip_prefix(b"t=")?;
    let end = s.iter().position(|&b| b == b';')?;
    std::str::from_utf8(&s[..end]).ok()?.parse().ok()
}

/// K QoS 1 subscribers, subscriber i on `<prefix>/u/<i>`, recording (stamp, received).
pub struct Subscribers {
    clients: Vec<AsyncClient>,
    tasks: Vec<JoinHandle<()>>,
}

impl Subscribers {
    pub async fn start(
        addr: SocketAddr,
        k: usize,
        prefix: &str,
        rec: Arc<Recorder>,
    ) -> anyhow::Result<Subscribers> {
        let subscribed = Arc::new(AtomicUsize::new(0));
        let mut clients = Vec::with_capacity(k);
        let mut tasks = Vec::with_capacity(k);
        for i in 0..k {
            let (client, el) = AsyncClient::new(options(format!("{prefix}-s{i}"), addr), 64);
            client
                .subscribe(format!("{prefix}/u/{i}"), QoS::AtLeastOnce)
                .await
                .context("queueing a subscribe")?;
            tasks.push(tokio::spawn(subscriber_loop(
                el,
                rec.clone(),
                subscribed.clone(),
            )));
            clients.push(client);
        }
        let ok = super::common::wait_until(Duration::from_secs(30), || {
            subscribed.load(Ordering::Relaxed) >= k
        })
        .await;
        if !ok {
            bail!(
                "only {}/{k} MQTT subscriptions acknowledged within 30 s",
                subscribed.load(Ordering::Relaxed)
            );
        }
        Ok(Subscribers { clients, tasks })
    }

    pub async fn stop(self) {
        for c in &self.clients {
            let _ = c.try_disconnect();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        for t in self.tasks {
            t.abort();
        }
    }
}

async fn subscriber_loop(mut el: EventLoop, rec: Arc<Recorder>, subscribed: Arc<AtomicUsize>) {
    loop {
        match el.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let now = now_us();
                if let Some(t) = stamp_of(&p.payload) {
                    rec.record(t, now);
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                subscribed.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(_) => {
                // rumqttc reconnects on the next poll; a closed broker ends the run anyway.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// A QoS 1 publisher; its event loop (PUBACKs, inflight window) runs in its own task.
pub struct Publisher {
    pub client: AsyncClient,
    task: JoinHandle<()>,
}

impl Publisher {
    pub async fn start(addr: SocketAddr, id: String) -> anyhow::Result<Publisher> {
        let (client, mut el) = AsyncClient::new(options(id, addr), 64);
        let connected = Arc::new(AtomicUsize::new(0));
        let c = connected.clone();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        c.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        if !super::common::wait_until(Duration::from_secs(10), || {
            connected.load(Ordering::Relaxed) > 0
        })
        .await
        {
            bail!("the MQTT publisher did not connect within 10 s");
        }
        Ok(Publisher { client, task })
    }

    pub async fn publish(&self, topic: String, payload: Vec<u8>) -> anyhow::Result<()> {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .context("publishing")
    }

    pub async fn stop(self) {
        let _ = self.client.try_disconnect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        self.task.abort();
    }
}

/// A Mosquitto of our own on a free loopback port, for the idle-connection baseline
/// (its RSS must be its clients' alone). Killed when dropped.
pub struct PrivateBroker {
    child: tokio::process::Child,
    pub pid: u32,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl PrivateBroker {
    pub async fn start() -> anyhow::Result<PrivateBroker> {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let dir = tempfile::tempdir()?;
        let conf = dir.path().join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_connections -1\nlog_dest stderr\nlog_type error\n"
            ),
        )?;
        // Readable after Mosquitto drops root for its own user.
        let _ = std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        );
        let _ =
            std::fs::set_permissions(&conf, std::os::unix::fs::PermissionsExt::from_mode(0o644));
        let mut child = tokio::process::Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting mosquitto (is it installed?)")?;
        let pid = child.id().context("mosquitto pid")?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        for _ in 0..100 {
            if TcpStream::connect(addr).await.is_ok() {
                return Ok(PrivateBroker {
                    child,
                    pid,
                    addr,
                    _dir: dir,
                });
            }
            if let Some(s) = child.try_wait()? {
                bail!("mosquitto exited at start: {s}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("mosquitto did not listen on {addr} within 5 s")
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// An idle MQTT 3.1.1 client from a 127.0.0.x source address: CONNECT with keep-alive off
/// and a clean session, CONNACK, then nothing.
pub async fn idle_client(addr: SocketAddr, i: usize) -> anyhow::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(SocketAddr::new(source_ip(i, PER_SOURCE_ADDRESS), 0))?;
    let mut s = sock.connect(addr).await?;
    let id = format!("idle{i}");
    let mut pkt = vec![0x10, (12 + id.len()) as u8];
    pkt.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 0]);
    pkt.extend_from_slice(&(id.len() as u16).to_be_bytes());
    pkt.extend_from_slice(id.as_bytes());
    s.write_all(&pkt).await?;
    let mut ack = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(30), s.read_exact(&mut ack))
        .await
        .context("no CONNACK within 30 s")??;
    if ack[0] != 0x20 || ack[3] != 0 {
        bail!("CONNACK refused: {ack:?}");
    }
    Ok(s)
}
