//! Tickets in DynamoDB.
//!
//! Table key `id`. Writes are conditional: a new ticket only if its id is
//! free (the delivery's idempotency key), an update only if `version` is
//! still the one read. Three global secondary indexes, all sorted by
//! `expires_at` (RFC 3339 in UTC, so text order is time order):
//! `by_target` (every ticket of a target: the diff needs expired ones too);
//! `active_by_target`, sparse on `active_target`, which only tickets still
//! pending, active or asked to end carry (what the revocation sweeper reads:
//! a ticket leaves it once revoked or failed); and `unjournaled_by_target`,
//! sparse on `outbox_target`, which only tickets whose outbox is not empty
//! carry (where the sweep finds what a dead appender left).
//!
//! The outbox (`outbox`, a list of JSON strings, one per write) holds the
//! journal events of each write until they are on the chain: a new ticket
//! is one PutItem with its entry, an update one UpdateItem that appends its
//! entry with `list_append` (so it never rewrites another writer's entry),
//! and clearing or taking over an entry is conditional on that list element
//! being exactly as read.

use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, SecondsFormat, Utc};
use grantwarden_core::audit::NewEvent;
use grantwarden_core::error::StoreError;
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::{PutOutcome, TicketStore, Unjournaled, Versioned};
use grantwarden_core::ticket::{Ticket, TicketStatus};
use serde::{Deserialize, Serialize};

use crate::item::{self, Item, s};
use crate::{AwsError, DynamoStore, is_condition_failure};

/// Index of every ticket by target.
pub const BY_TARGET_INDEX: &str = "by_target";
/// Sparse index of pending and active tickets by target.
pub const ACTIVE_INDEX: &str = "active_by_target";
/// Sparse index of the tickets whose outbox holds journal events, by target.
pub const OUTBOX_INDEX: &str = "unjournaled_by_target";

/// A ticket as stored.
#[derive(Serialize, Deserialize)]
struct TicketItem {
    id: String,
    target: String,
    status: TicketStatus,
    expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    active_target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    outbox_target: Option<String>,
    request_sha256: String,
    version: u64,
    ticket: Ticket,
    /// Outbox entries ([`OutboxEntry`] as JSON), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    outbox: Vec<String>,
}

/// One write's journal events, not yet on the chain.
#[derive(Serialize, Deserialize)]
struct OutboxEntry {
    version: u64,
    claimed_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    after: Option<u64>,
    events: Vec<NewEvent>,
}

fn is_open(status: TicketStatus) -> bool {
    matches!(status, TicketStatus::PendingApproval | TicketStatus::Active | TicketStatus::RevokeRequested)
}

/// The outbox entries of ticket `id`, each with its position and text as stored.
fn decode_outbox<'a>(id: &str, outbox: &'a [String]) -> Result<Vec<(usize, &'a str, Unjournaled)>, StoreError> {
    outbox
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let entry: OutboxEntry = serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
                id: format!("outbox entry {i} of ticket {id}"),
                reason: e.to_string(),
            })?;
            let unjournaled = Unjournaled {
                ticket: id.to_owned(),
                version: entry.version,
                claimed_at: entry.claimed_at,
                after: entry.after,
                events: entry.events,
            };
            Ok((i, text.as_str(), unjournaled))
        })
        .collect()
}

/// An outbox entry as stored.
fn entry_json(entry: &Unjournaled) -> String {
    let entry = OutboxEntry {
        version: entry.version,
        claimed_at: entry.claimed_at,
        after: entry.after,
        events: entry.events.clone(),
    };
    serde_json::to_string(&entry).expect("an outbox entry always serializes")
}

impl TicketItem {
    fn new(ticket: &Ticket, version: u64, events: &[NewEvent]) -> Self {
        let outbox: Vec<String> = if events.is_empty() {
            Vec::new()
        } else {
            vec![entry_json(&Unjournaled::new(ticket.id(), version, events))]
        };
        Self {
            id: ticket.id().to_owned(),
            target: ticket.request().target.to_string(),
            status: ticket.status(),
            expires_at: ticket.expires_at().to_rfc3339_opts(SecondsFormat::Secs, true),
            active_target: is_open(ticket.status()).then(|| ticket.request().target.to_string()),
            outbox_target: (!outbox.is_empty()).then(|| ticket.request().target.to_string()),
            request_sha256: ticket.request_sha256().to_owned(),
            version,
            ticket: ticket.clone(),
            outbox,
        }
    }

    /// The outbox entries, each with its position and text as stored.
    fn entries(&self) -> Result<Vec<(usize, &str, Unjournaled)>, StoreError> {
        decode_outbox(&self.id, &self.outbox)
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
    fn put_ticket_item(
        &self,
        ticket: &Ticket,
        version: u64,
        events: &[NewEvent],
    ) -> Result<PutItemFluentBuilder, AwsError> {
        let it = item::to(&format!("ticket {}", ticket.id()), &TicketItem::new(ticket, version, events))?;
        Ok(self
            .client
            .put_item()
            .table_name(&self.tickets_table)
            .set_item(Some(it))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld))
    }

