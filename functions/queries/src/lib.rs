//! Queries: the pgaudit entries of a PostgreSQL log group, delivered by a
//! CloudWatch Logs subscription, as query events in the data bucket.
//!
//! One delivery is one batch: its log events' messages, each followed by a
//! newline, read as RDS-format records (`grantwarden_core::pglog`); its
//! sha256 names it, so a delivery seen again adds nothing (the subscription
//! delivers at least once). The log group names the target
//! (`GRANTWARDEN_QUERY_TARGETS`). First each GRANT or REVOKE in the batch
//! goes through intake (`grantwarden_core::query_controls::Controls::role_changes`, as
//! `grantwarden queries follow`): a grant no ticket covers is an untagged
//! finding and an alert (SNS and `queries.alert`) within seconds of being
//! logged. Then the batch is ingested by
//! core's rules (`grantwarden_core::queries::ingest`, as `grantwarden
//! queries ingest` runs them), with what to keep and what is an export from
//! the registry's `queries` section: events stored
//! ([`grantwarden_aws::S3Queries`]), records that do not read kept with
//! their reason, exports by a ticket's credential raised through SNS and
//! journaled as `queries.alert` (ending the ticket with `on_export:
//! revoke`), and the batch journaled as `queries.ingested` and marked
//! ingested, last: a delivery that failed part way is done again, one that
//! was marked is neither routed nor ingested again.
#![deny(missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_lambda_events::cloudwatch_logs::LogsEvent;
use grantwarden_aws::objects::RegistryError;
use grantwarden_aws::{Alerts, AwsError, Clients, Clock, DynamoStore, Objects, QueryPipeline, S3Queries, Settings};
use grantwarden_core::error::StoreError;
use grantwarden_core::intake::Outcome;
use grantwarden_core::pglog::{LogFormat, Reader};
use grantwarden_core::queries::{IngestError, IngestSource, Ingested, QueryStore, ingest};
use grantwarden_core::query_controls::{Controls, RoleChange, RoutingError};
use grantwarden_core::query_policy::QueryPolicy;
use grantwarden_core::snapshot::TargetId;
use lambda_runtime::{Diagnostic, LambdaEvent};
use sha2::Digest;
use tracing::Instrument;

/// The actor journaled for what this function does.
const ACTOR: &str = "grantwarden:queries";

/// Which target each log group is the log of (`GRANTWARDEN_QUERY_TARGETS`:
/// `<log group>=<target>,...`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryTargets(BTreeMap<String, TargetId>);

/// `GRANTWARDEN_QUERY_TARGETS` is malformed.
#[derive(Debug, thiserror::Error)]
#[error("environment variable GRANTWARDEN_QUERY_TARGETS: entry {entry:?}: {reason}")]
pub struct TargetsError {
    /// The entry at fault.
    pub entry: String,
    /// Why.
    pub reason: String,
}

impl QueryTargets {
    /// From `<log group>=<target>` entries separated by commas or newlines
    /// (blank entries skipped); empty text is no log group.
    pub fn parse(text: &str) -> Result<Self, TargetsError> {
        let mut map = BTreeMap::new();
        for entry in text.split([',', '\n']).map(str::trim).filter(|e| !e.is_empty()) {
            let bad = |reason: &str| TargetsError { entry: entry.to_owned(), reason: reason.to_owned() };
            let (group, target) = entry.split_once('=').ok_or_else(|| bad("not <log group>=<target>"))?;
            let (group, target) = (group.trim(), target.trim());
            if group.is_empty() {
                return Err(bad("no log group"));
            }
            let target = TargetId::new(target).ok_or_else(|| bad("no target"))?;
            if map.insert(group.to_owned(), target).is_some() {
                return Err(bad("the log group is named twice"));
            }
        }
        Ok(Self(map))
    }

    /// The target whose log `log_group` is.
    pub fn of(&self, log_group: &str) -> Option<&TargetId> {
        self.0.get(log_group)
    }
}

/// Why a delivery was not ingested.
#[derive(Debug, thiserror::Error)]
pub enum QueriesError {
    /// The log group is not in `GRANTWARDEN_QUERY_TARGETS`.
    #[error("awslogs.data.logGroup {log_group:?} is not in GRANTWARDEN_QUERY_TARGETS (known: {known:?})")]
    UnknownLogGroup {
        /// The log group delivered.
        log_group: String,
        /// The log groups configured.
        known: Vec<String>,
    },
    /// Reading the registry or scoring config failed.
    #[error("batch {batch} of {source_name}: {reason}")]
    Config {
        /// The batch.
        batch: String,
        /// `<log group>/<log stream>`.
        source_name: String,
        /// What failed.
        reason: String,
        /// Whether trying again may work.
        retryable: bool,
    },
    /// Ingesting failed (the store, or acting on an alert).
    #[error("batch {batch} of {source_name}: {error}")]
    Ingest {
        /// The batch.
        batch: String,
        /// `<log group>/<log stream>`.
        source_name: String,
        /// Cause.
        error: IngestError,
    },
    /// Routing the batch's GRANTs and REVOKEs through intake failed.
    #[error("batch {batch} of {source_name}: routing its GRANT and REVOKE entries: {error}")]
    RoleChanges {
        /// The batch.
        batch: String,
        /// `<log group>/<log stream>`.
        source_name: String,
        /// Cause.
        error: RoutingError,
    },
}

