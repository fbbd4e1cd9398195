//! The stack deployed for real: infra/template.yaml on MiniStack
//! (`scripts/local-stack up`, which scripts/test runs), the functions running
//! as processes of the emulator, started by their real triggers only: the
//! schedules, the HTTP API, SQS and DynamoDB-stream mappings, EventBridge
//! Scheduler. No test here calls a handler; each acts as a person or a
//! provisioning system would and reads what the functions left behind.
//!
//! The scenarios need the stack deployed with
//! `RemediationMode=revoke-unauthorized RemediationExecute=true` and a
//! one-minute scan interval (scripts/test's parameters).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use grantwarden_aws::DynamoStore;
use grantwarden_core::audit::event::EventKind;
use grantwarden_core::finding::{FindingAge, FindingKind};
use grantwarden_core::report::{Finding, Report, Status};
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::{FindingStore, TicketStore};
use grantwarden_core::ticket::{TicketStatus, Trigger};
use grantwarden_e2e::stack::{Stack, eventually, eventually_every};
use grantwarden_testkit::TestDb;

const SCORING: &str = "infra/scoring.yaml";
const POLICY: &str = "infra/policy.example.yaml";

/// A scan starts within a minute; extract, diff and remediation take seconds.
const SCAN_WAIT: Duration = Duration::from_secs(180);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The CLI binary, built beside this test by the same `cargo build`.
fn grantwarden(stack: &Stack) -> Command {
    let exe = std::env::current_exe().unwrap();
    let bin = exe.parent().and_then(|deps| deps.parent()).unwrap().join("grantwarden");
    assert!(bin.exists(), "{} is not built (cargo build --workspace --bins)", bin.display());
    let mut cmd = Command::new(bin);
    cmd.current_dir(root())
        .env("AWS_ENDPOINT_URL", &stack.endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("GRANTWARDEN_STATE")
        .env_remove("GRANTWARDEN_POLICY");
    cmd
}

fn deployed_for_these_tests(stack: &Stack) {
    let want =
        [("RemediationMode", "revoke-unauthorized"), ("RemediationExecute", "true"), ("ScanInterval", "1minute")];
    for (name, value) in want {
        assert_eq!(
            stack.parameter(name),
            Some(value),
            "the stack was deployed with {name}={:?}; these tests need {value} (scripts/test's parameters)",
            stack.parameter(name)
        );
    }
}

/// What a finding is, without its age-weighted score.
fn shape(r: &Report) -> Vec<String> {
    let mut out: Vec<String> = r
        .findings
        .iter()
        .map(|f| {
            format!("{:?} {:?} {} {} {:?} {:?}", f.kind, f.severity, f.grantee, f.privilege, f.object, f.exception_id)
        })
        .collect();
    out.sort();
    out
}

fn baseline(db: &TestDb, roles: &str) -> String {
    let ignore: Vec<String> = db.ignore_others().iter().map(|p| format!("{p:?}")).collect();
    format!(
        "version: 1\nroles:\n{roles}public:\n  grants:\n    - {{ privileges: [USAGE], on: schema, name: public }}\nignore_roles: [{}]\n",
        ignore.join(", ")
    )
}

/// `billing.invoices`, read by role `reader` as declared, and role `other`,
/// declared holding nothing; returns the baseline that says so.
async fn reader_and_other(db: &TestDb, reader: &str, other: &str) -> String {
    db.exec(&format!(
        "CREATE ROLE {reader_}; CREATE ROLE {other_};
         CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);
         GRANT USAGE ON SCHEMA billing TO {reader_}; GRANT SELECT ON billing.invoices TO {reader_};",
        reader_ = db.ident(reader),
        other_ = db.ident(other),
    ))
    .await;
    baseline(
        db,
        &format!(
            "  {reader}:\n    grants:\n      - {{ privileges: [USAGE], on: schema, name: billing }}\n      - {{ privileges: [SELECT], on: table, name: billing.invoices }}\n  {other}: {{}}\n",
            reader = db.role(reader),
            other = db.role(other),
        ),
    )
}

async fn holds(db: &TestDb, role: &str, privilege: &str, table: &str) -> bool {
    let c = db.client().await;
    let row = c
        .query_one("SELECT pg_catalog.has_table_privilege($1::text, $2::text, $3::text)", &[&role, &table, &privilege])
        .await
        .unwrap();
    row.get(0)
}

