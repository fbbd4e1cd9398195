//! The revoke function against moto (tickets, leases, schedules, secrets,
//! the dead-letter queue) and a real PostgreSQL: each trigger revokes, the
//! timers are armed and disarmed, and a permission error is dead-lettered.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use grantwarden_aws::leases::{ScheduledRevoke, schedule_name};
use grantwarden_aws::{Clients, DynamoStore, Settings, Timers, provision};
use grantwarden_core::audit::event::EventKind;
use grantwarden_core::backoff::RetryPolicy;
use grantwarden_core::model::Privilege;
use grantwarden_core::store::TicketStore;
use grantwarden_core::ticket::{Ticket, TicketStatus};
use grantwarden_revoke::{DeadLetter, Handled, Invocation, Revoke};
use grantwarden_testkit::{TestDb, contract, moto};
use lambda_runtime::{Context, LambdaEvent};
use postgres_protocol::escape::escape_identifier;

const TARGET: &str = "orders-prod";

fn at(minutes: i64) -> DateTime<Utc> {
    "2026-11-22T12:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::Duration::minutes(minutes)
}

/// moto's resources, the revoker secret of TARGET pointing at `db` as `role`.
async fn stack(test: &str, db: &TestDb, role: Option<&str>) -> (Clients, Settings) {
    let clients = Clients::for_endpoint(&moto::endpoint()).await;
    let mut settings =
        provision::create(&clients, &moto::unique_prefix(test)).await.expect("moto creates the resources");
    settings.targets = vec![grantwarden_core::snapshot::TargetId::new(TARGET).unwrap()];
    let secret = db.rds_secret(role, None).to_string();
    moto::put_secret(&clients.secrets, &settings.revoker_secret_id(&settings.targets[0]), &secret).await;
    (clients, settings)
}

fn function(clients: &Clients, settings: &Settings, now: i64) -> Revoke {
    let retry = RetryPolicy { max_attempts: 2, ..RetryPolicy::default() };
    Revoke::new(clients, settings, Arc::new(move || at(now))).unwrap().with_retry(retry)
}

async fn invoke(f: &Revoke, payload: Invocation) -> Vec<Handled> {
    f.invoke(LambdaEvent::new(payload, Context::default())).await.unwrap().tickets()
}

async fn usage(db: &TestDb, role: &str) -> bool {
    db.client().await.query_one("SELECT has_schema_privilege($1, 'billing', 'USAGE')", &[&role]).await.unwrap().get(0)
}

async fn stored(store: &DynamoStore, id: &str) -> Ticket {
    store.ticket(id).await.unwrap().unwrap().value
}

#[tokio::test]
async fn each_trigger_revokes_through_the_function_and_the_timers_are_armed_then_disarmed() {
    let db = TestDb::new().await;
    let names = ["lease", "sched", "req", "sweep"];
    let roles: Vec<String> = names.iter().map(|n| db.role(n)).collect();
    let mut sql = "CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);".to_owned();
    for r in &roles {
        let r = escape_identifier(r);
        sql.push_str(&format!("CREATE ROLE {r}; GRANT USAGE ON SCHEMA billing TO {r};"));
    }
    db.exec(&sql).await;
    let (clients, settings) = stack("revoke-triggers", &db, None).await;
    let store = DynamoStore::new(&clients, &settings);
    let timers = Timers::new(&clients, &settings);
    let ids: Vec<String> = names.iter().map(|n| format!("tkt-{n}")).collect();
    for (id, role) in ids.iter().zip(&roles) {
        let t = contract::active_ticket(id, TARGET, role, "billing", &[Privilege::Usage], at(0), at(60));
        store.put_ticket(&t, &[]).await.unwrap();
        timers.arm(&t).await.unwrap();
    }
    // armed: a lease with the expiry as TTL, and a one-time schedule at the expiry
    let lease = clients
        .dynamodb
        .get_item()
        .table_name(&settings.leases_table)
        .key("ticket_id", aws_sdk_dynamodb::types::AttributeValue::S(ids[0].clone()))
        .send()
        .await
        .unwrap()
        .item
        .expect("the lease item");
    assert_eq!(lease["ttl"].as_n().unwrap(), &at(60).timestamp().to_string());
    let schedule = clients
        .scheduler
        .get_schedule()
        .name(schedule_name(&ids[1]))
        .group_name(&settings.schedule_group)
        .send()
        .await
        .unwrap();
    assert_eq!(schedule.schedule_expression(), Some("at(2026-11-22T13:00:00)"));
    let input: ScheduledRevoke = serde_json::from_str(schedule.target().unwrap().input().unwrap()).unwrap();
    assert_eq!(input.ticket_id, ids[1]);

    let f = function(&clients, &settings, 61);
    // 1. the TTL removal of the lease (moto never expires items: the real record's shape, from events/)
    let ttl = include_str!("../../../events/revoke-lease-ttl-remove.json").replace("tkt-e77b0c3f1a2d4e5f6a7b", &ids[0]);
    let handled = invoke(&f, serde_json::from_str(&ttl).unwrap()).await;
    assert_eq!((handled[0].outcome.as_str(), handled[0].latency_ms), ("revoked", Some(60_000)));
    assert!(!usage(&db, &roles[0]).await);
    let disarmed = |id: String| {
        let (clients, settings) = (&clients, &settings);
        async move {
            let schedule =
                clients.scheduler.get_schedule().name(schedule_name(&id)).group_name(&settings.schedule_group);
            let lease = clients
                .dynamodb
                .get_item()
                .table_name(&settings.leases_table)
                .key("ticket_id", aws_sdk_dynamodb::types::AttributeValue::S(id.clone()));
            schedule.send().await.is_err() && lease.send().await.unwrap().item.is_none()
        }
    };
    assert!(disarmed(ids[0].clone()).await, "revoked: its schedule and lease are deleted");

    // 2. the schedule (Scheduler never fires in moto: its payload, as it would send it)
    let payload = serde_json::to_value(&input).unwrap();
    let handled = invoke(&f, serde_json::from_value(payload.clone()).unwrap()).await;
    assert_eq!(handled[0].outcome, "revoked");
    assert!(!usage(&db, &roles[1]).await);
    // the same schedule delivered twice revokes once
    assert_eq!(invoke(&f, serde_json::from_value(payload).unwrap()).await[0].outcome, "already_ended");

    // 3. an early end: the ticket's MODIFY to revoke_requested, read from moto's real stream
    let read = store.ticket(&ids[2]).await.unwrap().unwrap();
    let mut t = read.value;
    assert!(t.request_revoke("ciso@example.com", at(30), "left the team"));
    store.update_ticket(&t, read.version, &[]).await.unwrap();
    let stream = moto::table_stream(&clients.dynamodb, &settings.tickets_table).await;
    let handled = invoke(&f, Invocation::Stream(stream)).await;
    let requested: Vec<&Handled> = handled.iter().filter(|h| h.ticket_id == ids[2]).collect();
    assert_eq!(requested.len(), 1, "only the move to revoke_requested triggers: {handled:?}");
    assert_eq!((requested[0].outcome.as_str(), requested[0].latency_ms), ("revoked", Some(31 * 60_000)));
    assert!(!usage(&db, &roles[2]).await);
    assert!(disarmed(ids[2].clone()).await, "ended early: the schedule at its expiry and its lease are gone");

    // 4. the sweeper takes what is left, and only that
    let sweep: Invocation = serde_json::from_str(include_str!("../../../events/revoke-sweep.json")).unwrap();
    let handled = invoke(&f, sweep).await;
    assert_eq!(handled.len(), 1, "{handled:?}");
    assert_eq!((handled[0].ticket_id.as_str(), handled[0].outcome.as_str()), (ids[3].as_str(), "revoked"));
    assert!(!usage(&db, &roles[3]).await);
    for id in &ids {
        let t = stored(&store, id).await;
        assert_eq!(t.status(), TicketStatus::Revoked, "{id}");
    }
    let journal = grantwarden_core::audit::AuditJournal::events(&store, TARGET).await.unwrap();
    assert_eq!(journal.iter().filter(|e| e.kind == EventKind::TicketRevoked).count(), 4);
}