impl From<QueriesError> for Diagnostic {
    fn from(e: QueriesError) -> Self {
        let retryable = match &e {
            QueriesError::UnknownLogGroup { .. } => false,
            QueriesError::Config { retryable, .. } => *retryable,
            QueriesError::Ingest { error: IngestError::Changed { .. }, .. } => false,
            QueriesError::Ingest { error: IngestError::Store(StoreError::Corrupt { .. }), .. }
            | QueriesError::RoleChanges { error: RoutingError::Store(StoreError::Corrupt { .. }), .. } => false,
            QueriesError::Ingest { .. } | QueriesError::RoleChanges { .. } => true,
        };
        Diagnostic {
            error_type: if retryable { "Retryable" } else { "Validation" }.into(),
            error_message: e.to_string(),
        }
    }
}

/// A GRANT or REVOKE of the batch as intake routed it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RoleChangeSeen {
    /// The delivery id (`pgaudit:<record sha256, 16 digits>`).
    pub delivery_id: String,
    /// `untagged` (a finding) or `ticket`.
    pub outcome: &'static str,
    /// The finding's detail, or the ticket's id.
    pub detail: String,
    /// From the server's log time to routed.
    pub latency_ms: i64,
    /// The alert raised on it (a grant no ticket covers), published on the alert topic and journaled.
    pub alert: Option<String>,
}

/// What a delivery did.
#[derive(Debug, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Handled {
    /// CloudWatch Logs' check that the destination is reachable: nothing to read.
    Control,
    /// The batch ingested and its role changes routed (none when it was ingested before).
    Ingested {
        /// Counts, digest, alerts.
        ingested: Box<Ingested>,
        /// The GRANT and REVOKE entries routed.
        role_changes: Vec<RoleChangeSeen>,
    },
}

/// The handler's state, built once per container.
#[derive(Clone)]
pub struct Queries {
    pipeline: QueryPipeline<DynamoStore>,
    objects: Objects,
    alerts: Option<Alerts>,
    targets: QueryTargets,
    clock: Arc<dyn Clock>,
}

impl Queries {
    /// The handler over the resources in `settings`, for the log groups of `targets`.
    pub fn new(clients: &Clients, settings: &Settings, targets: QueryTargets, clock: Arc<dyn Clock>) -> Self {
        Self {
            pipeline: QueryPipeline {
                store: DynamoStore::new(clients, settings),
                queries: S3Queries::new(clients, settings),
            },
            objects: Objects::new(clients, settings),
            alerts: settings.alert_topic_arn.as_deref().map(|arn| Alerts::new(&clients.sns, arn)),
            targets,
            clock,
        }
    }

    /// Ingests one subscription delivery.
    pub async fn handle(&self, event: LambdaEvent<LogsEvent>) -> Result<Handled, QueriesError> {
        let data = event.payload.aws_logs.data;
        if data.message_type == "CONTROL_MESSAGE" {
            return Ok(Handled::Control);
        }
        let Some(target) = self.targets.of(&data.log_group) else {
            return Err(QueriesError::UnknownLogGroup {
                log_group: data.log_group,
                known: self.targets.0.keys().cloned().collect(),
            });
        };
        let mut bytes = Vec::with_capacity(data.log_events.iter().map(|e| e.message.len() + 1).sum());
        for e in &data.log_events {
            bytes.extend_from_slice(e.message.as_bytes());
            bytes.push(b'\n');
        }
        let batch = hex::encode(sha2::Sha256::digest(&bytes));
        let source = format!("{}/{}", data.log_group, data.log_stream);
        let span = tracing::info_span!("queries", target = %target, batch = %batch, source = %source);
        self.ingest(target, &batch, &source, &bytes).instrument(span).await
    }

