//! grantwarden-revoke: issues just-in-time credentials, and revokes what a ticket
//! granted when its window ends.
//!
//! Triggers: the leases table's stream (TTL REMOVE records), the tickets
//! table's stream (MODIFY to `revoke_requested`), one-time EventBridge
//! Scheduler schedules at each expiry, and the sweeper schedule (every minute).
//! Env: `GRANTWARDEN_REVOKE_DLQ_URL` (required), `GRANTWARDEN_TICKETS_TABLE`,
//! `GRANTWARDEN_FINDINGS_TABLE`, `GRANTWARDEN_JOURNAL_TABLE`, `GRANTWARDEN_LEASES_TABLE`,
//! `GRANTWARDEN_SCHEDULE_GROUP`, `GRANTWARDEN_REVOKER_SECRET_PREFIX`, `GRANTWARDEN_ACCESS_SECRET_PREFIX`,
//! `GRANTWARDEN_ALERT_TOPIC_ARN` (break-glass alerts), `GRANTWARDEN_TARGETS`
//! or `GRANTWARDEN_TARGETS_KEY` with `GRANTWARDEN_BUCKET` (whom the sweeper sweeps), `RUST_LOG`.
//! IAM: dynamodb:GetItem, Query, PutItem and UpdateItem on the tickets table and its
//! indexes; PutItem/UpdateItem/Query on findings and journal; DeleteItem on leases;
//! the stream read actions on the leases and tickets streams;
//! scheduler:DeleteSchedule on its group; secretsmanager:GetSecretValue on the
//! revoker secrets; secretsmanager:CreateSecret, TagResource, DescribeSecret,
//! GetSecretValue and DeleteSecret on `grantwarden/access/*` (a retry reads back
//! the password its own tagged secret holds); sns:Publish on the alert topic;
//! sqs:SendMessage on the dead-letter queue; s3:GetObject on the targets list.
//! PostgreSQL: the revoking role of each target (its own secret): owner of the
//! objects it revokes on (or superuser / rds_superuser), CREATEROLE for short-lived
//! roles and their views' owners, CREATE on the database (the views' schemas),
//! pg_signal_backend to end sessions (docs/SECURITY.md). MySQL and MariaDB
//! (remediation only): the account `grantwarden apply` runs as (GRANT OPTION on
//! what it changes, ADMIN OPTION on the roles, CREATE USER to lock accounts).
#![deny(missing_docs)]
// the futures of a revocation on either engine nest deeper than the default allows
#![recursion_limit = "256"]

use std::sync::Arc;

use grantwarden_aws::SystemClock;
use grantwarden_revoke::Revoke;

grantwarden_aws::lambda_main!(|clients, settings| Revoke::new(&clients, &settings, Arc::new(SystemClock))?, invoke);
