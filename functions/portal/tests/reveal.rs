//! The portal function's credential page on AWS: the credential the revoke
//! function delivered into the ticket's secret (in moto's Secrets Manager),
//! shown to its requester once, after a sign-in at the fake provider.

use std::sync::Arc;

use chrono::Utc;
use grantwarden_aws::{AccessSecrets, Clients, RdsSecret};
use grantwarden_core::audit::AuditJournal;
use grantwarden_core::policy::PolicyRegistry;
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::TicketStore;
use grantwarden_local::LocalStore;
use grantwarden_oidc::{LazyVerifier, Settings, Verifier};
use grantwarden_portal::{Config, Portal, cookie_key, router};
use grantwarden_portal_fn::SecretRevealer;
use grantwarden_testkit::browser::{Browser, field};
use grantwarden_testkit::oidc::{CLIENT_ID, FakeIdp};

const POLICY: &str = include_str!("../../../infra/policy.example.yaml");
const DEMO: &str = "grantwarden-demo";

#[tokio::test]
async fn the_delivered_credential_is_shown_to_its_requester_once() {
    let clients = Clients::for_endpoint(&grantwarden_testkit::moto::endpoint()).await;
    let prefix = format!("{}/access/", grantwarden_testkit::moto::unique_prefix("portal-reveal"));
    let secrets = AccessSecrets::new(&clients, &prefix);
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(&dir.path().join("state.db")).unwrap();
    let registry = PolicyRegistry::load(&[("policy.example.yaml".into(), POLICY.into())]).map_err(|e| e.to_string());
    let idp = FakeIdp::start().await;
    idp.sign_in_as("alice@example.com", &[], Utc::now());
    let verifier = Verifier::discover(Settings::new(&idp.issuer, CLIENT_ID)).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = Config::new(Some(base.clone()), cookie_key(&[3u8; 64]).unwrap(), [TargetId::new(DEMO).unwrap()]);
    let portal = Portal::new(store, registry, Some(Arc::new(LazyVerifier::ready(verifier))), config)
        .with_revealer(Arc::new(SecretRevealer(secrets.clone())));
    let portal = Arc::new(portal);
    let app = router(Arc::clone(&portal));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let mut alice = Browser::new();
    alice.open(&base, &format!("{base}/")).await;
    let submitted = alice
        .submit_request(
            &base,
            &[
                ("target", DEMO),
                ("path", "read-only"),
                ("scope_on", "tables"),
                ("schema", "billing"),
                ("tables", "invoices"),
                ("duration", "1h"),
                ("justification", "CHG-4004"),
                ("action", "submit"),
            ],
        )
        .await;
    let ticket_path = submitted.location.expect("the request's page");
    let csrf = field(&alice.get(&format!("{base}{ticket_path}")).await.body, "csrf");
    let ticket = ticket_path.trim_start_matches("/requests/").to_owned();
    let credential = format!("{base}{ticket_path}/credential");

    // the revoke function has not delivered it yet
    let early = alice.post(&credential, &[("csrf", &csrf)]).await;
    assert_eq!(early.status, 409, "{}", early.body);
    assert!(early.body.contains("being issued"));

    // the revoke function's delivery: the tagged secret, then `issued` on the ticket
    let stored = portal.store().ticket(&ticket).await.unwrap().unwrap().value;
    let delivered = RdsSecret {
        engine: "postgres".into(),
        host: "orders.cluster-x.eu-west-1.rds.amazonaws.com".into(),
        port: 5432,
        username: stored.request().role.to_string(),
        password: "s3cr3t-Pa55word-only-once".into(),
        dbname: "orders".into(),
    };
    secrets.get_or_create(&ticket, &delivered, stored.expires_at()).await.unwrap();
    let name = secrets.name(&ticket);
    grantwarden_core::access::record_issued(portal.store(), &ticket, &delivered.username, &[], Some(&name), Utc::now())
        .await
        .unwrap();

    let shown = alice.post(&credential, &[("csrf", &csrf)]).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(shown.headers["cache-control"], "no-store");
    assert!(shown.body.contains("s3cr3t-Pa55word-only-once"));
    assert!(shown.body.contains(&format!("user={}", delivered.username)));
    let again = alice.post(&credential, &[("csrf", &csrf)]).await;
    assert_eq!(again.status, 409);
    assert!(again.body.contains("shown already"), "{}", again.body);
    let events = portal.store().events(DEMO).await.unwrap();
    let shown_event = events.iter().find(|e| e.kind.to_string() == "access.shown").expect("journaled");
    assert_eq!(shown_event.actor, "alice@example.com");
    assert!(!serde_json::to_string(&events).unwrap().contains("s3cr3t-Pa55word-only-once"), "never the password");
}