#[tokio::test]
async fn a_permission_error_goes_to_the_dead_letter_queue_with_its_reason() {
    let db = TestDb::new().await;
    let (r, weak) = (db.role("perm"), db.role("weak"));
    db.exec(&format!(
        "CREATE SCHEMA billing; CREATE ROLE {r}; GRANT USAGE ON SCHEMA billing TO {r};
         CREATE ROLE {w} LOGIN; GRANT CONNECT ON DATABASE {d} TO {w};",
        r = db.ident("perm"),
        w = db.ident("weak"),
        d = escape_identifier(&db.name)
    ))
    .await;
    let (clients, settings) = stack("revoke-dlq", &db, Some(&weak)).await;
    let store = DynamoStore::new(&clients, &settings);
    store
        .put_ticket(
            &contract::active_ticket("tkt-perm", TARGET, &r, "billing", &[Privilege::Usage], at(0), at(10)),
            &[],
        )
        .await
        .unwrap();
    let f = function(&clients, &settings, 11);
    let handled =
        invoke(&f, Invocation::Scheduled(ScheduledRevoke { ticket_id: "tkt-perm".into(), trigger: "schedule".into() }))
            .await;
    assert_eq!(handled[0].outcome, "revocation_failed");
    assert_eq!(stored(&store, "tkt-perm").await.status(), TicketStatus::RevocationFailed);
    assert!(usage(&db, &r).await, "still held, and said so");
    let url = settings.revoke_dlq_url.clone().unwrap();
    let messages = clients.sqs.receive_message().queue_url(&url).max_number_of_messages(10).send().await.unwrap();
    let bodies: Vec<DeadLetter> =
        messages.messages().iter().map(|m| serde_json::from_str(m.body().unwrap()).unwrap()).collect();
    assert_eq!(bodies.len(), 1);
    assert_eq!((bodies[0].ticket_id.as_str(), bodies[0].role.as_str()), ("tkt-perm", r.as_str()));
    assert!(bodies[0].error.contains("permission denied"), "{}", bodies[0].error);
    // the same schedule delivered again (say its dead letter never went out) sends it again
    let handled =
        invoke(&f, Invocation::Scheduled(ScheduledRevoke { ticket_id: "tkt-perm".into(), trigger: "schedule".into() }))
            .await;
    assert_eq!(handled[0].outcome, "revocation_failed");
    let messages = clients.sqs.receive_message().queue_url(&url).max_number_of_messages(10).send().await.unwrap();
    assert_eq!(messages.messages().len(), 1, "a second dead letter for the redelivery");
    // another trigger arriving later does not: the failure was not its own
    let ttl =
        include_str!("../../../events/revoke-lease-ttl-remove.json").replace("tkt-e77b0c3f1a2d4e5f6a7b", "tkt-perm");
    assert_eq!(invoke(&f, serde_json::from_str(&ttl).unwrap()).await[0].outcome, "revocation_failed");
    let messages = clients.sqs.receive_message().queue_url(&url).max_number_of_messages(10).send().await.unwrap();
    assert!(messages.messages().is_empty());
    // the sweeper does not take it again: it waits for a person
    let sweep: Invocation = serde_json::from_str(include_str!("../../../events/revoke-sweep.json")).unwrap();
    assert!(invoke(&f, sweep).await.is_empty());
    // the person fixes it (here: the revoker secret now names a role that may revoke) and invokes the function
    let operator = serde_json::json!({ "ticket_id": "tkt-perm", "trigger": "operator" });
    let weak_again = invoke(&f, serde_json::from_value(operator.clone()).unwrap()).await;
    assert_eq!(weak_again[0].outcome, "revocation_failed", "still the weak role: failed again, dead-lettered again");
    db.exec(&format!("ALTER ROLE {} SUPERUSER", db.ident("weak"))).await;
    let fixed = invoke(&f, serde_json::from_value(operator).unwrap()).await;
    assert_eq!(fixed[0].outcome, "revoked");
    assert!(!usage(&db, &r).await);
    let bogus = serde_json::json!({ "ticket_id": "tkt-perm", "trigger": "whenever" });
    assert!(f.invoke(LambdaEvent::new(serde_json::from_value(bogus).unwrap(), Context::default())).await.is_err());
}

