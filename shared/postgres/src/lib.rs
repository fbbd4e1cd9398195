//! grantwarden-postgres: reads the privilege state PostgreSQL enforces, and
//! changes it when a ticket ends or drift is remediated.
//!
//! Extraction reads only system catalogs (pg_roles, never pg_authid), works as
//! an ordinary role without superuser (as on RDS or Cloud SQL), and runs every
//! query in a READ ONLY, REPEATABLE READ transaction with statement and lock
//! timeouts: it must never change anything and never block DDL. NULL ACLs are
//! read as their built-in defaults (`acldefault`). Supports PostgreSQL 13 to 17.
//!
//! grantwarden often connects as an admin to databases where other roles may
//! create functions and operators, so every connection pins `search_path` to
//! `pg_catalog, pg_temp` ([`session::PIN_SEARCH_PATH`]). The statements of
//! privileged transactions (issue, renew, revoke, apply, session ending, locks)
//! also qualify every function and operator and type their literals; the
//! read-only catalog queries qualify every function and aggregate and rely on
//! the pinned path for operators (never looked up in `pg_temp`). Objects are
//! named by the catalog's parts, a function resolved by OID in the transaction
//! that grants or revokes on it ([`render::Functions`]).
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
