//! The notify function: `grantwarden_core::notify` over the journal stream,
//! SQS and Slack.
//!
//! - **Journal stream**: each inserted event becomes its notices
//!   (`notices_of`), each queued once: a record of its key in the replay
//!   table first (a redelivered stream record queues nothing), then the
//!   message. A send that fails forgets the record and fails the batch, so the
//!   stream delivers it again: a notice is never lost, and the ticket step
//!   that caused it was recorded long before (nothing here blocks a request
//!   or an approval).
//! - **Notice queue**: the batch is delivered by the core's `deliver`, which
//!   settles each notice: delivered (deleted), retried later (the message is
//!   hidden for the backoff's delay and reported as a batch item failure), or
//!   dead (sent to the dead-letter queue with its reason as the `reason`
//!   attribute, then deleted). A message that is not a notice is dead at once.
//! - **Every minute**: the warnings of access about to end (`warn_expiring`),
//!   queued once per ticket and end.

use std::sync::{Arc, Mutex};

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};
use grantwarden_aws::notices::NoticeSqs;
use grantwarden_aws::{AwsError, Clients, Clock, DynamoStore, Objects, SecretCache, Settings};
use grantwarden_core::error::StoreError;
use grantwarden_core::notify::{self, Delivery, Keyed, NoticeQueue, Posted, Queued, Settled};
use grantwarden_core::policy::PolicyRegistry;
use grantwarden_core::store::TicketStore;
use grantwarden_slack::SlackClient;
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::{Deserialize, Serialize};

/// What invokes the function.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Invocation {
    /// Journal stream records.
    Stream(Event),
    /// Notices from the notice queue.
    Queue(SqsEvent),
    /// The schedule of the expiry warnings.
    Sweep(EventBridgeEvent),
}

/// What an invocation did.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Outcome {
    /// Notices queued (stream, schedule).
    Queued {
        /// How many.
        queued: usize,
    },
    /// The messages to deliver again.
    Delivered(SqsBatchResponse),
}

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The registry could not be read.
    #[error("the policy registry: {0}")]
    Registry(String),
    /// A stream record is not a journal event.
    #[error("stream record {event_id}: {source}")]
    Record {
        /// The record.
        event_id: String,
        /// Why.
        source: AwsError,
    },
    /// The store or the queue failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The queue failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
}

impl From<NotifyError> for Diagnostic {
    fn from(e: NotifyError) -> Self {
        let kind = match &e {
            NotifyError::Record { .. } => "Validation",
            _ => "Retryable",
        };
        Diagnostic { error_type: kind.into(), error_message: e.to_string() }
    }
}

/// The handler's state, built once per container.
pub struct Notify {
    store: DynamoStore,
    sqs: NoticeSqs,
    objects: Objects,
    secrets: SecretCache,
    token_secret_id: Option<String>,
    slack_api: String,
    portal_url: Option<String>,
    clock: Arc<dyn Clock>,
}

impl Notify {
    /// The function over the resources `settings` names.
    pub fn new(clients: &Clients, settings: &Settings, clock: Arc<dyn Clock>) -> Result<Self, AwsError> {
        let queue = Settings::require(&settings.notice_queue_url, "GRANTWARDEN_NOTICE_QUEUE_URL")
            .map_err(|e| AwsError::Missing(e.to_string()))?;
        let dlq = Settings::require(&settings.notice_dlq_url, "GRANTWARDEN_NOTICE_DLQ_URL")
            .map_err(|e| AwsError::Missing(e.to_string()))?;
        Ok(Notify {
            store: DynamoStore::new(clients, settings),
            sqs: NoticeSqs::new(&clients.sqs, queue, dlq),
            objects: Objects::new(clients, settings),
            secrets: SecretCache::new(clients, std::time::Duration::from_secs(300)),
            token_secret_id: settings.slack_bot_token_secret_id.clone(),
            slack_api: settings.slack_api_url.clone(),
            portal_url: settings.portal_url.clone().map(|u| u.trim_end_matches('/').to_owned()),
            clock,
        })
    }

    /// The store (for tests).
    pub fn store(&self) -> &DynamoStore {
        &self.store
    }

    async fn registry(&self) -> Result<PolicyRegistry, NotifyError> {
        self.objects.policy_registry().await.map_err(|e| NotifyError::Registry(e.to_string()))
    }

