//! JWT bearer tokens from an OIDC issuer (S-1, "Cognito user pools for user-facing APIs").
//!
//! A user-facing client presents an ID token (or an access token) signed by the issuer; Sluice checks it
//! against the issuer's public JWKS and takes the tenant from a configured claim. The same verifier runs
//! in the Lambda authorizer (the JWKS of a Cognito user pool) and in `sluice serve` (a JWKS file).
//!
//! What is checked, and why each check exists:
//! - the algorithm is on an allow-list of *asymmetric* algorithms, and must suit the key the `kid` names:
//!   `alg: none` never parses, and an `HS256` token "signed" with the public key (algorithm confusion)
//!   never reaches a verifier, because HMAC is refused in configuration and symmetric JWKs are dropped;
//! - the `kid` names a key of the configured JWKS (no key is tried "just in case");
//! - the signature, then `iss` (exact), `aud` (one of the configured audiences; a Cognito access token
//!   has no `aud` and carries `client_id` instead), `exp` (required) and `nbf`, with a small leeway, against
//!   an injectable [`Clock`];
//! - `sub` is present, and the tenant claim parses as a [`Tenant`].
//!
//! Every refusal is [`AuthError::Invalid`] to the caller; the reason goes to the log, never the token.

use crate::clock::{Clock, SystemClock};
use crate::keys::{AuthError, Principal};
use crate::tenant::Tenant;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

pub use jsonwebtoken::Algorithm as JwtAlgorithm;

/// The tenant claim used when none is configured: a Cognito custom attribute.
pub const DEFAULT_TENANT_CLAIM: &str = "custom:tenant";
/// Clock skew tolerated on `exp` and `nbf` when none is configured.
pub const DEFAULT_LEEWAY_SECS: u64 = 30;
/// The largest leeway accepted: more would make expiry meaningless.
pub const MAX_LEEWAY_SECS: u64 = 300;
/// Tokens longer than this are refused before any parsing (an ID token is 1–2 KiB).
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Why an OIDC configuration or a JWKS cannot be used. These are operator errors, found at start-up.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OidcError {
    /// The issuer is empty.
    #[error("the OIDC issuer is empty")]
    MissingIssuer,
    /// No audience is configured: a token for any client of the issuer would pass.
    #[error("at least one OIDC audience (client id) is required")]
    MissingAudience,
    /// The tenant claim name is empty.
    #[error("the OIDC tenant claim name is empty")]
    MissingTenantClaim,
    /// No algorithm is allowed.
    #[error("at least one JWT algorithm must be allowed")]
    NoAlgorithms,
    /// An algorithm that is unknown, or symmetric (`HS*`: a public JWKS cannot carry its secret).
    #[error("JWT algorithm {0:?} is not allowed: use an asymmetric one (RS*, PS*, ES*, EdDSA)")]
    UnsupportedAlgorithm(String),
    /// The leeway is not a number of seconds, or is larger than [`MAX_LEEWAY_SECS`].
    #[error("the JWT leeway must be 0 to {MAX_LEEWAY_SECS} seconds")]
    InvalidLeeway,
    /// The JWKS is not a JSON object with a `keys` array.
    #[error("the JWKS is not valid: {0}")]
    InvalidJwks(String),
    /// The JWKS holds no key that can verify an allowed algorithm.
    #[error("the JWKS has no usable signing key for the allowed algorithms")]
    NoUsableKeys,
}

/// How to check tokens from one OIDC issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    /// The exact `iss` claim expected, e.g. `https://cognito-idp.<region>.amazonaws.com/<pool id>`.
    pub issuer: String,
    /// Accepted `aud` values (for Cognito, the app client ids).
    pub audiences: Vec<String>,
    /// The claim holding the tenant name, e.g. `custom:tenant`.
    pub tenant_claim: String,
    /// Allowed signing algorithms; asymmetric only.
    pub algorithms: Vec<Algorithm>,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    pub leeway_secs: u64,
}

