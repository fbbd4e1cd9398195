//! grantwarden-testkit: a real PostgreSQL for every test.
//!
//! [`TestDb::new`] connects to the server at `GRANTWARDEN_TEST_DATABASE_URL`
//! (default `postgres://postgres@127.0.0.1:5432/postgres`), creates a fresh
//! database, and drops it (and the test's roles) when dropped. When no server
//! answers and PostgreSQL's binaries are installed, it starts one throwaway
//! cluster with initdb/pg_ctl in a temp dir, shared by every test process
//! through a file lock. Otherwise it fails saying how to get a server.
//!
//! Roles are cluster-wide, so each test names its roles through
//! [`TestDb::role`] (a per-test prefix) and plans with
//! [`TestDb::ignore_others`], which ignores every role but its own: tests
//! running at the same time never see each other's roles as drift.
#![deny(missing_docs)]

pub mod browser;
pub mod contract;
pub mod mariadb;
pub mod moto;
pub mod oidc;
pub mod slack;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use postgres_protocol::escape::{escape_identifier, escape_literal};
use rand::Rng;
use tokio::sync::OnceCell;
use tokio_postgres::{Client, Config, NoTls};

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const THROWAWAY_PORT: u16 = 55432;

/// Where the server is: host, port and a superuser.
#[derive(Clone, Debug)]
struct Server {
    host: String,
    port: u16,
    user: String,
    password: Option<String>,
}

impl Server {
    fn conninfo(&self, dbname: &str, user: &str) -> String {
        let mut s = format!(
            "host={} port={} dbname={} user={} connect_timeout=10",
            quote_kv(&self.host),
            self.port,
            quote_kv(dbname),
            quote_kv(user)
        );
        if let Some(p) = &self.password
            && user == self.user
        {
            s.push_str(&format!(" password={}", quote_kv(p)));
        }
        s
    }
}

/// Quotes a libpq key-value value.
fn quote_kv(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

static SERVER: OnceCell<Server> = OnceCell::const_new();

/// A connection (no TLS) whose driver task runs in the background.
pub async fn connect(conninfo: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(client)
}

async fn server() -> &'static Server {
    SERVER
        .get_or_init(|| async {
            let url = std::env::var("GRANTWARDEN_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
            let config: Config =
                url.parse().unwrap_or_else(|e| panic!("GRANTWARDEN_TEST_DATABASE_URL {url:?} does not parse: {e}"));
            let host = match config.get_hosts().first() {
                Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
                Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
                None => "127.0.0.1".to_owned(),
            };
            let server = Server {
                host,
                port: config.get_ports().first().copied().unwrap_or(5432),
                user: config.get_user().unwrap_or("postgres").to_owned(),
                password: config.get_password().map(|p| String::from_utf8_lossy(p).into_owned()),
            };
            let dbname = config.get_dbname().unwrap_or("postgres").to_owned();
            match connect(&server.conninfo(&dbname, &server.user)).await {
                Ok(_) => server,
                Err(first) => start_throwaway(&url, &first.to_string()),
            }
        })
        .await
}

fn find_bindir() -> Option<PathBuf> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Some(dir);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions.pop()
}

/// Runs a PostgreSQL binary, as the postgres OS user when we are root (initdb refuses root).
fn run_pg(bin: &Path, args: &[&str]) -> std::process::Output {
    let is_root = Command::new("id").arg("-u").output().map(|o| o.stdout.starts_with(b"0")).unwrap_or(false);
    let mut cmd = if is_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(args).output().unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
}

fn start_throwaway(url: &str, why: &str) -> Server {
    let server = start_cluster("grantwarden-testpg", THROWAWAY_PORT, None).unwrap_or_else(|missing| {
        panic!(
            "no PostgreSQL answers at {url} ({why}) and {missing}.\n\
             Start a server (e.g. `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`), \
             install one (`apt-get install postgresql`), or set GRANTWARDEN_TEST_DATABASE_URL."
        )
    });
    eprintln!("testkit: no PostgreSQL at {url} ({why}); using a throwaway cluster on port {THROWAWAY_PORT}");
    server
}

