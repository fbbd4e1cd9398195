//! Changes to a database's privileges, as data: what revocation and remediation
//! decide, before shared/postgres renders them as quoted SQL and runs them.
//!
//! Keeping the decision apart from the SQL lets the same plan be printed for a
//! dry run, recorded in the audit journal and executed, and lets the rules be
//! tested without a database.

use serde::{Deserialize, Serialize};

use crate::model::{DefaultObjectType, Grant, Grantee, Privilege, RoleName};

/// One change, in the order it must run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// `GRANT privilege ON object TO grantee [WITH GRANT OPTION]`.
    Grant {
        /// What to grant.
        grant: Grant,
    },
    /// `REVOKE [GRANT OPTION FOR] privilege ON object FROM grantee [CASCADE]`.
    Revoke {
        /// What to take away.
        grant: Grant,
        /// Also revoke what the grantee passed on with its grant option.
        cascade: bool,
        /// Only the grant option; the privilege stays.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        option_only: bool,
    },
    /// `GRANT role TO member [WITH ADMIN OPTION]`.
    GrantMembership {
        /// The role granted.
        role: RoleName,
        /// Who receives it.
        member: RoleName,
        /// WITH ADMIN OPTION.
        admin: bool,
    },
    /// `REVOKE role FROM member`.
    RevokeMembership {
        /// The role.
        role: RoleName,
        /// Who loses it.
        member: RoleName,
    },
    /// `ALTER ROLE role [NO]<attribute>` for SUPERUSER, CREATEROLE, CREATEDB, LOGIN,
    /// REPLICATION or BYPASSRLS.
    SetAttribute {
        /// The role.
        role: RoleName,
        /// The attribute.
        attribute: Privilege,
        /// On or off.
        enabled: bool,
    },
    /// `ALTER ROLE role NOLOGIN VALID UNTIL` a time in the past: no new session,
    /// and no password login even if LOGIN came back.
    DisableLogin {
        /// The role.
        role: RoleName,
    },
    /// `ALTER DEFAULT PRIVILEGES FOR ROLE for_role [IN SCHEMA schema] GRANT|REVOKE ...`.
    DefaultPrivilege {
        /// Grant (true) or revoke.
        grant: bool,
        /// Whose new objects.
        for_role: RoleName,
        /// Limited to one schema.
        schema: Option<String>,
        /// Which kind of new object.
        object_type: DefaultObjectType,
        /// The privilege.
        privilege: Privilege,
        /// Who gets it.
        grantee: Grantee,
    },
    /// End the role's open sessions (`pg_terminate_backend`), after the commit.
    TerminateSessions {
        /// The role.
        role: RoleName,
    },
    /// In `database`: `REASSIGN OWNED BY role TO reassign_to` (default: the
    /// executing user), then `DROP OWNED BY role`.
    DropOwned {
        /// The role.
        role: RoleName,
        /// The database it owns objects or holds privileges in.
        database: String,
        /// New owner of its objects; `None` is the user grantwarden connects as.
        reassign_to: Option<RoleName>,
    },
    /// `DROP ROLE IF EXISTS role`.
    DropRole {
        /// The role.
        role: RoleName,
    },
    /// `CREATE ROLE role LOGIN PASSWORD … VALID UNTIL … CONNECTION LIMIT …`: a
    /// just-in-time credential. The password is never part of the change (plans
    /// are printed and journaled); the executor adds it.
    CreateRole {
        /// The role.
        role: RoleName,
        /// Login is refused after this, even before revocation runs.
        valid_until: chrono::DateTime<chrono::Utc>,
        /// Most concurrent sessions.
        connection_limit: u32,
    },
    /// `CREATE SCHEMA IF NOT EXISTS schema` (a ticket's own views).
    CreateSchema {
        /// The schema.
        schema: String,
    },
    /// `CREATE VIEW schema.name WITH (security_barrier) AS SELECT … FROM source WHERE …`:
    /// row scope and masked columns, without touching the table's own access
    /// (row-level security is never enabled on a table for this).
    CreateView {
        /// Schema of the view.
        schema: String,
        /// Its name (the source table's).
        name: String,
        /// Source schema.
        source_schema: String,
        /// Source table.
        source_table: String,
        /// Columns in order, each with its mask.
        columns: Vec<(String, Option<crate::access::Mask>)>,
        /// Which rows.
        predicate: Option<crate::access::RowPredicate>,
    },
    /// `ALTER ROLE role VALID UNTIL …`: a renewed break-glass window.
    SetValidUntil {
        /// The role.
        role: RoleName,
        /// The new end.
        valid_until: chrono::DateTime<chrono::Utc>,
    },
    /// `DROP SCHEMA IF EXISTS schema CASCADE` (a ticket's views, at revocation).
    DropSchema {
        /// The schema.
        schema: String,
    },
}

impl Change {
    /// The role the change is about (the grantee, member or role altered); `None` for PUBLIC.
    pub fn role(&self) -> Option<&RoleName> {
        match self {
            Change::Grant { grant } | Change::Revoke { grant, .. } => grant.grantee.role(),
            Change::DefaultPrivilege { grantee, .. } => grantee.role(),
            Change::GrantMembership { member, .. } | Change::RevokeMembership { member, .. } => Some(member),
            Change::SetAttribute { role, .. }
            | Change::DisableLogin { role }
            | Change::TerminateSessions { role }
            | Change::DropOwned { role, .. }
            | Change::DropRole { role }
            | Change::CreateRole { role, .. }
            | Change::SetValidUntil { role, .. } => Some(role),
            Change::CreateSchema { .. } | Change::CreateView { .. } | Change::DropSchema { .. } => None,
        }
    }
}
