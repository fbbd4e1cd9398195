//! The intake handler against the real SQLite store, the example policy
//! registry, signed requests and the bearer tokens of a fake identity provider
//! (over HTTP), with the clock under the test's control: what a signature
//! binds, that each signed request is served once, that a person is whom a
//! verified token or a registry sender within its rights says, and incident
//! webhooks believed only on their tool's own credential.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use grantwarden_core::audit::{AuditEvent, AuditJournal, NewEvent};
use grantwarden_core::error::StoreError;
use grantwarden_core::finding::FindingAge;
use grantwarden_core::identity::Voucher;
use grantwarden_core::incident::{IncidentStatus, IncidentStore, IncidentUpdate, OPSGENIE_HEADER, PAGERDUTY_HEADER};
use grantwarden_core::policy::PolicyRegistry;
use grantwarden_core::report::Finding;
use grantwarden_core::signature::{self, SignedRequest, sign_v1, sign_v2};
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::{
    FindingStore, PutOutcome, Recorded, ReplayGuard, ReplayKey, TicketStore, Unjournaled, Versioned,
};
use grantwarden_core::ticket::Ticket;
use grantwarden_intake::{App, Clock, SENDER_HEADER, StaticKey, StaticSenderKeys};
use grantwarden_local::LocalStore;
use grantwarden_oidc::{LazyVerifier, Settings, Verifier};
use grantwarden_testkit::oidc::{CLIENT_ID, FakeIdp};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

const KEY: &[u8] = b"grantwarden-test-webhook-key";
/// The key of the example registry's `servicenow` sender.
const SERVICENOW_KEY: &[u8] = b"grantwarden-test-servicenow-key";
const POLICY: &str = include_str!("../../../infra/policy.example.yaml");
const WEBHOOK: &str = include_str!("../../../infra/grant-webhook.example.json");
const FUNCTION_URL_EVENT: &str = include_str!("../../../events/intake-function-url.json");
const HTTP_API_EVENT: &str = include_str!("../../../events/intake-http-api.json");
const PAGERDUTY_EVENT: &str = include_str!("../../../events/intake-pagerduty-incident.json");
/// The PagerDuty subscription's signing secret the PagerDuty event is signed with.
const PD_SECRET: &[u8] = b"pd-test-signing-secret";
const OPSGENIE_TOKEN: &[u8] = b"og-test-token-4f1c";
/// The time the events of events/ were signed at.
const SIGNED_AT: i64 = 1_795_348_800; // 2026-11-22T12:00:00Z
const DEMO: &str = "grantwarden-demo";

struct TestClock(Mutex<DateTime<Utc>>);

impl TestClock {
    fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap() = at;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

fn at(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap()
}

fn registry() -> Result<PolicyRegistry, String> {
    Ok(PolicyRegistry::load(&[("policy.example.yaml".into(), POLICY.into())]).unwrap())
}

struct Harness {
    app: App<LocalStore, StaticKey>,
    clock: Arc<TestClock>,
    idp: FakeIdp,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// A request of `email`, with a token issued (and signed in) at the clock's now.
    fn as_person(&self, email: &str, method: Method, path: &str, body: &Value) -> Request {
        let now = *self.clock.0.lock().unwrap();
        self.with_token(&self.idp.token(email).issued_at(now).signed(), method, path, body)
    }

    fn with_token(&self, token: &str, method: Method, path: &str, body: &Value) -> Request {
        let body = if method == Method::GET { String::new() } else { body.to_string() };
        lambda_http::http::Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::from(body))
            .unwrap()
    }

    /// An approval of ticket `id` by `approver`, signed in just now.
    fn approval(&self, id: &str, approver: &str) -> Request {
        self.as_person(approver, Method::POST, &format!("/requests/{id}/approvals"), &json!({}))
    }
}

async fn harness_with(registry: Result<PolicyRegistry, String>) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(&dir.path().join("state.db")).unwrap();
    let clock = Arc::new(TestClock(Mutex::new(at(SIGNED_AT))));
    let idp = FakeIdp::start().await;
    let verifier = Verifier::discover(Settings::new(&idp.issuer, CLIENT_ID)).await.unwrap();
    let senders = StaticSenderKeys(
        [("grantwarden/senders/servicenow".to_owned(), SERVICENOW_KEY.to_vec())].into_iter().collect(),
    );
    let app = App::new(store, registry, StaticKey(KEY.to_vec()))
        .with_clock(clock.clone())
        .with_known_targets([TargetId::new(DEMO).unwrap()])
        .with_identity_provider(Arc::new(LazyVerifier::ready(verifier)))
        .with_sender_keys(Arc::new(senders));
    Harness { app, clock, idp, _dir: dir }
}

async fn harness() -> Harness {
    harness_with(registry()).await
}

/// A request signed (v2) at `t` by the registry sender `sender` with `key`.
fn signed_by(sender: &str, key: &[u8], method: Method, path: &str, body: &Value, t: i64) -> Request {
    let body = if method == Method::GET { String::new() } else { body.to_string() };
    let header = sign_v2(key, t, &SignedRequest { method: method.as_str(), path, body: body.as_bytes() }).unwrap();
    lambda_http::http::Request::builder()
        .method(method)
        .uri(path)
        .header(signature::HEADER, header)
        .header(SENDER_HEADER, sender)
        .body(Body::from(body))
        .unwrap()
}

/// A POST of the `servicenow` sender, signed now.
fn servicenow(path: &str, body: &Value) -> Request {
    signed_by("servicenow", SERVICENOW_KEY, Method::POST, path, body, SIGNED_AT)
}

/// The v2 signature header of `method path body` at `t` with the test key.
fn signature_of(method: &Method, path: &str, body: &[u8], t: i64) -> String {
    sign_v2(KEY, t, &SignedRequest { method: method.as_str(), path, body }).unwrap()
}

/// A request with `header` as its signature, whatever it signs.
fn with_signature(method: Method, path: &str, body: &[u8], header: &str) -> Request {
    lambda_http::http::Request::builder()
        .method(method)
        .uri(path)
        .header(signature::HEADER, header)
        .body(Body::from(body.to_vec()))
        .unwrap()
}

/// A request signed (v2) with the test key at `t`.
fn signed(method: Method, path: &str, body: &[u8], t: i64) -> Request {
    let header = signature_of(&method, path, body, t);
    with_signature(method, path, body, &header)
}

fn post(path: &str, body: &Value) -> Request {
    signed(Method::POST, path, body.to_string().as_bytes(), SIGNED_AT)
}

fn get(path: &str) -> Request {
    signed(Method::GET, path, b"", SIGNED_AT)
}

fn webhook() -> Value {
    serde_json::from_str(WEBHOOK).unwrap()
}

/// A webhook for `schema` with `privileges`, ending `hours` after the signing time.
fn webhook_for(delivery_id: &str, schema: &str, privileges: &[&str], hours: i64) -> Value {
    let mut w = webhook();
    w["delivery_id"] = json!(delivery_id);
    w["object"] = json!({ "type": "schema", "name": schema });
    w["privileges"] = json!(privileges);
    w["expires_at"] = json!((at(SIGNED_AT) + Duration::hours(hours)).to_rfc3339());
    w
}

fn json_of(response: &Response<Body>) -> Value {
    assert_eq!(response.headers()["content-type"], "application/json");
    serde_json::from_slice(response.body().as_ref()).unwrap()
}

async fn journal(h: &Harness) -> Vec<String> {
    h.app.store().events(DEMO).await.unwrap().into_iter().map(|e| e.kind.to_string()).collect()
}

#[tokio::test]
async fn new_webhook_creates_a_ticket_201() {
    let h = harness().await;
    let response = h.app.handle(post("/webhooks/grants", &webhook())).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body = json_of(&response);
    let id = body["id"].as_str().unwrap();
    assert_eq!(response.headers()["location"], format!("/tickets/{id}").as_str());
    assert_eq!(body["category"], "read-only");
    assert_eq!(body["status"], "active");
    assert_eq!(body["effective_status"], "active");
    assert!(h.app.store().ticket(id).await.unwrap().is_some());
    assert_eq!(journal(&h).await, ["ticket.requested", "ticket.activated"]);
}

