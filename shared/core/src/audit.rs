//! The audit journal (contract: docs/CONTRACTS.md#audit-journal): every decision is an event in a
//! hash chain.
//!
//! `hash = sha256(prev_hash || RFC 8785 canonical JSON of the event without
//! its hash)`, `seq` strictly increasing from 1 per chain, and the first
//! event's `prev_hash` is 64 zeros. Editing, deleting, reordering or
//! truncating events breaks a link that [`verify`] reports. Appends must be
//! serialized per chain by the store (a transaction, or a conditional write on
//! the chain head), so concurrent writers never fork or gap it.
//!
//! What an event says is typed in [`event`]: its kind, and one detail type
//! per kind that the constructors write and the readers read back.

use std::future::Future;

use canon_json::CanonJsonSerialize;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::StoreError;

pub mod event;

use event::{EventKind, RegistryLoaded};

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
    pub kind: EventKind,
    /// Who caused it.
    pub actor: String,
    /// What it is about (ticket id, role, finding key).
    pub subject: String,
    /// Which database.
    pub target: String,
    /// Everything else, including the registry version in force: a kind's
    /// detail type (see [`event`]) as JSON, which is what is hashed.
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
    pub kind: EventKind,
    /// Who caused it.
    pub actor: String,
    /// What it is about.
    pub subject: String,
    /// Which database.
    pub target: String,
    /// Everything else, exactly as hashed; read it with [`AuditEvent::detail_as`].
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
        kind: e.kind.as_str(),
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

/// A chain, or its part after some seq, as an archive holds it (the
/// Object-Lock bucket, or a directory copy of it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ArchivedChain {
    /// The events, in seq order (for a key overwritten or under a delete marker: its first version).
    pub events: Vec<AuditEvent>,
    /// What the events' content cannot show: delete markers, overwrites, stray objects.
    pub anomalies: Vec<Anomaly>,
}

/// The archive port: what the write-once archive of the journal holds.
pub trait AuditArchive {
    /// A chain's archived events after `seq`, in seq order, with the anomalies found among them.
    fn archived_after(&self, chain: &str, seq: u64) -> impl Future<Output = Result<ArchivedChain, StoreError>> + Send;
}

/// The journal standing in for an archive where there is none (a local run
/// without one): the comparison then always agrees, so a digest signs the
/// journal as it stands, edits made before it included.
#[derive(Debug, Clone, Copy)]
pub struct JournalAsArchive<'a, J>(pub &'a J);

impl<J: AuditJournal + Sync> AuditArchive for JournalAsArchive<'_, J> {
    async fn archived_after(&self, chain: &str, seq: u64) -> Result<ArchivedChain, StoreError> {
        Ok(ArchivedChain { events: self.0.events_after(chain, seq).await?, anomalies: Vec::new() })
    }
}

/// The side of a disagreement that no longer holds what was first recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Changed {
    /// The journal: edited, rewritten or deleted after the event was archived.
    Journal,
    /// The archive: an object overwritten, deleted, or never written.
    Archive,
    /// Neither holds the event any more.
    Both,
}

/// The first event on which a chain's journal and its archive disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error(
    "chain {chain}, seq {seq}: the archive holds {}, the journal holds {}: {reason}",
    holds(archive_hash),
    holds(journal_hash)
)]
pub struct Disagreement {
    /// The chain.
    pub chain: String,
    /// The event.
    pub seq: u64,
    /// The archived event's hash; `None`: the archive does not hold it.
    pub archive_hash: Option<String>,
    /// The journal event's hash; `None`: the journal does not hold it.
    pub journal_hash: Option<String>,
    /// Which side changed.
    pub changed: Changed,
    /// What happened, in words.
    pub reason: String,
}

fn holds(hash: &Option<String>) -> String {
    hash.as_ref().map_or_else(|| "no such event".to_owned(), |h| format!("hash {h}"))
}

impl From<Disagreement> for BrokenLink {
    fn from(d: Disagreement) -> Self {
        let reason = format!(
            "the archive holds {}, the journal holds {}: {}",
            holds(&d.archive_hash),
            holds(&d.journal_hash),
            d.reason
        );
        BrokenLink { chain: d.chain, seq: d.seq, reason }
    }
}

/// What comparing a chain's archive with its journal established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// Every seq from the start of the comparison up to this one is archived
    /// and the journal holds the same event: what a digest may sign.
    pub agreed_through: u64,
    /// Journal events after the archive's last event: not archived yet (the
    /// archive lags the journal by the stream's delay).
    pub not_archived: u64,
    /// The first event they disagree on, below the archive's last event.
    pub disagreement: Option<Disagreement>,
}

