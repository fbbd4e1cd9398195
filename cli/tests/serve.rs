//! `grantwarden serve`: the portal on a local port, signing in at a fake
//! OpenID Connect provider over HTTP, over a local state file.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use grantwarden_testkit::oidc::{CLIENT_ID, FakeIdp};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn serve_signs_a_person_in_and_shows_their_requests() {
    let idp = FakeIdp::start().await;
    idp.sign_in_as("alice@example.com", &[], chrono::Utc::now());
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let policy = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/policy.example.yaml");
    let state = dir.path().join("state.db");
    let _server = Server(
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
            .arg("--state")
            .arg(&state)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut home = None;
    for _ in 0..100 {
        if let Ok(r) = http.get(format!("{base}/")).send().await {
            home = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let home = home.expect("the portal answers");
    assert_eq!(home.status(), StatusCode::SEE_OTHER, "sign in first");
    let login = http.get(format!("{base}{}", home.headers()[LOCATION].to_str().unwrap())).send().await.unwrap();
    let pending = login.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let authorize = login.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(authorize.starts_with(&format!("{}/authorize?", idp.issuer)), "{authorize}");
    assert!(authorize.contains(&format!("redirect_uri=http%3A%2F%2F127.0.0.1%3A{port}%2Fcallback")), "{authorize}");
    let callback = http.get(&authorize).send().await.unwrap().headers()[LOCATION].to_str().unwrap().to_owned();
    let signed_in = http.get(&callback).header(COOKIE, &pending).send().await.unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let session = signed_in
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|c| c.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|c| c.starts_with("gw_session="))
        .expect("a session");
    let page = http.get(format!("{base}/")).header(COOKIE, session).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("alice@example.com"));
}