    async fn ingest(
        &self,
        target: &TargetId,
        batch: &str,
        source: &str,
        bytes: &[u8],
    ) -> Result<Handled, QueriesError> {
        let now = self.clock.now();
        let config = |reason: String, retryable: bool| QueriesError::Config {
            batch: batch.to_owned(),
            source_name: source.to_owned(),
            reason,
            retryable,
        };
        // an unusable registry fails secure: literals redacted, exports alerted,
        // and intake refuses to tag a grant (it becomes an untagged finding)
        let registry = match self.objects.policy_registry().await {
            Ok(registry) => Ok(registry),
            Err(RegistryError::Read(e)) => {
                return Err(config(format!("reading the policy registry: {e}"), e.is_retryable()));
            }
            Err(e) => {
                tracing::error!(error = %e, "policy registry unusable: query defaults apply");
                Err(e.to_string())
            }
        };
        let policy = registry.as_ref().map(|r| r.queries.clone()).unwrap_or_else(|_| QueryPolicy::default());
        let scoring = self
            .objects
            .scoring()
            .await
            .map_err(|e: AwsError| config(format!("reading the scoring config: {e}"), e.is_retryable()))?;
        let controls = Controls {
            store: &self.pipeline.store,
            publisher: self.alerts.as_ref(),
            on_export: policy.on_export,
            actor: ACTOR,
            now,
        };
        let ingest_error =
            |error| QueriesError::Ingest { batch: batch.to_owned(), source_name: source.to_owned(), error };

        // The batch's marker is written last, after its role changes are routed
        // and its entries ingested: a delivery seen before was handled whole and
        // is not routed again (each redelivery would journal its untagged GRANTs
        // once more), while one that failed part way is done again.
        let delivered_before = self.pipeline.batch(target, batch).await.map_err(|e| ingest_error(e.into()))?.is_some();
        let role_changes = if delivered_before {
            Vec::new()
        } else {
            // before the entries are stored: the finding is what should not wait
            let routed = controls
                .role_changes(
                    registry.as_ref().map_err(Clone::clone),
                    target,
                    None,
                    Reader::new(bytes, LogFormat::Rds).filter_map(Result::ok),
                    &scoring,
                )
                .await
                .map_err(|error| QueriesError::RoleChanges {
                    batch: batch.to_owned(),
                    source_name: source.to_owned(),
                    error,
                })?;
            self.seen(routed)
        };

        let src = IngestSource { target, database: None, source, actor: ACTOR, policy: &policy, now };
        let ingested = ingest(&self.pipeline, &controls, &src, batch, Reader::new(bytes, LogFormat::Rds))
            .await
            .map_err(ingest_error)?;
        let b = &ingested.batch;
        tracing::info!(
            delivered_before = ingested.delivered_before,
            records = b.records,
            events = b.events,
            new_events = b.new_events,
            rejected = b.rejected,
            skipped = b.skipped,
            alerts = ingested.alerts,
            "ingested"
        );
        Ok(Handled::Ingested { ingested: Box::new(ingested), role_changes })
    }

    /// The role changes routed, each logged with its latency from the server's log time.
    fn seen(&self, routed: Vec<RoleChange>) -> Vec<RoleChangeSeen> {
        let seen = self.clock.now();
        routed
            .into_iter()
            .map(|c| {
                let (outcome, id) = match &c.outcome {
                    Outcome::Untagged(f) | Outcome::Refused { finding: f, .. } => ("untagged", f.detail.clone()),
                    Outcome::Created(t) | Outcome::Existing(t) | Outcome::Conflict(t) => ("ticket", t.id().to_owned()),
                };
                let latency_ms = (seen - c.logged_at).num_milliseconds();
                let published = c.alert.as_ref().is_some_and(|(_, published)| *published);
                tracing::info!(delivery_id = %c.delivery_id, outcome, detail = %id, latency_ms, published, "role change routed");
                let alert = c.alert.map(|(sentence, _)| sentence);
                RoleChangeSeen { delivery_id: c.delivery_id, outcome, detail: id, latency_ms, alert }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_groups_name_their_target_and_a_bad_entry_is_named() {
        let t =
            QueryTargets::parse(" /aws/rds/instance/orders/postgresql=orders-prod,\n,/aws/rds/cluster/b/postgresql=b")
                .unwrap();
        assert_eq!(t.of("/aws/rds/instance/orders/postgresql").map(TargetId::as_str), Some("orders-prod"));
        assert_eq!(t.of("/aws/rds/instance/other/postgresql"), None);
        assert_eq!(QueryTargets::parse("").unwrap(), QueryTargets::default());
        let e = QueryTargets::parse("/aws/rds/instance/orders/postgresql").unwrap_err();
        assert!(e.to_string().contains("GRANTWARDEN_QUERY_TARGETS") && e.entry.contains("orders"), "{e}");
        assert!(QueryTargets::parse("g=a,g=b").is_err(), "one target per log group");
        assert!(QueryTargets::parse("g= ").is_err());
    }
}
