//! Repeated wrong credentials: an app secret (`/cgi-bin/token`, `/cgi-bin/stable_token`,
//! `/sns/jscode2session`) or the admin token. Each failure is logged at warn — the caller's
//! address and the appid, never what was tried — and counted per client address and per
//! appid. A key whose failures outrun its allowance is shut out for a minute: its next
//! attempts are refused before anything is checked, so guessing goes no faster than the
//! allowance whether the guesses are right or wrong.
//!
//! The per-appid count stops a guesser that spreads over many addresses; its cost is that
//! such a guesser can keep the app's own server from fetching a new token for a minute at
//! a time. A token lives two hours and the server already holds one, so sends go on; the
//! allowance per appid is three times the per-address one so that one noisy address does
//! not trip it alone.

use crate::limit::{KeyedLimiter, RetryAfter};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long a key that ran out of allowance is shut out.
pub const SHUT_OUT: Duration = Duration::from_secs(60);
/// Shut-out keys held at most; beyond it the expired ones are dropped, then the oldest.
const MAX_SHUT_OUT: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Ip(IpAddr),
    App(String),
    Admin,
}

/// Counts wrong credentials and shuts out who keeps trying.
pub struct CredentialGuard {
    by_ip: KeyedLimiter<IpAddr>,
    by_app: KeyedLimiter<String>,
    admin: KeyedLimiter<()>,
    shut_out: Mutex<HashMap<Key, Instant>>,
}

/// The longest appid worth a key of its own: a WeChat appid is 18 characters, and an
/// attacker's 1 MB "appid" must not become a 1 MB key.
const MAX_APPID_KEY: usize = 32;

impl CredentialGuard {
    /// `per_ip` wrong credentials a minute per address (burst the same), three times that
    /// per appid and for the admin token overall; 0 turns the guard off.
    pub fn new(per_ip: u32) -> Self {
        let per_app = per_ip.saturating_mul(3);
        Self {
            by_ip: KeyedLimiter::new(per_ip, per_ip),
            by_app: KeyedLimiter::new(per_app, per_app),
            admin: KeyedLimiter::new(per_app, per_app),
            shut_out: Mutex::new(HashMap::new()),
        }
    }

    fn keys(ip: IpAddr, appid: Option<&str>) -> Vec<Key> {
        match appid {
            Some(a) if !a.is_empty() && a.len() <= MAX_APPID_KEY => {
                vec![Key::Ip(ip), Key::App(a.to_owned())]
            }
            Some(_) => vec![Key::Ip(ip)],
            None => vec![Key::Ip(ip), Key::Admin],
        }
    }

    /// Before credentials are checked: refused while the address or the appid (or, for
    /// `appid: None`, the admin token) is shut out.
    pub fn admit(&self, ip: IpAddr, appid: Option<&str>) -> Result<(), RetryAfter> {
        let now = Instant::now();
        let map = self.shut_out.lock();
        if map.is_empty() {
            return Ok(());
        }
        let wait = Self::keys(ip, appid)
            .iter()
            .filter_map(|k| map.get(k))
            .filter(|until| **until > now)
            .map(|until| *until - now)
            .max();
        match wait {
            Some(w) => Err(RetryAfter(w)),
            None => Ok(()),
        }
    }

    /// After a wrong credential: counted, logged, and the keys that ran out are shut out.
    pub fn failed(&self, ip: IpAddr, appid: Option<&str>, what: &'static str) {
        let shown_appid: String = appid
            .unwrap_or("")
            .chars()
            .take(MAX_APPID_KEY)
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        tracing::warn!(client = %ip, appid = %shown_appid, "wrong {what}");
        let mut out = Vec::new();
        for key in Self::keys(ip, appid) {
            let over = match &key {
                Key::Ip(ip) => self.by_ip.check(ip).is_err(),
                Key::App(a) => self.by_app.check(a).is_err(),
                Key::Admin => self.admin.check(&()).is_err(),
            };
            if over {
                out.push(key);
            }
        }
        if out.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut map = self.shut_out.lock();
        if map.len() >= MAX_SHUT_OUT {
            map.retain(|_, until| *until > now);
            if map.len() >= MAX_SHUT_OUT {
                // Still full of live entries: drop the ones closest to expiry.
                let mut ends: Vec<Instant> = map.values().copied().collect();
                ends.sort_unstable();
                let cut = ends[ends.len() / 2];
                map.retain(|_, until| *until > cut);
            }
        }
        for key in out {
            tracing::warn!(client = %ip, appid = %shown_appid, "too many wrong {what}s: shut out for {}s", SHUT_OUT.as_secs());
            map.insert(key, now + SHUT_OUT);
        }
    }

    /// Forgets what no longer matters (called with the other limiters' trims).
    pub fn retain_recent(&self) {
        let now = Instant::now();
        self.shut_out.lock().retain(|_, until| *until > now);
        self.by_ip.retain_recent();
        self.by_app.retain_recent();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_that_keeps_failing_is_shut_out_and_others_are_not() {
        let g = CredentialGuard::new(3);
        let bad: IpAddr = "203.0.113.7".parse().expect("ip");
        let other: IpAddr = "198.51.100.1".parse().expect("ip");
        for _ in 0..3 {
            assert!(g.admit(bad, Some("wx1")).is_ok());
            g.failed(bad, Some("wx1"), "app secret");
        }
        assert!(
            g.admit(bad, Some("wx1")).is_ok(),
            "the allowance is not yet spent"
        );
        g.failed(bad, Some("wx1"), "app secret");
        let wait = g
            .admit(bad, Some("wx2"))
            .expect_err("shut out, whatever the appid");
        assert!(wait.0 <= SHUT_OUT && wait.0 > SHUT_OUT - Duration::from_secs(5));
        assert!(
            g.admit(other, Some("wx1")).is_ok(),
            "the appid still has allowance"
        );
        assert!(g.admit(other, None).is_ok());
    }

    #[test]
    fn an_appid_guessed_from_many_addresses_is_shut_out() {
        let g = CredentialGuard::new(2);
        for i in 0..7u8 {
            let ip = IpAddr::from([10, 0, 0, i]);
            g.failed(ip, Some("wxtarget"), "app secret");
        }
        let fresh = IpAddr::from([10, 9, 9, 9]);
        assert!(g.admit(fresh, Some("wxtarget")).is_err());
        assert!(g.admit(fresh, Some("wxother")).is_ok());
    }

    #[test]
    fn zero_turns_the_guard_off() {
        let g = CredentialGuard::new(0);
        let ip = IpAddr::from([192, 0, 2, 1]);
        for _ in 0..100 {
            g.failed(ip, None, "admin token");
        }
        assert!(g.admit(ip, None).is_ok());
    }
}
