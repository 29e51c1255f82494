//! RFC 9457 problem details: the one shape every error response takes.
//!
//! A handler or middleware returns a [`Problem`]; its response carries the problem as a response
//! extension, and the outermost layer ([`crate::request_id`]) renders the final
//! `application/problem+json` body with the request id. Any other error response (axum's own 405,
//! a layer's 413) is turned into a problem there too, so no framework text ever reaches a client
//! (I-2).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sluice_core::text::truncate_at_char_boundary;
use sluice_core::validate::Violation;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The `type` of every problem: `about:blank` (RFC 9457 §4.2.1), since the project has no
/// public address a type URI could resolve to. The `code` member identifies the problem, and
/// `docs/problems.md` documents each code under an anchor of the same name.
pub const PROBLEM_TYPE: &str = "about:blank";

/// The stable, snake_case problem codes (the `code` member), each documented in
/// `docs/problems.md#<code>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// 400: the body is not acceptable JSON.
    MalformedJson,
    /// 400: a query parameter is invalid.
    InvalidParameter,
    /// 400: the list cursor is forged, altered or foreign.
    InvalidCursor,
    /// 400: a request header is invalid.
    InvalidHeader,
    /// 401: missing or bad credentials.
    Unauthorized,
    /// 403: an admin state change without a same-origin `Origin` and a JSON body (CSRF).
    CsrfRefused,
    /// 404: no such resource (or another tenant's).
    NotFound,
    /// 405: the path exists, the method does not.
    MethodNotAllowed,
    /// 410: retention removed feed entries after `after`; the body's `earliest_after` is where
    /// to start again.
    FeedExpired,
    /// 408: the body did not arrive in time.
    RequestTimeout,
    /// 413: the body is larger than allowed.
    PayloadTooLarge,
    /// 415: the body is not JSON.
    UnsupportedMediaType,
    /// 422: the JSON breaks the event contract.
    ValidationFailed,
    /// 422: the idempotency key was used with another body.
    IdempotencyKeyMismatch,
    /// 429: over the rate limit.
    Throttled,
    /// 503: the queue refused the events (full or down).
    QueueUnavailable,
    /// 503: the event store is unavailable.
    StoreUnavailable,
    /// 503: the key store is unavailable.
    AuthUnavailable,
    /// 501: a transfer coding other than `chunked`.
    UnsupportedTransferCoding,
    /// 500: anything else.
    Internal,
}

impl Code {
    /// Every code, for documentation and tests.
    pub const ALL: [Code; 20] = [
        Code::MalformedJson,
        Code::InvalidParameter,
        Code::InvalidCursor,
        Code::InvalidHeader,
        Code::Unauthorized,
        Code::CsrfRefused,
        Code::NotFound,
        Code::MethodNotAllowed,
        Code::FeedExpired,
        Code::RequestTimeout,
        Code::PayloadTooLarge,
        Code::UnsupportedMediaType,
        Code::ValidationFailed,
        Code::IdempotencyKeyMismatch,
        Code::Throttled,
        Code::QueueUnavailable,
        Code::StoreUnavailable,
        Code::AuthUnavailable,
        Code::UnsupportedTransferCoding,
        Code::Internal,
    ];