#[tokio::test]
async fn the_schedule_scans_and_the_report_in_s3_is_what_plan_reports() {
    let stack = Stack::get().await;
    deployed_for_these_tests(&stack);
    let target = TargetId::new("e2e-scan").unwrap();
    let db = TestDb::new().await;
    db.exec(&format!(
        "CREATE ROLE {ro}; CREATE ROLE {rogue};
         CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int); CREATE TABLE billing.refunds (id int);
         GRANT USAGE ON SCHEMA billing TO {ro}; GRANT SELECT ON billing.invoices TO {ro};
         GRANT SELECT ON billing.refunds TO {rogue}; ALTER ROLE {rogue} CREATEROLE;",
        ro = db.ident("app_ro"),
        rogue = db.ident("rogue"),
    ))
    .await;
    let baseline = baseline(
        &db,
        &format!(
            "  {ro}:\n    grants:\n      - {{ privileges: [USAGE], on: schema, name: billing }}\n      - {{ privileges: [SELECT, UPDATE], on: table, name: billing.invoices }}\n",
            ro = db.role("app_ro")
        ),
    );
    // `grantwarden plan` on the same database and configuration, before the
    // stack sees the target (remediation may change the database after its scan)
    let dir = tempfile::tempdir().unwrap();
    let baseline_file = dir.path().join("baseline.yaml");
    std::fs::write(&baseline_file, &baseline).unwrap();
    let out = grantwarden(&stack)
        .args(["plan", "--format", "json", "--target", target.as_str(), "--scoring", SCORING, "--policy", POLICY])
        .arg("--database")
        .arg(db.url())
        .arg("--baseline")
        .arg(&baseline_file)
        .arg("--state")
        .arg(dir.path().join("state.db"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "plan finds the drift: {}", String::from_utf8_lossy(&out.stderr));
    let local: Report = serde_json::from_slice(&out.stdout).unwrap();

    let since = Utc::now();
    stack.register(&target, &db, "", &baseline).await;
    let started = Instant::now();
    let aws = eventually("a report of a scan that began after the target was registered", SCAN_WAIT, || {
        stack.report_since(&target, since)
    })
    .await;
    eprintln!("scheduled scan reported {:.1} s after the target was registered", started.elapsed().as_secs_f64());

    assert!(aws.summary.complete, "{:?}", aws.summary.failed_chunks);
    assert_eq!(aws.summary.status, Status::Alert);
    assert_eq!(shape(&aws), shape(&local), "the stack's report and plan's differ");
    let counts = |r: &Report| (r.summary.unauthorized, r.summary.missing, r.summary.orphaned, r.summary.excepted);
    assert_eq!(counts(&aws), counts(&local));
    assert_eq!((aws.summary.score, aws.summary.status), (local.summary.score, local.summary.status));
    // (the snapshots' hashes differ: roles are cluster-wide, and the tests
    // running beside this one create theirs between the two reads)
}

/// A webhook body documenting a grant the provisioning system made.
fn grant_webhook(
    db: &TestDb,
    target: &TargetId,
    delivery: &str,
    role: &str,
    expires_at: DateTime<Utc>,
) -> serde_json::Value {
    serde_json::json!({
        "delivery_id": format!("{}-{delivery}", db.prefix), "source": "okta-workflows", "target": target.as_str(),
        "principal": "alice@example.com", "role": role,
        "privileges": ["SELECT", "USAGE"], "object": { "type": "schema", "name": "billing" },
        "justification": "INC-4411 debugging", "requested_by": "alice@example.com",
        "expires_at": expires_at.to_rfc3339(),
    })
}

