//! The query store on SQLite: one row per event in columns (digests as
//! 32-byte blobs, times as microseconds since the epoch), clustered by
//! `(target, at, key)`. Log records arrive nearly in time order, so writing a
//! batch appends to the end of one B-tree instead of scattering inserts
//! across a random digest index; and since a record's time is read from the
//! record its digest covers, `(at, key)` is as unique as `key`, so a record
//! delivered again is still not stored twice.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use grantwarden_core::audit::event::QueriesIngested;
use grantwarden_core::error::StoreError;
use grantwarden_core::queries::{KeptRejection, QueryEvent, QueryFilter, QueryStore, StatementClass};
use grantwarden_core::snapshot::TargetId;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use crate::{LocalStore, unavailable};

fn corrupt(id: String) -> impl FnOnce(serde_json::Error) -> StoreError {
    move |e| StoreError::Corrupt { id, reason: e.to_string() }
}

/// A digest as stored: its 32 bytes.
fn digest(hex_text: &str, what: &str) -> Result<[u8; 32], StoreError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).map_err(|_| StoreError::Corrupt {
        id: format!("query event {what}"),
        reason: format!("{hex_text:?} is not a sha256 in hex"),
    })?;
    Ok(out)
}

const INSERT: &str = "INSERT INTO query_events (target, at, key, session, user, database, person, ticket, class,
    command, object_type, object, copy, rows, statement_id, substatement_id, statement_sha256, statement, redacted,
    batch, line)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21)
    ON CONFLICT (target, at, key) DO NOTHING";

/// The events of a target (any when `?1` is null) in `[?2, ?3)`, as [`event`] reads them.
const SELECT: &str = "SELECT target, at, key, session, user, database, person, ticket, class, command, object_type,
    object, copy, rows, statement_id, substatement_id, statement_sha256, statement, redacted, batch, line
    FROM query_events WHERE (?1 IS NULL OR target = ?1) AND at >= ?2 AND at < ?3 ORDER BY target, at, key";

/// Inserts `events` with a prepared [`INSERT`]: how many were new.
fn insert(conn: &Connection, events: &[QueryEvent]) -> Result<usize, StoreError> {
    let mut insert = conn.prepare_cached(INSERT).map_err(unavailable)?;
    let mut added = 0;
    for e in events {
        added += insert
            .execute(params![
                e.target.as_str(),
                e.at.timestamp_micros(),
                digest(&e.key, "key")?,
                e.session,
                e.user,
                e.database,
                e.person,
                e.ticket,
                e.class.as_str(),
                e.command,
                e.object_type,
                e.object,
                e.copy,
                e.rows,
                e.statement_id as i64,
                e.substatement_id as i64,
                digest(&e.statement_sha256, "statement_sha256")?,
                e.statement,
                e.redacted,
                digest(&e.batch, "batch")?,
                e.line as i64,
            ])
            .map_err(unavailable)?;
    }
    Ok(added)
}

/// An event from a row of [`SELECT`].
fn event(r: &Row<'_>) -> rusqlite::Result<Result<QueryEvent, StoreError>> {
    let key = hex::encode(r.get::<_, Vec<u8>>(2)?);
    let (at, class): (i64, String) = (r.get(1)?, r.get(8)?);
    let bad = |reason: String| Ok(Err(StoreError::Corrupt { id: format!("query event {key}"), reason }));
    let Some(at) = DateTime::<Utc>::from_timestamp_micros(at) else { return bad(format!("time {at} out of range")) };
    let Some(class) = StatementClass::parse(&class) else { return bad(format!("class {class:?}")) };
    let Some(target) = TargetId::new(r.get::<_, String>(0)?) else { return bad("empty target".into()) };
    Ok(Ok(QueryEvent {
        target,
        at,
        session: r.get(3)?,
        user: r.get(4)?,
        database: r.get(5)?,
        person: r.get(6)?,
        ticket: r.get(7)?,
        class,
        command: r.get(9)?,
        object_type: r.get(10)?,
        object: r.get(11)?,
        copy: r.get(12)?,
        rows: r.get(13)?,
        statement_id: r.get::<_, i64>(14)? as u64,
        substatement_id: r.get::<_, i64>(15)? as u64,
        statement_sha256: hex::encode(r.get::<_, Vec<u8>>(16)?),
        statement: r.get(17)?,
        redacted: r.get(18)?,
        batch: hex::encode(r.get::<_, Vec<u8>>(19)?),
        line: r.get::<_, i64>(20)? as u64,
        key,
    }))
}

