//! `Application::build(settings)` → `port()` → `run_until_stopped()`: opens the store,
//! makes sure there is an admin token (and, on a fresh store, a demo app), binds the
//! listener (or takes one a test made), serves `api::router` and runs the supervised
//! workers until it is stopped.

use crate::edge::limit::KeyedLimiter;
use crate::gateway::Hub;
use crate::settings::{Settings, check_admin_token};
use crate::state::{AppState, ClientLimits, Limits, WorkerRestarts};
use crate::{api, demo, workers};
use anyhow::Context;
use axum::Router;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpListener;
use tuisong_core::clock::{Clock, SystemClock};
use tuisong_core::ids::{Secret, random_url_safe};
use tuisong_core::service::Platform;
use tuisong_core::store::Store;
use tuisong_store::PgStore;
use tuisong_store::sqlite::{SqliteSettings, SqliteStore, db_path};

/// How an admin token came to be, for the first-start banner.
#[derive(Debug, Clone)]
pub enum AdminTokenSource {
    Settings,
    File(PathBuf),
    Generated(PathBuf),
}

pub struct Application {
    listener: TcpListener,
    shutdown: tokio::sync::watch::Sender<bool>,
    worker_tick: std::time::Duration,
    push: crate::push::PushSettings,
    retention: tuisong_core::service::Retention,
    retention_interval: std::time::Duration,
    drain_timeout: std::time::Duration,
    addr: SocketAddr,
    router: Router,
    pub state: AppState,
    pub admin_token_source: AdminTokenSource,
    /// Set when this start created the demo app.
    pub demo: Option<demo::DemoApp>,
}

/// Knobs that tests (and the benchmark) set; production uses the defaults.
pub struct BuildOptions {
    pub listener: Option<TcpListener>,
    pub clock: Arc<dyn Clock>,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            listener: None,
            clock: Arc::new(SystemClock),
        }
    }
}

/// The operator's token: from the settings, else `<data_dir>/admin-token`, else a new one
/// written there. A token shorter than the minimum from any source (an empty file left by
/// a start that died mid-write, an operator's truncation) stops the start: an empty token
/// would make a request with no `Authorization` header an admin.
fn admin_token(settings: &Settings) -> anyhow::Result<(Secret, AdminTokenSource)> {
    if let Some(t) = &settings.admin_token {
        check_admin_token("admin_token", t.expose())?;
        return Ok((t.clone(), AdminTokenSource::Settings));
    }
    let path = settings.data_dir.join("admin-token");
    if path.exists() {
        let t = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let t = check_admin_token(&path.display().to_string(), t.trim()).context(
            "the admin-token file is unusable: delete it to have a new one generated, \
             or set TUISONG_ADMIN_TOKEN",
        )?;
        return Ok((t, AdminTokenSource::File(path)));
    }
    let token = format!("adm_{}", random_url_safe(40));
    write_private_atomically(&path, &token)?;
    Ok((Secret::new(token), AdminTokenSource::Generated(path)))
}

