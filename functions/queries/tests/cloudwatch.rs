//! The queries function against moto: a CloudWatch Logs subscription
//! delivery of an RDS PostgreSQL log (events/queries-cloudwatch-logs.json)
//! becomes query events as partitioned JSON lines in the bucket, once; its
//! unreadable line is kept with its reason; the ticket credential's COPY TO
//! is alerted on SNS and journaled; the GRANT made by hand is an untagged finding.

use std::sync::Arc;

use aws_lambda_events::cloudwatch_logs::LogsEvent;
use chrono::{DateTime, TimeDelta, Utc};
use grantwarden_aws::queries::EVENTS_PREFIX;
use grantwarden_aws::{Clients, DynamoStore, Objects, S3Queries, Settings, provision};
use grantwarden_core::audit::AuditJournal;
use grantwarden_core::model::Privilege;
use grantwarden_core::queries::{QueryFilter, QueryStore};
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::{FindingStore, TicketStore};
use grantwarden_queries::{Handled, Queries, QueriesError, QueryTargets};
use grantwarden_testkit::{contract, moto};
use lambda_runtime::{Context, Diagnostic, LambdaEvent};

const DELIVERY: &str = include_str!("../../../events/queries-cloudwatch-logs.json");
const LOG_GROUP: &str = "/aws/rds/instance/orders-db/postgresql";

fn now() -> DateTime<Utc> {
    "2026-12-07T07:01:00Z".parse().unwrap()
}

fn target() -> TargetId {
    TargetId::new("orders-prod").unwrap()
}

async fn stack(test: &str) -> (Clients, Settings, Queries) {
    let clients = Clients::for_endpoint(&moto::endpoint()).await;
    let settings = provision::create(&clients, &moto::unique_prefix(test)).await.expect("moto creates the resources");
    let registry = include_str!("../../../infra/policy.example.yaml");
    Objects::new(&clients, &settings)
        .put(&format!("{}registry.yaml", settings.policy_prefix), registry.as_bytes().to_vec(), "application/yaml")
        .await
        .unwrap();
    // alice's ticket: its credential is the role alice_tmp, which runs the COPY TO in the log
    let starts = now() - TimeDelta::hours(2);
    let ticket = contract::active_ticket(
        "tkt-q1",
        "orders-prod",
        "alice_tmp",
        "billing",
        &[Privilege::Select],
        starts,
        now() + TimeDelta::hours(2),
    );
    DynamoStore::new(&clients, &settings).put_ticket(&ticket, &[]).await.unwrap();
    let targets = QueryTargets::parse(&format!("{LOG_GROUP}=orders-prod")).unwrap();
    let queries = Queries::new(&clients, &settings, targets, Arc::new(now));
    (clients, settings, queries)
}

fn delivery() -> LambdaEvent<LogsEvent> {
    let payload: LogsEvent = serde_json::from_str(DELIVERY).expect("a CloudWatch Logs subscription event");
    LambdaEvent { payload, context: Context::default() }
}

async fn keys(clients: &Clients, settings: &Settings, prefix: &str) -> Vec<String> {
    Objects::new(clients, settings).list(prefix).await.unwrap()
}

