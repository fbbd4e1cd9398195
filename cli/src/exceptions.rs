//! Exception tickets from the command line: intake, tickets, simulate, and
//! what plan needs from the store. Wiring only: the rules live in core.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use grantwarden_core::assess::{assess, assess_without_store};
use grantwarden_core::baseline::Baseline;
use grantwarden_core::identity::{Actor, Voucher};
use grantwarden_core::intake::{Outcome, intake, record, untagged_finding};
use grantwarden_core::normalize::{self, NormalizeError};
use grantwarden_core::policy::PolicyRegistry;
use grantwarden_core::report::Report;
use grantwarden_core::request::GrantRequest;
use grantwarden_core::scoring::ScoringConfig;
use grantwarden_core::snapshot::{Snapshot, TargetId};
use grantwarden_core::store::TicketStore;
use grantwarden_core::ticket::{Decision, Ticket, route};
use grantwarden_core::ticket_flow::{self, TicketFlowError};
use grantwarden_local::LocalStore;
use serde_json::json;

/// Where the embedded store lives.
#[derive(Args, Clone)]
pub struct StateArgs {
    /// The local state file (SQLite).
    #[arg(long, env = "GRANTWARDEN_STATE", default_value = ".grantwarden/state.db")]
    pub state: PathBuf,
}

