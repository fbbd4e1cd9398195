//! A real MariaDB for every test that needs one: the server at
//! `GRANTWARDEN_TEST_MARIADB_URL`, or else the project's own, started by
//! `scripts/mariadb` (its own data directory, a loopback port) once for every
//! test process through a file lock. Each [`TestMaria`] names its databases
//! and accounts with a prefix of its own and drops them when dropped: accounts
//! are server-wide, so a test looks only at its own.

use std::process::Command;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts};
use rand::Rng;
use tokio::sync::OnceCell;

static SERVER: OnceCell<String> = OnceCell::const_new();

async fn server() -> &'static str {
    SERVER
        .get_or_init(|| async {
            if let Ok(url) = std::env::var("GRANTWARDEN_TEST_MARIADB_URL") {
                return url;
            }
            tokio::task::spawn_blocking(start).await.expect("starting MariaDB does not panic")
        })
        .await
}

/// Runs `scripts/mariadb` under a lock shared by every test process.
fn start() -> String {
    let lock = std::fs::File::create(std::env::temp_dir().join("grantwarden-testmaria.lock")).expect("the lock file");
    lock.lock().expect("lock the MariaDB start");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/mariadb");
    let out = Command::new(&script).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "scripts/mariadb failed (install mariadb-server, or set GRANTWARDEN_TEST_MARIADB_URL): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("a URL").trim().to_owned()
}

/// One test's corner of the MariaDB server.
pub struct TestMaria {
    url: String,
    prefix: String,
}

impl TestMaria {
    /// Connects (starting the server when needed) and picks a fresh prefix.
    pub async fn new() -> TestMaria {
        let url = server().await.to_owned();
        let tag: u32 = rand::rng().random();
        TestMaria { url, prefix: format!("gwt{tag:08x}") }
    }

    /// A database or account name private to this test: `<prefix>_<name>`.
    pub fn name(&self, name: &str) -> String {
        format!("{}_{name}", self.prefix)
    }

    /// The prefix (names of this test's databases and accounts start with it and `_`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The server's URL as root (`mysql://root@127.0.0.1:PORT/`).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The server's URL as `user` with `password`.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        let opts = Opts::from_url(&self.url).expect("the server URL");
        let enc = |s: &str| percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string();
        format!("mysql://{}:{}@{}:{}/", enc(user), enc(password), opts.ip_or_hostname(), opts.tcp_port())
    }

    /// A root connection over TCP, as the code under test connects: the
    /// account is `root@127.0.0.1` (a socket would make it `root@localhost`,
    /// another account, and the roles it creates would be another's to grant).
    pub async fn conn(&self) -> Conn {
        let opts = Opts::from_url(&self.url).expect("the server URL");
        Conn::new(mysql_async::OptsBuilder::from_opts(opts).prefer_socket(false))
            .await
            .expect("connect to MariaDB as root")
    }

    /// Runs statements (`;`-separated) as root; panics with the SQL on failure.
    pub async fn exec(&self, sql: &str) {
        let mut conn = self.conn().await;
        if let Err(e) = conn.query_drop(sql).await {
            panic!("SQL failed: {e}\n{sql}");
        }
        let _ = conn.disconnect().await;
    }

    async fn cleanup(url: String, prefix: String) -> Result<(), mysql_async::Error> {
        let mut conn = Conn::from_url(&url).await?;
        let like = format!("{prefix}\\_%");
        let dbs: Vec<String> =
            conn.exec("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?", (&like,)).await?;
        for db in dbs {
            conn.query_drop(format!("DROP DATABASE IF EXISTS `{}`", db.replace('`', "``"))).await?;
        }
        let host_like = format!("{prefix}%");
        let accounts: Vec<(String, String)> = conn
            .exec("SELECT User, Host FROM mysql.global_priv WHERE User LIKE ? OR Host LIKE ?", (&like, &host_like))
            .await?;
        for (user, host) in accounts {
            let q = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"));
            let drop = if host.is_empty() {
                format!("DROP ROLE IF EXISTS {}", q(&user))
            } else {
                format!("DROP USER IF EXISTS {}@{}", q(&user), q(&host))
            };
            conn.query_drop(drop).await?;
        }
        conn.disconnect().await
    }
}

impl Drop for TestMaria {
    fn drop(&mut self) {
        let (url, prefix) = (self.url.clone(), self.prefix.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a cleanup runtime");
            rt.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(30), TestMaria::cleanup(url, prefix)).await;
            });
        })
        .join();
    }
}
