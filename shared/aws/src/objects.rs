//! The S3 bucket: scan manifests, snapshot batches, reports and configuration.
//!
//! ```text
//! snapshots/<target>/<scan>/manifest.json        the plan of a scan (fan-out)
//! snapshots/<target>/<scan>/batches/<batch>.json one extracted chunk (extract)
//! reports/<target>/<scan>.json                   the plan report (docs/CONTRACTS.md#report), by diff
//! reports/<target>/latest.json                   the newest report of a target
//! config/baselines/<target>.yaml, config/policy/*.yaml, config/scoring.yaml
//! queries/...                                    query events, rejections, batch markers (module queries)
//! ```
//! Target ids may hold `/` and `:` (`host:5432/db`); in keys they are
//! percent-encoded so each target stays one path segment. Writes use
//! deterministic keys, so a redelivered message overwrites its own object.
//!
//! Baselines and the policy registry are kept parsed with the ETags they were
//! read at, by every clone of one [`Objects`]: a warm function reads them
//! again only when they changed (a baseline by a conditional GET answered 304
//! Not Modified, the registry by a listing whose keys and ETags are the same),
//! so an edit takes effect at the next read and an unchanged 8 MB baseline is
//! not parsed again for every scan (the two most recently read baselines are kept).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::primitives::ByteStream;
use grantwarden_core::baseline::Baseline;
use grantwarden_core::mysql_baseline::Baseline as MysqlBaseline;
use grantwarden_core::pipeline::{Batch, ScanManifest};
use grantwarden_core::policy::PolicyRegistry;
use grantwarden_core::report::Report;
use grantwarden_core::scoring::ScoringConfig;
use grantwarden_core::snapshot::TargetId;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{AwsError, Clients, Settings};

/// The bucket.
#[derive(Clone, Debug)]
pub struct Objects {
    client: aws_sdk_s3::Client,
    bucket: String,
    baseline_key: String,
    policy_prefix: String,
    scoring_key: String,
    parsed: Parsed,
}

/// Baselines kept parsed: the most recently read. A diff container serves
/// many targets, and the baseline of a large catalog is a few hundred MB
/// parsed: a few keep an hourly scan of the same target from parsing it
/// again, more would only grow the container.
const BASELINES_KEPT: usize = 2;

/// A target's baseline, of the engine its target is.
#[derive(Clone, Debug)]
pub enum TargetBaseline {
    /// A PostgreSQL target's.
    Postgres(Arc<Baseline>),
    /// A MySQL or MariaDB server's (`engine: mariadb` or `engine: mysql`).
    Mysql(Arc<MysqlBaseline>),
}

/// A baseline kept: its object's ETag, the baseline, and when it was last read (a count).
type KeptBaseline = (String, TargetBaseline, u64);

/// The count a baseline read now is marked with: after every kept one's.
fn next_use(kept: &HashMap<String, KeptBaseline>) -> u64 {
    kept.values().map(|(_, _, n)| *n).max().unwrap_or(0) + 1
}

/// The registry kept: the keys and ETags of the files it was read from, and the registry.
type KeptRegistry = (Vec<(String, String)>, PolicyRegistry);

/// Configuration read and parsed, with the ETags it was read at (shared by clones).
#[derive(Clone, Debug, Default)]
struct Parsed {
    /// Baselines by key.
    baselines: Arc<Mutex<HashMap<String, KeptBaseline>>>,
    /// The registry.
    registry: Arc<Mutex<Option<KeptRegistry>>>,
}

/// An object read only if it changed.
enum Fetched {
    /// Not there.
    Missing,
    /// The ETag given still matches.
    NotModified,
    /// Its bytes and ETag.
    Body(Vec<u8>, String),
}

/// A target id as one key segment.
pub fn key_segment(target: &TargetId) -> String {
    percent_segment(target.as_str())
}

