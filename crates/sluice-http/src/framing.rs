//! HTTP/1.1 message framing that hyper lets through but RFC 9112 refuses, checked before a
//! route reads anything (T-1: a proxy in front and Sluice must never read different bytes from
//! one request).
//!
//! - `Transfer-Encoding`: Sluice decodes `chunked` and nothing else. A coding it does not
//!   implement (`gzip, chunked`, `bogus, chunked`) gets 501 (section 6.1), and `chunked` applied
//!   twice gets 400: hyper would decode the last `chunked` and pass the rest on as if it were the
//!   body, where a proxy may have read it differently.
//! - `Host`: an HTTP/1.1 request with none, or with more than one, gets 400 (section 3.2).
//!
//! Only `sluice serve` mounts this (in [`crate::app`]): on AWS, API Gateway owns the connection
//! and hands the functions a request it has already framed. The request is refused unread, so
//! hyper closes the connection rather than guess where the next request starts.

use crate::problem::{Code, Problem};
use axum::extract::Request;
use axum::http::{HeaderMap, Version, header};
use axum::response::{IntoResponse, Response};
use futures::future::{Either, Ready, ready};
use std::task::{Context, Poll};
use tower::{Layer, Service};

/// Refuses requests whose framing RFC 9112 does not allow (see the module docs).
pub(crate) fn check(version: Version, headers: &HeaderMap) -> Result<(), Problem> {
    let mut chunked = 0;
    for value in headers.get_all(header::TRANSFER_ENCODING) {
        let Ok(value) = value.to_str() else {
            return Err(unsupported_coding());
        };
        for coding in value.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            if coding.eq_ignore_ascii_case("chunked") {
                chunked += 1;
            } else {
                return Err(unsupported_coding());
            }
        }
    }
    if chunked > 1 {
        return Err(Problem::new(Code::InvalidHeader).detail("Transfer-Encoding applies chunked more than once"));
    }
    if version == Version::HTTP_11 && headers.get_all(header::HOST).iter().count() != 1 {
        return Err(Problem::new(Code::InvalidHeader).detail("an HTTP/1.1 request carries exactly one Host header"));
    }
    Ok(())
}

fn unsupported_coding() -> Problem {
    Problem::new(Code::UnsupportedTransferCoding)
        .detail("the only transfer coding accepted is chunked; send the body as plain JSON")
}

/// Wraps a service with [`check`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FramingLayer;

impl<S> Layer<S> for FramingLayer {
    type Service = Framing<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Framing { inner }
    }
}

/// The service [`FramingLayer`] makes.
#[derive(Debug, Clone)]
pub(crate) struct Framing<S> {
    inner: S,
}

impl<S> Service<Request> for Framing<S>
where
    S: Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match check(req.version(), req.headers()) {
            Ok(()) => Either::Right(self.inner.call(req)),
            Err(problem) => Either::Left(ready(Ok(problem.into_response()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn code(version: Version, pairs: &[(&str, &str)]) -> Option<&'static str> {
        check(version, &headers(pairs)).err().map(|p| p.code().as_str())
    }

    #[test]
    fn t1_only_a_single_chunked_coding_is_accepted() {
        let host = ("host", "localhost");
        assert_eq!(code(Version::HTTP_11, &[host]), None);
        assert_eq!(code(Version::HTTP_11, &[host, ("transfer-encoding", "Chunked")]), None);
        for unknown in ["gzip, chunked", "deflate, chunked", "bogus, chunked", "gzip"] {
            assert_eq!(
                code(Version::HTTP_11, &[host, ("transfer-encoding", unknown)]),
                Some("unsupported_transfer_coding"),
                "{unknown}"
            );
        }
        assert_eq!(
            code(Version::HTTP_11, &[host, ("transfer-encoding", "chunked, chunked")]),
            Some("invalid_header")
        );
        assert_eq!(
            code(
                Version::HTTP_11,
                &[host, ("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")]
            ),
            Some("invalid_header"),
            "two header lines count as one list"
        );
    }

    #[test]
    fn t1_http11_needs_exactly_one_host() {
        assert_eq!(code(Version::HTTP_11, &[]), Some("invalid_header"));
        assert_eq!(
            code(Version::HTTP_11, &[("host", "a"), ("host", "b")]),
            Some("invalid_header")
        );
        assert_eq!(code(Version::HTTP_10, &[]), None, "HTTP/1.0 has no Host requirement");
    }
}
