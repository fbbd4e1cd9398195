//! A scheduled scan as a pipeline of messages (the AWS runtime).
//!
//! Fan-out plans the chunks of each target and records a [`ScanRecord`] and a
//! [`ScanManifest`]; each chunk travels as a [`ChunkTask`]; an extractor turns
//! it into a [`Batch`] and settles the chunk on the record; whoever settles the
//! last chunk ends the scan; the diff then [`assemble`]s the batches into the
//! same [`Snapshot`] a local scan gives. A MySQL or MariaDB target runs the
//! same messages: its manifest names the server ([`ScanManifest::mysql`]), its
//! batches hold catalog parts, and [`assemble_mysql`] makes the same
//! [`MysqlScan`] the CLI's scan gives. Every id is deterministic, so a
//! retried schedule or a redelivered message never starts or counts anything
//! twice. The ledger port ([`ScanLedger`]) keeps the record; its
//! implementations must make `chunk_settled` idempotent per batch.

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::NewEvent;
use crate::audit::event::ScanStarted;
use crate::error::StoreError;
use crate::mysql::catalog::{Catalog, Server};
use crate::mysql_scan::Scan as MysqlScan;
use crate::snapshot::{ChunkOutcome, ChunkSpec, OidRange, ScanWindow, Snapshot, State, TargetId, batch_id, scan_id};

/// Where a scan stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScanStatus {
    /// Chunks are still out.
    Running,
    /// Every chunk was extracted.
    Complete,
    /// Every chunk settled, and at least one failed for good: the report must say so.
    Incomplete,
}

impl std::fmt::Display for ScanStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ScanStatus::Running => "running",
            ScanStatus::Complete => "complete",
            ScanStatus::Incomplete => "incomplete",
        })
    }
}

/// One chunk to extract: the body of a chunk message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkTask {
    /// Which database.
    pub target: TargetId,
    /// The scan it belongs to.
    pub scan_id: String,
    /// Deterministic batch id (target, chunk, window).
    pub batch_id: String,
    /// What to read.
    pub chunk: ChunkSpec,
    /// `server_version_num` seen when planning (the catalog queries depend on
    /// it); a MySQL or MariaDB server's version as one number ([`Server::version_num`]).
    pub server_version_num: u32,
    /// Where the chunk's relations are in `pg_class` (none: the chunk finds them by reading it all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oids: Option<OidRange>,
}

/// The plan of one scan, kept beside its batches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanManifest {
    /// Which database.
    pub target: TargetId,
    /// Deterministic scan id.
    pub scan_id: String,
    /// The schedule window it belongs to.
    pub window: ScanWindow,
    /// When the scan was planned.
    pub taken_at: DateTime<Utc>,
    /// `server_version_num` seen when planning.
    pub server_version_num: u32,
    /// Every chunk, in plan order.
    pub tasks: Vec<ChunkTask>,
    /// The MySQL or MariaDB server planned; none for PostgreSQL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mysql: Option<Server>,
}

impl ScanManifest {
    /// The manifest of a scan of `target` in `window`, planned at `taken_at`:
    /// each chunk with where its relations are, when the plan knows.
    pub fn new(
        target: TargetId,
        window: ScanWindow,
        taken_at: DateTime<Utc>,
        server_version_num: u32,
        chunks: Vec<(ChunkSpec, Option<OidRange>)>,
    ) -> Self {
        let scan_id = scan_id(&target, &window);
        let tasks = chunks
            .into_iter()
            .map(|(chunk, oids)| ChunkTask {
                target: target.clone(),
                scan_id: scan_id.clone(),
                batch_id: batch_id(&target, &chunk, &window),
                chunk,
                server_version_num,
                oids,
            })
            .collect();
        Self { target, scan_id, window, taken_at, server_version_num, tasks, mysql: None }
    }

    /// The manifest of a scan of the MySQL or MariaDB `server` of `target` in
    /// `window`, planned at `taken_at` (chunks from `grantwarden_mysql::scan::plan`).
    pub fn of_mysql(
        target: TargetId,
        window: ScanWindow,
        taken_at: DateTime<Utc>,
        server: Server,
        chunks: Vec<ChunkSpec>,
    ) -> Self {
        let version = server.version_num();
        let manifest = Self::new(target, window, taken_at, version, chunks.into_iter().map(|c| (c, None)).collect());
        Self { mysql: Some(server), ..manifest }
    }

