//! Export controls that act: an alert on a ticket's credential (an export, a
//! statement outside its path) is told to people (the [`AlertPublisher`]:
//! SNS on AWS), journaled on the target's chain (`queries.alert`), and, when
//! the registry says `queries.on_export: revoke`, ends the ticket early
//! through the existing revocation path ([`ticket_flow::end_by_control`]:
//! `revoke_requested`, then whatever revokes takes it). The [`AlertSink`]
//! that `crate::queries::ingest` raises alerts through, for the CLI and the
//! queries function alike; and [`Controls::role_changes`], the log's GRANTs
//! routed as they are logged (drift seen within seconds, not at the next
//! scan), each grant no ticket covers an alert as well as a finding.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::audit::event::QueryAlerted;
use crate::audit::{AuditJournal, NewEvent};
use crate::error::StoreError;
use crate::identity::Voucher;
use crate::incident::IncidentStore;
use crate::intake::{Outcome, intake, record as record_outcome};
use crate::normalize::{Context, from_audit_entry};
use crate::pglog::LogRecord;
use crate::policy::PolicyRegistry;
use crate::queries::{AlertSink, QueryAlert};
use crate::query_policy::OnExport;
use crate::raise_alerts::AlertPublisher;
use crate::report::Finding;
use crate::scoring::ScoringConfig;
use crate::snapshot::TargetId;
use crate::store::FindingStore;
use crate::store::TicketStore;
use crate::ticket_flow;

/// Who acts on query alerts, and how.
pub struct Controls<'a, S, P> {
    /// The store: the tickets to end, the journal.
    pub store: &'a S,
    /// Where people are told (none: the journal only, as locally).
    pub publisher: Option<&'a P>,
    /// The registry's `queries.on_export`.
    pub on_export: OnExport,
    /// The actor journaled (`grantwarden:queries`).
    pub actor: &'a str,
    /// When.
    pub now: DateTime<Utc>,
}

/// No publisher: alerts go to the journal (and the command's output) only.
pub struct NoPublisher;

impl AlertPublisher for NoPublisher {
    type Error = std::convert::Infallible;

    async fn publish(&self, _: &str, _: &serde_json::Value) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl<S, P> AlertSink for Controls<'_, S, P>
where
    S: TicketStore + AuditJournal + Sync,
    P: AlertPublisher + Sync,
{
    async fn raise(&self, target: &TargetId, alerts: &[QueryAlert]) -> Result<(), String> {
        for alert in alerts {
            let sentence = alert.describe();
            let mut ticket_ended = false;
            if self.on_export == OnExport::Revoke
                && let Some(ticket) = &alert.event.ticket
            {
                let why = format!("export control: {sentence}");
                ticket_ended = ticket_flow::end_by_control(self.store, ticket, self.actor, &why, self.now)
                    .await
                    .map_err(|e| format!("ending ticket {ticket}: {e}"))?
                    .is_some();
            }
            let mut detail = QueryAlerted {
                alert: sentence.clone(),
                detail: serde_json::to_value(alert).expect("an alert always serializes"),
                published: false,
                ticket_ended,
            };
            if let Some(p) = self.publisher {
                p.publish(
                    &format!("grantwarden query alert: {sentence}"),
                    &serde_json::to_value(&detail).unwrap_or_default(),
                )
                .await
                .map_err(|e| format!("publishing the alert: {e}"))?;
                detail.published = true;
            }
            tracing::warn!(target = %target, ticket = alert.event.ticket.as_deref().unwrap_or("-"), "{sentence}");
            self.store
                .append(NewEvent::query_alert(target.as_str(), self.actor, &alert.event.key, &detail, alert.event.at))
                .await
                .map_err(|e| format!("journaling the alert: {e}"))?;
        }
        Ok(())
    }
}

/// What one GRANT or REVOKE seen in the log became, and when the server logged it.
#[derive(Debug)]
pub struct RoleChange {
    /// When the server logged the statement.
    pub logged_at: DateTime<Utc>,
    /// The delivery id it was routed under (`pgaudit:<record sha256, 16 digits>`).
    pub delivery_id: String,
    /// What routing made of it (an untagged finding for a grant no ticket covers).
    pub outcome: Outcome,
    /// The alert raised on it (an untagged or refused grant): its sentence and
    /// whether it was published.
    pub alert: Option<(String, bool)>,
}

/// Why routing a log's role changes stopped; what was routed before stays
/// routed, and routing the records again routes to the same tickets and findings.
#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Publishing or journaling the alert on a grant no ticket covers failed.
    #[error("alerting on {delivery_id}: {reason}")]
    Alert {
        /// The record's delivery id.
        delivery_id: String,
        /// Why.
        reason: String,
    },
}

