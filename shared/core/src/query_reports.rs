//! The questions auditors ask of query events, answered as data (the CLI
//! renders them as Markdown, JSON or HTML): who read the sensitive tables;
//! what was exported in a window; did a migration run its approved script;
//! who changed or deleted data. Exports are found by
//! [`crate::queries::ExportWatch`], the rule the export controls act on
//! during ingestion, so what alerts and what the report lists are one.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::queries::{ExportKind, ExportWatch, QueryEvent, StatementClass};
use crate::query_policy::QueryPolicy;
use crate::statement;

/// One export: the event that made it one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Export {
    /// Why.
    #[serde(flatten)]
    pub kind: ExportKind,
    /// The event.
    pub event: QueryEvent,
}

/// The exports among `events` (in their order), by [`ExportWatch`]: the rule
/// the export controls act on during ingestion.
pub fn exports(events: &[QueryEvent], threshold: u64) -> Vec<Export> {
    let mut watch = ExportWatch::new(threshold);
    events.iter().filter_map(|e| watch.see(e).map(|kind| Export { kind, event: e.clone() })).collect()
}

/// One person's query activity, for the evidence report: what they ran, by
/// class, the tables, their exports, and each of their break-glass tickets'
/// sessions in full (the session recording).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryActivity {
    /// The person.
    pub person: String,
    /// Statements run (each once, however many relations it touched).
    pub statements: u64,
    /// Statements by pgaudit class.
    pub by_class: BTreeMap<String, u64>,
    /// Tables they touched.
    pub tables: BTreeSet<String>,
    /// Their exports.
    pub exports: Vec<Export>,
    /// Every query event of each break-glass ticket of theirs, in order.
    pub break_glass: Vec<Recording>,
}

/// A break-glass ticket's sessions, event by event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recording {
    /// The ticket.
    pub ticket: String,
    /// Its incident.
    pub incident: Option<String>,
    /// The events, in order.
    pub events: Vec<QueryEvent>,
}

/// `person`'s activity among `events` (in order), with their break-glass `tickets`' recordings.
pub fn activity(
    person: &str,
    events: &[QueryEvent],
    tickets: &[crate::ticket::Ticket],
    export_rows: u64,
) -> QueryActivity {
    let mine: Vec<QueryEvent> = events.iter().filter(|e| e.person == person).cloned().collect();
    let mut once = BTreeSet::new();
    let mut by_class: BTreeMap<String, u64> = BTreeMap::new();
    for e in &mine {
        if once.insert((e.session.clone(), e.statement_id, e.batch.clone())) {
            *by_class.entry(e.class.as_str().to_owned()).or_default() += 1;
        }
    }
    let break_glass = tickets
        .iter()
        .filter(|t| t.break_glass() && t.request().principal == person)
        .map(|t| Recording {
            ticket: t.id().to_owned(),
            incident: t.access().and_then(|a| a.incident_id.clone()),
            events: mine.iter().filter(|e| e.ticket.as_deref() == Some(t.id())).cloned().collect(),
        })
        .collect();
    QueryActivity {
        person: person.to_owned(),
        statements: once.len() as u64,
        by_class,
        tables: mine.iter().filter_map(|e| e.object.clone()).collect(),
        exports: exports(&mine, export_rows),
        break_glass,
    }
}

/// Reads of sensitive tables, by person, ticket and table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensitiveRead {
    /// Who.
    pub person: String,
    /// Through which ticket's credential.
    pub ticket: Option<String>,
    /// The table.
    pub object: String,
    /// The reads.
    #[serde(flatten)]
    pub tally: Tally,
}

/// Statements of one kind counted: how many, their rows, the first and last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    /// Statements.
    pub statements: u64,
    /// Rows read or written, where logged.
    pub rows: i64,
    /// The first in the window.
    pub first: DateTime<Utc>,
    /// The last.
    pub last: DateTime<Utc>,
}

impl Tally {
    fn starting(e: &QueryEvent) -> Self {
        Tally { statements: 0, rows: 0, first: e.at, last: e.at }
    }

    fn add(&mut self, e: &QueryEvent) {
        self.statements += 1;
        self.rows = self.rows.saturating_add(e.rows.unwrap_or(0));
        self.first = self.first.min(e.at);
        self.last = self.last.max(e.at);
    }
}