impl StateArgs {
    pub fn open(&self) -> Result<LocalStore> {
        LocalStore::open(&self.state).with_context(|| format!("opening the state store {}", self.state.display()))
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum InputFormat {
    /// Decide from the content.
    Auto,
    /// The grant webhook JSON.
    Webhook,
    /// The generic JSON payload.
    Generic,
    /// pgaudit log lines.
    Pgaudit,
}

#[derive(Args)]
pub struct IntakeArgs {
    /// A webhook or generic JSON body, or a pgaudit log; `-` for standard input.
    pub input: String,
    /// Policy registry: a YAML file or a directory of them.
    #[arg(long, env = "GRANTWARDEN_POLICY")]
    pub policy: PathBuf,
    #[command(flatten)]
    pub state: StateArgs,
    /// Input format.
    #[arg(long, value_enum, default_value_t = InputFormat::Auto)]
    pub format: InputFormat,
    /// Target of pgaudit lines (they do not name one).
    #[arg(long)]
    pub target: Option<String>,
    /// Known targets; a request for another is untagged. Default: any.
    #[arg(long, value_delimiter = ',')]
    pub known_targets: Vec<String>,
}

#[derive(Subcommand)]
pub enum TicketsCommand {
    /// Every ticket, or those of one target.
    List {
        #[command(flatten)]
        state: StateArgs,
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One ticket with its whole history (JSON).
    Show {
        /// Ticket id.
        id: String,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Ask for a ticket to end now: it becomes revoke_requested, and `grantwarden revoke` (or `watch`) revokes it.
    Revoke {
        /// Ticket id.
        id: String,
        /// Who asks.
        #[arg(long)]
        by: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        state: StateArgs,
    },
    /// Approve a pending ticket.
    Approve {
        /// Ticket id.
        id: String,
        /// Who approves (never the requester; each approver counts once).
        #[arg(long)]
        by: String,
        #[command(flatten)]
        state: StateArgs,
    },
}

#[derive(Args)]
pub struct SimulateArgs {
    /// A pgaudit log to replay.
    #[arg(long)]
    pub audit_log: PathBuf,
    /// Policy registry: a YAML file or a directory of them.
    #[arg(long)]
    pub policy: PathBuf,
    /// Target the log belongs to.
    #[arg(long)]
    pub target: String,
    /// JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Reads a registry from a file or every `*.yaml`/`*.yml` of a directory.
pub fn load_registry(path: &Path) -> Result<PolicyRegistry, String> {
    let mut files = Vec::new();
    if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
        for entry in entries {
            let p = entry.map_err(|e| format!("{}: {e}", path.display()))?.path();
            if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
                let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
                files.push((p.display().to_string(), text));
            }
        }
    } else {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        files.push((path.display().to_string(), text));
    }
    PolicyRegistry::load(&files).map_err(|e| e.to_string())
}

pub fn read_input(input: &str) -> Result<Vec<u8>> {
    if input == "-" {
        let mut buf = Vec::new();
        std::io::stdin().read_to_end(&mut buf).context("reading standard input")?;
        Ok(buf)
    } else {
        std::fs::read(input).with_context(|| format!("reading {input}"))
    }
}

/// Normalizes one input into requests (a pgaudit log gives one per GRANT line).
fn normalize_input(
    body: &[u8],
    format: InputFormat,
    ctx: &normalize::Context,
) -> Vec<Result<GrantRequest, NormalizeError>> {
    let format = match format {
        InputFormat::Auto => match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(v) if v.get("delivery_id").is_some() => InputFormat::Webhook,
            Ok(v) if v.get("system").is_some() => InputFormat::Generic,
            Ok(_) => InputFormat::Webhook,
            Err(_) if String::from_utf8_lossy(body).contains("AUDIT: ") => InputFormat::Pgaudit,
            Err(_) => InputFormat::Webhook,
        },
        f => f,
    };
    match format {
        InputFormat::Generic => vec![normalize::from_generic(body, ctx)],
        InputFormat::Pgaudit => {
            let text = String::from_utf8_lossy(body);
            let mut out = Vec::new();
            for (i, line) in text.lines().enumerate() {
                match normalize::from_pgaudit_line(line, i + 1, ctx) {
                    Ok(Some(requests)) => out.extend(requests.into_iter().map(Ok)),
                    Ok(None) => {}
                    Err(e) => out.push(Err(e)),
                }
            }
            out
        }
        _ => vec![normalize::from_webhook(body, ctx)],
    }
}

pub async fn run_intake(args: IntakeArgs, now: DateTime<Utc>) -> Result<ExitCode> {
    let body = read_input(&args.input)?;
    let store = args.state.open()?;
    let registry = load_registry(&args.policy);
    match &registry {
        Err(e) => eprintln!("error: policy registry: {e}; the input is recorded as untagged (fail secure)"),
        Ok(r) => {
            grantwarden_core::audit::note_registry(&store, r, "grantwarden", now).await?;
        }
    }
    let known: BTreeSet<TargetId> = args.known_targets.iter().filter_map(|t| TargetId::new(t.clone())).collect();
    let audit_target = args.target.as_ref().and_then(|t| TargetId::new(t.clone()));
    let ctx = normalize::Context { targets: &known, now, audit_target: audit_target.as_ref() };
    let scoring = ScoringConfig::standard();
    // where to file an untagged finding when the input is too broken to normalize
    let named_target = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("target").and_then(|t| t.as_str()).and_then(TargetId::new));
    let mut failed = false;
    for request in normalize_input(&body, args.format, &ctx) {
        let target = request
            .as_ref()
            .map(|r| r.target.clone())
            .ok()
            .or_else(|| named_target.clone())
            .or_else(|| audit_target.clone())
            .unwrap_or_else(|| TargetId::new("unknown").expect("not empty"));
        let outcome =
            intake(&store, registry.as_ref().map_err(String::clone), request, &Voucher::Operator, &scoring, now)
                .await?;
        let (line, ok) = match &outcome {
            Outcome::Created(t) => (json!({ "outcome": "created", "ticket": t }), true),
            Outcome::Existing(t) => (json!({ "outcome": "existing", "ticket": t }), true),
            Outcome::Conflict(t) => (
                json!({ "outcome": "conflict", "error": "this delivery id is known with a different payload", "ticket": t.id() }),
                false,
            ),
            Outcome::Refused { category, refusal, finding } => (
                json!({ "outcome": "refused", "category": category, "reason": refusal.to_string(), "finding": finding }),
                false,
            ),
            Outcome::Untagged(finding) => (json!({ "outcome": "untagged", "finding": finding }), false),
        };
        record(&store, &target, &outcome, now).await?;
        failed |= !ok;
        println!("{}", serde_json::to_string(&line)?);
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

pub async fn run_tickets(command: TicketsCommand, now: DateTime<Utc>) -> Result<ExitCode> {
    match command {
        TicketsCommand::List { state, target, json } => {
            let store = state.open()?;
            let target = target.and_then(TargetId::new);
            let tickets = store.tickets(target.as_ref()).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&tickets)?);
            } else {
                print!("{}", tickets_table(&tickets, now));
            }
        }
        TicketsCommand::Show { id, state } => {
            let store = state.open()?;
            let Some(t) = store.ticket(&id).await? else { bail!("no ticket {id}") };
            let mut value = serde_json::to_value(&t.value)?;
            value["effective_status"] = json!(t.value.status_at(now).to_string());
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        TicketsCommand::Revoke { id, by, reason, state } => {
            let store = state.open()?;
            let ticket = ticket_flow::request_revoke(&store, &id, &Actor::operator(&by), &reason, now).await?;
            println!("{} is revoke_requested; `grantwarden revoke {}` ends it", ticket.id(), ticket.id());
        }
        TicketsCommand::Approve { id, by, state } => {
            let store = state.open()?;
            let ticket = match ticket_flow::approve_ticket(&store, &id, &Actor::operator(&by), now).await {
                Err(TicketFlowError::Approval(e)) => {
                    return Err(anyhow::Error::new(e).context(format!("approving {id}")));
                }
                other => other?,
            };
            println!(
                "{} is {} ({}/{} approvals)",
                ticket.id(),
                ticket.status(),
                ticket.approvals().len(),
                ticket.approvals_required()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn tickets_table(tickets: &[Ticket], now: DateTime<Utc>) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "TICKET",
        "STATUS",
        "CATEGORY",
        "TARGET",
        "ROLE",
        "PRIVILEGES",
        "OBJECT",
        "EXPIRES",
        "APPROVALS",
        "REVOCATION",
    ]);
    for k in tickets {
        let r = &k.request();
        let object =
            [r.object.schema.as_deref(), r.object.name.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(".");
        t.add_row(vec![
            k.id().to_owned(),
            k.status_at(now).to_string(),
            k.category().to_owned(),
            r.target.to_string(),
            r.role.to_string(),
            r.privileges.iter().map(|p| p.keyword()).collect::<Vec<_>>().join(","),
            object,
            k.expires_at().to_rfc3339(),
            format!("{}/{}", k.approvals().len(), k.approvals_required()),
            match &k.revocation() {
                Some(r) if r.error.is_none() => format!("{} ms after the end ({})", r.latency_ms, r.trigger),
                Some(r) => format!("failed ({}): {}", r.trigger, r.error.as_deref().unwrap_or_default()),
                None => String::new(),
            },
        ]);
    }
    format!("{t}\n")
}

pub fn run_simulate(args: SimulateArgs, now: DateTime<Utc>) -> Result<ExitCode> {
    let registry = load_registry(&args.policy).map_err(|e| anyhow::anyhow!("policy registry: {e}"))?;
    let text = std::fs::read(&args.audit_log).with_context(|| format!("reading {}", args.audit_log.display()))?;
    let target = TargetId::new(args.target).context("--target must not be empty")?;
    let known = BTreeSet::new();
    let ctx = normalize::Context { targets: &known, now, audit_target: Some(&target) };
    let scoring = ScoringConfig::standard();
    // audit-log lines name no incident: a category that requires an open one refuses them
    let incidents = grantwarden_core::incident::KnownIncidents(Vec::new());
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for request in normalize_input(&text, InputFormat::Pgaudit, &ctx) {
        let (decision, line) = match request {
            Err(e) => {
                let f = untagged_finding(None, &e.to_string(), &scoring);
                ("untagged", json!({ "decision": "untagged", "reason": e.to_string(), "finding": f }))
            }
            Ok(r) => {
                let observed = r.observed_at;
                match route(&r, &registry, &incidents, observed) {
                    Decision::Ticket(t) => (
                        "ticket",
                        json!({ "decision": "ticket", "delivery_id": r.delivery_id, "category": t.category(), "tag": t.tag(), "status": t.status().to_string(), "registry": t.registry() }),
                    ),
                    Decision::Refused { category, refusal, registry } => (
                        "refused",
                        json!({ "decision": "refused", "delivery_id": r.delivery_id, "category": category, "reason": refusal.to_string(), "registry": registry }),
                    ),
                    Decision::Untagged { reason, registry } => {
                        let f = untagged_finding(Some(&r), &reason, &scoring);
                        (
                            "untagged",
                            json!({ "decision": "untagged", "delivery_id": r.delivery_id, "reason": reason, "registry": registry, "finding": f }),
                        )
                    }
                }
            }
        };
        *counts.entry(decision).or_default() += 1;
        if args.json {
            println!("{}", serde_json::to_string(&line)?);
        } else {
            let id = line["delivery_id"].as_str().unwrap_or("-");
            let why = line["reason"].as_str().or(line["category"].as_str()).unwrap_or("");
            println!("{id:<14} {decision:<9} {why}");
        }
    }
    eprintln!(
        "simulated under registry {}: {} (nothing was written)",
        registry.id,
        counts.iter().map(|(k, v)| format!("{v} {k}")).collect::<Vec<_>>().join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// The plan report with the store's exceptions laid over it: tickets of the
/// target, its open untagged findings, findings recorded with their age.
/// Fail secure: when the store cannot be opened or the registry cannot be
/// read, no exception is applied and an untagged finding says why.
pub async fn report_with_state(
    state: &Path,
    policy: Option<&Path>,
    baseline: &Baseline,
    snapshot: &Snapshot,
    scoring: &ScoringConfig,
    now: DateTime<Utc>,
) -> Result<Report> {
    let store = match LocalStore::open(state) {
        Ok(store) => store,
        Err(e) => {
            eprintln!("error: {e}; no exception is applied");
            return Ok(assess_without_store(baseline, snapshot, scoring, &e, now));
        }
    };
    let registry = registry_of(policy);
    let registry = registry.as_ref().map(|r| r.as_ref().map_err(String::clone));
    Ok(assess(&store, baseline, snapshot, scoring, registry, now).await?)
}

/// The registry `--policy` names, if any; one that cannot be loaded is said
/// on stderr, and the assessment then applies no exception (fail secure).
pub fn registry_of(policy: Option<&Path>) -> Option<Result<PolicyRegistry, String>> {
    let registry = policy.map(load_registry);
    if let Some(Err(why)) = &registry {
        eprintln!("error: policy registry: {why}; no exception is applied");
    }
    registry
}
