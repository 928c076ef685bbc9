//! The state of a running node, shared by every handler and worker: the platform, the
//! admin token, the gateway hub and limits, the shutdown signal, the push client and
//! the workers' restart counters. It depends on core and the gateway, never on a handler
//! or a worker module.

use crate::gateway::{GatewayState, Hub};
use crate::limit::KeyedLimiter;
use axum::extract::FromRef;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use tokio::sync::watch;
use tuisong_core::ids::Secret;
use tuisong_core::service::Platform;

pub use crate::gateway::Limits;

#[derive(Clone)]
pub struct AppState {
    pub platform: Arc<Platform>,
    pub admin_token: Arc<Secret>,
    pub hub: Arc<Hub>,
    pub limits: Limits,
    /// Turns true when the server stops; device sessions and workers end.
    pub shutdown: watch::Receiver<bool>,
    /// Client for the apps' receiving servers (message push).
    pub push_http: crate::push::PushClient,
    /// How often each background worker was restarted after a failure.
    pub worker_restarts: Arc<WorkerRestarts>,
    /// Per client address limits of the device API's unauthenticated and login calls.
    pub client_limits: Arc<ClientLimits>,
    /// What `/metrics` shows (`crate::metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The NATS bus, when configured: `/readyz` asks whether it is connected.
    pub bus: Option<Arc<crate::bus::NatsBus>>,
}

/// Rate limits keyed by the client's address (`crate::edge::limit::ClientIp`).
pub struct ClientLimits {
    /// `POST /client/v1/users` (needs no credentials).
    pub users: KeyedLimiter<IpAddr>,
    /// `POST /client/v1/login` (each call writes a login code).
    pub logins: KeyedLimiter<IpAddr>,
    /// Wrong app secrets and admin tokens, per address and per appid.
    pub credentials: crate::guard::CredentialGuard,
}

impl ClientLimits {
    /// Forgets the addresses that are back to a full allowance.
    pub fn retain_recent(&self) {
        self.users.retain_recent();
        self.logins.retain_recent();
        self.credentials.retain_recent();
    }
}

/// Restarts of each background worker (`crate::workers`) since the node started.
#[derive(Debug, Default)]
pub struct WorkerRestarts {
    /// The due-work loop (releases, TTL expiry).
    pub due: Arc<AtomicU64>,
    /// The message-push delivery loop.
    pub push: Arc<AtomicU64>,
    /// The retention sweeps.
    pub retention: Arc<AtomicU64>,
}

/// The device gateway's share of the state (`/client/v1/ws`).
impl FromRef<AppState> for GatewayState {
    fn from_ref(s: &AppState) -> GatewayState {
        GatewayState {
            platform: s.platform.clone(),
            hub: s.hub.clone(),
            limits: s.limits.clone(),
            shutdown: s.shutdown.clone(),
        }
    }
}
