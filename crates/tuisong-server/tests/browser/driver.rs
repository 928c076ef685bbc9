//! A tiny W3C WebDriver client over reqwest, enough to drive headless Chromium through
//! chromedriver: sessions, navigation, clicks, keys, scripts, screenshots. Every wait
//! polls with a deadline; none sleeps for the thing it waits for.

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use serde_json::{Value, json};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a wait polls before it fails the test.
pub const TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(100);
/// The W3C key of an element reference in a JSON answer.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver child process on a free port. On drop it closes the browser sessions
/// still open (a test that failed before `quit`) and then kills chromedriver, by its pid.
pub struct Chromedriver {
    child: Child,
    port: u16,
    pub base: String,
    sessions: Arc<Mutex<Vec<String>>>,
    _profiles: tempfile::TempDir,
}

impl Chromedriver {
    pub async fn start() -> Result<Chromedriver> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {CHROMEDRIVER}"))?;
        let driver = Chromedriver {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
            sessions: Arc::default(),
            _profiles: tempfile::tempdir()?,
        };
        let http = reqwest::Client::new();
        poll("chromedriver to answer /status", || async {
            let r = http
                .get(format!("{}/status", driver.base))
                .send()
                .await
                .ok()?;
            let v: Value = r.json().await.ok()?;
            v["value"]["ready"].as_bool().filter(|r| *r)
        })
        .await?;
        Ok(driver)
    }

    /// A new browser window of the given size with a fresh profile.
    pub async fn browser(&self, width: u32, height: u32) -> Result<Browser> {
        let profile = tempfile::Builder::new()
            .prefix("chromium-")
            .tempdir_in(self._profiles.path())?
            .keep();
        let args = [
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--force-device-scale-factor=1".to_owned(),
            "--hide-scrollbars".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let r: Value = http
            .post(format!("{}/session", self.base))
            .json(&caps)
            .send()
            .await?
            .json()
            .await?;
        let session = r["value"]["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no session: {r}"))?
            .to_owned();
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(session.clone());
        let browser = Browser {
            http,
            url: format!("{}/session/{session}", self.base),
            session,
            sessions: self.sessions.clone(),
        };
        // Chromium keeps windows at least 500 px wide and counts its own frame in
        // --window-size; the page's viewport is set exactly through DevTools instead.
        browser
            .post(
                "/goog/cdp/execute",
                json!({"cmd": "Emulation.setDeviceMetricsOverride", "params": {
                    "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500,
                }}),
            )
            .await?;
        Ok(browser)
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // Drop cannot await, so the sessions a failed test left open are deleted with a
        // plain blocking HTTP request: that closes their Chromium processes.
        let open = std::mem::take(&mut *self.sessions.lock().unwrap_or_else(|e| e.into_inner()));
        for id in open {
            let _ = delete_session_blocking(self.port, &id);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn delete_session_blocking(port: u16, id: &str) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)?;
    Ok(())
}

