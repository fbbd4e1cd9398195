//! A journal and findings written before audit events and findings were
//! typed (`fixtures/README.md` says how they were made): they still read,
//! verify, and serialize back byte for byte, so every stored hash and
//! finding key stays valid.

use grantwarden_core::audit::{AuditEvent, verify};
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
