//! Changes to a database's privileges, as data: what revocation and remediation
//! decide, before shared/postgres renders them as quoted SQL and runs them.
//!
//! Keeping the decision apart from the SQL lets the same plan be printed for a
//! dry run, recorded in the audit journal and executed, and lets the rules be
//! tested without a database.

use serde::{Deserialize, Serialize};

use crate::model::{DefaultObjectType, Grant, Grantee, ObjectRef, Privilege, RelationKind, RoleName};
use crate::mysql::change::MysqlChange;

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
    /// In `database`: `DROP OWNED BY role`: what a short-lived role created goes
    /// with it, and its privileges. Never `REASSIGN OWNED ... TO` the admin: a
    /// SECURITY DEFINER function handed to a superuser is a superuser's function.
    DropOwned {
        /// The role.
        role: RoleName,
        /// The database it owns objects or holds privileges in.
        database: String,
    },
    /// `ALTER <kind> schema.name OWNER TO to`: a relation a migration created, kept
    /// and handed to the owner the baseline declares for its schema.
    AlterOwner {
        /// The relation.
        object: ObjectRef,
        /// Its kind (the statement differs for views, sequences, foreign tables...).
        kind: RelationKind,
        /// The new owner.
        to: RoleName,
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
    /// `ALTER ROLE role SET parameter TO value`: what a credential's sessions are
    /// held to (pgaudit, export limits); dropped with the role.
    SetRoleSetting {
        /// The role.
        role: RoleName,
        /// The parameter (from a fixed list) and its value.
        setting: crate::session_limits::RoleSetting,
    },
    /// `CREATE ROLE role NOLOGIN NOSUPERUSER NOBYPASSRLS ...` and `GRANT role TO
    /// CURRENT_USER`: the owner of a ticket's views, holding only what they read.
    /// Views check the tables they read, row-level security included, as their
    /// owner: owned by the admin they would bypass both.
    CreateViewOwner {
        /// The role.
        role: RoleName,
    },
    /// `CREATE SCHEMA schema AUTHORIZATION owner` (a ticket's own views): fails
    /// when the schema exists, so nobody can prepare it beforehand.
    CreateSchema {
        /// The schema.
        schema: String,
        /// Its owner (the views' owner).
        owner: RoleName,
    },
    /// `SET LOCAL ROLE role` (`RESET ROLE` for `None`): what follows runs as
    /// that role, until the next one or the end of the transaction.
    SetRole {
        /// The role, or back to the connecting one.
        role: Option<RoleName>,
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
        columns: Vec<(String, Option<crate::access_policy::Mask>)>,
        /// Which rows.
        predicate: Option<crate::access_policy::RowPredicate>,
        /// The predicate column's type, (schema, `typname`): its values are cast to it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        predicate_type: Option<(String, String)>,
    },
    /// `ALTER ROLE role VALID UNTIL …`: a renewed break-glass window.
    SetValidUntil {
        /// The role.
        role: RoleName,
        /// The new end.
        valid_until: chrono::DateTime<chrono::Utc>,
    },
    /// A ticket's views, at revocation: `DROP OWNED BY owner` (the schema and its
    /// views) and `DROP ROLE owner`. Nothing another role owns goes with them.
    DropViews {
        /// The views' owner.
        owner: RoleName,
        /// Their schema.
        schema: String,
    },
    /// A change to a MySQL or MariaDB server (grantwarden-mysql renders and
    /// runs it; shared/postgres refuses it).
    Mysql {
        /// The change.
        mysql: MysqlChange,
    },
}

impl Change {
    /// The role the change is about (the grantee, member or role altered); `None` for PUBLIC
    /// and for a MySQL change (its account: [`MysqlChange::account`]).
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
            | Change::CreateViewOwner { role }
            | Change::SetValidUntil { role, .. }
            | Change::SetRoleSetting { role, .. } => Some(role),
            Change::AlterOwner { to, .. } => Some(to),
            Change::CreateSchema { .. }
            | Change::SetRole { .. }
            | Change::CreateView { .. }
            | Change::DropViews { .. }
            | Change::Mysql { .. } => None,
        }
    }
}