#[tokio::test]
async fn identical_redelivery_is_200_and_journals_nothing_more() {
    let h = harness().await;
    let first = h.app.handle(post("/webhooks/grants", &webhook())).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let before = journal(&h).await;
    // redelivered a minute later, signed anew: same payload, same ticket
    h.clock.set(at(SIGNED_AT + 60));
    let body = webhook().to_string();
    let again = h.app.handle(signed(Method::POST, "/webhooks/grants", body.as_bytes(), SIGNED_AT + 60)).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(json_of(&again)["id"], json_of(&first)["id"]);
    assert_eq!(journal(&h).await, before);
}

#[tokio::test]
async fn changed_payload_under_the_same_delivery_id_is_409() {
    let h = harness().await;
    let first = h.app.handle(post("/webhooks/grants", &webhook())).await;
    let mut changed = webhook();
    changed["privileges"] = json!(["SELECT"]);
    let response = h.app.handle(post("/webhooks/grants", &changed)).await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let body = json_of(&response);
    assert_eq!(body["delivery_id"], "d-123");
    assert_eq!(body["ticket"], json_of(&first)["id"]);
    assert!(body["error"].as_str().unwrap().contains("different payload"));
    assert_eq!(journal(&h).await.last().unwrap(), "ticket.conflict");
}

#[tokio::test]
async fn wrong_key_is_401_and_stores_nothing() {
    let h = harness().await;
    let body = webhook().to_string();
    let mut req = signed(Method::POST, "/webhooks/grants", body.as_bytes(), SIGNED_AT);
    let forged = sign_v2(
        b"not-the-key",
        SIGNED_AT,
        &SignedRequest { method: "POST", path: "/webhooks/grants", body: body.as_bytes() },
    );
    req.headers_mut().insert(signature::HEADER, forged.unwrap().parse().unwrap());
    let response = h.app.handle(req).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(&response)["error"], "signature rejected: no signature matches this request");
    assert!(h.app.store().tickets(None).await.unwrap().is_empty());
    assert!(journal(&h).await.is_empty());
}

