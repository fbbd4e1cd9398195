//! What only MySQL 8 stores its own way: accounts and global privileges as
//! `Y`/`N` columns of `mysql.user`, partial revokes in its `User_attributes`
//! JSON, roles in `mysql.role_edges` and `mysql.default_roles`, dynamic
//! privileges in `mysql.global_grants`, routines and events in the data
//! dictionary (`information_schema.ROUTINES` and `EVENTS`).
//!
//! Each table is read into a row type of its own and decoded by a plain
//! function: no MySQL 8 server can run where grantwarden is tested, so the
//! decoding is tested on rows in the formats MySQL's manual documents. The
//! password hash is never selected: `authentication_string <> ''` is.

use std::collections::BTreeSet;

use mysql_async::Conn;
use serde::Deserialize;

use crate::catalog::{Account, AccountInfo, Authentication, Catalog, DefaultRole, PartialRevoke, RoleGrant, Scope};
use crate::error::ScanError;
use crate::privilege::{Column, Privilege, privilege_column};
use crate::read::{col, opt, placeholders, rows, stored_definers};

/// The privilege columns of MySQL 8's `mysql.user`, in table order.
pub const USER_PRIV_COLUMNS: &[&str] = &[
    "Select_priv",
    "Insert_priv",
    "Update_priv",
    "Delete_priv",
    "Create_priv",
    "Drop_priv",
    "Reload_priv",
    "Shutdown_priv",
    "Process_priv",
    "File_priv",
    "Grant_priv",
    "References_priv",
    "Index_priv",
    "Alter_priv",
    "Show_db_priv",
    "Super_priv",
    "Create_tmp_table_priv",
    "Lock_tables_priv",
    "Execute_priv",
    "Repl_slave_priv",
    "Repl_client_priv",
    "Create_view_priv",
    "Show_view_priv",
    "Create_routine_priv",
    "Alter_routine_priv",
    "Create_user_priv",
    "Event_priv",
    "Trigger_priv",
    "Create_tablespace_priv",
    "Create_role_priv",
    "Drop_role_priv",
];

/// A row of `mysql.user` as grantwarden selects it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRow {
    /// `User`.
    pub user: String,
    /// `Host`.
    pub host: String,
    /// `plugin`.
    pub plugin: String,
    /// `authentication_string <> ''`.
    pub hash_set: bool,
    /// `account_locked` (`Y`/`N`).
    pub account_locked: String,
    /// `password_expired` (`Y`/`N`).
    pub password_expired: String,
    /// `password_lifetime` (NULL: the server's default).
    pub password_lifetime: Option<u32>,
    /// `max_user_connections`.
    pub max_user_connections: u64,
    /// `User_attributes` (JSON or NULL).
    pub user_attributes: Option<String>,
    /// Each of [`USER_PRIV_COLUMNS`] with its `Y`/`N`.
    pub privileges: Vec<(String, String)>,
}

/// A row of `mysql.role_edges`: role `FROM_USER@FROM_HOST` granted to `TO_USER@TO_HOST`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleEdgeRow {
    /// `FROM_HOST`.
    pub from_host: String,
    /// `FROM_USER`.
    pub from_user: String,
    /// `TO_HOST`.
    pub to_host: String,
    /// `TO_USER`.
    pub to_user: String,
    /// `WITH_ADMIN_OPTION` (`Y`/`N`).
    pub with_admin_option: String,
}

/// A row of `mysql.default_roles`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefaultRoleRow {
    /// `HOST`.
    pub host: String,
    /// `USER`.
    pub user: String,
    /// `DEFAULT_ROLE_HOST`.
    pub default_role_host: String,
    /// `DEFAULT_ROLE_USER`.
    pub default_role_user: String,
}

/// A row of `mysql.global_grants` (a dynamic privilege).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlobalGrantRow {
    /// `USER`.
    pub user: String,
    /// `HOST`.
    pub host: String,
    /// `PRIV`.
    pub privilege: String,
    /// `WITH_GRANT_OPTION` (`Y`/`N`).
    pub with_grant_option: String,
}

#[derive(Deserialize)]
struct UserAttributes {
    #[serde(rename = "Restrictions", default)]
    restrictions: Vec<Restriction>,
}

#[derive(Deserialize)]
struct Restriction {
    #[serde(rename = "Database")]
    database: String,
    #[serde(rename = "Privileges")]
    privileges: Vec<String>,
}

