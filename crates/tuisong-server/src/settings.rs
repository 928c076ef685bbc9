//! One typed `Settings`: compiled-in defaults → optional TOML file → `TUISONG_*`
//! environment variables → command-line flags. Bad input stops the start with an error
//! that names the key; unknown keys in the file are errors too. `Debug` redacts every
//! secret: the admin token, and passwords and tokens inside the store and bus URLs.

use serde::Deserialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tuisong_core::ids::Secret;
use tuisong_core::service::PlatformSettings;

/// `Debug` is written by hand so that no secret is printed (see `redact_url`).
#[derive(Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// None: read or generate `<data_dir>/admin-token`.
    pub admin_token: Option<Secret>,
    /// Create a demo app with templates when the store has no apps.
    pub demo_app: bool,
    /// fsync every commit. Only benchmarks of throwaway data turn this off.
    pub sqlite_fsync: bool,
    pub platform: PlatformSettings,
    /// How often the scheduler releases due messages and expires old ones.
    pub worker_tick: std::time::Duration,
    /// Device sessions get a ping this often; silent twice as long, they are closed.
    pub ping_interval: std::time::Duration,
    /// Device sockets open at once, counted from the upgrade (before hello too).
    pub max_connections: usize,
    /// A device socket that sends no hello within this long is closed.
    pub hello_timeout: std::time::Duration,
    pub push: crate::push::PushSettings,
    /// `postgres://…` for the shared PostgreSQL store; None for the embedded SQLite.
    pub store: Option<String>,
    /// `nats://…` to share notices with other nodes; None for a single node.
    pub bus: Option<String>,
    /// `POST /client/v1/users` a minute per client address, sustained; 0: no limit.
    pub client_users_per_minute: u32,
    /// … and how many of them may come at once.
    pub client_users_burst: u32,
    /// `POST /client/v1/login` a minute per client address, sustained; 0: no limit.
    pub client_logins_per_minute: u32,
    /// … and how many of them may come at once.
    pub client_logins_burst: u32,
    /// Wrong app secrets or admin tokens a minute per client address before it is shut
    /// out for a minute (three times as many per appid); 0: no limit.
    pub auth_failures_per_minute: u32,
    /// How long finished messages, push logs and analytics are kept.
    pub retention: tuisong_core::service::Retention,
    /// How often the retention worker sweeps (expired login codes, then the rest).
    pub retention_interval: std::time::Duration,
    /// How long a stop (SIGTERM, Ctrl-C) waits for requests and device sockets to end.
    pub drain_timeout: std::time::Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("tuisong-data"),
            admin_token: None,
            demo_app: true,
            sqlite_fsync: true,
            platform: PlatformSettings::default(),
            worker_tick: std::time::Duration::from_secs(1),
            ping_interval: std::time::Duration::from_secs(30),
            max_connections: 200_000,
            hello_timeout: std::time::Duration::from_secs(10),
            push: crate::push::PushSettings::default(),
            store: None,
            bus: None,
            client_users_per_minute: 30,
            client_users_burst: 120,
            client_logins_per_minute: 120,
            client_logins_burst: 480,
            auth_failures_per_minute: 10,
            retention: tuisong_core::service::Retention::default(),
            retention_interval: std::time::Duration::from_secs(60),
            drain_timeout: std::time::Duration::from_secs(10),
        }
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured, so that a new field must decide how it is shown.
        let Settings {
            listen,
            data_dir,
            admin_token,
            demo_app,
            sqlite_fsync,
            platform,
            worker_tick,
            ping_interval,
            max_connections,
            hello_timeout,
            push,
            store,
            bus,
            client_users_per_minute,
            client_users_burst,
            client_logins_per_minute,
            client_logins_burst,
            auth_failures_per_minute,
            retention,
            retention_interval,
            drain_timeout,
        } = self;
        f.debug_struct("Settings")
            .field("listen", listen)
            .field("data_dir", data_dir)
            // `Secret`'s own Debug prints `[redacted]`.
            .field("admin_token", admin_token)
            .field("demo_app", demo_app)
            .field("sqlite_fsync", sqlite_fsync)
            .field("platform", platform)
            .field("worker_tick", worker_tick)
            .field("ping_interval", ping_interval)
            .field("max_connections", max_connections)
            .field("hello_timeout", hello_timeout)
            .field("push", push)
            .field("store", &store.as_deref().map(redact_url))
            .field("bus", &bus.as_deref().map(redact_url))
            .field("client_users_per_minute", client_users_per_minute)
            .field("client_users_burst", client_users_burst)
            .field("client_logins_per_minute", client_logins_per_minute)
            .field("client_logins_burst", client_logins_burst)
            .field("auth_failures_per_minute", auth_failures_per_minute)
            .field("retention", retention)
            .field("retention_interval", retention_interval)
            .field("drain_timeout", drain_timeout)
            .finish()
    }
}

