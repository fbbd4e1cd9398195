//! The intake handler against the real SQLite store, the example policy
//! registry and signed requests, with the clock under the test's control.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use grantwarden_core::audit::{AuditEvent, AuditJournal, NewEvent};
use grantwarden_core::policy::PolicyRegistry;
use grantwarden_core::report::Finding;
use grantwarden_core::signature::{self, sign};
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::{FindingAge, FindingStore, PutOutcome, Recorded, StoreError, TicketStore, Versioned};
use grantwarden_core::ticket::Ticket;
use grantwarden_intake::{App, Clock, StaticKey};
use grantwarden_local::LocalStore;
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};

const KEY: &[u8] = b"grantwarden-test-webhook-key";
const POLICY: &str = include_str!("../../../infra/policy.example.yaml");
const WEBHOOK: &str = include_str!("../../../infra/grant-webhook.example.json");
const FUNCTION_URL_EVENT: &str = include_str!("../../../events/intake-function-url.json");
const HTTP_API_EVENT: &str = include_str!("../../../events/intake-http-api.json");
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
    _dir: tempfile::TempDir,
}

fn harness_with(registry: Result<PolicyRegistry, String>) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(&dir.path().join("state.db")).unwrap();
    let clock = Arc::new(TestClock(Mutex::new(at(SIGNED_AT))));
    let app = App::new(store, registry, StaticKey(KEY.to_vec()))
        .with_clock(clock.clone())
        .with_known_targets([TargetId::new(DEMO).unwrap()]);
    Harness { app, clock, _dir: dir }
}

fn harness() -> Harness {
    harness_with(registry())
}

/// A request signed with the test key at `t`.
fn signed(method: Method, path: &str, body: &[u8], t: i64) -> Request {
    lambda_http::http::Request::builder()
        .method(method)
        .uri(path)
        .header(signature::HEADER, sign(KEY, t, body))
        .body(Body::from(body.to_vec()))
        .unwrap()
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
    h.app.store().events(DEMO).await.unwrap().into_iter().map(|e| e.kind).collect()
}

#[tokio::test]
async fn new_webhook_creates_a_ticket_201() {
    let h = harness();
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
    let h = harness();
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
    let h = harness();
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
    let h = harness();
    let body = webhook().to_string();
    let mut req = signed(Method::POST, "/webhooks/grants", body.as_bytes(), SIGNED_AT);
    req.headers_mut().insert(signature::HEADER, sign(b"not-the-key", SIGNED_AT, body.as_bytes()).parse().unwrap());
    let response = h.app.handle(req).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(&response)["error"], "signature rejected: no v1 signature matches the body");
    assert!(h.app.store().tickets(None).await.unwrap().is_empty());
    assert!(journal(&h).await.is_empty());
}

