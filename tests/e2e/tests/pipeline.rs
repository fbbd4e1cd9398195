//! The AWS pipeline end to end against moto and a real PostgreSQL: a signed
//! webhook through the intake handler into DynamoDB, the schedule through fan-out, every chunk through
//! extract, the scan record's stream through diff; then the same scenario in
//! local mode must give the same findings.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::dynamodb::Event as StreamEvent;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::SqsEvent;
use chrono::{DateTime, Utc};
use grantwarden_aws::{Clients, DynamoStore, Objects, SecretCache, Settings, provision};
use grantwarden_core::assess::assess;
use grantwarden_core::baseline::Baseline;
use grantwarden_core::pipeline::{ScanLedger, ScanStatus};
use grantwarden_core::policy::PolicyRegistry;
use grantwarden_core::report::{Report, Status};
use grantwarden_core::scoring::ScoringConfig;
use grantwarden_core::signature;
use grantwarden_core::snapshot::{ScanWindow, TargetId, scan_id};
use grantwarden_core::store::TicketStore;
use grantwarden_diff::{Diff, Handled};
use grantwarden_extract::Extract;
use grantwarden_fanout::Fanout;
use grantwarden_intake::{App, StaticKey};
use grantwarden_local::LocalStore;
use grantwarden_postgres::{NoProgress, ScanOptions, Scanner};
use grantwarden_testkit::{TestDb, moto};
use lambda_runtime::{Context, LambdaEvent};

const POLICY: &str = include_str!("../../../infra/policy.example.yaml");
const SCORING: &str = include_str!("../../../infra/scoring.yaml");
const SCHEDULE: &str = include_str!("../../../events/fanout-schedule.json");

/// Diff time: five minutes into the schedule window of events/fanout-schedule.json.
fn now() -> DateTime<Utc> {
    "2026-11-25T10:05:00Z".parse().unwrap()
}

fn clock() -> Arc<dyn grantwarden_aws::Clock> {
    Arc::new(now)
}

fn lambda<T>(payload: T) -> LambdaEvent<T> {
    LambdaEvent { payload, context: Context::default() }
}

/// Everything one test's stack holds.
struct Stack {
    db: TestDb,
    clients: Clients,
    settings: Settings,
    target: TargetId,
    baseline: String,
}

impl Stack {
    /// A database with a temporary grant (to be covered by a ticket) and drift,
    /// and a stack in moto whose configuration points at it.
    async fn new(test: &str) -> Stack {
        let db = TestDb::new().await;
        db.exec(&format!(
            "CREATE ROLE {ro}; CREATE ROLE {tmp}; CREATE ROLE {rogue};
             CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);
             GRANT USAGE ON SCHEMA billing TO {ro}; GRANT SELECT ON billing.invoices TO {ro};
             GRANT USAGE ON SCHEMA billing TO {tmp}; GRANT SELECT ON billing.invoices TO {tmp};
             GRANT INSERT, DELETE ON billing.invoices TO {rogue}; ALTER ROLE {rogue} CREATEROLE;",
            ro = db.ident("app_ro"),
            tmp = db.ident("alice_tmp"),
            rogue = db.ident("rogue"),
        ))
        .await;
        let ignore: Vec<String> = db.ignore_others().iter().map(|p| format!("{p:?}")).collect();
        let baseline = format!(
            "version: 1\nroles:\n  {ro}:\n    grants:\n      - {{ privileges: [USAGE], on: schema, name: billing }}\n      - {{ privileges: [SELECT, UPDATE], on: table, name: billing.invoices }}\npublic:\n  grants:\n    - {{ privileges: [USAGE], on: schema, name: public }}\nignore_roles: [{}]\n",
            ignore.join(", "),
            ro = db.role("app_ro"),
        );
        let clients = Clients::for_endpoint(&moto::endpoint()).await;
        let prefix = moto::unique_prefix(test);
        let target = TargetId::new(format!("{prefix}/orders")).unwrap();
        let mut settings = provision::create(&clients, &prefix).await.unwrap();
        settings.targets = vec![target.clone()];
        let stack = Stack { db, clients, settings, target, baseline };
        stack.put_target_secret(None).await;
        let objects = Objects::new(&stack.clients, &stack.settings);
        let baseline_key =
            stack.settings.baseline_key.replace("{target}", &grantwarden_aws::objects::key_segment(&stack.target));
        objects.put(&baseline_key, stack.baseline.clone().into_bytes(), "application/yaml").await.unwrap();
        let policy_key = format!("{}registry.yaml", stack.settings.policy_prefix);
        objects.put(&policy_key, POLICY.as_bytes().to_vec(), "application/yaml").await.unwrap();
        objects.put(&stack.settings.scoring_key, SCORING.as_bytes().to_vec(), "application/yaml").await.unwrap();
        stack
    }

    /// Writes (or rewrites) the target's RDS-style secret; `dbname` overrides the database.
    async fn put_target_secret(&self, dbname: Option<&str>) {
        let mut secret = self.db.rds_secret(None, Some(""));
        if let Some(name) = dbname {
            secret["dbname"] = name.into();
        }
        let id = self.settings.target_secret_id(&self.target);
        moto::put_secret(&self.clients.secrets, &id, &secret.to_string()).await;
    }

    fn store(&self) -> DynamoStore {
        DynamoStore::new(&self.clients, &self.settings)
    }

    /// A fresh secret cache, so a rewritten secret is read again.
    fn secrets(&self) -> SecretCache {
        SecretCache::new(&self.clients, Duration::ZERO)
    }

    fn webhook(&self) -> Vec<u8> {
        serde_json::json!({
            "delivery_id": "d-e2e-1", "source": "okta-workflows", "target": self.target.as_str(),
            "principal": "alice@example.com", "role": self.db.role("alice_tmp"),
            "privileges": ["SELECT", "USAGE"], "object": { "type": "schema", "name": "billing" },
            "justification": "INC-4411 debugging", "requested_by": "alice@example.com",
            "expires_at": "2026-11-25T12:00:00Z"
        })
        .to_string()
        .into_bytes()
    }

    /// Takes every message off a queue (moto hands them out ten at a time) as an SQS event.
    async fn drain(&self, url: &str, expected: usize) -> SqsEvent {
        moto::drain(&self.clients.sqs, url, expected).await
    }

    /// The scans table's stream, as a Lambda stream event.
    async fn scan_stream(&self) -> StreamEvent {
        moto::table_stream(&self.clients.dynamodb, &self.settings.scans_table).await
    }

    async fn fanout(&self) -> Fanout {
        Fanout::new(&self.clients, self.settings.clone(), self.secrets(), ScanOptions::default(), clock()).unwrap()
    }

    fn extract(&self) -> Extract {
        let options = ScanOptions {
            retry: grantwarden_core::backoff::RetryPolicy {
                max_attempts: 1,
                base: Duration::from_millis(1),
                cap: Duration::from_millis(1),
            },
            ..ScanOptions::default()
        };
        Extract::new(&self.clients, self.settings.clone(), self.secrets(), options, clock()).unwrap()
    }

    fn scan_id(&self) -> String {
        let at: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
        scan_id(&self.target, &ScanWindow::containing(at, self.settings.scan_window_seconds))
    }
}