/// Starts (or reuses, when it already answers) a cluster of our own in the temp dir
/// `name` on `port`: trust auth, or with `password` scram-sha-256 for every connection.
fn start_cluster(name: &str, port: u16, password: Option<&str>) -> Result<Server, String> {
    start_cluster_with(name, port, password, "")
}

/// [`start_cluster`] with more server settings (`-c name=value ...`).
fn start_cluster_with(name: &str, port: u16, password: Option<&str>, settings: &str) -> Result<Server, String> {
    let bindir = find_bindir().ok_or("no PostgreSQL binaries are installed to start one")?;
    let dir = std::env::temp_dir().join(name);
    std::fs::create_dir_all(&dir).expect("create the cluster dir");
    let lock = std::fs::File::create(std::env::temp_dir().join(format!("{name}.lock"))).expect("create the lock file");
    lock.lock().expect("lock the cluster");
    let data = dir.join("data");
    let server =
        Server { host: "127.0.0.1".into(), port, user: "postgres".into(), password: password.map(str::to_owned) };
    let ready = Command::new(bindir.join("pg_isready"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ready {
        if !data.join("PG_VERSION").exists() {
            let pwfile = dir.join("pwfile");
            std::fs::write(&pwfile, password.unwrap_or_default()).expect("write the password file");
            let _ = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status();
            let data = data.to_string_lossy();
            let pw = format!("--pwfile={}", pwfile.display());
            let mut args = vec!["-D", &data, "-U", "postgres", "--no-sync"];
            match password {
                None => args.extend(["-A", "trust"]),
                Some(_) => args.extend(["-A", "scram-sha-256", &pw]),
            }
            let out = run_pg(&bindir.join("initdb"), &args);
            assert!(out.status.success(), "initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let _ = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir).status();
        pg_ctl_start_with(&bindir, &dir, port, settings);
    }
    Ok(server)
}

fn pg_ctl_start(bindir: &Path, dir: &Path, port: u16) {
    pg_ctl_start_with(bindir, dir, port, "")
}

fn pg_ctl_start_with(bindir: &Path, dir: &Path, port: u16, settings: &str) {
    let opts = format!("-p {port} -c listen_addresses=127.0.0.1 -k {} -c fsync=off {settings}", dir.display());
    let (data, log) = (dir.join("data"), dir.join("server.log"));
    let out = run_pg(
        &bindir.join("pg_ctl"),
        &["-D", &data.to_string_lossy(), "-l", &log.to_string_lossy(), "-o", &opts, "-w", "start"],
    );
    assert!(out.status.success(), "pg_ctl start failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A cluster of the caller's own (trust auth, in the temp dir `name` on
/// `port`) that it may stop and start again: for fault tests, which must
/// never stop the server other tests use.
pub struct OwnCluster {
    server: Server,
    bindir: PathBuf,
    dir: PathBuf,
}

impl OwnCluster {
    /// Starts the cluster (initdb the first time), or reuses it when it answers.
    pub fn start(name: &str, port: u16) -> OwnCluster {
        let server = start_cluster(name, port, None).unwrap_or_else(|missing| panic!("{missing}"));
        let bindir = find_bindir().expect("start_cluster found the binaries");
        OwnCluster { server, bindir, dir: std::env::temp_dir().join(name) }
    }

    /// A fresh database on this cluster.
    pub async fn database(&self) -> TestDb {
        TestDb::create(self.server.clone(), "db").await
    }

    /// Stops the server at once (`pg_ctl stop -m immediate`): connections drop, new ones are refused.
    pub fn stop(&self) {
        let data = self.dir.join("data");
        let out = run_pg(&self.bindir.join("pg_ctl"), &["-D", &data.to_string_lossy(), "-m", "immediate", "stop"]);
        assert!(out.status.success(), "pg_ctl stop failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Starts the server again after [`OwnCluster::stop`].
    pub fn restart(&self) {
        pg_ctl_start(&self.bindir, &self.dir, self.server.port);
    }
}

/// Port and superuser password of the cluster that checks passwords.
const PASSWORD_PORT: u16 = 55433;
const PASSWORD: &str = "grantwarden-test-superuser";

static PASSWORD_SERVER: OnceCell<Server> = OnceCell::const_new();

/// Port of the cluster that loads pgaudit.
const PGAUDIT_PORT: u16 = 55434;
const PGAUDIT_NAME: &str = "grantwarden-testpg-pgaudit";

/// The `log_line_prefix` of the pgaudit cluster's stderr log: the one README documents.
pub const PGAUDIT_LOG_LINE_PREFIX: &str = "%m [%p] %q%u@%d %c:%l ";

static PGAUDIT_SERVER: OnceCell<Server> = OnceCell::const_new();

/// Where the pgaudit cluster writes its logs: the csvlog and the stderr log
/// (the same records, both layouts), shared by every test on it: a test
/// reads its own database's records (`--dbname`).
pub fn pgaudit_logs() -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(PGAUDIT_NAME).join("log");
    (dir.join("postgresql.csv"), dir.join("postgresql.log"))
}

/// A fresh database for one test, dropped with the test's roles at the end.
pub struct TestDb {
    /// Database name.
    pub name: String,
    /// Prefix of this test's role names.
    pub prefix: String,
    server: Server,
}

impl TestDb {
    /// Creates a fresh database.
    pub async fn new() -> TestDb {
        Self::create(server().await.clone(), "db").await
    }

    /// Creates a fresh database named `<prefix>_<suffix>`, for tests of names:
    /// `suffix` may hold anything PostgreSQL takes in a name but NUL, in at
    /// most 51 bytes (the prefix takes 12 of the 63).
    pub async fn named(suffix: &str) -> TestDb {
        Self::create(server().await.clone(), suffix).await
    }

    /// A fresh database on a cluster that checks passwords (scram-sha-256), for
    /// tests of credentials: VALID UNTIL only applies to password logins. The
    /// cluster is started once from the installed binaries (port 55433).
    pub async fn with_passwords() -> TestDb {
        let server = PASSWORD_SERVER
            .get_or_init(|| async {
                tokio::task::spawn_blocking(|| start_cluster("grantwarden-testpg-scram", PASSWORD_PORT, Some(PASSWORD)))
                    .await
                    .expect("the cluster start did not panic")
                    .unwrap_or_else(|missing| panic!("a password-checking cluster is needed and {missing}"))
            })
            .await
            .clone();
        Self::create(server, "db").await
    }

    /// A fresh database on a cluster that loads pgaudit (`shared_preload_libraries`)
    /// and logs to csvlog and stderr ([`pgaudit_logs`]), in UTC, synchronously
    /// enough to read back: started once from the installed binaries (port
    /// 55434). pgaudit logs nothing by default: a test sets `pgaudit.log` on
    /// the roles it audits, as grantwarden does for its credentials.
    pub async fn with_pgaudit() -> TestDb {
        let server = PGAUDIT_SERVER
            .get_or_init(|| async {
                tokio::task::spawn_blocking(|| {
                    let lib = find_bindir()
                        .and_then(|b| b.parent().map(|p| p.join("lib").join("pgaudit.so")))
                        .filter(|p| p.exists());
                    if lib.is_none() {
                        panic!(
                            "pgaudit is not installed: `apt-get install postgresql-<major>-pgaudit` (scripts/test does)"
                        );
                    }
                    let log = std::env::temp_dir().join(PGAUDIT_NAME).join("log");
                    let settings = format!(
                        "-c shared_preload_libraries=pgaudit -c logging_collector=on -c log_destination=csvlog,stderr \
                         -c log_directory={} -c log_filename=postgresql.log -c log_file_mode=0644 \
                         -c log_timezone=UTC -c log_rotation_age=0 -c log_rotation_size=0 -c pgaudit.log=none \
                         -c 'log_line_prefix={PGAUDIT_LOG_LINE_PREFIX}'",
                        log.display()
                    );
                    start_cluster_with(PGAUDIT_NAME, PGAUDIT_PORT, None, &settings)
                })
                .await
                .expect("the cluster start did not panic")
                .unwrap_or_else(|missing| panic!("a pgaudit cluster is needed and {missing}"))
            })
            .await
            .clone();
        Self::create(server, "db").await
    }

    async fn create(server: Server, suffix: &str) -> TestDb {
        let tag: u32 = rand::rng().random();
        let prefix = format!("gwt{tag:08x}");
        let name = format!("{prefix}_{suffix}");
        let admin =
            connect(&server.conninfo("postgres", &server.user)).await.expect("connect to the postgres database");
        admin
            .batch_execute(&format!("CREATE DATABASE {}", escape_identifier(&name)))
            .await
            .expect("create the test database");
        TestDb { name, prefix, server }
    }

    /// A role name private to this test: `<prefix>_<name>`.
    pub fn role(&self, name: &str) -> String {
        format!("{}_{name}", self.prefix)
    }

    /// [`TestDb::role`], quoted as an SQL identifier.
    pub fn ident(&self, name: &str) -> String {
        escape_identifier(&self.role(name))
    }

    /// Connection string for the test database as the superuser.
    pub fn url(&self) -> String {
        self.server.conninfo(&self.name, &self.server.user)
    }

    /// Connection string for the test database as another role (trust auth, or the role has no password).
    pub fn url_as(&self, full_role_name: &str) -> String {
        self.server.conninfo(&self.name, full_role_name)
    }

    /// The test database as the functions read it from Secrets Manager (the
    /// RDS secret shape): as `role` (a full role name; the superuser when
    /// `None`), with `password` (the connection string's when `None`).
    pub fn rds_secret(&self, role: Option<&str>, password: Option<&str>) -> serde_json::Value {
        let url = role.map_or_else(|| self.url(), |r| self.url_as(r));
        let config: tokio_postgres::Config = url.parse().expect("the test database's conninfo");
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "127.0.0.1".to_owned(),
        };
        let password = password.map(str::to_owned).unwrap_or_else(|| {
            config.get_password().map(|p| String::from_utf8_lossy(p).into_owned()).unwrap_or_default()
        });
        serde_json::json!({
            "engine": "postgres",
            "host": host,
            "port": config.get_ports().first().copied().unwrap_or(5432),
            "username": config.get_user().expect("a user"),
            "password": password,
            "dbname": self.name,
        })
    }

    /// `ignore_roles` that hide every role but this test's own.
    pub fn ignore_others(&self) -> Vec<String> {
        vec!["*".to_owned(), format!("!{}_*", self.prefix)]
    }

    /// A superuser connection to the test database.
    pub async fn client(&self) -> Client {
        connect(&self.url()).await.expect("connect to the test database")
    }

    /// Runs SQL as the superuser; panics with the statement on failure.
    pub async fn exec(&self, sql: &str) {
        if let Err(e) = self.client().await.batch_execute(sql).await {
            let msg = e.as_db_error().map(|d| d.message().to_owned()).unwrap_or_else(|| e.to_string());
            panic!("SQL failed: {msg}\n{sql}");
        }
    }

    async fn cleanup(server: Server, name: String, prefix: String) {
        let Ok(admin) = connect(&server.conninfo("postgres", &server.user)).await else {
            return;
        };
        let _ =
            admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", escape_identifier(&name))).await;
        let like = format!("{prefix}\\_%");
        let Ok(rows) = admin.query("SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1", &[&like]).await else {
            return;
        };
        for row in rows {
            let role: String = row.get(0);
            let _ = admin.batch_execute(&format!("DROP ROLE IF EXISTS {}", escape_identifier(&role))).await;
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (server, name, prefix) = (self.server.clone(), self.name.clone(), self.prefix.clone());
        // Drop runs outside async: clean up on a runtime of our own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a cleanup runtime");
            rt.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(30), TestDb::cleanup(server, name, prefix)).await;
            });
        })
        .join();
    }
}

/// Quotes a string literal for SQL in test setup.
pub fn literal(s: &str) -> String {
    escape_literal(s)
}
