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
//! (`queries.ingested` on the target's chain, with its events counted for
//! the dashboard: [`ActivityTally`]). It holds at most [`CHUNK`] events and
//! rejections in memory, whatever the batch's size.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::BufRead;

use chrono::{DateTime, Utc};
use globset::GlobMatcher;
use serde::{Deserialize, Serialize};

use crate::access_policy::AccessPath;
use crate::audit::event::QueriesIngested;
use crate::audit::{AuditJournal, NewEvent};
use crate::error::StoreError;
use crate::metrics::ActivityCounts;
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
    /// Alerts raised on its events (exports, statements outside a ticket's path).
    pub alerts: usize,
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
    /// Which of the events of `target` named by their time and key are stored (their keys).
    fn known_keys(
        &self,
        target: &TargetId,
        keys: &[(DateTime<Utc>, String)],
    ) -> impl Future<Output = Result<std::collections::BTreeSet<String>, StoreError>> + Send;
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
    by_role: BTreeMap<String, Vec<Holder>>,
}

/// A ticket that gave a role to a person.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Holder {
    from: DateTime<Utc>,
    person: String,
    ticket: String,
    path: Option<AccessPath>,
}

/// Who ran a statement: the person, and the ticket and its access path when a ticket's credential did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Whose {
    /// The person.
    pub person: String,
    /// The ticket.
    pub ticket: Option<String>,
    /// The ticket's access path (just-in-time access tickets only).
    pub path: Option<AccessPath>,
}

impl Attribution {
    /// From the target's tickets: each ticket's role is its principal's while it holds it.
    pub fn from_tickets(tickets: &[Ticket]) -> Self {
        let mut by_role: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for t in tickets {
            let r = t.request();
            by_role.entry(r.role.as_str().to_owned()).or_default().push(Holder {
                from: r.observed_at,
                person: r.principal.clone(),
                ticket: t.id().to_owned(),
                path: t.access().map(|a| a.path),
            });
        }
        for v in by_role.values_mut() {
            v.sort();
        }
        Attribution { by_role }
    }

    /// Whose `user` was at `at`: the latest ticket for the role requested by
    /// then (a role reused across tickets), else its first; a role no ticket
    /// names is a standing role, `role:<user>`.
    pub fn of(&self, user: Option<&str>, at: DateTime<Utc>) -> Whose {
        let Some(user) = user else { return Whose { person: "unknown".to_owned(), ticket: None, path: None } };
        match self.by_role.get(user).and_then(|t| t.iter().rev().find(|h| h.from <= at).or(t.first())) {
            Some(h) => Whose { person: h.person.clone(), ticket: Some(h.ticket.clone()), path: h.path },
            None => Whose { person: format!("role:{user}"), ticket: None, path: None },
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
    /// The registry's `queries` section: literals kept or not, rows past which a read is an export.
    pub policy: &'a crate::query_policy::QueryPolicy,
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
) -> Result<(QueryEvent, Option<AccessPath>), String> {
    let class = StatementClass::parse(&entry.class).ok_or_else(|| format!("AUDIT: unknown class {:?}", entry.class))?;
    let Whose { person, ticket, path } = who.of(record.user.as_deref(), record.at);
    let copy = (entry.command.eq_ignore_ascii_case("COPY")).then(|| statement::copy(&text)).flatten();
    let object = entry.object_name.clone().or_else(|| copy.as_ref().and_then(|c| c.table.clone()));
    let event = QueryEvent {
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
        statement: if src.policy.keep_literals { statement::normalize(&text) } else { statement::redact(&text) },
        redacted: !src.policy.keep_literals,
        batch: batch.to_owned(),
        line: record.line,
    };
    Ok((event, path))
}

/// Why an event is an export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExportKind {
    /// `COPY ... TO` (STDOUT, a file, a program).
    CopyTo {
        /// `TO STDOUT`, `TO FILE`, `TO PROGRAM`.
        copy: String,
    },
    /// One statement returned more rows than the registry's `export_rows`.
    LargeResult {
        /// Rows it returned.
        rows: i64,
    },
    /// A session's reads of one table added up past `export_rows` (paging through it).
    BulkRead {
        /// Statements of the session on that table so far.
        statements: u64,
        /// Rows they returned together.
        rows: i64,
    },
}

/// The export rule, fed events one at a time in their order: COPY TO, a read
/// past the threshold, and a session whose reads of one table add up past it
/// (once, at the read that crossed it). What the export controls act on
/// during ingestion and what the exports report lists are this one rule.
#[derive(Debug)]
pub struct ExportWatch {
    threshold: i64,
    /// By session, then table.
    per_session: BTreeMap<Option<String>, BTreeMap<String, TableReads>>,
}

/// A session's reads of one table so far.
#[derive(Debug, Default)]
struct TableReads {
    statements: u64,
    rows: i64,
    reported: bool,
}

impl ExportWatch {
    /// Exports past `threshold` rows (the registry's `queries.export_rows`).
    pub fn new(threshold: u64) -> Self {
        ExportWatch { threshold: i64::try_from(threshold).unwrap_or(i64::MAX), per_session: BTreeMap::new() }
    }

