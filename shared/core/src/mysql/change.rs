//! A change to a MySQL or MariaDB server's privileges, as data: what
//! remediation decides (from a plan's findings) before grantwarden-mysql
//! renders it as quoted SQL and runs it. It travels as PostgreSQL's changes
//! do, inside [`crate::change::Change::Mysql`], so a remediation of either
//! engine is planned, journaled and queued alike.
//!
//! MySQL runs each GRANT and REVOKE in a transaction of its own (they commit
//! implicitly): a remediation cannot be one transaction. What stands in for
//! one is the check afterwards: the server's grant tables are read again and
//! each change must show there ([`MysqlChange::holds_in`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::catalog::{Account, Catalog, PrivilegeGrant, ProxyGrant, RoleGrant, Scope};

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum MysqlChange {
    /// `GRANT privileges ON scope TO account [WITH GRANT OPTION]` (`USAGE` when
    /// the grant option is all it gives).
    Grant {
        /// What to give.
        grant: PrivilegeGrant,
    },
    /// `REVOKE privileges ON scope FROM account`, then `REVOKE GRANT OPTION`
    /// when `grant.grantable`.
    Revoke {
        /// What to take away.
        grant: PrivilegeGrant,
    },
    /// `GRANT role TO account [WITH ADMIN OPTION]`.
    GrantRole {
        /// The role grant.
        grant: RoleGrant,
    },
    /// `REVOKE role FROM account`.
    RevokeRole {
        /// The role grant.
        grant: RoleGrant,
    },
    /// `GRANT PROXY ON proxied TO account`.
    GrantProxy {
        /// The proxy grant.
        grant: ProxyGrant,
    },
    /// `REVOKE PROXY ON proxied FROM account`.
    RevokeProxy {
        /// The proxy grant.
        grant: ProxyGrant,
    },
    /// `ALTER USER account ACCOUNT LOCK`: no new session (open ones stay).
    Lock {
        /// The account.
        account: Account,
    },
    /// `ALTER USER account ACCOUNT UNLOCK`.
    Unlock {
        /// The account.
        account: Account,
    },
}

impl MysqlChange {
    /// The account the change is about (the grantee, or the account altered).
    pub fn account(&self) -> &Account {
        match self {
            MysqlChange::Grant { grant } | MysqlChange::Revoke { grant } => &grant.grantee,
            MysqlChange::GrantRole { grant } | MysqlChange::RevokeRole { grant } => &grant.grantee,
            MysqlChange::GrantProxy { grant } | MysqlChange::RevokeProxy { grant } => &grant.grantee,
            MysqlChange::Lock { account } | MysqlChange::Unlock { account } => account,
        }
    }

    /// Whether the change takes something away (it runs before what gives).
    pub fn takes_away(&self) -> bool {
        matches!(
            self,
            MysqlChange::Revoke { .. }
                | MysqlChange::RevokeRole { .. }
                | MysqlChange::RevokeProxy { .. }
                | MysqlChange::Lock { .. }
        )
    }

    /// Where it runs among the changes of one account: column revokes before
    /// their table's (the table's last privilege taken takes the row its
    /// column grants hang on), what takes away before what gives.
    pub fn rank(&self) -> u8 {
        match self {
            MysqlChange::Revoke { grant } if matches!(grant.scope, Scope::Column { .. }) => 0,
            c if c.takes_away() => 1,
            _ => 2,
        }
    }

    /// Whether `catalog` (the grant tables read after the change ran) shows
    /// the change in effect: what it gives is held, what it takes is gone.
    pub fn holds_in(&self, catalog: &Catalog) -> bool {
        match self {
            MysqlChange::Grant { grant } => catalog.privileges_at(&grant.grantee, &grant.scope).is_some_and(|held| {
                grant.privileges.is_subset(&held.privileges)
                    && (!grant.grantable || held.grantable)
                    && grant.dynamic_grantable.is_subset(&held.dynamic_grantable)
            }),
            MysqlChange::Revoke { grant } => {
                catalog.privileges_at(&grant.grantee, &grant.scope).is_none_or(|held| {
                    // a column grant's flag is its table's: revoked with the table's grant
                    let option_gone =
                        !grant.grantable || !held.grantable || matches!(grant.scope, Scope::Column { .. });
                    held.privileges.is_disjoint(&grant.privileges) && option_gone
                })
            }
            MysqlChange::GrantRole { grant } => {
                catalog.roles_of(&grant.grantee).any(|r| r.role == grant.role && (r.admin || !grant.admin))
            }
            MysqlChange::RevokeRole { grant } => !catalog.roles_of(&grant.grantee).any(|r| r.role == grant.role),
            MysqlChange::GrantProxy { grant } => catalog
                .proxies_of(&grant.grantee)
                .any(|p| p.proxied == grant.proxied && (p.grantable || !grant.grantable)),
            MysqlChange::RevokeProxy { grant } => {
                !catalog.proxies_of(&grant.grantee).any(|p| p.proxied == grant.proxied)
            }
            MysqlChange::Lock { account } => catalog.account(account).is_none_or(|a| a.locked),
            MysqlChange::Unlock { account } => catalog.account(account).is_some_and(|a| !a.locked),
        }
    }