/// billing.invoices with app_ro's unauthorized INSERT and alice's SELECT; their role names.
async fn billing_with_app_and_alice(db: &TestDb) -> (String, String) {
    let (app, alice) = (db.role("app_ro"), db.role("alice"));
    db.exec(&format!(
        "CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);
         CREATE ROLE {a}; CREATE ROLE {b}; GRANT USAGE ON SCHEMA billing TO {a}, {b};
         GRANT INSERT ON billing.invoices TO {a}; GRANT SELECT ON billing.invoices TO {b};",
        a = db.ident("app_ro"),
        b = db.ident("alice"),
    ))
    .await;
    (app, alice)
}

/// Scan scan-1's remediation: revoke `app`'s INSERT and `alice`'s SELECT on billing.invoices.
fn remediation_of(app: &str, alice: &str, skipped: usize) -> grantwarden_core::remediate::RemediationRequest {
    use grantwarden_core::change::Change;
    use grantwarden_core::model::{Grant, Grantee, ObjectClass, ObjectRef, RoleName};
    let table = ObjectRef::in_schema(ObjectClass::Table, "billing", "invoices");
    let revoke = |role: &str, privilege| Change::Revoke {
        grant: Grant {
            object: table.clone(),
            grantee: Grantee::Role(RoleName::new(role).unwrap()),
            privilege,
            grantable: false,
        },
        cascade: false,
        option_only: false,
    };
    grantwarden_core::remediate::RemediationRequest {
        target: grantwarden_core::snapshot::TargetId::new(TARGET).unwrap(),
        scan_id: "scan-1".into(),
        snapshot_sha256: "s".into(),
        mode: grantwarden_core::remediate::Mode::RevokeUnauthorized,
        changes: vec![revoke(app, Privilege::Insert), revoke(alice, Privilege::Select)],
        skipped,
        part: 1,
        parts: 1,
    }
}

async fn has_on_invoices(db: &TestDb, role: String, privilege: &str) -> bool {
    db.client()
        .await
        .query_one("SELECT has_table_privilege($1, 'billing.invoices', $2)", &[&role, &privilege])
        .await
        .unwrap()
        .get::<_, bool>(0)
}

#[tokio::test]
async fn remediation_from_the_queue_runs_in_one_transaction_and_holds_back_what_a_ticket_now_covers() {
    let db = TestDb::new().await;
    let (app, alice) = billing_with_app_and_alice(&db).await;
    let (clients, settings) = stack("revoke-remediation", &db, None).await;
    let store = DynamoStore::new(&clients, &settings);
    // alice's ticket began after the scan that found her SELECT unauthorized
    let ticket = contract::active_ticket("tkt-late", TARGET, &alice, "billing", &[Privilege::Select], at(5), at(60));
    store.put_ticket(&ticket, &[]).await.unwrap();
    let request = remediation_of(&app, &alice, 0);
    let url = settings.remediation_queue_url.clone().unwrap();
    clients
        .sqs
        .send_message()
        .queue_url(&url)
        .message_body(serde_json::to_string(&request).unwrap())
        .send()
        .await
        .unwrap();
    let received = clients.sqs.receive_message().queue_url(&url).max_number_of_messages(10).send().await.unwrap();
    let records: Vec<serde_json::Value> = received
        .messages()
        .iter()
        .map(|m| {
            serde_json::json!({ "messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(),
                                     "eventSource": "aws:sqs", "attributes": { "ApproximateReceiveCount": "1" },
                                     "messageAttributes": {} })
        })
        .collect();
    assert_eq!(records.len(), 1);
    let batch = || -> Invocation { serde_json::from_value(serde_json::json!({ "Records": records })).unwrap() };
    assert!(matches!(batch(), Invocation::Remediation(_)), "{:?}", batch());
    let has = |role: String, privilege: &'static str| has_on_invoices(&db, role, privilege);
    let run = |settings: Settings| {
        let (clients, batch) = (&clients, batch());
        async move {
            let f = function(clients, &settings, 10);
            let outcome = f.invoke(LambdaEvent::new(batch, Context::default())).await.unwrap();
            let grantwarden_revoke::Outcome::Remediation(response) = outcome else { panic!("a batch response") };
            assert!(response.batch_item_failures.is_empty());
        }
    };

    // by default remediation is planned and journaled, not run (as apply without --execute)
    assert!(!settings.remediation_execute);
    run(settings.clone()).await;
    assert!(has(app.clone(), "INSERT").await, "a planned remediation changes nothing");
    let journal = grantwarden_core::audit::AuditJournal::events(&store, TARGET).await.unwrap();
    let planned: Vec<_> = journal.iter().filter(|e| e.kind == EventKind::RemediationPlanned).collect();
    assert_eq!(planned.len(), 1);
    assert_eq!(planned[0].detail["dry_run"], true);

    run(Settings { remediation_execute: true, ..settings.clone() }).await;
    assert!(!has(app.clone(), "INSERT").await, "the unauthorized INSERT is revoked");
    assert!(has(alice.clone(), "SELECT").await, "held back: alice's ticket is in force now");
    let journal = grantwarden_core::audit::AuditJournal::events(&store, TARGET).await.unwrap();
    let applied: Vec<_> = journal.iter().filter(|e| e.kind == EventKind::RemediationApplied).collect();
    assert_eq!(applied.len(), 1);
    assert_eq!(applied[0].detail["held_back"].as_array().unwrap().len(), 1);
    assert!(
        applied[0].detail["sql"].as_array().unwrap().iter().any(|s| s.as_str().unwrap().starts_with("REVOKE INSERT"))
    );
}

