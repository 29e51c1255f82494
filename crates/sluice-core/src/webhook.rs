//! Provider-signed webhooks (S-1, S-5): a delivery from Stripe, GitHub, Shopify, Slack, any
//! Standard Webhooks sender or a generic HMAC-SHA256 sender, verified exactly as each provider
//! documents it, over the raw body bytes, with a constant-time compare, then read for its event
//! type, delivery id and time.
//!
//! A source may hold several secrets at once (a rotation's overlap): a delivery passes when any of
//! them verifies it. Every failure to authenticate (no or bad signature, a stale or future
//! timestamp) is one [`WebhookError::Unauthenticated`], whose reason is for the log only, so a
//! caller cannot tell which check failed. Nothing here does I/O: the host hands in the secrets,
//! the headers (lower-case names, one value each) and the clock's reading.

use crate::event::EventType;
use crate::json::parse_strict;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Stripe's tolerance for `t=` in `Stripe-Signature`.
pub const STRIPE_TOLERANCE_SECS: i64 = 300;
/// The Standard Webhooks and Slack tolerance for their timestamps, either way.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 300;
/// The longest delivery id kept.
pub const MAX_DELIVERY_ID_LEN: usize = 256;

/// How a source's deliveries are signed. Stored as `{"kind": "stripe"}`, or with the generic
/// scheme's settings beside `"kind": "hmac-sha256"`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum SourceKind {
    /// `Stripe-Signature: t=…,v1=…`: HMAC-SHA256 of `t.body` keyed with the whole secret.
    Stripe,
    /// `X-Hub-Signature-256: sha256=<hex>` over the body.
    #[serde(rename = "github")]
    GitHub,
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64>` over `id.ts.body`,
    /// keyed with the base64 after the secret's `whsec_`.
    StandardWebhooks,
    /// `X-Shopify-Hmac-Sha256: <base64>` over the body.
    Shopify,
    /// `X-Slack-Signature: v0=<hex>` over `v0:<ts>:<body>`, `X-Slack-Request-Timestamp`.
    Slack,
    /// A generic scheme for every other sender.
    #[serde(rename = "hmac-sha256")]
    Hmac(HmacScheme),
}

/// The generic HMAC-SHA256 scheme, configured per source.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacScheme {
    /// The header carrying the signature (lower case).
    pub header: String,
    /// How the signature is written.
    pub encoding: SignatureEncoding,
    /// A prefix before the signature, such as `sha256=` (may be empty).
    #[serde(default)]
    pub prefix: String,
    /// A header carrying the Unix time the sender signed at; the signed text is then
    /// `<timestamp>.<body>`, and the time must be within `tolerance_secs` of now.
    #[serde(default)]
    pub timestamp_header: Option<String>,
    /// Tolerance for the timestamp, either way.
    #[serde(default = "default_tolerance")]
    pub tolerance_secs: i64,
    /// A header naming the delivery (lower case); without one, the body's SHA-256 names it.
    #[serde(default)]
    pub delivery_id_header: Option<String>,
    /// The type every delivery is stored as.
    pub event_type: EventType,
}

fn default_tolerance() -> i64 {
    TIMESTAMP_TOLERANCE_SECS
}

/// How a signature is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureEncoding {
    /// Lower- or upper-case hex.
    Hex,
    /// Standard base64.
    Base64,
}

/// A verified delivery, ready to be an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The event type derived from the delivery.
    pub event_type: EventType,
    /// The provider's id for the delivery: a retry carries the same one.
    pub delivery_id: String,
    /// The provider's time for the event, where it gives one.
    pub occurred_at: Option<OffsetDateTime>,
    /// The body, parsed (strictly).
    pub data: Value,
    /// Slack's `url_verification`: the challenge to answer instead of storing anything.
    pub challenge: Option<String>,
}

/// Why a delivery is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// Not from the source: the same answer (401) whatever the reason, which is for the log.
    #[error("the delivery is not authenticated ({0})")]
    Unauthenticated(&'static str),
    /// Authenticated, but not a body this kind of source sends.
    #[error("the delivery is malformed: {0}")]
    Malformed(String),
    /// The derived event type breaks the type rule.
    #[error("the delivery's event type {0:?} is not a valid event type")]
    InvalidType(String),
}

/// Verifies `body` as a delivery of a `kind` source signed with one of `secrets`, at `now`.
pub fn verify(
    kind: &SourceKind,
    secrets: &[&[u8]],
    headers: &BTreeMap<String, String>,
    body: &[u8],
    now: OffsetDateTime,
    max_depth: usize,
) -> Result<Verified, WebhookError> {
    let header = |name: &str| headers.get(name).map(String::as_str);
    match kind {
        SourceKind::Stripe => {
            let sig = header("stripe-signature").ok_or(WebhookError::Unauthenticated("no Stripe-Signature"))?;
            let mut timestamp = None;
            let mut candidates = Vec::new();
            for part in sig.split(',') {
                match part.trim().split_once('=') {
                    Some(("t", t)) => timestamp = Some(t),
                    Some(("v1", v)) => candidates.push(v),
                    _ => {}
                }
            }
            let t = timestamp.ok_or(WebhookError::Unauthenticated("no t= in Stripe-Signature"))?;
            check_time(t, now, STRIPE_TOLERANCE_SECS, true)?;
            let signed = [t.as_bytes(), b".", body].concat();
            any_matches(secrets, &signed, &candidates, SignatureEncoding::Hex)?;
            let data = parse(body, max_depth)?;
            Ok(Verified {
                event_type: typed("stripe.", string_at(&data, "type")?)?,
                delivery_id: delivery_id(string_at(&data, "id")?)?,
                occurred_at: data
                    .get("created")
                    .and_then(Value::as_i64)
                    .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok()),
                data,
                challenge: None,
            })
        }
        SourceKind::GitHub => {
            let sig = header("x-hub-signature-256").ok_or(WebhookError::Unauthenticated("no X-Hub-Signature-256"))?;
            let sig = sig
                .strip_prefix("sha256=")
                .ok_or(WebhookError::Unauthenticated("X-Hub-Signature-256 is not sha256="))?;
            any_matches(secrets, body, &[sig], SignatureEncoding::Hex)?;
            let event = header("x-github-event").ok_or_else(|| malformed("no X-GitHub-Event"))?;
            let id = header("x-github-delivery").ok_or_else(|| malformed("no X-GitHub-Delivery"))?;
            let data = parse(body, max_depth)?;
            let name = match data.get("action").and_then(Value::as_str) {
                Some(action) => format!("{event}.{action}"),
                None => event.to_owned(),
            };
            Ok(Verified {
                event_type: typed("github.", &name)?,
                delivery_id: delivery_id(id)?,
                occurred_at: None,
                data,
                challenge: None,
            })
        }
        SourceKind::StandardWebhooks => {
            let id = header("webhook-id").ok_or(WebhookError::Unauthenticated("no webhook-id"))?;
            let t = header("webhook-timestamp").ok_or(WebhookError::Unauthenticated("no webhook-timestamp"))?;
            let sig = header("webhook-signature").ok_or(WebhookError::Unauthenticated("no webhook-signature"))?;
            check_time(t, now, TIMESTAMP_TOLERANCE_SECS, false)?;
            let candidates: Vec<&str> = sig.split(' ').filter_map(|s| s.strip_prefix("v1,")).collect();
            let keys: Vec<Vec<u8>> = secrets
                .iter()
                .filter_map(|s| {
                    let s = std::str::from_utf8(s).ok()?;
                    BASE64.decode(s.strip_prefix("whsec_").unwrap_or(s)).ok()
                })
                .collect();
            let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            let signed = [id.as_bytes(), b".", t.as_bytes(), b".", body].concat();
            any_matches(&keys, &signed, &candidates, SignatureEncoding::Base64)?;
            let data = parse(body, max_depth)?;
            Ok(Verified {
                event_type: typed("", string_at(&data, "type")?)?,
                delivery_id: delivery_id(id)?,
                occurred_at: data
                    .get("timestamp")
                    .and_then(Value::as_str)
                    .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok()),
                data,
                challenge: None,
            })
        }
        SourceKind::Shopify => {
            let sig =
                header("x-shopify-hmac-sha256").ok_or(WebhookError::Unauthenticated("no X-Shopify-Hmac-Sha256"))?;
            any_matches(secrets, body, &[sig], SignatureEncoding::Base64)?;
            let topic = header("x-shopify-topic").ok_or_else(|| malformed("no X-Shopify-Topic"))?;
            let id = header("x-shopify-webhook-id").ok_or_else(|| malformed("no X-Shopify-Webhook-Id"))?;
            let data = parse(body, max_depth)?;
            Ok(Verified {
                event_type: typed("shopify.", &topic.replace('/', "."))?,
                delivery_id: delivery_id(id)?,
                occurred_at: header("x-shopify-triggered-at").and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok()),
                data,
                challenge: None,
            })
        }
        SourceKind::Slack => {
            let sig = header("x-slack-signature").ok_or(WebhookError::Unauthenticated("no X-Slack-Signature"))?;
            let t = header("x-slack-request-timestamp")
                .ok_or(WebhookError::Unauthenticated("no X-Slack-Request-Timestamp"))?;
            check_time(t, now, TIMESTAMP_TOLERANCE_SECS, false)?;
            let sig = sig
                .strip_prefix("v0=")
                .ok_or(WebhookError::Unauthenticated("X-Slack-Signature is not v0="))?;
            let signed = [b"v0:", t.as_bytes(), b":", body].concat();
            any_matches(secrets, &signed, &[sig], SignatureEncoding::Hex)?;
            let data = parse(body, max_depth)?;
            if data.get("type").and_then(Value::as_str) == Some("url_verification") {
                let challenge = string_at(&data, "challenge")?.to_owned();
                return Ok(Verified {
                    event_type: typed("slack.", "url_verification")?,
                    delivery_id: delivery_id(&body_digest(body))?,
                    occurred_at: None,
                    data,
                    challenge: Some(challenge),
                });
            }
            let inner = data
                .get("event")
                .and_then(|e| e.get("type"))
                .and_then(Value::as_str)
                .ok_or_else(|| malformed("no event.type"))?
                .to_owned();
            Ok(Verified {
                event_type: typed("slack.", &inner)?,
                delivery_id: delivery_id(string_at(&data, "event_id")?)?,
                occurred_at: data
                    .get("event_time")
                    .and_then(Value::as_i64)
                    .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok()),
                data,
                challenge: None,
            })
        }
        SourceKind::Hmac(scheme) => {
            let sig = header(&scheme.header).ok_or(WebhookError::Unauthenticated("no signature header"))?;
            let sig = sig
                .strip_prefix(scheme.prefix.as_str())
                .ok_or(WebhookError::Unauthenticated("the signature lacks its prefix"))?;
            let signed = match &scheme.timestamp_header {
                Some(name) => {
                    let t = header(name).ok_or(WebhookError::Unauthenticated("no timestamp header"))?;
                    check_time(t, now, scheme.tolerance_secs, false)?;
                    [t.as_bytes(), b".", body].concat()
                }
                None => body.to_vec(),
            };
            any_matches(secrets, &signed, &[sig], scheme.encoding)?;
            let id = match &scheme.delivery_id_header {
                Some(name) => header(name)
                    .ok_or_else(|| malformed("no delivery id header"))?
                    .to_owned(),
                None => body_digest(body),
            };
            Ok(Verified {
                event_type: scheme.event_type.clone(),
                delivery_id: delivery_id(&id)?,
                occurred_at: None,
                data: parse(body, max_depth)?,
                challenge: None,
            })
        }
    }
}

fn malformed(what: &str) -> WebhookError {
    WebhookError::Malformed(what.to_owned())
}

fn parse(body: &[u8], max_depth: usize) -> Result<Value, WebhookError> {
    parse_strict(body, max_depth).map_err(|e| WebhookError::Malformed(e.to_string()))
}

fn string_at<'v>(data: &'v Value, key: &str) -> Result<&'v str, WebhookError> {
    data.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| WebhookError::Malformed(format!("no string {key:?} in the body")))
}

fn typed(prefix: &str, name: &str) -> Result<EventType, WebhookError> {
    let full = format!("{prefix}{name}");
    EventType::parse(&full).map_err(|_| WebhookError::InvalidType(full))
}

fn delivery_id(id: &str) -> Result<String, WebhookError> {
    let ok = !id.is_empty() && id.len() <= MAX_DELIVERY_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| id.to_owned())
        .ok_or_else(|| malformed("the delivery id is not 1 to 256 visible ASCII characters"))
}

fn body_digest(body: &[u8]) -> String {
    crate::text::hex_digest(&Sha256::digest(body))
}

/// A Unix-seconds timestamp within `tolerance` of `now`; `past_only` allows any future skew
/// (Stripe checks only age).
fn check_time(t: &str, now: OffsetDateTime, tolerance: i64, past_only: bool) -> Result<(), WebhookError> {
    let t: i64 = t
        .trim()
        .parse()
        .map_err(|_| WebhookError::Unauthenticated("the timestamp is not a number"))?;
    let age = now.unix_timestamp().saturating_sub(t);
    if age > tolerance {
        return Err(WebhookError::Unauthenticated("the timestamp is stale"));
    }
    if !past_only && -age > tolerance {
        return Err(WebhookError::Unauthenticated("the timestamp is in the future"));
    }
    Ok(())
}

/// Whether one of `candidates` is the HMAC-SHA256 of `signed` under one of `secrets`,
/// compared in constant time.
fn any_matches(
    secrets: &[&[u8]],
    signed: &[u8],
    candidates: &[&str],
    encoding: SignatureEncoding,
) -> Result<(), WebhookError> {
    let presented: Vec<Vec<u8>> = candidates
        .iter()
        .filter_map(|c| match encoding {
            SignatureEncoding::Hex => hex::decode(c.trim()).ok(),
            SignatureEncoding::Base64 => BASE64.decode(c.trim()).ok(),
        })
        .collect();
    let mut matched = false;
    for secret in secrets {
        let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(secret) else {
            continue;
        };
        mac.update(signed);
        let expected = mac.finalize().into_bytes();
        for p in &presented {
            // Every pair is compared, so the time taken does not say which secret matched.
            matched |= bool::from(expected.as_slice().ct_eq(p.as_slice()));
        }
    }
    if matched {
        Ok(())
    } else {
        Err(WebhookError::Unauthenticated("no secret verifies the signature"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn at(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(secs).unwrap()
    }

    fn hmac_hex(secret: &[u8], signed: &[u8]) -> String {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap();
        m.update(signed);
        hex::encode(m.finalize().into_bytes())
    }

    #[test]
    fn s1_github_documented_example_verifies_and_a_changed_byte_does_not() {
        // GitHub's "Validating webhook deliveries" test values.
        let secret: &[u8] = b"It's a Secret to Everybody";
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let h = |sig: &str| {
            headers(&[
                ("x-hub-signature-256", sig),
                ("x-github-event", "ping"),
                ("x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
            ])
        };
        // The documented payload is not JSON: the signature verifies, then the body is refused.
        assert_eq!(
            verify(&SourceKind::GitHub, &[secret], &h(sig), b"Hello, World!", at(0), 32),
            Err(WebhookError::Malformed(
                "the body is not valid JSON (line 1, column 1)".into()
            ))
        );
        assert!(matches!(
            verify(&SourceKind::GitHub, &[secret], &h(sig), b"Hello, World?", at(0), 32),
            Err(WebhookError::Unauthenticated(_))
        ));
        let body = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
        let ok = format!("sha256={}", hmac_hex(secret, body));
        let v = verify(&SourceKind::GitHub, &[b"old", secret], &h(&ok), body, at(0), 32).unwrap();
        assert_eq!(v.event_type.as_str(), "github.ping");
        assert_eq!(v.delivery_id, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    }

    #[test]
    fn s1_standard_webhooks_reference_vector_verifies_within_five_minutes() {
        // The Standard Webhooks reference libraries' test vector.
        let secret: &[u8] = b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let h = headers(&[
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("webhook-timestamp", "1614265330"),
            (
                "webhook-signature",
                "v1,bad v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
        ]);
        // Verified; the vector's body has no `type`, which a stored event needs.
        assert_eq!(
            verify(
                &SourceKind::StandardWebhooks,
                &[secret],
                &h,
                body,
                at(1_614_265_330 + 299),
                32
            ),
            Err(WebhookError::Malformed("no string \"type\" in the body".into()))
        );
        for (now, why) in [(1_614_265_330 + 301, "stale"), (1_614_265_330 - 301, "future")] {
            assert!(
                matches!(
                    verify(&SourceKind::StandardWebhooks, &[secret], &h, body, at(now), 32),
                    Err(WebhookError::Unauthenticated(_))
                ),
                "{why}"
            );
        }
        assert!(matches!(
            verify(
                &SourceKind::StandardWebhooks,
                &[secret],
                &h,
                br#"{"test": 2432232315}"#,
                at(1_614_265_330),
                32
            ),
            Err(WebhookError::Unauthenticated(_))
        ));
    }

    #[test]
    fn s5_stripe_checks_the_timestamp_and_any_v1() {
        let secret: &[u8] = b"whsec_test_secret";
        let body = br#"{"id":"evt_1","type":"invoice.paid","created":1700000000}"#;
        let t = 1_700_000_100;
        let good = hmac_hex(secret, &[format!("{t}.").as_bytes(), body].concat());
        let h = headers(&[("stripe-signature", &format!("t={t},v1=00ff,v1={good},v0=abc"))]);
        let v = verify(&SourceKind::Stripe, &[secret], &h, body, at(t + 10), 32).unwrap();
        assert_eq!(v.event_type.as_str(), "stripe.invoice.paid");
        assert_eq!(v.delivery_id, "evt_1");
        assert_eq!(v.occurred_at, Some(at(1_700_000_000)));
        assert!(
            verify(
                &SourceKind::Stripe,
                &[secret],
                &h,
                body,
                at(t + STRIPE_TOLERANCE_SECS + 1),
                32
            )
            .is_err()
        );
        assert!(verify(&SourceKind::Stripe, &[b"rotated-away"], &h, body, at(t), 32).is_err());
    }

    #[test]
    fn s1_shopify_and_slack_verify_and_slack_answers_its_challenge() {
        let secret: &[u8] = b"hush";
        let body = br#"{"id":1}"#;
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap();
        m.update(body);
        let sig = BASE64.encode(m.finalize().into_bytes());
        let h = headers(&[
            ("x-shopify-hmac-sha256", &sig),
            ("x-shopify-topic", "orders/create"),
            ("x-shopify-webhook-id", "b54557e4"),
        ]);
        let v = verify(&SourceKind::Shopify, &[secret], &h, body, at(0), 32).unwrap();
        assert_eq!(v.event_type.as_str(), "shopify.orders.create");

        let t = "1700000000";
        let slack = |body: &[u8]| {
            let sig = format!("v0={}", hmac_hex(secret, &[b"v0:", t.as_bytes(), b":", body].concat()));
            headers(&[("x-slack-signature", &sig), ("x-slack-request-timestamp", t)])
        };
        let challenge = br#"{"type":"url_verification","challenge":"3eZbrw1aB"}"#;
        let v = verify(
            &SourceKind::Slack,
            &[secret],
            &slack(challenge),
            challenge,
            at(1_700_000_000),
            32,
        )
        .unwrap();
        assert_eq!(v.challenge.as_deref(), Some("3eZbrw1aB"));
        let event =
            br#"{"type":"event_callback","event_id":"Ev1","event_time":1700000000,"event":{"type":"app_mention"}}"#;
        let v = verify(
            &SourceKind::Slack,
            &[secret],
            &slack(event),
            event,
            at(1_700_000_000),
            32,
        )
        .unwrap();
        assert_eq!(
            (v.event_type.as_str(), v.delivery_id.as_str()),
            ("slack.app_mention", "Ev1")
        );
        assert!(
            verify(
                &SourceKind::Slack,
                &[secret],
                &slack(event),
                event,
                at(1_700_000_301),
                32
            )
            .is_err()
        );
    }

    #[test]
    fn s1_generic_hmac_with_a_timestamp_and_an_invalid_derived_type() {
        let scheme = HmacScheme {
            header: "x-signature".into(),
            encoding: SignatureEncoding::Hex,
            prefix: "sha256=".into(),
            timestamp_header: Some("x-timestamp".into()),
            tolerance_secs: 60,
            delivery_id_header: None,
            event_type: EventType::parse("partner.event").unwrap(),
        };
        let body = br#"{"a":1}"#;
        let sig = format!("sha256={}", hmac_hex(b"k", &[b"100.", &body[..]].concat()));
        let h = headers(&[("x-signature", &sig), ("x-timestamp", "100")]);
        let v = verify(&SourceKind::Hmac(scheme.clone()), &[b"k"], &h, body, at(120), 32).unwrap();
        assert_eq!(v.delivery_id.len(), 64, "the body's digest names the delivery");
        assert!(verify(&SourceKind::Hmac(scheme), &[b"k"], &h, body, at(161), 32).is_err());

        let body = br#"{"id":"evt_2","type":"Invoice.Paid"}"#;
        let t = 1_700_000_000;
        let good = hmac_hex(b"s", &[format!("{t}.").as_bytes(), body].concat());
        let h = headers(&[("stripe-signature", &format!("t={t},v1={good}"))]);
        assert_eq!(
            verify(&SourceKind::Stripe, &[b"s"], &h, body, at(t), 32),
            Err(WebhookError::InvalidType("stripe.Invoice.Paid".into()))
        );
    }
}
