//! What the scenarios share: the server as a child process (its banner parsed, its RSS
//! and CPU read from /proc), the app and devices set up through the public API, device
//! WebSockets bound to chosen loopback source addresses, one clock for send and receive
//! stamps, percentiles, a progress line, and what machine this is.

use super::StoreChoice;
use super::http::Conn;
use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, Command};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub const ADMIN_TOKEN: &str = "adm_bench_0123456789abcdef";

// ------------------------------------------------------------------ time and numbers

static T0: OnceLock<Instant> = OnceLock::new();

/// Microseconds since this process's first call: the stamp senders put in a message and
/// receivers subtract from, so both sides read one clock.
pub fn now_us() -> u64 {
    T0.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// The p-quantile of sorted microseconds, in milliseconds (nearest rank).
pub fn pct_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted_us.len() as f64) * p).ceil() as usize;
    sorted_us[i.clamp(1, sorted_us.len()) - 1] as f64 / 1000.0
}

/// p50/p99/p999 in ms, and the count.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Latency {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Latency {
    pub fn of(mut us: Vec<u64>) -> Latency {
        us.sort_unstable();
        Latency {
            n: us.len(),
            p50: pct_ms(&us, 0.5),
            p99: pct_ms(&us, 0.99),
            p999: pct_ms(&us, 0.999),
            max: us.last().map_or(f64::NAN, |&m| m as f64 / 1000.0),
        }
    }
}

/// Raises this process's open-file limit (soft and, as root, hard) so tens of thousands
/// of sockets fit; children — the server — inherit it.
pub fn raise_nofile() {
    use rlimit::Resource;
    let want = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20)
        .min(1 << 20);
    if rlimit::setrlimit(Resource::NOFILE, want, want).is_err() {
        let _ = rlimit::increase_nofile_limit(want);
    }
}

pub fn nofile_limit() -> u64 {
    rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(soft, _)| soft)
}

// ------------------------------------------------------------------ progress line

/// One stderr line updated in place while a phase runs (on a terminal; elsewhere only
/// its last state is printed, so CI logs stay short).
pub struct Progress {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// `status()` returns (fraction done 0..=1, text after the bar).
    pub fn start(
        label: impl Into<String>,
        status: impl Fn() -> (f64, String) + Send + Sync + 'static,
    ) -> Progress {
        let label = label.into();
        let stop = Arc::new(AtomicBool::new(false));
        let tty = std::io::stderr().is_terminal();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let draw = |final_: bool| {
                let (f, text) = status();
                let f = if f.is_finite() {
                    f.clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let filled = (f * 24.0).round() as usize;
                let bar = format!("{}{}", "█".repeat(filled), "░".repeat(24 - filled));
                let line = format!("{label:<34} ▕{bar}▏ {:>3.0}%  {text}", f * 100.0);
                if tty {
                    eprint!("\r\x1b[K{line}{}", if final_ { "\n" } else { "" });
                } else if final_ {
                    eprintln!("{line}");
                }
            };
            while !s.load(Ordering::Relaxed) {
                draw(false);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            draw(true);
        });
        Progress { stop, task }
    }

    pub async fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
    }
}

/// Sleeps `secs` with a progress bar labelled `label`, showing `text()`.
pub async fn timed_phase(
    label: impl Into<String>,
    secs: f64,
    text: impl Fn() -> String + Send + Sync + 'static,
) {
    let t0 = Instant::now();
    let p = Progress::start(label, move || (t0.elapsed().as_secs_f64() / secs, text()));
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    p.finish().await;
}

// ------------------------------------------------------------------ the machine

#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
    pub rustc: String,
    pub date: String,
    /// No other rustc, cargo, chromium or test binaries running at the start.
    pub quiet: bool,
    pub busy: Vec<String>,
    pub loadavg: String,
}

impl Machine {
    pub fn probe() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpu_model = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let memory_gib = read("/proc/meminfo")
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
        let rustc = std::process::Command::new("rustc")
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".into());
        let busy = busy_processes();
        Machine {
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_model,
            memory_gib: (memory_gib * 10.0).round() / 10.0,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            rustc,
            date: utc_now(),
            quiet: busy.is_empty(),
            busy,
            loadavg: read("/proc/loadavg")
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        }
    }

    pub fn summary(&self) -> String {
        format!(
            "machine: {} × {}, {:.1} GiB, Linux {}, {}, load {}, {}",
            self.cpus,
            self.cpu_model,
            self.memory_gib,
            self.kernel,
            self.rustc,
            self.loadavg,
            self.date
        )
    }
}

