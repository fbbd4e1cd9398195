//! A scheduled scan as a pipeline of messages (the AWS runtime).
//!
//! Fan-out plans the chunks of each target and records a [`ScanRecord`] and a
//! [`ScanManifest`]; each chunk travels as a [`ChunkTask`]; an extractor turns
//! it into a [`Batch`] and settles the chunk on the record; whoever settles the
//! last chunk ends the scan; the diff then [`assemble`]s the batches into the
//! same [`Snapshot`] a local scan gives. Every id is deterministic, so a
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
    /// `server_version_num` seen when planning (the catalog queries depend on it).
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
        Self { target, scan_id, window, taken_at, server_version_num, tasks }
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
    /// The chunk's part of the state, stored with its grants grouped by ACL.
    #[serde(with = "crate::snapshot::Grouped")]
    pub state: State,
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
    let mut batches = Vec::with_capacity(manifest.tasks.len());
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
                batches.push(batch.state);
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
    let complete = chunks.iter().all(|c| c.error.is_none());
    let state = State::merge_all(batches);
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
        Batch { task: m.tasks[i].clone(), attempts: 1, state }
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
}
