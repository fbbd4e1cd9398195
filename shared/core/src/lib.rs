//! grantwarden-core: the domain of database access governance.
//!
//! It knows what a grant is, what the baseline wants, and how reality differs
//! from it. It must never do I/O: no files, no network, no SQL driver, no
//! clock (time is passed in). Adapters (shared/postgres, shared/aws,
//! shared/local) and the entry points (the CLI, the Lambdas) feed it data and
//! carry its results out.
//!
//! # Layout
//! Bottom-up, layer by layer: a module imports only modules of the layers
//! listed before its own (never one of its layer or a later one), so there is
//! no import cycle. The layers and each module's imports are in
//! docs/ARCHITECTURE.md ("Module layers of grantwarden-core"); the formats
//! these modules read and write (baseline, registry, scoring, payloads,
//! report, audit events, archive) are specified in docs/CONTRACTS.md.
//!
//! Leaves (they import nothing of this crate):
//! - [`model`]: roles, grantees, privileges, objects and grants; PUBLIC's built-in defaults.
//! - [`mysql`]: MySQL's and MariaDB's grant model: accounts, privileges by level, roles, definers; a change as data.
//! - [`mysql_scan`]: a whole scan of a MySQL or MariaDB server.
//! - [`mysql_baseline`]: the MySQL and MariaDB baseline (`engine: mariadb` or `mysql`) and `generate`'s writing of one.
//! - [`mysql_plan`]: a MySQL or MariaDB server against its baseline: drift and exposures as the report's findings.
//! - [`error`]: the errors many modules share: a store that failed, an input field that is wrong.
//! - [`finding`]: a finding's kind and its age in the store, before any report holds it.
//! - [`governance_alert`]: a governance alert as a typed value (a sentence on the wire).
//! - [`html`]: the one HTML escaper of every HTML output.
//! - [`yaml`]: YAML inputs with errors that name file, path and line.
//! - [`schema_format`]: JSON Schema pieces for durations, times and maps with closed keys.
//! - [`backoff`]: retry delays with full jitter.
//! - [`session_limits`]: what an issued credential's sessions are held to: pgaudit classes, export limits.
//! - [`pglog`]: PostgreSQL server logs (csvlog, stderr, RDS) as records; pgaudit's entry in them.
//! - [`statement`]: SQL statement text: redacted, normalized and hashed, scripts split, COPY read.
//!
//! Layer 1:
//! - [`identity`]: who is acting and who vouches for them (a verified token, a registry
//!   sender within its routes and principals, the local operator); the recent sign-in rule.
//! - [`names`]: names as people write them: `schema.name` with quoting, function signatures.
//! - [`grants`]: a state's grants held object by object, each object's ACL shared.
//! - [`manifest`]: the baseline file as written: its YAML format, read by serde.
//! - [`access_policy`]: the registry's access policy and a grant's scope (paths, scopes,
//!   masking, approvals, the access a ticket stands for); the `Incidents` port.
//! - [`scoring`]: severity, score and status thresholds.
//! - [`metrics`]: the governance figures as data; their labels and duration formatting.
//! - [`notify_policy`]: the registry's `notify:` section: Slack channels, what may be approved there.
//! - [`query_policy`]: the registry's `queries:` section: literals kept, sensitive tables, exports.
//!
//! Layer 2:
//! - [`snapshot`]: the extracted state of one target, its chunks and ids; what a partial scan did not read.
//! - [`baseline`]: the baseline resolved and typed, as the diff reads it.
//! - [`policy`]: the policy registry: exception categories and routes.
//! - [`change`]: privilege changes as data, for shared/postgres (or, a MySQL change, grantwarden-mysql) to render and run.
//!
//! Layer 3:
//! - [`request`]: the grant request every input is normalized into.
//! - [`report`]: the plan report and its findings (JSON contract); the alert it calls for.
//! - [`generate`]: a baseline from a live state, for brownfield adoption.
//! - [`schema`]: JSON Schemas of the baseline, policy registry and scoring files, from their types.
//!
//! Layer 4:
//! - [`ticket`]: routing decisions and exception tickets, changed only through their methods.
//! - [`grant_sql`]: the GRANT and REVOKE statements pgaudit logs, tokenized and parsed.
//!
//! Layer 5:
//! - [`store`]: the ports a state store implements (tickets, findings, replay records).
//! - [`diff`]: reality versus baseline, classified into findings.
//! - [`exception`]: exception tickets laid over a plan of either engine (`Exceptions::overlay`).
//! - [`normalize`]: webhooks, pgaudit lines and generic payloads into one grant request.
//! - [`remediate`]: findings (of either engine) into corrective GRANT and REVOKE changes.
//! - [`activation`]: the plan that issues a just-in-time credential; masking and sensitivity follow the data.
//! - [`revocation`]: the revocation plan as data: what ending a ticket runs, keeps and found.
//!
//! Layer 6:
//! - [`audit`]: the hash-chained audit journal: events, sealing, verification; the
//!   archive port and the one comparison of journal and archive; `audit::event`:
//!   the one enum of event kinds, each kind's detail type and constructor.
//! - [`incident`]: incident webhooks (PagerDuty, Opsgenie), each authenticated by its
//!   tool's own secret; the incident store port and the one incident lookup.
//! - [`signature`]: the request signature header (v2: method, path, timestamp, body),
//!   signed and verified in constant time.
//!
//! Layer 7:
//! - [`access`]: just-in-time access requests: parsed, routed by the access policy, recorded; issued roles.
//! - [`intake`]: a grant request through routing into the ticket store, failing secure.
//! - [`revoke`]: the end of a ticket: the revocation plan and its recorded outcome.
//! - [`digest`]: signed digests of what the archive holds, their verification, the check of a whole chain.
//! - [`governance`]: the governance rules: ticket metrics, standing credentials, break-glass use, new alerts.
//! - [`compliance`]: coverage, access changes, remediation and per-person evidence for auditors.
//! - [`pipeline`]: a scheduled scan as messages: chunk tasks, the scan record, batches.
//! - [`queries`]: query-level audit: pgaudit entries as query events attributed to a person
//!   and a ticket, the query store port, and the one ingestion, journaled by digest.
//!
//! Layer 8, the use cases the CLI and the Lambdas call, and the dashboard:
//! - [`assess`]: a snapshot against the baseline with the store's exceptions, recorded;
//!   fail secure when the registry or the store is unusable.
//! - [`outbox`]: a ticket write and the journal events that record it, never
//!   one without the other (a writer that died in between is finished by the sweep).
//! - [`ticket_flow`]: what a person asks of a ticket: approve, end early, renew break-glass.
//! - [`remediation_flow`]: remediation planned and handed on, or run and journaled;
//!   the `ChangeExecutor` and `RemediationQueue` ports.
//! - [`raise_alerts`]: a scan's governance alerts published and journaled, once each;
//!   the `AlertPublisher` port.
//! - [`dashboard`]: the self-contained HTML dashboard with inline SVG charts.
//!
//! Layer 9, on top of the use cases:
//! - [`notify`]: chat notices from the journal, queued and delivered with retries; the
//!   request's card; approving and denying from chat; the `NoticeQueue` and `Chat` ports.
//! - [`query_reports`]: the auditors' questions of query events: sensitive reads, exports,
//!   a migration against its approved script, data changes by person.
//! - [`query_controls`]: export controls that act: query alerts published, journaled,
//!   and the ticket ended early when the registry says so.
//! - `memory_store` (tests only): the ports in memory, and the fixtures the use cases' tests share.
#![deny(missing_docs)]

