//! The server under test as a child process: `tuisong serve` of this binary on a temp
//! data dir (or a fresh PostgreSQL schema), its first-start banner parsed for the address
//! and the demo app, its stderr kept for when it dies.

use super::machine::rss_kib;
use crate::bench::StoreChoice;
use anyhow::{Context, bail};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The admin token the server child is started with.
const ADMIN_TOKEN: &str = "adm_bench_0123456789abcdef";

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

    /// The node a scenario runs against and, with `--nodes 2`, a second one beside it.
    pub async fn start_nodes(
        store: &StoreChoice,
    ) -> anyhow::Result<(ServerProc, Option<ServerProc>)> {
        let server = Self::start(store).await?;
        let peer = match store.nodes {
            1 => None,
            _ => Some(Self::start_peer(&server, store).await?),
        };
        Ok((server, peer))
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
            // The simulated devices all come from 127.0.0.1: the per-address limits of
            // the device API would refuse the bench's own setup.
            .env("TUISONG_CLIENT_USERS_PER_MINUTE", "0")
            .env("TUISONG_CLIENT_LOGINS_PER_MINUTE", "0")
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