    /// The snake_case code.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::MalformedJson => "malformed_json",
            Code::InvalidParameter => "invalid_parameter",
            Code::InvalidCursor => "invalid_cursor",
            Code::InvalidHeader => "invalid_header",
            Code::Unauthorized => "unauthorized",
            Code::CsrfRefused => "csrf_refused",
            Code::NotFound => "not_found",
            Code::MethodNotAllowed => "method_not_allowed",
            Code::FeedExpired => "feed_expired",
            Code::RequestTimeout => "request_timeout",
            Code::PayloadTooLarge => "payload_too_large",
            Code::UnsupportedMediaType => "unsupported_media_type",
            Code::ValidationFailed => "validation_failed",
            Code::IdempotencyKeyMismatch => "idempotency_key_mismatch",
            Code::Throttled => "throttled",
            Code::QueueUnavailable => "queue_unavailable",
            Code::StoreUnavailable => "store_unavailable",
            Code::AuthUnavailable => "auth_unavailable",
            Code::UnsupportedTransferCoding => "unsupported_transfer_coding",
            Code::Internal => "internal",
        }
    }

    /// The HTTP status that goes with the code.
    pub fn status(self) -> StatusCode {
        match self {
            Code::MalformedJson | Code::InvalidParameter | Code::InvalidCursor | Code::InvalidHeader => {
                StatusCode::BAD_REQUEST
            }
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::CsrfRefused => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Code::FeedExpired => StatusCode::GONE,
            Code::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::ValidationFailed | Code::IdempotencyKeyMismatch => StatusCode::UNPROCESSABLE_ENTITY,
            Code::Throttled => StatusCode::TOO_MANY_REQUESTS,
            Code::QueueUnavailable | Code::StoreUnavailable | Code::AuthUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::UnsupportedTransferCoding => StatusCode::NOT_IMPLEMENTED,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The title: the HTTP status phrase (RFC 9110), as RFC 9457 asks of `about:blank`
    /// problems; the same for every occurrence, and `code` says which problem it is.
    pub fn title(self) -> &'static str {
        match self.status().as_u16() {
            400 => "Bad Request",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            410 => "Gone",
            413 => "Content Too Large",
            415 => "Unsupported Media Type",
            422 => "Unprocessable Content",
            429 => "Too Many Requests",
            501 => "Not Implemented",
            503 => "Service Unavailable",
            _ => "Internal Server Error",
        }
    }

    /// The code for an error status produced outside this crate (axum's 405, a layer's 413).
    pub fn for_status(status: StatusCode) -> Code {
        match status {
            StatusCode::BAD_REQUEST => Code::InvalidParameter,
            StatusCode::UNAUTHORIZED => Code::Unauthorized,
            StatusCode::NOT_FOUND => Code::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Code::MethodNotAllowed,
            StatusCode::REQUEST_TIMEOUT => Code::RequestTimeout,
            StatusCode::PAYLOAD_TOO_LARGE => Code::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Code::UnsupportedMediaType,
            StatusCode::UNPROCESSABLE_ENTITY => Code::ValidationFailed,
            StatusCode::TOO_MANY_REQUESTS => Code::Throttled,
            StatusCode::SERVICE_UNAVAILABLE => Code::QueueUnavailable,
            StatusCode::NOT_IMPLEMENTED => Code::UnsupportedTransferCoding,
            _ => Code::Internal,
        }
    }
}

/// Longest `detail`, in bytes.
const MAX_DETAIL: usize = 512;

/// An error response about to be sent: status, code, optional detail and violations, and the
/// headers some codes require (`Retry-After`, `WWW-Authenticate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    code: Code,
    detail: Option<String>,
    violations: Vec<Violation>,
    retry_after: Option<u64>,
    earliest_after: Option<u64>,
}

impl Problem {
    /// A problem with no detail.
    pub fn new(code: Code) -> Self {
        Self {
            code,
            detail: None,
            violations: Vec::new(),
            retry_after: None,
            earliest_after: None,
        }
    }

    /// Adds the `earliest_after` member of a `feed_expired` problem.
    pub fn earliest_after(mut self, seq: u64) -> Self {
        self.earliest_after = Some(seq);
        self
    }

