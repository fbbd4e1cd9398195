//! Incidents, as an incident tool's webhook reports them: break-glass access
//! is granted only while the incident it names is open.
//!
//! Two shapes are read: PagerDuty's v3 webhook (`event.event_type`
//! `incident.triggered|acknowledged|resolved`, `event.data.id`) and
//! Opsgenie's (`action` `Create|Acknowledge|Close`, `alert.alertId` or
//! `alert.tinyId`). Either is normalized to an [`IncidentUpdate`]; anything
//! else is an error naming the field.
//!
//! An update is dated by the tool's own time of the change (PagerDuty's
//! `event.occurred_at`, Opsgenie's `alert.updatedAt`), not by when it
//! arrived: webhooks are retried and arrive out of order, and a `triggered`
//! delivered late must not reopen an incident already resolved.
//!
//! # Who may say so
//! An open incident grants break-glass access, so a webhook from the network
//! is believed only when its tool's own credential vouches for it
//! ([`authenticate`]), never grantwarden's webhook key (whoever signs grant
//! requests must not also be able to open incidents):
//! - PagerDuty v3: `X-PagerDuty-Signature: v1=<hex hmac-sha256 of the raw body>`
//!   under the subscription's signing secret; several comma-separated entries
//!   during PagerDuty's rotation, any match passes.
//! - Opsgenie: its outgoing webhooks carry no signature at all. The integration
//!   is configured with a custom header [`OPSGENIE_HEADER`] holding a shared
//!   token, compared in constant time. That token is a bearer credential: it
//!   does not bind the body, and anyone who sees one request can forge others.
//!
//! Neither signature carries a time, so the update itself must: a network
//! webhook without the tool's time of the change is refused, one that opens an
//! incident more than [`VENDOR_WINDOW`] ago is refused as a replay, and the
//! caller remembers each accepted body for that long ([`VendorWebhook::replay`]).
//! A replay older than that can only repeat an update the store already
//! orders by its time. A tool without a configured secret is refused outright.

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::{FieldError, StoreError};
use crate::store::ReplayKey;

/// The header of PagerDuty's v3 webhook signature.
pub const PAGERDUTY_HEADER: &str = "X-PagerDuty-Signature";

/// The custom header an Opsgenie outgoing webhook integration is configured to send
/// with the shared token.
pub const OPSGENIE_HEADER: &str = "X-Grantwarden-Opsgenie-Token";

/// How long an accepted vendor webhook is remembered, and how old an update that
/// opens an incident may be. PagerDuty retries a delivery for about 20 minutes.
pub const VENDOR_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// At most this many signatures in one PagerDuty header.
const MAX_SIGNATURES: usize = 16;

/// Open or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentStatus {
    /// Triggered or acknowledged.
    Open,
    /// Resolved or closed.
    Resolved,
}

/// One update of one incident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IncidentUpdate {
    /// The incident id as requests name it.
    pub id: String,
    /// Its status now.
    pub status: IncidentStatus,
    /// Which tool said so.
    pub source: String,
    /// When.
    pub at: DateTime<Utc>,
}

fn field<'v>(v: &'v serde_json::Value, path: &[&str]) -> Option<&'v serde_json::Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

/// The time at `path`: RFC 3339 text, or a number of epoch seconds, milliseconds,
/// microseconds or nanoseconds (Opsgenie writes both of the last two), told apart
/// by magnitude. Absent: `None`; present and unreadable: an error naming it.
fn time_at(v: &serde_json::Value, path: &[&str]) -> Result<Option<DateTime<Utc>>, FieldError> {
    let name = path.join(".");
    let Some(x) = field(v, path).filter(|x| !x.is_null()) else { return Ok(None) };
    let bad = |why: &str| FieldError::new(name.clone(), format!("{x} is not a time: {why}"));
    if let Some(t) = x.as_str() {
        return DateTime::parse_from_rfc3339(t).map(|t| Some(t.with_timezone(&Utc))).map_err(|e| bad(&e.to_string()));
    }
    let n = x.as_i64().filter(|n| *n > 0).ok_or_else(|| bad("expected RFC 3339 text or a positive epoch number"))?;
    let (secs, nanos) = match n {
        n if n >= 100_000_000_000_000_000 => (n / 1_000_000_000, n % 1_000_000_000),
        n if n >= 100_000_000_000_000 => (n / 1_000_000, (n % 1_000_000) * 1_000),
        n if n >= 100_000_000_000 => (n / 1_000, (n % 1_000) * 1_000_000),
        n => (n, 0),
    };
    DateTime::from_timestamp(secs, nanos as u32).map(Some).ok_or_else(|| bad("out of range"))
}

