//! The diff function's trigger, read from the sample stream batch in events/.

use aws_lambda_events::dynamodb::Event;
use grantwarden_core::pipeline::ScanStatus;
use grantwarden_diff::ended_scan;

#[test]
fn only_the_end_of_a_scan_starts_a_diff() {
    let event: Event = serde_json::from_str(include_str!("../../../events/diff-scan-stream.json")).unwrap();
    let ended = ended_scan(&event.records[0]).unwrap().expect("running -> complete ends the scan");
    assert_eq!((ended.status, ended.chunks_done, ended.target.as_str()), (ScanStatus::Complete, 2, "orders-prod"));
    assert_eq!(ended_scan(&event.records[1]).unwrap(), None, "a counter bump is not the end");
}

#[test]
fn a_record_that_is_not_a_scan_is_refused_by_name() {
    let mut event: serde_json::Value =
        serde_json::from_str(include_str!("../../../events/diff-scan-stream.json")).unwrap();
    event["Records"][0]["dynamodb"]["NewImage"]["chunks_total"] = serde_json::json!({ "S": "two" });
    let event: Event = serde_json::from_value(event).unwrap();
    let err = ended_scan(&event.records[0]).unwrap_err().to_string();
    assert!(err.contains("c81e728d9d4c2f636f067f89cc14862c") && err.contains("NewImage"), "{err}");
}
