//! A ticket change and the journal events that record it, never one without
//! the other.
//!
//! Every ticket write carries its events into the ticket's outbox in the same
//! conditional write ([`Unjournaled`]). Then one of two appends them to the
//! chain and clears the entry:
//! - the writer itself, right after the write ([`create`], [`update`]): the
//!   CLI on its SQLite store, and any store that does not say otherwise;
//! - the consumer of the store's change stream ([`journal_fresh`]) when the
//!   store says so ([`TicketStore::journals_from_stream`]): on AWS the revoke
//!   function on the tickets stream, one appender per shard, so requests
//!   never race each other for their chain's head.
//!
//! Whoever appends first takes the entry over with a conditional write that
//! records the chain's head (so two never both act, and what it appended can
//! only be after that seq). Whoever dies in between (a Lambda timing out, a
//! killed CLI) leaves the entry behind, and [`recover`] finishes it once its
//! claim has run out: it takes it over in turn, appends the events that are
//! not on the chain yet (an event the same in every field, after the seq
//! recorded, counts as there) and clears it. The revocation sweep runs it
//! (the revoke Lambda every minute, `grantwarden revoke --due` and `watch`),
//! so what a writer left is on the chain within [`CLAIM`] and a sweep.

use chrono::{DateTime, TimeDelta, Utc};

use crate::audit::{AuditEvent, AuditJournal, NewEvent};
use crate::error::StoreError;
use crate::snapshot::TargetId;
use crate::store::{PutOutcome, TicketStore, Unjournaled};
use crate::ticket::Ticket;

/// How long an outbox entry belongs to the writer (or recoverer) that wrote
/// or took it: longer than the longest function timeout of the stack (300 s),
/// so whoever took it is gone, by Lambda's own limit, before anyone else acts.
pub const CLAIM: TimeDelta = TimeDelta::minutes(6);

/// How far back, at first, [`recover`] looks for an event a dead writer may
/// already have appended when the entry does not say where its taker began;
/// doubled until it reaches events older than the entry's claim.
const LOOKBACK: u64 = 256;

/// Stores a new ticket with `events`, the events that record it, then puts
/// them on the chain (unless the store's stream consumer does). A ticket that
/// exists already is left as it is (and nothing is journaled).
pub async fn create<S>(store: &S, ticket: &Ticket, events: Vec<NewEvent>) -> Result<PutOutcome, StoreError>
where
    S: TicketStore + AuditJournal + Sync,
{
    let outcome = store.put_ticket(ticket, &events).await?;
    if matches!(outcome, PutOutcome::Created(_)) && !store.journals_from_stream() {
        flush(store, &Unjournaled::new(ticket.id(), 1, &events)).await?;
    }
    Ok(outcome)
}

/// Replaces ticket `ticket` if it is still at version `expected`, with
/// `events`, then puts them on the chain (unless the store's stream consumer
/// does); the new version.
pub async fn update<S>(store: &S, ticket: &Ticket, expected: u64, events: Vec<NewEvent>) -> Result<u64, StoreError>
where
    S: TicketStore + AuditJournal + Sync,
{
    let version = store.update_ticket(ticket, expected, &events).await?;
    if !store.journals_from_stream() {
        flush(store, &Unjournaled::new(ticket.id(), version, &events)).await?;
    }
    Ok(version)
}

/// The writer's own append: nobody else acts on a fresh entry before its claim runs out.
async fn flush<S>(store: &S, entry: &Unjournaled) -> Result<(), StoreError>
where
    S: TicketStore + AuditJournal + Sync,
{
    if entry.events.is_empty() {
        return Ok(());
    }
    store.append_all(entry.events.clone()).await?;
    store.journaled(entry).await
}

/// The chain an entry's events go to (a ticket's events are all on its target's).
fn chain_of(entry: &Unjournaled) -> Option<&str> {
    entry.events.first().map(|e| e.chain.as_str())
}

/// Takes `entry` over at `now`, recording its chain's head; `None` when
/// someone else cleared or took it first.
async fn take<S>(store: &S, entry: &Unjournaled, now: DateTime<Utc>) -> Result<Option<Unjournaled>, StoreError>
where
    S: TicketStore + AuditJournal + Sync,
{
    let head = match chain_of(entry) {
        Some(chain) => store.head(chain).await?.map_or(0, |(seq, _)| seq),
        None => 0,
    };
    // strictly later than the writer's claim, so a taken entry never looks fresh
    let at = now.max(entry.claimed_at + TimeDelta::nanoseconds(1));
    store.reclaim(entry, at, head).await
}