    /// The journal event of a started scan.
    pub fn started_event(&self, at: DateTime<Utc>) -> NewEvent {
        let detail = ScanStarted {
            window_start: self.window.start,
            window_seconds: self.window.seconds,
            chunks: self.tasks.len(),
            server_version_num: self.server_version_num,
        };
        NewEvent::scan_started(self.target.as_str(), &self.scan_id, &detail, at)
    }

    /// The record a new scan starts with.
    pub fn record(&self) -> ScanRecord {
        ScanRecord {
            scan_id: self.scan_id.clone(),
            target: self.target.clone(),
            taken_at: self.taken_at,
            status: ScanStatus::Running,
            dispatched: false,
            chunks_total: self.tasks.len() as u32,
            chunks_done: 0,
            chunks_failed: 0,
            failures: BTreeMap::new(),
            finished_at: None,
        }
    }
}

/// The scan record: counters every extractor bumps, and the status the diff waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanRecord {
    /// Deterministic scan id.
    pub scan_id: String,
    /// Which database.
    pub target: TargetId,
    /// When the scan was planned.
    pub taken_at: DateTime<Utc>,
    /// Running until every chunk settled.
    pub status: ScanStatus,
    /// Whether fan-out sent every chunk message (a retried schedule resends when not).
    pub dispatched: bool,
    /// Chunks planned.
    pub chunks_total: u32,
    /// Chunks extracted.
    pub chunks_done: u32,
    /// Chunks that failed for good.
    pub chunks_failed: u32,
    /// Why each failed chunk failed, by batch id.
    #[serde(default)]
    pub failures: BTreeMap<String, String>,
    /// When the last chunk settled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

impl ScanRecord {
    /// The status the scan ends in once every chunk settled; `None` while chunks are out.
    pub fn settled(&self) -> Option<ScanStatus> {
        if self.status != ScanStatus::Running {
            return Some(self.status);
        }
        let failed = self.chunks_failed > 0;
        (self.chunks_done + self.chunks_failed >= self.chunks_total).then_some(if failed {
            ScanStatus::Incomplete
        } else {
            ScanStatus::Complete
        })
    }
}

/// One extracted chunk, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The task it answers.
    pub task: ChunkTask,
    /// Attempts the extractor made.
    pub attempts: u32,
    /// The chunk's part of the state, stored with its grants grouped by ACL
    /// (empty in a MySQL or MariaDB batch).
    #[serde(with = "crate::snapshot::Grouped")]
    pub state: State,
    /// A MySQL or MariaDB chunk's part of the catalog.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mysql: Option<Catalog>,
}

impl Batch {
    /// A PostgreSQL chunk's batch.
    pub fn postgres(task: ChunkTask, attempts: u32, state: State) -> Self {
        Batch { task, attempts, state, mysql: None }
    }

    /// A MySQL or MariaDB chunk's batch.
    pub fn mysql(task: ChunkTask, attempts: u32, catalog: Catalog) -> Self {
        Batch { task, attempts, state: State::default(), mysql: Some(catalog) }
    }
}

/// How a chunk settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settlement {
    /// Extracted; its batch is stored.
    Done,
    /// Failed for good, with the reason.
    Failed(String),
}

/// What settling a chunk did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Counted now; the record after the update.
    Counted(ScanRecord),
    /// This batch had already been counted (a redelivery): nothing changed.
    AlreadyCounted,
}

