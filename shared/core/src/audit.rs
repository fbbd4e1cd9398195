//! The audit journal (contract in DESIGN.md): every decision is an event in a
//! hash chain.
//!
//! `hash = sha256(prev_hash || RFC 8785 canonical JSON of the event without
//! its hash)`, `seq` strictly increasing from 1 per chain, and the first
//! event's `prev_hash` is 64 zeros. Editing, deleting, reordering or
//! truncating events breaks a link that [`verify`] reports. Appends must be
//! serialized per chain by the store (a transaction, or a conditional write on
//! the chain head), so concurrent writers never fork or gap it.

use std::future::Future;

use canon_json::CanonJsonSerialize;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::StoreError;

/// `prev_hash` of the first event of a chain.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event before it is chained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    /// Chain (e.g. one per target, or `tickets`).
    pub chain: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened, e.g. `ticket.requested`, `scan.completed`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Who caused it.
    pub actor: String,
    /// What it is about (ticket id, role, finding key).
    pub subject: String,
    /// Which database.
    pub target: String,
    /// Everything else, including the registry version in force.
    pub detail: serde_json::Value,
}

/// A chained event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Chain.
    pub chain: String,
    /// Position in the chain, from 1.
    pub seq: u64,
    /// `<chain>:<seq>`.
    pub id: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: String,
    /// Who caused it.
    pub actor: String,
    /// What it is about.
    pub subject: String,
    /// Which database.
    pub target: String,
    /// Everything else.
    pub detail: serde_json::Value,
    /// Hash of the previous event.
    pub prev_hash: String,
    /// This event's hash.
    pub hash: String,
}

/// The event as hashed: everything but `hash`.
#[derive(Serialize)]
struct Unsealed<'a> {
    chain: &'a str,
    seq: u64,
    id: &'a str,
    at: &'a DateTime<Utc>,
    #[serde(rename = "type")]
    kind: &'a str,
    actor: &'a str,
    subject: &'a str,
    target: &'a str,
    detail: &'a serde_json::Value,
    prev_hash: &'a str,
}

/// `sha256(prev_hash || canonical_json(event without hash))`, hex.
pub fn event_hash(e: &AuditEvent) -> String {
    let unsealed = Unsealed {
        chain: &e.chain,
        seq: e.seq,
        id: &e.id,
        at: &e.at,
        kind: &e.kind,
        actor: &e.actor,
        subject: &e.subject,
        target: &e.target,
        detail: &e.detail,
        prev_hash: &e.prev_hash,
    };
    let canonical = unsealed.to_canon_json_vec().expect("an event always serializes");
    let mut h = Sha256::new();
    h.update(e.prev_hash.as_bytes());
    h.update(&canonical);
    hex::encode(h.finalize())
}

/// Chains `event` after the head `(seq, hash)` (`None` for an empty chain).
pub fn seal(event: NewEvent, head: Option<(u64, &str)>) -> AuditEvent {
    let (seq, prev_hash) = match head {
        Some((seq, hash)) => (seq + 1, hash.to_owned()),
        None => (1, GENESIS.to_owned()),
    };
    let mut e = AuditEvent {
        id: format!("{}:{seq}", event.chain),
        chain: event.chain,
        seq,
        at: event.at,
        kind: event.kind,
        actor: event.actor,
        subject: event.subject,
        target: event.target,
        detail: event.detail,
        prev_hash,
        hash: String::new(),
    };
    e.hash = event_hash(&e);
    e
}

/// The first broken link of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("chain {chain}: broken at seq {seq}: {reason}")]
pub struct BrokenLink {
    /// Chain.
    pub chain: String,
    /// Where.
    pub seq: u64,
    /// Why.
    pub reason: String,
}

