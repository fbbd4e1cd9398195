//! `grantwarden audit` on the local store and on an archive directory: every
//! kind of tampering reported at its link, signed digests that catch a
//! rewritten chain, and one person's trail.

use std::path::Path;
use std::process::{Command, Output};

use chrono::{DateTime, TimeDelta, Utc};
use grantwarden_core::audit::{AuditEvent, AuditJournal, NewEvent, seal};
use grantwarden_local::LocalStore;

fn grantwarden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grantwarden"))
        .args(args)
        .env_remove("GRANTWARDEN_STATE")
        .env_remove("GRANTWARDEN_AUDIT_KEY")
        .env_remove("GRANTWARDEN_AUDIT_ARCHIVE")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn t0() -> DateTime<Utc> {
    "2026-11-25T09:00:00Z".parse().unwrap()
}

fn event(i: i64, actor: &str, principal: &str) -> NewEvent {
    NewEvent {
        chain: "orders-prod".into(),
        at: t0() + TimeDelta::minutes(10 * i),
        kind: if i % 2 == 0 { "ticket.requested" } else { "ticket.approved" }.into(),
        actor: actor.into(),
        subject: format!("tkt-{i}"),
        target: "orders-prod".into(),
        detail: serde_json::json!({ "principal": principal, "registry_version": "2.1" }),
    }
}

/// A store with six events on one chain (alice's tickets, approved by bob).
async fn journal(dir: &Path) -> (String, String) {
    let state = dir.join("state.db");
    let store = LocalStore::open(&state).unwrap();
    for i in 0..6 {
        let actor = if i % 2 == 0 { "alice@example.com" } else { "bob@example.com" };
        store.append(event(i, actor, "alice@example.com")).await.unwrap();
    }
    (state.to_string_lossy().into_owned(), dir.join("key.pem").to_string_lossy().into_owned())
}

fn sql(state: &str, statement: &str) {
    rusqlite::Connection::open(state).unwrap().execute_batch(statement).unwrap();
}

fn verify(state: &str, key: &str) -> Output {
    grantwarden(&["audit", "verify", "--state", state, "--key", key])
}

