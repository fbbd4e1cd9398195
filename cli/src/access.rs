//! Just-in-time access from the command line: `request` (route an access
//! request; an auto-approved one is issued at once with `--database`),
//! `access issue` (the credential of an approved ticket, shown once) and
//! `incident` (an incident webhook body: break-glass needs an open one).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use grantwarden_core::access::{AccessOutcome, is_issued, parse_request, record_issued, request_access};
use grantwarden_core::backoff::RetryPolicy;
use grantwarden_core::identity::Actor;
use grantwarden_core::incident::{IncidentStore, parse_incident};
use grantwarden_core::store::TicketStore;
use grantwarden_core::ticket::{Ticket, TicketStatus};
use grantwarden_core::ticket_flow::{Renewed, renew_break_glass};
use grantwarden_local::LocalStore;
use grantwarden_postgres::session::parse_config;
use grantwarden_postgres::{Executor, Timeouts};
use serde_json::json;

use crate::exceptions::{StateArgs, load_registry};

#[derive(Args)]
pub struct RequestArgs {
    /// The access request (JSON): id, identity, target, path, scope, duration, justification[, incident_id].
    pub input: String,
    /// Policy registry (its `access` section decides).
    #[arg(long, env = "GRANTWARDEN_POLICY")]
    pub policy: PathBuf,
    #[command(flatten)]
    pub state: StateArgs,
    /// Issue the credential at once when the request needs no approval.
    #[arg(long, env = "GRANTWARDEN_DATABASE_URL", hide_env_values = true)]
    pub database: Option<String>,
}

#[derive(Subcommand)]
pub enum AccessCommand {
    /// Renew a break-glass ticket while its incident stays open (a new window from now).
    Renew {
        /// Ticket id.
        id: String,
        #[command(flatten)]
        state: StateArgs,
        /// Policy registry (the break-glass window).
        #[arg(long, env = "GRANTWARDEN_POLICY")]
        policy: PathBuf,
        /// The database (the role's VALID UNTIL moves with the window).
        #[arg(long, env = "GRANTWARDEN_DATABASE_URL", hide_env_values = true)]
        database: String,
        /// Who renews (journaled as the renewal's actor).
        #[arg(long)]
        by: String,
    },
    /// Issue the credential of an active access ticket (once; the password is shown only now).
    Issue {
        /// Ticket id.
        id: String,
        #[command(flatten)]
        state: StateArgs,
        /// The database, as a role that may create roles and grant on the scope.
        #[arg(long, env = "GRANTWARDEN_DATABASE_URL", hide_env_values = true)]
        database: String,
    },
}

#[derive(Args)]
pub struct IncidentArgs {
    /// An incident webhook body (PagerDuty v3 or Opsgenie JSON); `-` for standard input.
    pub input: String,
    #[command(flatten)]
    pub state: StateArgs,
}

