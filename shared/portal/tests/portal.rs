//! The portal served on a local port, over the SQLite store and the example
//! registry, with people signing in at a fake OpenID Connect provider over
//! HTTP (authorization code flow with PKCE). A small browser keeps cookies and
//! follows redirects by hand, so each step of a sign-in is seen.

use std::sync::Arc;

use chrono::Utc;
use grantwarden_core::audit::AuditJournal;
use grantwarden_core::policy::PolicyRegistry;
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::TicketStore;
use grantwarden_core::ticket::TicketStatus;
use grantwarden_local::LocalStore;
use grantwarden_oidc::{LazyVerifier, Settings, Verifier};
use grantwarden_portal::{Config, Portal, cookie_key, router};
use grantwarden_testkit::browser::{Browser, Page, field};
use grantwarden_testkit::oidc::{CLIENT_ID, FakeIdp};
use reqwest::StatusCode;
use reqwest::header::SET_COOKIE;

const POLICY: &str = include_str!("../../../infra/policy.example.yaml");
const DEMO: &str = "grantwarden-demo";

struct Site {
    base: String,
    idp: FakeIdp,
    portal: Arc<Portal<LocalStore>>,
    _dir: tempfile::TempDir,
    _server: tokio::task::JoinHandle<()>,
}

async fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(&dir.path().join("state.db")).unwrap();
    let registry = PolicyRegistry::load(&[("policy.example.yaml".into(), POLICY.into())]).map_err(|e| e.to_string());
    let idp = FakeIdp::start().await;
    let verifier = Verifier::discover(Settings::new(&idp.issuer, CLIENT_ID)).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = Config {
        dashboard_url: Some("https://reports.example.com/dashboard.html".into()),
        ..Config::new(Some(base.clone()), cookie_key(&[7u8; 64]).unwrap(), [TargetId::new(DEMO).unwrap()])
    };
    let portal = Arc::new(Portal::new(store, registry, Some(Arc::new(LazyVerifier::ready(verifier))), config));
    let app = router(Arc::clone(&portal));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Site { base, idp, portal, _dir: dir, _server: server }
}

/// Signs in at the provider as `email` and comes back to the portal's home.
async fn sign_in(site: &Site, email: &str, groups: &[&str]) -> Browser {
    site.idp.sign_in_as(email, groups, Utc::now());
    let mut browser = Browser::new();
    let home = browser.open(&site.base, &format!("{}/", site.base)).await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.body);
    assert!(home.body.contains(email), "signed in as {email}");
    browser
}

/// Fills the request form (one table of billing) and presses `action`.
async fn ask(site: &Site, browser: &mut Browser, path: &str, tables: &str, action: &str) -> Page {
    let justification = "CHG-1001 <script>alert(1)</script> month-end";
    let fields = [("target", DEMO), ("path", path), ("scope_on", "tables"), ("schema", "billing")];
    let rest = [("tables", tables), ("duration", "2h"), ("justification", justification), ("action", action)];
    browser.submit_request(&site.base, &[fields.as_slice(), rest.as_slice()].concat()).await
}

