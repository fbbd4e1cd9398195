//! Audit: each event appended to the journal (a stream INSERT of an item
//! with `seq` > 0) is written to the audit bucket as
//! `audit/<chain>/<seq>.json` under Object Lock.
//!
//! The stream delivers at least once, in order per chain: an event already
//! archived is skipped, so redelivery changes nothing. A chain head item
//! (`seq` 0) and removals are not events. A record that does not decode, or
//! a different event under an archived key, fails the batch as Validation:
//! the stream bisects down to it and hands it to the on-failure destination,
//! and verify (which compares archive and journal) reports the hole.
//!
//! Every hour an EventBridge schedule invokes the same function with a
//! scheduled event: it signs the next digest of every archived chain
//! (`grantwarden_core::digest`) with the Ed25519 key in Secrets Manager and
//! writes it, locked, beside the events. A digest signs what the archive
//! holds, as far as the journal still holds the same events; where the two
//! disagree (the journal was rewritten after archiving, or an archived object
//! was overwritten or deleted) that chain is refused: a high-priority SNS
//! alert per chain, an error log, and the invocation fails as Validation (the
//! function's Errors alarm). The journal is not written: this function is
//! not one of its writers, and the journal is the side under suspicion.
#![deny(missing_docs)]

use std::sync::Arc;

use std::time::Duration;

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use grantwarden_aws::archive::{ArchiveError, Archived};
use grantwarden_aws::{Alerts, Archive, AwsError, Clients, Clock, DynamoStore, SecretCache, Settings};
use grantwarden_core::audit::{AuditJournal, Disagreement};
use grantwarden_core::digest::{Digest, DigestKey, KeyError, digest_chains};
use grantwarden_core::error::StoreError;
use lambda_runtime::{Diagnostic, LambdaEvent};
use tracing::Instrument;

/// Why archiving failed.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A stream record is not a journal event.
    #[error("stream record {event_id}: {source}")]
    Record {
        /// The record.
        event_id: String,
        /// Why.
        source: AwsError,
    },
    /// The bucket refused, or holds another event under the key.
    #[error("event {id}: {source}")]
    Archive {
        /// The event (`<chain>:<seq>`).
        id: String,
        /// Cause.
        source: ArchiveError,
    },
    /// The signing key could not be read from Secrets Manager.
    #[error("digest: reading the signing key: {0}")]
    Secret(AwsError),
    /// The secret does not hold a usable key.
    #[error("digest: {0}")]
    Key(KeyError),
    /// Listing chains, reading the journal or writing a digest failed.
    #[error("digest: {0}")]
    Digest(StoreError),
    /// The journal and the archive disagree: those chains were not signed past the disagreement.
    #[error("digest refused (tamper signal; {signed} digests signed): {}", list(refused))]
    Refused {
        /// The disagreements, one per chain.
        refused: Vec<Disagreement>,
        /// Digests signed in the same run (other chains, and what came before each disagreement).
        signed: usize,
    },
}

fn list(refused: &[Disagreement]) -> String {
    refused.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl From<AuditError> for Diagnostic {
    fn from(e: AuditError) -> Self {
        let retryable = match &e {
            AuditError::Archive { source: ArchiveError::Aws(aws), .. } | AuditError::Secret(aws) => aws.is_retryable(),
            AuditError::Digest(StoreError::Unavailable(_)) => true,
            _ => false,
        };
        Diagnostic {
            error_type: if retryable { "Retryable" } else { "Validation" }.into(),
            error_message: e.to_string(),
        }
    }
}

/// What one stream record led to.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Handled {
    /// Not a new event (a head item, a removal).
    Ignored,
    /// Archived now or before.
    Archived(Archived),
}

/// What invokes the function: the journal stream, or the hourly digest schedule.
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
pub enum Invocation {
    /// Journal stream records.
    Stream(Event),
    /// The EventBridge schedule.
    Schedule(EventBridgeEvent),
}

/// What an invocation did.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum Outcome {
    /// One entry per stream record.
    Stream(Vec<Handled>),
    /// The digests signed.
    Digests(Vec<Digest>),
}

/// The signing key is cached this long; a rotated secret is picked up after it.
const KEY_TTL: Duration = Duration::from_secs(300);

/// The handler's state, built once per container: generic over the journal
/// (DynamoDB in the Lambda; any journal of the core port in tests).
#[derive(Clone)]
pub struct Audit<J = DynamoStore> {
    archive: Archive,
    journal: J,
    secrets: SecretCache,
    signing_secret_id: String,
    alerts: Option<Alerts>,
    clock: Arc<dyn Clock>,
}

impl Audit<DynamoStore> {
    /// The archive in `GRANTWARDEN_AUDIT_BUCKET`; an error when that bucket cannot lock objects.
    pub async fn new(clients: &Clients, settings: &Settings, clock: Arc<dyn Clock>) -> Result<Self, ArchiveError> {
        let archive = Archive::new(clients, &settings.audit_bucket, settings.audit_retention);
        archive.check_locked().await?;
        Ok(Self {
            archive,
            journal: DynamoStore::new(clients, settings),
            secrets: SecretCache::new(clients, KEY_TTL),
            signing_secret_id: settings.audit_signing_secret_id.clone(),
            alerts: settings.alert_topic_arn.as_deref().map(|arn| Alerts::new(&clients.sns, arn)),
            clock,
        })
    }
}

