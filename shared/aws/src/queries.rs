//! Query events in the data bucket, as JSON lines Athena reads (the Glue
//! table `query_events` of infra/template.yaml), behind core's [`QueryStore`].
//!
//! ```text
//! queries/events/target=<target>/dt=<YYYY-MM-DD>/<batch sha256>-<line>.jsonl  one stored chunk of events
//! queries/rejected/target=<target>/<batch sha256>-<line>.jsonl               records kept with their reason
//! queries/batches/<target>/<batch sha256>.json                               a batch ingested (its counts)
//! ```
//! A chunk's object is named by its batch and the line of its first event,
//! and partitioned by the date of its earliest event: the same batch read
//! again makes the same chunks, so a redelivery writes the same keys (and,
//! finding them there, writes nothing). Each object holds one chunk
//! ([`grantwarden_core::queries::CHUNK`] events at most), so memory is
//! bounded whatever the batch. Targets are percent-encoded in keys as in
//! [`crate::objects`].
//!
//! [`QueryPipeline`] joins this store with the ticket store and journal
//! (DynamoDB), the one store `grantwarden_core::queries::ingest` takes.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use grantwarden_core::audit::event::QueriesIngested;
use grantwarden_core::audit::{AuditEvent, AuditJournal, NewEvent};
use grantwarden_core::error::StoreError;
use grantwarden_core::queries::{KeptRejection, QueryEvent, QueryFilter, QueryStore};
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::{PutOutcome, TicketStore, Unjournaled, Versioned};
use grantwarden_core::ticket::Ticket;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::objects::key_segment;
use crate::{AwsError, Clients, DynamoStore, Objects, Settings};

/// Prefix of the event objects (the Glue table's location).
pub const EVENTS_PREFIX: &str = "queries/events/";
/// Prefix of the kept rejections.
pub const REJECTED_PREFIX: &str = "queries/rejected/";
/// Prefix of the batch markers.
pub const BATCHES_PREFIX: &str = "queries/batches/";

/// The query store of the data bucket.
#[derive(Clone, Debug)]
pub struct S3Queries {
    objects: Objects,
}

/// Key of the object holding one chunk of a batch's events.
pub fn events_key(target: &TargetId, dt: NaiveDate, batch: &str, first_line: u64) -> String {
    format!("{EVENTS_PREFIX}target={}/dt={}/{batch}-{first_line}.jsonl", key_segment(target), dt.format("%Y-%m-%d"))
}

/// Key of the object holding some of a batch's kept rejections.
pub fn rejected_key(target: &TargetId, batch: &str, first_line: u64) -> String {
    format!("{REJECTED_PREFIX}target={}/{batch}-{first_line}.jsonl", key_segment(target))
}

/// Key of a batch's marker.
pub fn batch_key(target: &TargetId, sha256: &str) -> String {
    format!("{BATCHES_PREFIX}{}/{sha256}.json", key_segment(target))
}

/// The `dt=` partition of an event object's key.
fn partition_date(key: &str) -> Option<NaiveDate> {
    let dt = key.split('/').find_map(|segment| segment.strip_prefix("dt="))?;
    NaiveDate::parse_from_str(dt, "%Y-%m-%d").ok()
}

/// Values as JSON lines.
fn json_lines<T: Serialize>(what: &str, values: &[&T]) -> Result<Vec<u8>, AwsError> {
    let mut body = Vec::new();
    for v in values {
        serde_json::to_writer(&mut body, v)
            .map_err(|e| AwsError::Decode { what: what.to_owned(), reason: e.to_string() })?;
        body.push(b'\n');
    }
    Ok(body)
}

/// `values` grouped by `key`, each group in its order, the groups by their first value's place.
fn groups<T, K: Ord + Clone>(values: &[T], key: impl Fn(&T) -> K) -> Vec<Vec<&T>> {
    let mut order: Vec<K> = Vec::new();
    let mut by: BTreeMap<K, Vec<&T>> = BTreeMap::new();
    for v in values {
        let k = key(v);
        if !by.contains_key(&k) {
            order.push(k.clone());
        }
        by.entry(k).or_default().push(v);
    }
    order.into_iter().filter_map(|k| by.remove(&k)).collect()
}

impl S3Queries {
    /// The store over the bucket named in `settings`.
    pub fn new(clients: &Clients, settings: &Settings) -> Self {
        Self { objects: Objects::new(clients, settings) }
    }

