//! grantwarden-postgres: reads the privilege state PostgreSQL enforces, and
//! changes it when a ticket ends or drift is remediated.
//!
//! Extraction reads only system catalogs (pg_roles, never pg_authid), works as
//! an ordinary role without superuser (as on RDS or Cloud SQL), and runs every
//! query in a READ ONLY, REPEATABLE READ transaction with statement and lock
//! timeouts: it must never change anything and never block DDL. NULL ACLs are
//! read as their built-in defaults (`acldefault`). Supports PostgreSQL 13 to 17.
//!
//! # Layout
//! - [`session`]: connection strings, target ids, the read-only transaction.
//! - [`chunks`]: splitting the catalog into non-overlapping chunks.
//! - [`extract`]: one chunk's catalog rows into a partial state (SQL in `src/sql/`).
//! - [`acl`]: ACL entries as PostgreSQL prints them, decoded.
//! - [`scan`]: the whole scan: concurrency, shared snapshot, retries.
//! - [`error`]: errors and which are transient.
//! - [`render`]: privilege changes as SQL, every name quoted.
//! - [`revoke`]: the executor: revocation and remediation plans in one transaction.
//! - [`activate`]: issuing a just-in-time credential (role, grants, views) in one transaction.
#![deny(missing_docs)]

pub mod acl;
pub mod activate;
pub mod chunks;
pub mod error;
pub mod extract;
pub mod render;
pub mod revoke;
pub mod scan;
pub mod session;

pub use chunks::ChunkSize;
pub use error::{ErrorClass, ExtractError};
pub use revoke::{Applied, Executor};
pub use scan::{NoProgress, Progress, ScanOptions, Scanner, extract_one, plan_only};
pub use session::Timeouts;