#[tokio::test]
async fn a_signed_webhook_makes_a_ticket_and_timers_whose_first_to_fire_revokes_the_grant_after_expiry() {
    let stack = Stack::get().await;
    let target = TargetId::new("e2e-expiry").unwrap();
    let db = TestDb::new().await;
    let role = db.role("alice_tmp");
    db.exec(&format!(
        "CREATE ROLE {tmp}; CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);
         GRANT USAGE ON SCHEMA billing TO {tmp}; GRANT SELECT ON billing.invoices TO {tmp};",
        tmp = db.ident("alice_tmp"),
    ))
    .await;
    stack.register(&target, &db, "", &baseline(&db, "")).await;
    let key = stack.webhook_key().await;

    let expires_at = (Utc::now() + chrono::Duration::seconds(40)).trunc_subsecs(0);
    let body = grant_webhook(&db, &target, "expiry", &role, expires_at);
    let created = stack.post_signed(&key, "/webhooks/grants", &body).await;
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    let ticket_id = created.json()["id"].as_str().expect("the ticket id").to_owned();
    assert_eq!(created.json()["status"], "active", "{}", created.json());

    // the same delivery again, signed anew (30 s back: never the first
    // one's second, whose signature would be a replay), is the same ticket;
    // a forged one is refused
    let again = stack.post_signed_at(&key, "/webhooks/grants", &body, 30).await;
    assert_eq!((again.status, again.json()["id"].as_str()), (200, Some(ticket_id.as_str())));
    let forged = stack.post_signed(b"not-the-key", "/webhooks/grants", &body).await;
    assert_eq!(forged.status, 401);

    let store = DynamoStore::new(&stack.clients, &stack.settings);
    let ticket = store.ticket(&ticket_id).await.unwrap().expect("the ticket is in DynamoDB").value;
    assert_eq!(ticket.status(), TicketStatus::Active);
    let lease = stack
        .clients
        .dynamodb
        .get_item()
        .table_name(&stack.settings.leases_table)
        .key("ticket_id", aws_sdk_dynamodb::types::AttributeValue::S(ticket_id.clone()))
        .send()
        .await
        .unwrap();
    assert!(lease.item.is_some(), "a lease for the ticket");
    let schedules =
        stack.clients.scheduler.list_schedules().group_name(&stack.settings.schedule_group).send().await.unwrap();
    assert!(
        schedules.schedules().iter().any(|s| s.name().is_some_and(|n| n.contains(&ticket_id))),
        "a one-time schedule at the ticket's expiry: {:?}",
        schedules.schedules()
    );
    assert!(holds(&db, &role, "SELECT", "billing.invoices").await);

    let revoked = eventually("the ticket revoked after its expiry", Duration::from_secs(120), || async {
        let t = store.ticket(&ticket_id).await.ok()??.value;
        (t.status() == TicketStatus::Revoked).then_some(t)
    })
    .await;
    let revocation = revoked.revocation().expect("the revocation is recorded");
    eprintln!(
        "expiry {} -> revocation committed {} by {:?}: {} ms",
        expires_at, revocation.at, revocation.trigger, revocation.latency_ms
    );
    assert!(revocation.at >= expires_at, "never before the expiry");
    assert!(
        matches!(revocation.trigger, Trigger::Schedule | Trigger::Sweeper),
        "a timer revoked it, not a person: {:?}",
        revocation.trigger
    );
    assert!(!holds(&db, &role, "SELECT", "billing.invoices").await, "the grant is gone from PostgreSQL");
}

#[tokio::test]
async fn every_journal_event_reaches_the_locked_archive_and_verifies() {
    let stack = Stack::get().await;
    let target = TargetId::new("e2e-audit").unwrap();
    let db = TestDb::new().await;
    let role = db.role("bob_tmp");
    db.exec(&format!("CREATE ROLE {}; CREATE SCHEMA billing;", db.ident("bob_tmp"))).await;
    stack.register(&target, &db, "", &baseline(&db, "")).await;
    let key = stack.webhook_key().await;
    let body = grant_webhook(&db, &target, "audit", &role, Utc::now() + chrono::Duration::hours(1));
    let created = stack.post_signed(&key, "/webhooks/grants", &body).await;
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));

    let bucket = stack.resource("AuditBucket").to_owned();
    // the deployed bucket's Object Lock, not the template's intent
    let lock = stack.clients.s3.get_object_lock_configuration().bucket(&bucket).send().await.unwrap();
    let rule = lock.object_lock_configuration().and_then(|c| c.rule()).and_then(|r| r.default_retention());
    assert_eq!(
        rule.map(|r| (r.mode().map(|m| m.as_str().to_owned()), r.days())),
        Some((stack.parameter("AuditRetentionMode").map(str::to_owned).or(Some("COMPLIANCE".into())), Some(2555))),
        "the audit bucket is locked by default"
    );

    // the ticket's events reach its chain through the tickets stream (revoke appends
    // what the write left in its outbox), and the journal stream archives them all
    let store = DynamoStore::new(&stack.clients, &stack.settings);
    let journal = eventually("the ticket's events on its chain", Duration::from_secs(60), || async {
        let journal = grantwarden_core::audit::AuditJournal::events(&store, target.as_str()).await.ok()?;
        journal.iter().any(|e| e.kind == EventKind::TicketRequested).then_some(journal)
    })
    .await;
    let prefix = format!("audit/{}/", grantwarden_aws::objects::key_segment(&target));
    let archived = eventually("every journal event archived", Duration::from_secs(60), || async {
        let listed = stack.clients.s3.list_objects_v2().bucket(&bucket).prefix(&prefix).send().await.ok()?;
        let keys: Vec<String> = listed.contents().iter().filter_map(|o| o.key().map(str::to_owned)).collect();
        (keys.len() >= journal.len()).then_some(keys)
    })
    .await;

    let out = grantwarden(&stack)
        .args(["audit", "verify", "--bucket", &bucket, "--journal-table", &stack.settings.journal_table])
        .args(["--chain", target.as_str(), "--format", "json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "audit verify: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("intact"), "{stdout}");

    // a locked version can be neither deleted nor have its retention shortened
    let key = &archived[0];
    let head = stack.clients.s3.head_object().bucket(&bucket).key(key).send().await.unwrap();
    let version = head.version_id().expect("a versioned object").to_owned();
    assert!(head.object_lock_retain_until_date().is_some(), "{key} carries its retention");
    let deleted = stack
        .clients
        .s3
        .delete_object()
        .bucket(&bucket)
        .key(key)
        .version_id(&version)
        .bypass_governance_retention(true)
        .send()
        .await;
    assert!(deleted.is_err(), "deleting a locked version is refused");
    let shorter = aws_sdk_s3::types::ObjectLockRetention::builder()
        .mode(aws_sdk_s3::types::ObjectLockRetentionMode::Compliance)
        .retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(Utc::now().timestamp() + 60))
        .build();
    let shortened = stack
        .clients
        .s3
        .put_object_retention()
        .bucket(&bucket)
        .key(key)
        .version_id(&version)
        .retention(shorter)
        .bypass_governance_retention(true)
        .send()
        .await;
    assert!(shortened.is_err(), "shortening a retention is refused");
    assert!(stack.clients.s3.head_object().bucket(&bucket).key(key).version_id(&version).send().await.is_ok());
}

