//! Privilege changes as MySQL and MariaDB SQL, every name quoted by the
//! engine's rules ([`crate::quote`]): accounts and hosts as strings, databases,
//! tables, columns and routines as identifiers. A database named literally in
//! a database-level grant has its `_` and `%` escaped (`app\_db`): unescaped,
//! the server would read them as wildcards and the grant would cover other
//! databases. Privilege keywords come from [`Privilege`]'s own table; a
//! dynamic privilege's name must be letters, digits and `_`.

use crate::catalog::{Account, PrivilegeGrant, ProxyGrant, RoleGrant, Scope};
use crate::error::ScanError;
use crate::privilege::Privilege;
use crate::quote::{ident, string};
use grantwarden_core::mysql::change::MysqlChange;

/// `'user'@'host'`, or a MariaDB role (`'name'`, no host).
pub fn account(a: &Account) -> String {
    if a.host.is_empty() { string(&a.user) } else { format!("{}@{}", string(&a.user), string(&a.host)) }
}

/// A database name as a database-level grant takes it: literal names escaped,
/// patterns as they are.
fn database_for_grant(database: &str, pattern: bool) -> String {
    if pattern {
        return ident(database);
    }
    let mut escaped = String::with_capacity(database.len() + 2);
    for c in database.chars() {
        if matches!(c, '_' | '%' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    ident(&escaped)
}

/// `ON ...` for a scope, and the column list that goes after each privilege.
fn on(scope: &Scope) -> Result<(String, Option<String>), ScanError> {
    Ok(match scope {
        Scope::Global => ("*.*".to_owned(), None),
        Scope::Database { database, pattern } => (format!("{}.*", database_for_grant(database, *pattern)), None),
        Scope::Table { database, table } => (format!("{}.{}", ident(database), ident(table)), None),
        Scope::Column { database, table, column } => {
            (format!("{}.{}", ident(database), ident(table)), Some(format!(" ({})", ident(column))))
        }
        Scope::Routine { database, name, kind } => {
            let kind = match kind.to_ascii_uppercase().as_str() {
                k @ ("PROCEDURE" | "FUNCTION" | "PACKAGE" | "PACKAGE BODY") => k.to_owned(),
                other => {
                    return Err(ScanError::Row {
                        query: "render",
                        field: "Routine_type",
                        message: format!("{other:?} is not a routine type"),
                    });
                }
            };
            (format!("{kind} {}.{}", ident(database), ident(name)), None)
        }
    })
}

fn keyword(p: &Privilege) -> Result<&str, ScanError> {
    let k = p.keyword();
    if let Privilege::Dynamic(name) = p
        && (name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    {
        return Err(ScanError::Row {
            query: "render",
            field: "privilege",
            message: format!("{name:?} is no privilege name"),
        });
    }
    Ok(k)
}

fn privilege_list(grant: &PrivilegeGrant) -> Result<String, ScanError> {
    let (_, columns) = on(&grant.scope)?;
    let mut out = Vec::with_capacity(grant.privileges.len());
    for p in &grant.privileges {
        out.push(format!("{}{}", keyword(p)?, columns.as_deref().unwrap_or("")));
    }
    Ok(out.join(", "))
}

/// The statements that give `grant`: its privileges (with GRANT OPTION when it
/// is grantable; `USAGE` when the grant option is all it holds), and each
/// MySQL 8 dynamic privilege held with its own grant option.
pub fn grant(grant: &PrivilegeGrant) -> Result<Vec<String>, ScanError> {
    let (on, _) = on(&grant.scope)?;
    let to = account(&grant.grantee);
    let mut out = Vec::new();
    let plain: Vec<&Privilege> = grant.privileges.iter().filter(|p| !grant.dynamic_grantable.contains(*p)).collect();
    if !plain.is_empty() || grant.grantable {
        let list = if plain.is_empty() {
            "USAGE".to_owned()
        } else {
            privilege_list(&PrivilegeGrant { privileges: plain.into_iter().cloned().collect(), ..grant.clone() })?
        };
        let option = if grant.grantable { " WITH GRANT OPTION" } else { "" };
        out.push(format!("GRANT {list} ON {on} TO {to}{option}"));
    }
    for p in &grant.dynamic_grantable {
        out.push(format!("GRANT {} ON *.* TO {to} WITH GRANT OPTION", keyword(p)?));
    }
    Ok(out)
}

/// The statements that take `grant` away: its privileges, then the grant
/// option. A column grant's grant option is its table's (the server keeps one
/// per table, read as the table's grant): it goes with the table's grant.
/// Revoke columns before their table: the table's last privilege revoked
/// takes the row its column grants hang on.
pub fn revoke(grant: &PrivilegeGrant) -> Result<Vec<String>, ScanError> {
    let (on, _) = on(&grant.scope)?;
    let from = account(&grant.grantee);
    let mut out = Vec::new();
    if !grant.privileges.is_empty() {
        out.push(format!("REVOKE {} ON {on} FROM {from}", privilege_list(grant)?));
    }
    if grant.grantable && !matches!(grant.scope, Scope::Column { .. }) {
        out.push(format!("REVOKE GRANT OPTION ON {on} FROM {from}"));
    }
    Ok(out)
}

/// `GRANT role TO grantee [WITH ADMIN OPTION]`.
pub fn grant_role(g: &RoleGrant) -> String {
    let option = if g.admin { " WITH ADMIN OPTION" } else { "" };
    format!("GRANT {} TO {}{option}", account(&g.role), account(&g.grantee))
}

/// `REVOKE role FROM grantee`.
pub fn revoke_role(g: &RoleGrant) -> String {
    format!("REVOKE {} FROM {}", account(&g.role), account(&g.grantee))
}

/// `GRANT PROXY ON proxied TO grantee [WITH GRANT OPTION]`.
pub fn grant_proxy(g: &ProxyGrant) -> String {
    let option = if g.grantable { " WITH GRANT OPTION" } else { "" };
    format!("GRANT PROXY ON {} TO {}{option}", account(&g.proxied), account(&g.grantee))
}

/// `REVOKE PROXY ON proxied FROM grantee`.
pub fn revoke_proxy(g: &ProxyGrant) -> String {
    format!("REVOKE PROXY ON {} FROM {}", account(&g.proxied), account(&g.grantee))
}

/// `ALTER USER account ACCOUNT LOCK` (or `UNLOCK`).
pub fn lock(account: &Account, locked: bool) -> String {
    format!("ALTER USER {} ACCOUNT {}", self::account(account), if locked { "LOCK" } else { "UNLOCK" })
}

/// The statements of one change, in the order they run.
pub fn change(change: &MysqlChange) -> Result<Vec<String>, ScanError> {
    Ok(match change {
        MysqlChange::Grant { grant: g } => grant(g)?,
        MysqlChange::Revoke { grant: g } => revoke(g)?,
        MysqlChange::GrantRole { grant } => vec![grant_role(grant)],
        MysqlChange::RevokeRole { grant } => vec![revoke_role(grant)],
        MysqlChange::GrantProxy { grant } => vec![grant_proxy(grant)],
        MysqlChange::RevokeProxy { grant } => vec![revoke_proxy(grant)],
        MysqlChange::Lock { account } => vec![lock(account, true)],
        MysqlChange::Unlock { account } => vec![lock(account, false)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn g(scope: Scope, ps: &[Privilege], grantable: bool) -> PrivilegeGrant {
        PrivilegeGrant {
            grantee: Account::new("o'k", "10.0.%"),
            scope,
            privileges: ps.iter().cloned().collect(),
            grantable,
            dynamic_grantable: BTreeSet::new(),
        }
    }

    #[test]
    fn every_level_renders_with_its_names_quoted() {
        let db = |d: &str, pattern| Scope::Database { database: d.into(), pattern };
        assert_eq!(
            grant(&g(Scope::Global, &[Privilege::Process, Privilege::File], true)).unwrap(),
            ["GRANT PROCESS, FILE ON *.* TO 'o''k'@'10.0.%' WITH GRANT OPTION"]
        );
        assert_eq!(
            grant(&g(db("app_db", false), &[Privilege::Select], false)).unwrap(),
            ["GRANT SELECT ON `app\\_db`.* TO 'o''k'@'10.0.%'"]
        );
        assert_eq!(
            grant(&g(db("app%", true), &[Privilege::Select], false)).unwrap()[0],
            "GRANT SELECT ON `app%`.* TO 'o''k'@'10.0.%'"
        );
        let col = Scope::Column { database: "d`b".into(), table: "t".into(), column: "c`1".into() };
        assert_eq!(
            grant(&g(col, &[Privilege::Select, Privilege::Update], false)).unwrap(),
            ["GRANT SELECT (`c``1`), UPDATE (`c``1`) ON `d``b`.`t` TO 'o''k'@'10.0.%'"]
        );
        let routine = Scope::Routine { database: "d".into(), name: "p".into(), kind: "PROCEDURE".into() };
        assert_eq!(
            revoke(&g(routine, &[Privilege::Execute], true)).unwrap(),
            [
                "REVOKE EXECUTE ON PROCEDURE `d`.`p` FROM 'o''k'@'10.0.%'",
                "REVOKE GRANT OPTION ON PROCEDURE `d`.`p` FROM 'o''k'@'10.0.%'"
            ]
        );
        assert_eq!(
            grant(&g(Scope::Global, &[], true)).unwrap(),
            ["GRANT USAGE ON *.* TO 'o''k'@'10.0.%' WITH GRANT OPTION"]
        );
        let bad = Scope::Routine { database: "d".into(), name: "p".into(), kind: "TABLE; DROP".into() };
        assert!(grant(&g(bad, &[Privilege::Execute], false)).is_err());
        assert!(grant(&g(Scope::Global, &[Privilege::Dynamic("X ON *.* TO".into())], false)).is_err());
        let role = RoleGrant { grantee: Account::new("u", "%"), role: Account::new("r\\1", ""), admin: true };
        assert_eq!(grant_role(&role), "GRANT 'r\\\\1' TO 'u'@'%' WITH ADMIN OPTION");
        assert_eq!(
            change(&MysqlChange::Lock { account: Account::new("o'k", "%") }).unwrap(),
            ["ALTER USER 'o''k'@'%' ACCOUNT LOCK"]
        );
    }
}