#[tokio::test]
async fn a_person_signs_in_asks_sees_the_decision_and_another_approves() {
    let site = site().await;
    let mut alice = sign_in(&site, "alice@example.com", &[]).await;
    let authorize = &site.idp.authorizations()[0];
    assert_eq!(authorize["code_challenge_method"], "S256");
    assert!(authorize.contains_key("nonce") && authorize.contains_key("state"));

    // the decision first: a sensitive table needs one approval
    let checked = ask(&site, &mut alice, "read-only", "customers", "check").await;
    assert_eq!(checked.status, StatusCode::OK);
    assert!(checked.body.contains("one approval, by someone other than you"), "{}", checked.body);
    assert!(checked.body.contains("value=\"submit\""), "then it may be submitted");
    assert!(site.portal.store().tickets(None).await.unwrap().is_empty(), "checking records nothing");

    let submitted = ask(&site, &mut alice, "read-only", "customers", "submit").await;
    assert_eq!(submitted.status, StatusCode::SEE_OTHER, "{}", submitted.body);
    let ticket_path = submitted.location.unwrap();
    let id = ticket_path.trim_start_matches("/requests/").to_owned();
    let page = alice.get(&format!("{}{ticket_path}", site.base)).await;
    assert!(page.body.contains("pending_approval"));
    assert!(page.body.contains("&#60;script&#62;alert(1)&#60;/script&#62;"), "escaped: {}", page.body);
    assert!(!page.body.contains("<script>"));
    assert!(!page.body.contains("/approve\""), "the requester is offered no approval of her own");
    let home = alice.get(&format!("{}/", site.base)).await;
    assert!(home.body.contains(&id), "my requests list it");

    let mut bob = sign_in(&site, "bob@example.com", &[]).await;
    let waiting = bob.get(&format!("{}/approvals", site.base)).await;
    assert!(waiting.body.contains(&id) && waiting.body.contains("alice@example.com"), "{}", waiting.body);
    let shown = bob.get(&format!("{}{ticket_path}", site.base)).await;
    let approved =
        bob.post(&format!("{}{ticket_path}/approve", site.base), &[("csrf", &field(&shown.body, "csrf"))]).await;
    assert_eq!(approved.status, StatusCode::SEE_OTHER);
    let stored = site.portal.store().ticket(&id).await.unwrap().unwrap().value;
    assert_eq!(stored.status(), TicketStatus::Active);
    assert_eq!(stored.approvals()[0].approver, "bob@example.com");
    let timeline = bob.get(&format!("{}{ticket_path}", site.base)).await.body;
    assert!(timeline.contains("ticket.requested") && timeline.contains("ticket.approved"), "{timeline}");
    assert!(timeline.contains(&format!("a token of {}", site.idp.issuer)), "who vouched: {timeline}");
    let waiting = bob.get(&format!("{}/approvals", site.base)).await;
    assert!(!waiting.body.contains(&id), "nothing left to approve");
    let in_force = bob.get(&format!("{}/tickets", site.base)).await;
    assert!(in_force.body.contains(&id));
}

#[tokio::test]
async fn every_refusal_changes_nothing() {
    let site = site().await;
    let mut alice = sign_in(&site, "alice@example.com", &[]).await;
    let submitted = ask(&site, &mut alice, "read-only", "customers", "submit").await;
    let ticket_path = submitted.location.unwrap();
    let id = ticket_path.trim_start_matches("/requests/").to_owned();
    let before = site.portal.store().ticket(&id).await.unwrap().unwrap();

    // the requester's own approval, by a hand-made POST with her valid token
    let csrf = field(&alice.get(&format!("{}/", site.base)).await.body, "csrf");
    let own = alice.post(&format!("{}{ticket_path}/approve", site.base), &[("csrf", &csrf)]).await;
    assert_eq!(own.status, StatusCode::FORBIDDEN);
    assert!(own.body.contains("cannot approve"), "{}", own.body);

    let mut bob = sign_in(&site, "bob@example.com", &[]).await;
    // no CSRF token, or another session's
    let bare = bob.post(&format!("{}{ticket_path}/approve", site.base), &[]).await;
    assert_eq!(bare.status, StatusCode::FORBIDDEN);
    let borrowed = bob.post(&format!("{}{ticket_path}/approve", site.base), &[("csrf", &csrf)]).await;
    assert_eq!(borrowed.status, StatusCode::FORBIDDEN);
    assert!(borrowed.body.contains("CSRF"));
    // a form field never names the approver: the session does
    let named = bob
        .post(&format!("{}{ticket_path}/approve", site.base), &[("csrf", "x"), ("approver", "ciso@example.com")])
        .await;
    assert_eq!(named.status, StatusCode::FORBIDDEN);
    // bob may not end alice's ticket
    let bob_csrf = field(&bob.get(&format!("{}/", site.base)).await.body, "csrf");
    let end = bob.post(&format!("{}{ticket_path}/end", site.base), &[("csrf", &bob_csrf)]).await;
    assert_eq!(end.status, StatusCode::FORBIDDEN);
    assert_eq!(site.portal.store().ticket(&id).await.unwrap().unwrap(), before, "nothing changed");

    // a forged or tampered session cookie is no session: sign in first
    let mut mallory = Browser::new();
    mallory.cookies.insert("gw_session".into(), format!("{}x", bob.cookies["gw_session"]));
    let tampered = mallory.get(&format!("{}/approvals", site.base)).await;
    assert_eq!(tampered.status, StatusCode::SEE_OTHER);
    assert!(tampered.location.unwrap().starts_with("/login"));
    let forged = serde_json::json!({ "person": "ciso@example.com" }).to_string();
    mallory.cookies.insert("gw_session".into(), forged);
    let denied = mallory.post(&format!("{}{ticket_path}/approve", site.base), &[("csrf", "x")]).await;
    assert_eq!(denied.status, StatusCode::SEE_OTHER, "to the sign-in, not an approval");
    assert_eq!(site.portal.store().ticket(&id).await.unwrap().unwrap(), before);
}

