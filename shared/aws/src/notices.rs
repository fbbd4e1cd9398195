//! Chat notices on AWS: the notice queue (SQS) and its dead-letter queue,
//! and the working records of `grantwarden_core::notify` in the replay table
//! (records that expire): each notice key queued once, and the cards posted
//! per ticket, to update them later.

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use grantwarden_core::error::StoreError;
use grantwarden_core::notify::{Keyed, Posted};
use grantwarden_core::store::{ReplayGuard, ReplayKey};

use crate::item::{n, s};
use crate::{AwsError, DynamoStore};

/// How long the record that a notice was queued is kept (a redelivered
/// journal record within it queues nothing).
pub const QUEUED_FOR: chrono::TimeDelta = chrono::TimeDelta::days(30);

/// How long the cards posted for a ticket are remembered.
pub const POSTED_FOR: chrono::TimeDelta = chrono::TimeDelta::days(90);

/// The notice queue and its dead-letter queue.
#[derive(Clone, Debug)]
pub struct NoticeSqs {
    client: aws_sdk_sqs::Client,
    url: String,
    dlq_url: String,
}

impl NoticeSqs {
    /// The queue at `url`, dead-lettering to `dlq_url`.
    pub fn new(client: &aws_sdk_sqs::Client, url: &str, dlq_url: &str) -> Self {
        Self { client: client.clone(), url: url.to_owned(), dlq_url: dlq_url.to_owned() }
    }

    /// Sends one notice.
    pub async fn send(&self, notice: &Keyed) -> Result<(), AwsError> {
        let body = serde_json::to_string(notice).expect("a notice always serializes");
        crate::queue::send_one(&self.client, &self.url, body).await
    }

    /// Hides a received message for `seconds` (at most 12 hours, SQS's limit):
    /// its next delivery is its retry.
    pub async fn later(&self, receipt: &str, seconds: i64) -> Result<(), AwsError> {
        let seconds = i32::try_from(seconds.clamp(0, 43_200)).unwrap_or(43_200);
        self.client
            .change_message_visibility()
            .queue_url(&self.url)
            .receipt_handle(receipt)
            .visibility_timeout(seconds)
            .send()
            .await
            .map_err(|e| AwsError::sdk(format!("ChangeMessageVisibility {}", self.url), e))?;
        Ok(())
    }

    /// Keeps a notice that will not be delivered on the dead-letter queue, with its reason.
    pub async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), AwsError> {
        crate::queue::dead_letter_to(&self.client, &self.dlq_url, body, reason).await
    }
}

fn posted_key(ticket: &str) -> String {
    format!("chat-posted:{ticket}")
}

impl DynamoStore {
    /// Whether notice `key` is queued for the first time at `now` (then recorded
    /// for [`QUEUED_FOR`]): of two deliveries of one journal event, one queues it.
    pub async fn first_queued(&self, key: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        self.first_use(&ReplayKey::new("notice", key.as_bytes()), now, now + QUEUED_FOR).await
    }

    /// Forgets that notice `key` was queued (its send failed: the retry must queue it).
    pub async fn unqueued(&self, key: &str) -> Result<(), StoreError> {
        self.forget(&ReplayKey::new("notice", key.as_bytes())).await
    }

    /// The cards posted for `ticket`.
    pub async fn chat_posts(&self, ticket: &str) -> Result<Vec<Posted>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.replay_table)
            .key(crate::replay::KEY, s(posted_key(ticket)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::sdk(format!("GetItem {} {}", self.replay_table, posted_key(ticket)), e))?;
        let Some(item) = out.item else { return Ok(Vec::new()) };
        let mut posted = Vec::new();
        if let Some(AttributeValue::L(list)) = item.get("posted") {
            for entry in list {
                let AttributeValue::S(text) = entry else { continue };
                let mut parts = text.split(' ');
                let (Some(channel), Some(ts)) = (parts.next(), parts.next()) else { continue };
                let p = Posted { channel: channel.to_owned(), ts: ts.to_owned(), to: parts.next().map(str::to_owned) };
                if !posted.contains(&p) {
                    posted.push(p);
                }
            }
        }
        Ok(posted)
    }

    /// Remembers a card posted for `ticket` (for [`POSTED_FOR`] after the last one).
    pub async fn record_chat_post(&self, ticket: &str, posted: &Posted, now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut text = format!("{} {}", posted.channel, posted.ts);
        if let Some(to) = &posted.to {
            text.push_str(&format!(" {to}"));
        }
        let entry = AttributeValue::L(vec![s(text)]);
        self.client
            .update_item()
            .table_name(&self.replay_table)
            .key(crate::replay::KEY, s(posted_key(ticket)))
            .update_expression("SET posted = list_append(if_not_exists(posted, :empty), :one), #expire_at = :exp")
            .expression_attribute_names("#expire_at", crate::replay::TTL_ATTRIBUTE)
            .expression_attribute_values(":empty", AttributeValue::L(Vec::new()))
            .expression_attribute_values(":one", entry)
            .expression_attribute_values(":exp", n((now + POSTED_FOR).timestamp()))
            .send()
            .await
            .map_err(|e| AwsError::sdk(format!("UpdateItem {} {}", self.replay_table, posted_key(ticket)), e))?;
        Ok(())
    }
}
