//! The diff function on an incomplete scan, against moto: the scan is
//! assessed on what was read, and nothing else happens from it. No finding is
//! opened or closed, no remediation is planned, and the one alert is the
//! incomplete-scan alert, never a drift alert.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use grantwarden_aws::{Clients, DynamoStore, Objects, Settings, provision};
use grantwarden_core::audit::AuditJournal;
use grantwarden_core::finding::FindingKind;
use grantwarden_core::model::{Grant, Grantee, ObjectClass, ObjectRef, Privilege, Relation, RelationKind, RoleName};
use grantwarden_core::pipeline::{Batch, ScanManifest, ScanStatus};
use grantwarden_core::remediate::Mode;
use grantwarden_core::report::{Report, Status};
use grantwarden_core::snapshot::{ChunkSpec, Database, ScanWindow, State, TargetId};
use grantwarden_core::store::FindingStore;
use grantwarden_diff::{Diff, Handled};
use grantwarden_testkit::moto;

const POLICY: &str = include_str!("../../../infra/policy.example.yaml");
const SCORING: &str = include_str!("../../../infra/scoring.yaml");

/// Clean where the catalog below is unchanged: app_ro reads both schemas, app_rw holds nothing.
const BASELINE: &str = r#"
version: 1
roles:
  app_ro:
    grants:
      - { privileges: [USAGE], on: schema, name: billing }
      - { privileges: [SELECT], on: all_tables_in_schema, schema: billing }
      - { privileges: [USAGE], on: schema, name: orders }
      - { privileges: [SELECT], on: all_tables_in_schema, schema: orders }
  app_rw:
    login: true
ignore_roles: ["postgres"]
"#;

fn r(n: &str) -> RoleName {
    RoleName::new(n).unwrap()
}

fn grant(s: &mut State, grantee: &str, privilege: Privilege, object: ObjectRef) {
    s.grants.insert(Grant { object, grantee: Grantee::Role(r(grantee)), privilege, grantable: false });
}

/// One schema as its chunk reads it: app_ro may use it and read its one table.
fn schema(name: &str, table: &str) -> State {
    let mut s = State::default();
    s.schemas.insert(name.into(), r("postgres"));
    grant(&mut s, "app_ro", Privilege::Usage, ObjectRef::schema(name));
    s.relations.insert(Relation {
        schema: name.into(),
        name: table.into(),
        kind: RelationKind::Table,
        owner: r("postgres"),
        rls_enabled: false,
        rls_forced: false,
    });
    grant(&mut s, "app_ro", Privilege::Select, ObjectRef::in_schema(ObjectClass::Table, name, table));
    s
}

fn cluster() -> State {
    let mut s = State { database: Some(Database { name: "shop".into(), owner: r("postgres") }), ..State::default() };
    for role in ["postgres", "app_ro", "app_rw"] {
        s.roles.insert(r(role), Default::default());
    }
    s.roles.get_mut(&r("postgres")).unwrap().superuser = true;
    s.roles.get_mut(&r("app_rw")).unwrap().login = true;
    s
}

struct Stack {
    clients: Clients,
    settings: Settings,
    target: TargetId,
    objects: Objects,
}

impl Stack {
    async fn new(test: &str) -> Stack {
        let clients = Clients::for_endpoint(&moto::endpoint()).await;
        let prefix = moto::unique_prefix(test);
        let target = TargetId::new(format!("{prefix}/shop")).unwrap();
        let mut settings = provision::create(&clients, &prefix).await.unwrap();
        settings.targets = vec![target.clone()];
        // remediation would be planned after a complete scan
        settings.remediation_mode = Mode::Converge;
        let objects = Objects::new(&clients, &settings);
        let baseline_key = settings.baseline_key.replace("{target}", &grantwarden_aws::objects::key_segment(&target));
        objects.put(&baseline_key, BASELINE.as_bytes().to_vec(), "application/yaml").await.unwrap();
        let policy_key = format!("{}registry.yaml", settings.policy_prefix);
        objects.put(&policy_key, POLICY.as_bytes().to_vec(), "application/yaml").await.unwrap();
        objects.put(&settings.scoring_key, SCORING.as_bytes().to_vec(), "application/yaml").await.unwrap();
        Stack { clients, settings, target, objects }
    }

    /// Diffs a scan taken at `at` whose chunks read `states` (`None`: the chunk
    /// failed for good), as the diff function does once its record settles.
    async fn diff(&self, at: &str, states: Vec<(ChunkSpec, Option<State>)>) -> (Handled, Report) {
        let at: DateTime<Utc> = at.parse().unwrap();
        let window = ScanWindow::containing(at, self.settings.scan_window_seconds);
        let chunks = states.iter().map(|(c, _)| (c.clone(), None)).collect();
        let manifest = ScanManifest::new(self.target.clone(), window, at, 150_000, chunks);
        self.objects.put_manifest(&manifest).await.unwrap();
        let mut record = manifest.record();
        for (task, (_, state)) in manifest.tasks.iter().zip(states) {
            match state {
                Some(state) => {
                    self.objects.put_batch(&Batch::postgres(task.clone(), 1, state)).await.unwrap();
                    record.chunks_done += 1;
                }
                None => {
                    record.failures.insert(task.batch_id.clone(), "permission denied for table pg_proc".into());
                    record.chunks_failed += 1;
                }
            }
        }
        record.status = if record.chunks_failed > 0 { ScanStatus::Incomplete } else { ScanStatus::Complete };
        let clock: Arc<dyn grantwarden_aws::Clock> = Arc::new(move || at);
        let handled = Diff::new(&self.clients, &self.settings, clock).unwrap().report(&record).await.unwrap();
        let Handled::Reported { key, .. } = &handled else { panic!("{handled:?}") };
        let report = self.objects.get_json(key).await.unwrap().expect("the report is written");
        (handled, report)
    }

