//! What every handler shares.

use std::sync::Arc;
use tuisong_core::ids::Secret;
use tuisong_core::service::Platform;

#[derive(Clone)]
pub struct AppState {
    pub platform: Arc<Platform>,
    pub admin_token: Arc<Secret>,
}