async fn log_in(config: &tokio_postgres::Config) -> Option<tokio_postgres::Client> {
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.ok()?;
    tokio::spawn(connection);
    Some(client)
}

#[tokio::test]
async fn a_just_in_time_credential_is_issued_through_the_tickets_stream_and_dropped_at_expiry() {
    let stack = Stack::get().await;
    let target = TargetId::new("e2e-access").unwrap();
    // a cluster that checks passwords: logging in proves the credential
    let db = TestDb::with_passwords().await;
    db.exec("CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int); INSERT INTO billing.invoices VALUES (1);")
        .await;
    let admin: tokio_postgres::Config = db.url().parse().unwrap();
    let password = String::from_utf8(admin.get_password().unwrap_or_default().to_vec()).unwrap();
    stack.register(&target, &db, &password, &baseline(&db, "")).await;
    let key = stack.webhook_key().await;

    let id = format!("{}-jit", db.prefix);
    let request = serde_json::json!({
        "id": id, "identity": "alice@example.com", "target": target.as_str(), "path": "read-only",
        "scope": { "on": "tables", "schema": "billing", "tables": ["invoices"] },
        "duration": "75s", "justification": "CHG-77 month-end figures",
    });
    // the webhook key names nobody but grant requesters: a person's request comes
    // from a sender the registry lets name them (or with their own token)
    let forged = stack.post_signed(&key, "/requests", &request).await;
    assert_eq!(forged.status, 403, "{}", String::from_utf8_lossy(&forged.body));
    let servicenow = stack.sender_key("servicenow").await;
    let created = stack.post_as_sender("servicenow", &servicenow, "/requests", &request).await;
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    assert_eq!(created.json()["status"], "active", "read-only is automatic: {}", created.json());
    let ticket_id = created.json()["id"].as_str().unwrap().to_owned();

    // the tickets stream's INSERT of an active access ticket makes revoke issue it
    let store = DynamoStore::new(&stack.clients, &stack.settings);
    let secret_name = format!("{}{ticket_id}", stack.settings.access_secret_prefix);
    let secret = eventually("the credential in Secrets Manager", Duration::from_secs(60), || async {
        let out = stack.clients.secrets.get_secret_value().secret_id(&secret_name).send().await.ok()?;
        serde_json::from_str::<serde_json::Value>(out.secret_string()?).ok()
    })
    .await;
    let user = secret["username"].as_str().unwrap().to_owned();
    let mut login = tokio_postgres::Config::new();
    login
        .host(secret["host"].as_str().unwrap())
        .port(secret["port"].as_u64().unwrap() as u16)
        .dbname(secret["dbname"].as_str().unwrap())
        .user(&user)
        .password(secret["password"].as_str().unwrap());
    let c = eventually("a login with the issued credential", Duration::from_secs(30), || log_in(&login)).await;
    let n: i64 = c.query_one("SELECT count(*) FROM billing.invoices", &[]).await.unwrap().get(0);
    assert_eq!(n, 1, "the credential reads its scope");
    drop(c);
    let mut wrong = login.clone();
    wrong.password("not-the-password");
    assert!(log_in(&wrong).await.is_none(), "the password is checked");

    let ticket = eventually("the ticket revoked at its expiry", Duration::from_secs(150), || async {
        let t = store.ticket(&ticket_id).await.ok()??.value;
        (t.status() == TicketStatus::Revoked).then_some(t)
    })
    .await;
    eprintln!("access ticket revoked by {:?}", ticket.revocation().map(|r| (&r.trigger, r.latency_ms)));
    let roles: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM pg_catalog.pg_roles WHERE rolname = $1", &[&user])
        .await
        .unwrap()
        .get(0);
    assert_eq!(roles, 0, "the issued role is dropped");
    eventually("the credential's secret deleted", Duration::from_secs(30), || async {
        match stack.clients.secrets.describe_secret().secret_id(&secret_name).send().await {
            Err(_) => Some(()),
            Ok(d) if d.deleted_date().is_some() => Some(()),
            Ok(_) => None,
        }
    })
    .await;
    assert!(log_in(&login).await.is_none(), "the credential no longer logs in");
}

