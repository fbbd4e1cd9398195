//! Human renderings of the plan report: a terminal table and Markdown.
//! Both show exactly what the JSON report holds.

use std::fmt::Write;

use comfy_table::{ContentArrangement, Table, presets};
use grantwarden_core::metrics::{Governance, hours, label, seconds};
use grantwarden_core::report::{Finding, Report};

/// Observations shown in full before the rest are only counted.
const OBSERVATIONS_SHOWN: usize = 15;

fn summary_line(r: &Report) -> String {
    let s = &r.summary;
    // exposures are MySQL's and MariaDB's: a PostgreSQL report's line is as it was
    let exposure = if s.exposure > 0 { format!(", {} exposure", s.exposure) } else { String::new() };
    format!(
        "{} unauthorized, {} missing, {} orphaned, {} excepted, {} expired_exception, {} untagged{exposure} | score {} | exception weight {} | status {}",
        s.unauthorized,
        s.missing,
        s.orphaned,
        s.excepted,
        s.expired_exception,
        s.untagged,
        s.score,
        s.exception_weight,
        s.status
    )
}

fn grantee_cell(f: &Finding) -> String {
    if f.grantable { format!("{} (grantable)", f.grantee) } else { f.grantee.to_string() }
}

fn findings_table(findings: &[Finding], preset: &str) -> Table {
    let mut t = Table::new();
    t.load_preset(preset).set_content_arrangement(ContentArrangement::Dynamic);
    t.set_header(vec!["SEVERITY", "KIND", "SCORE", "GRANTEE", "PRIVILEGE", "OBJECT", "DETAIL"]);
    for f in findings {
        t.add_row(vec![
            f.severity.to_string(),
            f.kind.as_str().to_owned(),
            f.score.to_string(),
            grantee_cell(f),
            f.privilege.to_string(),
            f.object.to_string(),
            f.detail.clone(),
        ]);
    }
    t
}

/// The governance figures as (name, value) rows, in the order people read them.
fn governance_rows(g: &Governance) -> Vec<(&'static str, String)> {
    let m = &g.metrics;
    let month = g.break_glass_by_month.iter().next_back().map_or("none on record".to_owned(), |(month, n)| {
        let limit = g.break_glass_threshold.map_or(String::new(), |l| format!(" (limit {l} per month)"));
        format!("{n} in {month}{limit}")
    });
    let mut rows = vec![
        (label::ACTIVE_EXCEPTIONS, m.active_exceptions.to_string()),
        (label::STANDING_LOGIN_ROLES, g.standing_credentials.len().to_string()),
        (label::MEAN_ACCESS_WINDOW, hours(m.mean_access_hours)),
        (label::TIME_TO_ACCESS_MEAN, seconds(m.time_to_access.mean_seconds)),
        (label::BREAK_GLASS_LATEST_MONTH, month),
        (
            label::REVOCATION_LATENCY_P50_P99,
            format!("{} / {}", seconds(m.revocation_latency.p50_seconds), seconds(m.revocation_latency.p99_seconds)),
        ),
        (label::REVOCATIONS_WAITING, m.revocation_failed.to_string()),
    ];
    if let Some(over) = &g.over_privileged {
        rows.push((label::OVER_PRIVILEGED, over.len().to_string()));
    }
    rows
}

/// What an incomplete report did with what it read, and how much of the baseline it left.
fn not_judged_line(r: &Report) -> String {
    format!(
        "{} declaration(s) of the baseline name what was not read and were not judged. The findings below \
         are what was read: listed, never recorded or alerted on.",
        r.summary.declarations_not_judged
    )
}

