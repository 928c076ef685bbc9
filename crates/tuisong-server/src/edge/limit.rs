//! Rate limits at the edge: who the caller is on the network ([`ClientIp`], the peer
//! address of the TCP connection) and the native dialect's answer to a refused request
//! (429, `{"error": {"code": "rate_limited", …}}`, `Retry-After`). The limiter itself is
//! [`KeyedLimiter`] (`crate::limit`); the node's limiters are in `AppState`.
//!
//! ```ignore
//! async fn handler(State(s): State<AppState>, ip: ClientIp) -> Result<…, Response> {
//!     s.client_limits.logins.check(&ip.0).map_err(IntoResponse::into_response)?;
//!     …
//! }
//! ```
//!
//! The peer address is what is limited: behind a reverse proxy on the same host every
//! client shares the proxy's address, so there the limits should be raised or turned off
//! (0) and left to the proxy.

use super::api_fixed;
pub use crate::limit::{KeyedLimiter, RetryAfter};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The caller's address as a rate-limit key: the peer's IP; an IPv6 peer by its /64
/// (one host can pick any address of its subnet). A request that did not come over a
/// socket (none in production) counts as the unspecified address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    pub fn of(peer: IpAddr) -> ClientIp {
        ClientIp(match peer {
            IpAddr::V4(v4) => IpAddr::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let s = v6.segments();
                    IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
                }
            },
        })
    }
}

impl ClientIp {
    /// The caller of a request whose parts are at hand (an extractor of its own).
    pub fn of_parts(parts: &Parts) -> ClientIp {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        ClientIp::of(peer)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(ClientIp::of_parts(parts))
    }
}

/// 429 in the native dialect, with `Retry-After` in seconds.
impl IntoResponse for RetryAfter {
    fn into_response(self) -> Response {
        let secs = self.secs();
        let mut r = api_fixed(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            &format!("too many requests from this address; retry in {secs} s"),
        );
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_keyed_by_its_64_and_a_mapped_v4_by_its_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        assert_eq!(ClientIp::of(a), ClientIp::of(b));
        let other: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_ne!(ClientIp::of(a), ClientIp::of(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(
            ClientIp::of(mapped).0,
            "192.0.2.7".parse::<IpAddr>().expect("ip")
        );
    }
}
