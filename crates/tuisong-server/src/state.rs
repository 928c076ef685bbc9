//! What every handler shares.

use crate::gateway::Hub;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tuisong_core::ids::Secret;
use tuisong_core::service::Platform;

/// Limits of the device gateway.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub ping_interval: Duration,
}

#[derive(Clone)]
pub struct AppState {
    pub platform: Arc<Platform>,
    pub admin_token: Arc<Secret>,
    pub hub: Arc<Hub>,
    pub limits: Limits,
    /// Turns true when the server stops; device sessions and workers end.
    pub shutdown: watch::Receiver<bool>,
    /// Client for the apps' receiving servers (message push).
    pub push_http: reqwest::Client,
}
