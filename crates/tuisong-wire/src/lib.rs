//! WeChat wire formats: errcodes, message-push crypto and event bodies. Knows nothing
//! of the store; the server wires it to the domain.
pub mod crypto;
pub mod errcode;
pub mod event;