/// Compares what the archive holds of a chain after seq `after` with the
/// journal's events after it, event by event up to the archive's last one:
/// the one rule both the digest and verify apply. An event whose content
/// differs, or that one side holds and the other not, is a disagreement,
/// named with the side that changed: the archive is written once under
/// Object Lock, so unless the archive shows an overwrite or a delete at that
/// seq (`anomalies`), the journal is the side that changed. Journal events
/// after the archive's last one are only not archived yet.
pub fn compare_with_archive(chain: &str, after: u64, archived: &ArchivedChain, journal: &[AuditEvent]) -> Comparison {
    use std::collections::BTreeMap;
    let archive: BTreeMap<u64, &AuditEvent> =
        archived.events.iter().filter(|e| e.seq > after).map(|e| (e.seq, e)).collect();
    let journal: BTreeMap<u64, &AuditEvent> = journal.iter().filter(|e| e.seq > after).map(|e| (e.seq, e)).collect();
    let tail = archive.keys().next_back().copied().unwrap_or(after);
    let not_archived = journal.range(tail + 1..).count() as u64;
    let anomaly = |seq: u64| archived.anomalies.iter().find(|a| a.seq == seq).map(|a| a.reason.as_str());
    for seq in after + 1..=tail {
        let (a, j) = (archive.get(&seq).copied(), journal.get(&seq).copied());
        let (changed, reason) = match (a, j) {
            (Some(a), Some(j)) if a == j => continue,
            (Some(a), Some(j)) => match anomaly(seq) {
                Some(what) => (Changed::Archive, format!("{what}; its first version is the event as archived")),
                None if event_hash(j) != j.hash => (
                    Changed::Journal,
                    "the journal's event was edited after archiving (it no longer matches its hash)".into(),
                ),
                None if event_hash(a) != a.hash => {
                    (Changed::Archive, "the archived event does not match its own hash".into())
                }
                None => (
                    Changed::Journal,
                    "the journal was rewritten after archiving (the archived event is locked: it is the original)"
                        .into(),
                ),
            },
            (Some(_), None) => (Changed::Journal, "deleted from the journal after archiving".into()),
            (None, Some(_)) => match anomaly(seq) {
                Some(what) => (Changed::Archive, what.to_owned()),
                None => (
                    Changed::Archive,
                    "missing from the archive below its last event: never archived (see the audit failure queue) \
                     or its object was deleted"
                        .into(),
                ),
            },
            (None, None) => (Changed::Both, "neither holds it, though the archive holds later events".into()),
        };
        return Comparison {
            agreed_through: seq - 1,
            not_archived,
            disagreement: Some(Disagreement {
                chain: chain.to_owned(),
                seq,
                archive_hash: a.map(|e| e.hash.clone()),
                journal_hash: j.map(|e| e.hash.clone()),
                changed,
                reason,
            }),
        };
    }
    Comparison { agreed_through: tail, not_archived, disagreement: None }
}

impl Disagreement {
    /// The tamper signal as an event, where the journal can take one (a local
    /// store): `audit.digest_refused` on the chain, with both sides' hashes.
    pub fn event(&self, at: DateTime<Utc>) -> NewEvent {
        NewEvent::digest_refused(self, at)
    }
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
        // an event that does not read as a registry load names no registry: record this one
        if last
            .last()
            .and_then(|e| e.detail_as::<RegistryLoaded>().ok())
            .is_some_and(|d| d.sha256 == registry.id.sha256)
        {
            return Ok(false);
        }
    }
    let loaded = RegistryLoaded {
        registry_version: registry.id.version.clone(),
        sha256: registry.id.sha256.clone(),
        owner: registry.owner.clone(),
        approver: registry.approver.clone(),
    };
    journal.append(NewEvent::registry_loaded(&loaded, actor, at)).await?;
    Ok(true)
}

/// The journal port.
pub trait AuditJournal {
    /// Appends one event at the head of its chain, atomically.
    fn append(&self, event: NewEvent) -> impl Future<Output = Result<AuditEvent, StoreError>> + Send;
    /// Appends `events` in their order, each at the head of its chain; by
    /// default one [`AuditJournal::append`] after another (a store may take
    /// the head once for a run of them). On an error, those before it are
    /// on their chain.
    fn append_all(&self, events: Vec<NewEvent>) -> impl Future<Output = Result<Vec<AuditEvent>, StoreError>> + Send
    where
        Self: Sync,
    {
        async move {
            let mut out = Vec::with_capacity(events.len());
            for event in events {
                out.push(self.append(event).await?);
            }
            Ok(out)
        }
    }
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

