//! PostgreSQL server logs as records, and pgaudit's payload in them.
//!
//! Three layouts are read (docs/CONTRACTS.md#postgresql-logs): `csvlog`
//! (PostgreSQL 13 and later: 23 to 26 columns), `stderr` with a
//! `log_line_prefix` holding `%m` or `%t` first and any of `[%p]`, `%u@%d`
//! and `%c:%l` after it, and `rds`, the prefix RDS and Aurora PostgreSQL
//! fix (`%t:%r:%u@%d:[%p]:`), which is also what their CloudWatch Logs
//! export carries line by line. A stderr message that spans lines continues
//! on lines that start with a tab (PostgreSQL writes them so); a csvlog
//! message spans lines inside its quotes.
//!
//! Reading never stops at a bad record: [`Reader`] yields it as [`Rejected`],
//! with its line, its text and why, so the caller keeps it. Times must be
//! UTC (`log_timezone = 'UTC'`, RDS's default): a record in another zone is
//! rejected rather than placed at the wrong time.

use std::io::BufRead;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How a log file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `log_destination = 'csvlog'`.
    Csvlog,
    /// `log_destination = 'stderr'` with a documented `log_line_prefix`.
    Stderr,
    /// RDS and Aurora PostgreSQL (`%t:%r:%u@%d:[%p]:`), files or CloudWatch Logs lines.
    Rds,
}

impl LogFormat {
    /// Its name as flags and events write it.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Csvlog => "csvlog",
            LogFormat::Stderr => "stderr",
            LogFormat::Rds => "rds",
        }
    }
}

/// One log record (one line, or several for a message that spans lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The input line it starts on, from 1.
    pub line: u64,
    /// When the server wrote it.
    pub at: DateTime<Utc>,
    /// The session user, when the layout names it.
    pub user: Option<String>,
    /// The database, when the layout names it.
    pub database: Option<String>,
    /// The session: `%c` (csvlog's `session_id`), or `<host>:<pid>` where the
    /// layout has no session id (RDS's prefix), or `pid:<pid>`.
    pub session: Option<String>,
    /// `LOG`, `ERROR`, ...
    pub severity: String,
    /// The message after the severity.
    pub message: String,
    /// sha256 of the record's text: the same record delivered twice has the same one.
    pub sha256: String,
    /// The record's text (a csvlog record re-joined as CSV): kept when its entry does not read.
    pub text: String,
}

/// A record that could not be read, kept with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// The input line it starts on, from 1.
    pub line: u64,
    /// Why it was not read.
    pub reason: String,
    /// Its text as read (a csvlog record re-joined as CSV).
    pub text: String,
}

/// The severities PostgreSQL writes (`LOG:`, `ERROR:`, and the lines that follow one).
const SEVERITIES: &[&str] = &[
    "DEBUG5",
    "DEBUG4",
    "DEBUG3",
    "DEBUG2",
    "DEBUG1",
    "DEBUG",
    "INFO",
    "NOTICE",
    "WARNING",
    "ERROR",
    "LOG",
    "FATAL",
    "PANIC",
    "DETAIL",
    "HINT",
    "QUERY",
    "CONTEXT",
    "LOCATION",
    "STATEMENT",
];

/// `YYYY-MM-DD HH:MM:SS[.fff] UTC` (or `GMT`), the form of `%m` and `%t` with `log_timezone = 'UTC'`.
pub fn timestamp(date: &str, time: &str, zone: &str) -> Result<DateTime<Utc>, String> {
    if zone != "UTC" && zone != "GMT" {
        return Err(format!("time zone {zone:?}: grantwarden reads UTC logs only (set log_timezone = 'UTC')"));
    }
    NaiveDateTime::parse_from_str(&format!("{date} {time}"), "%Y-%m-%d %H:%M:%S%.f")
        .map(|n| n.and_utc())
        .map_err(|e| format!("time {date} {time}: {e}"))
}

/// sha256 of `text` in lower-case hex (written into a buffer: `hex::encode`
/// builds its string a character at a time, which showed in ingestion's profile).
pub(crate) fn digest(text: &[u8]) -> String {
    let mut out = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(text), &mut out).expect("64 hex digits for 32 bytes");
    String::from_utf8_lossy(&out).into_owned()
}

