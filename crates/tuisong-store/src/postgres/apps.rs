//! Apps, access tokens (and the quota counters that rate-limit issuing them), users,
//! subscribers and login codes, on PostgreSQL.

use super::error::{collect, one};
use super::tx::in_tx;
use super::{LOCK_LOGIN, LOCK_TOKENS, PgStore};
use crate::flow::Steps;
use crate::rows::{self, APP_COLS, SUBSCRIBER_COLS, TOKEN_COLS, USER_COLS};
use async_trait::async_trait;
use tuisong_core::clock::Millis;
use tuisong_core::ids::{AppId, OpenId, Secret, UserId};
use tuisong_core::store::{
    AccessToken, App, AppStore, CodeOutcome, LoginCode, MAX_OPEN_LOGIN_CODES, StoreError,
    Subscriber, TokenKind, TokenStore, User, UserStore,
};

#[async_trait]
impl AppStore for PgStore {
    async fn create_app(&self, app: &App) -> Result<(), StoreError> {
        let sql = format!("INSERT INTO apps ({APP_COLS}) VALUES ($1, $2, $3, $4, $5)");
        in_tx!(self, |tx| {
            tx.exec(
                &sql,
                &[
                    &app.appid.as_str(),
                    &app.name,
                    &app.secret.expose(),
                    &app.original_id,
                    &app.created_at,
                ],
            )
            .await?;
        })
    }

    async fn list_apps(&self) -> Result<Vec<App>, StoreError> {
        let sql = format!("SELECT {APP_COLS} FROM apps ORDER BY created_at, appid");
        collect(self.read_all(&sql, &[]).await?, rows::app)
    }

    async fn get_app(&self, appid: &AppId) -> Result<Option<App>, StoreError> {
        let sql = format!("SELECT {APP_COLS} FROM apps WHERE appid = $1");
        one(self.read_opt(&sql, &[&appid.as_str()]).await?, rows::app)
    }

    async fn set_app_secret(&self, appid: &AppId, secret: &Secret) -> Result<bool, StoreError> {
        in_tx!(self, |tx| {
            tx.exec(
                "UPDATE apps SET secret = $2 WHERE appid = $1",
                &[&appid.as_str(), &secret.expose()],
            )
            .await?
                == 1
        })
    }
}

#[async_trait]
impl TokenStore for PgStore {
    async fn issue_token(
        &self,
        token: &AccessToken,
        supersede_until: Millis,
    ) -> Result<(), StoreError> {
        let t = token;
        let insert =
            format!("INSERT INTO access_tokens ({TOKEN_COLS}) VALUES ($1, $2, $3, $4, $5, FALSE)");
        in_tx!(self, |tx| {
            // Issues of one app and kind take turns, so each new token supersedes every
            // one before it, as in the serial store.
            tx.lock(
                LOCK_TOKENS,
                &format!("{}/{}", t.appid.as_str(), t.kind.as_str()),
            )
            .await?;
            tx.exec(
                "UPDATE access_tokens SET expires_at = $3, superseded = TRUE
                 WHERE appid = $1 AND kind = $2 AND expires_at > $3",
                &[&t.appid.as_str(), &t.kind.as_str(), &supersede_until],
            )
            .await?;
            // Expired tokens are kept a day so a late caller hears "expired", then go.
            tx.exec(
                "DELETE FROM access_tokens WHERE appid = $1 AND expires_at < $2",
                &[&t.appid.as_str(), &(t.created_at - 86_400_000)],
            )
            .await?;
            tx.exec(
                &insert,
                &[
                    &t.token,
                    &t.appid.as_str(),
                    &t.kind.as_str(),
                    &t.created_at,
                    &t.expires_at,
                ],
            )
            .await?;
        })
    }

    async fn get_token(&self, token: &str) -> Result<Option<AccessToken>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLS} FROM access_tokens WHERE token = $1");
        one(self.read_opt(&sql, &[&token]).await?, rows::token)
    }

    async fn latest_token(
        &self,
        appid: &AppId,
        kind: TokenKind,
    ) -> Result<Option<AccessToken>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLS} FROM access_tokens WHERE appid = $1 AND kind = $2
             ORDER BY created_at DESC, n DESC LIMIT 1"
        );
        let row = self
            .read_opt(&sql, &[&appid.as_str(), &kind.as_str()])
            .await?;
        one(row, rows::token)
    }

    async fn take_quota(
        &self,
        key: &str,
        window_start: Millis,
        limit: u64,
    ) -> Result<bool, StoreError> {
        in_tx!(self, |tx| Steps::take_unit(
            &mut tx,
            key,
            window_start,
            limit
        )
        .await?)
    }
}