    /// The database whose chunk holds the grant this change is about (none:
    /// the server-wide grant tables, the cluster chunk, hold it): what the
    /// check after the change must have read.
    pub fn chunk_database(&self) -> Option<&str> {
        match self {
            MysqlChange::Grant { grant } | MysqlChange::Revoke { grant } => match &grant.scope {
                Scope::Table { database, .. } | Scope::Column { database, .. } | Scope::Routine { database, .. } => {
                    Some(database)
                }
                Scope::Global | Scope::Database { .. } => None,
            },
            _ => None,
        }
    }
}

impl fmt::Display for MysqlChange {
    /// What the change does, in words: `revoke FILE on *.* from 'app'@'%'`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words = |g: &PrivilegeGrant| {
            let mut ps: Vec<&str> = g.privileges.iter().map(|p| p.keyword()).collect();
            if g.grantable {
                ps.push("GRANT OPTION");
            }
            ps.join(", ")
        };
        match self {
            MysqlChange::Grant { grant } => {
                write!(f, "grant {} on {} to {}", words(grant), scope_words(&grant.scope), grant.grantee)
            }
            MysqlChange::Revoke { grant } => {
                write!(f, "revoke {} on {} from {}", words(grant), scope_words(&grant.scope), grant.grantee)
            }
            MysqlChange::GrantRole { grant } => write!(f, "grant role {} to {}", grant.role, grant.grantee),
            MysqlChange::RevokeRole { grant } => write!(f, "revoke role {} from {}", grant.role, grant.grantee),
            MysqlChange::GrantProxy { grant } => write!(f, "grant proxy on {} to {}", grant.proxied, grant.grantee),
            MysqlChange::RevokeProxy { grant } => {
                write!(f, "revoke proxy on {} from {}", grant.proxied, grant.grantee)
            }
            MysqlChange::Lock { account } => write!(f, "lock {account}"),
            MysqlChange::Unlock { account } => write!(f, "unlock {account}"),
        }
    }
}

/// A scope in words: `*.*`, `database shop`, `table shop.orders`...
fn scope_words(scope: &Scope) -> String {
    match scope {
        Scope::Global => "*.*".into(),
        Scope::Database { database, pattern: false } => format!("database {database}"),
        Scope::Database { database, pattern: true } => format!("databases {database}"),
        Scope::Table { database, table } => format!("table {database}.{table}"),
        Scope::Column { database, table, column } => format!("column {database}.{table}.{column}"),
        Scope::Routine { database, name, kind } => format!("{} {database}.{name}", kind.to_lowercase()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::mysql::catalog::AccountInfo;
    use crate::mysql::privilege::Privilege;

    fn grant(scope: Scope, ps: &[Privilege], grantable: bool) -> PrivilegeGrant {
        PrivilegeGrant {
            grantee: Account::new("app", "%"),
            scope,
            privileges: ps.iter().cloned().collect(),
            grantable,
            dynamic_grantable: BTreeSet::new(),
        }
    }

    #[test]
    fn a_change_holds_when_the_grant_tables_show_it_and_not_before() {
        let table = Scope::Table { database: "shop".into(), table: "orders".into() };
        let mut catalog = Catalog::default();
        catalog.privileges.insert(grant(table.clone(), &[Privilege::Select, Privilege::Update], true));
        catalog.accounts.push(AccountInfo {
            account: Account::new("app", "%"),
            is_role: false,
            authentication: Vec::new(),
            locked: false,
            password_expired: false,
            password_lifetime_days: None,
            max_user_connections: 0,
        });
        let revoke_update = MysqlChange::Revoke { grant: grant(table.clone(), &[Privilege::Update], false) };
        assert!(!revoke_update.holds_in(&catalog));
        let revoke_option = MysqlChange::Revoke { grant: grant(table.clone(), &[], true) };
        assert!(!revoke_option.holds_in(&catalog));
        assert!(MysqlChange::Grant { grant: grant(table.clone(), &[Privilege::Select], true) }.holds_in(&catalog));
        assert!(!MysqlChange::Grant { grant: grant(table.clone(), &[Privilege::Insert], false) }.holds_in(&catalog));
        assert!(!MysqlChange::Lock { account: Account::new("app", "%") }.holds_in(&catalog));
        assert!(MysqlChange::Lock { account: Account::new("gone", "%") }.holds_in(&catalog));

        catalog.privileges.clear();
        catalog.privileges.insert(grant(table.clone(), &[Privilege::Select], false));
        catalog.accounts[0].locked = true;
        assert!(revoke_update.holds_in(&catalog) && revoke_option.holds_in(&catalog));
        assert!(MysqlChange::Lock { account: Account::new("app", "%") }.holds_in(&catalog));
        assert!(!MysqlChange::Unlock { account: Account::new("app", "%") }.holds_in(&catalog));
        assert_eq!(revoke_update.to_string(), "revoke UPDATE on table shop.orders from 'app'@'%'");
        assert_eq!(revoke_update.chunk_database(), Some("shop"));
    }

    #[test]
    fn column_revokes_run_first_and_what_takes_away_before_what_gives() {
        let column = Scope::Column { database: "d".into(), table: "t".into(), column: "c".into() };
        let mut changes = [
            MysqlChange::Grant { grant: grant(Scope::Global, &[Privilege::Select], false) },
            MysqlChange::Revoke { grant: grant(Scope::Table { database: "d".into(), table: "t".into() }, &[], true) },
            MysqlChange::Revoke { grant: grant(column, &[Privilege::Select], false) },
        ];
        changes.sort_by_key(MysqlChange::rank);
        assert_eq!(changes.iter().map(MysqlChange::rank).collect::<Vec<_>>(), [0, 1, 2]);
    }
}
