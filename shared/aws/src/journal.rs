//! The audit journal in DynamoDB.
//!
//! Table key `chain` + `seq`; each chain's head lives in the same table at
//! `seq = 0`. An append reads the head and the last event (at once), seals the new one (or a run of them) after it and
//! puts it on the next seq only if that slot is free: the conditional write
//! that serializes writers, so concurrent appenders never fork or gap a
//! chain (the loser reads again and retries with jitter). The head then moves
//! forward (only forward) to the new event; it lags at most while an append
//! is in flight, and an appender that finds the head ahead of the last event
//! refuses to write, because the tail was deleted.
//!
//! No transaction on purpose: one conditional put is atomic everywhere,
//! including the emulator the tests run against, whose multi-item
//! transactions are not safe under concurrent writers.
//!
//! The event is kept as the exact JSON it was hashed from (`event`), beside
//! the attributes a reader queries: a round trip through DynamoDB numbers
//! must not be able to change a byte that the hash covers.

use std::time::Duration;

use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use grantwarden_core::audit::event::EventKind;
use grantwarden_core::audit::{AuditEvent, AuditJournal, NewEvent, seal};
use grantwarden_core::backoff::RetryPolicy;
use grantwarden_core::error::StoreError;
use serde::{Deserialize, Serialize};

use crate::item::{self, n, s};
use crate::{AwsError, DynamoStore, is_condition_failure};

/// Attempts an append makes against competing writers before giving up.
const APPEND_ATTEMPTS: u32 = 100;

/// A journal event as stored.
#[derive(Serialize, Deserialize)]
struct EventItem {
    chain: String,
    seq: u64,
    hash: String,
    #[serde(rename = "type")]
    kind: EventKind,
    at: String,
    actor: String,
    subject: String,
    target: String,
    /// The event's JSON, byte for byte.
    event: String,
}

/// A chain head's key, as a Scan projects it.
#[derive(Deserialize)]
struct ChainItem {
    chain: String,
}

/// A chain head as stored (`seq` 0).
#[derive(Deserialize)]
struct HeadItem {
    head_seq: u64,
    head_hash: String,
}

/// The event a journal item holds, with its JSON exactly as stored; `None`
/// for a chain head (`seq` 0). For readers of the table's stream.
pub fn stored_event(image: serde_dynamo::Item) -> Result<Option<(AuditEvent, String)>, AwsError> {
    let seq = match image.get("seq") {
        Some(serde_dynamo::AttributeValue::N(n)) => n.clone(),
        _ => return Err(AwsError::Decode { what: "journal item".into(), reason: "no numeric seq".into() }),
    };
    if seq == "0" {
        return Ok(None);
    }
    let what = format!("journal item seq {seq}");
    let stored: EventItem =
        serde_dynamo::from_item(image).map_err(|e| AwsError::Decode { what: what.clone(), reason: e.to_string() })?;
    let event: AuditEvent = serde_json::from_str(&stored.event)
        .map_err(|e| AwsError::Decode { what: what.clone(), reason: format!("event: {e}") })?;
    if (event.chain.as_str(), event.seq, event.hash.as_str())
        != (stored.chain.as_str(), stored.seq, stored.hash.as_str())
    {
        return Err(AwsError::Decode { what, reason: "the event's chain, seq or hash differ from the item's".into() });
    }
    Ok(Some((event, stored.event)))
}