/// Other processes that would compete for the two cores: compilers, browsers, tests.
fn busy_processes() -> Vec<String> {
    let me = std::process::id();
    let mut names = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return names;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let comm = comm.trim();
        // Test binaries are `<name>-<hash>`, cut to 15 characters in comm.
        let test_binary = comm.rsplit_once('-').is_some_and(|(name, hash)| {
            !name.is_empty() && hash.len() >= 6 && hash.chars().all(|c| c.is_ascii_hexdigit())
        });
        let hit = ["rustc", "cargo", "cc1", "cc1plus", "ld", "chrome"].contains(&comm)
            || comm.starts_with("chromium")
            || test_binary;
        // Zombies cost nothing.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = state
            .rsplit(')')
            .next()
            .is_some_and(|s| s.trim_start().starts_with('Z'));
        if hit && !zombie && !names.iter().any(|n| n == comm) {
            names.push(comm.to_owned());
        }
    }
    names
}

/// `YYYY-MM-DD HH:MM UTC` from the system clock (civil-from-days, no date crate).
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

// ------------------------------------------------------------------ /proc of a child

/// Resident set size of a process, KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("VmRSS in /proc/<pid>/status")
}

/// utime + stime of a process, seconds.
pub fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the ")" that closes comm: state is field 3, utime 14, stime 15.
    let rest = s.rsplit(')').next().context("stat format")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).context("utime")?;
    let sticks: u64 = f.get(12).and_then(|v| v.parse().ok()).context("stime")?;
    // USER_HZ is 100 on every Linux we run on.
    Ok((ticks + sticks) as f64 / 100.0)
}

// ------------------------------------------------------------------ the server child

/// The demo app from the server's first-start banner.
#[derive(Clone, Debug)]
pub struct Demo {
    pub appid: String,
    pub secret: String,
    /// (template id, type)
    pub templates: Vec<(String, u8)>,
}

/// `tuisong serve` (this binary) on a temp data dir, killed when dropped.
pub struct ServerProc {
    child: Child,
    pub pid: u32,
    pub addr: SocketAddr,
    pub demo: Demo,
    stderr: Arc<Mutex<Vec<String>>>,
    /// On PostgreSQL: (base URL, the fresh schema this server ran in), dropped at stop.
    pg_schema: Option<(String, String)>,
    /// The `--store` URL it was started with (a second node joins the same schema).
    store_url: Option<String>,
    _dir: tempfile::TempDir,
}

/// A fresh schema on the PostgreSQL behind `base`, so every run starts on an empty store
/// (and gets its demo app); returns (the URL with that schema first on the search path,
/// the schema's name).
async fn fresh_pg_schema(base: &str) -> anyhow::Result<(String, String)> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!("tuisong_bench_{}_{nanos}", std::process::id());
    let (client, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .context("connecting to --store")?;
    tokio::spawn(conn);
    client
        .batch_execute(&format!("CREATE SCHEMA {name}"))
        .await
        .context("creating a schema for the run")?;
    let sep = if base.contains('?') { '&' } else { '?' };
    Ok((format!("{base}{sep}options=-csearch_path%3D{name}"), name))
}

async fn drop_pg_schema(base: &str, name: &str) {
    if let Ok((client, conn)) = tokio_postgres::connect(base, tokio_postgres::NoTls).await {
        tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
            .await;
    }
}

impl ServerProc {
    pub async fn start(store: &StoreChoice) -> anyhow::Result<ServerProc> {
        Self::start_node(store, None).await
    }

    /// A second node on the same PostgreSQL schema and NATS bus as `first`; it creates no
    /// demo app of its own (it serves `first`'s).
    pub async fn start_peer(first: &ServerProc, store: &StoreChoice) -> anyhow::Result<ServerProc> {
        Self::start_node(store, Some(first)).await
    }

