//! Ending access from the command line: `revoke` (due tickets or one ticket),
//! `watch` (the sweeper loop) and `apply` (drift remediation). Wiring only:
//! the plans come from core, the SQL and its transaction from shared/postgres
//! (from shared/mysql for a `mysql://` or `mariadb://` URL).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use futures::StreamExt;
use grantwarden_core::backoff::RetryPolicy;
use grantwarden_core::change::Change;
use grantwarden_core::model::RoleName;
use grantwarden_core::remediate::SkippedFindings;
use grantwarden_core::remediate::{Mode, remediate};
use grantwarden_core::remediation_flow::{OnTransient, RemediationRun, run_remediation};
use grantwarden_core::revocation::RevocationPlan;
use grantwarden_core::revoke::{
    ExecError, Executed, Held, PrivilegeExecutor, RevokeError, RevokeOptions, RevokeOutcome, SessionPolicy, due,
    revoke_ticket,
};
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::TicketStore;
use grantwarden_core::ticket::Trigger;
use grantwarden_local::LocalStore;
use grantwarden_postgres::session::{parse_config, target_from_config};
use grantwarden_postgres::{Executor, Timeouts};
use serde_json::json;

use crate::exceptions::StateArgs;

/// The database grantwarden changes, and how.
#[derive(Args, Clone)]
pub struct ExecArgs {
    /// PostgreSQL connection URL or key-value string of a role that may revoke
    /// (the object owners or a superuser; CREATEROLE for short-lived roles).
    #[arg(long, env = "GRANTWARDEN_DATABASE_URL", hide_env_values = true)]
    pub database: String,
    /// Target id the tickets name (default: host:port/dbname from the connection string).
    #[arg(long)]
    pub target: Option<String>,
    #[command(flatten)]
    pub state: StateArgs,
    /// lock_timeout of the revoking transaction, in milliseconds: never queue behind DDL.
    #[arg(long, default_value_t = 2000)]
    pub lock_timeout_ms: u64,
    /// statement_timeout, in seconds.
    #[arg(long, default_value_t = 60)]
    pub statement_timeout: u64,
    /// Attempts on a transient failure (connection, lock timeout, serialization).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub attempts: u32,
}

/// The revoker of the target's engine: PostgreSQL's executor, or MySQL's and MariaDB's.
enum Revoker {
    Postgres(Box<Executor>),
    Mysql(grantwarden_mysql::revoke::Revoker),
}

impl PrivilegeExecutor for Revoker {
    async fn revoke(
        &self,
        role: &RoleName,
        planner: &(dyn Fn(&Held) -> RevocationPlan + Sync),
        dry_run: bool,
        clock: &(dyn Fn() -> DateTime<Utc> + Sync),
    ) -> Result<Executed, ExecError> {
        match self {
            Revoker::Postgres(x) => x.revoke(role, planner, dry_run, clock).await,
            Revoker::Mysql(x) => x.revoke(role, planner, dry_run, clock).await,
        }
    }
}

impl ExecArgs {
    /// The revoker of `--database`'s engine (a `mysql://` or `mariadb://` URL: MySQL's).
    fn revoker(&self) -> Result<(Revoker, TargetId)> {
        if !crate::is_mysql(&self.database) {
            let (executor, target) = self.executor()?;
            return Ok((Revoker::Postgres(Box::new(executor)), target));
        }
        let opts = grantwarden_mysql::session::parse_url(&self.database).context("--database")?;
        let target = match &self.target {
            Some(t) => TargetId::new(t.clone()).context("--target must not be empty")?,
            None => grantwarden_mysql::session::target_from_opts(&opts),
        };
        let options = grantwarden_mysql::ScanOptions {
            target: Some(target.clone()),
            timeouts: Timeouts {
                statement: Duration::from_secs(self.statement_timeout.max(1)),
                lock: Duration::from_millis(self.lock_timeout_ms.max(1)),
                ..Timeouts::default()
            },
            retry: RetryPolicy { max_attempts: self.attempts, ..RetryPolicy::default() },
            ..Default::default()
        };
        Ok((Revoker::Mysql(grantwarden_mysql::revoke::Revoker::new(opts, options)), target))
    }

