//! Revoke: ends a ticket's access when its window ends, through any of four
//! triggers, each idempotent with the others:
//!
//! - the leases table's stream: a REMOVE made by DynamoDB's TTL service
//!   (`userIdentity` Service `dynamodb.amazonaws.com`); a lease deleted by
//!   grantwarden itself is not a trigger;
//! - the tickets table's stream: a MODIFY to `revoke_requested` (an early end);
//! - the one-time EventBridge Scheduler schedule at the expiry (`{"ticket_id"}`);
//! - the sweeper, an EventBridge schedule every minute, which revokes every
//!   due ticket of every target that the others missed.
//!
//! It also runs drift remediation: the diff enqueues a scan's corrective
//! changes (unless its mode is `report`); this function holds back any revoke
//! a ticket active now covers, runs the rest in one transaction, and journals
//! `remediation.applied` (or `.failed`, dead-lettered with the reason).
//!
//! Remediation runs through the executor of the target's engine (its revoking
//! secret's `engine`): PostgreSQL's in one transaction, MySQL's and MariaDB's
//! statement by statement, checked against the grant tables read again.
//!
//! Each revocation runs `grantwarden_core::revoke::revoke_ticket` with the
//! target's revoking role (its own secret) through the executor of its
//! engine: on MySQL and MariaDB what the ticket covers is revoked from the
//! account it names and the account's sessions are ended. Issuing and
//! renewing a just-in-time credential are PostgreSQL's only: a MySQL target's
//! secret is refused by name for them.
//! A permanent failure leaves the ticket `revocation_failed` (with a finding
//! and an audit event) and goes to the dead-letter queue with its reason; a
//! transient one fails the invocation as Retryable, so the stream or the
//! schedule delivers it again, and the ticket stays due for the sweeper.
#![deny(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::dynamodb::{Event, EventRecord};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use futures::StreamExt;
use grantwarden_aws::leases::{Lease, ScheduledRevoke};
use grantwarden_aws::objects::TargetBaseline;
use grantwarden_aws::secrets::AccessSecretError;
use grantwarden_aws::{
    AccessSecrets, AwsError, Clients, Clock, DbEngine, DynamoStore, Objects, RdsSecret, SecretCache, Settings, Timers,
};
use grantwarden_core::access::{is_issued, record_issued};
use grantwarden_core::audit::event::{IssueRefused, OnTicket};
use grantwarden_core::audit::{AuditJournal, NewEvent};
use grantwarden_core::backoff::RetryPolicy;
use grantwarden_core::change::Change;
use grantwarden_core::remediate::{RemediationRequest, SkippedFindings};
use grantwarden_core::remediation_flow::{
    Applied, ChangeExecutor, OnTransient, RemediationError, RemediationRun, run_remediation,
};
use grantwarden_core::revoke::{
    ExecError, FailureClass, PrivilegeExecutor, RevokeError, RevokeOptions, RevokeOutcome, due, revoke_ticket,
};
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::{FindingStore, TicketStore};
use grantwarden_core::ticket::{Ticket, TicketStatus, Trigger};
use grantwarden_postgres::activate::new_password;
use grantwarden_postgres::session::config_from_parts;
use grantwarden_postgres::{Executor, Timeouts};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

/// A target's executor, of its engine: remediation and revocation.
enum AnyExecutor {
    Postgres(Executor),
    Mysql { apply: grantwarden_mysql::apply::Executor, revoke: grantwarden_mysql::revoke::Revoker },
}

impl ChangeExecutor for AnyExecutor {
    async fn apply(&self, changes: &[Change], dry_run: bool) -> Result<Applied, ExecError> {
        match self {
            AnyExecutor::Postgres(x) => x.apply(changes, dry_run).await,
            AnyExecutor::Mysql { apply, .. } => apply.apply(changes, dry_run).await,
        }
    }
}

