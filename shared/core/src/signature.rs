//! The grantwarden request signature: header
//! `X-Grantwarden-Signature: t=<unix>,v2=<hex hmac-sha256 of the canonical string>`.
//!
//! # v2 signs the request, not only its body
//! The canonical string is
//!
//! ```text
//! "v2\n" <t> "\n" <METHOD> "\n" <path> "\n" <body>
//! ```
//!
//! - `t`: the header's timestamp, unix seconds, as the text sent;
//! - `METHOD`: in upper case (a sender that writes `post` signs `POST`);
//! - `path`: exactly as in the request line, percent-encoding included, without
//!   the query string. Intake refuses any request that has one, so nothing it
//!   reads goes unsigned; a route that ever reads a query must sign it first;
//! - `body`: the raw bytes, last, so they need no escaping.
//!
//! Every field before the body ends at a newline and cannot hold one (`t` is
//! digits, the method letters, the path printable ASCII without spaces), so two
//! different requests never give the same string: a signature over one ticket's
//! approval or renewal does not fit another ticket's route, nor another method.
//!
//! # v1 is legacy
//! `v1=<hex hmac-sha256 of "<t>.<body>">` binds neither method nor path, so a body
//! such as `{"approver": ...}` or the empty body fits any ticket's route. It is
//! refused unless the caller passes [`V1Policy::Accepted`]; intake does so only
//! when `GRANTWARDEN_WEBHOOK_LEGACY_V1` is set, and only on routes whose body
//! names its own target. A header may carry both schemes while a sender moves:
//! v2 entries are checked first.
//!
//! # Once
//! A verified signature comes with its [`ReplayKey`] (the sha256 of what was
//! signed) and how long it must be remembered: until the timestamp leaves the
//! window, plus [`REPLAY_MARGIN`]. The caller records it in a
//! [`crate::store::ReplayGuard`], so the same signed request is accepted once
//! and a retry must be signed anew.
//!
//! A sender rotating its key sends one entry per key; any match passes. Entries
//! of unknown schemes are ignored, so a sender can add a scheme before we read
//! it. Comparison is constant-time (`Mac::verify_slice`), and errors never quote
//! the header or say which byte differed. Pure: the caller passes time and key.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::store::ReplayKey;

/// The header that carries the signature.
pub const HEADER: &str = "X-Grantwarden-Signature";

/// How far a signature's timestamp may be from now, either way.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// How long a replay record outlives its signature's window: the clocks of two
/// Lambda containers may differ a little.
pub const REPLAY_MARGIN: Duration = Duration::from_secs(60);

/// At most this many signature entries in one header (a sender rotating keys
/// sends two or three); more is refused before any HMAC is computed.
const MAX_ENTRIES: usize = 16;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// No signature header.
    #[error("the {HEADER} header is missing")]
    Missing,
    /// The header does not read as `t=<unix>,v2=<hex>[,v2=<hex>...]`.
    #[error("the {HEADER} header is malformed: {0}")]
    Malformed(String),
    /// Only `v1` entries, where v1 is not accepted.
    #[error(
        "v1 signatures bind only the body and are not accepted here; sign method, path, timestamp and body with v2"
    )]
    LegacyV1,
    /// The method or path cannot be put in the canonical string.
    #[error("the request cannot be signed: {0}")]
    Unsignable(&'static str),
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
    /// No entry is the HMAC of this request under our key.
    #[error("no signature matches this request")]
    Mismatch,
}

/// Which scheme a verified signature used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `"<t>.<body>"`: legacy.
    V1,
    /// Method, path, timestamp and body.
    V2,
}

impl Scheme {
    /// The entry name in the header, also the replay key's scheme.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::V1 => "v1",
            Scheme::V2 => "v2",
        }
    }
}

/// Whether a body-only v1 signature is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V1Policy {
    /// Only v2 passes.
    Refused,
    /// v1 passes too (a transition, on routes whose body names its target).
    Accepted,
}

/// What a v2 signature binds.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// The HTTP method, any case.
    pub method: &'a str,
    /// The path as received, without the query string.
    pub path: &'a str,
    /// The raw body.
    pub body: &'a [u8],
}

