//! Apps and their credentials: creating apps, secrets, the appid/secret check that the
//! token and login endpoints share, and the device users who sign in to apps.

use super::{Platform, SECOND, hash_device_token};
use crate::error::{Error, Result};
use crate::ids::{
    AppId, OpenId, Secret, UserId, generate_original_id, generate_secret, random_url_safe,
};
use crate::store::{App, CodeOutcome, LoginCode, Subscriber, User};
use base64::Engine;

/// What `jscode2session` returns.
#[derive(Debug, Clone)]
pub struct Session {
    pub openid: OpenId,
    pub session_key: String,
}

impl Platform {
    pub async fn create_app(&self, name: &str) -> Result<App> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
            return Err(Error::Invalid(
                "name must be 1 to 64 characters without control characters".into(),
            ));
        }
        let app = App {
            appid: AppId::generate(),
            name: name.to_owned(),
            secret: Secret::new(generate_secret()),
            original_id: generate_original_id(),
            created_at: self.now(),
        };
        self.store.create_app(&app).await?;
        Ok(app)
    }

    pub async fn list_apps(&self) -> Result<Vec<App>> {
        Ok(self.store.list_apps().await?)
    }

    pub async fn app(&self, appid: &str) -> Result<App> {
        let appid = AppId::parse(appid).ok_or(Error::NotFound("app"))?;
        self.store
            .get_app(&appid)
            .await?
            .ok_or(Error::NotFound("app"))
    }

    /// A new secret; tokens already issued stay valid until they expire, as on WeChat.
    #[tracing::instrument(level = "info", name = "reset_secret", skip_all)]
    pub async fn reset_secret(&self, appid: &str) -> Result<App> {
        let mut app = self.app(appid).await?;
        app.secret = Secret::new(generate_secret());
        if !self.store.set_app_secret(&app.appid, &app.secret).await? {
            return Err(Error::NotFound("app"));
        }
        Ok(app)
    }

    /// Checks an appid/secret pair as the token and login endpoints do.
    pub(super) async fn credentials(
        &self,
        appid: Option<&str>,
        secret: Option<&str>,
    ) -> Result<App> {
        let appid = appid.filter(|s| !s.is_empty()).ok_or(Error::AppIdMissing)?;
        let appid = AppId::parse(appid).ok_or(Error::AppIdInvalid)?;
        let app = self
            .store
            .get_app(&appid)
            .await?
            .ok_or(Error::AppIdInvalid)?;
        let secret = secret
            .filter(|s| !s.is_empty())
            .ok_or(Error::SecretMissing)?;
        if !constant_time_eq(secret.as_bytes(), app.secret.expose().as_bytes()) {
            return Err(Error::SecretInvalid);
        }
        Ok(app)
    }

    /// `GET /sns/jscode2session`: trades a `wx.login` code (single use, 5 minutes).
    #[tracing::instrument(level = "debug", name = "code_to_session", skip_all)]
    pub async fn code_to_session(
        &self,
        appid: Option<&str>,
        secret: Option<&str>,
        js_code: Option<&str>,
        grant_type: Option<&str>,
    ) -> Result<Session> {
        let app = self.credentials(appid, secret).await?;
        if grant_type.is_some_and(|g| !g.is_empty() && g != "authorization_code") {
            return Err(Error::GrantTypeInvalid);
        }
        let code = js_code
            .filter(|c| !c.is_empty())
            .ok_or(Error::CodeMissing)?;
        if code.len() > 128 {
            return Err(Error::CodeInvalid);
        }
        match self
            .store
            .consume_login_code(code, &app.appid, self.now())
            .await?
        {
            CodeOutcome::Valid {
                openid,
                session_key,
            } => Ok(Session {
                openid,
                session_key,
            }),
            CodeOutcome::Unknown | CodeOutcome::Expired => Err(Error::CodeInvalid),
            CodeOutcome::Used => Err(Error::CodeUsed),
        }
    }

    /// Creates a user; returns it with its device token (shown once, stored hashed).
    pub async fn register_user(&self, nickname: &str) -> Result<(User, String)> {
        let nickname = nickname.trim();
        if nickname.is_empty()
            || nickname.chars().count() > 32
            || nickname.chars().any(char::is_control)
        {
            return Err(Error::Invalid(
                "nickname must be 1 to 32 characters without control characters".into(),
            ));
        }
        let token = format!("dt_{}", random_url_safe(48));
        let user = User {
            user_id: UserId::generate(),
            nickname: nickname.to_owned(),
            token_hash: hash_device_token(&token),
            created_at: self.now(),
        };
        self.store.create_user(&user).await?;
        Ok((user, token))
    }

    pub async fn device_user(&self, token: Option<&str>) -> Result<User> {
        let token = token.filter(|t| !t.is_empty()).ok_or(Error::Unauthorized)?;
        self.store
            .user_by_token_hash(&hash_device_token(token))
            .await?
            .ok_or(Error::Unauthorized)
    }

    pub(super) async fn subscriber_of(&self, user: &User, appid: &str) -> Result<Subscriber> {
        let app = self.app(appid).await?;
        Ok(self
            .store
            .subscriber_for_user(&app.appid, &user.user_id, &OpenId::generate(), self.now())
            .await?)
    }

    /// `wx.login`: a fresh code for this user in this app.
    pub async fn login_code(&self, user: &User, appid: &str) -> Result<(String, Subscriber)> {
        let sub = self.subscriber_of(user, appid).await?;
        let mut key = [0u8; 16];
        rand::Rng::fill(&mut rand::rng(), &mut key);
        let code = LoginCode {
            code: random_url_safe(32),
            appid: sub.appid.clone(),
            openid: sub.openid.clone(),
            session_key: base64::engine::general_purpose::STANDARD.encode(key),
            expires_at: self.now() + self.settings.login_code_ttl_secs * SECOND,
        };
        self.store.insert_login_code(&code).await?;
        Ok((code.code, sub))
    }
}

/// Compares secrets without leaking where they differ through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
