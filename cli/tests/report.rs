//! Compliance reports against a prepared scenario with known counts: a
//! baseline, one exception ticket, one unauthorized grant; then the ticket's
//! revocation by the sweeper, a remediation, and the reports and dashboard.

mod common;

use std::path::Path;
use std::process::Output;

use common::{billing_baseline, grantwarden, ok, policy, watch_once};
use grantwarden_testkit::TestDb;
use serde_json::Value;

struct Scenario {
    db: TestDb,
    dir: tempfile::TempDir,
    tmp: String,
}

impl Scenario {
    fn state(&self) -> String {
        self.dir.path().join("state.db").to_string_lossy().into_owned()
    }
    fn baseline(&self) -> String {
        self.dir.path().join("baseline.yaml").to_string_lossy().into_owned()
    }
    /// `args` followed by the database, baseline, target, state, policy and time.
    fn run(&self, args: &[&str], at: &str) -> Output {
        let (url, baseline, state, policy) = (self.db.url(), self.baseline(), self.state(), policy());
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(&[
            "--database",
            &url,
            "--baseline",
            &baseline,
            "--target",
            "orders-prod",
            "--state",
            &state,
            "--policy",
            &policy,
            "--at",
            at,
        ]);
        grantwarden(&all)
    }
    /// `text` with what varies between runs replaced: the test database's name in role
    /// names, the hashes and ids that depend on it (runs of 12 or more hex digits), and
    /// the time the scan ran.
    fn redact(&self, text: &str) -> String {
        let mut text = text.replace(&self.db.prefix, "<db>");
        // the scan itself runs now, whatever --at says: its time is today's
        let today = chrono::Utc::now();
        for day in [today, today - chrono::Duration::days(1)] {
            let prefix = day.format("%Y-%m-%dT").to_string();
            while let Some(i) = text.find(&prefix) {
                let end = (i + prefix.len() + 9).min(text.len());
                text.replace_range(i..end, "<now>");
            }
        }
        let mut out = String::with_capacity(text.len());
        let mut run = String::new();
        let flush = |run: &mut String, out: &mut String| {
            out.push_str(if run.len() >= 12 { "<hex>" } else { run });
            run.clear();
        };
        for c in text.chars() {
            if c.is_ascii_hexdigit() {
                run.push(c);
            } else {
                flush(&mut run, &mut out);
                out.push(c);
            }
        }
        flush(&mut run, &mut out);
        out
    }
    fn store_only(&self, args: &[&str], at: &str) -> Output {
        let state = self.state();
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(&["--state", &state, "--at", at]);
        grantwarden(&all)
    }
}

async fn scenario() -> Scenario {
    let db = TestDb::new().await;
    let (ro, tmp) = (db.role("app_ro"), db.role("tmp"));
    db.exec(&format!(
        "CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);
         CREATE ROLE {r}; CREATE ROLE {t};
         GRANT USAGE ON SCHEMA billing TO {r}; GRANT SELECT, INSERT ON billing.invoices TO {r};
         GRANT USAGE ON SCHEMA billing TO {t}; GRANT SELECT ON billing.invoices TO {t};",
        r = db.ident("app_ro"),
        t = db.ident("tmp"),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    billing_baseline(&dir.path().join("baseline.yaml"), &ro, &[&tmp], &db.ignore_others());
    let hook = dir.path().join("hook.json");
    std::fs::write(
        &hook,
        format!(
            r#"{{ "delivery_id": "d-tmp", "source": "okta-workflows", "target": "orders-prod",
  "principal": "alice@example.com", "role": "{tmp}", "privileges": ["SELECT", "USAGE"],
  "object": {{ "type": "schema", "name": "billing" }}, "justification": "INC-1",
  "requested_by": "alice@example.com", "expires_at": "2026-11-22T14:00:00Z" }}"#
        ),
    )
    .unwrap();
    let s = Scenario { db, dir, tmp };
    let state = s.state();
    ok(&grantwarden(&[
        "intake",
        hook.to_str().unwrap(),
        "--policy",
        &policy(),
        "--state",
        &state,
        "--at",
        "2026-11-22T12:00:00Z",
    ]));
    s
}

