//! grantwarden-local: the embedded state store for local runs.
//!
//! One SQLite file (default `.grantwarden/state.db`) holds tickets and
//! findings behind the store traits of `grantwarden_core::store`, the same
//! ones the DynamoDB adapter implements. Several CLI runs may share the file:
//! it is opened in WAL mode with a busy timeout, and every write runs in a
//! `BEGIN IMMEDIATE` transaction, so writers queue instead of corrupting it.
//! Tickets are never deleted; updates are conditional on the version read.
//!
//! # Layout
//! - [`LocalStore`]: opening, schema, and the [`TicketStore`],
//!   [`FindingStore`], [`AuditJournal`], [`DigestStore`] and [`ReplayGuard`]
//!   implementations. The journal keeps each chain's head in its own table, so
//!   a truncated chain shows; signed digests (`grantwarden audit digest`) live
//!   beside it. Replay records are working state: expired ones are purged.
//! - `queries`: the [`QueryStore`](grantwarden_core::queries::QueryStore):
//!   query events keyed by their log record, kept rejections, ingested batches.
#![deny(missing_docs)]

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use grantwarden_core::audit::{AuditEvent, AuditJournal, NewEvent, seal};
use grantwarden_core::digest::{Digest, DigestStore};
use grantwarden_core::error::StoreError;
use grantwarden_core::finding::FindingAge;
use grantwarden_core::incident::{IncidentStore, IncidentUpdate};
use grantwarden_core::report::Finding;
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::{
    FindingStore, PutOutcome, Recorded, ReplayGuard, ReplayKey, TicketStore, Unjournaled, Versioned, finding_key,
};
use grantwarden_core::ticket::Ticket;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

