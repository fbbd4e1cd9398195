//! The audit function against moto: journal events appended through the
//! DynamoDB store reach the Object-Lock archive through the table's real
//! stream, once, locked; a bucket without Object Lock is refused.

use std::sync::Arc;

use aws_sdk_s3::types::ObjectLockMode;
use chrono::{DateTime, TimeDelta, Utc};
use grantwarden_audit::{Audit, Handled};
use grantwarden_aws::archive::{ArchiveError, Archived, event_key};
use grantwarden_aws::{Clients, DynamoStore, Settings, provision};
use grantwarden_core::audit::{AuditEvent, AuditJournal};
use grantwarden_testkit::{contract, moto};
use lambda_runtime::{Context, LambdaEvent};

fn now() -> DateTime<Utc> {
    "2026-11-25T12:00:00Z".parse().unwrap()
}

async fn stack(test: &str) -> (Clients, Settings) {
    let clients = Clients::for_endpoint(&moto::endpoint()).await;
    let settings = provision::create(&clients, &moto::unique_prefix(test)).await.expect("moto creates the resources");
    (clients, settings)
}

async fn handle(audit: &Audit, clients: &Clients, settings: &Settings) -> Vec<Handled> {
    let event = moto::table_stream(&clients.dynamodb, &settings.journal_table).await;
    audit.handle(LambdaEvent { payload: event, context: Context::default() }).await.expect("archived")
}

async fn archived(clients: &Clients, settings: &Settings, e: &AuditEvent) -> (AuditEvent, Option<ObjectLockMode>, i64) {
    let key = event_key(&e.chain, e.seq);
    let got = clients.s3.get_object().bucket(&settings.audit_bucket).key(&key).send().await.expect("archived object");
    let (mode, until) = (got.object_lock_mode.clone(), got.object_lock_retain_until_date.map(|d| d.secs()));
    let body = got.body.collect().await.unwrap().into_bytes();
    (serde_json::from_slice(&body).expect("the event's JSON"), mode, until.unwrap_or(0))
}

#[tokio::test]
async fn every_journal_event_is_archived_once_and_locked() {
    let (clients, settings) = stack("archive").await;
    let store = DynamoStore::new(&clients, &settings);
    let mut events = Vec::new();
    for n in 0..3 {
        events.push(store.append(contract::audit_event(n)).await.unwrap());
    }
    let audit = Audit::new(&clients, &settings, Arc::new(now)).await.expect("the bucket has Object Lock");

    let first = handle(&audit, &clients, &settings).await;
    let written: Vec<_> = first.iter().filter(|h| matches!(h, Handled::Archived(Archived::Written { .. }))).collect();
    assert_eq!(written.len(), 3, "three events, the head item ignored: {first:?}");
    let until = (now() + TimeDelta::days(2555)).timestamp();
    for e in &events {
        let (copy, mode, retain_until) = archived(&clients, &settings, e).await;
        assert_eq!(&copy, e, "the archive holds the journal's event byte for byte");
        assert_eq!(mode, Some(ObjectLockMode::Compliance));
        assert_eq!(retain_until, until);
    }

    // the stream redelivers: nothing is rewritten, no retention touched
    let again = handle(&audit, &clients, &settings).await;
    assert!(again.iter().all(|h| !matches!(h, Handled::Archived(Archived::Written { .. }))), "{again:?}");
    assert_eq!(again.iter().filter(|h| matches!(h, Handled::Archived(Archived::AlreadyArchived { .. }))).count(), 3);
    let key = event_key(&events[0].chain, 1);
    let versions = clients.s3.list_object_versions().bucket(&settings.audit_bucket).prefix(&key).send().await.unwrap();
    assert_eq!(versions.versions.unwrap_or_default().len(), 1, "one version per event");
}

#[tokio::test]
async fn a_locked_event_cannot_be_deleted() {
    let (clients, settings) = stack("locked").await;
    let store = DynamoStore::new(&clients, &settings);
    let e = store.append(contract::audit_event(1)).await.unwrap();
    let audit = Audit::new(&clients, &settings, Arc::new(now)).await.unwrap();
    handle(&audit, &clients, &settings).await;

    let key = event_key(&e.chain, e.seq);
    let head = clients.s3.head_object().bucket(&settings.audit_bucket).key(&key).send().await.unwrap();
    let version = head.version_id.expect("a versioned object");
    let deleted = clients
        .s3
        .delete_object()
        .bucket(&settings.audit_bucket)
        .key(&key)
        .version_id(&version)
        .bypass_governance_retention(true)
        .send()
        .await;
    assert!(deleted.is_err(), "a COMPLIANCE lock refuses deletion, even with the governance bypass");
    assert_eq!(archived(&clients, &settings, &e).await.0, e);
}