const REDACTED: &str = "[redacted]";

/// A URL with its secrets replaced by `[redacted]`: the password of `user:password@`
/// (all of the user part when it has no `:`, as in `nats://TOKEN@host`), and the value of
/// every query parameter whose name speaks of a password, token, secret or key. The
/// scheme, host, port, path and other parameters stay readable.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:{REDACTED}@{host}"),
            None => format!("{REDACTED}@{host}"),
        },
        None => authority.to_owned(),
    };
    let (path, query) = match tail.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (tail, None),
    };
    let mut out = String::with_capacity(url.len());
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    out.push_str(&authority);
    out.push_str(path);
    if let Some(query) = query {
        let (query, fragment) = match query.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (query, None),
        };
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if is_secret_name(k) => format!("{k}={REDACTED}"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
    }
    out
}

fn is_secret_name(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["pass", "token", "secret", "key"]
        .iter()
        .any(|w| k.contains(w))
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("reading config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Value { key: String, message: String },
}

/// The file layer. Every key optional; unknown keys refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    admin_token: Option<String>,
    demo_app: Option<bool>,
    sqlite_fsync: Option<bool>,
    token_daily_limit: Option<u64>,
    worker_tick_ms: Option<u64>,
    ping_interval_secs: Option<u64>,
    max_connections: Option<usize>,
    hello_timeout_secs: Option<u64>,
    push_retry_hours: Option<u64>,
    push_allow_private: Option<bool>,
    store: Option<String>,
    bus: Option<String>,
    client_users_per_minute: Option<u64>,
    client_users_burst: Option<u64>,
    client_logins_per_minute: Option<u64>,
    client_logins_burst: Option<u64>,
    auth_failures_per_minute: Option<u64>,
    retention_messages_days: Option<u64>,
    retention_push_days: Option<u64>,
    retention_stats_days: Option<u64>,
    retention_interval_secs: Option<u64>,
    drain_timeout_secs: Option<u64>,
}

/// A TOML error as `line L, column C: key: message`: where it is (from the error's byte
/// span) and, when the line is `key = value`, the key (the toml crate's message for a
/// wrong type names neither). The line's text is not repeated: it may hold a secret.
fn located(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    let Some(before) = e.span().and_then(|s| text.get(..s.start)) else {
        return message.to_owned();
    };
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let (line, column) = (
        before.matches('\n').count() + 1,
        before[line_start..].chars().count() + 1,
    );
    let key = text[line_start..]
        .lines()
        .next()
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| k.trim().trim_matches(['"', '\'']))
        .filter(|k| !k.is_empty() && !k.starts_with('[') && !message.contains(&format!("`{k}`")));
    match key {
        Some(key) => format!("line {line}, column {column}: {key}: {message}"),
        None => format!("line {line}, column {column}: {message}"),
    }
}

/// Values given on the command line (highest precedence).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub store: Option<String>,
    pub bus: Option<String>,
}

fn parse_listen(key: &str, v: &str) -> Result<SocketAddr, SettingsError> {
    v.parse().map_err(|_| SettingsError::Value {
        key: key.into(),
        message: format!("{v:?} is not an address like 127.0.0.1:8080"),
    })
}

