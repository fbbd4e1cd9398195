//! The DynamoDB store against moto: the store contract every implementation
//! passes, concurrent journal appends, and the scan ledger's counters.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use grantwarden_aws::{Clients, DynamoStore, Settings, provision};
use grantwarden_core::audit::{AuditJournal, verify};
use grantwarden_core::pipeline::{ScanLedger, ScanManifest, ScanStatus, Settled, Settlement};
use grantwarden_core::snapshot::{ChunkSpec, ScanWindow, TargetId};
use grantwarden_testkit::{contract, moto};

/// Fresh tables on moto, named for `test`, with the clients that reach them.
async fn tables(test: &str) -> (Clients, Settings) {
    let clients = Clients::for_endpoint(&moto::endpoint()).await;
    let settings = provision::create(&clients, &moto::unique_prefix(test)).await.expect("moto creates the resources");
    (clients, settings)
}

async fn store(test: &str) -> DynamoStore {
    let (clients, settings) = tables(test).await;
    DynamoStore::new(&clients, &settings)
}

/// A scan of orders-prod taken at `at` (in the hour around it) in `chunks`.
fn manifest(at: DateTime<Utc>, chunks: Vec<ChunkSpec>) -> ScanManifest {
    let chunks = chunks.into_iter().map(|c| (c, None)).collect();
    ScanManifest::new(TargetId::new("orders-prod").unwrap(), ScanWindow::containing(at, 3600), at, 150_000, chunks)
}