    /// Pending and active tickets of `target`, from the sparse index
    /// (eventually consistent: the sweeper reads it every minute).
    pub async fn open_tickets(&self, target: &TargetId) -> Result<Vec<Ticket>, StoreError> {
        self.query_tickets(target, ACTIVE_INDEX, "active_target").await
    }
}

impl TicketStore for DynamoStore {
    async fn put_ticket(&self, ticket: &Ticket, events: &[NewEvent]) -> Result<PutOutcome, StoreError> {
        let put =
            self.put_ticket_item(ticket, 1, events)?.condition_expression("attribute_not_exists(id)").send().await;
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
        Ok(self.ticket_item(id).await?.map(|stored| Versioned { value: stored.ticket, version: stored.version }))
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

    async fn update_ticket(&self, ticket: &Ticket, expected: u64, events: &[NewEvent]) -> Result<u64, StoreError> {
        let what = format!("ticket {}", ticket.id());
        let mut fields = item::to(&what, &TicketItem::new(ticket, expected + 1, &[]))?;
        fields.remove("id");
        fields.remove("active_target");
        fields.remove("outbox_target");
        let mut update = self
            .client
            .update_item()
            .table_name(&self.tickets_table)
            .key("id", s(ticket.id()))
            .condition_expression("version = :expected")
            .expression_attribute_values(":expected", item::n(expected))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let mut set = Vec::new();
        for (i, (name, value)) in fields.into_iter().enumerate() {
            set.push(format!("#f{i} = :f{i}"));
            update = update
                .expression_attribute_names(format!("#f{i}"), name)
                .expression_attribute_values(format!(":f{i}"), value);
        }
        let target = s(ticket.request().target.as_str());
        if !events.is_empty() {
            let entry = entry_json(&Unjournaled::new(ticket.id(), expected + 1, events));
            set.push("outbox = list_append(if_not_exists(outbox, :none), :entry)".into());
            set.push("outbox_target = :target".into());
            update = update
                .expression_attribute_values(":none", AttributeValue::L(Vec::new()))
                .expression_attribute_values(":entry", AttributeValue::L(vec![s(entry)]));
        }
        let mut expression = format!("SET {}", set.join(", "));
        if is_open(ticket.status()) {
            expression = format!("{expression}, active_target = :target");
        } else {
            // a closed ticket leaves the sweep's index of open ones
            expression = format!("{expression} REMOVE active_target");
        }
        if is_open(ticket.status()) || !events.is_empty() {
            update = update.expression_attribute_values(":target", target);
        }
        let updated = update.update_expression(expression).send().await;
        match updated {
            Ok(_) => Ok(expected + 1),
            Err(e) if is_condition_failure(&e) => {
                let existed = match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(c)) => {
                        c.item().is_some_and(|i| !i.is_empty())
                    }
                    _ => false,
                };
                let exists = existed || self.ticket(ticket.id()).await?.is_some();
                Err(if exists {
                    StoreError::Stale(ticket.id().to_owned())
                } else {
                    StoreError::NotFound(ticket.id().to_owned())
                })
            }
            Err(e) => Err(AwsError::sdk(format!("UpdateItem {} {}", self.tickets_table, ticket.id()), e).into()),
        }
    }

    fn journals_from_stream(&self) -> bool {
        self.journal_from_stream
    }

    async fn unjournaled(&self, target: &TargetId) -> Result<Vec<Unjournaled>, StoreError> {
        let query = self
            .client
            .query()
            .table_name(&self.tickets_table)
            .index_name(OUTBOX_INDEX)
            .key_condition_expression("outbox_target = :t")
            .expression_attribute_values(":t", s(target.as_str()));
        let items = item::query_all(query, format!("Query {}/{OUTBOX_INDEX}", self.tickets_table)).await?;
        let mut out = Vec::new();
        for it in items {
            let stored: TicketItem = item::from("ticket with an outbox", it)?;
            out.extend(stored.entries()?.into_iter().map(|(_, _, e)| e));
        }
        Ok(out)
    }

    async fn reclaim(
        &self,
        entry: &Unjournaled,
        now: DateTime<Utc>,
        after: u64,
    ) -> Result<Option<Unjournaled>, StoreError> {
        // usually the ticket's only entry, as read: one conditional write, no read
        let taken = Unjournaled { claimed_at: now, after: Some(after), ..entry.clone() };
        if self.swap_entry(&entry.ticket, 0, &entry_json(entry), &taken).await? {
            return Ok(Some(taken));
        }
        let Some(stored) = self.ticket_item(&entry.ticket).await? else { return Ok(None) };
        let entries = stored.entries()?;
        let Some((i, text, current)) =
            entries.into_iter().find(|(_, _, e)| (e.version, e.claimed_at) == (entry.version, entry.claimed_at))
        else {
            return Ok(None);
        };
        let taken = Unjournaled { claimed_at: now, after: Some(after), ..current };
        Ok(self.swap_entry(&entry.ticket, i, text, &taken).await?.then_some(taken))
    }

    async fn journaled(&self, entry: &Unjournaled) -> Result<(), StoreError> {
        // usually the ticket's only entry, as its writer made it: one conditional
        // write, no read, and the ticket leaves the index of unjournaled ones
        if self.remove_entry(&entry.ticket, 0, &entry_json(entry), 1).await? {
            return Ok(());
        }
        for _ in 0..OUTBOX_ATTEMPTS {
            let Some(stored) = self.ticket_item(&entry.ticket).await? else { return Ok(()) };
            let entries = stored.entries()?;
            let Some((i, text, _)) = entries.iter().find(|(_, _, e)| e.version == entry.version) else {
                return Ok(());
            };
            if self.remove_entry(&entry.ticket, *i, text, entries.len()).await? {
                return Ok(());
            }
            // another entry was cleared or added first: read again
        }
        Err(StoreError::Stale(format!("outbox of ticket {}", entry.ticket)))
    }
}

