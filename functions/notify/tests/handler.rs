//! The notify function against moto (the journal's stream, the notice queue
//! and its dead-letter queue, the replay table, the registry in S3, the bot
//! token in Secrets Manager) and a fake Slack Web API over HTTP: a request's
//! journal event becomes one queued notice per thing to say (a redelivered
//! stream record queues nothing), the queue delivers the card once and updates
//! it after the approval, Slack down leaves the notices on the queue for a
//! later delivery, and a notice Slack refuses for good is kept on the
//! dead-letter queue with its reason.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use grantwarden_aws::{Clients, DynamoStore, Settings, provision};
use grantwarden_core::access::{AccessOutcome, parse_request, request_access};
use grantwarden_core::identity::{Actor, Voucher};
use grantwarden_core::policy::PolicyRegistry;
use grantwarden_core::ticket::Ticket;
use grantwarden_notify::{Invocation, Notify, Outcome};
use grantwarden_testkit::moto;
use grantwarden_testkit::slack::FakeSlack;
use lambda_runtime::{Context, LambdaEvent};
use serde_json::json;

const POLICY: &str = include_str!("../../../infra/policy.example.yaml");
const DEMO: &str = "grantwarden-demo";

struct Stack {
    clients: Clients,
    settings: Settings,
    slack: FakeSlack,
    registry: PolicyRegistry,
}