    /// Every value of the JSON lines objects under `prefix` whose key `keep` accepts.
    async fn read_lines<T: DeserializeOwned>(
        &self,
        prefix: &str,
        keep: impl Fn(&str) -> bool,
    ) -> Result<Vec<T>, AwsError> {
        let mut out = Vec::new();
        for key in self.objects.list(prefix).await?.into_iter().filter(|k| keep(k)) {
            let Some(bytes) = self.objects.get(&key).await? else { continue };
            for (n, line) in bytes.split(|b| *b == b'\n').enumerate().filter(|(_, l)| !l.is_empty()) {
                out.push(serde_json::from_slice(line).map_err(|e| AwsError::Decode {
                    what: format!("s3://{}/{key} line {}", self.objects.bucket(), n + 1),
                    reason: e.to_string(),
                })?);
            }
        }
        Ok(out)
    }
}

impl QueryStore for S3Queries {
    /// Writes each chunk's object unless it is there: a chunk stored before
    /// (the same batch delivered again) counts no new event. A record
    /// delivered in two different batches is in both batches' objects.
    async fn put_query_events(&self, events: &[QueryEvent]) -> Result<u64, StoreError> {
        let mut new = 0;
        for chunk in groups(events, |e| (e.target.clone(), e.batch.clone())) {
            let (Some(first), Some(earliest)) = (chunk.first(), chunk.iter().map(|e| e.at).min()) else { continue };
            let key = events_key(&first.target, earliest.date_naive(), &first.batch, first.line);
            if self.objects.exists(&key).await? {
                continue;
            }
            self.objects.put(&key, json_lines(&key, &chunk)?, "application/x-ndjson").await?;
            new += chunk.len() as u64;
        }
        Ok(new)
    }

    async fn put_rejections(&self, rejections: &[KeptRejection]) -> Result<(), StoreError> {
        for part in groups(rejections, |r| (r.target.clone(), r.batch.clone())) {
            let Some(first) = part.first() else { continue };
            let key = rejected_key(&first.target, &first.batch, first.rejected.line);
            self.objects.put(&key, json_lines(&key, &part)?, "application/x-ndjson").await?;
        }
        Ok(())
    }

    /// Answers from nothing stored (always empty): S3 holds events by chunk,
    /// not by record, and cannot say cheaply whether one record is stored.
    /// A batch ingested before is caught by its marker ([`QueryStore::batch`]);
    /// only the alerts of a record delivered in two different batches (or of
    /// a batch whose ingestion failed before its marker) are raised again.
    async fn known_keys(&self, _: &TargetId, _: &[(DateTime<Utc>, String)]) -> Result<BTreeSet<String>, StoreError> {
        Ok(BTreeSet::new())
    }

    async fn finish_batch(&self, target: &TargetId, batch: &QueriesIngested) -> Result<(), StoreError> {
        Ok(self.objects.put_json(&batch_key(target, &batch.sha256), batch).await?)
    }

    async fn batch(&self, target: &TargetId, sha256: &str) -> Result<Option<QueriesIngested>, StoreError> {
        Ok(self.objects.get_json(&batch_key(target, sha256)).await?)
    }

    /// Reads the objects whose partition may hold events in `[from, to)`: a
    /// chunk's `dt` is its earliest event's date, and its events are taken to
    /// span less than a day (a subscription delivers seconds of log), so
    /// partitions from the day before `from` up to `to`'s day are read.
    async fn query_events(&self, filter: &QueryFilter) -> Result<Vec<QueryEvent>, StoreError> {
        let prefix = match &filter.target {
            Some(t) => format!("{EVENTS_PREFIX}target={}/", key_segment(t)),
            None => EVENTS_PREFIX.to_owned(),
        };
        let from = filter.from.map(|f| f.date_naive() - TimeDelta::days(1));
        let to = filter.to.map(|t| t.date_naive());
        let in_range = |key: &str| match partition_date(key) {
            Some(dt) => from.is_none_or(|f| dt >= f) && to.is_none_or(|t| dt <= t),
            None => false,
        };
        let mut events: Vec<QueryEvent> = self.read_lines(&prefix, in_range).await?;
        events.retain(|e| filter.matches(e));
        events.sort_by(|a, b| a.order().cmp(&b.order()));
        Ok(events)
    }

    async fn rejections(&self, target: Option<&TargetId>) -> Result<Vec<KeptRejection>, StoreError> {
        let prefix = match target {
            Some(t) => format!("{REJECTED_PREFIX}target={}/", key_segment(t)),
            None => REJECTED_PREFIX.to_owned(),
        };
        let mut kept: Vec<KeptRejection> = self.read_lines(&prefix, |_| true).await?;
        kept.sort_by(|a, b| (&a.target, &a.batch, a.rejected.line).cmp(&(&b.target, &b.batch, b.rejected.line)));
        Ok(kept)
    }
}

/// The store the queries function ingests into: tickets and the journal from
/// `store` (DynamoDB), query events from `queries` (S3). Each port is the
/// other store's, passed through.
#[derive(Clone, Debug)]
pub struct QueryPipeline<S = DynamoStore> {
    /// Tickets (whose credential ran a statement) and the journal (`queries.ingested`, `queries.alert`).
    pub store: S,
    /// Query events, rejections and batch markers.
    pub queries: S3Queries,
}

