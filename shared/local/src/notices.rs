//! The notice queue of `grantwarden_core::notify` in the state file: notices
//! waiting for chat (with their attempts, next attempt and last failure), the
//! journal cursor they were read up to, and the cards posted per ticket.

use chrono::{DateTime, Utc};
use grantwarden_core::error::StoreError;
use grantwarden_core::notify::{Keyed, Notice, NoticeQueue, Posted, Queued, Settled};
use rusqlite::{OptionalExtension, params};

use crate::{LocalStore, unavailable};

/// A notice as the state file holds it (for `grantwarden notices`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeRow {
    /// Its key.
    pub key: String,
    /// The notice.
    pub notice: Notice,
    /// `waiting`, `delivered` or `dead`.
    pub state: String,
    /// Attempts made.
    pub attempts: u32,
    /// Why the last attempt failed (or why it was given up).
    pub reason: Option<String>,
}

fn decode(key: &str, body: &str) -> Result<Notice, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt { id: format!("notice {key}"), reason: e.to_string() })
}

impl LocalStore {
    /// The notices in `state` (`waiting`, `delivered`, `dead`), oldest first.
    pub fn notices(&self, state: &str) -> Result<Vec<NoticeRow>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT key, body, state, attempts, reason FROM notices WHERE state = ?1 ORDER BY queued_at, key",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![state], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get(2)?, r.get::<_, i64>(3)?, r.get(4)?))
                })
                .map_err(unavailable)?;
            let mut out = Vec::new();
            for row in rows {
                let (key, body, state, attempts, reason) = row.map_err(unavailable)?;
                let notice = decode(&key, &body)?;
                out.push(NoticeRow {
                    key,
                    notice,
                    state,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                    reason,
                });
            }
            Ok(out)
        })
    }

    /// Puts a dead notice back in the queue, due at `now` with its attempts
    /// reset (after the cause was fixed); false when no dead notice has `key`.
    pub fn requeue(&self, key: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.with(|conn| {
            let n = conn
                .execute(
                    "UPDATE notices SET state = 'waiting', attempts = 0, due_at = ?2 WHERE key = ?1 AND state = 'dead'",
                    params![key, now.timestamp_millis()],
                )
                .map_err(unavailable)?;
            Ok(n == 1)
        })
    }
}

impl NoticeQueue for LocalStore {
    async fn enqueue(&self, notices: &[Keyed], now: DateTime<Utc>) -> Result<usize, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction().map_err(unavailable)?;
            let mut new = 0;
            for n in notices {
                let body = serde_json::to_string(&n.notice).expect("a notice always serializes");
                new += tx
                    .execute(
                        "INSERT OR IGNORE INTO notices (key, body, queued_at, due_at) VALUES (?1, ?2, ?3, ?4)",
                        params![n.key, body, now.to_rfc3339(), now.timestamp_millis()],
                    )
                    .map_err(unavailable)?;
            }
            tx.commit().map_err(unavailable)?;
            Ok(new)
        })
    }

    async fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Queued>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT key, body, attempts FROM notices WHERE state = 'waiting' AND due_at <= ?1 \
                     ORDER BY due_at, queued_at, key LIMIT ?2",
                )
                .map_err(unavailable)?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt
                .query_map(params![now.timestamp_millis(), limit], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
                })
                .map_err(unavailable)?;
            let mut out = Vec::new();
            for row in rows {
                let (key, body, attempts) = row.map_err(unavailable)?;
                let notice = decode(&key, &body)?;
                out.push(Queued { key, notice, attempts: u32::try_from(attempts).unwrap_or(u32::MAX) });
            }
            Ok(out)
        })
    }

    async fn settle(&self, key: &str, outcome: &Settled, _now: DateTime<Utc>) -> Result<(), StoreError> {
        let (state, due, reason) = match outcome {
            Settled::Delivered => ("delivered", None, None),
            Settled::Retry { at, reason } => ("waiting", Some(at.timestamp_millis()), Some(reason.as_str())),
            Settled::Dead { reason } => ("dead", None, Some(reason.as_str())),
        };
        self.with(|conn| {
            conn.execute(
                "UPDATE notices SET state = ?2, attempts = attempts + 1, due_at = COALESCE(?3, due_at), \
                 reason = COALESCE(?4, reason) WHERE key = ?1",
                params![key, state, due, reason],
            )
            .map_err(unavailable)?;
            Ok(())
        })
    }

    async fn cursor(&self, chain: &str) -> Result<Option<u64>, StoreError> {
        self.with(|conn| {
            let seq: Option<i64> = conn
                .query_row("SELECT seq FROM notice_cursors WHERE chain = ?1", params![chain], |r| r.get(0))
                .optional()
                .map_err(unavailable)?;
            Ok(seq.map(|s| u64::try_from(s).unwrap_or(0)))
        })
    }

    async fn advance(&self, chain: &str, seq: u64) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT INTO notice_cursors (chain, seq) VALUES (?1, ?2) \
                 ON CONFLICT (chain) DO UPDATE SET seq = MAX(seq, excluded.seq)",
                params![chain, i64::try_from(seq).unwrap_or(i64::MAX)],
            )
            .map_err(unavailable)?;
            Ok(())
        })
    }

    async fn posted(&self, ticket: &str) -> Result<Vec<Posted>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare("SELECT channel, ts, recipient FROM chat_posts WHERE ticket = ?1 ORDER BY rowid")
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![ticket], |r| Ok(Posted { channel: r.get(0)?, ts: r.get(1)?, to: r.get(2)? }))
                .map_err(unavailable)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(unavailable)
        })
    }

    async fn record_posted(&self, ticket: &str, posted: &Posted) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "INSERT OR IGNORE INTO chat_posts (ticket, channel, ts, recipient) VALUES (?1, ?2, ?3, ?4)",
                params![ticket, posted.channel, posted.ts, posted.to],
            )
            .map_err(unavailable)?;
            Ok(())
        })
    }
}