/// Normalizes an incident webhook body received at `now`. The update is dated by
/// the tool's time of the change when the body has one (never later than `now`),
/// else by `now`.
pub fn parse_incident(body: &[u8], now: DateTime<Utc>) -> Result<IncidentUpdate, FieldError> {
    read(body, now).map(|read| read.update)
}

/// A body read: the update, and whether the tool dated it (else it is dated `now`).
struct Read {
    update: IncidentUpdate,
    /// The field the tool's time of the change is read from.
    time_field: &'static str,
    dated_by_tool: bool,
}

fn read(body: &[u8], now: DateTime<Utc>) -> Result<Read, FieldError> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| FieldError::new("body", format!("not JSON: {e}")))?;
    let text = |path: &[&str]| field(&v, path).and_then(|x| x.as_str()).map(str::to_owned);
    let dated =
        |path: &[&str]| -> Result<DateTime<Utc>, FieldError> { Ok(time_at(&v, path)?.map_or(now, |t| t.min(now))) };
    if let Some(kind) = text(&["event", "event_type"]) {
        let id = text(&["event", "data", "id"]).ok_or_else(|| FieldError::new("event.data.id", "missing"))?;
        let status = match kind.as_str() {
            "incident.triggered" | "incident.acknowledged" | "incident.reopened" | "incident.escalated" => {
                IncidentStatus::Open
            }
            "incident.resolved" => IncidentStatus::Resolved,
            other => {
                return Err(FieldError::new("event.event_type", format!("{other:?} is not an incident status change")));
            }
        };
        let dated_by_tool = time_at(&v, &["event", "occurred_at"])?.is_some();
        let at = dated(&["event", "occurred_at"])?;
        let update = IncidentUpdate { id, status, source: Vendor::PagerDuty.source().into(), at };
        return Ok(Read { update, time_field: "event.occurred_at", dated_by_tool });
    }
    if let Some(action) = text(&["action"]) {
        let id = text(&["alert", "alertId"])
            .or_else(|| text(&["alert", "tinyId"]))
            .ok_or_else(|| FieldError::new("alert.alertId", "missing"))?;
        let status = match action.as_str() {
            "Create" | "Acknowledge" | "Escalate" => IncidentStatus::Open,
            "Close" | "Delete" => IncidentStatus::Resolved,
            other => return Err(FieldError::new("action", format!("{other:?} is not an alert status change"))),
        };
        let (at, dated_by_tool) = match time_at(&v, &["alert", "updatedAt"])? {
            Some(_) => (dated(&["alert", "updatedAt"])?, true),
            None => (dated(&["alert", "createdAt"])?, time_at(&v, &["alert", "createdAt"])?.is_some()),
        };
        let update = IncidentUpdate { id, status, source: Vendor::Opsgenie.source().into(), at };
        return Ok(Read { update, time_field: "alert.updatedAt", dated_by_tool });
    }
    Err(FieldError::new("body", "neither a PagerDuty (event.event_type) nor an Opsgenie (action) webhook"))
}

/// An incident tool whose webhooks intake takes from the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// PagerDuty v3 webhooks, signed with the subscription's secret.
    PagerDuty,
    /// Opsgenie outgoing webhooks, with a shared token in a custom header.
    Opsgenie,
}

impl Vendor {
    /// The [`IncidentUpdate::source`] of its updates.
    pub fn source(self) -> &'static str {
        match self {
            Vendor::PagerDuty => "pagerduty",
            Vendor::Opsgenie => "opsgenie",
        }
    }

    /// The header its credential travels in.
    pub fn header(self) -> &'static str {
        match self {
            Vendor::PagerDuty => PAGERDUTY_HEADER,
            Vendor::Opsgenie => OPSGENIE_HEADER,
        }
    }
}

impl std::fmt::Display for Vendor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Vendor::PagerDuty => "PagerDuty",
            Vendor::Opsgenie => "Opsgenie",
        })
    }
}

