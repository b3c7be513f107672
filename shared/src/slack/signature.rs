//! Slack v0 request signatures: HMAC-SHA256 over `v0:{timestamp}:{raw body}`, keyed with the
//! app's signing secret, sent as `X-Slack-Signature: v0=<hex>` with `X-Slack-Request-Timestamp`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How far a request's timestamp may be from now, either direction (Slack recommends 5 minutes).
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// Why a request's signature was refused. Reasons are safe to return in a 401 body: they never
/// carry the secret, the expected signature or the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    MissingTimestamp,
    MissingSignature,
    MalformedTimestamp,
    MalformedSignature,
    /// More than [`MAX_CLOCK_SKEW_SECS`] from now: a replay or a badly wrong clock.
    StaleTimestamp,
    Mismatch,
}

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for SignatureError {}

impl SignatureError {
    /// A short human reason, suitable for a 401 body.
    pub fn reason(&self) -> &'static str {
        match self {
            SignatureError::MissingTimestamp => "missing X-Slack-Request-Timestamp header",
            SignatureError::MissingSignature => "missing X-Slack-Signature header",
            SignatureError::MalformedTimestamp => "malformed X-Slack-Request-Timestamp header",
            SignatureError::MalformedSignature => "malformed X-Slack-Signature header",
            SignatureError::StaleTimestamp => "request timestamp is too far from the current time",
            SignatureError::Mismatch => "signature mismatch",
        }
    }

    /// A stable snake_case code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            SignatureError::MissingTimestamp => "missing_timestamp",
            SignatureError::MissingSignature => "missing_signature",
            SignatureError::MalformedTimestamp => "malformed_timestamp",
            SignatureError::MalformedSignature => "malformed_signature",
            SignatureError::StaleTimestamp => "stale_timestamp",
            SignatureError::Mismatch => "mismatch",
        }
    }
}

/// Verifies a Slack request: both headers present and well formed, the timestamp within
/// [`MAX_CLOCK_SKEW_SECS`] of `now_unix`, and the signature matching the raw body (compared in
/// constant time).
pub fn verify(
    signing_secret: &[u8],
    timestamp_header: Option<&str>,
    signature_header: Option<&str>,
    raw_body: &[u8],
    now_unix: i64,
) -> Result<(), SignatureError> {
    let timestamp_text =
        timestamp_header.map(str::trim).filter(|t| !t.is_empty()).ok_or(SignatureError::MissingTimestamp)?;
    let signature_text =
        signature_header.map(str::trim).filter(|s| !s.is_empty()).ok_or(SignatureError::MissingSignature)?;

    let timestamp = parse_timestamp(timestamp_text).ok_or(SignatureError::MalformedTimestamp)?;
    let signature = parse_signature(signature_text).ok_or(SignatureError::MalformedSignature)?;

    if now_unix.saturating_sub(timestamp).unsigned_abs() > MAX_CLOCK_SKEW_SECS.unsigned_abs() {
        return Err(SignatureError::StaleTimestamp);
    }
    // An empty secret would let anyone sign: treat a misconfiguration as a refusal.
    if signing_secret.is_empty() {
        return Err(SignatureError::Mismatch);
    }
    // Sign the header text exactly as received: that is what Slack signed.
    let mac = mac_for(signing_secret, timestamp_text, raw_body).ok_or(SignatureError::Mismatch)?;
    mac.verify_slice(&signature).map_err(|_| SignatureError::Mismatch)
}

/// The `X-Slack-Signature` value Slack would send for `body` at `timestamp`.
pub fn sign(signing_secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    match mac_for(signing_secret, &timestamp.to_string(), body) {
        Some(mac) => format!("v0={}", hex::encode(mac.finalize().into_bytes())),
        None => String::new(),
    }
}

fn mac_for(signing_secret: &[u8], timestamp: &str, body: &[u8]) -> Option<HmacSha256> {
    // HMAC accepts keys of any length, so this never fails in practice.
    let mut mac = HmacSha256::new_from_slice(signing_secret).ok()?;
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    Some(mac)
}

