//! Query-level audit: pgaudit entries of a database's log, as query events
//! attributed to a person and a ticket (contract: docs/CONTRACTS.md#query-events).
//!
//! A just-in-time credential is one person's ([`crate::access::role_for`]),
//! so each statement it runs names that person and the ticket. A standing
//! role names itself (`role:<name>`), as pgaudit intake does.
//!
//! [`ingest`] is the one use case, for `grantwarden queries ingest` and the
//! queries function alike: it reads a batch of log records, keeps the
//! target's pgaudit entries as events (each keyed by its record's sha256, so a
//! batch delivered again, whole or in part, adds nothing), keeps every record
//! it could not read with its reason, and journals the batch by digest
//! (`queries.ingested` on the target's chain). It holds at most [`CHUNK`]
//! events and rejections in memory, whatever the batch's size.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::BufRead;

use chrono::{DateTime, Utc};
use globset::GlobMatcher;
use serde::{Deserialize, Serialize};

use crate::audit::event::QueriesIngested;
use crate::audit::{AuditJournal, NewEvent};
use crate::error::StoreError;
use crate::pglog::{AuditEntry, LogRecord, Reader, Rejected};
use crate::snapshot::TargetId;
use crate::statement;
use crate::store::TicketStore;
use crate::ticket::Ticket;

/// Events written to the store at once.
pub const CHUNK: usize = 2_000;

/// pgaudit's statement classes (`pgaudit.log`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StatementClass {
    /// SELECT and COPY TO.
    Read,
    /// INSERT, UPDATE, DELETE, TRUNCATE and COPY FROM.
    Write,
    /// Function calls and DO blocks.
    Function,
    /// GRANT, REVOKE, CREATE/ALTER/DROP ROLE.
    Role,
    /// Other DDL.
    Ddl,
    /// DISCARD, FETCH, CHECKPOINT, VACUUM, SET.
    Misc,
    /// SET (with `misc_set`).
    MiscSet,
}

impl StatementClass {
    /// The class as pgaudit writes it.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "READ" => Self::Read,
            "WRITE" => Self::Write,
            "FUNCTION" => Self::Function,
            "ROLE" => Self::Role,
            "DDL" => Self::Ddl,
            "MISC" => Self::Misc,
            "MISC_SET" => Self::MiscSet,
            _ => return None,
        })
    }

    /// Its spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "READ",
            Self::Write => "WRITE",
            Self::Function => "FUNCTION",
            Self::Role => "ROLE",
            Self::Ddl => "DDL",
            Self::Misc => "MISC",
            Self::MiscSet => "MISC_SET",
        }
    }
}

/// One statement (or one object of it) as a person ran it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryEvent {
    /// The target it ran on.
    pub target: TargetId,
    /// sha256 of the log record it came from: its identity.
    pub key: String,
    /// When the server logged it.
    pub at: DateTime<Utc>,
    /// The session (see [`LogRecord::session`]).
    pub session: Option<String>,
    /// The database role that ran it.
    pub user: Option<String>,
    /// The database.
    pub database: Option<String>,
    /// The person: the ticket's principal, `role:<name>` for a standing role, `unknown` without a user.
    pub person: String,
    /// The ticket whose credential ran it.
    pub ticket: Option<String>,
    /// pgaudit's class.
    pub class: StatementClass,
    /// The command (`SELECT`, `COPY`, `DELETE`, ...).
    pub command: String,
    /// The object's type as pgaudit names it (`TABLE`, `VIEW`, ...).
    pub object_type: Option<String>,
    /// The object (`schema.name`); for COPY, the table as the statement names it.
    pub object: Option<String>,
    /// A COPY's direction and endpoint (`TO STDOUT`, `TO PROGRAM`, `FROM STDIN`, ...).
    pub copy: Option<String>,
    /// Rows read or written, with `pgaudit.log_rows`.
    pub rows: Option<i64>,
    /// pgaudit's statement and sub-statement numbers in the session.
    pub statement_id: u64,
    /// See `statement_id`.
    pub substatement_id: u64,
    /// sha256 of the statement, normalized ([`statement::sha256`]): compared with an approved script's.
    pub statement_sha256: String,
    /// The statement: literals as `?` unless the registry keeps them.
    pub statement: String,
    /// Whether `statement` had its literals replaced.
    pub redacted: bool,
    /// The batch it was read from (its sha256) and the line.
    pub batch: String,
    /// See `batch`.
    pub line: u64,
}

