//! Drift remediation as use cases: a report's corrective changes planned and
//! handed on ([`plan_remediation`], the diff Lambda's step), and changes run
//! (or rendered, on a dry run) and journaled ([`run_remediation`], the step of
//! `grantwarden apply` and of the revoke Lambda's remediation queue).
//!
//! Both doors journal the same `remediation.planned` / `.applied` / `.failed`
//! event with the same detail, so the remediation report reads them alike
//! (docs/ARCHITECTURE.md). A revoke that a ticket in force now covers is held
//! back: the ticket may have started since the scan the changes came from, and
//! an excepted grant is never touched while its ticket is in force.

use std::future::Future;

use chrono::{DateTime, Utc};

use crate::audit::event::{Remediation, RemediationQueued, RemediationStep};
use crate::audit::{AuditJournal, NewEvent};
use crate::change::Change;
use crate::error::StoreError;
use crate::remediate::{Mode, RemediationRequest, SkippedFindings, without_excepted};
use crate::report::Report;
use crate::revoke::{ExecError, FailureClass};
use crate::snapshot::TargetId;
use crate::store::TicketStore;

/// What running a remediation's changes did in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The SQL, exactly as run (or as it would run).
    pub sql: Vec<String>,
    /// Attempts it took.
    pub attempts: u32,
    /// Changes left out, with the reason (a function that no longer exists).
    pub skipped: Vec<String>,
}

/// Runs remediation changes against the target database (shared/postgres implements it).
pub trait ChangeExecutor {
    /// Runs `changes` in one transaction (with `dry_run`: only renders them);
    /// transient failures are retried within the call.
    fn apply(&self, changes: &[Change], dry_run: bool) -> impl Future<Output = Result<Applied, ExecError>> + Send;
}

/// Where planned remediation goes to be run (the remediation queue on AWS).
pub trait RemediationQueue {
    /// Why handing on failed.
    type Error: std::error::Error + Send + Sync + 'static;
    /// Hands on one request.
    fn send(&self, request: &RemediationRequest) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// What a transient database failure (one that outlasted the executor's own
/// retries) becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnTransient {
    /// The caller delivers the run again later (a queue): nothing is journaled,
    /// [`RemediationError::Transient`] is returned.
    Redeliver,
    /// Nobody retries (a command run by hand): journaled as `remediation.failed`.
    Fail,
}

/// One remediation to run.
#[derive(Debug, Clone)]
pub struct RemediationRun<'a> {
    /// The target.
    pub target: &'a TargetId,
    /// The scan the findings came from.
    pub scan_id: &'a str,
    /// Its snapshot's sha256.
    pub snapshot_sha256: &'a str,
    /// The mode it was planned under (as journaled).
    pub mode: Mode,
    /// The changes, in order.
    pub changes: Vec<Change>,
    /// The findings left for a person.
    pub skipped: SkippedFindings,
    /// Render only: `remediation.planned`, nothing changed.
    pub dry_run: bool,
    /// What a transient failure becomes.
    pub on_transient: OnTransient,
    /// Who runs it, as journaled (`grantwarden:apply`, `grantwarden:remediation`).
    pub actor: &'a str,
}

/// What [`run_remediation`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct RemediationOutcome {
    /// The event journaled: `remediation.planned`, `.applied` or `.failed`.
    pub kind: crate::audit::event::EventKind,
    /// The changes run (or rendered).
    pub changes: Vec<Change>,
    /// The revokes held back because a ticket in force covers them.
    pub held_back: Vec<Change>,
    /// What the executor did, or why it failed for good (journaled as `.failed`).
    pub result: Result<Applied, ExecError>,
}

/// Why a remediation did not run to its journal event.
#[derive(Debug, thiserror::Error)]
pub enum RemediationError {
    /// Without the tickets in force an excepted grant could be revoked: nothing ran.
    #[error("reading the tickets in force (without them an excepted grant could be revoked): {0}")]
    Tickets(StoreError),
    /// The journal failed after the run.
    #[error("journaling the remediation: {0}")]
    Journal(StoreError),
    /// A transient failure, to be delivered again ([`OnTransient::Redeliver`]); nothing journaled.
    #[error("remediation of scan {scan_id}: {error} (will be retried)")]
    Transient {
        /// The scan.
        scan_id: String,
        /// The last error.
        error: ExecError,
    },
}

