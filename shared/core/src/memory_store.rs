//! In-memory ports for the unit tests of the use cases: tickets, findings, the
//! journal and incidents in plain vectors behind one mutex, with the same
//! contract as the SQLite and DynamoDB stores (conditional updates by version,
//! idempotent puts, a sealed hash chain per target); and the fixtures those
//! tests share. The adapters themselves are tested against the real thing in
//! their own crates.

use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::audit::{AuditEvent, AuditJournal, NewEvent, seal};
use crate::error::StoreError;
use crate::incident::{IncidentStore, IncidentUpdate};
use crate::report::Finding;
use crate::snapshot::TargetId;
use crate::store::{FindingStore, PutOutcome, Recorded, TicketStore, Unjournaled, Versioned};
use crate::ticket::Ticket;

/// Everything the ports hold.
#[derive(Default)]
pub(crate) struct Held {
    pub tickets: Vec<Versioned<Ticket>>,
    pub findings: Vec<(TargetId, Finding)>,
    pub events: Vec<AuditEvent>,
    pub incidents: Vec<IncidentUpdate>,
    pub outbox: Vec<Unjournaled>,
    /// Notices by key: the notice, attempts, when due, and how the last attempt was settled.
    pub notices: Vec<(crate::notify::Queued, DateTime<Utc>, Option<crate::notify::Settled>)>,
    pub cursors: std::collections::BTreeMap<String, u64>,
    pub posted: Vec<(String, crate::notify::Posted)>,
}

/// The in-memory store.
#[derive(Default)]
pub(crate) struct MemoryStore(pub Mutex<Held>);

impl MemoryStore {
    /// The kinds of the events of `chain`, in order.
    pub fn kinds(&self, chain: &str) -> Vec<String> {
        self.0.lock().unwrap().events.iter().filter(|e| e.chain == chain).map(|e| e.kind.as_str().to_owned()).collect()
    }

    /// The events of `chain`, in order.
    pub fn chain(&self, chain: &str) -> Vec<AuditEvent> {
        self.0.lock().unwrap().events.iter().filter(|e| e.chain == chain).cloned().collect()
    }
}

impl TicketStore for MemoryStore {
    async fn put_ticket(&self, ticket: &Ticket, events: &[NewEvent]) -> Result<PutOutcome, StoreError> {
        let mut held = self.0.lock().unwrap();
        if let Some(stored) = held.tickets.iter().find(|t| t.value.id() == ticket.id()) {
            return Ok(if stored.value.request_sha256() == ticket.request_sha256() {
                PutOutcome::Existing(stored.value.clone())
            } else {
                PutOutcome::Conflict(stored.value.clone())
            });
        }
        held.tickets.push(Versioned { value: ticket.clone(), version: 1 });
        push_entry(&mut held, ticket, 1, events);
        Ok(PutOutcome::Created(ticket.clone()))
    }

    async fn ticket(&self, id: &str) -> Result<Option<Versioned<Ticket>>, StoreError> {
        Ok(self.0.lock().unwrap().tickets.iter().find(|t| t.value.id() == id).cloned())
    }

    async fn tickets(&self, target: Option<&TargetId>) -> Result<Vec<Ticket>, StoreError> {
        let held = self.0.lock().unwrap();
        let of_target = |t: &&Versioned<Ticket>| target.is_none_or(|target| &t.value.request().target == target);
        Ok(held.tickets.iter().filter(of_target).map(|t| t.value.clone()).collect())
    }

    async fn update_ticket(&self, ticket: &Ticket, expected: u64, events: &[NewEvent]) -> Result<u64, StoreError> {
        let mut held = self.0.lock().unwrap();
        let stored = held
            .tickets
            .iter_mut()
            .find(|t| t.value.id() == ticket.id())
            .ok_or_else(|| StoreError::NotFound(ticket.id().to_owned()))?;
        if stored.version != expected {
            return Err(StoreError::Stale(ticket.id().to_owned()));
        }
        *stored = Versioned { value: ticket.clone(), version: expected + 1 };
        push_entry(&mut held, ticket, expected + 1, events);
        Ok(expected + 1)
    }

    async fn unjournaled(&self, target: &TargetId) -> Result<Vec<Unjournaled>, StoreError> {
        let held = self.0.lock().unwrap();
        let of_target = |e: &&Unjournaled| {
            held.tickets.iter().any(|t| t.value.id() == e.ticket && &t.value.request().target == target)
        };
        Ok(held.outbox.iter().filter(of_target).cloned().collect())
    }

