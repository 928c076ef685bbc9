//! The tuisong HTTP server: the WeChat dialect (`/cgi-bin`, `/sns`, `/wxaapi`), the native
//! API (`/v1`), the device API (`/client/v1`) and the admin API (`/admin`), wired to the
//! platform services of `tuisong-core` over the embedded store. Handlers are adapters:
//! parse, call one service function, map the result.

pub mod admin;
pub mod app;
pub mod bus;
pub mod client;
pub mod demo;
pub mod gateway;
pub mod http;
pub mod push;
pub mod push_api;
pub mod render;
pub mod settings;
pub mod state;
pub mod v1;
pub mod web;
pub mod wechat;

pub use app::{Application, BuildOptions};
pub use settings::{Overrides, Settings};
