//! Tickets in DynamoDB.
//!
//! Table key `id`. Writes are conditional: a new ticket only if its id is
//! free (the delivery's idempotency key), an update only if `version` is
//! still the one read. Two global secondary indexes, both sorted by
//! `expires_at` (RFC 3339 in UTC, so text order is time order):
//! `by_target` (every ticket of a target: the diff needs expired ones too)
//! and `active_by_target`, sparse on `active_target`, which only tickets
//! still pending, active or asked to end carry (what the revocation sweeper
//! reads: a ticket leaves it once revoked or failed).

use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure;
use chrono::SecondsFormat;
use grantwarden_core::error::StoreError;
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::{PutOutcome, TicketStore, Versioned};
use grantwarden_core::ticket::{Ticket, TicketStatus};
use serde::{Deserialize, Serialize};

use crate::item::{self, Item, s};
use crate::{AwsError, DynamoStore, is_condition_failure};

/// Index of every ticket by target.
pub const BY_TARGET_INDEX: &str = "by_target";
/// Sparse index of pending and active tickets by target.
pub const ACTIVE_INDEX: &str = "active_by_target";

/// A ticket as stored.
#[derive(Serialize, Deserialize)]
struct TicketItem {
    id: String,
    target: String,
    status: TicketStatus,
    expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    active_target: Option<String>,
    request_sha256: String,
    version: u64,
    ticket: Ticket,
}

impl TicketItem {
    fn new(ticket: &Ticket, version: u64) -> Self {
        let open = matches!(
            ticket.status(),
            TicketStatus::PendingApproval | TicketStatus::Active | TicketStatus::RevokeRequested
        );
        Self {
            id: ticket.id().to_owned(),
            target: ticket.request().target.to_string(),
            status: ticket.status(),
            expires_at: ticket.expires_at().to_rfc3339_opts(SecondsFormat::Secs, true),
            active_target: open.then(|| ticket.request().target.to_string()),
            request_sha256: ticket.request_sha256().to_owned(),
            version,
            ticket: ticket.clone(),
        }
    }
}

fn decode(id: &str, it: Item) -> Result<Versioned<Ticket>, StoreError> {
    let stored: TicketItem = item::from(&format!("ticket {id}"), it)?;
    Ok(Versioned { value: stored.ticket, version: stored.version })
}

/// Tickets from items, each named by its id when it does not decode.
fn decode_all(items: Vec<Item>) -> Result<Vec<Ticket>, StoreError> {
    items
        .into_iter()
        .map(|it| {
            let id = it.get("id").and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            decode(&id, it).map(|v| v.value)
        })
        .collect()
}

impl DynamoStore {
    async fn query_tickets(&self, target: &TargetId, index: &str, key: &str) -> Result<Vec<Ticket>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.tickets_table)
            .index_name(index)
            .key_condition_expression("#k = :t")
            .expression_attribute_names("#k", key)
            .expression_attribute_values(":t", s(target.as_str()));
        decode_all(item::query_all(query, format!("Query {}/{index}", self.tickets_table)).await?)
    }

    /// A PutItem of `ticket` at `version` that returns the stored item when
    /// the condition the caller adds fails.
    fn put_ticket_item(&self, ticket: &Ticket, version: u64) -> Result<PutItemFluentBuilder, AwsError> {
        let it = item::to(&format!("ticket {}", ticket.id()), &TicketItem::new(ticket, version))?;
        Ok(self
            .client
            .put_item()
            .table_name(&self.tickets_table)
            .set_item(Some(it))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld))
    }

    /// Pending and active tickets of `target` by expiry, from the sparse index
    /// (eventually consistent: the sweeper reads it every minute).
    pub async fn open_tickets(&self, target: &TargetId) -> Result<Vec<Ticket>, StoreError> {
        self.query_tickets(target, ACTIVE_INDEX, "active_target").await
    }
}

impl TicketStore for DynamoStore {
    async fn put_ticket(&self, ticket: &Ticket) -> Result<PutOutcome, StoreError> {
        let put = self.put_ticket_item(ticket, 1)?.condition_expression("attribute_not_exists(id)").send().await;
        match put {
            Ok(_) => Ok(PutOutcome::Created(ticket.clone())),
            Err(e) if is_condition_failure(&e) => {
                let old = old_item(&e);
                let stored = match old {
                    Some(old) => decode(ticket.id(), old)?.value,
                    // a service that does not return the old item: read it
                    None => {
                        self.ticket(ticket.id())
                            .await?
                            .ok_or_else(|| StoreError::NotFound(ticket.id().to_owned()))?
                            .value
                    }
                };
                Ok(if stored.request_sha256() == ticket.request_sha256() {
                    PutOutcome::Existing(stored)
                } else {
                    PutOutcome::Conflict(stored)
                })
            }
            Err(e) => Err(AwsError::sdk(format!("PutItem {} {}", self.tickets_table, ticket.id()), e).into()),
        }
    }

    async fn ticket(&self, id: &str) -> Result<Option<Versioned<Ticket>>, StoreError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.tickets_table)
            .key("id", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::sdk(format!("GetItem {} {id}", self.tickets_table), e))?;
        got.item.map(|it| decode(id, it)).transpose()
    }

    async fn tickets(&self, target: Option<&TargetId>) -> Result<Vec<Ticket>, StoreError> {
        let mut out = match target {
            Some(t) => self.query_tickets(t, BY_TARGET_INDEX, "target").await?,
            None => {
                let scan = self.client.scan().table_name(&self.tickets_table).consistent_read(true);
                decode_all(item::scan_all(scan, format!("Scan {}", self.tickets_table)).await?)?
            }
        };
        // oldest first, like the local store
        out.sort_by(|a, b| (a.starts_at(), &a.id()).cmp(&(b.starts_at(), &b.id())));
        Ok(out)
    }

    async fn open_tickets(&self, target: &TargetId) -> Result<Vec<Ticket>, StoreError> {
        DynamoStore::open_tickets(self, target).await
    }

    async fn update_ticket(&self, ticket: &Ticket, expected: u64) -> Result<u64, StoreError> {
        let put = self
            .put_ticket_item(ticket, expected + 1)?
            .condition_expression("version = :v")
            .expression_attribute_values(":v", item::n(expected))
            .send()
            .await;
        match put {
            Ok(_) => Ok(expected + 1),
            Err(e) if is_condition_failure(&e) => {
                let existed = old_item(&e).is_some_and(|i| !i.is_empty());
                let exists = existed || self.ticket(ticket.id()).await?.is_some();
                Err(if exists {
                    StoreError::Stale(ticket.id().to_owned())
                } else {
                    StoreError::NotFound(ticket.id().to_owned())
                })
            }
            Err(e) => Err(AwsError::sdk(format!("PutItem {} {}", self.tickets_table, ticket.id()), e).into()),
        }
    }
}

/// The item a failed condition check returned (`ReturnValuesOnConditionCheckFailure::AllOld`).
fn old_item<R>(
    e: &aws_smithy_runtime_api::client::result::SdkError<aws_sdk_dynamodb::operation::put_item::PutItemError, R>,
) -> Option<crate::item::Item> {
    match e.as_service_error()? {
        aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c) => c.item().cloned(),
        _ => None,
    }
}