/// Who read the registry's sensitive tables (`queries.sensitive`), from `events` (one window's).
pub fn sensitive_reads(events: &[QueryEvent], policy: &QueryPolicy) -> Vec<SensitiveRead> {
    let mut by: BTreeMap<(String, Option<String>, String), SensitiveRead> = BTreeMap::new();
    for e in events.iter().filter(|e| e.class == StatementClass::Read) {
        let Some(object) = e.object.as_deref().filter(|o| policy.is_sensitive(o)) else { continue };
        let r = by.entry((e.person.clone(), e.ticket.clone(), object.to_owned())).or_insert_with(|| SensitiveRead {
            person: e.person.clone(),
            ticket: e.ticket.clone(),
            object: object.to_owned(),
            tally: Tally::starting(e),
        });
        r.tally.add(e);
    }
    by.into_values().collect()
}

/// DELETE, UPDATE, TRUNCATE (and INSERT, MERGE, COPY FROM) by person, command and table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataChange {
    /// Who.
    pub person: String,
    /// The command.
    pub command: String,
    /// The table.
    pub object: Option<String>,
    /// The tickets whose credentials ran them.
    pub tickets: BTreeSet<String>,
    /// The statements.
    #[serde(flatten)]
    pub tally: Tally,
}

pub use crate::queries::DESTRUCTIVE;

/// Statements of `commands` (pgaudit's spelling: `DELETE`, `UPDATE`, `TRUNCATE TABLE`) by person, command and table.
pub fn data_changes(events: &[QueryEvent], commands: &[&str]) -> Vec<DataChange> {
    let mut by: BTreeMap<(String, String, Option<String>), DataChange> = BTreeMap::new();
    for e in events.iter().filter(|e| commands.iter().any(|c| c.eq_ignore_ascii_case(&e.command))) {
        let c = by.entry((e.person.clone(), e.command.clone(), e.object.clone())).or_insert_with(|| DataChange {
            person: e.person.clone(),
            command: e.command.clone(),
            object: e.object.clone(),
            tickets: BTreeSet::new(),
            tally: Tally::starting(e),
        });
        c.tickets.extend(e.ticket.clone());
        c.tally.add(e);
    }
    by.into_values().collect()
}

/// One statement of a migration, as approved or as run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Its position (from 1) in the script, or among the statements run.
    pub position: usize,
    /// The statement, literals redacted.
    pub statement: String,
    /// sha256 of the statement normalized.
    pub sha256: String,
    /// When it ran (statements run only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
}

/// A migration ticket's statements against its approved script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationCheck {
    /// The ticket.
    pub ticket: String,
    /// The script's sha256 ([`statement::script_sha256`]).
    pub script_sha256: String,
    /// Statements of the script.
    pub script_statements: usize,
    /// Statements run (each once, however many relations it touched).
    pub executed: usize,
    /// Run in the script's order.
    pub matched: usize,
    /// Run, and not in the script.
    pub extra: Vec<Step>,
    /// In the script, and never run.
    pub missing: Vec<Step>,
    /// In the script, run out of its order (or run more often than it says).
    pub reordered: Vec<Step>,
}

impl MigrationCheck {
    /// Whether exactly the script ran, in its order.
    pub fn as_approved(&self) -> bool {
        self.extra.is_empty() && self.missing.is_empty() && self.reordered.is_empty()
    }
}

/// Compares what `ticket`'s credential ran (`events`, its events in order)
/// with `script` (its statements, as [`statement::split_script`] gives them):
/// the longest run of statements in the script's order is matched; a statement
/// run that the script does not hold is extra; one the script holds, run out of
/// that order, reordered; one never run, missing.
pub fn check_migration(ticket: &str, events: &[QueryEvent], script: &[String]) -> MigrationCheck {
    let mut seen = BTreeSet::new();
    let run: Vec<Step> = events
        .iter()
        .filter(|e| e.ticket.as_deref() == Some(ticket))
        .filter(|e| seen.insert((e.session.clone(), e.statement_id)))
        .enumerate()
        .map(|(i, e)| Step {
            position: i + 1,
            statement: e.statement.clone(),
            sha256: e.statement_sha256.clone(),
            at: Some(e.at),
        })
        .collect();
    let approved: Vec<Step> = script
        .iter()
        .enumerate()
        .map(|(i, s)| Step { position: i + 1, statement: statement::redact(s), sha256: statement::sha256(s), at: None })
        .collect();
    let (run_matched, script_matched) = lcs(&run, &approved);
    let mut in_script: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, s) in approved.iter().enumerate() {
        if !script_matched[i] {
            *in_script.entry(&s.sha256).or_default() += 1;
        }
    }
    let (mut extra, mut reordered) = (Vec::new(), Vec::new());
    for s in run.iter().zip(&run_matched).filter(|(_, m)| !**m).map(|(s, _)| s) {
        match in_script.get_mut(s.sha256.as_str()).filter(|n| **n > 0) {
            Some(n) => {
                *n -= 1;
                reordered.push(s.clone());
            }
            None if approved.iter().any(|a| a.sha256 == s.sha256) => reordered.push(s.clone()),
            None => extra.push(s.clone()),
        }
    }
    let missing = approved
        .iter()
        .enumerate()
        .filter(|(i, s)| !script_matched[*i] && !run.iter().any(|r| r.sha256 == s.sha256))
        .map(|(_, s)| s.clone())
        .collect();
    MigrationCheck {
        ticket: ticket.to_owned(),
        script_sha256: statement::script_sha256(script),
        script_statements: approved.len(),
        executed: run.len(),
        matched: run_matched.iter().filter(|m| **m).count(),
        extra,
        missing,
        reordered,
    }
}

