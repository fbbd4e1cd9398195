//! A MariaDB target through the AWS pipeline, against moto and a real
//! MariaDB: the target secret's `engine` picks the reader in fan-out and
//! extract, the diff plans the assembled scan against the target's MySQL
//! baseline exactly as `grantwarden plan` does, and the revoke function puts
//! the drift right with MariaDB's executor; a ticket that names the role
//! excepts its grant on AWS as locally, and remediation leaves it. A PostgreSQL baseline for the
//! target, and a scanning account that may not read the grant tables, are
//! refused by name.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::SqsEvent;
use chrono::{DateTime, Utc};
use grantwarden_aws::{Clients, DynamoStore, Objects, SecretCache, Settings, provision};
use grantwarden_core::audit::AuditJournal;
use grantwarden_core::exception::Exceptions;
use grantwarden_core::manifest::RoleFilter;
use grantwarden_core::mysql_baseline::{Baseline, Engine, generate};
use grantwarden_core::mysql_plan::plan_with_exceptions;
use grantwarden_core::pipeline::{ScanLedger, ScanStatus};
use grantwarden_core::remediate::{Mode, RemediationRequest};
use grantwarden_core::report::{Report, Status};
use grantwarden_core::scoring::ScoringConfig;
use grantwarden_core::snapshot::{ScanWindow, TargetId, scan_id};
use grantwarden_core::store::TicketStore;
use grantwarden_diff::{Diff, Handled};
use grantwarden_extract::Extract;
use grantwarden_fanout::Fanout;
use grantwarden_mysql::{ScanOptions as MysqlOptions, Scanner};
use grantwarden_postgres::ScanOptions;
use grantwarden_testkit::mariadb::TestMaria;
use grantwarden_testkit::moto;
use lambda_runtime::{Context, LambdaEvent};

const SCORING: &str = include_str!("../../../infra/scoring.yaml");
/// One category that needs no approval, so a ticket is in force at once.
const REGISTRY: &str = "version: \"1\"\nowner: a@x.io\napprover: b@x.io\ncategories:\n  ops: { framework: SOC2, max_ttl: 24h, approvals: 0, weight_factor: 0.25 }\nroutes:\n  - { match: {}, category: ops }\n";
const SCHEDULE: &str = include_str!("../../../events/fanout-schedule.json");

/// Five minutes into the schedule window of events/fanout-schedule.json.
fn now() -> DateTime<Utc> {
    "2026-11-25T10:05:00Z".parse().unwrap()
}

fn lambda<T>(payload: T) -> LambdaEvent<T> {
    LambdaEvent { payload, context: Context::default() }
}

fn schedule() -> LambdaEvent<EventBridgeEvent<serde_json::Value>> {
    lambda(serde_json::from_str(SCHEDULE).unwrap())
}

/// One test's MariaDB corner and its stack in moto.
struct Stack {
    m: TestMaria,
    clients: Clients,
    settings: Settings,
    target: TargetId,
}

impl Stack {
    async fn new(test: &str) -> Stack {
        let m = TestMaria::new().await;
        let clients = Clients::for_endpoint(&moto::endpoint()).await;
        let prefix = moto::unique_prefix(test);
        let target = TargetId::new(format!("{prefix}/shop")).unwrap();
        let mut settings = provision::create(&clients, &prefix).await.unwrap();
        settings.targets = vec![target.clone()];
        let stack = Stack { m, clients, settings, target };
        stack.put_secrets("root", "").await;
        stack
            .objects()
            .put(&stack.settings.scoring_key, SCORING.as_bytes().to_vec(), "application/yaml")
            .await
            .unwrap();
        stack
    }

    fn objects(&self) -> Objects {
        Objects::new(&self.clients, &self.settings)
    }

