//! tuisong's domain: identifiers, keyword rules, the template library, private
//! templates, the consent ledger's rules, the `Store` trait and the platform services.
//! Nothing here does I/O of its own; the store and the clock come in as traits.

pub mod analytics;
pub mod clock;
pub mod consent;
pub mod error;
pub mod ids;
pub mod keyword;
pub mod library;
pub mod notify;
pub mod policy;
pub mod push;
pub mod service;
pub mod store;
pub mod template;
pub mod values;

pub use error::{Error, Result};