/// Which steps of each side are in one longest common subsequence (by sha256).
fn lcs(a: &[Step], b: &[Step]) -> (Vec<bool>, Vec<bool>) {
    let (n, m) = (a.len(), b.len());
    let mut t = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            t[i][j] = if a[i].sha256 == b[j].sha256 { t[i + 1][j + 1] + 1 } else { t[i + 1][j].max(t[i][j + 1]) };
        }
    }
    let (mut in_a, mut in_b) = (vec![false; n], vec![false; m]);
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if a[i].sha256 == b[j].sha256 {
            in_a[i] = true;
            in_b[j] = true;
            i += 1;
            j += 1;
        } else if t[i + 1][j] >= t[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    (in_a, in_b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queries::ActivityTally;
    use crate::snapshot::TargetId;

    fn event(
        n: u64,
        session: &str,
        class: StatementClass,
        command: &str,
        object: &str,
        rows: i64,
        sql: &str,
    ) -> QueryEvent {
        QueryEvent {
            target: TargetId::new("orders-prod").unwrap(),
            key: format!("k{n}"),
            at: DateTime::from_timestamp(1_800_000_000 + n as i64, 0).unwrap(),
            session: Some(session.into()),
            user: Some("gw_alice_0123456789".into()),
            database: Some("orders".into()),
            person: "alice@example.com".into(),
            ticket: Some("t-1".into()),
            class,
            command: command.into(),
            object_type: Some("TABLE".into()),
            object: Some(object.into()),
            copy: (command == "COPY").then(|| "TO STDOUT".to_owned()),
            rows: Some(rows),
            statement_id: n,
            substatement_id: 1,
            statement_sha256: statement::sha256(sql),
            statement: statement::redact(sql),
            redacted: true,
            batch: "b".into(),
            line: n,
        }
    }

    #[test]
    fn copy_to_a_large_read_and_paging_past_the_threshold_are_exports_once_each() {
        use StatementClass::Read;
        let events = vec![
            event(1, "s1", Read, "COPY", "billing.customers", 0, "copy billing.customers to stdout"),
            event(2, "s1", Read, "SELECT", "billing.invoices", 20, "select * from billing.invoices"),
            event(3, "s2", Read, "SELECT", "public.orders", 6, "select * from public.orders limit 6"),
            event(4, "s2", Read, "SELECT", "public.orders", 6, "select * from public.orders limit 6 offset 6"),
            event(5, "s2", Read, "SELECT", "public.orders", 6, "select * from public.orders limit 6 offset 12"),
            event(6, "s3", Read, "SELECT", "public.orders", 9, "select * from public.orders"),
            event(7, "s3", StatementClass::Write, "DELETE", "public.orders", 50, "delete from public.orders"),
        ];
        let found = exports(&events, 10);
        let kinds: Vec<_> = found.iter().map(|e| (e.event.statement_id, e.kind.clone())).collect();
        assert_eq!(
            kinds,
            [
                (1, ExportKind::CopyTo { copy: "TO STDOUT".into() }),
                (2, ExportKind::LargeResult { rows: 20 }),
                (4, ExportKind::BulkRead { statements: 2, rows: 12 }),
            ]
        );
    }

    #[test]
    fn a_migration_shows_extra_missing_and_reordered_statements() {
        use StatementClass::{Ddl, Write};
        let script: Vec<String> = statement::split_script(
            "create table a (x int);\ninsert into a values (1);\ncreate index on a (x);\nalter table a add y int;",
        );
        let run = vec![
            event(1, "s", Ddl, "CREATE TABLE", "public.a", 0, "create table a (x int)"),
            event(2, "s", Ddl, "CREATE INDEX", "public.a", 0, "create index on a (x)"),
            event(3, "s", Write, "INSERT", "public.a", 1, "insert into a values (1)"),
            event(4, "s", Write, "DELETE", "public.b", 9, "delete from b where id = 3"),
        ];
        let check = check_migration("t-1", &run, &script);
        assert_eq!((check.script_statements, check.executed, check.matched), (4, 4, 2));
        assert_eq!(
            check.extra.iter().map(|s| s.statement.as_str()).collect::<Vec<_>>(),
            ["delete from b where id = ?"]
        );
        assert_eq!(check.missing.iter().map(|s| s.position).collect::<Vec<_>>(), [4]);
        assert_eq!(check.reordered.len(), 1);
        assert!(!check.as_approved());
        let exact = check_migration("t-1", &run[..1], &script[..1]);
        assert!(exact.as_approved());
    }

    #[test]
    fn a_persons_activity_counts_statements_once_and_records_each_break_glass_session() {
        use crate::access::tests::{decide, request, ticket};
        use crate::access_policy::{AccessPath, AccessScope};
        let glass = ticket(decide(&request(AccessPath::BreakGlass, AccessScope::Database, "20m", Some("INC-7"))));
        let mut events = vec![
            event(1, "s", StatementClass::Read, "SELECT", "billing.customers", 2, "select * from billing.customers"),
            event(
                2,
                "s",
                StatementClass::Write,
                "DELETE",
                "public.orders",
                1,
                "delete from public.orders where id = 1",
            ),
        ];
        // one statement logged once per relation it read is one statement
        let mut second_relation = event(2, "s", StatementClass::Write, "DELETE", "public.items", 1, "delete ...");
        second_relation.key = "k2b".into();
        events.push(second_relation);
        for e in &mut events {
            e.ticket = Some(glass.id().to_owned());
        }
        events.push(QueryEvent { person: "bob@example.com".into(), ..events[0].clone() });
        let a = activity("alice@example.com", &events, std::slice::from_ref(&glass), 10);
        assert_eq!(a.statements, 2);
        assert_eq!(a.by_class, BTreeMap::from([("READ".to_owned(), 1), ("WRITE".to_owned(), 1)]));
        assert_eq!(a.break_glass.len(), 1);
        assert_eq!((a.break_glass[0].events.len(), a.break_glass[0].incident.as_deref()), (3, Some("INC-7")));
        assert!(activity("carol@example.com", &events, &[glass], 10).break_glass.is_empty(), "not hers");
    }

    #[test]
    fn the_dashboard_figures_count_each_statement_once() {
        use StatementClass::{Read, Write};
        let mut events = vec![
            event(1, "s", Read, "COPY", "billing.customers", 0, "copy billing.customers to stdout"),
            event(2, "s", Write, "DELETE", "public.orders", 1, "delete from public.orders"),
        ];
        events.push(QueryEvent { key: "again".into(), object: Some("public.items".into()), ..events[1].clone() });
        let tally = |events: &[QueryEvent]| {
            let mut t = ActivityTally::new(10);
            for e in events {
                t.see(e);
            }
            t.counts
        };
        let f = tally(&events).figures(None);
        assert_eq!(f.by_class, BTreeMap::from([("READ".to_owned(), 1), ("WRITE".to_owned(), 1)]));
        assert_eq!((f.top_people.clone(), f.exports), (vec![("alice@example.com".to_owned(), 2)], 1));
        assert_eq!(f.destructive, 2, "one entry per relation: each counted in the data-changes tally");
        // two batches' counts, journaled apart, add up to what one count of both makes
        let other = QueryEvent { batch: "b2".into(), person: "bob@example.com".into(), ..events[1].clone() };
        let mut sum = tally(&events);
        sum.add(&tally(std::slice::from_ref(&other)));
        assert_eq!(sum, tally(&[events.clone(), vec![other]].concat()));
        assert_eq!(sum.figures(None).top_people[1], ("bob@example.com".to_owned(), 1));
    }

    #[test]
    fn sensitive_reads_and_changes_group_by_person_and_table() {
        use StatementClass::{Read, Write};
        let policy = QueryPolicy::from_file(&serde_saphyr::from_str("{sensitive: [\"billing.*\"]}").unwrap()).unwrap();
        let events = vec![
            event(1, "s", Read, "SELECT", "billing.customers", 2, "select 1"),
            event(2, "s", Read, "SELECT", "billing.customers", 3, "select 2"),
            event(3, "s", Read, "SELECT", "public.orders", 3, "select 3"),
            event(4, "s", Write, "DELETE", "billing.customers", 4, "delete from billing.customers"),
        ];
        let reads = sensitive_reads(&events, &policy);
        assert_eq!(reads.len(), 1);
        assert_eq!(
            (reads[0].tally.statements, reads[0].tally.rows, reads[0].object.as_str()),
            (2, 5, "billing.customers")
        );
        let changes = data_changes(&events, DESTRUCTIVE);
        assert_eq!(changes.len(), 1);
        assert_eq!((changes[0].command.as_str(), changes[0].tally.rows), ("DELETE", 4));
    }
}