/// For the consumer of the store's change stream: appends the events of the
/// fresh entries among `entries` (a new image's outbox), each taken over
/// first; an entry already taken (a redelivered record, one a recoverer has)
/// is left to whoever has it. Returns the number of events appended.
pub async fn journal_fresh<S>(store: &S, entries: Vec<Unjournaled>, now: DateTime<Utc>) -> Result<usize, StoreError>
where
    S: TicketStore + AuditJournal + Sync,
{
    let mut appended = 0;
    for entry in entries.into_iter().filter(Unjournaled::is_fresh) {
        let Some(mine) = take(store, &entry, now).await? else { continue };
        appended += store.append_all(mine.events.clone()).await?.len();
        store.journaled(&mine).await?;
    }
    Ok(appended)
}

/// What [`recover`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Outbox entries finished and cleared.
    pub entries: usize,
    /// Events appended.
    pub appended: usize,
    /// Events found on the chain already (the dead writer got that far).
    pub found: usize,
}

/// Finishes the outbox entries of `target`'s tickets whose claim ran out by
/// `now`: each taken over first (an entry someone else took meanwhile is
/// theirs), its events that are not on the chain yet appended, then cleared.
pub async fn recover<S>(store: &S, target: &TargetId, now: DateTime<Utc>) -> Result<Recovered, StoreError>
where
    S: TicketStore + AuditJournal + Sync,
{
    let mut done = Recovered::default();
    for entry in store.unjournaled(target).await? {
        if entry.claimed_at + CLAIM > now {
            continue;
        }
        let Some(mine) = take(store, &entry, now).await? else { continue };
        tracing::warn!(
            ticket = %mine.ticket,
            version = mine.version,
            events = mine.events.len(),
            claimed_at = %entry.claimed_at,
            "finishing the journal events of a ticket write whose writer did not"
        );
        let mut missing = Vec::new();
        for event in &mine.events {
            if on_chain(store, event, &entry).await? {
                done.found += 1;
            } else {
                missing.push(event.clone());
            }
        }
        done.appended += store.append_all(missing).await?.len();
        store.journaled(&mine).await?;
        done.entries += 1;
    }
    Ok(done)
}

/// Whether `event` of `entry` (as it was before this recoverer took it) is
/// on its chain already: an event equal in every field it was given. Taken
/// over before, its taker appended after the seq it recorded; never taken,
/// its writer appended right after the write, so the events since
/// `claimed_at - CLAIM` are searched.
async fn on_chain<S: AuditJournal + Sync>(
    store: &S,
    event: &NewEvent,
    entry: &Unjournaled,
) -> Result<bool, StoreError> {
    if let Some(after) = entry.after {
        return Ok(store.events_after(&event.chain, after).await?.iter().any(|e| same(e, event)));
    }
    let Some((head, _)) = store.head(&event.chain).await? else { return Ok(false) };
    let oldest = entry.claimed_at - CLAIM;
    let mut lookback = LOOKBACK;
    loop {
        let from = head.saturating_sub(lookback);
        let recent = store.events_after(&event.chain, from).await?;
        if recent.iter().any(|e| same(e, event)) {
            return Ok(true);
        }
        let reached = recent.first().is_none_or(|e| e.at < oldest);
        if from == 0 || reached {
            return Ok(false);
        }
        lookback = lookback.saturating_mul(2);
    }
}