    fn executor(&self) -> Result<(Executor, TargetId)> {
        crate::postgres_only(&self.database)?;
        let timeouts = Timeouts {
            statement: Duration::from_secs(self.statement_timeout.max(1)),
            lock: Duration::from_millis(self.lock_timeout_ms.max(1)),
            ..Timeouts::default()
        };
        let config = parse_config(&self.database, &timeouts)?;
        let target = match &self.target {
            Some(t) => TargetId::new(t.clone()).context("--target must not be empty")?,
            None => target_from_config(&config),
        };
        let retry = RetryPolicy { max_attempts: self.attempts, ..RetryPolicy::default() };
        Ok((Executor::new(config, timeouts, retry), target))
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Sessions {
    /// End the role's sessions after every revocation.
    Always,
    /// Only for short-lived roles (standing roles that applications share keep theirs).
    ShortLived,
    /// Never.
    Never,
}

#[derive(Args, Clone)]
pub struct RevokeArgs {
    /// Revoke this ticket (it must be due: expired, or asked to end). Without it, `--due`.
    pub ticket: Option<String>,
    /// Revoke every ticket of the target that is due.
    #[arg(long, conflicts_with = "ticket")]
    pub due: bool,
    /// Print and audit the plan; change nothing in the database.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub exec: ExecArgs,
    /// Ending the role's open sessions after the commit.
    #[arg(long, value_enum, default_value_t = Sessions::Always)]
    pub sessions: Sessions,
    /// The target's baseline: a standing role keeps what it declares, even where
    /// the ticket's scope covers it (without it, all the ticket covers goes), and
    /// tables a migration's short-lived role created go to the owner it declares
    /// for their schema (without it, or without a declared owner, they are dropped).
    #[arg(long)]
    pub baseline: Option<PathBuf>,
    /// JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// Revocations in flight at once (each on its own connections).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub concurrency: u16,
}

impl RevokeArgs {
    /// How revocation behaves; `--baseline` is read in the format of the
    /// target's engine (a MySQL baseline for a MySQL or MariaDB server).
    fn options(&self, mysql: bool) -> Result<RevokeOptions> {
        let mut options = RevokeOptions {
            sessions: match self.sessions {
                Sessions::Always => SessionPolicy::Always,
                Sessions::ShortLived => SessionPolicy::ShortLived,
                Sessions::Never => SessionPolicy::Never,
            },
            ..RevokeOptions::default()
        };
        if let Some(path) = &self.baseline {
            if mysql {
                let baseline = crate::read_baseline(path, true, grantwarden_core::mysql_baseline::Baseline::from_yaml)?;
                options.mysql_baseline = Some(std::sync::Arc::new(baseline));
            } else {
                let baseline = crate::read_baseline(path, false, grantwarden_core::baseline::Baseline::from_yaml)?;
                options.baseline = Some(std::sync::Arc::new(baseline));
            }
        }
        Ok(options)
    }
}

#[derive(Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub revoke: RevokeArgs,
    /// Seconds between sweeps.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval: u64,
    /// Sweep once and stop (for cron).
    #[arg(long)]
    pub once: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ApplyMode {
    /// Print what converge would do; change nothing.
    Report,
    /// Revoke what is held and not wanted.
    RevokeUnauthorized,
    /// Also grant what is missing.
    Converge,
}

/// Revokes one ticket or every due ticket; exit 1 when any failed.
pub async fn run_revoke(args: RevokeArgs, at: Option<DateTime<Utc>>) -> Result<ExitCode> {
    let (executor, target) = args.exec.revoker()?;
    let store = args.exec.state.open()?;
    let ok = sweep(&store, &executor, &target, &args, Trigger::Operator, at).await?;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The sweeper loop: every interval, revoke what is due.
pub async fn run_watch(args: WatchArgs, at: Option<DateTime<Utc>>) -> Result<ExitCode> {
    let (executor, target) = args.revoke.exec.revoker()?;
    let store = args.revoke.exec.state.open()?;
    let mut revoke = args.revoke.clone();
    revoke.due = true;
    revoke.ticket = None;
    loop {
        let ok = sweep(&store, &executor, &target, &revoke, Trigger::Sweeper, at).await?;
        if args.once {
            return Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) });
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(args.interval)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
        }
    }
}

