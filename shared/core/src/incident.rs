//! Incidents, as an incident tool's webhook reports them: break-glass access
//! is granted only while the incident it names is open.
//!
//! Two shapes are read: PagerDuty's v3 webhook (`event.event_type`
//! `incident.triggered|acknowledged|resolved`, `event.data.id`) and
//! Opsgenie's (`action` `Create|Acknowledge|Close`, `alert.alertId` or
//! `alert.tinyId`). Either is normalized to an [`IncidentUpdate`]; anything
//! else is an error naming the field.

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

/// Normalizes an incident webhook body received at `now`.
pub fn parse_incident(body: &[u8], now: DateTime<Utc>) -> Result<IncidentUpdate, (String, String)> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| ("body".to_owned(), format!("not JSON: {e}")))?;
    let text = |path: &[&str]| field(&v, path).and_then(|x| x.as_str()).map(str::to_owned);
    if let Some(kind) = text(&["event", "event_type"]) {
        let id = text(&["event", "data", "id"]).ok_or(("event.data.id".to_owned(), "missing".to_owned()))?;
        let status = match kind.as_str() {
            "incident.triggered" | "incident.acknowledged" | "incident.reopened" | "incident.escalated" => {
                IncidentStatus::Open
            }
            "incident.resolved" => IncidentStatus::Resolved,
            other => return Err(("event.event_type".into(), format!("{other:?} is not an incident status change"))),
        };
        return Ok(IncidentUpdate { id, status, source: "pagerduty".into(), at: now });
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
        return Ok(IncidentUpdate { id, status, source: "opsgenie".into(), at: now });
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
}
