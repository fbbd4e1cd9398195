//! `grantwarden`: database access governance from the command line.
//!
//! `plan` compares a PostgreSQL database with a baseline manifest and reports
//! drift (exit 0: none, 2: drift, 1: error or incomplete scan, as `terraform
//! plan -detailed-exitcode`); `snapshot` writes the canonical privilege state;
//! `generate` writes a baseline from a live database. Extraction is read-only
//! and needs only a role that can read the system catalogs.
//!
//! Environment: `GRANTWARDEN_DATABASE_URL` stands in for `--database`;
//! `RUST_LOG` sets log filtering (logs go to stderr).
#![deny(missing_docs)]

mod access;
mod audit;
mod exceptions;
mod notices;
mod queries;
mod query_report;
mod render;
mod report;
mod revoke;
mod schema;
mod serve;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use grantwarden_core::baseline::Baseline;
use grantwarden_core::manifest::RoleFilter;
use grantwarden_core::report::Report;
use grantwarden_core::scoring::ScoringConfig;
use grantwarden_core::snapshot::{ChunkOutcome, ChunkSpec, Snapshot, TargetId};
use grantwarden_postgres::{ChunkSize, Progress, ScanOptions, Scanner, Timeouts};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Parser)]
#[command(name = "grantwarden", version, about = "Database access governance: privilege drift against a baseline")]
struct Cli {
    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Evaluate tickets and expiry as of this time (RFC 3339) instead of now.
    #[arg(long, global = true)]
    at: Option<chrono::DateTime<chrono::Utc>>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compare the database with a baseline and report drift (exit 0 none, 2 drift, 1 error or incomplete).
    Plan(PlanArgs),
    /// Write the canonical privilege snapshot (sorted JSON with its sha256).
    Snapshot(ScanArgs),
    /// Write a baseline manifest that describes the live database (brownfield adoption).
    Generate(GenerateArgs),
    /// Take a grant webhook, generic payload or pgaudit log: route it and record the ticket.
    Intake(exceptions::IntakeArgs),
    /// The Slack notice queue `serve` delivers: what waits, what was given up and why; retry dead notices.
    Notices {
        #[command(subcommand)]
        command: notices::NoticesCommand,
    },
    /// Query-level audit from pgaudit: ingest PostgreSQL logs, then ask who ran what.
    Queries {
        #[command(subcommand)]
        command: queries::QueriesCommand,
    },
    /// List, show or approve exception tickets.
    Tickets {
        #[command(subcommand)]
        command: exceptions::TicketsCommand,
    },
    /// Replay a pgaudit log through routing and report every decision; writes nothing.
    Simulate(exceptions::SimulateArgs),
    /// Ask for just-in-time access (read-only, migration, break-glass); issued at once when auto-approved.
    Request(access::RequestArgs),
    /// Issue the credential of an approved access ticket (shown once).
    Access {
        #[command(subcommand)]
        command: access::AccessCommand,
    },
    /// Record an incident webhook (PagerDuty, Opsgenie): break-glass needs an open incident.
    Incident(access::IncidentArgs),
    /// Revoke what ended tickets granted: one ticket, or every due one (`--due`); `--dry-run` prints the plan.
    Revoke(revoke::RevokeArgs),
    /// The sweeper: revoke due tickets every interval until interrupted.
    Watch(revoke::WatchArgs),
    /// The access portal on a local port (sign-in at the OIDC provider), over the local state.
    Serve(serve::ServeArgs),
    /// Turn drift into corrective GRANT/REVOKE SQL (dry run unless --execute); excepted grants are never touched.
    Apply(ApplyArgs),
    /// Compliance evidence: coverage, access changes, remediation, a person's evidence, the HTML dashboard.
    Report {
        #[command(subcommand)]
        command: report::ReportCommand,
    },
    /// Governance metrics: standing credentials, access windows, time to access, break-glass use, revocation latency.
    Metrics(report::MetricsArgs),
    /// Verify the hash-chained audit journal, sign digests, export a person's trail.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
    /// Print the JSON Schema of a baseline, policy registry or scoring file (as in docs/schemas/).
    Schema(schema::SchemaArgs),
}

