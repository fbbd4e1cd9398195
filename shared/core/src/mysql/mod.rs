//! MySQL's and MariaDB's grant model, beside PostgreSQL's ([`crate::model`]):
//! what the reader (grantwarden-mysql) fills. What a MySQL baseline declares
//! is [`crate::mysql_baseline`], the plan that compares the two into the
//! same report, scored on the same scale, [`crate::mysql_plan`], and a whole
//! scan [`crate::mysql_scan`].
//!
//! - [`privilege`]: the privileges and the grant tables' three encodings of them.
//! - [`catalog`]: accounts, privileges by level, roles, proxies, definers.
//! - [`quote`]: identifiers and strings in SQL.
//! - [`change`]: a change to the grants, as data, and the check that it took effect.

pub mod catalog;
pub mod change;
pub mod privilege;
pub mod quote;
