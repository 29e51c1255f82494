//! Reading a request body safely (T-1): the media type is checked first, then the body is read
//! through a byte limit, so an oversized body is refused after at most `limit` bytes whether its
//! `Content-Length` is honest, lies, or is absent (chunked), and within a time limit, so a client
//! trickling its body cannot hold a request slot for ever (D-2).
//!
//! A body refused as too large is not simply dropped: many clients (Python's `urllib`, most
//! telemetry SDKs) write the whole body before they read the answer, and a server that answers
//! and closes while they are still writing makes the kernel reset the connection, so they see a
//! broken pipe, not the 413, and retry. Like nginx's `lingering_close`, the rest of the body is
//! read and discarded first, up to [`LINGER_BYTES`] and [`LINGER_TIME`], so the bound on what a
//! client can make the server read stays small (D-2). A client that asked `Expect: 100-continue`
//! has sent nothing yet and gets its 413 at once.

use crate::problem::{Code, Problem};
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use http_body_util::BodyExt;
use std::time::Duration;

/// The most of a refused body read and discarded before its 413 (see the module docs).
pub(crate) const LINGER_BYTES: u64 = 16 * 1024 * 1024;
/// The longest a refused body is read before its 413.
pub(crate) const LINGER_TIME: Duration = Duration::from_secs(5);

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
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    let ct = types.next().ok_or_else(unsupported)?;
    // Content-Type is single-valued: with two, a proxy and Sluice could each believe another.
    if types.next().is_some() {
        return Err(Problem::new(Code::InvalidHeader).detail("send exactly one Content-Type header"));
    }
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
            if !expects_continue(headers) {
                linger(body).await;
            }
            return Err(too_large(limit));
        }
    }
    let read = read_up_to(body, limit);
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
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(too_large(limit)),
        Err(e) => {
            tracing::debug!(target: "sluice::http", error = %e, "reading the request body failed");
            Err(Problem::new(Code::MalformedJson).detail("the request body could not be read"))
        }
    }
}

/// The body if it has at most `limit` bytes; `None` (after [`linger`]) once it passes them.
async fn read_up_to(mut body: Body, limit: usize) -> Result<Option<Bytes>, axum::Error> {
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        len += data.len();
        if len > limit {
            linger(body).await;
            return Ok(None);
        }
        chunks.push(data);
    }
    // Most bodies arrive in one chunk, which is returned without a copy.
    Ok(Some(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => Bytes::from(chunks.concat()),
    }))
}

/// Whether the client waits for `100 Continue` before sending its body.
fn expects_continue(headers: &HeaderMap) -> bool {
    headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Reads and discards what is left of `body`, at most [`LINGER_BYTES`] for at most
/// [`LINGER_TIME`], so a client that writes before it reads gets to read its answer.
async fn linger(mut body: Body) {
    let drain = async {
        let mut read = 0u64;
        while read < LINGER_BYTES {
            match body.frame().await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len() as u64),
                Some(Err(_)) | None => break,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, drain).await;
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
