//! Diff: when a scan record turns complete or incomplete, merge its batches,
//! assess them against the baseline with the target's exceptions, store the
//! report and findings, and alert past the thresholds. A MySQL or MariaDB
//! scan (its manifest names the server) is planned against the target's
//! MySQL baseline (`engine: mariadb` or `engine: mysql`) as `grantwarden plan`
//! plans it, the target's tickets (naming accounts) laid over it.
//!
//! An incomplete scan (a chunk failed for good) is assessed on what was read:
//! its report says so, no finding is opened or closed, no remediation is
//! planned, and the one alert it sends says the scan is incomplete.
//!
//! Only the `running -> complete|incomplete` transition of a record starts
//! work (a record changes status once, conditionally), and a report already
//! in S3 for the scan means a redelivered stream record: nothing is redone.
//! Errors fail the invocation, so the stream retries (and, once exhausted,
//! bisects and sends the record to the on-failure destination).
#![deny(missing_docs)]

use std::sync::Arc;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use grantwarden_aws::objects::TargetBaseline;
use grantwarden_aws::queue::SqsRemediationQueue;
use grantwarden_aws::settings::SettingsError;
use grantwarden_aws::{Alerts, AwsError, Clients, Clock, DynamoStore, Objects, Settings};
use grantwarden_core::assess::{MysqlAssessError, assess, assess_mysql};
use grantwarden_core::audit::AuditJournal;
use grantwarden_core::error::StoreError;
use grantwarden_core::pipeline::{AssembleError, ScanRecord, ScanStatus, assemble, assemble_mysql};
use grantwarden_core::raise_alerts::{RaiseError, raise_governance_alerts};
use grantwarden_core::remediate::Mode;
use grantwarden_core::remediation_flow::{PlanError, plan_remediation};
use grantwarden_core::report::{Report, ReportAlert, Status};
use grantwarden_core::store::{FindingStore, TicketStore};
use lambda_runtime::{Diagnostic, LambdaEvent};
use tracing::Instrument;

/// Why a diff failed.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// A stream record is not a scan record.
    #[error("stream record {event_id}: {reason}")]
    Record {
        /// The record.
        event_id: String,
        /// Why.
        reason: String,
    },
    /// S3, SNS or Secrets Manager failed, or a stored object does not decode.
    #[error("scan {scan_id}: {source}")]
    Aws {
        /// The scan.
        scan_id: String,
        /// Cause.
        source: AwsError,
    },
    /// The state store failed.
    #[error("scan {scan_id}: {source}")]
    Store {
        /// The scan.
        scan_id: String,
        /// Cause.
        source: StoreError,
    },
    /// The baseline is for the other MySQL engine (MariaDB's against MySQL's server, or the reverse).
    #[error("scan {scan_id}: {reason}")]
    Baseline {
        /// The scan.
        scan_id: String,
        /// Why.
        reason: String,
    },
    /// The batches do not make a snapshot.
    #[error("scan {scan_id}: {source}")]
    Assemble {
        /// The scan.
        scan_id: String,
        /// Cause.
        source: AssembleError,
    },
}

impl From<DiffError> for Diagnostic {
    fn from(e: DiffError) -> Self {
        let error_type = match &e {
            DiffError::Record { .. } | DiffError::Assemble { .. } | DiffError::Baseline { .. } => "Validation",
            DiffError::Aws { source, .. } if !source.is_retryable() => "Validation",
            _ => "Retryable",
        };
        Diagnostic { error_type: error_type.into(), error_message: e.to_string() }
    }
}

/// What one stream record led to.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Handled {
    /// Not the end of a scan.
    Ignored,
    /// The scan's report was already written.
    AlreadyReported {
        /// S3 key of the report.
        key: String,
    },
    /// Assessed; the report's key and summary status.
    Reported {
        /// S3 key of the report.
        key: String,
        /// Its status.
        status: Status,
        /// Whether an alert was published (a drift alert, or for an incomplete
        /// scan the incomplete-scan alert).
        alerted: bool,
    },
}

/// The handler's state, built once per container: generic over the state store
/// (DynamoDB in the Lambda; any store of the core ports in tests).
#[derive(Clone)]
pub struct Diff<S = DynamoStore> {
    store: S,
    objects: Objects,
    alerts: Option<Alerts>,
    remediation: Option<(Mode, SqsRemediationQueue)>,
    clock: Arc<dyn Clock>,
}

/// What a scan read: a PostgreSQL snapshot, or a MySQL or MariaDB scan.
enum Read {
    Postgres(grantwarden_core::snapshot::Snapshot),
    Mysql(grantwarden_core::mysql_scan::Scan),
}

/// The scan record a stream record ends, if it ends one.
pub fn ended_scan(record: &EventRecord) -> Result<Option<ScanRecord>, DiffError> {
    if record.event_name != "MODIFY" {
        return Ok(None);
    }
    let decode = |image: &serde_dynamo::Item, which: &str| -> Result<ScanRecord, DiffError> {
        serde_dynamo::from_item(image.clone()).map_err(|e| DiffError::Record {
            event_id: record.event_id.clone(),
            reason: format!("{which} is not a scan record: {e}"),
        })
    };
    let new = decode(&record.change.new_image, "NewImage")?;
    let was_running = record.change.old_image.is_empty()
        || decode(&record.change.old_image, "OldImage")?.status == ScanStatus::Running;
    Ok((was_running && new.status != ScanStatus::Running).then_some(new))
}

