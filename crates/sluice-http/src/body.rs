//! Reading a request body safely (T-1): the media type is checked first, then the body is read
//! through a byte limit, so an oversized body is refused after at most `limit` bytes whether its
//! `Content-Length` is honest, lies, or is absent (chunked), and within a time limit, so a client
//! trickling its body cannot hold a request slot for ever (D-2).

use crate::problem::{Code, Problem};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use std::time::Duration;

/// Whether a `Content-Type` names JSON in UTF-8: `application/json` or `application/*+json`,
/// with no `charset` other than UTF-8.
pub(crate) fn is_json_media_type(value: &str) -> bool {
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let json = essence == "application/json"
        || essence
            .strip_prefix("application/")
            .and_then(|s| s.strip_suffix("+json"))
            .is_some_and(|sub| {
                !sub.is_empty()
                    && sub
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
            });
    let params_ok = parts.all(|p| match p.split_once('=') {
        Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
            v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        }
        Some(_) => true,
        None => p.trim().is_empty(),
    });
    json && params_ok
}

/// 415 unless the request says it carries uncompressed JSON.
pub(crate) fn require_json(headers: &HeaderMap) -> Result<(), Problem> {
    let unsupported =
        || Problem::new(Code::UnsupportedMediaType).detail("send the body as application/json (UTF-8, not compressed)");
    let ct = headers.get(header::CONTENT_TYPE).ok_or_else(unsupported)?;
    let ct = ct.to_str().map_err(|_| unsupported())?;
    if !is_json_media_type(ct) {
        return Err(unsupported());
    }
    for enc in headers.get_all(header::CONTENT_ENCODING) {
        let ok = enc
            .to_str()
            .is_ok_and(|s| s.split(',').all(|e| e.trim().eq_ignore_ascii_case("identity")));
        if !ok {
            return Err(unsupported());
        }
    }
    Ok(())
}

fn too_large(limit: usize) -> Problem {
    Problem::new(Code::PayloadTooLarge).detail(format!("the request body is limited to {limit} bytes"))
}

/// The whole body, refused with 413 as soon as it passes `limit` bytes and with 408 if it has not
/// all arrived within `timeout` (zero: no time limit).
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, Problem> {
    if let Some(declared) = headers.get(header::CONTENT_LENGTH) {
        let declared = declared
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| Problem::new(Code::InvalidHeader).detail("Content-Length is not a number"))?;
        if declared > limit as u64 {
            return Err(too_large(limit));
        }
    }
    let read = Limited::new(body, limit).collect();
    let read = if timeout.is_zero() {
        read.await
    } else {
        tokio::time::timeout(timeout, read).await.map_err(|_| {
            Problem::new(Code::RequestTimeout).detail(format!(
                "the request body did not arrive within {} seconds",
                timeout.as_secs_f64()
            ))
        })?
    };
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large(limit)),
        Err(e) => {
            tracing::debug!(target: "sluice::http", error = %e, "reading the request body failed");
            Err(Problem::new(Code::MalformedJson).detail("the request body could not be read"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t1_accepts_json_media_types_only() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
            "application/vnd.sluice+json",
            "application/cloudevents+json; charset=utf-8",
        ] {
            assert!(is_json_media_type(ok), "{ok}");
        }
        for bad in [
            "",
            "text/plain",
            "application/json; charset=latin1",
            "application/+json",
            "application/jsonx",
            "text/json",
            "multipart/form-data",
            "application/x-www-form-urlencoded",
        ] {
            assert!(!is_json_media_type(bad), "{bad}");
        }
    }
}