    /// The target's scanning and revoking secrets, as RDS writes a MariaDB one (no `dbname`).
    async fn put_secrets(&self, user: &str, password: &str) {
        let url = self.m.url();
        let port: u16 = url.rsplit(':').next().unwrap().trim_end_matches('/').parse().unwrap();
        let secret = serde_json::json!({ "engine": "mariadb", "host": "127.0.0.1", "port": port,
                                         "username": user, "password": password })
        .to_string();
        for id in [self.settings.target_secret_id(&self.target), self.settings.revoker_secret_id(&self.target)] {
            moto::put_secret(&self.clients.secrets, &id, &secret).await;
        }
    }

    async fn put_baseline(&self, yaml: &str) {
        let key = self.settings.baseline_key.replace("{target}", &grantwarden_aws::objects::key_segment(&self.target));
        self.objects().put(&key, yaml.as_bytes().to_vec(), "application/yaml").await.unwrap();
    }

    fn secrets(&self) -> SecretCache {
        SecretCache::new(&self.clients, Duration::ZERO)
    }

    fn store(&self) -> DynamoStore {
        DynamoStore::new(&self.clients, &self.settings)
    }

    fn fanout(&self) -> Fanout {
        let clock: Arc<dyn grantwarden_aws::Clock> = Arc::new(now);
        Fanout::new(&self.clients, self.settings.clone(), self.secrets(), ScanOptions::default(), clock).unwrap()
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
        Extract::new(&self.clients, self.settings.clone(), self.secrets(), options, Arc::new(now)).unwrap()
    }

    async fn drain(&self, url: &str, expected: usize) -> SqsEvent {
        moto::drain(&self.clients.sqs, url, expected).await
    }

    fn scan_id(&self) -> String {
        scan_id(&self.target, &ScanWindow::containing(now(), self.settings.scan_window_seconds))
    }

    /// Fans the schedule out and extracts every chunk; the number of chunks.
    async fn scan(&self) -> usize {
        let sent = self.fanout().handle(schedule()).await.unwrap();
        assert_eq!((sent[0].outcome, sent[0].scan_id.as_str()), ("dispatched", self.scan_id().as_str()), "{sent:?}");
        let chunks = sent[0].chunks_sent;
        let batch = self.drain(self.settings.chunk_queue_url.as_deref().unwrap(), chunks).await;
        assert_eq!(batch.records.len(), chunks, "one message per chunk");
        let response = self.extract().handle(lambda(batch)).await.unwrap();
        assert!(response.batch_item_failures.is_empty(), "{:?}", response.batch_item_failures);
        chunks
    }

    /// The server as `grantwarden plan` reads it, under the pipeline's target id.
    async fn local_scan(&self) -> grantwarden_mysql::Scan {
        let options = MysqlOptions { target: Some(self.target.clone()), ..MysqlOptions::default() };
        Scanner::new(&self.m.url(), options).unwrap().scan(now()).await.unwrap()
    }
}

/// A ticket in force for two hours from a minute before [`now`]: DELETE on `table` (`db.table`) for `account`.
fn ticket(target: &TargetId, account: &str, table: &str) -> grantwarden_core::ticket::Ticket {
    use grantwarden_core::request::{Action, GrantRequest, InputKind, RequestObject};
    let registry =
        grantwarden_core::policy::PolicyRegistry::load(&[("registry.yaml".into(), REGISTRY.into())]).unwrap();
    let (schema, name) = table.split_once('.').unwrap();
    let request = GrantRequest {
        delivery_id: format!("d-{account}"),
        input: InputKind::Webhook,
        source: "okta-workflows".into(),
        action: Action::Grant,
        target: target.clone(),
        principal: "alice@example.com".into(),
        role: grantwarden_core::model::RoleName::new(account).unwrap(),
        privileges: vec![grantwarden_core::model::Privilege::Delete],
        object: RequestObject {
            on: grantwarden_core::manifest::On::Table,
            schema: Some(schema.into()),
            name: Some(name.into()),
            columns: vec![],
        },
        expires_at: Some(now() + chrono::Duration::hours(2)),
        justification: Some("INC-7 cleanup".into()),
        requested_by: "alice@example.com".into(),
        incident_id: None,
        observed_at: now() - chrono::Duration::minutes(1),
    };
    let known = grantwarden_core::incident::KnownIncidents(vec![]);
    match grantwarden_core::ticket::route(&request, &registry, &known, now() - chrono::Duration::minutes(1)) {
        grantwarden_core::ticket::Decision::Ticket(t) => *t,
        other => panic!("{other:?}"),
    }
}

