//! Provider-signed webhook deliveries for tests and benchmarks: the headers each provider sends,
//! signed exactly as the provider documents it, so every host's tests sign the same way.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// HMAC-SHA256 of `signed` under `key`.
pub fn hmac_sha256(key: &[u8], signed: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(signed);
    m.finalize().into_bytes().to_vec()
}

/// Stripe: `Stripe-Signature: t=<t>,v1=<hex HMAC of "t.body" under the whole secret>`.
pub fn stripe(secret: &str, t: i64, body: &str) -> Vec<(&'static str, String)> {
    let sig = hex::encode(hmac_sha256(secret.as_bytes(), format!("{t}.{body}").as_bytes()));
    vec![("stripe-signature", format!("t={t},v1={sig}"))]
}

/// GitHub: `X-Hub-Signature-256: sha256=<hex>`, the event name and the delivery id.
pub fn github(secret: &str, event: &str, delivery: &str, body: &str) -> Vec<(&'static str, String)> {
    let sig = hex::encode(hmac_sha256(secret.as_bytes(), body.as_bytes()));
    vec![
        ("x-hub-signature-256", format!("sha256={sig}")),
        ("x-github-event", event.to_owned()),
        ("x-github-delivery", delivery.to_owned()),
    ]
}

/// Standard Webhooks: `webhook-id`, `webhook-timestamp` and `webhook-signature: v1,<base64>` over
/// `id.t.body`, keyed with the base64 after `whsec_`.
pub fn standard_webhooks(whsec: &str, id: &str, t: i64, body: &str) -> Vec<(&'static str, String)> {
    let key = STANDARD
        .decode(whsec.trim_start_matches("whsec_"))
        .expect("a whsec_ secret is base64");
    let sig = STANDARD.encode(hmac_sha256(&key, format!("{id}.{t}.{body}").as_bytes()));
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", t.to_string()),
        ("webhook-signature", format!("v1,{sig}")),
    ]
}

/// Shopify: `X-Shopify-Hmac-Sha256: <base64>`, the topic and the webhook id.
pub fn shopify(secret: &str, topic: &str, id: &str, body: &str) -> Vec<(&'static str, String)> {
    let sig = STANDARD.encode(hmac_sha256(secret.as_bytes(), body.as_bytes()));
    vec![
        ("x-shopify-hmac-sha256", sig),
        ("x-shopify-topic", topic.to_owned()),
        ("x-shopify-webhook-id", id.to_owned()),
    ]
}

/// Slack: `X-Slack-Signature: v0=<hex>` over `v0:<t>:<body>`, and the timestamp.
pub fn slack(secret: &str, t: i64, body: &str) -> Vec<(&'static str, String)> {
    let sig = hex::encode(hmac_sha256(secret.as_bytes(), format!("v0:{t}:{body}").as_bytes()));
    vec![
        ("x-slack-signature", format!("v0={sig}")),
        ("x-slack-request-timestamp", t.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_matches_its_documented_example() {
        // docs.github.com, "Validating webhook deliveries".
        let h = github("It's a Secret to Everybody", "ping", "d", "Hello, World!");
        assert_eq!(
            h[0].1,
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }
}
