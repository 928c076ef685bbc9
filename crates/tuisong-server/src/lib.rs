//! The tuisong HTTP server: the WeChat dialect (`/cgi-bin`, `/sns`, `/wxaapi`), the native
//! API (`/v1`), the device API (`/client/v1`) and the admin API (`/admin`), wired to the
//! platform services of `tuisong-core` over the configured store. Handlers are adapters:
//! parse, call one service function, map the result.
//!
//! - `api/`: one module per caller (`wechat/`, `v1`, `client`, `admin`, and the
//!   push-config resource two of them mount); `api::router` puts them together;
//! - `edge/`: what every handler shares — auth extractors, body and field readers, the
//!   error mapping of each dialect, the JSON of domain records;
//! - `gateway/`: the device WebSocket and the hub that routes inbox entries to sessions;
//! - `workers/`: the background loops (due work, message push) and their supervisor;
//! - `push`: the HTTP side of message push (handshake, signed and encrypted requests);
//! - `bus`: notices between nodes over NATS;
//! - `limit`: the keyed rate limiter (per client address, …) that the edge applies;
//! - `metrics`: the node's metrics (`/metrics`), no dependency on the rest;
//! - `guard`: repeated wrong secrets and admin tokens — counted, logged, shut out;
//! - `web`: the console and the phone simulator (static files);
//! - `app`, `settings`, `state`, `demo`: starting a node, its settings, its shared
//!   state, the demo app of a fresh store.
//!
//! Dependencies point one way: `app` → `api` → `edge` → `state`; `workers` → `state`.

pub mod api;
pub mod app;
pub mod bus;
pub mod demo;
pub mod edge;
pub mod gateway;
pub mod guard;
pub mod limit;
pub mod metrics;
pub mod push;
pub mod settings;
pub mod state;
pub mod web;
pub mod workers;

pub use app::{AdminTokenSource, Application, BuildOptions};
pub use settings::{Overrides, Settings};