/// Why a vendor webhook is not believed. Nothing here quotes the credential
/// presented; the body is quoted only once its credential checked out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VendorRefusal {
    /// No secret is configured for this tool: its webhooks are refused (fail secure).
    #[error("{0} webhooks are not accepted: no {0} secret is configured")]
    NotConfigured(Vendor),
    /// The credential header is absent or blank.
    #[error("the {0} header is missing")]
    Missing(&'static str),
    /// The credential header does not read as the tool writes it.
    #[error("the {header} header is malformed: {why}")]
    Malformed {
        /// The header.
        header: &'static str,
        /// What is wrong, without quoting it.
        why: String,
    },
    /// The credential does not match the configured secret.
    #[error("the {0} credential does not match")]
    Mismatch(Vendor),
    /// The authenticated body is not an update this tool sends.
    #[error("{field}: {reason}")]
    Body {
        /// The failing field.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// It opens an incident as of longer ago than [`VENDOR_WINDOW`]: a replay.
    #[error("the update opening incident {id} dates from {at}, more than {} hours ago: refused as a replay", VENDOR_WINDOW.as_secs() / 3600)]
    Stale {
        /// The incident.
        id: String,
        /// Its time of the change.
        at: DateTime<Utc>,
    },
}

/// A vendor webhook that checked out: the update, and the record that makes it count once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorWebhook {
    /// The update to record.
    pub update: IncidentUpdate,
    /// `<vendor>:<sha256 of the body>`: a redelivery of the same event has the same key.
    pub replay: ReplayKey,
    /// Until when to remember it.
    pub replay_until: DateTime<Utc>,
}

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8]) -> HmacSha256 {
    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length")
}

/// PagerDuty: any `v1=` entry is the hex HMAC-SHA256 of the raw body under `secret`.
fn verify_pagerduty(header: &str, body: &[u8], secret: &[u8]) -> Result<(), VendorRefusal> {
    let malformed = |why: String| VendorRefusal::Malformed { header: PAGERDUTY_HEADER, why };
    let mut candidates = Vec::new();
    for (i, entry) in header.split(',').enumerate() {
        // other versions are ignored, as PagerDuty's own verifiers do
        let Some(hex_mac) = entry.trim().strip_prefix("v1=") else { continue };
        if candidates.len() == MAX_SIGNATURES {
            return Err(malformed(format!("more than {MAX_SIGNATURES} signatures")));
        }
        candidates
            .push(hex::decode(hex_mac.trim()).map_err(|_| malformed(format!("entry {} is not hexadecimal", i + 1)))?);
    }
    if candidates.is_empty() {
        return Err(malformed("no v1 signature".into()));
    }
    let expected = hmac(secret).chain_update(body);
    if candidates.iter().any(|c| expected.clone().verify_slice(c).is_ok()) {
        Ok(())
    } else {
        Err(VendorRefusal::Mismatch(Vendor::PagerDuty))
    }
}

/// Opsgenie: the header holds the shared token. Both sides are run through an
/// HMAC keyed with the secret first, so the comparison is of two 32-byte tags in
/// constant time and leaks neither content nor length.
fn verify_opsgenie(header: &str, secret: &[u8]) -> Result<(), VendorRefusal> {
    let expected = hmac(secret).chain_update(secret).finalize().into_bytes();
    hmac(secret)
        .chain_update(header.as_bytes())
        .verify_slice(&expected)
        .map_err(|_| VendorRefusal::Mismatch(Vendor::Opsgenie))
}

/// The `X-PagerDuty-Signature` PagerDuty sends with `body` under `secret`: for
/// tests, and for relays that forward PagerDuty's deliveries.
pub fn sign_pagerduty(secret: &[u8], body: &[u8]) -> String {
    format!("v1={}", hex::encode(hmac(secret).chain_update(body).finalize().into_bytes()))
}