/// Checks one chain's events in order: hashes, links, seq continuity, and (with
/// `head`) that nothing was cut off the end.
pub fn verify(chain: &str, events: &[AuditEvent], head: Option<(u64, &str)>) -> Result<(), BrokenLink> {
    let broken = |seq: u64, reason: String| BrokenLink { chain: chain.to_owned(), seq, reason };
    let mut prev = GENESIS.to_owned();
    for (i, e) in events.iter().enumerate() {
        let want = i as u64 + 1;
        if e.chain != chain {
            return Err(broken(want, format!("event {} belongs to chain {}", e.id, e.chain)));
        }
        if e.seq != want {
            return Err(broken(
                want,
                format!("expected seq {want}, found {} (an event is missing or out of order)", e.seq),
            ));
        }
        if e.prev_hash != prev {
            return Err(broken(e.seq, "prev_hash does not match the previous event's hash".into()));
        }
        if event_hash(e) != e.hash {
            return Err(broken(e.seq, "hash does not match the event's content (edited)".into()));
        }
        prev = e.hash.clone();
    }
    if let Some((seq, hash)) = head {
        let last = events.last().map(|e| (e.seq, e.hash.as_str())).unwrap_or((0, GENESIS));
        if last.0 != seq || last.1 != hash {
            return Err(broken(
                last.0 + 1,
                format!("the chain ends at seq {} but its head is seq {seq} (truncated)", last.0),
            ));
        }
    }
    Ok(())
}

/// Something wrong with an archived event that its content cannot show
/// (found by the reader of an archive): a delete marker over it, an
/// overwritten version, an object that is not an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Anomaly {
    /// The seq the object stands for.
    pub seq: u64,
    /// What is wrong.
    pub reason: String,
}

/// The result of checking one chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// The chain.
    pub chain: String,
    /// Events found.
    pub events: u64,
    /// The journal head, where one was at hand.
    pub head: Option<u64>,
    /// The signed digests, where checked.
    pub digests: Option<crate::digest::DigestCheck>,
    /// Journal events not (yet) in the archive, where both were compared.
    pub not_archived: Option<u64>,
    /// The first broken link; `None`: the chain verifies.
    pub broken: Option<BrokenLink>,
}

/// Checks one chain as found in a journal or an archive: every hash and
/// link ([`verify`], against `head` when one is known), the archive's own
/// anomalies, and (with `digests`) the signed digests against `trusted` key
/// fingerprints. The earliest problem is the one reported.
pub fn check_chain(
    chain: &str,
    events: &[AuditEvent],
    head: Option<(u64, &str)>,
    anomalies: &[Anomaly],
    digests: Option<(&[crate::digest::Digest], &[String])>,
) -> ChainReport {
    let mut problems: Vec<BrokenLink> = anomalies
        .iter()
        .map(|a| BrokenLink { chain: chain.to_owned(), seq: a.seq, reason: a.reason.clone() })
        .collect();
    if let Err(e) = verify(chain, events, head) {
        problems.push(e);
    }
    let digest_check = digests.map(|(digests, trusted)| crate::digest::verify_digests(chain, digests, events, trusted));
    let digests = match digest_check {
        Some(Ok(check)) => Some(check),
        Some(Err(e)) => {
            problems.push(e);
            None
        }
        None => None,
    };
    // stable: an anomaly (the precise reason) wins over what it causes at the same seq
    problems.sort_by_key(|p| p.seq);
    ChainReport {
        chain: chain.to_owned(),
        events: events.len() as u64,
        head: head.map(|(seq, _)| seq),
        digests,
        not_archived: None,
        broken: problems.into_iter().next(),
    }
}

/// Compares an archived chain with the journal's: every archived event must
/// be the journal's event at its seq, byte for byte in what the hash covers.
/// Returns how many journal events are not archived yet (the archive may lag
/// the stream by seconds; a hole in the middle is [`verify`]'s to report).
pub fn compare_with_journal(chain: &str, archived: &[AuditEvent], journal: &[AuditEvent]) -> Result<u64, BrokenLink> {
    for a in archived {
        // the journal is read in seq order
        match journal.binary_search_by_key(&a.seq, |j| j.seq).ok().map(|i| &journal[i]) {
            Some(j) if j.hash == a.hash => {}
            Some(j) => {
                return Err(BrokenLink {
                    chain: chain.to_owned(),
                    seq: a.seq,
                    reason: format!("the archive holds hash {} but the journal holds {}", a.hash, j.hash),
                });
            }
            None => {
                return Err(BrokenLink {
                    chain: chain.to_owned(),
                    seq: a.seq,
                    reason: "archived, but the journal has no such event (deleted from the journal)".into(),
                });
            }
        }
    }
    let archived_through = archived.iter().map(|a| a.seq).max().unwrap_or(0);
    Ok(journal.iter().filter(|j| j.seq > archived_through).count() as u64)
}