    /// Whether `e` makes an export, and why.
    pub fn see(&mut self, e: &QueryEvent) -> Option<ExportKind> {
        if e.class != StatementClass::Read {
            return None;
        }
        if let Some(copy) = e.copy.as_deref().filter(|c| c.starts_with("TO")) {
            return Some(ExportKind::CopyTo { copy: copy.to_owned() });
        }
        let rows = e.rows?;
        if rows > self.threshold {
            return Some(ExportKind::LargeResult { rows });
        }
        let object = e.object.as_deref()?;
        // looked up before inserting: a read allocates no key once its session and table were seen
        if !self.per_session.contains_key(&e.session) {
            self.per_session.insert(e.session.clone(), BTreeMap::new());
        }
        let tables = self.per_session.get_mut(&e.session)?;
        if !tables.contains_key(object) {
            tables.insert(object.to_owned(), TableReads::default());
        }
        let seen = tables.get_mut(object)?;
        seen.statements += 1;
        seen.rows = seen.rows.saturating_add(rows);
        if seen.rows > self.threshold && !seen.reported {
            seen.reported = true;
            return Some(ExportKind::BulkRead { statements: seen.statements, rows: seen.rows });
        }
        None
    }
}

/// The commands [`crate::query_reports::data_changes`] lists unless asked for others, and the dashboard counts.
pub const DESTRUCTIVE: &[&str] = &["DELETE", "UPDATE", "TRUNCATE TABLE"];

/// Counts [`ActivityCounts`] from events fed in their order, in memory
/// bounded by sessions and tables, not events: a statement's events (one per relation)
/// follow one another in its session, so each is counted once by the last
/// statement seen in each session.
#[derive(Debug)]
pub struct ActivityTally {
    /// What was counted.
    pub counts: ActivityCounts,
    watch: ExportWatch,
    /// Each session's last statement: its target, number and batch.
    last: BTreeMap<Option<String>, (TargetId, u64, String)>,
}

/// Adds one to `key`'s count, allocating the key only the first time.
fn bump(counts: &mut BTreeMap<String, u64>, key: &str) {
    match counts.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            counts.insert(key.to_owned(), 1);
        }
    }
}

impl ActivityTally {
    /// A tally whose exports are reads past `export_rows` (the registry's `queries.export_rows`).
    pub fn new(export_rows: u64) -> Self {
        ActivityTally { counts: ActivityCounts::default(), watch: ExportWatch::new(export_rows), last: BTreeMap::new() }
    }