/// Runs `run`'s changes less the revokes a ticket in force at `clock()` covers,
/// and journals `remediation.planned` (a dry run), `.applied` or `.failed` with
/// the changes, what was held back, the SQL, the findings skipped, what the
/// database no longer had, the attempts and the error. A permanent failure is
/// journaled and returned in the outcome (the caller reports or dead-letters it).
pub async fn run_remediation<S, X, C>(
    store: &S,
    executor: &X,
    run: RemediationRun<'_>,
    clock: &C,
) -> Result<RemediationOutcome, RemediationError>
where
    S: TicketStore + AuditJournal + Sync,
    X: ChangeExecutor + Sync,
    C: Fn() -> DateTime<Utc> + Sync,
{
    let tickets = store.tickets(Some(run.target)).await.map_err(RemediationError::Tickets)?;
    let (changes, held_back) = without_excepted(run.changes, run.target, &tickets, clock());
    let result = executor.apply(&changes, run.dry_run).await;
    if let Err(error) = &result
        && error.class == FailureClass::Transient
        && run.on_transient == OnTransient::Redeliver
    {
        return Err(RemediationError::Transient { scan_id: run.scan_id.to_owned(), error: error.clone() });
    }
    let step = match &result {
        Err(_) => RemediationStep::Failed,
        Ok(_) if run.dry_run => RemediationStep::Planned,
        Ok(_) => RemediationStep::Applied,
    };
    let (sql, attempts, not_found, error) = match &result {
        Ok(Applied { sql, attempts, skipped }) => (sql.clone(), *attempts, skipped.clone(), None),
        Err(e) => (Vec::new(), e.attempts, Vec::new(), Some(e.message.clone())),
    };
    let detail = Remediation::Run(crate::audit::event::RemediationRun {
        mode: run.mode,
        changes: changes.clone(),
        held_back: held_back.clone(),
        sql,
        not_found,
        error,
        snapshot_sha256: run.snapshot_sha256.to_owned(),
        skipped: Some(run.skipped),
        attempts: Some(attempts),
        dry_run: Some(run.dry_run),
    });
    let event = NewEvent::remediation(run.target.as_str(), run.scan_id, step, &detail, run.actor, clock());
    store.append(event).await.map_err(RemediationError::Journal)?;
    Ok(RemediationOutcome { kind: step.kind(), changes, held_back, result })
}

/// Why planned remediation was not handed on in full.
#[derive(Debug, thiserror::Error)]
pub enum PlanError<E: std::error::Error + 'static> {
    /// The queue refused a request; the scan's delivery again sends them all again.
    #[error(transparent)]
    Queue(E),
    /// The journal failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Plans `report`'s remediation under `mode` ([`RemediationRequest::for_report`]:
