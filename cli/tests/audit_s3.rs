//! `grantwarden audit verify --bucket` against the Object-Lock archive in
//! moto: the digests sign only what the archive holds, and an intact archive
//! verifies against the journal and them; deleting a locked version is
//! refused by S3; a delete without a version id leaves a delete marker, which
//! verify reports instead of reading a shorter archive as complete; an
//! overwritten object is reported as the archive's change; verify without a
//! pinned key fingerprint says so.

use std::process::{Command, Output};

use chrono::{DateTime, Utc};
use grantwarden_aws::archive::event_key;
use grantwarden_aws::{Archive, Clients, DynamoStore, Settings, provision};
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

/// moto's resources, with `n` events journaled and archived on chain orders-prod.
async fn archived(test: &str, n: usize) -> (String, Clients, Settings, DynamoStore, Archive) {
    let endpoint = moto::endpoint();
    let clients = Clients::for_endpoint(&endpoint).await;
    let settings = provision::create(&clients, &moto::unique_prefix(test)).await.unwrap();
    let journal = DynamoStore::new(&clients, &settings);
    let archive = Archive::new(&clients, &settings.audit_bucket, settings.audit_retention);
    for i in 0..n {
        let e = journal.append(contract::audit_event(i)).await.unwrap();
        archive.put(&e, &serde_json::to_string(&e).unwrap(), now()).await.unwrap();
    }
    (endpoint, clients, settings, journal, archive)
}

#[tokio::test]
async fn verify_reads_every_object_version_and_reports_a_delete_marker() {
    let (endpoint, clients, settings, journal, archive) = archived("verify", 4).await;
    // one more in the journal that the archive has not caught up with: not signed yet
    journal.append(contract::audit_event(4)).await.unwrap();
    let key = DigestKey::generate();
    let chains = vec!["orders-prod".to_owned()];
    let run = digest_chains(&journal, &archive, &archive, &chains, &key, now()).await.unwrap();
    assert_eq!(run.made.iter().map(|d| (d.first_seq, d.last_seq)).collect::<Vec<_>>(), [(1, 4)]);
    assert!(run.refused.is_empty(), "{run:?}");
    let fingerprint = key.fingerprint();
    let verify = |extra: &[&str]| {
        let mut args = vec!["audit", "verify", "--bucket", &settings.audit_bucket, "--key-fingerprint", &fingerprint];
        args.extend_from_slice(extra);
        grantwarden(&endpoint, &args)
    };

    // the archive lags the journal by one event: intact, the lag counted
    let lagging = verify(&["--journal-table", &settings.journal_table]);
    let text = String::from_utf8_lossy(&lagging.stdout).into_owned();
    assert_eq!(lagging.status.code(), Some(0), "{text}");
    assert!(text.contains("intact (4 events, 1 signed digests through seq 4"), "{text}");
    assert!(text.contains("1 journal events not archived yet"), "{text}");
    assert!(!text.contains("warning:"), "the fingerprint is pinned: {text}");
    let e5 = journal.events("orders-prod").await.unwrap().pop().unwrap();
    archive.put(&e5, &serde_json::to_string(&e5).unwrap(), now()).await.unwrap();
    let run = digest_chains(&journal, &archive, &archive, &chains, &key, now()).await.unwrap();
    assert_eq!(run.made.iter().map(|d| (d.number, d.first_seq, d.last_seq)).collect::<Vec<_>>(), [(2, 5, 5)]);
    let ok = verify(&["--journal-table", &settings.journal_table]);
    let text = String::from_utf8_lossy(&ok.stdout).into_owned();
    assert_eq!(ok.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&ok.stderr));
    assert!(text.contains("chain orders-prod: intact (5 events, 2 signed digests through seq 5"), "{text}");
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

#[tokio::test]
async fn an_overwritten_archive_object_is_the_archives_change_and_an_unpinned_key_is_said_loudly() {
    let (endpoint, clients, settings, journal, archive) = archived("overwrite", 3).await;
    let secret = "generated-by-secrets-manager-0123456789abcdefghijklmnopqrstuvwxyz";
    clients.secrets.create_secret().name(&settings.audit_signing_secret_id).secret_string(secret).send().await.unwrap();
    let key = DigestKey::from_secret(secret, "test").unwrap();
    digest_chains(&journal, &archive, &archive, &["orders-prod".to_owned()], &key, now()).await.unwrap();

    // verify against the archive and the journal, with `extra` arguments
    let verify = |extra: &[&str]| {
        let mut args = vec!["audit", "verify", "--bucket", &settings.audit_bucket];
        args.extend_from_slice(&["--journal-table", &settings.journal_table]);
        args.extend_from_slice(extra);
        grantwarden(&endpoint, &args)
    };
    // trusting the key in the secret only: verified, and a warning that nothing is pinned
    let unpinned = |format: &str| verify(&["--signing-secret", &settings.audit_signing_secret_id, "--format", format]);
    let out = unpinned("text");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "the exit code is unchanged: {text}");
    assert!(text.starts_with("warning: no --key-fingerprint pinned"), "{text}");
    assert!(text.contains(&format!("the key in secret {}", settings.audit_signing_secret_id)), "{text}");
    let out = unpinned("json");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["intact"].as_bool(), report["key_pinned"].as_bool()), (Some(true), Some(false)), "{report}");
    assert!(report["warnings"][0].as_str().unwrap().contains("no --key-fingerprint pinned"), "{report}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: no --key-fingerprint pinned"));

    // a second version written over an archived event (Object Lock keeps the first)
    let target = event_key("orders-prod", 2);
    let mut forged = journal.events("orders-prod").await.unwrap()[1].clone();
    forged.actor = "mallory@example.com".into();
    let body = serde_json::to_vec(&forged).unwrap();
    clients.s3.put_object().bucket(&settings.audit_bucket).key(&target).body(body.into()).send().await.unwrap();
    let out = verify(&["--key-fingerprint", &key.fingerprint()]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("BROKEN at seq 2:") && text.contains("was written 2 times (overwritten)"), "{text}");
}