#[derive(Args)]
struct ScanArgs {
    /// PostgreSQL connection URL or key-value string; a read-only catalog reader is enough.
    /// `snapshot`, `generate` and `plan` also read MySQL 8 and MariaDB 10.6+ (`mysql://` or `mariadb://`).
    #[arg(long, env = "GRANTWARDEN_DATABASE_URL", hide_env_values = true)]
    database: String,
    /// Target id in reports (default: host:port/dbname from the connection string).
    #[arg(long)]
    target: Option<String>,
    /// Chunks extracted at once, each on its own connection.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    concurrency: u16,
    /// Most relations per chunk; larger schemas are split by name. Default:
    /// the catalog spread over the --concurrency connections, 2000 to 50000
    /// relations a chunk (all chunks read one snapshot: fewer cost less).
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    max_relations_per_chunk: Option<i64>,
    /// statement_timeout of each catalog query, in seconds.
    #[arg(long, default_value_t = 60)]
    statement_timeout: u64,
    /// Write here instead of stdout.
    #[arg(long, short)]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct PlanArgs {
    #[command(flatten)]
    assess: AssessArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// What assessing a database takes: the scan, the baseline, scoring, the store and the registry.
#[derive(Args)]
struct AssessArgs {
    #[command(flatten)]
    scan: ScanArgs,
    /// Baseline manifest (YAML).
    #[arg(long)]
    baseline: PathBuf,
    /// Scoring weights and thresholds (YAML; default: the built-in ones, as in infra/scoring.yaml).
    #[arg(long)]
    scoring: Option<PathBuf>,
    /// Local state store: exceptions are read from it, findings recorded in it.
    #[arg(long, env = "GRANTWARDEN_STATE")]
    state: Option<PathBuf>,
    /// Policy registry; if it cannot be read, no exception is applied (fail secure).
    #[arg(long, env = "GRANTWARDEN_POLICY")]
    policy: Option<PathBuf>,
}

#[derive(Args)]
struct ApplyArgs {
    #[command(flatten)]
    assess: AssessArgs,
    /// report: print only; revoke-unauthorized: revoke what is held and not wanted; converge: also grant what is missing.
    #[arg(long, value_enum, default_value_t = revoke::ApplyMode::Report)]
    mode: revoke::ApplyMode,
    /// Run the SQL (on PostgreSQL in one transaction; on MySQL and MariaDB statement by statement, then
    /// checked against the grant tables read again). Without it, the plan is printed and audited only.
    #[arg(long)]
    execute: bool,
}

#[derive(Args)]
struct GenerateArgs {
    #[command(flatten)]
    scan: ScanArgs,
    /// Roles to leave out (globs; `!glob` re-includes). Repeat or separate with commas.
    #[arg(long, value_delimiter = ',', default_values_t = ["pg_*".to_owned()])]
    ignore_roles: Vec<String>,
    /// MySQL and MariaDB: accounts to leave out, as globs of `user@host` (`!glob` re-includes).
    /// The engine's own accounts (`mariadb.sys@localhost`...) are always left out.
    #[arg(long, value_delimiter = ',')]
    ignore_accounts: Vec<String>,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Table,
    Json,
    Markdown,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let now = cli.at.unwrap_or_else(chrono::Utc::now);
    match runtime.block_on(run(cli.command, now, cli.at)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The comment a generated baseline opens with. The target (host, port and
/// database name, or `--target`) is written with its control characters
/// escaped: a database name holding a line break would otherwise end the
/// comment and put the rest of its name in the YAML as content.
fn generated_header(target: &TargetId, sha256: &str) -> String {
    let target: String = target
        .as_str()
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') { c.escape_debug().to_string() } else { c.into() }
        })
        .collect();
    format!(
        "# Generated by grantwarden from {target} (snapshot sha256 {sha256}).\n# Review it, then keep it in version control as the baseline.\n"
    )
}

/// Logs on stderr: `RUST_LOG`, else `-v`'s level, under the shared filter's
/// cap (the PostgreSQL driver never logs the statements that carry a
/// credential's verifier).
fn init_logging(verbose: u8) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = grantwarden_aws::logging::filter(std::env::var("RUST_LOG").ok().as_deref(), default);
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter);
    tracing_subscriber::registry().with(layer).init();
}