/// Converts a schema-version-1 store, whose query events were JSON bodies,
/// in one transaction: the old table renamed, the new one made, every event
/// decoded and written again, the old table dropped, the version set to 2.
pub(crate) fn from_v1(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
    let old_shape: bool = tx
        .query_row("SELECT count(*) FROM pragma_table_info('query_events') WHERE name = 'body'", [], |r| r.get(0))
        .map_err(unavailable)?;
    if old_shape {
        tx.execute_batch(
            "DROP INDEX IF EXISTS query_events_by_time; ALTER TABLE query_events RENAME TO query_events_v1;",
        )
        .map_err(unavailable)?;
        tx.execute_batch(crate::SCHEMA).map_err(unavailable)?;
        {
            let mut old = tx.prepare("SELECT key, body FROM query_events_v1").map_err(unavailable)?;
            let mut rows = old.query([]).map_err(unavailable)?;
            let mut chunk = Vec::with_capacity(1000);
            while let Some(row) = rows.next().map_err(unavailable)? {
                let (key, body): (String, String) =
                    (row.get(0).map_err(unavailable)?, row.get(1).map_err(unavailable)?);
                chunk.push(serde_json::from_str(&body).map_err(corrupt(format!("query event {key}")))?);
                if chunk.len() == 1000 {
                    insert(&tx, &chunk)?;
                    chunk.clear();
                }
            }
            insert(&tx, &chunk)?;
        }
        tx.execute_batch("DROP TABLE query_events_v1").map_err(unavailable)?;
    }
    tx.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'", []).map_err(unavailable)?;
    tx.commit().map_err(unavailable)
}

impl QueryStore for LocalStore {
    async fn put_query_events(&self, events: &[QueryEvent]) -> Result<u64, StoreError> {
        if events.is_empty() {
            return Ok(0);
        }
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let added = insert(&tx, events)?;
            tx.commit().map_err(unavailable)?;
            Ok(added as u64)
        })
    }

    async fn put_rejections(&self, rejections: &[KeptRejection]) -> Result<(), StoreError> {
        if rejections.is_empty() {
            return Ok(());
        }
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO query_rejections (target, batch, line, body) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT DO NOTHING",
                    )
                    .map_err(unavailable)?;
                for r in rejections {
                    let body = serde_json::to_string(r).expect("a rejection always serializes");
                    insert
                        .execute(params![r.target.as_str(), r.batch, r.rejected.line as i64, body])
                        .map_err(unavailable)?;
                }
            }
            tx.commit().map_err(unavailable)
        })
    }

    async fn known_keys(
        &self,
        target: &TargetId,
        keys: &[(DateTime<Utc>, String)],
    ) -> Result<BTreeSet<String>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT 1 FROM query_events WHERE target = ?1 AND at = ?2 AND key = ?3")
                .map_err(unavailable)?;
            let mut out = BTreeSet::new();
            for (at, k) in keys {
                if stmt
                    .exists(params![target.as_str(), at.timestamp_micros(), digest(k, "key")?])
                    .map_err(unavailable)?
                {
                    out.insert(k.clone());
                }
            }
            Ok(out)
        })
    }

    async fn finish_batch(&self, target: &TargetId, batch: &QueriesIngested) -> Result<(), StoreError> {
        let body = serde_json::to_string(batch).expect("a batch always serializes");
        self.with(|conn| {
            conn.execute(
                "INSERT INTO query_batches (target, sha256, body) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![target.as_str(), batch.sha256, body],
            )
            .map(drop)
            .map_err(unavailable)
        })
    }

    async fn batch(&self, target: &TargetId, sha256: &str) -> Result<Option<QueriesIngested>, StoreError> {
        let body: Option<String> = self.with(|conn| {
            conn.query_row(
                "SELECT body FROM query_batches WHERE target = ?1 AND sha256 = ?2",
                params![target.as_str(), sha256],
                |r| r.get(0),
            )
            .optional()
            .map_err(unavailable)
        })?;
        body.map(|b| serde_json::from_str(&b).map_err(corrupt(format!("query batch {sha256}")))).transpose()
    }

    async fn query_events(&self, filter: &QueryFilter) -> Result<Vec<QueryEvent>, StoreError> {
        let from = filter.from.map_or(i64::MIN, |t| t.timestamp_micros());
        let to = filter.to.map_or(i64::MAX, |t| t.timestamp_micros());
        let target = filter.target.as_ref().map(|t| t.as_str().to_owned());
        self.with(|conn| {
            let mut stmt = conn.prepare(SELECT).map_err(unavailable)?;
            let rows = stmt.query_map(params![target, from, to], event).map_err(unavailable)?;
            let mut out = Vec::new();
            for row in rows {
                let event = row.map_err(unavailable)??;
                if filter.matches(&event) {
                    out.push(event);
                }
            }
            out.sort_by(|a, b| a.order().cmp(&b.order()));
            Ok(out)
        })
    }

    async fn rejections(&self, target: Option<&TargetId>) -> Result<Vec<KeptRejection>, StoreError> {
        let target = target.map(|t| t.as_str().to_owned());
        self.with(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT batch, line, body FROM query_rejections WHERE (?1 IS NULL OR target = ?1)
                     ORDER BY target, batch, line",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![target], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
                })
                .map_err(unavailable)?;
            let mut out = Vec::new();
            for row in rows {
                let (batch, line, body) = row.map_err(unavailable)?;
                out.push(serde_json::from_str(&body).map_err(corrupt(format!("rejection {batch}:{line}")))?);
            }
            Ok(out)
        })
    }
}