    /// Counts `e`; whether it makes an export, and why ([`ExportWatch::see`]).
    pub fn see(&mut self, e: &QueryEvent) -> Option<ExportKind> {
        let same = |(target, id, batch): &(TargetId, u64, String)| {
            *id == e.statement_id && *batch == e.batch && *target == e.target
        };
        if !self.last.get(&e.session).is_some_and(same) {
            self.last.insert(e.session.clone(), (e.target.clone(), e.statement_id, e.batch.clone()));
            bump(&mut self.counts.by_class, e.class.as_str());
            bump(&mut self.counts.by_person, &e.person);
        }
        let export = self.watch.see(e);
        if export.is_some() {
            self.counts.exports += 1;
        }
        if DESTRUCTIVE.iter().any(|c| c.eq_ignore_ascii_case(&e.command)) {
            self.counts.destructive += 1;
        }
        export
    }
}

/// What a ticket's credential did that its ticket does not allow for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "alert", rename_all = "snake_case")]
pub enum AlertKind {
    /// It took data out ([`ExportKind`]).
    Export(ExportKind),
    /// It ran a statement of a class its path does not cover (a write under read-only).
    OutsidePath {
        /// The ticket's path.
        path: AccessPath,
    },
}

/// An alert on one query event of a ticket's credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryAlert {
    /// Why.
    #[serde(flatten)]
    pub kind: AlertKind,
    /// The event.
    pub event: QueryEvent,
}

impl QueryAlert {
    /// The alert as one sentence.
    pub fn describe(&self) -> String {
        let e = &self.event;
        let object = e.object.as_deref().unwrap_or("(no table named)");
        let ticket = e.ticket.as_deref().unwrap_or("-");
        match &self.kind {
            AlertKind::Export(ExportKind::CopyTo { copy }) => {
                format!("{} exported {object} with COPY {copy} under ticket {ticket}", e.person)
            }
            AlertKind::Export(ExportKind::LargeResult { rows }) => {
                format!("{} read {rows} rows of {object} in one statement under ticket {ticket}", e.person)
            }
            AlertKind::Export(ExportKind::BulkRead { statements, rows }) => format!(
                "{} read {rows} rows of {object} in {statements} statements of one session under ticket {ticket}",
                e.person
            ),
            AlertKind::OutsidePath { path } => {
                format!("{} ran {} on {object} under ticket {ticket}, whose path is {path}", e.person, e.command)
            }
        }
    }
}

/// Whether a statement of `class` is outside what `path` is for.
pub fn outside_path(path: AccessPath, class: StatementClass) -> bool {
    path == AccessPath::ReadOnly && matches!(class, StatementClass::Write | StatementClass::Ddl | StatementClass::Role)
}

/// Who acts on alerts during ingestion (`crate::query_controls`: the journal,
/// people, and the ticket's end); called before the events that raised them
/// are stored, so a crash in between raises them again, never not at all.
pub trait AlertSink {
    /// Acts on `alerts` of `target`.
    fn raise(&self, target: &TargetId, alerts: &[QueryAlert]) -> impl Future<Output = Result<(), String>> + Send;
}

/// No controls: alerts are not acted on (a report's reading, tests).
pub struct NoControls;

