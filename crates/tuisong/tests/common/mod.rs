//! What the tests of the real `tuisong` binary share: a server process on a temp data dir
//! (killed when its guard drops, also on panic), the demo app parsed from its first-start
//! banner, output collectors for child processes, and a typed client for the few WeChat
//! and device endpoints the tests drive.

#![allow(dead_code)] // Each test binary uses its own part of this module.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_tuisong");

/// Lines a child process wrote, collected by a thread so the pipe never fills.
#[derive(Clone, Default)]
pub struct Output {
    lines: Arc<Mutex<Vec<String>>>,
    /// The same process's stderr, shown when a wait on its stdout fails.
    stderr: Option<Arc<Mutex<Vec<String>>>>,
    /// The pipe reached its end: every line is in.
    closed: Arc<AtomicBool>,
}

impl Output {
    pub fn collect(from: impl Read + Send + 'static) -> Output {
        let out = Output::default();
        let (lines, closed) = (out.lines.clone(), out.closed.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(from).lines() {
                let Ok(line) = line else { break };
                lines.lock().expect("output lock").push(line);
            }
            closed.store(true, Ordering::SeqCst);
        });
        out
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    pub fn text(&self) -> String {
        self.lines.lock().expect("output lock").join("\n")
    }

    /// Polls until `f` finds something in the lines so far; panics after `within`
    /// naming `what` and showing everything seen.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        within: Duration,
        f: impl Fn(&[String]) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(t) = f(&self.lines.lock().expect("output lock")) {
                return t;
            }
            if tokio::time::Instant::now() >= deadline {
                let stderr = self
                    .stderr
                    .as_ref()
                    .map(|e| e.lock().expect("output lock").join("\n"))
                    .unwrap_or_default();
                panic!(
                    "{what}: not seen within {within:?}; output:\n{}\nstderr:\n{stderr}",
                    self.text()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The rest of the first line starting with `prefix`, trimmed.
    pub async fn value_after(&self, prefix: &str, within: Duration) -> String {
        self.wait_for(prefix, within, |lines| {
            lines
                .iter()
                .find_map(|l| l.strip_prefix(prefix).map(|v| v.trim().to_owned()))
        })
        .await
    }

    pub async fn wait_contains(&self, needle: &str, within: Duration) {
        self.wait_for(needle, within, |lines| {
            lines.iter().any(|l| l.contains(needle)).then_some(())
        })
        .await
    }
}

/// A child process killed (SIGKILL) and reaped when dropped, so a failing test leaves
/// nothing running.
pub struct Proc {
    pub child: Child,
    pub stdout: Output,
    pub stderr: Output,
}

impl Proc {
    pub fn spawn(args: &[&str]) -> Proc {
        Proc::spawn_env(args, &[])
    }

    /// Like `spawn`, with these environment variables set.
    pub fn spawn_env(args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("TUISONG_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // The flags decide; a developer's environment must not.
        for k in [
            "TUISONG_LISTEN",
            "TUISONG_DATA_DIR",
            "TUISONG_ADMIN_TOKEN",
            "TUISONG_DEMO_APP",
            "TUISONG_SERVER",
            "TUISONG_USER_TOKEN",
        ] {
            cmd.env_remove(k);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("the tuisong binary starts");
        let mut stdout = Output::collect(child.stdout.take().expect("stdout"));
        let stderr = Output::collect(child.stderr.take().expect("stderr"));
        stdout.stderr = Some(stderr.lines.clone());
        Proc {
            child,
            stdout,
            stderr,
        }
    }

    /// SIGKILL on Unix: no shutdown code runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits (bounded) for the process to exit by itself and its output to be read.
    pub async fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let read_all = self.stdout.is_closed() && self.stderr.is_closed();
            match self.child.try_wait().expect("try_wait") {
                Some(s) if read_all => return s,
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "the process did not exit within {within:?}; stdout:\n{}\nstderr:\n{}",
                    self.stdout.text(),
                    self.stderr.text()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `tuisong serve` on a data dir.
pub struct Server {
    pub proc: Proc,
    pub base: String,
    pub port: u16,
}

/// The demo app from the first-start banner.
#[derive(Clone, Debug)]
pub struct Demo {
    pub appid: String,
    pub secret: String,
    /// (template id, title, type)
    pub templates: Vec<(String, String, u8)>,
}

impl Demo {
    pub fn of_type(&self, kind: u8) -> (String, String) {
        self.templates
            .iter()
            .find(|t| t.2 == kind)
            .map(|t| (t.0.clone(), t.1.clone()))
            .unwrap_or_else(|| panic!("a type {kind} template in {:?}", self.templates))
    }
}

const START_TIMEOUT: Duration = Duration::from_secs(20);

impl Server {
    /// Starts the server on `listen` (e.g. 127.0.0.1:0) and waits until /healthz answers.
    pub async fn start(dir: &Path, listen: &str) -> Server {
        Server::start_with(dir, listen, &[], &[]).await
    }

    /// Starts the server with extra `serve` flags and environment variables.
    pub async fn start_with(
        dir: &Path,
        listen: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let dir = dir.to_str().expect("utf-8 temp dir");
        let mut args = vec!["serve", "--data-dir", dir, "--listen", listen];
        args.extend_from_slice(extra);
        let proc = Proc::spawn_env(&args, env);
        let base = proc
            .stdout
            .wait_for("the listening line", START_TIMEOUT, |lines| {
                lines.iter().find_map(|l| {
                    l.strip_prefix("tuisong listening on ")
                        .and_then(|r| r.split_whitespace().next())
                        .map(str::to_owned)
                })
            })
            .await;
        let port = base
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("a port in {base}"));
        let server = Server { proc, base, port };
        server.wait_healthy().await;
        server
    }

    async fn wait_healthy(&self) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let url = format!("{}/healthz", self.base);
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            match client.get(&url).send().await {
                Ok(r) if r.status().is_success() => return,
                _ => {}
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "/healthz never answered; stderr:\n{}",
                self.proc.stderr.text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The demo app, parsed from the banner of a first start.
    pub async fn demo(&self) -> Demo {
        let out = &self.proc.stdout;
        out.wait_contains("README.md walks through", START_TIMEOUT)
            .await;
        let lines = out.lines.lock().expect("lock").clone();
        let field = |name: &str| {
            lines
                .iter()
                .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_owned()))
                .unwrap_or_else(|| panic!("{name} in the banner:\n{}", lines.join("\n")))
        };
        // "  template:    <id>  <title> (type N)"
        let templates = lines
            .iter()
            .filter_map(|l| l.trim().strip_prefix("template:"))
            .map(|rest| {
                let rest = rest.trim();
                let (id, rest) = rest.split_once(' ').expect("id then title");
                let (title, kind) = rest.trim().rsplit_once(" (type ").expect("(type N)");
                let kind = kind.trim_end_matches(')').parse().expect("type number");
                (id.to_owned(), title.to_owned(), kind)
            })
            .collect();
        Demo {
            appid: field("appid:"),
            secret: field("secret:"),
            templates,
        }
    }
}

/// The app server's and the device's side of the API, by HTTP.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    pub demo: Demo,
}

impl Api {
    pub fn new(base: &str, demo: &Demo) -> Api {
        Api {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .expect("client"),
            demo: demo.clone(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> Value {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json")
    }

    /// (status, body)
    pub async fn post(&self, path: &str, bearer: Option<&str>, body: Value) -> (u16, Value) {
        let mut r = self.http.post(self.url(path)).json(&body);
        if let Some(b) = bearer {
            r = r.bearer_auth(b);
        }
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// (status, body)
    pub async fn put(&self, path: &str, bearer: &str, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .put(self.url(path))
            .bearer_auth(bearer)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().await.expect("json"))
    }

    pub async fn token(&self) -> String {
        let v = self
            .get(&format!(
                "/cgi-bin/token?grant_type=client_credential&appid={}&secret={}",
                self.demo.appid, self.demo.secret
            ))
            .await;
        v["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("token: {v}"))
            .to_owned()
    }

    pub async fn openid_of(&self, code: &str) -> String {
        let v = self
            .get(&format!(
                "/sns/jscode2session?appid={}&secret={}&js_code={code}&grant_type=authorization_code",
                self.demo.appid, self.demo.secret
            ))
            .await;
        v["openid"]
            .as_str()
            .unwrap_or_else(|| panic!("session: {v}"))
            .to_owned()
    }

    /// A new device user: (device token, openid).
    pub async fn device_user(&self, nickname: &str) -> (String, String) {
        let (s, v) = self
            .post("/client/v1/users", None, json!({"nickname": nickname}))
            .await;
        assert_eq!(s, 200, "{v}");
        let dt = v["device_token"].as_str().expect("device token").to_owned();
        let (s, v) = self
            .post(
                "/client/v1/login",
                Some(&dt),
                json!({"appid": self.demo.appid}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let openid = self.openid_of(v["code"].as_str().expect("code")).await;
        (dt, openid)
    }

    pub async fn accept(&self, device_token: &str, id: &str) {
        let (s, v) = self
            .post(
                "/client/v1/subscribe",
                Some(device_token),
                json!({"appid": self.demo.appid, "tmplIds": [id], "decisions": {id: "accept"}}),
            )
            .await;
        assert_eq!((s, v[id].as_str()), (200, Some("accept")), "{v}");
    }

    /// Valid `data` for a template, from its gettemplate content and example.
    pub async fn example_data(&self, token: &str, id: &str) -> Value {
        let v = self
            .get(&format!("/wxaapi/newtmpl/gettemplate?access_token={token}"))
            .await;
        let t = v["data"]
            .as_array()
            .expect("data")
            .iter()
            .find(|t| t["priTmplId"] == id)
            .unwrap_or_else(|| panic!("template {id} listed in {v}"))
            .clone();
        example_data_of(&t)
    }

    pub fn send_url(&self, token: &str) -> String {
        self.url(&format!(
            "/cgi-bin/message/subscribe/send?access_token={token}"
        ))
    }
}

/// `{key: {"value": example}}` from a gettemplate entry.
pub fn example_data_of(t: &Value) -> Value {
    let content = t["content"].as_str().expect("content");
    let example = t["example"].as_str().expect("example");
    let mut data = serde_json::Map::new();
    for (c, e) in content.lines().zip(example.lines()) {
        let key = c
            .split("{{")
            .nth(1)
            .and_then(|s| s.split(".DATA").next())
            .expect("placeholder");
        let value = e.split_once(':').map(|(_, v)| v).expect("example value");
        data.insert(key.to_owned(), json!({"value": value}));
    }
    Value::Object(data)
}