impl<J> Audit<J>
where
    J: AuditJournal + Send + Sync,
{
    /// The same handler over another journal (the SQLite one, or one in memory, in tests).
    pub fn with_journal<T>(self, journal: T) -> Audit<T> {
        Audit {
            archive: self.archive,
            journal,
            secrets: self.secrets,
            signing_secret_id: self.signing_secret_id,
            alerts: self.alerts,
            clock: self.clock,
        }
    }

    /// Handles either trigger.
    pub async fn invoke(&self, event: LambdaEvent<Invocation>) -> Result<Outcome, AuditError> {
        let (payload, context) = event.into_parts();
        match payload {
            Invocation::Stream(records) => Ok(Outcome::Stream(self.handle(LambdaEvent::new(records, context)).await?)),
            Invocation::Schedule(_) => Ok(Outcome::Digests(self.digest().await?)),
        }
    }

    /// Signs and stores the next digest of every archived chain with new
    /// archived events; refuses the chains whose journal and archive disagree
    /// (alerted, then returned as [`AuditError::Refused`]).
    pub async fn digest(&self) -> Result<Vec<Digest>, AuditError> {
        let secret = self.secrets.string(&self.signing_secret_id).await.map_err(AuditError::Secret)?;
        let key =
            DigestKey::from_secret(&secret, &format!("secret {}", self.signing_secret_id)).map_err(AuditError::Key)?;
        let chains = self.archive.chains().await.map_err(|e| AuditError::Digest(e.into()))?;
        let run = digest_chains(&self.journal, &self.archive, &self.archive, &chains, &key, self.clock.now())
            .await
            .map_err(AuditError::Digest)?;
        for d in &run.made {
            tracing::info!(chain = %d.chain, number = d.number, first_seq = d.first_seq, last_seq = d.last_seq, key = %d.key_fingerprint, "digest signed");
        }
        if run.refused.is_empty() {
            return Ok(run.made);
        }
        for r in &run.refused {
            tracing::error!(chain = %r.chain, seq = r.seq, archive_hash = ?r.archive_hash, journal_hash = ?r.journal_hash,
                changed = ?r.changed, reason = %r.reason, "digest refused: the journal and the archive disagree");
            if let Some(alerts) = &self.alerts
                && let Err(e) = alerts.digest_refused(r).await
            {
                // the failed invocation still raises the Errors alarm
                tracing::error!(chain = %r.chain, error = %e, "the tamper alert could not be published");
            }
        }
        Err(AuditError::Refused { refused: run.refused, signed: run.made.len() })
    }

    /// Handles a batch of journal stream records, in order.
    pub async fn handle(&self, event: LambdaEvent<Event>) -> Result<Vec<Handled>, AuditError> {
        let mut out = Vec::with_capacity(event.payload.records.len());
        for record in event.payload.records {
            // events are only ever inserted; a MODIFY is the head moving, a REMOVE is not ours to mirror
            if record.event_name != "INSERT" {
                out.push(Handled::Ignored);
                continue;
            }
            let event_id = record.event_id.clone();
            let stored = grantwarden_aws::journal::stored_event(record.change.new_image)
                .map_err(|source| AuditError::Record { event_id, source })?;
            let Some((journal_event, json)) = stored else {
                out.push(Handled::Ignored);
                continue;
            };
            let span = tracing::info_span!("audit", chain = %journal_event.chain, seq = journal_event.seq, target = %journal_event.target, request_id = %event.context.request_id);
            let archived = self
                .archive
                .put(&journal_event, &json, self.clock.now())
                .instrument(span)
                .await
                .map_err(|source| AuditError::Archive { id: journal_event.id.clone(), source })?;
            tracing::info!(id = %journal_event.id, kind = %journal_event.kind, outcome = ?archived, "archived");
            out.push(Handled::Archived(archived));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use aws_lambda_events::dynamodb::Event;
    use grantwarden_core::audit::event_hash;

    #[test]
    fn the_sample_record_holds_an_event_whose_hash_verifies_and_the_head_move_is_not_one() {
        let event: Event = serde_json::from_str(include_str!("../../../events/audit-journal-stream.json")).unwrap();
        let [insert, head] = &event.records[..] else { panic!("two records") };
        let (e, json) = grantwarden_aws::journal::stored_event(insert.change.new_image.clone()).unwrap().unwrap();
        assert_eq!((e.id.as_str(), e.seq), ("orders-prod:42", 42));
        assert_eq!(event_hash(&e), e.hash, "the sample is a correctly sealed event");
        assert_eq!(serde_json::from_str::<grantwarden_core::audit::AuditEvent>(&json).unwrap(), e);
        assert_eq!(head.event_name, "MODIFY");
        assert!(grantwarden_aws::journal::stored_event(head.change.new_image.clone()).unwrap().is_none());
    }

    #[test]
    fn each_sample_event_is_dispatched_to_its_path() {
        let stream: super::Invocation =
            serde_json::from_str(include_str!("../../../events/audit-journal-stream.json")).unwrap();
        assert!(matches!(stream, super::Invocation::Stream(e) if e.records.len() == 2));
        let schedule: super::Invocation =
            serde_json::from_str(include_str!("../../../events/audit-digest-schedule.json")).unwrap();
        assert!(matches!(schedule, super::Invocation::Schedule(e) if e.detail_type == "Scheduled Event"));
    }

    #[test]
    fn an_item_whose_event_disagrees_with_its_keys_is_refused() {
        let event: Event = serde_json::from_str(include_str!("../../../events/audit-journal-stream.json")).unwrap();
        let mut image = event.records[0].change.new_image.clone();
        image.insert("seq".into(), serde_dynamo::AttributeValue::N("43".into()));
        let err = grantwarden_aws::journal::stored_event(image).unwrap_err();
        assert!(err.to_string().contains("differ"), "{err}");
    }
}