/// Schema version this code writes. Version 1 kept query events as JSON
/// bodies keyed by their record's digest; opening such a store converts them
/// ([`queries::from_v1`]).
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tickets (
    id TEXT PRIMARY KEY,
    target TEXT NOT NULL,
    status TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    request_sha256 TEXT NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tickets_by_target ON tickets (target, expires_at);
CREATE TABLE IF NOT EXISTS ticket_outbox (
    ticket TEXT NOT NULL,
    version INTEGER NOT NULL,
    claimed_at TEXT NOT NULL,
    after_seq INTEGER,
    events TEXT NOT NULL,
    PRIMARY KEY (ticket, version)
);
CREATE TABLE IF NOT EXISTS findings (
    target TEXT NOT NULL,
    key TEXT NOT NULL,
    open INTEGER NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    last_scan TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (target, key)
);
CREATE TABLE IF NOT EXISTS journal (
    chain TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
);
CREATE TABLE IF NOT EXISTS journal_heads (
    chain TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS incidents (
    id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS replay (
    key TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS replay_by_expiry ON replay (expires_at);
CREATE TABLE IF NOT EXISTS journal_digests (
    chain TEXT NOT NULL,
    number INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (chain, number)
);
CREATE TABLE IF NOT EXISTS notices (
    key TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    queued_at TEXT NOT NULL,
    due_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'waiting',
    reason TEXT
);
CREATE INDEX IF NOT EXISTS notices_due ON notices (state, due_at);
CREATE TABLE IF NOT EXISTS notice_cursors (chain TEXT PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS query_events (
    target TEXT NOT NULL,
    at INTEGER NOT NULL,
    key BLOB NOT NULL,
    session TEXT,
    user TEXT,
    database TEXT,
    person TEXT NOT NULL,
    ticket TEXT,
    class TEXT NOT NULL,
    command TEXT NOT NULL,
    object_type TEXT,
    object TEXT,
    copy TEXT,
    rows INTEGER,
    statement_id INTEGER NOT NULL,
    substatement_id INTEGER NOT NULL,
    statement_sha256 BLOB NOT NULL,
    statement TEXT NOT NULL,
    redacted INTEGER NOT NULL,
    batch BLOB NOT NULL,
    line INTEGER NOT NULL,
    PRIMARY KEY (target, at, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS query_rejections (
    target TEXT NOT NULL,
    batch TEXT NOT NULL,
    line INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (target, batch, line)
);
CREATE TABLE IF NOT EXISTS query_batches (
    target TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (target, sha256)
);
CREATE TABLE IF NOT EXISTS chat_posts (
    ticket TEXT NOT NULL,
    channel TEXT NOT NULL,
    ts TEXT NOT NULL,
    recipient TEXT,
    PRIMARY KEY (ticket, channel)
);
";

mod notices;
mod queries;
pub use notices::NoticeRow;

/// The SQLite store.
pub struct LocalStore {
    conn: Mutex<Connection>,
}

pub(crate) fn unavailable(e: rusqlite::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn decode(id: &str, body: &str) -> Result<Ticket, StoreError> {
    serde_json::from_str(body).map_err(|e| StoreError::Corrupt { id: id.to_owned(), reason: e.to_string() })
}

impl LocalStore {
    /// Opens (creating when needed) the store file and its parent directory.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Unavailable(format!("cannot create {}: {e}", dir.display())))?;
        }
        let mut conn = Connection::open(path)
            .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(unavailable)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(unavailable)?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(unavailable)?;
        conn.execute_batch(SCHEMA).map_err(unavailable)?;
        let version: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema_version'", [], |r| r.get(0))
            .optional()
            .map_err(unavailable)?;
        match version.as_deref().map(str::parse::<i64>) {
            None => {
                conn.execute(
                    "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?1)",
                    params![SCHEMA_VERSION.to_string()],
                )
                .map_err(unavailable)?;
            }
            Some(Ok(v)) if v == SCHEMA_VERSION => {}
            Some(Ok(1)) => queries::from_v1(&mut conn).map_err(|e| match e {
                StoreError::Unavailable(reason) => {
                    StoreError::Unavailable(format!("converting {} from schema version 1: {reason}", path.display()))
                }
                other => other,
            })?,
            Some(other) => {
                return Err(StoreError::Unavailable(format!(
                    "{} has schema version {other:?}; this grantwarden reads {SCHEMA_VERSION}",
                    path.display()
                )));
            }
        }
        Ok(Self { conn: Mutex::new(conn) })
    }

    pub(crate) fn with<T>(&self, f: impl FnOnce(&mut Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().map_err(|_| StoreError::Unavailable("store lock poisoned".into()))?;
        f(&mut conn)
    }
}

impl TicketStore for LocalStore {
    async fn put_ticket(&self, ticket: &Ticket, events: &[NewEvent]) -> Result<PutOutcome, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let existing: Option<String> = tx
                .query_row("SELECT body FROM tickets WHERE id = ?1", params![ticket.id()], |r| r.get(0))
                .optional()
                .map_err(unavailable)?;
            if let Some(body) = existing {
                let stored = decode(ticket.id(), &body)?;
                return Ok(if stored.request_sha256() == ticket.request_sha256() {
                    PutOutcome::Existing(stored)
                } else {
                    PutOutcome::Conflict(stored)
                });
            }
            let body = serde_json::to_string(ticket).expect("a ticket always serializes");
            tx.execute(
                "INSERT INTO tickets (id, target, status, expires_at, request_sha256, version, body) VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6)",
                params![
                    ticket.id(),
                    ticket.request().target.as_str(),
                    ticket.status().to_string(),
                    ticket.expires_at().to_rfc3339(),
                    ticket.request_sha256(),
                    body
                ],
            )
            .map_err(unavailable)?;
            put_entry(&tx, ticket, 1, events)?;
            tx.commit().map_err(unavailable)?;
            Ok(PutOutcome::Created(ticket.clone()))
        })
    }

    async fn ticket(&self, id: &str) -> Result<Option<Versioned<Ticket>>, StoreError> {
        self.with(|conn| {
            let row: Option<(String, i64)> = conn
                .query_row("SELECT body, version FROM tickets WHERE id = ?1", params![id], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(unavailable)?;
            row.map(|(body, version)| Ok(Versioned { value: decode(id, &body)?, version: version as u64 })).transpose()
        })
    }

    async fn tickets(&self, target: Option<&TargetId>) -> Result<Vec<Ticket>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare("SELECT id, body FROM tickets WHERE ?1 IS NULL OR target = ?1 ORDER BY rowid")
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![target.map(TargetId::as_str)], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .map_err(unavailable)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, body) = row.map_err(unavailable)?;
                out.push(decode(&id, &body)?);
            }
            Ok(out)
        })
    }

    async fn update_ticket(&self, ticket: &Ticket, expected: u64, events: &[NewEvent]) -> Result<u64, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let body = serde_json::to_string(ticket).expect("a ticket always serializes");
            let changed = tx
                .execute(
                    "UPDATE tickets SET status = ?1, expires_at = ?2, version = version + 1, body = ?3 WHERE id = ?4 AND version = ?5",
                    params![ticket.status().to_string(), ticket.expires_at().to_rfc3339(), body, ticket.id(), expected as i64],
                )
                .map_err(unavailable)?;
            if changed == 1 {
                put_entry(&tx, ticket, expected + 1, events)?;
                tx.commit().map_err(unavailable)?;
                return Ok(expected + 1);
            }
            let exists: bool = tx
                .query_row("SELECT EXISTS (SELECT 1 FROM tickets WHERE id = ?1)", params![ticket.id()], |r| r.get(0))
                .map_err(unavailable)?;
            Err(if exists { StoreError::Stale(ticket.id().to_owned()) } else { StoreError::NotFound(ticket.id().to_owned()) })
        })
    }

    async fn unjournaled(&self, target: &TargetId) -> Result<Vec<Unjournaled>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT o.ticket, o.version, o.claimed_at, o.after_seq, o.events FROM ticket_outbox o JOIN tickets t ON t.id = o.ticket
                     WHERE t.target = ?1 ORDER BY o.ticket, o.version",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![target.as_str()], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Option<i64>>(3)?,
                        r.get::<_, String>(4)?,
                    ))
                })
                .map_err(unavailable)?;
            let mut out = Vec::new();
            for row in rows {
                let (ticket, version, claimed_at, after, events) = row.map_err(unavailable)?;
                let mut entry = decode_entry(ticket, version, &claimed_at, &events)?;
                entry.after = after.map(|a| a as u64);
                out.push(entry);
            }
            Ok(out)
        })
    }

    async fn reclaim(
        &self,
        entry: &Unjournaled,
        now: DateTime<Utc>,
        after: u64,
    ) -> Result<Option<Unjournaled>, StoreError> {
        self.with(|conn| {
            let changed = conn
                .execute(
                    "UPDATE ticket_outbox SET claimed_at = ?1, after_seq = ?2 WHERE ticket = ?3 AND version = ?4 AND claimed_at = ?5",
                    params![instant(now), after as i64, entry.ticket, entry.version as i64, instant(entry.claimed_at)],
                )
                .map_err(unavailable)?;
            Ok((changed == 1).then(|| Unjournaled { claimed_at: now, after: Some(after), ..entry.clone() }))
        })
    }

    async fn journaled(&self, entry: &Unjournaled) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute(
                "DELETE FROM ticket_outbox WHERE ticket = ?1 AND version = ?2",
                params![entry.ticket, entry.version as i64],
            )
            .map_err(unavailable)?;
            Ok(())
        })
    }
}