pub async fn run_request(args: RequestArgs, now: DateTime<Utc>) -> Result<ExitCode> {
    let body = crate::exceptions::read_input(&args.input)?;
    let request = match parse_request(&body) {
        Ok(r) => r,
        Err(grantwarden_core::error::FieldError { field, reason }) => {
            println!("{}", json!({ "outcome": "invalid", "field": field, "error": reason }));
            return Ok(ExitCode::from(1));
        }
    };
    let registry = load_registry(&args.policy).map_err(anyhow::Error::msg).context("the policy registry")?;
    let store = args.state.open()?;
    grantwarden_core::audit::note_registry(&store, &registry, "grantwarden", now).await?;
    if request.identity.trim().is_empty() {
        println!(
            "{}",
            json!({ "outcome": "invalid", "field": "identity", "error": "name the person the access is for" })
        );
        return Ok(ExitCode::from(1));
    }
    // the local operator speaks for the person the file names
    let requester = Actor::operator(&request.identity);
    let (ticket, created) = match request_access(&store, &request, &requester, &registry, now).await? {
        AccessOutcome::Created(t) => (t, true),
        AccessOutcome::Existing(t) => (t, false),
        AccessOutcome::Conflict(t) => {
            println!(
                "{}",
                json!({ "outcome": "conflict", "ticket": t.id(), "error": "this request id is known with a different request" })
            );
            return Ok(ExitCode::from(1));
        }
        AccessOutcome::Refused { category, refusal } => {
            println!("{}", json!({ "outcome": "refused", "category": category, "reason": refusal.to_string() }));
            return Ok(ExitCode::from(1));
        }
        AccessOutcome::Unroutable(reason) => {
            println!("{}", json!({ "outcome": "unroutable", "reason": reason }));
            return Ok(ExitCode::from(1));
        }
    };
    let review = ticket.access().is_some_and(|a| a.review_required);
    if review && created {
        eprintln!(
            "ALERT: break-glass access {} during incident {}; a review is required",
            ticket.id(),
            request.incident_id.as_deref().unwrap_or("")
        );
    }
    match (&args.database, ticket.status()) {
        (Some(url), TicketStatus::Active) if !is_issued(&ticket) => {
            issue(&store, ticket, url, now).await?;
        }
        _ => println!(
            "{}",
            json!({ "outcome": if created { "created" } else { "existing" }, "ticket": ticket.id(),
                    "status": ticket.status().to_string(), "approvals_required": ticket.approvals_required(),
                    "role": ticket.request().role, "expires_at": ticket.expires_at() })
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// Issues the credential, records that it was (never the password), and prints it once.
async fn issue(store: &LocalStore, ticket: Ticket, url: &str, now: DateTime<Utc>) -> Result<()> {
    crate::postgres_only(url)?;
    let timeouts = Timeouts::default();
    let config = parse_config(url, &timeouts)?;
    let executor = Executor::new(config.clone(), timeouts, RetryPolicy::default());
    let credential = executor
        .activate(&ticket, &grantwarden_postgres::activate::new_password(), false)
        .await
        .map_err(|e| anyhow::anyhow!("issuing the credential: {e}"))?;
    let stored = record_issued(store, ticket.id(), &credential.role, &credential.sql, None, now).await?;
    let (host, port, dbname) = grantwarden_postgres::session::endpoint(&config);
    // the one place the password appears; it is not stored anywhere
    println!(
        "{}",
        json!({ "outcome": "issued", "ticket": stored.id(), "role": credential.role, "password": credential.password,
                "host": host, "port": port, "dbname": dbname, "valid_until": stored.expires_at(),
                "views_schema": stored.access().map(|a| a.views_schema.clone()),
                "left_out": credential.left_out })
    );
    Ok(())
}

pub async fn run_access(command: AccessCommand, now: DateTime<Utc>) -> Result<ExitCode> {
    match command {
        AccessCommand::Renew { id, state, policy, database, by } => {
            crate::postgres_only(&database)?;
            let store = state.open()?;
            let registry = load_registry(&policy).map_err(anyhow::Error::msg).context("the policy registry")?;
            let timeouts = Timeouts::default();
            let executor = Executor::new(parse_config(&database, &timeouts)?, timeouts, RetryPolicy::default());
            // recorded first, then the role follows: a failure here ends access early, never late
            let Renewed { ticket, until } =
                renew_break_glass(&store, &id, &Actor::operator(&by), &registry, now).await?;
            let change = grantwarden_core::change::Change::SetValidUntil {
                role: ticket.request().role.clone(),
                valid_until: until,
            };
            executor.apply(&[change], false).await.map_err(|e| anyhow::anyhow!("moving VALID UNTIL: {e}"))?;
            println!("{}", json!({ "outcome": "renewed", "ticket": id, "expires_at": until }));
            Ok(ExitCode::SUCCESS)
        }
        AccessCommand::Issue { id, state, database } => {
            // refused before anything is read: a MySQL credential cannot be issued yet
            crate::postgres_only(&database)?;
            let store = state.open()?;
            let Some(read) = store.ticket(&id).await? else { bail!("no ticket {id}") };
            let ticket = read.value;
            grantwarden_core::access::issuable(&ticket, now)?;
            issue(&store, ticket, &database, now).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub async fn run_incident(args: IncidentArgs, now: DateTime<Utc>) -> Result<ExitCode> {
    let body = crate::exceptions::read_input(&args.input)?;
    let update = match parse_incident(&body, now) {
        Ok(u) => u,
        Err(grantwarden_core::error::FieldError { field, reason }) => {
            println!("{}", json!({ "outcome": "invalid", "field": field, "error": reason }));
            return Ok(ExitCode::from(1));
        }
    };
    let store = args.state.open()?;
    store.record_incident(&update).await?;
    println!("{}", json!({ "outcome": "recorded", "incident": update }));
    Ok(ExitCode::SUCCESS)
}
