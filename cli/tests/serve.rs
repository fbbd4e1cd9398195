//! `grantwarden serve`: the portal on a local port, signing in at a fake
//! OpenID Connect provider over HTTP, over a local state file; with
//! `--database`, a requester's credential shown once, issued in the real
//! PostgreSQL.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use grantwarden_testkit::browser::{Browser, field};
use grantwarden_testkit::oidc::{CLIENT_ID, FakeIdp};
use grantwarden_testkit::{TestDb, connect};
use reqwest::StatusCode;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `grantwarden serve` on a free port with `extra` arguments; its URL once it answers.
async fn serve(idp: &FakeIdp, state: &std::path::Path, extra: &[&str]) -> (Server, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/policy.example.yaml");
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_grantwarden"))
            .args([
                "serve",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--policy",
                policy,
                "--target",
                "grantwarden-demo",
            ])
            .args(["--issuer", &idp.issuer, "--client-id", CLIENT_ID])
            .args(extra)
            .arg("--state")
            .arg(state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if reqwest::get(format!("{base}/static/portal.css")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (server, base)
}

#[tokio::test]
async fn serve_signs_a_person_in_and_shows_their_requests() {
    let idp = FakeIdp::start().await;
    idp.sign_in_as("alice@example.com", &[], chrono::Utc::now());
    let dir = tempfile::tempdir().unwrap();
    let (_server, base) = serve(&idp, &dir.path().join("state.db"), &[]).await;
    let mut alice = Browser::new();
    let first = alice.get(&format!("{base}/")).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "sign in first");
    let login = alice.get(&format!("{base}{}", first.location.unwrap())).await;
    let authorize = login.location.unwrap();
    assert!(authorize.starts_with(&format!("{}/authorize?", idp.issuer)), "{authorize}");
    let port = base.rsplit(':').next().unwrap();
    assert!(authorize.contains(&format!("redirect_uri=http%3A%2F%2F127.0.0.1%3A{port}%2Fcallback")), "{authorize}");
    let home = alice.open(&base, &authorize).await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("alice@example.com"));
}

#[tokio::test]
async fn with_a_database_the_requester_sees_the_credential_once_and_it_logs_in() {
    let db = TestDb::with_passwords().await;
    db.exec("CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int); INSERT INTO billing.invoices VALUES (1);")
        .await;
    let idp = FakeIdp::start().await;
    idp.sign_in_as("alice@example.com", &[], chrono::Utc::now());
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.db");
    let database = format!("grantwarden-demo={}", db.url());
    let (_server, base) = serve(&idp, &state, &["--database", &database]).await;
    let mut alice = Browser::new();
    alice.open(&base, &format!("{base}/")).await;
    let submitted = alice
        .submit_request(
            &base,
            &[
                ("target", "grantwarden-demo"),
                ("path", "read-only"),
                ("scope_on", "tables"),
                ("schema", "billing"),
                ("tables", "invoices"),
                ("duration", "1h"),
                ("justification", "CHG-3003"),
                ("action", "submit"),
            ],
        )
        .await;
    assert_eq!(submitted.status, StatusCode::SEE_OTHER, "{}", submitted.body);
    let ticket_path = submitted.location.unwrap();
    let page = alice.get(&format!("{base}{ticket_path}")).await;
    let csrf = field(&page.body, "csrf");
    assert!(page.body.contains("Show my credential (once)"), "{}", page.body);

    let shown = alice.post(&format!("{base}{ticket_path}/credential"), &[("csrf", &csrf)]).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.body);
    assert_eq!(shown.headers["cache-control"], "no-store");
    let code = |id: &str| {
        let at = shown.body.find(&format!("id=\"{id}\">")).unwrap() + id.len() + 6;
        shown.body[at..at + shown.body[at..].find('<').unwrap()].to_owned()
    };
    let (role, password) = (code("role"), code("password"));
    assert!(code("psql").contains(&format!("user={role}")));
    let me = connect(&format!("{} password='{password}'", db.url_as(&role))).await.expect("the credential logs in");
    let n: i64 = me.query_one("SELECT count(*) FROM billing.invoices", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);

    let again = alice.post(&format!("{base}{ticket_path}/credential"), &[("csrf", &csrf)]).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "shown once");
    assert!(!alice.get(&format!("{base}{ticket_path}")).await.body.contains("Show my credential"));
    let trail = String::from_utf8(
        Command::new(env!("CARGO_BIN_EXE_grantwarden"))
            .args([
                "audit",
                "export",
                "--user",
                ticket_path.trim_start_matches("/requests/"),
                "--format",
                "json",
                "--state",
            ])
            .arg(&state)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(trail.contains("access.issued") && !trail.contains(&password), "journaled, never the password");
}