impl Diff<DynamoStore> {
    /// The handler; alerts go to `GRANTWARDEN_ALERT_TOPIC_ARN` when it is set, and
    /// remediation (unless its mode is `report`) to `GRANTWARDEN_REMEDIATION_QUEUE_URL`.
    pub fn new(clients: &Clients, settings: &Settings, clock: Arc<dyn Clock>) -> Result<Self, SettingsError> {
        let remediation = match settings.remediation_mode {
            Mode::Report => None,
            mode => {
                let url = Settings::require(&settings.remediation_queue_url, "GRANTWARDEN_REMEDIATION_QUEUE_URL")?;
                Some((mode, SqsRemediationQueue::new(&clients.sqs, url)))
            }
        };
        Ok(Self {
            store: DynamoStore::new(clients, settings),
            objects: Objects::new(clients, settings),
            alerts: settings.alert_topic_arn.as_deref().map(|arn| Alerts::new(&clients.sns, arn)),
            remediation,
            clock,
        })
    }
}

impl<S> Diff<S>
where
    S: TicketStore + FindingStore + AuditJournal + Send + Sync,
{
    /// The same handler over another store (the SQLite one, or one in memory, in tests).
    pub fn with_store<T>(self, store: T) -> Diff<T> {
        Diff { store, objects: self.objects, alerts: self.alerts, remediation: self.remediation, clock: self.clock }
    }

    /// The store, for callers that inspect what a scan recorded.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Rewrites the target's dashboard page (`reports/<target>/dashboard.html`) from
    /// the report, the target's tickets and its journal chain, and raises each
    /// governance alert (break-glass past the registry's monthly limit, failed
    /// revocations) once: published and journaled as `governance.alert`.
    async fn write_dashboard(
        &self,
        report: &Report,
        scoring: &grantwarden_core::scoring::ScoringConfig,
        registry_version: Option<String>,
    ) -> Result<String, DiffError> {
        let scan_id = &report.scan_id;
        let store_err = |source| DiffError::Store { scan_id: scan_id.clone(), source };
        let aws = |source| DiffError::Aws { scan_id: scan_id.clone(), source };
        let now = self.clock.now();
        let tickets = self.store.tickets(Some(&report.target)).await.map_err(store_err)?;
        let events = self.store.events(report.target.as_str()).await.map_err(store_err)?;
        let raised =
            raise_governance_alerts(&self.store, self.alerts.as_ref(), report, &events, "grantwarden:diff", now)
                .await
                .map_err(|e| match e {
                    RaiseError::Store(source) => store_err(source),
                    RaiseError::Publish(source) => aws(source),
                })?;
        for alert in &raised {
            tracing::warn!(%alert, "governance alert");
        }
        let chains = [report.target.as_str().to_owned(), grantwarden_core::audit::REGISTRY_CHAIN.to_owned()];
        let basis = grantwarden_core::compliance::Basis::read(&self.store, &chains, registry_version, now)
            .await
            .map_err(store_err)?;
        let page = grantwarden_core::dashboard::render(&grantwarden_core::dashboard::build(
            report,
            tickets,
            &events,
            &scoring.coverage,
            basis,
            now,
        ));
        self.objects.put_dashboard(&report.target, page).await.map_err(aws)
    }

    /// Hands the report's corrective changes to the revoke function (through the
    /// remediation queue) and journals the plan. Nothing in report mode, for a
    /// partial scan, or when nothing needs changing.
    async fn enqueue_remediation(&self, report: &Report) -> Result<(), DiffError> {
        let scan_id = &report.scan_id;
        let Some((mode, queue)) = &self.remediation else { return Ok(()) };
        let requests = plan_remediation(&self.store, queue, report, *mode, "grantwarden:diff", self.clock.now())
            .await
            .map_err(|e| match e {
                PlanError::Queue(source) => DiffError::Aws { scan_id: scan_id.clone(), source },
                PlanError::Store(source) => DiffError::Store { scan_id: scan_id.clone(), source },
            })?;
        if let Some(first) = requests.first() {
            let changes: usize = requests.iter().map(|r| r.changes.len()).sum();
            tracing::info!(changes, parts = requests.len(), mode = ?first.mode, "remediation enqueued");
        }
        Ok(())
    }

    /// Handles a batch of stream records, in order.
    pub async fn handle(&self, event: LambdaEvent<Event>) -> Result<Vec<Handled>, DiffError> {
        let mut out = Vec::with_capacity(event.payload.records.len());
        for record in &event.payload.records {
            let Some(scan) = ended_scan(record)? else {
                out.push(Handled::Ignored);
                continue;
            };
            let span = tracing::info_span!("diff", target = %scan.target, scan_id = %scan.scan_id, request_id = %event.context.request_id);
            out.push(self.report(&scan).instrument(span).await?);
        }
        Ok(out)
    }

    /// Assesses one ended scan: a PostgreSQL snapshot with the target's
    /// exceptions, or a MySQL or MariaDB scan (its manifest names the server).
    pub async fn report(&self, scan: &ScanRecord) -> Result<Handled, DiffError> {
        let id = &scan.scan_id;
        let aws = |source| DiffError::Aws { scan_id: id.clone(), source };
        let key = Objects::report_key(&scan.target, id);
        if self.objects.get(&key).await.map_err(aws)?.is_some() {
            tracing::info!(%key, "report exists; redelivered record");
            return Ok(Handled::AlreadyReported { key });
        }
        let started = std::time::Instant::now();
        let manifest = self.objects.manifest(&scan.target, id).await.map_err(aws)?;
        let mysql = manifest.mysql.is_some();
        // the configuration (parsing a large baseline takes a second) is read on
        // another task while the batches are read and assembled on this one
        let config = {
            let (objects, target) = (self.objects.clone(), scan.target.clone());
            tokio::spawn(async move {
                let baseline = objects.target_baseline(&target, mysql).await;
                let scoring = objects.scoring().await;
                let registry = objects.policy_registry().await.map_err(|e| e.to_string());
                (baseline, scoring, registry)
            })
        };
        let batches = self.objects.batches(&scan.target, id).await.map_err(aws)?;
        tracing::info!(batches = batches.len(), elapsed_ms = started.elapsed().as_millis() as u64, "batches read");
        let assembly = |source| DiffError::Assemble { scan_id: id.clone(), source };
        let read = if mysql {
            Read::Mysql(assemble_mysql(&manifest, scan, batches).map_err(assembly)?)
        } else {
            Read::Postgres(assemble(&manifest, scan, batches).map_err(assembly)?)
        };
        let grants = match &read {
            Read::Postgres(snapshot) => snapshot.state.grants.len(),
            Read::Mysql(scan) => scan.catalog.privileges.len(),
        };
        tracing::info!(grants, elapsed_ms = started.elapsed().as_millis() as u64, "snapshot assembled");
        let (baseline, scoring, registry) = config.await.map_err(|e| DiffError::Aws {
            scan_id: id.clone(),
            source: AwsError::Service {
                op: "reading the configuration".into(),
                message: e.to_string(),
                retryable: true,
            },
        })?;
        let (baseline, scoring) = (baseline.map_err(aws)?, scoring.map_err(aws)?);
        if let Err(why) = &registry {
            tracing::error!(error = %why, "policy registry unusable; no exception is applied");
        }
        let store = |source| DiffError::Store { scan_id: id.clone(), source };
        let now = self.clock.now();
        let report: Report = match (read, baseline) {
            (Read::Postgres(snapshot), TargetBaseline::Postgres(baseline)) => {
                let registry = Some(registry.as_ref().map_err(String::clone));
                assess(&self.store, &baseline, &snapshot, &scoring, registry, now).await.map_err(store)?
            }
            (Read::Mysql(scan), TargetBaseline::Mysql(baseline)) => {
                let registry = Some(registry.as_ref().map_err(String::clone));
                assess_mysql(&self.store, &baseline, &scan, &scoring, registry, now).await.map_err(|e| match e {
                    MysqlAssessError::Store(source) => store(source),
                    MysqlAssessError::Engine(e) => DiffError::Baseline { scan_id: id.clone(), reason: e.to_string() },
                })?
            }
            // the baseline is read for the engine the manifest names, so these never meet
            (Read::Postgres(_), TargetBaseline::Mysql(_)) | (Read::Mysql(_), TargetBaseline::Postgres(_)) => {
                return Err(DiffError::Baseline {
                    scan_id: id.clone(),
                    reason: "the baseline read is for another engine than the scan's".into(),
                });
            }
        };
        tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "assessed");
        // The report is written last: it marks the scan as done, so a record delivered
        // again after any step below failed runs them again rather than never.
        let key = Objects::report_key(&report.target, &report.scan_id);
        let status = report.summary.status;
        let dashboard =
            self.write_dashboard(&report, &scoring, registry.as_ref().ok().map(|r| r.id.version.clone())).await?;
        // an incomplete scan sends the incomplete-scan alert, never a drift alert
        let mut alerted = false;
        if let (Some(alert), Some(alerts)) = (report.alert(), &self.alerts) {
            let uri = format!("s3://{}/{key}", self.objects.bucket());
            match alert {
                ReportAlert::Drift => alerts.report(&report, &uri).await,
                ReportAlert::Incomplete => alerts.incomplete_scan(&report, &uri).await,
            }
            .map_err(aws)?;
            alerted = true;
        }
        self.enqueue_remediation(&report).await?;
        self.objects.put_report(&report).await.map_err(aws)?;
        tracing::info!(%key, %dashboard, %status, score = report.summary.score, findings = report.findings.len(), complete = report.summary.complete, alerted, "report written");
        Ok(Handled::Reported { key, status, alerted })
    }
}
