//! `grantwarden report sensitive-reads|exports|migration|data-changes`: the
//! auditors' questions of query events (`grantwarden_core::query_reports`),
//! rendered in the report formats. Each names the registry and the chain
//! heads it was built from, like every report.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::Subcommand;
use grantwarden_core::compliance::Window;
use grantwarden_core::queries::{ExportKind, QueryFilter, QueryStore};
use grantwarden_core::query_reports::{self, DESTRUCTIVE, MigrationCheck, Step, Tally};
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::TicketStore;
use serde_json::json;

use crate::exceptions::{StateArgs, load_registry};
use crate::report::{Doc, ReportFormat, Section, WindowArgs, basis, basis_lines, last_registry, open, window_text};

#[derive(Subcommand)]
pub enum QueryReport {
    /// Who read the registry's sensitive tables (`queries.sensitive`), by person, ticket and table.
    SensitiveReads {
        #[command(flatten)]
        state: StateArgs,
        /// Policy registry (its `queries.sensitive` tables).
        #[arg(long, env = "GRANTWARDEN_POLICY")]
        policy: PathBuf,
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
        #[command(flatten)]
        window: WindowArgs,
        #[arg(long, value_enum, default_value_t = ReportFormat::Markdown)]
        format: ReportFormat,
    },
    /// Exports: COPY TO, a read past `queries.export_rows` rows, a session paging past it.
    Exports {
        #[command(flatten)]
        state: StateArgs,
        /// Policy registry (its `queries.export_rows`; default 10000 without it).
        #[arg(long, env = "GRANTWARDEN_POLICY")]
        policy: Option<PathBuf>,
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
        #[command(flatten)]
        window: WindowArgs,
        #[arg(long, value_enum, default_value_t = ReportFormat::Markdown)]
        format: ReportFormat,
    },
    /// A migration ticket's statements against its approved script (exit 0 as approved, 2 not).
    Migration {
        /// The ticket.
        #[arg(long)]
        ticket: String,
        /// The script, when the request named it by its sha256 only (it must have that sha256).
        #[arg(long)]
        script: Option<PathBuf>,
        #[command(flatten)]
        state: StateArgs,
        #[arg(long, value_enum, default_value_t = ReportFormat::Markdown)]
        format: ReportFormat,
    },
    /// DELETE, UPDATE and TRUNCATE by person, command and table (`--command` for others).
    DataChanges {
        #[command(flatten)]
        state: StateArgs,
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
        /// Commands as pgaudit names them (`INSERT`, `TRUNCATE TABLE`, ...); default DELETE, UPDATE, TRUNCATE TABLE.
        #[arg(long, value_delimiter = ',')]
        command: Vec<String>,
        #[command(flatten)]
        window: WindowArgs,
        #[arg(long, value_enum, default_value_t = ReportFormat::Markdown)]
        format: ReportFormat,
    },
}

fn filter(target: Option<String>, window: &Window) -> Result<QueryFilter> {
    Ok(QueryFilter {
        target: target.map(|t| TargetId::new(t).context("--target must not be empty")).transpose()?,
        from: window.from,
        to: window.to,
        ..QueryFilter::default()
    })
}

/// Statements, rows, first and last.
fn tally_cells(t: &Tally) -> [String; 4] {
    [t.statements.to_string(), t.rows.to_string(), t.first.to_rfc3339(), t.last.to_rfc3339()]
}

fn ticket_cell(t: &Option<String>) -> String {
    t.clone().unwrap_or_else(|| "-".into())
}

