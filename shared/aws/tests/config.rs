//! Configuration objects against moto: a warm function reads a baseline or
//! the policy registry again only when its object changed (ETag), and sees
//! an edit at the next read.

use std::sync::Arc;

use grantwarden_aws::{Clients, Objects, provision};
use grantwarden_core::snapshot::TargetId;
use grantwarden_testkit::moto;

const POLICY: &str = include_str!("../../../infra/policy.example.yaml");

fn baseline(role: &str) -> Vec<u8> {
    format!("version: 1\nroles:\n  {role}:\n    grants:\n      - {{ privileges: [USAGE], on: schema, name: app }}\n")
        .into_bytes()
}

#[tokio::test]
async fn an_unchanged_baseline_or_registry_is_not_read_again_and_an_edit_is_seen_at_the_next_read() {
    let clients = Clients::for_endpoint(&moto::endpoint()).await;
    let settings = provision::create(&clients, &moto::unique_prefix("config-etag")).await.unwrap();
    let objects = Objects::new(&clients, &settings);
    let target = TargetId::new("db.internal:5432/orders").unwrap();
    let key = settings.baseline_key.replace("{target}", &grantwarden_aws::objects::key_segment(&target));
    objects.put(&key, baseline("app_ro"), "application/yaml").await.unwrap();

    let first = objects.baseline(&target).await.unwrap();
    // a clone of the handler's Objects shares what was read
    let again = objects.clone().baseline(&target).await.unwrap();
    assert!(Arc::ptr_eq(&first, &again), "unchanged: the parsed baseline is reused, not parsed again");
    objects.put(&key, baseline("app_rw"), "application/yaml").await.unwrap();
    let edited = objects.baseline(&target).await.unwrap();
    assert!(!Arc::ptr_eq(&first, &edited));
    let roles: Vec<&str> = edited.roles.keys().map(|r| r.as_str()).collect();
    assert_eq!(roles, ["app_rw"], "the edit is read");

    // a container serving many targets keeps the two baselines read last
    let other = |n: u32| TargetId::new(format!("db.internal:5432/other{n}")).unwrap();
    for n in 0..2 {
        let key = settings.baseline_key.replace("{target}", &grantwarden_aws::objects::key_segment(&other(n)));
        objects.put(&key, baseline("app_ro"), "application/yaml").await.unwrap();
    }
    let recent = objects.baseline(&other(0)).await.unwrap();
    objects.baseline(&other(1)).await.unwrap();
    assert!(Arc::ptr_eq(&recent, &objects.baseline(&other(0)).await.unwrap()), "kept: one of the last two");
    assert!(!Arc::ptr_eq(&edited, &objects.baseline(&target).await.unwrap()), "the oldest was let go, read anew");

    let policy_key = format!("{}registry.yaml", settings.policy_prefix);
    objects.put(&policy_key, POLICY.as_bytes().to_vec(), "application/yaml").await.unwrap();
    let registry = objects.policy_registry().await.unwrap();
    assert_eq!(objects.policy_registry().await.unwrap().id, registry.id);
    let bumped = POLICY.replacen("version:", "# edited\nversion:", 1);
    objects.put(&policy_key, bumped.into_bytes(), "application/yaml").await.unwrap();
    let reread = objects.policy_registry().await.unwrap();
    assert_ne!(reread.id.sha256, registry.id.sha256, "an edited file is read again");
    objects
        .put(&format!("{}broken.yaml", settings.policy_prefix), b"version: [".to_vec(), "application/yaml")
        .await
        .unwrap();
    assert!(objects.policy_registry().await.is_err(), "a new file is seen, and a broken one refused");
}