    async fn reclaim(
        &self,
        entry: &Unjournaled,
        now: DateTime<Utc>,
        after: u64,
    ) -> Result<Option<Unjournaled>, StoreError> {
        let mut held = self.0.lock().unwrap();
        let found = held.outbox.iter_mut().find(|e| {
            (e.ticket.as_str(), e.version, e.claimed_at) == (entry.ticket.as_str(), entry.version, entry.claimed_at)
        });
        Ok(found.map(|e| {
            e.claimed_at = now;
            e.after = Some(after);
            e.clone()
        }))
    }

    async fn journaled(&self, entry: &Unjournaled) -> Result<(), StoreError> {
        self.0
            .lock()
            .unwrap()
            .outbox
            .retain(|e| (e.ticket.as_str(), e.version) != (entry.ticket.as_str(), entry.version));
        Ok(())
    }
}

fn push_entry(held: &mut Held, ticket: &Ticket, version: u64, events: &[NewEvent]) {
    if !events.is_empty() {
        held.outbox.push(Unjournaled::new(ticket.id(), version, events));
    }
}

impl FindingStore for MemoryStore {
    async fn record_findings(
        &self,
        target: &TargetId,
        _scan_id: &str,
        findings: &[Finding],
        at: DateTime<Utc>,
        _complete: bool,
    ) -> Result<Recorded, StoreError> {
        let mut held = self.0.lock().unwrap();
        held.findings.extend(findings.iter().map(|f| (target.clone(), f.clone())));
        let age = crate::finding::FindingAge { first_seen: at, last_seen: at };
        Ok(Recorded { ages: vec![age; findings.len()], closed: Vec::new() })
    }

    async fn open_with_age(
        &self,
        _target: &TargetId,
    ) -> Result<Vec<(Finding, crate::finding::FindingAge)>, StoreError> {
        Ok(Vec::new())
    }

    async fn open_untagged(&self, target: &TargetId) -> Result<Vec<Finding>, StoreError> {
        let held = self.0.lock().unwrap();
        let untagged =
            held.findings.iter().filter(|(t, f)| t == target && f.kind == crate::finding::FindingKind::Untagged);
        Ok(untagged.map(|(_, f)| f.clone()).collect())
    }
}

impl AuditJournal for MemoryStore {
    async fn append(&self, event: NewEvent) -> Result<AuditEvent, StoreError> {
        let mut held = self.0.lock().unwrap();
        let head = held.events.iter().rev().find(|e| e.chain == event.chain).map(|e| (e.seq, e.hash.clone()));
        let sealed = seal(event, head.as_ref().map(|(seq, hash)| (*seq, hash.as_str())));
        held.events.push(sealed.clone());
        Ok(sealed)
    }

    async fn events_after(&self, chain: &str, seq: u64) -> Result<Vec<AuditEvent>, StoreError> {
        Ok(self.0.lock().unwrap().events.iter().filter(|e| e.chain == chain && e.seq > seq).cloned().collect())
    }

    async fn chains(&self) -> Result<Vec<String>, StoreError> {
        let mut chains: Vec<String> = self.0.lock().unwrap().events.iter().map(|e| e.chain.clone()).collect();
        chains.sort();
        chains.dedup();
        Ok(chains)
    }

    async fn head(&self, chain: &str) -> Result<Option<(u64, String)>, StoreError> {
        Ok(self.0.lock().unwrap().events.iter().rev().find(|e| e.chain == chain).map(|e| (e.seq, e.hash.clone())))
    }
}

impl IncidentStore for MemoryStore {
    async fn record_incident(&self, update: &IncidentUpdate) -> Result<(), StoreError> {
        let mut held = self.0.lock().unwrap();
        match held.incidents.iter_mut().find(|u| u.id == update.id) {
            Some(known) if known.at <= update.at => *known = update.clone(),
            Some(_) => {}
            None => held.incidents.push(update.clone()),
        }
        Ok(())
    }

    async fn incident(&self, id: &str) -> Result<Option<IncidentUpdate>, StoreError> {
        Ok(self.0.lock().unwrap().incidents.iter().find(|u| u.id == id).cloned())
    }
}

impl crate::notify::NoticeQueue for MemoryStore {
    async fn enqueue(&self, notices: &[crate::notify::Keyed], now: DateTime<Utc>) -> Result<usize, StoreError> {
        let mut held = self.0.lock().unwrap();
        let mut new = 0;
        for n in notices {
            if !held.notices.iter().any(|(q, ..)| q.key == n.key) {
                let queued = crate::notify::Queued { key: n.key.clone(), notice: n.notice.clone(), attempts: 0 };
                held.notices.push((queued, now, None));
                new += 1;
            }
        }
        Ok(new)
    }

