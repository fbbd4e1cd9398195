//! Signed digests of the audit journal, in the manner of CloudTrail log file
//! validation.
//!
//! Every hour (the audit Lambda's schedule, or `grantwarden audit digest`
//! from cron) each chain with new archived events gets a digest: the seq,
//! time and hash of every event archived since the previous digest, the
//! previous digest's sha256, and an Ed25519 signature over the RFC 8785 JSON
//! of all of that. Digests are numbered from 1 per chain.
//!
//! What is signed is what the write-once archive holds, not the journal: the
//! journal has several writers, and a rewrite of it made before the hour's
//! digest would otherwise be signed, and verify would later blame the
//! archive. [`digest_chains`] signs an event only once the archive holds it
//! and the journal still holds the same event, and refuses (a tamper signal)
//! where they disagree.
//!
//! What they add to the hash chain: someone who can write the journal can
//! rewrite a whole chain and recompute every hash and the head, but cannot
//! sign a digest without the key, so [`verify_digests`] catches the rewrite.
//! They also anchor the tail: a chain or archive that ends before the last
//! digested seq was truncated, even where no head is at hand (a directory
//! export, the S3 archive). Deleting the newest digests cannot be told from a
//! digest job that has not run, which is why verify prints when the last
//! digest was made.

use std::future::Future;

use canon_json::CanonJsonSerialize;
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::audit::{
    Anomaly, AuditArchive, AuditEvent, BrokenLink, Disagreement, GENESIS, compare_with_archive, verify,
};
use crate::error::StoreError;

/// One event as a digest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DigestEntry {
    /// Its seq.
    pub seq: u64,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// Its hash.
    pub hash: String,
}

/// A signed digest of the events a chain gained since the previous digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// The chain.
    pub chain: String,
    /// 1, 2, ... per chain.
    pub number: u64,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// First seq it covers (the previous digest's `last_seq` + 1).
    pub first_seq: u64,
    /// Last seq it covers.
    pub last_seq: u64,
    /// Every event from `first_seq` to `last_seq`.
    pub events: Vec<DigestEntry>,
    /// sha256 of the previous digest's JSON (64 zeros for the first).
    pub previous_digest_sha256: String,
    /// The Ed25519 public key, hex.
    pub public_key: String,
    /// sha256 of the public key, hex: what verify pins.
    pub key_fingerprint: String,
    /// Ed25519 signature over the RFC 8785 JSON of every other field, hex.
    pub signature: String,
}

/// The digest as signed: everything but the signature.
#[derive(Serialize)]
struct Unsigned<'a> {
    chain: &'a str,
    number: u64,
    created_at: &'a DateTime<Utc>,
    first_seq: u64,
    last_seq: u64,
    events: &'a [DigestEntry],
    previous_digest_sha256: &'a str,
    public_key: &'a str,
    key_fingerprint: &'a str,
}

impl Digest {
    fn signed_bytes(&self) -> Vec<u8> {
        Unsigned {
            chain: &self.chain,
            number: self.number,
            created_at: &self.created_at,
            first_seq: self.first_seq,
            last_seq: self.last_seq,
            events: &self.events,
            previous_digest_sha256: &self.previous_digest_sha256,
            public_key: &self.public_key,
            key_fingerprint: &self.key_fingerprint,
        }
        .to_canon_json_vec()
        .expect("a digest always serializes")
    }

    /// sha256 of the whole digest (signature included) as RFC 8785 JSON: the next digest's link.
    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(self.to_canon_json_vec().expect("a digest always serializes")))
    }
}

/// A signing key that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("audit signing key {source_name}: {reason}")]
pub struct KeyError {
    /// Where the key came from (a file, a secret).
    pub source_name: String,
    /// Why.
    pub reason: String,
}

/// The Ed25519 key that signs digests.
pub struct DigestKey {
    key: SigningKey,
}

impl std::fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DigestKey({})", self.fingerprint())
    }
}

