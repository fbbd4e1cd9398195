//! The audit archive: every journal event as its own S3 object under Object
//! Lock, `audit/<chain>/<seq, 20 digits>.json`, the event's JSON byte for byte.
//!
//! Written once: an event already archived (same key, same hash in its
//! metadata) is left alone, so a redelivered stream record changes nothing
//! and no retention is ever rewritten (real S3 refuses to shorten a
//! COMPLIANCE retention; the emulator does not, so the code must never try).
//! A different event under an archived key is refused, not overwritten.
//! The bucket must have Object Lock enabled: [`Archive::check_locked`] is
//! called before the first event, so an archive nobody can trust is never
//! started.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ObjectLockEnabled, ObjectLockMode};
use chrono::{DateTime, TimeDelta, Utc};
use grantwarden_core::audit::AuditEvent;

use crate::objects::percent_segment;
use crate::{AwsError, Clients};

/// Key prefix of the archive.
pub const PREFIX: &str = "audit/";

/// Metadata key holding the archived event's hash.
const HASH_METADATA: &str = "event-hash";

/// Object Lock applied to each archived event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// COMPLIANCE (nobody can shorten or delete) or GOVERNANCE.
    pub compliance: bool,
    /// Days from archiving until the lock ends.
    pub days: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self { compliance: true, days: 2555 }
    }
}

/// Why an event was not archived.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// The bucket cannot lock objects.
    #[error(
        "bucket {bucket} has no Object Lock: its archive could be deleted or rewritten; \
         create the audit bucket with Object Lock enabled (infra/template.yaml does)"
    )]
    NotLocked {
        /// The bucket.
        bucket: String,
    },
    /// Another event is archived under this event's key.
    #[error("s3://{bucket}/{key} already holds event hash {archived}, not {event}: refused to write over it")]
    Conflict {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// Hash of what is archived.
        archived: String,
        /// Hash of the event offered.
        event: String,
    },
    /// S3 failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// What archiving one event did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Archived {
    /// Written and locked until `retain_until`.
    Written {
        /// The key.
        key: String,
        /// End of the lock.
        retain_until: DateTime<Utc>,
    },
    /// The same event was archived before.
    AlreadyArchived {
        /// The key.
        key: String,
    },
}

/// The key prefix of a chain's archive (chains are named after targets, which
/// may hold `/` and `:`: percent-encoded into one segment).
pub fn chain_prefix(chain: &str) -> String {
    format!("{PREFIX}{}/", percent_segment(chain))
}

/// The key of one archived event; zero-padded so key order is seq order.
pub fn event_key(chain: &str, seq: u64) -> String {
    format!("{}{seq:020}.json", chain_prefix(chain))
}

/// The audit bucket.
#[derive(Clone, Debug)]
pub struct Archive {
    client: aws_sdk_s3::Client,
    bucket: String,
    retention: Retention,
}

impl Archive {
    /// The archive in `bucket`, locking each event with `retention`.
    pub fn new(clients: &Clients, bucket: &str, retention: Retention) -> Self {
        Self { client: clients.s3.clone(), bucket: bucket.to_owned(), retention }
    }

    /// Refuses a bucket without Object Lock.
    pub async fn check_locked(&self) -> Result<(), ArchiveError> {
        let got = self.client.get_object_lock_configuration().bucket(&self.bucket).send().await;
        let enabled = match got {
            Ok(out) => {
                out.object_lock_configuration.and_then(|c| c.object_lock_enabled) == Some(ObjectLockEnabled::Enabled)
            }
            // S3 answers a bucket without any lock configuration with this error
            Err(e)
                if e.as_service_error().and_then(|s| s.meta().code())
                    == Some("ObjectLockConfigurationNotFoundError") =>
            {
                false
            }
            Err(e) => return Err(AwsError::sdk(format!("GetObjectLockConfiguration {}", self.bucket), e).into()),
        };
        if enabled { Ok(()) } else { Err(ArchiveError::NotLocked { bucket: self.bucket.clone() }) }
    }

    /// Archives one event: `json` is the event exactly as the journal holds it.
    pub async fn put(&self, event: &AuditEvent, json: &str, now: DateTime<Utc>) -> Result<Archived, ArchiveError> {
        let key = event_key(&event.chain, event.seq);
        if let Some(archived) = self.archived_hash(&key).await? {
            if archived == event.hash {
                return Ok(Archived::AlreadyArchived { key });
            }
            return Err(ArchiveError::Conflict {
                bucket: self.bucket.clone(),
                key,
                archived,
                event: event.hash.clone(),
            });
        }
        // whole seconds: what S3 keeps
        let until = now + TimeDelta::days(i64::from(self.retention.days));
        let retain_until = DateTime::from_timestamp(until.timestamp(), 0).unwrap_or(until);
        let mode = if self.retention.compliance { ObjectLockMode::Compliance } else { ObjectLockMode::Governance };
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .content_type("application/json")
            .metadata(HASH_METADATA, &event.hash)
            .object_lock_mode(mode)
            .object_lock_retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(retain_until.timestamp()))
            .body(ByteStream::from(json.as_bytes().to_vec()))
            .send()
            .await
            .map_err(|e| AwsError::sdk(format!("PutObject s3://{}/{key}", self.bucket), e))?;
        Ok(Archived::Written { key, retain_until })
    }

    /// The hash recorded on an archived event; `None` when the key is free.
    async fn archived_hash(&self, key: &str) -> Result<Option<String>, AwsError> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => Ok(Some(out.metadata.and_then(|mut m| m.remove(HASH_METADATA)).unwrap_or_default())),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(AwsError::sdk(format!("HeadObject s3://{}/{key}", self.bucket), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_in_seq_order_and_keep_the_chain_one_segment() {
        assert_eq!(event_key("orders-prod", 7), "audit/orders-prod/00000000000000000007.json");
        assert_eq!(chain_prefix("db.internal:5432/orders"), "audit/db.internal%3A5432%2Forders/");
        assert!(event_key("c", 9) < event_key("c", 10));
    }
}