impl PrivilegeExecutor for AnyExecutor {
    async fn revoke(
        &self,
        role: &grantwarden_core::model::RoleName,
        planner: &(dyn Fn(&grantwarden_core::revoke::Held) -> grantwarden_core::revocation::RevocationPlan + Sync),
        dry_run: bool,
        clock: &(dyn Fn() -> chrono::DateTime<chrono::Utc> + Sync),
    ) -> Result<grantwarden_core::revoke::Executed, ExecError> {
        match self {
            AnyExecutor::Postgres(x) => x.revoke(role, planner, dry_run, clock).await,
            AnyExecutor::Mysql { revoke, .. } => revoke.revoke(role, planner, dry_run, clock).await,
        }
    }
}

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum RevokeFnError {
    /// A stream record or payload is not what this function takes.
    #[error("{what}: {reason}")]
    Input {
        /// Which record or payload.
        what: String,
        /// Why.
        reason: String,
    },
    /// A remediation or an issuance failed transiently: delivered again.
    #[error("{what}: {message} (will be retried)")]
    Transient {
        /// What was being done, on what.
        what: String,
        /// The last error.
        message: String,
    },
    /// A revocation could not finish (store, or a transient database failure).
    #[error(transparent)]
    Revoke(#[from] RevokeError),
    /// An AWS call failed (secret, dead-letter queue, targets list).
    #[error(transparent)]
    Aws(#[from] AwsError),
}

impl From<RevokeFnError> for Diagnostic {
    fn from(e: RevokeFnError) -> Self {
        let retryable = match &e {
            RevokeFnError::Input { .. } | RevokeFnError::Revoke(RevokeError::DryRun { .. }) => false,
            RevokeFnError::Revoke(_) | RevokeFnError::Transient { .. } => true,
            RevokeFnError::Aws(a) => a.is_retryable(),
        };
        Diagnostic {
            error_type: if retryable { "Retryable" } else { "Validation" }.into(),
            error_message: e.to_string(),
        }
    }
}

/// What invokes the function.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Invocation {
    /// Lease or ticket stream records.
    Stream(Event),
    /// Remediation requests from the diff (the remediation queue).
    Remediation(SqsEvent),
    /// The one-time schedule of one ticket.
    Scheduled(ScheduledRevoke),
    /// The sweeper's EventBridge schedule.
    Sweep(EventBridgeEvent),
}

/// What an invocation did.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Outcome {
    /// One entry per ticket handled.
    Tickets(Vec<Handled>),
    /// The remediation messages to deliver again (transient failures only).
    Remediation(SqsBatchResponse),
}

impl Outcome {
    /// The tickets handled (empty for a remediation batch).
    pub fn tickets(self) -> Vec<Handled> {
        match self {
            Outcome::Tickets(t) => t,
            Outcome::Remediation(_) => Vec::new(),
        }
    }
}

/// What happened to one ticket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Handled {
    /// The ticket.
    pub ticket_id: String,
    /// The trigger.
    pub trigger: Trigger,
    /// revoked, not_due, already_ended, revocation_failed.
    pub outcome: String,
    /// Latency of a revocation made now, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<i64>,
}

/// A dead-lettered revocation: what a person needs to act.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The ticket.
    pub ticket_id: String,
    /// Its target.
    pub target: String,
    /// Its role.
    pub role: String,
    /// The trigger that gave up.
    pub trigger: Trigger,
    /// Why it cannot succeed.
    pub error: String,
    /// Attempts made.
    pub attempts: u32,
}

/// Revocations one sweep runs at once (each on two connections to its target).
pub const SWEEP_CONCURRENCY: usize = 4;

/// Time a revocation may take, retries included: none starts with less left
/// before the invocation's deadline.
pub const SWEEP_RESERVE: Duration = Duration::from_secs(30);

/// The handler's state, built once per container: generic over the state store
/// (DynamoDB in the Lambda; any store of the core ports in tests).
pub struct Revoke<S = DynamoStore> {
    store: S,
    timers: Timers,
    objects: Objects,
    secrets: SecretCache,
    access_secrets: AccessSecrets,
    alerts: Option<grantwarden_aws::Alerts>,
    sqs: aws_sdk_sqs::Client,
    settings: Settings,
    clock: Arc<dyn Clock>,
    options: RevokeOptions,
    retry: RetryPolicy,
    timeouts: Timeouts,
}

impl Revoke<DynamoStore> {
    /// Checks the settings it needs (the dead-letter queue) and builds the clients' users.
    pub fn new(clients: &Clients, settings: &Settings, clock: Arc<dyn Clock>) -> Result<Self, AwsError> {
        Settings::require(&settings.revoke_dlq_url, "GRANTWARDEN_REVOKE_DLQ_URL")
            .map_err(|e| AwsError::Missing(e.to_string()))?;
        Ok(Self {
            store: DynamoStore::new(clients, settings),
            timers: Timers::new(clients, settings),
            objects: Objects::new(clients, settings),
            secrets: SecretCache::new(clients, Duration::from_secs(300)),
            access_secrets: AccessSecrets::new(clients, &settings.access_secret_prefix),
            alerts: settings.alert_topic_arn.as_deref().map(|arn| grantwarden_aws::Alerts::new(&clients.sns, arn)),
            sqs: clients.sqs.clone(),
            settings: settings.clone(),
            clock,
            options: RevokeOptions::default(),
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
        })
    }
}