grantwarden_testkit::store_contract_tests! {
    tickets_are_idempotent_and_conflicts_are_refused(store("idem").await),
    updates_are_conditional_on_the_version_read(store("cond").await),
    ticket_writes_keep_their_events_until_journaled(store("outbox").await),
    findings_keep_first_seen_and_close_when_gone(store("findings").await),
    incidents_keep_the_latest_update(store("incidents").await),
    the_journal_chains_and_verifies(store("journal").await),
    replay_records_admit_each_key_once(store("replay").await),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_never_fork_or_gap_the_chain() {
    let store = Arc::new(store("appenders").await);
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..6 {
        let store = Arc::clone(&store);
        writers.spawn(async move {
            if w % 2 == 0 {
                for i in 0..8 {
                    store.append(contract::audit_event(w * 100 + i)).await.unwrap();
                }
            } else {
                // runs of events, each sealed after one read of the head (another
                // writer's event may come between two of them, never before one)
                for run in 0..2 {
                    let events = (0..4).map(|i| contract::audit_event(w * 100 + run * 4 + i)).collect();
                    let sealed = store.append_all(events).await.unwrap();
                    assert!(sealed.windows(2).all(|p| p[1].seq > p[0].seq), "a run lands in its order");
                }
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.unwrap();
    }
    let events = store.events("orders-prod").await.unwrap();
    let head = store.head("orders-prod").await.unwrap().unwrap();
    assert_eq!((events.len(), head.0), (48, 48), "events, head");
    verify("orders-prod", &events, Some((head.0, &head.1))).unwrap();
    let mut actors: Vec<_> = events.iter().map(|e| e.actor.clone()).collect();
    actors.sort();
    actors.dedup();
    assert_eq!(actors.len(), 48, "every append landed exactly once");
}

#[tokio::test]
async fn each_chunk_counts_once_and_one_settler_ends_the_scan() {
    let store = store("ledger").await;
    let at = contract::now();
    let manifest = manifest(at, vec![ChunkSpec::Cluster, ChunkSpec::Schemas { schemas: vec!["a".into()] }]);
    let record = manifest.record();
    assert!(store.start_scan(&record).await.unwrap());
    assert!(!store.start_scan(&record).await.unwrap(), "a retried schedule does not start a second scan");
    let (first, second) = (&manifest.tasks[0].batch_id, &manifest.tasks[1].batch_id);

    let Settled::Counted(r) = store.chunk_settled(&record.scan_id, first, &Settlement::Done).await.unwrap() else {
        panic!("the first settlement counts")
    };
    assert_eq!((r.chunks_done, r.settled()), (1, None));
    assert_eq!(
        store.chunk_settled(&record.scan_id, first, &Settlement::Done).await.unwrap(),
        Settled::AlreadyCounted,
        "a redelivered message counts nothing"
    );
    let why = Settlement::Failed("permission denied for schema a".into());
    let Settled::Counted(r) = store.chunk_settled(&record.scan_id, second, &why).await.unwrap() else {
        panic!("the failure counts")
    };
    assert_eq!((r.chunks_done, r.chunks_failed), (1, 1));
    assert_eq!(r.failures.get(second.as_str()).map(String::as_str), Some("permission denied for schema a"));
    assert_eq!(r.settled(), Some(ScanStatus::Incomplete));

    assert!(store.finish_scan(&record.scan_id, ScanStatus::Incomplete, at).await.unwrap());
    assert!(!store.finish_scan(&record.scan_id, ScanStatus::Complete, at).await.unwrap(), "only one settler ends it");
    assert_eq!(store.scan(&record.scan_id).await.unwrap().unwrap().status, ScanStatus::Incomplete);
    assert!(store.chunk_settled("scan-nope", first, &Settlement::Done).await.is_err());
}

/// The record holds counts, not the settled batch ids: a scan of more chunks
/// than one item could list settles, each chunk once, and the record keeps
/// the reasons of the first failures only; every failure's reason is on its
/// marker, which expires like the record.
#[tokio::test]
async fn the_record_stays_small_however_many_chunks_settle() {
    use grantwarden_aws::scans::{EXPIRE_AT, FAILURES_KEPT, marker_key};
    let (clients, settings) = tables("many-chunks").await;
    let store = DynamoStore::new(&clients, &settings);
    let at = contract::now();
    let chunks: Vec<ChunkSpec> =
        (0..FAILURES_KEPT + 15).map(|i| ChunkSpec::Schemas { schemas: vec![format!("s{i:04}")] }).collect();
    let manifest = manifest(at, chunks);
    assert!(store.start_scan(&manifest.record()).await.unwrap());
    let mut last = None;
    for (i, task) in manifest.tasks.iter().enumerate() {
        let how =
            if i % 10 == 0 { Settlement::Done } else { Settlement::Failed(format!("chunk {i}: {}", "x".repeat(600))) };
        let Settled::Counted(r) = store.chunk_settled(&manifest.scan_id, &task.batch_id, &how).await.unwrap() else {
            panic!("chunk {i} counts once")
        };
        assert_eq!(
            store.chunk_settled(&manifest.scan_id, &task.batch_id, &how).await.unwrap(),
            Settled::AlreadyCounted,
            "chunk {i} redelivered"
        );
        last = Some(r);
    }
    let record = last.unwrap();
    let failed = manifest.tasks.len() - manifest.tasks.len().div_ceil(10);
    assert_eq!((record.chunks_done as usize, record.chunks_failed as usize), (manifest.tasks.len() - failed, failed));
    assert_eq!(record.failures.len(), FAILURES_KEPT, "the first reasons only");
    assert!(record.failures.values().all(|why| why.chars().count() <= 503), "each reason cut");
    assert_eq!(record.settled(), Some(ScanStatus::Incomplete));

    let get = |key: String| {
        let clients = &clients;
        let table = settings.scans_table.clone();
        async move {
            clients
                .dynamodb
                .get_item()
                .table_name(table)
                .key("scan_id", aws_sdk_dynamodb::types::AttributeValue::S(key))
                .send()
                .await
                .unwrap()
                .item
                .expect("the item")
        }
    };
    let record_item = get(manifest.scan_id.clone()).await;
    assert!(!record_item.contains_key("settled_batches"));
    let last_task = manifest.tasks.last().unwrap();
    let marker = get(marker_key(&manifest.scan_id, &last_task.batch_id)).await;
    assert_eq!(marker["settled"].as_s().unwrap(), "failed");
    assert!(marker["reason"].as_s().unwrap().starts_with(&format!("chunk {}:", manifest.tasks.len() - 1)));
    assert!(marker.contains_key(EXPIRE_AT), "markers expire with the table's TTL");
}

#[tokio::test]
async fn scan_records_expire_through_the_tables_ttl_attribute() {
    use grantwarden_aws::scans::{EXPIRE_AT, RECORD_LIFETIME};
    let (clients, settings) = tables("ttl").await;
    let store = DynamoStore::new(&clients, &settings);
    let manifest = manifest(contract::now(), vec![ChunkSpec::Cluster]);
    assert!(store.start_scan(&manifest.record()).await.unwrap());

    let ttl = clients.dynamodb.describe_time_to_live().table_name(&settings.scans_table).send().await.unwrap();
    let spec = ttl.time_to_live_description.expect("a TTL description");
    assert_eq!(spec.attribute_name.as_deref(), Some(EXPIRE_AT));
    let item = clients
        .dynamodb
        .get_item()
        .table_name(&settings.scans_table)
        .key("scan_id", aws_sdk_dynamodb::types::AttributeValue::S(manifest.scan_id.clone()))
        .send()
        .await
        .unwrap()
        .item
        .expect("the record");
    let expire_at: i64 = item[EXPIRE_AT].as_n().expect("a number").parse().unwrap();
    assert_eq!(expire_at, (manifest.taken_at + RECORD_LIFETIME).timestamp());
    // the attribute is the table's business, not the record's: it still reads back
    assert_eq!(store.scan(&manifest.scan_id).await.unwrap().unwrap().chunks_total, 1);
}

/// A ticket is in the sweep's index of open tickets while it is open, and in
/// the index of unjournaled ones while its outbox holds events: a revoked
/// ticket leaves the first with the write that revokes it, the second once the
/// events of its revocation are journaled.
#[tokio::test]
async fn a_ticket_is_indexed_as_open_and_as_unjournaled_while_it_is() {
    use grantwarden_aws::tickets::{ACTIVE_INDEX, OUTBOX_INDEX};
    use grantwarden_core::audit::NewEvent;
    use grantwarden_core::store::TicketStore;
    use grantwarden_core::ticket::{Revocation, Trigger};

    let (clients, settings) = tables("indexes").await;
    let store = DynamoStore::new(&clients, &settings);
    let target = TargetId::new("orders-prod").unwrap();
    let t = contract::ticket("d-closed", grantwarden_core::model::Privilege::Select);
    let event = |kind: &str| NewEvent {
        chain: "orders-prod".into(),
        at: contract::now(),
        kind: kind.into(),
        actor: "grantwarden".into(),
        subject: t.id().to_owned(),
        target: "orders-prod".into(),
        detail: serde_json::json!({}),
    };
    let ids = |index: &'static str| indexed(&clients, &settings.tickets_table, index, "orders-prod");
    store.put_ticket(&t, &[event("ticket.requested")]).await.unwrap();
    assert_eq!((ids(ACTIVE_INDEX).await, ids(OUTBOX_INDEX).await), (vec![t.id().to_owned()], vec![t.id().to_owned()]));
    let entry = store.unjournaled(&target).await.unwrap().remove(0);
    store.journaled(&entry).await.unwrap();
    assert_eq!(ids(OUTBOX_INDEX).await, Vec::<String>::new(), "its only entry cleared");

    let mut revoked = t.clone();
    let revocation = Revocation {
        trigger: Trigger::Sweeper,
        at: contract::now(),
        latency_ms: 0,
        attempts: 1,
        statements: 1,
        kept: 0,
        sessions_terminated: 0,
        error: None,
    };
    revoked.record_revoked(revocation, "grantwarden:sweeper");
    store.update_ticket(&revoked, 1, &[event("ticket.revoked")]).await.unwrap();
    assert_eq!(ids(ACTIVE_INDEX).await, Vec::<String>::new(), "closed: no longer open");
    assert!(store.open_tickets(&target).await.unwrap().is_empty());
    assert_eq!(ids(OUTBOX_INDEX).await, vec![t.id().to_owned()], "while its revocation's event waits");
    let entry = store.unjournaled(&target).await.unwrap().remove(0);
    store.journaled(&entry).await.unwrap();
    assert!(store.unjournaled(&target).await.unwrap().is_empty());
    assert_eq!(ids(OUTBOX_INDEX).await, Vec::<String>::new(), "out of it once cleared");
}

/// The ids of the tickets sparse index `index` holds for `target`.
async fn indexed(clients: &Clients, table: &str, index: &str, target: &str) -> Vec<String> {
    let key = if index == grantwarden_aws::tickets::ACTIVE_INDEX { "active_target" } else { "outbox_target" };
    let page = clients
        .dynamodb
        .query()
        .table_name(table)
        .index_name(index)
        .key_condition_expression("#k = :t")
        .expression_attribute_names("#k", key)
        .expression_attribute_values(":t", aws_sdk_dynamodb::types::AttributeValue::S(target.into()))
        .send()
        .await
        .unwrap();
    page.items().iter().map(|i| i["id"].as_s().unwrap().clone()).collect()
}
