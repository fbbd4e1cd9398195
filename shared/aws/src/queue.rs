//! Chunk messages on SQS, and the dead-letter queue for chunks that failed for good;
//! remediation requests on the remediation queue.

use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
use grantwarden_core::pipeline::ChunkTask;
use grantwarden_core::remediate::RemediationRequest;
use grantwarden_core::remediation_flow::RemediationQueue;

use crate::AwsError;

/// SQS takes at most ten messages per batch call.
const SQS_BATCH: usize = 10;

/// The chunk queue and its dead-letter queue.
#[derive(Clone, Debug)]
pub struct ChunkQueue {
    client: aws_sdk_sqs::Client,
    url: String,
    dlq_url: Option<String>,
}

impl ChunkQueue {
    /// The queue at `url`, dead-lettering to `dlq_url`.
    pub fn new(client: &aws_sdk_sqs::Client, url: &str, dlq_url: Option<&str>) -> Self {
        Self { client: client.clone(), url: url.to_owned(), dlq_url: dlq_url.map(str::to_owned) }
    }

    /// Sends one message per task, ten per call; fails if any entry is refused.
    pub async fn send(&self, tasks: &[ChunkTask]) -> Result<(), AwsError> {
        for (n, group) in tasks.chunks(SQS_BATCH).enumerate() {
            let mut entries = Vec::with_capacity(group.len());
            for (i, task) in group.iter().enumerate() {
                let body = serde_json::to_string(task).expect("a chunk task always serializes");
                entries.push(
                    SendMessageBatchRequestEntry::builder()
                        .id(format!("c{i}"))
                        .message_body(body)
                        .build()
                        .map_err(|e| AwsError::Decode { what: task.batch_id.clone(), reason: e.to_string() })?,
                );
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| AwsError::sdk(format!("SendMessageBatch {} (group {n})", self.url), e))?;
            if let Some(failed) = out.failed.first() {
                return Err(AwsError::Service {
                    op: format!("SendMessageBatch {}", self.url),
                    message: format!(
                        "{} of {} entries refused, e.g. {}: {}",
                        out.failed.len(),
                        group.len(),
                        failed.code,
                        failed.message.clone().unwrap_or_default()
                    ),
                    retryable: !failed.sender_fault,
                });
            }
        }
        Ok(())
    }

    /// Parks a message that cannot succeed on the dead-letter queue, with the reason as an attribute.
    pub async fn dead_letter(&self, body: &str, reason: &str) -> Result<(), AwsError> {
        let Some(dlq) = &self.dlq_url else {
            return Err(AwsError::Missing("the chunk dead-letter queue (GRANTWARDEN_CHUNK_DLQ_URL)".into()));
        };
        dead_letter_to(&self.client, dlq, body, reason).await
    }
}

/// Sends `body` to the dead-letter queue at `dlq` with `reason` as its
/// `reason` attribute (at most 1024 characters).
pub async fn dead_letter_to(client: &aws_sdk_sqs::Client, dlq: &str, body: &str, reason: &str) -> Result<(), AwsError> {
    let reason_attr = MessageAttributeValue::builder()
        .data_type("String")
        .string_value(reason.chars().take(1024).collect::<String>())
        .build()
        .map_err(|e| AwsError::Decode { what: "dead-letter reason".into(), reason: e.to_string() })?;
    client
        .send_message()
        .queue_url(dlq)
        .message_body(body)
        .message_attributes("reason", reason_attr)
        .send()
        .await
        .map_err(|e| AwsError::sdk(format!("SendMessage {dlq}"), e))?;
    Ok(())
}

/// The remediation queue: one message per request, read by the revoke function.
#[derive(Clone, Debug)]
pub struct SqsRemediationQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsRemediationQueue {
    /// The queue at `url`.
    pub fn new(client: &aws_sdk_sqs::Client, url: &str) -> Self {
        Self { client: client.clone(), url: url.to_owned() }
    }
}

impl RemediationQueue for SqsRemediationQueue {
    type Error = AwsError;

    async fn send(&self, request: &RemediationRequest) -> Result<(), AwsError> {
        let body = serde_json::to_string(request).expect("a remediation request always serializes");
        send_one(&self.client, &self.url, body).await
    }
}

/// Sends one message to the queue at `url` (a request, a dead letter).
pub async fn send_one(client: &aws_sdk_sqs::Client, url: &str, body: String) -> Result<(), AwsError> {
    client
        .send_message()
        .queue_url(url)
        .message_body(body)
        .send()
        .await
        .map_err(|e| AwsError::sdk(format!("SendMessage {url}"), e))?;
    Ok(())
}
