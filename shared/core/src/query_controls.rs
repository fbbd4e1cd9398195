//! Export controls that act: an alert on a ticket's credential (an export, a
//! statement outside its path) is told to people (the [`AlertPublisher`]:
//! SNS on AWS), journaled on the target's chain (`queries.alert`), and, when
//! the registry says `queries.on_export: revoke`, ends the ticket early
//! through the existing revocation path ([`ticket_flow::end_by_control`]:
//! `revoke_requested`, then whatever revokes takes it). The [`AlertSink`]
//! that `crate::queries::ingest` raises alerts through, for the CLI and the
//! queries function alike.

use chrono::{DateTime, Utc};

use crate::audit::event::QueryAlerted;
use crate::audit::{AuditJournal, NewEvent};
use crate::queries::{AlertSink, QueryAlert};
use crate::query_policy::OnExport;
use crate::raise_alerts::AlertPublisher;
use crate::snapshot::TargetId;
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