/// An outbox time as stored: to the nanosecond, so a reclaim compares exactly.
fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Stores `events` in the outbox of `ticket` at `version`, in the transaction of the ticket's write.
fn put_entry(
    tx: &rusqlite::Transaction<'_>,
    ticket: &Ticket,
    version: u64,
    events: &[NewEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let entry = Unjournaled::new(ticket.id(), version, events);
    let body = serde_json::to_string(&entry.events).expect("events always serialize");
    tx.execute(
        "INSERT INTO ticket_outbox (ticket, version, claimed_at, events) VALUES (?1, ?2, ?3, ?4)",
        params![entry.ticket, version as i64, instant(entry.claimed_at), body],
    )
    .map_err(unavailable)?;
    Ok(())
}

fn decode_entry(ticket: String, version: i64, claimed_at: &str, events: &str) -> Result<Unjournaled, StoreError> {
    let corrupt =
        |reason: String| StoreError::Corrupt { id: format!("outbox of ticket {ticket} version {version}"), reason };
    let claimed_at = DateTime::parse_from_rfc3339(claimed_at).map_err(|e| corrupt(e.to_string()))?.with_timezone(&Utc);
    let events = serde_json::from_str(events).map_err(|e| corrupt(e.to_string()))?;
    Ok(Unjournaled { ticket, version: version as u64, claimed_at, after: None, events })
}

impl FindingStore for LocalStore {
    async fn record_findings(
        &self,
        target: &TargetId,
        scan_id: &str,
        findings: &[Finding],
        at: DateTime<Utc>,
        complete: bool,
    ) -> Result<Recorded, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let now = at.to_rfc3339();
            let mut ages = Vec::with_capacity(findings.len());
            for f in findings {
                let key = finding_key(f);
                let body = serde_json::to_string(f).expect("a finding always serializes");
                // a closed finding that comes back starts a new life
                tx.execute(
                    "INSERT INTO findings (target, key, open, first_seen, last_seen, last_scan, body)
                     VALUES (?1, ?2, 1, ?3, ?3, ?4, ?5)
                     ON CONFLICT (target, key) DO UPDATE SET
                         first_seen = CASE WHEN open = 1 THEN first_seen ELSE excluded.first_seen END,
                         open = 1, last_seen = excluded.last_seen, last_scan = excluded.last_scan, body = excluded.body",
                    params![target.as_str(), key, now, scan_id, body],
                )
                .map_err(unavailable)?;
                let first: String = tx
                    .query_row(
                        "SELECT first_seen FROM findings WHERE target = ?1 AND key = ?2",
                        params![target.as_str(), key],
                        |r| r.get(0),
                    )
                    .map_err(unavailable)?;
                let first_seen = DateTime::parse_from_rfc3339(&first)
                    .map_err(|e| StoreError::Corrupt { id: key.clone(), reason: e.to_string() })?
                    .with_timezone(&Utc);
                ages.push(FindingAge { first_seen, last_seen: at });
            }
            let mut closed = Vec::new();
            if complete {
                // by key, not by scan id: local plans in one scan window share their id
                let reported: std::collections::HashSet<String> = findings.iter().map(finding_key).collect();
                let mut stale = Vec::new();
                {
                    let mut stmt =
                        tx.prepare("SELECT key, body FROM findings WHERE target = ?1 AND open = 1").map_err(unavailable)?;
                    let rows = stmt
                        .query_map(params![target.as_str()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                        .map_err(unavailable)?;
                    for row in rows {
                        let (key, body) = row.map_err(unavailable)?;
                        if !reported.contains(&key) {
                            stale.push((key, body));
                        }
                    }
                }
                for (key, body) in stale {
                    tx.execute("UPDATE findings SET open = 0 WHERE target = ?1 AND key = ?2", params![target.as_str(), key])
                        .map_err(unavailable)?;
                    closed.push(
                        serde_json::from_str(&body).map_err(|e| StoreError::Corrupt { id: key, reason: e.to_string() })?,
                    );
                }
            }
            tx.commit().map_err(unavailable)?;
            Ok(Recorded { ages, closed })
        })
    }

    async fn open_with_age(&self, target: &TargetId) -> Result<Vec<(Finding, FindingAge)>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT key, body, first_seen, last_seen FROM findings WHERE target = ?1 AND open = 1 ORDER BY first_seen, key",
                )
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![target.as_str()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?, r.get::<_, String>(3)?))
                })
                .map_err(unavailable)?;
            let mut out = Vec::new();
            for row in rows {
                let (key, body, first, last) = row.map_err(unavailable)?;
                let corrupt = |reason: String| StoreError::Corrupt { id: key.clone(), reason };
                let f: Finding = serde_json::from_str(&body).map_err(|e| corrupt(e.to_string()))?;
                let first_seen = first.parse().map_err(|e: chrono::ParseError| corrupt(format!("first_seen: {e}")))?;
                let last_seen = last.parse().map_err(|e: chrono::ParseError| corrupt(format!("last_seen: {e}")))?;
                out.push((f, FindingAge { first_seen, last_seen }));
            }
            Ok(out)
        })
    }

    async fn open_untagged(&self, target: &TargetId) -> Result<Vec<Finding>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare("SELECT key, body FROM findings WHERE target = ?1 AND open = 1 ORDER BY first_seen, key")
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![target.as_str()], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
                .map_err(unavailable)?;
            let mut out = Vec::new();
            for row in rows {
                let (key, body) = row.map_err(unavailable)?;
                let f: Finding =
                    serde_json::from_str(&body).map_err(|e| StoreError::Corrupt { id: key, reason: e.to_string() })?;
                if f.kind == grantwarden_core::finding::FindingKind::Untagged {
                    out.push(f);
                }
            }
            Ok(out)
        })
    }
}