/// The outbox entries a tickets-stream image (`NewImage`) holds; none for
/// an image that is not a ticket's.
pub fn outbox_of(image: &serde_dynamo::Item) -> Result<Vec<Unjournaled>, StoreError> {
    let (Some(id), Some(outbox)) = (image.get("id"), image.get("outbox")) else { return Ok(Vec::new()) };
    let id: String = serde_dynamo::from_attribute_value(id.clone())
        .map_err(|e| StoreError::Corrupt { id: "ticket image".into(), reason: format!("id: {e}") })?;
    let outbox: Vec<String> = serde_dynamo::from_attribute_value(outbox.clone())
        .map_err(|e| StoreError::Corrupt { id: format!("ticket {id}"), reason: format!("outbox: {e}") })?;
    Ok(decode_outbox(&id, &outbox)?.into_iter().map(|(_, _, e)| e).collect())
}

/// Attempts to clear an outbox entry while other writes to the ticket keep moving it.
const OUTBOX_ATTEMPTS: u32 = 10;

impl DynamoStore {
    /// Replaces outbox element `i` of ticket `id` with `taken` if it still
    /// reads `read`; `false` when it does not.
    async fn swap_entry(&self, id: &str, i: usize, read: &str, taken: &Unjournaled) -> Result<bool, StoreError> {
        let swapped = self
            .client
            .update_item()
            .table_name(&self.tickets_table)
            .key("id", s(id))
            .update_expression(format!("SET outbox[{i}] = :taken"))
            .condition_expression(format!("outbox[{i}] = :read"))
            .expression_attribute_values(":taken", s(entry_json(taken)))
            .expression_attribute_values(":read", s(read))
            .send()
            .await;
        self.outbox_written(id, swapped)
    }

    /// Removes outbox element `i` of ticket `id` if it still reads `read` and
    /// the outbox still holds `count` entries; the last one takes the ticket out
    /// of the index of unjournaled ones with it. `false` when the outbox moved.
    async fn remove_entry(&self, id: &str, i: usize, read: &str, count: usize) -> Result<bool, StoreError> {
        let expression =
            if count == 1 { format!("REMOVE outbox[{i}], outbox_target") } else { format!("REMOVE outbox[{i}]") };
        let removed = self
            .client
            .update_item()
            .table_name(&self.tickets_table)
            .key("id", s(id))
            .update_expression(expression)
            .condition_expression(format!("outbox[{i}] = :read AND size(outbox) = :count"))
            .expression_attribute_values(":read", s(read))
            .expression_attribute_values(":count", item::n(count))
            .send()
            .await;
        self.outbox_written(id, removed)
    }

    /// Whether a conditional write to ticket `id`'s outbox took place.
    fn outbox_written<T, R>(
        &self,
        id: &str,
        written: Result<T, aws_smithy_runtime_api::client::result::SdkError<UpdateItemError, R>>,
    ) -> Result<bool, StoreError>
    where
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        match written {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(AwsError::sdk(format!("UpdateItem {} {id} outbox", self.tickets_table), e).into()),
        }
    }

    async fn ticket_item(&self, id: &str) -> Result<Option<TicketItem>, StoreError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.tickets_table)
            .key("id", s(id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::sdk(format!("GetItem {} {id}", self.tickets_table), e))?;
        got.item.map(|it| item::from(&format!("ticket {id}"), it).map_err(StoreError::from)).transpose()
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