impl DigestKey {
    /// A new random key.
    pub fn generate() -> Self {
        Self { key: SigningKey::from_bytes(&rand::random::<[u8; 32]>()) }
    }

    /// A PKCS#8 PEM private key (what `openssl genpkey -algorithm ed25519` writes).
    pub fn from_pem(pem: &str, source_name: &str) -> Result<Self, KeyError> {
        SigningKey::from_pkcs8_pem(pem.trim()).map(|key| Self { key }).map_err(|e| KeyError {
            source_name: source_name.to_owned(),
            reason: format!("not an Ed25519 PKCS#8 PEM key: {e}"),
        })
    }

    /// The key a secret holds: a PKCS#8 PEM key, or any other string of at
    /// least 32 characters (a generated secret) whose sha256 is the seed.
    pub fn from_secret(secret: &str, source_name: &str) -> Result<Self, KeyError> {
        if secret.trim_start().starts_with("-----BEGIN") {
            return Self::from_pem(secret, source_name);
        }
        if secret.chars().count() < 32 {
            return Err(KeyError {
                source_name: source_name.to_owned(),
                reason: "neither a PEM key nor a secret of at least 32 characters".into(),
            });
        }
        Ok(Self { key: SigningKey::from_bytes(&Sha256::digest(secret.as_bytes()).into()) })
    }

    /// The key as PKCS#8 PEM, for a key file.
    pub fn to_pem(&self) -> String {
        self.key.to_pkcs8_pem(Default::default()).expect("an Ed25519 key always encodes").to_string()
    }

    /// sha256 of the public key, hex.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.key.verifying_key())
    }

    /// Signs the digest of `events` (those after `previous`, in seq order);
    /// `None` when there is nothing new to sign.
    pub fn next_digest(
        &self,
        chain: &str,
        previous: Option<&Digest>,
        events: &[AuditEvent],
        now: DateTime<Utc>,
    ) -> Option<Digest> {
        let after = previous.map_or(0, |d| d.last_seq);
        let events: Vec<DigestEntry> = events
            .iter()
            .filter(|e| e.seq > after)
            .map(|e| DigestEntry { seq: e.seq, at: e.at, hash: e.hash.clone() })
            .collect();
        let last_seq = events.last()?.seq;
        let mut digest = Digest {
            chain: chain.to_owned(),
            number: previous.map_or(1, |d| d.number + 1),
            created_at: now,
            first_seq: after + 1,
            last_seq,
            events,
            previous_digest_sha256: previous.map_or_else(|| GENESIS.to_owned(), Digest::sha256),
            public_key: hex::encode(self.key.verifying_key().as_bytes()),
            key_fingerprint: self.fingerprint(),
            signature: String::new(),
        };
        digest.signature = hex::encode(self.key.sign(&digest.signed_bytes()).to_bytes());
        Some(digest)
    }
}

fn fingerprint(key: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Where digests are kept: the local store, or the audit bucket.
pub trait DigestStore {
    /// Stores a digest; refused (an error) when its number is taken.
    fn put_digest(&self, digest: &Digest) -> impl Future<Output = Result<(), StoreError>> + Send;
    /// A chain's digests in number order.
    fn digests(&self, chain: &str) -> impl Future<Output = Result<Vec<Digest>, StoreError>> + Send;
    /// A chain's newest digest.
    fn last_digest(&self, chain: &str) -> impl Future<Output = Result<Option<Digest>, StoreError>> + Send;
}

/// What one digest run did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DigestRun {
    /// The digests signed and stored.
    pub made: Vec<Digest>,
    /// The chains whose journal and archive disagree: nothing past the
    /// disagreement was signed. A tamper signal, to be alerted or journaled.
    pub refused: Vec<Disagreement>,
}

