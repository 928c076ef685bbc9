//! Apps, access tokens (and the quota counters that rate-limit issuing them), users,
//! subscribers and login codes, on the embedded store.

use super::SqliteStore;
use super::steps::Sq;
use crate::flow::{Steps, ready};
use crate::rows::{self, APP_COLS, SUBSCRIBER_COLS, TOKEN_COLS, USER_COLS};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use tuisong_core::clock::Millis;
use tuisong_core::ids::{AppId, OpenId, Secret, UserId};
use tuisong_core::store::{
    AccessToken, App, AppStore, CodeOutcome, LoginCode, MAX_OPEN_LOGIN_CODES, StoreError,
    Subscriber, TokenKind, TokenStore, User, UserStore,
};

#[async_trait]
impl AppStore for SqliteStore {
    async fn create_app(&self, app: &App) -> Result<(), StoreError> {
        let app = app.clone();
        self.write(move |c| {
            c.prepare_cached(&format!(
                "INSERT INTO apps ({APP_COLS}) VALUES (?1, ?2, ?3, ?4, ?5)"
            ))?
            .execute(params![
                app.appid.as_str(),
                app.name,
                app.secret.expose(),
                app.original_id,
                app.created_at
            ])?;
            Ok(())
        })
        .await
    }

    async fn list_apps(&self) -> Result<Vec<App>, StoreError> {
        self.read(|c| {
            c.prepare_cached(&format!(
                "SELECT {APP_COLS} FROM apps ORDER BY created_at, appid"
            ))?
            .query_map([], |r| rows::app(r))?
            .collect()
        })
        .await
    }

    async fn get_app(&self, appid: &AppId) -> Result<Option<App>, StoreError> {
        let appid = appid.clone();
        self.read(move |c| {
            c.prepare_cached(&format!("SELECT {APP_COLS} FROM apps WHERE appid = ?1"))?
                .query_row([appid.as_str()], |r| rows::app(r))
                .optional()
        })
        .await
    }

    async fn set_app_secret(&self, appid: &AppId, secret: &Secret) -> Result<bool, StoreError> {
        let (appid, secret) = (appid.clone(), secret.clone());
        self.write(move |c| {
            Ok(
                c.prepare_cached("UPDATE apps SET secret = ?2 WHERE appid = ?1")?
                    .execute(params![appid.as_str(), secret.expose()])?
                    == 1,
            )
        })
        .await
    }
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn issue_token(
        &self,
        token: &AccessToken,
        supersede_until: Millis,
    ) -> Result<(), StoreError> {
        let t = token.clone();
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE access_tokens SET expires_at = ?3, superseded = 1
                 WHERE appid = ?1 AND kind = ?2 AND expires_at > ?3",
            )?
            .execute(params![t.appid.as_str(), t.kind.as_str(), supersede_until])?;
            // Expired tokens are kept a day so a late caller hears "expired", then go.
            c.prepare_cached("DELETE FROM access_tokens WHERE appid = ?1 AND expires_at < ?2")?
                .execute(params![t.appid.as_str(), t.created_at - 86_400_000])?;
            c.prepare_cached(&format!(
                "INSERT INTO access_tokens ({TOKEN_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, 0)"
            ))?
            .execute(params![
                t.token,
                t.appid.as_str(),
                t.kind.as_str(),
                t.created_at,
                t.expires_at
            ])?;
            Ok(())
        })
        .await
    }

    async fn get_token(&self, token: &str) -> Result<Option<AccessToken>, StoreError> {
        let token = token.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {TOKEN_COLS} FROM access_tokens WHERE token = ?1"
            ))?
            .query_row([token], |r| rows::token(r))
            .optional()
        })
        .await
    }

    async fn latest_token(
        &self,
        appid: &AppId,
        kind: TokenKind,
    ) -> Result<Option<AccessToken>, StoreError> {
        let appid = appid.clone();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {TOKEN_COLS} FROM access_tokens WHERE appid = ?1 AND kind = ?2
                 ORDER BY created_at DESC, rowid DESC LIMIT 1"
            ))?
            .query_row(params![appid.as_str(), kind.as_str()], |r| rows::token(r))
            .optional()
        })
        .await
    }

    async fn take_quota(
        &self,
        key: &str,
        window_start: Millis,
        limit: u64,
    ) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.write(move |c| ready(Sq(c).take_unit(&key, window_start, limit)))
            .await
    }
}