impl DynamoStore {
    async fn read_head(&self, chain: &str) -> Result<Option<(u64, String)>, AwsError> {
        let got = self
            .client
            .get_item()
            .table_name(&self.journal_table)
            .key("chain", s(chain))
            .key("seq", n(0))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::sdk(format!("GetItem {} {chain} head", self.journal_table), e))?;
        let Some(it) = got.item else { return Ok(None) };
        let head: HeadItem = item::from(&format!("head of chain {chain}"), it)?;
        Ok(Some((head.head_seq, head.head_hash)))
    }

    /// A consistent Query for the events of `chain` after seq `after`; after 0,
    /// all of them (the head item, seq 0, is not an event).
    fn events_after_query(&self, chain: &str, after: u64) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.journal_table)
            .key_condition_expression("chain = :c AND seq > :after")
            .expression_attribute_values(":c", s(chain))
            .expression_attribute_values(":after", n(after))
            .consistent_read(true)
    }

    async fn last_event(&self, chain: &str) -> Result<Option<(u64, String)>, AwsError> {
        let page = self
            .events_after_query(chain, 0)
            .scan_index_forward(false)
            .limit(1)
            .send()
            .await
            .map_err(|e| AwsError::sdk(format!("Query {} {chain} last event", self.journal_table), e))?;
        let Some(it) = page.items.unwrap_or_default().into_iter().next() else { return Ok(None) };
        let last: EventItem = item::from(&format!("last event of chain {chain}"), it)?;
        Ok(Some((last.seq, last.hash)))
    }

    /// Puts the event on its seq if the slot is free; `false` when another writer took it.
    async fn put_event(&self, sealed: &AuditEvent) -> Result<bool, AwsError> {
        let what = format!("event {}", sealed.id);
        let event = EventItem {
            chain: sealed.chain.clone(),
            seq: sealed.seq,
            hash: sealed.hash.clone(),
            kind: sealed.kind.clone(),
            at: sealed.at.to_rfc3339(),
            actor: sealed.actor.clone(),
            subject: sealed.subject.clone(),
            target: sealed.target.clone(),
            event: serde_json::to_string(sealed).expect("an event always serializes"),
        };
        let put = self
            .client
            .put_item()
            .table_name(&self.journal_table)
            .set_item(Some(item::to(&what, &event)?))
            .condition_expression("attribute_not_exists(seq)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(AwsError::sdk(format!("PutItem {} {what}", self.journal_table), e)),
        }
    }

    /// Moves the head forward to `sealed` (never back: a later append may have moved it already).
    async fn advance_head(&self, sealed: &AuditEvent) -> Result<(), AwsError> {
        let moved = self
            .client
            .update_item()
            .table_name(&self.journal_table)
            .key("chain", s(&sealed.chain))
            .key("seq", n(0))
            .update_expression("SET head_seq = :n, head_hash = :h")
            .condition_expression("attribute_not_exists(head_seq) OR head_seq < :n")
            .expression_attribute_values(":n", n(sealed.seq))
            .expression_attribute_values(":h", s(&sealed.hash))
            .send()
            .await;
        match moved {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(AwsError::sdk(format!("UpdateItem {} {} head", self.journal_table, sealed.chain), e)),
        }
    }
}

impl DynamoStore {
    /// The head and last event of `chain`, read at once; refused when the head
    /// is ahead of the last event (the tail was deleted). A head ahead of the
    /// last event may be a writer that appended in between the two reads, so
    /// it is read again in order before it counts: head first, as it only
    /// moves after its event is written, so a head read before the last event
    /// can be ahead of it only if events were deleted.
    async fn tail(&self, chain: &str) -> Result<Option<(u64, String)>, StoreError> {
        let ahead = |head: &Option<(u64, String)>, last: &Option<(u64, String)>| {
            head.as_ref().is_some_and(|(h, _)| *h > last.as_ref().map_or(0, |(seq, _)| *seq))
        };
        let (head, last) = tokio::try_join!(self.read_head(chain), self.last_event(chain))?;
        if !ahead(&head, &last) {
            return Ok(last);
        }
        let head = self.read_head(chain).await?;
        let last = self.last_event(chain).await?;
        if let Some((head_seq, _)) = head.as_ref().filter(|_| ahead(&head, &last)) {
            return Err(StoreError::Corrupt {
                id: format!("chain {chain}"),
                reason: format!(
                    "its head is at seq {head_seq} but the last event is seq {}: events were deleted; not appending",
                    last.map_or(0, |(seq, _)| seq)
                ),
            });
        }
        Ok(last)
    }