#[tokio::test]
async fn verify_reports_every_kind_of_tampering_at_its_link() {
    type Tamper = (&'static str, &'static str, &'static str);
    let cases: [Tamper; 4] = [
        (
            "edit a field",
            "UPDATE journal SET body = replace(body, 'tkt-2', 'tkt-9') WHERE seq = 3",
            "BROKEN at seq 3: hash does not match the event's content (edited)",
        ),
        ("delete an event", "DELETE FROM journal WHERE seq = 4", "BROKEN at seq 4: expected seq 4, found 5"),
        (
            "reorder two",
            "UPDATE journal SET seq = -1 WHERE seq = 2; UPDATE journal SET seq = 2 WHERE seq = 3; UPDATE journal SET seq = 3 WHERE seq = -1",
            "BROKEN at seq 2: expected seq 2, found 3",
        ),
        (
            "truncate the tail",
            "DELETE FROM journal WHERE seq >= 5",
            "the chain ends at seq 4 but its head is seq 6 (truncated)",
        ),
    ];
    for (what, statement, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (state, key) = journal(dir.path()).await;
        let ok = verify(&state, &key);
        assert_eq!(ok.status.code(), Some(0), "{what}: {}", stdout(&ok));
        assert!(
            stdout(&ok).contains("chain orders-prod: intact (6 events, head 6, no signed digests yet)"),
            "{}",
            stdout(&ok)
        );
        sql(&state, statement);
        let out = verify(&state, &key);
        assert_eq!(out.status.code(), Some(2), "{what}: {}", stdout(&out));
        assert!(stdout(&out).contains(expected), "{what}: {}", stdout(&out));
    }
}

#[tokio::test]
async fn signed_digests_catch_a_chain_rewritten_with_fresh_hashes_and_its_head() {
    let dir = tempfile::tempdir().unwrap();
    let (state, key) = journal(dir.path()).await;
    let out = grantwarden(&["audit", "digest", "--state", &state, "--key", &key, "--at", "2026-11-25T10:00:00Z"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("orders-prod: digest 1 signed, seq 1..=6 (6 events)"), "{}", stdout(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("created the audit signing key"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600, "the key is private");
    }
    let again = grantwarden(&["audit", "digest", "--state", &state, "--key", &key]);
    assert!(stdout(&again).contains("no chain has new events"), "{}", stdout(&again));
    let ok = verify(&state, &key);
    assert!(stdout(&ok).contains("1 signed digests through seq 6"), "{}", stdout(&ok));

    // someone with write access to the store rewrites every event (mallory
    // approved it all), recomputes every hash and moves the head: the chain
    // alone verifies, the signed digest does not agree
    let mut forged: Vec<AuditEvent> = Vec::new();
    for i in 0..6 {
        let head = forged.last().map(|e| (e.seq, e.hash.clone()));
        forged.push(seal(
            event(i, "mallory@example.com", "alice@example.com"),
            head.as_ref().map(|(s, h)| (*s, h.as_str())),
        ));
    }
    let conn = rusqlite::Connection::open(&state).unwrap();
    for e in &forged {
        conn.execute(
            "UPDATE journal SET hash = ?1, body = ?2 WHERE chain = ?3 AND seq = ?4",
            rusqlite::params![e.hash, serde_json::to_string(e).unwrap(), e.chain, e.seq as i64],
        )
        .unwrap();
    }
    conn.execute("UPDATE journal_heads SET hash = ?1", [&forged[5].hash]).unwrap();
    drop(conn);
    let out = verify(&state, &key);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stdout(&out).contains("BROKEN at seq 1: signed digest 1 holds hash"), "{}", stdout(&out));
    assert!(stdout(&out).contains("(rewritten)"), "{}", stdout(&out));

    // a key that is not the trusted one is refused; no trusted key at all is an error, not a pass
    let other = grantwarden(&[
        "audit",
        "verify",
        "--state",
        &state,
        "--key",
        "/nonexistent/key.pem",
        "--key-fingerprint",
        &"ab".repeat(32),
    ]);
    assert_eq!(other.status.code(), Some(2));
    assert!(stdout(&other).contains("not the trusted key"), "{}", stdout(&other));
    let none = grantwarden(&["audit", "verify", "--state", &state, "--key", "/nonexistent/key.pem"]);
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no key is trusted"));
}

#[tokio::test]
async fn an_archive_directory_verifies_and_shows_deleted_and_truncated_events() {
    let dir = tempfile::tempdir().unwrap();
    let (state, key) = journal(dir.path()).await;
    grantwarden(&["audit", "digest", "--state", &state, "--key", &key]);
    let fingerprint = {
        let out = grantwarden(&["audit", "digest", "--state", &state, "--key", &key]);
        stdout(&out).lines().last().unwrap().trim_start_matches("key fingerprint ").to_owned()
    };
    assert_eq!(fingerprint.len(), 64);
    let archive = dir.path().join("archive");
    let out = grantwarden(&["audit", "archive", "--state", &state, "--dir", archive.to_str().unwrap()]);
    assert!(stdout(&out).contains("6 events written"), "{}", stdout(&out));
    let events = archive.join("audit/orders-prod");
    assert!(events.join("00000000000000000006.json").is_file());
    assert!(archive.join("audit-digests/orders-prod/00000000000000000001.json").is_file());

    let check =
        || grantwarden(&["audit", "verify", "--dir", archive.to_str().unwrap(), "--key-fingerprint", &fingerprint]);
    let ok = check();
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    assert!(stdout(&ok).contains("intact (6 events, 1 signed digests through seq 6"), "{}", stdout(&ok));

    // no head in a directory: the tail is anchored by the signed digest
    std::fs::remove_file(events.join("00000000000000000006.json")).unwrap();
    let out = check();
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout(&out).contains("BROKEN at seq 6: signed digest 1 lists seq 6"), "{}", stdout(&out));

    std::fs::remove_file(events.join("00000000000000000002.json")).unwrap();
    let out = check();
    assert!(stdout(&out).contains("BROKEN at seq 2: expected seq 2, found 3"), "{}", stdout(&out));

    std::fs::write(events.join("notes.txt"), "x").unwrap();
    let out = check();
    assert!(stdout(&out).contains("BROKEN at seq 0:") && stdout(&out).contains("notes.txt"), "{}", stdout(&out));
}

#[tokio::test]
async fn export_prints_one_persons_trail_within_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let (state, _) = journal(dir.path()).await;
    let store = LocalStore::open(Path::new(&state)).unwrap();
    let mut other = event(6, "carol@example.com", "carol@example.com");
    other.chain = "billing-prod".into();
    other.target = "billing-prod".into();
    store.append(other).await.unwrap();

    let out = grantwarden(&["audit", "export", "--state", &state, "--user", "bob@example.com", "--format", "json"]);
    assert!(out.status.success());
    let trail: Vec<AuditEvent> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(trail.iter().map(|e| e.subject.as_str()).collect::<Vec<_>>(), ["tkt-1", "tkt-3", "tkt-5"]);

    // alice acted on some events and is the principal of all her tickets' events
    let out = grantwarden(&[
        "audit",
        "export",
        "--state",
        &state,
        "--user",
        "alice@example.com",
        "--from",
        "2026-11-25T09:10:00Z",
        "--to",
        "2026-11-25T09:40:00Z",
    ]);
    let text = stdout(&out);
    assert!(text.starts_with("audit trail of alice@example.com (3 events)"), "{text}");
    assert!(text.contains("ticket.approved") && text.contains("about bob@example.com"), "{text}");
    assert!(!text.contains("tkt-0") && !text.contains("tkt-4") && !text.contains("carol"), "{text}");
}