    /// Handles any trigger.
    pub async fn invoke(&self, event: LambdaEvent<Invocation>) -> Result<Outcome, NotifyError> {
        match event.payload {
            Invocation::Stream(records) => Ok(Outcome::Queued { queued: self.stream(records).await? }),
            Invocation::Queue(batch) => Ok(Outcome::Delivered(self.deliver(batch).await)),
            Invocation::Sweep(_) => Ok(Outcome::Queued { queued: self.sweep().await? }),
        }
    }

    /// Queues the notices of the journal events among `records` (none while
    /// no Slack token is configured: the function is idle).
    pub async fn stream(&self, records: Event) -> Result<usize, NotifyError> {
        if self.token_secret_id.is_none() {
            return Ok(0);
        }
        let registry = self.registry().await?;
        let Some(policy) = &registry.notify else { return Ok(0) };
        let queue = Received::new(self);
        let mut queued = 0;
        for record in records.records {
            if record.event_name != "INSERT" {
                continue;
            }
            let event_id = record.event_id.clone();
            let stored = grantwarden_aws::journal::stored_event(record.change.new_image)
                .map_err(|source| NotifyError::Record { event_id, source })?;
            let Some((event, _)) = stored else { continue };
            let notices = notify::notices_of(&event, policy);
            queued += queue.enqueue(&notices, self.clock.now()).await?;
        }
        tracing::info!(queued, "journal events into notices");
        Ok(queued)
    }

    /// Queues the warnings of access about to end.
    pub async fn sweep(&self) -> Result<usize, NotifyError> {
        if self.token_secret_id.is_none() {
            return Ok(0);
        }
        let registry = self.registry().await?;
        if registry.notify.is_none() {
            return Ok(0);
        }
        let tickets = self.store.tickets(None).await?;
        let queued = notify::warn_expiring(&Received::new(self), &tickets, &registry, self.clock.now()).await?;
        if queued > 0 {
            tracing::info!(queued, "expiry warnings queued");
        }
        Ok(queued)
    }

    /// Delivers a batch of the notice queue; the messages to deliver again.
    pub async fn deliver(&self, batch: SqsEvent) -> SqsBatchResponse {
        let now = self.clock.now();
        let mut response = SqsBatchResponse::default();
        let mut received = Received::new(self);
        for message in batch.records {
            let id = message.message_id.clone().unwrap_or_default();
            let receipt = message.receipt_handle.clone().unwrap_or_default();
            let body = message.body.clone().unwrap_or_default();
            let receives: u32 =
                message.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()).unwrap_or(1);
            match serde_json::from_str::<Keyed>(&body) {
                Ok(k) => received.messages.push(Message {
                    id,
                    receipt,
                    body,
                    queued: Queued { key: k.key, notice: k.notice, attempts: receives.saturating_sub(1) },
                }),
                Err(e) => {
                    let reason = format!("not a notice: {e}");
                    if let Err(e) = self.sqs.dead_letter(&body, &reason).await {
                        tracing::error!(message = %id, error = %e, "could not dead-letter a message that is not a notice");
                        response.batch_item_failures.push(failure(&id));
                    }
                }
            }
        }
        let fail_all = |response: &mut SqsBatchResponse, received: &Received<'_>| {
            for m in &received.messages {
                response.batch_item_failures.push(failure(&m.id));
            }
        };
        let registry = match self.registry().await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "notices wait: the registry is unusable");
                fail_all(&mut response, &received);
                return response;
            }
        };
        let slack = match self.slack().await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "notices wait: no Slack token");
                fail_all(&mut response, &received);
                return response;
            }
        };
        let limit = received.messages.len();
        let done =
            notify::deliver(&received, &self.store, &slack, &registry, self.portal_url.as_deref(), now, limit).await;
        if let Err(e) = &done {
            tracing::error!(error = %e, "the store failed during delivery; what was not settled is delivered again");
        }
        let settled = received.settled.lock().expect("the outcomes").clone();
        for m in &received.messages {
            let outcome = settled.iter().find(|(k, _)| *k == m.queued.key).map(|(_, o)| o.clone());
            match outcome {
                Some(Settled::Delivered) => {}
                Some(Settled::Retry { at, .. }) => {
                    if let Err(e) = self.sqs.later(&m.receipt, (at - now).num_seconds()).await {
                        tracing::warn!(notice = %m.queued.key, error = %e, "the retry delay was not set; SQS's own applies");
                    }
                    response.batch_item_failures.push(failure(&m.id));
                }
                Some(Settled::Dead { reason }) => {
                    if let Err(e) = self.sqs.dead_letter(&m.body, &reason).await {
                        tracing::error!(notice = %m.queued.key, error = %e, "could not dead-letter; delivered again");
                        response.batch_item_failures.push(failure(&m.id));
                    }
                }
                None => response.batch_item_failures.push(failure(&m.id)),
            }
        }
        let counts = done.unwrap_or_default();
        let Delivery { delivered, retrying, dead } = counts;
        tracing::info!(delivered, retrying, dead, "notices");
        response
    }

    async fn slack(&self) -> Result<SlackClient, String> {
        let id = self.token_secret_id.as_deref().ok_or("GRANTWARDEN_SLACK_BOT_TOKEN_SECRET_ID is not set")?;
        let token = self.secrets.string(id).await.map_err(|e| e.to_string())?;
        Ok(SlackClient::new(&self.slack_api, token.trim()))
    }
}