fn parse_store(key: &str, v: &str) -> Result<String, SettingsError> {
    if v.starts_with("postgres://") || v.starts_with("postgresql://") {
        Ok(v.to_owned())
    } else {
        Err(SettingsError::Value {
            key: key.into(),
            message: "must be a postgres:// URL (leave it out for the embedded store)".into(),
        })
    }
}

fn parse_bus(key: &str, v: &str) -> Result<String, SettingsError> {
    if v.starts_with("nats://") {
        Ok(v.to_owned())
    } else {
        Err(SettingsError::Value {
            key: key.into(),
            message: "must be a nats:// URL (leave it out for a single node)".into(),
        })
    }
}

fn parse_bool(key: &str, v: &str) -> Result<bool, SettingsError> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(SettingsError::Value {
            key: key.into(),
            message: format!("{v:?} is not a boolean (true/false)"),
        }),
    }
}

/// The shortest admin token accepted from any source (file, env, settings, generated).
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// An admin token is at least [`MIN_ADMIN_TOKEN_LEN`] characters without spaces.
pub fn check_admin_token(key: &str, v: &str) -> Result<Secret, SettingsError> {
    if v.len() < MIN_ADMIN_TOKEN_LEN || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(SettingsError::Value {
            key: key.into(),
            message: "must be at least 16 characters without spaces".into(),
        });
    }
    Ok(Secret::new(v))
}

impl Settings {
    /// Builds the settings from all layers. `env` is usually `std::env::vars()`.
    pub fn load(
        config_file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<Settings, SettingsError> {
        let mut s = Settings::default();
        if let Some(path) = config_file {
            let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
                path: path.to_owned(),
                source,
            })?;
            let f: FileSettings = toml::from_str(&text).map_err(|e| SettingsError::File {
                path: path.to_owned(),
                message: located(&text, &e),
            })?;
            if let Some(v) = f.listen {
                s.listen = parse_listen("listen", &v)?;
            }
            if let Some(v) = f.data_dir {
                s.data_dir = v;
            }
            if let Some(v) = f.admin_token {
                s.admin_token = Some(check_admin_token("admin_token", &v)?);
            }
            if let Some(v) = f.demo_app {
                s.demo_app = v;
            }
            if let Some(v) = f.sqlite_fsync {
                s.sqlite_fsync = v;
            }
            if let Some(v) = f.token_daily_limit {
                s.platform.token_daily_limit = v;
            }
            if let Some(v) = f.worker_tick_ms {
                if !(10..=60_000).contains(&v) {
                    return Err(SettingsError::Value {
                        key: "worker_tick_ms".into(),
                        message: "must be between 10 and 60000".into(),
                    });
                }
                s.worker_tick = std::time::Duration::from_millis(v);
            }
            if let Some(v) = f.ping_interval_secs {
                if !(1..=3600).contains(&v) {
                    return Err(SettingsError::Value {
                        key: "ping_interval_secs".into(),
                        message: "must be between 1 and 3600".into(),
                    });
                }
                s.ping_interval = std::time::Duration::from_secs(v);
            }
            if let Some(v) = f.max_connections {
                s.max_connections = v;
            }
            if let Some(v) = f.hello_timeout_secs {
                if !(1..=300).contains(&v) {
                    return Err(SettingsError::Value {
                        key: "hello_timeout_secs".into(),
                        message: "must be between 1 and 300".into(),
                    });
                }
                s.hello_timeout = std::time::Duration::from_secs(v);
            }
            if let Some(v) = f.store {
                s.store = Some(parse_store("store", &v)?);
            }
            if let Some(v) = f.bus {
                s.bus = Some(parse_bus("bus", &v)?);
            }
            if let Some(v) = f.push_retry_hours {
                if !(1..=168).contains(&v) {
                    return Err(SettingsError::Value {
                        key: "push_retry_hours".into(),
                        message: "must be between 1 and 168".into(),
                    });
                }
                s.push.retry_horizon = std::time::Duration::from_secs(v * 3600);
            }
            if let Some(v) = f.push_allow_private {
                s.push.allow_private = v;
            }
            for (key, v) in [
                ("client_users_per_minute", f.client_users_per_minute),
                ("client_users_burst", f.client_users_burst),
                ("client_logins_per_minute", f.client_logins_per_minute),
                ("client_logins_burst", f.client_logins_burst),
                ("auth_failures_per_minute", f.auth_failures_per_minute),
                ("retention_messages_days", f.retention_messages_days),
                ("retention_push_days", f.retention_push_days),
                ("retention_stats_days", f.retention_stats_days),
                ("retention_interval_secs", f.retention_interval_secs),
                ("drain_timeout_secs", f.drain_timeout_secs),
            ] {
                if let Some(v) = v {
                    s.set_numeric(key, key, v)?;
                }
            }
        }
        for (k, v) in env {
            match k.as_str() {
                "TUISONG_LISTEN" => s.listen = parse_listen(&k, &v)?,
                "TUISONG_DATA_DIR" => s.data_dir = PathBuf::from(v),
                "TUISONG_ADMIN_TOKEN" => s.admin_token = Some(check_admin_token(&k, &v)?),
                "TUISONG_DEMO_APP" => s.demo_app = parse_bool(&k, &v)?,
                "TUISONG_SQLITE_FSYNC" => s.sqlite_fsync = parse_bool(&k, &v)?,
                "TUISONG_STORE" => s.store = Some(parse_store(&k, &v)?),
                "TUISONG_BUS" => s.bus = Some(parse_bus(&k, &v)?),
                "TUISONG_PUSH_ALLOW_PRIVATE" => s.push.allow_private = parse_bool(&k, &v)?,
                _ if NUMERIC_KEYS.iter().any(|n| n.1 == k) => s.set_numeric_env(&k, &v)?,
                _ => {}
            }
        }
        if let Some(v) = &overrides.listen {
            s.listen = parse_listen("--listen", v)?;
        }
        if let Some(v) = &overrides.data_dir {
            s.data_dir = v.clone();
        }
        if let Some(v) = &overrides.store {
            s.store = Some(parse_store("--store", v)?);
        }
        if let Some(v) = &overrides.bus {
            s.bus = Some(parse_bus("--bus", v)?);
        }
        Ok(s)
    }
}