/// Decodes the account tables into `out`. Roles are the accounts another
/// holds through `role_edges` (MySQL has no flag for them).
pub fn decode_accounts(
    users: Vec<UserRow>,
    edges: Vec<RoleEdgeRow>,
    defaults: Vec<DefaultRoleRow>,
    dynamic: Vec<GlobalGrantRow>,
    out: &mut Catalog,
) -> Result<(), ScanError> {
    let roles: BTreeSet<Account> = edges.iter().map(|e| Account::new(&e.from_user, &e.from_host)).collect();
    for u in users {
        let account = Account::new(&u.user, &u.host);
        let (mut privileges, mut grantable) = (Vec::new(), false);
        for (column, yn) in &u.privileges {
            match privilege_column(column) {
                Some(Column::Privilege(p)) if yn == "Y" => privileges.push(p),
                Some(Column::GrantOption) if yn == "Y" => grantable = true,
                Some(_) => {}
                None => {
                    return Err(ScanError::Row {
                        query: "mysql.user",
                        field: "*_priv",
                        message: format!("{column} is not a privilege column"),
                    });
                }
            }
        }
        out.add_privileges(account.clone(), Scope::Global, privileges, grantable);
        if let Some(json) = u.user_attributes.as_deref().filter(|j| !j.trim().is_empty()) {
            let attributes: UserAttributes = serde_json::from_str(json).map_err(|e| ScanError::Row {
                query: "mysql.user",
                field: "User_attributes",
                message: format!("{account}: {e}"),
            })?;
            for r in attributes.restrictions {
                out.partial_revokes.insert(PartialRevoke {
                    account: account.clone(),
                    database: r.database,
                    privileges: r.privileges.iter().map(|p| Privilege::from_keyword(p)).collect(),
                });
            }
        }
        let is_role = roles.contains(&account);
        let locked = u.account_locked == "Y";
        out.accounts.push(AccountInfo {
            is_role,
            authentication: vec![Authentication::of(&u.plugin, u.hash_set)],
            locked,
            password_expired: u.password_expired == "Y",
            password_lifetime_days: u.password_lifetime,
            max_user_connections: u.max_user_connections,
            account,
        });
    }
    for e in edges {
        out.roles.insert(RoleGrant {
            grantee: Account::new(&e.to_user, &e.to_host),
            role: Account::new(&e.from_user, &e.from_host),
            admin: e.with_admin_option == "Y",
        });
    }
    for d in defaults {
        out.default_roles.insert(DefaultRole {
            account: Account::new(&d.user, &d.host),
            role: Account::new(&d.default_role_user, &d.default_role_host),
        });
    }
    for g in dynamic {
        let grantable = g.with_grant_option == "Y";
        out.add_dynamic(Account::new(&g.user, &g.host), Privilege::from_keyword(&g.privilege), grantable);
    }
    Ok(())
}