impl AuditJournal for LocalStore {
    async fn append(&self, event: NewEvent) -> Result<AuditEvent, StoreError> {
        self.with(|conn| {
            // IMMEDIATE takes the write lock first: appenders queue, none reads a stale head
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            let head: Option<(i64, String)> = tx
                .query_row("SELECT seq, hash FROM journal_heads WHERE chain = ?1", params![event.chain], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
                .map_err(unavailable)?;
            let sealed = seal(event, head.as_ref().map(|(s, h)| (*s as u64, h.as_str())));
            let body = serde_json::to_string(&sealed).expect("an event always serializes");
            tx.execute(
                "INSERT INTO journal (chain, seq, hash, body) VALUES (?1, ?2, ?3, ?4)",
                params![sealed.chain, sealed.seq as i64, sealed.hash, body],
            )
            .map_err(unavailable)?;
            tx.execute(
                "INSERT INTO journal_heads (chain, seq, hash) VALUES (?1, ?2, ?3)
                 ON CONFLICT (chain) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                params![sealed.chain, sealed.seq as i64, sealed.hash],
            )
            .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            Ok(sealed)
        })
    }

    async fn events_after(&self, chain: &str, after: u64) -> Result<Vec<AuditEvent>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare("SELECT seq, body FROM journal WHERE chain = ?1 AND seq > ?2 ORDER BY seq")
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![chain, after as i64], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
                .map_err(unavailable)?;
            let mut out = Vec::new();
            for row in rows {
                let (seq, body) = row.map_err(unavailable)?;
                out.push(
                    serde_json::from_str(&body)
                        .map_err(|e| StoreError::Corrupt { id: format!("{chain}:{seq}"), reason: e.to_string() })?,
                );
            }
            Ok(out)
        })
    }

    async fn head(&self, chain: &str) -> Result<Option<(u64, String)>, StoreError> {
        self.with(|conn| {
            conn.query_row("SELECT seq, hash FROM journal_heads WHERE chain = ?1", params![chain], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
            })
            .optional()
            .map_err(unavailable)
        })
    }

    async fn chains(&self) -> Result<Vec<String>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare("SELECT chain FROM journal_heads UNION SELECT DISTINCT chain FROM journal ORDER BY 1")
                .map_err(unavailable)?;
            let rows = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(unavailable)?;
            rows.collect::<Result<_, _>>().map_err(unavailable)
        })
    }
}