/// A reader that hashes what is read through it: the batch's digest.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: BufRead> std::io::Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Hashing<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        // the bytes consumed are the front of the buffer fill_buf last returned: no new read
        if let Ok(buf) = self.inner.fill_buf() {
            self.hasher.update(&buf[..amt.min(buf.len())]);
        }
        self.inner.consume(amt)
    }
}

/// Reads records from a log, one at a time, in bounded memory, hashing what it reads.
pub struct Reader<R: BufRead> {
    format: LogFormat,
    inner: Inner<R>,
}

enum Inner<R: BufRead> {
    Lines { input: Hashing<R>, line: u64, pending: Option<(u64, String)>, done: bool },
    Csv { input: csv::Reader<Hashing<R>>, record: csv::ByteRecord },
}

impl<R: BufRead> Reader<R> {
    /// A reader of `input` laid out as `format`.
    pub fn new(input: R, format: LogFormat) -> Self {
        let input = Hashing { inner: input, hasher: Sha256::new() };
        let inner = match format {
            LogFormat::Csvlog => Inner::Csv {
                input: csv::ReaderBuilder::new().has_headers(false).flexible(true).from_reader(input),
                record: csv::ByteRecord::new(),
            },
            _ => Inner::Lines { input, line: 0, pending: None, done: false },
        };
        Reader { format, inner }
    }

    /// The layout it reads.
    pub fn format(&self) -> LogFormat {
        self.format
    }

