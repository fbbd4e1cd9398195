//! grantwarden-core: the domain of database access governance.
//!
//! It knows what a grant is, what the baseline wants, and how reality differs
//! from it. It must never do I/O: no files, no network, no SQL driver, no
//! clock (time is passed in). Adapters (shared/postgres, the CLI, later the
//! AWS and local stores) feed it data and carry its results out.
//!
//! # Layout
//! - [`model`]: roles, grantees, privileges, objects and grants.
//! - [`grants`]: a state's grants held object by object, each object's ACL shared.
//! - [`snapshot`]: the extracted state of one target, its chunks and ids.
//! - [`baseline`]: the baseline manifest (YAML contract), parsed and validated.
//! - [`diff`]: reality versus baseline, classified into findings.
//! - [`scoring`]: severity, score and status thresholds.
//! - [`report`]: the plan report (JSON contract).
//! - [`generate`]: a baseline from a live state, for brownfield adoption.
//! - [`assess`]: a snapshot against the baseline with the store's exceptions, recorded.
//! - [`pipeline`]: a scheduled scan as messages: chunk tasks, the scan record, batches.
//! - [`intake`]: a request through routing into the ticket store, failing secure.
//! - [`normalize`]: webhooks, pgaudit lines and generic payloads into one grant request.
//! - [`policy`]: the policy registry: exception categories and routes.
//! - [`signature`]: the request signature header (v2: method, path, timestamp, body), signed and verified in constant time.

//! - [`ticket`]: routing decisions and exception tickets with approvals.
//! - [`access`]: just-in-time access requests, their policy, approvals and issued roles.
//! - [`incident`]: incident webhooks (PagerDuty, Opsgenie), each authenticated by its tool's own secret: break-glass only while one is open.
//! - [`store`]: the ports a state store implements (tickets, findings, replay records).
//! - [`revocation`]: the revocation plan as data: what ending a ticket runs, keeps and found.
//! - [`revoke`]: the end of a ticket: the revocation plan and its recorded outcome.
//! - [`remediate`]: findings into corrective GRANT and REVOKE changes.
//! - [`change`]: privilege changes as data, for shared/postgres to render and run.
//! - [`compliance`]: coverage, access changes, remediation and per-person evidence for auditors.
//! - [`dashboard`]: the self-contained HTML dashboard with inline SVG charts.
//! - [`yaml`]: YAML inputs with errors that name file and path.

//! - [`audit`]: the hash-chained audit journal: events, sealing, verification; the
//!   archive port and the one comparison of journal and archive.
//! - [`digest`]: signed hourly digests of what the archive holds, and their verification.
//! - [`backoff`]: retry delays with full jitter.
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
pub mod finding;
pub mod generate;
pub mod governance;
pub mod grant_sql;
pub mod grants;
pub mod html;
pub mod incident;
pub mod intake;
pub mod metrics;
pub mod model;
pub mod names;
pub mod normalize;
pub mod pipeline;
pub mod policy;
pub mod remediate;
pub mod report;
pub mod request;
pub mod revocation;
pub mod revoke;
pub mod scoring;
pub mod signature;
pub mod snapshot;
pub mod store;
pub mod ticket;
pub mod yaml;
