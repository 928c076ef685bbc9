//! The demo app made ready for load through the public API (access token, long-term
//! template, caps off) and its device users, and the latency stamp a send carries.

use super::progress::Progress;
use super::server::ServerProc;
use crate::bench::http::Conn;
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

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
