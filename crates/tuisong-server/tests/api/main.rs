//! End-to-end tests of the HTTP API over real sockets and a real (temp-file) SQLite store.

mod admin;
mod analytics;
mod client;
mod delivery;
mod durability;
mod helpers;
mod isolation;
mod login;
mod metrics;
mod openapi;
mod push;
mod rules;
mod send;
mod storage;
mod templates;
mod token;
mod v1;
mod ws_limits;