/// Reads and decodes the account tables of a MySQL 8 server.
pub(crate) async fn accounts(conn: &mut Conn, out: &mut Catalog) -> Result<(), ScanError> {
    const U: &str = "mysql.user";
    let sql = format!(
        "SELECT User, Host, plugin, authentication_string <> '', account_locked, password_expired, \
         password_lifetime, max_user_connections, User_attributes, {} FROM mysql.user",
        USER_PRIV_COLUMNS.join(", ")
    );
    let mut users = Vec::new();
    for row in rows(conn, U, &sql, &[]).await? {
        let mut privileges = Vec::with_capacity(USER_PRIV_COLUMNS.len());
        for (i, c) in USER_PRIV_COLUMNS.iter().enumerate() {
            privileges.push(((*c).to_owned(), col::<String>(&row, 9 + i, U, "*_priv")?));
        }
        users.push(UserRow {
            user: col(&row, 0, U, "User")?,
            host: col(&row, 1, U, "Host")?,
            plugin: col(&row, 2, U, "plugin")?,
            hash_set: col::<i64>(&row, 3, U, "authentication_string")? != 0,
            account_locked: col(&row, 4, U, "account_locked")?,
            password_expired: col(&row, 5, U, "password_expired")?,
            password_lifetime: opt(&row, 6, U, "password_lifetime")?,
            max_user_connections: col(&row, 7, U, "max_user_connections")?,
            user_attributes: opt(&row, 8, U, "User_attributes")?,
            privileges,
        });
    }
    const E: &str = "mysql.role_edges";
    let mut edges = Vec::new();
    let sql = "SELECT FROM_HOST, FROM_USER, TO_HOST, TO_USER, WITH_ADMIN_OPTION FROM mysql.role_edges";
    for row in rows(conn, E, sql, &[]).await? {
        edges.push(RoleEdgeRow {
            from_host: col(&row, 0, E, "FROM_HOST")?,
            from_user: col(&row, 1, E, "FROM_USER")?,
            to_host: col(&row, 2, E, "TO_HOST")?,
            to_user: col(&row, 3, E, "TO_USER")?,
            with_admin_option: col(&row, 4, E, "WITH_ADMIN_OPTION")?,
        });
    }
    const D: &str = "mysql.default_roles";
    let mut defaults = Vec::new();
    let sql = "SELECT HOST, USER, DEFAULT_ROLE_HOST, DEFAULT_ROLE_USER FROM mysql.default_roles";
    for row in rows(conn, D, sql, &[]).await? {
        defaults.push(DefaultRoleRow {
            host: col(&row, 0, D, "HOST")?,
            user: col(&row, 1, D, "USER")?,
            default_role_host: col(&row, 2, D, "DEFAULT_ROLE_HOST")?,
            default_role_user: col(&row, 3, D, "DEFAULT_ROLE_USER")?,
        });
    }
    const G: &str = "mysql.global_grants";
    let mut dynamic = Vec::new();
    for row in rows(conn, G, "SELECT USER, HOST, PRIV, WITH_GRANT_OPTION FROM mysql.global_grants", &[]).await? {
        dynamic.push(GlobalGrantRow {
            user: col(&row, 0, G, "USER")?,
            host: col(&row, 1, G, "HOST")?,
            privilege: col(&row, 2, G, "PRIV")?,
            with_grant_option: col(&row, 3, G, "WITH_GRANT_OPTION")?,
        });
    }
    decode_accounts(users, edges, defaults, dynamic, out)
}

/// Routine and event definers of `databases` from the data dictionary
/// (`ROUTINES` lists every routine to an account with the SHOW_ROUTINE
/// privilege, `EVENTS` every event to one with EVENT).
pub(crate) async fn stored(conn: &mut Conn, databases: &[String], out: &mut Catalog) -> Result<(), ScanError> {
    let inn = placeholders(databases.len());
    let sql = format!(
        "SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE, DEFINER, SECURITY_TYPE FROM information_schema.ROUTINES \
         WHERE ROUTINE_SCHEMA {inn}"
    );
    stored_definers(conn, "information_schema.ROUTINES", &sql, databases, out).await?;
    let sql = format!(
        "SELECT EVENT_SCHEMA, EVENT_NAME, 'EVENT', DEFINER, NULL FROM information_schema.EVENTS WHERE EVENT_SCHEMA {inn}"
    );
    stored_definers(conn, "information_schema.EVENTS", &sql, databases, out).await
}

