//! `grantwarden report`: compliance evidence from the local store (and, for
//! coverage, evidence and the dashboard, a scan of the database). The figures
//! come from `grantwarden_core::compliance` and `dashboard`; this file reads
//! the inputs and renders JSON, Markdown or HTML.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use grantwarden_core::audit::event::RegistryLoaded;
use grantwarden_core::audit::{AuditEvent, AuditJournal};
use grantwarden_core::compliance::{AccessChanges, Basis, CoverageReport, Evidence, RemediationReport, Window};
use grantwarden_core::dashboard;
use grantwarden_core::html::escape;
use grantwarden_core::metrics::{Durations, hours, label};
use grantwarden_core::queries::QueryStore;
use grantwarden_core::report::Report;
use grantwarden_core::scoring::ScoringConfig;
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::{FindingStore, TicketStore};
use grantwarden_local::LocalStore;

use crate::AssessArgs;
use crate::exceptions::{StateArgs, load_registry};

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ReportFormat {
    Json,
    Markdown,
    Html,
}

#[derive(Args)]
pub struct WindowArgs {
    /// From this time (RFC 3339), inclusive.
    #[arg(long)]
    pub(crate) from: Option<DateTime<Utc>>,
    /// Up to this time, exclusive.
    #[arg(long)]
    pub(crate) to: Option<DateTime<Utc>>,
}

impl WindowArgs {
    pub(crate) fn window(&self) -> Window {
        Window { from: self.from, to: self.to }
    }
}

#[derive(Subcommand)]
pub enum ReportCommand {
    /// Policy coverage: privileges held that the baseline declares, that exceptions cover, that are drift
    /// (exit 0 every target met, 2 not, 1 error).
    Coverage {
        #[command(flatten)]
        assess: AssessArgs,
        #[arg(long, value_enum, default_value_t = ReportFormat::Markdown)]
        format: ReportFormat,
    },
    /// Access changes: tickets requested, granted, expired, revoked; approval times, auto-revoked share.
    Changes {
        #[command(flatten)]
        state: StateArgs,
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
        #[command(flatten)]
        window: WindowArgs,
        #[arg(long, value_enum, default_value_t = ReportFormat::Markdown)]
        format: ReportFormat,
    },
    /// Drift remediation: findings opened and resolved (by what), open items with age, time to resolution.
    Remediation {
        #[command(flatten)]
        state: StateArgs,
        /// The target.
        #[arg(long)]
        target: String,
        #[command(flatten)]
        window: WindowArgs,
        #[arg(long, value_enum, default_value_t = ReportFormat::Markdown)]
        format: ReportFormat,
    },
    /// One person's evidence: roles, the policy and exceptions that apply, actual grants, the audit trail.
    Evidence {
        /// The person, as tickets and the journal name them (e.g. alice@example.com).
        #[arg(long)]
        user: String,
        #[command(flatten)]
        state: StateArgs,
        /// Scan this database for the privileges their roles hold now.
        #[arg(long, env = "GRANTWARDEN_DATABASE_URL", hide_env_values = true)]
        database: Option<String>,
        /// Target id of that database (as the tickets name it).
        #[arg(long)]
        target: Option<String>,
        /// Policy registry (the categories that apply).
        #[arg(long, env = "GRANTWARDEN_POLICY")]
        policy: Option<PathBuf>,
        #[command(flatten)]
        window: WindowArgs,
        #[arg(long, value_enum, default_value_t = ReportFormat::Markdown)]
        format: ReportFormat,
    },
    #[command(flatten)]
    Queries(crate::query_report::QueryReport),
    /// The HTML dashboard (one self-contained file with inline SVG charts).
    Dashboard {
        #[command(flatten)]
        assess: AssessArgs,
    },
}