impl QueryEvent {
    /// The order events are listed in: by time, then as their session ran them
    /// (records of one millisecond are not in order by their key).
    #[allow(clippy::type_complexity)]
    pub fn order(&self) -> (DateTime<Utc>, &str, &Option<String>, u64, u64, &str, u64) {
        (self.at, self.target.as_str(), &self.session, self.statement_id, self.substatement_id, &self.batch, self.line)
    }
}

/// A record kept because it could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptRejection {
    /// The target whose log it was in.
    pub target: TargetId,
    /// The batch (its sha256).
    pub batch: String,
    /// Where, why, and its text.
    #[serde(flatten)]
    pub rejected: Rejected,
}

/// What was ingested of one batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ingested {
    /// The target.
    pub target: TargetId,
    /// Whether this batch was ingested before (then nothing was added nor journaled).
    pub delivered_before: bool,
    /// The counts and digest, as journaled.
    #[serde(flatten)]
    pub batch: QueriesIngested,
}

/// Which events a question asks about; every given condition must hold.
#[derive(Debug, Clone, Default)]
pub struct QueryFilter {
    /// Only this target.
    pub target: Option<TargetId>,
    /// Only this person.
    pub person: Option<String>,
    /// Only this ticket.
    pub ticket: Option<String>,
    /// Only objects matching this glob (`billing.*`).
    pub object: Option<GlobMatcher>,
    /// Only these classes (none: all).
    pub classes: Vec<StatementClass>,
    /// Only these commands, upper case (none: all).
    pub commands: Vec<String>,
    /// At or after.
    pub from: Option<DateTime<Utc>>,
    /// Before.
    pub to: Option<DateTime<Utc>>,
}

impl QueryFilter {
    /// Whether `e` is asked about.
    pub fn matches(&self, e: &QueryEvent) -> bool {
        self.target.as_ref().is_none_or(|t| *t == e.target)
            && self.person.as_ref().is_none_or(|p| *p == e.person)
            && self.ticket.as_ref().is_none_or(|t| e.ticket.as_ref() == Some(t))
            && self.object.as_ref().is_none_or(|m| e.object.as_deref().is_some_and(|o| m.is_match(o)))
            && (self.classes.is_empty() || self.classes.contains(&e.class))
            && (self.commands.is_empty() || self.commands.iter().any(|c| c.eq_ignore_ascii_case(&e.command)))
            && self.from.is_none_or(|f| e.at >= f)
            && self.to.is_none_or(|t| e.at < t)
    }
}

/// The query store port: events and kept rejections, and which batches were ingested.
pub trait QueryStore {
    /// Stores `events`, skipping those whose `(target, key)` is stored: how many were new.
    fn put_query_events(&self, events: &[QueryEvent]) -> impl Future<Output = Result<u64, StoreError>> + Send;
    /// Keeps `rejections` (again: nothing changes).
    fn put_rejections(&self, rejections: &[KeptRejection]) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Records the batch as ingested (again: nothing changes).
    fn finish_batch(
        &self,
        target: &TargetId,
        batch: &QueriesIngested,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A batch of the target already ingested, by its sha256.
    fn batch(
        &self,
        target: &TargetId,
        sha256: &str,
    ) -> impl Future<Output = Result<Option<QueriesIngested>, StoreError>> + Send;
    /// The events of `filter.target` (every target when `None`) in `[from, to)`
    /// that `filter` matches, in [`QueryEvent::order`].
    fn query_events(&self, filter: &QueryFilter) -> impl Future<Output = Result<Vec<QueryEvent>, StoreError>> + Send;
    /// The kept rejections of a target, or of every target.
    fn rejections(
        &self,
        target: Option<&TargetId>,
    ) -> impl Future<Output = Result<Vec<KeptRejection>, StoreError>> + Send;
}

/// Whose a database role is, from the target's tickets.
#[derive(Debug, Default)]
pub struct Attribution {
    by_role: BTreeMap<String, Vec<(DateTime<Utc>, String, String)>>,
}

impl Attribution {
    /// From the target's tickets: each ticket's role is its principal's while it holds it.
    pub fn from_tickets(tickets: &[Ticket]) -> Self {
        let mut by_role: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for t in tickets {
            let r = t.request();
            by_role.entry(r.role.as_str().to_owned()).or_default().push((
                r.observed_at,
                r.principal.clone(),
                t.id().to_owned(),
            ));
        }
        for v in by_role.values_mut() {
            v.sort();
        }
        Attribution { by_role }
    }