#[tokio::test]
async fn with_remediation_on_a_hand_made_grant_is_revoked_after_the_next_scheduled_scan() {
    let stack = Stack::get().await;
    deployed_for_these_tests(&stack);
    let target = TargetId::new("e2e-remediate").unwrap();
    let db = TestDb::new().await;
    let (ro, intruder) = (db.role("app_ro"), db.role("intruder"));
    let baseline = reader_and_other(&db, "app_ro", "intruder").await;
    // by hand, outside any ticket
    db.exec(&format!(
        "GRANT USAGE ON SCHEMA billing TO {i}; GRANT DELETE ON billing.invoices TO {i};",
        i = db.ident("intruder")
    ))
    .await;
    let since = Utc::now();
    stack.register(&target, &db, "", &baseline).await;
    let report = eventually("the scan's report", SCAN_WAIT, || stack.report_since(&target, since)).await;
    assert!(report.summary.complete);
    assert!(report.summary.unauthorized >= 1, "the hand-made grant is drift: {:?}", shape(&report));
    eventually("the hand-made grant revoked by the remediation queue", Duration::from_secs(90), || async {
        (!holds(&db, &intruder, "DELETE", "billing.invoices").await).then_some(())
    })
    .await;
    assert!(holds(&db, &ro, "SELECT", "billing.invoices").await, "declared grants are left alone");
    let clean = eventually("a later scan without drift", SCAN_WAIT, || async {
        let r = stack.report_since(&target, report.taken_at + chrono::Duration::seconds(1)).await?;
        Some(r)
    })
    .await;
    assert_eq!(clean.summary.unauthorized, 0, "{:?}", shape(&clean));
}

#[tokio::test]
async fn the_portal_function_answers_behind_its_function_url() {
    let stack = Stack::get().await;
    let portal = stack.portal_url();
    // its cold start read the cookie key from Secrets Manager and the registry from S3
    let home = stack.get_url(&format!("{portal}/")).await;
    assert_eq!(home.status, 303, "{}", String::from_utf8_lossy(&home.body));
    assert_eq!(home.headers["location"], "/login?return_to=/", "sign in first");
    let csp = home.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(home.headers["cache-control"], "no-store");
    // deployed without OidcIssuer, nobody can sign in, and the page says why
    let login = stack.get_url(&format!("{portal}/login")).await;
    assert_eq!(login.status, 503);
    assert!(String::from_utf8_lossy(&login.body).contains("GRANTWARDEN_OIDC_ISSUER"));
    let css = stack.get_url(&format!("{portal}/static/portal.css")).await;
    assert_eq!(css.status, 200);
}