impl OidcConfig {
    /// A configuration with the default tenant claim, `RS256` and the default leeway.
    pub fn new(issuer: impl Into<String>, audiences: Vec<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audiences,
            tenant_claim: DEFAULT_TENANT_CLAIM.to_owned(),
            algorithms: vec![Algorithm::RS256],
            leeway_secs: DEFAULT_LEEWAY_SECS,
        }
    }

    /// Checks the configuration is safe to use; [`JwtVerifier::new`] calls it too.
    pub fn validate(&self) -> Result<(), OidcError> {
        if self.issuer.trim().is_empty() {
            return Err(OidcError::MissingIssuer);
        }
        if self.audiences.iter().all(|a| a.trim().is_empty()) {
            return Err(OidcError::MissingAudience);
        }
        if self.tenant_claim.is_empty() {
            return Err(OidcError::MissingTenantClaim);
        }
        if self.algorithms.is_empty() {
            return Err(OidcError::NoAlgorithms);
        }
        if let Some(alg) = self.algorithms.iter().find(|a| is_symmetric(**a)) {
            return Err(OidcError::UnsupportedAlgorithm(format!("{alg:?}")));
        }
        if self.leeway_secs > MAX_LEEWAY_SECS {
            return Err(OidcError::InvalidLeeway);
        }
        Ok(())
    }
}

/// Parses algorithm names (`RS256`, `PS256`, `ES256`, …), refusing unknown and symmetric ones.
pub fn parse_algorithms<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Result<Vec<Algorithm>, OidcError> {
    let mut out = Vec::new();
    for name in names {
        let name = name.as_ref().trim();
        let alg: Algorithm = name
            .parse()
            .map_err(|_| OidcError::UnsupportedAlgorithm(name.to_owned()))?;
        if is_symmetric(alg) {
            return Err(OidcError::UnsupportedAlgorithm(name.to_owned()));
        }
        if !out.contains(&alg) {
            out.push(alg);
        }
    }
    if out.is_empty() {
        return Err(OidcError::NoAlgorithms);
    }
    Ok(out)
}

fn is_symmetric(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// Whether a bearer token has the shape of a compact JWS (`header.payload.signature`, base64url, the
/// header a JSON object). API keys (`key_<ulid>.<secret>`) never do, so the two can share one header.
pub fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let b64url = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    // `eyJ` is base64 for `{"`: every JOSE header starts so.
    header.starts_with("eyJ") && !payload.is_empty() && b64url(header) && b64url(payload) && b64url(signature)
}

/// One verification key from the JWKS and the algorithms it may verify.
struct VerifyKey {
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
}

/// Verifies JWTs from one issuer against its JWKS. Build once at start-up; verification is CPU only.
pub struct JwtVerifier {
    config: OidcConfig,
    keys: HashMap<String, VerifyKey>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.config.issuer)
            .field("audiences", &self.config.audiences)
            .field("kids", &kids)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused; for the log only (the client sees [`AuthError::Invalid`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    TooLong,
    Malformed,
    AlgorithmNotAllowed,
    MissingKid,
    UnknownKid,
    BadSignature,
    WrongIssuer,
    WrongAudience,
    MissingExpiry,
    Expired,
    NotYetValid,
    MissingSubject,
    MissingTenant,
    InvalidTenant,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Self::TooLong => "token too long",
            Self::Malformed => "malformed token or header",
            Self::AlgorithmNotAllowed => "algorithm not allowed for this key",
            Self::MissingKid => "no kid in header",
            Self::UnknownKid => "kid not in the JWKS",
            Self::BadSignature => "signature does not verify",
            Self::WrongIssuer => "wrong issuer",
            Self::WrongAudience => "wrong audience",
            Self::MissingExpiry => "no exp claim",
            Self::Expired => "expired",
            Self::NotYetValid => "not yet valid (nbf)",
            Self::MissingSubject => "no sub claim",
            Self::MissingTenant => "no tenant claim",
            Self::InvalidTenant => "tenant claim is not a valid tenant",
        }
    }
}