/// The default terminal rendering.
pub fn table(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "target {}  scan {}  taken {}", r.target, r.scan_id, r.taken_at.to_rfc3339());
    let _ = writeln!(out, "snapshot sha256 {}", r.snapshot_sha256);
    if !r.summary.complete {
        let _ = writeln!(out, "\nINCOMPLETE SCAN: these chunks failed, so the result below is partial:");
        for c in &r.summary.failed_chunks {
            let _ = writeln!(out, "  - {c}");
        }
        let _ = writeln!(out, "Not judged (neither drift nor clean):");
        for n in &r.summary.not_judged {
            let _ = writeln!(out, "  - {n}");
        }
        let _ = writeln!(out, "{}", not_judged_line(r));
    }
    out.push('\n');
    if r.findings.is_empty() {
        out.push_str("No drift: the database matches the baseline.\n");
    } else {
        let _ = writeln!(out, "{}", findings_table(&r.findings, presets::UTF8_FULL_CONDENSED));
    }
    if !r.observations.is_empty() {
        let shown = &r.observations[..r.observations.len().min(OBSERVATIONS_SHOWN)];
        let _ = writeln!(out, "\nObservations (shown, not scored):");
        let _ = writeln!(out, "{}", findings_table(shown, presets::UTF8_FULL_CONDENSED));
        if r.observations.len() > shown.len() {
            let _ = writeln!(out, "... and {} more (see --format json)", r.observations.len() - shown.len());
        }
    }
    if let Some(g) = &r.governance {
        let mut t = Table::new();
        t.load_preset(presets::UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
        for (k, v) in governance_rows(g) {
            t.add_row(vec![k.to_owned(), v]);
        }
        let _ = writeln!(out, "\nGovernance:\n{t}");
        for a in &g.alerts {
            let _ = writeln!(out, "ALERT: {a}");
        }
    }
    let _ = writeln!(out, "\n{}", summary_line(r));
    out
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn md_findings(out: &mut String, findings: &[Finding]) {
    out.push_str(
        "| Severity | Kind | Score | Grantee | Privilege | Object | Detail |\n|---|---|---:|---|---|---|---|\n",
    );
    for f in findings {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            f.severity,
            f.kind.as_str(),
            f.score,
            md_escape(&grantee_cell(f)),
            f.privilege,
            md_escape(&f.object.to_string()),
            md_escape(&f.detail)
        );
    }
}

