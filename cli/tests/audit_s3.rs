//! `grantwarden audit verify --bucket` against the Object-Lock archive in
//! moto: an intact archive verifies against the journal and its signed
//! digests; deleting a locked version is refused by S3; a delete without a
//! version id leaves a delete marker, which verify reports instead of
//! reading a shorter archive as complete.

use std::process::{Command, Output};

use chrono::{DateTime, Utc};
use grantwarden_aws::archive::event_key;
use grantwarden_aws::{Archive, Clients, DynamoStore, provision};
use grantwarden_core::audit::AuditJournal;
use grantwarden_core::digest::{DigestKey, digest_chains};
use grantwarden_testkit::{contract, moto};

fn grantwarden(endpoint: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grantwarden"))
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("AWS_PROFILE")
        .env_remove("GRANTWARDEN_STATE")
        .output()
        .unwrap()
}

fn now() -> DateTime<Utc> {
    "2026-11-25T12:00:00Z".parse().unwrap()
}

#[tokio::test]
async fn verify_reads_every_object_version_and_reports_a_delete_marker() {
    let endpoint = moto::endpoint();
    let clients = Clients::for_endpoint(&endpoint).await;
    let settings = provision::create(&clients, &moto::unique_prefix("verify")).await.unwrap();
    let journal = DynamoStore::new(&clients, &settings);
    let archive = Archive::new(&clients, &settings.audit_bucket, settings.audit_retention);
    for n in 0..4 {
        let e = journal.append(contract::audit_event(n)).await.unwrap();
        archive.put(&e, &serde_json::to_string(&e).unwrap(), now()).await.unwrap();
    }
    // one more in the journal that the archive has not caught up with
    journal.append(contract::audit_event(4)).await.unwrap();
    let key = DigestKey::generate();
    let chains = vec!["orders-prod".to_owned()];
    digest_chains(&journal, &archive, &chains, &key, now()).await.unwrap();
    let fingerprint = key.fingerprint();
    let verify = |extra: &[&str]| {
        let mut args = vec!["audit", "verify", "--bucket", &settings.audit_bucket, "--key-fingerprint", &fingerprint];
        args.extend_from_slice(extra);
        grantwarden(&endpoint, &args)
    };

    // the digest covers seq 1..=5 but the archive holds 1..=4: the archive lags
    // the journal and the digest, which is what verify must say (not "intact")
    let lagging = verify(&[]);
    let text = String::from_utf8_lossy(&lagging.stdout).into_owned();
    assert_eq!(lagging.status.code(), Some(2), "{text}");
    assert!(text.contains("BROKEN at seq 5: signed digest 1 lists seq 5"), "{text}");
    let e5 = journal.events("orders-prod").await.unwrap().pop().unwrap();
    archive.put(&e5, &serde_json::to_string(&e5).unwrap(), now()).await.unwrap();
    let ok = verify(&["--journal-table", &settings.journal_table]);
    let text = String::from_utf8_lossy(&ok.stdout).into_owned();
    assert_eq!(ok.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&ok.stderr));
    assert!(text.contains("chain orders-prod: intact (5 events, 1 signed digests through seq 5"), "{text}");
    assert!(text.contains("0 journal events not archived yet"), "{text}");

    // a locked version cannot be deleted
    let target = event_key("orders-prod", 5);
    let head = clients.s3.head_object().bucket(&settings.audit_bucket).key(&target).send().await.unwrap();
    let refused = clients
        .s3
        .delete_object()
        .bucket(&settings.audit_bucket)
        .key(&target)
        .version_id(head.version_id.unwrap())
        .send()
        .await;
    assert!(refused.is_err(), "Object Lock refuses deleting a locked version");

    // a delete without a version id succeeds, leaving a marker over the tail event
    clients.s3.delete_object().bucket(&settings.audit_bucket).key(&target).send().await.unwrap();
    assert!(
        clients.s3.get_object().bucket(&settings.audit_bucket).key(&target).send().await.is_err(),
        "a plain read no longer sees the event"
    );
    let out = verify(&["--journal-table", &settings.journal_table, "--format", "json"]);
    assert_eq!(out.status.code(), Some(2));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let broken = &report["chains"][0]["broken"];
    assert_eq!(broken["seq"], 5, "{report}");
    assert!(broken["reason"].as_str().unwrap().contains("hidden by a delete marker"), "{report}");
    assert_eq!(report["intact"], false);
}
