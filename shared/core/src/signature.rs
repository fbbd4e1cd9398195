//! The webhook signature (DESIGN.md, grant webhook): header
//! `X-Grantwarden-Signature: t=<unix>,v1=<hex hmac-sha256 of "<t>.<body>">`.
//!
//! The timestamp is signed with the body so a captured request cannot be
//! replayed outside the tolerance window. A sender rotating its key sends one
//! `v1=` entry per key; any match passes. Entries of other schemes (`v0=`,
//! `v2=`) are ignored so a sender can add a scheme before we read it.
//! Comparison is constant-time (`Mac::verify_slice`), and errors never say
//! which byte differed. Pure: the caller passes the time and the key.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header that carries the signature.
pub const HEADER: &str = "X-Grantwarden-Signature";

/// How far a signature's timestamp may be from now, either way.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature header.
    #[error("the {HEADER} header is missing")]
    Missing,
    /// The header does not read as `t=<unix>,v1=<hex>[,v1=<hex>...]`.
    #[error("the {HEADER} header is malformed: {0}")]
    Malformed(String),
    /// The signed timestamp is too old or too far in the future (a replay, or a skewed clock).
    #[error("the signature timestamp {timestamp} is more than {tolerance_seconds}s away from now ({now})")]
    OutsideWindow {
        /// The header's `t`.
        timestamp: i64,
        /// Our time, unix seconds.
        now: i64,
        /// The allowed distance.
        tolerance_seconds: u64,
    },
    /// No `v1` entry is the HMAC of this body under our key.
    #[error("no v1 signature matches the body")]
    Mismatch,
}

/// The MAC over `"<t>.<body>"`, ready to finalize or compare.
fn mac(key: &[u8], t: &str, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The header value signing `body` at unix time `t` with `key`.
pub fn sign(key: &[u8], t: i64, body: &[u8]) -> String {
    let t = t.to_string();
    let digest = mac(key, &t, body).finalize().into_bytes();
    format!("t={t},v1={}", hex::encode(digest))
}

/// A parsed header: the timestamp as sent (it is signed as text) and the candidate MACs.
struct Parsed<'a> {
    t_text: &'a str,
    t: i64,
    v1: Vec<Vec<u8>>,
}

fn parse(header: &str) -> Result<Parsed<'_>, SignatureError> {
    let malformed = |why: String| SignatureError::Malformed(why);
    let mut t = None;
    let mut v1 = Vec::new();
    for (i, part) in header.split(',').enumerate() {
        let part = part.trim();
        // the entry itself is not echoed back: it is attacker-controlled text
        let (name, value) = part.split_once('=').ok_or_else(|| malformed(format!("entry {} has no '='", i + 1)))?;
        match name.trim() {
            "t" => {
                let value = value.trim();
                let digits = value.strip_prefix('-').unwrap_or(value);
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(malformed("t is not a unix time in seconds".into()));
                }
                let parsed: i64 = value.parse().map_err(|_| malformed("t is out of range".into()))?;
                if t.replace((value, parsed)).is_some() {
                    return Err(malformed("more than one t".into()));
                }
            }
            "v1" => {
                let mac = hex::decode(value.trim())
                    .map_err(|_| malformed(format!("entry {} (v1) is not hexadecimal", i + 1)))?;
                v1.push(mac);
            }
            // other schemes: ignored, so senders can add one before we read it
            _ => {}
        }
    }
    let (t_text, t) = t.ok_or_else(|| malformed("no t (timestamp)".into()))?;
    if v1.is_empty() {
        return Err(malformed("no v1 signature".into()));
    }
    Ok(Parsed { t_text, t, v1 })
}