impl<S> Revoke<S>
where
    S: TicketStore + FindingStore + AuditJournal + Send + Sync,
{
    /// The same handler over another store (the SQLite one, or one in memory, in tests).
    pub fn with_store<T>(self, store: T) -> Revoke<T> {
        Revoke {
            store,
            timers: self.timers,
            objects: self.objects,
            secrets: self.secrets,
            access_secrets: self.access_secrets,
            alerts: self.alerts,
            sqs: self.sqs,
            settings: self.settings,
            clock: self.clock,
            options: self.options,
            retry: self.retry,
            timeouts: self.timeouts,
        }
    }

    /// The store, for callers that inspect what an invocation recorded.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Fewer or faster retries (tests).
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Handles one invocation.
    pub async fn invoke(&self, event: LambdaEvent<Invocation>) -> Result<Outcome, RevokeFnError> {
        Ok(match event.payload {
            Invocation::Stream(e) => {
                let mut out = Vec::new();
                for record in &e.records {
                    self.journal_outbox(record).await?;
                    if let Some(id) = to_issue(record)? {
                        out.push(self.issue(&id).await?);
                    } else if let Some(id) = to_extend(record)? {
                        out.push(self.extend(&id).await?);
                    } else if let Some((id, trigger)) = trigger_of(record)? {
                        out.push(self.revoke(&id, trigger).await?);
                    }
                }
                Outcome::Tickets(out)
            }
            Invocation::Remediation(batch) => {
                let mut response = SqsBatchResponse::default();
                for message in &batch.records {
                    if let Err(e) = self.remediate(message).await {
                        tracing::warn!(error = %e, "remediation failed transiently; redelivered");
                        let mut failure = BatchItemFailure::default();
                        failure.item_identifier = message.message_id.clone().unwrap_or_default();
                        response.batch_item_failures.push(failure);
                    }
                }
                Outcome::Remediation(response)
            }
            Invocation::Scheduled(s) => {
                // an operator invokes the same shape by hand to retry a failed revocation once fixed
                let trigger = match s.trigger.as_str() {
                    "schedule" => Trigger::Schedule,
                    "operator" => Trigger::Operator,
                    other => {
                        return Err(RevokeFnError::Input {
                            what: format!("invocation for ticket {}", s.ticket_id),
                            reason: format!("trigger {other:?} is neither schedule nor operator"),
                        });
                    }
                };
                Outcome::Tickets(vec![self.revoke(&s.ticket_id, trigger).await?])
            }
            Invocation::Sweep(_) => {
                // Context::default() (a test, `cargo lambda invoke`) has no deadline
                let deadline = (event.context.deadline > 0).then(|| event.context.deadline());
                Outcome::Tickets(self.sweep(deadline).await?)
            }
        })
    }

    /// The journal events a ticket write left in its outbox for this consumer of the
    /// tickets stream (`GRANTWARDEN_JOURNAL_FROM_STREAM`): appended in stream order, one
    /// appender per shard (grantwarden_core::outbox::journal_fresh).
    async fn journal_outbox(&self, record: &EventRecord) -> Result<(), RevokeFnError> {
        let ticket_change =
            matches!(record.event_name.as_str(), "INSERT" | "MODIFY") && record.change.keys.get("ticket_id").is_none();
        if !ticket_change || !TicketStore::journals_from_stream(&self.store) {
            return Ok(());
        }
        let entries = grantwarden_aws::tickets::outbox_of(&record.change.new_image).map_err(RevokeError::Store)?;
        if entries.is_empty() {
            return Ok(());
        }
        let appended = grantwarden_core::outbox::journal_fresh(&self.store, entries, self.clock.now())
            .await
            .map_err(RevokeError::Store)?;
        if appended > 0 {
            tracing::info!(record = %record.event_id, appended, "ticket events journaled from the stream");
        }
        Ok(())
    }

    /// Runs one remediation request in one transaction, after holding back what a
    /// ticket active now covers; journals what ran. A permanent failure is journaled
    /// and dead-lettered with its reason (and the message is done); a transient one
    /// is returned, so the queue delivers it again.
    async fn remediate(&self, message: &SqsMessage) -> Result<(), RevokeFnError> {
        let id = message.message_id.clone().unwrap_or_default();
        let body = message.body.as_deref().unwrap_or_default();
        let request: RemediationRequest = match serde_json::from_str(body) {
            Ok(r) => r,
            Err(e) => {
                let reason = format!("message {id}: not a remediation request: {e}");
                tracing::error!(%reason, "dead-lettered");
                self.send_dead_letter(&serde_json::json!({ "message_id": id, "error": reason })).await?;
                return Ok(());
            }
        };
        let span = tracing::info_span!("remediate", target = %request.target, scan_id = %request.scan_id);
        async {
            let executor = self.engine_executor(&request.target).await?;
            // like `grantwarden apply`: planned and journaled until execution is turned on
            let dry_run = self.settings.revoke_dry_run || !self.settings.remediation_execute;
            let run = RemediationRun {
                target: &request.target,
                scan_id: &request.scan_id,
                snapshot_sha256: &request.snapshot_sha256,
                mode: request.mode,
                changes: request.changes.clone(),
                skipped: SkippedFindings::Counted(request.skipped),
                dry_run,
                // the queue delivers the message again
                on_transient: OnTransient::Redeliver,
                actor: "grantwarden:remediation",
            };
            let clock = || self.clock.now();
            let outcome = match run_remediation(&self.store, &executor, run, &clock).await {
                Ok(outcome) => outcome,
                Err(RemediationError::Transient { scan_id, error }) => {
                    return Err(RevokeFnError::Transient {
                        what: format!("remediation of scan {scan_id}"),
                        message: error.message,
                    });
                }
                Err(RemediationError::Tickets(e) | RemediationError::Journal(e)) => {
                    return Err(RevokeError::Store(e).into());
                }
            };
            match &outcome.result {
                Err(e) => {
                    tracing::error!(error = %e.message, "remediation failed for good; dead-lettered");
                    self.send_dead_letter(&serde_json::json!({ "target": request.target, "scan_id": request.scan_id,
                                                               "mode": request.mode, "error": e.message }))
                        .await?;
                }
                Ok(applied) => tracing::info!(
                    statements = applied.sql.len(),
                    held_back = outcome.held_back.len(),
                    dry_run,
                    "remediation done"
                ),
            }
            Ok(())
        }
        .instrument(span)
        .await
    }

    /// First, per target, the journal events that writers which died left in
    /// tickets' outboxes; then every due ticket of every target (the sparse index of open tickets),
    /// [`SWEEP_CONCURRENCY`] at a time. No revocation starts once less than
    /// [`SWEEP_RESERVE`] is left before `deadline` (the invocation's): what is
    /// left is still due, and the next sweep, a minute later, takes it.
    async fn sweep(&self, deadline: Option<std::time::SystemTime>) -> Result<Vec<Handled>, RevokeFnError> {
        let targets = match &self.settings.targets_key {
            Some(key) if self.settings.targets.is_empty() => self.objects.targets(key).await?,
            _ => self.settings.targets.clone(),
        };
        let now = self.clock.now();
        let mut ids = Vec::new();
        for target in targets {
            // what a writer that died between a ticket write and its journal left (grantwarden_core::outbox)
            match grantwarden_core::outbox::recover(&self.store, &target, now).await {
                Ok(done) if done.entries > 0 => {
                    tracing::warn!(target = %target, ?done, "sweep: finished unjournaled ticket writes")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(target = %target, error = %e, "sweep: could not finish unjournaled ticket writes; next sweep")
                }
            }
            let open = TicketStore::open_tickets(&self.store, &target).await.map_err(RevokeError::Store)?;
            // access requests nobody approved in time end unissued: journaled, nothing to revoke
            match grantwarden_core::ticket_flow::expire_pending(&self.store, &open, now).await {
                Ok(ended) => {
                    for t in ended {
                        tracing::info!(target = %target, ticket_id = %t.id(), "sweep: pending request expired unapproved");
                    }
                }
                Err(e) => {
                    tracing::error!(target = %target, error = %e, "sweep: could not expire pending requests; next sweep")
                }
            }
            ids.extend(due(&open, now).into_iter().map(|t| t.id().to_owned()));
        }
        let time_left = || {
            deadline.is_none_or(|d| d.duration_since(std::time::SystemTime::now()).unwrap_or_default() > SWEEP_RESERVE)
        };
        let runs = futures::stream::iter(ids).map(|id| async move {
            if !time_left() {
                tracing::warn!(ticket = %id, "sweep: too close to the deadline; left for the next sweep");
                return None;
            }
            Some((self.revoke(&id, Trigger::Sweeper).await, id))
        });
        let mut done = runs.buffer_unordered(SWEEP_CONCURRENCY);
        let mut out = Vec::new();
        let mut first_error = None;
        while let Some(run) = done.next().await {
            // one failure must not stop the sweep of the others
            match run {
                Some((Ok(h), _)) => out.push(h),
                Some((Err(e), id)) => {
                    tracing::error!(ticket = %id, error = %e, "sweep: revocation failed; retried next sweep");
                    first_error.get_or_insert(e);
                }
                None => {}
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// The target's PostgreSQL executor, which issues and renews just-in-time
    /// credentials: a MySQL target's secret is refused by name for them.
    async fn executor(&self, target: &TargetId) -> Result<Executor, AwsError> {
        let id = self.settings.revoker_secret_id(target);
        let secret = self.secrets.postgres(&id, "just-in-time access (issuing, renewing a credential)").await?;
        Ok(self.postgres_executor(&secret))
    }

    /// PostgreSQL's executor with the credentials of `secret`.
    fn postgres_executor(&self, secret: &RdsSecret) -> Executor {
        let config = config_from_parts(
            &secret.host,
            secret.port,
            &secret.username,
            &secret.password,
            &secret.dbname,
            &self.timeouts,
        );
        Executor::new(config, self.timeouts, self.retry)
    }

    /// The executor of drift remediation and revocation on `target`: the
    /// target's revoking secret's `engine` picks PostgreSQL's (one
    /// transaction) or MySQL's and MariaDB's (statement by statement, checked
    /// against the grant tables; a revocation's sessions ended with KILL CONNECTION).
    async fn engine_executor(&self, target: &TargetId) -> Result<AnyExecutor, AwsError> {
        let secret = self.secrets.rds(&self.settings.revoker_secret_id(target)).await?;
        Ok(match secret.engine() {
            DbEngine::Postgres => AnyExecutor::Postgres(self.postgres_executor(&secret)),
            DbEngine::Mysql => {
                let opts = grantwarden_mysql::session::opts_from_parts(
                    &secret.host,
                    secret.port,
                    &secret.username,
                    &secret.password,
                    None,
                );
                let options = grantwarden_mysql::ScanOptions::with_limits(self.timeouts, self.retry, 4);
                AnyExecutor::Mysql {
                    apply: grantwarden_mysql::apply::Executor::new(opts.clone(), options.clone()),
                    revoke: grantwarden_mysql::revoke::Revoker::new(opts, options),
                }
            }
        })
    }

    /// The options for ending `ticket`: a standing role's with the target's
    /// baseline, so what it declares stays. A baseline that cannot be read does
    /// not hold the revocation up: the end of access comes first, and what went
    /// too far shows as missing drift in the next scan.
    async fn options_for(&self, ticket: &Ticket, mysql: bool) -> RevokeOptions {
        let mut options = self.options.clone();
        if ticket.role_lifecycle() == grantwarden_core::ticket::RoleLifecycle::Standing {
            match self.objects.target_baseline(&ticket.request().target, mysql).await {
                Ok(TargetBaseline::Postgres(b)) => options.baseline = Some(b),
                Ok(TargetBaseline::Mysql(b)) => options.mysql_baseline = Some(b),
                Err(e) => tracing::warn!(error = %e, "no baseline: everything the ticket covers is revoked"),
            }
        }
        options
    }

    async fn revoke(&self, id: &str, trigger: Trigger) -> Result<Handled, RevokeFnError> {
        let span = tracing::info_span!("revoke", ticket = %id, %trigger, target = tracing::field::Empty);
        async {
            let Some(read) = TicketStore::ticket(&self.store, id).await.map_err(RevokeError::Store)? else {
                return Err(RevokeFnError::Input { what: format!("ticket {id}"), reason: "no such ticket".into() });
            };
            let ticket: Ticket = read.value;
            tracing::Span::current().record("target", ticket.request().target.as_str());
            let executor = self.engine_executor(&ticket.request().target).await?;
            let options = self.options_for(&ticket, matches!(executor, AnyExecutor::Mysql { .. })).await;
            let clock = || self.clock.now();
            let dry_run = self.settings.revoke_dry_run;
            let outcome = revoke_ticket(&self.store, &executor, id, trigger, &options, dry_run, &clock).await?;
            let handled = |outcome: &str, latency_ms| Handled {
                ticket_id: id.to_owned(),
                trigger,
                outcome: outcome.to_owned(),
                latency_ms,
            };
            Ok(match outcome {
                RevokeOutcome::Revoked { ticket, executed } => {
                    let latency = ticket.revocation().map(|r| r.latency_ms);
                    tracing::info!(latency_ms = latency, statements = executed.sql.len(), "revoked");
                    if let Err(e) = self.timers.disarm(id).await {
                        tracing::warn!(error = %e, "revoked; the lease or schedule is left to expire");
                    }
                    if ticket.access().is_some() {
                        self.access_secrets.delete(id).await?;
                    }
                    handled("revoked", latency)
                }
                RevokeOutcome::Failed { ticket, error } => {
                    tracing::error!(error = %error.message, "revocation failed for good; dead-lettered");
                    let letter = DeadLetter {
                        ticket_id: id.to_owned(),
                        target: ticket.request().target.to_string(),
                        role: ticket.request().role.to_string(),
                        trigger,
                        error: error.message.clone(),
                        attempts: error.attempts,
                    };
                    self.dead_letter(&letter).await?;
                    handled("revocation_failed", None)
                }
                RevokeOutcome::NotDue(_) => handled("not_due", None),
                RevokeOutcome::AlreadyEnded(TicketStatus::RevocationFailed) => {
                    // a redelivery of the trigger that failed it: its dead letter may not have gone out
                    let read = TicketStore::ticket(&self.store, id).await.map_err(RevokeError::Store)?;
                    if let Some(ticket) = read.map(|r| r.value)
                        && let Some(failed) = ticket.revocation().filter(|r| r.trigger == trigger)
                    {
                        let letter = DeadLetter {
                            ticket_id: id.to_owned(),
                            target: ticket.request().target.to_string(),
                            role: ticket.request().role.to_string(),
                            trigger,
                            error: failed.error.clone().unwrap_or_default(),
                            attempts: failed.attempts,
                        };
                        self.dead_letter(&letter).await?;
                    }
                    handled("revocation_failed", None)
                }
                RevokeOutcome::AlreadyEnded(_) => handled("already_ended", None),
                RevokeOutcome::DryRun(executed) => {
                    tracing::info!(statements = executed.sql.len(), "dry run: planned and journaled, nothing run");
                    handled("dry_run", None)
                }
            })
        }
        .instrument(span)
        .await
    }

    /// Issues the credential of an access ticket that became active: the password
    /// into the ticket's own secret first (never logged), then the role and its
    /// scope in the database, the break-glass alert, and last the ticket marked
    /// `issued` with `access.issued` journaled without the password. A retry after
    /// any step failed finds the secret and the role made before and issues the
    /// same password again; only the alert may be sent twice.
    async fn issue(&self, id: &str) -> Result<Handled, RevokeFnError> {
        let span = tracing::info_span!("issue", ticket = %id, target = tracing::field::Empty);
        async {
            let handled = |outcome: &str| Handled {
                ticket_id: id.to_owned(),
                trigger: Trigger::Schedule,
                outcome: outcome.to_owned(),
                latency_ms: None,
            };
            let Some(read) = TicketStore::ticket(&self.store, id).await.map_err(RevokeError::Store)? else {
                return Err(RevokeFnError::Input { what: format!("ticket {id}"), reason: "no such ticket".into() });
            };
            let ticket = read.value;
            tracing::Span::current().record("target", ticket.request().target.as_str());
            let now = self.clock.now();
            if let Err(why) = grantwarden_core::access::issuable(&ticket, now) {
                tracing::info!(reason = %why, "not issued");
                return Ok(handled("not_issued"));
            }
            let db = self
                .secrets
                .postgres(&self.settings.revoker_secret_id(&ticket.request().target), "just-in-time access")
                .await?;
            let fresh = RdsSecret {
                username: ticket.request().role.to_string(),
                password: new_password(),
                ..db
            };
            let credential = match self.access_secrets.get_or_create(id, &fresh, ticket.expires_at()).await {
                Ok(credential) => credential,
                Err(AccessSecretError::Aws(e)) => return Err(e.into()),
                Err(refused @ AccessSecretError::NotOurs { .. }) => {
                    // permanent: the secret is not ours to fill, read or delete
                    let error = refused.to_string();
                    tracing::error!(%error, "the credential cannot be issued; dead-lettered");
                    let refused = OnTicket::IssueRefused(IssueRefused { error: error.clone() });
                    let event = NewEvent::for_ticket(&ticket, refused, "grantwarden", now);
                    grantwarden_core::audit::AuditJournal::append(&self.store, event)
                        .await
                        .map_err(RevokeError::Store)?;
                    self.send_dead_letter(&serde_json::json!({ "ticket_id": id, "action": "issue", "error": error }))
                        .await?;
                    return Ok(handled("issue_failed"));
                }
            };
            let executor = self.executor(&ticket.request().target).await?;
            let issued = match executor.activate(&ticket, &credential.password, false).await {
                Ok(c) => c,
                Err(e) if e.class == FailureClass::Transient => {
                    return Err(RevokeFnError::Transient { what: format!("issuing ticket {id}"), message: e.message });
                }
                Err(e) => {
                    tracing::error!(error = %e.message, "the credential cannot be issued; dead-lettered");
                    self.access_secrets.delete(id).await?;
                    self.send_dead_letter(&serde_json::json!({ "ticket_id": id, "action": "issue", "error": e.message }))
                        .await?;
                    return Ok(handled("issue_failed"));
                }
            };
            if let Some(access) = ticket.access().filter(|a| a.review_required) {
                let subject =
                    format!("grantwarden: BREAK-GLASS access for {} on {}", ticket.request().principal, ticket.request().target);
                let detail = serde_json::json!({ "ticket": id, "principal": ticket.request().principal, "role": issued.role,
                    "incident_id": access.incident_id, "expires_at": ticket.expires_at(), "review_required": true });
                tracing::error!(incident = ?access.incident_id, "break-glass credential issued; a review is required");
                if let Some(alerts) = &self.alerts {
                    alerts.ticket(&subject, &detail).await?;
                }
            }
            let name = self.access_secrets.name(id);
            record_issued(&self.store, id, &issued.role, &issued.sql, Some(&name), now)
                .await
                .map_err(RevokeError::Store)?;
            tracing::info!(role = %issued.role, secret = %name, reissued = issued.reissued, left_out = ?issued.left_out, "credential issued");
            Ok(handled("issued"))
        }
        .instrument(span)
        .await
    }

    /// Moves a renewed credential's VALID UNTIL to the ticket's new expiry.
    async fn extend(&self, id: &str) -> Result<Handled, RevokeFnError> {
        let Some(read) = TicketStore::ticket(&self.store, id).await.map_err(RevokeError::Store)? else {
            return Err(RevokeFnError::Input { what: format!("ticket {id}"), reason: "no such ticket".into() });
        };
        let ticket = read.value;
        let executor = self.executor(&ticket.request().target).await?;
        let change = Change::SetValidUntil { role: ticket.request().role.clone(), valid_until: ticket.expires_at() };
        executor.apply(&[change], false).await.map_err(|e| match e.class {
            FailureClass::Transient => {
                RevokeFnError::Transient { what: format!("renewing ticket {id}"), message: e.message }
            }
            FailureClass::Permanent => {
                RevokeFnError::Input { what: format!("renewing ticket {id}"), reason: e.message }
            }
        })?;
        tracing::info!(ticket = %id, until = %ticket.expires_at(), "credential renewed");
        Ok(Handled {
            ticket_id: id.to_owned(),
            trigger: Trigger::Schedule,
            outcome: "renewed".into(),
            latency_ms: None,
        })
    }

    async fn dead_letter(&self, letter: &DeadLetter) -> Result<(), AwsError> {
        self.send_dead_letter(&serde_json::to_value(letter).expect("a dead letter always serializes")).await
    }

    async fn send_dead_letter(&self, letter: &serde_json::Value) -> Result<(), AwsError> {
        let url = self.settings.revoke_dlq_url.as_deref().unwrap_or_default();
        grantwarden_aws::queue::send_one(&self.sqs, url, letter.to_string()).await
    }
}

/// The id of an access ticket a tickets-stream record shows active and not yet issued.
pub fn to_issue(record: &EventRecord) -> Result<Option<String>, RevokeFnError> {
    if record.change.keys.get("ticket_id").is_some() || !matches!(record.event_name.as_str(), "INSERT" | "MODIFY") {
        return Ok(None);
    }
    let Some(image) = record.change.new_image.get("ticket") else { return Ok(None) };
    let ticket: Ticket = serde_dynamo::from_attribute_value(image.clone()).map_err(|e| RevokeFnError::Input {
        what: format!("stream record {}", record.event_id),
        reason: format!("NewImage.ticket: {e}"),
    })?;
    let active = ticket.status() == TicketStatus::Active;
    Ok((active && ticket.access().is_some() && !is_issued(&ticket)).then_some(ticket.id().to_owned()))
}

/// The id of an issued access ticket a tickets-stream MODIFY shows renewed (its expiry moved later).
pub fn to_extend(record: &EventRecord) -> Result<Option<String>, RevokeFnError> {
    if record.event_name != "MODIFY" || record.change.keys.get("ticket_id").is_some() {
        return Ok(None);
    }
    let decode = |image: &serde_dynamo::Item| -> Result<Option<Ticket>, RevokeFnError> {
        image.get("ticket").map(|v| serde_dynamo::from_attribute_value::<_, Ticket>(v.clone())).transpose().map_err(
            |e| RevokeFnError::Input { what: format!("stream record {}", record.event_id), reason: e.to_string() },
        )
    };
    let (Some(new), Some(old)) = (decode(&record.change.new_image)?, decode(&record.change.old_image)?) else {
        return Ok(None);
    };
    let renewed = new.history().last().is_some_and(|e| e.what == "renewed") && new.expires_at() > old.expires_at();
    Ok((renewed && new.access().is_some() && is_issued(&new) && new.status() == TicketStatus::Active)
        .then_some(new.id().to_owned()))
}

/// The ticket and trigger of a stream record, or `None` when it is not a trigger.
pub fn trigger_of(record: &EventRecord) -> Result<Option<(String, Trigger)>, RevokeFnError> {
    let what = || format!("stream record {}", record.event_id);
    let is_lease = record.change.keys.get("ticket_id").is_some();
    match (record.event_name.as_str(), is_lease) {
        ("REMOVE", true) => {
            let ttl = record
                .user_identity
                .as_ref()
                .is_some_and(|u| u.type_ == "Service" && u.principal_id == "dynamodb.amazonaws.com");
            if !ttl {
                return Ok(None); // deleted by grantwarden after a revocation, not expired
            }
            let lease: Lease = serde_dynamo::from_item(record.change.old_image.clone())
                .map_err(|e| RevokeFnError::Input { what: what(), reason: format!("OldImage: {e}") })?;
            Ok(Some((lease.ticket_id, Trigger::Lease)))
        }
        ("MODIFY", false) => {
            let status = |image: &serde_dynamo::Item| -> Option<TicketStatus> {
                image.get("status").and_then(|v| serde_dynamo::from_attribute_value(v.clone()).ok())
            };
            let now = status(&record.change.new_image);
            if now != Some(TicketStatus::RevokeRequested) || status(&record.change.old_image) == now {
                return Ok(None);
            }
            let id: String = record
                .change
                .keys
                .get("id")
                .and_then(|v| serde_dynamo::from_attribute_value(v.clone()).ok())
                .ok_or_else(|| RevokeFnError::Input { what: what(), reason: "Keys: no id".into() })?;
            Ok(Some((id, Trigger::Request)))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_ttl_removal_of_a_lease_and_a_move_to_revoke_requested_trigger() {
        let ttl: Event = serde_json::from_str(include_str!("../../../events/revoke-lease-ttl-remove.json")).unwrap();
        assert_eq!(trigger_of(&ttl.records[0]).unwrap(), Some(("tkt-e77b0c3f1a2d4e5f6a7b".into(), Trigger::Lease)));
        let mut by_hand = ttl.records[0].clone();
        by_hand.user_identity = None;
        assert_eq!(trigger_of(&by_hand).unwrap(), None, "a lease deleted after revocation is not a trigger");
        let asked: Event = serde_json::from_str(include_str!("../../../events/revoke-ticket-requested.json")).unwrap();
        assert_eq!(trigger_of(&asked.records[0]).unwrap(), Some(("tkt-e77b0c3f1a2d4e5f6a7b".into(), Trigger::Request)));
        let schedule: Invocation = serde_json::from_str(include_str!("../../../events/revoke-schedule.json")).unwrap();
        assert!(matches!(schedule, Invocation::Scheduled(s) if s.ticket_id == "tkt-e77b0c3f1a2d4e5f6a7b"));
        let sweep: Invocation = serde_json::from_str(include_str!("../../../events/revoke-sweep.json")).unwrap();
        assert!(matches!(sweep, Invocation::Sweep(_)));
        let remediation: Invocation =
            serde_json::from_str(include_str!("../../../events/revoke-remediation-sqs.json")).unwrap();
        let Invocation::Remediation(batch) = remediation else { panic!("an SQS batch") };
        let request: RemediationRequest = serde_json::from_str(batch.records[0].body.as_deref().unwrap()).unwrap();
        assert_eq!(request.changes.len(), 1);
    }
}