/// A signature that passed: which scheme, and the record that makes it count once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The scheme of the matching entry.
    pub scheme: Scheme,
    /// The identity of this signed request.
    pub replay: ReplayKey,
    /// Until when it must be remembered: past this its timestamp is out of the window.
    pub replay_until: DateTime<Utc>,
}

fn hmac(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// `"<t>.<body>"`, what v1 signs.
fn canonical_v1(t: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(t.len() + 1 + body.len());
    out.extend_from_slice(t.as_bytes());
    out.push(b'.');
    out.extend_from_slice(body);
    out
}

/// `"v2\n<t>\n<METHOD>\n<path>\n<body>"`, what v2 signs; refused when a field
/// could hold the separator (see the module doc).
fn canonical_v2(t: &str, request: &SignedRequest<'_>) -> Result<Vec<u8>, SignatureError> {
    let method = request.method;
    if method.is_empty() || method.len() > 16 || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(SignatureError::Unsignable("the method is not a word of letters"));
    }
    let path = request.path;
    if !path.starts_with('/') {
        return Err(SignatureError::Unsignable("the path does not start with /"));
    }
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SignatureError::Unsignable("the path holds spaces, control or non-ASCII characters"));
    }
    if path.contains(['?', '#']) {
        return Err(SignatureError::Unsignable("the path holds a query string or fragment"));
    }
    let mut out = Vec::with_capacity(8 + t.len() + method.len() + path.len() + request.body.len());
    out.extend_from_slice(b"v2\n");
    out.extend_from_slice(t.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(method.to_ascii_uppercase().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(path.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(request.body);
    Ok(out)
}

/// The header value signing `request` at unix time `t` with `key` (v2).
pub fn sign_v2(key: &[u8], t: i64, request: &SignedRequest<'_>) -> Result<String, SignatureError> {
    let t = t.to_string();
    let digest = hmac(key).chain_update(canonical_v2(&t, request)?).finalize().into_bytes();
    Ok(format!("t={t},v2={}", hex::encode(digest)))
}

/// The legacy header value signing only `body` at unix time `t` with `key` (v1).
pub fn sign_v1(key: &[u8], t: i64, body: &[u8]) -> String {
    let t = t.to_string();
    let digest = hmac(key).chain_update(canonical_v1(&t, body)).finalize().into_bytes();
    format!("t={t},v1={}", hex::encode(digest))
}

/// A parsed header: the timestamp as sent (it is signed as text) and the candidate MACs.
struct Parsed<'a> {
    t_text: &'a str,
    t: i64,
    v1: Vec<Vec<u8>>,
    v2: Vec<Vec<u8>>,
}

fn parse(header: &str) -> Result<Parsed<'_>, SignatureError> {
    let malformed = |why: String| SignatureError::Malformed(why);
    let mut t = None;
    let (mut v1, mut v2) = (Vec::new(), Vec::new());
    for (i, part) in header.split(',').enumerate() {
        let part = part.trim();
        // the entry itself is not echoed back: it is attacker-controlled text
        let (name, value) = part.split_once('=').ok_or_else(|| malformed(format!("entry {} has no '='", i + 1)))?;
        let name = name.trim();
        match name {
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
            "v1" | "v2" => {
                if v1.len() + v2.len() == MAX_ENTRIES {
                    return Err(malformed(format!("more than {MAX_ENTRIES} signatures")));
                }
                let mac = hex::decode(value.trim())
                    .map_err(|_| malformed(format!("entry {} ({name}) is not hexadecimal", i + 1)))?;
                if name == "v1" { &mut v1 } else { &mut v2 }.push(mac);
            }
            // other schemes: ignored, so senders can add one before we read it
            _ => {}
        }
    }
    let (t_text, t) = t.ok_or_else(|| malformed("no t (timestamp)".into()))?;
    if v1.is_empty() && v2.is_empty() {
        return Err(malformed("no v2 signature".into()));
    }
    Ok(Parsed { t_text, t, v1, v2 })
}