/// A Markdown rendering for tickets and pull requests.
pub fn markdown(r: &Report) -> String {
    let s = &r.summary;
    let mut out = String::new();
    let _ = writeln!(out, "# grantwarden plan: {}\n", md_escape(r.target.as_str()));
    let _ = writeln!(out, "- Scan `{}` taken {}", r.scan_id, r.taken_at.to_rfc3339());
    let _ = writeln!(out, "- Snapshot sha256 `{}`", r.snapshot_sha256);
    let _ = writeln!(out, "- Status **{}**, score {}, exception weight {}\n", s.status, s.score, s.exception_weight);
    if !s.complete {
        out.push_str("> **Incomplete scan.** These chunks failed, so the result is partial:\n");
        for c in &s.failed_chunks {
            let _ = writeln!(out, "> - {}", md_escape(c));
        }
        out.push_str(">\n> Not judged (neither drift nor clean):\n");
        for n in &s.not_judged {
            let _ = writeln!(out, "> - {}", md_escape(n));
        }
        let _ = writeln!(out, ">\n> {}", not_judged_line(r));
        out.push('\n');
    }
    out.push_str("| Unauthorized | Missing | Orphaned | Excepted | Expired exception | Untagged |\n|---:|---:|---:|---:|---:|---:|\n");
    let _ = writeln!(
        out,
        "| {} | {} | {} | {} | {} | {} |\n",
        s.unauthorized, s.missing, s.orphaned, s.excepted, s.expired_exception, s.untagged
    );
    out.push_str("## Findings\n\n");
    if r.findings.is_empty() {
        out.push_str("No drift: the database matches the baseline.\n");
    } else {
        md_findings(&mut out, &r.findings);
    }
    if !r.observations.is_empty() {
        out.push_str("\n## Observations (shown, not scored)\n\n");
        md_findings(&mut out, &r.observations);
    }
    if let Some(g) = &r.governance {
        out.push_str("\n## Governance\n\n| Figure | Value |\n|---|---:|\n");
        for (k, v) in governance_rows(g) {
            let _ = writeln!(out, "| {k} | {} |", md_escape(&v));
        }
        if !g.alerts.is_empty() {
            out.push('\n');
            for a in &g.alerts {
                let _ = writeln!(out, "> **Alert:** {}", md_escape(&a.to_string()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use grantwarden_core::finding::FindingKind;
    use grantwarden_core::model::{Grantee, ObjectClass, ObjectRef, RoleName};
    use grantwarden_core::report::{FindingObject, FindingPrivilege, ObjectType, Summary};
    use grantwarden_core::scoring::Severity;
    use grantwarden_core::snapshot::TargetId;

    fn finding(
        kind: FindingKind,
        severity: Severity,
        grantee: &str,
        privilege: &str,
        object: FindingObject,
    ) -> Finding {
        Finding {
            kind,
            severity,
            score: 2.0,
            grantee: Grantee::Role(RoleName::new(grantee).unwrap()),
            privilege: FindingPrivilege::One(privilege.parse().unwrap()),
            grantable: false,
            object,
            exception_id: None,
            detail: "not declared in the baseline | really".into(),
        }
    }

    fn report(complete: bool) -> Report {
        let table =
            FindingObject::of(ObjectType::Table, &ObjectRef::in_schema(ObjectClass::Table, "orders", "Line Items"));
        let column = FindingObject::of(ObjectType::Column, &ObjectRef::column("orders", "Line Items", "email"));
        Report {
            target: TargetId::new("orders-prod").unwrap(),
            scan_id: "scan-0123".into(),
            taken_at: "2026-11-25T10:00:00Z".parse().unwrap(),
            snapshot_sha256: "ab".repeat(32),
            summary: Summary {
                unauthorized: 1,
                missing: 1,
                orphaned: 0,
                excepted: 0,
                expired_exception: 0,
                untagged: 0,
                exposure: 0,
                score: 4.0,
                exception_weight: 0.0,
                status: if complete {
                    grantwarden_core::report::Status::Warn
                } else {
                    grantwarden_core::report::Status::Incomplete
                },
                complete,
                failed_chunks: if complete { vec![] } else { vec!["schema billing: permission denied".into()] },
                not_judged: if complete {
                    vec![]
                } else {
                    vec!["schema billing: the schema itself, every object in it and its default privileges".into()]
                },
                declarations_not_judged: if complete { 0 } else { 3 },
                coverage: Default::default(),
            },
            governance: None,
            findings: vec![
                finding(FindingKind::Unauthorized, Severity::Medium, "app_rw", "DELETE", table),
                finding(FindingKind::Missing, Severity::Low, "app_ro", "SELECT", column),
            ],
            observations: vec![],
        }
    }

    #[test]
    fn markdown_reads_as_a_document() {
        insta::assert_snapshot!(markdown(&report(true)));
    }

    #[test]
    fn markdown_says_a_partial_scan_is_partial() {
        insta::assert_snapshot!(markdown(&report(false)));
    }

    #[test]
    fn table_shows_findings_and_summary() {
        insta::assert_snapshot!(table(&report(true)));
    }

    #[test]
    fn table_says_what_a_partial_scan_did_not_judge() {
        insta::assert_snapshot!(table(&report(false)));
    }

    fn governed() -> Report {
        let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        let mut r = report(true);
        let mut g = grantwarden_core::governance::governance(
            &[],
            &["postgres".into(), "app_rw".into()],
            Some(3),
            at("2026-11-25T10:00:00Z"),
        );
        g.break_glass_by_month = [("2026-10".to_owned(), 1), ("2026-11".to_owned(), 4)].into();
        g.alerts.push("break-glass used more than the registry's 3 times in 2026-11".into());
        g.metrics.revocation_latency = grantwarden_core::metrics::Durations::of(vec![2.0, 4.0, 90.0]);
        r.governance = Some(g);
        r
    }

    #[test]
    fn markdown_shows_the_governance_figures_and_alerts() {
        insta::assert_snapshot!(markdown(&governed()));
    }

    #[test]
    fn table_shows_the_governance_figures_and_alerts() {
        insta::assert_snapshot!(table(&governed()));
    }
}