async fn run(
    command: Command,
    now: chrono::DateTime<chrono::Utc>,
    at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<ExitCode> {
    match command {
        Command::Request(args) => access::run_request(args, now).await,
        Command::Access { command } => access::run_access(command, now).await,
        Command::Incident(args) => access::run_incident(args, now).await,
        Command::Revoke(args) => revoke::run_revoke(args, at).await,
        Command::Watch(args) => revoke::run_watch(args, at).await,
        Command::Serve(args) => serve::run(args).await.map(|()| ExitCode::SUCCESS),
        Command::Apply(args) => revoke::run_apply(args, now).await,
        Command::Report { command } => report::run(command, now).await,
        Command::Metrics(args) => report::run_metrics(args, now).await,
        Command::Plan(args) => plan(args, now).await,
        Command::Intake(args) => exceptions::run_intake(args, now).await,
        Command::Tickets { command } => exceptions::run_tickets(command, now).await,
        Command::Notices { command } => notices::run(command, now),
        Command::Queries { command } => queries::run(command, now).await,
        Command::Simulate(args) => exceptions::run_simulate(args, now),
        Command::Audit { command } => audit::run(command, now).await,
        Command::Schema(args) => schema::run(args),
        Command::Snapshot(args) if is_mysql(&args.database) => snapshot_mysql(&args).await,
        Command::Snapshot(args) => {
            let snapshot = scan(&args).await?;
            // streamed: the JSON of a large catalog is gigabytes, never held whole
            write_output_with(args.output.as_deref(), |out| {
                serde_json::to_writer_pretty(&mut *out, &snapshot)?;
                out.write_all(b"\n")?;
                Ok(())
            })?;
            Ok(if snapshot.complete { ExitCode::SUCCESS } else { incomplete(&snapshot) })
        }
        Command::Generate(args) if is_mysql(&args.scan.database) => generate_mysql(&args).await,
        Command::Generate(args) => {
            let ignore = RoleFilter::new(&args.ignore_roles)
                .map_err(|(i, msg)| anyhow::anyhow!("--ignore-roles[{i}]: {msg}"))?;
            let snapshot = scan(&args.scan).await?;
            if !snapshot.complete {
                return Ok(incomplete(&snapshot));
            }
            let manifest = grantwarden_core::generate::generate(&snapshot.state, &ignore);
            let yaml = serde_saphyr::to_string(&manifest).context("writing the manifest as YAML")?;
            let header = generated_header(&snapshot.target, &snapshot.sha256);
            write_output(args.scan.output.as_deref(), &format!("{header}{yaml}"))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn plan(args: PlanArgs, now: chrono::DateTime<chrono::Utc>) -> Result<ExitCode> {
    let report = plan_report(&args.assess, now).await?;
    let rendered = match args.format {
        Format::Table => render::table(&report),
        Format::Markdown => render::markdown(&report),
        Format::Json => serde_json::to_string_pretty(&report)? + "\n",
    };
    write_output(args.assess.scan.output.as_deref(), &rendered)?;
    Ok(exit_code(&report))
}

/// Scans the database and assesses it against the baseline (with the store's exceptions when given).
async fn plan_report(args: &AssessArgs, now: chrono::DateTime<chrono::Utc>) -> Result<Report> {
    let scoring = scoring_of(args)?;
    if is_mysql(&args.scan.database) {
        return plan_report_mysql(args, &scoring, args.state.as_deref(), now).await;
    }
    // The baseline is read while the catalog is: a generated baseline of a large
    // catalog is a hundred megabytes of YAML, as long to read as the catalog itself.
    // A baseline that cannot be read stops the scan at once.
    let path = args.baseline.clone();
    let started = std::time::Instant::now();
    let read_baseline = async move {
        tokio::task::spawn_blocking(move || -> Result<Baseline> {
            let baseline = read_baseline(&path, false, Baseline::from_yaml)?;
            tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "baseline read");
            Ok(baseline)
        })
        .await
        .context("reading the baseline")?
    };
    // The snapshot's sha256 (of its canonical JSON: gigabytes for millions of
    // grants) is taken on another thread from the moment the scan ends, while
    // the baseline is still read and then while the diff runs.
    let scan_and_hash = async {
        let snapshot = Arc::new(scan_unsealed(&args.scan).await?);
        let state = Arc::clone(&snapshot);
        let hashing = std::thread::spawn(move || {
            let sha256 = state.state.sha256();
            tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "snapshot hashed");
            sha256
        });
        anyhow::Ok((snapshot, hashing))
    };
    let (baseline, (snapshot, hashing)) = tokio::try_join!(read_baseline, scan_and_hash)?;
    let report = match &args.state {
        None => Ok(tokio::task::block_in_place(|| grantwarden_core::diff::diff(&baseline, &snapshot, &scoring))),
        Some(state) => {
            exceptions::report_with_state(state, args.policy.as_deref(), &baseline, &snapshot, &scoring, now).await
        }
    };
    tracing::info!(elapsed_ms = started.elapsed().as_millis() as u64, "diff done");
    let sha256 = tokio::task::block_in_place(|| hashing.join().expect("hashing a state does not panic"));
    let mut report = report?;
    report.snapshot_sha256 = sha256;
    // Freeing millions of grants takes a while and the command is about to
    // end: another thread does it while the report is written.
    std::thread::spawn(move || drop((baseline, snapshot)));
    Ok(report)
}

fn exit_code(report: &Report) -> ExitCode {
    if !report.summary.complete {
        eprintln!("error: the scan is incomplete; the report is partial");
        ExitCode::from(1)
    } else if report.has_drift() {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    }
}

fn incomplete(snapshot: &Snapshot) -> ExitCode {
    eprintln!("error: the scan is incomplete:");
    for c in snapshot.failed_chunks() {
        eprintln!("  - {c}");
    }
    ExitCode::from(1)
}

/// A scan of the database at `url` with the default options.
async fn scan_url(url: &str, target: Option<String>) -> Result<Snapshot> {
    let args = ScanArgs {
        database: url.to_owned(),
        target,
        concurrency: 4,
        max_relations_per_chunk: None,
        statement_timeout: 60,
        output: None,
    };
    scan(&args).await
}

async fn scan(args: &ScanArgs) -> Result<Snapshot> {
    let mut snapshot = scan_unsealed(args).await?;
    snapshot.seal();
    Ok(snapshot)
}

/// Whether `url` names a MySQL or MariaDB server.
pub(crate) fn is_mysql(url: &str) -> bool {
    url.starts_with("mysql://") || url.starts_with("mariadb://")
}

/// Refuses a MySQL or MariaDB URL by name where only PostgreSQL is read.
pub(crate) fn postgres_only(url: &str) -> Result<()> {
    if is_mysql(url) {
        anyhow::bail!(
            "--database: a MySQL or MariaDB server is read by `grantwarden snapshot`, `generate` and `plan`, \
             changed by `apply`, and its tickets ended by `revoke` and `watch`; just-in-time access (`access`, \
             `request --database`) issues PostgreSQL credentials only so far"
        );
    }
    Ok(())
}

/// `snapshot` of a MySQL or MariaDB server: its grant model as the engine
/// keeps it (grantwarden_mysql's catalog), with the scan's chunks and sha256.
async fn snapshot_mysql(args: &ScanArgs) -> Result<ExitCode> {
    let scan = scan_mysql(args).await?;
    write_output_with(args.output.as_deref(), |out| {
        serde_json::to_writer_pretty(&mut *out, &scan)?;
        out.write_all(b"\n")?;
        Ok(())
    })?;
    if scan.complete {
        return Ok(ExitCode::SUCCESS);
    }
    Ok(incomplete_mysql(&scan))
}

/// Says why a MySQL or MariaDB scan is incomplete: exit 1.
fn incomplete_mysql(scan: &grantwarden_mysql::Scan) -> ExitCode {
    eprintln!("error: the scan is incomplete:");
    for c in scan.chunks.iter().filter_map(ChunkOutcome::failure) {
        eprintln!("  - {c}");
    }
    for u in &scan.catalog.unreadable {
        eprintln!("  - not read: {} ({})", u.what, u.why);
    }
    ExitCode::from(1)
}

/// How the MySQL or MariaDB server `args` names is read.
pub(crate) fn mysql_scan_options(args: &ScanArgs) -> Result<grantwarden_mysql::ScanOptions> {
    let target = match &args.target {
        Some(t) => Some(TargetId::new(t.clone()).context("--target must not be empty")?),
        None => None,
    };
    Ok(grantwarden_mysql::ScanOptions {
        target,
        concurrency: usize::from(args.concurrency),
        timeouts: Timeouts { statement: Duration::from_secs(args.statement_timeout.max(1)), ..Default::default() },
        ..Default::default()
    })
}

/// A scan of the MySQL or MariaDB server `args` names.
async fn scan_mysql(args: &ScanArgs) -> Result<grantwarden_mysql::Scan> {
    let scanner = grantwarden_mysql::Scanner::new(&args.database, mysql_scan_options(args)?).context("--database")?;
    scanner.scan(chrono::Utc::now()).await.with_context(|| format!("scanning {}", scanner.target()))
}

/// The scoring `--scoring` names, or the standard one.
fn scoring_of(args: &AssessArgs) -> Result<ScoringConfig> {
    Ok(match &args.scoring {
        Some(path) => {
            let label = path.display().to_string();
            let text = std::fs::read_to_string(path).with_context(|| format!("reading scoring config {label}"))?;
            ScoringConfig::from_yaml(&text, &label)?
        }
        None => ScoringConfig::standard(),
    })
}

/// Reads the baseline file `path` with `parse`, the format of `--database`'s
/// engine (a MySQL or MariaDB server's when `mysql`). A baseline of the other
/// engine fails the format at its first key: the error then says what it is
/// instead (a file that is no YAML map keeps its parser's error, which names
/// the line).
pub(crate) fn read_baseline<T>(
    path: &std::path::Path,
    mysql: bool,
    parse: fn(&str, &str) -> Result<T, grantwarden_core::yaml::FileError>,
) -> Result<T> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("reading baseline {label}"))?;
    parse(&text, &label).map_err(|e| {
        match grantwarden_core::mysql_baseline::for_other_engine(&text, &label, "--database", mysql) {
            Some(why) => anyhow::anyhow!(why),
            None => e.into(),
        }
    })
}