/// Unix seconds: ASCII digits only (no sign, no fraction), at most 12 of them.
fn parse_timestamp(text: &str) -> Option<i64> {
    if text.is_empty() || text.len() > 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `v0=` followed by exactly 64 hex digits.
fn parse_signature(text: &str) -> Option<[u8; 32]> {
    let hex_part = text.strip_prefix("v0=")?;
    if hex_part.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // The worked example from Slack's "Verifying requests from Slack" documentation.
    const DOC_SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
    const DOC_TIMESTAMP: i64 = 1531420618;
    const DOC_BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const DOC_SIGNATURE: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    fn check(ts: Option<&str>, sig: Option<&str>, body: &[u8], now: i64) -> Result<(), SignatureError> {
        verify(DOC_SECRET, ts, sig, body, now)
    }

    #[test]
    fn signs_and_verifies_slacks_documented_example() {
        assert_eq!(sign(DOC_SECRET, DOC_TIMESTAMP, DOC_BODY.as_bytes()), DOC_SIGNATURE);
        let ts = DOC_TIMESTAMP.to_string();
        assert_eq!(check(Some(&ts), Some(DOC_SIGNATURE), DOC_BODY.as_bytes(), DOC_TIMESTAMP), Ok(()));
        // Uppercase hex is the same signature.
        let upper = format!("v0={}", DOC_SIGNATURE[3..].to_uppercase());
        assert_eq!(check(Some(&ts), Some(&upper), DOC_BODY.as_bytes(), DOC_TIMESTAMP), Ok(()));
    }

    #[test]
    fn rejects_a_tampered_body_or_a_wrong_secret() {
        let ts = DOC_TIMESTAMP.to_string();
        let tampered = DOC_BODY.replace("roadrunner", "wileecoyote");
        assert_eq!(
            check(Some(&ts), Some(DOC_SIGNATURE), tampered.as_bytes(), DOC_TIMESTAMP),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"another-secret", Some(&ts), Some(DOC_SIGNATURE), DOC_BODY.as_bytes(), DOC_TIMESTAMP),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"", Some(&ts), Some(DOC_SIGNATURE), DOC_BODY.as_bytes(), DOC_TIMESTAMP),
            Err(SignatureError::Mismatch)
        );
        // A signature for another timestamp does not verify.
        let other = sign(DOC_SECRET, DOC_TIMESTAMP + 1, DOC_BODY.as_bytes());
        assert_eq!(check(Some(&ts), Some(&other), DOC_BODY.as_bytes(), DOC_TIMESTAMP), Err(SignatureError::Mismatch));
    }

    #[test]
    fn missing_headers_are_reported_first() {
        let ts = DOC_TIMESTAMP.to_string();
        let body = DOC_BODY.as_bytes();
        assert_eq!(check(None, Some(DOC_SIGNATURE), body, DOC_TIMESTAMP), Err(SignatureError::MissingTimestamp));
        assert_eq!(check(Some(" "), Some(DOC_SIGNATURE), body, DOC_TIMESTAMP), Err(SignatureError::MissingTimestamp));
        assert_eq!(check(Some(&ts), None, body, DOC_TIMESTAMP), Err(SignatureError::MissingSignature));
        assert_eq!(check(Some(&ts), Some(""), body, DOC_TIMESTAMP), Err(SignatureError::MissingSignature));
        assert_eq!(check(None, None, body, DOC_TIMESTAMP), Err(SignatureError::MissingTimestamp));
    }

    #[test]
    fn malformed_headers_are_refused() {
        let ts = DOC_TIMESTAMP.to_string();
        let body = DOC_BODY.as_bytes();
        for bad_ts in ["abc", "-1531420618", "+1531420618", "1531420618.5", "1e9", "9999999999999"] {
            assert_eq!(
                check(Some(bad_ts), Some(DOC_SIGNATURE), body, DOC_TIMESTAMP),
                Err(SignatureError::MalformedTimestamp),
                "{bad_ts}"
            );
        }
        let hex = &DOC_SIGNATURE[3..];
        let bad_sigs = [
            hex.to_string(),
            format!("v1={hex}"),
            format!("v0={}", &hex[..63]),
            format!("v0={hex}0"),
            format!("v0={}g", &hex[..63]),
            "v0=".to_string(),
            format!("sha256={hex}"),
        ];
        for bad_sig in &bad_sigs {
            assert_eq!(
                check(Some(&ts), Some(bad_sig), body, DOC_TIMESTAMP),
                Err(SignatureError::MalformedSignature),
                "{bad_sig}"
            );
        }
    }

    #[test]
    fn timestamps_more_than_five_minutes_away_are_refused_both_ways() {
        let ts = DOC_TIMESTAMP.to_string();
        let body = DOC_BODY.as_bytes();
        assert_eq!(check(Some(&ts), Some(DOC_SIGNATURE), body, DOC_TIMESTAMP + 300), Ok(()));
        assert_eq!(check(Some(&ts), Some(DOC_SIGNATURE), body, DOC_TIMESTAMP - 300), Ok(()));
        assert_eq!(
            check(Some(&ts), Some(DOC_SIGNATURE), body, DOC_TIMESTAMP + 301),
            Err(SignatureError::StaleTimestamp)
        );
        assert_eq!(
            check(Some(&ts), Some(DOC_SIGNATURE), body, DOC_TIMESTAMP - 301),
            Err(SignatureError::StaleTimestamp)
        );
        // Staleness is checked before the signature, so a replay learns nothing about the MAC.
        let wrong = format!("v0={}", "0".repeat(64));
        assert_eq!(check(Some(&ts), Some(&wrong), body, DOC_TIMESTAMP + 10_000), Err(SignatureError::StaleTimestamp));
        assert_eq!(check(Some("0"), Some(&wrong), body, i64::MAX), Err(SignatureError::StaleTimestamp));
    }

    #[test]
    fn round_trips_any_body_and_reasons_never_leak_the_secret() {
        let secret = b"s3cr3t-signing-value";
        let body = br#"{"type":"event_callback","event":{"text":"hi & <bye>"}}"#;
        let now = 1_700_000_000;
        let sig = sign(secret, now, body);
        assert!(sig.starts_with("v0=") && sig.len() == 67, "{sig}");
        assert_eq!(verify(secret, Some(&now.to_string()), Some(&sig), body, now + 5), Ok(()));

        let all = [
            SignatureError::MissingTimestamp,
            SignatureError::MissingSignature,
            SignatureError::MalformedTimestamp,
            SignatureError::MalformedSignature,
            SignatureError::StaleTimestamp,
            SignatureError::Mismatch,
        ];
        for e in all {
            assert_eq!(e.to_string(), e.reason());
            assert!(!e.reason().contains("s3cr3t") && !e.reason().is_empty());
            assert!(!e.code().is_empty());
        }
    }
}