pub async fn run(command: ReportCommand, now: DateTime<Utc>) -> Result<ExitCode> {
    match command {
        ReportCommand::Coverage { assess: plan, format } => {
            let (report, store) = scanned(&plan, now).await?;
            let scoring = scoring(&plan)?;
            let basis = basis(store.as_ref(), registry_version(&plan, store.as_ref()).await?, now).await?;
            let coverage = CoverageReport::new(&report, &scoring.coverage, basis);
            write(&plan, &render_coverage(&coverage, format))?;
            Ok(if coverage.meets_targets() { ExitCode::SUCCESS } else { ExitCode::from(2) })
        }
        ReportCommand::Changes { state, target, window, format } => {
            let store = open(&state)?;
            let target = match target {
                Some(t) => Some(TargetId::new(t).context("--target must not be empty")?),
                None => None,
            };
            let tickets = store.tickets(target.as_ref()).await?;
            let basis = basis(Some(&store), last_registry(&store).await?, now).await?;
            let changes = AccessChanges::new(&tickets, window.window(), now, basis);
            print!("{}", render_changes(&changes, format));
            Ok(ExitCode::SUCCESS)
        }
        ReportCommand::Remediation { state, target, window, format } => {
            let store = open(&state)?;
            let target = TargetId::new(target).context("--target must not be empty")?;
            let events = store.events(target.as_str()).await?;
            let open_findings = store.open_with_age(&target).await?;
            let basis = basis(Some(&store), last_registry(&store).await?, now).await?;
            let report = RemediationReport::new(&events, &open_findings, window.window(), now, basis);
            print!("{}", render_remediation(target.as_str(), &report, format));
            Ok(ExitCode::SUCCESS)
        }
        ReportCommand::Evidence { user, state, database, target, policy, window, format } => {
            let store = open(&state)?;
            let registry = policy.as_deref().map(load_registry).transpose().map_err(anyhow::Error::msg)?;
            let tickets = store.tickets(None).await?;
            let mut held = BTreeMap::new();
            if let Some(url) = database {
                let snapshot = crate::scan_url(&url, target.clone()).await?;
                held.insert(snapshot.target.to_string(), snapshot.state.grants.iter().map(|g| g.to_grant()).collect());
            }
            let events = all_events(&store).await?;
            let version = match &registry {
                Some(r) => Some(r.id.version.clone()),
                None => last_registry(&store).await?,
            };
            let basis = basis(Some(&store), version, now).await?;
            let w = window.window();
            let queries = store
                .query_events(&grantwarden_core::queries::QueryFilter {
                    person: Some(user.clone()),
                    from: w.from,
                    to: w.to,
                    ..Default::default()
                })
                .await?;
            let export_rows =
                registry.as_ref().map_or(grantwarden_core::query_policy::EXPORT_ROWS, |r| r.queries.export_rows);
            let activity = grantwarden_core::query_reports::activity(&user, &queries, &tickets, export_rows);
            let evidence = Evidence::new(&user, &tickets, registry.as_ref(), &held, &events, w, now, basis);
            print!("{}", render_evidence(&evidence, &activity, format));
            Ok(ExitCode::SUCCESS)
        }
        ReportCommand::Queries(report) => crate::query_report::run(report, now).await,
        ReportCommand::Dashboard { assess: plan } => {
            let (report, store) = scanned(&plan, now).await?;
            let Some(store) = store else { bail!("the dashboard reads tickets and the journal: give --state") };
            let scoring = scoring(&plan)?;
            let version = registry_version(&plan, Some(&store)).await?;
            let page = dashboard_html(&store, &report, &scoring, version, now).await?;
            write(&plan, &page)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The dashboard of `report`'s target from the store's tickets and journal.
async fn dashboard_html(
    store: &LocalStore,
    report: &Report,
    scoring: &ScoringConfig,
    version: Option<String>,
    now: DateTime<Utc>,
) -> Result<String> {
    let basis = basis(Some(store), version, now).await?;
    let tickets = store.tickets(Some(&report.target)).await?;
    let events = store.events(report.target.as_str()).await?;
    let d = dashboard::build(report, tickets, &events, &scoring.coverage, basis, now);
    Ok(dashboard::render(&d))
}

pub(crate) fn open(state: &StateArgs) -> Result<LocalStore> {
    if !state.state.exists() {
        bail!("no state store at {} (--state, GRANTWARDEN_STATE)", state.state.display());
    }
    state.open()
}

fn scoring(plan: &AssessArgs) -> Result<ScoringConfig> {
    match &plan.scoring {
        Some(path) => {
            let label = path.display().to_string();
            let text = std::fs::read_to_string(path).with_context(|| format!("reading scoring config {label}"))?;
            Ok(ScoringConfig::from_yaml(&text, &label)?)
        }
        None => Ok(ScoringConfig::standard()),
    }
}

fn write(plan: &AssessArgs, text: &str) -> Result<()> {
    crate::write_output(plan.scan.output.as_deref(), text)
}

/// Scans and assesses (recording the findings when there is a store), and opens the store.
async fn scanned(plan: &AssessArgs, now: DateTime<Utc>) -> Result<(Report, Option<LocalStore>)> {
    let report = crate::plan_report(plan, now).await?;
    let store = match &plan.state {
        Some(path) => {
            Some(LocalStore::open(path).with_context(|| format!("opening the state store {}", path.display()))?)
        }
        None => None,
    };
    Ok((report, store))
}

/// The registry version a report names: the `--policy` given (which must load:
/// a report must not name a registry it did not read), else the journal's last.
async fn registry_version(plan: &AssessArgs, store: Option<&LocalStore>) -> Result<Option<String>> {
    if let Some(path) = &plan.policy {
        let r = load_registry(path).map_err(|e| anyhow::anyhow!("policy registry {}: {e}", path.display()))?;
        return Ok(Some(r.id.version.clone()));
    }
    Ok(match store {
        Some(s) => last_registry(s).await.ok().flatten(),
        None => None,
    })
}

/// The version of the registry last recorded on the journal.
pub(crate) async fn last_registry(store: &LocalStore) -> Result<Option<String>> {
    let events = store.events(grantwarden_core::audit::REGISTRY_CHAIN).await?;
    Ok(events.iter().rev().find_map(|e| e.detail_as::<RegistryLoaded>().ok()).map(|loaded| loaded.registry_version))
}

async fn all_events(store: &LocalStore) -> Result<Vec<AuditEvent>> {
    let mut out = Vec::new();
    for chain in store.chains().await? {
        out.extend(store.events(&chain).await?);
    }
    Ok(out)
}

pub(crate) async fn basis(
    store: Option<&LocalStore>,
    registry_version: Option<String>,
    now: DateTime<Utc>,
) -> Result<Basis> {
    let chains = match store {
        Some(s) => s.chains().await?,
        None => Vec::new(),
    };
    match store {
        Some(s) => Ok(Basis::read(s, &chains, registry_version, now).await?),
        None => Ok(Basis { generated_at: now, registry_version, chain_heads: BTreeMap::new() }),
    }
}

/// What the human formats are made of: sections of figures and tables.
pub(crate) struct Doc {
    pub(crate) title: String,
    pub(crate) basis: Vec<String>,
    pub(crate) sections: Vec<Section>,
}

pub(crate) struct Section {
    heading: String,
    lines: Vec<String>,
    table: Option<(Vec<&'static str>, Vec<Vec<String>>)>,
}

impl Section {
    pub(crate) fn new(heading: &str) -> Self {
        Self { heading: heading.to_owned(), lines: Vec::new(), table: None }
    }
    pub(crate) fn line(mut self, l: impl Into<String>) -> Self {
        self.lines.push(l.into());
        self
    }
    pub(crate) fn table(mut self, headers: Vec<&'static str>, rows: Vec<Vec<String>>) -> Self {
        self.table = Some((headers, rows));
        self
    }
}

pub(crate) fn basis_lines(b: &Basis) -> Vec<String> {
    let mut out = vec![format!(
        "Generated {} under policy registry {}.",
        b.generated_at.to_rfc3339(),
        b.registry_version.as_deref().unwrap_or("(none recorded)")
    )];
    if b.chain_heads.is_empty() {
        out.push("No audit chain was read.".into());
    } else {
        let heads: Vec<String> = b
            .chain_heads
            .iter()
            .map(|(c, h)| format!("`{c}` seq {} hash `{}`", h.seq, grantwarden_core::dashboard::short(&h.hash, 16)))
            .collect();
        out.push(format!(
            "Built from the audit chains at: {}. `grantwarden audit verify` checks them.",
            heads.join("; ")
        ));
    }
    out
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

impl Doc {
    fn markdown(&self) -> String {
        let mut out = format!("# {}\n\n", self.title);
        for l in &self.basis {
            let _ = writeln!(out, "{l}  ");
        }
        for s in &self.sections {
            let _ = write!(out, "\n## {}\n\n", s.heading);
            for l in &s.lines {
                let _ = writeln!(out, "- {l}");
            }
            if let Some((headers, rows)) = &s.table {
                // an empty table under a line that says why is left out, with its blank line
                let said_why = rows.is_empty() && s.lines.iter().any(|l| l.starts_with("No "));
                if !s.lines.is_empty() && !said_why {
                    out.push('\n');
                }
                if rows.is_empty() {
                    // the lines above already say why there is nothing to show
                    if s.lines.is_empty() || s.lines.iter().all(|l| !l.starts_with("No ")) {
                        out.push_str("_None._\n");
                    }
                } else {
                    let _ = writeln!(out, "| {} |", headers.join(" | "));
                    let _ = writeln!(out, "|{}|", headers.iter().map(|_| "---").collect::<Vec<_>>().join("|"));
                    for r in rows {
                        let cells: Vec<String> = r.iter().map(|c| md_cell(c)).collect();
                        let _ = writeln!(out, "| {} |", cells.join(" | "));
                    }
                }
            }
        }
        out
    }

    fn html(&self) -> String {
        let mut out = format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
<style>body{{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2430}}table{{border-collapse:collapse}}\
td,th{{border:1px solid #dde1e7;padding:4px 8px;text-align:left}}th{{background:#f3f4f6}}.basis{{color:#5b6472}}</style>\
</head><body>\n<h1>{t}</h1>\n",
            t = escape(&self.title)
        );
        for l in &self.basis {
            let _ = writeln!(out, "<p class=\"basis\">{}</p>", escape(&l.replace('`', "")));
        }
        for s in &self.sections {
            let _ = writeln!(out, "<h2>{}</h2>", escape(&s.heading));
            if !s.lines.is_empty() {
                out.push_str("<ul>");
                for l in &s.lines {
                    let _ = write!(out, "<li>{}</li>", escape(&l.replace('`', "")));
                }
                out.push_str("</ul>\n");
            }
            if let Some((headers, rows)) = &s.table {
                out.push_str("<table><thead><tr>");
                for h in headers {
                    let _ = write!(out, "<th>{}</th>", escape(h));
                }
                out.push_str("</tr></thead><tbody>");
                for r in rows {
                    out.push_str("<tr>");
                    for c in r {
                        let _ = write!(out, "<td>{}</td>", escape(c));
                    }
                    out.push_str("</tr>");
                }
                out.push_str("</tbody></table>\n");
            }
        }
        out.push_str("</body></html>\n");
        out
    }

    pub(crate) fn render(&self, format: ReportFormat, json: impl FnOnce() -> String) -> String {
        match format {
            ReportFormat::Json => json(),
            ReportFormat::Markdown => self.markdown(),
            ReportFormat::Html => self.html(),
        }
    }
}

pub(crate) fn json(v: serde_json::Result<String>) -> String {
    v.expect("a report always serializes") + "\n"
}

fn ttl(seconds: u64) -> String {
    match seconds {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

pub(crate) fn window_text(w: &Window) -> String {
    match (w.from, w.to) {
        (None, None) => "all time".into(),
        (Some(f), None) => format!("since {}", f.to_rfc3339()),
        (None, Some(t)) => format!("until {}", t.to_rfc3339()),
        (Some(f), Some(t)) => format!("{} to {}", f.to_rfc3339(), t.to_rfc3339()),
    }
}

fn render_coverage(c: &CoverageReport, format: ReportFormat) -> String {
    let cov = &c.coverage;
    let mut status = Section::new("Coverage")
        .line(format!(
            "Scan `{}` of `{}` at {}{}.",
            c.scan_id,
            c.target,
            c.taken_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            if c.complete { "" } else { " (INCOMPLETE: these figures prove nothing)" }
        ))
        .line(format!(
            "{} privileges held (grants, memberships, default privileges; owners' own not counted).",
            cov.held
        ))
        .line(format!("{} declared in the baseline but not held.", c.missing));
    status = status.table(
        vec!["Accounted for by", "Count", "Share"],
        vec![
            vec!["the baseline".into(), cov.baseline.to_string(), format!("{}%", c.baseline_percent)],
            vec!["documented exceptions".into(), cov.exceptions.to_string(), format!("{}%", c.exceptions_percent)],
            vec!["nothing (drift)".into(), cov.drift.to_string(), format!("{}%", c.drift_percent)],
        ],
    );
    let targets = Section::new("Targets")
        .line(if c.meets_targets() { "Every target is met.".to_owned() } else { "NOT every target is met.".to_owned() })
        .table(
            vec!["Measure", "Actual", "Target", "Met"],
            c.targets
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        format!("{}%", t.actual),
                        format!("{} {}%", t.comparison, t.target),
                        if t.met { "yes" } else { "NO" }.into(),
                    ]
                })
                .collect(),
        );
    let doc = Doc {
        title: format!("Policy coverage of {}", c.target),
        basis: basis_lines(&c.basis),
        sections: vec![status, targets],
    };
    doc.render(format, || json(serde_json::to_string_pretty(c)))
}

fn render_changes(c: &AccessChanges, format: ReportFormat) -> String {
    let revoked = match (c.revoked, c.auto_revoked_percent) {
        (0, _) | (_, None) => "None revoked".to_owned(),
        (n, Some(p)) => {
            format!("{} revoked, {p}% of them automatically (lease, schedule or sweeper)", plural(n, "ticket"))
        }
    };
    let summary = Section::new("Summary")
        .line(format!("Window: {}.", window_text(&c.window)))
        .line(format!(
            "{} requested, {} granted, {} still pending approval.",
            plural(c.requested, "ticket"),
            c.granted,
            c.pending
        ))
        .line(format!("{} ended by expiry, {} ended early on request.", plural(c.expired, "window"), c.ended_early))
        .line(format!("{revoked}; {} waiting for a person.", plural(c.revocation_failed, "failed revocation")))
        .line(format!("Approval time (request to activation): {}.", Durations::summary(&c.approval_time)))
        .line(format!(
            "Revocation latency (end of window to committed REVOKE): {}.",
            Durations::summary(&c.revocation_latency)
        ))
        .table(
            vec!["Category", "Requested"],
            c.by_category.iter().map(|(k, v)| vec![k.clone(), v.to_string()]).collect(),
        );
    let tickets = Section::new("Tickets requested").table(
        vec!["Ticket", "Person", "Role", "Category", "Status", "Requested", "Expires", "Revocation"],
        c.tickets
            .iter()
            .map(|t| {
                vec![
                    t.id.clone(),
                    t.principal.clone(),
                    t.role.clone(),
                    t.category.clone(),
                    t.status.to_string(),
                    t.requested_at.to_rfc3339(),
                    t.expires_at.to_rfc3339(),
                    t.revocation.clone().unwrap_or_default(),
                ]
            })
            .collect(),
    );
    let doc = Doc { title: "Access changes".into(), basis: basis_lines(&c.basis), sections: vec![summary, tickets] };
    doc.render(format, || json(serde_json::to_string_pretty(c)))
}

fn render_remediation(target: &str, r: &RemediationReport, format: ReportFormat) -> String {
    let mut summary = Section::new("Summary")
        .line(format!("Window: {}.", window_text(&r.window)))
        .line(format!(
            "{} opened, {} resolved (drift only: an exception ending with its ticket is not a remediation).",
            plural(r.opened, "drift finding"),
            r.resolved
        ))
        .line(format!("Time to resolution: {}.", Durations::summary(&r.time_to_resolution)));
    if r.resolved_by.is_empty() {
        summary = summary.line("Nothing was resolved in the window.");
    } else {
        summary = summary.table(
            vec!["Resolved by", "Findings"],
            r.resolved_by
                .iter()
                .map(|(k, v)| {
                    let name = match k {
                        grantwarden_core::compliance::Resolution::Remediated => "remediation applied by grantwarden",
                        grantwarden_core::compliance::Resolution::Revoked => "revocation at the end of a ticket",
                        grantwarden_core::compliance::Resolution::ChangedOutside => "a change outside grantwarden",
                    };
                    vec![name.to_owned(), v.to_string()]
                })
                .collect(),
        );
    }
    let open = Section::new(&format!("Open drift ({})", r.open.len())).table(
        vec!["Age (days)", "First seen", "Severity", "Kind", "Grantee", "Privilege", "Object"],
        r.open
            .iter()
            .map(|o| {
                vec![
                    o.age_days.to_string(),
                    o.first_seen.to_rfc3339(),
                    o.finding.severity.to_string(),
                    o.finding.kind.as_str().to_owned(),
                    o.finding.grantee.to_string(),
                    o.finding.privilege.to_string(),
                    o.finding.object.to_string(),
                ]
            })
            .collect(),
    );
    let doc = Doc {
        title: format!("Drift remediation of {target}"),
        basis: basis_lines(&r.basis),
        sections: vec![summary, open],
    };
    doc.render(format, || json(serde_json::to_string_pretty(r)))
}

fn render_evidence(e: &Evidence, q: &grantwarden_core::query_reports::QueryActivity, format: ReportFormat) -> String {
    let who = Section::new("Person").line(format!("{} (trail: {}).", e.user, window_text(&e.window))).line(format!(
        "Database roles: {}.",
        if e.roles.is_empty() { "none on record".to_owned() } else { e.roles.join(", ") }
    ));
    let exceptions = Section::new("Exceptions and the policy that applies").table(
        vec!["Ticket", "Role", "Category", "Framework", "Max TTL", "Approvals", "Routed under", "Status", "Expires"],
        e.exceptions
            .iter()
            .map(|x| {
                vec![
                    x.ticket.id.clone(),
                    x.ticket.role.clone(),
                    x.ticket.category.clone(),
                    x.category.as_ref().map(|c| c.framework.clone()).unwrap_or_else(|| "-".into()),
                    x.category.as_ref().map(|c| ttl(c.max_ttl.as_secs())).unwrap_or_else(|| "-".into()),
                    x.category.as_ref().map(|c| c.approvals.to_string()).unwrap_or_else(|| "-".into()),
                    format!("registry {}", x.routed_under),
                    x.ticket.status.to_string(),
                    x.ticket.expires_at.to_rfc3339(),
                ]
            })
            .collect(),
    );
    let mut grants_rows = Vec::new();
    for (target, grants) in &e.grants {
        for g in grants {
            let grantee = g.grantee.as_str().to_owned();
            grants_rows.push(vec![
                target.clone(),
                grantee,
                g.privilege.to_string(),
                // the class in lower case; the name as PostgreSQL spells it ("Invoices" stays quoted)
                format!("{} {}", format!("{:?}", g.object.class).to_lowercase(), g.object),
                if g.grantable { "yes" } else { "" }.into(),
            ]);
        }
    }
    let grants = Section::new("Privileges their roles hold now")
        .line(if e.grants.is_empty() {
            "No database was scanned (--database).".to_owned()
        } else {
            format!("Scanned: {}.", e.grants.keys().cloned().collect::<Vec<_>>().join(", "))
        })
        .table(vec!["Target", "Role", "Privilege", "Object", "Grant option"], grants_rows);
    let trail = Section::new(&format!("Audit trail ({} events)", e.trail.len())).table(
        vec!["At", "Event", "Actor", "Subject", "Id", "Hash"],
        e.trail
            .iter()
            .map(|ev| {
                vec![
                    ev.at.to_rfc3339(),
                    ev.kind.to_string(),
                    ev.actor.clone(),
                    ev.subject.clone(),
                    ev.id.clone(),
                    grantwarden_core::dashboard::short(&ev.hash, 16).to_owned(),
                ]
            })
            .collect(),
    );
    let mut sections = vec![who, exceptions, grants, trail];
    sections.extend(query_sections(q));
    let doc = Doc { title: format!("Access evidence for {}", e.user), basis: basis_lines(&e.basis), sections };
    doc.render(format, || {
        let mut v = serde_json::to_value(e).expect("evidence always serializes");
        v["queries"] = serde_json::to_value(q).expect("activity always serializes");
        json(serde_json::to_string_pretty(&v))
    })
}

/// The evidence report's query sections: activity by class, exports, each break-glass session recording.
fn query_sections(q: &grantwarden_core::query_reports::QueryActivity) -> Vec<Section> {
    let classes: Vec<String> = q.by_class.iter().map(|(c, n)| format!("{c} {n}")).collect();
    let mut out = vec![
        Section::new("Query activity (pgaudit)")
            .line(format!(
                "{} statements ({}); tables: {}.",
                q.statements,
                if classes.is_empty() { "none ingested".to_owned() } else { classes.join(", ") },
                if q.tables.is_empty() {
                    "none".to_owned()
                } else {
                    q.tables.iter().cloned().collect::<Vec<_>>().join(", ")
                }
            ))
            .table(
                vec!["At", "Ticket", "Table", "Export", "Statement"],
                q.exports
                    .iter()
                    .map(|x| {
                        vec![
                            x.event.at.to_rfc3339(),
                            x.event.ticket.clone().unwrap_or_else(|| "-".into()),
                            x.event.object.clone().unwrap_or_else(|| "-".into()),
                            serde_json::to_value(&x.kind)
                                .ok()
                                .and_then(|v| v["kind"].as_str().map(str::to_owned))
                                .unwrap_or_default(),
                            x.event.statement.clone(),
                        ]
                    })
                    .collect(),
            ),
    ];
    for r in &q.break_glass {
        out.push(
            Section::new(&format!(
                "Session recording: break-glass ticket {} ({} statements)",
                r.ticket,
                r.events.len()
            ))
            .line(format!("Incident: {}.", r.incident.as_deref().unwrap_or("-")))
            .table(
                vec!["At", "Session", "Class", "Command", "Table", "Rows", "Statement"],
                r.events
                    .iter()
                    .map(|e| {
                        vec![
                            e.at.to_rfc3339(),
                            e.session.clone().unwrap_or_default(),
                            e.class.as_str().to_owned(),
                            e.command.clone(),
                            e.object.clone().unwrap_or_else(|| "-".into()),
                            e.rows.map(|r| r.to_string()).unwrap_or_default(),
                            e.statement.clone(),
                        ]
                    })
                    .collect(),
            ),
        );
    }
    out
}

/// `grantwarden metrics`: the governance metrics of a target.
#[derive(clap::Args)]
pub struct MetricsArgs {
    /// Scan this database for its login roles (standing credentials).
    #[arg(long, env = "GRANTWARDEN_DATABASE_URL", hide_env_values = true)]
    database: String,
    /// Target id (as the tickets name it).
    #[arg(long)]
    target: String,
    #[command(flatten)]
    state: StateArgs,
    /// Policy registry (the break-glass threshold of its access section).
    #[arg(long, env = "GRANTWARDEN_POLICY")]
    policy: Option<PathBuf>,
    /// pgaudit logs (with `%u@%d` in log_line_prefix): credentials whose sessions used less than given.
    #[arg(long)]
    audit_log: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = ReportFormat::Markdown)]
    format: ReportFormat,
}

/// Prints the metrics; exit 2 when one is past its threshold.
pub async fn run_metrics(args: MetricsArgs, now: DateTime<Utc>) -> Result<ExitCode> {
    let store = open(&args.state)?;
    let target = TargetId::new(args.target.clone()).context("--target must not be empty")?;
    let snapshot = crate::scan_url(&args.database, Some(args.target.clone())).await?;
    let logins: Vec<String> =
        snapshot.state.roles.iter().filter(|(_, a)| a.login).map(|(r, _)| r.to_string()).collect();
    let registry = args.policy.as_deref().map(load_registry).transpose().map_err(anyhow::Error::msg)?;
    let threshold = registry.as_ref().and_then(|r| r.access.as_ref()).map(|a| a.break_glass_alert_per_month);
    let tickets = store.tickets(Some(&target)).await?;
    let mut g = grantwarden_core::governance::governance(&tickets, &logins, threshold, now);
    if !args.audit_log.is_empty() {
        let mut sessions = Vec::new();
        for path in &args.audit_log {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            sessions.extend(text.lines().filter_map(grantwarden_core::normalize::pgaudit_session));
        }
        grantwarden_core::governance::note_sessions(&mut g, &tickets, &sessions);
    }
    let m = &g.metrics;
    let figures = Section::new("Metrics").table(
        vec!["Metric", "Value"],
        vec![
            vec![label::STANDING_CREDENTIALS.into(), g.standing_credentials.len().to_string()],
            vec![label::ACTIVE_EXCEPTIONS_AND_ACCESS.into(), m.active_exceptions.to_string()],
            vec![label::MEAN_ACCESS_WINDOW.into(), hours(m.mean_access_hours)],
            vec![label::TIME_TO_ACCESS.into(), Durations::summary(&m.time_to_access)],
            vec![label::BREAK_GLASS_USES_30D.into(), m.break_glass_30d.to_string()],
            vec![label::REVOCATION_LATENCY.into(), Durations::summary(&m.revocation_latency)],
            vec![label::REVOCATIONS_WAITING.into(), m.revocation_failed.to_string()],
        ],
    );
    let over = Section::new("Over-privileged credentials").line(match &g.over_privileged {
        None => "No audit log read (--audit-log).".to_owned(),
        Some(list) if list.is_empty() => "None: every write credential wrote.".to_owned(),
        Some(list) => list
            .iter()
            .map(|o| format!("{} ({}, {}) ran only {:?}", o.role, o.ticket, o.path, o.used))
            .collect::<Vec<_>>()
            .join("; "),
    });
    let standing = Section::new("Standing credentials")
        .table(vec!["Role"], g.standing_credentials.iter().map(|r| vec![r.clone()]).collect());
    let glass = Section::new("Break-glass by month")
        .line(match g.break_glass_threshold {
            Some(t) => format!("Threshold: {t} per month (policy registry)."),
            None => "No threshold (no registry with an access section given).".into(),
        })
        .table(
            vec!["Month", "Uses"],
            g.break_glass_by_month.iter().map(|(k, v)| vec![k.clone(), v.to_string()]).collect(),
        );
    let mut alerts = Section::new("Alerts");
    if g.alerts.is_empty() {
        alerts = alerts.line("None.");
    }
    for a in &g.alerts {
        alerts = alerts.line(a.to_string());
    }
    let basis = basis(Some(&store), registry.as_ref().map(|r| r.id.version.clone()), now).await?;
    let doc = Doc {
        title: format!("Governance metrics of {target}"),
        basis: basis_lines(&basis),
        sections: vec![alerts, figures, over, standing, glass],
    };
    print!("{}", doc.render(args.format, || json(serde_json::to_string_pretty(&g))));
    Ok(if g.alerts.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}
