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
//!
//! Signed digests (`grantwarden_core::digest`) live beside the events as
//! `audit-digests/<chain>/<number, 20 digits>.json`, locked the same way.
//!
//! Reading a chain back ([`Archive::read_chain`]) lists object *versions*:
//! a delete without a version id does not remove a locked event, it puts a
//! delete marker over it, which a plain listing would hide (and a hidden
//! tail would look like a shorter, gap-free archive). Every marker and every
//! overwritten key is reported as an [`Anomaly`] at its seq. The hourly digest
//! reads the same way ([`AuditArchive`], from the last digested seq on): what
//! it signs is the first version of each key, the one the audit function wrote.

use std::collections::BTreeMap;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ObjectLockEnabled, ObjectLockMode};
use chrono::{DateTime, TimeDelta, Utc};
use futures::{StreamExt, TryStreamExt};
pub use grantwarden_core::audit::ArchivedChain;
use grantwarden_core::audit::{Anomaly, AuditArchive, AuditEvent};
use grantwarden_core::digest::{Digest, DigestStore};
use grantwarden_core::error::StoreError;

use crate::objects::percent_segment;
use crate::{AwsError, Clients};

/// Key prefix of the archive.
pub const PREFIX: &str = "audit/";

/// Key prefix of the signed digests.
pub const DIGEST_PREFIX: &str = "audit-digests/";

/// Objects fetched at once when a chain is read back.
const READ_CONCURRENCY: usize = 16;

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

/// The key prefix of a chain's digests.
pub fn digest_prefix(chain: &str) -> String {
    format!("{DIGEST_PREFIX}{}/", percent_segment(chain))
}

/// The key of one digest.
pub fn digest_key(chain: &str, number: u64) -> String {
    format!("{}{number:020}.json", digest_prefix(chain))
}

/// The seq (or digest number) a key under a chain prefix stands for.
pub fn key_number(key: &str, prefix: &str) -> Option<u64> {
    let name = key.strip_prefix(prefix)?.strip_suffix(".json")?;
    (name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit())).then(|| name.parse().ok()).flatten()
}

/// Decodes the object archived as `chain`'s event `seq`; `location` names it
/// in the anomaly when it is not that event. Shared by every archive reader
/// (the bucket, and a directory copy of it).
pub fn decode_archived(chain: &str, seq: u64, location: &str, body: &[u8]) -> Result<AuditEvent, Anomaly> {
    match serde_json::from_slice::<AuditEvent>(body) {
        Ok(e) if e.seq == seq && e.chain == chain => Ok(e),
        Ok(e) => Err(Anomaly { seq, reason: format!("{location} holds event {}, not {chain}:{seq}", e.id) }),
        Err(e) => Err(Anomaly { seq, reason: format!("{location} is not an audit event: {e}") }),
    }
}