/// The chain that records which policy registry versions were put in force.
pub const REGISTRY_CHAIN: &str = "policy-registry";

/// Journals `registry.loaded` (version, content sha256, owner, approver) on
/// [`REGISTRY_CHAIN`] when the registry in force differs from the last one
/// recorded there; a registry loaded again unchanged adds nothing. Returns
/// whether an event was appended. Two loaders racing may both record the
/// same version once each: harmless, the chain stays whole.
pub async fn note_registry<J: AuditJournal + Sync>(
    journal: &J,
    registry: &crate::policy::PolicyRegistry,
    actor: &str,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    if let Some((seq, _)) = journal.head(REGISTRY_CHAIN).await? {
        let last = journal.events_after(REGISTRY_CHAIN, seq.saturating_sub(1)).await?;
        if last.last().is_some_and(|e| e.detail["sha256"] == registry.id.sha256.as_str()) {
            return Ok(false);
        }
    }
    journal
        .append(NewEvent {
            chain: REGISTRY_CHAIN.to_owned(),
            at,
            kind: "registry.loaded".into(),
            actor: actor.to_owned(),
            subject: format!("registry {}", registry.id.version),
            target: String::new(),
            detail: serde_json::json!({
                "registry_version": registry.id.version,
                "sha256": registry.id.sha256,
                "owner": registry.owner,
                "approver": registry.approver,
            }),
        })
        .await?;
    Ok(true)
}

/// The journal port.
pub trait AuditJournal {
    /// Appends one event at the head of its chain, atomically.
    fn append(&self, event: NewEvent) -> impl Future<Output = Result<AuditEvent, StoreError>> + Send;
    /// A chain's events in order.
    fn events(&self, chain: &str) -> impl Future<Output = Result<Vec<AuditEvent>, StoreError>> + Send {
        self.events_after(chain, 0)
    }
    /// A chain's events after `seq`, in order.
    fn events_after(&self, chain: &str, seq: u64) -> impl Future<Output = Result<Vec<AuditEvent>, StoreError>> + Send;
    /// The names of every chain.
    fn chains(&self) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
    /// A chain's head `(seq, hash)`, kept apart from the events so truncation shows.
    fn head(&self, chain: &str) -> impl Future<Output = Result<Option<(u64, String)>, StoreError>> + Send;
}

impl NewEvent {
    /// An event about a ticket, on its target's chain, with the registry version in force.
    pub fn for_ticket(t: &crate::ticket::Ticket, kind: &str, actor: &str, at: DateTime<Utc>) -> Self {
        NewEvent {
            chain: t.request.target.as_str().to_owned(),
            at,
            kind: kind.to_owned(),
            actor: actor.to_owned(),
            subject: t.id.clone(),
            target: t.request.target.as_str().to_owned(),
            detail: serde_json::json!({
                "registry_version": t.registry.version,
                "registry_sha256": t.registry.sha256,
                "category": t.category,
                "status": t.status,
                "role": t.request.role,
                "principal": t.request.principal,
                "privileges": t.request.privileges,
                "object": t.request.object,
                "expires_at": t.expires_at,
                "delivery_id": t.request.delivery_id,
            }),
        }
    }

    /// An event about a finding (e.g. untagged input).
    pub fn for_finding(target: &str, f: &crate::report::Finding, kind: &str, actor: &str, at: DateTime<Utc>) -> Self {
        NewEvent {
            chain: target.to_owned(),
            at,
            kind: kind.to_owned(),
            actor: actor.to_owned(),
            subject: crate::store::finding_key(f),
            target: target.to_owned(),
            detail: serde_json::to_value(f).expect("a finding always serializes"),
        }
    }

