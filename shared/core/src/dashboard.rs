//! The dashboard: one self-contained HTML file (no network at view time) with
//! inline SVG charts: drift score over time, findings by kind and severity,
//! policy coverage, exceptions by category and time to expiry, revocation
//! latency distribution, and the governance metrics.
//!
//! Every text that comes from data is HTML-escaped. A few lines of inline
//! script check, when the page loads, that every chart drew (an `svg` with
//! content) and report a missing one on the console; nothing else runs.

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::audit::AuditEvent;
use crate::compliance::{Basis, CoverageReport};
use crate::finding::FindingKind;
use crate::governance::{metrics, score_history};
use crate::html::escape as esc;
use crate::metrics::{Governance, Metrics, ScorePoint, hours, label, seconds};
use crate::report::Finding;
use crate::scoring::Severity;
use crate::ticket::{Ticket, Trigger};

/// Everything the dashboard shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dashboard {
    /// The target.
    pub target: String,
    /// When it was built.
    pub generated_at: DateTime<Utc>,
    /// Score after each scan, oldest first.
    pub score_history: Vec<ScorePoint>,
    /// Drift findings of the latest scan.
    pub findings: Vec<Finding>,
    /// Policy coverage of the latest scan.
    pub coverage: Option<CoverageReport>,
    /// Tickets of the target.
    pub tickets: Vec<Ticket>,
    /// The figures.
    pub metrics: Metrics,
    /// Standing credentials, break-glass use by month against the registry's
    /// limit, alerts (when the report was assessed with the store).
    pub governance: Option<Governance>,
    /// What it was built from.
    pub basis: Basis,
    /// Query activity (pgaudit) of the last 30 days, where query events were ingested.
    pub queries: Option<crate::metrics::QueryFigures>,
}

/// The days of query activity the dashboard shows.
pub const QUERY_DAYS: i64 = 30;

/// The dashboard of `report`'s target: its tickets, the journal `events` of its
/// chain (score history, the last [`QUERY_DAYS`] of query activity), coverage against `targets`.
pub fn build(
    report: &crate::report::Report,
    tickets: Vec<Ticket>,
    events: &[AuditEvent],
    targets: &crate::scoring::CoverageTargets,
    basis: Basis,
    now: DateTime<Utc>,
) -> Dashboard {
    Dashboard {
        target: report.target.to_string(),
        generated_at: now,
        score_history: score_history(events),
        findings: report.findings.clone(),
        coverage: Some(CoverageReport::new(report, targets, basis.clone())),
        metrics: metrics(&tickets, now),
        governance: report.governance.clone(),
        tickets,
        basis,
        queries: crate::governance::query_figures(events, now - Duration::days(QUERY_DAYS)),
    }
}

const W: f64 = 560.0;
const H: f64 = 220.0;
const PAD: f64 = 36.0;

fn figure(id: &str, title: &str, svg: &str, caption: &str) -> String {
    format!(
        "<figure class=\"chart\" id=\"{id}\"><figcaption>{}</figcaption>{svg}<p class=\"note\">{}</p></figure>\n",
        esc(title),
        esc(caption)
    )
}

fn svg_open(label: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" role=\"img\" aria-label=\"{}\">",
        esc(label)
    )
}

fn empty(svg: &mut String, why: &str) {
    let _ = write!(
        svg,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" class=\"muted\">{}</text>",
        W / 2.0,
        H / 2.0,
        esc(why)
    );
}