#[tokio::test]
async fn another_event_under_an_archived_key_is_refused() {
    let (clients, settings) = stack("conflict").await;
    let store = DynamoStore::new(&clients, &settings);
    let e = store.append(contract::audit_event(1)).await.unwrap();
    let archive = grantwarden_aws::Archive::new(&clients, &settings.audit_bucket, settings.audit_retention);
    let json = serde_json::to_string(&e).unwrap();
    archive.put(&e, &json, now()).await.unwrap();

    let mut forged = e.clone();
    forged.actor = "mallory@example.com".into();
    forged.hash = "f".repeat(64);
    let err = archive.put(&forged, &serde_json::to_string(&forged).unwrap(), now()).await.unwrap_err();
    assert!(matches!(err, ArchiveError::Conflict { .. }), "{err}");
    assert!(err.to_string().contains(&e.hash), "{err}");
}

#[tokio::test]
async fn a_bucket_without_object_lock_is_refused_at_start() {
    let (clients, settings) = stack("unlocked").await;
    // the data bucket has no Object Lock
    let unlocked = Settings { audit_bucket: settings.bucket.clone(), ..settings };
    let err = Audit::new(&clients, &unlocked, Arc::new(now)).await.err().expect("refused");
    assert!(matches!(err, ArchiveError::NotLocked { .. }), "{err}");
    assert!(err.to_string().contains("Object Lock"), "{err}");
}

#[tokio::test]
async fn the_hourly_digest_signs_each_new_event_once_with_the_key_in_secrets_manager() {
    use grantwarden_core::digest::{DigestKey, DigestStore, verify_digests};
    let (clients, settings) = stack("digest").await;
    let secret = "generated-by-secrets-manager-0123456789abcdefghijklmnopqrstuvwxyz";
    clients.secrets.create_secret().name(&settings.audit_signing_secret_id).secret_string(secret).send().await.unwrap();
    let store = DynamoStore::new(&clients, &settings);
    for n in 0..3 {
        store.append(contract::audit_event(n)).await.unwrap();
    }
    let audit = Audit::new(&clients, &settings, Arc::new(now)).await.unwrap();
    handle(&audit, &clients, &settings).await;

    let first = audit.digest().await.expect("digest signed");
    assert_eq!(first.iter().map(|d| (d.number, d.first_seq, d.last_seq)).collect::<Vec<_>>(), [(1, 1, 3)]);
    assert!(audit.digest().await.unwrap().is_empty(), "nothing new: no digest");
    for n in 3..5 {
        store.append(contract::audit_event(n)).await.unwrap();
    }
    handle(&audit, &clients, &settings).await;
    let second = audit.digest().await.unwrap();
    assert_eq!(second.iter().map(|d| (d.number, d.first_seq, d.last_seq)).collect::<Vec<_>>(), [(2, 4, 5)]);

    // events in the journal that the stream has not archived yet wait for the next digest
    store.append(contract::audit_event(5)).await.unwrap();
    assert!(audit.digest().await.unwrap().is_empty(), "seq 6 is not archived yet: not signed");
    handle(&audit, &clients, &settings).await;
    assert_eq!(audit.digest().await.unwrap().iter().map(|d| (d.first_seq, d.last_seq)).collect::<Vec<_>>(), [(6, 6)]);

    // the digests are in the locked archive, and verify against the chain with the secret's key
    let archive = grantwarden_aws::Archive::new(&clients, &settings.audit_bucket, settings.audit_retention);
    let digests = archive.digests("orders-prod").await.unwrap();
    assert_eq!(digests.len(), 3);
    let key = grantwarden_aws::archive::digest_key("orders-prod", 2);
    let head = clients.s3.head_object().bucket(&settings.audit_bucket).key(&key).send().await.unwrap();
    assert_eq!(head.object_lock_mode, Some(ObjectLockMode::Compliance));
    let fingerprint = DigestKey::from_secret(secret, "test").unwrap().fingerprint();
    let events = store.events("orders-prod").await.unwrap();
    let check = verify_digests("orders-prod", &digests, &events, &[fingerprint]).unwrap();
    assert_eq!((check.digests, check.digested_through), (3, 6));
}

/// An SQS queue subscribed to the alert topic, to read what was published.
async fn alert_inbox(clients: &Clients, settings: &Settings) -> String {
    let topic = settings.alert_topic_arn.as_deref().unwrap();
    moto::alert_inbox(&clients.sqs, &clients.sns, topic, &format!("{}-inbox", settings.bucket)).await
}