/// The Slack app on the deployed stack: a fake Slack Web API on the port the
/// stack was deployed with (`SlackApiUrl`), accepting the bot token in the
/// stack's `SlackBotToken` secret. A request's journal event reaches the
/// notify function through the journal's stream, its card goes through the
/// notice queue to Slack; a click on the card, signed with the stack's
/// `SlackSigningSecret`, reaches the portal function's Function URL; the card
/// is then updated and the requester told, by the same path.
#[tokio::test]
async fn a_request_card_reaches_slack_and_a_deny_from_its_button_updates_it() {
    let stack = Stack::get().await;
    assert_eq!(stack.parameter("SlackEnabled"), Some("true"), "scripts/test deploys with SlackEnabled=true");
    let api = stack.parameter("SlackApiUrl").expect("SlackApiUrl").to_owned();
    let addr = api.trim_start_matches("http://").trim_end_matches("/api").to_owned();
    let slack = grantwarden_testkit::slack::FakeSlack::start_on(&addr, &stack.secret("SlackBotToken").await).await;
    slack.add_channel("C0DBACCESS");
    slack.add_channel("C0SECURITY");
    slack.add_user("UALICE", "alice@example.com", true);
    slack.add_user("UDBA", "dba-lead@example.com", true);
    slack.add_user("UMALLORY", "mallory@example.com", true);

    let target = TargetId::new("e2e-slack").unwrap();
    let db = TestDb::new().await;
    db.exec("CREATE SCHEMA billing; CREATE TABLE billing.customers (id int);").await;
    stack.register(&target, &db, "", &baseline(&db, "")).await;
    let servicenow = stack.sender_key("servicenow").await;
    let request = serde_json::json!({
        "id": format!("{}-slack", db.prefix), "identity": "alice@example.com", "target": target.as_str(),
        "path": "read-only", "scope": { "on": "tables", "schema": "billing", "tables": ["customers"] },
        "duration": "30m", "justification": "CHG-88 a customer's invoice",
    });
    let created = stack.post_as_sender("servicenow", &servicenow, "/requests", &request).await;
    assert_eq!(created.status, 201, "{}", String::from_utf8_lossy(&created.body));
    assert_eq!(created.json()["status"], "pending_approval", "a sensitive table needs one approval");
    let ticket = created.json()["id"].as_str().unwrap().to_owned();

    let card = eventually("the request's card in Slack", Duration::from_secs(90), || async {
        slack.messages("C0DBACCESS").into_iter().find(|m| m["blocks"].to_string().contains(&ticket))
    })
    .await;
    assert!(card["blocks"].to_string().contains("grantwarden_approve"), "one approval of read-only is given in Slack");

    let secret = stack.secret("SlackSigningSecret").await;
    let click = |user: &str, action: &str| {
        let body = grantwarden_testkit::slack::click_body(&slack.team, user, "C0DBACCESS", action, &ticket);
        let ts = Utc::now().timestamp().to_string();
        let signature = grantwarden_slack::sign(secret.as_bytes(), &ts, body.as_bytes());
        let headers = vec![
            ("content-type", "application/x-www-form-urlencoded".to_owned()),
            ("x-slack-request-timestamp", ts),
            ("x-slack-signature", signature),
        ];
        (headers, body.into_bytes())
    };
    let url = format!("{}/slack/interactions", stack.portal_url());
    let (headers, body) = click("UMALLORY", "grantwarden_approve");
    let refused = stack.post_url(&url, &headers, body).await;
    assert_eq!(refused.status, 403, "{}", String::from_utf8_lossy(&refused.body));
    let (headers, body) = click("UDBA", "grantwarden_deny");
    let denied = stack.post_url(&url, &headers, body.clone()).await;
    assert_eq!(denied.status, 200, "{}", String::from_utf8_lossy(&denied.body));
    let replayed = stack.post_url(&url, &headers, body).await;
    assert_eq!(replayed.status, 409, "the same signed click twice");

    let store = DynamoStore::new(&stack.clients, &stack.settings);
    let t = store.ticket(&ticket).await.unwrap().unwrap().value;
    assert_eq!(t.status(), TicketStatus::Denied);
    eventually("the card updated for everyone", Duration::from_secs(90), || async {
        let card = slack.messages("C0DBACCESS").into_iter().find(|m| m["blocks"].to_string().contains(&ticket))?;
        card["blocks"].to_string().contains("Denied by dba-lead@example.com").then_some(())
    })
    .await;
    eventually("alice told", Duration::from_secs(60), || async {
        slack
            .calls("chat.postMessage")
            .into_iter()
            .find(|c| c["channel"] == "UALICE" && c["text"].as_str().is_some_and(|t| t.starts_with("Denied:")))
    })
    .await;
}

/// The database log group scripts/test deploys the stack with
/// (`DatabaseLogGroup`, made by `scripts/local-stack` as RDS makes it when an
/// instance exports its log), which `QueryTargets` names as the log of
/// target `e2e-queries`.
const DATABASE_LOG_GROUP: &str = "/aws/rds/instance/grantwarden-e2e/postgresql";

/// A CloudWatch Logs client of the emulator: the test writes the database's
/// log as RDS would (no function writes to that group).
fn cloudwatch_logs(stack: &Stack) -> aws_sdk_cloudwatchlogs::Client {
    use aws_sdk_cloudwatchlogs::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_cloudwatchlogs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(&stack.endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "emulator"))
        .build();
    aws_sdk_cloudwatchlogs::Client::from_conf(config)
}

/// A line of an RDS PostgreSQL log as the instance exports it to CloudWatch
/// Logs (the fixed prefix `%t:%r:%u@%d:[%p]:`) holding pgaudit's `entry`.
fn rds_audit_line(at: DateTime<Utc>, user: &str, database: &str, pid: u32, entry: &str) -> String {
    let t = at.format("%Y-%m-%d %H:%M:%S");
    format!("{t} UTC:10.0.1.5(51790):{user}@{database}:[{pid}]:LOG:  AUDIT: {entry}")
}

fn log_events(at: DateTime<Utc>, lines: &[String]) -> Vec<aws_sdk_cloudwatchlogs::types::InputLogEvent> {
    lines
        .iter()
        .map(|line| {
            aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
                .timestamp(at.timestamp_millis())
                .message(line)
                .build()
                .expect("a log event has its time and message")
        })
        .collect()
}

/// `role`'s open untagged finding of `target` with its age, once it is there.
async fn untagged_of(
    store: &DynamoStore,
    target: &TargetId,
    role: &str,
    privilege: &str,
) -> Option<(Finding, FindingAge)> {
    let open = store.open_with_age(target).await.ok()?;
    open.into_iter()
        .find(|(f, _)| f.kind == FindingKind::Untagged && f.grantee.as_str() == role && f.privilege.text() == privilege)
}