    /// Adds a human explanation specific to this occurrence (never internals). Details longer
    /// than 512 bytes are cut, since some quote the request (a duplicate key's name).
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        let mut detail = detail.into();
        if truncate_at_char_boundary(&mut detail, MAX_DETAIL) {
            detail.push('…');
        }
        self.detail = Some(detail);
        self
    }

    /// Adds the JSON Pointer violations of a 422.
    pub fn violations(mut self, violations: Vec<Violation>) -> Self {
        self.violations = violations;
        self
    }

    /// Sets `Retry-After` in whole seconds (at least 1).
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    /// The `Retry-After` seconds, if any.
    #[cfg(test)]
    pub(crate) fn retry_after_value(&self) -> Option<u64> {
        self.retry_after
    }

    /// The code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The JSON body, with the request id it answers.
    pub fn to_json(&self, request_id: &str) -> Vec<u8> {
        let mut body = serde_json::json!({
            "type": PROBLEM_TYPE,
            "title": self.code.title(),
            "status": self.code.status().as_u16(),
            "code": self.code.as_str(),
            "request_id": request_id,
        });
        if let Some(obj) = body.as_object_mut() {
            if let Some(d) = &self.detail {
                obj.insert("detail".into(), d.clone().into());
            }
            if !self.violations.is_empty() {
                let list = self
                    .violations
                    .iter()
                    .map(|v| serde_json::json!({"pointer": v.pointer, "message": v.message}))
                    .collect::<Vec<_>>();
                obj.insert("violations".into(), list.into());
            }
            if let Some(seq) = self.earliest_after {
                obj.insert("earliest_after".into(), seq.into());
            }
        }
        serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec())
    }

    /// The finished response: status, headers and body (request id included).
    pub fn render(&self, request_id: &str) -> Response {
        let mut res = (self.code.status(), self.to_json(request_id)).into_response();
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = self.retry_after {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.code == Code::Unauthorized {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if matches!(self.code, Code::PayloadTooLarge | Code::RequestTimeout) {
            // The rest of the body is never read, so the server drops the connection after this
            // reply; saying so keeps a keep-alive client from sending its next request into it.
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        res.extensions_mut().insert(Rendered);
        res
    }
}

/// Marks a response whose problem body is final.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rendered;

impl IntoResponse for Problem {
    /// A response carrying the problem as an extension; the outermost layer renders it with the
    /// request id. Rendered here without one as well, in case the router runs without that layer.
    fn into_response(self) -> Response {
        let mut res = self.render("");
        res.extensions_mut().remove::<Rendered>();
        res.extensions_mut().insert(self);
        res
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t1_long_details_are_cut() {
        let p = Problem::new(Code::MalformedJson).detail("é".repeat(1000));
        let body: serde_json::Value = serde_json::from_slice(&p.to_json("r")).unwrap();
        assert!(body["detail"].as_str().unwrap().len() <= MAX_DETAIL + 3);
        assert_eq!(body["request_id"], "r");
        assert_eq!(body["type"], "about:blank");
        assert_eq!(body["title"], "Bad Request");
        assert_eq!(body["code"], "malformed_json");
    }

    #[test]
    fn d1_a_refused_oversized_body_closes_the_connection_openly() {
        let res = Problem::new(Code::PayloadTooLarge).render("r");
        assert_eq!(res.headers().get(header::CONNECTION).unwrap(), "close");
        let res = Problem::new(Code::RequestTimeout).render("r");
        assert_eq!(res.headers().get(header::CONNECTION).unwrap(), "close");
        let res = Problem::new(Code::MalformedJson).render("r");
        assert!(res.headers().get(header::CONNECTION).is_none());
    }

    /// The document every `code` points a developer to.
    const PROBLEMS_MD: &str = include_str!("../../../docs/problems.md");
    /// Codes only API Gateway answers with, on AWS (its gateway responses in `infra/template.yaml`).
    const GATEWAY_ONLY: [&str; 2] = ["forbidden", "bad_request"];

    /// The text of a code's section in `docs/problems.md`, from its anchor to the next one.
    fn documented(code: &str) -> Option<&'static str> {
        let anchor = format!("<a id=\"{code}\"></a>");
        let start = PROBLEMS_MD.find(&anchor)? + anchor.len();
        let rest = &PROBLEMS_MD[start..];
        Some(&rest[..rest.find("<a id=").unwrap_or(rest.len())])
    }

    #[test]
    fn every_code_is_documented_in_problems_md_under_its_anchor() {
        for c in Code::ALL {
            let code = c.as_str();
            let section = documented(code).unwrap_or_else(|| panic!("docs/problems.md has no anchor for {code}"));
            assert!(
                section.trim_start().starts_with(&format!("### `{code}`")),
                "{code}: the anchor is not on its heading"
            );
            let status = format!("**Status:** {} {}", c.status().as_u16(), c.title());
            assert!(section.contains(&status), "{code}: no line {status:?}");
            for part in ["**When:**", "**What to do:**"] {
                assert!(section.contains(part), "{code}: no {part}");
            }
            assert!(
                PROBLEMS_MD.contains(&format!("[`{code}`](#{code})")),
                "{code} is not in the summary table"
            );
        }
        // Nothing documented that no one answers with.
        for anchor in PROBLEMS_MD.split("<a id=\"").skip(1) {
            let id = anchor.split('"').next().unwrap_or_default();
            assert!(
                Code::ALL.iter().any(|c| c.as_str() == id) || GATEWAY_ONLY.contains(&id),
                "docs/problems.md documents {id}, which is no code"
            );
        }
    }

    #[test]
    fn every_code_maps_back_from_its_own_status_class() {
        for c in Code::ALL {
            assert!(c.status().is_client_error() || c.status().is_server_error(), "{c:?}");
            assert!(c.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
    }
}
