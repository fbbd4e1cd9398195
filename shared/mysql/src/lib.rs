//! grantwarden-mysql: reads the privilege state MySQL 8 and MariaDB (10.6 and
//! later) enforce, from their grant tables, read-only; and runs remediation
//! ([`apply`]), on its own connection, only when asked.
//!
//! What the scanning account needs, and nothing more:
//!
//! ```sql
//! GRANT SELECT ON mysql.* TO 'grantwarden'@'%';                -- accounts, roles, grants
//! GRANT SHOW DATABASES, SHOW VIEW, TRIGGER ON *.* TO 'grantwarden'@'%';
//! -- MySQL 8 only: routine and event definers from the data dictionary
//! GRANT SHOW_ROUTINE, EVENT ON *.* TO 'grantwarden'@'%';
//! ```
//!
//! No SUPER and no other administrative privilege. SHOW DATABASES lists the
//! databases no grant names; SHOW VIEW and TRIGGER are what
//! `information_schema.VIEWS` and `TRIGGERS` ask of an account before they
//! list an object's definer (TRIGGER also allows creating triggers, which a
//! read cannot do without; the session is read-only). A scan that lacks one
//! says what it could not read ([`catalog::Catalog::unreadable`]) and is
//! incomplete. Password hashes are never read: only whether one is set.
//!
//! # Layout
//! - [`privilege`], [`catalog`], [`quote`]: the model this reads into, which is
//!   core's (`grantwarden_core::mysql`): the privileges and the grant tables'
//!   encodings of them; accounts, privileges by level, roles, proxies, definers;
//!   quoting.
//! - [`session`]: URLs, the session's settings and its read-only transaction.
//! - [`read`]: the reads both engines share.
//! - [`mariadb`]: MariaDB's `global_priv` JSON, `roles_mapping`, `mysql.proc`, `mysql.event`.
//! - [`mysql8`]: MySQL 8's `mysql.user`, `role_edges`, `default_roles`, `global_grants`, partial revokes.
//! - [`scan`]: the whole scan: chunks, concurrency, retries, batch ids; and its
//!   two halves the AWS pipeline runs apart ([`scan::plan`], [`scan::extract_chunk`]).
//! - [`render`]: grants, revocations, role and proxy grants, account locks as SQL, every name quoted.
//! - [`apply`]: remediation run statement by statement and checked against the grant tables read again.
//! - [`revoke`]: a ticket's end: what it covers revoked from its account, checked, its sessions ended.
//! - [`error`]: errors and which are transient.
#![deny(missing_docs)]

pub mod apply;
pub mod error;
pub mod mariadb;
pub mod mysql8;
pub mod read;
pub mod render;
pub mod revoke;
pub mod scan;
pub mod session;

pub use grantwarden_core::mysql::{catalog, privilege, quote};

pub use catalog::{Account, Catalog, Flavor, Scope};
pub use error::{ErrorClass, ScanError};
pub use scan::{Scan, ScanOptions, Scanner};