/// The handler is generic over the store: its remediation rule (hold back what a ticket in
/// force covers, journal what ran) holds over the SQLite store as over DynamoDB.
#[tokio::test]
async fn remediation_over_the_sqlite_store_holds_back_what_a_ticket_in_force_covers() {
    use grantwarden_core::audit::AuditJournal;
    let db = TestDb::new().await;
    let (app, alice) = billing_with_app_and_alice(&db).await;
    // moto holds only the revoker secret here; tickets and journal are in SQLite
    let (clients, settings) = stack("revoke-remediation-sqlite", &db, None).await;
    let dir = tempfile::tempdir().unwrap();
    let store = grantwarden_local::LocalStore::open(&dir.path().join("state.db")).unwrap();
    let ticket = contract::active_ticket("tkt-late", TARGET, &alice, "billing", &[Privilege::Select], at(5), at(60));
    store.put_ticket(&ticket, &[]).await.unwrap();
    let request = remediation_of(&app, &alice, 2);
    let batch: Invocation = serde_json::from_value(serde_json::json!({ "Records": [{
        "messageId": "m-1", "receiptHandle": "r-1", "body": serde_json::to_string(&request).unwrap(),
        "eventSource": "aws:sqs", "attributes": { "ApproximateReceiveCount": "1" }, "messageAttributes": {} }] }))
    .unwrap();
    let settings = Settings { remediation_execute: true, ..settings };
    let retry = RetryPolicy { max_attempts: 2, ..RetryPolicy::default() };
    let f = Revoke::new(&clients, &settings, Arc::new(move || at(10))).unwrap().with_store(store).with_retry(retry);
    let outcome = f.invoke(LambdaEvent::new(batch, Context::default())).await.unwrap();
    let grantwarden_revoke::Outcome::Remediation(response) = outcome else { panic!("a batch response") };
    assert!(response.batch_item_failures.is_empty());

    assert!(!has_on_invoices(&db, app, "INSERT").await, "the unauthorized INSERT is revoked");
    assert!(has_on_invoices(&db, alice, "SELECT").await, "held back: alice's ticket is in force now");
    let journal = f.store().events(TARGET).await.unwrap();
    let applied: Vec<_> = journal.iter().filter(|e| e.kind == EventKind::RemediationApplied).collect();
    assert_eq!(applied.len(), 1, "{journal:?}");
    let detail = &applied[0].detail;
    assert_eq!((detail["held_back"].as_array().unwrap().len(), detail["skipped"].clone()), (1, 2.into()));
    assert_eq!(applied[0].actor, "grantwarden:remediation");
}

#[tokio::test]
async fn the_three_triggers_racing_through_the_function_revoke_once() {
    let db = TestDb::new().await;
    let r = db.role("race");
    db.exec(&format!(
        "CREATE SCHEMA billing; CREATE ROLE {r}; GRANT USAGE ON SCHEMA billing TO {r};",
        r = db.ident("race")
    ))
    .await;
    let (clients, settings) = stack("revoke-race", &db, None).await;
    let store = DynamoStore::new(&clients, &settings);
    let t = contract::active_ticket("tkt-race", TARGET, &r, "billing", &[Privilege::Usage], at(0), at(10));
    store.put_ticket(&t, &[]).await.unwrap();
    let (a, b, c) =
        (function(&clients, &settings, 11), function(&clients, &settings, 11), function(&clients, &settings, 11));
    let ttl =
        include_str!("../../../events/revoke-lease-ttl-remove.json").replace("tkt-e77b0c3f1a2d4e5f6a7b", "tkt-race");
    let sweep = include_str!("../../../events/revoke-sweep.json");
    let (ra, rb, rc) = tokio::join!(
        invoke(&a, serde_json::from_str(&ttl).unwrap()),
        invoke(&b, Invocation::Scheduled(ScheduledRevoke { ticket_id: "tkt-race".into(), trigger: "schedule".into() })),
        invoke(&c, serde_json::from_str(sweep).unwrap()),
    );
    let outcomes: Vec<String> = ra.into_iter().chain(rb).chain(rc).map(|h| h.outcome).collect();
    assert_eq!(outcomes.iter().filter(|o| *o == "revoked").count(), 1, "{outcomes:?}");
    assert!(outcomes.iter().all(|o| o == "revoked" || o == "already_ended"), "{outcomes:?}");
    assert!(!usage(&db, &r).await);
    let journal = grantwarden_core::audit::AuditJournal::events(&store, TARGET).await.unwrap();
    assert_eq!(journal.iter().filter(|e| e.kind == EventKind::TicketRevoked).count(), 1);
}

/// Whether the cluster has a role of that name.
async fn role_exists(db: &TestDb, role: &str) -> bool {
    db.client()
        .await
        .query_one("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)", &[&role])
        .await
        .unwrap()
        .get(0)
}

