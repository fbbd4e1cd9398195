//! A journal and findings written before audit events and findings were
//! typed (`fixtures/README.md` says how they were made): they still read,
//! verify, and serialize back byte for byte, so every stored hash and
//! finding key stays valid; and the typed readers read every event of it.

use grantwarden_core::audit::event::{
    AccessTurnedDown, AlertRaised, Denied, EventDetail, EventKind, FindingOpenedOrClosed, FindingsBulk, IssueRefused,
    Issued, QueriesIngested, QueryAlerted, RegistryLoaded, Remediation, RevocationExecuted, RevocationFailed,
    RevocationPlanned, RevokeRequested, Revoked, ScanEnded, ScanStarted, TicketDetail,
};
use grantwarden_core::audit::{AuditEvent, Disagreement, verify};
use grantwarden_core::report::Finding;
use grantwarden_core::store::finding_key;

const JOURNAL: &str = include_str!("fixtures/journal-v1.jsonl");
const FINDINGS: &str = include_str!("fixtures/findings-v1.jsonl");

/// The journal's events as stored, each with its line; a chain starts at each seq 1.
fn chains() -> Vec<Vec<(AuditEvent, &'static str)>> {
    let mut chains: Vec<Vec<(AuditEvent, &'static str)>> = Vec::new();
    for (i, line) in JOURNAL.lines().enumerate() {
        let event: AuditEvent =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: not an event: {e}", i + 1));
        if event.seq == 1 {
            chains.push(Vec::new());
        }
        chains.last_mut().expect("the journal starts with a seq 1").push((event, line));
    }
    chains
}

#[test]
fn every_chain_of_a_journal_written_before_typed_events_still_verifies() {
    let chains = chains();
    assert_eq!(chains.len(), 16);
    for chain in &chains {
        let events: Vec<AuditEvent> = chain.iter().map(|(e, _)| e.clone()).collect();
        let last = events.last().expect("a chain holds an event");
        verify(&last.chain, &events, Some((last.seq, &last.hash))).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn every_event_of_the_old_journal_serializes_back_byte_for_byte() {
    let mut n = 0;
    for (event, line) in chains().into_iter().flatten() {
        assert_eq!(serde_json::to_string(&event).unwrap(), line, "{}", event.id);
        n += 1;
    }
    assert_eq!(n, 155);
}

#[test]
fn every_finding_written_before_typed_findings_reads_back_with_the_same_json_and_key() {
    let mut n = 0;
    for (i, line) in FINDINGS.lines().enumerate() {
        let (key, finding): (String, Finding) =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
        // the line is `[key,finding]`: the finding's text as stored sits between them
        let stored = &line[serde_json::to_string(&key).unwrap().len() + 2..line.len() - 1];
        assert_eq!(serde_json::to_string(&finding).unwrap(), stored, "line {}", i + 1);
        assert_eq!(finding_key(&finding), key, "line {}", i + 1);
        n += 1;
    }
    assert_eq!(n, 104);
}

/// `e`'s detail read as its kind's type, written back as JSON.
fn typed(e: &AuditEvent) -> serde_json::Value {
    fn back<D: EventDetail>(e: &AuditEvent) -> serde_json::Value {
        let detail = e.detail_as::<D>().unwrap_or_else(|err| panic!("{err}"));
        serde_json::to_value(detail).unwrap()
    }
    // a ticket event's detail: the ticket's, and what the kind adds
    fn ticket<D: EventDetail>(e: &AuditEvent) -> serde_json::Value {
        let mut detail = back::<TicketDetail>(e);
        let extra = back::<D>(e);
        detail.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        detail
    }
    // no wildcard: a new kind must say here how it reads
    match &e.kind {
        EventKind::TicketRequested
        | EventKind::TicketActivated
        | EventKind::TicketApproved
        | EventKind::TicketConflict
        | EventKind::TicketExpired
        | EventKind::AccessShown
        | EventKind::AccessRenewed => back::<TicketDetail>(e),
        EventKind::TicketRevokeRequested => ticket::<RevokeRequested>(e),
        EventKind::TicketDenied => ticket::<Denied>(e),
        EventKind::RevocationPlanned => ticket::<RevocationPlanned>(e),
        EventKind::RevocationExecuted => ticket::<RevocationExecuted>(e),
        EventKind::TicketRevoked => ticket::<Revoked>(e),
        EventKind::TicketRevocationFailed => ticket::<RevocationFailed>(e),
        EventKind::AccessIssued => ticket::<Issued>(e),
        EventKind::AccessIssueRefused => ticket::<IssueRefused>(e),
        EventKind::TicketRefused => back::<Finding>(e),
        EventKind::AccessRefused | EventKind::AccessUnroutable => back::<AccessTurnedDown>(e),
        EventKind::FindingOpened | EventKind::FindingClosed => back::<FindingOpenedOrClosed>(e),
        EventKind::FindingsOpenedBulk | EventKind::FindingsClosedBulk => back::<FindingsBulk>(e),
        EventKind::ScanStarted => back::<ScanStarted>(e),
        EventKind::ScanCompleted | EventKind::ScanIncomplete => back::<ScanEnded>(e),
        EventKind::RemediationPlanned | EventKind::RemediationApplied | EventKind::RemediationFailed => {
            back::<Remediation>(e)
        }
        EventKind::GovernanceAlert => back::<AlertRaised>(e),
        EventKind::DigestRefused => back::<Disagreement>(e),
        EventKind::RegistryLoaded => back::<RegistryLoaded>(e),
        EventKind::QueriesIngested => back::<QueriesIngested>(e),
        EventKind::QueryAlert => back::<QueryAlerted>(e),
        EventKind::Other(_) => panic!("{} is not a kind this build writes", e.kind),
    }
}

#[test]
fn the_typed_readers_read_every_event_of_the_old_journal_field_for_field() {
    let events: Vec<AuditEvent> = chains().into_iter().flatten().map(|(e, _)| e).collect();
    let mut kinds = std::collections::BTreeSet::new();
    for e in &events {
        if let EventKind::Other(_) = e.kind {
            // a kind this build does not know still reads, keeps its spelling and verifies (above)
            assert_eq!(e.kind.as_str(), "retired.kind.example");
            continue;
        }
        // every field the writers wrote is one the types know, with the same value
        assert_eq!(typed(e), e.detail, "{} ({})", e.id, e.kind);
        kinds.insert(e.kind.clone());
    }
    // every kind is in the old journal, but those added after it was written
    let newer = [
        EventKind::TicketExpired,
        EventKind::AccessShown,
        EventKind::TicketDenied,
        EventKind::QueriesIngested,
        EventKind::QueryAlert,
    ];
    assert!(newer.iter().all(|k| !kinds.contains(k)));
    assert_eq!(kinds.len() + newer.len(), EventKind::KNOWN.len(), "every older kind is in the old journal");
    // both shapes of a remediation plan, and of a finding event, read as theirs
    let planned: Vec<Remediation> = events
        .iter()
        .filter(|e| e.kind == EventKind::RemediationPlanned)
        .map(|e| e.detail_as::<Remediation>().unwrap())
        .collect();
    assert!(planned.iter().any(|r| matches!(r, Remediation::Queued(_))));
    assert!(planned.iter().any(|r| matches!(r, Remediation::Run(_))));
    let opened: Vec<FindingOpenedOrClosed> = events
        .iter()
        .filter(|e| e.kind == EventKind::FindingOpened)
        .map(|e| e.detail_as::<FindingOpenedOrClosed>().unwrap())
        .collect();
    assert!(opened.iter().any(|f| matches!(f, FindingOpenedOrClosed::Scan(_))));
    assert!(opened.iter().any(|f| matches!(f, FindingOpenedOrClosed::Intake(_))));
}