/// The alert on a grant no ticket covers, as one sentence.
fn drift_sentence(finding: &Finding, user: Option<&str>, at: DateTime<Utc>) -> String {
    format!(
        "{} was granted {} on {} by {} at {} and no ticket covers it ({} untagged finding)",
        finding.grantee.as_str(),
        finding.privilege,
        finding.object,
        user.unwrap_or("an unknown role"),
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        finding.severity,
    )
}

impl<S, P> Controls<'_, S, P>
where
    S: TicketStore + FindingStore + AuditJournal + IncidentStore + Sync,
    P: AlertPublisher + Sync,
{
    /// Drift within seconds: the `ROLE` entries (GRANT, REVOKE) of the
    /// target's database among `records` go through intake as pgaudit lines
    /// do ([`crate::normalize::from_audit_entry`], [`crate::intake::intake`]):
    /// a grant no ticket covers is an untagged finding, recorded and journaled
    /// now rather than at the next scan, and an alert: published (SNS on AWS),
    /// then journaled as `queries.alert` under the record's key. Delivery ids
    /// come from the records, so a record seen again routes to the same
    /// ticket or finding (a caller that routes a batch seen before raises its
    /// alerts again: the queries function routes a batch once).
    pub async fn role_changes(
        &self,
        registry: Result<&PolicyRegistry, String>,
        target: &TargetId,
        database: Option<&str>,
        records: impl IntoIterator<Item = LogRecord>,
        scoring: &ScoringConfig,
    ) -> Result<Vec<RoleChange>, RoutingError> {
        let now = self.now;
        let targets = BTreeSet::new();
        let ctx = Context { targets: &targets, now, audit_target: Some(target) };
        let mut out = Vec::new();
        for record in records {
            if database.is_some_and(|d| record.database.as_deref() != Some(d)) {
                continue;
            }
            let Some(Ok(entry)) = crate::pglog::audit_entry(&record.message) else { continue };
            let id = format!("pgaudit:{}", &record.sha256[..16]);
            let requests = match from_audit_entry(&entry, Some(record.at), record.user.clone(), &id, &ctx) {
                Ok(None) => continue,
                Ok(Some(requests)) => requests.into_iter().map(Ok).collect(),
                Err(e) => vec![Err(e)],
            };
            for request in requests {
                let delivery_id = request.as_ref().map(|r| r.delivery_id.clone()).unwrap_or_else(|_| id.clone());
                let outcome = intake(self.store, registry.clone(), request, &Voucher::Operator, scoring, now).await?;
                record_outcome(self.store, target, &outcome, now).await?;
                let alert = match &outcome {
                    Outcome::Untagged(finding) | Outcome::Refused { finding, .. } => {
                        let alerted = self.drift_alert(target, &record, &delivery_id, finding).await;
                        Some(
                            alerted
                                .map_err(|reason| RoutingError::Alert { delivery_id: delivery_id.clone(), reason })?,
                        )
                    }
                    _ => None,
                };
                out.push(RoleChange { logged_at: record.at, delivery_id, outcome, alert });
            }
        }
        Ok(out)
    }

    /// Publishes and journals the alert on `finding`, made by `record`'s statement.
    async fn drift_alert(
        &self,
        target: &TargetId,
        record: &LogRecord,
        delivery_id: &str,
        finding: &Finding,
    ) -> Result<(String, bool), String> {
        let sentence = drift_sentence(finding, record.user.as_deref(), record.at);
        let mut detail = QueryAlerted {
            alert: sentence.clone(),
            detail: serde_json::json!({
                "alert": "untagged_grant",
                "delivery_id": delivery_id,
                "user": record.user,
                "logged_at": record.at,
                "finding": finding,
            }),
            published: false,
            ticket_ended: false,
        };
        if let Some(p) = self.publisher {
            p.publish(&format!("grantwarden drift: {sentence}"), &serde_json::to_value(&detail).unwrap_or_default())
                .await
                .map_err(|e| format!("publishing the alert: {e}"))?;
            detail.published = true;
        }
        tracing::warn!(target = %target, delivery_id, "{sentence}");
        self.store
            .append(NewEvent::query_alert(target.as_str(), self.actor, &record.sha256, &detail, record.at))
            .await
            .map_err(|e| format!("journaling the alert: {e}"))?;
        Ok((sentence, detail.published))
    }
}