fn failure(id: &str) -> BatchItemFailure {
    let mut f = BatchItemFailure::default();
    f.item_identifier = id.to_owned();
    f
}

/// One message of the batch.
struct Message {
    id: String,
    receipt: String,
    body: String,
    queued: Queued,
}

/// The notice queue as the core sees it in one invocation: `due` is the
/// received batch (none on the stream and the schedule), `settle` keeps each
/// outcome for the handler to act on, `enqueue` records each key first (the
/// replay table) then sends it, forgetting the record when the send fails so
/// a retry queues it. The cards posted are the replay table's. There is no
/// cursor: the journal stream is the notify function's way through the journal.
struct Received<'a> {
    notify: &'a Notify,
    messages: Vec<Message>,
    settled: Mutex<Vec<(String, Settled)>>,
}

impl<'a> Received<'a> {
    fn new(notify: &'a Notify) -> Self {
        Received { notify, messages: Vec::new(), settled: Mutex::new(Vec::new()) }
    }
}

impl NoticeQueue for Received<'_> {
    async fn enqueue(&self, notices: &[Keyed], now: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut new = 0;
        for n in notices {
            if !self.notify.store.first_queued(&n.key, now).await? {
                continue;
            }
            if let Err(e) = self.notify.sqs.send(n).await {
                self.notify.store.unqueued(&n.key).await?;
                return Err(e.into());
            }
            new += 1;
        }
        Ok(new)
    }

    async fn due(&self, _now: DateTime<Utc>, limit: usize) -> Result<Vec<Queued>, StoreError> {
        Ok(self.messages.iter().take(limit).map(|m| m.queued.clone()).collect())
    }

    async fn settle(&self, key: &str, outcome: &Settled, _now: DateTime<Utc>) -> Result<(), StoreError> {
        self.settled.lock().expect("the outcomes").push((key.to_owned(), outcome.clone()));
        Ok(())
    }

    async fn posted(&self, ticket: &str) -> Result<Vec<Posted>, StoreError> {
        self.notify.store.chat_posts(ticket).await
    }

    async fn record_posted(&self, ticket: &str, posted: &Posted) -> Result<(), StoreError> {
        self.notify.store.record_chat_post(ticket, posted, self.notify.clock.now()).await
    }

    async fn cursor(&self, _chain: &str) -> Result<Option<u64>, StoreError> {
        Ok(None)
    }

    async fn advance(&self, _chain: &str, _seq: u64) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_trigger_reads_as_its_own_invocation() {
        let stream: Invocation =
            serde_json::from_str(include_str!("../../../events/audit-journal-stream.json")).unwrap();
        assert!(matches!(stream, Invocation::Stream(_)), "{stream:?}");
        let queue: Invocation = serde_json::from_str(include_str!("../../../events/notify-notice-sqs.json")).unwrap();
        let Invocation::Queue(batch) = queue else { panic!("the notice queue") };
        let keyed: Keyed = serde_json::from_str(batch.records[0].body.as_deref().unwrap()).unwrap();
        assert_eq!(keyed.notice, notify::Notice::Card { ticket: "tkt-3f2a9c0d1e4b5a6f7c8d".into() });
        let sweep: Invocation = serde_json::from_str(include_str!("../../../events/revoke-sweep.json")).unwrap();
        assert!(matches!(sweep, Invocation::Sweep(_)), "{sweep:?}");
    }
}