impl JwtVerifier {
    /// A verifier for `config` trusting the signing keys of `jwks_json` (`{"keys": [...]}`).
    ///
    /// Keys that cannot verify any allowed algorithm are dropped with a warning: encryption keys
    /// (`use: enc`), keys without a `kid`, symmetric (`oct`) keys, keys whose `alg` is not allowed,
    /// keys of an unknown type. No usable key left is an error.
    pub fn new(config: OidcConfig, jwks_json: &str) -> Result<Self, OidcError> {
        config.validate()?;
        let doc: Value = serde_json::from_str(jwks_json).map_err(|e| OidcError::InvalidJwks(e.to_string()))?;
        let entries = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| OidcError::InvalidJwks("no \"keys\" array".to_owned()))?;
        let mut keys = HashMap::new();
        for entry in entries {
            let kid = entry.get("kid").and_then(Value::as_str).unwrap_or("");
            match usable_key(&config, entry) {
                Ok((kid, key)) => match keys.entry(kid) {
                    std::collections::hash_map::Entry::Occupied(e) => {
                        tracing::warn!(kid = %e.key(), "JWKS: duplicate kid, keeping the first");
                    }
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(key);
                    }
                },
                Err(why) => tracing::warn!(kid = %kid, reason = why, "JWKS: key ignored"),
            }
        }
        if keys.is_empty() {
            return Err(OidcError::NoUsableKeys);
        }
        Ok(Self {
            config,
            keys,
            clock: Arc::new(SystemClock),
        })
    }

    /// The same verifier reading time from `clock` (tests pin it).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The configuration in force.
    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// The key ids trusted, sorted.
    pub fn key_ids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.keys.keys().cloned().collect();
        kids.sort();
        kids
    }

    /// Checks a presented token; on success, who it speaks for (`key_id` is `jwt:<sub>`, the
    /// throttling bucket).
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.check(token).map_err(|why| {
            tracing::info!(reason = why.as_str(), issuer = %self.config.issuer, "JWT refused");
            AuthError::Invalid
        })
    }

    fn check(&self, token: &str) -> Result<Principal, Refusal> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Refusal::TooLong);
        }
        // `alg: none` and unknown algorithms fail here: they are not variants of `Algorithm`.
        let header = jsonwebtoken::decode_header(token).map_err(|_| Refusal::Malformed)?;
        if !self.config.algorithms.contains(&header.alg) {
            return Err(Refusal::AlgorithmNotAllowed);
        }
        let kid = header.kid.as_deref().ok_or(Refusal::MissingKid)?;
        let key = self.keys.get(kid).ok_or(Refusal::UnknownKid)?;
        if !key.algorithms.contains(&header.alg) {
            return Err(Refusal::AlgorithmNotAllowed);
        }
        // The library checks the signature and the algorithm/key pairing; the claims are checked below
        // against our clock, so its own time and claim checks are off.
        let mut validation = Validation::new(header.alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation).map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => Refusal::BadSignature,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => Refusal::AlgorithmNotAllowed,
                _ => Refusal::Malformed,
            })?;
        self.check_claims(&data.claims)
    }

    fn check_claims(&self, claims: &Map<String, Value>) -> Result<Principal, Refusal> {
        if claims.get("iss").and_then(Value::as_str) != Some(self.config.issuer.as_str()) {
            return Err(Refusal::WrongIssuer);
        }
        let accepted = |v: &str| self.config.audiences.iter().any(|a| a == v);
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => accepted(aud),
            Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(accepted),
            // A Cognito access token names its app client in `client_id` and has no `aud`.
            None => claims.get("client_id").and_then(Value::as_str).is_some_and(accepted),
            Some(_) => false,
        };
        if !audience_ok {
            return Err(Refusal::WrongAudience);
        }
        let now = self.clock.now().unix_timestamp() as f64;
        let leeway = self.config.leeway_secs as f64;
        let exp = claims
            .get("exp")
            .and_then(Value::as_f64)
            .ok_or(Refusal::MissingExpiry)?;
        if now >= exp + leeway {
            return Err(Refusal::Expired);
        }
        match claims.get("nbf") {
            None => {}
            Some(nbf) => {
                let nbf = nbf.as_f64().ok_or(Refusal::Malformed)?;
                if now + leeway < nbf {
                    return Err(Refusal::NotYetValid);
                }
            }
        }
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or(Refusal::MissingSubject)?;
        let tenant = claims
            .get(&self.config.tenant_claim)
            .ok_or(Refusal::MissingTenant)?
            .as_str()
            .ok_or(Refusal::InvalidTenant)?;
        let tenant = Tenant::parse(tenant).map_err(|_| Refusal::InvalidTenant)?;
        Ok(Principal {
            tenant,
            key_id: subject_key_id(sub),
        })
    }
}