fn same(sealed: &AuditEvent, event: &NewEvent) -> bool {
    sealed.at == event.at
        && sealed.kind == event.kind
        && sealed.subject == event.subject
        && sealed.actor == event.actor
        && sealed.target == event.target
        && sealed.detail == event.detail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_policy::AccessPath;
    use crate::audit::event::OnTicket;
    use crate::memory_store::{MemoryStore, access_request as request, at, opened, ready};

    fn ticket(store: &MemoryStore) -> Ticket {
        opened(store, &request("r1", AccessPath::Migration, "1h", None))
    }

    #[test]
    fn a_write_and_its_events_land_together_and_the_outbox_is_cleared() {
        let store = MemoryStore::default();
        let t = ticket(&store);
        assert_eq!(store.kinds("orders-prod"), ["ticket.requested"]);
        assert!(ready(store.unjournaled(&t.request().target)).unwrap().is_empty(), "cleared once on the chain");
    }

    #[test]
    fn a_writer_that_died_after_part_of_its_events_is_finished_once_its_claim_ran_out() {
        let store = MemoryStore::default();
        let t = ticket(&store);
        let target = t.request().target.clone();
        // a writer stores an approval with two events, appends the first, and dies
        let approved = NewEvent::for_ticket(&t, OnTicket::Approved, "ciso@example.com", at(1));
        let activated = NewEvent::for_ticket(&t, OnTicket::Activated, "grantwarden", at(1));
        let v = ready(store.update_ticket(&t, 1, &[approved.clone(), activated])).unwrap();
        ready(store.append(approved)).unwrap();
        assert_eq!(v, 2);

        let early = ready(recover(&store, &target, at(1) + CLAIM - TimeDelta::seconds(1))).unwrap();
        assert_eq!(early, Recovered::default(), "the writer may still be alive");
        assert_eq!(store.kinds("orders-prod"), ["ticket.requested", "ticket.approved"]);

        let late = at(1) + CLAIM + TimeDelta::seconds(1);
        let done = ready(recover(&store, &target, late)).unwrap();
        assert_eq!(done, Recovered { entries: 1, appended: 1, found: 1 });
        assert_eq!(store.kinds("orders-prod"), ["ticket.requested", "ticket.approved", "ticket.activated"]);
        assert!(ready(store.unjournaled(&target)).unwrap().is_empty());
        assert_eq!(ready(recover(&store, &target, late)).unwrap(), Recovered::default(), "nothing twice");
    }

    #[test]
    fn an_entry_someone_else_took_over_is_theirs() {
        let store = MemoryStore::default();
        let t = ticket(&store);
        let target = t.request().target.clone();
        let event = NewEvent::for_ticket(&t, OnTicket::Approved, "ciso@example.com", at(1));
        ready(store.update_ticket(&t, 1, &[event])).unwrap();
        let entry = ready(store.unjournaled(&target)).unwrap().remove(0);
        let late = at(1) + CLAIM + TimeDelta::seconds(1);
        let taken = ready(store.reclaim(&entry, late, 1)).unwrap().expect("first to take it");
        assert_eq!((taken.claimed_at, taken.after), (late, Some(1)));
        assert!(ready(store.reclaim(&entry, late, 1)).unwrap().is_none(), "taken already");
        let done = ready(recover(&store, &target, late)).unwrap();
        assert_eq!(done, Recovered::default(), "the new claim runs from {late}");
        assert_eq!(store.kinds("orders-prod"), ["ticket.requested"]);
    }

    #[test]
    fn the_stream_consumer_appends_fresh_entries_once_and_a_taker_that_died_is_finished_from_its_seq() {
        let store = MemoryStore::default();
        let t = ticket(&store);
        let target = t.request().target.clone();
        // a write left to the stream consumer: nothing appended by the writer
        let approved = NewEvent::for_ticket(&t, OnTicket::Approved, "ciso@example.com", at(1));
        let activated = NewEvent::for_ticket(&t, OnTicket::Activated, "grantwarden", at(1));
        ready(store.update_ticket(&t, 1, &[approved.clone(), activated.clone()])).unwrap();
        let image = ready(store.unjournaled(&target)).unwrap();
        assert_eq!(ready(journal_fresh(&store, image.clone(), at(1))).unwrap(), 2);
        assert_eq!(store.kinds("orders-prod"), ["ticket.requested", "ticket.approved", "ticket.activated"]);
        assert_eq!(ready(journal_fresh(&store, image, at(2))).unwrap(), 0, "a redelivered record appends nothing");

        // a consumer that took an entry over and died after its first event
        ready(store.update_ticket(&t, 2, &[approved.clone(), activated])).unwrap();
        let entry = ready(store.unjournaled(&target)).unwrap().remove(0);
        let head = store.chain("orders-prod").len() as u64;
        let taken = ready(store.reclaim(&entry, at(2), head)).unwrap().unwrap();
        ready(store.append(approved)).unwrap();
        assert_eq!(ready(journal_fresh(&store, vec![taken.clone()], at(3))).unwrap(), 0, "taken: not fresh");
        let done = ready(recover(&store, &target, at(2) + CLAIM + TimeDelta::seconds(1))).unwrap();
        assert_eq!(done, Recovered { entries: 1, appended: 1, found: 1 });
        assert_eq!(store.chain("orders-prod").len(), 5);
    }
}