async fn stack(test: &str) -> Stack {
    let clients = Clients::for_endpoint(&moto::endpoint()).await;
    let mut settings =
        provision::create(&clients, &moto::unique_prefix(test)).await.expect("moto creates the resources");
    let slack = FakeSlack::start().await;
    slack.add_channel("C0DBACCESS");
    slack.add_channel("C0SECURITY");
    slack.add_user("UALICE", "alice@example.com", true);
    slack.add_user("UDBA", "dba-lead@example.com", true);
    let token_id = format!("{}/slack-bot-token", settings.secret_prefix.trim_end_matches('/'));
    moto::put_secret(&clients.secrets, &token_id, &slack.token).await;
    settings.slack_bot_token_secret_id = Some(token_id);
    settings.slack_api_url = slack.api.clone();
    settings.portal_url = Some("https://portal.example.com".into());
    let key = format!("{}registry.yaml", settings.policy_prefix);
    clients
        .s3
        .put_object()
        .bucket(&settings.bucket)
        .key(key)
        .body(POLICY.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
    let registry = PolicyRegistry::load(&[("registry.yaml".into(), POLICY.into())]).unwrap();
    Stack { clients, settings, slack, registry }
}

impl Stack {
    fn function(&self, now: DateTime<Utc>) -> Notify {
        Notify::new(&self.clients, &self.settings, Arc::new(move || now)).unwrap()
    }

    fn store(&self) -> DynamoStore {
        DynamoStore::new(&self.clients, &self.settings)
    }

    async fn request(&self, id: &str) -> Ticket {
        let body = json!({ "id": id, "target": DEMO, "path": "read-only",
            "scope": { "on": "tables", "schema": "billing", "tables": ["customers"] },
            "duration": "1h", "justification": "CHG-7" });
        let request = parse_request(body.to_string().as_bytes()).unwrap();
        let alice = Actor::from_token("alice@example.com", Default::default(), Utc::now(), "https://idp.example.com");
        match request_access(&self.store(), &request, &alice, &self.registry, Utc::now()).await.unwrap() {
            AccessOutcome::Created(t) => t,
            other => panic!("a new ticket: {other:?}"),
        }
    }

    async fn invoke(&self, f: &Notify, payload: Invocation) -> Outcome {
        f.invoke(LambdaEvent::new(payload, Context::default())).await.unwrap()
    }

    /// The journal's stream as the function receives it.
    async fn stream(&self) -> Invocation {
        Invocation::Stream(moto::table_stream(&self.clients.dynamodb, &self.settings.journal_table).await)
    }

    async fn queue(&self, expected: usize) -> Invocation {
        Invocation::Queue(
            moto::drain(&self.clients.sqs, self.settings.notice_queue_url.as_deref().unwrap(), expected).await,
        )
    }

    /// Makes the messages of `receipts` visible again at once (their retry delay passing).
    async fn show_again(&self, receipts: &[String]) {
        let url = self.settings.notice_queue_url.as_deref().unwrap();
        for receipt in receipts {
            self.clients
                .sqs
                .change_message_visibility()
                .queue_url(url)
                .receipt_handle(receipt)
                .visibility_timeout(0)
                .send()
                .await
                .unwrap();
        }
    }
}

trait Empty {
    fn is_empty_queue(&self) -> bool;
}

impl Empty for Invocation {
    fn is_empty_queue(&self) -> bool {
        matches!(self, Invocation::Queue(e) if e.records.is_empty())
    }
}

fn failures(outcome: &Outcome) -> usize {
    match outcome {
        Outcome::Delivered(r) => r.batch_item_failures.len(),
        Outcome::Queued { .. } => panic!("a delivery: {outcome:?}"),
    }
}

fn queued(outcome: &Outcome) -> usize {
    match outcome {
        Outcome::Queued { queued } => *queued,
        Outcome::Delivered(_) => panic!("a queueing: {outcome:?}"),
    }
}

#[tokio::test]
async fn a_request_is_posted_once_then_updated_after_its_approval() {
    let s = stack("notify-card").await;
    let f = s.function(Utc::now());
    let t = s.request("r1").await;

    // ticket.requested: its card and the approvers' DMs; a redelivery queues nothing
    assert_eq!(queued(&s.invoke(&f, s.stream().await).await), 2);
    assert_eq!(queued(&s.invoke(&f, s.stream().await).await), 0, "each notice queued once");

    let delivered = s.invoke(&f, s.queue(2).await).await;
    assert_eq!(failures(&delivered), 0);
    let cards = s.slack.messages("C0DBACCESS");
    assert_eq!(cards.len(), 1);
    assert!(cards[0]["blocks"].to_string().contains(t.id()));
    assert!(cards[0]["blocks"].to_string().contains("https://portal.example.com/requests/"));

    // an approval (from anywhere): the card is brought up to date, the requester told
    let dba = Actor {
        id: "dba-lead@example.com".into(),
        groups: Default::default(),
        signed_in_at: None,
        vouched_by: Voucher::Slack { team: "T0GRANT".into(), user: "UDBA".into() },
    };
    grantwarden_core::ticket_flow::approve_ticket(&s.store(), t.id(), &dba, Utc::now()).await.unwrap();
    let n = queued(&s.invoke(&f, s.stream().await).await);
    assert_eq!(n, 3, "the approval's card, the activation's card and the requester's news (and nothing old again)");
    assert_eq!(failures(&s.invoke(&f, s.queue(n).await).await), 0);
    let card = &s.slack.messages("C0DBACCESS")[0];
    assert!(card["blocks"].to_string().contains("Approved by dba-lead@example.com"), "{card}");
    assert_eq!(s.slack.messages("C0DBACCESS").len(), 1, "updated, never posted twice");
    let told = s.slack.calls("chat.postMessage").into_iter().find(|c| c["channel"] == "UALICE").expect("alice told");
    assert!(told["text"].as_str().unwrap().starts_with("Approved:"), "{told}");
}

#[tokio::test]
async fn slack_down_leaves_the_notices_queued_and_a_refusal_is_dead_lettered_with_its_reason() {
    let s = stack("notify-down").await;
    let f = s.function(Utc::now());
    s.request("r1").await;
    assert_eq!(queued(&s.invoke(&f, s.stream().await).await), 2);

    s.slack.set_down(true);
    let batch = s.queue(2).await;
    let Invocation::Queue(event) = &batch else { unreachable!() };
    let receipts: Vec<String> = event.records.iter().filter_map(|r| r.receipt_handle.clone()).collect();
    assert_eq!(receipts.len(), 2);
    let down = s.invoke(&f, batch).await;
    assert_eq!(failures(&down), 2, "both delivered again later");
    assert!(s.slack.messages("C0DBACCESS").is_empty());

    s.slack.set_down(false);
    assert!(s.queue(2).await.is_empty_queue(), "hidden for their retry delay");
    s.show_again(&receipts).await;
    let later = s.function(Utc::now() + chrono::Duration::minutes(1));
    let back = s.invoke(&later, s.queue(2).await).await;
    assert_eq!(failures(&back), 0);
    assert_eq!(s.slack.messages("C0DBACCESS").len(), 1, "the card, once");

    // a security notice to a channel Slack does not know: kept with Slack's reason, not retried
    let broken = POLICY.replace("security_channel: C0SECURITY", "security_channel: C0GONE");
    let key = format!("{}registry.yaml", s.settings.policy_prefix);
    s.clients
        .s3
        .put_object()
        .bucket(&s.settings.bucket)
        .key(key)
        .body(broken.into_bytes().into())
        .send()
        .await
        .unwrap();
    let alert = grantwarden_core::notify::Keyed {
        key: "test:alert".into(),
        notice: grantwarden_core::notify::Notice::Security {
            target: DEMO.into(),
            title: "Drift alert".into(),
            text: "2 unauthorized".into(),
        },
    };
    grantwarden_aws::notices::NoticeSqs::new(
        &s.clients.sqs,
        s.settings.notice_queue_url.as_deref().unwrap(),
        s.settings.notice_dlq_url.as_deref().unwrap(),
    )
    .send(&alert)
    .await
    .unwrap();
    let dead = s.invoke(&f, s.queue(1).await).await;
    assert_eq!(failures(&dead), 0, "dead-lettered, so deleted from the queue");
    let kept = moto::drain(&s.clients.sqs, s.settings.notice_dlq_url.as_deref().unwrap(), 1).await;
    assert_eq!(kept.records.len(), 1);
    let reason = kept.records[0].message_attributes.get("reason").and_then(|a| a.string_value.clone()).unwrap();
    assert_eq!(reason, "chat.postMessage: channel_not_found");
}
