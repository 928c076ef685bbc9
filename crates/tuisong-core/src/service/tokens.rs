//! Access tokens: `/cgi-bin/token`, `/cgi-bin/stable_token`, console tokens, and the
//! check of a token on every business call. Owns the token cache.

use super::{Platform, SECOND};
use crate::clock::Millis;
use crate::error::{Error, Result};
use crate::ids::{AppId, random_url_safe};
use crate::notify::CacheChange;
use crate::policy;
use crate::store::{AccessToken, TokenKind};
use parking_lot::RwLock;
use std::collections::HashMap;

/// An issued access token, as `/cgi-bin/token` answers it.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub token: String,
    pub expires_in: i64,
}

/// Tokens by their text, read through to the store; replaced tokens are cut here too.
#[derive(Default)]
pub(super) struct TokenCache {
    map: RwLock<HashMap<String, AccessToken>>,
}

impl TokenCache {
    /// Every cached token of the app and kind expires by `until` (a newer one replaced it).
    pub(super) fn supersede(&self, appid: &AppId, kind: TokenKind, until: Millis) {
        let mut cache = self.map.write();
        for c in cache.values_mut() {
            if c.appid == *appid && c.kind == kind && c.expires_at > until {
                c.expires_at = until;
                c.superseded = true;
            }
        }
    }
}

fn mint_token() -> String {
    random_url_safe(96)
}

fn is_token_shaped(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 512
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Platform {
    /// `GET /cgi-bin/token`: a new token on every call; the previous ones keep working
    /// for the grace period (5 minutes).
    // No field: the appid is the caller's unchecked text, and the secret must never be.
    #[tracing::instrument(level = "debug", name = "token", skip_all)]
    pub async fn token(
        &self,
        grant_type: Option<&str>,
        appid: Option<&str>,
        secret: Option<&str>,
    ) -> Result<IssuedToken> {
        if grant_type != Some("client_credential") {
            return Err(Error::GrantTypeInvalid);
        }
        let app = self.credentials(appid, secret).await?;
        let now = self.now();
        let key = format!("token:{}", app.appid);
        if !self
            .store
            .take_quota(
                &key,
                policy::beijing_day_start(now),
                self.settings.token_daily_limit,
            )
            .await?
        {
            return Err(Error::DailyQuota);
        }
        let t = self
            .issue(&app.appid, TokenKind::Normal, now, now + self.grace())
            .await?;
        Ok(IssuedToken {
            token: t.token,
            expires_in: self.settings.token_ttl_secs,
        })
    }

    /// `POST /cgi-bin/stable_token`: the current stable token while it has more than the
    /// grace period left; a new one in its last 5 minutes; `force_refresh` replaces it at
    /// once, at most 20 times a day and not within 30 s of the previous one.
    #[tracing::instrument(
        level = "debug",
        name = "stable_token",
        skip_all,
        fields(force_refresh)
    )]
    pub async fn stable_token(
        &self,
        grant_type: Option<&str>,
        appid: Option<&str>,
        secret: Option<&str>,
        force_refresh: bool,
    ) -> Result<IssuedToken> {
        if grant_type != Some("client_credential") {
            return Err(Error::GrantTypeInvalid);
        }
        let app = self.credentials(appid, secret).await?;
        let now = self.now();
        let current = self
            .store
            .latest_token(&app.appid, TokenKind::Stable)
            .await?
            .filter(|t| t.expires_at > now && !t.superseded);
        let answer = |t: &AccessToken| IssuedToken {
            token: t.token.clone(),
            expires_in: (t.expires_at - now).div_euclid(SECOND),
        };
        if force_refresh {
            if let Some(t) = &current
                && now - t.created_at < self.settings.stable_force_min_interval_secs * SECOND
            {
                return Ok(answer(t));
            }
            let key = format!("stable_force:{}", app.appid);
            if !self
                .store
                .take_quota(
                    &key,
                    policy::beijing_day_start(now),
                    self.settings.stable_force_daily_limit,
                )
                .await?
            {
                return Err(Error::DailyQuota);
            }
            let t = self.issue(&app.appid, TokenKind::Stable, now, now).await?;
            return Ok(answer(&t));
        }
        // Whole seconds, so a reused token always reports expires_in > 300 (silenceper
        // caches a stable token for expires_in - 300 s).
        if let Some(t) = &current
            && (t.expires_at - now).div_euclid(SECOND) > self.settings.token_grace_secs
        {
            return Ok(answer(t));
        }
        let t = self
            .issue(&app.appid, TokenKind::Stable, now, now + self.grace())
            .await?;
        Ok(answer(&t))
    }

    /// An access token for the web console (admin API only): its own kind, so the app
    /// server's tokens are untouched; a new one replaces the previous console token.
    pub async fn console_token(&self, appid: &str) -> Result<IssuedToken> {
        let app = self.app(appid).await?;
        let now = self.now();
        let t = self.issue(&app.appid, TokenKind::Console, now, now).await?;
        Ok(IssuedToken {
            token: t.token,
            expires_in: self.settings.token_ttl_secs,
        })
    }

    fn grace(&self) -> Millis {
        self.settings.token_grace_secs * SECOND
    }

    async fn issue(
        &self,
        appid: &AppId,
        kind: TokenKind,
        now: Millis,
        supersede_until: Millis,
    ) -> Result<AccessToken> {
        let t = AccessToken {
            token: mint_token(),
            appid: appid.clone(),
            kind,
            created_at: now,
            expires_at: now + self.settings.token_ttl_secs * SECOND,
            superseded: false,
        };
        self.store.issue_token(&t, supersede_until).await?;
        self.tokens.map.write().retain(|_, c| c.expires_at > now);
        self.tokens.supersede(appid, kind, supersede_until);
        self.tokens.map.write().insert(t.token.clone(), t.clone());
        self.changed(CacheChange::TokensSuperseded {
            appid: appid.clone(),
            kind,
            until: supersede_until,
        });
        Ok(t)
    }

    /// The app an `access_token` query parameter belongs to.
    pub async fn authenticate(&self, token: Option<&str>) -> Result<AppId> {
        let token = token.filter(|t| !t.is_empty()).ok_or(Error::TokenMissing)?;
        if !is_token_shaped(token) {
            return Err(Error::TokenInvalid);
        }
        let now = self.now();
        let cached = self.tokens.map.read().get(token).cloned();
        let t = match cached {
            Some(t) => t,
            None => {
                let t = self
                    .store
                    .get_token(token)
                    .await?
                    .ok_or(Error::TokenNotLatest)?;
                if t.expires_at > now {
                    self.tokens.map.write().insert(t.token.clone(), t.clone());
                }
                t
            }
        };
        if t.expires_at > now {
            Ok(t.appid)
        } else if t.superseded {
            Err(Error::TokenNotLatest)
        } else {
            Err(Error::TokenExpired)
        }
    }
}
