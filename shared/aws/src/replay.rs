//! Replay records in DynamoDB: the signed requests intake already accepted.
//!
//! Table key [`KEY`] (the replay key: scheme and sha256 of what was signed). A
//! first use is one conditional put, `attribute_not_exists` or an expired
//! record, so of two deliveries of one signed request exactly one passes.
//! Records are working state: each carries [`TTL_ATTRIBUTE`] (epoch seconds,
//! when its signature can no longer be accepted anyway), the table's TTL
//! attribute. DynamoDB deletes expired items lazily, within days, so the
//! condition treats an expired record as absent rather than waiting for it.
//! The table has no stream: nothing reads its changes. It holds the notify
//! function's working records too (`crate::notices`), which expire the same way.

use chrono::{DateTime, Utc};
use grantwarden_core::error::StoreError;
use grantwarden_core::store::{ReplayGuard, ReplayKey};

use crate::item::{n, s};
use crate::{AwsError, DynamoStore, is_condition_failure};

/// The replay table's key attribute.
pub const KEY: &str = "replay_key";

/// The replay table's TTL attribute (infra/template.yaml enables TTL on it).
pub const TTL_ATTRIBUTE: &str = "expire_at";

/// `at` in unix seconds, rounded up: a record is never kept for less than asked.
fn ceil_seconds(at: DateTime<Utc>) -> i64 {
    at.timestamp() + i64::from(at.timestamp_subsec_nanos() > 0)
}

impl ReplayGuard for DynamoStore {
    async fn first_use(&self, key: &ReplayKey, now: DateTime<Utc>, until: DateTime<Utc>) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.replay_table)
            .item(KEY, s(key.as_str()))
            .item(TTL_ATTRIBUTE, n(ceil_seconds(until)))
            .condition_expression("attribute_not_exists(#key) OR #expire_at <= :now")
            .expression_attribute_names("#key", KEY)
            .expression_attribute_names("#expire_at", TTL_ATTRIBUTE)
            .expression_attribute_values(":now", n(now.timestamp()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(AwsError::sdk(format!("PutItem {} {key}", self.replay_table), e).into()),
        }
    }

    async fn forget(&self, key: &ReplayKey) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.replay_table)
            .key(KEY, s(key.as_str()))
            .send()
            .await
            .map_err(|e| AwsError::sdk(format!("DeleteItem {} {key}", self.replay_table), e))?;
        Ok(())
    }
}