/// `jwt:<sub>` when `sub` is short and plain (Cognito's are UUIDs); otherwise a hash of it, so the id
/// stays safe to log and bounded in size. Also what a JWT verified by API Gateway's own JWT
/// authorizer becomes, so a subject has one key id on every host.
pub fn subject_key_id(sub: &str) -> String {
    let plain = sub.len() <= 128
        && sub
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b':' | b'|'));
    if plain {
        format!("jwt:{sub}")
    } else {
        format!("jwt:sha256:{}", &hex::encode(Sha256::digest(sub.as_bytes()))[..32])
    }
}

fn usable_key(config: &OidcConfig, entry: &Value) -> Result<(String, VerifyKey), &'static str> {
    let jwk: Jwk = serde_json::from_value(entry.clone()).map_err(|_| "unsupported or malformed JWK")?;
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return Err("not a signing key (use != sig)");
    }
    let kid = jwk.common.key_id.clone().filter(|k| !k.is_empty()).ok_or("no kid")?;
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => jsonwebtoken::AlgorithmFamily::Rsa,
        AlgorithmParameters::EllipticCurve(_) => jsonwebtoken::AlgorithmFamily::Ec,
        AlgorithmParameters::OctetKeyPair(_) => jsonwebtoken::AlgorithmFamily::Ed,
        // A shared secret published in a JWKS is no secret: never verify with it.
        AlgorithmParameters::OctetKey(_) => return Err("symmetric key"),
    };
    let pinned = match jwk.common.key_algorithm {
        Some(a) => Some(
            a.to_string()
                .parse::<Algorithm>()
                .map_err(|_| "key alg is not a JWS algorithm")?,
        ),
        None => None,
    };
    let algorithms: Vec<Algorithm> = config
        .algorithms
        .iter()
        .copied()
        .filter(|a| a.family() == family && pinned.is_none_or(|p| p == *a))
        .collect();
    if algorithms.is_empty() {
        return Err("key cannot verify any allowed algorithm");
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| "key material is invalid")?;
    Ok((kid, VerifyKey { key, algorithms }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use base64::Engine as _;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;
    use time::OffsetDateTime;

    const RSA1: &[u8] = include_bytes!("../testdata/oidc/rsa1.pem");
    const RSA1_PUB: &[u8] = include_bytes!("../testdata/oidc/rsa1.pub.pem");
    const RSA2: &[u8] = include_bytes!("../testdata/oidc/rsa2.pem");
    const JWKS: &str = include_str!("../testdata/oidc/jwks.json");
    const ISS: &str = "https://issuer.test/pool";
    const NOW: i64 = 1_800_000_000;

    fn config() -> OidcConfig {
        OidcConfig::new(ISS, vec!["client-a".to_owned(), "client-b".to_owned()])
    }

    fn verifier() -> JwtVerifier {
        verifier_for(config(), JWKS)
    }

    fn verifier_for(config: OidcConfig, jwks: &str) -> JwtVerifier {
        let clock = ManualClock::new(OffsetDateTime::from_unix_timestamp(NOW).unwrap());
        JwtVerifier::new(config, jwks).unwrap().with_clock(Arc::new(clock))
    }

    fn claims() -> Value {
        json!({
            "iss": ISS, "aud": "client-a", "sub": "0f5e2c9a-user", "exp": NOW + 600, "iat": NOW - 10,
            "custom:tenant": "acme", "token_use": "id",
        })
    }

    fn sign_with(alg: Algorithm, kid: Option<&str>, pem: &[u8], claims: &Value) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_pem(pem).unwrap()).unwrap()
    }

    fn sign(claims: &Value) -> String {
        sign_with(Algorithm::RS256, Some("test-key-1"), RSA1, claims)
    }

    fn with(mut c: Value, key: &str, v: Value) -> Value {
        c[key] = v;
        c
    }

    fn without(mut c: Value, key: &str) -> Value {
        c.as_object_mut().unwrap().remove(key);
        c
    }

    fn refused(v: &JwtVerifier, token: &str) -> bool {
        matches!(v.verify(token), Err(AuthError::Invalid))
    }

    fn b64(v: &Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    #[test]
    fn s1_valid_jwt_yields_its_tenant_and_a_subject_key_id() {
        let v = verifier();
        let p = v.verify(&sign(&claims())).unwrap();
        assert_eq!(p.tenant.as_str(), "acme");
        assert_eq!(p.key_id, "jwt:0f5e2c9a-user");
        // An `aud` array passes when one member is accepted; a Cognito access token passes on `client_id`.
        let many = with(claims(), "aud", json!(["other", "client-b"]));
        assert!(v.verify(&sign(&many)).is_ok());
        let access = with(without(claims(), "aud"), "client_id", json!("client-b"));
        assert!(v.verify(&sign(&access)).is_ok());
        // A subject that is not plain is hashed into a bounded id.
        let odd = with(claims(), "sub", json!("a b\nc".repeat(50)));
        let id = v.verify(&sign(&odd)).unwrap().key_id;
        assert!(id.starts_with("jwt:sha256:") && id.len() == 43, "{id}");
    }

    #[test]
    fn s1_expired_jwt_is_refused() {
        let v = verifier();
        let leeway = DEFAULT_LEEWAY_SECS as i64;
        assert!(refused(&v, &sign(&with(claims(), "exp", json!(NOW - leeway - 1)))));
        assert!(refused(&v, &sign(&with(claims(), "exp", json!(NOW - leeway)))));
        assert!(refused(&v, &sign(&without(claims(), "exp"))), "exp is required");
        assert!(refused(&v, &sign(&with(claims(), "exp", json!("tomorrow")))));
        // Inside the leeway it still passes; and the verifier's clock decides, not the system's.
        assert!(v.verify(&sign(&with(claims(), "exp", json!(NOW - leeway + 1)))).is_ok());
        let clock = ManualClock::new(OffsetDateTime::from_unix_timestamp(NOW).unwrap());
        let v = JwtVerifier::new(config(), JWKS)
            .unwrap()
            .with_clock(Arc::new(clock.clone()));
        let token = sign(&claims());
        assert!(v.verify(&token).is_ok());
        clock.advance(std::time::Duration::from_secs(600 + DEFAULT_LEEWAY_SECS));
        assert!(refused(&v, &token));
    }

    #[test]
    fn s1_jwt_not_yet_valid_is_refused() {
        let v = verifier();
        let leeway = DEFAULT_LEEWAY_SECS as i64;
        assert!(refused(&v, &sign(&with(claims(), "nbf", json!(NOW + leeway + 1)))));
        assert!(refused(&v, &sign(&with(claims(), "nbf", json!("soon")))));
        assert!(v.verify(&sign(&with(claims(), "nbf", json!(NOW + leeway)))).is_ok());
        assert!(v.verify(&sign(&with(claims(), "nbf", json!(NOW - 5)))).is_ok());
    }

    #[test]
    fn s1_jwt_from_another_issuer_is_refused() {
        let v = verifier();
        for iss in [
            json!("https://issuer.test/other"),
            json!(format!("{ISS}/")),
            json!([ISS]),
            json!(null),
        ] {
            assert!(refused(&v, &sign(&with(claims(), "iss", iss.clone()))), "{iss}");
        }
        assert!(refused(&v, &sign(&without(claims(), "iss"))));
    }

    #[test]
    fn s1_jwt_for_another_audience_is_refused() {
        let v = verifier();
        for aud in [
            json!("client-c"),
            json!(["client-c", "x"]),
            json!([]),
            json!(7),
            json!(""),
        ] {
            assert!(refused(&v, &sign(&with(claims(), "aud", aud.clone()))), "{aud}");
        }
        assert!(refused(&v, &sign(&without(claims(), "aud"))), "no aud and no client_id");
        // `client_id` is only a fallback: it cannot override a wrong `aud`.
        let both = with(with(claims(), "aud", json!("client-c")), "client_id", json!("client-a"));
        assert!(refused(&v, &sign(&both)));
    }

    #[test]
    fn s1_alg_none_is_refused() {
        let v = verifier();
        for alg in ["none", "None", "NONE"] {
            let header = json!({"alg": alg, "typ": "JWT", "kid": "test-key-1"});
            let token = format!("{}.{}.", b64(&header), b64(&claims()));
            assert!(looks_like_jwt(&token));
            assert!(refused(&v, &token), "{alg}");
            // A signature copied from a valid token does not help either.
            let valid = sign(&claims());
            let sig = valid.rsplit('.').next().unwrap();
            assert!(refused(&v, &format!("{}.{}.{sig}", b64(&header), b64(&claims()))));
        }
    }

    #[test]
    fn s1_hs256_signed_with_the_public_key_is_refused() {
        let v = verifier();
        // The classic algorithm confusion: HMAC keyed with the (public) RSA key the verifier trusts.
        for secret in [RSA1_PUB.to_vec(), JWKS.as_bytes().to_vec()] {
            for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
                let mut header = Header::new(alg);
                header.kid = Some("test-key-1".to_owned());
                let token = jsonwebtoken::encode(&header, &claims(), &EncodingKey::from_secret(&secret)).unwrap();
                assert!(refused(&v, &token), "{alg:?}");
            }
        }
        // And HMAC can never be configured, nor trusted from a JWKS.
        let mut c = config();
        c.algorithms = vec![Algorithm::RS256, Algorithm::HS256];
        assert!(matches!(
            JwtVerifier::new(c, JWKS),
            Err(OidcError::UnsupportedAlgorithm(_))
        ));
        let oct = json!({"keys": [{"kty": "oct", "kid": "test-key-1", "k": "c2VjcmV0", "alg": "HS256"}]});
        assert_eq!(
            JwtVerifier::new(config(), &oct.to_string()).unwrap_err(),
            OidcError::NoUsableKeys
        );
    }

    #[test]
    fn s1_algorithm_outside_the_allow_list_is_refused() {
        let v = verifier();
        // Same key, same claims, a valid signature: only the algorithm is not the allowed RS256.
        for alg in [Algorithm::RS384, Algorithm::RS512, Algorithm::PS256] {
            assert!(
                refused(&v, &sign_with(alg, Some("test-key-1"), RSA1, &claims())),
                "{alg:?}"
            );
        }
        // Allowing PS256 in configuration is not enough when the JWK pins `alg: RS256`.
        let mut c = config();
        c.algorithms = vec![Algorithm::RS256, Algorithm::PS256];
        let pinned = verifier_for(c.clone(), JWKS);
        assert!(refused(
            &pinned,
            &sign_with(Algorithm::PS256, Some("test-key-1"), RSA1, &claims())
        ));
        let mut unpinned: Value = serde_json::from_str(JWKS).unwrap();
        unpinned["keys"][0].as_object_mut().unwrap().remove("alg");
        let open = verifier_for(c, &unpinned.to_string());
        let ps = sign_with(Algorithm::PS256, Some("test-key-1"), RSA1, &claims());
        assert!(open.verify(&ps).is_ok());
    }

    #[test]
    fn s1_unknown_kid_is_refused() {
        let v = verifier();
        // Signed by a key the JWKS does not hold, under its own kid, under the trusted kid, and with none.
        assert!(refused(
            &v,
            &sign_with(Algorithm::RS256, Some("test-key-2"), RSA2, &claims())
        ));
        assert!(refused(
            &v,
            &sign_with(Algorithm::RS256, Some("test-key-1"), RSA2, &claims())
        ));
        assert!(refused(&v, &sign_with(Algorithm::RS256, None, RSA1, &claims())));
        assert!(refused(&v, &sign_with(Algorithm::RS256, Some(""), RSA1, &claims())));
    }

    #[test]
    fn s1_missing_or_invalid_tenant_claim_is_refused() {
        let v = verifier();
        assert!(refused(&v, &sign(&without(claims(), "custom:tenant"))));
        for bad in [
            json!("Acme"),
            json!("a/b"),
            json!(""),
            json!(["acme"]),
            json!(42),
            json!("a".repeat(65)),
        ] {
            assert!(
                refused(&v, &sign(&with(claims(), "custom:tenant", bad.clone()))),
                "{bad}"
            );
        }
        assert!(refused(&v, &sign(&without(claims(), "sub"))), "sub is required");
        assert!(refused(&v, &sign(&with(claims(), "sub", json!("")))));
        // A `tenant` claim is ignored when another claim is configured.
        let other = with(without(claims(), "custom:tenant"), "tenant", json!("acme"));
        assert!(refused(&v, &sign(&other)));
        let mut c = config();
        c.tenant_claim = "tenant".to_owned();
        assert_eq!(
            verifier_for(c, JWKS).verify(&sign(&other)).unwrap().tenant.as_str(),
            "acme"
        );
    }

    #[test]
    fn s1_tampered_signature_is_refused() {
        let v = verifier();
        let token = sign(&claims());
        let (rest, sig) = token.rsplit_once('.').unwrap();
        let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig).unwrap();
        bytes[10] ^= 1;
        let flipped = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        assert!(refused(&v, &format!("{rest}.{flipped}")));
        assert!(refused(&v, &format!("{rest}.")));
        // A payload swapped for another tenant's, keeping the original signature.
        let header = token.split('.').next().unwrap();
        let forged = b64(&with(claims(), "custom:tenant", json!("globex")));
        assert!(refused(&v, &format!("{header}.{forged}.{sig}")));
        assert!(refused(&v, &"a".repeat(MAX_TOKEN_LEN + 1)));
        assert!(refused(&v, "eyJ.eyJ.x"));
    }

    #[test]
    fn jwks_keeps_signing_keys_only() {
        assert!(matches!(
            JwtVerifier::new(config(), "[]"),
            Err(OidcError::InvalidJwks(_))
        ));
        assert!(matches!(
            JwtVerifier::new(config(), "nope"),
            Err(OidcError::InvalidJwks(_))
        ));
        let mut doc: Value = serde_json::from_str(JWKS).unwrap();
        let good = doc["keys"][0].clone();
        let enc = with(with(good.clone(), "use", json!("enc")), "kid", json!("enc-key"));
        let nokid = without(good.clone(), "kid");
        let weird = json!({"kty": "XYZ", "kid": "w"});
        doc["keys"] = json!([enc, nokid, weird, good]);
        let v = JwtVerifier::new(config(), &doc.to_string()).unwrap();
        assert_eq!(v.key_ids(), ["test-key-1"]);
    }

    #[test]
    fn api_keys_do_not_look_like_jwts() {
        assert!(looks_like_jwt(&sign(&claims())));
        assert!(!looks_like_jwt("key_01JC0000000000000000000000.c2VjcmV0c2VjcmV0"));
        assert!(!looks_like_jwt("eyJ.a"));
        assert!(!looks_like_jwt("eyJ.a.b.c"));
        assert!(!looks_like_jwt("eyJ..b"));
        assert!(!looks_like_jwt("eyJ+.a.b"));
        assert!(!looks_like_jwt(""));
    }
}