    async fn start_node(
        store: &StoreChoice,
        peer_of: Option<&ServerProc>,
    ) -> anyhow::Result<ServerProc> {
        let dir = tempfile::tempdir()?;
        let pg_schema = match (&store.store, peer_of) {
            (Some(base), None) => Some((base.clone(), fresh_pg_schema(base).await?)),
            _ => None,
        };
        let store_url = match peer_of {
            Some(first) => first.store_url.clone(),
            None => pg_schema.as_ref().map(|(_, (url, _))| url.clone()),
        };
        let exe = std::env::current_exe().context("finding this binary")?;
        let mut cmd = Command::new(exe);
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--listen", "127.0.0.1:0"]);
        for (k, _) in std::env::vars() {
            if k.starts_with("TUISONG_") {
                cmd.env_remove(k);
            }
        }
        if let Some(url) = &store_url {
            cmd.args(["--store", url]);
        }
        if peer_of.is_some() {
            cmd.env("TUISONG_DEMO_APP", "false");
        }
        if let Some(b) = &store.bus {
            cmd.args(["--bus", b]);
        }
        cmd.env("TUISONG_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("TUISONG_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("starting `tuisong serve`")?;
        let pid = child.id().context("server pid")?;
        let stderr = collect_lines(child.stderr.take().context("stderr")?);
        let mut out = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let mut lines = Vec::new();
        let banner_end = if peer_of.is_some() {
            "admin token:"
        } else {
            "README.md walks through"
        };
        let read = async {
            while let Some(l) = out.next_line().await? {
                let done = l.contains(banner_end);
                lines.push(l);
                if done {
                    break;
                }
            }
            anyhow::Ok(())
        };
        let r = tokio::time::timeout(Duration::from_secs(60), read).await;
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
        let err_text = || stderr.lock().map(|l| l.join("\n")).unwrap_or_default();
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => bail!("reading the server's banner: {e}; stderr:\n{}", err_text()),
            Err(_) => bail!(
                "no banner from the server within 60 s; stderr:\n{}",
                err_text()
            ),
        }
        let field = |name: &str| {
            lines
                .iter()
                .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_owned()))
        };
        let addr: SocketAddr = lines
            .iter()
            .find_map(|l| {
                l.strip_prefix("tuisong listening on http://")?
                    .split_whitespace()
                    .next()
            })
            .context("the listening line")?
            .parse()?;
        if let Some(first) = peer_of {
            return Ok(ServerProc {
                child,
                pid,
                addr,
                demo: first.demo.clone(),
                stderr,
                pg_schema: None,
                store_url,
                _dir: dir,
            });
        }
        let (Some(appid), Some(secret)) = (field("appid:"), field("secret:")) else {
            bail!(
                "no demo app in the banner (the bench needs a fresh store: on PostgreSQL, an empty database):\n{}",
                lines.join("\n")
            );
        };
        let templates = lines
            .iter()
            .filter_map(|l| l.trim().strip_prefix("template:"))
            .filter_map(|rest| {
                let rest = rest.trim();
                let id = rest.split_whitespace().next()?.to_owned();
                let kind = rest
                    .rsplit_once("(type ")?
                    .1
                    .trim_end_matches(')')
                    .parse()
                    .ok()?;
                Some((id, kind))
            })
            .collect();
        Ok(ServerProc {
            child,
            pid,
            addr,
            demo: Demo {
                appid,
                secret,
                templates,
            },
            stderr,
            pg_schema: pg_schema.map(|(base, (_, name))| (base, name)),
            store_url,
            _dir: dir,
        })
    }

    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        rss_kib(self.pid)
    }

    /// Fails if the server has exited (with its last words).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            let tail = self.stderr.lock().map(|l| l.join("\n")).unwrap_or_default();
            bail!("the server exited ({status}); stderr:\n{tail}");
        }
        Ok(())
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
        if let Some((base, name)) = &self.pg_schema {
            drop_pg_schema(base, name).await;
        }
    }
}

/// Lines of a child's pipe, read by a task so the pipe never fills (last 200 kept).
pub fn collect_lines(
    r: impl tokio::io::AsyncRead + Unpin + Send + 'static,
) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    tokio::spawn(async move {
        let mut r = BufReader::new(r).lines();
        while let Ok(Some(line)) = r.next_line().await {
            if let Ok(mut v) = l.lock() {
                if v.len() >= 200 {
                    v.remove(0);
                }
                v.push(line);
            }
        }
    });
    lines
}