/// Rewrites every event of the store's chain from `from_seq` on as mallory's,
/// hashes and head recomputed: the chain alone verifies.
fn forge_from(state: &str, from_seq: u64) {
    let store_events = {
        let conn = rusqlite::Connection::open(state).unwrap();
        let mut stmt = conn.prepare("SELECT body FROM journal WHERE chain = 'orders-prod' ORDER BY seq").unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, String>(0)).unwrap();
        rows.map(|b| serde_json::from_str::<AuditEvent>(&b.unwrap()).unwrap()).collect::<Vec<_>>()
    };
    let mut forged: Vec<AuditEvent> = store_events[..from_seq as usize - 1].to_vec();
    for e in &store_events[from_seq as usize - 1..] {
        let mut e = e.clone();
        e.actor = "mallory@example.com".into();
        e.prev_hash = forged.last().unwrap().hash.clone();
        e.hash = grantwarden_core::audit::event_hash(&e);
        forged.push(e);
    }
    let conn = rusqlite::Connection::open(state).unwrap();
    for e in &forged[from_seq as usize - 1..] {
        conn.execute(
            "UPDATE journal SET hash = ?1, body = ?2 WHERE chain = ?3 AND seq = ?4",
            rusqlite::params![e.hash, serde_json::to_string(e).unwrap(), e.chain, e.seq as i64],
        )
        .unwrap();
    }
    conn.execute("UPDATE journal_heads SET hash = ?1", [&forged.last().unwrap().hash]).unwrap();
}

#[tokio::test]
async fn a_local_digest_signs_what_the_archive_holds_and_refuses_a_journal_rewritten_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (state, key) = journal(dir.path()).await;
    let archive = dir.path().join("archive").to_string_lossy().into_owned();
    let digest = |at: &str| {
        grantwarden(&["audit", "digest", "--state", &state, "--key", &key, "--archive", &archive, "--at", at])
    };
    let write_archive = || grantwarden(&["audit", "archive", "--state", &state, "--dir", &archive]);

    // without an archive the digest says loudly what it signs
    let other = tempfile::tempdir().unwrap();
    let (other_state, other_key) = journal(other.path()).await;
    let journal_only = grantwarden(&["audit", "digest", "--state", &other_state, "--key", &other_key]);
    assert!(stdout(&journal_only).contains("digest 1 signed, seq 1..=6"), "{}", stdout(&journal_only));
    let stderr = String::from_utf8_lossy(&journal_only.stderr).into_owned();
    assert!(stderr.contains("warning: no audit archive (--archive DIR, GRANTWARDEN_AUDIT_ARCHIVE)"), "{stderr}");

    // archived through seq 4; seq 5 and 6 come after the archive's tail and wait
    assert!(stdout(&write_archive()).contains("6 events written"));
    for seq in [5, 6] {
        std::fs::remove_file(dir.path().join(format!("archive/audit/orders-prod/{seq:020}.json"))).unwrap();
    }
    let out = digest("2026-11-25T10:00:00Z");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("orders-prod: digest 1 signed, seq 1..=4 (4 events)"), "{}", stdout(&out));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("warning"), "an archive is given");

    // the archive is written once: the missing files come back, nothing is rewritten
    let again = write_archive();
    assert!(stdout(&again).contains("2 events written") && stdout(&again).contains("(4 already archived)"));

    // within the hour, someone who can write the store rewrites seq 5 and 6 with fresh hashes and head
    forge_from(&state, 5);
    assert_eq!(verify(&state, &key).status.code(), Some(0), "the forged journal alone verifies against its digest");
    let refused = digest("2026-11-25T11:00:00Z");
    let stderr = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("error: digest refused (tamper signal): chain orders-prod, seq 5: the archive holds hash"));
    assert!(stderr.contains("journal was rewritten after archiving"), "{stderr}");
    assert!(!stdout(&refused).contains("digest 2 signed"), "{}", stdout(&refused));
    let store = LocalStore::open(Path::new(&state)).unwrap();
    let events = store.events("orders-prod").await.unwrap();
    let signal = events.last().unwrap();
    assert_eq!((signal.kind.as_str(), signal.detail["seq"].as_u64()), ("audit.digest_refused", Some(5)));
    assert_eq!(signal.detail["changed"], "journal");

    // archiving again refuses to write over the originals; the signal itself is archived
    let out = write_archive();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(stderr.contains("error: orders-prod:5:") && stderr.contains("refused to write over it"), "{stderr}");
    assert!(stdout(&out).contains("1 events written"), "{}", stdout(&out));

    // verify of the archive against the journal names the side that changed
    let fingerprint = stdout(&digest("2026-11-25T12:00:00Z"))
        .lines()
        .find_map(|l| l.strip_prefix("key fingerprint ").map(str::to_owned))
        .unwrap();
    let out = grantwarden(&[
        "audit",
        "verify",
        "--dir",
        &archive,
        "--journal-state",
        &state,
        "--key-fingerprint",
        &fingerprint,
    ]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("BROKEN at seq 5: the archive holds hash"), "{text}");
    assert!(text.contains("the journal was rewritten after archiving"), "{text}");
}