/// Makes the next digest of each chain whose archive gained events since its
/// last one, signed with `key`, and stores it.
///
/// A digest signs only what the archive holds, and only as far as the
/// journal holds the same ([`compare_with_archive`]): the archive is written
/// once, under Object Lock, by the only function that reads the journal's
/// stream, while the journal has several writers; a rewrite of the journal
/// before the digest is thus refused here instead of signed. Journal events
/// the archive does not hold yet wait for the next run. Where the two
/// disagree, what comes before the disagreement is signed and the chain is
/// returned in [`DigestRun::refused`]; the other chains are not held up.
pub async fn digest_chains<J, A, D>(
    journal: &J,
    archive: &A,
    store: &D,
    chains: &[String],
    key: &DigestKey,
    now: DateTime<Utc>,
) -> Result<DigestRun, StoreError>
where
    J: crate::audit::AuditJournal + Sync,
    A: AuditArchive + Sync,
    D: DigestStore + Sync,
{
    let mut run = DigestRun::default();
    for chain in chains {
        let previous = store.last_digest(chain).await?;
        let after = previous.as_ref().map_or(0, |d| d.last_seq);
        let archived = archive.archived_after(chain, after).await?;
        let journaled = journal.events_after(chain, after).await?;
        let comparison = compare_with_archive(chain, after, &archived, &journaled);
        let agreed: Vec<AuditEvent> =
            archived.events.into_iter().filter(|e| e.seq > after && e.seq <= comparison.agreed_through).collect();
        if let Some(digest) = key.next_digest(chain, previous.as_ref(), &agreed, now) {
            store.put_digest(&digest).await?;
            run.made.push(digest);
        }
        run.refused.extend(comparison.disagreement);
    }
    Ok(run)
}

/// What checking a chain's digests established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DigestCheck {
    /// Digests checked.
    pub digests: u64,
    /// Every event up to this seq is in a signed digest (0: none).
    pub digested_through: u64,
    /// When the newest digest was made.
    pub last_digest_at: Option<DateTime<Utc>>,
}