#[tokio::test]
async fn a_sign_in_is_bound_to_its_state_and_code_and_returns_only_to_the_portal() {
    let site = site().await;
    site.idp.sign_in_as("alice@example.com", &[], Utc::now());
    let mut browser = Browser::new();
    let start = browser.get(&format!("{}/login?return_to=https://evil.test/", site.base)).await;
    assert_eq!(start.status, StatusCode::SEE_OTHER);
    let at_provider = browser.get(&start.location.unwrap()).await;
    let callback = at_provider.location.unwrap();
    // the callback with another state is refused, and the sign-in is spent
    let forged = callback.replace("state=", "state=x");
    let refused = browser.get(&forged).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{}", refused.body);
    assert!(refused.body.contains("state"));
    let again = browser.get(&callback).await;
    assert_eq!(again.status, StatusCode::UNAUTHORIZED, "no sign-in in progress any more");

    // a clean sign-in goes home, never to another site
    let start = browser.get(&format!("{}/login?return_to=//evil.test/x", site.base)).await;
    let callback = browser.get(&start.location.unwrap()).await.location.unwrap();
    let done = browser.get(&callback).await;
    assert_eq!((done.status, done.location.as_deref()), (StatusCode::SEE_OTHER, Some("/")));
    let set: Vec<String> = done.headers.get_all(SET_COOKIE).iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    let session = set.iter().find(|c| c.starts_with("gw_session=")).expect("a session cookie");
    for attribute in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(attribute), "{attribute} in {session}");
    }
    let max_age: i64 = session.split("Max-Age=").nth(1).unwrap().split(';').next().unwrap().parse().unwrap();
    assert!(max_age <= 8 * 3600, "at most 8 hours: {max_age}");
    // the same code twice: the provider refuses it, so does the portal
    let start = browser.get(&format!("{}/login", site.base)).await;
    let callback = browser.get(&start.location.unwrap()).await.location.unwrap();
    assert_eq!(browser.get(&callback).await.status, StatusCode::SEE_OTHER);
    let code = callback.split("code=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    let pending = browser.get(&format!("{}/login", site.base)).await.location.unwrap();
    let state = pending.split("state=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    let reused = browser.get(&format!("{}/callback?code={code}&state={state}", site.base)).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED, "{}", reused.body);

    // every page: no script, no framing, not cached
    let page = browser.get(&format!("{}/", site.base)).await;
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers["cache-control"], "no-store");
}