fn schedule() -> LambdaEvent<EventBridgeEvent<serde_json::Value>> {
    lambda(serde_json::from_str(SCHEDULE).unwrap())
}

/// What a finding is, without its age-weighted score.
fn shape(r: &Report) -> Vec<String> {
    r.findings
        .iter()
        .map(|f| {
            format!("{:?} {:?} {} {} {:?} {:?}", f.kind, f.severity, f.grantee, f.privilege, f.object, f.exception_id)
        })
        .collect()
}

#[tokio::test]
async fn a_scheduled_scan_reports_on_aws_what_local_mode_reports() {
    let stack = Stack::new("pipeline").await;
    let store = stack.store();
    let registry = PolicyRegistry::load(&[("policy.example.yaml".into(), POLICY.into())]).unwrap();
    let scoring = ScoringConfig::from_yaml(SCORING, "scoring.yaml").unwrap();

    // intake: the provisioning system's signed webhook gets the temporary grant a ticket
    let key = b"e2e-webhook-key";
    let intake = App::new(stack.store(), Ok(registry.clone()), StaticKey(key.to_vec()))
        .with_clock(clock())
        .with_known_targets([stack.target.clone()])
        .with_scoring(scoring.clone());
    let body = stack.webhook();
    let sign = |t: i64, body: &[u8]| {
        let request = signature::SignedRequest { method: "POST", path: "/webhooks/grants", body };
        signature::sign_v2(key, t, &request).unwrap()
    };
    // signed `seconds_ago`: each delivery, a retry too, is signed anew
    let signed_ago = |seconds_ago: i64| {
        lambda_http::http::Request::builder()
            .method("POST")
            .uri("/webhooks/grants")
            .header(signature::HEADER, sign(now().timestamp() - seconds_ago, &body))
            .body(lambda_http::Body::from(body.clone()))
            .unwrap()
    };
    let request = || signed_ago(0);
    let created = intake.handle(request()).await;
    assert_eq!(created.status(), 201, "{:?}", created.body());
    let ticket_id = serde_json::from_slice::<serde_json::Value>(created.body().as_ref()).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        intake.handle(request()).await.status(),
        409,
        "the same signed request is served once (replay record in DynamoDB)"
    );
    assert_eq!(intake.handle(signed_ago(1)).await.status(), 200, "a redelivery signed anew is idempotent");
    let tampered = |mut r: lambda_http::Request, header: String| {
        r.headers_mut().insert(signature::HEADER, header.parse().unwrap());
        r
    };
    let forged = tampered(
        request(),
        signature::sign_v2(
            b"not-the-key",
            now().timestamp(),
            &signature::SignedRequest { method: "POST", path: "/webhooks/grants", body: &body },
        )
        .unwrap(),
    );
    assert_eq!(intake.handle(forged).await.status(), 401, "a bad signature");
    let replayed = tampered(request(), sign(now().timestamp() - 600, &body));
    assert_eq!(intake.handle(replayed).await.status(), 401, "a replay of a ten-minute-old delivery");
    let mut changed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    changed["privileges"] = serde_json::json!(["SELECT", "USAGE", "INSERT"]);
    let changed = serde_json::to_vec(&changed).unwrap();
    let conflicting = lambda_http::http::Request::builder()
        .method("POST")
        .uri("/webhooks/grants")
        .header(signature::HEADER, sign(now().timestamp(), &changed))
        .body(lambda_http::Body::from(changed))
        .unwrap();
    assert_eq!(intake.handle(conflicting).await.status(), 409, "the same delivery id with another payload");
    let ticket = store.ticket(&ticket_id).await.unwrap().expect("the ticket is in DynamoDB").value;

    // fan-out: one scan per window, however often the schedule fires
    let fanout = stack.fanout().await;
    let first = fanout.handle(schedule()).await.unwrap();
    assert_eq!((first[0].outcome, first[0].scan_id.as_str()), ("dispatched", stack.scan_id().as_str()));
    let chunks = first[0].chunks_sent;
    assert!(chunks >= 2, "the cluster chunk and at least one schema chunk");
    let again = fanout.handle(schedule()).await.unwrap();
    assert_eq!((again[0].outcome, again[0].chunks_sent), ("already dispatched", 0));

    // extract: every chunk once; a redelivery counts nothing
    let queue = stack.settings.chunk_queue_url.clone().unwrap();
    let batch = stack.drain(&queue, chunks).await;
    assert_eq!(batch.records.len(), chunks, "exactly one message per chunk");
    let extract = stack.extract();
    let response = extract.handle(lambda(batch.clone())).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "{:?}", response.batch_item_failures);
    let record = store.scan(&stack.scan_id()).await.unwrap().unwrap();
    assert_eq!((record.status, record.chunks_done, record.chunks_failed), (ScanStatus::Complete, chunks as u32, 0));
    extract.handle(lambda(batch)).await.unwrap();
    assert_eq!(store.scan(&stack.scan_id()).await.unwrap().unwrap().chunks_done, chunks as u32);

    // an operator's queue subscribed to the alert topic
    let topic = stack.settings.alert_topic_arn.clone().unwrap();
    let inbox = grantwarden_testkit::moto::alert_inbox(
        &stack.clients.sqs,
        &stack.clients.sns,
        &topic,
        &format!("{}-inbox", stack.settings.bucket),
    )
    .await;

    // diff: the stream's one running -> complete record makes the report
    let stream = stack.scan_stream().await;
    let mut converging = stack.settings.clone();
    converging.remediation_mode = grantwarden_core::remediate::Mode::Converge;
    let diff = Diff::new(&stack.clients, &converging, clock()).unwrap();
    let handled = diff.handle(lambda(stream.clone())).await.unwrap();
    let reported: Vec<&Handled> = handled.iter().filter(|h| matches!(h, Handled::Reported { .. })).collect();
    assert_eq!(reported.len(), 1, "{handled:?}");
    let Handled::Reported { key, status, alerted } = reported[0] else { unreachable!() };
    assert_eq!((*status, *alerted), (Status::Alert, true));
    let alerts = stack.drain(&inbox, 1).await;
    assert_eq!(alerts.records.len(), 1, "one alert");
    let envelope: serde_json::Value = serde_json::from_str(alerts.records[0].body.as_deref().unwrap()).unwrap();
    assert!(envelope["Subject"].as_str().unwrap().contains("is alert"), "{envelope}");
    let alert: serde_json::Value = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
    assert_eq!(alert["scan_id"], stack.scan_id());
    assert_eq!(alert["top_findings"][0]["privilege"], "CREATEROLE", "the worst finding first: {alert}");
    let redelivered = diff.handle(lambda(stream)).await.unwrap();
    assert!(redelivered.iter().any(|h| matches!(h, Handled::AlreadyReported { .. })), "{redelivered:?}");

    // remediation: the scan's corrective changes were enqueued once (not again on redelivery),
    // none of them touching the grant the ticket excepts
    let remediation_url = stack.settings.remediation_queue_url.clone().unwrap();
    let remediation = stack.drain(&remediation_url, 1).await;
    assert_eq!(remediation.records.len(), 1);
    let more = stack.clients.sqs.receive_message().queue_url(&remediation_url).send().await.unwrap();
    assert!(more.messages().is_empty(), "enqueued once");
    let request: grantwarden_core::remediate::RemediationRequest =
        serde_json::from_str(remediation.records[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(
        (request.scan_id.as_str(), request.mode),
        (stack.scan_id().as_str(), grantwarden_core::remediate::Mode::Converge)
    );
    assert!(!request.changes.is_empty());
    assert!(request.changes.iter().all(|c| c.role() != Some(&ticket.request().role)), "{:#?}", request.changes);

    let objects = Objects::new(&stack.clients, &stack.settings);
    let aws: Report = objects.get_json(key).await.unwrap().unwrap();
    assert!(aws.governance.is_some(), "the diff's report carries the governance metrics");
    let page = objects.get(&Objects::dashboard_key(&stack.target)).await.unwrap().expect("the dashboard is written");
    let page = String::from_utf8(page).unwrap();
    for id in grantwarden_core::dashboard::CHARTS {
        assert!(page.contains(&format!("id=\"{id}\"")), "chart {id} on the dashboard");
    }
    assert!(page.contains("held;"), "coverage figures on the dashboard");
    assert!(aws.summary.complete);
    let counts = (aws.summary.orphaned, aws.summary.missing, aws.summary.excepted);
    assert_eq!(counts, (3, 1, 2), "{}", shape(&aws).join("\n"));
    assert!(aws.findings.iter().all(|f| f.exception_id.is_none() || f.exception_id.as_deref() == Some(ticket.id())));

    // local mode: the same database, ticket and configuration give the same findings
    let dir = tempfile::tempdir().unwrap();
    let local = LocalStore::open(&dir.path().join("state.db")).unwrap();
    local.put_ticket(&ticket, &[]).await.unwrap();
    let scanner =
        Scanner::new(&stack.db.url(), ScanOptions { target: Some(stack.target.clone()), ..ScanOptions::default() })
            .unwrap();
    let snapshot = scanner.scan(now(), &NoProgress).await.unwrap();
    let baseline = Baseline::from_yaml(&stack.baseline, "baseline.yaml").unwrap();
    let local_report = assess(&local, &baseline, &snapshot, &scoring, Some(Ok(&registry)), now()).await.unwrap();
    assert_eq!(shape(&aws), shape(&local_report));
    assert_eq!(
        (aws.summary.score, aws.summary.exception_weight, aws.summary.status),
        (local_report.summary.score, local_report.summary.exception_weight, local_report.summary.status)
    );
}

#[tokio::test]
async fn a_chunk_that_cannot_be_read_is_dead_lettered_and_the_report_says_incomplete() {
    let stack = Stack::new("incomplete").await;
    let fanout = stack.fanout().await;
    let chunks = fanout.handle(schedule()).await.unwrap()[0].chunks_sent;
    // the credentials now name a database that does not exist: a permanent error
    stack.put_target_secret(Some("no_such_database")).await;
    let mut batch = stack.drain(stack.settings.chunk_queue_url.as_deref().unwrap(), chunks).await;
    // and one message that is not a chunk at all
    let mut junk = serde_json::to_value(&batch.records[0]).unwrap();
    junk["body"] = "{\"not\": \"a chunk\"}".into();
    junk["messageId"] = "junk-1".into();
    batch.records.push(serde_json::from_value(junk).unwrap());

    let response = stack.extract().handle(lambda(batch)).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "permanent failures are not redelivered");
    let record = stack.store().scan(&stack.scan_id()).await.unwrap().unwrap();
    assert_eq!((record.status, record.chunks_failed), (ScanStatus::Incomplete, chunks as u32));
    assert!(record.failures.values().all(|why| why.contains("no_such_database")), "{:?}", record.failures);

    let dead = stack.drain(stack.settings.chunk_dlq_url.as_deref().unwrap(), chunks + 1).await;
    assert_eq!(dead.records.len(), chunks + 1, "every failed chunk and the junk message are parked");
    assert!(dead.records.iter().all(|m| m.message_attributes.contains_key("reason")));

    let diff = Diff::new(&stack.clients, &stack.settings, clock()).unwrap();
    let handled = diff.handle(lambda(stack.scan_stream().await)).await.unwrap();
    let Some(Handled::Reported { key, .. }) = handled.iter().find(|h| matches!(h, Handled::Reported { .. })) else {
        panic!("{handled:?}")
    };
    let report: Report = Objects::new(&stack.clients, &stack.settings).get_json(key).await.unwrap().unwrap();
    assert!(!report.summary.complete);
    assert_eq!(report.summary.failed_chunks.len(), chunks);
    assert_eq!(report.summary.status, Status::Incomplete);
}