// ------------------------------------------------------------------ the app and its users

/// The demo app ready for load: an access token, the long-term template (one accept
/// allows any number of sends), valid data for it, and the policy caps turned off.
#[derive(Clone)]
pub struct App {
    pub addr: SocketAddr,
    pub appid: String,
    pub secret: String,
    pub token: String,
    pub template: String,
    /// `data` of a valid send, as JSON text.
    pub data: String,
}

impl App {
    pub async fn prepare(server: &ServerProc) -> anyhow::Result<App> {
        let addr = server.addr;
        let demo = &server.demo;
        let template = demo
            .templates
            .iter()
            .find(|t| t.1 == 3)
            .map(|t| t.0.clone())
            .context("the demo app has a long-term (type 3) template")?;
        let mut c = Conn::connect(addr).await?;
        let v = c
            .get_json(&format!(
                "/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
                demo.appid, demo.secret
            ))
            .await?;
        let token = v["access_token"]
            .as_str()
            .with_context(|| format!("access token: {v}"))?
            .to_owned();
        // The default policy caps one user at 60 messages an hour; load needs none.
        let (s, v) = c
            .json(
                "PUT",
                "/v1/policy",
                Some(&token),
                &json!({"per_user": null, "per_user_template": null, "app_daily": null, "app_per_minute": null}),
            )
            .await?;
        if s != 200 {
            bail!("PUT /v1/policy answered {s}: {v}");
        }
        let v = c
            .get_json(&format!("/wxaapi/newtmpl/gettemplate?access_token={token}"))
            .await?;
        let t = v["data"]
            .as_array()
            .and_then(|a| a.iter().find(|t| t["priTmplId"] == template.as_str()))
            .with_context(|| format!("template {template} in gettemplate: {v}"))?;
        let data = example_data(t)?;
        Ok(App {
            addr,
            appid: demo.appid.clone(),
            secret: demo.secret.clone(),
            token,
            template,
            data: data.to_string(),
        })
    }

    /// The body of a send to `openid` with `page` (where the latency stamp goes).
    pub fn send_body(&self, openid: &str, page: &str) -> String {
        format!(
            r#"{{"touser":"{openid}","template_id":"{}","page":"{page}","data":{}}}"#,
            self.template, self.data
        )
    }

    pub fn send_path(&self) -> String {
        format!(
            "/cgi-bin/message/subscribe/send?access_token={}",
            self.token
        )
    }