impl<S: Sync> QueryStore for QueryPipeline<S> {
    fn put_query_events(&self, events: &[QueryEvent]) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.queries.put_query_events(events)
    }
    fn put_rejections(&self, rejections: &[KeptRejection]) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.queries.put_rejections(rejections)
    }
    fn known_keys(
        &self,
        target: &TargetId,
        keys: &[(DateTime<Utc>, String)],
    ) -> impl Future<Output = Result<BTreeSet<String>, StoreError>> + Send {
        self.queries.known_keys(target, keys)
    }
    fn finish_batch(
        &self,
        target: &TargetId,
        batch: &QueriesIngested,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.queries.finish_batch(target, batch)
    }
    fn batch(
        &self,
        target: &TargetId,
        sha256: &str,
    ) -> impl Future<Output = Result<Option<QueriesIngested>, StoreError>> + Send {
        self.queries.batch(target, sha256)
    }
    fn query_events(&self, filter: &QueryFilter) -> impl Future<Output = Result<Vec<QueryEvent>, StoreError>> + Send {
        self.queries.query_events(filter)
    }
    fn rejections(
        &self,
        target: Option<&TargetId>,
    ) -> impl Future<Output = Result<Vec<KeptRejection>, StoreError>> + Send {
        self.queries.rejections(target)
    }
}

impl<S: AuditJournal + Sync> AuditJournal for QueryPipeline<S> {
    fn append(&self, event: NewEvent) -> impl Future<Output = Result<AuditEvent, StoreError>> + Send {
        self.store.append(event)
    }
    fn append_all(&self, events: Vec<NewEvent>) -> impl Future<Output = Result<Vec<AuditEvent>, StoreError>> + Send {
        self.store.append_all(events)
    }
    fn events_after(&self, chain: &str, seq: u64) -> impl Future<Output = Result<Vec<AuditEvent>, StoreError>> + Send {
        self.store.events_after(chain, seq)
    }
    fn chains(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send {
        self.store.chains()
    }
    fn head(&self, chain: &str) -> impl Future<Output = Result<Option<(u64, String)>, StoreError>> + Send {
        self.store.head(chain)
    }
}

impl<S: TicketStore + Sync> TicketStore for QueryPipeline<S> {
    fn put_ticket(
        &self,
        ticket: &Ticket,
        events: &[NewEvent],
    ) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send {
        self.store.put_ticket(ticket, events)
    }
    fn ticket(&self, id: &str) -> impl Future<Output = Result<Option<Versioned<Ticket>>, StoreError>> + Send {
        self.store.ticket(id)
    }
    fn tickets(&self, target: Option<&TargetId>) -> impl Future<Output = Result<Vec<Ticket>, StoreError>> + Send {
        self.store.tickets(target)
    }
    fn update_ticket(
        &self,
        ticket: &Ticket,
        expected: u64,
        events: &[NewEvent],
    ) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.store.update_ticket(ticket, expected, events)
    }
    fn unjournaled(&self, target: &TargetId) -> impl Future<Output = Result<Vec<Unjournaled>, StoreError>> + Send {
        self.store.unjournaled(target)
    }
    fn reclaim(
        &self,
        entry: &Unjournaled,
        now: chrono::DateTime<chrono::Utc>,
        after: u64,
    ) -> impl Future<Output = Result<Option<Unjournaled>, StoreError>> + Send {
        self.store.reclaim(entry, now, after)
    }
    fn journals_from_stream(&self) -> bool {
        self.store.journals_from_stream()
    }
    fn journaled(&self, entry: &Unjournaled) -> impl Future<Output = Result<(), StoreError>> + Send {
        self.store.journaled(entry)
    }
    fn open_tickets(&self, target: &TargetId) -> impl Future<Output = Result<Vec<Ticket>, StoreError>> + Send {
        self.store.open_tickets(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_partitioned_by_target_and_day() {
        let t = TargetId::new("db.example:5432/orders").unwrap();
        let dt = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap();
        let key = events_key(&t, dt, "ab12", 3);
        assert_eq!(key, "queries/events/target=db.example%3A5432%2Forders/dt=2026-12-07/ab12-3.jsonl");
        assert_eq!(partition_date(&key), Some(dt));
        assert_eq!(partition_date("queries/events/target=x/dt=someday/a.jsonl"), None);
        assert_eq!(batch_key(&t, "ab12"), "queries/batches/db.example%3A5432%2Forders/ab12.json");
    }

    #[test]
    fn groups_keep_first_seen_order() {
        let got = groups(&[("b", 1), ("a", 2), ("b", 3)], |v| v.0);
        assert_eq!(got, vec![vec![&("b", 1), &("b", 3)], vec![&("a", 2)]]);
    }
}
