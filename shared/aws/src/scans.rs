//! Scan records in DynamoDB: the counters of a fanned-out scan.
//!
//! Table key `scan_id`, with a stream the diff function listens on. Settling
//! a chunk is one transaction: it puts the chunk's own marker item (key
//! `<scan_id>/batch/<batch_id>`) unless it exists, and bumps the record's
//! counter. A redelivered message finds its marker and counts nothing twice;
//! the record holds counts only, so its size does not grow with the chunks
//! (a set of settled batch ids on it would pass DynamoDB's 400 KB item limit
//! at about 5,000 chunks). The record keeps the reasons of its first
//! [`FAILURES_KEPT`] failed chunks for the report; every failed chunk's
//! reason is also on its marker and on the chunk dead-letter queue.
//! The status moves from `running` only by a conditional update, so exactly
//! one extractor ends the scan, and the stream carries exactly one
//! `running -> complete|incomplete`. Markers are only ever inserted, so the
//! stream shows them as INSERT records, which the diff ignores.
//!
//! Records and markers are working state: the report in S3 is what lasts.
//! Each carries `expire_at` (epoch seconds, [`RECORD_LIFETIME`] after the scan
//! was planned or the chunk settled), the table's TTL attribute, so DynamoDB
//! removes them some days after that. The diff ignores the REMOVE records
//! this puts on the stream.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use chrono::{DateTime, Utc};
use grantwarden_core::error::StoreError;
use grantwarden_core::pipeline::{ScanLedger, ScanRecord, ScanStatus, Settled, Settlement};

use crate::item::{self, n, s};
use crate::{AwsError, DynamoStore, is_condition_failure};

/// The scans table's TTL attribute (infra/template.yaml enables TTL on it).
pub const EXPIRE_AT: &str = "expire_at";

/// How long a scan record is kept after its scan was planned: long past any
/// redelivery of its chunks or stream records.
pub const RECORD_LIFETIME: chrono::TimeDelta = chrono::TimeDelta::days(30);

/// Failed chunks whose reasons the scan record itself keeps (each cut to
/// [`REASON_CHARS`]): enough for a report, and the record, read after every
/// chunk, stays under 12 KB.
pub const FAILURES_KEPT: usize = 20;

/// The longest failure reason kept on a record or marker.
pub const REASON_CHARS: usize = 500;

/// The key of a chunk's settlement marker.
pub fn marker_key(scan_id: &str, batch_id: &str) -> String {
    format!("{scan_id}/batch/{batch_id}")
}

impl ScanLedger for DynamoStore {
    async fn start_scan(&self, record: &ScanRecord) -> Result<bool, StoreError> {
        let what = format!("scan {}", record.scan_id);
        let mut item = item::to(&what, record)?;
        item.insert(EXPIRE_AT.to_owned(), n((record.taken_at + RECORD_LIFETIME).timestamp()));
        let put = self
            .client
            .put_item()
            .table_name(&self.scans_table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(scan_id)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(AwsError::sdk(format!("PutItem {} {what}", self.scans_table), e).into()),
        }
    }