#[async_trait]
impl UserStore for PgStore {
    async fn create_user(&self, user: &User) -> Result<(), StoreError> {
        let u = user;
        let sql = format!("INSERT INTO users ({USER_COLS}) VALUES ($1, $2, $3, $4)");
        in_tx!(self, |tx| {
            tx.exec(
                &sql,
                &[
                    &u.user_id.as_str(),
                    &u.nickname,
                    &u.token_hash,
                    &u.created_at,
                ],
            )
            .await?;
        })
    }

    async fn user_by_token_hash(&self, token_hash: &str) -> Result<Option<User>, StoreError> {
        let sql = format!("SELECT {USER_COLS} FROM users WHERE token_hash = $1");
        one(self.read_opt(&sql, &[&token_hash]).await?, rows::user)
    }

    async fn subscriber_for_user(
        &self,
        appid: &AppId,
        user_id: &UserId,
        new_openid: &OpenId,
        now: Millis,
    ) -> Result<Subscriber, StoreError> {
        let select =
            format!("SELECT {SUBSCRIBER_COLS} FROM subscribers WHERE appid = $1 AND user_id = $2");
        if let Some(s) = one(
            self.read_opt(&select, &[&appid.as_str(), &user_id.as_str()])
                .await?,
            rows::subscriber,
        )? {
            return Ok(s);
        }
        in_tx!(self, |tx| {
            // Two nodes creating the same user's record: the second waits for the first
            // at the unique index, inserts nothing, and reads the first one's openid.
            tx.exec(
                "INSERT INTO subscribers (appid, openid, user_id, main_switch, created_at)
                 VALUES ($1, $2, $3, TRUE, $4) ON CONFLICT DO NOTHING",
                &[
                    &appid.as_str(),
                    &new_openid.as_str(),
                    &user_id.as_str(),
                    &now,
                ],
            )
            .await?;
            let r = tx
                .one(&select, &[&appid.as_str(), &user_id.as_str()])
                .await?;
            rows::subscriber(&r)?
        })
    }

    async fn subscriber(
        &self,
        appid: &AppId,
        openid: &OpenId,
    ) -> Result<Option<Subscriber>, StoreError> {
        let sql =
            format!("SELECT {SUBSCRIBER_COLS} FROM subscribers WHERE appid = $1 AND openid = $2");
        let row = self
            .read_opt(&sql, &[&appid.as_str(), &openid.as_str()])
            .await?;
        one(row, rows::subscriber)
    }

    async fn set_main_switch(
        &self,
        appid: &AppId,
        openid: &OpenId,
        on: bool,
    ) -> Result<(), StoreError> {
        in_tx!(self, |tx| {
            tx.exec(
                "UPDATE subscribers SET main_switch = $3 WHERE appid = $1 AND openid = $2",
                &[&appid.as_str(), &openid.as_str(), &on],
            )
            .await?;
        })
    }

    async fn insert_login_code(&self, code: &LoginCode) -> Result<(), StoreError> {
        let l = code;
        let user = format!("{}/{}", l.appid.as_str(), l.openid.as_str());
        let keep = MAX_OPEN_LOGIN_CODES as i64 - 1;
        in_tx!(self, |tx| {
            // One user's logins take turns, so the bound below is exact across nodes.
            tx.lock(LOCK_LOGIN, &user).await?;
            tx.exec(
                "INSERT INTO login_codes (code, appid, openid, session_key, expires_at) VALUES ($1, $2, $3, $4, $5)",
                &[
                    &l.code,
                    &l.appid.as_str(),
                    &l.openid.as_str(),
                    &l.session_key,
                    &l.expires_at,
                ],
            )
            .await?;
            // The user's bound: unused codes beyond it go, oldest first. Expired codes of
            // everyone are the retention sweep's, off this path.
            tx.exec(
                "DELETE FROM login_codes WHERE code IN (
                     SELECT code FROM login_codes
                     WHERE appid = $1 AND openid = $2 AND used_at IS NULL AND code <> $3
                     ORDER BY expires_at DESC, code DESC OFFSET $4)",
                &[&l.appid.as_str(), &l.openid.as_str(), &l.code, &keep],
            )
            .await?;
        })
    }

    async fn consume_login_code(
        &self,
        code: &str,
        appid: &AppId,
        now: Millis,
    ) -> Result<CodeOutcome, StoreError> {
        in_tx!(self, |tx| {
            let taken = tx
                .exec(
                    "UPDATE login_codes SET used_at = $3
                     WHERE code = $1 AND appid = $2 AND used_at IS NULL AND expires_at > $3",
                    &[&code, &appid.as_str(), &now],
                )
                .await?;
            let row = tx
                .opt(
                    "SELECT openid, session_key, used_at FROM login_codes WHERE code = $1 AND appid = $2",
                    &[&code, &appid.as_str()],
                )
                .await?;
            rows::code_outcome::<tokio_postgres::Row>(taken, row.as_ref())?
        })
    }
}