/// A read-only access ticket of alice's on billing.invoices, routed by the example
/// registry at `at(0)` (active at once), its request id `<prefix>-<id>`.
fn read_only_ticket(db: &TestDb, id: &str) -> Ticket {
    use grantwarden_core::access::route_access;
    use grantwarden_core::access_policy::{AccessPath, AccessScope};
    use grantwarden_core::request::AccessRequest;
    let registry = grantwarden_core::policy::PolicyRegistry::load(&[(
        "policy.example.yaml".into(),
        include_str!("../../../infra/policy.example.yaml").into(),
    )])
    .unwrap();
    let request = AccessRequest {
        id: format!("{}-{id}", db.prefix),
        identity: "alice@example.com".into(),
        target: grantwarden_core::snapshot::TargetId::new(TARGET).unwrap(),
        path: AccessPath::ReadOnly,
        scope: AccessScope::Tables { schema: "billing".into(), tables: vec!["invoices".into()] },
        duration: "1h".into(),
        justification: "CHG-1".into(),
        incident_id: None,
        script: None,
    };
    match route_access(&request, &registry, &grantwarden_core::incident::KnownIncidents(vec![]), at(0)) {
        grantwarden_core::ticket::Decision::Ticket(t) => *t,
        other => panic!("routed: {other:?}"),
    }
}

#[tokio::test]
async fn an_active_access_ticket_is_issued_into_its_own_secret_and_both_go_at_revocation() {
    let db = TestDb::new().await;
    db.exec("CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int); INSERT INTO billing.invoices VALUES (1);")
        .await;
    let (clients, settings) = stack("revoke-issue", &db, None).await;
    let store = DynamoStore::new(&clients, &settings);
    let t = read_only_ticket(&db, "jit");
    assert_eq!(t.status(), TicketStatus::Active);
    store.put_ticket(&t, &[]).await.unwrap();

    let f = function(&clients, &settings, 1);
    let stream = moto::table_stream(&clients.dynamodb, &settings.tickets_table).await;
    let handled = invoke(&f, Invocation::Stream(stream)).await;
    assert_eq!(handled.iter().map(|h| h.outcome.as_str()).collect::<Vec<_>>(), ["issued"], "{handled:?}");
    let secret = clients.secrets.get_secret_value().secret_id(settings.access_secret_id(t.id())).send().await.unwrap();
    let value: serde_json::Value = serde_json::from_str(secret.secret_string().unwrap()).unwrap();
    assert_eq!(value["username"], t.request().role.as_str());
    assert_eq!(value["password"].as_str().map(str::len), Some(32));
    let me = grantwarden_testkit::connect(&db.url_as(t.request().role.as_str())).await.expect("the credential logs in");
    me.query("SELECT * FROM billing.invoices", &[]).await.unwrap();
    let journal = grantwarden_core::audit::AuditJournal::events(&store, TARGET).await.unwrap();
    let issued: Vec<_> = journal.iter().filter(|e| e.kind == EventKind::AccessIssued).collect();
    assert_eq!(issued.len(), 1);
    assert!(
        !serde_json::to_string(&issued[0].detail).unwrap().contains(value["password"].as_str().unwrap()),
        "never the password"
    );

    // the stream again (the history update is on it too): issued once
    let stream = moto::table_stream(&clients.dynamodb, &settings.tickets_table).await;
    let again = invoke(&f, Invocation::Stream(stream)).await;
    assert!(again.iter().all(|h| h.outcome == "not_issued"), "{again:?}");

    // an attempt that made the secret and the role but died before recording the ticket
    // as issued: the retry issues the same password again, from the secret
    let read = store.ticket(t.id()).await.unwrap().unwrap();
    let lost =
        contract::as_stored(&read.value, |t| t["history"].as_array_mut().unwrap().retain(|e| e["what"] != "issued"));
    store.update_ticket(&lost, read.version, &[]).await.unwrap();
    let stream = moto::table_stream(&clients.dynamodb, &settings.tickets_table).await;
    let retried = invoke(&f, Invocation::Stream(stream)).await;
    assert!(retried.iter().any(|h| h.outcome == "issued"), "{retried:?}");
    let secret = clients.secrets.get_secret_value().secret_id(settings.access_secret_id(t.id())).send().await.unwrap();
    let kept: serde_json::Value = serde_json::from_str(secret.secret_string().unwrap()).unwrap();
    assert_eq!(kept["password"], value["password"], "the password already delivered stays the one");
    let journal = grantwarden_core::audit::AuditJournal::events(&store, TARGET).await.unwrap();
    let reissued = journal.iter().rfind(|e| e.kind == EventKind::AccessIssued).unwrap();
    let sql = serde_json::to_string(&reissued.detail["sql"]).unwrap();
    assert!(sql.contains("PASSWORD '********'") && !sql.contains("CREATE ROLE"), "{sql}");

    // at the expiry the schedule revokes: role, session and secret are gone
    let late = function(&clients, &settings, 61);
    let done = invoke(
        &late,
        Invocation::Scheduled(ScheduledRevoke { ticket_id: t.id().to_owned(), trigger: "schedule".into() }),
    )
    .await;
    assert_eq!(done[0].outcome, "revoked");
    assert!(clients.secrets.get_secret_value().secret_id(settings.access_secret_id(t.id())).send().await.is_err());
    assert!(!role_exists(&db, t.request().role.as_str()).await);
    assert!(me.query("SELECT 1", &[]).await.is_err());
}

