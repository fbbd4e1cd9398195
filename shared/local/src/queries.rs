//! The query store on SQLite: events keyed by `(target, key)`, so a record
//! delivered again is not stored twice; times as RFC 3339 UTC with a fixed
//! number of digits, so they sort as text.

use std::collections::BTreeSet;

use chrono::SecondsFormat;
use grantwarden_core::audit::event::QueriesIngested;
use grantwarden_core::error::StoreError;
use grantwarden_core::queries::{KeptRejection, QueryEvent, QueryFilter, QueryStore};
use grantwarden_core::snapshot::TargetId;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

use crate::{LocalStore, unavailable};

fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn corrupt(id: String) -> impl FnOnce(serde_json::Error) -> StoreError {
    move |e| StoreError::Corrupt { id, reason: e.to_string() }
}

impl QueryStore for LocalStore {
    async fn put_query_events(&self, events: &[QueryEvent]) -> Result<u64, StoreError> {
        if events.is_empty() {
            return Ok(0);
        }
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let mut added = 0;
            {
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO query_events (target, key, at, body) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (target, key) DO NOTHING",
                    )
                    .map_err(unavailable)?;
                for e in events {
                    let body = serde_json::to_string(e).expect("an event always serializes");
                    added +=
                        insert.execute(params![e.target.as_str(), e.key, time(&e.at), body]).map_err(unavailable)?;
                }
            }
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

    async fn known_keys(&self, target: &TargetId, keys: &[String]) -> Result<BTreeSet<String>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare_cached("SELECT 1 FROM query_events WHERE target = ?1 AND key = ?2")
                .map_err(unavailable)?;
            let mut out = BTreeSet::new();
            for k in keys {
                if stmt.exists(params![target.as_str(), k]).map_err(unavailable)? {
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
        let from = filter.from.as_ref().map(time).unwrap_or_default();
        // past any time written with four-digit years
        let to = filter.to.as_ref().map(time).unwrap_or_else(|| "~".to_owned());
        let target = filter.target.as_ref().map(|t| t.as_str().to_owned());
        self.with(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT key, body FROM query_events
                     WHERE (?1 IS NULL OR target = ?1) AND at >= ?2 AND at < ?3 ORDER BY at, target, key",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![target, from, to], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(unavailable)?;
            let mut out = Vec::new();
            for row in rows {
                let (key, body) = row.map_err(unavailable)?;
                let event: QueryEvent = serde_json::from_str(&body).map_err(corrupt(format!("query event {key}")))?;
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
