//! A minimal HTTP/1.1 keep-alive client for load: one request at a time per connection,
//! bodies framed by Content-Length. The load generator shares two cores with the server
//! it measures, so it should cost as little as possible, and the same for both sides of
//! a comparison (wrk's approach, not a general client).

use anyhow::{Context, bail};
use serde_json::Value;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub struct Conn {
    addr: SocketAddr,
    stream: TcpStream,
    buf: Vec<u8>,
    req: Vec<u8>,
}

/// `METHOD path` with an optional bearer token and JSON body.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: &str,
    out: &mut Vec<u8>,
) {
    use std::io::Write;
    out.clear();
    let _ = write!(out, "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    if let Some(b) = bearer {
        let _ = write!(out, "Authorization: Bearer {b}\r\n");
    }
    if !body.is_empty() || method != "GET" {
        let _ = write!(
            out,
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Conn> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            addr,
            stream,
            buf: Vec::with_capacity(4096),
            req: Vec::with_capacity(1024),
        })
    }

    /// Sends one request and reads its answer: (status, body).
    pub async fn call(
        &mut self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: &str,
    ) -> anyhow::Result<(u16, &[u8])> {
        let mut req = std::mem::take(&mut self.req);
        request(self.addr, method, path, bearer, body, &mut req);
        let r = self.stream.write_all(&req).await;
        self.req = req;
        r.context("writing a request")?;
        self.read_response().await
    }

    async fn read_response(&mut self) -> anyhow::Result<(u16, &[u8])> {
        self.buf.clear();
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end]).context("response head")?;
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("status line in {head:?}"))?;
        let len = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .with_context(|| format!("no Content-Length in {head:?}"))?;
        while self.buf.len() < head_end + len {
            self.fill().await?;
        }
        Ok((status, &self.buf[head_end..head_end + len]))
    }

    async fn fill(&mut self) -> anyhow::Result<()> {
        let old = self.buf.len();
        self.buf.resize(old + 8192, 0);
        let n = self.stream.read(&mut self.buf[old..]).await;
        let n = match n {
            Ok(n) => n,
            Err(e) => {
                self.buf.truncate(old);
                return Err(e.into());
            }
        };
        self.buf.truncate(old + n);
        if n == 0 {
            bail!("the server closed the connection");
        }
        Ok(())
    }

    /// JSON in and out: (status, body).
    pub async fn json(
        &mut self,
        method: &str,
        path: &str,
        bearer: Option<&str>,
        body: &Value,
    ) -> anyhow::Result<(u16, Value)> {
        let (s, b) = self.call(method, path, bearer, &body.to_string()).await?;
        let v = serde_json::from_slice(b)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(b).into_owned()));
        Ok((s, v))
    }

    pub async fn get_json(&mut self, path: &str) -> anyhow::Result<Value> {
        let (s, b) = self.call("GET", path, None, "").await?;
        if s != 200 {
            bail!("GET {path} answered {s}: {}", String::from_utf8_lossy(b));
        }
        Ok(serde_json::from_slice(b)?)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