    /// `n` users created through the device API, `concurrency` at a time. With
    /// `subscribed`, each also gets its openid (login code → jscode2session) and accepts
    /// the long-term template.
    pub async fn users(
        self: &Arc<Self>,
        n: usize,
        subscribed: bool,
        label: &str,
    ) -> anyhow::Result<Vec<User>> {
        let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let d = done.clone();
        let progress = Progress::start(label, move || {
            let k = d.load(Ordering::Relaxed);
            (k as f64 / n.max(1) as f64, format!("{k}/{n} users"))
        });
        let concurrency = 32.min(n.max(1));
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..concurrency {
            let (app, next, done) = (self.clone(), next.clone(), done.clone());
            tasks.push(tokio::spawn(async move {
                let mut c = Conn::connect(app.addr).await?;
                let mut out = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        return anyhow::Ok(out);
                    }
                    out.push((i, app.user(&mut c, i, subscribed).await?));
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        let mut users = Vec::with_capacity(n);
        let mut first_err = None;
        for t in tasks {
            match t.await? {
                Ok(u) => users.extend(u),
                Err(e) => first_err = first_err.or(Some(e)),
            }
        }
        progress.finish().await;
        if let Some(e) = first_err {
            return Err(e.context("creating users"));
        }
        users.sort_by_key(|u| u.0);
        Ok(users.into_iter().map(|u| u.1).collect())
    }

    async fn user(&self, c: &mut Conn, i: usize, subscribed: bool) -> anyhow::Result<User> {
        let (s, v) = c
            .json(
                "POST",
                "/client/v1/users",
                None,
                &json!({"nickname": format!("bench{i}")}),
            )
            .await?;
        let token = match (s, v["device_token"].as_str()) {
            (200, Some(t)) => t.to_owned(),
            _ => bail!("POST /client/v1/users answered {s}: {v}"),
        };
        if !subscribed {
            return Ok(User {
                token,
                openid: String::new(),
            });
        }
        let (s, v) = c
            .json(
                "POST",
                "/client/v1/login",
                Some(&token),
                &json!({"appid": self.appid}),
            )
            .await?;
        let code = match (s, v["code"].as_str()) {
            (200, Some(t)) => t.to_owned(),
            _ => bail!("POST /client/v1/login answered {s}: {v}"),
        };
        let v = c
            .get_json(&format!(
                "/sns/jscode2session?appid={}&secret={}&js_code={code}&grant_type=authorization_code",
                self.appid, self.secret
            ))
            .await?;
        let openid = v["openid"]
            .as_str()
            .with_context(|| format!("jscode2session: {v}"))?
            .to_owned();
        let tid = &self.template;
        let (s, v) = c
            .json(
                "POST",
                "/client/v1/subscribe",
                Some(&token),
                &json!({"appid": self.appid, "tmplIds": [tid], "decisions": {tid: "accept"}}),
            )
            .await?;
        if s != 200 || v[tid] != "accept" {
            bail!("subscribing answered {s}: {v}");
        }
        Ok(User { token, openid })
    }
}

/// A device user: its device token and, when subscribed, its openid in the demo app.
#[derive(Clone, Debug)]
pub struct User {
    pub token: String,
    pub openid: String,
}

/// `{key: {"value": example}}` from a gettemplate entry.
fn example_data(t: &Value) -> anyhow::Result<Value> {
    let content = t["content"].as_str().context("content")?;
    let example = t["example"].as_str().context("example")?;
    let mut data = serde_json::Map::new();
    for (c, e) in content.lines().zip(example.lines()) {
        let key = c
            .split("{{")
            .nth(1)
            .and_then(|s| s.split(".DATA").next())
            .context("placeholder")?;
        let value = e.split_once(':').map(|(_, v)| v).context("example value")?;
        data.insert(key.to_owned(), json!({"value": value}));
    }
    Ok(Value::Object(data))
}

/// The stamp a send carries in its page: `pages/b?t=<µs>`.
pub fn stamp_page(us: u64) -> String {
    format!("pages/b?t={us}")
}

pub fn stamp_of_page(page: &str) -> Option<u64> {
    page.rsplit_once("t=")?.1.parse().ok()
}

// ------------------------------------------------------------------ devices

pub type Ws = WebSocketStream<TcpStream>;

/// Small client buffers: the bench holds as many sockets as the server does.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
}

/// Source addresses 127.0.0.2, .3, … — each gives its own ~28k ephemeral ports.
pub fn source_ip(i: usize, per_address: usize) -> IpAddr {
    let k = 2 + (i / per_address.max(1)) as u8;
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, k))
}

/// A device's WebSocket from `src`, past hello and welcome.
pub async fn connect_device(
    addr: SocketAddr,
    src: Option<IpAddr>,
    token: &str,
) -> anyhow::Result<Ws> {
    let sock = TcpSocket::new_v4()?;
    if let Some(ip) = src {
        sock.bind(SocketAddr::new(ip, 0))
            .with_context(|| format!("binding {ip}"))?;
    }
    let stream = sock
        .connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let url = format!("ws://{addr}/client/v1/ws?token={token}");
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(ws_config()))
        .await
        .context("WebSocket handshake")?;
    ws.send(WsMessage::text(
        r#"{"type":"hello","cursor":0,"device":"bench"}"#,
    ))
    .await?;
    let welcome = tokio::time::timeout(Duration::from_secs(30), ws.next())
        .await
        .context("no welcome within 30 s")?;
    match welcome {
        Some(Ok(WsMessage::Text(t))) if t.contains("\"welcome\"") => Ok(ws),
        other => bail!("expected welcome, got {other:?}"),
    }
}

/// A frame a device gets, with only the fields the bench reads.
#[derive(serde::Deserialize)]
pub struct Frame<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    #[serde(default)]
    pub msgid: u64,
    #[serde(default, borrow)]
    pub page: Option<std::borrow::Cow<'a, str>>,
}

