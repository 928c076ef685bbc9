//! `Application::build(settings)` → `port()` → `run_until_stopped()`: opens the store,
//! makes sure there is an admin token (and, on a fresh store, a demo app), binds the
//! listener (or takes one a test made), serves `api::router` and runs the supervised
//! workers until it is stopped.

use crate::gateway::Hub;
use crate::settings::Settings;
use crate::state::{AppState, Limits, WorkerRestarts};
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

fn admin_token(settings: &Settings) -> anyhow::Result<(Secret, AdminTokenSource)> {
    if let Some(t) = &settings.admin_token {
        return Ok((t.clone(), AdminTokenSource::Settings));
    }
    let path = settings.data_dir.join("admin-token");
    if path.exists() {
        let t = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        return Ok((Secret::new(t.trim()), AdminTokenSource::File(path)));
    }
    let token = format!("adm_{}", random_url_safe(40));
    write_private(&path, &token)?;
    Ok((Secret::new(token), AdminTokenSource::Generated(path)))
}

/// Writes a file only its owner can read (mode 0600 on Unix).
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        Self::build_with(settings, BuildOptions::default()).await
    }

    pub async fn build_with(settings: Settings, opts: BuildOptions) -> anyhow::Result<Application> {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating data dir {}", settings.data_dir.display()))?;
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
            refusal_code: |e| tuisong_wire::errcode::wx_error(e).0,
            ..settings.platform.clone()
        };
        let platform = Arc::new(Platform::new(store, opts.clock, platform_settings));
        let (token, admin_token_source) = admin_token(&settings)?;
        let demo = if settings.demo_app {
            demo::ensure_demo_app(&platform).await?
        } else {
            None
        };
        let hub = Arc::new(Hub::default());
        match &settings.bus {
            Some(url) => {
                let bus = crate::bus::NatsBus::connect(url, hub.clone(), platform.clone()).await?;
                platform.set_notifier(bus);
            }
            None => platform.set_notifier(hub.clone()),
        }
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        let state = AppState {
            platform,
            admin_token: Arc::new(token),
            hub,
            limits: Limits {
                max_connections: settings.max_connections,
                ping_interval: settings.ping_interval,
            },
            shutdown: shutdown_rx,
            push_http: crate::push::http_client(settings.push.timeout),
            worker_restarts: Arc::new(WorkerRestarts::default()),
        };
        let router = api::router(state.clone());
        let listener = match opts.listener {
            Some(l) => l,
            None => TcpListener::bind(settings.listen)
                .await
                .with_context(|| format!("binding {}", settings.listen))?,
        };
        let addr = listener.local_addr()?;
        Ok(Application {
            listener,
            shutdown,
            worker_tick: settings.worker_tick,
            push: settings.push.clone(),
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

    /// Serves until `stop` completes, then drains in-flight requests, closes device
    /// sessions and stops the workers.
    pub async fn run_until(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let tasks = workers::spawn_all(&self.state, self.worker_tick, self.push);
        let shutdown = self.shutdown;
        let stop = async move {
            stop.await;
            let _ = shutdown.send(true);
        };
        let served = axum::serve(self.listener, self.router)
            .with_graceful_shutdown(stop)
            .await;
        for w in tasks {
            // A supervisor only ends at shutdown; one that panicked has nothing left to stop.
            if let Err(e) = w.await {
                tracing::error!(error = %e, "a worker supervisor failed");
            }
        }
        served
    }
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