/// The port that keeps scan records (DynamoDB: conditional writes and atomic counters).
pub trait ScanLedger {
    /// Records a new scan; `false` when a record with its id already exists.
    fn start_scan(&self, record: &ScanRecord) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// One scan record.
    fn scan(&self, scan_id: &str) -> impl Future<Output = Result<Option<ScanRecord>, StoreError>> + Send;
    /// Marks the scan's chunk messages as sent.
    fn mark_dispatched(&self, scan_id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Counts one chunk, once per batch id however often it is delivered.
    fn chunk_settled(
        &self,
        scan_id: &str,
        batch_id: &str,
        how: &Settlement,
    ) -> impl Future<Output = Result<Settled, StoreError>> + Send;
    /// Moves a running scan to `status`; `false` when someone else already did.
    fn finish_scan(
        &self,
        scan_id: &str,
        status: ScanStatus,
        at: DateTime<Utc>,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Why batches could not become a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssembleError {
    /// A batch of another scan was handed in.
    #[error("batch {batch_id} belongs to scan {found}, not {expected}")]
    ForeignBatch {
        /// The batch.
        batch_id: String,
        /// Its scan.
        found: String,
        /// The scan being assembled.
        expected: String,
    },
    /// A batch of the other engine than its manifest's (the target's secret
    /// changed engine between fan-out and extract).
    #[error("batch {batch_id} holds a {found} chunk, and the scan's manifest plans a {expected} server")]
    Engine {
        /// The batch.
        batch_id: String,
        /// What the batch holds.
        found: &'static str,
        /// What the manifest plans.
        expected: &'static str,
    },
    /// The record says a chunk was extracted but its batch is missing.
    #[error("chunk {chunk} (batch {batch_id}) was counted as extracted but its batch is missing")]
    MissingBatch {
        /// The chunk's label.
        chunk: String,
        /// The batch.
        batch_id: String,
    },
}

/// Merges the batches of a settled scan into one snapshot, chunk outcomes in
/// plan order. A chunk without a batch is failed (the record's reason, or
/// "never extracted"); the snapshot is then incomplete. Chunks never share a
/// database snapshot across Lambdas, so `consistent` is false.
pub fn assemble(manifest: &ScanManifest, record: &ScanRecord, batches: Vec<Batch>) -> Result<Snapshot, AssembleError> {
    let (chunks, parts) = settle(manifest, record, batches, |batch| match batch.mysql {
        None => Ok(batch.state),
        Some(_) => Err(("MySQL", "PostgreSQL")),
    })?;
    let complete = chunks.iter().all(|c| c.error.is_none());
    let state = State::merge_all(parts);
    Ok(Snapshot {
        target: manifest.target.clone(),
        scan_id: manifest.scan_id.clone(),
        taken_at: manifest.taken_at,
        server_version_num: manifest.server_version_num,
        complete,
        consistent: false,
        chunks,
        sha256: state.sha256(),
        state,
    })
}

/// Merges the batches of a settled scan of a MySQL or MariaDB server into the
/// scan `grantwarden_mysql`'s scanner gives ([`MysqlScan::new`]), as
/// [`assemble`] does a PostgreSQL snapshot's. A manifest of a PostgreSQL
/// server, or a batch of one, is an [`AssembleError::Engine`].
pub fn assemble_mysql(
    manifest: &ScanManifest,
    record: &ScanRecord,
    batches: Vec<Batch>,
) -> Result<MysqlScan, AssembleError> {
    let Some(server) = &manifest.mysql else {
        let batch_id = manifest.tasks.first().map(|t| t.batch_id.clone()).unwrap_or_default();
        return Err(AssembleError::Engine { batch_id, found: "MySQL", expected: "PostgreSQL" });
    };
    let (chunks, parts) = settle(manifest, record, batches, |batch| batch.mysql.ok_or(("PostgreSQL", "MySQL")))?;
    Ok(MysqlScan::new(
        manifest.target.clone(),
        manifest.scan_id.clone(),
        manifest.taken_at,
        server.clone(),
        chunks,
        Catalog::merge_all(parts),
    ))
}

/// Each planned chunk's outcome, in plan order, and the parts `part` takes
/// out of the batches read (or the engines, found and expected, of a batch
/// that is not the manifest's).
fn settle<P>(
    manifest: &ScanManifest,
    record: &ScanRecord,
    batches: Vec<Batch>,
    part: impl Fn(Batch) -> Result<P, (&'static str, &'static str)>,
) -> Result<(Vec<ChunkOutcome>, Vec<P>), AssembleError> {
    let mut by_id: BTreeMap<String, Batch> = BTreeMap::new();
    for b in batches {
        if b.task.scan_id != manifest.scan_id {
            return Err(AssembleError::ForeignBatch {
                batch_id: b.task.batch_id,
                found: b.task.scan_id,
                expected: manifest.scan_id.clone(),
            });
        }
        by_id.insert(b.task.batch_id.clone(), b);
    }
    let mut parts = Vec::with_capacity(manifest.tasks.len());
    let mut chunks = Vec::with_capacity(manifest.tasks.len());
    for task in &manifest.tasks {
        match by_id.remove(&task.batch_id) {
            Some(batch) => {
                chunks.push(ChunkOutcome {
                    batch_id: task.batch_id.clone(),
                    chunk: task.chunk.clone(),
                    attempts: batch.attempts,
                    error: None,
                });
                let batch_id = task.batch_id.clone();
                parts.push(part(batch).map_err(|(found, expected)| AssembleError::Engine {
                    batch_id,
                    found,
                    expected,
                })?);
            }
            None => {
                let error = match record.failures.get(&task.batch_id) {
                    Some(why) => why.clone(),
                    None if record.status == ScanStatus::Complete => {
                        return Err(AssembleError::MissingBatch {
                            chunk: task.chunk.label(),
                            batch_id: task.batch_id.clone(),
                        });
                    }
                    // the record keeps the first reasons only (bounded item size)
                    None if record.chunks_failed as usize > record.failures.len() => {
                        "failed; its reason is on the chunk dead-letter queue and the chunk's marker".to_owned()
                    }
                    None => "never extracted".to_owned(),
                };
                chunks.push(ChunkOutcome {
                    batch_id: task.batch_id.clone(),
                    chunk: task.chunk.clone(),
                    attempts: 0,
                    error: Some(error),
                });
            }
        }
    }
    Ok((chunks, parts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RoleName;

    fn manifest() -> ScanManifest {
        let at: DateTime<Utc> = "2026-11-25T10:15:00Z".parse().unwrap();
        ScanManifest::new(
            TargetId::new("orders-prod").unwrap(),
            ScanWindow::containing(at, 3600),
            at,
            150_000,
            vec![(ChunkSpec::Cluster, None), (ChunkSpec::Schemas { schemas: vec!["a".into()] }, None)],
        )
    }

    fn batch(m: &ScanManifest, i: usize, schema: &str) -> Batch {
        let mut state = State::default();
        state.schemas.insert(schema.into(), RoleName::new("owner").unwrap());
        Batch::postgres(m.tasks[i].clone(), 1, state)
    }

    #[test]
    fn a_retried_schedule_plans_the_same_ids() {
        let (a, b) = (manifest(), manifest());
        assert_eq!(a.scan_id, b.scan_id);
        assert_eq!(a.tasks, b.tasks);
        assert_ne!(a.tasks[0].batch_id, a.tasks[1].batch_id);
    }

    #[test]
    fn the_last_settled_chunk_decides_the_status() {
        let mut r = manifest().record();
        assert_eq!(r.settled(), None);
        r.chunks_done = 1;
        assert_eq!(r.settled(), None);
        r.chunks_failed = 1;
        assert_eq!(r.settled(), Some(ScanStatus::Incomplete));
        r.chunks_failed = 0;
        r.chunks_done = 2;
        assert_eq!(r.settled(), Some(ScanStatus::Complete));
    }

    #[test]
    fn assembling_in_any_order_gives_the_same_snapshot() {
        let m = manifest();
        let mut record = m.record();
        record.status = ScanStatus::Complete;
        let ab = assemble(&m, &record, vec![batch(&m, 0, "x"), batch(&m, 1, "y")]).unwrap();
        let ba = assemble(&m, &record, vec![batch(&m, 1, "y"), batch(&m, 0, "x")]).unwrap();
        assert_eq!(ab, ba);
        assert!(ab.complete);
        assert_eq!(ab.chunks[0].chunk, ChunkSpec::Cluster);
    }

    #[test]
    fn a_failed_chunk_makes_the_snapshot_incomplete_with_its_reason() {
        let m = manifest();
        let mut record = m.record();
        record.status = ScanStatus::Incomplete;
        record.failures.insert(m.tasks[1].batch_id.clone(), "permission denied for schema a".into());
        let s = assemble(&m, &record, vec![batch(&m, 0, "x")]).unwrap();
        assert!(!s.complete);
        assert_eq!(s.failed_chunks(), vec!["schema a: permission denied for schema a".to_owned()]);
    }

    #[test]
    fn a_complete_scan_with_a_missing_batch_is_an_error_not_a_clean_report() {
        let m = manifest();
        let mut record = m.record();
        record.status = ScanStatus::Complete;
        let err = assemble(&m, &record, vec![batch(&m, 0, "x")]).unwrap_err();
        assert!(matches!(err, AssembleError::MissingBatch { .. }), "{err}");
    }

    fn mysql_manifest() -> ScanManifest {
        let at: DateTime<Utc> = "2026-11-25T10:15:00Z".parse().unwrap();
        let server = Server { flavor: crate::mysql::catalog::Flavor::Mariadb, version: "10.11.19-MariaDB".into() };
        let chunks = vec![ChunkSpec::Cluster, ChunkSpec::Schemas { schemas: vec!["shop".into()] }];
        ScanManifest::of_mysql(
            TargetId::new("shop-prod").unwrap(),
            ScanWindow::containing(at, 3600),
            at,
            server,
            chunks,
        )
    }

    fn mysql_batch(m: &ScanManifest, i: usize, database: &str, unreadable: bool) -> Batch {
        let mut catalog = Catalog::default();
        catalog.databases.insert(database.into());
        if unreadable {
            catalog.unreadable.insert(crate::mysql::catalog::Unreadable {
                what: "view definers".into(),
                why: "the scanning account lacks SHOW VIEW ON *.*".into(),
            });
        }
        Batch::mysql(m.tasks[i].clone(), 2, catalog)
    }

    #[test]
    fn a_mysql_scan_assembles_as_the_scanner_makes_it() {
        let m = mysql_manifest();
        assert_eq!(m.server_version_num, 101_119);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<ScanManifest>(&json).unwrap(), m, "the server survives the S3 round trip");
        let mut record = m.record();
        record.status = ScanStatus::Complete;
        let batches = vec![mysql_batch(&m, 1, "shop", false), mysql_batch(&m, 0, "mysql", false)];
        let scan = assemble_mysql(&m, &record, batches.clone()).unwrap();
        assert!(scan.complete && !scan.consistent);
        assert_eq!(scan.chunks.iter().map(|c| c.attempts).collect::<Vec<_>>(), vec![2, 2], "plan order");
        assert_eq!(scan.catalog.databases.len(), 2);
        assert_eq!(scan.sha256, scan.catalog.sha256());
        let json = serde_json::to_string(&batches[0]).unwrap();
        assert_eq!(serde_json::from_str::<Batch>(&json).unwrap(), batches[0]);

        // what the scanning account could not read makes it incomplete, as the scanner's
        let scan = assemble_mysql(&m, &record, vec![mysql_batch(&m, 0, "mysql", true), batches[0].clone()]).unwrap();
        assert!(!scan.complete);
        assert!(scan.facts().not_judged.iter().any(|n| n.contains("view definers")), "{:?}", scan.facts());

        // a chunk that failed for good: incomplete, with its reason
        let mut record = m.record();
        record.status = ScanStatus::Incomplete;
        record.failures.insert(m.tasks[1].batch_id.clone(), "Access denied for user".into());
        let scan = assemble_mysql(&m, &record, vec![mysql_batch(&m, 0, "mysql", false)]).unwrap();
        assert!(!scan.complete);
        assert_eq!(scan.facts().failed_chunks, vec!["schema shop: Access denied for user".to_owned()]);
    }

    #[test]
    fn batches_of_the_other_engine_are_refused() {
        let (pg, my) = (manifest(), mysql_manifest());
        let mut record = my.record();
        record.status = ScanStatus::Complete;
        let mut foreign = batch(&pg, 0, "x");
        foreign.task = my.tasks[0].clone();
        let err = assemble_mysql(&my, &record, vec![foreign, mysql_batch(&my, 1, "shop", false)]).unwrap_err();
        assert!(matches!(err, AssembleError::Engine { found: "PostgreSQL", expected: "MySQL", .. }), "{err}");
        let err = assemble(&my, &record, vec![mysql_batch(&my, 0, "mysql", false)]).unwrap_err();
        assert!(err.to_string().contains("holds a MySQL chunk"), "{err}");
        let mut record = pg.record();
        record.status = ScanStatus::Complete;
        let err = assemble_mysql(&pg, &record, vec![]).unwrap_err();
        assert!(err.to_string().contains("plans a PostgreSQL server"), "{err}");
    }
}
