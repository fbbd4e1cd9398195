//! `grantwarden queries`: PostgreSQL logs with pgaudit entries into query
//! events of the local state file (`ingest`), and the events asked for by
//! person, ticket, object, class and time (`list`), and the records that
//! could not be read (`rejected`). The rules are core's
//! (`grantwarden_core::queries`); this reads files and prints.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use grantwarden_core::intake::Outcome;
use grantwarden_core::pglog::{LogFormat, Reader};
use grantwarden_core::queries::{IngestSource, QueryEvent, QueryFilter, QueryStore, StatementClass, ingest};
use grantwarden_core::query_controls::{Controls, NoPublisher};
use grantwarden_core::query_policy::QueryPolicy;
use grantwarden_core::snapshot::TargetId;
use serde_json::json;
use sha2::Digest;

use crate::exceptions::{StateArgs, load_registry};

#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// `log_destination = 'csvlog'` (PostgreSQL 13 and later).
    Csvlog,
    /// `log_destination = 'stderr'`, `log_line_prefix` starting `%m` or `%t` (README: Query audit).
    Stderr,
    /// RDS and Aurora PostgreSQL log files, or lines of their CloudWatch Logs export.
    Rds,
}

impl FormatArg {
    fn format(self) -> LogFormat {
        match self {
            FormatArg::Csvlog => LogFormat::Csvlog,
            FormatArg::Stderr => LogFormat::Stderr,
            FormatArg::Rds => LogFormat::Rds,
        }
    }
}

/// A statement class as pgaudit names it, in any case (`read`, `WRITE`, `misc_set`).
fn class(s: &str) -> Result<StatementClass, String> {
    StatementClass::parse(&s.to_ascii_uppercase())
        .ok_or_else(|| format!("{s:?}: one of read, write, function, role, ddl, misc, misc_set"))
}

#[derive(Args)]
pub struct IngestArgs {
    /// Log files, each one batch (a file ingested before adds nothing).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The target whose log it is.
    #[arg(long)]
    target: String,
    /// Only records of this database (a server's log holds every database's); default: all.
    #[arg(long)]
    dbname: Option<String>,
    /// The layout; default `csvlog` for a `.csv` file, else `stderr`.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Policy registry (its `queries:` section: keep_literals); without it literals are redacted.
    #[arg(long, env = "GRANTWARDEN_POLICY")]
    policy: Option<PathBuf>,
    #[command(flatten)]
    state: StateArgs,
    /// One JSON line per file instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct FollowArgs {
    /// The log file (the server's current one).
    file: PathBuf,
    /// The target whose log it is.
    #[arg(long)]
    target: String,
    /// Only records of this database.
    #[arg(long)]
    dbname: Option<String>,
    /// The layout; default `csvlog` for a `.csv` file, else `stderr`.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Policy registry: routes the GRANTs, and its `queries:` section.
    #[arg(long, env = "GRANTWARDEN_POLICY")]
    policy: PathBuf,
    #[command(flatten)]
    state: StateArgs,
    /// How often the file is looked at.
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    interval: std::time::Duration,
    /// Read the file from its start (default: from its end, what is written from now on).
    #[arg(long)]
    from_start: bool,
    /// Stop after one look (what is there now).
    #[arg(long)]
    once: bool,
}

#[derive(Args)]
pub struct FilterArgs {
    /// Only this target.
    #[arg(long)]
    target: Option<String>,
    /// Only this person (a ticket's principal, or `role:<name>` for a standing role).
    #[arg(long)]
    person: Option<String>,
    /// Only this ticket's credential.
    #[arg(long)]
    ticket: Option<String>,
    /// Only objects matching this glob (`billing.*`, `public.customers`).
    #[arg(long)]
    object: Option<String>,
    /// Only these statement classes: read, write, function, role, ddl, misc, misc_set (repeat or comma-separate).
    #[arg(long, value_delimiter = ',', value_parser = class)]
    class: Vec<StatementClass>,
    /// Only these commands (`DELETE`, `COPY`, ...; repeat or comma-separate).
    #[arg(long, value_delimiter = ',')]
    command: Vec<String>,
    /// From this time (RFC 3339), inclusive.
    #[arg(long)]
    from: Option<DateTime<Utc>>,
    /// Up to this time, exclusive.
    #[arg(long)]
    to: Option<DateTime<Utc>>,
}