/// `text` as one key segment: everything but `[A-Za-z0-9._-]` percent-encoded.
pub(crate) fn percent_segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Objects {
    /// The bucket and configuration keys named in `settings`.
    pub fn new(clients: &Clients, settings: &Settings) -> Self {
        Self {
            client: clients.s3.clone(),
            bucket: settings.bucket.clone(),
            baseline_key: settings.baseline_key.clone(),
            policy_prefix: settings.policy_prefix.clone(),
            scoring_key: settings.scoring_key.clone(),
            parsed: Parsed::default(),
        }
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn scan_prefix(target: &TargetId, scan_id: &str) -> String {
        format!("snapshots/{}/{scan_id}/", key_segment(target))
    }

    /// Key of a scan's manifest.
    pub fn manifest_key(target: &TargetId, scan_id: &str) -> String {
        format!("{}manifest.json", Self::scan_prefix(target, scan_id))
    }

    /// Key of one batch.
    pub fn batch_key(target: &TargetId, scan_id: &str, batch_id: &str) -> String {
        format!("{}batches/{batch_id}.json", Self::scan_prefix(target, scan_id))
    }

    /// Key of a scan's report.
    pub fn report_key(target: &TargetId, scan_id: &str) -> String {
        format!("reports/{}/{scan_id}.json", key_segment(target))
    }

    /// Key of a target's latest report.
    pub fn latest_report_key(target: &TargetId) -> String {
        format!("reports/{}/latest.json", key_segment(target))
    }

    /// Key of a target's dashboard (rewritten after each scan).
    pub fn dashboard_key(target: &TargetId) -> String {
        format!("reports/{}/dashboard.html", key_segment(target))
    }

    /// Writes a target's dashboard page.
    pub async fn put_dashboard(&self, target: &TargetId, html: String) -> Result<String, AwsError> {
        let key = Self::dashboard_key(target);
        self.put(&key, html.into_bytes(), "text/html; charset=utf-8").await?;
        Ok(key)
    }

    /// Raw bytes of an object; `None` when there is no such key.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, AwsError> {
        Ok(match self.get_if_changed(key, None).await? {
            Fetched::Body(bytes, _) => Some(bytes),
            // no ETag named: never Not Modified
            Fetched::Missing | Fetched::NotModified => None,
        })
    }

    /// An object's bytes and ETag, unless its ETag is still `known` (or there is no such key).
    async fn get_if_changed(&self, key: &str, known: Option<&str>) -> Result<Fetched, AwsError> {
        let op = || format!("GetObject s3://{}/{key}", self.bucket);
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_if_none_match(known.map(str::to_owned))
            .send()
            .await
        {
            Ok(out) => {
                let etag = out.e_tag.clone().unwrap_or_default();
                let bytes = out.body.collect().await.map_err(|e| AwsError::Service {
                    op: op(),
                    message: e.to_string(),
                    retryable: true,
                })?;
                Ok(Fetched::Body(bytes.into_bytes().to_vec(), etag))
            }
            Err(e) if known.is_some() && e.raw_response().is_some_and(|r| r.status().as_u16() == 304) => {
                Ok(Fetched::NotModified)
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(Fetched::Missing),
            Err(e) => Err(AwsError::sdk(op(), e)),
        }
    }

    /// Every key under a prefix with its ETag, in key order.
    async fn list_tagged(&self, prefix: &str) -> Result<Vec<(String, String)>, AwsError> {
        let mut keys = Vec::new();
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| AwsError::sdk(format!("ListObjectsV2 s3://{}/{prefix}", self.bucket), e))?;
            keys.extend(
                page.contents
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|o| Some((o.key?, o.e_tag.unwrap_or_default()))),
            );
        }
        keys.sort();
        Ok(keys)
    }

    /// Whether an object exists (a HEAD request).
    pub async fn exists(&self, key: &str) -> Result<bool, AwsError> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(AwsError::sdk(format!("HeadObject s3://{}/{key}", self.bucket), e)),
        }
    }

    /// Writes an object.
    pub async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), AwsError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| AwsError::sdk(format!("PutObject s3://{}/{key}", self.bucket), e))?;
        Ok(())
    }

    /// Writes a value as JSON.
    pub async fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<(), AwsError> {
        let body =
            serde_json::to_vec(value).map_err(|e| AwsError::Decode { what: key.to_owned(), reason: e.to_string() })?;
        self.put(key, body, "application/json").await
    }

    /// Reads a JSON object; `None` when there is no such key.
    pub async fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, AwsError> {
        let Some(bytes) = self.get(key).await? else { return Ok(None) };
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(&mut de).map(Some).map_err(|e| AwsError::Decode {
            what: format!("s3://{}/{key}", self.bucket),
            reason: format!("{}: {}", e.path(), e.inner()),
        })
    }

    /// Every key under a prefix, in key order.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, AwsError> {
        Ok(self.list_tagged(prefix).await?.into_iter().map(|(key, _)| key).collect())
    }

    /// Stores a scan's manifest.
    pub async fn put_manifest(&self, manifest: &ScanManifest) -> Result<(), AwsError> {
        self.put_json(&Self::manifest_key(&manifest.target, &manifest.scan_id), manifest).await
    }

    /// A scan's manifest.
    pub async fn manifest(&self, target: &TargetId, scan_id: &str) -> Result<ScanManifest, AwsError> {
        let key = Self::manifest_key(target, scan_id);
        self.get_json(&key).await?.ok_or_else(|| AwsError::Missing(format!("s3://{}/{key}", self.bucket)))
    }

    /// Stores one batch.
    pub async fn put_batch(&self, batch: &Batch) -> Result<(), AwsError> {
        self.put_json(&Self::batch_key(&batch.task.target, &batch.task.scan_id, &batch.task.batch_id), batch).await
    }

    /// Every batch of a scan, [`BATCH_READS`] read at once, each decoded as
    /// it arrives (its bytes then dropped): memory holds the decoded batches
    /// and at most that many objects in flight.
    pub async fn batches(&self, target: &TargetId, scan_id: &str) -> Result<Vec<Batch>, AwsError> {
        use futures::{StreamExt, TryStreamExt};
        let prefix = format!("{}batches/", Self::scan_prefix(target, scan_id));
        let keys = self.list(&prefix).await?;
        futures::stream::iter(keys)
            .map(|key| async move { self.get_json::<Batch>(&key).await })
            .buffer_unordered(BATCH_READS)
            .try_filter_map(|batch| async move { Ok(batch) })
            .try_collect()
            .await
    }

    /// Stores a report under its scan and as the target's latest.
    pub async fn put_report(&self, report: &Report) -> Result<String, AwsError> {
        // the scan's own key last: its presence says the report is complete
        let key = Self::report_key(&report.target, &report.scan_id);
        self.put_json(&Self::latest_report_key(&report.target), report).await?;
        self.put_json(&key, report).await?;
        Ok(key)
    }

    fn text(&self, key: &str, bytes: Vec<u8>) -> Result<String, AwsError> {
        String::from_utf8(bytes).map_err(|_| AwsError::Decode {
            what: format!("s3://{}/{key}", self.bucket),
            reason: "not UTF-8 text".into(),
        })
    }

    /// The baseline of a target of either engine (a MySQL or MariaDB server's when `mysql`).
    pub async fn target_baseline(&self, target: &TargetId, mysql: bool) -> Result<TargetBaseline, AwsError> {
        Ok(if mysql {
            TargetBaseline::Mysql(self.mysql_baseline(target).await?)
        } else {
            TargetBaseline::Postgres(self.baseline(target).await?)
        })
    }

    /// The baseline of a PostgreSQL target: parsed again only when its object changed.
    pub async fn baseline(&self, target: &TargetId) -> Result<Arc<Baseline>, AwsError> {
        let kept = |b: &TargetBaseline| match b {
            TargetBaseline::Postgres(b) => Some(Arc::clone(b)),
            TargetBaseline::Mysql(_) => None,
        };
        self.kept_baseline(target, false, TargetBaseline::Postgres, kept, Baseline::from_yaml).await
    }

    /// The baseline of a MySQL or MariaDB target, kept as PostgreSQL's are.
    pub async fn mysql_baseline(&self, target: &TargetId) -> Result<Arc<MysqlBaseline>, AwsError> {
        let kept = |b: &TargetBaseline| match b {
            TargetBaseline::Mysql(b) => Some(Arc::clone(b)),
            TargetBaseline::Postgres(_) => None,
        };
        self.kept_baseline(target, true, TargetBaseline::Mysql, kept, MysqlBaseline::from_yaml).await
    }

    /// The baseline of a target, parsed by `parse` in the format of its
    /// engine (a MySQL or MariaDB server's when `mysql`); parsed again only
    /// when its object changed. A file for the other engine is an error that
    /// says so. `wrap` and `kept` put it in the cache and take it out.
    async fn kept_baseline<T>(
        &self,
        target: &TargetId,
        mysql: bool,
        wrap: fn(Arc<T>) -> TargetBaseline,
        kept: impl Fn(&TargetBaseline) -> Option<Arc<T>>,
        parse: fn(&str, &str) -> Result<T, grantwarden_core::yaml::FileError>,
    ) -> Result<Arc<T>, AwsError> {
        let key = self.baseline_key.replace("{target}", &key_segment(target));
        let name = format!("s3://{}/{key}", self.bucket);
        let known = {
            let mut cache = self.parsed.baselines.lock().expect("never poisoned");
            let now = next_use(&cache);
            cache.get_mut(&key).and_then(|(etag, baseline, n)| {
                let baseline = kept(baseline)?;
                *n = now;
                Some((etag.clone(), baseline))
            })
        };
        let fetched = self.get_if_changed(&key, known.as_ref().map(|(etag, _)| etag.as_str())).await?;
        let (bytes, etag) = match (fetched, known) {
            (Fetched::Body(bytes, etag), _) => (bytes, etag),
            (Fetched::NotModified, Some((_, baseline))) => return Ok(baseline),
            // Not Modified comes only to a request that named an ETag
            (Fetched::Missing | Fetched::NotModified, _) => {
                self.parsed.baselines.lock().expect("never poisoned").remove(&key);
                return Err(AwsError::Missing(name));
            }
        };
        let text = self.text(&key, bytes)?;
        let baseline = Arc::new(parse(&text, &name).map_err(|e| {
            let target = format!("target {target}");
            let reason = grantwarden_core::mysql_baseline::for_other_engine(&text, &name, &target, mysql)
                .unwrap_or_else(|| e.to_string());
            AwsError::Decode { what: name.clone(), reason }
        })?);
        if !etag.is_empty() {
            let mut cache = self.parsed.baselines.lock().expect("never poisoned");
            let now = next_use(&cache);
            cache.insert(key, (etag, wrap(Arc::clone(&baseline)), now));
            while cache.len() > BASELINES_KEPT {
                let Some(oldest) = cache.iter().min_by_key(|(_, (_, _, n))| *n).map(|(k, _)| k.clone()) else { break };
                cache.remove(&oldest);
            }
        }
        Ok(baseline)
    }

    /// The policy registry: every `.yaml`/`.yml` object under the policy prefix,
    /// read again only when the listing's keys or ETags changed.
    /// The caller decides what an unusable registry means (core fails secure).
    pub async fn policy_registry(&self) -> Result<PolicyRegistry, RegistryError> {
        let files: Vec<(String, String)> = self
            .list_tagged(&self.policy_prefix)
            .await?
            .into_iter()
            .filter(|(k, _)| k.ends_with(".yaml") || k.ends_with(".yml"))
            .collect();
        if let Some((read_from, registry)) = &*self.parsed.registry.lock().expect("never poisoned")
            && *read_from == files
            && files.iter().all(|(_, etag)| !etag.is_empty())
        {
            return Ok(registry.clone());
        }
        let mut texts = Vec::new();
        for (key, _) in &files {
            let bytes = self.get(key).await?.unwrap_or_default();
            let text = self.text(key, bytes)?;
            texts.push((format!("s3://{}/{key}", self.bucket), text));
        }
        if texts.is_empty() {
            return Err(RegistryError::Empty { location: format!("s3://{}/{}", self.bucket, self.policy_prefix) });
        }
        let registry = PolicyRegistry::load(&texts)?;
        *self.parsed.registry.lock().expect("never poisoned") = Some((files, registry.clone()));
        Ok(registry)
    }

    /// The scoring config; the standard one when the object does not exist.
    pub async fn scoring(&self) -> Result<ScoringConfig, AwsError> {
        let name = format!("s3://{}/{}", self.bucket, self.scoring_key);
        match self.get(&self.scoring_key).await? {
            None => Ok(ScoringConfig::standard()),
            Some(bytes) => {
                let text = self.text(&self.scoring_key, bytes)?;
                ScoringConfig::from_yaml(&text, &name)
                    .map_err(|e| AwsError::Decode { what: name, reason: e.to_string() })
            }
        }
    }

    /// The targets people may name at start-up: `settings.targets` and those
    /// of the list object `settings.targets_key`, when set.
    pub async fn named_targets(&self, settings: &crate::Settings) -> Result<Vec<TargetId>, AwsError> {
        let mut targets = settings.targets.clone();
        if let Some(list) = &settings.targets_key {
            targets.extend(self.targets(list).await?);
        }
        Ok(targets)
    }

    /// Target ids listed in an object (one per line, `#` comments, or a JSON array of strings).
    pub async fn targets(&self, key: &str) -> Result<Vec<TargetId>, AwsError> {
        let name = format!("s3://{}/{key}", self.bucket);
        let bytes = self.get(key).await?.ok_or_else(|| AwsError::Missing(name.clone()))?;
        let text = self.text(key, bytes)?;
        if text.trim_start().starts_with('[') {
            let ids: Vec<String> = serde_json::from_str(&text)
                .map_err(|e| AwsError::Decode { what: name.clone(), reason: e.to_string() })?;
            return Ok(crate::settings::parse_targets(&ids.join("\n")));
        }
        Ok(crate::settings::parse_targets(&text))
    }
}

/// Batches a diff reads from S3 at once: enough to hide the latency of each
/// GetObject (tens of milliseconds) behind the decoding of the others.
pub const BATCH_READS: usize = 8;

/// Why the policy registry under the prefix cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// Listing or reading an object failed.
    #[error(transparent)]
    Read(#[from] AwsError),
    /// No `.yaml` or `.yml` object under the prefix.
    #[error("no policy registry under {location}")]
    Empty {
        /// `s3://bucket/prefix`.
        location: String,
    },
    /// The files do not make a valid registry (the error names file and path).
    #[error(transparent)]
    Invalid(#[from] grantwarden_core::yaml::FileError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_with_slashes_stays_one_segment() {
        let t = TargetId::new("db.internal:5432/orders").unwrap();
        assert_eq!(key_segment(&t), "db.internal%3A5432%2Forders");
        assert_eq!(Objects::report_key(&t, "scan-1"), "reports/db.internal%3A5432%2Forders/scan-1.json");
    }
}