fn decode_digest(chain: &str, number: i64, body: &str) -> Result<Digest, StoreError> {
    serde_json::from_str(body)
        .map_err(|e| StoreError::Corrupt { id: format!("digest {number} of chain {chain}"), reason: e.to_string() })
}

impl IncidentStore for LocalStore {
    async fn record_incident(&self, update: &IncidentUpdate) -> Result<(), StoreError> {
        let body = serde_json::to_string(update)
            .map_err(|e| StoreError::Corrupt { id: update.id.clone(), reason: e.to_string() })?;
        let at = update.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        self.with(|conn| {
            conn.execute(
                "INSERT INTO incidents (id, at, body) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET at = excluded.at, body = excluded.body WHERE excluded.at >= incidents.at",
                params![update.id, at, body],
            )
            .map_err(unavailable)?;
            Ok(())
        })
    }

    async fn incident(&self, id: &str) -> Result<Option<IncidentUpdate>, StoreError> {
        self.with(|conn| {
            let body: Option<String> = conn
                .query_row("SELECT body FROM incidents WHERE id = ?1", params![id], |r| r.get(0))
                .optional()
                .map_err(unavailable)?;
            body.map(|b| {
                serde_json::from_str(&b).map_err(|e| StoreError::Corrupt { id: id.to_owned(), reason: e.to_string() })
            })
            .transpose()
        })
    }
}