#[tokio::test]
async fn a_delivery_is_stored_as_partitioned_json_lines_once() {
    let (clients, settings, queries) = stack("q-store").await;
    let inbox = moto::alert_inbox(
        &clients.sqs,
        &clients.sns,
        settings.alert_topic_arn.as_deref().unwrap(),
        &format!("{}-inbox", settings.bucket),
    )
    .await;

    let Handled::Ingested { ingested, role_changes } = queries.handle(delivery()).await.expect("ingested") else {
        panic!("a data message")
    };
    assert!(!ingested.delivered_before);
    let b = &ingested.batch;
    assert_eq!((b.records, b.events, b.new_events, b.skipped, b.rejected), (4, 3, 3, 1, 1), "{b:?}");
    assert_eq!(b.source, format!("{LOG_GROUP}/orders-db.0"));
    assert_eq!(b.format, "rds");

    // one chunk, under the target's and the day's partition, one event per line
    let objects = keys(&clients, &settings, EVENTS_PREFIX).await;
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert!(objects[0].starts_with("queries/events/target=orders-prod/dt=2026-12-07/"), "{objects:?}");
    assert!(objects[0].ends_with(&format!("{}-1.jsonl", b.sha256)), "{objects:?}");
    let body = Objects::new(&clients, &settings).get(&objects[0]).await.unwrap().unwrap();
    let lines: Vec<serde_json::Value> =
        body.split(|c| *c == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["person"], "alice@example.com");
    assert_eq!(lines[0]["ticket"], "tkt-q1");
    assert_eq!(lines[0]["statement"], "select id from billing.invoices where customer_id = ?", "literals redacted");
    assert_eq!(lines[2]["person"], "role:admin");

    // read back through the port, filtered
    let store = S3Queries::new(&clients, &settings);
    let filter = QueryFilter { target: Some(target()), ticket: Some("tkt-q1".into()), ..QueryFilter::default() };
    let events = store.query_events(&filter).await.unwrap();
    assert_eq!(events.iter().map(|e| e.command.as_str()).collect::<Vec<_>>(), ["SELECT", "COPY"]);
    let later = QueryFilter { from: Some(now() + TimeDelta::days(3)), ..QueryFilter::default() };
    assert!(store.query_events(&later).await.unwrap().is_empty(), "partitions before the range are not read");

    // the unreadable line is kept with its reason
    let rejected = store.rejections(Some(&target())).await.unwrap();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert_eq!((rejected[0].rejected.line, rejected[0].rejected.text.as_str()), (5, "this line is not a log record"));
    assert!(!rejected[0].rejected.reason.is_empty());

    // the COPY TO by the ticket's credential and the GRANT made by hand: each alerted on SNS and journaled
    assert_eq!(ingested.alerts, 1);
    let journal = DynamoStore::new(&clients, &settings);
    let chain = journal.events("orders-prod").await.unwrap();
    let kinds: Vec<&str> = chain.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "queries.alert").count(), 2, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|k| **k == "queries.ingested").count(), 1, "{kinds:?}");
    let alerts = moto::drain(&clients.sqs, &inbox, 2).await;
    let bodies: Vec<String> = alerts.records.iter().map(|r| r.body.clone().unwrap_or_default()).collect();
    assert_eq!(bodies.len(), 2, "{bodies:?}");
    assert!(bodies.iter().any(|b| b.contains("query alert") && b.contains("tkt-q1")), "{bodies:?}");
    let drift = bodies.iter().find(|b| b.contains("grantwarden drift")).expect("the GRANT alerted");
    assert!(drift.contains("mallory") && drift.contains("no ticket covers it"), "{drift}");

    // the GRANT made by hand: an untagged finding, now
    assert_eq!(role_changes.len(), 1, "{role_changes:?}");
    assert_eq!(role_changes[0].outcome, "untagged");
    assert!(role_changes[0].alert.as_deref().is_some_and(|a| a.contains("mallory")), "{role_changes:?}");
    let untagged = journal.open_untagged(&target()).await.unwrap();
    assert!(
        untagged.iter().any(|f| f.detail.contains("mallory") || f.grantee.to_string().contains("mallory")),
        "{untagged:?}"
    );

    let opened = chain.iter().filter(|e| e.kind.as_str() == "finding.opened").count();
    assert_eq!(opened, 1, "the GRANT's untagged finding journaled: {kinds:?}");

    // delivered again: nothing new, the same keys, journaled once, the GRANT not routed again
    let Handled::Ingested { ingested: again, role_changes } = queries.handle(delivery()).await.expect("again") else {
        panic!("a data message")
    };
    assert!(again.delivered_before);
    assert!(role_changes.is_empty(), "{role_changes:?}");
    assert_eq!(keys(&clients, &settings, EVENTS_PREFIX).await, objects);
    let chain = journal.events("orders-prod").await.unwrap();
    assert_eq!(chain.iter().filter(|e| e.kind.as_str() == "queries.ingested").count(), 1);
    assert_eq!(chain.iter().filter(|e| e.kind.as_str() == "queries.alert").count(), 2);
    assert_eq!(chain.iter().filter(|e| e.kind.as_str() == "finding.opened").count(), opened, "journaled once");
    assert_eq!(journal.open_untagged(&target()).await.unwrap().len(), untagged.len(), "the grant is one finding");
}

#[tokio::test]
async fn a_log_group_without_a_target_is_refused_and_not_retried() {
    let (clients, settings, _) = stack("q-unknown").await;
    let queries = Queries::new(&clients, &settings, QueryTargets::default(), Arc::new(now));
    let err = queries.handle(delivery()).await.unwrap_err();
    assert!(matches!(err, QueriesError::UnknownLogGroup { .. }), "{err}");
    assert!(err.to_string().contains(LOG_GROUP), "{err}");
    assert_eq!(Diagnostic::from(err).error_type, "Validation");
    assert!(keys(&clients, &settings, "queries/").await.is_empty(), "nothing stored");
}

#[tokio::test]
async fn a_delivery_whose_grant_could_not_be_routed_is_done_whole_when_delivered_again() {
    let (clients, settings, _) = stack("q-retry").await;
    let targets = || QueryTargets::parse(&format!("{LOG_GROUP}=orders-prod")).unwrap();
    // the findings table unreachable: the GRANT cannot be recorded, and the delivery fails
    let broken = Settings { findings_table: format!("{}-missing", settings.findings_table), ..settings.clone() };
    let failing = Queries::new(&clients, &broken, targets(), Arc::new(now));
    let err = failing.handle(delivery()).await.unwrap_err();
    assert!(matches!(err, QueriesError::RoleChanges { .. }), "{err}");
    assert_eq!(Diagnostic::from(err).error_type, "Retryable");
    assert!(keys(&clients, &settings, "queries/").await.is_empty(), "nothing ingested, no batch marker");

    // Lambda's retry: routed and ingested, as if it were the first delivery
    let queries = Queries::new(&clients, &settings, targets(), Arc::new(now));
    let Handled::Ingested { ingested, role_changes } = queries.handle(delivery()).await.expect("retried") else {
        panic!("a data message")
    };
    assert!(!ingested.delivered_before);
    assert_eq!(role_changes.len(), 1, "{role_changes:?}");
    let untagged = DynamoStore::new(&clients, &settings).open_untagged(&target()).await.unwrap();
    assert!(untagged.iter().any(|f| f.grantee.to_string().contains("mallory")), "{untagged:?}");
}