async fn sweep(
    store: &LocalStore,
    executor: &Revoker,
    target: &TargetId,
    args: &RevokeArgs,
    trigger: Trigger,
    at: Option<DateTime<Utc>>,
) -> Result<bool> {
    let clock = || at.unwrap_or_else(Utc::now);
    let options = args.options(matches!(executor, Revoker::Mysql(_)))?;
    let ids: Vec<String> = match &args.ticket {
        Some(id) => vec![id.clone()],
        None if args.due => {
            // first what a run that died between a ticket write and its journal left
            let finished = grantwarden_core::outbox::recover(store, target, clock()).await?;
            if finished.entries > 0 {
                eprintln!(
                    "journaled {} event(s) of {} ticket write(s) an earlier run left unfinished",
                    finished.appended, finished.entries
                );
            }
            let tickets = store.tickets(Some(target)).await?;
            // access requests nobody approved in time end unissued (nothing to revoke)
            for t in grantwarden_core::ticket_flow::expire_pending(store, &tickets, clock()).await? {
                eprintln!("{} expired: not approved within the registry's pending_ttl", t.id());
            }
            due(&tickets, clock()).into_iter().map(|t| t.id().to_owned()).collect()
        }
        None => bail!("name a ticket, or pass --due"),
    };
    let bar = crate::Bar::counting(ids.len() as u64, "revoking");
    let mut ok = true;
    let runs = futures::stream::iter(ids).map(|id| {
        let (options, clock) = (&options, &clock);
        async move {
            let outcome = revoke_ticket(store, executor, &id, trigger, options, args.dry_run, clock).await;
            (id, outcome)
        }
    });
    let mut done = runs.buffer_unordered(usize::from(args.concurrency));
    while let Some((id, outcome)) = done.next().await {
        bar.inc(1);
        let (line, failed) = describe(&id, outcome);
        ok &= !failed;
        bar.suspend(|| {
            if args.json {
                println!("{line}");
            } else {
                println!("{}", text(&line));
            }
        });
    }
    bar.finish_and_clear();
    Ok(ok)
}

/// One JSON line per ticket, and whether it failed.
fn describe(id: &str, outcome: Result<RevokeOutcome, RevokeError>) -> (serde_json::Value, bool) {
    match outcome {
        Ok(RevokeOutcome::Revoked { ticket, executed }) => {
            let r = ticket.revocation();
            (
                json!({ "ticket": id, "outcome": "revoked", "latency_ms": r.map(|r| r.latency_ms),
                        "kept": kept(&executed.plan), "sessions_terminated": executed.sessions_terminated,
                        "attempts": executed.attempts, "sql": executed.sql, "note": executed.plan.nothing_because }),
                false,
            )
        }
        Ok(RevokeOutcome::DryRun(executed)) => (
            json!({ "ticket": id, "outcome": "dry_run", "kept": kept(&executed.plan), "sql": executed.sql,
                    "note": executed.plan.nothing_because }),
            false,
        ),
        Ok(RevokeOutcome::NotDue(status)) => {
            (json!({ "ticket": id, "outcome": "not_due", "status": status.to_string() }), false)
        }
        Ok(RevokeOutcome::AlreadyEnded(status)) => {
            (json!({ "ticket": id, "outcome": "already_ended", "status": status.to_string() }), false)
        }
        Ok(RevokeOutcome::Failed { error, .. }) => (
            json!({ "ticket": id, "outcome": "revocation_failed", "error": error.message, "attempts": error.attempts }),
            true,
        ),
        Err(e) => (json!({ "ticket": id, "outcome": "error", "error": format!("{e:#}") }), true),
    }
}

/// What a plan leaves in place, of either engine: `{privilege, on, reason}`
/// (and the grant as the plan has it).
fn kept(plan: &RevocationPlan) -> Vec<serde_json::Value> {
    let pg = plan.kept.iter().map(|k| {
        json!({ "privilege": k.grant.privilege.keyword(), "on": k.grant.object.name.as_str(), "reason": k.reason,
                "grant": k.grant })
    });
    let mysql = plan.kept_mysql.iter().map(|k| {
        let privileges: Vec<String> = k.grant.privileges.iter().map(ToString::to_string).collect();
        let on = grantwarden_core::report::FindingObject::of_mysql_scope(&k.grant.scope).to_string();
        json!({ "privilege": privileges.join(", "), "on": on, "reason": k.reason, "grant": k.grant })
    });
    pg.chain(mysql).collect()
}