#[tokio::test]
async fn reports_match_a_prepared_scenario_and_the_dashboard_renders_in_chromium() {
    let s = scenario().await;

    // coverage while the ticket lives: 3 declared (app_ro USAGE and SELECT, PUBLIC USAGE on public),
    // 2 excepted (the ticket's USAGE and SELECT), 1 drift (app_ro INSERT)
    let out = s.run(&["report", "coverage", "--format", "json"], "2026-11-22T13:00:00Z");
    assert_eq!(out.status.code(), Some(2), "targets not met: {}", String::from_utf8_lossy(&out.stderr));
    let c: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(c["coverage"], serde_json::json!({ "held": 6, "baseline": 3, "exceptions": 2, "drift": 1 }));
    assert_eq!(
        (c["baseline_percent"].as_f64(), c["exceptions_percent"].as_f64(), c["drift_percent"].as_f64()),
        (Some(50.0), Some(33.33), Some(16.67))
    );
    assert_eq!(c["basis"]["registry_version"], "2.1");
    assert!(c["basis"]["chain_heads"]["orders-prod"]["seq"].as_u64().unwrap() >= 2, "{c}");
    let md = String::from_utf8_lossy(&s.run(&["report", "coverage"], "2026-11-22T13:01:00Z").stdout).into_owned();
    insta::assert_snapshot!("coverage_markdown", s.redact(&md));

    // the dashboard while the exception is in force and the INSERT is drift
    let during = s.dir.path().join("dashboard-1330.html");
    ok(&s.run(&["report", "dashboard", "-o", during.to_str().unwrap()], "2026-11-22T13:30:00Z"));
    let text = std::fs::read_to_string(&during).unwrap();
    let titles: Vec<&str> = text.split("<title>").skip(1).filter_map(|t| t.split("</title>").next()).collect();
    assert!(text.contains("<title>unauthorized medium: 1</title>"), "the findings chart draws the drift: {titles:?}");
    assert!(text.contains("6 privileges held; 0 declared but missing"), "coverage");
    assert!(
        text.contains("<title>read-only: 1 expiring &lt; 1 h</title>"),
        "the exception, 30 min before its end: {titles:?}"
    );
    assert!(text.contains("1 in force"));
    chromium_renders(&during, &["drift-score", "findings", "coverage", "exceptions"], "dashboard-1330.png");

    // the sweeper revokes the ticket 30 s after its end; the unauthorized INSERT is remediated
    let (url, state) = (s.db.url(), s.state());
    ok(&watch_once(&url, &state, "2026-11-22T14:00:30Z", &[]));
    ok(&s.run(&["apply", "--mode", "revoke-unauthorized", "--execute"], "2026-11-22T14:05:00Z"));
    let after = s.run(&["plan", "--format", "json"], "2026-11-22T15:00:00Z");
    let plan: Value = serde_json::from_slice(&after.stdout).unwrap();
    assert_eq!(
        plan["summary"]["coverage"],
        serde_json::json!({ "held": 3, "baseline": 3, "exceptions": 0, "drift": 0 })
    );
    assert_eq!(
        plan["governance"]["metrics"]["revocation_latency"]["max_seconds"], 30.0,
        "the report carries the governance metrics"
    );
    assert!(plan["governance"]["standing_credentials"].as_array().unwrap().iter().any(|r| r == "postgres"));

    // access changes in the window
    let changes: Value = serde_json::from_str(&ok(&s.store_only(
        &["report", "changes", "--from", "2026-11-22T00:00:00Z", "--to", "2026-11-23T00:00:00Z", "--format", "json"],
        "2026-11-22T16:00:00Z",
    )))
    .unwrap();
    assert_eq!(
        (changes["requested"].as_u64(), changes["granted"].as_u64(), changes["revoked"].as_u64()),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(changes["auto_revoked_percent"].as_f64(), Some(100.0), "the sweeper revoked it");
    assert_eq!(changes["revocation_latency"]["max_seconds"].as_f64(), Some(30.0));
    assert_eq!(changes["expired"].as_u64(), Some(1));

    // remediation: three findings opened at 13:00; the ticket's two closed by its revocation, INSERT by the remediation
    let remediation: Value = serde_json::from_str(&ok(&s.store_only(
        &["report", "remediation", "--target", "orders-prod", "--format", "json"],
        "2026-11-22T16:00:00Z",
    )))
    .unwrap();
    // (the ticket's two excepted grants ending with it are not drift, so not counted)
    assert_eq!((remediation["opened"].as_u64(), remediation["resolved"].as_u64()), (Some(1), Some(1)), "{remediation}");
    assert_eq!(remediation["resolved_by"], serde_json::json!({ "remediated": 1 }));
    assert_eq!(remediation["open"].as_array().unwrap().len(), 0);
    assert_eq!(remediation["time_to_resolution"]["count"].as_u64(), Some(1));
    assert_eq!(remediation["time_to_resolution"]["max_seconds"].as_f64(), Some(2.0 * 3600.0), "13:00 to 15:00");
    let window = ["--from", "2026-11-22T00:00:00Z", "--to", "2026-11-23T00:00:00Z"];
    for (report, extra) in [("changes", &[][..]), ("remediation", &["--target", "orders-prod"][..])] {
        let args: Vec<&str> = ["report", report].iter().chain(&window).chain(extra).copied().collect();
        let md = ok(&s.store_only(&args, "2026-11-22T16:00:00Z"));
        insta::assert_snapshot!(format!("{report}_markdown"), s.redact(&md));
    }

    // evidence of the person the ticket was for
    let evidence = |user: &str, extra: &[&str]| {
        let args = [&["report", "evidence", "--user", user][..], extra].concat();
        ok(&s.store_only(&args, "2026-11-22T16:00:00Z"))
    };
    let registry = policy();
    let e = evidence(
        "alice@example.com",
        &["--database", &url, "--target", "orders-prod", "--policy", &registry, "--format", "json"],
    );
    let e: Value = serde_json::from_str(&e).unwrap();
    assert_eq!(e["roles"], serde_json::json!([s.tmp]));
    assert_eq!(e["exceptions"][0]["category"]["framework"], "SOC2");
    assert_eq!(e["grants"]["orders-prod"].as_array().map(Vec::len), Some(0), "nothing left after revocation");
    let kinds: Vec<&str> = e["trail"].as_array().unwrap().iter().map(|ev| ev["type"].as_str().unwrap()).collect();
    assert!(
        kinds.starts_with(&["ticket.requested", "ticket.activated"]) && kinds.contains(&"ticket.revoked"),
        "{kinds:?}"
    );
    let md = evidence("alice@example.com", &["--policy", &registry]);
    insta::assert_snapshot!("evidence_markdown", s.redact(&md));
    // a person is the same whatever the case of their address
    let upper = evidence("Alice@Example.com", &["--format", "json"]);
    let upper: Value = serde_json::from_str(&upper).unwrap();
    assert_eq!(upper["trail"].as_array().map(Vec::len), e["trail"].as_array().map(Vec::len));
    let html = ok(&s.store_only(&["report", "changes", "--format", "html"], "2026-11-22T16:00:00Z"));
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<h2>Tickets requested</h2>"));

    // the dashboard: one self-contained file, every chart drawn in a real browser
    let page = s.dir.path().join("dashboard.html");
    ok(&s.run(&["report", "dashboard", "-o", page.to_str().unwrap()], "2026-11-22T16:00:00Z"));
    let text = std::fs::read_to_string(&page).unwrap();
    assert_eq!(
        text.matches("://").count(),
        text.matches("http://www.w3.org/2000/svg").count(),
        "nothing fetched at view time"
    );
    assert!(text.contains("1 revoked, 1 automatically"), "the latency chart draws the sweeper's revocation");
    assert!(text.contains("3 privileges held; 0 declared but missing"), "coverage after remediation");
    assert!(text.contains("<th>Standing login roles</th>"), "the governance figures of the scan");
    chromium_renders(&page, &["drift-score", "coverage", "revocation-latency"], "dashboard.png");
}

/// A page headless in Debian's Chromium: the DOM after load, and what reached the console
/// as an error (console messages, uncaught exceptions, refused loads); with `screenshot`, a
/// picture of it kept in target/tmp/test-artifacts.
fn chromium(page: &Path, screenshot: Option<&str>) -> (String, Vec<String>) {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("Chromium is installed (scripts/test installs Debian's chromium when it is absent)");
    let profile = tempfile::tempdir().unwrap();
    let base = |extra: &[&str]| {
        let mut c = std::process::Command::new(chromium);
        c.args(["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage"])
            .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .args(["--enable-logging=stderr", "--v=0", "--window-size=1280,1600"])
            .args(extra)
            .arg(format!("file://{}", page.display()));
        c.output().expect("chromium runs")
    };
    let dom = base(&["--dump-dom", "--virtual-time-budget=2000"]);
    let stdout = String::from_utf8_lossy(&dom.stdout).into_owned();
    let console = String::from_utf8_lossy(&dom.stderr)
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught") || l.contains("Refused to"))
        .map(str::to_owned)
        .collect();
    if let Some(name) = screenshot {
        let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-artifacts");
        std::fs::create_dir_all(&artifacts).unwrap();
        let shot = artifacts.join(name);
        let _ = std::fs::remove_file(&shot);
        let out = base(&[&format!("--screenshot={}", shot.display())]);
        assert!(shot.exists(), "screenshot: {}", String::from_utf8_lossy(&out.stderr));
        assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "a real picture");
    }
    (stdout, console)
}

