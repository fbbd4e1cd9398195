//! Slack against a fake Slack Web API served over HTTP: a request's card is
//! posted once and updated after each decision, an eligible approver approves
//! from its button, and every refusal (a forged or stale signature, a replay,
//! a person the registry does not name, a guest, an unconfirmed email, a
//! request that needs two approvals) is answered with its reason. Slack down
//! during a request leaves the request recorded and its card posted once
//! Slack is back. The notice queue is run as `grantwarden serve` runs it.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use grantwarden_core::access::{AccessOutcome, parse_request, request_access};
use grantwarden_core::audit::AuditJournal;
use grantwarden_core::identity::{Actor, Voucher};
use grantwarden_core::notify::{self, APPROVE_ACTION, DENY_ACTION, Delivery};
use grantwarden_core::policy::PolicyRegistry;
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::TicketStore;
use grantwarden_core::ticket::{Ticket, TicketStatus};
use grantwarden_local::LocalStore;
use grantwarden_portal::slack::SlackApp;
use grantwarden_portal::{Config, Portal, cookie_key, router};
use grantwarden_slack::{SlackClient, sign};
use grantwarden_testkit::slack::FakeSlack;
use reqwest::StatusCode;
use serde_json::{Value, json};

const POLICY: &str = include_str!("../../../infra/policy.example.yaml");
const DEMO: &str = "grantwarden-demo";
const SECRET: &[u8] = b"8f742231b10e8888abcd99yyyzzz85a5";

struct Fixture {
    base: String,
    slack: FakeSlack,
    client: SlackClient,
    registry: PolicyRegistry,
    portal: Arc<Portal<LocalStore>>,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
    _server: tokio::task::JoinHandle<()>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(&dir.path().join("state.db")).unwrap();
    let registry = PolicyRegistry::load(&[("policy.example.yaml".into(), POLICY.into())]).unwrap();
    let slack = FakeSlack::start().await;
    for channel in ["C0DBACCESS", "C0SECURITY"] {
        slack.add_channel(channel);
    }
    slack.add_user("UALICE", "alice@example.com", true);
    slack.add_user("UDBA", "dba-lead@example.com", true);
    slack.add_user("UCISO", "ciso@example.com", true);
    slack.add_user("UMALLORY", "mallory@example.com", true);
    slack.add_user("UNEW", "secops@example.com", false);
    let client = SlackClient::new(&slack.api, &slack.token);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let config = Config::new(Some(base.clone()), cookie_key(&[7u8; 64]).unwrap(), [TargetId::new(DEMO).unwrap()]);
    let portal = Portal::new(store, Ok(registry.clone()), None, config)
        .with_slack(SlackApp { client: client.clone(), signing_secret: SECRET.to_vec() });
    let portal = Arc::new(portal);
    let app = router(Arc::clone(&portal));
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let fx =
        Fixture { base, slack, client, registry, portal, http: reqwest::Client::new(), _dir: dir, _server: server };
    // the queue's first run starts at the journal's head
    assert_eq!(fx.run(Utc::now()).await, Delivery::default());
    fx
}

impl Fixture {
    fn store(&self) -> &LocalStore {
        self.portal.store()
    }

    /// One run of the notice queue, as `grantwarden serve` does every few seconds.
    async fn run(&self, now: DateTime<Utc>) -> Delivery {
        notify::pump(self.store(), self.store(), &self.registry, now).await.unwrap();
        let open = self.store().tickets(None).await.unwrap();
        notify::warn_expiring(self.store(), &open, &self.registry, now).await.unwrap();
        notify::deliver(self.store(), self.store(), &self.client, &self.registry, Some(&self.base), now, 100)
            .await
            .unwrap()
    }

