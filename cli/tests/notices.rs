//! `grantwarden notices`: the dead notices of the state file are listed with
//! their reason and put back in the queue once their cause is fixed.

mod common;

use chrono::Utc;
use common::{grantwarden, ok};
use grantwarden_core::notify::{Keyed, Notice, NoticeQueue, Settled};
use grantwarden_local::LocalStore;
use serde_json::Value;

#[tokio::test]
async fn a_dead_notice_is_listed_with_its_reason_and_queued_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    {
        let store = LocalStore::open(&path).unwrap();
        let alert = |key: &str| Keyed {
            key: key.into(),
            notice: Notice::Security { target: "orders-prod".into(), title: "Drift alert".into(), text: "2".into() },
        };
        store.enqueue(&[alert("a#0"), alert("b#0")], Utc::now()).await.unwrap();
        let dead = Settled::Dead { reason: "chat.postMessage: channel_not_found".into() };
        store.settle("a#0", &dead, Utc::now()).await.unwrap();
    }
    let state = path.to_str().unwrap();
    let listed = ok(&grantwarden(&["notices", "list", "--state", state, "--json"]));
    let rows: Vec<Value> = listed.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 1, "{listed}");
    assert_eq!((rows[0]["key"].as_str(), rows[0]["attempts"].as_u64()), (Some("a#0"), Some(1)));
    assert_eq!(rows[0]["reason"], "chat.postMessage: channel_not_found");
    assert_eq!(rows[0]["notice"]["notice"], "security");

    let unknown = grantwarden(&["notices", "retry", "nope", "--state", state]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no dead notice has the key(s) nope"));

    ok(&grantwarden(&["notices", "retry", "--all", "--state", state]));
    assert!(ok(&grantwarden(&["notices", "list", "--state", state, "--json"])).is_empty());
    let waiting = ok(&grantwarden(&["notices", "list", "--in", "waiting", "--state", state, "--json"]));
    assert_eq!(waiting.lines().count(), 2, "both wait for the next delivery: {waiting}");
}
