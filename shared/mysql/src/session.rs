//! Connections and the read-only transaction every read runs in.
//!
//! A session sets its own `sql_mode` ([`SQL_MODE`], what [`crate::quote`]
//! assumes), statement and lock-wait limits, and reads inside
//! `START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY`: it can change
//! nothing, and on MySQL 8 (whose grant tables are InnoDB) one chunk's reads
//! see one snapshot. MariaDB keeps its grant tables in Aria, which has no
//! snapshots: a grant made during a scan may or may not be seen, and the next
//! scan sees it.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder};

use crate::catalog::{Flavor, Server};
use crate::error::ScanError;
use grantwarden_core::snapshot::TargetId;
pub use grantwarden_core::snapshot::Timeouts;

/// The `sql_mode` of every session: strict, with backticks for identifiers
/// and backslash escapes in strings.
pub const SQL_MODE: &str = "STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION";

/// Parses `mysql://user:password@host:port/db` (or `mariadb://`, the same).
/// The database is optional: a scan reads the whole server.
pub fn parse_url(url: &str) -> Result<Opts, ScanError> {
    let url = match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url.to_owned(),
    };
    let opts = Opts::from_url(&url).map_err(|e| ScanError::Config(e.to_string()))?;
    // statements are few and each runs once: no server-side cache to fill
    Ok(OptsBuilder::from_opts(opts).stmt_cache_size(0).prefer_socket(false).into())
}

/// Options from parts (as a secret holds them). An empty password means none.
pub fn opts_from_parts(host: &str, port: u16, user: &str, password: &str, db: Option<&str>) -> Opts {
    OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some(user))
        .pass((!password.is_empty()).then_some(password))
        .db_name(db)
        .stmt_cache_size(0)
        .prefer_socket(false)
        .into()
}

/// `host:port` of the options: the default target id.
pub fn target_from_opts(opts: &Opts) -> TargetId {
    TargetId::new(format!("{}:{}", opts.ip_or_hostname(), opts.tcp_port())).expect("host:port is never empty")
}

/// Connects within the connect timeout and sets the session up.
pub async fn connect(opts: &Opts, timeouts: &Timeouts) -> Result<(Conn, Server), ScanError> {
    let mut conn = tokio::time::timeout(timeouts.connect, Conn::new(opts.clone()))
        .await
        .map_err(|_| ScanError::ConnectTimeout(timeouts.connect))?
        .map_err(ScanError::db("connecting"))?;
    let version: String = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(ScanError::db("reading VERSION()"))?
        .ok_or_else(|| ScanError::Unsupported("VERSION() returned no row".into()))?;
    let server = server_of(&version, conn.server_version())?;
    let statement = timeouts.statement.as_secs().max(1);
    let limit = match server.flavor {
        Flavor::Mariadb => format!("max_statement_time = {statement}"),
        Flavor::Mysql => format!("max_execution_time = {}", statement * 1000),
    };
    let lock = timeouts.lock.as_secs().max(1);
    conn.query_drop(format!(
        "SET SESSION sql_mode = '{SQL_MODE}', SESSION {limit}, SESSION lock_wait_timeout = {lock}, \
         SESSION innodb_lock_wait_timeout = {lock}"
    ))
    .await
    .map_err(ScanError::db("setting the session up"))?;
    Ok((conn, server))
}

/// The flavor from `VERSION()`: MariaDB 10.6 and later, MySQL 8 and later.
pub fn server_of(version: &str, (major, minor, _): (u16, u16, u16)) -> Result<Server, ScanError> {
    if version.contains("MariaDB") {
        let mut parts = version.split(['.', '-']).filter_map(|p| p.parse::<u16>().ok());
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        if (major, minor) < (10, 6) {
            return Err(ScanError::Unsupported(format!("MariaDB {version}: 10.6 or later is needed (JSON_TABLE)")));
        }
        Ok(Server { flavor: Flavor::Mariadb, version: version.to_owned() })
    } else {
        if major < 8 {
            return Err(ScanError::Unsupported(format!(
                "MySQL {version} ({major}.{minor}): 8.0 or later is needed (roles)"
            )));
        }
        Ok(Server { flavor: Flavor::Mysql, version: version.to_owned() })
    }
}

/// Makes the session read-only (every later transaction too, so DDL, which
/// would commit a transaction implicitly and start another, is refused as
/// well) and starts the transaction a chunk reads in.
pub async fn begin_read_only(conn: &mut Conn) -> Result<(), ScanError> {
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .map_err(ScanError::db("setting the isolation level"))?;
    conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        .await
        .map_err(ScanError::db("starting a read-only transaction"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_both_schemes_parse_and_name_their_target() {
        let o = parse_url("mariadb://gw:secret@db.internal:3307/app").unwrap();
        assert_eq!(
            (o.ip_or_hostname(), o.tcp_port(), o.user(), o.db_name()),
            ("db.internal", 3307, Some("gw"), Some("app"))
        );
        assert_eq!(target_from_opts(&o).as_str(), "db.internal:3307");
        assert!(parse_url("mysql://127.0.0.1:3306").is_ok());
        assert!(matches!(parse_url("postgres://x@y/z"), Err(ScanError::Config(_))));
    }

    #[test]
    fn servers_older_than_supported_are_refused_by_name() {
        assert_eq!(server_of("10.11.19-MariaDB-0+deb12u1", (5, 5, 5)).unwrap().flavor, Flavor::Mariadb);
        assert_eq!(server_of("8.0.36", (8, 0, 36)).unwrap().flavor, Flavor::Mysql);
        assert!(server_of("10.5.2-MariaDB", (5, 5, 5)).unwrap_err().to_string().contains("10.6 or later"));
        assert!(server_of("5.7.44-log", (5, 7, 44)).unwrap_err().to_string().contains("8.0 or later"));
    }
}