/// Believes a webhook of `vendor` received at `now` only if `credential` (the value
/// of [`Vendor::header`]) checks out against `secret`, the body is that tool's
/// update dated by the tool, and it does not open an incident as of long ago.
/// `secret` is `None` when none is configured: refused.
pub fn authenticate(
    vendor: Vendor,
    credential: Option<&str>,
    body: &[u8],
    secret: Option<&[u8]>,
    now: DateTime<Utc>,
) -> Result<VendorWebhook, VendorRefusal> {
    let secret = secret.filter(|s| !s.is_empty()).ok_or(VendorRefusal::NotConfigured(vendor))?;
    let credential = credential.filter(|c| !c.trim().is_empty()).ok_or(VendorRefusal::Missing(vendor.header()))?;
    match vendor {
        Vendor::PagerDuty => verify_pagerduty(credential, body, secret)?,
        Vendor::Opsgenie => verify_opsgenie(credential, secret)?,
    }
    let body_error = |FieldError { field, reason }| VendorRefusal::Body { field, reason };
    let read = read(body, now).map_err(body_error)?;
    if read.update.source != vendor.source() {
        return Err(VendorRefusal::Body { field: "body".into(), reason: format!("not a {vendor} webhook") });
    }
    if !read.dated_by_tool {
        return Err(VendorRefusal::Body {
            field: read.time_field.into(),
            reason: "missing: an update from the network must carry the tool's time of the change".into(),
        });
    }
    let window = chrono::Duration::from_std(VENDOR_WINDOW).expect("a day fits");
    if read.update.status == IncidentStatus::Open && read.update.at < now - window {
        return Err(VendorRefusal::Stale { id: read.update.id, at: read.update.at });
    }
    Ok(VendorWebhook { update: read.update, replay: ReplayKey::new(vendor.source(), body), replay_until: now + window })
}

/// Where incident states are kept (the local store; DynamoDB on AWS).
pub trait IncidentStore {
    /// Records an update; a later update wins, an older one is ignored.
    fn record_incident(&self, update: &IncidentUpdate) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// The last update of an incident.
    fn incident(&self, id: &str) -> impl Future<Output = Result<Option<IncidentUpdate>, StoreError>> + Send;
}

/// Incident states read up front, for routing (which is not async).
pub struct KnownIncidents(pub Vec<IncidentUpdate>);

impl crate::access_policy::Incidents for KnownIncidents {
    fn is_open(&self, id: &str, now: DateTime<Utc>) -> bool {
        self.0.iter().any(|u| u.id == id && u.status == IncidentStatus::Open && u.at <= now)
    }
}