/// `{"type":"ack","msgid":N}`
pub fn ack(msgid: u64) -> WsMessage {
    WsMessage::text(format!(r#"{{"type":"ack","msgid":{msgid}}}"#))
}

pub fn pong() -> WsMessage {
    WsMessage::text(r#"{"type":"pong"}"#)
}

/// Connects `users` as devices, `concurrency` handshakes at a time, each from a
/// 127.0.0.x source address chosen by index.
pub async fn connect_all(
    addr: SocketAddr,
    users: &[User],
    offset: usize,
    label: &str,
) -> anyhow::Result<Vec<Ws>> {
    let n = users.len();
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let d = done.clone();
    let progress = Progress::start(label, move || {
        let k = d.load(Ordering::Relaxed);
        (k as f64 / n.max(1) as f64, format!("{k}/{n} devices"))
    });
    let results: Vec<anyhow::Result<Ws>> = futures_util::stream::iter(users.iter().enumerate())
        .map(|(i, u)| {
            let done = done.clone();
            let token = u.token.clone();
            async move {
                let src = source_ip(offset + i, PER_SOURCE_ADDRESS);
                let ws = connect_device(addr, Some(src), &token).await;
                done.fetch_add(1, Ordering::Relaxed);
                ws
            }
        })
        .buffered(128)
        .collect()
        .await;
    progress.finish().await;
    results.into_iter().collect()
}

/// Connections per 127.0.0.x source address (well under the ~28k ephemeral ports).
pub const PER_SOURCE_ADDRESS: usize = 20_000;

/// Creates a file (and its folder) with `text`.
pub fn write_file(path: &Path, text: &str) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Waits until `f` is true or `within` passes; returns whether it became true.
pub async fn wait_until(within: Duration, f: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

/// (key, received-at µs) pairs recorded by many device tasks: the key is the send's
/// stamp for cards, the msgid for tombstones.
#[derive(Default)]
pub struct Recorder {
    pairs: Mutex<Vec<(u64, u64)>>,
    count: std::sync::atomic::AtomicU64,
    /// Size of the last frame recorded (bytes), so the MQTT baseline sends the same.
    pub frame_bytes: std::sync::atomic::AtomicUsize,
}

impl Recorder {
    pub fn record(&self, key: u64, at: u64) {
        if let Ok(mut p) = self.pairs.lock() {
            p.push((key, at));
        }
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Everything recorded so far, leaving the recorder empty.
    pub fn take(&self) -> Vec<(u64, u64)> {
        self.count.store(0, Ordering::Relaxed);
        self.pairs
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }
}

/// A device: answers pings, records each card (by its page stamp) and acks it, records
/// each tombstone (by msgid). Ends when the socket does.
pub fn spawn_device(
    ws: Ws,
    cards: Arc<Recorder>,
    recalls: Arc<Recorder>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (mut tx, mut rx) = ws.split();
        while let Some(Ok(msg)) = rx.next().await {
            let WsMessage::Text(t) = msg else { continue };
            let now = now_us();
            let Ok(f) = serde_json::from_str::<Frame>(&t) else {
                continue;
            };
            let reply = match f.kind {
                "message" => {
                    if let Some(stamp) = f.page.as_deref().and_then(stamp_of_page) {
                        cards.frame_bytes.store(t.len(), Ordering::Relaxed);
                        cards.record(stamp, now);
                    }
                    ack(f.msgid)
                }
                "recall" => {
                    recalls.frame_bytes.store(t.len(), Ordering::Relaxed);
                    recalls.record(f.msgid, now);
                    continue;
                }
                "ping" => pong(),
                _ => continue,
            };
            if tx.send(reply).await.is_err() {
                break;
            }
        }
    })
}

/// Runs `n` jobs at `rate`/s spread over `workers` tasks: job i is due at start + i/rate
/// (a late worker catches up at once, so the offered rate holds). `job(worker, i)`.
pub async fn paced<F, Fut>(rate: f64, n: u64, workers: usize, job: F) -> anyhow::Result<()>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let job = Arc::new(job);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let job = job.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w as u64;
            while i < n {
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due).await;
                job(w, i).await?;
                i += workers as u64;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}