/// Checks the signature header of `body` at `now`: any `v1` entry matching
/// passes, if its timestamp is within `tolerance` of `now`.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    key: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    if header.trim().is_empty() {
        return Err(SignatureError::Missing);
    }
    let parsed = parse(header)?;
    // authenticity first: a stale but authentic request is a replay or a slow
    // sender, worth telling apart from a forgery in the logs
    let expected = mac(key, parsed.t_text, body);
    if !parsed.v1.iter().any(|candidate| expected.clone().verify_slice(candidate).is_ok()) {
        return Err(SignatureError::Mismatch);
    }
    let now_s = now.timestamp();
    // i128: no overflow whatever t the header carries
    let distance = (i128::from(now_s) - i128::from(parsed.t)).unsigned_abs();
    if distance > u128::from(tolerance.as_secs()) {
        return Err(SignatureError::OutsideWindow {
            timestamp: parsed.t,
            now: now_s,
            tolerance_seconds: tolerance.as_secs(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &[u8] = b"grantwarden-test-webhook-key";
    const T: i64 = 1_795_348_800; // 2026-11-22T12:00:00Z

    fn at(t: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(t, 0).unwrap()
    }

    fn check(header: &str, body: &[u8], now: i64) -> Result<(), SignatureError> {
        verify(Some(header), body, KEY, at(now), DEFAULT_TOLERANCE)
    }

    #[test]
    fn signed_body_verifies_within_the_window() {
        let h = sign(KEY, T, b"{}");
        assert_eq!(check(&h, b"{}", T), Ok(()));
        assert_eq!(check(&h, b"{}", T + 300), Ok(()));
        assert_eq!(check(&h, b"{}", T - 300), Ok(()));
    }

    #[test]
    fn signature_matches_the_openssl_recipe() {
        // printf '%s.%s' 1795348800 '{}' | openssl dgst -sha256 -hmac grantwarden-test-webhook-key
        assert_eq!(
            sign(KEY, T, b"{}"),
            "t=1795348800,v1=ea6b2f7f5d94b3716f8752c388a058497d5f967e246e204784cc9a786c26fd4d"
        );
    }

    #[test]
    fn timestamp_outside_the_window_is_rejected() {
        let h = sign(KEY, T, b"{}");
        assert_eq!(
            check(&h, b"{}", T + 301),
            Err(SignatureError::OutsideWindow { timestamp: T, now: T + 301, tolerance_seconds: 300 })
        );
        assert!(matches!(check(&h, b"{}", T - 301), Err(SignatureError::OutsideWindow { .. })));
    }

    #[test]
    fn missing_or_blank_header_is_missing() {
        assert_eq!(verify(None, b"{}", KEY, at(T), DEFAULT_TOLERANCE), Err(SignatureError::Missing));
        assert_eq!(check("  ", b"{}", T), Err(SignatureError::Missing));
    }

    #[test]
    fn any_matching_v1_entry_passes_during_key_rotation() {
        let old = sign(b"old-key", T, b"{}");
        let new = sign(KEY, T, b"{}");
        let old_v1 = old.split_once(",v1=").unwrap().1;
        let header = format!("{new}, v1={old_v1}");
        assert_eq!(check(&header, b"{}", T), Ok(()));
        let reversed = format!("t={T},v1={old_v1},{}", new.split_once(',').unwrap().1);
        assert_eq!(check(&reversed, b"{}", T), Ok(()));
    }

    #[test]
    fn wrong_key_or_changed_timestamp_is_a_mismatch() {
        assert_eq!(check(&sign(b"other", T, b"{}"), b"{}", T), Err(SignatureError::Mismatch));
        let moved = sign(KEY, T, b"{}").replace(&format!("t={T}"), &format!("t={}", T + 1));
        assert_eq!(check(&moved, b"{}", T), Err(SignatureError::Mismatch));
    }

    #[test]
    fn a_forged_stale_request_is_a_mismatch_not_a_window_error() {
        assert_eq!(check(&sign(b"other", T, b"{}"), b"{}", T + 3600), Err(SignatureError::Mismatch));
    }

    #[test]
    fn unknown_schemes_are_ignored() {
        let h = format!("{},v0=zz-not-hex,v2=abc", sign(KEY, T, b"{}"));
        assert_eq!(check(&h, b"{}", T), Ok(()));
    }

    #[test]
    fn malformed_headers_say_what_is_wrong() {
        let v1 = "v1=00";
        for (header, why) in [
            ("garbage", "entry 1 has no '='"),
            (v1, "no t (timestamp)"),
            ("t=1795348800", "no v1 signature"),
            ("t=soon,v1=00", "t is not a unix time in seconds"),
            ("t=+1795348800,v1=00", "t is not a unix time in seconds"),
            ("t=99999999999999999999,v1=00", "t is out of range"),
            ("t=1,t=2,v1=00", "more than one t"),
            ("t=1795348800,v1=xyz", "entry 2 (v1) is not hexadecimal"),
        ] {
            assert_eq!(check(header, b"{}", T), Err(SignatureError::Malformed(why.into())), "{header}");
        }
    }

    #[test]
    fn a_truncated_mac_is_a_mismatch() {
        let h = sign(KEY, T, b"{}");
        assert_eq!(check(&h[..h.len() - 2], b"{}", T), Err(SignatureError::Mismatch));
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        let h = sign(KEY, i64::MIN, b"{}");
        assert!(matches!(check(&h, b"{}", T), Err(SignatureError::OutsideWindow { .. })));
        let h = sign(KEY, i64::MAX, b"{}");
        assert!(matches!(check(&h, b"{}", T), Err(SignatureError::OutsideWindow { .. })));
    }

    proptest! {
        #[test]
        fn any_body_and_key_round_trip(
            key in proptest::collection::vec(any::<u8>(), 0..80),
            body in proptest::collection::vec(any::<u8>(), 0..512),
            t in 0i64..4_000_000_000,
        ) {
            let h = sign(&key, t, &body);
            prop_assert_eq!(verify(Some(&h), &body, &key, at(t), DEFAULT_TOLERANCE), Ok(()));
        }

        #[test]
        fn any_single_byte_change_of_the_body_fails(
            body in proptest::collection::vec(any::<u8>(), 1..512),
            index in any::<prop::sample::Index>(),
            flip in 1u8..=255,
        ) {
            let h = sign(KEY, T, &body);
            let mut changed = body.clone();
            let i = index.index(changed.len());
            changed[i] ^= flip;
            prop_assert_eq!(check(&h, &changed, T), Err(SignatureError::Mismatch));
        }

        #[test]
        fn arbitrary_headers_never_panic(header in ".{0,200}", body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = check(&header, &body, T);
        }
    }
}
