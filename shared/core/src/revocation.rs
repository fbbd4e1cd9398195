//! The revocation plan as data: what ending one ticket runs, keeps and
//! found, and what its role owns. [`crate::revoke`] builds and drives it;
//! shared/postgres runs it; the journal records it with the revocation.

use serde::{Deserialize, Serialize};

use crate::change::Change;
use crate::model::{Grant, RelationKind, RoleName, display_ident};
use crate::ticket::RoleLifecycle;

/// What kind of object a role owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum OwnedKind {
    /// A table, view, sequence...
    Relation {
        /// Which kind.
        kind: RelationKind,
    },
    /// A function, procedure or aggregate.
    Function {
        /// SECURITY DEFINER: it runs with its owner's rights, whoever calls it.
        security_definer: bool,
    },
    /// Anything else (a schema, a type...): dropped with the role.
    Other,
}

/// An object a role owns in the target database, as the revoking transaction read it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Owned {
    /// Its kind.
    #[serde(flatten)]
    pub kind: OwnedKind,
    /// Its schema (none for a schema itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// Its name.
    pub name: String,
    /// A function's argument types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
}

impl Owned {
    /// The object in the catalog's words, e.g. `function public.f(integer)`.
    pub fn describe(&self) -> String {
        let kind = match self.kind {
            OwnedKind::Relation { kind } => kind.type_name(),
            OwnedKind::Function { .. } => "function",
            OwnedKind::Other => "object",
        };
        let schema = self.schema.as_deref().map(|s| format!("{}.", display_ident(s))).unwrap_or_default();
        let args = self.arguments.as_deref().map(|a| format!("({a})")).unwrap_or_default();
        format!("{kind} {schema}{}{args}", display_ident(&self.name))
    }
}

/// A privilege that stays, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// The privilege.
    pub grant: Grant,
    /// Why it stays.
    pub reason: String,
}

/// A MySQL or MariaDB privilege that stays, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptMysql {
    /// The account, the scope and the privilege (one).
    pub grant: crate::mysql::catalog::PrivilegeGrant,
    /// Why it stays.
    pub reason: String,
}

/// What ending one ticket does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationPlan {
    /// The ticket.
    pub ticket: String,
    /// The role.
    pub role: RoleName,
    /// Standing or short-lived.
    pub lifecycle: RoleLifecycle,
    /// Run in one transaction, with lock_timeout.
    pub transaction: Vec<Change>,
    /// Run after the commit, in order: sessions, then role cleanup.
    pub after_commit: Vec<Change>,
    /// Privileges left in place.
    pub kept: Vec<Kept>,
    /// A MySQL or MariaDB account's privileges left in place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept_mysql: Vec<KeptMysql>,
    /// In words, when there is nothing to run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nothing_because: Option<String>,
    /// What the role created that must be looked at (a SECURITY DEFINER
    /// function): recorded as high findings when the revocation is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub created: Vec<Owned>,
}

impl RevocationPlan {
    /// Number of changes.
    pub fn len(&self) -> usize {
        self.transaction.len() + self.after_commit.len()
    }

    /// Nothing to run.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Privileges left in place, of either engine.
    pub fn kept_len(&self) -> usize {
        self.kept.len() + self.kept_mysql.len()
    }
}
