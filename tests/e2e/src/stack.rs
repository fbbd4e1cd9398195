//! The stack `scripts/local-stack up` deployed on MiniStack, as the end-to-end
//! tests and `scripts/bench-faults` see it: its outputs, clients of the
//! emulator, the functions' own settings, and the intake API over HTTP.
//!
//! Nothing here calls a handler: the tests act as a user or a provisioning
//! system would (a database change, a signed HTTP request, a clock that runs
//! out) and read what the deployed functions left in S3, DynamoDB, SQS and
//! PostgreSQL.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use grantwarden_aws::{Clients, Objects, Settings};
use grantwarden_core::report::Report;
use grantwarden_core::signature;
use grantwarden_core::snapshot::TargetId;
use grantwarden_testkit::TestDb;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

/// The targets the end-to-end tests scan, listed in `config/targets.txt` before
/// any test starts: the intake function reads that list when it starts, so a
/// target must be listed before the first webhook.
pub const TARGETS: &[&str] =
    &["e2e-scan", "e2e-expiry", "e2e-access", "e2e-remediate", "e2e-audit", "e2e-slack", "e2e-queries"];

/// One deployed function.
#[derive(Debug, Clone, Deserialize)]
pub struct Function {
    /// Its physical name.
    pub name: String,
    /// Its ARN.
    pub arn: String,
    /// Its environment, as deployed.
    pub environment: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct Outputs {
    endpoint: String,
    intake_url: String,
    parameters: BTreeMap<String, String>,
    resources: BTreeMap<String, String>,
    functions: BTreeMap<String, Function>,
    #[serde(default)]
    outputs: BTreeMap<String, String>,
}

/// The deployed stack.
pub struct Stack {
    /// The emulator's endpoint.
    pub endpoint: String,
    /// Base URL of the intake HTTP API (its `$default` stage).
    pub intake_url: String,
    /// The template parameters it was deployed with.
    pub parameters: BTreeMap<String, String>,
    /// Physical id of every resource, by logical id.
    pub resources: BTreeMap<String, String>,
    /// The functions, by logical id.
    pub functions: BTreeMap<String, Function>,
    /// The stack's outputs, by key.
    pub outputs: BTreeMap<String, String>,
    /// The functions' settings, merged from their environments.
    pub settings: Settings,
    /// Clients of the emulator.
    pub clients: Clients,
    http: Client<HttpConnector, Full<Bytes>>,
    targets: &'static [&'static str],
}

/// Where `scripts/local-stack` writes the outputs of a stack on `port`.
fn outputs_path() -> PathBuf {
    if let Ok(path) = std::env::var("GRANTWARDEN_TEST_STACK") {
        return PathBuf::from(path);
    }
    let tools = std::env::var("GRANTWARDEN_TOOLS").map(PathBuf::from).unwrap_or_else(|_| {
        PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cache/grantwarden")
    });
    let port = std::env::var("GRANTWARDEN_STACK_PORT").unwrap_or_else(|_| "4566".into());
    tools.join(format!("local-stack-{port}/outputs.json"))
}

/// An HTTP response: status and body.
#[derive(Debug)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Bytes,
    /// The headers.
    pub headers: hyper::HeaderMap,
}

impl Answer {
    /// The body as JSON (`null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl Stack {
    /// The stack of this run (`GRANTWARDEN_TEST_STACK`, else the one
    /// `scripts/local-stack up` deployed on `GRANTWARDEN_STACK_PORT`), with
    /// [`TARGETS`] listed.
    pub async fn get() -> Stack {
        Self::listing(TARGETS).await
    }