    /// sha256 of the bytes read so far (of the whole input, once it is read to its end).
    pub fn sha256(&self) -> String {
        let hashing = match &self.inner {
            Inner::Lines { input, .. } => input,
            Inner::Csv { input, .. } => input.get_ref(),
        };
        hex::encode(hashing.hasher.clone().finalize())
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Result<LogRecord, Rejected>;

    fn next(&mut self) -> Option<Self::Item> {
        let format = self.format;
        match &mut self.inner {
            Inner::Csv { input, record } => {
                let line = input.position().line();
                match input.read_byte_record(record) {
                    Ok(false) => None,
                    Ok(true) => {
                        // the position of the record's start: blank lines before it are skipped by the reader
                        let line = record.position().map_or(line, |p| p.line());
                        Some(csv_record(record, line))
                    }
                    Err(e) => Some(Err(Rejected { line, reason: format!("csv: {e}"), text: String::new() })),
                }
            }
            Inner::Lines { input, line, pending, done } => loop {
                if *done {
                    return pending.take().map(|(n, text)| text_record(format, n, text));
                }
                let mut buf = Vec::new();
                match input.read_until(b'\n', &mut buf) {
                    Ok(0) => *done = true,
                    Ok(_) => {
                        *line += 1;
                        let text = String::from_utf8_lossy(&buf);
                        let text = text.trim_end_matches(['\n', '\r']);
                        if let Some(rest) = text.strip_prefix('\t')
                            && let Some((_, record)) = pending.as_mut()
                        {
                            record.push('\n');
                            record.push_str(rest);
                            continue;
                        }
                        let next = (!text.trim().is_empty()).then(|| (*line, text.to_owned()));
                        let previous = std::mem::replace(pending, next);
                        if let Some((n, text)) = previous {
                            return Some(text_record(format, n, text));
                        }
                    }
                    Err(e) => {
                        *done = true;
                        let reason = format!("read error after line {line}: {e}");
                        return Some(Err(Rejected { line: *line + 1, reason, text: String::new() }));
                    }
                }
            },
        }
    }
}

/// A csvlog record's text, re-joined as CSV (a small buffer: the default is 8 KiB per writer).
fn csv_text(record: &csv::ByteRecord) -> String {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .buffer_capacity(256)
        .from_writer(Vec::with_capacity(512));
    let _ = w.write_byte_record(record);
    let bytes = w.into_inner().unwrap_or_default();
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    text.strip_suffix('\n').map(str::to_owned).unwrap_or(text)
}

fn csv_record(record: &csv::ByteRecord, line: u64) -> Result<LogRecord, Rejected> {
    let text = csv_text(record);
    let reject = |reason: String| Rejected { line, reason, text: text.clone() };
    if record.len() < 23 {
        return Err(reject(format!("csvlog: {} columns, a PostgreSQL 13 or later csvlog has 23 to 26", record.len())));
    }
    let field = |i: usize| String::from_utf8_lossy(&record[i]).into_owned();
    let non_empty = |i: usize| Some(field(i)).filter(|s| !s.is_empty());
    let time = field(0);
    let mut parts = time.split(' ');
    let at = match (parts.next(), parts.next(), parts.next()) {
        (Some(d), Some(t), Some(z)) => timestamp(d, t, z).map_err(|e| reject(format!("log_time: {e}")))?,
        _ => return Err(reject(format!("log_time: {time:?} is not `YYYY-MM-DD HH:MM:SS.fff UTC`"))),
    };
    let severity = field(11);
    if severity.is_empty() {
        return Err(reject("error_severity: empty".into()));
    }
    Ok(LogRecord {
        line,
        at,
        user: non_empty(1),
        database: non_empty(2),
        session: non_empty(5).or_else(|| non_empty(3).map(|p| format!("pid:{p}"))),
        severity,
        message: field(13),
        sha256: digest(text.as_bytes()),
        text,
    })
}

fn text_record(format: LogFormat, line: u64, text: String) -> Result<LogRecord, Rejected> {
    let parsed = match format {
        LogFormat::Rds => rds_prefix(&text),
        _ => stderr_prefix(&text),
    };
    match parsed {
        Ok(r) => Ok(LogRecord { line, sha256: digest(text.as_bytes()), text, ..r }),
        Err(reason) => Err(Rejected { line, reason, text }),
    }
}

fn empty_record(at: DateTime<Utc>) -> LogRecord {
    LogRecord {
        line: 0,
        at,
        user: None,
        database: None,
        session: None,
        severity: String::new(),
        message: String::new(),
        sha256: String::new(),
        text: String::new(),
    }
}

/// `SEVERITY:  message` at the start of `rest`.
fn severity_and_message(rest: &str) -> Option<(String, String)> {
    let (severity, message) = rest.split_once(':')?;
    SEVERITIES.contains(&severity).then(|| (severity.to_owned(), message.trim_start_matches(' ').to_owned()))
}

/// `%m [%p] %q%u@%d %c:%l SEVERITY:  message`; only the time is required.
fn stderr_prefix(text: &str) -> Result<LogRecord, String> {
    let mut words = text.splitn(4, ' ');
    let (Some(date), Some(time), Some(zone)) = (words.next(), words.next(), words.next()) else {
        return Err("stderr: the line does not start with `YYYY-MM-DD HH:MM:SS[.fff] UTC` (%m or %t)".into());
    };
    let mut record = empty_record(timestamp(date, time, zone).map_err(|e| format!("stderr: {e}"))?);
    let mut rest = words.next().unwrap_or_default();
    let mut pid = None;
    loop {
        if let Some((severity, message)) = severity_and_message(rest) {
            record.severity = severity;
            record.message = message;
            break;
        }
        let (word, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        if word.is_empty() && tail.is_empty() {
            return Err("stderr: no severity (`LOG:`, `ERROR:`, ...) after the prefix".into());
        }
        if let Some(p) = word.strip_prefix('[').and_then(|w| w.strip_suffix(']')) {
            pid = Some(p.to_owned());
        } else if let Some((user, database)) = word.split_once('@') {
            record.user = Some(user.to_owned()).filter(|u| !u.is_empty());
            record.database = Some(database.to_owned()).filter(|d| !d.is_empty());
        } else if let Some((session, _line)) = word.split_once(':')
            && session.contains('.')
        {
            record.session = Some(session.to_owned());
        }
        rest = tail;
    }
    if record.session.is_none() {
        record.session = pid.map(|p| format!("pid:{p}"));
    }
    Ok(record)
}

/// `%t:%r:%u@%d:[%p]:SEVERITY:  message`, `%r` being `host(port)`, `[local]` or empty.
fn rds_prefix(text: &str) -> Result<LogRecord, String> {
    let bad = |what: &str| format!("rds: {what} (the prefix is %t:%r:%u@%d:[%p]:)");
    let mut words = text.splitn(3, ' ');
    let (Some(date), Some(time), Some(rest)) = (words.next(), words.next(), words.next()) else {
        return Err(bad("the line does not start with `YYYY-MM-DD HH:MM:SS UTC:`"));
    };
    let (zone, rest) = rest.split_once(':').ok_or_else(|| bad("no `:` after the time"))?;
    let mut record = empty_record(timestamp(date, time, zone).map_err(|e| format!("rds: {e}"))?);
    // the host may be an IPv6 address: it ends at `):` (or is `[local]` or empty)
    let pid_at = rest.find(":[").ok_or_else(|| bad("no `:[pid]:`"))?;
    let (host, rest) = if let Some(r) = rest.strip_prefix("[local]:") {
        ("[local]", r)
    } else if let Some(end) = rest[..pid_at].find("):") {
        (&rest[..=end], &rest[end + 2..])
    } else if let Some(r) = rest.strip_prefix(':') {
        ("", r)
    } else {
        return Err(bad("no `host(port):`"));
    };
    let start = rest.find(":[").ok_or_else(|| bad("no `:[pid]:`"))?;
    let (who, after) = (&rest[..start], &rest[start + 2..]);
    let (pid, after) = after.split_once("]:").ok_or_else(|| bad("no `]:` after the pid"))?;
    if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(&format!("pid {pid:?} is not a number")));
    }
    if let Some((user, database)) = who.split_once('@') {
        record.user = Some(user.to_owned()).filter(|u| !u.is_empty());
        record.database = Some(database.to_owned()).filter(|d| !d.is_empty());
    }
    let host = host.split('(').next().unwrap_or_default();
    record.session = Some(if host.is_empty() { format!("pid:{pid}") } else { format!("{host}:{pid}") });
    let (severity, message) = severity_and_message(after).ok_or_else(|| bad("no severity after the prefix"))?;
    record.severity = severity;
    record.message = message;
    Ok(record)
}