/// Writes a file only its owner can read (mode 0600 on Unix), atomically: the text goes
/// to a temporary file in the same directory, is flushed to disk and then renamed over
/// `path`, so a crash leaves either no file or the whole one — never an empty token.
fn write_private_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        random_url_safe(8)
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let written = (|| -> anyhow::Result<()> {
        let mut f = opts
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(text.as_bytes())
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all()
            .with_context(|| format!("flushing {}", tmp.display()))?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
        // The rename itself is durable once the directory is flushed.
        #[cfg(unix)]
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        Self::build_with(settings, BuildOptions::default()).await
    }

    pub async fn build_with(settings: Settings, opts: BuildOptions) -> anyhow::Result<Application> {
        // The port first: a start that cannot listen must not create the data dir, the
        // token, the database and the demo app, whose credentials it would then never show.
        let listener = match opts.listener {
            Some(l) => l,
            None => TcpListener::bind(settings.listen)
                .await
                .with_context(|| format!("binding {}", settings.listen))?,
        };
        prepare_data_dir(&settings.data_dir)?;
        // Before anything else is created: a start refused for its token leaves no database.
        let (token, admin_token_source) = admin_token(&settings)?;
        let store: Arc<dyn Store> = match &settings.store {
            Some(url) => Arc::new(
                PgStore::connect(url, 16)
                    .await
                    .context("connecting to the PostgreSQL store")?,
            ),
            None => {
                let mut sqlite = SqliteSettings::new(db_path(&settings.data_dir));
                sqlite.fsync = settings.sqlite_fsync;
                Arc::new(SqliteStore::open(sqlite).context("opening the embedded store")?)
            }
        };
        // Refused sends are counted under their WeChat errcode, whichever dialect sent them.
        let platform_settings = tuisong_core::service::PlatformSettings {
            refusal_code: |e| match e {
                // WeChat has no idempotency keys; 47001 would hide what happened.
                tuisong_core::Error::IdempotencyConflict => "idempotency_conflict".to_owned(),
                _ => tuisong_wire::errcode::wx_error(e).0.to_string(),
            },
            ..settings.platform.clone()
        };
        let platform = Arc::new(Platform::new(store, opts.clock, platform_settings));
        let demo = if settings.demo_app {
            demo::ensure_demo_app(&platform).await?
        } else {
            None
        };
        let hub = Arc::new(Hub::default());
        let bus = match &settings.bus {
            Some(url) => {
                let bus = crate::bus::NatsBus::connect(url, hub.clone(), platform.clone()).await?;
                platform.set_notifier(bus.clone());
                Some(bus)
            }
            None => {
                platform.set_notifier(hub.clone());
                None
            }
        };
        let node = bus.as_ref().map_or("standalone", |b| b.node());
        let metrics = Arc::new(crate::metrics::Metrics::new(node));
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let state = AppState {
            platform,
            admin_token: Arc::new(token),
            hub,
            limits: Limits {
                max_connections: settings.max_connections,
                ping_interval: settings.ping_interval,
                hello_timeout: settings.hello_timeout,
            },
            shutdown: shutdown_rx,
            push_http: crate::push::PushClient::new(&settings.push),
            worker_restarts: Arc::new(WorkerRestarts::default()),
            client_limits: Arc::new(ClientLimits {
                users: KeyedLimiter::new(
                    settings.client_users_per_minute,
                    settings.client_users_burst,
                ),
                logins: KeyedLimiter::new(
                    settings.client_logins_per_minute,
                    settings.client_logins_burst,
                ),
                credentials: crate::guard::CredentialGuard::new(settings.auth_failures_per_minute),
            }),
            metrics,
            bus,
        };
        let router = api::router(state.clone());
        let addr = listener.local_addr()?;
        Ok(Application {
            listener,
            shutdown,
            worker_tick: settings.worker_tick,
            push: settings.push.clone(),
            retention: settings.retention.clone(),
            retention_interval: settings.retention_interval,
            drain_timeout: settings.drain_timeout,
            addr,
            router,
            state,
            admin_token_source,
            demo,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until Ctrl-C or SIGTERM, then drains in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(shutdown_signal()).await
    }

    /// Serves until `stop` completes, then drains: the listener closes, in-flight
    /// requests finish, device sessions are closed with 1001 (going away) and the
    /// workers stop — all within the drain timeout, after which it returns anyway. Every
    /// answered write is already committed; the store's writer drains its queue and ends
    /// when the last holder of the store lets go of it.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let mut tasks = workers::spawn_all(&self.state, self.worker_tick, self.push);
        tasks.push(workers::spawn_retention(
            &self.state,
            self.retention,
            self.retention_interval,
        ));
        let shutdown = Arc::new(self.shutdown);
        let stop = {
            let shutdown = shutdown.clone();
            async move {
                stop.await;
                let _ = shutdown.send(true);
            }
        };
        // Fires `drain_timeout` after the stop (however it came).
        let drain = self.drain_timeout;
        let mut stopped = shutdown.subscribe();
        let timer = async move {
            let _ = stopped.wait_for(|s| *s).await;
            tokio::time::sleep(drain).await;
        };
        tokio::pin!(timer);
        // The peer address reaches handlers (`edge::limit::ClientIp`) for rate limits.
        let app = self
            .router
            .into_make_service_with_connect_info::<SocketAddr>();
        let served = axum::serve(self.listener, app).with_graceful_shutdown(stop);
        let served = tokio::select! {
            r = served => r,
            () = &mut timer => {
                tracing::warn!(?drain, "requests still open at the end of the drain");
                return Ok(());
            }
        };
        // Serving may also end by itself (an error): the sessions and workers stop too.
        let _ = shutdown.send(true);
        let hub = self.state.hub.clone();
        let rest = async move {
            // Upgraded sockets are not axum's connections any more: wait for the sessions.
            while hub.sockets() > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            for w in tasks {
                // A supervisor only ends at shutdown; one that panicked has nothing to stop.
                if let Err(e) = w.await {
                    tracing::error!(error = %e, "a worker supervisor failed");
                }
            }
        };
        tokio::select! {
            () = rest => {}
            () = &mut timer => {
                tracing::warn!(?drain, "device sockets or workers still open at the end of the drain");
            }
        }
        served
    }
}

/// Creates the data directory if needed and keeps it the owner's: the directory 0700 and
/// an existing `admin-token` 0600 on Unix, set explicitly whatever the umask (the
/// database files are the store's to restrict, `SqliteStore::open`).
fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
        .with_context(|| format!("creating data dir {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let private = |p: &Path, mode: u32| -> anyhow::Result<()> {
            let now = std::fs::metadata(p)
                .with_context(|| format!("reading {}", p.display()))?
                .permissions()
                .mode();
            if now & 0o777 != mode {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
                    .with_context(|| format!("restricting the mode of {}", p.display()))?;
            }
            Ok(())
        };
        private(dir, 0o700)?;
        let token = dir.join("admin-token");
        if token.exists() {
            private(&token, 0o600)?;
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
