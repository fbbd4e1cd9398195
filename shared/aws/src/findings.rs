//! Findings in DynamoDB.
//!
//! Table key `target` + `key` (core's [`finding_key`]). Recording a scan
//! updates each finding in place while it stays open (keeping `first_seen`)
//! and writes it afresh when it is new or was closed; a complete scan then
//! closes the target's open findings it no longer reports. Updates run a few
//! at a time, in input order, so the ages come back in the findings' order.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::{StreamExt, TryStreamExt};
use grantwarden_core::error::StoreError;
use grantwarden_core::finding::{FindingAge, FindingKind};
use grantwarden_core::report::Finding;
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::{FindingStore, Recorded, finding_key};
use serde::{Deserialize, Serialize};

use crate::item::{self, s};
use crate::{AwsError, DynamoStore, is_condition_failure};

/// Findings written at once.
const CONCURRENCY: usize = 8;

/// A finding as stored.
#[derive(Serialize, Deserialize)]
struct FindingItem {
    target: String,
    key: String,
    open: bool,
    kind: FindingKind,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    last_scan: String,
    finding: Finding,
}

fn ts(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

impl DynamoStore {
    /// Records one finding of a scan: an update of the open item when `open`
    /// says there is one (a put when it turns out closed since), a put of a
    /// new item otherwise: one write per finding, not a failed update first.
    /// Returns when it was first seen.
    async fn record_one(
        &self,
        target: &TargetId,
        scan_id: &str,
        f: &Finding,
        at: DateTime<Utc>,
        open: bool,
    ) -> Result<FindingAge, StoreError> {
        let key = finding_key(f);
        let what = format!("finding {target} {key}");
        if !open {
            return self.put_fresh(target, scan_id, f, at, key, &what).await;
        }
        let updated = self
            .client
            .update_item()
            .table_name(&self.findings_table)
            .key("target", s(target.as_str()))
            .key("key", s(&key))
            .update_expression("SET finding = :f, last_seen = :now, last_scan = :scan")
            .condition_expression("#open = :true")
            .expression_attribute_names("#open", "open")
            .expression_attribute_values(":f", item::attr(&what, f)?)
            .expression_attribute_values(":now", s(ts(at)))
            .expression_attribute_values(":scan", s(scan_id))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match updated {
            Ok(out) => {
                let stored: FindingItem = item::from(&what, out.attributes.unwrap_or_default())?;
                Ok(FindingAge { first_seen: stored.first_seen, last_seen: at })
            }
            // closed since it was read: a new life starts now
            Err(e) if is_condition_failure(&e) => self.put_fresh(target, scan_id, f, at, key, &what).await,
            Err(e) => Err(AwsError::sdk(format!("UpdateItem {} {what}", self.findings_table), e).into()),
        }
    }

    /// A finding new to the target, or closed and back: a new life starts now.
    async fn put_fresh(
        &self,
        target: &TargetId,
        scan_id: &str,
        f: &Finding,
        at: DateTime<Utc>,
        key: String,
        what: &str,
    ) -> Result<FindingAge, StoreError> {
        let fresh = FindingItem {
            target: target.to_string(),
            key,
            open: true,
            kind: f.kind,
            first_seen: at,
            last_seen: at,
            last_scan: scan_id.to_owned(),
            finding: f.clone(),
        };
        self.client
            .put_item()
            .table_name(&self.findings_table)
            .set_item(Some(item::to(what, &fresh)?))
            .send()
            .await
            .map_err(|e| AwsError::sdk(format!("PutItem {} {what}", self.findings_table), e))?;
        Ok(FindingAge { first_seen: at, last_seen: at })
    }

    /// Open findings of a target.
    async fn open_findings(&self, target: &TargetId) -> Result<Vec<FindingItem>, StoreError> {
        let items = self
            .client
            .query()
            .table_name(&self.findings_table)
            .key_condition_expression("target = :t")
            .filter_expression("#open = :true")
            .expression_attribute_names("#open", "open")
            .expression_attribute_values(":t", s(target.as_str()))
            .expression_attribute_values(":true", AttributeValue::Bool(true))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| AwsError::sdk(format!("Query {} {target}", self.findings_table), e))?;
        Ok(items.into_iter().map(|it| item::from(&format!("finding of {target}"), it)).collect::<Result<_, _>>()?)
    }
}

impl FindingStore for DynamoStore {
    async fn record_findings(
        &self,
        target: &TargetId,
        scan_id: &str,
        findings: &[Finding],
        at: DateTime<Utc>,
        complete: bool,
    ) -> Result<Recorded, StoreError> {
        // what is open already: updated in place; the rest is new (and, for a
        // complete scan, what is open and not reported again is closed)
        let open = self.open_findings(target).await?;
        let open_keys: std::collections::HashSet<&str> = open.iter().map(|f| f.key.as_str()).collect();
        let ages: Vec<FindingAge> = futures::stream::iter(0..findings.len())
            .map(|i| {
                let known = open_keys.contains(finding_key(&findings[i]).as_str());
                self.record_one(target, scan_id, &findings[i], at, known)
            })
            .buffered(CONCURRENCY)
            .try_collect()
            .await?;
        let mut closed_findings = Vec::new();
        if complete {
            let reported: std::collections::HashSet<String> = findings.iter().map(finding_key).collect();
            for stale in open.into_iter().filter(|f| !reported.contains(&f.key)) {
                let closed = self
                    .client
                    .update_item()
                    .table_name(&self.findings_table)
                    .key("target", s(target.as_str()))
                    .key("key", s(&stale.key))
                    .update_expression("SET #open = :false")
                    // a newer scan that reported it again keeps it open
                    .condition_expression("last_scan = :seen")
                    .expression_attribute_names("#open", "open")
                    .expression_attribute_values(":false", AttributeValue::Bool(false))
                    .expression_attribute_values(":seen", s(&stale.last_scan))
                    .send()
                    .await;
                match closed {
                    Ok(_) => closed_findings.push(stale.finding),
                    Err(e) if is_condition_failure(&e) => {}
                    Err(e) => {
                        return Err(
                            AwsError::sdk(format!("UpdateItem {} {}", self.findings_table, stale.key), e).into()
                        );
                    }
                }
            }
        }
        Ok(Recorded { ages, closed: closed_findings })
    }

    async fn open_with_age(&self, target: &TargetId) -> Result<Vec<(Finding, FindingAge)>, StoreError> {
        let mut out: Vec<(Finding, FindingAge)> = self
            .open_findings(target)
            .await?
            .into_iter()
            .map(|it| (it.finding, FindingAge { first_seen: it.first_seen, last_seen: it.last_seen }))
            .collect();
        out.sort_by_cached_key(|(f, age)| (age.first_seen, finding_key(f)));
        Ok(out)
    }

    async fn open_untagged(&self, target: &TargetId) -> Result<Vec<Finding>, StoreError> {
        let mut open: Vec<FindingItem> =
            self.open_findings(target).await?.into_iter().filter(|f| f.kind == FindingKind::Untagged).collect();
        open.sort_by(|a, b| (a.first_seen, &a.key).cmp(&(b.first_seen, &b.key)));
        Ok(open.into_iter().map(|f| f.finding).collect())
    }
}