    /// The end of a scan: `scan.completed` or `scan.incomplete`, with the summary.
    pub fn for_scan(report: &crate::report::Report, registry_version: Option<&str>, at: DateTime<Utc>) -> Self {
        let kind = if report.summary.complete { "scan.completed" } else { "scan.incomplete" };
        NewEvent {
            chain: report.target.as_str().to_owned(),
            at,
            kind: kind.to_owned(),
            actor: "grantwarden".to_owned(),
            subject: report.scan_id.clone(),
            target: report.target.as_str().to_owned(),
            detail: serde_json::json!({
                "registry_version": registry_version,
                "snapshot_sha256": report.snapshot_sha256,
                "summary": report.summary,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn event(n: u32) -> NewEvent {
        NewEvent {
            chain: "orders-prod".into(),
            at: "2026-11-22T12:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::Duration::seconds(n.into()),
            kind: "ticket.requested".into(),
            actor: "alice@example.com".into(),
            subject: format!("tkt-{n}"),
            target: "orders-prod".into(),
            detail: serde_json::json!({ "registry_version": "2.1", "n": n, "note": "é\u{1}" }),
        }
    }

    fn chain(n: u32) -> Vec<AuditEvent> {
        let mut out: Vec<AuditEvent> = Vec::new();
        for i in 0..n {
            let head = out.last().map(|e| (e.seq, e.hash.clone()));
            out.push(seal(event(i), head.as_ref().map(|(s, h)| (*s, h.as_str()))));
        }
        out
    }

    #[test]
    fn the_hash_follows_the_contract() {
        let e = seal(event(0), None);
        assert_eq!((e.seq, e.prev_hash.as_str(), e.id.as_str()), (1, GENESIS, "orders-prod:1"));
        let canonical = br#"{"actor":"alice@example.com","at":"2026-11-22T12:00:00Z","chain":"orders-prod","detail":{"n":0,"note":"\u00e9\u0001","registry_version":"2.1"},"id":"orders-prod:1","prev_hash":"0000000000000000000000000000000000000000000000000000000000000000","seq":1,"subject":"tkt-0","target":"orders-prod","type":"ticket.requested"}"#;
        let canonical = String::from_utf8(canonical.to_vec()).unwrap().replace("\\u00e9", "é");
        let mut h = Sha256::new();
        h.update(GENESIS.as_bytes());
        h.update(canonical.as_bytes());
        assert_eq!(e.hash, hex::encode(h.finalize()), "sha256(prev_hash || RFC 8785 JSON without hash)");
    }

    #[test]
    fn every_kind_of_tampering_is_reported_at_its_link() {
        let good = chain(5);
        let head = (5, good[4].hash.as_str());
        assert_eq!(verify("orders-prod", &good, Some(head)), Ok(()));
        let mut edited = good.clone();
        edited[2].actor = "mallory@example.com".into();
        assert_eq!(verify("orders-prod", &edited, Some(head)).unwrap_err().seq, 3);
        let mut deleted = good.clone();
        deleted.remove(1);
        assert!(verify("orders-prod", &deleted, Some(head)).unwrap_err().reason.contains("missing or out of order"));
        let mut reordered = good.clone();
        reordered.swap(1, 2);
        assert_eq!(verify("orders-prod", &reordered, Some(head)).unwrap_err().seq, 2);
        let truncated = &good[..3];
        let e = verify("orders-prod", truncated, Some(head)).unwrap_err();
        assert!(e.reason.contains("truncated"), "{e}");
        // a rewritten tail with fresh hashes still breaks against the recorded head
        let mut rewritten = good[..3].to_vec();
        let mut forged = event(9);
        forged.actor = "mallory".into();
        rewritten.push(seal(forged, Some((3, &good[2].hash))));
        assert!(verify("orders-prod", &rewritten, Some(head)).is_err());
    }

    proptest! {
        #[test]
        fn any_single_edit_breaks_the_chain(n in 1u32..12, victim in 0usize..12, field in 0u8..4) {
            let mut events = chain(n);
            let victim = victim % events.len();
            let head = (events.last().unwrap().seq, events.last().unwrap().hash.clone());
            match field {
                0 => events[victim].subject.push('x'),
                1 => events[victim].detail = serde_json::json!({ "changed": true }),
                2 => events[victim].at += chrono::Duration::seconds(1),
                _ => events[victim].kind = "ticket.revoked".into(),
            }
            prop_assert!(verify("orders-prod", &events, Some((head.0, &head.1))).is_err());
        }
    }
}