fn score_chart(points: &[ScorePoint]) -> String {
    let mut svg = svg_open("drift score over time");
    let _ =
        write!(svg, "<line x1=\"{PAD}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"axis\"/>", H - PAD, W - 10.0, H - PAD);
    if points.is_empty() {
        empty(&mut svg, "no completed scan on record yet");
    } else {
        let max = points.iter().map(|p| p.score).fold(1.0_f64, f64::max);
        let step = if points.len() > 1 { (W - PAD - 20.0) / (points.len() - 1) as f64 } else { 0.0 };
        let xy: Vec<(f64, f64)> = points
            .iter()
            .enumerate()
            .map(|(i, p)| (PAD + 10.0 + i as f64 * step, H - PAD - (p.score / max) * (H - 2.0 * PAD)))
            .collect();
        let path: Vec<String> = xy.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = write!(svg, "<polyline points=\"{}\" class=\"line\"/>", path.join(" "));
        for ((x, y), p) in xy.iter().zip(points) {
            let _ = write!(
                svg,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" class=\"dot\"><title>{} score {}</title></circle>",
                p.at.format("%Y-%m-%d %H:%M"),
                p.score
            );
        }
        let _ = write!(svg, "<text x=\"4\" y=\"{}\" class=\"muted\">{max}</text>", PAD);
        let _ = write!(svg, "<text x=\"4\" y=\"{}\" class=\"muted\">0</text>", H - PAD);
        if let (Some(first), Some(last)) = (points.first(), points.last()) {
            let _ = write!(
                svg,
                "<text x=\"{PAD}\" y=\"{}\" class=\"muted\">{}</text>",
                H - 12.0,
                first.at.format("%m-%d %H:%M")
            );
            let _ = write!(
                svg,
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\" class=\"muted\">{}</text>",
                W - 10.0,
                H - 12.0,
                last.at.format("%m-%d %H:%M")
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

const SEVERITIES: [Severity; 5] = [Severity::Info, Severity::Low, Severity::Medium, Severity::High, Severity::Critical];

fn findings_chart(findings: &[Finding]) -> String {
    let mut svg = svg_open("findings by kind and severity");
    let mut by: BTreeMap<FindingKind, BTreeMap<Severity, usize>> = BTreeMap::new();
    for f in findings.iter().filter(|f| f.kind != FindingKind::Observed) {
        *by.entry(f.kind).or_default().entry(f.severity).or_insert(0) += 1;
    }
    let kinds = FindingKind::COUNTED;
    let max = by.values().map(|m| m.values().sum::<usize>()).max().unwrap_or(0).max(1) as f64;
    let slot = (W - PAD - 10.0) / kinds.len() as f64;
    let _ =
        write!(svg, "<line x1=\"{PAD}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"axis\"/>", H - PAD, W - 10.0, H - PAD);
    for (i, kind) in kinds.iter().enumerate() {
        let x = PAD + i as f64 * slot + slot * 0.2;
        let mut y = H - PAD;
        let counts = by.get(kind).cloned().unwrap_or_default();
        for sev in SEVERITIES {
            let n = counts.get(&sev).copied().unwrap_or(0);
            if n == 0 {
                continue;
            }
            let h = n as f64 / max * (H - 2.0 * PAD);
            y -= h;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\" class=\"sev-{sev}\"><title>{} {sev}: {n}</title></rect>",
                slot * 0.6,
                kind.as_str()
            );
        }
        let total: usize = counts.values().sum();
        let _ =
            write!(svg, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{total}</text>", x + slot * 0.3, y - 4.0);
        let _ = write!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" class=\"muted small\">{}</text>",
            x + slot * 0.3,
            H - 20.0,
            kind.as_str().replace('_', " ")
        );
    }
    for (i, sev) in SEVERITIES.iter().enumerate() {
        let x = PAD + i as f64 * 90.0;
        let _ = write!(svg, "<rect x=\"{x}\" y=\"6\" width=\"10\" height=\"10\" class=\"sev-{sev}\"/>");
        let _ = write!(svg, "<text x=\"{}\" y=\"15\" class=\"small\">{sev}</text>", x + 14.0);
    }
    svg.push_str("</svg>");
    svg
}

fn coverage_chart(coverage: Option<&CoverageReport>) -> String {
    let mut svg = svg_open("policy coverage");
    match coverage {
        None => empty(&mut svg, "no scan to measure coverage from"),
        Some(c) => {
            let parts = [
                ("baseline", c.coverage.baseline, c.baseline_percent),
                ("exceptions", c.coverage.exceptions, c.exceptions_percent),
                ("drift", c.coverage.drift, c.drift_percent),
            ];
            let mut x = PAD;
            let width = W - 2.0 * PAD;
            for (name, n, pct) in parts {
                let w = if c.coverage.held == 0 { 0.0 } else { width * pct / 100.0 };
                let _ = write!(
                    svg,
                    "<rect x=\"{x:.1}\" y=\"70\" width=\"{w:.1}\" height=\"50\" class=\"cov-{name}\"><title>{name}: {n} ({pct}%)</title></rect>"
                );
                x += w;
            }
            // one legend line each: "exceptions: 2 (33.33%)" does not fit a third of the width
            for (i, (name, n, pct)) in parts.iter().enumerate() {
                let ly = 140.0 + i as f64 * 22.0;
                let _ = write!(svg, "<rect x=\"{PAD}\" y=\"{ly}\" width=\"12\" height=\"12\" class=\"cov-{name}\"/>");
                let _ = write!(svg, "<text x=\"{}\" y=\"{}\">{name}: {n} ({pct}%)</text>", PAD + 16.0, ly + 11.0);
            }
            let _ = write!(
                svg,
                "<text x=\"{PAD}\" y=\"50\">{} privileges held; {} declared but missing</text>",
                c.coverage.held, c.missing
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

fn expiry_bucket(t: &Ticket, now: DateTime<Utc>) -> usize {
    let left = t.expires_at() - now;
    if left <= Duration::hours(1) {
        0
    } else if left <= Duration::hours(8) {
        1
    } else if left <= Duration::days(1) {
        2
    } else {
        3
    }
}

const EXPIRY_BUCKETS: [&str; 4] = ["< 1 h", "1-8 h", "8-24 h", "> 1 day"];

fn exceptions_chart(tickets: &[Ticket], now: DateTime<Utc>) -> String {
    let mut svg = svg_open("exceptions by category and time to expiry");
    let mut by: BTreeMap<&str, [usize; 4]> = BTreeMap::new();
    for t in tickets.iter().filter(|t| t.is_active_at(now)) {
        by.entry(t.category()).or_default()[expiry_bucket(t, now)] += 1;
    }
    if by.is_empty() {
        empty(&mut svg, "no exception in force");
    } else {
        let max = by.values().map(|b| b.iter().sum::<usize>()).max().unwrap_or(1).max(1) as f64;
        let row = ((H - 50.0) / by.len() as f64).min(36.0);
        for (i, (category, buckets)) in by.iter().enumerate() {
            let y = 34.0 + i as f64 * row;
            let _ = write!(svg, "<text x=\"4\" y=\"{:.1}\" class=\"small\">{}</text>", y + row * 0.6, esc(category));
            let mut x = 110.0;
            for (b, n) in buckets.iter().enumerate() {
                if *n == 0 {
                    continue;
                }
                let w = *n as f64 / max * (W - 130.0);
                let _ = write!(
                    svg,
                    "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{:.1}\" class=\"exp-{b}\"><title>{}: {n} expiring {}</title></rect>",
                    row * 0.7,
                    esc(category),
                    esc(EXPIRY_BUCKETS[b])
                );
                x += w;
            }
        }
    }
    for (b, name) in EXPIRY_BUCKETS.iter().enumerate() {
        let x = 110.0 + b as f64 * 100.0;
        let _ = write!(svg, "<rect x=\"{x}\" y=\"6\" width=\"10\" height=\"10\" class=\"exp-{b}\"/>");
        let _ = write!(svg, "<text x=\"{}\" y=\"15\" class=\"small\">{}</text>", x + 14.0, esc(name));
    }
    svg.push_str("</svg>");
    svg
}

const LATENCY_BUCKETS: [(&str, i64); 6] = [
    ("< 1 s", 1_000),
    ("1-10 s", 10_000),
    ("10-60 s", 60_000),
    ("1-5 min", 300_000),
    ("5-60 min", 3_600_000),
    ("> 1 h", i64::MAX),
];

fn latency_chart(tickets: &[Ticket]) -> String {
    let mut svg = svg_open("revocation latency distribution");
    let mut counts = [0usize; LATENCY_BUCKETS.len()];
    let mut automatic = 0;
    for r in tickets.iter().filter_map(|t| t.revocation().filter(|r| r.error.is_none())) {
        let i =
            LATENCY_BUCKETS.iter().position(|(_, below)| r.latency_ms < *below).unwrap_or(LATENCY_BUCKETS.len() - 1);
        counts[i] += 1;
        if matches!(r.trigger, Trigger::Lease | Trigger::Schedule | Trigger::Sweeper) {
            automatic += 1;
        }
    }
    let total: usize = counts.iter().sum();
    let _ =
        write!(svg, "<line x1=\"{PAD}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"axis\"/>", H - PAD, W - 10.0, H - PAD);
    if total == 0 {
        empty(&mut svg, "nothing revoked yet");
    } else {
        let max = *counts.iter().max().unwrap_or(&1) as f64;
        let slot = (W - PAD - 10.0) / counts.len() as f64;
        for (i, n) in counts.iter().enumerate() {
            let h = *n as f64 / max * (H - 2.0 * PAD - 10.0);
            let x = PAD + i as f64 * slot + slot * 0.15;
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" class=\"bar\"><title>{}: {n}</title></rect>",
                H - PAD - h,
                slot * 0.7,
                esc(LATENCY_BUCKETS[i].0)
            );
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{n}</text>",
                x + slot * 0.35,
                H - PAD - h - 4.0
            );
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" class=\"muted small\">{}</text>",
                x + slot * 0.35,
                H - 20.0,
                esc(LATENCY_BUCKETS[i].0)
            );
        }
        let _ =
            write!(svg, "<text x=\"{PAD}\" y=\"16\" class=\"small\">{total} revoked, {automatic} automatically</text>");
    }
    svg.push_str("</svg>");
    svg
}

/// The first `n` characters of a hash read from a store (whatever it holds: never a panic).
pub fn short(hash: &str, n: usize) -> &str {
    hash.char_indices().nth(n).map_or(hash, |(i, _)| &hash[..i])
}

fn break_glass_chart(g: Option<&Governance>) -> String {
    let mut svg = svg_open("break-glass uses by month against the registry's limit");
    let _ =
        write!(svg, "<line x1=\"{PAD}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" class=\"axis\"/>", H - PAD, W - 10.0, H - PAD);
    let months: Vec<(&String, &usize)> =
        g.map(|g| g.break_glass_by_month.iter().rev().take(12).collect()).unwrap_or_default();
    let limit = g.and_then(|g| g.break_glass_threshold);
    if months.is_empty() {
        empty(
            &mut svg,
            if g.is_some() { "no break-glass use on record" } else { "not assessed with the ticket store" },
        );
    } else {
        let months: Vec<(&String, &usize)> = months.into_iter().rev().collect();
        let max = months.iter().map(|(_, n)| **n).max().unwrap_or(1).max(limit.unwrap_or(0) as usize).max(1) as f64;
        let slot = (W - PAD - 10.0) / months.len() as f64;
        let height = H - 2.0 * PAD - 10.0;
        for (i, (month, n)) in months.iter().enumerate() {
            let h = **n as f64 / max * height;
            let x = PAD + i as f64 * slot + slot * 0.15;
            let over = limit.is_some_and(|l| **n > l as usize);
            let _ = write!(
                svg,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" class=\"{}\"><title>{month}: {n}</title></rect>",
                H - PAD - h,
                slot * 0.7,
                if over { "sev-critical" } else { "bar" }
            );
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{n}</text>",
                x + slot * 0.35,
                H - PAD - h - 4.0
            );
            let _ = write!(
                svg,
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" class=\"muted small\">{month}</text>",
                x + slot * 0.35,
                H - 20.0
            );
        }
        if let Some(l) = limit {
            let y = H - PAD - l as f64 / max * height;
            let _ = write!(
                svg,
                "<line x1=\"{PAD}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" class=\"limit\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" class=\"small\">limit {l} per month</text>",
                W - 10.0,
                W - 10.0,
                y - 4.0
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Standing credentials, over-privileged credentials and the alerts, under the figures.
/// Query activity as a figure: statements by class, who ran most, exports and destructive statements.
fn queries_figure(q: &crate::metrics::QueryFigures) -> String {
    let since = q.from.map_or("all ingested".to_owned(), |f| format!("since {}", f.format("%Y-%m-%d")));
    let mut rows: Vec<(String, String)> =
        q.by_class.iter().map(|(c, n)| (format!("{c} statements"), n.to_string())).collect();
    rows.push(("Exports (COPY TO, large or paged reads)".into(), q.exports.to_string()));
    rows.push(("DELETE, UPDATE, TRUNCATE".into(), q.destructive.to_string()));
    let mut out = format!(
        "<figure id=\"queries\"><figcaption>Query activity (pgaudit, {})</figcaption><table class=\"metrics\"><tbody>",
        esc(&since)
    );
    for (k, v) in rows {
        let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", esc(&k), esc(&v));
    }
    out.push_str("</tbody></table>");
    if !q.top_people.is_empty() {
        let people: Vec<String> = q.top_people.iter().map(|(p, n)| format!("{p} ({n})")).collect();
        let _ = write!(out, "<p class=\"note\">Most statements: {}</p>", esc(&people.join(", ")));
    }
    out.push_str("</figure>\n");
    out
}

fn governance_table(g: &Governance) -> String {
    let mut rows = vec![("Standing login roles", g.standing_credentials.len().to_string())];
    if let Some(over) = &g.over_privileged {
        rows.push(("Over-privileged credentials (pgaudit)", over.len().to_string()));
    }
    let mut out = String::from("<table class=\"metrics\"><tbody>");
    for (k, v) in rows {
        let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
    }
    out.push_str("</tbody></table>");
    if !g.standing_credentials.is_empty() {
        let shown: Vec<&str> = g.standing_credentials.iter().take(20).map(String::as_str).collect();
        let more = g.standing_credentials.len().saturating_sub(shown.len());
        let tail = if more > 0 { format!(" and {more} more") } else { String::new() };
        let _ = write!(out, "<p class=\"note\">Standing: {}{tail}</p>", esc(&shown.join(", ")));
    }
    if g.alerts.is_empty() {
        out.push_str("<p class=\"note\">No governance alert.</p>");
    } else {
        out.push_str("<ul class=\"alerts\">");
        for a in &g.alerts {
            let _ = write!(out, "<li>{}</li>", esc(&a.to_string()));
        }
        out.push_str("</ul>");
    }
    out
}

fn metrics_table(m: &Metrics) -> String {
    let rows = [
        (label::ACTIVE_EXCEPTIONS, m.active_exceptions.to_string()),
        (label::MEAN_ACCESS_WINDOW, hours(m.mean_access_hours)),
        (label::TIME_TO_ACCESS_MEAN, seconds(m.time_to_access.mean_seconds)),
        (label::BREAK_GLASS_30D, m.break_glass_30d.to_string()),
        (
            label::REVOCATION_LATENCY_P50_P99,
            format!("{} / {}", seconds(m.revocation_latency.p50_seconds), seconds(m.revocation_latency.p99_seconds)),
        ),
        (label::REVOCATIONS_WAITING, m.revocation_failed.to_string()),
    ];
    let mut out = String::from("<table class=\"metrics\"><tbody>");
    for (k, v) in rows {
        let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&v));
    }
    out.push_str("</tbody></table>");
    out
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2430;background:#f6f7f9}\
h1{font-size:20px;margin:0 0 4px}.sub{color:#5b6472;margin:0 0 16px}\
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:16px}\
figure{background:#fff;border:1px solid #dde1e7;border-radius:6px;margin:0;padding:12px}\
figcaption{font-weight:600;margin-bottom:6px}svg{width:100%;height:auto}\
.axis{stroke:#9aa3af}.line{fill:none;stroke:#2563eb;stroke-width:2}.dot{fill:#2563eb}.bar{fill:#7c3aed}\
.muted{fill:#6b7280}.small{font-size:11px}.note{color:#5b6472;font-size:12px;margin:6px 0 0}\
.sev-info{fill:#cbd5e1}.sev-low{fill:#93c5fd}.sev-medium{fill:#fbbf24}.sev-high{fill:#f97316}.sev-critical{fill:#dc2626}\
.cov-baseline{fill:#16a34a}.cov-exceptions{fill:#f59e0b}.cov-drift{fill:#dc2626}\
.limit{stroke:#dc2626;stroke-dasharray:4 3}ul.alerts{color:#b91c1c;margin:6px 0 0;padding-left:18px}\
.exp-0{fill:#dc2626}.exp-1{fill:#f97316}.exp-2{fill:#facc15}.exp-3{fill:#22c55e}\
table.metrics{border-collapse:collapse;width:100%}table.metrics th{text-align:left;font-weight:normal;color:#374151;padding:4px 8px 4px 0}\
table.metrics td{font-weight:600;text-align:right}footer{margin-top:16px;color:#5b6472;font-size:12px}";

/// The ids of the charts the page holds, in order.
pub const CHARTS: [&str; 6] =
    ["drift-score", "findings", "coverage", "exceptions", "revocation-latency", "break-glass"];

/// Counts the charts that drew (each an SVG with content) into `data-charts`, and
/// says on the console which did not; lists in `data-charts-with-data` those that
/// drew data (a bar or point, each with its `<title>`; axes, legends and "no
/// data" have none). The ids are [`CHARTS`].
fn check_script() -> String {
    let ids: Vec<String> = CHARTS.iter().map(|id| format!("'{id}'")).collect();
    format!(
        "document.addEventListener('DOMContentLoaded',function(){{\
var ids=[{}],ok=0,data=[];\
ids.forEach(function(id){{var f=document.getElementById(id),s=f&&f.querySelector('svg');\
if(s&&s.childElementCount>0){{ok++;}}else{{console.error('grantwarden dashboard: chart '+id+' did not draw');}}\
if(s&&s.querySelector('rect>title,circle>title')){{data.push(id);}}}});\
document.body.setAttribute('data-charts',String(ok));\
document.body.setAttribute('data-charts-with-data',data.join(' '));}});",
        ids.join(",")
    )
}

/// The page.
pub fn render(d: &Dashboard) -> String {
    let now = d.generated_at;
    let drift: Vec<Finding> =
        d.findings.iter().filter(|f| f.kind.is_drift() || f.kind == FindingKind::Excepted).cloned().collect();
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\
<title>grantwarden: {t}</title><style>{STYLE}</style></head><body>\n\
<h1>Database access governance: {t}</h1><p class=\"sub\">Generated {g}. Registry {r}; audit chain heads {h}.</p>\n<div class=\"grid\">\n",
        t = esc(&d.target),
        g = now.format("%Y-%m-%d %H:%M UTC"),
        r = esc(d.basis.registry_version.as_deref().unwrap_or("none loaded")),
        h = esc(&d
            .basis
            .chain_heads
            .iter()
            .map(|(c, h)| format!("{c}#{} {}", h.seq, short(&h.hash, 12)))
            .collect::<Vec<_>>()
            .join(", ")),
    );
    let latest = d.score_history.last().map_or("no scan yet".to_owned(), |p| format!("latest {}", p.score));
    html.push_str(&figure("drift-score", "Drift score over time", &score_chart(&d.score_history), &latest));
    html.push_str(&figure(
        "findings",
        "Findings by kind and severity (latest scan)",
        &findings_chart(&drift),
        &format!("{} findings", drift.len()),
    ));
    let coverage_note = d.coverage.as_ref().map_or(String::new(), |c| {
        c.targets
            .iter()
            .map(|t| {
                format!(
                    "{} {}% (target {} {}%: {})",
                    t.name,
                    t.actual,
                    t.comparison,
                    t.target,
                    if t.met { "met" } else { "NOT met" }
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    });
    html.push_str(&figure("coverage", "Policy coverage", &coverage_chart(d.coverage.as_ref()), &coverage_note));
    html.push_str(&figure(
        "exceptions",
        "Exceptions in force by category and time to expiry",
        &exceptions_chart(&d.tickets, now),
        &format!("{} in force", d.metrics.active_exceptions),
    ));
    html.push_str(&figure(
        "revocation-latency",
        "Revocation latency (end of window to committed REVOKE)",
        &latency_chart(&d.tickets),
        &format!(
            "p50 {} / p99 {}",
            seconds(d.metrics.revocation_latency.p50_seconds),
            seconds(d.metrics.revocation_latency.p99_seconds)
        ),
    ));
    let g = d.governance.as_ref();
    let used = g.map_or("not assessed with the ticket store".to_owned(), |g| {
        let months = g.break_glass_by_month.len();
        let total: usize = g.break_glass_by_month.values().sum();
        let limit = g.break_glass_threshold.map_or("no limit set".to_owned(), |l| format!("limit {l} per month"));
        format!("{total} uses in {months} month(s); {limit}")
    });
    html.push_str(&figure("break-glass", "Break-glass uses by month", &break_glass_chart(g), &used));
    if let Some(q) = &d.queries {
        html.push_str(&queries_figure(q));
    }
    let _ = write!(
        html,
        "<figure id=\"metrics\"><figcaption>Governance metrics</figcaption>{}{}</figure>\n</div>\n",
        metrics_table(&d.metrics),
        g.map(governance_table).unwrap_or_default()
    );
    let _ = write!(
        html,
        "<footer>Built by grantwarden from the scan, the tickets and the audit journal; verify with <code>grantwarden audit verify</code>.</footer>\n<script>{}</script>\n</body></html>\n",
        check_script()
    );
    html
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::governance::{governance, new_alerts};

    /// A dashboard of `target` with no data at all.
    fn empty(target: &str) -> Dashboard {
        Dashboard {
            target: target.into(),
            generated_at: "2026-11-22T12:00:00Z".parse().unwrap(),
            score_history: vec![],
            findings: vec![],
            coverage: None,
            tickets: vec![],
            metrics: metrics(&[], "2026-11-22T12:00:00Z".parse().unwrap()),
            governance: None,
            queries: None,
            basis: Basis {
                generated_at: "2026-11-22T12:00:00Z".parse().unwrap(),
                registry_version: None,
                chain_heads: BTreeMap::new(),
            },
        }
    }

    #[test]
    fn data_is_escaped_and_every_chart_is_present_even_with_no_data() {
        let d = empty("<script>alert(1)</script>");
        let html = render(&d);
        assert!(!html.contains("<script>alert(1)"), "target text is escaped");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        for id in CHARTS {
            assert!(html.contains(&format!("<figure class=\"chart\" id=\"{id}\">")), "{id}");
        }
        assert!(html.contains("not assessed with the ticket store"), "the break-glass chart says why it is empty");
        let namespaces = html.matches("http://www.w3.org/2000/svg").count();
        assert_eq!(html.matches("://").count(), namespaces, "no address but the SVG namespace: nothing is fetched");
    }

    #[test]
    fn query_activity_is_shown_when_queries_were_ingested_and_escaped() {
        let mut d = empty("orders-prod");
        assert!(!render(&d).contains("id=\"queries\""), "nothing ingested: no figure");
        d.queries = Some(crate::metrics::QueryFigures {
            from: Some("2026-10-23T12:00:00Z".parse().unwrap()),
            by_class: BTreeMap::from([("READ".to_owned(), 7)]),
            top_people: vec![("<b>eve</b>@example.com".to_owned(), 7)],
            exports: 2,
            destructive: 0,
        });
        let html = render(&d);
        assert!(html.contains("Query activity (pgaudit, since 2026-10-23)"), "{html}");
        assert!(html.contains("<tr><th>READ statements</th><td>7</td></tr>"));
        assert!(html.contains("<td>2</td>") && html.contains("&lt;b&gt;eve&lt;/b&gt;@example.com (7)"));
    }

    #[test]
    fn break_glass_past_the_monthly_limit_is_alerted_once_and_drawn_against_the_limit() {
        use crate::access_policy::{AccessGrant, AccessPath, AccessScope};
        let now: DateTime<Utc> = "2026-11-22T12:00:00Z".parse().unwrap();
        let ticket = |id: &str, path: AccessPath, day: u32| {
            let requested = format!("2026-11-{day:02}T09:00:00Z");
            let mut t: Ticket = serde_json::from_value(serde_json::json!({
                "id": id, "request_sha256": "", "category": format!("access:{path}"), "tag": "",
                "approvals_required": 0, "weight_factor": 1.0, "registry": { "version": "2.1", "sha256": "" },
                "status": "active", "starts_at": requested, "expires_at": requested,
                "history": [{ "at": requested, "what": "requested", "actor": "alice@example.com", "detail": "" }],
                "request": { "delivery_id": id, "input": "webhook", "source": "access", "action": "grant",
                    "target": "orders-prod", "principal": "alice@example.com", "role": "gw_alice", "privileges": ["SELECT"],
                    "object": { "on": "database" }, "expires_at": requested, "incident_id": "PD-1",
                    "requested_by": "alice@example.com", "observed_at": requested }
            }))
            .unwrap();
            t.set_break_glass(path == AccessPath::BreakGlass);
            t.set_access(Some(AccessGrant {
                path,
                scope: AccessScope::Database,
                masking: BTreeMap::new(),
                views_schema: String::new(),
                sensitive_schemas: vec![],
                sensitive_tables: vec![],
                allow_public_create: vec![],
                connection_limit: 1,
                session: Default::default(),
                script: None,
                privileged_approvers: vec![],
                privileged_groups: vec![],
                pending_until: None,
                review_required: path == AccessPath::BreakGlass,
                incident_id: Some("PD-1".into()),
            }));
            t
        };
        let tickets = vec![
            ticket("t1", AccessPath::BreakGlass, 1),
            ticket("t2", AccessPath::BreakGlass, 2),
            // an incident id on another path is not a break-glass use
            ticket("t3", AccessPath::ReadOnly, 3),
        ];
        let g = governance(&tickets, &[], Some(1), now);
        assert_eq!(g.break_glass_by_month, BTreeMap::from([("2026-11".to_owned(), 2)]));
        assert_eq!(g.metrics.break_glass_30d, 2);
        assert_eq!(g.alerts, ["break-glass used more than the registry's 1 times in 2026-11"]);
        assert_eq!(new_alerts(&g, &[]).len(), 1);
        let raised = AuditEvent {
            chain: "orders-prod".into(),
            seq: 1,
            id: "orders-prod:1".into(),
            at: now,
            kind: "governance.alert".into(),
            actor: "grantwarden:diff".into(),
            subject: "scan-1".into(),
            target: "orders-prod".into(),
            detail: serde_json::json!({ "alert": g.alerts[0] }),
            prev_hash: String::new(),
            hash: String::new(),
        };
        assert!(new_alerts(&g, std::slice::from_ref(&raised)).is_empty(), "raised once, not after every scan");
        let mut more = tickets.clone();
        more.push(ticket("t4", AccessPath::BreakGlass, 4));
        let g = governance(&more, &[], Some(1), now);
        assert!(new_alerts(&g, &[raised]).is_empty(), "nor after every further use that month");
        let svg = break_glass_chart(Some(&g));
        assert!(svg.contains("limit 1 per month") && svg.contains("sev-critical"), "{svg}");
    }
}