#[tokio::test]
async fn one_of_two_approvals_needs_a_sign_in_of_the_last_quarter_hour() {
    let site = site().await;
    let mut alice = sign_in(&site, "alice@example.com", &[]).await;
    let submitted = ask(&site, &mut alice, "migration", "invoices", "check").await;
    assert!(submitted.body.contains("two approvals, neither yours, one of them by"), "{}", submitted.body);
    assert!(submitted.body.contains("group db-security"));
    let submitted = ask(&site, &mut alice, "migration", "invoices", "submit").await;
    let ticket_path = submitted.location.unwrap();
    let id = ticket_path.trim_start_matches("/requests/").to_owned();
    let mut bob = sign_in(&site, "bob@example.com", &[]).await;
    assert_eq!(approve(&site, &mut bob, &ticket_path).await.status, StatusCode::SEE_OTHER);

    // carol is privileged by her group, but signed in 20 minutes ago
    site.idp.sign_in_as("carol@example.com", &["db-security"], Utc::now() - chrono::Duration::minutes(20));
    let mut carol = Browser::new();
    carol.open(&site.base, &format!("{}/", site.base)).await;
    let stale = approve(&site, &mut carol, &ticket_path).await;
    assert_eq!(stale.status, StatusCode::SEE_OTHER);
    let to = stale.location.unwrap();
    assert!(to.starts_with("/login?") && to.contains("fresh=1"), "sign in again: {to}");
    assert_eq!(site.portal.store().ticket(&id).await.unwrap().unwrap().value.approvals().len(), 1, "not counted");
    // the provider is asked for a sign-in made now, and she comes back to the request
    let back = carol.open(&site.base, &format!("{}{to}", site.base)).await;
    let asked = site.idp.authorizations().last().cloned().unwrap();
    assert_eq!((asked["max_age"].as_str(), asked["prompt"].as_str()), ("0", "login"));
    assert!(back.body.contains(&id), "back on the request");
    assert_eq!(approve(&site, &mut carol, &ticket_path).await.status, StatusCode::SEE_OTHER);
    let stored = site.portal.store().ticket(&id).await.unwrap().unwrap().value;
    assert_eq!(stored.status(), TicketStatus::Active);
    assert_eq!(stored.approvals()[1].groups, ["db-security"]);
}

/// Opens the ticket page and presses Approve.
async fn approve(site: &Site, browser: &mut Browser, ticket_path: &str) -> Page {
    let csrf = field(&browser.get(&format!("{}{ticket_path}", site.base)).await.body, "csrf");
    browser.post(&format!("{}{ticket_path}/approve", site.base), &[("csrf", &csrf)]).await
}

#[tokio::test]
async fn break_glass_is_renewed_by_its_requester_after_a_fresh_sign_in() {
    use grantwarden_core::incident::{IncidentStatus, IncidentStore, IncidentUpdate};
    let site = site().await;
    let opened =
        IncidentUpdate { id: "PD-9".into(), status: IncidentStatus::Open, source: "pagerduty".into(), at: Utc::now() };
    site.portal.store().record_incident(&opened).await.unwrap();
    // on call, signed in 20 minutes ago
    site.idp.sign_in_as("oncall@example.com", &[], Utc::now() - chrono::Duration::minutes(20));
    let mut oncall = Browser::new();
    oncall.open(&site.base, &format!("{}/", site.base)).await;
    let submitted = oncall
        .submit_request(
            &site.base,
            &[
                ("target", DEMO),
                ("path", "break-glass"),
                ("scope_on", "schema"),
                ("schema", "billing"),
                ("duration", "20m"),
                ("justification", "PD-9 outage"),
                ("incident_id", "PD-9"),
                ("action", "submit"),
            ],
        )
        .await;
    assert_eq!(submitted.status, StatusCode::SEE_OTHER, "{}", submitted.body);
    let ticket_path = submitted.location.unwrap();
    let ticket = ticket_path.trim_start_matches("/requests/").to_owned();
    let page = oncall.get(&format!("{}{ticket_path}", site.base)).await;
    assert!(page.body.contains("Renew (while the incident is open)"), "{}", page.body);

    let csrf = field(&page.body, "csrf");
    let stale = oncall.post(&format!("{}{ticket_path}/renew", site.base), &[("csrf", &csrf)]).await;
    let to = stale.location.unwrap();
    assert!(to.contains("fresh=1"), "sign in again first: {to}");
    assert!(!site.portal.store().events(DEMO).await.unwrap().iter().any(|e| e.kind.to_string() == "access.renewed"));
    oncall.open(&site.base, &format!("{}{to}", site.base)).await;
    let csrf = field(&oncall.get(&format!("{}/", site.base)).await.body, "csrf");
    let renewed = oncall.post(&format!("{}{ticket_path}/renew", site.base), &[("csrf", &csrf)]).await;
    assert_eq!(renewed.status, StatusCode::SEE_OTHER);
    assert_eq!(renewed.location.as_deref(), Some(ticket_path.as_str()));
    let events = site.portal.store().events(DEMO).await.unwrap();
    let renewal =
        events.iter().find(|e| e.kind.to_string() == "access.renewed" && e.subject == ticket).expect("renewed");
    assert_eq!(renewal.actor, "oncall@example.com");
}