pub mod access;
pub mod access_policy;
pub mod activation;
pub mod assess;
pub mod audit;
pub mod backoff;
pub mod baseline;
pub mod change;
pub mod compliance;
pub mod dashboard;
pub mod diff;
pub mod digest;
pub mod error;
pub mod exception;
pub mod finding;
pub mod generate;
pub mod governance;
pub mod governance_alert;
pub mod grant_sql;
pub mod grants;
pub mod html;
pub mod identity;
pub mod incident;
pub mod intake;
pub mod manifest;
#[cfg(test)]
mod memory_store;
pub mod metrics;
pub mod model;
pub mod mysql;
pub mod mysql_baseline;
pub mod mysql_plan;
pub mod mysql_scan;
pub mod names;
pub mod normalize;
pub mod notify;
pub mod notify_policy;
pub mod outbox;
pub mod pglog;
pub mod pipeline;
pub mod policy;
pub mod queries;
pub mod query_controls;
pub mod query_policy;
pub mod query_reports;
pub mod raise_alerts;
pub mod remediate;
pub mod remediation_flow;
pub mod report;
pub mod request;
pub mod revocation;
pub mod revoke;
pub mod schema;
pub mod schema_format;
pub mod scoring;
pub mod session_limits;
pub mod signature;
pub mod snapshot;
pub mod statement;
pub mod store;
pub mod ticket;
pub mod ticket_flow;
pub mod yaml;
