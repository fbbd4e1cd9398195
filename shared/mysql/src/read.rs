//! The reads both engines share: database, table, column and routine
//! privileges, proxy grants, view and trigger definers. They are the same
//! tables with the same columns on MariaDB 10.6+ and MySQL 8.

use mysql_async::prelude::{FromValue, Queryable};
use mysql_async::{Conn, Params, Row, Value};

use crate::catalog::{Account, Catalog, Definer, ProxyGrant, Scope, StoredKind, is_pattern, unescape};
use crate::error::ScanError;
use crate::privilege::{Column, decode_set, privilege_column};

/// Column `i` of `row` as `T`; a NULL or an undecodable value names the query and field.
pub(crate) fn col<T: FromValue>(row: &Row, i: usize, query: &'static str, field: &'static str) -> Result<T, ScanError> {
    match row.get_opt::<T, usize>(i) {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(ScanError::Row { query, field, message: e.to_string() }),
        None => Err(ScanError::Row { query, field, message: "missing".into() }),
    }
}

/// Column `i` as `Option<T>` (NULL is `None`).
pub(crate) fn opt<T: FromValue>(
    row: &Row,
    i: usize,
    query: &'static str,
    field: &'static str,
) -> Result<Option<T>, ScanError> {
    match row.as_ref(i) {
        None | Some(Value::NULL) => Ok(None),
        Some(_) => col(row, i, query, field).map(Some),
    }
}

/// Runs `sql` (with `?` for each of `params`) and returns its rows.
pub(crate) async fn rows(
    conn: &mut Conn,
    what: &'static str,
    sql: &str,
    params: &[String],
) -> Result<Vec<Row>, ScanError> {
    let params = if params.is_empty() {
        Params::Empty
    } else {
        Params::Positional(params.iter().map(|p| Value::from(p.as_str())).collect())
    };
    conn.exec(sql, params).await.map_err(ScanError::db(what))
}

/// `IN (?, ?, ...)` for `n` parameters.
pub(crate) fn placeholders(n: usize) -> String {
    format!("IN ({})", vec!["?"; n].join(", "))
}

/// `mysql.db`, every row (one per account and database granted to: few, and
/// read whole in the accounts chunk). A `Db` with an unescaped `_` or `%` is
/// a pattern, as the server matches it: `GRANT ... ON app_db.*` also covers
/// `appxdb`. Any other is stored as the literal name (`app\_db` is `app_db`).
pub(crate) async fn database_privileges(conn: &mut Conn, out: &mut Catalog) -> Result<(), ScanError> {
    const Q: &str = "mysql.db";
    for row in rows(conn, Q, "SELECT * FROM mysql.db", &[]).await? {
        let (mut user, mut host, mut db) = (None, None, None);
        let (mut privileges, mut grantable) = (Vec::new(), false);
        for (i, c) in row.columns_ref().iter().enumerate() {
            let name = c.name_str();
            match name.to_ascii_lowercase().as_str() {
                "user" => user = Some(col::<String>(&row, i, Q, "User")?),
                "host" => host = Some(col::<String>(&row, i, Q, "Host")?),
                "db" => db = Some(col::<String>(&row, i, Q, "Db")?),
                _ => {
                    if let Some(column) = privilege_column(&name) {
                        let yes = col::<String>(&row, i, Q, "*_priv")? == "Y";
                        match column {
                            Column::Privilege(p) if yes => privileges.push(p),
                            Column::GrantOption if yes => grantable = true,
                            _ => {}
                        }
                    }
                }
            }
        }
        let (Some(user), Some(host), Some(db)) = (user, host, db) else {
            return Err(ScanError::Row { query: Q, field: "User, Host, Db", message: "missing".into() });
        };
        let pattern = is_pattern(&db);
        let database = if pattern { db } else { unescape(&db) };
        out.add_privileges(Account::new(&user, &host), Scope::Database { database, pattern }, privileges, grantable);
    }
    Ok(())
}

