//! grantwarden-notify: chat notices on AWS (`grantwarden_core::notify`).
//!
//! Triggers: the journal table's DynamoDB stream (NEW_IMAGE; its second
//! reader beside the audit function): each new event's notices are queued;
//! the notice queue (SQS, ReportBatchItemFailures): each notice delivered to
//! Slack, a failure retried later through the message's visibility, one that
//! cannot be delivered kept on the notice dead-letter queue with its reason;
//! an EventBridge schedule every minute: the warnings of access about to end.
//! Env: `GRANTWARDEN_NOTICE_QUEUE_URL`, `GRANTWARDEN_NOTICE_DLQ_URL`,
//! `GRANTWARDEN_SLACK_BOT_TOKEN_SECRET_ID` (unset: notices wait, retried, until
//! it is), `GRANTWARDEN_SLACK_API_URL`, `GRANTWARDEN_PORTAL_URL` (the cards'
//! links), `GRANTWARDEN_TICKETS_TABLE`, `GRANTWARDEN_REPLAY_TABLE` (the working
//! records: notices queued, cards posted), `GRANTWARDEN_BUCKET` and
//! `GRANTWARDEN_POLICY_PREFIX` (the registry's `notify:` section), `RUST_LOG`.
//! IAM: the stream read actions on the journal stream; sqs:SendMessage,
//! sqs:ReceiveMessage, sqs:DeleteMessage, sqs:ChangeMessageVisibility,
//! sqs:GetQueueAttributes on the notice queue, sqs:SendMessage on its
//! dead-letter queue; dynamodb:GetItem, Query, Scan on the tickets table;
//! dynamodb:GetItem, PutItem, UpdateItem, DeleteItem on the replay table;
//! s3:ListBucket, s3:GetObject on the configuration;
//! secretsmanager:GetSecretValue on the bot token. PostgreSQL: none.
#![deny(missing_docs)]

use std::sync::Arc;

use grantwarden_aws::SystemClock;
use grantwarden_notify::Notify;

grantwarden_aws::lambda_main!(|clients, settings| Notify::new(&clients, &settings, Arc::new(SystemClock))?, invoke);