/// Overwrites the journal's item of `e` as a writer of the table could: a
/// forged event in place of the original, its own hash recomputed.
async fn rewrite_in_journal(clients: &Clients, settings: &Settings, e: &AuditEvent) {
    let item = serde_dynamo::aws_sdk_dynamodb_1::to_item(serde_json::json!({
        "chain": e.chain, "seq": e.seq, "hash": e.hash, "type": e.kind, "at": e.at.to_rfc3339(), "actor": e.actor,
        "subject": e.subject, "target": e.target, "event": serde_json::to_string(e).unwrap(),
    }))
    .unwrap();
    clients.dynamodb.put_item().table_name(&settings.journal_table).set_item(Some(item)).send().await.unwrap();
}

#[tokio::test]
async fn a_journal_rewritten_before_the_hours_digest_is_refused_and_alerted_not_signed() {
    use grantwarden_audit::AuditError;
    use grantwarden_core::audit::{Changed, event_hash};
    use grantwarden_core::digest::DigestStore;
    let (clients, settings) = stack("refused").await;
    let secret = "generated-by-secrets-manager-0123456789abcdefghijklmnopqrstuvwxyz";
    clients.secrets.create_secret().name(&settings.audit_signing_secret_id).secret_string(secret).send().await.unwrap();
    let inbox = alert_inbox(&clients, &settings).await;
    let store = DynamoStore::new(&clients, &settings);
    let mut events = Vec::new();
    for n in 0..4 {
        events.push(store.append(contract::audit_event(n)).await.unwrap());
    }
    let audit = Audit::new(&clients, &settings, Arc::new(now)).await.unwrap();
    handle(&audit, &clients, &settings).await;

    // within the hour, a writer of the journal rewrites seq 3 and 4 with
    // fresh hashes: the journal alone verifies, the archive still holds the originals
    let mut forged = events[2].clone();
    forged.actor = "mallory@example.com".into();
    forged.hash = event_hash(&forged);
    let mut next = events[3].clone();
    next.prev_hash = forged.hash.clone();
    next.hash = event_hash(&next);
    for e in [&forged, &next] {
        rewrite_in_journal(&clients, &settings, e).await;
    }
    let journal = store.events("orders-prod").await.unwrap();
    assert!(grantwarden_core::audit::verify("orders-prod", &journal, None).is_ok(), "a consistent forgery");

    let err = audit.digest().await.expect_err("refused");
    let AuditError::Refused { refused, signed } = &err else { panic!("{err}") };
    assert_eq!(*signed, 1, "seq 1 and 2 still agree and are signed");
    let [r] = &refused[..] else { panic!("{refused:?}") };
    assert_eq!((r.chain.as_str(), r.seq, r.changed), ("orders-prod", 3, Changed::Journal));
    assert_eq!(r.archive_hash.as_deref(), Some(events[2].hash.as_str()));
    assert_eq!(r.journal_hash.as_deref(), Some(forged.hash.as_str()));
    let message = err.to_string();
    assert!(message.contains("chain orders-prod, seq 3: the archive holds hash"), "{message}");
    assert!(message.contains("journal was rewritten after archiving"), "{message}");
    let diagnostic = lambda_runtime::Diagnostic::from(err);
    assert_eq!(diagnostic.error_type, "Validation", "not retried into the same refusal");
    let archive = grantwarden_aws::Archive::new(&clients, &settings.audit_bucket, settings.audit_retention);
    let digest = archive.digests("orders-prod").await.unwrap();
    assert_eq!(digest.iter().map(|d| (d.first_seq, d.last_seq)).collect::<Vec<_>>(), [(1, 2)]);

    let got = clients.sqs.receive_message().queue_url(&inbox).max_number_of_messages(10).send().await.unwrap();
    let envelope: serde_json::Value = serde_json::from_str(got.messages()[0].body().unwrap()).unwrap();
    assert!(envelope["Subject"].as_str().unwrap().contains("TAMPER"), "{envelope}");
    let detail: serde_json::Value = serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
    assert_eq!((detail["chain"].as_str(), detail["seq"].as_u64()), (Some("orders-prod"), Some(3)));
    assert_eq!(detail["changed"], "journal");

    // the next hour refuses again: nothing past seq 2 is signed while they disagree
    assert!(matches!(audit.digest().await, Err(AuditError::Refused { signed: 0, .. })));
    assert_eq!(archive.digests("orders-prod").await.unwrap().len(), 1);
}