    /// alice asks for `path` on `table` of billing.
    async fn request(&self, id: &str, path: &str, table: &str) -> Ticket {
        let body = json!({ "id": id, "target": DEMO, "path": path,
            "scope": { "on": "tables", "schema": "billing", "tables": [table] },
            "duration": "1h", "justification": "CHG-7 <!channel> month-end" });
        let request = parse_request(body.to_string().as_bytes()).unwrap();
        let alice = Actor::from_token("alice@example.com", Default::default(), Utc::now(), "https://idp.example.com");
        match request_access(self.store(), &request, &alice, &self.registry, Utc::now()).await.unwrap() {
            AccessOutcome::Created(t) => t,
            other => panic!("a new ticket: {other:?}"),
        }
    }

    fn body(&self, user: &str, action: &str, ticket: &str) -> String {
        grantwarden_testkit::slack::click_body(&self.slack.team, user, "C0DBACCESS", action, ticket)
    }

    /// Posts `body` to the interactions endpoint with the given timestamp and signature.
    async fn post(&self, body: &str, timestamp: &str, signature: &str) -> (StatusCode, String) {
        let response = self
            .http
            .post(format!("{}/slack/interactions", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", timestamp)
            .header("x-slack-signature", signature)
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        let status = response.status();
        let reply: Value = response.json().await.unwrap_or(Value::Null);
        (status, reply["text"].as_str().unwrap_or_default().to_owned())
    }

    /// `user` clicks `action` on `ticket`'s card, as Slack posts it (signed now).
    async fn click(&self, user: &str, action: &str, ticket: &str) -> (StatusCode, String) {
        let body = self.body(user, action, ticket);
        let ts = Utc::now().timestamp().to_string();
        self.post(&body, &ts, &sign(SECRET, &ts, body.as_bytes())).await
    }

    async fn ticket(&self, id: &str) -> Ticket {
        self.store().ticket(id).await.unwrap().unwrap().value
    }
}

fn button_values(message: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for block in message["blocks"].as_array().into_iter().flatten() {
        for e in block["elements"].as_array().into_iter().flatten() {
            if let Some(action) = e["action_id"].as_str() {
                out.push((action.to_owned(), e["value"].as_str().or(e["url"].as_str()).unwrap_or_default().to_owned()));
            }
        }
    }
    out
}

#[tokio::test]
async fn a_request_posts_one_card_an_eligible_approver_approves_from_it_and_everyone_sees_it() {
    let fx = fixture().await;
    // a sensitive table: one approval, which read-only lets be given in Slack
    let t = fx.request("r1", "read-only", "customers").await;
    let done = fx.run(Utc::now()).await;
    assert_eq!(done, Delivery { delivered: 2, retrying: 0, dead: 0 }, "the card and the approvers' DMs");
    let cards = fx.slack.messages("C0DBACCESS");
    assert_eq!(cards.len(), 1, "one card");
    let card = &cards[0];
    assert!(card["text"].as_str().unwrap().contains("alice@example.com asks for read-only access to grantwarden-demo"));
    let blocks = card["blocks"].to_string();
    assert!(blocks.contains("billing.customers") && blocks.contains("Waiting for one more approval"), "{blocks}");
    assert!(blocks.contains("&lt;!channel&gt;") && !blocks.contains("<!channel>"), "user text cannot ping: {blocks}");
    let buttons = button_values(card);
    assert_eq!(buttons[0], (APPROVE_ACTION.to_owned(), t.id().to_owned()));
    assert_eq!(buttons[1], (DENY_ACTION.to_owned(), t.id().to_owned()));
    assert_eq!(buttons[2].1, format!("{}/requests/{}", fx.base, t.id()));
    // the approvers with a Slack account got it directly (not alice, the requester)
    let dms: Vec<String> =
        fx.slack.calls("chat.postMessage").iter().map(|c| c["channel"].as_str().unwrap().to_owned()).collect();
    assert!(
        dms.contains(&"UDBA".to_owned()) && dms.contains(&"UCISO".to_owned()) && !dms.contains(&"UALICE".to_owned()),
        "{dms:?}"
    );

    let (status, reply) = fx.click("UDBA", APPROVE_ACTION, t.id()).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert!(reply.contains("You approved") && reply.contains("in force"), "{reply}");
    let approved = fx.ticket(t.id()).await;
    assert_eq!(approved.status(), TicketStatus::Active);
    let vouched = Voucher::Slack { team: fx.slack.team.clone(), user: "UDBA".into() };
    assert_eq!(approved.approvals()[0].vouched_by, Some(vouched.clone()));
    let events = fx.store().events(DEMO).await.unwrap();
    let approval = events.iter().find(|e| e.kind.as_str() == "ticket.approved").unwrap();
    assert_eq!((approval.actor.as_str(), approval.vouched_by()), ("dba-lead@example.com", Some(vouched)));
    let ephemeral = fx.slack.calls("chat.postEphemeral");
    assert_eq!((ephemeral[0]["user"].as_str(), ephemeral[0]["channel"].as_str()), (Some("UDBA"), Some("C0DBACCESS")));

    // the card is brought up to date for everyone, and the requester told
    fx.run(Utc::now()).await;
    let card = &fx.slack.messages("C0DBACCESS")[0];
    let blocks = card["blocks"].to_string();
    assert!(blocks.contains("Approved by dba-lead@example.com"), "{blocks}");
    assert!(
        button_values(card).iter().all(|(a, _)| a != APPROVE_ACTION && a != DENY_ACTION),
        "no buttons once decided"
    );
    let updated: Vec<String> =
        fx.slack.calls("chat.update").iter().map(|c| c["channel"].as_str().unwrap().to_owned()).collect();
    assert!(
        updated.contains(&"C0DBACCESS".to_owned()) && updated.contains(&"DDBA".to_owned()),
        "the channel's card and the DMs: {updated:?}"
    );
    let told = fx.slack.calls("chat.postMessage").into_iter().find(|c| c["channel"] == "UALICE").expect("alice told");
    assert!(
        told["text"].as_str().unwrap().starts_with("Approved: your read-only access to grantwarden-demo"),
        "{told}"
    );
    assert_eq!(fx.slack.messages("C0DBACCESS").len(), 1, "never posted twice");

    // a second click is answered and changes nothing
    let (status, reply) = fx.click("UCISO", APPROVE_ACTION, t.id()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(reply.contains("not pending approval"), "{reply}");
    assert_eq!(fx.ticket(t.id()).await.approvals().len(), 1);
}

#[tokio::test]
async fn forged_stale_and_replayed_clicks_are_refused() {
    let fx = fixture().await;
    let t = fx.request("r1", "read-only", "customers").await;
    let body = fx.body("UDBA", APPROVE_ACTION, t.id());
    let now = Utc::now().timestamp().to_string();

    let (status, reply) = fx.post(&body, &now, &sign(b"not the app's secret", &now, body.as_bytes())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(reply.contains("does not match"), "{reply}");
    let (status, reply) = fx.post(&body, &now, "v0=").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{reply}");
    let old = (Utc::now() - Duration::minutes(6)).timestamp().to_string();
    let (status, reply) = fx.post(&body, &old, &sign(SECRET, &old, body.as_bytes())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(reply.contains("5 minutes"), "{reply}");
    assert_eq!(fx.ticket(t.id()).await.status(), TicketStatus::PendingApproval, "nothing counted");

    // a click captured and played again: the first counts, the copy is refused
    let signature = sign(SECRET, &now, body.as_bytes());
    assert_eq!(fx.post(&body, &now, &signature).await.0, StatusCode::OK);
    let (status, reply) = fx.post(&body, &now, &signature).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(reply.contains("replayed"), "{reply}");
    assert_eq!(fx.ticket(t.id()).await.approvals().len(), 1);
}

#[tokio::test]
async fn a_person_the_registry_does_not_name_a_guest_an_unconfirmed_email_and_a_dual_request_are_refused_with_a_reason()
{
    let fx = fixture().await;
    let t = fx.request("r1", "read-only", "customers").await;

    let (status, reply) = fx.click("UMALLORY", APPROVE_ACTION, t.id()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(reply.contains("mallory@example.com is not an approver"), "{reply}");
    let told = fx.slack.calls("chat.postEphemeral");
    assert_eq!(told.last().unwrap()["user"], "UMALLORY", "the refusal is said to the clicker alone");

    let (status, reply) = fx.click("UNEW", APPROVE_ACTION, t.id()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(reply.contains("not confirmed your email"), "{reply}");

    fx.slack.put_user(
        "UGUEST",
        json!({ "id": "UGUEST", "team_id": fx.slack.team, "is_restricted": true,
        "is_email_confirmed": true, "profile": { "email": "ciso@example.com" } }),
    );
    let (status, reply) = fx.click("UGUEST", APPROVE_ACTION, t.id()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(reply.contains("guests"), "{reply}");

    let (status, reply) = fx.click("UALICE", APPROVE_ACTION, t.id()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(reply.contains("cannot approve"), "{reply}");
    assert_eq!(fx.ticket(t.id()).await.approvals().len(), 0, "no refused click counted");

    // two approvals: never from Slack, whoever clicks; the reply links to the portal
    let dual = fx.request("r2", "migration", "invoices").await;
    let (status, reply) = fx.click("UCISO", APPROVE_ACTION, dual.id()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        reply.contains("two approvals") && reply.contains(&format!("{}/requests/{}", fx.base, dual.id())),
        "{reply}"
    );
    assert_eq!(fx.ticket(dual.id()).await.approvals().len(), 0);
    fx.run(Utc::now()).await;
    let card =
        fx.slack.messages("C0DBACCESS").into_iter().find(|m| m["blocks"].to_string().contains(dual.id())).unwrap();
    let buttons = button_values(&card);
    assert!(buttons.iter().all(|(a, _)| a != APPROVE_ACTION), "no Approve button on a dual request: {buttons:?}");
    assert!(card["blocks"].to_string().contains("approve it in the portal"));

    // denying is never an escalation: it is offered on every pending request
    let (status, reply) = fx.click("UCISO", DENY_ACTION, dual.id()).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(fx.ticket(dual.id()).await.status(), TicketStatus::Denied);
    fx.run(Utc::now()).await;
    let told = fx.slack.calls("chat.postMessage").into_iter().filter(|c| c["channel"] == "UALICE").collect::<Vec<_>>();
    assert!(told.iter().any(|c| c["text"].as_str().unwrap().starts_with("Denied: your migration access")), "{told:?}");
}

#[tokio::test]
async fn slack_down_during_a_request_leaves_it_recorded_and_the_card_follows_when_slack_is_back() {
    let fx = fixture().await;
    fx.slack.set_down(true);
    let t = fx.request("r1", "read-only", "customers").await;
    assert_eq!(fx.ticket(t.id()).await.status(), TicketStatus::PendingApproval, "recorded whatever Slack does");
    let down = fx.run(Utc::now()).await;
    assert_eq!(down, Delivery { delivered: 0, retrying: 2, dead: 0 });
    let waiting = fx.store().notices("waiting").unwrap();
    assert!(waiting.iter().all(|n| n.reason.as_deref().is_some_and(|r| r.contains("503"))), "{waiting:?}");

    fx.slack.set_down(false);
    assert_eq!(fx.run(Utc::now()).await, Delivery::default(), "not due before its retry delay");
    let later = Utc::now() + Duration::minutes(1);
    assert_eq!(fx.run(later).await.delivered, 2);
    assert_eq!(fx.slack.messages("C0DBACCESS").len(), 1, "the card, once");
    assert!(fx.store().notices("waiting").unwrap().is_empty());
}
