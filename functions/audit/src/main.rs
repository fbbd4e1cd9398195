//! grantwarden-audit: archives every audit journal event in S3 under Object Lock.
//!
//! Triggers: the journal table's DynamoDB stream (NEW_AND_OLD_IMAGES), with
//! bisect-on-error, a retry limit and an on-failure destination; an hourly
//! EventBridge schedule that signs the digests.
//! Env: `GRANTWARDEN_AUDIT_BUCKET` (a bucket with Object Lock enabled: the function
//! refuses to start without it), `GRANTWARDEN_AUDIT_RETENTION_MODE` (COMPLIANCE, or
//! GOVERNANCE), `GRANTWARDEN_AUDIT_RETENTION_DAYS` (default 2555), `GRANTWARDEN_JOURNAL_TABLE`,
//! `GRANTWARDEN_AUDIT_SIGNING_SECRET_ID` (the digest signing key), `GRANTWARDEN_ALERT_TOPIC_ARN`
//! (where a refused digest is alerted; optional), `RUST_LOG`.
//! IAM: s3:GetBucketObjectLockConfiguration, s3:ListBucket and s3:ListBucketVersions on the audit bucket;
//! s3:PutObject, s3:PutObjectRetention, s3:GetObject and s3:GetObjectVersion on `audit/*` and
//! `audit-digests/*` (the digest reads every version of what it signs);
//! dynamodb:Query on the journal table; secretsmanager:GetSecretValue on the signing key; the stream read actions
//! on the journal stream; sqs:SendMessage on the on-failure queue; sns:Publish on the alert topic.
//! PostgreSQL: none.
#![deny(missing_docs)]

use std::sync::Arc;

use grantwarden_audit::Audit;
use grantwarden_aws::SystemClock;

grantwarden_aws::lambda_main!(
    |clients, settings| Audit::new(&clients, &settings, Arc::new(SystemClock)).await?,
    invoke
);
