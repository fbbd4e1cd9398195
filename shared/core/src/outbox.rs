//! A ticket change and the journal events that record it, never one without
//! the other.
//!
//! Every ticket write carries its events into the ticket's outbox in the same
//! conditional write ([`Unjournaled`]); [`create`] and [`update`] then append
//! them to the chain and clear the entry. A writer that dies in between (a
//! Lambda timing out under load, a killed CLI) leaves the entry behind, and
//! [`recover`] finishes it once the entry's claim has run out: it takes the
//! entry over with a conditional write (so two recoverers never both act),
//! appends the events that the dead writer had not appended (an event already
//! on the chain, the same in every field, is not appended twice) and clears
//! it. The revocation sweep runs it (the revoke Lambda every minute,
//! `grantwarden revoke --due` and `watch`), so what a writer left is on the
//! chain within [`CLAIM`] and a sweep.

use chrono::{DateTime, TimeDelta, Utc};

use crate::audit::{AuditEvent, AuditJournal, NewEvent};
use crate::error::StoreError;
use crate::snapshot::TargetId;
use crate::store::{PutOutcome, TicketStore, Unjournaled};
use crate::ticket::Ticket;

/// How long an outbox entry belongs to the writer (or recoverer) that wrote
/// it: longer than the longest function timeout of the stack (300 s), so
/// whoever took it is gone, by Lambda's own limit, before anyone else acts.
pub const CLAIM: TimeDelta = TimeDelta::minutes(6);

/// How far back, at first, [`recover`] looks for an event the dead writer
/// may already have appended; doubled until it reaches events older than the
/// entry's claim.
const LOOKBACK: u64 = 256;

/// Stores a new ticket with `events`, the events that record it, then puts
/// them on the chain. A ticket that exists already is left as it is (and
/// nothing is journaled).
pub async fn create<S>(store: &S, ticket: &Ticket, events: Vec<NewEvent>) -> Result<PutOutcome, StoreError>
where
    S: TicketStore + AuditJournal + Sync,
{
    let outcome = store.put_ticket(ticket, &events).await?;
    if matches!(outcome, PutOutcome::Created(_)) {
        let entry =
            Unjournaled { ticket: ticket.id().to_owned(), version: 1, claimed_at: claim_start(&events), events };
        flush(store, &entry).await?;
    }
    Ok(outcome)
}

/// Replaces ticket `ticket` if it is still at version `expected`, with
/// `events`, then puts them on the chain; the new version.
pub async fn update<S>(store: &S, ticket: &Ticket, expected: u64, events: Vec<NewEvent>) -> Result<u64, StoreError>
where
    S: TicketStore + AuditJournal + Sync,
{
    let version = store.update_ticket(ticket, expected, &events).await?;
    let entry = Unjournaled { ticket: ticket.id().to_owned(), version, claimed_at: claim_start(&events), events };
    flush(store, &entry).await?;
    Ok(version)
}

/// When an entry's claim starts: its events' time (the writer's `now`).
pub fn claim_start(events: &[NewEvent]) -> DateTime<Utc> {
    events.iter().map(|e| e.at).max().unwrap_or(DateTime::<Utc>::MIN_UTC)
}

async fn flush<S>(store: &S, entry: &Unjournaled) -> Result<(), StoreError>
where
    S: TicketStore + AuditJournal + Sync,
{
    if entry.events.is_empty() {
        return Ok(());
    }
    for event in &entry.events {
        store.append(event.clone()).await?;
    }
    store.journaled(entry).await
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
        let Some(mine) = store.reclaim(&entry, now).await? else { continue };
        tracing::warn!(
            ticket = %mine.ticket,
            version = mine.version,
            events = mine.events.len(),
            claimed_at = %entry.claimed_at,
            "finishing the journal events of a ticket write whose writer did not"
        );
        for event in &mine.events {
            if on_chain(store, event, entry.claimed_at).await? {
                done.found += 1;
            } else {
                store.append(event.clone()).await?;
                done.appended += 1;
            }
        }
        store.journaled(&mine).await?;
        done.entries += 1;
    }
    Ok(done)
}

/// Whether `event` is on its chain already: an event equal in every field
/// it was given, among those appended since `claimed_at - CLAIM` (appends
/// carry their writer's time, and no writer outlives its claim).
async fn on_chain<S: AuditJournal + Sync>(
    store: &S,
    event: &NewEvent,
    claimed_at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let Some((head, _)) = store.head(&event.chain).await? else { return Ok(false) };
    let oldest = claimed_at - CLAIM;
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
        let taken = ready(store.reclaim(&entry, late)).unwrap().expect("first to take it");
        assert_eq!(taken.claimed_at, late);
        assert!(ready(store.reclaim(&entry, late)).unwrap().is_none(), "taken already");
        let done = ready(recover(&store, &target, late)).unwrap();
        assert_eq!(done, Recovered::default(), "the new claim runs from {late}");
        assert_eq!(store.kinds("orders-prod"), ["ticket.requested"]);
    }
}