/// The CloudWatch Logs subscription on the database's log group, fired by
/// the emulator at PutLogEvents as CloudWatch Logs fires it on AWS: a GRANT
/// made by hand (no ticket covers it), as pgaudit logs it on RDS, becomes an
/// untagged finding within the delivery, and the READ entries beside it
/// query events in the data bucket; the same log events delivered again add
/// nothing. The latency from PutLogEvents to the finding is printed: on the
/// emulator the subscription delivers at once, on AWS CloudWatch Logs adds
/// its own delay.
#[tokio::test]
async fn a_grant_the_database_logs_is_an_untagged_finding_through_the_log_subscription() {
    use grantwarden_core::audit::AuditJournal;
    use grantwarden_core::audit::event::QueriesIngested;
    use grantwarden_core::queries::{QueryFilter, QueryStore};

    let stack = Stack::get().await;
    let target = TargetId::new("e2e-queries").unwrap();
    let query_targets = format!("{DATABASE_LOG_GROUP}={target}");
    for (name, value) in [("DatabaseLogGroup", DATABASE_LOG_GROUP), ("QueryTargets", query_targets.as_str())] {
        assert_eq!(
            stack.parameter(name),
            Some(value),
            "the query-audit scenario needs {name}={value} (scripts/test's)"
        );
    }
    let db = TestDb::new().await;
    let (app, mallory) = (db.role("app"), db.role("mallory"));
    stack.register(&target, &db, "", &reader_and_other(&db, "app", "mallory").await).await;

    // the instance's log stream, as RDS makes one in the group (one per run here)
    let logs = cloudwatch_logs(&stack);
    let stream = format!("{}.0", db.prefix);
    logs.create_log_stream().log_group_name(DATABASE_LOG_GROUP).log_stream_name(&stream).send().await.unwrap();
    let source = format!("{DATABASE_LOG_GROUP}/{stream}");
    let put = |events: Vec<aws_sdk_cloudwatchlogs::types::InputLogEvent>| {
        logs.put_log_events().log_group_name(DATABASE_LOG_GROUP).log_stream_name(&stream).set_log_events(Some(events))
    };

    // two reads by the application, and a GRANT by hand in another session
    let at = Utc::now();
    let lines = [
        rds_audit_line(
            at,
            &app,
            &db.name,
            4242,
            r#"SESSION,1,1,READ,SELECT,TABLE,billing.invoices,"select id from billing.invoices where id = 42",<not logged>"#,
        ),
        rds_audit_line(
            at,
            &app,
            &db.name,
            4242,
            r#"SESSION,2,1,READ,SELECT,TABLE,billing.invoices,"select count(*) from billing.invoices",<not logged>"#,
        ),
        rds_audit_line(
            at,
            "postgres",
            &db.name,
            4343,
            &format!(r#"SESSION,1,1,ROLE,GRANT,,,"GRANT SELECT ON TABLE billing.invoices TO {mallory}",<not logged>"#),
        ),
    ];
    let store = DynamoStore::new(&stack.clients, &stack.settings);
    let started = Instant::now();
    put(log_events(at, &lines)).send().await.expect("PutLogEvents");
    let (finding, age) =
        eventually_every("the GRANT's untagged finding", Duration::from_secs(60), Duration::from_millis(20), || {
            untagged_of(&store, &target, &mallory, "SELECT")
        })
        .await;
    let (visible, visible_at) = (started.elapsed(), Utc::now());
    eprintln!(
        "subscription latency, the reads and the GRANT: PutLogEvents to the untagged finding visible {} ms; \
         from the log event's timestamp to the function handling it (the finding's first_seen) {} ms, \
         to the finding visible {} ms",
        visible.as_millis(),
        (age.first_seen - at).num_milliseconds(),
        (visible_at - at).num_milliseconds(),
    );
    let object = serde_json::to_string(&finding.object).unwrap();
    assert!(object.contains("billing") && object.contains("invoices"), "{object}");
    assert!(finding.severity >= grantwarden_core::scoring::Severity::High, "{finding:?}");
    assert!(finding.exception_id.is_none(), "no ticket covers it: {finding:?}");

    // journaled: the finding, and the delivery as one batch of three entries
    let (batch, opened) =
        eventually("the finding and the batch on the target's chain", Duration::from_secs(30), || async {
            let chain = AuditJournal::events(&store, target.as_str()).await.ok()?;
            let batch = chain
                .iter()
                .filter(|e| e.kind == EventKind::QueriesIngested)
                .filter_map(|e| e.detail_as::<QueriesIngested>().ok())
                .find(|b| b.source == source)?;
            let about_mallory = |kind: EventKind| {
                chain.iter().filter(|e| e.kind == kind && e.detail.to_string().contains(&mallory)).count()
            };
            Some((batch, (about_mallory(EventKind::FindingOpened), about_mallory(EventKind::QueryAlert))))
        })
        .await;
    assert_eq!(opened, (1, 1), "the GRANT's finding and its alert journaled once");
    assert_eq!((batch.records, batch.events, batch.rejected), (3, 3, 0), "{batch:?}");

    // the entries as query events, JSON lines under the target's and the day's partition
    let prefix = format!(
        "queries/events/target={}/dt={}/",
        grantwarden_aws::objects::key_segment(&target),
        at.format("%Y-%m-%d")
    );
    let objects: Vec<String> =
        stack.objects().list(&prefix).await.unwrap().into_iter().filter(|k| k.contains(&batch.sha256)).collect();
    assert!(!objects.is_empty(), "the batch's events under {prefix}");
    let queries = grantwarden_aws::S3Queries::new(&stack.clients, &stack.settings);
    let filter =
        QueryFilter { target: Some(target.clone()), from: Some(at.trunc_subsecs(0)), ..QueryFilter::default() };
    let events: Vec<_> =
        queries.query_events(&filter).await.unwrap().into_iter().filter(|e| e.batch == batch.sha256).collect();
    let reads: Vec<_> = events.iter().filter(|e| e.command == "SELECT").collect();
    assert_eq!(reads.len(), 2, "{events:?}");
    for e in &reads {
        assert_eq!((e.user.as_deref(), e.person.as_str()), (Some(app.as_str()), format!("role:{app}").as_str()));
        assert_eq!((e.object.as_deref(), e.ticket.as_deref()), (Some("billing.invoices"), None));
    }
    assert_eq!(reads[0].statement, "select id from billing.invoices where id = ?", "literals redacted");
    assert!(events.iter().any(|e| e.command == "GRANT" && e.user.as_deref() == Some("postgres")), "{events:?}");

    // the same log events again (a subscription delivers at least once): handled, and nothing added
    let again = Utc::now();
    put(log_events(at, &lines)).send().await.expect("PutLogEvents again");
    let function_log = stack.resource("QueriesLogs").to_owned();
    eventually("the queries function's log of the redelivery", Duration::from_secs(30), || async {
        // the emulator writes an invocation's log when it has ended
        let out = logs
            .filter_log_events()
            .log_group_name(&function_log)
            .start_time(again.timestamp_millis())
            .send()
            .await
            .ok()?;
        out.events()
            .iter()
            .filter_map(|e| serde_json::from_str::<serde_json::Value>(e.message()?).ok())
            .any(|line| line["fields"]["delivered_before"] == true && line["span"]["batch"] == batch.sha256.as_str())
            .then_some(())
    })
    .await;
    let chain = AuditJournal::events(&store, target.as_str()).await.unwrap();
    let count = |kind: EventKind, about: &str| {
        chain.iter().filter(|e| e.kind == kind && e.detail.to_string().contains(about)).count()
    };
    assert_eq!(count(EventKind::FindingOpened, &mallory), 1, "the GRANT journaled once");
    assert_eq!(count(EventKind::QueryAlert, &mallory), 1, "the GRANT alerted once");
    assert_eq!(count(EventKind::QueriesIngested, &batch.sha256), 1, "the batch journaled once");
    let (_, age_again) = untagged_of(&store, &target, &mallory, "SELECT").await.expect("still open");
    assert_eq!(age_again.last_seen, age.last_seen, "the GRANT was not routed again");
    let objects_again: Vec<String> =
        stack.objects().list(&prefix).await.unwrap().into_iter().filter(|k| k.contains(&batch.sha256)).collect();
    assert_eq!(objects_again, objects);

    // a later GRANT, the function warm now
    let at = Utc::now();
    let grant = rds_audit_line(
        at,
        "postgres",
        &db.name,
        4343,
        &format!(r#"SESSION,2,1,ROLE,GRANT,,,"GRANT DELETE ON TABLE billing.invoices TO {mallory}",<not logged>"#),
    );
    let started = Instant::now();
    put(log_events(at, &[grant])).send().await.expect("PutLogEvents");
    let (_, age) = eventually_every(
        "the second GRANT's untagged finding",
        Duration::from_secs(60),
        Duration::from_millis(20),
        || untagged_of(&store, &target, &mallory, "DELETE"),
    )
    .await;
    let (visible, visible_at) = (started.elapsed(), Utc::now());
    eprintln!(
        "subscription latency, a later GRANT alone (the function warm): PutLogEvents to the untagged finding \
         visible {} ms; from the log event's timestamp to the function handling it (the finding's first_seen) {} ms, \
         to the finding visible {} ms",
        visible.as_millis(),
        (age.first_seen - at).num_milliseconds(),
        (visible_at - at).num_milliseconds(),
    );
}