    /// `(person, ticket)` of `user` at `at`: the latest ticket for the role
    /// requested by then (a role reused across tickets), else its first;
    /// a role no ticket names is a standing role, `role:<user>`.
    pub fn of(&self, user: Option<&str>, at: DateTime<Utc>) -> (String, Option<String>) {
        let Some(user) = user else { return ("unknown".to_owned(), None) };
        match self.by_role.get(user) {
            Some(tickets) => {
                let t = tickets.iter().rev().find(|(from, _, _)| *from <= at).unwrap_or(&tickets[0]);
                (t.1.clone(), Some(t.2.clone()))
            }
            None => (format!("role:{user}"), None),
        }
    }
}

/// What one ingestion reads and where it came from.
#[derive(Debug, Clone)]
pub struct IngestSource<'a> {
    /// The target whose log it is.
    pub target: &'a TargetId,
    /// Only records of this database (a log is a cluster's; a target is one of its databases).
    pub database: Option<&'a str>,
    /// A file name, or `log group/log stream`.
    pub source: &'a str,
    /// Who ingests (journaled as the actor).
    pub actor: &'a str,
    /// Keep statement literals (the registry's `queries.keep_literals`).
    pub keep_literals: bool,
    /// When.
    pub now: DateTime<Utc>,
}

/// The statement of a `<previously logged>` entry: the session's last logged one.
#[derive(Default)]
struct LastStatements(BTreeMap<String, (u64, String)>);

impl LastStatements {
    fn resolve(&mut self, session: Option<&str>, entry: &AuditEntry) -> String {
        let session = session.unwrap_or_default();
        if entry.statement == "<previously logged>" {
            if let Some((id, text)) = self.0.get(session)
                && *id == entry.statement_id
            {
                return text.clone();
            }
            return entry.statement.clone();
        }
        self.0.insert(session.to_owned(), (entry.statement_id, entry.statement.clone()));
        entry.statement.clone()
    }
}

fn event_of(
    src: &IngestSource<'_>,
    batch: &str,
    who: &Attribution,
    record: &LogRecord,
    entry: AuditEntry,
    text: String,
) -> Result<QueryEvent, String> {
    let class = StatementClass::parse(&entry.class).ok_or_else(|| format!("AUDIT: unknown class {:?}", entry.class))?;
    let (person, ticket) = who.of(record.user.as_deref(), record.at);
    let copy = (entry.command.eq_ignore_ascii_case("COPY")).then(|| statement::copy(&text)).flatten();
    let object = entry.object_name.clone().or_else(|| copy.as_ref().and_then(|c| c.table.clone()));
    Ok(QueryEvent {
        target: src.target.clone(),
        key: record.sha256.clone(),
        at: record.at,
        session: record.session.clone(),
        user: record.user.clone(),
        database: record.database.clone(),
        person,
        ticket,
        class,
        command: entry.command,
        object_type: entry.object_type,
        object,
        copy: copy.as_ref().map(copy_label),
        rows: entry.rows,
        statement_id: entry.statement_id,
        substatement_id: entry.substatement_id,
        statement_sha256: statement::sha256(&text),
        statement: if src.keep_literals { statement::normalize(&text) } else { statement::redact(&text) },
        redacted: !src.keep_literals,
        batch: batch.to_owned(),
        line: record.line,
    })
}