/// The rate-limit and retention keys: (file key, environment variable, allowed range).
#[rustfmt::skip]
const NUMERIC_KEYS: [(&str, &str, u64, u64); 10] = [
    ("client_users_per_minute", "TUISONG_CLIENT_USERS_PER_MINUTE", 0, 1_000_000),
    ("client_users_burst", "TUISONG_CLIENT_USERS_BURST", 1, 1_000_000),
    ("client_logins_per_minute", "TUISONG_CLIENT_LOGINS_PER_MINUTE", 0, 1_000_000),
    ("client_logins_burst", "TUISONG_CLIENT_LOGINS_BURST", 1, 1_000_000),
    ("auth_failures_per_minute", "TUISONG_AUTH_FAILURES_PER_MINUTE", 0, 1_000_000),
    ("retention_messages_days", "TUISONG_RETENTION_MESSAGES_DAYS", 0, 36_500),
    ("retention_push_days", "TUISONG_RETENTION_PUSH_DAYS", 0, 36_500),
    ("retention_stats_days", "TUISONG_RETENTION_STATS_DAYS", 0, 36_500),
    ("retention_interval_secs", "TUISONG_RETENTION_INTERVAL_SECS", 1, 86_400),
    ("drain_timeout_secs", "TUISONG_DRAIN_TIMEOUT_SECS", 1, 3_600),
];

