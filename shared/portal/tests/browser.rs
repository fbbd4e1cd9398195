//! The portal in headless Chromium (Debian's chromium and chromium-driver,
//! over WebDriver): a person signs in at the fake provider, fills the request
//! form with plain HTML controls, sees the policy's decision, submits, and
//! lands on the request's page. No JavaScript runs: the CSP allows none.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use grantwarden_core::policy::PolicyRegistry;
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::TicketStore;
use grantwarden_local::LocalStore;
use grantwarden_oidc::{LazyVerifier, Settings, Verifier};
use grantwarden_portal::{Config, Portal, cookie_key, router};
use grantwarden_testkit::oidc::{CLIENT_ID, FakeIdp};
use serde_json::{Value, json};

const POLICY: &str = include_str!("../../../infra/policy.example.yaml");
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    process: Child,
    http: reqwest::Client,
    base: String,
    session: Option<String>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

impl Driver {
    async fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let process = Command::new("chromedriver")
            .args([format!("--port={port}"), "--allowed-ips=127.0.0.1".into()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is installed (scripts/test installs Debian's chromium-driver)");
        let mut driver =
            Driver { process, http: reqwest::Client::new(), base: format!("http://127.0.0.1:{port}"), session: None };
        for _ in 0..100 {
            if let Ok(r) = driver.http.get(format!("{}/status", driver.base)).send().await
                && r.status().is_success()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({ "capabilities": { "alwaysMatch": { "browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium", "args": ["--headless=new", "--no-sandbox", "--disable-gpu"] } } } });
        let session = driver.call("POST", "/session", caps).await;
        driver.session = Some(session["sessionId"].as_str().expect("a WebDriver session").to_owned());
        driver
    }

    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = match &self.session {
            Some(id) if path != "/session" => format!("{}/session/{id}{path}", self.base),
            _ => format!("{}{path}", self.base),
        };
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body),
        };
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        answer["value"].clone()
    }

    async fn open(&self, url: &str) {
        self.call("POST", "/url", json!({ "url": url })).await;
    }

    async fn source(&self) -> String {
        self.call("GET", "/source", Value::Null).await.as_str().unwrap_or_default().to_owned()
    }

    async fn url(&self) -> String {
        self.call("GET", "/url", Value::Null).await.as_str().unwrap_or_default().to_owned()
    }

    /// The page once `ready(url, source)` holds, polled for up to 15 seconds;
    /// panics with the last URL and page otherwise.
    async fn wait_for(&self, ready: impl Fn(&str, &str) -> bool) -> String {
        let (mut url, mut page) = (String::new(), String::new());
        for _ in 0..150 {
            (url, page) = (self.url().await, self.source().await);
            if ready(&url, &page) {
                return page;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the page did not come: still at {url}: {page}");
    }

    async fn element(&self, css: &str) -> String {
        let found = self.call("POST", "/element", json!({ "using": "css selector", "value": css })).await;
        found[ELEMENT].as_str().unwrap_or_else(|| panic!("no {css}: {found}")).to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.element(css).await;
        self.call("POST", &format!("/element/{e}/clear"), json!({})).await;
        self.call("POST", &format!("/element/{e}/value"), json!({ "text": text })).await;
    }

    async fn click(&self, css: &str) {
        let e = self.element(css).await;
        self.call("POST", &format!("/element/{e}/click"), json!({})).await;
    }

    async fn close(mut self) {
        self.call("DELETE", "", Value::Null).await;
        self.session = None;
    }
}

#[tokio::test]
async fn a_person_signs_in_and_asks_for_access_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(&dir.path().join("state.db")).unwrap();
    let registry = PolicyRegistry::load(&[("policy.example.yaml".into(), POLICY.into())]).map_err(|e| e.to_string());
    let idp = FakeIdp::start().await;
    idp.sign_in_as("alice@example.com", &[], Utc::now());
    let verifier = Verifier::discover(Settings::new(&idp.issuer, CLIENT_ID)).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // localhost: a secure context, where the browser keeps the portal's Secure cookies over plain HTTP
    let base = format!("http://localhost:{}", listener.local_addr().unwrap().port());
    let config =
        Config::new(Some(base.clone()), cookie_key(&[9u8; 64]).unwrap(), [TargetId::new("grantwarden-demo").unwrap()]);
    let portal = Arc::new(Portal::new(store, registry, Some(Arc::new(LazyVerifier::ready(verifier))), config));
    let app = router(Arc::clone(&portal));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let browser = Driver::start().await;
    browser.open(&format!("{base}/")).await;
    // through the provider and back: signed in on the home page
    browser.wait_for(|_, page| page.contains("alice@example.com") && page.contains("My requests")).await;

    browser.open(&format!("{base}/requests/new")).await;
    browser.click("select[name=path] option[value=read-only]").await;
    browser.type_into("input[name=schema]", "billing").await;
    browser.type_into("input[name=tables]", "invoices").await;
    browser.type_into("input[name=duration]", "1h").await;
    browser.type_into("textarea[name=justification]", "CHG-2002 invoice check").await;
    browser.click("button[value=check]").await;
    let decided = browser.wait_for(|_, page| page.contains("Policy decision")).await;
    assert!(decided.contains("automatic"), "read-only on invoices needs no approval: {decided}");
    browser.click("button[value=submit]").await;
    // the POST answers 303 to the request's page; a loaded machine may still be on its way there
    let ticket_page = format!("{base}/requests/tkt-");
    let page = browser.wait_for(|url, _| url.starts_with(&ticket_page)).await;
    assert!(page.contains("active") && page.contains("ticket.requested"), "{page}");
    browser.close().await;

    let tickets = portal.store().tickets(None).await.unwrap();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].request().requested_by, "alice@example.com");
}