/// The global privileges of the scanning account (its `mysql.user` row and
/// its dynamic privileges).
pub(crate) async fn own_global_privileges(conn: &mut Conn) -> Result<Vec<Privilege>, ScanError> {
    const Q: &str = "own global privileges";
    let sql = format!(
        "SELECT {} FROM mysql.user WHERE CONCAT(User, '@', Host) = CURRENT_USER()",
        USER_PRIV_COLUMNS.join(", ")
    );
    let mut out = Vec::new();
    for row in rows(conn, Q, &sql, &[]).await? {
        for (i, c) in USER_PRIV_COLUMNS.iter().enumerate() {
            if col::<String>(&row, i, Q, "*_priv")? == "Y"
                && let Some(Column::Privilege(p)) = privilege_column(c)
            {
                out.push(p);
            }
        }
    }
    let sql = "SELECT PRIV FROM mysql.global_grants WHERE CONCAT(USER, '@', HOST) = CURRENT_USER()";
    for row in rows(conn, Q, sql, &[]).await? {
        out.push(Privilege::from_keyword(&col::<String>(&row, 0, Q, "PRIV")?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(user: &str, host: &str, yes: &[&str], attributes: Option<&str>) -> UserRow {
        UserRow {
            user: user.into(),
            host: host.into(),
            plugin: "caching_sha2_password".into(),
            hash_set: true,
            account_locked: "N".into(),
            password_expired: "N".into(),
            password_lifetime: None,
            max_user_connections: 0,
            user_attributes: attributes.map(str::to_owned),
            privileges: USER_PRIV_COLUMNS
                .iter()
                .map(|c| ((*c).to_owned(), if yes.contains(c) { "Y" } else { "N" }.to_owned()))
                .collect(),
        }
    }

    // Rows as MySQL 8.0's manual shows them: "Privilege Restriction Using Partial
    // Revokes" (User_attributes), "Using Roles" (role_edges, default_roles) and
    // "Static Versus Dynamic Privileges" (global_grants).
    #[test]
    fn mysql8_account_tables_decode_with_roles_dynamic_privileges_and_partial_revokes() {
        let users = vec![
            user(
                "u1",
                "localhost",
                &["Select_priv", "Insert_priv", "Update_priv", "Delete_priv", "Grant_priv"],
                Some(r#"{"Restrictions": [{"Database": "mysql", "Privileges": ["INSERT", "UPDATE", "DELETE"]}]}"#),
            ),
            UserRow { account_locked: "Y".into(), hash_set: false, ..user("app_read", "%", &[], None) },
            user("dba", "10.0.%", &["Super_priv", "File_priv", "Process_priv"], Some("")),
        ];
        let edges = vec![RoleEdgeRow {
            from_host: "%".into(),
            from_user: "app_read".into(),
            to_host: "localhost".into(),
            to_user: "u1".into(),
            with_admin_option: "N".into(),
        }];
        let defaults = vec![DefaultRoleRow {
            host: "localhost".into(),
            user: "u1".into(),
            default_role_host: "%".into(),
            default_role_user: "app_read".into(),
        }];
        let dynamic = vec![
            GlobalGrantRow {
                user: "dba".into(),
                host: "10.0.%".into(),
                privilege: "BACKUP_ADMIN".into(),
                with_grant_option: "N".into(),
            },
            GlobalGrantRow {
                user: "dba".into(),
                host: "10.0.%".into(),
                privilege: "SYSTEM_VARIABLES_ADMIN".into(),
                with_grant_option: "Y".into(),
            },
        ];
        let mut c = Catalog::default();
        decode_accounts(users, edges, defaults, dynamic, &mut c).unwrap();
        let u1 = Account::new("u1", "localhost");
        let g = c.privileges_at(&u1, &Scope::Global).unwrap();
        assert_eq!(
            g.privileges.iter().cloned().collect::<Vec<_>>(),
            vec![Privilege::Select, Privilege::Insert, Privilege::Update, Privilege::Delete]
        );
        assert!(g.grantable);
        let revoke = c.partial_revokes.iter().next().unwrap();
        assert_eq!((revoke.account.clone(), revoke.database.as_str()), (u1.clone(), "mysql"));
        assert_eq!(revoke.privileges, [Privilege::Insert, Privilege::Update, Privilege::Delete].into_iter().collect());
        let role = c.account(&Account::new("app_read", "%")).unwrap();
        assert!(role.is_role && role.locked && !role.passwordless(), "a locked role is no open door");
        assert!(c.roles.contains(&RoleGrant { grantee: u1.clone(), role: role.account.clone(), admin: false }));
        assert!(c.default_roles.contains(&DefaultRole { account: u1, role: role.account.clone() }));
        let dba = c.privileges_at(&Account::new("dba", "10.0.%"), &Scope::Global).unwrap();
        assert!(dba.privileges.contains(&Privilege::Dynamic("BACKUP_ADMIN".into())));
        assert!(dba.privileges.contains(&Privilege::Super) && dba.privileges.contains(&Privilege::File));
        assert!(!dba.grantable, "no GRANT OPTION on the static privileges");
        assert_eq!(
            dba.dynamic_grantable.iter().cloned().collect::<Vec<_>>(),
            vec![Privilege::Dynamic("SYSTEM_VARIABLES_ADMIN".into())]
        );
        assert!(!c.account(&Account::new("dba", "10.0.%")).unwrap().is_role);
    }

    #[test]
    fn bad_user_attributes_name_the_account_and_field() {
        let mut c = Catalog::default();
        let err = decode_accounts(vec![user("x", "%", &[], Some("{not json"))], vec![], vec![], vec![], &mut c)
            .unwrap_err()
            .to_string();
        assert!(err.contains("User_attributes") && err.contains("'x'@'%'"), "{err}");
    }
}
