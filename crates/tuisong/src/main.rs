//! The `tuisong` command: `serve` runs the server; `app …` manages apps through the admin
//! HTTP API (never the database); `device` is a terminal device on the device API;
//! `bench` measures. Parse → dispatch; errors are printed
//! with their chain and turn into a non-zero exit code.

mod bench;
mod civil;
mod cli_app;
mod config;
mod device;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tuisong_server::app::AdminTokenSource;
use tuisong_server::{Application, Overrides, Settings};

#[derive(Parser)]
#[command(
    name = "tuisong",
    version,
    about = "Self-hosted push on the WeChat subscription-message model"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Log lines as text (coloured on a terminal) or as JSON objects for log shippers
    #[arg(
        long,
        global = true,
        value_enum,
        env = "TUISONG_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// Logs go to stderr, filtered by `TUISONG_LOG` (default `info`); colour only when
/// stderr is a terminal.
fn init_log(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("TUISONG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => fmt.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => fmt
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}

/// The environment `serve` reads (each overrides the config file; flags override it).
const SERVE_ENV: &str = "Environment:
  TUISONG_ADMIN_TOKEN      the operator's token (≥ 16 characters); else <data-dir>/admin-token
  TUISONG_DEMO_APP         false: no demo app on the first start
  TUISONG_LOG              log filter, e.g. info, debug, tuisong_server=debug
  TUISONG_LOG_FORMAT       text (default) or json
  TUISONG_LISTEN, TUISONG_DATA_DIR, TUISONG_STORE, TUISONG_BUS   as the flags
  TUISONG_SQLITE_FSYNC, TUISONG_PUSH_ALLOW_PRIVATE,
  TUISONG_CLIENT_USERS_PER_MINUTE, TUISONG_CLIENT_USERS_BURST,
  TUISONG_CLIENT_LOGINS_PER_MINUTE, TUISONG_CLIENT_LOGINS_BURST,
  TUISONG_AUTH_FAILURES_PER_MINUTE, TUISONG_DRAIN_TIMEOUT_SECS,
  TUISONG_RETENTION_{MESSAGES,PUSH,STATS}_DAYS, TUISONG_RETENTION_INTERVAL_SECS
                           see docs/tuisong.example.toml for each";

#[derive(Subcommand)]
enum Cmd {
    /// Run the server (embedded SQLite under ./tuisong-data, 127.0.0.1:8080 by default).
    #[command(after_help = SERVE_ENV)]
    Serve {
        /// Address to listen on, e.g. 0.0.0.0:8080 [env: TUISONG_LISTEN]
        #[arg(long)]
        listen: Option<String>,
        /// Data directory [env: TUISONG_DATA_DIR]
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// TOML config file (keys: listen, data_dir, admin_token, demo_app, sqlite_fsync,
        /// token_daily_limit, worker_tick_ms, ping_interval_secs, max_connections,
        /// hello_timeout_secs, push_retry_hours, push_allow_private, store, bus,
        /// client_users_per_minute, client_users_burst, client_logins_per_minute,
        /// client_logins_burst, auth_failures_per_minute,
        /// retention_messages_days, retention_push_days, retention_stats_days,
        /// retention_interval_secs, drain_timeout_secs; docs/tuisong.example.toml)
        #[arg(long)]
        config: Option<PathBuf>,
        /// Shared store for several nodes, postgres://… [env: TUISONG_STORE]
        #[arg(long)]
        store: Option<String>,
        /// Bus between nodes, nats://… [env: TUISONG_BUS]
        #[arg(long)]
        bus: Option<String>,
    },
    /// Manage apps through the admin API.
    App(cli_app::AppArgs),
    /// A terminal device: signs a user in, accepts templates, shows notifications live.
    Device(device::DeviceArgs),
    /// Benchmarks with a baseline measured in the same run.
    Bench(bench::BenchArgs),
    /// Check a configuration: `tuisong config check --config tuisong.toml`.
    Config(config::ConfigArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_log(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.cmd {
            Cmd::Serve {
                listen,
                data_dir,
                config,
                store,
                bus,
            } => {
                let overrides = Overrides {
                    listen,
                    data_dir,
                    store,
                    bus,
                };
                serve(config, overrides).await
            }
            Cmd::App(args) => cli_app::run(args).await,
            Cmd::Device(args) => device::run(args).await,
            Cmd::Bench(args) => bench::run(args).await,
            Cmd::Config(args) => config::run(args),
        }
    });
    // A session or request the drain gave up on must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Option<PathBuf>, overrides: Overrides) -> anyhow::Result<()> {
    let settings = Settings::load(config.as_deref(), std::env::vars(), &overrides)?;
    let data_dir = settings.data_dir.clone();
    let app = Application::build(settings).await?;
    let base = format!("http://{}", app.local_addr());
    println!(
        "tuisong listening on {base} (data in {})",
        data_dir.display()
    );
    match &app.admin_token_source {
        AdminTokenSource::Settings => println!("admin token: from TUISONG_ADMIN_TOKEN / config"),
        AdminTokenSource::File(p) => println!("admin token: in {}", p.display()),
        AdminTokenSource::Generated(p) => {
            println!("admin token: generated into {} (mode 0600)", p.display())
        }
    }
    if let Some(demo) = &app.demo {
        let a = &demo.app;
        println!();
        println!("First start: created the demo app \"{}\"", a.name);
        println!("  appid:       {}", a.appid);
        println!("  secret:      {}", a.secret.expose());
        println!("  original id: {}", a.original_id);
        for t in &demo.templates {
            println!(
                "  template:    {}  {} (type {})",
                t.id,
                t.title,
                t.kind.code()
            );
        }
        println!();
        println!("Try:");
        println!(
            "  curl '{base}/cgi-bin/token?grant_type=client_credential&appid={}&secret={}'",
            a.appid,
            a.secret.expose()
        );
        println!("  curl '{base}/wxaapi/newtmpl/gettemplate?access_token=TOKEN'");
        println!("  README.md walks through a whole send.");
    }
    app.run_until_stopped().await?;
    Ok(())
}