#[tokio::test]
async fn a_body_changed_after_signing_is_401() {
    let h = harness();
    let body = webhook().to_string();
    let mut req = signed(Method::POST, "/webhooks/grants", body.as_bytes(), SIGNED_AT);
    *req.body_mut() = Body::from(body.replace("alice", "mallory").replace("SELECT", "DELETE"));
    assert_eq!(h.app.handle(req).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn missing_signature_header_is_401() {
    let h = harness();
    let mut req = post("/webhooks/grants", &webhook());
    req.headers_mut().remove(signature::HEADER);
    let response = h.app.handle(req).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(json_of(&response)["error"].as_str().unwrap().contains("missing"));
}

#[tokio::test]
async fn stale_timestamp_is_401() {
    let h = harness();
    h.clock.set(at(SIGNED_AT + 301));
    let response = h.app.handle(post("/webhooks/grants", &webhook())).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(json_of(&response)["error"].as_str().unwrap().contains("more than 300s away"));
    assert!(h.app.store().tickets(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn missing_field_is_400_naming_it_and_records_an_untagged_finding() {
    let h = harness();
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
    let h = harness();
    let response = h.app.handle(signed(Method::POST, "/webhooks/grants", b"{not json", SIGNED_AT)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&response)["field"], "body");
    let untagged = h.app.store().open_untagged(&TargetId::new("unknown").unwrap()).await.unwrap();
    assert_eq!(untagged.len(), 1);
}

#[tokio::test]
async fn oversized_body_is_413_before_the_signature_is_checked() {
    let h = harness();
    let body = vec![b' '; 64 * 1024 + 1];
    let mut req = signed(Method::POST, "/webhooks/grants", &body, SIGNED_AT);
    req.headers_mut().remove(signature::HEADER);
    let response = h.app.handle(req).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(json_of(&response)["error"].as_str().unwrap().contains("65537 bytes"));
}

#[tokio::test]
async fn refused_request_is_422_and_records_an_untagged_finding() {
    let h = harness();
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
    let h = harness_with(Err("s3://bucket/config/policy/: access denied".into()));
    let response = h.app.handle(post("/webhooks/grants", &webhook())).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    // the registry's location is logged, not told to the sender
    assert!(!json_of(&response)["error"].as_str().unwrap().contains("s3://"));
    assert_eq!(h.app.store().open_untagged(&TargetId::new(DEMO).unwrap()).await.unwrap().len(), 1);
}

#[tokio::test]
async fn unknown_target_is_400_naming_the_target_field() {
    let h = harness();
    let mut w = webhook();
    w["target"] = json!("somebody-elses-db");
    let response = h.app.handle(post("/webhooks/grants", &w)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&response)["field"], "target");
}

#[tokio::test]
async fn generic_payload_creates_a_ticket_201() {
    let h = harness();
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
    let h = harness();
    let generic = json!({
        "id": "req-78", "system": "servicenow", "target": DEMO, "user": "bob@example.com",
        "role": "bob_tmp", "grant": ["SELECT"], "on": "table:billing.invoices"
    });
    let response = h.app.handle(post("/requests", &generic)).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&response)["field"], "until");
}

async fn pending_phi_ticket(h: &Harness) -> String {
    // phi_* routes to hipaa-phi: two approvals, at most 4 hours
    let w = webhook_for("d-phi", "phi_claims", &["SELECT"], 3);
    let response = h.app.handle(post("/webhooks/grants", &w)).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let body = json_of(&response);
    assert_eq!(body["category"], "hipaa-phi");
    assert_eq!(body["status"], "pending_approval");
    body["id"].as_str().unwrap().to_owned()
}

fn approval(id: &str, approver: &str) -> Request {
    post(&format!("/requests/{id}/approvals"), &json!({ "approver": approver }))
}

#[tokio::test]
async fn two_distinct_approvers_activate_a_phi_ticket() {
    let h = harness();
    let id = pending_phi_ticket(&h).await;

    let own = h.app.handle(approval(&id, "contractor@example.com")).await;
    assert_eq!(own.status(), StatusCode::FORBIDDEN);
    assert!(json_of(&own)["error"].as_str().unwrap().contains("cannot approve"));

    let first = h.app.handle(approval(&id, "bob@example.com")).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(json_of(&first)["status"], "pending_approval");

    let twice = h.app.handle(approval(&id, "BOB@example.com")).await;
    assert_eq!(twice.status(), StatusCode::FORBIDDEN);
    assert!(json_of(&twice)["error"].as_str().unwrap().contains("already approved"));

    let second = h.app.handle(approval(&id, "carol@example.com")).await;
    assert_eq!(second.status(), StatusCode::OK);
    let body = json_of(&second);
    assert_eq!(body["status"], "active");
    assert_eq!(body["approvals"].as_array().unwrap().len(), 2);

    let late = h.app.handle(approval(&id, "dave@example.com")).await;
    assert_eq!(late.status(), StatusCode::CONFLICT);
    assert_eq!(journal(&h).await, ["ticket.requested", "ticket.approved", "ticket.approved", "ticket.activated"]);
}

#[tokio::test]
async fn approving_an_unknown_ticket_is_404() {
    let h = harness();
    let response = h.app.handle(approval("tkt-00000000000000000000", "bob@example.com")).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(json_of(&response)["error"].as_str().unwrap().contains("tkt-00000000000000000000"));
}

#[tokio::test]
async fn approval_without_an_approver_is_400_naming_the_field() {
    let h = harness();
    let id = pending_phi_ticket(&h).await;
    let response = h.app.handle(post(&format!("/requests/{id}/approvals"), &json!({ "by": "bob" }))).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(json_of(&response)["field"], "by");
}

#[tokio::test]
async fn get_ticket_is_200_with_effective_status_and_404_when_unknown() {
    let h = harness();
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
    let h = harness();
    let mut req = get("/tickets/tkt-nope");
    req.headers_mut().remove(signature::HEADER);
    assert_eq!(h.app.handle(req).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn unknown_path_is_404_and_wrong_method_is_405() {
    let h = harness();
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
    let h = harness();
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
    let h = harness();
    h.clock.set(at(SIGNED_AT + 30));
    let req = lambda_http::request::from_str(HTTP_API_EVENT).unwrap();
    let response = h.app.handle(req).await;
    assert_eq!(response.status(), StatusCode::CREATED, "{:?}", response.body());
    assert_eq!(json_of(&response)["request"]["delivery_id"], "d-httpapi-1");
}

#[tokio::test]
async fn event_replayed_after_the_window_is_401() {
    let h = harness();
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
    async fn put_ticket(&self, _: &Ticket) -> Result<PutOutcome, StoreError> {
        down()
    }
    async fn ticket(&self, _: &str) -> Result<Option<Versioned<Ticket>>, StoreError> {
        down()
    }
    async fn tickets(&self, _: Option<&TargetId>) -> Result<Vec<Ticket>, StoreError> {
        down()
    }
    async fn update_ticket(&self, _: &Ticket, _: u64) -> Result<u64, StoreError> {
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

#[test]
fn the_handler_future_is_send_so_lambda_http_can_run_it() {
    fn assert_send<T: Send>(_: &T) {}
    let h = harness();
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
    let mut h = harness();
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
    h.app.handle(approval(&pending, "bob@example.com")).await;
    h.app.handle(approval(&pending, "carol@example.com")).await;
    assert!(lease(pending.clone()).await.is_some());
    assert!(schedule(&pending).await.is_ok());
}

#[tokio::test]
async fn a_signed_revoke_request_ends_a_ticket_early_once() {
    let h = harness();
    let created = json_of(&h.app.handle(post("/webhooks/grants", &webhook())).await);
    let id = created["id"].as_str().unwrap();
    let asked = h
        .app
        .handle(post(&format!("/tickets/{id}/revoke"), &json!({ "by": "ciso@example.com", "reason": "left" })))
        .await;
    assert_eq!(asked.status(), StatusCode::ACCEPTED);
    assert_eq!(json_of(&asked)["status"], "revoke_requested");
    let stored = h.app.store().ticket(id).await.unwrap().unwrap().value;
    assert_eq!(stored.status, grantwarden_core::ticket::TicketStatus::RevokeRequested);
    let again = h.app.handle(post(&format!("/tickets/{id}/revoke"), &json!({ "by": "ciso@example.com" }))).await;
    assert_eq!(again.status(), StatusCode::CONFLICT, "a second request changes nothing");
    let nobody = h.app.handle(post(&format!("/tickets/{id}/revoke"), &json!({ "reason": "x" }))).await;
    assert_eq!((nobody.status(), json_of(&nobody)["field"].as_str()), (StatusCode::BAD_REQUEST, Some("by")));
    assert_eq!(journal(&h).await, ["ticket.requested", "ticket.activated", "ticket.revoke_requested"]);
}

#[tokio::test]
async fn access_requests_route_by_the_access_policy_and_break_glass_needs_an_open_incident() {
    const ACCESS: &str = "\naccess:\n  approver_roles: { security: [ciso@example.com] }\n  paths:\n    read-only: { max_ttl: 8h }\n    break-glass: { max_ttl: 30m }\n";
    let registry = PolicyRegistry::load(&[(
        "policy.example.yaml".into(),
        format!("{}{ACCESS}", POLICY.split("\naccess:").next().unwrap()),
    )])
    .unwrap();
    let h = harness_with(Ok(registry));
    let request = |id: &str, path: &str, incident: Option<&str>| {
        let mut body = json!({ "id": id, "identity": "alice@example.com", "target": DEMO, "path": path,
            "scope": { "on": "tables", "schema": "billing", "tables": ["invoices"] }, "duration": "20m", "justification": "INC" });
        if let Some(i) = incident {
            body["incident_id"] = json!(i);
        }
        post("/requests", &body)
    };
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
    let hook = json!({ "event": { "event_type": "incident.triggered", "data": { "id": "PD-9" } } });
    assert_eq!(h.app.handle(post("/webhooks/incidents", &hook)).await.status(), StatusCode::OK);
    let glass = h.app.handle(request("a-3", "break-glass", Some("PD-9"))).await;
    assert_eq!(glass.status(), StatusCode::CREATED);
    assert_eq!(json_of(&glass)["access"]["review_required"], true);
    let glass_id = json_of(&glass)["id"].as_str().unwrap().to_owned();
    let renewed = h.app.handle(post(&format!("/tickets/{glass_id}/renew"), &json!({}))).await;
    assert_eq!(renewed.status(), StatusCode::OK, "{:?}", renewed.body());
    let read_only = json_of(&created)["id"].as_str().unwrap().to_owned();
    let refused = h.app.handle(post(&format!("/tickets/{read_only}/renew"), &json!({}))).await;
    assert_eq!(refused.status(), StatusCode::CONFLICT, "only break-glass is renewed");
    let bad = h.app.handle(post("/requests", &json!({ "id": "a-4", "identity": "alice@example.com", "target": DEMO,
        "path": "read-only", "scope": { "on": "rows", "schema": "billing", "table": "t" }, "duration": "1h", "justification": "x" }))).await;
    assert_eq!((bad.status(), json_of(&bad)["field"].as_str()), (StatusCode::BAD_REQUEST, Some("scope")));

    // webhooks arrive out of order: a retried "triggered" delivered after the "resolved"
    // does not reopen the incident, because each is dated by PagerDuty's own time
    let now = *h.clock.0.lock().unwrap();
    let ago = |minutes: i64| (now - Duration::minutes(minutes)).to_rfc3339();
    let resolved =
        json!({ "event": { "event_type": "incident.resolved", "occurred_at": ago(1), "data": { "id": "PD-10" } } });
    let late =
        json!({ "event": { "event_type": "incident.triggered", "occurred_at": ago(5), "data": { "id": "PD-10" } } });
    assert_eq!(h.app.handle(post("/webhooks/incidents", &resolved)).await.status(), StatusCode::OK);
    assert_eq!(h.app.handle(post("/webhooks/incidents", &late)).await.status(), StatusCode::OK);
    let after = h.app.handle(request("a-5", "break-glass", Some("PD-10"))).await;
    assert_eq!(after.status(), StatusCode::UNPROCESSABLE_ENTITY, "{:?}", after.body());
}
