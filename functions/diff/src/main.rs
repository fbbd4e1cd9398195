//! grantwarden-diff: turns an ended scan into a report, findings and alerts.
//!
//! Trigger: the scans table's DynamoDB stream (NEW_AND_OLD_IMAGES), with
//! bisect-on-error, a retry limit and an on-failure destination.
//! Env: `GRANTWARDEN_SCANS_TABLE`, `GRANTWARDEN_TICKETS_TABLE`, `GRANTWARDEN_FINDINGS_TABLE`,
//! `GRANTWARDEN_JOURNAL_TABLE`, `GRANTWARDEN_BUCKET`, `GRANTWARDEN_BASELINE_KEY`,
//! `GRANTWARDEN_POLICY_PREFIX`, `GRANTWARDEN_SCORING_KEY`, `GRANTWARDEN_ALERT_TOPIC_ARN`,
//! `GRANTWARDEN_REMEDIATION_MODE` with `GRANTWARDEN_REMEDIATION_QUEUE_URL` (unless the mode is `report`), `RUST_LOG`.
//! IAM: s3:GetObject/ListBucket on `snapshots/*` and `config/*`, s3:GetObject/PutObject on
//! `reports/*`; dynamodb:Query on the tickets table's `by_target` index; dynamodb:Query/
//! UpdateItem/PutItem on the findings table; dynamodb:Query/GetItem/PutItem/UpdateItem on the
//! journal table; sns:Publish on the alert topic; sqs:SendMessage on the remediation queue;
//! the stream read actions on the scans stream.
//! PostgreSQL: none.
#![deny(missing_docs)]

use std::sync::Arc;

use grantwarden_aws::SystemClock;
use grantwarden_diff::Diff;

grantwarden_aws::lambda_main!(|clients, settings| Diff::new(&clients, &settings, Arc::new(SystemClock))?, handle);
