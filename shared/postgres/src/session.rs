//! Connections and the read-only transaction every query runs in.
//!
//! Every connection grantwarden opens runs with `search_path` pinned to
//! `pg_catalog, pg_temp` ([`PIN_SEARCH_PATH`], set at connect and again in every
//! transaction): grantwarden often connects as an admin, and an unqualified
//! function or operator would otherwise resolve through schemas any role with
//! CREATE can write (`public` on databases created before PostgreSQL 15). A
//! better-matching `public.hashtextextended(text, integer)` was enough to run an
//! attacker's code as the admin. `pg_temp` comes last so even this session's
//! temporary objects never shadow a catalog relation; functions and operators
//! are never looked up in it.

use postgres_protocol::escape::escape_literal;
use tokio_postgres::{Client, Config, NoTls};

use crate::error::ExtractError;
use grantwarden_core::snapshot::TargetId;
pub use grantwarden_core::snapshot::Timeouts;

/// Parses a URL (`postgres://...`) or key-value connection string.
pub fn parse_config(url: &str, timeouts: &Timeouts) -> Result<Config, ExtractError> {
    let mut config: Config = url.parse().map_err(|e: tokio_postgres::Error| ExtractError::Config(e.to_string()))?;
    if config.get_application_name().is_none() {
        config.application_name("grantwarden");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(timeouts.connect);
    }
    Ok(config)
}

/// A configuration from parts (as a secret holds them), with the same defaults
/// as [`parse_config`]. An empty password means none.
pub fn config_from_parts(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
    dbname: &str,
    timeouts: &Timeouts,
) -> Config {
    let mut config = Config::new();
    config.host(host).port(port).user(user).dbname(dbname).application_name("grantwarden");
    config.connect_timeout(timeouts.connect);
    if !password.is_empty() {
        config.password(password);
    }
    config
}

/// Host, port and database name of a connection string (what a credential's holder connects to).
pub fn endpoint(config: &Config) -> (String, u16, String) {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .map(str::to_owned)
        .or_else(|| config.get_user().map(str::to_owned))
        .unwrap_or_else(|| "postgres".to_owned());
    (host, port, db)
}

/// A target id from the connection string: `host:port/dbname`, never the user or password.
pub fn target_from_config(config: &Config) -> TargetId {
    let (host, port, db) = endpoint(config);
    TargetId::new(format!("{host}:{port}/{db}")).expect("never empty")
}

/// The statement that pins `search_path` for a session.
pub const PIN_SEARCH_PATH: &str = "SET search_path = pg_catalog, pg_temp";

/// The statement that pins `search_path` for one transaction (a pooler in
/// transaction mode may hand each transaction another server session).
pub const PIN_SEARCH_PATH_LOCAL: &str = "SET LOCAL search_path = pg_catalog, pg_temp";

/// Opens a connection with `search_path` pinned ([`PIN_SEARCH_PATH`]); the
/// driver's connection task runs in the background.
pub async fn connect(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "connection closed");
        }
    });
    client.batch_execute(PIN_SEARCH_PATH).await?;
    Ok(client)
}

/// Starts the transaction every extraction query runs in: READ ONLY so it can
/// change nothing, REPEATABLE READ so all its queries see one state, with
/// statement and lock timeouts so it never blocks (or waits on) DDL. With a
/// `snapshot` id it reads the same state as the transaction that exported it.
pub async fn begin_read_only(client: &Client, timeouts: &Timeouts, snapshot: Option<&str>) -> Result<(), ExtractError> {
    let mut sql = String::from("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;");
    if let Some(id) = snapshot {
        sql.push_str(&format!("SET TRANSACTION SNAPSHOT {};", escape_literal(id)));
    }
    sql.push_str(PIN_SEARCH_PATH_LOCAL);
    sql.push(';');
    sql.push_str(&format!(
        "SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = {}; SET LOCAL idle_in_transaction_session_timeout = {};",
        timeouts.statement.as_millis(),
        timeouts.lock.as_millis(),
        timeouts.statement.as_millis().saturating_mul(2),
    ));
    client.batch_execute(&sql).await.map_err(ExtractError::db("starting the read-only transaction"))
}
