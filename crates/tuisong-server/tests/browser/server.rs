//! The tuisong server under test, in-process on 127.0.0.1:0 with a temp data dir, a known
//! admin token and the demo app; plus the app server's side of the story over plain HTTP
//! (tokens, code2Session, sends), as an SDK would do it.

use anyhow::{Context, Result, anyhow};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tuisong_core::ids::Secret;
use tuisong_server::{Application, BuildOptions, Settings};

pub const ADMIN_TOKEN: &str = "browser-admin-token-0123456789";

pub struct Server {
    pub base: String,
    pub appid: String,
    pub secret: String,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    _dir: Arc<tempfile::TempDir>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub async fn spawn() -> Result<Server> {
    let dir = Arc::new(tempfile::tempdir()?);
    let settings = Settings {
        data_dir: dir.path().to_owned(),
        admin_token: Some(Secret::new(ADMIN_TOKEN)),
        worker_tick: std::time::Duration::from_millis(20),
        // The console test's push receiver listens on 127.0.0.1.
        push: tuisong_server::push::PushSettings {
            allow_private: true,
            ..Default::default()
        },
        ..Settings::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let app = Application::build_with(
        settings,
        BuildOptions {
            listener: Some(listener),
            ..BuildOptions::default()
        },
    )
    .await?;
    let demo = app
        .demo
        .as_ref()
        .context("a fresh server has the demo app")?;
    let appid = demo.app.appid.to_string();
    let secret = demo.app.secret.expose().to_owned();
    let base = format!("http://127.0.0.1:{}", app.port());
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    Ok(Server {
        base,
        appid,
        secret,
        http: reqwest::Client::new(),
        stop: Some(tx),
        _dir: dir,
    })
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> Result<Value> {
        Ok(self.http.get(self.url(path)).send().await?.json().await?)
    }

    /// `/cgi-bin/token`, as the app server gets its access token.
    pub async fn access_token(&self) -> Result<String> {
        let v = self
            .get(&format!(
                "/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
                self.appid, self.secret
            ))
            .await?;
        Ok(v["access_token"]
            .as_str()
            .ok_or_else(|| anyhow!("no token: {v}"))?
            .to_owned())
    }

    /// `/sns/jscode2session`: the login code from the simulator → the user's openid.
    pub async fn openid_of_code(&self, code: &str) -> Result<String> {
        let v = self
            .get(&format!(
                "/sns/jscode2session?appid={}&secret={}&js_code={code}&grant_type=authorization_code",
                self.appid, self.secret
            ))
            .await?;
        Ok(v["openid"]
            .as_str()
            .ok_or_else(|| anyhow!("no openid: {v}"))?
            .to_owned())
    }

    /// The app's template with this title: (priTmplId, data filled with the examples).
    pub async fn template_by_title(&self, token: &str, title: &str) -> Result<(String, Value)> {
        let v = self
            .get(&format!("/wxaapi/newtmpl/gettemplate?access_token={token}"))
            .await?;
        let t = v["data"]
            .as_array()
            .and_then(|l| l.iter().find(|t| t["title"] == title))
            .ok_or_else(|| anyhow!("no template {title}: {v}"))?;
        let content = t["content"].as_str().unwrap_or("");
        let example = t["example"].as_str().unwrap_or("");
        let mut data = serde_json::Map::new();
        for (c, e) in content.lines().zip(example.lines()) {
            let key = c
                .split("{{")
                .nth(1)
                .and_then(|k| k.split('.').next())
                .ok_or_else(|| anyhow!("bad content line {c}"))?;
            let value = e.split_once(':').map_or("", |(_, v)| v);
            data.insert(key.to_owned(), json!({"value": value}));
        }
        Ok((
            t["priTmplId"].as_str().unwrap_or("").to_owned(),
            Value::Object(data),
        ))
    }

    /// `/cgi-bin/message/subscribe/send`; returns the msgid.
    pub async fn send(
        &self,
        token: &str,
        openid: &str,
        template_id: &str,
        data: &Value,
        page: &str,
    ) -> Result<u64> {
        let v: Value = self
            .http
            .post(self.url(&format!(
                "/cgi-bin/message/subscribe/send?access_token={token}"
            )))
            .json(
                &json!({"touser": openid, "template_id": template_id, "page": page, "data": data}),
            )
            .send()
            .await?
            .json()
            .await?;
        v["msgid"]
            .as_u64()
            .ok_or_else(|| anyhow!("send refused: {v}"))
    }

    /// `GET /v1/messages/{msgid}`.
    pub async fn message(&self, token: &str, msgid: u64) -> Result<Value> {
        Ok(self
            .http
            .get(self.url(&format!("/v1/messages/{msgid}")))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?)
    }
}
