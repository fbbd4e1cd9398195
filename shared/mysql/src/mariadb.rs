//! What only MariaDB (10.6 and later) stores its own way: accounts, roles and
//! global privileges in `mysql.global_priv` (one JSON document per account or
//! role), role grants in `mysql.roles_mapping`, routines in `mysql.proc` and
//! events in `mysql.event`.
//!
//! The JSON is read with `JSON_VALUE` and `JSON_TABLE` on the server, key by
//! key: a password hash never leaves it, only whether one is set. A JSON
//! `true` comes out of `JSON_VALUE` as `1`; `password_lifetime` -1 is the
//! server's default and `password_last_changed` 0 an expired password.

use mysql_async::Conn;

use crate::catalog::{Account, AccountInfo, Authentication, Catalog, DefaultRole, RoleGrant, Scope};
use crate::error::ScanError;
use crate::privilege::{Privilege, decode_access};
use crate::read::{col, opt, placeholders, rows, stored_definers};

const ACCOUNTS: &str = "mysql.global_priv";
const ACCOUNTS_SQL: &str = "SELECT User, Host, \
     CAST(COALESCE(JSON_VALUE(Priv, '$.access'), '0') AS UNSIGNED), \
     COALESCE(JSON_VALUE(Priv, '$.is_role'), '') IN ('1', 'true'), \
     COALESCE(JSON_VALUE(Priv, '$.plugin'), ''), \
     COALESCE(JSON_VALUE(Priv, '$.authentication_string'), '') <> '', \
     COALESCE(JSON_VALUE(Priv, '$.account_locked'), '') IN ('1', 'true'), \
     CAST(JSON_VALUE(Priv, '$.password_last_changed') AS SIGNED), \
     CAST(JSON_VALUE(Priv, '$.password_lifetime') AS SIGNED), \
     CAST(COALESCE(JSON_VALUE(Priv, '$.max_user_connections'), '0') AS SIGNED), \
     JSON_VALUE(Priv, '$.default_role') \
     FROM mysql.global_priv";

// `IDENTIFIED VIA a OR b`: each method but the last is an element of `auth_or`
const AUTH_OR: &str = "mysql.global_priv auth_or";
const AUTH_OR_SQL: &str = "SELECT g.User, g.Host, a.plugin, COALESCE(a.auth, '') <> '' \
     FROM mysql.global_priv g, \
     JSON_TABLE(g.Priv, '$.auth_or[*]' COLUMNS (plugin VARCHAR(128) PATH '$.plugin', \
       auth TEXT PATH '$.authentication_string')) a \
     WHERE a.plugin IS NOT NULL";

/// Accounts, roles, global privileges, role grants and default roles.
pub(crate) async fn accounts(conn: &mut Conn, out: &mut Catalog) -> Result<(), ScanError> {
    let mut extra: std::collections::BTreeMap<Account, Vec<Authentication>> = Default::default();
    for row in rows(conn, AUTH_OR, AUTH_OR_SQL, &[]).await? {
        let account =
            Account::new(&col::<String>(&row, 0, AUTH_OR, "User")?, &col::<String>(&row, 1, AUTH_OR, "Host")?);
        let plugin: String = col(&row, 2, AUTH_OR, "plugin")?;
        extra.entry(account).or_default().push(Authentication::of(&plugin, col::<i64>(&row, 3, AUTH_OR, "set")? != 0));
    }
    const Q: &str = ACCOUNTS;
    for row in rows(conn, Q, ACCOUNTS_SQL, &[]).await? {
        let account = Account::new(&col::<String>(&row, 0, Q, "User")?, &col::<String>(&row, 1, Q, "Host")?);
        let access: u64 = col(&row, 2, Q, "access")?;
        let is_role = col::<i64>(&row, 3, Q, "is_role")? != 0;
        let plugin: String = col(&row, 4, Q, "plugin")?;
        let hash_set = col::<i64>(&row, 5, Q, "authentication_string")? != 0;
        let locked = col::<i64>(&row, 6, Q, "account_locked")? != 0;
        let last_changed: Option<i64> = opt(&row, 7, Q, "password_last_changed")?;
        let lifetime: Option<i64> = opt(&row, 8, Q, "password_lifetime")?;
        let max_user_connections: i64 = col(&row, 9, Q, "max_user_connections")?;
        let default_role: Option<String> = opt(&row, 10, Q, "default_role")?;
        let decoded = decode_access(access);
        if !decoded.unknown_bits.is_empty() {
            // a newer server's privilege: never dropped, named by its bit
            let unknown = decoded.unknown_bits.iter().map(|b| Privilege::Dynamic(format!("ACCESS BIT {b}")));
            out.add_privileges(account.clone(), Scope::Global, unknown.collect(), false);
        }
        out.add_privileges(account.clone(), Scope::Global, decoded.privileges, decoded.grantable);
        let mut authentication =
            if is_role { vec![Authentication::None] } else { vec![Authentication::of(&plugin, hash_set)] };
        authentication.extend(extra.remove(&account).unwrap_or_default());
        if let Some(role) = default_role.filter(|r| !r.is_empty()) {
            out.default_roles.insert(DefaultRole { account: account.clone(), role: Account::new(&role, "") });
        }
        out.accounts.push(AccountInfo {
            account,
            is_role,
            authentication,
            locked,
            // PASSWORD EXPIRE sets password_last_changed to 0
            password_expired: !is_role && last_changed == Some(0),
            password_lifetime_days: lifetime.and_then(|d| u32::try_from(d).ok()),
            max_user_connections: u64::try_from(max_user_connections).unwrap_or(0),
        });
    }
    const R: &str = "mysql.roles_mapping";
    for row in rows(conn, R, "SELECT User, Host, Role, Admin_option FROM mysql.roles_mapping", &[]).await? {
        let grantee = Account::new(&col::<String>(&row, 0, R, "User")?, &col::<String>(&row, 1, R, "Host")?);
        let role = Account::new(&col::<String>(&row, 2, R, "Role")?, "");
        let admin = col::<String>(&row, 3, R, "Admin_option")? == "Y";
        out.roles.insert(RoleGrant { grantee, role, admin });
    }
    Ok(())
}

/// Routine and event definers of `databases` (`mysql.proc`, `mysql.event`:
/// readable with SELECT on `mysql.*`).
pub(crate) async fn stored(conn: &mut Conn, databases: &[String], out: &mut Catalog) -> Result<(), ScanError> {
    let inn = placeholders(databases.len());
    let sql = format!("SELECT db, name, type, definer, security_type FROM mysql.proc WHERE db {inn}");
    stored_definers(conn, "mysql.proc", &sql, databases, out).await?;
    let sql = format!("SELECT db, name, 'EVENT', definer, NULL FROM mysql.event WHERE db {inn}");
    stored_definers(conn, "mysql.event", &sql, databases, out).await
}

/// The global privileges of the scanning account and of its current role
/// (what decides which `information_schema` views list everything).
pub(crate) async fn own_global_privileges(conn: &mut Conn) -> Result<Vec<Privilege>, ScanError> {
    const Q: &str = "own global privileges";
    let sql = "SELECT CAST(COALESCE(JSON_VALUE(Priv, '$.access'), '0') AS UNSIGNED) FROM mysql.global_priv \
         WHERE (CONCAT(User, '@', Host) = CURRENT_USER()) OR (Host = '' AND User = CURRENT_ROLE())";
    let mut out = Vec::new();
    for row in rows(conn, Q, sql, &[]).await? {
        out.extend(decode_access(col(&row, 0, Q, "access")?).privileges);
    }
    Ok(out)
}
