//! Incident states in DynamoDB (table key `id`), as the incident webhook
//! reports them. A later update replaces an earlier one by a conditional put
//! on its time, so webhooks delivered out of order never reopen a resolved
//! incident.

use grantwarden_core::error::StoreError;
use grantwarden_core::incident::{IncidentStore, IncidentUpdate};
use serde::{Deserialize, Serialize};

use crate::item::{self, s};
use crate::{AwsError, DynamoStore, is_condition_failure};

#[derive(Serialize, Deserialize)]
struct IncidentItem {
    id: String,
    at: String,
    update: IncidentUpdate,
}

impl IncidentStore for DynamoStore {
    async fn record_incident(&self, update: &IncidentUpdate) -> Result<(), StoreError> {
        let what = format!("incident {}", update.id);
        let at = update.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let it = item::to(&what, &IncidentItem { id: update.id.clone(), at: at.clone(), update: update.clone() })?;
        let put = self
            .client
            .put_item()
            .table_name(&self.incidents_table)
            .set_item(Some(it))
            .condition_expression("attribute_not_exists(id) OR #at <= :at")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":at", s(at))
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()), // an older update: the newer one stays
            Err(e) => Err(AwsError::sdk(format!("PutItem {} {}", self.incidents_table, update.id), e).into()),
        }
    }

    async fn incident(&self, id: &str) -> Result<Option<IncidentUpdate>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.incidents_table)
            .key("id", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::sdk(format!("GetItem {} {id}", self.incidents_table), e))?;
        match out.item {
            None => Ok(None),
            Some(it) => Ok(Some(item::from::<IncidentItem>(&format!("incident {id}"), it)?.update)),
        }
    }
}