/// What a COPY does, as events show it: `TO STDOUT`, `TO PROGRAM`, `TO FILE`, `FROM STDIN`, `FROM FILE`, ...
fn copy_label(c: &statement::Copy) -> String {
    let direction = match c.direction {
        statement::CopyDirection::To => "TO",
        statement::CopyDirection::From => "FROM",
    };
    let endpoint = match c.endpoint {
        statement::CopyEndpoint::Stdout => "STDOUT",
        statement::CopyEndpoint::Stdin => "STDIN",
        statement::CopyEndpoint::File(_) => "FILE",
        statement::CopyEndpoint::Program(_) => "PROGRAM",
    };
    format!("{direction} {endpoint}")
}

/// Why a batch was not ingested.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The store failed; what was stored is keyed, so ingesting the batch again completes it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What was read is not the batch named: the file changed between hashing and reading it.
    #[error("batch {named}: what was read has sha256 {read}; the input changed while it was read (nothing journaled)")]
    Changed {
        /// The digest given.
        named: String,
        /// The digest of what was read.
        read: String,
    },
}

/// Ingests one batch, whose bytes have sha256 `batch`, read by `reader`:
/// nothing when it was ingested before; else its events stored chunk by
/// chunk, its rejections kept, then the batch journaled by digest and marked
/// ingested. A crash before the mark leaves keyed events and rejections, so
/// the batch delivered again adds none of them twice; only its
/// `queries.ingested` may then be on the chain twice, never not at all.
pub async fn ingest<S, R>(
    store: &S,
    src: &IngestSource<'_>,
    batch: &str,
    mut reader: Reader<R>,
) -> Result<Ingested, IngestError>
where
    S: QueryStore + AuditJournal + TicketStore + Sync,
    R: BufRead,
{
    if let Some(before) = store.batch(src.target, batch).await? {
        return Ok(Ingested { target: src.target.clone(), delivered_before: true, batch: before });
    }
    let tickets = store.tickets(Some(src.target)).await?;
    let who = Attribution::from_tickets(&tickets);
    let mut last = LastStatements::default();
    let mut counts = QueriesIngested {
        sha256: batch.to_owned(),
        source: src.source.to_owned(),
        format: reader.format().as_str().to_owned(),
        records: 0,
        events: 0,
        new_events: 0,
        rejected: 0,
        skipped: 0,
        first_at: None,
        last_at: None,
    };
    let mut events = Vec::with_capacity(CHUNK);
    let mut rejections = Vec::new();
    let keep = |rejected| KeptRejection { target: src.target.clone(), batch: batch.to_owned(), rejected };
    for item in reader.by_ref() {
        let record = match item {
            Ok(record) => record,
            Err(rejected) => {
                counts.rejected += 1;
                rejections.push(keep(rejected));
                continue;
            }
        };
        counts.records += 1;
        counts.first_at = Some(counts.first_at.map_or(record.at, |f| f.min(record.at)));
        counts.last_at = Some(counts.last_at.map_or(record.at, |l| l.max(record.at)));
        let of_target = src.database.is_none_or(|d| record.database.as_deref() == Some(d));
        let entry = match crate::pglog::audit_entry(&record.message) {
            Some(entry) if of_target => entry,
            _ => {
                counts.skipped += 1;
                continue;
            }
        };
        let made = entry.and_then(|entry| {
            let text = last.resolve(record.session.as_deref(), &entry);
            event_of(src, batch, &who, &record, entry, text)
        });
        match made {
            Ok(event) => {
                counts.events += 1;
                events.push(event);
            }
            Err(reason) => {
                counts.rejected += 1;
                rejections.push(keep(Rejected { line: record.line, reason, text: record.text }));
            }
        }
        if events.len() >= CHUNK {
            counts.new_events += store.put_query_events(&events).await?;
            events.clear();
        }
        if rejections.len() >= CHUNK {
            store.put_rejections(&rejections).await?;
            rejections.clear();
        }
    }
    counts.new_events += store.put_query_events(&events).await?;
    store.put_rejections(&rejections).await?;
    let read = reader.sha256();
    if read != batch {
        return Err(IngestError::Changed { named: batch.to_owned(), read });
    }
    store.append(NewEvent::queries_ingested(src.target.as_str(), src.actor, &counts, src.now)).await?;
    store.finish_batch(src.target, &counts).await?;
    Ok(Ingested { target: src.target.clone(), delivered_before: false, batch: counts })
}