/// This test's findings (the server is shared), without their age-weighted score.
fn own(report: &Report, prefix: &str) -> Vec<String> {
    report
        .findings
        .iter()
        .filter(|f| f.grantee.as_str().contains(prefix) || f.object.to_string().contains(prefix))
        .map(|f| format!("{:?} {:?} {} {} {}", f.kind, f.severity, f.grantee, f.privilege.text(), f.object))
        .collect()
}

#[tokio::test]
async fn a_mariadb_target_is_scanned_planned_and_put_right_on_aws_as_the_cli_does() {
    let stack = Stack::new("mysql-pipeline").await;
    let m = &stack.m;
    let (shop, app, role, stray) = (m.name("shop"), m.name("app"), m.name("reporting"), m.name("stray"));
    m.exec(&format!(
        "CREATE DATABASE `{shop}`; CREATE TABLE `{shop}`.orders (id INT, email TEXT);
         CREATE USER '{app}'@'10.0.%' IDENTIFIED BY 'pw-app';
         GRANT SELECT ON `{shop}`.orders TO '{app}'@'10.0.%';
         CREATE ROLE '{role}'; GRANT SELECT ON `{shop}`.orders TO '{role}'; GRANT '{role}' TO '{app}'@'10.0.%';"
    ))
    .await;
    let ignore = RoleFilter::new(&["*".into(), format!("!{}*", m.prefix()), format!("!*@{}*", m.prefix())]).unwrap();
    let generated = generate(&stack.local_scan().await.catalog, Engine::Mariadb, &ignore);
    let yaml = serde_saphyr::to_string(&generated).unwrap();
    let baseline = Baseline::from_yaml(&yaml, "maria.yaml").unwrap();
    m.exec(&format!(
        "GRANT FILE ON *.* TO '{app}'@'10.0.%' WITH GRANT OPTION;
         GRANT DELETE ON `{shop}`.orders TO '{role}';
         REVOKE SELECT ON `{shop}`.orders FROM '{app}'@'10.0.%';
         CREATE USER '{stray}'@'%' IDENTIFIED BY 'pw-stray';"
    ))
    .await;

    // fan-out and extract: the secret's engine picks MariaDB's reader
    let chunks = stack.scan().await;
    assert!(chunks >= 2, "the accounts chunk and at least one of databases");
    let store = stack.store();
    let record = store.scan(&stack.scan_id()).await.unwrap().unwrap();
    assert_eq!((record.status, record.chunks_done), (ScanStatus::Complete, chunks as u32));
    let manifest = stack.objects().manifest(&stack.target, &stack.scan_id()).await.unwrap();
    let server = manifest.mysql.as_ref().expect("the manifest names the server");
    assert!(server.version.contains("MariaDB") && manifest.server_version_num >= 100_600, "{server:?}");

    // the diff refuses a PostgreSQL baseline for the target by name, and reports nothing
    let stream = moto::table_stream(&stack.clients.dynamodb, &stack.settings.scans_table).await;
    stack.put_baseline("version: 1\nroles: {}\n").await;
    let mut converging = stack.settings.clone();
    converging.remediation_mode = Mode::Converge;
    let diff = Diff::new(&stack.clients, &converging, Arc::new(now)).unwrap();
    let err = diff.handle(lambda(stream.clone())).await.unwrap_err().to_string();
    assert!(
        err.contains("names no `engine:`, so it is a PostgreSQL baseline, and target ") && err.contains("MariaDB"),
        "{err}"
    );

    // a ticket in force names the role (a MariaDB role: no host) and excepts its DELETE
    stack
        .objects()
        .put(&format!("{}registry.yaml", stack.settings.policy_prefix), REGISTRY.into(), "application/yaml")
        .await
        .unwrap();
    let ticket = ticket(&stack.target, &role, &format!("{shop}.orders"));
    store.put_ticket(&ticket, &[]).await.unwrap();

    // with its MariaDB baseline: the report `grantwarden plan` gives of the same server
    stack.put_baseline(&yaml).await;
    let handled = diff.handle(lambda(stream.clone())).await.unwrap();
    let Some(Handled::Reported { key, status, .. }) = handled.iter().find(|h| matches!(h, Handled::Reported { .. }))
    else {
        panic!("{handled:?}")
    };
    assert_eq!(*status, Status::Alert, "FILE WITH GRANT OPTION is critical");
    let aws: Report = stack.objects().get_json(key).await.unwrap().unwrap();
    assert!(aws.summary.complete);
    let scoring = ScoringConfig::from_yaml(SCORING, "scoring.yaml").unwrap();
    let tickets = [ticket.clone()];
    let exceptions = Exceptions { tickets: &tickets, now: now(), untagged: &[] };
    let local = plan_with_exceptions(&baseline, &stack.local_scan().await, &scoring, &exceptions).unwrap();
    let found = own(&aws, m.prefix());
    assert_eq!(found, own(&local, m.prefix()));
    assert_eq!(found.len(), 5, "FILE, its GRANT OPTION, the role's DELETE, the lost SELECT, the stray: {found:#?}");
    let excepted: Vec<&grantwarden_core::report::Finding> =
        aws.findings.iter().filter(|f| f.exception_id.is_some()).collect();
    assert_eq!(excepted.len(), 1, "{found:#?}");
    assert_eq!((excepted[0].kind.as_str(), excepted[0].privilege.text()), ("excepted", "DELETE".into()));
    assert!(aws.governance.is_some());
    let page = stack.objects().get(&Objects::dashboard_key(&stack.target)).await.unwrap().expect("a dashboard");
    assert!(String::from_utf8(page).unwrap().contains(stack.target.as_str()));
    let events = store.events(stack.target.as_str()).await.unwrap();
    assert!(events.iter().any(|e| e.kind.as_str() == "scan.completed"), "the scan is journaled");
    assert!(events.iter().filter(|e| e.kind.as_str() == "finding.opened").count() >= 5);

    // remediation: the diff enqueued the MySQL changes; the revoke function runs them on MariaDB
    let url = stack.settings.remediation_queue_url.clone().unwrap();
    let remediation = stack.drain(&url, 1).await;
    assert_eq!(remediation.records.len(), 1);
    let request: RemediationRequest = serde_json::from_str(remediation.records[0].body.as_deref().unwrap()).unwrap();
    assert_eq!(request.changes.len(), 3, "the excepted DELETE is not among them: {:#?}", request.changes);
    assert_eq!(request.skipped, 2, "the stray account is a person's to drop, the excepted DELETE the ticket's");
    let settings = Settings { remediation_execute: true, ..stack.settings.clone() };
    let revoke = grantwarden_revoke::Revoke::new(&stack.clients, &settings, Arc::new(now)).unwrap();
    let records: Vec<serde_json::Value> = remediation
        .records
        .iter()
        .map(|m| {
            serde_json::json!({ "messageId": m.message_id, "receiptHandle": m.receipt_handle, "body": m.body,
                                "eventSource": "aws:sqs", "attributes": { "ApproximateReceiveCount": "1" },
                                "messageAttributes": {} })
        })
        .collect();
    let invocation: grantwarden_revoke::Invocation =
        serde_json::from_value(serde_json::json!({ "Records": records })).unwrap();
    let outcome = revoke.invoke(lambda(invocation)).await.unwrap();
    let grantwarden_revoke::Outcome::Remediation(response) = outcome else { panic!("a batch response") };
    assert!(response.batch_item_failures.is_empty());
    let applied = store.events(stack.target.as_str()).await.unwrap();
    let applied = applied.iter().find(|e| e.kind.as_str() == "remediation.applied").expect("remediation.applied");
    assert!(applied.detail.to_string().contains("REVOKE FILE ON *.*"), "{}", applied.detail);
    let after = plan_with_exceptions(&baseline, &stack.local_scan().await, &scoring, &exceptions).unwrap();
    let left = own(&after, m.prefix());
    assert_eq!(left.len(), 2, "the stray account, and the grant the ticket keeps: {left:#?}");
    assert!(left.iter().any(|f| f.contains(&stray)) && left.iter().any(|f| f.starts_with("Excepted")), "{left:?}");
}