/// `at` in unix seconds, rounded up: a record is never kept for less than asked.
fn ceil_seconds(at: DateTime<Utc>) -> i64 {
    at.timestamp() + i64::from(at.timestamp_subsec_nanos() > 0)
}

impl ReplayGuard for LocalStore {
    async fn first_use(&self, key: &ReplayKey, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<bool, StoreError> {
        self.with(|conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(unavailable)?;
            // expired records count as absent, so they may as well go
            tx.execute("DELETE FROM replay WHERE expires_at <= ?1", params![now.timestamp()]).map_err(unavailable)?;
            let added = tx
                .execute(
                    "INSERT OR IGNORE INTO replay (key, expires_at) VALUES (?1, ?2)",
                    params![key.as_str(), ceil_seconds(until)],
                )
                .map_err(unavailable)?;
            tx.commit().map_err(unavailable)?;
            Ok(added == 1)
        })
    }

    async fn forget(&self, key: &ReplayKey) -> Result<(), StoreError> {
        self.with(|conn| {
            conn.execute("DELETE FROM replay WHERE key = ?1", params![key.as_str()]).map_err(unavailable)?;
            Ok(())
        })
    }
}

impl DigestStore for LocalStore {
    async fn put_digest(&self, digest: &Digest) -> Result<(), StoreError> {
        self.with(|conn| {
            let body = serde_json::to_string(digest).expect("a digest always serializes");
            let added = conn
                .execute(
                    "INSERT OR IGNORE INTO journal_digests (chain, number, body) VALUES (?1, ?2, ?3)",
                    params![digest.chain, digest.number as i64, body],
                )
                .map_err(unavailable)?;
            if added == 1 {
                Ok(())
            } else {
                Err(StoreError::Corrupt {
                    id: format!("digest {} of chain {}", digest.number, digest.chain),
                    reason: "a digest with this number exists; another digest run got there first".into(),
                })
            }
        })
    }

    async fn digests(&self, chain: &str) -> Result<Vec<Digest>, StoreError> {
        self.with(|conn| {
            let mut stmt = conn
                .prepare("SELECT number, body FROM journal_digests WHERE chain = ?1 ORDER BY number")
                .map_err(unavailable)?;
            let rows = stmt
                .query_map(params![chain], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
                .map_err(unavailable)?;
            let mut out = Vec::new();
            for row in rows {
                let (number, body) = row.map_err(unavailable)?;
                out.push(decode_digest(chain, number, &body)?);
            }
            Ok(out)
        })
    }

    async fn last_digest(&self, chain: &str) -> Result<Option<Digest>, StoreError> {
        self.with(|conn| {
            let row: Option<(i64, String)> = conn
                .query_row(
                    "SELECT number, body FROM journal_digests WHERE chain = ?1 ORDER BY number DESC LIMIT 1",
                    params![chain],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(unavailable)?;
            row.map(|(number, body)| decode_digest(chain, number, &body)).transpose()
        })
    }
}