/// The incident `id` names, as `store` last heard of it, read up front for routing:
/// the one place a request's or a ticket's incident is looked up. No id: none.
pub async fn known_incidents<S: IncidentStore + Sync>(
    store: &S,
    id: Option<&str>,
) -> Result<KnownIncidents, StoreError> {
    let mut known = Vec::new();
    if let Some(id) = id
        && let Some(update) = store.incident(id).await?
    {
        known.push(update);
    }
    Ok(KnownIncidents(known))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-11-22T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn pagerduty_and_opsgenie_webhooks_become_one_update() {
        let pd = br#"{"event":{"id":"e1","event_type":"incident.triggered","data":{"id":"PD-42","type":"incident"}}}"#;
        assert_eq!(
            parse_incident(pd, now()).unwrap(),
            IncidentUpdate { id: "PD-42".into(), status: IncidentStatus::Open, source: "pagerduty".into(), at: now() }
        );
        let og = br#"{"action":"Close","alert":{"alertId":"OG-7","message":"db down"}}"#;
        assert_eq!(parse_incident(og, now()).unwrap().status, IncidentStatus::Resolved);
        assert_eq!(
            parse_incident(br#"{"event":{"event_type":"incident.resolved","data":{}}}"#, now()).unwrap_err().field,
            "event.data.id"
        );
        assert_eq!(parse_incident(br#"{"hello":1}"#, now()).unwrap_err().field, "body");
        assert_eq!(
            parse_incident(br#"{"action":"Snooze","alert":{"alertId":"x"}}"#, now()).unwrap_err().field,
            "action"
        );
    }

    #[test]
    fn an_update_is_dated_by_the_tools_time_of_the_change_not_its_arrival() {
        let pd = br#"{"event":{"event_type":"incident.triggered","occurred_at":"2026-11-22T11:00:00.123Z","data":{"id":"PD-42"}}}"#;
        assert_eq!(parse_incident(pd, now()).unwrap().at, "2026-11-22T11:00:00.123Z".parse::<DateTime<Utc>>().unwrap());
        // Opsgenie: updatedAt in nanoseconds, createdAt in milliseconds
        let at = "2026-11-22T11:30:00Z".parse::<DateTime<Utc>>().unwrap();
        let ns = format!(
            r#"{{"action":"Close","alert":{{"alertId":"OG-7","updatedAt":{}}}}}"#,
            at.timestamp() * 1_000_000_000
        );
        assert_eq!(parse_incident(ns.as_bytes(), now()).unwrap().at, at);
        let ms = format!(r#"{{"action":"Create","alert":{{"alertId":"OG-7","createdAt":{}}}}}"#, at.timestamp_millis());
        assert_eq!(parse_incident(ms.as_bytes(), now()).unwrap().at, at);
        // a clock ahead of ours never dates an update in the future; no time at all is the arrival
        let ahead = br#"{"event":{"event_type":"incident.triggered","occurred_at":"2027-01-01T00:00:00Z","data":{"id":"PD-1"}}}"#;
        assert_eq!(parse_incident(ahead, now()).unwrap().at, now());
        let bad = br#"{"event":{"event_type":"incident.triggered","occurred_at":"yesterday","data":{"id":"PD-1"}}}"#;
        assert_eq!(parse_incident(bad, now()).unwrap_err().field, "event.occurred_at");
    }

    const PD_SECRET: &[u8] = b"pd-test-signing-secret";
    const PD_BODY: &[u8] = br#"{"event":{"id":"01EVT","event_type":"incident.triggered","occurred_at":"2026-11-22T11:59:00Z","data":{"id":"PD-42","type":"incident"}}}"#;
    // printf '%s' "$PD_BODY" | openssl dgst -sha256 -hmac pd-test-signing-secret
    const PD_SIGNATURE: &str = "v1=c8438fe2ff34f7ba09964e19c1dd040674fcf3783252a8fcad865378d313980c";

    fn pd(header: Option<&str>, body: &[u8]) -> Result<VendorWebhook, VendorRefusal> {
        authenticate(Vendor::PagerDuty, header, body, Some(PD_SECRET), now())
    }

    fn pd_sign(body: &[u8]) -> String {
        sign_pagerduty(PD_SECRET, body)
    }

    #[test]
    fn a_pagerduty_webhook_signed_with_the_subscription_secret_is_believed() {
        assert_eq!(sign_pagerduty(PD_SECRET, PD_BODY), PD_SIGNATURE);
        let accepted = pd(Some(PD_SIGNATURE), PD_BODY).unwrap();
        assert_eq!((accepted.update.id.as_str(), accepted.update.status), ("PD-42", IncidentStatus::Open));
        assert_eq!(accepted.update.at, "2026-11-22T11:59:00Z".parse::<DateTime<Utc>>().unwrap());
        assert_eq!(accepted.replay, ReplayKey::new("pagerduty", PD_BODY));
        assert_eq!(accepted.replay_until, now() + chrono::Duration::hours(24));
        // during PagerDuty's rotation: an entry per secret, any match passes; other versions are ignored
        let rotating = format!("v1={},v2=zz, {PD_SIGNATURE}", "ab".repeat(32));
        assert_eq!(pd(Some(&rotating), PD_BODY), Ok(accepted));
    }

    #[test]
    fn a_pagerduty_webhook_without_the_right_signature_is_refused() {
        assert_eq!(pd(None, PD_BODY), Err(VendorRefusal::Missing(PAGERDUTY_HEADER)));
        assert_eq!(pd(Some(" "), PD_BODY), Err(VendorRefusal::Missing(PAGERDUTY_HEADER)));
        let changed = String::from_utf8(PD_BODY.to_vec()).unwrap().replace("PD-42", "PD-43");
        assert_eq!(pd(Some(PD_SIGNATURE), changed.as_bytes()), Err(VendorRefusal::Mismatch(Vendor::PagerDuty)));
        let other_secret = sign_pagerduty(b"other", PD_BODY);
        assert_eq!(pd(Some(&other_secret), PD_BODY), Err(VendorRefusal::Mismatch(Vendor::PagerDuty)));
        for (header, why) in [("v1=xyz", "entry 1 is not hexadecimal"), ("sha256=00", "no v1 signature")] {
            let refused = pd(Some(header), PD_BODY);
            assert_eq!(refused, Err(VendorRefusal::Malformed { header: PAGERDUTY_HEADER, why: why.into() }));
        }
        // grantwarden's own signature header format means nothing here
        let grantwarden = format!("t=1795348800,v2={}", "00".repeat(32));
        assert!(matches!(pd(Some(&grantwarden), PD_BODY), Err(VendorRefusal::Malformed { .. })));
    }

    #[test]
    fn without_a_configured_secret_every_vendor_webhook_is_refused() {
        for vendor in [Vendor::PagerDuty, Vendor::Opsgenie] {
            for secret in [None, Some(&b""[..])] {
                let refused = authenticate(vendor, Some(PD_SIGNATURE), PD_BODY, secret, now());
                assert_eq!(refused, Err(VendorRefusal::NotConfigured(vendor)));
            }
        }
    }

    #[test]
    fn an_opsgenie_webhook_needs_the_configured_token() {
        let body = br#"{"action":"Create","alert":{"alertId":"OG-7","createdAt":1795347000000}}"#;
        let og = |token: Option<&str>| authenticate(Vendor::Opsgenie, token, body, Some(b"og-token-1234"), now());
        assert_eq!(og(Some("og-token-1234")).unwrap().update.id, "OG-7");
        assert_eq!(og(None), Err(VendorRefusal::Missing(OPSGENIE_HEADER)));
        for wrong in ["og-token-123", "og-token-12345", "OG-TOKEN-1234", "x"] {
            assert_eq!(og(Some(wrong)), Err(VendorRefusal::Mismatch(Vendor::Opsgenie)), "{wrong}");
        }
        assert!(!og(Some("og-token-123")).unwrap_err().to_string().contains("og-token"), "never quotes a token");
    }

    #[test]
    fn a_vendor_webhook_must_be_its_own_tools_dated_update() {
        // an Opsgenie body under PagerDuty's signature, and the other way round
        let og = br#"{"action":"Create","alert":{"alertId":"OG-7","createdAt":1795347000000}}"#;
        assert_eq!(
            pd(Some(&pd_sign(og)), og).unwrap_err(),
            VendorRefusal::Body { field: "body".into(), reason: "not a PagerDuty webhook".into() }
        );
        let as_opsgenie = authenticate(Vendor::Opsgenie, Some("t"), PD_BODY, Some(b"t"), now());
        assert!(matches!(as_opsgenie, Err(VendorRefusal::Body { .. })));
        // no time of the change: it would be dated on arrival, so a replay could reopen it
        let undated = br#"{"event":{"event_type":"incident.triggered","data":{"id":"PD-42"}}}"#;
        assert_eq!(
            pd(Some(&pd_sign(undated)), undated).unwrap_err(),
            VendorRefusal::Body {
                field: "event.occurred_at".into(),
                reason: "missing: an update from the network must carry the tool's time of the change".into()
            }
        );
        let og_undated = br#"{"action":"Create","alert":{"alertId":"OG-7"}}"#;
        let refused = authenticate(Vendor::Opsgenie, Some("t"), og_undated, Some(b"t"), now()).unwrap_err();
        assert!(matches!(refused, VendorRefusal::Body { field, .. } if field == "alert.updatedAt"));
    }

    #[test]
    fn an_old_update_that_opens_an_incident_is_a_replay_and_an_old_resolve_is_not() {
        let opens = br#"{"event":{"event_type":"incident.triggered","occurred_at":"2026-11-21T11:59:59Z","data":{"id":"PD-1"}}}"#;
        let refused = pd(Some(&pd_sign(opens)), opens).unwrap_err();
        assert!(matches!(refused, VendorRefusal::Stale { ref id, .. } if id == "PD-1"), "{refused}");
        let fresh = br#"{"event":{"event_type":"incident.triggered","occurred_at":"2026-11-21T12:00:00Z","data":{"id":"PD-1"}}}"#;
        assert!(pd(Some(&pd_sign(fresh)), fresh).is_ok(), "24 hours exactly is still in");
        let resolves = br#"{"event":{"event_type":"incident.resolved","occurred_at":"2026-11-01T00:00:00Z","data":{"id":"PD-1"}}}"#;
        assert_eq!(pd(Some(&pd_sign(resolves)), resolves).unwrap().update.status, IncidentStatus::Resolved);
    }

    proptest::proptest! {
        #[test]
        fn any_credential_text_is_refused_or_checked_without_panic(header in ".{0,200}", body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            for vendor in [Vendor::PagerDuty, Vendor::Opsgenie] {
                let result = authenticate(vendor, Some(&header), &body, Some(b"secret"), now());
                proptest::prop_assert!(result.is_err());
            }
        }
    }
}