/// The diff's report of a scan that ended: incomplete, with what it could not judge.
async fn incomplete_report(stack: &Stack) -> Report {
    let stream = moto::table_stream(&stack.clients.dynamodb, &stack.settings.scans_table).await;
    let diff = Diff::new(&stack.clients, &stack.settings, Arc::new(now)).unwrap();
    let handled = diff.handle(lambda(stream)).await.unwrap();
    let Some(Handled::Reported { key, status, .. }) = handled.iter().find(|h| matches!(h, Handled::Reported { .. }))
    else {
        panic!("{handled:?}")
    };
    assert_eq!(*status, Status::Incomplete);
    let report: Report = stack.objects().get_json(key).await.unwrap().unwrap();
    assert!(!report.summary.complete);
    report
}

#[tokio::test]
async fn what_the_scanning_account_may_not_read_makes_the_report_incomplete() {
    let stack = Stack::new("mysql-unreadable").await;
    let scanner = stack.m.name("scanner");
    // the grant tables, but neither SHOW VIEW nor TRIGGER: definers cannot be listed
    stack
        .m
        .exec(&format!(
            "CREATE USER '{scanner}'@'%' IDENTIFIED BY 'pw-scan';
             GRANT SELECT ON mysql.* TO '{scanner}'@'%'; GRANT SHOW DATABASES ON *.* TO '{scanner}'@'%';"
        ))
        .await;
    stack.put_secrets(&scanner, "pw-scan").await;
    stack.put_baseline("version: 1\nengine: mariadb\naccounts: []\n").await;
    stack.scan().await;
    let record = stack.store().scan(&stack.scan_id()).await.unwrap().unwrap();
    assert_eq!(record.status, ScanStatus::Complete, "every chunk was read");
    let report = incomplete_report(&stack).await;
    let unjudged = report.summary.not_judged.join("\n");
    assert!(unjudged.contains("view definers: not read (the scanning account lacks SHOW VIEW"), "{unjudged}");
    assert!(unjudged.contains("trigger definers"), "{unjudged}");
}