#[async_trait]
impl UserStore for SqliteStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let u = user.clone();
        self.write(move |c| {
            c.prepare_cached(&format!(
                "INSERT INTO users ({USER_COLS}) VALUES (?1, ?2, ?3, ?4)"
            ))?
            .execute(params![
                u.user_id.as_str(),
                u.nickname,
                u.token_hash,
                u.created_at
            ])?;
            Ok(())
        })
        .await
    }

    async fn user_by_token_hash(&self, token_hash: &str) -> Result<Option<User>, StoreError> {
        let h = token_hash.to_owned();
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {USER_COLS} FROM users WHERE token_hash = ?1"
            ))?
            .query_row([h], |r| rows::user(r))
            .optional()
        })
        .await
    }

    async fn subscriber_for_user(
        &self,
        appid: &AppId,
        user_id: &UserId,
        new_openid: &OpenId,
        now: Millis,
    ) -> Result<Subscriber, StoreError> {
        const BY_USER: &str = "FROM subscribers WHERE appid = ?1 AND user_id = ?2";
        let (appid, user_id, openid) = (appid.clone(), user_id.clone(), new_openid.clone());
        let existing = {
            let (appid, user_id) = (appid.clone(), user_id.clone());
            self.read(move |c| {
                c.prepare_cached(&format!("SELECT {SUBSCRIBER_COLS} {BY_USER}"))?
                    .query_row(params![appid.as_str(), user_id.as_str()], |r| {
                        rows::subscriber(r)
                    })
                    .optional()
            })
            .await?
        };
        if let Some(s) = existing {
            return Ok(s);
        }
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO subscribers (appid, openid, user_id, main_switch, created_at)
                 VALUES (?1, ?2, ?3, 1, ?4) ON CONFLICT DO NOTHING",
            )?
            .execute(params![
                appid.as_str(),
                openid.as_str(),
                user_id.as_str(),
                now
            ])?;
            c.prepare_cached(&format!("SELECT {SUBSCRIBER_COLS} {BY_USER}"))?
                .query_row(params![appid.as_str(), user_id.as_str()], |r| {
                    rows::subscriber(r)
                })
        })
        .await
    }

    async fn subscriber(
        &self,
        appid: &AppId,
        openid: &OpenId,
    ) -> Result<Option<Subscriber>, StoreError> {
        let (appid, openid) = (appid.clone(), openid.clone());
        self.read(move |c| {
            c.prepare_cached(&format!(
                "SELECT {SUBSCRIBER_COLS} FROM subscribers WHERE appid = ?1 AND openid = ?2"
            ))?
            .query_row(params![appid.as_str(), openid.as_str()], |r| {
                rows::subscriber(r)
            })
            .optional()
        })
        .await
    }

    async fn set_main_switch(
        &self,
        appid: &AppId,
        openid: &OpenId,
        on: bool,
    ) -> Result<(), StoreError> {
        let (appid, openid) = (appid.clone(), openid.clone());
        self.write(move |c| {
            c.prepare_cached(
                "UPDATE subscribers SET main_switch = ?3 WHERE appid = ?1 AND openid = ?2",
            )?
            .execute(params![appid.as_str(), openid.as_str(), on])?;
            Ok(())
        })
        .await
    }

    async fn insert_login_code(&self, code: &LoginCode) -> Result<(), StoreError> {
        let l = code.clone();
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO login_codes (code, appid, openid, session_key, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![l.code, l.appid.as_str(), l.openid.as_str(), l.session_key, l.expires_at])?;
            // The user's bound: unused codes beyond it go, oldest first. This touches only
            // this user's few rows (index login_codes_user); expired codes of everyone are
            // the retention sweep's, off this path.
            c.prepare_cached(
                "DELETE FROM login_codes WHERE rowid IN (
                     SELECT rowid FROM login_codes
                     WHERE appid = ?1 AND openid = ?2 AND used_at IS NULL AND code <> ?3
                     ORDER BY expires_at DESC, rowid DESC LIMIT -1 OFFSET ?4)",
            )?
            .execute(params![
                l.appid.as_str(),
                l.openid.as_str(),
                l.code,
                MAX_OPEN_LOGIN_CODES as i64 - 1
            ])?;
            Ok(())
        })
        .await
    }

    async fn consume_login_code(
        &self,
        code: &str,
        appid: &AppId,
        now: Millis,
    ) -> Result<CodeOutcome, StoreError> {
        let (code, appid) = (code.to_owned(), appid.clone());
        self.write(move |c| {
            let taken = c
                .prepare_cached(
                    "UPDATE login_codes SET used_at = ?3
                     WHERE code = ?1 AND appid = ?2 AND used_at IS NULL AND expires_at > ?3",
                )?
                .execute(params![code, appid.as_str(), now])?;
            let mut stmt = c.prepare_cached(
                "SELECT openid, session_key, used_at FROM login_codes WHERE code = ?1 AND appid = ?2",
            )?;
            let mut found = stmt.query(params![code, appid.as_str()])?;
            rows::code_outcome(taken as u64, found.next()?)
        })
        .await
    }
}