impl AlertSink for NoControls {
    async fn raise(&self, _: &TargetId, _: &[QueryAlert]) -> Result<(), String> {
        Ok(())
    }
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
    /// Acting on an alert failed (journal, publishing, ending the ticket); the batch is not
    /// marked ingested, so delivering it again raises the alert again.
    #[error("acting on an export or path alert: {0}")]
    Alerts(String),
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
/// chunk, the alerts on the new ones raised through `alerts` before their
/// chunk is stored, its rejections kept, then the batch journaled by digest
/// and marked ingested. A crash before the mark leaves keyed events and
/// rejections, so the batch delivered again adds none of them twice; its
/// alerts and its `queries.ingested` may then be raised twice, never not at all.
pub async fn ingest<S, A, R>(
    store: &S,
    alerts: &A,
    src: &IngestSource<'_>,
    batch: &str,
    mut reader: Reader<R>,
) -> Result<Ingested, IngestError>
where
    S: QueryStore + AuditJournal + TicketStore + Sync,
    A: AlertSink + Sync,
    R: BufRead,
{
    if let Some(before) = store.batch(src.target, batch).await? {
        return Ok(Ingested { target: src.target.clone(), delivered_before: true, batch: before, alerts: 0 });
    }
    let tickets = store.tickets(Some(src.target)).await?;
    let who = Attribution::from_tickets(&tickets);
    let mut last = LastStatements::default();
    let mut tally = ActivityTally::new(src.policy.export_rows);
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
        activity: ActivityCounts::default(),
    };
    let mut chunk = Chunk::default();
    let mut raised = 0;
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
        let made = entry.map_err(|r| format!("AUDIT: {r}")).and_then(|entry| {
            let text = last.resolve(record.session.as_deref(), &entry);
            event_of(src, batch, &who, &record, entry, text)
        });
        match made {
            Ok((event, path)) => {
                counts.events += 1;
                // one export rule for the counts and the alerts: a session is one role's, so
                // its events are all a ticket's or none are, and summing them all sums the ticket's
                let export = tally.see(&event);
                if event.ticket.is_some() {
                    let export = export.map(AlertKind::Export);
                    let outside =
                        path.filter(|p| outside_path(*p, event.class)).map(|path| AlertKind::OutsidePath { path });
                    chunk.alerts.extend(
                        export.into_iter().chain(outside).map(|kind| QueryAlert { kind, event: event.clone() }),
                    );
                }
                chunk.events.push(event);
            }
            Err(reason) => {
                counts.rejected += 1;
                rejections.push(keep(Rejected { line: record.line, reason, text: record.text }));
            }
        }
        if chunk.events.len() >= CHUNK {
            let (new, alerted) = chunk.store(store, alerts, src.target).await?;
            counts.new_events += new;
            raised += alerted;
        }
        if rejections.len() >= CHUNK {
            store.put_rejections(&rejections).await?;
            rejections.clear();
        }
    }
    let (new, alerted) = chunk.store(store, alerts, src.target).await?;
    counts.new_events += new;
    raised += alerted;
    store.put_rejections(&rejections).await?;
    let read = reader.sha256();
    if read != batch {
        return Err(IngestError::Changed { named: batch.to_owned(), read });
    }
    counts.activity = tally.counts;
    store.append(NewEvent::queries_ingested(src.target.as_str(), src.actor, &counts, src.now)).await?;
    store.finish_batch(src.target, &counts).await?;
    Ok(Ingested { target: src.target.clone(), delivered_before: false, batch: counts, alerts: raised })
}

/// Events read and not yet stored, with the alerts they raise.
#[derive(Default)]
struct Chunk {
    events: Vec<QueryEvent>,
    alerts: Vec<QueryAlert>,
}

impl Chunk {
    /// Raises the alerts of events not stored before, then stores the events:
    /// how many were new, and how many alerts were raised.
    async fn store<S: QueryStore + Sync, A: AlertSink + Sync>(
        &mut self,
        store: &S,
        alerts: &A,
        target: &TargetId,
    ) -> Result<(u64, usize), IngestError> {
        let mut raised = 0;
        if !self.alerts.is_empty() {
            let keys: Vec<_> = self.alerts.iter().map(|a| (a.event.at, a.event.key.clone())).collect();
            let known = store.known_keys(target, &keys).await?;
            self.alerts.retain(|a| !known.contains(&a.event.key));
            alerts.raise(target, &self.alerts).await.map_err(IngestError::Alerts)?;
            raised = self.alerts.len();
        }
        let new = store.put_query_events(&self.events).await?;
        self.events.clear();
        self.alerts.clear();
        Ok((new, raised))
    }
}
