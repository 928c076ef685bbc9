//! Grant conservation, for any test of the real server that sends against one-time
//! grants: whatever failed on the way (a store outage, a killed node, a lost bus), no
//! grant is created or lost. Include it next to `common` with
//! `#[path = "common/grants.rs"] mod grants;`.
//!
//! For one user and one one-time template, with `given` the accepts the test made:
//! - the ledger's `granted_total` is `given`: each accept added one grant, once;
//! - every message holds the grant it took, unless it was cancelled or expired, which
//!   gave it back — so *consumed* is the messages still holding one, *refunded* the
//!   others, and the ledger's `consumed_total` (which a refund takes one off) is
//!   *consumed*;
//! - granted = consumed + remaining: a refunded grant is back in `remaining`, so
//!   "granted = consumed + refunded + remaining" holds with *consumed* counting every
//!   message ever sent and each refund counted once, on the side it went back to.

#![allow(dead_code)] // Each test binary uses its own part of this module.

use serde_json::Value;
use std::collections::BTreeSet;

/// What the store says about one user's grants of one template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conservation {
    pub granted: u64,
    /// Messages that still hold their grant.
    pub consumed: u64,
    /// Messages whose grant came back (cancelled or expired).
    pub refunded: u64,
    pub remaining: u64,
    /// Every message of the template to the user, by msgid.
    pub msgids: BTreeSet<u64>,
}

async fn get(http: &reqwest::Client, url: &str, token: &str) -> Value {
    let r = http
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status();
    let v: Value = r.json().await.expect("json");
    assert!(status.is_success(), "GET {url}: {status} {v}");
    v
}

/// Every message of `template_id` to `openid`: (msgid, status), paging through
/// `GET /v1/messages`.
pub async fn messages_of(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    openid: &str,
    template_id: &str,
) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let mut url =
            format!("{base}/v1/messages?touser={openid}&template_id={template_id}&limit=500");
        if let Some(b) = before {
            url.push_str(&format!("&before={b}"));
        }
        let v = get(http, &url, token).await;
        for m in v["messages"].as_array().expect("messages") {
            out.push((
                m["msgid"].as_u64().expect("msgid"),
                m["status"].as_str().expect("status").to_owned(),
            ));
        }
        match v["next_before"].as_u64() {
            Some(b) => before = Some(b),
            None => return out,
        }
    }
}

/// Reads the consent ledger (`GET /v1/consents/{openid}`) and the messages, checks the
/// invariant above for a one-time template the test granted `given` times, and panics
/// naming every count when it does not hold.
pub async fn check_grant_conservation(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    openid: &str,
    template_id: &str,
    given: u64,
) -> Conservation {
    let ledger = get(http, &format!("{base}/v1/consents/{openid}"), token).await;
    let row = ledger["templates"]
        .as_array()
        .expect("templates")
        .iter()
        .find(|t| t["template_id"] == template_id)
        .unwrap_or_else(|| panic!("{template_id} in the ledger {ledger}"))
        .clone();
    assert_eq!(
        row["type"], 2,
        "conservation is about one-time grants: {row}"
    );
    let count = |k: &str| {
        row[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in the ledger row {row}"))
    };
    let (granted, consumed_total, remaining) = (
        count("granted_total"),
        count("consumed_total"),
        count("remaining"),
    );
    let messages = messages_of(http, base, token, openid, template_id).await;
    let refunded = messages
        .iter()
        .filter(|(_, s)| s == "cancelled" || s == "expired")
        .count() as u64;
    let consumed = messages.len() as u64 - refunded;
    let c = Conservation {
        granted,
        consumed,
        refunded,
        remaining,
        msgids: messages.iter().map(|(id, _)| *id).collect(),
    };
    assert_eq!(
        c.msgids.len(),
        messages.len(),
        "each message listed once: {c:?}"
    );
    assert_eq!(granted, given, "granted_total is the accepts given: {c:?}");
    assert_eq!(
        consumed_total, consumed,
        "the ledger's consumed_total is the messages holding a grant: {c:?}"
    );
    assert_eq!(
        granted,
        consumed + remaining,
        "granted = consumed + remaining (refunds are back in remaining): {c:?}"
    );
    c
}