    fn store(&self) -> DynamoStore {
        DynamoStore::new(&self.clients, &self.settings)
    }

    /// The bodies of every message on a queue now.
    async fn drain(&self, url: &str) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let got =
                self.clients.sqs.receive_message().queue_url(url).max_number_of_messages(10).send().await.unwrap();
            if got.messages().is_empty() {
                return out;
            }
            for m in got.messages() {
                out.push(m.body().unwrap_or_default().to_owned());
                let handle = m.receipt_handle().unwrap_or_default();
                self.clients.sqs.delete_message().queue_url(url).receipt_handle(handle).send().await.unwrap();
            }
        }
    }

    /// The open findings of the target, as `(kind, grantee, privilege, object)`.
    async fn open(&self) -> Vec<(FindingKind, String, String, String)> {
        let open = self.store().open_with_age(&self.target).await.unwrap();
        let mut out: Vec<_> = open
            .iter()
            .map(|(f, _)| (f.kind, f.grantee.to_string(), f.privilege.to_string(), f.object.to_string()))
            .collect();
        out.sort();
        out
    }

    async fn journal(&self) -> Vec<String> {
        let events = self.store().events(self.target.as_str()).await.unwrap();
        events.iter().map(|e| e.kind.as_str().to_owned()).collect()
    }
}

#[tokio::test]
async fn an_incomplete_scan_opens_and_closes_no_finding_plans_nothing_and_alerts_only_that_it_is_incomplete() {
    let stack = Stack::new("partial").await;
    let billing = || ChunkSpec::Schemas { schemas: vec!["billing".into()] };
    let orders = || ChunkSpec::Schemas { schemas: vec!["orders".into()] };

    // a complete scan: app_rw may not delete invoices; the finding is opened and its revoke planned
    let mut drifted = schema("billing", "invoices");
    grant(&mut drifted, "app_rw", Privilege::Delete, ObjectRef::in_schema(ObjectClass::Table, "billing", "invoices"));
    let (handled, first) = stack
        .diff(
            "2026-11-25T10:05:00Z",
            vec![
                (ChunkSpec::Cluster, Some(cluster())),
                (billing(), Some(drifted)),
                (orders(), Some(schema("orders", "line_items"))),
            ],
        )
        .await;
    assert!(matches!(handled, Handled::Reported { status: Status::Warn, .. }), "{handled:?}");
    let delete = (FindingKind::Unauthorized, "app_rw".into(), "DELETE".into(), "table billing.invoices".into());
    assert_eq!(stack.open().await, vec![delete.clone()]);
    assert_eq!(first.summary.status, Status::Warn);
    let remediation = stack.settings.remediation_queue_url.clone().unwrap();
    assert_eq!(stack.drain(&remediation).await.len(), 1, "a complete scan plans its remediation");
    let journaled = stack.journal().await.len();

    // an operator's inbox of alerts, from here on
    let inbox = moto::alert_inbox(
        &stack.clients.sqs,
        &stack.clients.sns,
        stack.settings.alert_topic_arn.as_deref().unwrap(),
        &format!("{}-inbox", stack.settings.bucket),
    )
    .await;

    // the next scan: billing cannot be read, and orders now holds a real drift
    let mut orders_drifted = schema("orders", "line_items");
    let line_items = ObjectRef::in_schema(ObjectClass::Table, "orders", "line_items");
    grant(&mut orders_drifted, "app_rw", Privilege::Insert, line_items);
    let (handled, report) = stack
        .diff(
            "2026-11-25T11:05:00Z",
            vec![(ChunkSpec::Cluster, Some(cluster())), (billing(), None), (orders(), Some(orders_drifted))],
        )
        .await;
    assert!(matches!(handled, Handled::Reported { status: Status::Incomplete, alerted: true, .. }), "{handled:?}");

    // the report: what was read is judged and listed, billing is neither missing nor clean
    let s = &report.summary;
    assert_eq!((s.status, s.complete), (Status::Incomplete, false));
    assert_eq!(s.failed_chunks, vec!["schema billing: permission denied for table pg_proc".to_owned()]);
    assert!(s.not_judged[0].starts_with("schema billing: "), "{:?}", s.not_judged);
    assert_eq!(s.declarations_not_judged, 2, "USAGE on billing and SELECT on its tables");
    let listed: Vec<(FindingKind, String, String)> =
        report.findings.iter().map(|f| (f.kind, f.privilege.to_string(), f.object.to_string())).collect();
    assert_eq!(listed, vec![(FindingKind::Unauthorized, "INSERT".into(), "table orders.line_items".into())]);

    // the store: the open finding is neither closed (billing was not read) nor joined by the new one
    assert_eq!(stack.open().await, vec![delete]);
    let journal = stack.journal().await;
    assert_eq!(journal[journaled..], ["scan.incomplete".to_owned()], "no finding opened or closed: {journal:?}");

    // no remediation from a partial view
    assert_eq!(stack.drain(&remediation).await, Vec::<String>::new());

    // one alert: the scan is incomplete; no drift alert
    let alerts = stack.drain(&inbox).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let envelope: serde_json::Value = serde_json::from_str(&alerts[0]).unwrap();
    let subject = envelope["Subject"].as_str().unwrap();
    assert!(subject.contains("is incomplete (1 chunk(s) failed)"), "{subject}");
    let alert: serde_json::Value = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
    assert_eq!(alert["status"], "incomplete");
    assert_eq!(alert["failed_chunks"][0], "schema billing: permission denied for table pg_proc");
    assert!(alert.get("top_findings").is_none(), "not a drift alert: {alert}");
}
