//! Scan records in DynamoDB: the counters of a fanned-out scan.
//!
//! Table key `scan_id`, with a stream the diff function listens on. Settling
//! a chunk is one conditional update that adds its batch id to the
//! `settled_batches` string set and bumps a counter, unless the set already
//! holds it: an SQS redelivery counts nothing twice. The status moves from
//! `running` only by a conditional update, so exactly one extractor ends the
//! scan, and the stream carries exactly one `running -> complete|incomplete`.
//!
//! Records are working state: the report in S3 is what lasts. Each carries
//! `expire_at` (epoch seconds, [`RECORD_LIFETIME`] after the scan was planned),
//! the table's TTL attribute, so DynamoDB removes them some days after that.
//! The diff ignores the REMOVE records this puts on the stream.

use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
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
        let mut update = self
            .client
            .update_item()
            .table_name(&self.scans_table)
            .key("scan_id", s(scan_id))
            .condition_expression("attribute_exists(scan_id) AND NOT contains(settled_batches, :b)")
            .expression_attribute_values(":b", s(batch_id))
            .expression_attribute_values(":bs", AttributeValue::Ss(vec![batch_id.to_owned()]))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        update = match how {
            Settlement::Done => update.update_expression("ADD chunks_done :one, settled_batches :bs"),
            Settlement::Failed(why) => update
                .update_expression("SET failures.#batch = :why ADD chunks_failed :one, settled_batches :bs")
                .expression_attribute_names("#batch", batch_id)
                .expression_attribute_values(":why", s(why)),
        };
        match update.send().await {
            Ok(out) => {
                Ok(Settled::Counted(item::from(&format!("scan {scan_id}"), out.attributes.unwrap_or_default())?))
            }
            Err(e) if is_condition_failure(&e) => {
                let existed = old_item(&e).is_some_and(|i| !i.is_empty());
                if existed || self.scan(scan_id).await?.is_some() {
                    Ok(Settled::AlreadyCounted)
                } else {
                    Err(StoreError::NotFound(format!("scan {scan_id}")))
                }
            }
            Err(e) => {
                Err(AwsError::sdk(format!("UpdateItem {} {scan_id} chunk {batch_id}", self.scans_table), e).into())
            }
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

/// The item a failed condition check returned (`ReturnValuesOnConditionCheckFailure::AllOld`).
fn old_item<R>(
    e: &aws_smithy_runtime_api::client::result::SdkError<aws_sdk_dynamodb::operation::update_item::UpdateItemError, R>,
) -> Option<crate::item::Item> {
    match e.as_service_error()? {
        aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) => {
            c.item().cloned()
        }
        _ => None,
    }
}
