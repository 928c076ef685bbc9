//! `tuisong app create|list|show|reset-secret`: a client of the admin HTTP API.

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

#[derive(Args)]
pub struct AppArgs {
    /// Server base URL
    #[arg(
        long,
        env = "TUISONG_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    server: String,
    /// Admin token (default: read <data-dir>/admin-token, as `serve` writes it)
    #[arg(
        long,
        env = "TUISONG_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    admin_token: Option<String>,
    /// The server's data directory, where a generated admin token is kept
    #[arg(
        long,
        env = "TUISONG_DATA_DIR",
        default_value = "tuisong-data",
        global = true
    )]
    data_dir: std::path::PathBuf,
    #[command(subcommand)]
    cmd: AppCmd,
}

#[derive(Subcommand)]
enum AppCmd {
    /// Create an app; prints its appid and secret.
    Create {
        /// The app's name, as the phone's consent sheet and the console show it
        #[arg(long)]
        name: String,
    },
    /// List apps.
    List,
    /// Show one app with its secret; `--demo` shows the demo app with its templates,
    /// as the first start printed them.
    Show {
        #[arg(required_unless_present = "demo")]
        appid: Option<String>,
        /// The demo app made on the first start
        #[arg(long, conflicts_with = "appid")]
        demo: bool,
    },
    /// Give an app a new secret.
    ResetSecret { appid: String },
}

fn admin_token(args: &AppArgs) -> anyhow::Result<String> {
    if let Some(t) = &args.admin_token {
        return Ok(t.clone());
    }
    let path = args.data_dir.join("admin-token");
    std::fs::read_to_string(&path)
        .map(|s| s.trim().to_owned())
        .with_context(|| {
            format!(
                "no --admin-token (or TUISONG_ADMIN_TOKEN) given and {} is not readable; \
                 pass the server's --data-dir, or the token",
                path.display()
            )
        })
}

async fn call(
    args: &AppArgs,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let token = admin_token(args)?;
    let url = format!("{}{}", args.server.trim_end_matches('/'), path);
    let mut req = reqwest::Client::new()
        .request(method, &url)
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.with_context(|| format!("calling {url}"))?;
    let status = resp.status();
    let v: Value = resp
        .json()
        .await
        .with_context(|| format!("reading the answer of {url}"))?;
    if !status.is_success() {
        let msg = v["error"]["message"].as_str().unwrap_or("unknown error");
        bail!("{status}: {msg}");
    }
    Ok(v)
}

pub async fn run(args: AppArgs) -> anyhow::Result<()> {
    let v = match &args.cmd {
        AppCmd::Create { name } => {
            call(
                &args,
                reqwest::Method::POST,
                "/admin/apps",
                Some(json!({"name": name})),
            )
            .await?
        }
        AppCmd::List => {
            let v = call(&args, reqwest::Method::GET, "/admin/apps", None).await?;
            for a in v["apps"].as_array().into_iter().flatten() {
                println!(
                    "{}  {}  {}",
                    a["appid"].as_str().unwrap_or(""),
                    a["original_id"].as_str().unwrap_or(""),
                    a["name"].as_str().unwrap_or("")
                );
            }
            return Ok(());
        }
        AppCmd::Show { demo: true, .. } => return show_demo(&args).await,
        AppCmd::Show { appid, .. } => {
            let appid = appid.as_deref().unwrap_or_default();
            call(
                &args,
                reqwest::Method::GET,
                &format!("/admin/apps/{appid}/secret"),
                None,
            )
            .await?
        }
        AppCmd::ResetSecret { appid } => {
            call(
                &args,
                reqwest::Method::POST,
                &format!("/admin/apps/{appid}/reset-secret"),
                None,
            )
            .await?
        }
    };
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}

/// The demo app's name (`tuisong_server::demo`).
const DEMO_NAME: &str = tuisong_server::demo::DEMO_APP_NAME;

/// `app show --demo`: the demo app's credentials and templates, as the first start
/// printed them. The templates are read with a console token, which leaves the app
/// server's own access token alone.
async fn show_demo(args: &AppArgs) -> anyhow::Result<()> {
    let list = call(args, reqwest::Method::GET, "/admin/apps", None).await?;
    let demo = list["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["name"] == DEMO_NAME)
        .with_context(|| format!("no app named {DEMO_NAME:?} on this server"))?;
    let appid = demo["appid"].as_str().unwrap_or_default().to_owned();
    let secret = call(
        args,
        reqwest::Method::GET,
        &format!("/admin/apps/{appid}/secret"),
        None,
    )
    .await?;
    let console = call(
        args,
        reqwest::Method::POST,
        &format!("/admin/apps/{appid}/console-token"),
        None,
    )
    .await?;
    let token = console["access_token"].as_str().unwrap_or_default();
    let url = format!(
        "{}/wxaapi/newtmpl/gettemplate?access_token={token}",
        args.server.trim_end_matches('/')
    );
    let templates: Value = reqwest::get(&url)
        .await
        .context("listing the demo app's templates")?
        .json()
        .await
        .context("reading the demo app's templates")?;
    println!("demo app \"{DEMO_NAME}\"");
    println!("  appid:       {appid}");
    println!(
        "  secret:      {}",
        secret["secret"].as_str().unwrap_or_default()
    );
    println!(
        "  original id: {}",
        demo["original_id"].as_str().unwrap_or_default()
    );
    for t in templates["data"].as_array().into_iter().flatten() {
        println!(
            "  template:    {}  {} (type {})",
            t["priTmplId"].as_str().unwrap_or_default(),
            t["title"].as_str().unwrap_or_default(),
            t["type"]
        );
    }
    Ok(())
}
