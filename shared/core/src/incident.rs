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

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::StoreError;

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
fn time_at(v: &serde_json::Value, path: &[&str]) -> Result<Option<DateTime<Utc>>, (String, String)> {
    let name = path.join(".");
    let Some(x) = field(v, path).filter(|x| !x.is_null()) else { return Ok(None) };
    let bad = |why: &str| (name.clone(), format!("{x} is not a time: {why}"));
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
pub fn parse_incident(body: &[u8], now: DateTime<Utc>) -> Result<IncidentUpdate, (String, String)> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ("body".to_owned(), format!("not JSON: {e}")))?;
    let text = |path: &[&str]| field(&v, path).and_then(|x| x.as_str()).map(str::to_owned);
    let dated = |path: &[&str]| -> Result<DateTime<Utc>, (String, String)> {
        Ok(time_at(&v, path)?.map_or(now, |t| t.min(now)))
    };
    if let Some(kind) = text(&["event", "event_type"]) {
        let id = text(&["event", "data", "id"]).ok_or(("event.data.id".to_owned(), "missing".to_owned()))?;
        let status = match kind.as_str() {
            "incident.triggered" | "incident.acknowledged" | "incident.reopened" | "incident.escalated" => {
                IncidentStatus::Open
            }
            "incident.resolved" => IncidentStatus::Resolved,
            other => return Err(("event.event_type".into(), format!("{other:?} is not an incident status change"))),
        };
        let at = dated(&["event", "occurred_at"])?;
        return Ok(IncidentUpdate { id, status, source: "pagerduty".into(), at });
    }
    if let Some(action) = text(&["action"]) {
        let id = text(&["alert", "alertId"])
            .or_else(|| text(&["alert", "tinyId"]))
            .ok_or(("alert.alertId".to_owned(), "missing".to_owned()))?;
        let status = match action.as_str() {
            "Create" | "Acknowledge" | "Escalate" => IncidentStatus::Open,
            "Close" | "Delete" => IncidentStatus::Resolved,
            other => return Err(("action".into(), format!("{other:?} is not an alert status change"))),
        };
        let at = match time_at(&v, &["alert", "updatedAt"])? {
            Some(_) => dated(&["alert", "updatedAt"])?,
            None => dated(&["alert", "createdAt"])?,
        };
        return Ok(IncidentUpdate { id, status, source: "opsgenie".into(), at });
    }
    Err(("body".into(), "neither a PagerDuty (event.event_type) nor an Opsgenie (action) webhook".into()))
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

impl crate::access::Incidents for KnownIncidents {
    fn is_open(&self, id: &str, now: DateTime<Utc>) -> bool {
        self.0.iter().any(|u| u.id == id && u.status == IncidentStatus::Open && u.at <= now)
    }
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
            parse_incident(br#"{"event":{"event_type":"incident.resolved","data":{}}}"#, now()).unwrap_err().0,
            "event.data.id"
        );
        assert_eq!(parse_incident(br#"{"hello":1}"#, now()).unwrap_err().0, "body");
        assert_eq!(parse_incident(br#"{"action":"Snooze","alert":{"alertId":"x"}}"#, now()).unwrap_err().0, "action");
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
        assert_eq!(parse_incident(bad, now()).unwrap_err().0, "event.occurred_at");
    }
}
