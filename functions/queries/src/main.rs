//! grantwarden-queries: pgaudit entries of a PostgreSQL log group as query events.
//!
//! Trigger: a CloudWatch Logs subscription filter on the RDS or Aurora
//! PostgreSQL log group (`/aws/rds/instance/<id>/postgresql` or
//! `/aws/rds/cluster/<id>/postgresql`, exported with
//! `EnableCloudwatchLogsExports: [postgresql]`); asynchronous, retried by Lambda.
//! Env: `GRANTWARDEN_QUERY_TARGETS` (`<log group>=<target>,...`: which target each
//! log group is the log of; a delivery from another log group fails as Validation),
//! `GRANTWARDEN_BUCKET`, `GRANTWARDEN_POLICY_PREFIX`, `GRANTWARDEN_SCORING_KEY`,
//! `GRANTWARDEN_TICKETS_TABLE`, `GRANTWARDEN_FINDINGS_TABLE`, `GRANTWARDEN_JOURNAL_TABLE`,
//! `GRANTWARDEN_INCIDENTS_TABLE`, `GRANTWARDEN_ALERT_TOPIC_ARN` (query alerts; optional),
//! `GRANTWARDEN_JOURNAL_FROM_STREAM`, `RUST_LOG`.
//! IAM: s3:GetObject/PutObject on `queries/*` (HeadObject is s3:GetObject), s3:ListBucket on
//! the bucket (`queries/*` and `config/*`), s3:GetObject on `config/*`; dynamodb:Query/GetItem/
//! PutItem/UpdateItem on the tickets table and its indexes, the findings table and the journal
//! table; dynamodb:Query/GetItem on the incidents table; sns:Publish on the alert topic.
//! PostgreSQL: none.
#![deny(missing_docs)]

use std::sync::Arc;

use grantwarden_aws::SystemClock;
use grantwarden_queries::{Queries, QueryTargets};

grantwarden_aws::lambda_main!(
    |clients, settings| Queries::new(
        &clients,
        &settings,
        QueryTargets::parse(&std::env::var("GRANTWARDEN_QUERY_TARGETS").unwrap_or_default())?,
        Arc::new(SystemClock)
    ),
    handle
);