/// SESSION or OBJECT audit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum AuditType {
    /// `pgaudit.log` (session audit).
    Session,
    /// `pgaudit.role` (object audit).
    Object,
}

/// The fields of one pgaudit entry (`AUDIT: ` and its CSV).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// SESSION or OBJECT.
    pub audit_type: AuditType,
    /// The statement's number in its session.
    pub statement_id: u64,
    /// The sub-statement's number in its statement.
    pub substatement_id: u64,
    /// `READ`, `WRITE`, `FUNCTION`, `ROLE`, `DDL`, `MISC`, `MISC_SET`.
    pub class: String,
    /// `SELECT`, `COPY`, `DELETE`, `GRANT`, ...
    pub command: String,
    /// `TABLE`, `VIEW`, ... when an object was logged.
    pub object_type: Option<String>,
    /// `schema.name`, when an object was logged.
    pub object_name: Option<String>,
    /// The statement text (`<previously logged>` with `pgaudit.log_statement_once`).
    pub statement: String,
    /// Bind parameters (`<none>`, `<not logged>`, or the values).
    pub parameter: Option<String>,
    /// Rows read or written, with `pgaudit.log_rows` (pgaudit 1.7 and later).
    pub rows: Option<i64>,
}

/// The pgaudit entry of a message, `None` when the message is not one.
pub fn audit_entry(message: &str) -> Option<Result<AuditEntry, String>> {
    let payload = message.find("AUDIT: ").map(|at| &message[at + 7..])?;
    Some(parse_audit(payload.trim_end()))
}