fn any_matches(key: &[u8], signed: &[u8], candidates: &[Vec<u8>]) -> bool {
    let expected = hmac(key).chain_update(signed);
    candidates.iter().any(|candidate| expected.clone().verify_slice(candidate).is_ok())
}

/// Checks the signature header of `request` at `now`: any `v2` entry matching
/// passes (a `v1` entry too under [`V1Policy::Accepted`]), if its timestamp is
/// within `tolerance` of `now`. The result says how to record it as used.
pub fn verify(
    header: Option<&str>,
    request: &SignedRequest<'_>,
    key: &[u8],
    now: DateTime<Utc>,
    tolerance: Duration,
    v1: V1Policy,
) -> Result<Verified, SignatureError> {
    let header = header.filter(|h| !h.trim().is_empty()).ok_or(SignatureError::Missing)?;
    let parsed = parse(header)?;
    if parsed.v2.is_empty() && v1 == V1Policy::Refused {
        return Err(SignatureError::LegacyV1);
    }
    // authenticity first: a stale but authentic request is a replay or a slow
    // sender, worth telling apart from a forgery in the logs
    let v2 = canonical_v2(parsed.t_text, request)?;
    let (scheme, signed) = if any_matches(key, &v2, &parsed.v2) {
        (Scheme::V2, v2)
    } else {
        let v1_signed = canonical_v1(parsed.t_text, request.body);
        if v1 == V1Policy::Accepted && any_matches(key, &v1_signed, &parsed.v1) {
            (Scheme::V1, v1_signed)
        } else {
            return Err(SignatureError::Mismatch);
        }
    };
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
    // within the window, so t is near now and these sums cannot overflow
    let last_second = parsed.t + (tolerance + REPLAY_MARGIN).as_secs() as i64;
    let replay_until = DateTime::from_timestamp(last_second, 0).expect("a time near now is representable");
    Ok(Verified { scheme, replay: ReplayKey::new(scheme.name(), &signed), replay_until })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const KEY: &[u8] = b"grantwarden-test-webhook-key";
    const T: i64 = 1_795_348_800; // 2026-11-22T12:00:00Z
    const APPROVE: SignedRequest<'static> =
        SignedRequest { method: "POST", path: "/requests/tkt-1/approvals", body: br#"{"approver":"bob@example.com"}"# };

    fn at(t: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(t, 0).unwrap()
    }

    fn with(request: &SignedRequest<'_>, header: &str, now: i64, v1: V1Policy) -> Result<Verified, SignatureError> {
        verify(Some(header), request, KEY, at(now), DEFAULT_TOLERANCE, v1)
    }

    fn check(request: &SignedRequest<'_>, header: &str, now: i64) -> Result<Scheme, SignatureError> {
        with(request, header, now, V1Policy::Refused).map(|v| v.scheme)
    }

    #[test]
    fn a_signed_request_verifies_within_the_window() {
        let h = sign_v2(KEY, T, &APPROVE).unwrap();
        for now in [T, T + 300, T - 300] {
            assert_eq!(check(&APPROVE, &h, now), Ok(Scheme::V2));
        }
    }

    #[test]
    fn the_signature_matches_the_openssl_recipe() {
        // { printf 'v2\n%s\nPOST\n%s\n' 1795348800 /requests/tkt-1/approvals; printf '%s' '{"approver":"bob@example.com"}'; } \
        //   | openssl dgst -sha256 -hmac grantwarden-test-webhook-key
        assert_eq!(
            sign_v2(KEY, T, &APPROVE).unwrap(),
            "t=1795348800,v2=bd172ab41d83c15b8e678562c9082f79323a49ecb36f07a5f2e21ec3cc8e7ff3"
        );
        // printf 'v2\n%s\nPOST\n%s\n' 1795348800 /tickets/tkt-1/renew | openssl dgst -sha256 -hmac ...
        let renew = SignedRequest { method: "post", path: "/tickets/tkt-1/renew", body: b"" };
        assert_eq!(
            sign_v2(KEY, T, &renew).unwrap(),
            "t=1795348800,v2=6db50dd29c5eadc330b4eae519965996277425fc95f732484d346399426d4aed",
            "the method is signed in upper case"
        );
        // printf '%s.%s' 1795348800 '{}' | openssl dgst -sha256 -hmac grantwarden-test-webhook-key
        assert_eq!(
            sign_v1(KEY, T, b"{}"),
            "t=1795348800,v1=ea6b2f7f5d94b3716f8752c388a058497d5f967e246e204784cc9a786c26fd4d"
        );
    }

    #[test]
    fn another_path_or_method_is_a_mismatch() {
        let h = sign_v2(KEY, T, &APPROVE).unwrap();
        let other_ticket = SignedRequest { path: "/requests/tkt-2/approvals", ..APPROVE };
        assert_eq!(check(&other_ticket, &h, T), Err(SignatureError::Mismatch));
        let trailing_slash = SignedRequest { path: "/requests/tkt-1/approvals/", ..APPROVE };
        assert_eq!(check(&trailing_slash, &h, T), Err(SignatureError::Mismatch));
        let put = SignedRequest { method: "PUT", ..APPROVE };
        assert_eq!(check(&put, &h, T), Err(SignatureError::Mismatch));
        let lower = SignedRequest { method: "post", ..APPROVE };
        assert_eq!(check(&lower, &h, T), Ok(Scheme::V2), "the method is compared in upper case");
        let renew_a = SignedRequest { method: "POST", path: "/tickets/tkt-a/renew", body: b"" };
        let renew_b = SignedRequest { path: "/tickets/tkt-b/renew", ..renew_a };
        assert_eq!(check(&renew_b, &sign_v2(KEY, T, &renew_a).unwrap(), T), Err(SignatureError::Mismatch));
    }

    #[test]
    fn a_timestamp_outside_the_window_is_rejected() {
        let h = sign_v2(KEY, T, &APPROVE).unwrap();
        assert_eq!(
            check(&APPROVE, &h, T + 301),
            Err(SignatureError::OutsideWindow { timestamp: T, now: T + 301, tolerance_seconds: 300 })
        );
        assert!(matches!(check(&APPROVE, &h, T - 301), Err(SignatureError::OutsideWindow { .. })));
    }

    #[test]
    fn a_missing_or_blank_header_is_missing() {
        let none = verify(None, &APPROVE, KEY, at(T), DEFAULT_TOLERANCE, V1Policy::Refused);
        assert_eq!(none, Err(SignatureError::Missing));
        assert_eq!(check(&APPROVE, "  ", T), Err(SignatureError::Missing));
    }

    #[test]
    fn v1_is_refused_unless_accepted_and_then_binds_only_the_body() {
        let v1 = sign_v1(KEY, T, APPROVE.body);
        assert_eq!(check(&APPROVE, &v1, T), Err(SignatureError::LegacyV1));
        let accepted = with(&APPROVE, &v1, T, V1Policy::Accepted).unwrap();
        assert_eq!(accepted.scheme, Scheme::V1);
        assert_eq!(accepted.replay, ReplayKey::new("v1", &[format!("{T}.").as_bytes(), APPROVE.body].concat()));
        assert_eq!(
            with(&APPROVE, &sign_v1(b"other", T, APPROVE.body), T, V1Policy::Accepted),
            Err(SignatureError::Mismatch)
        );
        // a header carrying both is read as v2 first; a v1 entry never rescues a refused policy
        let both = format!("{},v1={}", sign_v2(KEY, T, &APPROVE).unwrap(), v1.split_once(",v1=").unwrap().1);
        assert_eq!(check(&APPROVE, &both, T), Ok(Scheme::V2));
        let other = SignedRequest { path: "/requests/tkt-2/approvals", ..APPROVE };
        assert_eq!(check(&other, &both, T), Err(SignatureError::Mismatch));
        assert_eq!(with(&other, &both, T, V1Policy::Accepted).map(|v| v.scheme), Ok(Scheme::V1));
    }

    #[test]
    fn any_matching_v2_entry_passes_during_key_rotation() {
        let old = sign_v2(b"old-key", T, &APPROVE).unwrap();
        let new = sign_v2(KEY, T, &APPROVE).unwrap();
        let old_v2 = old.split_once(",v2=").unwrap().1;
        let header = format!("{new}, v2={old_v2}");
        assert_eq!(check(&APPROVE, &header, T), Ok(Scheme::V2));
        let reversed = format!("t={T},v2={old_v2},{}", new.split_once(',').unwrap().1);
        assert_eq!(check(&APPROVE, &reversed, T), Ok(Scheme::V2));
    }

    #[test]
    fn a_wrong_key_or_changed_timestamp_is_a_mismatch() {
        assert_eq!(check(&APPROVE, &sign_v2(b"other", T, &APPROVE).unwrap(), T), Err(SignatureError::Mismatch));
        let moved = sign_v2(KEY, T, &APPROVE).unwrap().replace(&format!("t={T}"), &format!("t={}", T + 1));
        assert_eq!(check(&APPROVE, &moved, T), Err(SignatureError::Mismatch));
    }

    #[test]
    fn a_forged_stale_request_is_a_mismatch_not_a_window_error() {
        let forged = sign_v2(b"other", T, &APPROVE).unwrap();
        assert_eq!(check(&APPROVE, &forged, T + 3600), Err(SignatureError::Mismatch));
    }

    #[test]
    fn the_replay_key_names_the_signed_request_and_lasts_past_the_window() {
        let h = sign_v2(KEY, T, &APPROVE).unwrap();
        let first = with(&APPROVE, &h, T, V1Policy::Refused).unwrap();
        let later = with(&APPROVE, &h, T + 200, V1Policy::Refused).unwrap();
        assert_eq!(first, later, "the same signed request has one key, whenever it arrives");
        assert_eq!(first.replay_until, at(T + 300 + 60));
        assert!(first.replay.as_str().starts_with("v2:"));
        let resigned = with(&APPROVE, &sign_v2(KEY, T + 1, &APPROVE).unwrap(), T + 1, V1Policy::Refused).unwrap();
        assert_ne!(resigned.replay, first.replay, "the same body signed at another time is another request");
        // the key does not depend on which of several rotating keys matched
        let rotated = format!("{h},v2={}", "00".repeat(32));
        assert_eq!(with(&APPROVE, &rotated, T, V1Policy::Refused).unwrap().replay, first.replay);
    }

    #[test]
    fn unknown_schemes_are_ignored() {
        let h = format!("{},v0=zz-not-hex,v3=abc", sign_v2(KEY, T, &APPROVE).unwrap());
        assert_eq!(check(&APPROVE, &h, T), Ok(Scheme::V2));
    }

    #[test]
    fn malformed_headers_say_what_is_wrong_without_quoting_them() {
        let too_many = format!("t={T}{}", ",v2=00".repeat(17));
        for (header, why) in [
            ("garbage", "entry 1 has no '='"),
            ("v2=00", "no t (timestamp)"),
            ("t=1795348800", "no v2 signature"),
            ("t=1795348800,v3=00", "no v2 signature"),
            ("t=soon,v2=00", "t is not a unix time in seconds"),
            ("t=+1795348800,v2=00", "t is not a unix time in seconds"),
            ("t=99999999999999999999,v2=00", "t is out of range"),
            ("t=1,t=2,v2=00", "more than one t"),
            ("t=1795348800,v2=xyz", "entry 2 (v2) is not hexadecimal"),
            ("t=1795348800,v1=xyz", "entry 2 (v1) is not hexadecimal"),
            (too_many.as_str(), "more than 16 signatures"),
        ] {
            assert_eq!(check(&APPROVE, header, T), Err(SignatureError::Malformed(why.into())), "{header}");
        }
    }

    #[test]
    fn a_request_that_cannot_be_put_in_the_canonical_string_is_refused() {
        for (method, path) in [
            ("POST", "webhooks/grants"),
            ("POST", ""),
            ("POST", "/a\nb"),
            ("POST", "/a b"),
            ("POST", "/caf\u{e9}"),
            ("POST", "/webhooks/grants?as=admin"),
            ("POST", "/x#y"),
            ("", "/x"),
            ("PO ST", "/x"),
            ("POST\n", "/x"),
            ("M-SEARCH", "/x"),
        ] {
            let request = SignedRequest { method, path, body: b"" };
            assert!(matches!(sign_v2(KEY, T, &request), Err(SignatureError::Unsignable(_))), "{method:?} {path:?}");
            let header = format!("t={T},v2={}", "00".repeat(32));
            assert!(matches!(check(&request, &header, T), Err(SignatureError::Unsignable(_))), "{method:?} {path:?}");
        }
    }

    #[test]
    fn a_truncated_mac_is_a_mismatch() {
        let h = sign_v2(KEY, T, &APPROVE).unwrap();
        assert_eq!(check(&APPROVE, &h[..h.len() - 2], T), Err(SignatureError::Mismatch));
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        for t in [i64::MIN, i64::MAX] {
            let h = sign_v2(KEY, t, &APPROVE).unwrap();
            assert!(matches!(check(&APPROVE, &h, T), Err(SignatureError::OutsideWindow { .. })));
        }
    }

    proptest! {
        #[test]
        fn any_request_and_key_round_trip(
            key in proptest::collection::vec(any::<u8>(), 0..80),
            method in "[A-Za-z]{1,16}",
            path in "/[!-~&&[^?#]]{0,60}",
            body in proptest::collection::vec(any::<u8>(), 0..512),
            t in 0i64..4_000_000_000,
        ) {
            let request = SignedRequest { method: &method, path: &path, body: &body };
            let h = sign_v2(&key, t, &request).unwrap();
            let verified = verify(Some(&h), &request, &key, at(t), DEFAULT_TOLERANCE, V1Policy::Refused).unwrap();
            prop_assert_eq!(verified.scheme, Scheme::V2);
        }

        #[test]
        fn any_single_byte_change_of_the_body_or_path_fails(
            body in proptest::collection::vec(any::<u8>(), 1..512),
            index in any::<prop::sample::Index>(),
            flip in 1u8..=255,
            segment in "[a-z0-9-]{1,20}",
            other in "[a-z0-9-]{1,20}",
        ) {
            let path = format!("/tickets/{segment}/revoke");
            let request = SignedRequest { method: "POST", path: &path, body: &body };
            let h = sign_v2(KEY, T, &request).unwrap();
            let mut changed = body.clone();
            let i = index.index(changed.len());
            changed[i] ^= flip;
            prop_assert_eq!(check(&SignedRequest { body: &changed, ..request }, &h, T), Err(SignatureError::Mismatch));
            let moved = format!("/tickets/{other}/revoke");
            prop_assume!(other != segment);
            prop_assert_eq!(check(&SignedRequest { path: &moved, ..request }, &h, T), Err(SignatureError::Mismatch));
        }

        #[test]
        fn any_header_text_is_parsed_or_refused_without_panic(
            header in ".{0,300}",
            method in ".{0,10}",
            path in ".{0,40}",
            body in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let request = SignedRequest { method: &method, path: &path, body: &body };
            for v1 in [V1Policy::Refused, V1Policy::Accepted] {
                match verify(Some(&header), &request, KEY, at(T), DEFAULT_TOLERANCE, v1) {
                    // a random header cannot carry a valid MAC of this request
                    Ok(v) => prop_assert!(false, "accepted {:?}", v),
                    Err(e) => prop_assert!(!e.to_string().contains(header.trim()) || header.trim().len() < 12, "{e} quotes the header"),
                }
            }
        }

        #[test]
        fn structured_headers_never_panic(
            entries in proptest::collection::vec(("(t|v1|v2|v9| t|v2 )", "[-0-9a-fA-F ]{0,70}"), 0..20),
        ) {
            let header = entries.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join(",");
            let _ = check(&APPROVE, &header, T);
            let _ = with(&APPROVE, &header, T, V1Policy::Accepted);
        }
    }
}