/// The report of a MySQL or MariaDB server against its baseline; with a
/// state store, recorded there as PostgreSQL's are (findings with their age,
/// the scan journaled).
async fn plan_report_mysql(
    args: &AssessArgs,
    scoring: &ScoringConfig,
    state: Option<&std::path::Path>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Report> {
    let baseline = read_baseline(&args.baseline, true, grantwarden_core::mysql_baseline::Baseline::from_yaml)?;
    let scan = scan_mysql(&args.scan).await?;
    let Some(state) = state else { return Ok(grantwarden_core::mysql_plan::plan(&baseline, &scan, scoring)?) };
    let store = grantwarden_local::LocalStore::open(state)
        .with_context(|| format!("opening the state store {}", state.display()))?;
    let registry = exceptions::registry_of(args.policy.as_deref());
    let registry = registry.as_ref().map(|r| r.as_ref().map_err(String::clone));
    Ok(grantwarden_core::assess::assess_mysql(&store, &baseline, &scan, scoring, registry, now).await?)
}

/// The baseline of a MySQL or MariaDB server: exit 1, writing nothing, when the scan is incomplete.
async fn generate_mysql(args: &GenerateArgs) -> Result<ExitCode> {
    use grantwarden_core::mysql_baseline::{Engine, generate};
    let ignore =
        RoleFilter::new(&args.ignore_accounts).map_err(|(i, msg)| anyhow::anyhow!("--ignore-accounts[{i}]: {msg}"))?;
    let scan = scan_mysql(&args.scan).await?;
    if !scan.complete {
        return Ok(incomplete_mysql(&scan));
    }
    let manifest = generate(&scan.catalog, Engine::of(scan.server.flavor), &ignore);
    let yaml = serde_saphyr::to_string(&manifest).context("writing the baseline as YAML")?;
    let header = generated_header(&scan.target, &scan.sha256);
    write_output(args.scan.output.as_deref(), &format!("{header}{yaml}"))?;
    Ok(ExitCode::SUCCESS)
}

/// A scan without its sha256 (see [`Scanner::scan_unsealed`]).
async fn scan_unsealed(args: &ScanArgs) -> Result<Snapshot> {
    postgres_only(&args.database)?;
    let target = match &args.target {
        Some(t) => Some(TargetId::new(t.clone()).context("--target must not be empty")?),
        None => None,
    };
    let options = ScanOptions {
        target,
        concurrency: usize::from(args.concurrency),
        chunk_size: match args.max_relations_per_chunk {
            Some(n) => ChunkSize::Max(n),
            None => ChunkSize::Spread { connections: usize::from(args.concurrency) },
        },
        timeouts: Timeouts { statement: Duration::from_secs(args.statement_timeout.max(1)), ..Timeouts::default() },
        ..ScanOptions::default()
    };
    let scanner = Scanner::new(&args.database, options)?;
    let progress = Bar::new();
    let snapshot = scanner
        .scan_unsealed(chrono::Utc::now(), &progress)
        .await
        .with_context(|| format!("scanning {}", scanner.target()))?;
    progress.bar.finish_and_clear();
    Ok(snapshot)
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
struct Bar {
    bar: ProgressBar,
}

impl Bar {
    /// A bar counting `len` items of long work (`what` in front), hidden unless stderr is a terminal.
    fn counting(len: u64, what: &str) -> ProgressBar {
        let bar = if std::io::stderr().is_terminal() { ProgressBar::new(len) } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template(&format!("{{spinner}} {what} {{pos}}/{{len}} [{{bar:30}}] {{elapsed}}"))
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar
    }

    fn new() -> Self {
        let bar = if std::io::stderr().is_terminal() { ProgressBar::new(0) } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template("{spinner} extracting {pos}/{len} chunks [{bar:30}] {elapsed} {msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        Self { bar }
    }
}

impl Progress for Bar {
    fn planned(&self, chunks: usize) {
        self.bar.set_length(chunks as u64);
    }
    fn chunk_done(&self, chunk: &ChunkSpec, ok: bool) {
        self.bar.inc(1);
        self.bar.set_message(if ok { chunk.label() } else { format!("FAILED {}", chunk.label()) });
    }
}

/// Writes what `write` produces to `path` (stdout without one), buffered.
fn write_output_with(path: Option<&Path>, write: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    match path {
        Some(p) => {
            let file = std::fs::File::create(p).with_context(|| format!("writing {}", p.display()))?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
            write(&mut out)
                .and_then(|()| out.flush().map_err(Into::into))
                .with_context(|| format!("writing {}", p.display()))
        }
        None => {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            write(&mut out).and_then(|()| out.flush().map_err(Into::into)).context("writing to stdout")
        }
    }
}

fn write_output(path: Option<&Path>, text: &str) -> Result<()> {
    match path {
        Some(p) => std::fs::write(p, text).with_context(|| format!("writing {}", p.display())),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).and_then(|()| out.flush()).context("writing to stdout")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_name_with_line_breaks_stays_inside_the_generated_header() {
        let target = TargetId::new("db:5432/x\nroles: { evil: { superuser: true } }\r\u{2028}# é \"q\"").unwrap();
        let header = generated_header(&target, "ab12");
        assert_eq!(header.lines().count(), 2, "{header}");
        assert!(header.lines().all(|l| l.starts_with("# ")), "{header}");
        assert!(header.contains(r#"x\nroles: { evil: { superuser: true } }\r\u{2028}# é "q""#), "{header}");
        let manifest: serde_json::Value = serde_saphyr::from_str(&format!("{header}version: 1\n")).unwrap();
        assert_eq!(manifest, serde_json::json!({ "version": 1 }), "the header is a comment, nothing more");
    }
}