#[tokio::test]
async fn a_body_changed_after_signing_is_401() {
    let h = harness().await;
    let body = webhook().to_string();
    let mut req = signed(Method::POST, "/webhooks/grants", body.as_bytes(), SIGNED_AT);
    *req.body_mut() = Body::from(body.replace("alice", "mallory").replace("SELECT", "DELETE"));
    assert_eq!(h.app.handle(req).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn missing_signature_header_is_401() {
    let h = harness().await;
    let mut req = post("/webhooks/grants", &webhook());
    req.headers_mut().remove(signature::HEADER);
    let response = h.app.handle(req).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(json_of(&response)["error"].as_str().unwrap().contains("missing"));
}

#[tokio::test]
async fn stale_timestamp_is_401() {
    let h = harness().await;
    h.clock.set(at(SIGNED_AT + 301));
    let response = h.app.handle(post("/webhooks/grants", &webhook())).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(json_of(&response)["error"].as_str().unwrap().contains("more than 300s away"));
    assert!(h.app.store().tickets(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn missing_field_is_400_naming_it_and_records_an_untagged_finding() {
    let h = harness().await;
    let mut w = webhook();
    w.as_object_mut().unwrap().remove("expires_at");
    let response = h.app.handle(post("/webhooks/grants", &w)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = json_of(&response);
    assert_eq!(body["field"], "expires_at");
    assert_eq!(body["delivery_id"], "d-123");
    assert!(body["error"].as_str().unwrap().contains("every grant needs an expiry"));
    let untagged = h.app.store().open_untagged(&TargetId::new(DEMO).unwrap()).await.unwrap();
    assert_eq!(untagged.len(), 1);
    assert!(untagged[0].detail.contains("expires_at"), "{}", untagged[0].detail);
    assert_eq!(journal(&h).await, ["finding.opened"]);
}

#[tokio::test]
async fn unreadable_json_is_400_and_filed_under_unknown() {
    let h = harness().await;
    let response = h.app.handle(signed(Method::POST, "/webhooks/grants", b"{not json", SIGNED_AT)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&response)["field"], "body");
    let untagged = h.app.store().open_untagged(&TargetId::new("unknown").unwrap()).await.unwrap();
    assert_eq!(untagged.len(), 1);
}

#[tokio::test]
async fn oversized_body_is_413_before_the_signature_is_checked() {
    let h = harness().await;
    let body = vec![b' '; 64 * 1024 + 1];
    let mut req = signed(Method::POST, "/webhooks/grants", &body, SIGNED_AT);
    req.headers_mut().remove(signature::HEADER);
    let response = h.app.handle(req).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(json_of(&response)["error"].as_str().unwrap().contains("65537 bytes"));
}

#[tokio::test]
async fn refused_request_is_422_and_records_an_untagged_finding() {
    let h = harness().await;
    // read-only allows 8 hours and refuses longer
    let response = h.app.handle(post("/webhooks/grants", &webhook_for("d-long", "billing", &["SELECT"], 10))).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = json_of(&response);
    assert_eq!(body["category"], "read-only");
    assert_eq!(body["refusal"]["reason"], "ttl_exceeded");
    assert_eq!(body["delivery_id"], "d-long");
    assert_eq!(h.app.store().open_untagged(&TargetId::new(DEMO).unwrap()).await.unwrap().len(), 1);
    assert_eq!(journal(&h).await, ["ticket.refused"]);
}

#[tokio::test]
async fn unusable_registry_is_503_and_the_request_is_recorded_untagged() {
    let h = harness_with(Err("s3://bucket/config/policy/: access denied".into())).await;
    let response = h.app.handle(post("/webhooks/grants", &webhook())).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    // the registry's location is logged, not told to the sender
    assert!(!json_of(&response)["error"].as_str().unwrap().contains("s3://"));
    assert_eq!(h.app.store().open_untagged(&TargetId::new(DEMO).unwrap()).await.unwrap().len(), 1);
}

/// A warm container's registry is replaced when its objects change (the
/// function's main checks them): the next request is routed by the new one,
/// whether it fixes a broken registry or breaks a good one.
#[tokio::test]
async fn a_replaced_registry_routes_the_next_request() {
    let h = harness_with(Err("s3://bucket/config/policy/: access denied".into())).await;
    assert_eq!(h.app.handle(post("/webhooks/grants", &webhook())).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    h.app.set_registry(registry());
    assert_eq!(h.app.registry().as_ref().as_ref().unwrap().id, registry().unwrap().id);
    let mut w = webhook();
    w["delivery_id"] = json!("d-after-the-edit");
    assert_eq!(h.app.handle(post("/webhooks/grants", &w)).await.status(), StatusCode::CREATED);
    h.app.set_registry(Err("config/policy/registry.yaml: routes[0]: unknown category".into()));
    w["delivery_id"] = json!("d-after-a-bad-edit");
    assert_eq!(h.app.handle(post("/webhooks/grants", &w)).await.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn unknown_target_is_400_naming_the_target_field() {
    let h = harness().await;
    let mut w = webhook();
    w["target"] = json!("somebody-elses-db");
    let response = h.app.handle(post("/webhooks/grants", &w)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&response)["field"], "target");
}

#[tokio::test]
async fn generic_payload_creates_a_ticket_201() {
    let h = harness().await;
    let generic = json!({
        "id": "req-77", "system": "servicenow", "target": DEMO, "user": "bob@example.com",
        "role": "bob_tmp", "grant": ["SELECT"], "on": "table:billing.invoices",
        "until": "2026-11-22T15:00:00Z", "reason": "CHG-1001 month-end report"
    });
    let response = h.app.handle(post("/requests", &generic)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body = json_of(&response);
    assert_eq!(body["request"]["input"], "generic");
    assert_eq!(body["request"]["delivery_id"], "req-77");
}

#[tokio::test]
async fn generic_payload_missing_a_field_is_400_naming_it() {
    let h = harness().await;
    let generic = json!({
        "id": "req-78", "system": "servicenow", "target": DEMO, "user": "bob@example.com",
        "role": "bob_tmp", "grant": ["SELECT"], "on": "table:billing.invoices"
    });
    let response = h.app.handle(post("/requests", &generic)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&response)["field"], "until");
}

async fn pending_phi_ticket(h: &Harness) -> String {
    pending_phi_ticket_for(h, "d-phi", "phi_claims").await
}

async fn pending_phi_ticket_for(h: &Harness, delivery_id: &str, schema: &str) -> String {
    // phi_* routes to hipaa-phi: two approvals, at most 4 hours
    let w = webhook_for(delivery_id, schema, &["SELECT"], 3);
    let response = h.app.handle(post("/webhooks/grants", &w)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body = json_of(&response);
    assert_eq!(body["category"], "hipaa-phi");
    assert_eq!(body["status"], "pending_approval");
    body["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn two_distinct_approvers_activate_a_phi_ticket() {
    let h = harness().await;
    let id = pending_phi_ticket(&h).await;

    let own = h.app.handle(h.approval(&id, "contractor@example.com")).await;
    assert_eq!(own.status(), StatusCode::FORBIDDEN);
    assert!(json_of(&own)["error"].as_str().unwrap().contains("cannot approve"));

    let first = h.app.handle(h.approval(&id, "bob@example.com")).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(json_of(&first)["status"], "pending_approval");

    let twice = h.app.handle(h.approval(&id, "BOB@example.com")).await;
    assert_eq!(twice.status(), StatusCode::FORBIDDEN);
    assert!(json_of(&twice)["error"].as_str().unwrap().contains("already approved"));

    let second = h.app.handle(h.approval(&id, "carol@example.com")).await;
    assert_eq!(second.status(), StatusCode::OK);
    let body = json_of(&second);
    assert_eq!(body["status"], "active");
    assert_eq!(body["approvals"].as_array().unwrap().len(), 2);

    let late = h.app.handle(h.approval(&id, "dave@example.com")).await;
    assert_eq!(late.status(), StatusCode::CONFLICT);
    assert_eq!(journal(&h).await, ["ticket.requested", "ticket.approved", "ticket.approved", "ticket.activated"]);
}

#[tokio::test]
async fn approving_an_unknown_ticket_is_404() {
    let h = harness().await;
    let response = h.app.handle(h.approval("tkt-00000000000000000000", "bob@example.com")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(json_of(&response)["error"].as_str().unwrap().contains("tkt-00000000000000000000"));
}

#[tokio::test]
async fn an_approval_with_an_unknown_field_is_400_naming_it() {
    let h = harness().await;
    let id = pending_phi_ticket(&h).await;
    let path = format!("/requests/{id}/approvals");
    let response = h.app.handle(h.as_person("bob@example.com", Method::POST, &path, &json!({ "by": "bob" }))).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&response)["field"], "by");
}

#[tokio::test]
async fn get_ticket_is_200_with_effective_status_and_404_when_unknown() {
    let h = harness().await;
    let created = json_of(&h.app.handle(post("/webhooks/grants", &webhook())).await);
    let id = created["id"].as_str().unwrap();

    let response = h.app.handle(get(&format!("/tickets/{id}"))).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body = json_of(&response);
    assert_eq!(body["id"], id);
    assert_eq!(body["effective_status"], "active");

    // past its window the stored status is still active, the effective one is not
    let later = SIGNED_AT + 7 * 3600;
    h.clock.set(at(later));
    let body = json_of(&h.app.handle(signed(Method::GET, &format!("/tickets/{id}"), b"", later)).await);
    assert_eq!((body["status"].as_str(), body["effective_status"].as_str()), (Some("active"), Some("expired")));

    let missing = h.app.handle(signed(Method::GET, "/tickets/tkt-nope", b"", later)).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn get_ticket_needs_a_signature_too() {
    let h = harness().await;
    let mut req = get("/tickets/tkt-nope");
    req.headers_mut().remove(signature::HEADER);
    assert_eq!(h.app.handle(req).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_path_is_404_and_wrong_method_is_405() {
    let h = harness().await;
    let response = h.app.handle(get("/admin")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_of(&response)["error"], "no route /admin");

    let response = h.app.handle(get("/webhooks/grants")).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "POST");
    let response = h.app.handle(signed(Method::DELETE, "/tickets/tkt-1", b"", SIGNED_AT)).await;
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(response.headers()["allow"], "GET");
}

#[tokio::test]
async fn function_url_event_from_events_dir_creates_a_ticket() {
    let h = harness().await;
    h.clock.set(at(SIGNED_AT + 30));
    let req = lambda_http::request::from_str(FUNCTION_URL_EVENT).unwrap();
    let response = h.app.handle(req).await;
    assert_eq!(response.status(), StatusCode::CREATED, "{:?}", response.body());
    let body = json_of(&response);
    assert_eq!(body["request"]["delivery_id"], "d-fnurl-1");
    assert_eq!(body["effective_status"], "active");
}

#[tokio::test]
async fn http_api_event_from_events_dir_creates_a_ticket() {
    let h = harness().await;
    h.clock.set(at(SIGNED_AT + 30));
    let req = lambda_http::request::from_str(HTTP_API_EVENT).unwrap();
    let response = h.app.handle(req).await;
    assert_eq!(response.status(), StatusCode::CREATED, "{:?}", response.body());
    assert_eq!(json_of(&response)["request"]["delivery_id"], "d-httpapi-1");
}

#[tokio::test]
async fn event_replayed_after_the_window_is_401() {
    let h = harness().await;
    h.clock.set(at(SIGNED_AT + 301));
    let req = lambda_http::request::from_str(FUNCTION_URL_EVENT).unwrap();
    assert_eq!(h.app.handle(req).await.status(), StatusCode::UNAUTHORIZED);
}

/// A store whose backend is down: the in-memory stand-in for an unreachable table.
struct DownStore;

fn down<T>() -> Result<T, StoreError> {
    Err(StoreError::Unavailable("connection refused".into()))
}

impl TicketStore for DownStore {
    async fn put_ticket(&self, _: &Ticket, _: &[NewEvent]) -> Result<PutOutcome, StoreError> {
        down()
    }
    async fn ticket(&self, _: &str) -> Result<Option<Versioned<Ticket>>, StoreError> {
        down()
    }
    async fn tickets(&self, _: Option<&TargetId>) -> Result<Vec<Ticket>, StoreError> {
        down()
    }
    async fn update_ticket(&self, _: &Ticket, _: u64, _: &[NewEvent]) -> Result<u64, StoreError> {
        down()
    }
    async fn unjournaled(&self, _: &TargetId) -> Result<Vec<Unjournaled>, StoreError> {
        down()
    }
    async fn reclaim(&self, _: &Unjournaled, _: DateTime<Utc>, _: u64) -> Result<Option<Unjournaled>, StoreError> {
        down()
    }
    async fn journaled(&self, _: &Unjournaled) -> Result<(), StoreError> {
        down()
    }
}

impl FindingStore for DownStore {
    async fn record_findings(
        &self,
        _: &TargetId,
        _: &str,
        _: &[Finding],
        _: DateTime<Utc>,
        _: bool,
    ) -> Result<Recorded, StoreError> {
        down()
    }
    async fn open_untagged(&self, _: &TargetId) -> Result<Vec<Finding>, StoreError> {
        down()
    }
    async fn open_with_age(&self, _: &TargetId) -> Result<Vec<(Finding, FindingAge)>, StoreError> {
        down()
    }
}

impl grantwarden_core::incident::IncidentStore for DownStore {
    async fn record_incident(&self, _: &grantwarden_core::incident::IncidentUpdate) -> Result<(), StoreError> {
        down()
    }
    async fn incident(&self, _: &str) -> Result<Option<grantwarden_core::incident::IncidentUpdate>, StoreError> {
        down()
    }
}

impl ReplayGuard for DownStore {
    async fn first_use(&self, _: &ReplayKey, _: DateTime<Utc>, _: DateTime<Utc>) -> Result<bool, StoreError> {
        down()
    }
    async fn forget(&self, _: &ReplayKey) -> Result<(), StoreError> {
        down()
    }
}

impl AuditJournal for DownStore {
    async fn append(&self, _: NewEvent) -> Result<AuditEvent, StoreError> {
        down()
    }
    async fn events_after(&self, _: &str, _: u64) -> Result<Vec<AuditEvent>, StoreError> {
        down()
    }
    async fn head(&self, _: &str) -> Result<Option<(u64, String)>, StoreError> {
        down()
    }
    async fn chains(&self) -> Result<Vec<String>, StoreError> {
        down()
    }
}

#[tokio::test]
async fn unavailable_store_is_503() {
    let clock = Arc::new(TestClock(Mutex::new(at(SIGNED_AT))));
    let app = App::new(DownStore, registry(), StaticKey(KEY.to_vec())).with_clock(clock);
    let response = app.handle(post("/webhooks/grants", &webhook())).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(json_of(&response)["error"].as_str().unwrap().contains("unavailable"));
    assert_eq!(app.handle(get("/tickets/tkt-1")).await.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn the_handler_future_is_send_so_lambda_http_can_run_it() {
    fn assert_send<T: Send>(_: &T) {}
    let h = harness().await;
    let future = h.app.handle(get("/tickets/tkt-1"));
    assert_send(&future);
}

#[tokio::test]
async fn a_ticket_arms_its_lease_and_revoke_schedule_when_it_becomes_active() {
    let clients = grantwarden_aws::Clients::for_endpoint(&grantwarden_testkit::moto::endpoint()).await;
    let settings =
        grantwarden_aws::provision::create(&clients, &grantwarden_testkit::moto::unique_prefix("intake-timers"))
            .await
            .unwrap();
    let mut h = harness().await;
    h.app = h.app.with_timers(grantwarden_aws::Timers::new(&clients, &settings));
    let lease = |id: String| {
        let (clients, table) = (clients.clone(), settings.leases_table.clone());
        async move {
            clients
                .dynamodb
                .get_item()
                .table_name(table)
                .key("ticket_id", aws_sdk_dynamodb::types::AttributeValue::S(id))
                .send()
                .await
                .unwrap()
                .item
        }
    };
    let schedule = |id: &str| {
        clients
            .scheduler
            .get_schedule()
            .name(grantwarden_aws::leases::schedule_name(id))
            .group_name(&settings.schedule_group)
            .send()
    };

    // read-only: active at once, so both timers are armed at its expiry
    let response = h.app.handle(post("/webhooks/grants", &webhook())).await;
    let body = json_of(&response);
    let id = body["id"].as_str().unwrap().to_owned();
    let expires: DateTime<Utc> = body["expires_at"].as_str().unwrap().parse().unwrap();
    let item = lease(id.clone()).await.expect("a lease item");
    assert_eq!(item["ttl"].as_n().unwrap(), &expires.timestamp().to_string());
    let armed = schedule(&id).await.unwrap();
    assert_eq!(armed.schedule_expression(), Some(format!("at({})", expires.format("%Y-%m-%dT%H:%M:%S")).as_str()));
    assert_eq!(armed.target().unwrap().arn(), settings.revoke_function_arn.as_deref().unwrap());

    // a pending ticket has no timers until its last approval activates it
    let pending = pending_phi_ticket(&h).await;
    assert!(lease(pending.clone()).await.is_none());
    assert!(schedule(&pending).await.is_err());
    h.app.handle(h.approval(&pending, "bob@example.com")).await;
    h.app.handle(h.approval(&pending, "carol@example.com")).await;
    assert!(lease(pending.clone()).await.is_some());
    assert!(schedule(&pending).await.is_ok());
}

#[tokio::test]
async fn a_signed_revoke_request_ends_a_ticket_early_once() {
    let h = harness().await;
    let created = json_of(&h.app.handle(post("/webhooks/grants", &webhook())).await);
    let id = created["id"].as_str().unwrap();
    let asked = h
        .app
        .handle(servicenow(&format!("/tickets/{id}/revoke"), &json!({ "by": "ciso@example.com", "reason": "left" })))
        .await;
    assert_eq!(asked.status(), StatusCode::ACCEPTED);
    assert_eq!(json_of(&asked)["status"], "revoke_requested");
    let stored = h.app.store().ticket(id).await.unwrap().unwrap().value;
    assert_eq!(stored.status(), grantwarden_core::ticket::TicketStatus::RevokeRequested);
    let again = h.app.handle(servicenow(&format!("/tickets/{id}/revoke"), &json!({ "by": "ciso@example.com" }))).await;
    assert_eq!(again.status(), StatusCode::CONFLICT, "a second request changes nothing");
    let nobody = h.app.handle(servicenow(&format!("/tickets/{id}/revoke"), &json!({ "reason": "x" }))).await;
    assert_eq!((nobody.status(), json_of(&nobody)["field"].as_str()), (StatusCode::BAD_REQUEST, Some("by")));
    assert_eq!(journal(&h).await, ["ticket.requested", "ticket.activated", "ticket.revoke_requested"]);
}

#[tokio::test]
async fn access_requests_route_by_the_access_policy_and_break_glass_needs_an_open_incident() {
    let mut h = harness_with(Ok(access_registry())).await;
    h.app = h.app.with_pagerduty(StaticKey(PD_SECRET.to_vec()));
    let request =
        |id: &str, path: &str, incident: Option<&str>| h.access_request(id, "alice@example.com", path, incident);
    let created = h.app.handle(request("a-1", "read-only", None)).await;
    assert_eq!(created.status(), StatusCode::CREATED, "{:?}", created.body());
    let body = json_of(&created);
    assert_eq!((body["status"].as_str(), body["category"].as_str()), (Some("active"), Some("access:read-only")));
    assert!(body["request"]["role"].as_str().unwrap().starts_with("gw_alice_"));
    let refused = h.app.handle(request("a-2", "break-glass", Some("PD-9"))).await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(json_of(&refused)["error"].as_str().unwrap().contains("not open"));
    assert_eq!(
        journal(&h).await.iter().filter(|k| *k == "access.refused").count(),
        1,
        "a refusal is on the record, as locally"
    );
    let hook = json!({ "event": { "event_type": "incident.triggered", "occurred_at": "2026-11-22T11:59:00Z", "data": { "id": "PD-9" } } });
    assert_eq!(h.app.handle(pagerduty(&hook)).await.status(), StatusCode::OK);
    let glass = h.app.handle(request("a-3", "break-glass", Some("PD-9"))).await;
    assert_eq!(glass.status(), StatusCode::CREATED);
    assert_eq!(json_of(&glass)["access"]["review_required"], true);
    let glass_id = json_of(&glass)["id"].as_str().unwrap().to_owned();
    let renewed = h
        .app
        .handle(h.as_person("alice@example.com", Method::POST, &format!("/tickets/{glass_id}/renew"), &json!({})))
        .await;
    assert_eq!(renewed.status(), StatusCode::OK, "{:?}", renewed.body());
    let read_only = json_of(&created)["id"].as_str().unwrap().to_owned();
    let refused = h
        .app
        .handle(h.as_person("alice@example.com", Method::POST, &format!("/tickets/{read_only}/renew"), &json!({})))
        .await;
    assert_eq!(refused.status(), StatusCode::CONFLICT, "only break-glass is renewed");
    let bad = h.app.handle(h.as_person("alice@example.com", Method::POST, "/requests", &json!({ "id": "a-4", "target": DEMO,
        "path": "read-only", "scope": { "on": "rows", "schema": "billing", "table": "t" }, "duration": "1h", "justification": "x" }))).await;
    assert_eq!((bad.status(), json_of(&bad)["field"].as_str()), (StatusCode::BAD_REQUEST, Some("scope.predicate")));

    // webhooks arrive out of order: a retried "triggered" delivered after the "resolved"
    // does not reopen the incident, because each is dated by PagerDuty's own time
    let now = *h.clock.0.lock().unwrap();
    let ago = |minutes: i64| (now - Duration::minutes(minutes)).to_rfc3339();
    let resolved =
        json!({ "event": { "event_type": "incident.resolved", "occurred_at": ago(1), "data": { "id": "PD-10" } } });
    let late =
        json!({ "event": { "event_type": "incident.triggered", "occurred_at": ago(5), "data": { "id": "PD-10" } } });
    assert_eq!(h.app.handle(pagerduty(&resolved)).await.status(), StatusCode::OK);
    assert_eq!(h.app.handle(pagerduty(&late)).await.status(), StatusCode::OK);
    let after = h.app.handle(request("a-5", "break-glass", Some("PD-10"))).await;
    assert_eq!(after.status(), StatusCode::UNPROCESSABLE_ENTITY, "{:?}", after.body());
}

/// The example registry (its senders too) with an access section: read-only and break-glass paths.
fn access_registry() -> PolicyRegistry {
    const ACCESS: &str = "\naccess:\n  approver_roles: { security: [ciso@example.com] }\n  paths:\n    read-only: { max_ttl: 8h }\n    break-glass: { max_ttl: 30m }\n";
    with_access(ACCESS)
}

/// The example registry with `access` (a YAML `access:` section) instead of its own.
fn with_access(access: &str) -> PolicyRegistry {
    let (head, rest) = POLICY.split_once("\naccess:").unwrap();
    let senders = &rest[rest.find("\n# Signed senders").expect("the example registry lists senders")..];
    PolicyRegistry::load(&[("policy.example.yaml".into(), format!("{head}{access}{senders}"))]).unwrap()
}

/// The body of an access request on `path`, naming `incident`.
fn access_body(id: &str, path: &str, incident: Option<&str>) -> Value {
    let mut body = json!({ "id": id, "target": DEMO, "path": path,
        "scope": { "on": "tables", "schema": "billing", "tables": ["invoices"] }, "duration": "20m", "justification": "INC" });
    if let Some(i) = incident {
        body["incident_id"] = json!(i);
    }
    body
}

impl Harness {
    /// An access request of `identity` (by their token) on `path`, naming `incident`.
    fn access_request(&self, id: &str, identity: &str, path: &str, incident: Option<&str>) -> Request {
        self.as_person(identity, Method::POST, "/requests", &access_body(id, path, incident))
    }
}

/// A PagerDuty delivery of `body` signed with `secret` the PagerDuty way.
fn pagerduty_signed(body: &[u8], secret: &[u8]) -> Request {
    lambda_http::http::Request::builder()
        .method(Method::POST)
        .uri("/webhooks/incidents/pagerduty")
        .header(PAGERDUTY_HEADER, grantwarden_core::incident::sign_pagerduty(secret, body))
        .body(Body::from(body.to_vec()))
        .unwrap()
}

/// A PagerDuty delivery of `hook`, signed with the subscription's secret.
fn pagerduty(hook: &Value) -> Request {
    pagerduty_signed(hook.to_string().as_bytes(), PD_SECRET)
}

/// An Opsgenie delivery of `body` carrying `token` (none: no header).
fn opsgenie(body: &Value, token: Option<&[u8]>) -> Request {
    let mut req = lambda_http::http::Request::builder().method(Method::POST).uri("/webhooks/incidents/opsgenie");
    if let Some(token) = token {
        req = req.header(OPSGENIE_HEADER, token);
    }
    req.body(Body::from(body.to_string())).unwrap()
}

fn triggered(id: &str) -> Value {
    json!({ "event": { "id": "01EVT", "event_type": "incident.triggered", "occurred_at": "2026-11-22T11:59:00Z",
        "data": { "id": id, "type": "incident" } } })
}

#[tokio::test]
async fn an_approval_signed_for_one_ticket_is_refused_on_another() {
    let h = harness().await;
    // INSERT on a schema that is not phi_* routes to soc2-ops: one approval
    let pending = |delivery: &'static str, schema: &'static str| {
        let h = &h;
        async move {
            let response = h.app.handle(post("/webhooks/grants", &webhook_for(delivery, schema, &["INSERT"], 3))).await;
            let body = json_of(&response);
            assert_eq!(
                (body["category"].as_str(), body["status"].as_str()),
                (Some("soc2-ops"), Some("pending_approval"))
            );
            body["id"].as_str().unwrap().to_owned()
        }
    };
    let (a, b) = (pending("d-ops-1", "sales").await, pending("d-ops-2", "crm").await);
    let body = json!({ "approver": "bob@example.com" });
    let header = servicenow(&format!("/requests/{a}/approvals"), &body).headers()[signature::HEADER].clone();
    let moved = |ticket: &str| {
        let mut req = servicenow(&format!("/requests/{ticket}/approvals"), &body);
        req.headers_mut().insert(signature::HEADER, header.clone());
        req
    };
    let response = h.app.handle(moved(&b)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "the path names the ticket, and the path is signed");
    assert!(h.app.store().ticket(&b).await.unwrap().unwrap().value.approvals().is_empty());

    let own = h.app.handle(moved(&a)).await;
    assert_eq!(own.status(), StatusCode::OK, "{:?}", own.body());
    assert_eq!(journal(&h).await.iter().filter(|k| *k == "ticket.approved").count(), 1);
}

#[tokio::test]
async fn a_renewal_needs_a_person_signed_in_within_the_last_15_minutes() {
    let mut h = harness_with(Ok(access_registry())).await;
    h.app = h.app.with_pagerduty(StaticKey(PD_SECRET.to_vec()));
    assert_eq!(h.app.handle(pagerduty(&triggered("PD-9"))).await.status(), StatusCode::OK);
    let created = h.app.handle(h.access_request("g-a", "alice@example.com", "break-glass", Some("PD-9"))).await;
    assert_eq!(created.status(), StatusCode::CREATED, "{:?}", created.body());
    let id = json_of(&created)["id"].as_str().unwrap().to_owned();
    let before = h.app.store().ticket(&id).await.unwrap().unwrap();
    let path = format!("/tickets/{id}/renew");
    h.clock.set(at(SIGNED_AT + 10 * 60));

    // no sender can prove a sign-in, whatever it may send otherwise
    let signed =
        h.app.handle(signed_by("servicenow", SERVICENOW_KEY, Method::POST, &path, &json!({}), SIGNED_AT + 600)).await;
    assert_eq!(signed.status(), StatusCode::UNAUTHORIZED, "{:?}", signed.body());
    // a token whose sign-in is 16 minutes old: sign in again (RFC 9470 step-up)
    let stale = h.idp.token("alice@example.com").issued_at(at(SIGNED_AT - 6 * 60)).signed();
    let old = h.app.handle(h.with_token(&stale, Method::POST, &path, &json!({}))).await;
    assert_eq!(old.status(), StatusCode::UNAUTHORIZED);
    let challenge = old.headers()["www-authenticate"].to_str().unwrap();
    assert!(challenge.contains("insufficient_user_authentication") && challenge.contains("max_age=900"), "{challenge}");
    assert!(json_of(&old)["error"].as_str().unwrap().contains("16 minutes ago"));
    assert_eq!(h.app.store().ticket(&id).await.unwrap().unwrap(), before, "nothing renewed");

    // someone else, however fresh their sign-in, does not renew alice's access
    let other = h.app.handle(h.as_person("bob@example.com", Method::POST, &path, &json!({}))).await;
    assert_eq!(other.status(), StatusCode::CONFLICT);
    assert!(json_of(&other)["error"].as_str().unwrap().contains("only its requester renews it"));
    let fresh = h.app.handle(h.as_person("alice@example.com", Method::POST, &path, &json!({}))).await;
    assert_eq!(fresh.status(), StatusCode::OK, "{:?}", fresh.body());
    let renewed =
        h.app.store().events(DEMO).await.unwrap().into_iter().find(|e| e.kind.to_string() == "access.renewed").unwrap();
    assert_eq!(renewed.actor, "alice@example.com", "the renewal is the person's");
    assert_eq!(renewed.vouched_by(), Some(Voucher::Token { issuer: h.idp.issuer.clone() }));
}

#[tokio::test]
async fn a_signature_made_for_another_method_is_refused() {
    let h = harness().await;
    let id = json_of(&h.app.handle(post("/webhooks/grants", &webhook())).await)["id"].as_str().unwrap().to_owned();
    let path = format!("/tickets/{id}/revoke");
    let body = json!({ "by": "ciso@example.com" }).to_string();
    let as_get = signature_of(&Method::GET, &path, body.as_bytes(), SIGNED_AT);
    let response = h.app.handle(with_signature(Method::POST, &path, body.as_bytes(), &as_get)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let stored = h.app.store().ticket(&id).await.unwrap().unwrap().value;
    assert_eq!(stored.status(), grantwarden_core::ticket::TicketStatus::Active);
}

#[tokio::test]
async fn the_same_signed_request_is_served_once_and_a_resigned_one_again() {
    let h = harness().await;
    assert_eq!(h.app.handle(post("/webhooks/grants", &webhook())).await.status(), StatusCode::CREATED);
    let before = journal(&h).await;
    h.clock.set(at(SIGNED_AT + 10));
    let replayed = h.app.handle(post("/webhooks/grants", &webhook())).await;
    assert_eq!(replayed.status(), StatusCode::CONFLICT);
    assert!(json_of(&replayed)["error"].as_str().unwrap().contains("already received"), "{:?}", replayed.body());
    assert_eq!(journal(&h).await, before, "nothing recorded twice");
    // the same body signed anew is another request: the redelivery is idempotent
    let body = webhook().to_string();
    let resigned = h.app.handle(signed(Method::POST, "/webhooks/grants", body.as_bytes(), SIGNED_AT + 10)).await;
    assert_eq!(resigned.status(), StatusCode::OK);
    assert_eq!(h.app.store().tickets(None).await.unwrap().len(), 1);
    // a read is a request too
    let read = || get("/tickets/tkt-nope");
    assert_eq!(h.app.handle(read()).await.status(), StatusCode::NOT_FOUND);
    assert_eq!(h.app.handle(read()).await.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_v1_signature_is_refused_and_under_the_legacy_setting_passes_only_where_the_body_names_its_target() {
    let v1 = |path: &str, body: &[u8]| with_signature(Method::POST, path, body, &sign_v1(KEY, SIGNED_AT, body));
    let body = webhook().to_string();
    let h = harness().await;
    let refused = h.app.handle(v1("/webhooks/grants", body.as_bytes())).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(json_of(&refused)["error"].as_str().unwrap().contains("sign method, path, timestamp and body with v2"));
    assert!(h.app.store().tickets(None).await.unwrap().is_empty());

    let mut h = harness().await;
    h.app = h.app.with_legacy_v1(true);
    assert_eq!(h.app.handle(v1("/webhooks/grants", body.as_bytes())).await.status(), StatusCode::CREATED);
    assert_eq!(h.app.handle(v1("/webhooks/grants", body.as_bytes())).await.status(), StatusCode::CONFLICT, "once");
    let pending = pending_phi_ticket(&h).await;
    let approval = json!({ "approver": "bob@example.com" }).to_string();
    let revoke = json!({ "by": "ciso@example.com" }).to_string();
    for (path, body) in [
        (format!("/requests/{pending}/approvals"), approval.as_bytes()),
        (format!("/tickets/{pending}/revoke"), revoke.as_bytes()),
        (format!("/tickets/{pending}/renew"), b"".as_slice()),
    ] {
        let response = h.app.handle(v1(&path, body)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    let read = with_signature(Method::GET, &format!("/tickets/{pending}"), b"", &sign_v1(KEY, SIGNED_AT, b""));
    assert_eq!(h.app.handle(read).await.status(), StatusCode::UNAUTHORIZED);
    assert!(h.app.store().ticket(&pending).await.unwrap().unwrap().value.approvals().is_empty());
}

#[tokio::test]
async fn a_query_string_is_refused_because_no_signature_covers_it() {
    let h = harness().await;
    let body = webhook().to_string();
    let header = signature_of(&Method::POST, "/webhooks/grants", body.as_bytes(), SIGNED_AT);
    let response =
        h.app.handle(with_signature(Method::POST, "/webhooks/grants?as=admin", body.as_bytes(), &header)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(h.app.store().tickets(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_pagerduty_webhook_is_believed_on_its_subscription_secret_once() {
    let mut h = harness().await;
    h.app = h.app.with_pagerduty(StaticKey(PD_SECRET.to_vec()));
    h.clock.set(at(SIGNED_AT + 30));
    let event = || lambda_http::request::from_str(PAGERDUTY_EVENT).unwrap();

    let mut unsigned = event();
    unsigned.headers_mut().remove(PAGERDUTY_HEADER);
    assert_eq!(h.app.handle(unsigned).await.status(), StatusCode::UNAUTHORIZED);
    let mut wrong = event();
    let body = wrong.body().as_ref().to_vec();
    wrong
        .headers_mut()
        .insert(PAGERDUTY_HEADER, grantwarden_core::incident::sign_pagerduty(b"other", &body).parse().unwrap());
    assert_eq!(h.app.handle(wrong).await.status(), StatusCode::UNAUTHORIZED);
    let mut changed = event();
    *changed.body_mut() = Body::from(String::from_utf8(body).unwrap().replace("triggered", "resolved"));
    assert_eq!(h.app.handle(changed).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(h.app.store().incident("Q2X5NQ3KZ7VB1D").await.unwrap(), None);

    let accepted = h.app.handle(event()).await;
    assert_eq!(accepted.status(), StatusCode::OK, "{:?}", accepted.body());
    let recorded = h.app.store().incident("Q2X5NQ3KZ7VB1D").await.unwrap().expect("recorded");
    assert_eq!((recorded.status, recorded.source.as_str()), (IncidentStatus::Open, "pagerduty"));
    assert_eq!(recorded.at, "2026-11-22T11:58:00Z".parse::<DateTime<Utc>>().unwrap());

    // PagerDuty delivers at least once and drops an endpoint that answers 4xx: a
    // redelivery is acknowledged and recorded nothing
    let again = h.app.handle(event()).await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(json_of(&again)["duplicate"], true);
    assert_eq!(json_of(&accepted).get("duplicate"), None);
}

#[tokio::test]
async fn an_opsgenie_webhook_needs_the_configured_token() {
    let mut h = harness().await;
    h.app = h.app.with_opsgenie(StaticKey(OPSGENIE_TOKEN.to_vec()));
    let body = json!({ "action": "Create", "alert": { "alertId": "OG-7", "createdAt": (SIGNED_AT - 60) * 1000 } });
    assert_eq!(h.app.handle(opsgenie(&body, None)).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(h.app.handle(opsgenie(&body, Some(b"og-test-token"))).await.status(), StatusCode::UNAUTHORIZED);
    let mut grantwarden_signed =
        signed(Method::POST, "/webhooks/incidents/opsgenie", body.to_string().as_bytes(), SIGNED_AT);
    grantwarden_signed.headers_mut().remove(OPSGENIE_HEADER);
    assert_eq!(h.app.handle(grantwarden_signed).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(h.app.store().incident("OG-7").await.unwrap(), None);

    assert_eq!(h.app.handle(opsgenie(&body, Some(OPSGENIE_TOKEN))).await.status(), StatusCode::OK);
    assert_eq!(h.app.store().incident("OG-7").await.unwrap().unwrap().status, IncidentStatus::Open);
    let again = h.app.handle(opsgenie(&body, Some(OPSGENIE_TOKEN))).await;
    assert_eq!((again.status(), json_of(&again)["duplicate"].as_bool()), (StatusCode::OK, Some(true)));
}

#[tokio::test]
async fn the_webhook_key_never_opens_an_incident() {
    let mut h = harness().await;
    h.app = h.app.with_pagerduty(StaticKey(PD_SECRET.to_vec())).with_opsgenie(StaticKey(OPSGENIE_TOKEN.to_vec()));
    let body = triggered("PD-9").to_string();
    for path in ["/webhooks/incidents/pagerduty", "/webhooks/incidents/opsgenie"] {
        let response = h.app.handle(signed(Method::POST, path, body.as_bytes(), SIGNED_AT)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // the webhook key in PagerDuty's scheme, or as Opsgenie's token
    assert_eq!(h.app.handle(pagerduty_signed(body.as_bytes(), KEY)).await.status(), StatusCode::UNAUTHORIZED);
    let og = json!({ "action": "Create", "alert": { "alertId": "OG-7", "createdAt": (SIGNED_AT - 60) * 1000 } });
    assert_eq!(h.app.handle(opsgenie(&og, Some(KEY))).await.status(), StatusCode::UNAUTHORIZED);
    // the old route, which took the webhook key, is gone
    let old = h.app.handle(signed(Method::POST, "/webhooks/incidents", body.as_bytes(), SIGNED_AT)).await;
    assert_eq!(old.status(), StatusCode::NOT_FOUND);
    assert_eq!(h.app.store().incident("PD-9").await.unwrap(), None);
    assert_eq!(h.app.store().incident("OG-7").await.unwrap(), None);
}

#[tokio::test]
async fn without_a_vendor_secret_no_incident_can_be_opened_and_no_break_glass_granted() {
    let h = harness_with(Ok(access_registry())).await;
    let refused = h.app.handle(pagerduty(&triggered("PD-9"))).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(json_of(&refused)["error"].as_str().unwrap().contains("no PagerDuty secret is configured"));
    let og = json!({ "action": "Create", "alert": { "alertId": "PD-9", "createdAt": (SIGNED_AT - 60) * 1000 } });
    assert_eq!(h.app.handle(opsgenie(&og, Some(OPSGENIE_TOKEN))).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(h.app.store().incident("PD-9").await.unwrap(), None);
    let glass = h.app.handle(h.access_request("g-1", "alice@example.com", "break-glass", Some("PD-9"))).await;
    assert_eq!(glass.status(), StatusCode::UNPROCESSABLE_ENTITY, "{:?}", glass.body());
}

/// The SQLite store, failing its next ticket put or incident record once: a
/// failure on our side after the replay record was taken.
struct FlakyStore {
    inner: LocalStore,
    fail_next: std::sync::atomic::AtomicBool,
}

impl FlakyStore {
    fn failing(&self) -> bool {
        self.fail_next.swap(false, std::sync::atomic::Ordering::SeqCst)
    }
}

impl TicketStore for FlakyStore {
    async fn put_ticket(&self, t: &Ticket, events: &[NewEvent]) -> Result<PutOutcome, StoreError> {
        if self.failing() { down() } else { self.inner.put_ticket(t, events).await }
    }
    async fn ticket(&self, id: &str) -> Result<Option<Versioned<Ticket>>, StoreError> {
        self.inner.ticket(id).await
    }
    async fn tickets(&self, target: Option<&TargetId>) -> Result<Vec<Ticket>, StoreError> {
        self.inner.tickets(target).await
    }
    async fn update_ticket(&self, t: &Ticket, expected: u64, events: &[NewEvent]) -> Result<u64, StoreError> {
        self.inner.update_ticket(t, expected, events).await
    }
    async fn unjournaled(&self, target: &TargetId) -> Result<Vec<Unjournaled>, StoreError> {
        self.inner.unjournaled(target).await
    }
    async fn reclaim(
        &self,
        entry: &Unjournaled,
        now: DateTime<Utc>,
        after: u64,
    ) -> Result<Option<Unjournaled>, StoreError> {
        self.inner.reclaim(entry, now, after).await
    }
    async fn journaled(&self, entry: &Unjournaled) -> Result<(), StoreError> {
        self.inner.journaled(entry).await
    }
}

impl FindingStore for FlakyStore {
    async fn record_findings(
        &self,
        target: &TargetId,
        scan: &str,
        findings: &[Finding],
        at: DateTime<Utc>,
        complete: bool,
    ) -> Result<Recorded, StoreError> {
        self.inner.record_findings(target, scan, findings, at, complete).await
    }
    async fn open_untagged(&self, target: &TargetId) -> Result<Vec<Finding>, StoreError> {
        self.inner.open_untagged(target).await
    }
    async fn open_with_age(&self, target: &TargetId) -> Result<Vec<(Finding, FindingAge)>, StoreError> {
        self.inner.open_with_age(target).await
    }
}

impl IncidentStore for FlakyStore {
    async fn record_incident(&self, update: &IncidentUpdate) -> Result<(), StoreError> {
        if self.failing() { down() } else { self.inner.record_incident(update).await }
    }
    async fn incident(&self, id: &str) -> Result<Option<IncidentUpdate>, StoreError> {
        self.inner.incident(id).await
    }
}

impl AuditJournal for FlakyStore {
    async fn append(&self, event: NewEvent) -> Result<AuditEvent, StoreError> {
        self.inner.append(event).await
    }
    async fn events_after(&self, chain: &str, after: u64) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner.events_after(chain, after).await
    }
    async fn head(&self, chain: &str) -> Result<Option<(u64, String)>, StoreError> {
        self.inner.head(chain).await
    }
    async fn chains(&self) -> Result<Vec<String>, StoreError> {
        self.inner.chains().await
    }
}

impl ReplayGuard for FlakyStore {
    async fn first_use(&self, key: &ReplayKey, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<bool, StoreError> {
        self.inner.first_use(key, now, until).await
    }
    async fn forget(&self, key: &ReplayKey) -> Result<(), StoreError> {
        self.inner.forget(key).await
    }
}

#[tokio::test]
async fn a_request_that_failed_on_our_side_passes_when_retried_with_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let store = FlakyStore {
        inner: LocalStore::open(&dir.path().join("state.db")).unwrap(),
        fail_next: std::sync::atomic::AtomicBool::new(true),
    };
    let clock = Arc::new(TestClock(Mutex::new(at(SIGNED_AT))));
    let app = App::new(store, registry(), StaticKey(KEY.to_vec()))
        .with_clock(clock)
        .with_pagerduty(StaticKey(PD_SECRET.to_vec()));
    let body = webhook().to_string();
    let header = signature_of(&Method::POST, "/webhooks/grants", body.as_bytes(), SIGNED_AT);
    let request = || with_signature(Method::POST, "/webhooks/grants", body.as_bytes(), &header);
    assert_eq!(app.handle(request()).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(app.handle(request()).await.status(), StatusCode::CREATED, "the retry of a 503 passes");
    assert_eq!(app.handle(request()).await.status(), StatusCode::CONFLICT, "and only once");

    // PagerDuty retries a 5xx with the very same signed body
    app.store().fail_next.store(true, std::sync::atomic::Ordering::SeqCst);
    let hook = triggered("PD-77");
    assert_eq!(app.handle(pagerduty(&hook)).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    let retried = app.handle(pagerduty(&hook)).await;
    assert_eq!((retried.status(), json_of(&retried).get("duplicate").cloned()), (StatusCode::OK, None));
    assert!(app.store().incident("PD-77").await.unwrap().is_some());
}

// ---- who is asking ---------------------------------------------------------

#[tokio::test]
async fn the_webhook_key_can_no_longer_approve_as_the_ciso() {
    // the attack W2-A closes: whoever holds the webhook key signed `{"approver": "ciso@..."}`
    let h = harness().await;
    let id = pending_phi_ticket(&h).await;
    let path = format!("/requests/{id}/approvals");
    let forged = h.app.handle(post(&path, &json!({ "approver": "ciso@example.com" }))).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let error = json_of(&forged)["error"].as_str().unwrap().to_owned();
    assert!(error.contains("sender webhook may not send approvals"), "{error}");
    // nor can it file an access request for someone, end a ticket or renew one
    let asked = h
        .app
        .handle(post("/requests", &{
            let mut b = access_body("w-1", "read-only", None);
            b["identity"] = json!("ciso@example.com");
            b
        }))
        .await;
    assert_eq!(asked.status(), StatusCode::FORBIDDEN);
    let ended = h.app.handle(post(&format!("/tickets/{id}/revoke"), &json!({ "by": "ciso@example.com" }))).await;
    assert_eq!(ended.status(), StatusCode::FORBIDDEN);
    assert!(h.app.store().ticket(&id).await.unwrap().unwrap().value.approvals().is_empty());
    assert_eq!(journal(&h).await, ["ticket.requested"], "nothing recorded for a refused identity");
}

#[tokio::test]
async fn a_sender_names_only_its_principals_on_its_routes_with_its_own_key() {
    let h = harness().await;
    let id = pending_phi_ticket(&h).await;
    let path = format!("/requests/{id}/approvals");
    let outsider = h.app.handle(servicenow(&path, &json!({ "approver": "ciso@evil.test" }))).await;
    assert_eq!(outsider.status(), StatusCode::FORBIDDEN);
    assert!(json_of(&outsider)["error"].as_str().unwrap().contains("may not assert ciso@evil.test"));
    let unnamed = h.app.handle(servicenow(&path, &json!({}))).await;
    assert_eq!((unnamed.status(), json_of(&unnamed)["field"].as_str()), (StatusCode::BAD_REQUEST, Some("approver")));
    // a sender's own key only: the webhook key under servicenow's name is a bad signature
    let borrowed =
        signed_by("servicenow", KEY, Method::POST, &path, &json!({ "approver": "bob@example.com" }), SIGNED_AT);
    assert_eq!(h.app.handle(borrowed).await.status(), StatusCode::UNAUTHORIZED);
    let stranger = signed_by("jira", KEY, Method::POST, &path, &json!({ "approver": "bob@example.com" }), SIGNED_AT);
    let stranger = h.app.handle(stranger).await;
    assert_eq!(stranger.status(), StatusCode::FORBIDDEN);
    assert!(json_of(&stranger)["error"].as_str().unwrap().contains("\"jira\" is not in the registry's senders"));
    // servicenow does not send grant events
    let grants = h.app.handle(servicenow("/webhooks/grants", &webhook_for("d-sn", "sales", &["SELECT"], 1))).await;
    assert_eq!(grants.status(), StatusCode::FORBIDDEN);
    // a phi ticket needs two approvals, each with a recent sign-in: a sender proves none
    let dual = h.app.handle(servicenow(&path, &json!({ "approver": "bob@example.com" }))).await;
    assert_eq!(dual.status(), StatusCode::UNAUTHORIZED, "{:?}", dual.body());
    assert!(h.app.store().ticket(&id).await.unwrap().unwrap().value.approvals().is_empty());
}

#[tokio::test]
async fn what_a_sender_asserts_is_journaled_as_its_word_and_what_a_token_says_as_the_issuers() {
    let h = harness_with(Ok(access_registry())).await;
    let asked = h
        .app
        .handle(servicenow("/requests", &{
            let mut b = access_body("sn-1", "read-only", None);
            b["identity"] = json!("alice@example.com");
            b
        }))
        .await;
    assert_eq!(asked.status(), StatusCode::CREATED, "{:?}", asked.body());
    let by_token = h.app.handle(h.access_request("tk-1", "bob@example.com", "read-only", None)).await;
    assert_eq!(by_token.status(), StatusCode::CREATED);
    let requested: Vec<AuditEvent> = h
        .app
        .store()
        .events(DEMO)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind.to_string() == "ticket.requested")
        .collect();
    let who: Vec<(String, Option<Voucher>)> = requested.iter().map(|e| (e.actor.clone(), e.vouched_by())).collect();
    assert_eq!(
        who,
        [
            ("alice@example.com".to_owned(), Some(Voucher::Sender { sender: "servicenow".into() })),
            ("bob@example.com".to_owned(), Some(Voucher::Token { issuer: h.idp.issuer.clone() })),
        ]
    );
    // the webhook's grant events: asserted by the webhook sender
    let created = h.app.handle(post("/webhooks/grants", &webhook())).await;
    assert_eq!(created.status(), StatusCode::CREATED);
    let events = h.app.store().events(DEMO).await.unwrap();
    let last_requested = events.iter().rev().find(|e| e.kind.to_string() == "ticket.requested").unwrap();
    assert_eq!(last_requested.vouched_by(), Some(Voucher::Sender { sender: "webhook".into() }));
}

#[tokio::test]
async fn a_body_never_speaks_for_another_person_than_the_token() {
    let h = harness_with(Ok(access_registry())).await;
    let mut body = access_body("x-1", "read-only", None);
    body["identity"] = json!("ciso@example.com");
    let response = h.app.handle(h.as_person("mallory@example.com", Method::POST, "/requests", &body)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let answer = json_of(&response);
    assert_eq!(answer["field"], "identity");
    assert!(answer["error"].as_str().unwrap().contains("names ciso@example.com"), "{answer}");
    assert!(h.app.store().tickets(None).await.unwrap().is_empty(), "nothing recorded");
    // leaving it out, or naming oneself, is the same request
    body["identity"] = json!("Mallory@Example.com");
    let own = h.app.handle(h.as_person("mallory@example.com", Method::POST, "/requests", &body)).await;
    assert_eq!(own.status(), StatusCode::CREATED, "{:?}", own.body());
    assert_eq!(json_of(&own)["request"]["requested_by"], "mallory@example.com");
    let id = json_of(&own)["id"].as_str().unwrap().to_owned();
    let path = format!("/tickets/{id}/revoke");
    let as_other = h
        .app
        .handle(h.as_person("mallory@example.com", Method::POST, &path, &json!({ "by": "ciso@example.com" })))
        .await;
    assert_eq!((as_other.status(), json_of(&as_other)["field"].as_str()), (StatusCode::FORBIDDEN, Some("by")));
}

#[tokio::test]
async fn forged_and_misplaced_bearer_tokens_are_401_and_record_nothing() {
    let h = harness_with(Ok(access_registry())).await;
    let body = access_body("f-1", "read-only", None);
    let now = at(SIGNED_AT);
    let modulus = h.idp.public_jwk()["n"].as_str().unwrap().to_owned();
    let forgeries = [
        ("alg none", h.idp.token("ciso@example.com").issued_at(now).unsigned()),
        ("hmac over the public key", h.idp.token("ciso@example.com").issued_at(now).signed_hmac(modulus.as_bytes())),
        ("a stranger's key", h.idp.token("ciso@example.com").issued_at(now).signed_by_stranger()),
        ("another client", h.idp.token("ciso@example.com").issued_at(now).claim("aud", json!("other")).signed()),
        ("expired", h.idp.token("ciso@example.com").issued_at(now - Duration::hours(3)).signed()),
        ("not a token", "abc".to_owned()),
    ];
    for (what, token) in forgeries {
        let response = h.app.handle(h.with_token(&token, Method::POST, "/requests", &body)).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}: {:?}", response.body());
        assert!(response.headers()["www-authenticate"].to_str().unwrap().contains("invalid_token"), "{what}");
    }
    // grant events come from senders only
    let token = h.idp.token("alice@example.com").issued_at(now).signed();
    let grant = h.app.handle(h.with_token(&token, Method::POST, "/webhooks/grants", &webhook())).await;
    assert_eq!(grant.status(), StatusCode::UNAUTHORIZED);
    let basic = lambda_http::http::Request::builder()
        .method(Method::POST)
        .uri("/requests")
        .header("authorization", "Basic YWxpY2U6eA==")
        .body(Body::from(body.to_string()))
        .unwrap();
    assert_eq!(h.app.handle(basic).await.status(), StatusCode::UNAUTHORIZED);
    assert!(h.app.store().tickets(None).await.unwrap().is_empty());
    assert!(h.app.store().events(DEMO).await.unwrap().is_empty(), "nothing journaled");

    // without an identity provider configured, no token is accepted at all
    let dir = tempfile::tempdir().unwrap();
    let bare =
        App::new(LocalStore::open(&dir.path().join("s.db")).unwrap(), Ok(access_registry()), StaticKey(KEY.to_vec()))
            .with_clock(h.clock.clone());
    let refused = bare.handle(h.with_token(&token, Method::POST, "/requests", &body)).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(json_of(&refused)["error"].as_str().unwrap().contains("no identity provider is configured"));
}

#[tokio::test]
async fn a_dual_approval_counts_a_privileged_group_and_needs_a_recent_sign_in() {
    let registry = with_access(
        "\naccess:\n  approver_roles: { security: { emails: [ciso@example.com], groups: [db-security] } }\n  paths:\n    migration: { max_ttl: 4h, approvals: dual }\n",
    );
    let h = harness_with(Ok(registry)).await;
    let ticket = |id: &'static str| {
        let h = &h;
        async move {
            let created = h.app.handle(h.access_request(id, "alice@example.com", "migration", None)).await;
            assert_eq!(created.status(), StatusCode::CREATED, "{:?}", created.body());
            json_of(&created)["id"].as_str().unwrap().to_owned()
        }
    };
    let approve = |id: &str, token: String| {
        h.app.handle(h.with_token(&token, Method::POST, &format!("/requests/{id}/approvals"), &json!({})))
    };
    let now = at(SIGNED_AT);

    // two approvers, neither privileged: still pending
    let plain = ticket("m-1").await;
    assert_eq!(approve(&plain, h.idp.token("bob@example.com").issued_at(now).signed()).await.status(), StatusCode::OK);
    let second = approve(&plain, h.idp.token("dave@example.com").issued_at(now).groups(&["eng"]).signed()).await;
    assert_eq!(json_of(&second)["status"], "pending_approval");

    // a member of db-security is privileged by the token's groups claim
    let grouped = ticket("m-2").await;
    approve(&grouped, h.idp.token("bob@example.com").issued_at(now).signed()).await;
    let carol = h.idp.token("carol@example.com").issued_at(now).groups(&["db-security"]).signed();
    let done = approve(&grouped, carol).await;
    assert_eq!(json_of(&done)["status"], "active", "{:?}", done.body());
    assert_eq!(json_of(&done)["approvals"][1]["groups"], json!(["db-security"]));

    // a sign-in older than 15 minutes does not count for one of two approvals
    let stale = ticket("m-3").await;
    let old = h.idp.token("carol@example.com").issued_at(now - Duration::minutes(16)).groups(&["db-security"]).signed();
    let refused = approve(&stale, old).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.headers()["www-authenticate"].to_str().unwrap().contains("max_age=900"));
    assert!(h.app.store().ticket(&stale).await.unwrap().unwrap().value.approvals().is_empty());
    // and the requester never approves their own, token or not
    let own = approve(&stale, h.idp.token("alice@example.com").issued_at(now).signed()).await;
    assert_eq!(own.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_same_request_signed_by_two_senders_in_one_second_is_two_requests() {
    let h = harness_with(Ok(access_registry())).await;
    let mut body = access_body("same-second", "read-only", None);
    body["identity"] = json!("alice@example.com");
    // the webhook key may not file it: refused, and its replay record must not stop servicenow's
    let refused = h.app.handle(post("/requests", &body)).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    let filed = h.app.handle(servicenow("/requests", &body)).await;
    assert_eq!(filed.status(), StatusCode::CREATED, "{:?}", filed.body());
    let again = h.app.handle(servicenow("/requests", &body)).await;
    assert_eq!(again.status(), StatusCode::CONFLICT, "the same sender's request, once");
}