#[tokio::test]
async fn a_break_glass_credential_raises_a_high_priority_alert() {
    use grantwarden_core::access::route_access;
    use grantwarden_core::access_policy::{AccessPath, AccessScope};
    use grantwarden_core::incident::{IncidentStatus, IncidentUpdate, KnownIncidents};
    use grantwarden_core::request::AccessRequest;
    let db = TestDb::new().await;
    db.exec("CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);").await;
    let (clients, settings) = stack("revoke-glass", &db, None).await;
    let topic = settings.alert_topic_arn.clone().unwrap();
    let inbox = moto::alert_inbox(&clients.sqs, &clients.sns, &topic, &format!("{}-inbox", settings.bucket)).await;
    let store = DynamoStore::new(&clients, &settings);
    let registry = grantwarden_core::policy::PolicyRegistry::load(&[(
        "policy.example.yaml".into(),
        include_str!("../../../infra/policy.example.yaml").into(),
    )])
    .unwrap();
    let request = AccessRequest {
        id: format!("{}-glass", db.prefix),
        identity: "oncall@example.com".into(),
        target: grantwarden_core::snapshot::TargetId::new(TARGET).unwrap(),
        path: AccessPath::BreakGlass,
        scope: AccessScope::Tables { schema: "billing".into(), tables: vec!["invoices".into()] },
        duration: "20m".into(),
        justification: "db on fire".into(),
        incident_id: Some("PD-1".into()),
        script: None,
    };
    let open = KnownIncidents(vec![IncidentUpdate {
        id: "PD-1".into(),
        status: IncidentStatus::Open,
        source: "pagerduty".into(),
        at: at(0),
    }]);
    let grantwarden_core::ticket::Decision::Ticket(t) = route_access(&request, &registry, &open, at(0)) else {
        panic!("routed")
    };
    store.put_ticket(&t, &[]).await.unwrap();
    let f = function(&clients, &settings, 1);
    let stream = moto::table_stream(&clients.dynamodb, &settings.tickets_table).await;
    assert_eq!(invoke(&f, Invocation::Stream(stream)).await[0].outcome, "issued");
    let got = clients.sqs.receive_message().queue_url(&inbox).max_number_of_messages(10).send().await.unwrap();
    let envelope: serde_json::Value = serde_json::from_str(got.messages()[0].body().unwrap()).unwrap();
    assert!(envelope["Subject"].as_str().unwrap().contains("BREAK-GLASS"), "{envelope}");
    let detail: serde_json::Value = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
    assert_eq!((detail["incident_id"].as_str(), detail["review_required"].as_bool()), (Some("PD-1"), Some(true)));

    // renewed while the incident stays open: the stream moves the role's VALID UNTIL
    let read = store.ticket(t.id()).await.unwrap().unwrap();
    let mut renewed = read.value;
    let until = grantwarden_core::access::renew(&mut renewed, &registry, &open, at(15)).unwrap();
    assert_eq!(until, at(45));
    store.update_ticket(&renewed, read.version, &[]).await.unwrap();
    let stream = moto::table_stream(&clients.dynamodb, &settings.tickets_table).await;
    let outcomes: Vec<String> = invoke(&f, Invocation::Stream(stream)).await.into_iter().map(|h| h.outcome).collect();
    assert!(outcomes.contains(&"renewed".to_owned()), "{outcomes:?}");
    let valid: chrono::DateTime<Utc> = db
        .client()
        .await
        .query_one("SELECT rolvaliduntil FROM pg_roles WHERE rolname = $1", &[&t.request().role.as_str()])
        .await
        .unwrap()
        .get(0);
    assert_eq!(valid, at(45));
    let admin = db.client().await;
    admin
        .batch_execute(&format!(
            "DROP OWNED BY {r}; DROP ROLE {r}",
            r = postgres_protocol::escape::escape_identifier(t.request().role.as_str())
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_dry_run_function_plans_and_journals_once_and_changes_nothing() {
    let db = TestDb::new().await;
    let r = db.role("dry");
    db.exec(&format!(
        "CREATE SCHEMA billing; CREATE ROLE {r}; GRANT USAGE ON SCHEMA billing TO {r};",
        r = db.ident("dry")
    ))
    .await;
    let (clients, mut settings) = stack("revoke-dry", &db, None).await;
    settings.revoke_dry_run = true;
    let store = DynamoStore::new(&clients, &settings);
    store
        .put_ticket(&contract::active_ticket("tkt-dry", TARGET, &r, "billing", &[Privilege::Usage], at(0), at(10)), &[])
        .await
        .unwrap();
    let f = function(&clients, &settings, 11);
    let sweep = include_str!("../../../events/revoke-sweep.json");
    for _ in 0..2 {
        let handled = invoke(&f, serde_json::from_str(sweep).unwrap()).await;
        assert_eq!(handled.iter().map(|h| h.outcome.as_str()).collect::<Vec<_>>(), ["dry_run"]);
    }
    assert!(usage(&db, &r).await, "nothing ran");
    assert_eq!(stored(&store, "tkt-dry").await.status(), TicketStatus::Active, "still due");
    let journal = grantwarden_core::audit::AuditJournal::events(&store, TARGET).await.unwrap();
    let planned: Vec<_> = journal.iter().filter(|e| e.kind == EventKind::RevocationPlanned).collect();
    assert_eq!(planned.len(), 1, "the same plan is journaled once, however many sweeps");
    let sql: Vec<&str> = planned[0].detail["sql"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert!(sql.iter().any(|s| s.starts_with("REVOKE USAGE ON SCHEMA \"billing\"")), "{sql:?}");
    assert!(sql.iter().any(|s| s.starts_with("SET LOCAL lock_timeout")), "as a real run would open: {sql:?}");
}

#[tokio::test]
async fn an_access_secret_grantwarden_did_not_create_for_the_ticket_is_refused_not_issued_into() {
    let db = TestDb::new().await;
    db.exec("CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);").await;
    let (clients, settings) = stack("revoke-planted", &db, None).await;
    let store = DynamoStore::new(&clients, &settings);
    let t = read_only_ticket(&db, "planted");
    // someone who may create secrets under the access prefix plants one, with a password they know
    let name = settings.access_secret_id(t.id());
    let planted = serde_json::json!({ "engine": "postgres", "host": "127.0.0.1", "port": 5432, "dbname": db.name,
        "username": t.request().role.as_str(), "password": "known-to-mallory-0123456789abcdef" });
    clients.secrets.create_secret().name(&name).secret_string(planted.to_string()).send().await.unwrap();
    store.put_ticket(&t, &[]).await.unwrap();

    let f = function(&clients, &settings, 1);
    let stream = moto::table_stream(&clients.dynamodb, &settings.tickets_table).await;
    let handled = invoke(&f, Invocation::Stream(stream)).await;
    assert_eq!(handled.iter().map(|h| h.outcome.as_str()).collect::<Vec<_>>(), ["issue_failed"], "{handled:?}");
    assert!(!role_exists(&db, t.request().role.as_str()).await, "no role with the planted password");
    let url = settings.revoke_dlq_url.clone().unwrap();
    let messages = clients.sqs.receive_message().queue_url(&url).max_number_of_messages(10).send().await.unwrap();
    let letter: serde_json::Value = serde_json::from_str(messages.messages()[0].body().unwrap()).unwrap();
    let error = letter["error"].as_str().unwrap();
    assert!(error.contains(&format!("secret {name} already exists and was not created by grantwarden")), "{error}");
    assert!(error.contains("its tags: none") && !error.contains("known-to-mallory"), "{error}");
    let journal = grantwarden_core::audit::AuditJournal::events(&store, TARGET).await.unwrap();
    let refused = journal.iter().find(|e| e.kind == EventKind::AccessIssueRefused).expect("journaled");
    assert_eq!((refused.subject.as_str(), refused.detail["error"].as_str()), (t.id(), Some(error)));
    assert!(!journal.iter().any(|e| e.kind == EventKind::AccessIssued));
    let kept = clients.secrets.get_secret_value().secret_id(&name).send().await.unwrap();
    assert_eq!(kept.secret_string(), Some(planted.to_string().as_str()), "left as found: evidence");
}

#[tokio::test]
async fn access_secrets_carry_their_ticket_and_only_their_own_is_reused_or_deleted() {
    use grantwarden_aws::AccessSecrets;
    use grantwarden_aws::secrets::{AccessSecretError, CREATED_BY, CREATED_BY_TAG, TICKET_TAG};
    let clients = Clients::for_endpoint(&moto::endpoint()).await;
    let prefix = format!("{}/access/", moto::unique_prefix("secret-tags"));
    let secrets = AccessSecrets::new(&clients, &prefix);
    let fresh = |password: &str| {
        grantwarden_aws::RdsSecret::parse(
            "test",
            &serde_json::json!({ "engine": "postgres", "host": "db", "port": 5432, "username": "u",
                                 "password": password, "dbname": "orders" })
            .to_string(),
        )
        .unwrap()
    };

    // created with its tags; a retry reuses the password already delivered
    let first = secrets.get_or_create("tkt-1", &fresh("first-password"), at(60)).await.unwrap();
    let described = clients.secrets.describe_secret().secret_id(secrets.name("tkt-1")).send().await.unwrap();
    let tags: Vec<(&str, &str)> = described.tags().iter().map(|t| (t.key().unwrap(), t.value().unwrap())).collect();
    assert!(tags.contains(&(TICKET_TAG, "tkt-1")) && tags.contains(&(CREATED_BY_TAG, CREATED_BY)), "{tags:?}");
    let retried = secrets.get_or_create("tkt-1", &fresh("second-password"), at(60)).await.unwrap();
    assert_eq!((first.password.as_str(), retried.password.as_str()), ("first-password", "first-password"));

    // made by grantwarden, but for another ticket (another prefix, same name): refused
    let other = AccessSecrets::new(&clients, &format!("{prefix}t"));
    other.get_or_create("kt-2", &fresh("other-password"), at(60)).await.unwrap();
    let err = secrets.get_or_create("tkt-2", &fresh("x"), at(60)).await.unwrap_err();
    assert!(matches!(err, AccessSecretError::NotOurs { .. }), "{err}");
    assert!(err.to_string().contains("grantwarden:ticket=kt-2"), "{err}");

    // delete: its own is gone, another's is left in place
    secrets.delete("tkt-2").await.unwrap();
    assert!(clients.secrets.get_secret_value().secret_id(secrets.name("tkt-2")).send().await.is_ok());
    secrets.delete("tkt-1").await.unwrap();
    assert!(clients.secrets.get_secret_value().secret_id(secrets.name("tkt-1")).send().await.is_err());
    secrets.delete("tkt-1").await.unwrap();
}

/// The sweep finishes what a writer that died between a ticket write and its
/// journal left: not while the writer may be alive, once after its claim.
#[tokio::test]
async fn the_sweep_journals_what_a_dead_writer_left_in_a_tickets_outbox() {
    use grantwarden_core::audit::NewEvent;
    use grantwarden_core::audit::event::OnTicket;

    let db = TestDb::new().await;
    let (clients, settings) = stack("revoke-outbox", &db, None).await;
    let store = DynamoStore::new(&clients, &settings);
    let t = contract::active_ticket("tkt-left", TARGET, "nobody", "billing", &[Privilege::Usage], at(0), at(600));
    let requested = NewEvent::for_ticket(&t, OnTicket::Requested, "alice@example.com", at(0));
    // the writer's put lands with its event, and it dies before appending it
    store.put_ticket(&t, &[requested]).await.unwrap();
    let requested_events = || async {
        let journal = grantwarden_core::audit::AuditJournal::events(&store, TARGET).await.unwrap();
        journal.iter().filter(|e| e.kind == EventKind::TicketRequested && e.subject == "tkt-left").count()
    };
    let sweep = include_str!("../../../events/revoke-sweep.json");
    assert!(invoke(&function(&clients, &settings, 5), serde_json::from_str(sweep).unwrap()).await.is_empty());
    assert_eq!(requested_events().await, 0, "five minutes on, the writer may still be at work");
    for _ in 0..2 {
        assert!(invoke(&function(&clients, &settings, 7), serde_json::from_str(sweep).unwrap()).await.is_empty());
    }
    assert_eq!(requested_events().await, 1, "journaled once the claim ran out, and only once");
    let target = grantwarden_core::snapshot::TargetId::new(TARGET).unwrap();
    assert!(store.unjournaled(&target).await.unwrap().is_empty());
}

/// With the template's GRANTWARDEN_JOURNAL_FROM_STREAM, a ticket write leaves
/// its events in the outbox and the function appends them from the tickets
/// stream: in stream order, once however often the records are delivered.
#[tokio::test]
async fn ticket_events_are_journaled_from_the_tickets_stream_once() {
    use grantwarden_core::audit::NewEvent;
    use grantwarden_core::audit::event::OnTicket;

    let db = TestDb::new().await;
    let (clients, mut settings) = stack("revoke-stream", &db, None).await;
    settings.journal_from_stream = true;
    let store = DynamoStore::new(&clients, &settings);
    let t = contract::ticket("d-stream", Privilege::Select);
    let requested = NewEvent::for_ticket(&t, OnTicket::Requested, "alice@example.com", at(0));
    grantwarden_core::outbox::create(&store, &t, vec![requested]).await.unwrap();
    let mut approved = t.clone();
    approved.approve(&grantwarden_core::identity::Actor::operator("ciso@example.com"), at(1)).unwrap();
    let events = grantwarden_core::intake::approval_events(
        &approved,
        &grantwarden_core::identity::Actor::operator("ciso@example.com"),
        at(1),
    );
    grantwarden_core::outbox::update(&store, &approved, 1, events).await.unwrap();
    let kinds = || async {
        let journal = grantwarden_core::audit::AuditJournal::events(&store, TARGET).await.unwrap();
        journal.iter().map(|e| e.kind.as_str().to_owned()).collect::<Vec<_>>()
    };
    assert!(kinds().await.is_empty(), "the writer appended nothing");

    let f = function(&clients, &settings, 2);
    let stream = moto::table_stream(&clients.dynamodb, &settings.tickets_table).await;
    invoke(&f, Invocation::Stream(stream)).await;
    assert_eq!(kinds().await, ["ticket.requested", "ticket.approved", "ticket.activated"]);
    // everything delivered again, the consumer's own writes included
    let stream = moto::table_stream(&clients.dynamodb, &settings.tickets_table).await;
    invoke(&f, Invocation::Stream(stream)).await;
    assert_eq!(kinds().await.len(), 3, "once");
    let target = grantwarden_core::snapshot::TargetId::new(TARGET).unwrap();
    assert!(store.unjournaled(&target).await.unwrap().is_empty(), "the outbox is cleared");
}

#[tokio::test]
async fn a_ticket_on_a_mariadb_target_is_revoked_from_its_account_through_the_function() {
    use mysql_async::prelude::Queryable;
    let m = grantwarden_testkit::mariadb::TestMaria::new().await;
    let (shop, app) = (m.name("shop"), m.name("app"));
    m.exec(&format!(
        "CREATE DATABASE `{shop}`; CREATE TABLE `{shop}`.t (a INT);
         CREATE USER '{app}'@'%' IDENTIFIED BY 'pw'; GRANT SELECT, DELETE ON `{shop}`.t TO '{app}'@'%';"
    ))
    .await;
    let clients = Clients::for_endpoint(&moto::endpoint()).await;
    let mut settings = provision::create(&clients, &moto::unique_prefix("revoke-maria")).await.unwrap();
    settings.targets = vec![grantwarden_core::snapshot::TargetId::new(TARGET).unwrap()];
    let port: u16 = m.url().rsplit(':').next().unwrap().trim_end_matches('/').parse().unwrap();
    // as RDS writes a MariaDB secret: no dbname
    let secret = serde_json::json!({ "engine": "mariadb", "host": "127.0.0.1", "port": port, "username": "root" });
    moto::put_secret(&clients.secrets, &settings.revoker_secret_id(&settings.targets[0]), &secret.to_string()).await;
    let store = DynamoStore::new(&clients, &settings);
    let role = format!("'{app}'@'%'");
    let t = contract::active_ticket("tkt-maria", TARGET, &role, &shop, &[Privilege::Select], at(0), at(60));
    store.put_ticket(&t, &[]).await.unwrap();
    let mut session = mysql_async::Conn::from_url(m.url_as(&app, "pw")).await.unwrap();
    session.query_drop("SELECT 1").await.unwrap();

    let f = function(&clients, &settings, 61);
    let payload: Invocation =
        serde_json::from_value(serde_json::json!({ "ticket_id": "tkt-maria", "trigger": "schedule" })).unwrap();
    let handled = invoke(&f, payload).await;
    assert_eq!(handled[0].outcome, "revoked", "{handled:?}");
    let mut conn = m.conn().await;
    let grants: Vec<String> = conn.query(format!("SHOW GRANTS FOR '{app}'@'%'")).await.unwrap();
    let on_t: Vec<&String> = grants.iter().filter(|g| g.contains(&shop)).collect();
    assert_eq!(on_t, [&format!("GRANT DELETE ON `{shop}`.`t` TO `{app}`@`%`")], "DELETE was never the ticket's");
    assert!(session.query_drop("SELECT 1").await.is_err(), "the account's session was ended");
    let stored = stored(&store, "tkt-maria").await;
    assert_eq!(stored.status(), TicketStatus::Revoked);
    assert_eq!(stored.revocation().unwrap().sessions_terminated, 1);
    let events = grantwarden_core::audit::AuditJournal::events(&store, TARGET).await.unwrap();
    let revoked = events.iter().find(|e| e.kind == EventKind::TicketRevoked).expect("ticket.revoked journaled");
    assert!(revoked.detail.to_string().contains("KILL CONNECTION"), "{}", revoked.detail);
}
