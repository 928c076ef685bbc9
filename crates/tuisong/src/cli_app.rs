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
    /// Admin token (default: read ./tuisong-data/admin-token)
    #[arg(
        long,
        env = "TUISONG_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    admin_token: Option<String>,
    #[command(subcommand)]
    cmd: AppCmd,
}

#[derive(Subcommand)]
enum AppCmd {
    /// Create an app; prints its appid and secret.
    Create {
        #[arg(long)]
        name: String,
    },
    /// List apps.
    List,
    /// Show one app with its secret.
    Show { appid: String },
    /// Give an app a new secret.
    ResetSecret { appid: String },
}

fn admin_token(args: &AppArgs) -> anyhow::Result<String> {
    if let Some(t) = &args.admin_token {
        return Ok(t.clone());
    }
    let path = std::path::Path::new("tuisong-data/admin-token");
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .with_context(|| {
            format!(
                "no --admin-token given and {} is not readable",
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
        AppCmd::Show { appid } => {
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