/// The versions S3 keeps of one key.
#[derive(Default)]
struct KeyVersions {
    /// Object versions, newest first as listed.
    versions: Vec<String>,
    /// Whether the newest entry is a delete marker.
    deleted: bool,
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
        let retain_until = self.put_locked(&key, json.as_bytes().to_vec(), (HASH_METADATA, &event.hash), now).await?;
        Ok(Archived::Written { key, retain_until })
    }

    /// Every chain with archived events (names decoded from their key segment).
    pub async fn chains(&self) -> Result<Vec<String>, AwsError> {
        let mut pages =
            self.client.list_objects_v2().bucket(&self.bucket).prefix(PREFIX).delimiter("/").into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::sdk(format!("ListObjectsV2 s3://{}/{PREFIX}", self.bucket), e))?;
            for p in page.common_prefixes.unwrap_or_default() {
                let Some(segment) = p.prefix.as_deref().and_then(|p| p.strip_prefix(PREFIX)?.strip_suffix('/')) else {
                    continue;
                };
                let chain =
                    percent_encoding::percent_decode_str(segment).decode_utf8().map_err(|e| AwsError::Decode {
                        what: format!("s3://{}/{PREFIX}{segment}/", self.bucket),
                        reason: format!("not a chain name: {e}"),
                    })?;
                out.push(chain.into_owned());
            }
        }
        Ok(out)
    }

    /// Every version and delete marker under `prefix`, by key, of the keys after `start_after`.
    async fn versions(
        &self,
        prefix: &str,
        start_after: Option<String>,
    ) -> Result<BTreeMap<String, KeyVersions>, AwsError> {
        let mut keys: BTreeMap<String, KeyVersions> = BTreeMap::new();
        let (mut key_marker, mut version_marker) = (start_after, None);
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| AwsError::sdk(format!("ListObjectVersions s3://{}/{prefix}", self.bucket), e))?;
            for v in page.versions.unwrap_or_default() {
                let (Some(key), Some(id)) = (v.key, v.version_id) else { continue };
                keys.entry(key).or_default().versions.push(id);
            }
            for m in page.delete_markers.unwrap_or_default() {
                if let (Some(key), Some(true)) = (m.key, m.is_latest) {
                    keys.entry(key).or_default().deleted = true;
                }
            }
            if page.is_truncated != Some(true) {
                return Ok(keys);
            }
            key_marker = page.next_key_marker;
            version_marker = page.next_version_id_marker;
        }
    }

    /// An object's body: one version of it, or the current one.
    async fn get_body(&self, key: &str, version: Option<&str>) -> Result<Vec<u8>, AwsError> {
        let got = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_version_id(version.map(str::to_owned))
            .send()
            .await
            .map_err(|e| {
                let at = version.map(|v| format!("?versionId={v}")).unwrap_or_default();
                AwsError::sdk(format!("GetObject s3://{}/{key}{at}", self.bucket), e)
            })?;
        let body = got.body.collect().await.map_err(|e| AwsError::Decode {
            what: format!("s3://{}/{key}", self.bucket),
            reason: format!("reading the body: {e}"),
        })?;
        Ok(body.into_bytes().to_vec())
    }

    /// Reads a chain back, every object version included (see the module docs).
    pub async fn read_chain(&self, chain: &str) -> Result<ArchivedChain, AwsError> {
        self.read_chain_after(chain, 0).await
    }

    /// Reads a chain back from seq `after` + 1 on, as [`Archive::read_chain`] does.
    pub async fn read_chain_after(&self, chain: &str, after: u64) -> Result<ArchivedChain, AwsError> {
        let prefix = chain_prefix(chain);
        // keys sort in seq order: the listing starts after the last one not wanted
        let keys = self.versions(&prefix, (after > 0).then(|| event_key(chain, after))).await?;
        let mut out = ArchivedChain::default();
        let mut wanted = Vec::new();
        for (key, kv) in keys {
            let seq = key_number(&key, &prefix);
            if seq.is_some_and(|seq| seq <= after) {
                continue;
            }
            let Some(seq) = seq else {
                out.anomalies.push(Anomaly {
                    seq: 0,
                    reason: format!("s3://{}/{key} is not an archived event's key", self.bucket),
                });
                continue;
            };
            if kv.deleted {
                out.anomalies.push(Anomaly {
                    seq,
                    reason: format!(
                        "s3://{}/{key} is hidden by a delete marker (deleted without a version id)",
                        self.bucket
                    ),
                });
            }
            if kv.versions.len() > 1 {
                out.anomalies.push(Anomaly {
                    seq,
                    reason: format!("s3://{}/{key} was written {} times (overwritten)", self.bucket, kv.versions.len()),
                });
            }
            // the oldest version is the one written first: the archive's own record
            if let Some(version) = kv.versions.last() {
                wanted.push((seq, key, version.clone()));
            }
        }
        let bodies: Vec<(u64, String, Vec<u8>)> = futures::stream::iter(wanted)
            .map(|(seq, key, version)| async move {
                Ok::<_, AwsError>((seq, key.clone(), self.get_body(&key, Some(&version)).await?))
            })
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        for (seq, key, body) in bodies {
            match decode_archived(chain, seq, &format!("s3://{}/{key}", self.bucket), &body) {
                Ok(e) => out.events.push(e),
                Err(anomaly) => out.anomalies.push(anomaly),
            }
        }
        Ok(out)
    }

    async fn put_locked(
        &self,
        key: &str,
        body: Vec<u8>,
        metadata: (&str, &str),
        now: DateTime<Utc>,
    ) -> Result<DateTime<Utc>, AwsError> {
        // whole seconds: what S3 keeps
        let until = now + TimeDelta::days(i64::from(self.retention.days));
        let retain_until = DateTime::from_timestamp(until.timestamp(), 0).unwrap_or(until);
        let mode = if self.retention.compliance { ObjectLockMode::Compliance } else { ObjectLockMode::Governance };
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .metadata(metadata.0, metadata.1)
            .object_lock_mode(mode)
            .object_lock_retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(retain_until.timestamp()))
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| AwsError::sdk(format!("PutObject s3://{}/{key}", self.bucket), e))?;
        Ok(retain_until)
    }

    async fn digest_numbers(&self, chain: &str) -> Result<Vec<(u64, String)>, AwsError> {
        let prefix = digest_prefix(chain);
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(&prefix).into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::sdk(format!("ListObjectsV2 s3://{}/{prefix}", self.bucket), e))?;
            for o in page.contents.unwrap_or_default() {
                if let Some(key) = o.key
                    && let Some(n) = key_number(&key, &prefix)
                {
                    out.push((n, key));
                }
            }
        }
        out.sort();
        Ok(out)
    }

    async fn get_digest(&self, key: &str) -> Result<Digest, AwsError> {
        let body = self.get_body(key, None).await?;
        serde_json::from_slice(&body).map_err(|e| AwsError::Decode {
            what: format!("s3://{}/{key}", self.bucket),
            reason: format!("not a digest: {e}"),
        })
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

impl AuditArchive for Archive {
    async fn archived_after(&self, chain: &str, seq: u64) -> Result<ArchivedChain, StoreError> {
        Ok(self.read_chain_after(chain, seq).await?)
    }
}

impl DigestStore for Archive {
    /// Writes the digest under Object Lock, locked from its creation time;
    /// refused when its number is taken.
    async fn put_digest(&self, digest: &Digest) -> Result<(), StoreError> {
        let key = digest_key(&digest.chain, digest.number);
        if self.archived_hash(&key).await?.is_some() {
            return Err(StoreError::Corrupt {
                id: format!("s3://{}/{key}", self.bucket),
                reason: "a digest with this number exists; another digest run got there first".into(),
            });
        }
        let body = serde_json::to_vec_pretty(digest).expect("a digest always serializes");
        self.put_locked(&key, body, (HASH_METADATA, &digest.sha256()), digest.created_at).await?;
        Ok(())
    }

    async fn digests(&self, chain: &str) -> Result<Vec<Digest>, StoreError> {
        let keys = self.digest_numbers(chain).await?;
        Ok(futures::stream::iter(keys)
            .map(|(_, key)| async move { self.get_digest(&key).await })
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await?)
    }

    async fn last_digest(&self, chain: &str) -> Result<Option<Digest>, StoreError> {
        match self.digest_numbers(chain).await?.pop() {
            Some((_, key)) => Ok(Some(self.get_digest(&key).await?)),
            None => Ok(None),
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