    async fn due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<crate::notify::Queued>, StoreError> {
        use crate::notify::Settled;
        let held = self.0.lock().unwrap();
        let waiting = |s: &Option<Settled>| matches!(s, None | Some(Settled::Retry { .. }));
        Ok(held
            .notices
            .iter()
            .filter(|(_, at, s)| *at <= now && waiting(s))
            .take(limit)
            .map(|(q, ..)| q.clone())
            .collect())
    }

    async fn settle(&self, key: &str, outcome: &crate::notify::Settled, _now: DateTime<Utc>) -> Result<(), StoreError> {
        let mut held = self.0.lock().unwrap();
        if let Some((q, at, s)) = held.notices.iter_mut().find(|(q, ..)| q.key == key) {
            q.attempts += 1;
            if let crate::notify::Settled::Retry { at: next, .. } = outcome {
                *at = *next;
            }
            *s = Some(outcome.clone());
        }
        Ok(())
    }

    async fn cursor(&self, chain: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.0.lock().unwrap().cursors.get(chain).copied())
    }

    async fn advance(&self, chain: &str, seq: u64) -> Result<(), StoreError> {
        self.0.lock().unwrap().cursors.insert(chain.to_owned(), seq);
        Ok(())
    }

    async fn posted(&self, ticket: &str) -> Result<Vec<crate::notify::Posted>, StoreError> {
        Ok(self.0.lock().unwrap().posted.iter().filter(|(t, _)| t == ticket).map(|(_, p)| p.clone()).collect())
    }

    async fn record_posted(&self, ticket: &str, posted: &crate::notify::Posted) -> Result<(), StoreError> {
        self.0.lock().unwrap().posted.push((ticket.to_owned(), posted.clone()));
        Ok(())
    }
}

/// Runs a future of the in-memory ports, which never wait.
pub(crate) fn ready<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the in-memory ports never wait"),
    }
}

/// The registry of the use cases' tests: read-only is automatic, a migration takes
/// one approval, break-glass needs an open incident.
pub(crate) fn registry() -> crate::policy::PolicyRegistry {
    const REGISTRY: &str = r#"
version: "3.0"
owner: security@example.com
approver: ciso@example.com
categories:
  ops: { framework: SOC2, max_ttl: 24h, approvals: 1, weight_factor: 0.25 }
routes:
  - { match: {}, category: ops }
access:
  paths:
    read-only:   { max_ttl: 8h }
    migration:   { max_ttl: 4h, approvals: single }
    break-glass: { max_ttl: 30m }
"#;
    crate::policy::PolicyRegistry::load(&[("r.yaml".into(), REGISTRY.into())]).expect("the test registry loads")
}

/// `minutes` after 2026-11-22 12:00 UTC.
pub(crate) fn at(minutes: i64) -> DateTime<Utc> {
    "2026-11-22T12:00:00Z".parse::<DateTime<Utc>>().expect("a time") + chrono::Duration::minutes(minutes)
}

/// alice's access request `id` on schema billing of orders-prod.
pub(crate) fn access_request(
    id: &str,
    path: crate::access_policy::AccessPath,
    duration: &str,
    incident: Option<&str>,
) -> crate::request::AccessRequest {
    let body = serde_json::json!({ "id": id, "identity": "alice@example.com", "target": "orders-prod",
        "path": path, "scope": { "on": "schema", "schema": "billing" }, "duration": duration,
        "justification": "INC-7 needs a look", "incident_id": incident });
    crate::access::parse_request(body.to_string().as_bytes()).expect("a valid access request")
}

/// The ticket `request` opens in `store` at `at(0)`.
pub(crate) fn opened(store: &MemoryStore, request: &crate::request::AccessRequest) -> Ticket {
    opened_under(store, request, &registry())
}

/// The ticket `request` opens in `store` at `at(0)` under `registry`.
pub(crate) fn opened_under(
    store: &MemoryStore,
    request: &crate::request::AccessRequest,
    registry: &crate::policy::PolicyRegistry,
) -> Ticket {
    let actor = crate::identity::Actor::operator(&request.identity);
    match ready(crate::access::request_access(store, request, &actor, registry, at(0))).expect("the store answers") {
        crate::access::AccessOutcome::Created(t) => t,
        other => panic!("a new ticket: {other:?}"),
    }
}