/// Renders a dashboard: every chart present and drawn, `with_data` of them drawing data, no
/// console error, and a screenshot kept as a test artifact.
fn chromium_renders(page: &Path, with_data: &[&str], screenshot: &str) {
    let (dom, console) = chromium(page, Some(screenshot));
    let charts = format!("data-charts=\"{}\"", grantwarden_core::dashboard::CHARTS.len());
    assert!(dom.contains(&charts), "every chart drew:\n{console:#?}\n{}", &dom[..dom.len().min(400)]);
    for id in grantwarden_core::dashboard::CHARTS {
        assert!(dom.contains(&format!("id=\"{id}\"")), "{id}");
    }
    let drew: Vec<&str> = dom
        .split("data-charts-with-data=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the check script ran")
        .split_whitespace()
        .collect();
    for id in with_data {
        assert!(drew.contains(id), "chart {id} drew data: only {drew:?} did");
    }
    assert!(console.is_empty(), "console errors: {console:#?}");
}

#[test]
fn the_console_check_catches_an_error_a_page_makes() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("broken.html");
    std::fs::write(&page, "<!DOCTYPE html><html><body><script>console.error('broken chart');</script></body></html>")
        .unwrap();
    let (_, console) = chromium(&page, None);
    assert!(console.iter().any(|l| l.contains("broken chart")), "{console:#?}");
}