impl Settings {
    /// Sets the numeric key `key` (a file key of [`NUMERIC_KEYS`]) to `v`, or refuses a
    /// value out of its range, naming it `shown` (the file key or the variable).
    fn set_numeric(&mut self, key: &str, shown: &str, v: u64) -> Result<(), SettingsError> {
        let Some(&(_, _, min, max)) = NUMERIC_KEYS.iter().find(|k| k.0 == key) else {
            return Err(SettingsError::Value {
                key: shown.into(),
                message: "unknown setting".into(),
            });
        };
        if !(min..=max).contains(&v) {
            let zero = if min == 0 { " (0 turns it off)" } else { "" };
            return Err(SettingsError::Value {
                key: shown.into(),
                message: format!("must be between {min} and {max}{zero}"),
            });
        }
        // In range, so each fits its field.
        let n = v as u32;
        match key {
            "client_users_per_minute" => self.client_users_per_minute = n,
            "client_users_burst" => self.client_users_burst = n,
            "client_logins_per_minute" => self.client_logins_per_minute = n,
            "client_logins_burst" => self.client_logins_burst = n,
            "auth_failures_per_minute" => self.auth_failures_per_minute = n,
            "retention_messages_days" => self.retention.messages_days = n,
            "retention_push_days" => self.retention.push_days = n,
            "retention_stats_days" => self.retention.stats_days = n,
            "drain_timeout_secs" => self.drain_timeout = std::time::Duration::from_secs(v),
            _ => self.retention_interval = std::time::Duration::from_secs(v),
        }
        Ok(())
    }

    /// One of the variables of [`NUMERIC_KEYS`].
    fn set_numeric_env(&mut self, var: &str, v: &str) -> Result<(), SettingsError> {
        let Some(&(key, ..)) = NUMERIC_KEYS.iter().find(|k| k.1 == var) else {
            return Err(SettingsError::Value {
                key: var.into(),
                message: "unknown setting".into(),
            });
        };
        let n = v.trim().parse::<u64>().map_err(|_| SettingsError::Value {
            key: var.into(),
            message: format!("{v:?} is not a whole number"),
        })?;
        self.set_numeric(key, var, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(f.path(), text).expect("write");
        f
    }

    #[test]
    fn debug_redacts_the_store_password_and_keeps_the_rest_of_the_url() {
        let s = Settings {
            store: Some("postgres://u:hunter2@h/db".into()),
            bus: Some("nats://bususer:buspass@nats.example:4222".into()),
            admin_token: Some(Secret::new("adm_0123456789abcdef")),
            ..Settings::default()
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://u:[redacted]@h/db"), "{shown}");
        assert!(!shown.contains("buspass"), "{shown}");
        assert!(shown.contains("nats.example:4222"), "{shown}");
        assert!(!shown.contains("adm_0123456789abcdef"), "{shown}");
        let pretty = format!("{s:#?}");
        assert!(!pretty.contains("hunter2"), "{pretty}");
    }

    #[test]
    fn redact_url_hides_tokens_and_password_parameters() {
        assert_eq!(
            redact_url("nats://s3cr3t@h:4222"),
            "nats://[redacted]@h:4222"
        );
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=p&sslmode=require"),
            "postgres://h/db?user=u&password=[redacted]&sslmode=require"
        );
        assert_eq!(redact_url("postgres://h:5432/db"), "postgres://h:5432/db");
        assert_eq!(
            redact_url("postgres://u:p@ss@h/db"),
            "postgres://u:[redacted]@h/db"
        );
    }

    #[test]
    fn layers_apply_in_order_file_env_flags() {
        let f = file("listen = \"127.0.0.1:9000\"\ndata_dir = \"from-file\"\n");
        let env = vec![("TUISONG_DATA_DIR".to_string(), "from-env".to_string())];
        let s = Settings::load(Some(f.path()), env, &Overrides::default()).expect("loads");
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.data_dir, PathBuf::from("from-env"));
        let o = Overrides {
            listen: Some("127.0.0.1:9001".into()),
            ..Overrides::default()
        };
        let s = Settings::load(Some(f.path()), vec![], &o).expect("loads");
        assert_eq!(s.listen.port(), 9001);
    }