/// Splits pgaudit's CSV payload: fields quoted with `"` (quotes doubled
/// inside), a quoted field may hold commas and newlines. Hand-written: the csv
/// crate builds a parser table per reader, which was half of ingestion's time
/// when made per entry.
fn split_csv(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(10);
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    let (mut quoted, mut at_start) = (false, true);
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (false, '"') if at_start => {
                quoted = true;
                at_start = false;
            }
            (true, '"') if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (false, ',') => {
                out.push(std::mem::take(&mut cur));
                at_start = true;
            }
            (_, c) => {
                cur.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    out.push(cur);
    Ok(out)
}

fn parse_audit(payload: &str) -> Result<AuditEntry, String> {
    if payload.is_empty() {
        return Err("nothing after it".into());
    }
    let record = split_csv(payload)?;
    if record.len() < 8 {
        return Err(format!("expected at least 8 comma-separated fields, found {}", record.len()));
    }
    let audit_type = match record[0].as_str() {
        "SESSION" => AuditType::Session,
        "OBJECT" => AuditType::Object,
        other => return Err(format!("audit type {other:?} is neither SESSION nor OBJECT")),
    };
    let number =
        |i: usize, name: &str| record[i].parse::<u64>().map_err(|_| format!("{name} {:?} is not a number", &record[i]));
    let some = |i: usize| record.get(i).filter(|s| !s.is_empty()).cloned();
    let rows = match record.get(9).map(String::as_str) {
        None | Some("") => None,
        Some(r) => Some(r.parse::<i64>().map_err(|_| format!("rows {r:?} is not a number"))?),
    };
    Ok(AuditEntry {
        audit_type,
        statement_id: number(1, "statement id")?,
        substatement_id: number(2, "substatement id")?,
        class: record[3].clone(),
        command: record[4].clone(),
        object_type: some(5),
        object_name: some(6),
        statement: record[7].clone(),
        parameter: some(8),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn read(format: LogFormat, text: &str) -> Vec<Result<LogRecord, Rejected>> {
        Reader::new(text.as_bytes(), format).collect()
    }

    // written by PostgreSQL 15 with pgaudit 1.7 (log_rows on), only the addresses changed
    const CSVLOG: &str = r#"2026-12-07 07:00:27.976 UTC,"alice","d1",8116,"127.0.0.1:51790",6b16598b.1fb4,1,"SELECT",2026-12-07 07:00:27 UTC,3/13,0,LOG,00000,"AUDIT: SESSION,1,1,READ,SELECT,TABLE,public.t,select * from t where email = 'a@x';,<none>,1",,,,,,,,,"psql","client backend",,0
2026-12-07 07:00:27.976 UTC,"alice","d1",8116,"127.0.0.1:51790",6b16598b.1fb4,5,"SELECT",2026-12-07 07:00:27 UTC,3/17,0,LOG,00000,"AUDIT: SESSION,5,1,READ,SELECT,TABLE,public.t,""select * from t 
  where id in (1,
   2);"",<none>,1",,,,,,,,,"psql","client backend",,0
2026-12-07 07:00:28.001 UTC,,,8100,,6b16598a.1fa4,1,,2026-12-07 07:00:26 UTC,,0,LOG,00000,"checkpoint starting: time",,,,,,,,,"","checkpointer",,0
"#;

    #[test]
    fn csvlog_records_span_lines_inside_quotes() {
        let records: Vec<LogRecord> = read(LogFormat::Csvlog, CSVLOG).into_iter().map(Result::unwrap).collect();
        assert_eq!(records.len(), 3);
        let r = &records[0];
        assert_eq!((r.line, r.user.as_deref(), r.database.as_deref()), (1, Some("alice"), Some("d1")));
        assert_eq!((r.session.as_deref(), r.severity.as_str()), (Some("6b16598b.1fb4"), "LOG"));
        assert_eq!(r.at.to_rfc3339(), "2026-12-07T07:00:27.976+00:00");
        assert_eq!(records[1].line, 2);
        assert_eq!(records[2].line, 5);
        let e = audit_entry(&records[1].message).unwrap().unwrap();
        assert_eq!(e.statement, "select * from t \n  where id in (1,\n   2);");
        assert_eq!((e.statement_id, e.rows, e.object_name.as_deref()), (5, Some(1), Some("public.t")));
        assert_eq!(records[2].user, None);
        assert_eq!(audit_entry(&records[2].message), None);
        assert_ne!(records[0].sha256, records[1].sha256);
    }

    #[test]
    fn a_short_or_foreign_csv_record_is_rejected_and_kept() {
        let text = "2026-12-07 07:00:27.976 UTC,alice,d1\n2026-12-07 07:00:27.976 CET,\"alice\",\"d1\",1,,s.1,1,,,,0,LOG,00000,\"x\",,,,,,,,,\"psql\"\n";
        let out = read(LogFormat::Csvlog, text);
        let e = out[0].clone().unwrap_err();
        assert_eq!((e.line, e.text.as_str()), (1, "2026-12-07 07:00:27.976 UTC,alice,d1"));
        assert!(e.reason.contains("3 columns"), "{}", e.reason);
        let e = out[1].clone().unwrap_err();
        assert!(e.reason.starts_with("log_time: time zone \"CET\""), "{}", e.reason);
    }

    #[test]
    fn stderr_lines_with_the_documented_prefix_and_continuations() {
        let text = "2026-12-07 07:00:27.976 UTC [8116] alice@d1 6b16598b.1fb4:5 LOG:  AUDIT: SESSION,5,1,READ,SELECT,TABLE,public.t,\"select * from t \n\t  where id = 1;\",<none>,1\n\
                    2026-12-07 07:00:28 UTC [8117] LOG:  checkpoint starting: time\n\
                    garbage\n";
        let out = read(LogFormat::Stderr, text);
        let r = out[0].clone().unwrap();
        assert_eq!((r.line, r.user.as_deref(), r.session.as_deref()), (1, Some("alice"), Some("6b16598b.1fb4")));
        assert_eq!(audit_entry(&r.message).unwrap().unwrap().statement, "select * from t \n  where id = 1;");
        let r = out[1].clone().unwrap();
        assert_eq!(
            (r.line, r.user, r.session.as_deref(), r.message.as_str()),
            (3, None, Some("pid:8117"), "checkpoint starting: time")
        );
        let e = out[2].clone().unwrap_err();
        assert_eq!((e.line, e.text.as_str()), (4, "garbage"));
    }

    #[test]
    fn rds_lines_name_host_user_database_and_pid() {
        let text = "2026-12-07 07:00:27 UTC:10.0.1.5(51790):alice@orders:[8116]:LOG:  AUDIT: SESSION,1,1,WRITE,DELETE,TABLE,public.t,delete from t,<not logged>\n\
                    2026-12-07 07:00:27 UTC:[local]:rdsadmin@rdsadmin:[90]:LOG:  x\n\
                    2026-12-07 07:00:27 UTC:::1(5432):bob@orders:[91]:ERROR:  y\n\
                    2026-12-07 07:00:27 UTC::@:[92]:LOG:  checkpoint\n\
                    2026-12-07 07:00:27 UTC:10.0.1.5(51790):alice@orders:[x]:LOG:  z\n";
        let out = read(LogFormat::Rds, text);
        let r = out[0].clone().unwrap();
        assert_eq!(
            (r.user.as_deref(), r.database.as_deref(), r.session.as_deref()),
            (Some("alice"), Some("orders"), Some("10.0.1.5:8116"))
        );
        assert_eq!(audit_entry(&r.message).unwrap().unwrap().rows, None, "no ROWS field without log_rows");
        assert_eq!(out[1].clone().unwrap().session.as_deref(), Some("[local]:90"));
        let r = out[2].clone().unwrap();
        assert_eq!((r.session.as_deref(), r.severity.as_str()), (Some("::1:91"), "ERROR"));
        assert_eq!(out[3].clone().unwrap().user, None);
        assert!(out[4].clone().unwrap_err().reason.contains("pid \"x\""));
    }

    #[test]
    fn audit_entries_that_do_not_read_say_why() {
        assert_eq!(
            audit_entry("AUDIT: SESSION,1,1,READ").unwrap().unwrap_err(),
            "expected at least 8 comma-separated fields, found 4"
        );
        assert!(
            audit_entry("AUDIT: SESSION,x,1,READ,SELECT,,,select 1,<none>")
                .unwrap()
                .unwrap_err()
                .contains("statement id")
        );
        assert!(audit_entry("AUDIT: OTHER,1,1,READ,SELECT,,,select 1,<none>").unwrap().unwrap_err().contains("OTHER"));
    }

    proptest! {
        #[test]
        fn any_input_reads_without_panicking(text in ".{0,300}", f in 0..3u8) {
            let format = [LogFormat::Csvlog, LogFormat::Stderr, LogFormat::Rds][f as usize];
            for r in Reader::new(text.as_bytes(), format) {
                let _ = r.map(|r| audit_entry(&r.message));
            }
            let _ = audit_entry(&text);
        }
    }
}