/// `tables_priv`, `columns_priv` and `procs_priv` of `databases`. A column
/// privilege is grantable when its table's row holds `Grant` (the server
/// keeps one grant option per table).
pub(crate) async fn object_privileges(
    conn: &mut Conn,
    databases: &[String],
    out: &mut Catalog,
) -> Result<(), ScanError> {
    let inn = placeholders(databases.len());
    const T: &str = "mysql.tables_priv";
    let sql = format!("SELECT User, Host, Db, Table_name, Table_priv FROM mysql.tables_priv WHERE Db {inn}");
    let mut table_grant_option = std::collections::BTreeSet::new();
    for row in rows(conn, T, &sql, databases).await? {
        let (user, host): (String, String) = (col(&row, 0, T, "User")?, col(&row, 1, T, "Host")?);
        let (db, table): (String, String) = (col(&row, 2, T, "Db")?, col(&row, 3, T, "Table_name")?);
        let (privileges, grantable) = decode_set(&col::<String>(&row, 4, T, "Table_priv")?);
        if grantable {
            table_grant_option.insert((user.clone(), host.clone(), db.clone(), table.clone()));
        }
        out.add_privileges(Account::new(&user, &host), Scope::Table { database: db, table }, privileges, grantable);
    }
    const C: &str = "mysql.columns_priv";
    let sql =
        format!("SELECT User, Host, Db, Table_name, Column_name, Column_priv FROM mysql.columns_priv WHERE Db {inn}");
    for row in rows(conn, C, &sql, databases).await? {
        let (user, host): (String, String) = (col(&row, 0, C, "User")?, col(&row, 1, C, "Host")?);
        let (db, table, column): (String, String, String) =
            (col(&row, 2, C, "Db")?, col(&row, 3, C, "Table_name")?, col(&row, 4, C, "Column_name")?);
        let (privileges, _) = decode_set(&col::<String>(&row, 5, C, "Column_priv")?);
        let grantable = table_grant_option.contains(&(user.clone(), host.clone(), db.clone(), table.clone()));
        if privileges.is_empty() {
            continue;
        }
        out.add_privileges(
            Account::new(&user, &host),
            Scope::Column { database: db, table, column },
            privileges,
            grantable,
        );
    }
    const P: &str = "mysql.procs_priv";
    let sql =
        format!("SELECT User, Host, Db, Routine_name, Routine_type, Proc_priv FROM mysql.procs_priv WHERE Db {inn}");
    for row in rows(conn, P, &sql, databases).await? {
        let (user, host): (String, String) = (col(&row, 0, P, "User")?, col(&row, 1, P, "Host")?);
        let (db, name, kind): (String, String, String) =
            (col(&row, 2, P, "Db")?, col(&row, 3, P, "Routine_name")?, col(&row, 4, P, "Routine_type")?);
        let (privileges, grantable) = decode_set(&col::<String>(&row, 5, P, "Proc_priv")?);
        out.add_privileges(
            Account::new(&user, &host),
            Scope::Routine { database: db, name, kind },
            privileges,
            grantable,
        );
    }
    Ok(())
}

/// `mysql.proxies_priv`, every row: the ones an install gives root
/// (`''@''` with grant option: root may grant PROXY on any account) included.
pub(crate) async fn proxies(conn: &mut Conn, out: &mut Catalog) -> Result<(), ScanError> {
    const Q: &str = "mysql.proxies_priv";
    let sql = "SELECT User, Host, Proxied_user, Proxied_host, With_grant FROM mysql.proxies_priv";
    for row in rows(conn, Q, sql, &[]).await? {
        let grantee = Account::new(&col::<String>(&row, 0, Q, "User")?, &col::<String>(&row, 1, Q, "Host")?);
        let proxied =
            Account::new(&col::<String>(&row, 2, Q, "Proxied_user")?, &col::<String>(&row, 3, Q, "Proxied_host")?);
        let grantable = col::<i64>(&row, 4, Q, "With_grant")? != 0;
        out.proxies.insert(ProxyGrant { grantee, proxied, grantable });
    }
    Ok(())
}

/// View definers (`information_schema.VIEWS`, which lists a view only to an
/// account with SHOW VIEW on it: the scanner checks it holds SHOW VIEW on `*.*`).
pub(crate) async fn view_definers(conn: &mut Conn, databases: &[String], out: &mut Catalog) -> Result<(), ScanError> {
    let sql = format!(
        "SELECT TABLE_SCHEMA, TABLE_NAME, 'VIEW', DEFINER, SECURITY_TYPE FROM information_schema.VIEWS \
         WHERE TABLE_SCHEMA {}",
        placeholders(databases.len())
    );
    stored_definers(conn, "information_schema.VIEWS", &sql, databases, out).await
}

/// Trigger definers (`information_schema.TRIGGERS`: listed only to an account
/// with TRIGGER on the table; the scanner checks it holds TRIGGER on `*.*`).
pub(crate) async fn trigger_definers(
    conn: &mut Conn,
    databases: &[String],
    out: &mut Catalog,
) -> Result<(), ScanError> {
    let sql = format!(
        "SELECT TRIGGER_SCHEMA, TRIGGER_NAME, 'TRIGGER', DEFINER, NULL FROM information_schema.TRIGGERS \
         WHERE TRIGGER_SCHEMA {}",
        placeholders(databases.len())
    );
    stored_definers(conn, "information_schema.TRIGGERS", &sql, databases, out).await
}

/// Definers from a query that returns, per object: schema, name, kind
/// (`VIEW`, `TRIGGER`, `EVENT`, or a routine's `PROCEDURE`, `FUNCTION`,
/// `PACKAGE`...), definer and security type (NULL for triggers and events,
/// which always run as their definer).
pub(crate) async fn stored_definers(
    conn: &mut Conn,
    what: &'static str,
    sql: &str,
    databases: &[String],
    out: &mut Catalog,
) -> Result<(), ScanError> {
    for row in rows(conn, what, sql, databases).await? {
        let kind = match col::<String>(&row, 2, what, "type")?.to_ascii_uppercase().as_str() {
            "VIEW" => StoredKind::View,
            "TRIGGER" => StoredKind::Trigger,
            "FUNCTION" => StoredKind::Function,
            "EVENT" => StoredKind::Event,
            _ => StoredKind::Procedure,
        };
        let security: Option<String> = opt(&row, 4, what, "security_type")?;
        out.definers.insert(Definer {
            kind,
            database: col(&row, 0, what, "schema")?,
            name: col(&row, 1, what, "name")?,
            definer: Account::from_definer(&col::<String>(&row, 3, what, "definer")?),
            runs_as_definer: security.is_none_or(|s| s.eq_ignore_ascii_case("DEFINER")),
        });
    }
    Ok(())
}