    /// The stack, with `targets` listed in `config/targets.txt` (added to what
    /// is there) before anything is sent: intake reads the list when it starts.
    pub async fn listing(targets: &'static [&'static str]) -> Stack {
        let path = outputs_path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "no deployed stack ({}: {e}); scripts/test deploys one, or run \
                 `scripts/local-stack up RemediationMode=revoke-unauthorized RemediationExecute=true`",
                path.display()
            )
        });
        let out: Outputs = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut env = BTreeMap::new();
        for f in out.functions.values() {
            env.extend(f.environment.clone());
        }
        let settings =
            Settings::from_lookup(|name| env.get(name).cloned()).expect("the deployed functions' settings are valid");
        let clients = Clients::for_endpoint(&out.endpoint).await;
        let http = Client::builder(TokioExecutor::new()).build_http();
        let stack = Stack {
            endpoint: out.endpoint,
            intake_url: out.intake_url,
            parameters: out.parameters,
            resources: out.resources,
            functions: out.functions,
            outputs: out.outputs,
            settings,
            clients,
            http,
            targets,
        };
        stack.list_targets().await;
        stack
    }

    /// A deployed parameter's value.
    pub fn parameter(&self, name: &str) -> Option<&str> {
        self.parameters.get(name).map(String::as_str)
    }

    /// A resource's physical id.
    pub fn resource(&self, logical: &str) -> &str {
        self.resources.get(logical).unwrap_or_else(|| panic!("no resource {logical} in the stack"))
    }

    /// The data bucket's objects.
    pub fn objects(&self) -> Objects {
        Objects::new(&self.clients, &self.settings)
    }

    async fn list_targets(&self) {
        let key = self.settings.targets_key.clone().expect("the stack lists its targets in S3");
        let listed = self.objects().targets(&key).await.unwrap_or_default();
        let mut names: Vec<String> = listed.iter().map(|t| t.as_str().to_owned()).collect();
        let missing: Vec<&str> = self.targets.iter().copied().filter(|t| !names.iter().any(|n| n == t)).collect();
        if !missing.is_empty() {
            names.extend(missing.iter().map(|s| (*s).to_owned()));
            let body = names.join("\n") + "\n";
            self.objects().put(&key, body.into_bytes(), "text/plain").await.expect("write the target list");
        }
    }

    /// Takes `target` off `config/targets.txt`: no more scheduled scans or
    /// sweeps of it (a load test's target, once its line is done, so its
    /// thousands of tickets stop weighing on every minute's sweep).
    pub async fn unlist(&self, target: &str) {
        let key = self.settings.targets_key.clone().expect("the stack lists its targets in S3");
        let listed = self.objects().targets(&key).await.unwrap_or_default();
        let names: Vec<&str> = listed.iter().map(TargetId::as_str).filter(|t| *t != target).collect();
        let body = names.join("\n") + "\n";
        self.objects().put(&key, body.into_bytes(), "text/plain").await.expect("write the target list");
    }

    /// Points `target` (one of the listed targets) at `db`: its reader's and revoker's
    /// secrets and its baseline. `password` is the connecting role's password.
    pub async fn register(&self, target: &TargetId, db: &TestDb, password: &str, baseline: &str) {
        assert!(self.targets.contains(&target.as_str()), "{target} is not one of the listed targets");
        let secret = db.rds_secret(None, Some(password)).to_string();
        for id in [self.settings.target_secret_id(target), self.settings.revoker_secret_id(target)] {
            grantwarden_testkit::moto::put_secret(&self.clients.secrets, &id, &secret).await;
        }
        let key = self.settings.baseline_key.replace("{target}", &grantwarden_aws::objects::key_segment(target));
        self.objects().put(&key, baseline.as_bytes().to_vec(), "application/yaml").await.unwrap();
    }

    /// The key intake checks signatures with, read from its secret.
    pub async fn webhook_key(&self) -> Vec<u8> {
        let out =
            self.clients.secrets.get_secret_value().secret_id(&self.settings.webhook_secret_id).send().await.unwrap();
        out.secret_string().expect("a string secret").trim().as_bytes().to_vec()
    }

    /// The key of registry sender `name` (the secret `grantwarden/senders/<name>`
    /// its `key_secret` names), made on first use.
    pub async fn sender_key(&self, name: &str) -> Vec<u8> {
        let id = format!("grantwarden/senders/{name}");
        if let Ok(out) = self.clients.secrets.get_secret_value().secret_id(&id).send().await {
            return out.secret_string().expect("a string secret").trim().as_bytes().to_vec();
        }
        let key = format!("{name}-{:032x}", rand::random::<u128>());
        self.clients.secrets.create_secret().name(&id).secret_string(&key).send().await.expect("the sender's secret");
        key.into_bytes()
    }

    /// A POST signed by registry sender `sender` with `key`.
    pub async fn post_as_sender(&self, sender: &str, key: &[u8], path: &str, body: &serde_json::Value) -> Answer {
        let body = serde_json::to_vec(body).unwrap();
        let t = chrono::Utc::now().timestamp();
        let sig = signature::sign_v2(key, t, &signature::SignedRequest { method: "POST", path, body: &body }).unwrap();
        self.send("POST", path, &[(signature::HEADER, sig), ("X-Grantwarden-Sender", sender.to_owned())], body).await
    }

    /// The portal's Function URL as the emulator serves it
    /// (`<endpoint>/_aws/lambda-url/<url id>`, from the `PortalEndpoint` output).
    pub fn portal_url(&self) -> String {
        let url = &self.outputs["PortalEndpoint"];
        let host = url.trim_start_matches("https://").trim_start_matches("http://");
        let id = host.split('.').next().expect("a Function URL host");
        format!("{}/_aws/lambda-url/{id}", self.endpoint)
    }

    /// A GET of any URL of the emulator (the portal's pages).
    pub async fn get_url(&self, url: &str) -> Answer {
        let request = hyper::Request::builder().uri(url).body(Full::new(Bytes::new())).unwrap();
        let response = self.http.request(request).await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        let body = response.into_body().collect().await.expect("the response body").to_bytes();
        Answer { status, body, headers }
    }

    /// A POST of `body` to any URL of the emulator (the portal's Slack endpoint) with `headers`.
    pub async fn post_url(&self, url: &str, headers: &[(&str, String)], body: Vec<u8>) -> Answer {
        let mut request = hyper::Request::builder().method("POST").uri(url);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request.body(Full::new(Bytes::from(body))).unwrap();
        let response = self.http.request(request).await.unwrap_or_else(|e| panic!("POST {url}: {e}"));
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        let body = response.into_body().collect().await.expect("the response body").to_bytes();
        Answer { status, body, headers }
    }

    /// The value of the stack's secret `logical` (its generated value, or what a test put there).
    pub async fn secret(&self, logical: &str) -> String {
        let id = self.resource(logical).to_owned();
        let out = self.clients.secrets.get_secret_value().secret_id(&id).send().await.expect("the stack's secret");
        out.secret_string().expect("a string secret").trim().to_owned()
    }

    /// A request to the intake API.
    pub async fn send(&self, method: &str, path: &str, headers: &[(&str, String)], body: Vec<u8>) -> Answer {
        let mut request = hyper::Request::builder().method(method).uri(format!("{}{path}", self.intake_url));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let request = request.header("content-type", "application/json").body(Full::new(Bytes::from(body))).unwrap();
        let response = self.http.request(request).await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        let body = response.into_body().collect().await.expect("the response body").to_bytes();
        Answer { status, body, headers }
    }

    /// The URL of a queue of the stack, by its logical id.
    pub fn queue_url(&self, logical: &str) -> String {
        self.resource(logical).to_owned()
    }

    /// A POST signed with the webhook key (v2: method, path, time and body).
    pub async fn post_signed(&self, key: &[u8], path: &str, body: &serde_json::Value) -> Answer {
        self.post_signed_at(key, path, body, 0).await
    }

    /// [`Stack::post_signed`], signed `seconds_ago` (a sender's retry is signed
    /// anew; the same request signed in the same second is a replay).
    pub async fn post_signed_at(&self, key: &[u8], path: &str, body: &serde_json::Value, seconds_ago: i64) -> Answer {
        let body = serde_json::to_vec(body).unwrap();
        let t = chrono::Utc::now().timestamp() - seconds_ago;
        let sig = signature::sign_v2(key, t, &signature::SignedRequest { method: "POST", path, body: &body }).unwrap();
        self.send("POST", path, &[(signature::HEADER, sig)], body).await
    }

    /// The newest report of `target` whose scan began at or after `since`
    /// (to the second: scan records keep whole seconds).
    pub async fn report_since(&self, target: &TargetId, since: chrono::DateTime<chrono::Utc>) -> Option<Report> {
        use chrono::SubsecRound;
        let report: Report = self.objects().get_json(&Objects::latest_report_key(target)).await.ok()??;
        (report.taken_at >= since.trunc_subsecs(0)).then_some(report)
    }
}

/// Polls `probe` every half second until it gives a value; panics naming `what`
/// after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    eventually_every(what, timeout, Duration::from_millis(500), probe).await
}

/// [`eventually`], polling every `interval` (what is timed should not wait half a second for the probe).
pub async fn eventually_every<T, F, Fut>(what: &str, timeout: Duration, interval: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(started.elapsed() < timeout, "{what}: not seen within {timeout:?}");
        tokio::time::sleep(interval).await;
    }
}