    #[test]
    fn a_wrong_type_in_the_file_names_the_key_and_the_line() {
        let f = file("listen = \"127.0.0.1:9000\"\n\nworker_tick_ms = \"fast\"\n");
        let e = Settings::load(Some(f.path()), vec![], &Overrides::default()).expect_err("refused");
        let shown = e.to_string();
        assert!(
            shown.contains("line 3, column 18: worker_tick_ms: invalid type"),
            "{shown}"
        );
        let f = file("demo_app = true\nlisten_port = 3\n");
        let e = Settings::load(Some(f.path()), vec![], &Overrides::default()).expect_err("refused");
        assert!(
            e.to_string()
                .contains("line 2, column 1: unknown field `listen_port`"),
            "{e}"
        );
    }

    #[test]
    fn the_drain_timeout_comes_from_the_file_or_the_env() {
        let f = file("drain_timeout_secs = 3\n");
        let s = Settings::load(Some(f.path()), vec![], &Overrides::default()).expect("loads");
        assert_eq!(s.drain_timeout, std::time::Duration::from_secs(3));
        let env = vec![("TUISONG_DRAIN_TIMEOUT_SECS".to_string(), "0".to_string())];
        let e = Settings::load(None, env, &Overrides::default()).expect_err("refused");
        assert!(
            e.to_string().starts_with("TUISONG_DRAIN_TIMEOUT_SECS"),
            "{e}"
        );
    }

    #[test]
    fn an_unknown_key_in_the_file_is_named_in_the_error() {
        let f = file("listen = \"127.0.0.1:9000\"\nlisten_port = 3\n");
        let e = Settings::load(Some(f.path()), vec![], &Overrides::default()).expect_err("refused");
        assert!(e.to_string().contains("listen_port"), "{e}");
    }

    #[test]
    fn limits_and_retention_come_from_the_file_and_the_env_and_bad_values_name_their_key() {
        let f = file("retention_messages_days = 30\nclient_logins_per_minute = 0\n");
        let env = vec![
            ("TUISONG_RETENTION_PUSH_DAYS".to_string(), "3".to_string()),
            (
                "TUISONG_RETENTION_INTERVAL_SECS".to_string(),
                "5".to_string(),
            ),
        ];
        let s = Settings::load(Some(f.path()), env, &Overrides::default()).expect("loads");
        assert_eq!(s.retention.messages_days, 30);
        assert_eq!(s.retention.push_days, 3);
        assert_eq!(s.retention.stats_days, 400);
        assert_eq!(s.client_logins_per_minute, 0);
        assert_eq!((s.client_users_per_minute, s.client_users_burst), (30, 120));
        assert_eq!(s.retention_interval, std::time::Duration::from_secs(5));
        for (var, value) in [
            ("TUISONG_RETENTION_STATS_DAYS", "40000"),
            ("TUISONG_RETENTION_INTERVAL_SECS", "0"),
            ("TUISONG_CLIENT_USERS_PER_MINUTE", "many"),
        ] {
            let e = Settings::load(
                None,
                vec![(var.to_string(), value.to_string())],
                &Overrides::default(),
            )
            .expect_err("refused");
            assert!(e.to_string().starts_with(var), "{e}");
        }
        let f = file("retention_push_days = 99999\n");
        let e = Settings::load(Some(f.path()), vec![], &Overrides::default()).expect_err("refused");
        assert!(e.to_string().starts_with("retention_push_days"), "{e}");
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let e = Settings::load(
            None,
            vec![("TUISONG_LISTEN".to_string(), "nope".to_string())],
            &Overrides::default(),
        )
        .expect_err("refused");
        assert!(e.to_string().starts_with("TUISONG_LISTEN"), "{e}");
        let e = Settings::load(
            None,
            vec![("TUISONG_ADMIN_TOKEN".to_string(), "short".to_string())],
            &Overrides::default(),
        )
        .expect_err("refused");
        assert!(e.to_string().starts_with("TUISONG_ADMIN_TOKEN"), "{e}");
        let f = file("demo_app = \"maybe\"\n");
        let e = Settings::load(Some(f.path()), vec![], &Overrides::default()).expect_err("refused");
        assert!(
            e.to_string().contains("demo_app") || e.to_string().contains("bool"),
            "{e}"
        );
    }
}
