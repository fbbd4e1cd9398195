//! Raising a scan's governance alerts, once each: those of the report's
//! governance that no `governance.alert` event of the target's chain carries
//! yet are published (where a publisher is configured) and journaled.
//!
//! Each alert is published before it is journaled: a publish that fails leaves
//! it unjournaled, so the next delivery of the scan raises it again (at least
//! once), and a journaled alert is never raised twice.

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::audit::event::AlertRaised;
use crate::audit::{AuditEvent, AuditJournal, NewEvent};
use crate::error::StoreError;
use crate::governance_alert::GovernanceAlert;
use crate::report::Report;

/// Where alerts go to people (an SNS topic on AWS).
pub trait AlertPublisher {
    /// Why publishing failed.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Publishes one alert: a subject line and its details as JSON.
    fn publish(
        &self,
        subject: &str,
        detail: &serde_json::Value,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Why raising stopped.
#[derive(Debug, thiserror::Error)]
pub enum RaiseError<E: std::error::Error + 'static> {
    /// The journal failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The publisher failed; this alert and those after it are raised again next time.
    #[error(transparent)]
    Publish(E),
}

/// Raises the alerts of `report`'s governance not raised on its target's chain
/// before (`chain`: the target's journal chain as the caller read it, which
/// its dashboard reads too): each published through `publisher` (when there is
/// one) and then journaled as `governance.alert` by `actor`, with whether it
/// was published. Returns the alerts raised now.
pub async fn raise_governance_alerts<S, P>(
    store: &S,
    publisher: Option<&P>,
    report: &Report,
    chain: &[AuditEvent],
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Vec<GovernanceAlert>, RaiseError<P::Error>>
where
    S: AuditJournal + Sync,
    P: AlertPublisher + Sync,
{
    let Some(g) = &report.governance else { return Ok(Vec::new()) };
    let target = report.target.as_str();
    let fresh: Vec<GovernanceAlert> = crate::governance::new_alerts(g, chain).into_iter().cloned().collect();
    for alert in &fresh {
        if let Some(publisher) = publisher {
            let subject = format!("grantwarden: governance alert on {target}");
            let detail = serde_json::json!({ "target": report.target, "scan_id": report.scan_id, "alert": alert,
                "break_glass_by_month": g.break_glass_by_month, "limit": g.break_glass_threshold });
            publisher.publish(&subject, &detail).await.map_err(RaiseError::Publish)?;
        }
        let raised = AlertRaised { alert: alert.clone(), published: publisher.is_some() };
        store.append(NewEvent::governance_alert(target, &report.scan_id, &raised, actor, now)).await?;
    }
    Ok(fresh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory_store::{MemoryStore, at, ready};

    fn report(alerts: Vec<GovernanceAlert>) -> Report {
        let mut report: Report = serde_json::from_value(serde_json::json!({
            "target": "orders-prod", "scan_id": "scan-1", "snapshot_sha256": "abc", "taken_at": at(0),
            "summary": { "unauthorized": 0, "missing": 0, "orphaned": 0, "excepted": 0, "expired_exception": 0,
                "untagged": 0, "score": 0.0, "exception_weight": 0.0, "status": "ok", "complete": true },
            "findings": [],
        }))
        .expect("a report");
        let mut g = crate::governance::governance(&[], &[], Some(3), at(0));
        g.alerts = alerts;
        report.governance = Some(g);
        report
    }

    /// A publisher that keeps what it is given, or refuses everything.
    struct Topic(Option<std::sync::Mutex<Vec<(String, serde_json::Value)>>>);

    #[derive(Debug, thiserror::Error)]
    #[error("topic unreachable")]
    struct Unreachable;

    impl AlertPublisher for Topic {
        type Error = Unreachable;
        async fn publish(&self, subject: &str, detail: &serde_json::Value) -> Result<(), Unreachable> {
            self.0.as_ref().ok_or(Unreachable)?.lock().unwrap().push((subject.to_owned(), detail.clone()));
            Ok(())
        }
    }

    #[test]
    fn each_alert_is_published_then_journaled_once_and_raised_again_when_publishing_failed() {
        let glass = GovernanceAlert::BreakGlassOverLimit { limit: 3, month: "2026-11".into() };
        let r = report(vec![glass.clone()]);
        let store = MemoryStore::default();
        let down = Topic(None);
        let failed = ready(raise_governance_alerts(
            &store,
            Some(&down),
            &r,
            &store.chain("orders-prod"),
            "grantwarden:diff",
            at(1),
        ));
        assert!(matches!(failed, Err(RaiseError::Publish(Unreachable))));
        assert!(store.kinds("orders-prod").is_empty(), "not journaled, so raised again next time");

        let topic = Topic(Some(Default::default()));
        let raised = ready(raise_governance_alerts(
            &store,
            Some(&topic),
            &r,
            &store.chain("orders-prod"),
            "grantwarden:diff",
            at(2),
        ))
        .unwrap();
        assert_eq!(raised, std::slice::from_ref(&glass));
        let sent = topic.0.as_ref().unwrap().lock().unwrap().clone();
        assert_eq!(sent[0].0, "grantwarden: governance alert on orders-prod");
        assert_eq!(sent[0].1["alert"], "break-glass used more than the registry's 3 times in 2026-11");
        let event = store.chain("orders-prod").pop().unwrap();
        assert_eq!(event.kind, crate::audit::event::EventKind::GovernanceAlert);
        assert_eq!(
            event.detail,
            serde_json::json!({ "alert": "break-glass used more than the registry's 3 times in 2026-11", "published": true })
        );

        // the same month past the limit again, and one more failed revocation: only the new one
        let failed_revocation = GovernanceAlert::RevocationsFailed { count: 1 };
        let r = report(vec![glass, failed_revocation.clone()]);
        let raised = ready(raise_governance_alerts(
            &store,
            None::<&Topic>,
            &r,
            &store.chain("orders-prod"),
            "grantwarden:diff",
            at(3),
        ))
        .unwrap();
        assert_eq!(raised, [failed_revocation]);
        assert_eq!(store.chain("orders-prod").pop().unwrap().detail["published"], false, "no topic configured");
        assert_eq!(store.kinds("orders-prod").len(), 2);
    }
}