/// Generated input: whatever is changed in a genuine request (body, timestamp header, signature
/// header), it never verifies; the genuine one always does. Cases: PROPTEST_CASES (default 256).
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";
    const NOW: i64 = 1_700_000_000;

    /// A genuine request: a body, a timestamp within the allowed skew, and Slack's signature.
    fn genuine() -> impl Strategy<Value = (Vec<u8>, i64)> {
        (proptest::collection::vec(any::<u8>(), 0..512), -MAX_CLOCK_SKEW_SECS..=MAX_CLOCK_SKEW_SECS)
            .prop_map(|(body, skew)| (body, NOW + skew))
    }

    /// A different byte string: one byte changed, inserted or removed, or anything else.
    fn mutate(original: &[u8]) -> impl Strategy<Value = Vec<u8>> {
        let o = original.to_vec();
        let len = o.len();
        prop_oneof![
            (any::<prop::sample::Index>(), 1..=255u8).prop_map({
                let o = o.clone();
                move |(i, x)| {
                    let mut v = o.clone();
                    if v.is_empty() {
                        v.push(x);
                    } else {
                        let i = i.index(len);
                        v[i] ^= x;
                    }
                    v
                }
            }),
            (any::<prop::sample::Index>(), any::<u8>()).prop_map({
                let o = o.clone();
                move |(i, x)| {
                    let mut v = o.clone();
                    v.insert(i.index(len + 1), x);
                    v
                }
            }),
            any::<prop::sample::Index>().prop_map({
                let o = o.clone();
                move |i| {
                    let mut v = o.clone();
                    if !v.is_empty() {
                        v.remove(i.index(len));
                    }
                    v
                }
            }),
            proptest::collection::vec(any::<u8>(), 0..80),
        ]
        .prop_filter("a mutation differs from the original", move |v| *v != o)
    }

    proptest! {
        #[test]
        fn the_genuine_request_verifies((body, ts) in genuine()) {
            let sig = sign(SECRET, ts, &body);
            prop_assert_eq!(verify(SECRET, Some(&ts.to_string()), Some(&sig), &body, NOW), Ok(()));
        }

        #[test]
        fn a_mutated_body_never_verifies(
            (body, ts, other) in genuine().prop_flat_map(|(body, ts)| (Just(body.clone()), Just(ts), mutate(&body)))
        ) {
            let sig = sign(SECRET, ts, &body);
            prop_assert_eq!(
                verify(SECRET, Some(&ts.to_string()), Some(&sig), &other, NOW),
                Err(SignatureError::Mismatch)
            );
        }

        #[test]
        fn a_mutated_timestamp_never_verifies((body, ts) in genuine(), other in mutate(b"1700000000")) {
            // Mutations of a fixed header text, moved onto this case's timestamp.
            let original = ts.to_string();
            let text = String::from_utf8_lossy(&other).replace("1700000000", &original);
            let sig = sign(SECRET, ts, &body);
            // Surrounding whitespace is not part of an HTTP header's value.
            prop_assume!(text.trim() != original);
            prop_assert!(verify(SECRET, Some(&text), Some(&sig), &body, NOW).is_err(), "{:?}", text);
        }

        #[test]
        fn a_mutated_signature_never_verifies((body, ts) in genuine(), pick in any::<prop::sample::Index>(), x in 1..=255u8) {
            let sig = sign(SECRET, ts, &body);
            let t = ts.to_string();
            // A changed byte of the header text (hex case aside, which is the same value).
            let mut bytes = sig.clone().into_bytes();
            let i = pick.index(bytes.len());
            bytes[i] ^= x;
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if !text.trim().eq_ignore_ascii_case(&sig) || !text.trim().starts_with("v0=") {
                prop_assert!(verify(SECRET, Some(&t), Some(&text), &body, NOW).is_err(), "{:?}", text);
            }
            // A changed bit of the MAC itself.
            let mut mac = hex::decode(&sig[3..]).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let j = pick.index(mac.len());
            mac[j] ^= x;
            let flipped = format!("v0={}", hex::encode(&mac));
            prop_assert_eq!(verify(SECRET, Some(&t), Some(&flipped), &body, NOW), Err(SignatureError::Mismatch));
            // Another secret's signature.
            let forged = sign(b"not-the-signing-secret", ts, &body);
            prop_assert_eq!(verify(SECRET, Some(&t), Some(&forged), &body, NOW), Err(SignatureError::Mismatch));
        }
    }
}