#[tokio::test]
async fn a_chunk_refused_by_the_server_is_dead_lettered_and_the_report_says_incomplete() {
    let stack = Stack::new("mysql-refused").await;
    stack.put_baseline("version: 1\nengine: mariadb\naccounts: []\n").await;
    let sent = stack.fanout().handle(schedule()).await.unwrap();
    let chunks = sent[0].chunks_sent;
    // the credentials go wrong between planning and extracting: a permanent refusal
    stack.put_secrets("root", "not-the-password").await;
    let batch = stack.drain(stack.settings.chunk_queue_url.as_deref().unwrap(), chunks).await;
    let response = stack.extract().handle(lambda(batch)).await.unwrap();
    assert!(response.batch_item_failures.is_empty(), "a refusal is not redelivered");
    let record = stack.store().scan(&stack.scan_id()).await.unwrap().unwrap();
    assert_eq!((record.status, record.chunks_failed), (ScanStatus::Incomplete, chunks as u32));
    assert!(record.failures.values().all(|why| why.contains("Access denied")), "{:?}", record.failures);
    let dead = stack.drain(stack.settings.chunk_dlq_url.as_deref().unwrap(), chunks).await;
    assert_eq!(dead.records.len(), chunks, "every chunk is parked with its reason");
    let report = incomplete_report(&stack).await;
    assert_eq!(report.summary.failed_chunks.len(), chunks);
}
