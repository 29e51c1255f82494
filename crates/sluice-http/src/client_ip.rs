//! The caller's address: the host's [`ClientIp`] if it set one, else the socket's peer address.

use axum::extract::ConnectInfo;
use axum::http::Extensions;
use std::net::SocketAddr;

/// The caller's address, as a host saw it; a request extension.
///
/// On Lambda the host inserts it from the API Gateway request context; `sluice serve` may insert
/// it when it runs behind a trusted proxy. Without it the socket's peer address
/// ([`ConnectInfo<SocketAddr>`]) is used, when the server provides it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIp(pub String);

/// The most trustworthy source address available for a request.
pub fn source_ip(extensions: &Extensions) -> Option<String> {
    extensions.get::<ClientIp>().map(|c| c.0.clone()).or_else(|| {
        extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip().to_string())
    })
}