/// nothing in report mode, for a partial scan, or when nothing needs changing),
/// hands each request to `queue`, and journals `remediation.planned` by `actor`
/// with every change, the findings skipped and the number of parts. Returns the
/// requests sent.
pub async fn plan_remediation<S, Q>(
    store: &S,
    queue: &Q,
    report: &Report,
    mode: Mode,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Vec<RemediationRequest>, PlanError<Q::Error>>
where
    S: AuditJournal + Sync,
    Q: RemediationQueue + Sync,
{
    let requests = RemediationRequest::for_report(report, mode);
    for request in &requests {
        queue.send(request).await.map_err(PlanError::Queue)?;
    }
    let Some(first) = requests.first() else { return Ok(requests) };
    let changes: Vec<Change> = requests.iter().flat_map(|r| r.changes.iter().cloned()).collect();
    let queued = RemediationQueued {
        mode: first.mode,
        changes,
        skipped: first.skipped,
        parts: requests.len(),
        snapshot_sha256: first.snapshot_sha256.clone(),
    };
    let event = NewEvent::remediation(
        report.target.as_str(),
        &report.scan_id,
        RemediationStep::Planned,
        &Remediation::Queued(queued),
        actor,
        now,
    );
    store.append(event).await?;
    Ok(requests)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_policy::AccessPath;
    use crate::memory_store::{MemoryStore, access_request, at, opened, ready};
    use crate::model::{Grant, Grantee, ObjectClass, ObjectRef, Privilege, RoleName};

    fn target() -> TargetId {
        TargetId::new("orders-prod").unwrap()
    }

    /// An executor that answers every run with `result`, and counts what it was given.
    struct Answers(Result<Applied, ExecError>, std::sync::Mutex<Vec<(Vec<Change>, bool)>>);

    impl ChangeExecutor for Answers {
        async fn apply(&self, changes: &[Change], dry_run: bool) -> Result<Applied, ExecError> {
            self.1.lock().unwrap().push((changes.to_vec(), dry_run));
            self.0.clone()
        }
    }

    fn answering(result: Result<Applied, ExecError>) -> Answers {
        Answers(result, Default::default())
    }

    fn revoke(role: &RoleName, schema: &str, table: &str) -> Change {
        let grant = Grant {
            object: ObjectRef::in_schema(ObjectClass::Table, schema, table),
            grantee: Grantee::Role(role.clone()),
            privilege: Privilege::Select,
            grantable: false,
        };
        Change::Revoke { grant, cascade: false, option_only: false }
    }

    fn run(changes: Vec<Change>, dry_run: bool, on_transient: OnTransient) -> RemediationRun<'static> {
        static TARGET: std::sync::OnceLock<TargetId> = std::sync::OnceLock::new();
        RemediationRun {
            target: TARGET.get_or_init(target),
            scan_id: "scan-1",
            snapshot_sha256: "abc",
            mode: Mode::RevokeUnauthorized,
            changes,
            skipped: SkippedFindings::Counted(2),
            dry_run,
            on_transient,
            actor: "grantwarden:remediation",
        }
    }

    /// A store with alice's read-only access ticket on schema billing, active from `at(0)`.
    fn with_alices_ticket() -> (MemoryStore, RoleName) {
        let store = MemoryStore::default();
        let t = opened(&store, &access_request("r1", AccessPath::ReadOnly, "1h", None));
        (store, t.request().role.clone())
    }

    #[test]
    fn a_revoke_a_ticket_in_force_covers_is_held_back_and_the_run_journaled_with_everything() {
        let (store, alice) = with_alices_ticket();
        let mallory = RoleName::new("mallory").unwrap();
        let changes = vec![revoke(&alice, "billing", "invoices"), revoke(&mallory, "billing", "invoices")];
        let applied = Applied { sql: vec!["REVOKE SELECT ...".into()], attempts: 2, skipped: vec![] };
        let executor = answering(Ok(applied.clone()));
        let outcome =
            ready(run_remediation(&store, &executor, run(changes.clone(), false, OnTransient::Redeliver), &|| at(5)))
                .unwrap();
        assert_eq!(outcome.kind.as_str(), "remediation.applied");
        assert_eq!((outcome.held_back, outcome.changes.clone()), (vec![changes[0].clone()], vec![changes[1].clone()]));
        assert_eq!(executor.1.lock().unwrap().clone(), [(outcome.changes, false)], "only mallory's revoke ran");
        let event = store.chain("orders-prod").pop().unwrap();
        assert_eq!(
            (event.kind.as_str(), event.actor.as_str(), event.subject.as_str()),
            (outcome.kind.as_str(), "grantwarden:remediation", "scan-1")
        );
        let keys: Vec<&str> = event.detail.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "attempts",
                "changes",
                "dry_run",
                "error",
                "held_back",
                "mode",
                "not_found",
                "skipped",
                "snapshot_sha256",
                "sql"
            ]
        );
        assert_eq!((event.detail["attempts"].clone(), event.detail["skipped"].clone()), (2.into(), 2.into()));
    }

    #[test]
    fn a_dry_run_is_planned_a_permanent_failure_journaled_and_a_transient_one_redelivered_or_failed() {
        let store = MemoryStore::default();
        let change = || vec![revoke(&RoleName::new("mallory").unwrap(), "billing", "invoices")];
        let ok = answering(Ok(Applied { sql: vec![], attempts: 1, skipped: vec![] }));
        let planned = ready(run_remediation(&store, &ok, run(change(), true, OnTransient::Fail), &|| at(1))).unwrap();
        assert_eq!(planned.kind.as_str(), "remediation.planned");
        assert!(ok.1.lock().unwrap()[0].1, "rendered only");

        let failure = |class| ExecError { class, message: "permission denied".into(), attempts: 3 };
        let denied = answering(Err(failure(FailureClass::Permanent)));
        let failed =
            ready(run_remediation(&store, &denied, run(change(), false, OnTransient::Redeliver), &|| at(2))).unwrap();
        assert_eq!(failed.kind.as_str(), "remediation.failed");
        assert!(failed.result.is_err());
        assert_eq!(store.chain("orders-prod").last().unwrap().detail["error"], "permission denied");

        let busy = answering(Err(failure(FailureClass::Transient)));
        let before = store.chain("orders-prod").len();
        let again = ready(run_remediation(&store, &busy, run(change(), false, OnTransient::Redeliver), &|| at(3)));
        assert!(matches!(again, Err(RemediationError::Transient { .. })), "{again:?}");
        assert_eq!(store.chain("orders-prod").len(), before, "a redelivered run journals nothing yet");
        let by_hand =
            ready(run_remediation(&store, &busy, run(change(), false, OnTransient::Fail), &|| at(4))).unwrap();
        assert_eq!(by_hand.kind.as_str(), "remediation.failed", "nobody retries a run by hand");
        assert_eq!(store.kinds("orders-prod"), ["remediation.planned", "remediation.failed", "remediation.failed"]);
    }

    /// A queue that keeps what it is sent, or refuses everything.
    struct Queue(Option<std::sync::Mutex<Vec<RemediationRequest>>>);

    #[derive(Debug, thiserror::Error)]
    #[error("queue refused")]
    struct Refused;

    impl RemediationQueue for Queue {
        type Error = Refused;
        async fn send(&self, request: &RemediationRequest) -> Result<(), Refused> {
            let sent = self.0.as_ref().ok_or(Refused)?;
            sent.lock().unwrap().push(request.clone());
            Ok(())
        }
    }

    #[test]
    fn a_plan_is_journaled_only_once_every_part_is_handed_on() {
        let finding = serde_json::json!({ "kind": "unauthorized", "severity": "high", "score": 5.0,
            "grantee": "mallory", "privilege": "SELECT", "grantable": false, "detail": "",
            "object": { "type": "table", "schema": "billing", "name": "invoices" } });
        let report: Report = serde_json::from_value(serde_json::json!({
            "target": "orders-prod", "scan_id": "scan-1", "snapshot_sha256": "abc", "taken_at": at(0),
            "summary": { "unauthorized": 1, "missing": 0, "orphaned": 0, "excepted": 0, "expired_exception": 0,
                "untagged": 0, "score": 5.0, "exception_weight": 0.0, "status": "alert", "complete": true },
            "findings": [finding],
        }))
        .expect("a report");
        let store = MemoryStore::default();
        let refusing = Queue(None);
        let refused =
            ready(plan_remediation(&store, &refusing, &report, Mode::RevokeUnauthorized, "grantwarden:diff", at(1)));
        assert!(matches!(refused, Err(PlanError::Queue(Refused))));
        assert!(store.kinds("orders-prod").is_empty(), "not journaled: the scan's redelivery plans it again");

        let queue = Queue(Some(Default::default()));
        let sent =
            ready(plan_remediation(&store, &queue, &report, Mode::RevokeUnauthorized, "grantwarden:diff", at(1)))
                .unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(queue.0.as_ref().unwrap().lock().unwrap().clone(), sent);
        let event = store.chain("orders-prod").pop().unwrap();
        assert_eq!((event.kind.as_str(), event.detail["parts"].clone()), ("remediation.planned", 1.into()));
        let none = ready(plan_remediation(&store, &queue, &report, Mode::Report, "grantwarden:diff", at(2))).unwrap();
        assert!(none.is_empty() && store.kinds("orders-prod").len() == 1, "report mode hands on nothing");
    }
}