/// Polls `f` until it gives Some or the deadline passes.
pub async fn poll<T, F, Fut>(what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {TIMEOUT:?} waiting for {what}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One WebDriver session (one browser window).
pub struct Browser {
    http: reqwest::Client,
    url: String,
    session: String,
    sessions: Arc<Mutex<Vec<String>>>,
}

impl Browser {
    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        // W3C wants a JSON body on every POST, even an empty one.
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r: Value = req.send().await?.json().await?;
        let v = r.get("value").cloned().unwrap_or(Value::Null);
        if let Some(err) = v.get("error").and_then(Value::as_str) {
            bail!(
                "webdriver {path}: {err}: {}",
                v["message"]
                    .as_str()
                    .unwrap_or("")
                    .lines()
                    .next()
                    .unwrap_or("")
            );
        }
        Ok(v)
    }

    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.cmd(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        self.post("/url", json!({"url": url})).await.map(drop)
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub async fn exec(&self, script: &str, args: Value) -> Result<Value> {
        self.post("/execute/sync", json!({"script": script, "args": args}))
            .await
    }

    async fn find(&self, css: &str) -> Result<Option<String>> {
        match self
            .post("/element", json!({"using": "css selector", "value": css}))
            .await
        {
            Ok(v) => Ok(v[ELEMENT].as_str().map(str::to_owned)),
            Err(e) if e.to_string().contains("no such element") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// What the page shows, for the message of a failed wait.
    async fn page_summary(&self) -> String {
        let text = self
            .exec(
                "return location.href + '\\n' + document.body.innerText.slice(0, 600)",
                json!([]),
            )
            .await
            .unwrap_or_default();
        text.as_str().unwrap_or("").to_owned()
    }

    async fn with_context<T>(&self, r: Result<T>) -> Result<T> {
        match r {
            Ok(v) => Ok(v),
            Err(e) => Err(e.context(format!("page was:\n{}", self.page_summary().await))),
        }
    }

    /// Waits for an element and clicks it, again if it was re-rendered or covered
    /// between the find and the click.
    pub async fn click(&self, css: &str) -> Result<()> {
        let r = poll(&format!("a clickable {css}"), || async {
            let id = self.find(css).await.ok()??;
            self.post(&format!("/element/{id}/click"), json!({}))
                .await
                .ok()
                .map(drop)
        })
        .await;
        self.with_context(r).await
    }

    /// Waits for an input and types into it (after clearing it).
    pub async fn type_into(&self, css: &str, text: &str) -> Result<()> {
        let r = poll(&format!("an input {css}"), || async {
            let id = self.find(css).await.ok()??;
            self.post(&format!("/element/{id}/clear"), json!({}))
                .await
                .ok()?;
            self.post(&format!("/element/{id}/value"), json!({"text": text}))
                .await
                .ok()
                .map(drop)
        })
        .await;
        self.with_context(r).await
    }

    /// The rendered text of the first element matching `css`, or None.
    pub async fn text(&self, css: &str) -> Result<Option<String>> {
        let v = self
            .exec(
                "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
                json!([css]),
            )
            .await?;
        Ok(v.as_str().map(str::to_owned))
    }

    pub async fn count(&self, css: &str) -> Result<usize> {
        let v = self
            .exec(
                "return document.querySelectorAll(arguments[0]).length;",
                json!([css]),
            )
            .await?;
        Ok(v.as_u64().unwrap_or(0) as usize)
    }

    /// Waits until an element matching `css` exists.
    pub async fn wait(&self, css: &str) -> Result<()> {
        let r = poll(&format!("{css} to appear"), || async {
            (self.count(css).await.ok()? > 0).then_some(())
        })
        .await;
        self.with_context(r).await
    }

    /// Waits until an element matching `css` has text containing `needle`; returns that
    /// element's whole text.
    pub async fn wait_text(&self, css: &str, needle: &str) -> Result<String> {
        let r = poll(&format!("{css} to show {needle:?}"), || async {
            let all = self
                .exec(
                    "return [...document.querySelectorAll(arguments[0])].map((e) => e.innerText);",
                    json!([css]),
                )
                .await
                .ok()?;
            all.as_array()?
                .iter()
                .filter_map(Value::as_str)
                .find(|t| t.contains(needle))
                .map(str::to_owned)
        })
        .await;
        self.with_context(r).await
    }

    /// Waits until the element's text is exactly `want` (trimmed).
    pub async fn wait_text_is(&self, css: &str, want: &str) -> Result<()> {
        let r = poll(&format!("{css} to read {want:?}"), || async {
            self.text(css)
                .await
                .ok()
                .flatten()
                .filter(|t| t.trim() == want)
                .map(drop)
        })
        .await;
        self.with_context(r).await
    }

    /// Saves a PNG of the viewport to `path`, without the passing toasts of earlier
    /// steps (the picture is for people to look at).
    pub async fn screenshot(&self, path: &Path) -> Result<PathBuf> {
        self.exec(
            "document.querySelectorAll('.toast, .sim-toast').forEach((e) => e.remove());",
            json!([]),
        )
        .await?;
        // Let transitions settle.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let v = self.cmd(reqwest::Method::GET, "/screenshot", None).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().ok_or_else(|| anyhow!("no screenshot data"))?)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))?;
        Ok(path.to_owned())
    }

    pub async fn quit(self) -> Result<()> {
        self.cmd(reqwest::Method::DELETE, "", None).await?;
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|s| *s != self.session);
        Ok(())
    }
}