impl FilterArgs {
    fn filter(&self) -> Result<QueryFilter> {
        let object = match &self.object {
            Some(g) => Some(globset::Glob::new(g).with_context(|| format!("--object {g:?}"))?.compile_matcher()),
            None => None,
        };
        Ok(QueryFilter {
            target: self.target.as_deref().map(target).transpose()?,
            person: self.person.clone(),
            ticket: self.ticket.clone(),
            object,
            classes: self.class.clone(),
            commands: self.command.iter().map(|c| c.to_ascii_uppercase()).collect(),
            from: self.from,
            to: self.to,
        })
    }
}

#[derive(Subcommand)]
pub enum QueriesCommand {
    /// Read PostgreSQL logs (pgaudit entries) into query events; each file journaled by its sha256.
    Ingest(IngestArgs),
    /// Query events, oldest first, filtered.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        state: StateArgs,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Tail a log: each new part ingested as it is written, and each GRANT or REVOKE in it routed at once
    /// (a grant no ticket covers is an untagged finding within seconds). Until interrupted.
    Follow(FollowArgs),
    /// The sha256 of a script as an access request names it (`script.sha256`): its statements, normalized.
    ScriptSha256 {
        /// The script (SQL).
        file: PathBuf,
    },
    /// Log records that could not be read, with why, as kept at ingestion.
    Rejected {
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
        #[command(flatten)]
        state: StateArgs,
        /// JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn target(t: &str) -> Result<TargetId> {
    TargetId::new(t).context("--target: empty")
}

pub async fn run(command: QueriesCommand, now: DateTime<Utc>) -> Result<ExitCode> {
    match command {
        QueriesCommand::Ingest(args) => run_ingest(args, now).await,
        QueriesCommand::Follow(args) => run_follow(args).await,
        QueriesCommand::List { filter, state, json } => {
            let store = state.open()?;
            let events = store.query_events(&filter.filter()?).await?;
            if json {
                for e in &events {
                    println!("{}", serde_json::to_string(e)?);
                }
            } else {
                print!("{}", table(&events));
            }
            Ok(ExitCode::SUCCESS)
        }
        QueriesCommand::ScriptSha256 { file } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let statements = grantwarden_core::statement::split_script(&text);
            println!(
                "{}  {} ({} statements)",
                grantwarden_core::statement::script_sha256(&statements),
                file.display(),
                statements.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        QueriesCommand::Rejected { target: t, state, json } => {
            let store = state.open()?;
            let t = t.as_deref().map(target).transpose()?;
            for r in store.rejections(t.as_ref()).await? {
                if json {
                    println!("{}", serde_json::to_string(&r)?);
                } else {
                    println!(
                        "{} batch {} line {}: {}\n  {}",
                        r.target,
                        &r.batch[..12],
                        r.rejected.line,
                        r.rejected.reason,
                        r.rejected.text
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// sha256 and length of a file as it is now: what is ingested is exactly those bytes.
fn digest(path: &Path) -> Result<(String, u64)> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), len))
}

async fn run_ingest(args: IngestArgs, now: DateTime<Utc>) -> Result<ExitCode> {
    let target = target(&args.target)?;
    let policy = match &args.policy {
        Some(p) => load_registry(p).map_err(|e| anyhow::anyhow!("{e}"))?.queries,
        None => QueryPolicy::default(),
    };
    let store = args.state.open()?;
    let controls = Controls {
        store: &store,
        publisher: None::<&NoPublisher>,
        on_export: policy.on_export,
        actor: "grantwarden:queries",
        now,
    };
    let (mut rejected, mut alerts) = (0, 0);
    for path in &args.files {
        let format = format_of(path, args.format);
        let (sha256, len) = digest(path)?;
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let bar = indicatif::ProgressBar::new(len).with_style(
            indicatif::ProgressStyle::with_template("{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}")
                .expect("a valid template"),
        );
        bar.set_message(path.display().to_string());
        // a log still being written: only the bytes hashed are read
        let reader = Reader::new(BufReader::with_capacity(1 << 16, bar.wrap_read(file.take(len))), format);
        let source = path.display().to_string();
        let src = IngestSource {
            target: &target,
            database: args.dbname.as_deref(),
            source: &source,
            actor: "grantwarden",
            policy: &policy,
            now,
        };
        let done =
            ingest(&store, &controls, &src, &sha256, reader).await.with_context(|| format!("ingesting {source}"))?;
        bar.finish_and_clear();
        rejected += done.batch.rejected;
        alerts += done.alerts;
        if args.json {
            println!("{}", serde_json::to_string(&done)?);
        } else if done.delivered_before {
            println!("{source}: ingested before (sha256 {}): nothing added", done.batch.sha256);
        } else {
            let b = &done.batch;
            println!(
                "{source}: {} records, {} query events ({} new), {} skipped, {} rejected (kept: `grantwarden queries rejected`), {} alert(s); sha256 {} journaled on {target}",
                b.records, b.events, b.new_events, b.skipped, b.rejected, done.alerts, b.sha256
            );
        }
    }
    if alerts > 0 {
        eprintln!("{alerts} query alert(s) (exports, statements outside a ticket's path) journaled as queries.alert");
    }
    if rejected > 0 {
        eprintln!("{rejected} record(s) could not be read and were kept with their reason");
    }
    Ok(ExitCode::SUCCESS)
}

/// The layout of `path`: as given, else `csvlog` for a `.csv` file and `stderr` otherwise.
fn format_of(path: &Path, given: Option<FormatArg>) -> LogFormat {
    given.map(FormatArg::format).unwrap_or_else(|| {
        if path.extension().is_some_and(|e| e == "csv") { LogFormat::Csvlog } else { LogFormat::Stderr }
    })
}

/// How much of `bytes` is whole records: up to the last newline outside a csvlog's quotes.
fn whole_records(bytes: &[u8], format: LogFormat) -> usize {
    let mut quoted = false;
    let mut end = 0;
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'"' if format == LogFormat::Csvlog => quoted = !quoted,
            b'\n' if !quoted => end = i + 1,
            _ => {}
        }
    }
    end
}

async fn run_follow(args: FollowArgs) -> Result<ExitCode> {
    use std::io::{Seek, SeekFrom};
    let target = target(&args.target)?;
    let format = format_of(&args.file, args.format);
    let registry = load_registry(&args.policy).map_err(|e| anyhow::anyhow!("policy registry: {e}"))?;
    let policy = &registry.queries;
    let store = args.state.open()?;
    let scoring = grantwarden_core::scoring::ScoringConfig::standard();
    let mut offset = if args.from_start { 0 } else { std::fs::metadata(&args.file).map(|m| m.len()).unwrap_or(0) };
    let mut pending: Vec<u8> = Vec::new();
    eprintln!("following {} from byte {offset}", args.file.display());
    loop {
        let len = std::fs::metadata(&args.file).map(|m| m.len()).unwrap_or(0);
        if len < offset {
            // rotated or truncated: a new file, read from its start
            offset = 0;
            pending.clear();
        }
        if len > offset {
            let mut file = File::open(&args.file).with_context(|| format!("opening {}", args.file.display()))?;
            file.seek(SeekFrom::Start(offset))?;
            let mut fresh = Vec::new();
            file.take(len - offset).read_to_end(&mut fresh)?;
            offset += fresh.len() as u64;
            pending.extend_from_slice(&fresh);
        }
        let whole = whole_records(&pending, format);
        if whole > 0 {
            let chunk: Vec<u8> = pending.drain(..whole).collect();
            let now = Utc::now();
            let sha256 = hex::encode(sha2::Sha256::digest(&chunk));
            let source = format!("{}@{}", args.file.display(), offset - pending.len() as u64 - chunk.len() as u64);
            let controls = Controls {
                store: &store,
                publisher: None::<&NoPublisher>,
                on_export: policy.on_export,
                actor: "grantwarden:queries",
                now,
            };
            let src = IngestSource {
                target: &target,
                database: args.dbname.as_deref(),
                source: &source,
                actor: "grantwarden",
                policy,
                now,
            };
            let done = ingest(&store, &controls, &src, &sha256, Reader::new(chunk.as_slice(), format))
                .await
                .with_context(|| format!("ingesting {source}"))?;
            let records: Vec<_> = Reader::new(chunk.as_slice(), format).filter_map(Result::ok).collect();
            let changes = controls
                .role_changes(Ok(&registry), &target, args.dbname.as_deref(), records, &scoring)
                .await
                .with_context(|| format!("routing the GRANTs and REVOKEs of {source}"))?;
            for c in changes {
                let seen = Utc::now();
                let latency_ms = (seen - c.logged_at).num_milliseconds();
                let line = match &c.outcome {
                    Outcome::Untagged(f) | Outcome::Refused { finding: f, .. } => {
                        json!({ "outcome": "untagged", "delivery_id": c.delivery_id, "logged_at": c.logged_at,
                            "seen_at": seen, "latency_ms": latency_ms, "finding": f,
                            "alert": c.alert.as_ref().map(|(sentence, _)| sentence) })
                    }
                    Outcome::Created(t) | Outcome::Existing(t) | Outcome::Conflict(t) => {
                        json!({ "outcome": "ticket", "delivery_id": c.delivery_id, "logged_at": c.logged_at,
                            "seen_at": seen, "latency_ms": latency_ms, "ticket": t.id() })
                    }
                };
                println!("{line}");
            }
            if done.batch.events > 0 || done.batch.rejected > 0 {
                println!("{}", json!({ "outcome": "ingested", "batch": done }));
            }
        }
        if args.once {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            _ = tokio::time::sleep(args.interval) => {}
        }
    }
}

fn table(events: &[QueryEvent]) -> String {
    if events.is_empty() {
        return "no query events\n".to_owned();
    }
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(["at", "person", "ticket", "class", "command", "object", "rows", "statement"]);
    for e in events {
        let mut statement = e.statement.clone();
        if statement.chars().count() > 80 {
            statement = statement.chars().take(79).collect::<String>() + "…";
        }
        t.add_row([
            e.at.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
            e.person.clone(),
            e.ticket.clone().unwrap_or_default(),
            e.class.as_str().to_owned(),
            e.command.clone() + e.copy.as_deref().map(|c| format!(" {c}")).as_deref().unwrap_or_default(),
            e.object.clone().unwrap_or_default(),
            e.rows.map(|r| r.to_string()).unwrap_or_default(),
            statement,
        ]);
    }
    format!("{t}\n{} event(s)\n", events.len())
}

#[cfg(test)]
mod tests {
    use grantwarden_core::pglog::LogFormat;

    #[test]
    fn only_whole_records_are_taken_from_a_growing_log() {
        let csv = b"a,\"x\"\nb,\"multi\nline\"\nc,\"unfinished\n";
        assert_eq!(super::whole_records(csv, LogFormat::Csvlog), "a,\"x\"\nb,\"multi\nline\"\n".len());
        assert_eq!(super::whole_records(b"line one\nline tw", LogFormat::Stderr), 9);
        assert_eq!(super::whole_records(b"no newline yet", LogFormat::Rds), 0);
    }

    #[test]
    fn a_bad_glob_names_the_flag() {
        let f = super::FilterArgs {
            target: None,
            person: None,
            ticket: None,
            object: Some("[".into()),
            class: vec![],
            command: vec![],
            from: None,
            to: None,
        };
        assert!(f.filter().unwrap_err().to_string().starts_with("--object \"[\""));
    }
}