    fn archive_of(events: &[AuditEvent]) -> ArchivedChain {
        ArchivedChain { events: events.to_vec(), anomalies: Vec::new() }
    }

    #[test]
    fn the_archive_and_the_journal_agree_up_to_the_archives_tail_and_newer_events_only_wait() {
        let journal = chain(6);
        let c = compare_with_archive("orders-prod", 0, &archive_of(&journal[..4]), &journal);
        assert_eq!((c.agreed_through, c.not_archived, c.disagreement), (4, 2, None));
        let c = compare_with_archive("orders-prod", 2, &archive_of(&journal[2..4]), &journal[2..]);
        assert_eq!((c.agreed_through, c.not_archived), (4, 2), "compared after the last digest");
        let c = compare_with_archive("orders-prod", 4, &ArchivedChain::default(), &journal[4..]);
        assert_eq!((c.agreed_through, c.not_archived), (4, 2), "nothing archived yet: nothing agreed past the start");
    }

    #[test]
    fn a_disagreement_names_the_chain_the_seq_what_each_side_holds_and_which_changed() {
        let original = chain(5);
        let archive = archive_of(&original);
        let first = |journal: &[AuditEvent], archive: &ArchivedChain| {
            let c = compare_with_archive("orders-prod", 0, archive, journal);
            let d = c.disagreement.expect("a disagreement");
            assert_eq!(c.agreed_through, d.seq - 1, "agreed up to the disagreement");
            d
        };

        // rewritten with fresh hashes after archiving
        let mut rewritten = original[..2].to_vec();
        let mut forged = event(2);
        forged.actor = "mallory@example.com".into();
        rewritten.push(seal(forged, Some((2, &original[1].hash))));
        let d = first(&rewritten, &archive);
        assert_eq!((d.seq, d.changed), (3, Changed::Journal));
        assert_eq!(d.archive_hash.as_deref(), Some(original[2].hash.as_str()));
        assert_eq!(d.journal_hash.as_deref(), Some(rewritten[2].hash.as_str()));
        let message = d.to_string();
        assert!(message.starts_with("chain orders-prod, seq 3: the archive holds hash "), "{message}");
        assert!(message.contains(&format!("the journal holds hash {}", rewritten[2].hash)), "{message}");
        assert!(message.contains("journal was rewritten after archiving"), "{message}");

        // edited in place, hash left as it was
        let mut edited = original.clone();
        edited[1].actor = "mallory@example.com".into();
        let d = first(&edited, &archive);
        assert_eq!((d.seq, d.changed), (2, Changed::Journal));
        assert!(d.reason.contains("edited after archiving"), "{d}");

        // deleted from the journal, or missing from the archive below its tail
        let mut deleted = original.clone();
        deleted.remove(3);
        let d = first(&deleted, &archive);
        assert_eq!((d.seq, d.changed, d.journal_hash.as_deref()), (4, Changed::Journal, None));
        assert!(d.to_string().contains("the journal holds no such event: deleted from the journal"), "{d}");
        let mut holed = archive.clone();
        holed.events.remove(1);
        let d = first(&original, &holed);
        assert_eq!((d.seq, d.changed, d.archive_hash.as_deref()), (2, Changed::Archive, None));

        // the archive shows its object was overwritten: the archive is the side that changed
        let mut overwritten = archive.clone();
        overwritten.anomalies.push(Anomaly { seq: 3, reason: "s3://b/k was written 2 times (overwritten)".into() });
        let d = first(&rewritten, &overwritten);
        assert_eq!((d.seq, d.changed), (3, Changed::Archive));
        assert!(d.reason.contains("overwritten"), "{d}");

        // as verify reports it, and as the journal records the refusal
        let link = BrokenLink::from(d.clone());
        assert_eq!((link.chain.as_str(), link.seq), ("orders-prod", 3));
        assert!(link.reason.starts_with("the archive holds hash"), "{link}");
        let refusal = d.event("2026-11-22T13:00:00Z".parse().unwrap());
        assert_eq!((refusal.kind.as_str(), refusal.chain.as_str()), ("audit.digest_refused", "orders-prod"));
        assert_eq!(refusal.detail["changed"], "archive");
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