    /// The chain's last event as its head says, when the event at the head is
    /// there with the head's hash: two reads by key. `None` for a new chain or
    /// a head that does not hold (lagging, or a deleted tail): then [`Self::tail`]
    /// finds the last event by a query.
    async fn by_head(&self, chain: &str) -> Result<Option<(u64, String)>, StoreError> {
        let Some((seq, hash)) = self.read_head(chain).await? else { return Ok(None) };
        let got = self
            .client
            .get_item()
            .table_name(&self.journal_table)
            .key("chain", s(chain))
            .key("seq", n(seq))
            .projection_expression("#h")
            .expression_attribute_names("#h", "hash")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| AwsError::sdk(format!("GetItem {} {chain}:{seq}", self.journal_table), e))?;
        let held = got.item.and_then(|it| it.get("hash").and_then(|h| h.as_s().ok()).cloned());
        Ok((held.as_deref() == Some(hash.as_str())).then_some((seq, hash)))
    }

    /// Appends `events`, all of one chain, in order: each sealed after the one
    /// before and put on the next seq if free; the head moves once, to the last
    /// written. A writer that took a seq first makes the rest wait (with
    /// jitter) and go on after it.
    async fn append_run(&self, chain: &str, events: Vec<NewEvent>) -> Result<Vec<AuditEvent>, StoreError> {
        let backoff = RetryPolicy {
            max_attempts: APPEND_ATTEMPTS,
            base: Duration::from_millis(5),
            cap: Duration::from_millis(200),
        };
        let mut out: Vec<AuditEvent> = Vec::with_capacity(events.len());
        for attempt in 0..APPEND_ATTEMPTS {
            // first after the head (reads by key); when that seq is taken, or the head
            // does not hold, after the last event a query finds
            let by_head = if attempt == 0 { self.by_head(chain).await? } else { None };
            let mut prev = match by_head {
                Some(head) => Some(head),
                None => self.tail(chain).await?,
            };
            let mut lost = None;
            for event in &events[out.len()..] {
                let sealed = seal(event.clone(), prev.as_ref().map(|(seq, hash)| (*seq, hash.as_str())));
                if !self.put_event(&sealed).await? {
                    lost = Some(sealed.seq);
                    break;
                }
                prev = Some((sealed.seq, sealed.hash.clone()));
                out.push(sealed);
            }
            if let Some(last) = out.last() {
                self.advance_head(last).await?;
            }
            let Some(seq) = lost else { return Ok(out) };
            let delay = backoff.delay(attempt, &mut rand::rng());
            tracing::debug!(chain, attempt, "another writer took seq {seq}; appending again");
            tokio::time::sleep(delay).await;
        }
        Err(StoreError::Unavailable(format!(
            "chain {chain}: the head kept moving for {APPEND_ATTEMPTS} attempts; too many concurrent writers"
        )))
    }
}

impl AuditJournal for DynamoStore {
    async fn append(&self, event: NewEvent) -> Result<AuditEvent, StoreError> {
        let chain = event.chain.clone();
        let mut sealed = self.append_run(&chain, vec![event]).await?;
        Ok(sealed.pop().expect("one event appended"))
    }

    /// One run per stretch of consecutive events of the same chain: the head is
    /// read once per run, not once per event.
    async fn append_all(&self, events: Vec<NewEvent>) -> Result<Vec<AuditEvent>, StoreError> {
        let mut out = Vec::with_capacity(events.len());
        let mut rest = events.into_iter().peekable();
        while let Some(first) = rest.next() {
            let chain = first.chain.clone();
            let mut run = vec![first];
            while let Some(next) = rest.next_if(|e| e.chain == chain) {
                run.push(next);
            }
            out.extend(self.append_run(&chain, run).await?);
        }
        Ok(out)
    }

    async fn events_after(&self, chain: &str, after: u64) -> Result<Vec<AuditEvent>, StoreError> {
        let query = self.events_after_query(chain, after);
        let items = item::query_all(query, format!("Query {} {chain}", self.journal_table)).await?;
        items
            .into_iter()
            .map(|it| {
                let stored: EventItem = item::from(&format!("journal event of {chain}"), it)?;
                let id = format!("{chain}:{}", stored.seq);
                serde_json::from_str(&stored.event).map_err(|e| StoreError::Corrupt { id, reason: e.to_string() })
            })
            .collect()
    }

    async fn head(&self, chain: &str) -> Result<Option<(u64, String)>, StoreError> {
        Ok(self.read_head(chain).await?)
    }

    /// A Scan for the head items (`seq` 0): it reads the whole table, so the
    /// hourly digest job lists chains from the archive instead; this is for
    /// verify, which reads every event anyway.
    async fn chains(&self) -> Result<Vec<String>, StoreError> {
        let scan = self
            .client
            .scan()
            .table_name(&self.journal_table)
            .filter_expression("seq = :zero")
            .expression_attribute_values(":zero", n(0))
            .projection_expression("chain")
            .consistent_read(true);
        let items = item::scan_all(scan, format!("Scan {} chain heads", self.journal_table)).await?;
        let mut chains = items
            .into_iter()
            .map(|it| item::from::<ChainItem>("journal chain head", it).map(|c| c.chain))
            .collect::<Result<Vec<_>, _>>()?;
        chains.sort();
        Ok(chains)
    }
}