pub async fn run(report: QueryReport, now: DateTime<Utc>) -> Result<ExitCode> {
    match report {
        QueryReport::SensitiveReads { state, policy, target, window, format } => {
            let store = open(&state)?;
            let registry = load_registry(&policy).map_err(anyhow::Error::msg)?;
            let window = window.window();
            let events = store.query_events(&filter(target, &window)?).await?;
            let reads = query_reports::sensitive_reads(&events, &registry.queries);
            let basis = basis(Some(&store), Some(registry.id.version.clone()), now).await?;
            let tables: Vec<&str> = registry.queries.sensitive.iter().map(|(g, _)| g.as_str()).collect();
            let rows = reads
                .iter()
                .map(|r| {
                    vec![r.person.clone(), ticket_cell(&r.ticket), r.object.clone()]
                        .into_iter()
                        .chain(tally_cells(&r.tally))
                        .collect()
                })
                .collect();
            let doc = Doc {
                title: "Reads of sensitive tables".into(),
                basis: basis_lines(&basis),
                sections: vec![
                    Section::new("Scope")
                        .line(format!("Window: {}.", window_text(&window)))
                        .line(format!(
                            "Sensitive tables (registry `queries.sensitive`): {}.",
                            if tables.is_empty() { "none listed".to_owned() } else { tables.join(", ") }
                        ))
                        .line(format!("Query events read: {}.", events.len())),
                    Section::new("Who read them")
                        .table(vec!["Person", "Ticket", "Table", "Statements", "Rows", "First", "Last"], rows),
                ],
            };
            print!(
                "{}",
                doc.render(format, || crate::report::json(serde_json::to_string_pretty(
                    &json!({ "window": window, "sensitive": tables, "reads": reads, "basis": basis })
                )))
            );
            Ok(ExitCode::SUCCESS)
        }
        QueryReport::Exports { state, policy, target, window, format } => {
            let store = open(&state)?;
            let registry = policy.as_deref().map(load_registry).transpose().map_err(anyhow::Error::msg)?;
            let threshold =
                registry.as_ref().map(|r| r.queries.export_rows).unwrap_or(grantwarden_core::query_policy::EXPORT_ROWS);
            let window = window.window();
            let events = store.query_events(&filter(target, &window)?).await?;
            let exports = query_reports::exports(&events, threshold);
            let version = match &registry {
                Some(r) => Some(r.id.version.clone()),
                None => last_registry(&store).await?,
            };
            let basis = basis(Some(&store), version, now).await?;
            let rows = exports
                .iter()
                .map(|x| {
                    let why = match &x.kind {
                        ExportKind::CopyTo { copy } => format!("COPY {copy}"),
                        ExportKind::LargeResult { rows } => format!("{rows} rows in one read"),
                        ExportKind::BulkRead { statements, rows } => {
                            format!("{rows} rows in {statements} reads of one session")
                        }
                    };
                    vec![
                        x.event.at.to_rfc3339(),
                        x.event.person.clone(),
                        ticket_cell(&x.event.ticket),
                        x.event.object.clone().unwrap_or_else(|| "-".into()),
                        why,
                        x.event.statement.clone(),
                    ]
                })
                .collect();
            let doc = Doc {
                title: "Exports".into(),
                basis: basis_lines(&basis),
                sections: vec![
                    Section::new("Scope")
                        .line(format!("Window: {}.", window_text(&window)))
                        .line(format!(
                            "An export: COPY ... TO, a read of more than {threshold} rows, or one session's reads of a table adding up past it."
                        ))
                        .line(format!("Query events read: {}.", events.len())),
                    Section::new(&format!("Exports ({})", exports.len()))
                        .table(vec!["At", "Person", "Ticket", "Table", "Why", "Statement"], rows),
                ],
            };
            print!(
                "{}",
                doc.render(format, || crate::report::json(serde_json::to_string_pretty(
                    &json!({ "window": window, "export_rows": threshold, "exports": exports, "basis": basis })
                )))
            );
            Ok(ExitCode::SUCCESS)
        }
        QueryReport::Migration { ticket, script, state, format } => {
            let store = open(&state)?;
            let Some(stored) = store.ticket(&ticket).await? else {
                bail!("no ticket {ticket} in {}", state.state.display())
            };
            let t = stored.value;
            let Some(approved) = t.access().and_then(|a| a.script.clone()) else {
                bail!("ticket {ticket} names no approved script (its request had no `script`)")
            };
            let statements = match (&script, approved.statements.is_empty()) {
                (Some(path), _) => {
                    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
                    let statements = grantwarden_core::statement::split_script(&text);
                    let sha = grantwarden_core::statement::script_sha256(&statements);
                    if sha != approved.sha256 {
                        bail!(
                            "{}: its sha256 is {sha}, not the approved script's {} (ticket {ticket})",
                            path.display(),
                            approved.sha256
                        );
                    }
                    statements
                }
                (None, false) => approved.statements.clone(),
                (None, true) => {
                    bail!("ticket {ticket}'s request named its script by sha256 only: give it with --script")
                }
            };
            let events = store
                .query_events(&QueryFilter {
                    target: Some(t.request().target.clone()),
                    ticket: Some(ticket.clone()),
                    ..QueryFilter::default()
                })
                .await?;
            let check = query_reports::check_migration(&ticket, &events, &statements);
            let basis = basis(Some(&store), last_registry(&store).await?, now).await?;
            print!("{}", render_migration(&check, &t.request().principal, &basis, format));
            Ok(if check.as_approved() { ExitCode::SUCCESS } else { ExitCode::from(2) })
        }
        QueryReport::DataChanges { state, target, command, window, format } => {
            let store = open(&state)?;
            let window = window.window();
            let events = store.query_events(&filter(target, &window)?).await?;
            let commands: Vec<String> = if command.is_empty() {
                DESTRUCTIVE.iter().map(|c| c.to_string()).collect()
            } else {
                command.iter().map(|c| c.to_ascii_uppercase()).collect()
            };
            let names: Vec<&str> = commands.iter().map(String::as_str).collect();
            let changes = query_reports::data_changes(&events, &names);
            let basis = basis(Some(&store), last_registry(&store).await?, now).await?;
            let rows = changes
                .iter()
                .map(|c| {
                    vec![
                        c.person.clone(),
                        c.command.clone(),
                        c.object.clone().unwrap_or_else(|| "-".into()),
                        if c.tickets.is_empty() {
                            "-".into()
                        } else {
                            c.tickets.iter().cloned().collect::<Vec<_>>().join(", ")
                        },
                    ]
                    .into_iter()
                    .chain(tally_cells(&c.tally))
                    .collect()
                })
                .collect();
            let doc = Doc {
                title: format!("{} by person", names.join(", ")),
                basis: basis_lines(&basis),
                sections: vec![
                    Section::new("Scope")
                        .line(format!("Window: {}.", window_text(&window)))
                        .line(format!("Query events read: {}.", events.len())),
                    Section::new("Changes").table(
                        vec!["Person", "Command", "Table", "Tickets", "Statements", "Rows", "First", "Last"],
                        rows,
                    ),
                ],
            };
            print!(
                "{}",
                doc.render(format, || crate::report::json(serde_json::to_string_pretty(
                    &json!({ "window": window, "commands": names, "changes": changes, "basis": basis })
                )))
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn steps(title: &str, steps: &[Step]) -> Section {
    Section::new(&format!("{title} ({})", steps.len())).table(
        vec!["Position", "At", "Statement"],
        steps
            .iter()
            .map(|s| {
                vec![
                    s.position.to_string(),
                    s.at.map(|a| a.to_rfc3339()).unwrap_or_else(|| "-".into()),
                    s.statement.clone(),
                ]
            })
            .collect(),
    )
}

fn render_migration(
    c: &MigrationCheck,
    person: &str,
    basis: &grantwarden_core::compliance::Basis,
    format: ReportFormat,
) -> String {
    let verdict = if c.as_approved() {
        "The credential ran exactly the approved script, in its order.".to_owned()
    } else {
        format!(
            "Not as approved: {} extra, {} missing, {} out of order.",
            c.extra.len(),
            c.missing.len(),
            c.reordered.len()
        )
    };
    let doc = Doc {
        title: format!("Migration of ticket {}", c.ticket),
        basis: basis_lines(basis),
        sections: vec![
            Section::new("Summary")
                .line(format!("Requested by {person}; approved script sha256 {}.", c.script_sha256))
                .line(format!(
                    "{} statements approved, {} run, {} run in the approved order.",
                    c.script_statements, c.executed, c.matched
                ))
                .line(verdict),
            steps("Run and not in the script", &c.extra),
            steps("In the script and never run", &c.missing),
            steps("Run out of the script's order", &c.reordered),
        ],
    };
    doc.render(format, || {
        crate::report::json(serde_json::to_string_pretty(
            &json!({ "check": c, "as_approved": c.as_approved(), "basis": basis }),
        ))
    })
}
