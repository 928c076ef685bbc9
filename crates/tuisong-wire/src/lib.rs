//! WeChat wire formats: errcodes, message-push crypto and event bodies, and the device
//! protocol's WebSocket frames. Knows nothing of the store; the server wires it to the
//! domain.
pub mod crypto;
pub mod device;
pub mod errcode;
pub mod event;