    async fn scan(&self, scan_id: &str) -> Result<Option<ScanRecord>, StoreError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.scans_table)
            .key("scan_id", s(scan_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::sdk(format!("GetItem {} {scan_id}", self.scans_table), e))?;
        Ok(got.item.map(|it| item::from(&format!("scan {scan_id}"), it)).transpose()?)
    }

    async fn mark_dispatched(&self, scan_id: &str) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.scans_table)
            .key("scan_id", s(scan_id))
            .update_expression("SET dispatched = :t")
            .condition_expression("attribute_exists(scan_id)")
            .expression_attribute_values(":t", AttributeValue::Bool(true))
            .send()
            .await
            .map_err(|e| AwsError::sdk(format!("UpdateItem {} {scan_id} dispatched", self.scans_table), e))?;
        Ok(())
    }

    async fn chunk_settled(&self, scan_id: &str, batch_id: &str, how: &Settlement) -> Result<Settled, StoreError> {
        let op = || format!("TransactWriteItems {} {scan_id} chunk {batch_id}", self.scans_table);
        let build = |e: aws_sdk_dynamodb::error::BuildError| AwsError::Service {
            op: op(),
            message: e.to_string(),
            retryable: false,
        };
        let (settled, counter, why) = match how {
            Settlement::Done => ("done", "chunks_done", None),
            Settlement::Failed(why) => ("failed", "chunks_failed", Some(cut(why))),
        };
        let mut marker = Put::builder()
            .table_name(&self.scans_table)
            .item("scan_id", s(marker_key(scan_id, batch_id)))
            .item("settled", s(settled))
            .item(EXPIRE_AT, n((Utc::now() + RECORD_LIFETIME).timestamp()))
            .condition_expression("attribute_not_exists(scan_id)");
        if let Some(why) = &why {
            marker = marker.item("reason", s(why));
        }
        let count = Update::builder()
            .table_name(&self.scans_table)
            .key("scan_id", s(scan_id))
            .update_expression("ADD #counter :one")
            .condition_expression("attribute_exists(scan_id)")
            .expression_attribute_names("#counter", counter)
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(build)?;
        let sent = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().put(marker.build().map_err(build)?).build())
            .transact_items(TransactWriteItem::builder().update(count).build())
            .send()
            .await;
        let counted = match sent {
            Ok(_) => true,
            Err(e) => match cancelled(&e) {
                // the marker exists: a redelivery of a chunk already counted
                Some([marker, _]) if marker.as_deref() == Some("ConditionalCheckFailed") => false,
                Some([_, record]) if record.as_deref() == Some("ConditionalCheckFailed") => {
                    return Err(StoreError::NotFound(format!("scan {scan_id}")));
                }
                _ => return Err(AwsError::sdk(op(), e).into()),
            },
        };
        // Before the record is returned, so the scan's end carries it; again on a
        // redelivery, in case the first delivery stopped between the two writes.
        if let Some(why) = &why {
            self.keep_failure(scan_id, batch_id, why).await?;
        }
        if !counted {
            return Ok(Settled::AlreadyCounted);
        }
        match self.scan(scan_id).await? {
            Some(record) => Ok(Settled::Counted(record)),
            None => Err(StoreError::NotFound(format!("scan {scan_id}"))),
        }
    }

    async fn finish_scan(&self, scan_id: &str, status: ScanStatus, at: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = self
            .client
            .update_item()
            .table_name(&self.scans_table)
            .key("scan_id", s(scan_id))
            .update_expression("SET #status = :s, finished_at = :at")
            .condition_expression("#status = :running")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":s", s(status.to_string()))
            .expression_attribute_values(":running", s(ScanStatus::Running.to_string()))
            .expression_attribute_values(":at", item::attr("finished_at", &at)?)
            .send()
            .await;
        match done {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(AwsError::sdk(format!("UpdateItem {} {scan_id} status", self.scans_table), e).into()),
        }
    }
}

impl DynamoStore {
    /// Keeps a failed chunk's reason on the scan record, while it holds fewer than [`FAILURES_KEPT`].
    async fn keep_failure(&self, scan_id: &str, batch_id: &str, why: &str) -> Result<(), StoreError> {
        let kept = self
            .client
            .update_item()
            .table_name(&self.scans_table)
            .key("scan_id", s(scan_id))
            .update_expression("SET failures.#batch = :why")
            .condition_expression("attribute_exists(failures.#batch) OR size(failures) < :max")
            .expression_attribute_names("#batch", batch_id)
            .expression_attribute_values(":why", s(why))
            .expression_attribute_values(":max", n(FAILURES_KEPT as i64))
            .send()
            .await;
        match kept {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => {
                Err(AwsError::sdk(format!("UpdateItem {} {scan_id} failure of {batch_id}", self.scans_table), e).into())
            }
        }
    }
}

/// A reason cut to [`REASON_CHARS`] characters.
fn cut(why: &str) -> String {
    match why.char_indices().nth(REASON_CHARS) {
        Some((at, _)) => format!("{}...", &why[..at]),
        None => why.to_owned(),
    }
}

/// The cancellation reasons of a cancelled two-item transaction (marker, record), by code.
fn cancelled<R>(
    e: &aws_smithy_runtime_api::client::result::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        R,
    >,
) -> Option<[Option<String>; 2]> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match e.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(c) => {
            let reasons = c.cancellation_reasons();
            let code = |i: usize| reasons.get(i).and_then(|r| r.code()).map(str::to_owned);
            Some([code(0), code(1)])
        }
        _ => None,
    }
}