fn text(v: &serde_json::Value) -> String {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    let mut out = format!("{} {}", s("ticket"), s("outcome"));
    match s("outcome").as_str() {
        "revoked" => out.push_str(&format!(
            " ({} ms after the window ended, {} kept, {} session(s) ended)",
            v["latency_ms"],
            v["kept"].as_array().map_or(0, Vec::len),
            v["sessions_terminated"]
        )),
        "not_due" | "already_ended" => out.push_str(&format!(" (status {})", s("status"))),
        "revocation_failed" | "error" => out.push_str(&format!(": {}", s("error"))),
        _ => {}
    }
    if let Some(note) = v["note"].as_str() {
        out.push_str(&format!("\n  -- {note}"));
    }
    for k in v["kept"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n  -- kept {} on {}: {}",
            k["privilege"].as_str().unwrap_or_default(),
            k["on"].as_str().unwrap_or_default(),
            k["reason"].as_str().unwrap_or_default()
        ));
    }
    for stmt in v["sql"].as_array().into_iter().flatten() {
        let stmt = stmt.as_str().unwrap_or_default();
        out.push_str(&format!("\n  {stmt}{}", if stmt.starts_with("--") { "" } else { ";" }));
    }
    out
}

/// Plans the database against the baseline and turns the findings into
/// corrective SQL; runs it only with `--execute`. Excepted grants are never touched.
pub async fn run_apply(args: crate::ApplyArgs, now: DateTime<Utc>) -> Result<ExitCode> {
    let mysql = crate::is_mysql(&args.assess.scan.database);
    let report = crate::plan_report(&args.assess, now).await?;
    if !report.summary.complete {
        bail!("the scan is incomplete: nothing is applied from a partial view");
    }
    let mode = match args.mode {
        ApplyMode::Report => Mode::Report,
        ApplyMode::RevokeUnauthorized => Mode::RevokeUnauthorized,
        ApplyMode::Converge => Mode::Converge,
    };
    let plan = remediate(&report.findings, if mode == Mode::Report { Mode::Converge } else { mode });
    let exec = ExecArgs {
        database: args.assess.scan.database.clone(),
        target: args.assess.scan.target.clone(),
        state: StateArgs { state: args.assess.state.clone().unwrap_or_else(|| PathBuf::from(".grantwarden/state.db")) },
        lock_timeout_ms: 2000,
        statement_timeout: args.assess.scan.statement_timeout,
        attempts: 5,
    };
    let execute = args.execute && mode != Mode::Report;
    // The report may have been planned without the store's exceptions (no
    // --state, an unreadable registry): the tickets in force are read here
    // again, and a revoke one of them covers is held back. Without them nothing
    // is executed, since an excepted grant must never be touched.
    let store = exec.state.open().context("opening the state store (its tickets decide what is excepted)")?;
    let run = |target| RemediationRun {
        target,
        scan_id: &report.scan_id,
        snapshot_sha256: &report.snapshot_sha256,
        mode,
        changes: plan.changes.clone(),
        skipped: SkippedFindings::Listed(plan.skipped.clone()),
        dry_run: !execute,
        // run by hand: nobody delivers it again, a transient failure is a failure
        on_transient: OnTransient::Fail,
        actor: "grantwarden:apply",
    };
    let (outcome, target) = if mysql {
        let opts = grantwarden_mysql::session::parse_url(&exec.database).context("--database")?;
        let options = crate::mysql_scan_options(&args.assess.scan)?;
        let executor = grantwarden_mysql::apply::Executor::new(opts, options);
        (run_remediation(&store, &executor, run(&report.target), &|| now).await?, report.target.clone())
    } else {
        let (executor, target) = exec.executor()?;
        (run_remediation(&store, &executor, run(&target), &|| now).await?, target)
    };
    let (changes, held_back) = (outcome.changes, outcome.held_back);
    let applied = outcome.result.map_err(|e| anyhow::anyhow!("applying the remediation: {e}"))?;
    let verb = if execute { "applied" } else { "would run (dry run; --execute to apply)" };
    let mode_name = serde_json::to_value(mode)?.as_str().unwrap_or_default().to_owned();
    println!("-- remediation of {target}, mode {mode_name}: {} change(s) {verb}", changes.len());
    for c in &held_back {
        if let Change::Revoke { grant, .. } = c {
            println!(
                "-- held back: revoke {} on {} {} from {}: an active ticket covers it",
                grant.privilege,
                format!("{:?}", grant.object.class).to_lowercase(),
                grant.object,
                grant.grantee
            );
        }
    }
    for s in &plan.skipped {
        println!(
            "-- skipped {} {} {} on {}: {}",
            s.finding.kind.as_str(),
            s.finding.grantee,
            s.finding.privilege,
            s.finding.object,
            s.reason
        );
    }
    for s in &applied.skipped {
        println!("-- left out: {s}");
    }
    if !changes.is_empty() {
        for stmt in &applied.sql {
            println!("{stmt};");
        }
    }
    Ok(ExitCode::SUCCESS)
}