/// Checks a chain's digests (in number order) against its events (in seq
/// order, as found): numbering, links, signatures, the key's fingerprint
/// against `trusted`, and that every signed (seq, hash) is in the chain.
pub fn verify_digests(
    chain: &str,
    digests: &[Digest],
    events: &[AuditEvent],
    trusted: &[String],
) -> Result<DigestCheck, BrokenLink> {
    let broken = |seq: u64, reason: String| BrokenLink { chain: chain.to_owned(), seq, reason };
    let mut previous_sha = GENESIS.to_owned();
    let mut through = 0;
    for (i, d) in digests.iter().enumerate() {
        let n = i as u64 + 1;
        let at = through + 1;
        if d.chain != chain {
            return Err(broken(at, format!("digest {} belongs to chain {}", d.number, d.chain)));
        }
        if d.number != n {
            return Err(broken(at, format!("expected digest {n}, found digest {} (a digest is missing)", d.number)));
        }
        if d.previous_digest_sha256 != previous_sha {
            return Err(broken(at, format!("digest {n} does not link to digest {}", n - 1)));
        }
        let key = hex::decode(&d.public_key)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .and_then(|b| VerifyingKey::from_bytes(&b).ok())
            .ok_or_else(|| broken(at, format!("digest {n} has an unreadable public key")))?;
        if fingerprint(&key) != d.key_fingerprint {
            return Err(broken(at, format!("digest {n}: the key fingerprint does not match its public key")));
        }
        if !trusted.iter().any(|t| t.eq_ignore_ascii_case(&d.key_fingerprint)) {
            return Err(broken(
                at,
                format!("digest {n} is signed by key {}, which is not the trusted key", d.key_fingerprint),
            ));
        }
        let signature = hex::decode(&d.signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| Signature::from_bytes(&b))
            .ok_or_else(|| broken(at, format!("digest {n} has an unreadable signature")))?;
        if key.verify(&d.signed_bytes(), &signature).is_err() {
            return Err(broken(at, format!("digest {n}: the signature does not verify (the digest was altered)")));
        }
        if d.first_seq != through + 1 || d.events.first().map(|e| e.seq) != Some(d.first_seq) {
            return Err(broken(at, format!("digest {n} starts at seq {}, not {}", d.first_seq, through + 1)));
        }
        for (j, entry) in d.events.iter().enumerate() {
            if entry.seq != d.first_seq + j as u64 {
                return Err(broken(at, format!("digest {n} skips seq {}", d.first_seq + j as u64)));
            }
            match events.get(entry.seq as usize - 1) {
                Some(e) if e.seq == entry.seq && e.hash == entry.hash => {}
                Some(e) if e.seq == entry.seq => {
                    return Err(broken(
                        entry.seq,
                        format!("signed digest {n} holds hash {} but the event has {} (rewritten)", entry.hash, e.hash),
                    ));
                }
                _ => {
                    return Err(broken(
                        entry.seq,
                        format!("signed digest {n} lists seq {} but the chain does not hold it there", entry.seq),
                    ));
                }
            }
        }
        if d.events.last().map(|e| e.seq) != Some(d.last_seq) {
            return Err(broken(at, format!("digest {n} says it ends at seq {} but lists fewer events", d.last_seq)));
        }
        through = d.last_seq;
        previous_sha = d.sha256();
    }
    Ok(DigestCheck {
        digests: digests.len() as u64,
        digested_through: through,
        last_digest_at: digests.last().map(|d| d.created_at),
    })
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
    pub digests: Option<DigestCheck>,
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
    digests: Option<(&[Digest], &[String])>,
) -> ChainReport {
    let mut problems: Vec<BrokenLink> = anomalies
        .iter()
        .map(|a| BrokenLink { chain: chain.to_owned(), seq: a.seq, reason: a.reason.clone() })
        .collect();
    if let Err(e) = verify(chain, events, head) {
        problems.push(e);
    }
    let digest_check = digests.map(|(digests, trusted)| verify_digests(chain, digests, events, trusted));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{NewEvent, seal};

    fn chain(n: u64, actor: &str) -> Vec<AuditEvent> {
        let mut out: Vec<AuditEvent> = Vec::new();
        for i in 0..n {
            let head = out.last().map(|e| (e.seq, e.hash.clone()));
            let event = NewEvent {
                chain: "orders-prod".into(),
                at: DateTime::from_timestamp(1_790_000_000 + i as i64 * 60, 0).unwrap(),
                kind: "scan.started".into(),
                actor: actor.into(),
                subject: format!("scan-{i}"),
                target: "orders-prod".into(),
                detail: serde_json::json!({}),
            };
            out.push(seal(event, head.as_ref().map(|(s, h)| (*s, h.as_str()))));
        }
        out
    }

    fn digests(key: &DigestKey, events: &[AuditEvent], cuts: &[usize]) -> Vec<Digest> {
        let mut out: Vec<Digest> = Vec::new();
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        for &cut in cuts {
            if let Some(d) = key.next_digest("orders-prod", out.last(), &events[..cut], now) {
                out.push(d);
            }
        }
        out
    }

    #[test]
    fn digests_cover_each_new_event_once_and_verify() {
        let key = DigestKey::generate();
        let events = chain(7, "alice");
        let ds = digests(&key, &events, &[3, 3, 5, 7]);
        assert_eq!(
            ds.iter().map(|d| (d.number, d.first_seq, d.last_seq)).collect::<Vec<_>>(),
            [(1, 1, 3), (2, 4, 5), (3, 6, 7)]
        );
        let check = verify_digests("orders-prod", &ds, &events, &[key.fingerprint()]).unwrap();
        assert_eq!((check.digests, check.digested_through), (3, 7));
    }

    #[test]
    fn a_rewritten_chain_with_fresh_hashes_is_caught_by_the_signed_digests() {
        let key = DigestKey::generate();
        let events = chain(5, "alice");
        let ds = digests(&key, &events, &[5]);
        let forged = chain(5, "mallory");
        assert!(crate::audit::verify("orders-prod", &forged, None).is_ok(), "the forgery is a valid chain on its own");
        let e = verify_digests("orders-prod", &ds, &forged, &[key.fingerprint()]).unwrap_err();
        assert_eq!(e.seq, 1);
        assert!(e.reason.contains("rewritten"), "{e}");
    }

    #[test]
    fn a_forged_unlinked_or_untrusted_digest_is_refused_and_truncation_below_a_digest_shows() {
        let key = DigestKey::generate();
        let events = chain(6, "alice");
        let ds = digests(&key, &events, &[2, 4, 6]);
        let trusted = [key.fingerprint()];

        let mut altered = ds.clone();
        altered[1].events[0].hash = events[0].hash.clone();
        assert!(verify_digests("orders-prod", &altered, &events, &trusted).unwrap_err().reason.contains("signature"));

        let e = verify_digests("orders-prod", &[ds[0].clone(), ds[2].clone()], &events, &trusted).unwrap_err();
        assert!(e.reason.contains("digest 2"), "{e}");

        let other = DigestKey::generate();
        let e = verify_digests("orders-prod", &digests(&other, &events, &[6]), &events, &trusted).unwrap_err();
        assert!(e.reason.contains("not the trusted key"), "{e}");

        let e = verify_digests("orders-prod", &ds, &events[..4], &trusted).unwrap_err();
        assert_eq!(e.seq, 5, "{e}");
    }

    /// In-memory ports: a journal, an archive and a digest store.
    #[derive(Default)]
    struct Memory {
        journal: std::sync::Mutex<Vec<AuditEvent>>,
        archive: std::sync::Mutex<Vec<AuditEvent>>,
        digests: std::sync::Mutex<Vec<Digest>>,
    }

    impl crate::audit::AuditJournal for Memory {
        async fn append(&self, _: crate::audit::NewEvent) -> Result<AuditEvent, StoreError> {
            Err(StoreError::Unavailable("the tests seal their events".into()))
        }
        async fn events_after(&self, _: &str, seq: u64) -> Result<Vec<AuditEvent>, StoreError> {
            Ok(self.journal.lock().unwrap().iter().filter(|e| e.seq > seq).cloned().collect())
        }
        async fn chains(&self) -> Result<Vec<String>, StoreError> {
            Ok(vec!["orders-prod".into()])
        }
        async fn head(&self, _: &str) -> Result<Option<(u64, String)>, StoreError> {
            Ok(self.journal.lock().unwrap().last().map(|e| (e.seq, e.hash.clone())))
        }
    }

    impl AuditArchive for Memory {
        async fn archived_after(&self, _: &str, seq: u64) -> Result<crate::audit::ArchivedChain, StoreError> {
            let events = self.archive.lock().unwrap().iter().filter(|e| e.seq > seq).cloned().collect();
            Ok(crate::audit::ArchivedChain { events, anomalies: Vec::new() })
        }
    }

    impl DigestStore for Memory {
        async fn put_digest(&self, digest: &Digest) -> Result<(), StoreError> {
            self.digests.lock().unwrap().push(digest.clone());
            Ok(())
        }
        async fn digests(&self, _: &str) -> Result<Vec<Digest>, StoreError> {
            Ok(self.digests.lock().unwrap().clone())
        }
        async fn last_digest(&self, _: &str) -> Result<Option<Digest>, StoreError> {
            Ok(self.digests.lock().unwrap().last().cloned())
        }
    }

    /// Runs a future of the in-memory ports, which never wait.
    fn ready<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        match f.as_mut().poll(&mut std::task::Context::from_waker(std::task::Waker::noop())) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("the in-memory ports never wait"),
        }
    }

    fn run(m: &Memory, key: &DigestKey) -> DigestRun {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        ready(digest_chains(m, m, m, &["orders-prod".to_owned()], key, now)).unwrap()
    }

    #[test]
    fn a_digest_signs_only_what_the_archive_holds_and_the_journal_still_holds() {
        let key = DigestKey::generate();
        let events = chain(5, "alice");
        let m = Memory::default();
        *m.journal.lock().unwrap() = events.clone();
        *m.archive.lock().unwrap() = events[..3].to_vec();
        let first = run(&m, &key);
        assert_eq!(first.made.iter().map(|d| (d.first_seq, d.last_seq)).collect::<Vec<_>>(), [(1, 3)]);
        assert!(first.refused.is_empty(), "seq 4 and 5 are only not archived yet");
        assert!(run(&m, &key).made.is_empty(), "nothing newly archived: no digest");
        *m.archive.lock().unwrap() = events.clone();
        let second = run(&m, &key);
        assert_eq!(second.made.iter().map(|d| (d.number, d.first_seq, d.last_seq)).collect::<Vec<_>>(), [(2, 4, 5)]);
        let all = m.digests.lock().unwrap().clone();
        assert_eq!(verify_digests("orders-prod", &all, &events, &[key.fingerprint()]).unwrap().digested_through, 5);
    }

    #[test]
    fn a_journal_rewritten_before_its_digest_is_refused_not_signed() {
        let key = DigestKey::generate();
        let original = chain(5, "alice");
        let m = Memory::default();
        *m.archive.lock().unwrap() = original.clone();
        // within the hour, someone who can write the journal rewrites it from
        // seq 3 on, hashes and all: the chain alone verifies
        let mut forged = original[..2].to_vec();
        for e in &chain(5, "mallory")[2..] {
            let mut e = e.clone();
            e.prev_hash = forged.last().unwrap().hash.clone();
            e.hash = crate::audit::event_hash(&e);
            forged.push(e);
        }
        assert!(crate::audit::verify("orders-prod", &forged, None).is_ok());
        *m.journal.lock().unwrap() = forged.clone();

        let refused = run(&m, &key);
        assert_eq!(refused.made.iter().map(|d| (d.first_seq, d.last_seq)).collect::<Vec<_>>(), [(1, 2)]);
        let [d] = &refused.refused[..] else { panic!("one refusal: {refused:?}") };
        assert_eq!((d.chain.as_str(), d.seq, d.changed), ("orders-prod", 3, crate::audit::Changed::Journal));
        assert_eq!(d.archive_hash.as_deref(), Some(original[2].hash.as_str()));
        assert_eq!(d.journal_hash.as_deref(), Some(forged[2].hash.as_str()));
        // every run refuses again until the journal is restored; nothing past seq 2 is ever signed
        let again = run(&m, &key);
        assert!(again.made.is_empty() && again.refused.len() == 1, "{again:?}");
        *m.journal.lock().unwrap() = original.clone();
        let restored = run(&m, &key);
        assert_eq!(restored.made.iter().map(|d| (d.first_seq, d.last_seq)).collect::<Vec<_>>(), [(3, 5)]);
    }

    #[test]
    fn without_an_archive_the_journal_is_signed_as_it_stands() {
        let key = DigestKey::generate();
        let m = Memory::default();
        *m.journal.lock().unwrap() = chain(3, "mallory");
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let journal_only = crate::audit::JournalAsArchive(&m);
        let run = ready(digest_chains(&m, &journal_only, &m, &["orders-prod".to_owned()], &key, now)).unwrap();
        assert_eq!(run.made.iter().map(|d| d.last_seq).collect::<Vec<_>>(), [3]);
        assert!(run.refused.is_empty());
    }

    #[test]
    fn keys_round_trip_through_pem_and_a_generated_secret_is_a_stable_seed() {
        let key = DigestKey::generate();
        let again = DigestKey::from_pem(&key.to_pem(), "test").unwrap();
        assert_eq!(again.fingerprint(), key.fingerprint());
        let secret = "x".repeat(40);
        assert_eq!(
            DigestKey::from_secret(&secret, "s").unwrap().fingerprint(),
            DigestKey::from_secret(&secret, "s").unwrap().fingerprint()
        );
        assert!(DigestKey::from_secret("short", "s").unwrap_err().to_string().contains("32 characters"));
        assert!(DigestKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "f").is_err());
    }
}
