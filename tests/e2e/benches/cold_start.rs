//! Cold start of each Lambda binary: from starting the process to its first
//! event handled (the response, or error, posted to the Lambda Runtime API),
//! against moto and a real PostgreSQL, with the resources and configuration a
//! deployed stack has. Each event is a real one of the pipeline: intake takes
//! the grant webhook (signed with the stored key, now), fanout the schedule,
//! extract the chunks fanout queued, diff the scan record extract ended,
//! revoke the sweep, audit the journal's stream.
//!
//! The binaries come from `$GRANTWARDEN_BIN_DIR` (default the release
//! directory of the cargo target directory); `scripts/bench-coldstart`
//! builds them first. `BENCH_RUNS` (default 3) chains are run; the table gives
//! the median and the slowest.
//!
//! A minimal Lambda Runtime API (hyper) serves the one event and records when
//! the function asked for it (its initialisation done) and when it answered.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::MessageSystemAttributeName;
use bytes::Bytes;
use grantwarden_aws::{Clients, Objects, Settings, provision};
use grantwarden_core::snapshot::TargetId;
use grantwarden_testkit::{TestDb, moto};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const POLICY: &str = include_str!("../../../infra/policy.example.yaml");
const SCORING: &str = include_str!("../../../infra/scoring.yaml");
const WEBHOOK_KEY: &str = "grantwarden-cold-start-key";

/// What the runtime API saw of one invocation.
#[derive(Default)]
struct Seen {
    started: Option<Instant>,
    asked: Option<Instant>,
    answered: Option<(Instant, &'static str)>,
    done: Option<oneshot::Sender<()>>,
}

type Shared = Arc<Mutex<Seen>>;

async fn serve(req: Request<Incoming>, event: Arc<String>, seen: Shared) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let ok = |status: u16, body: String| {
        Ok(Response::builder().status(status).body(Full::new(Bytes::from(body))).expect("a valid response"))
    };
    if path.ends_with("/invocation/next") {
        let first = {
            let mut s = seen.lock().expect("never poisoned");
            let first = s.asked.is_none();
            s.asked.get_or_insert_with(Instant::now);
            first
        };
        if !first {
            // one event per process: the function waits here until it is stopped
            std::future::pending::<()>().await;
        }
        let deadline = chrono::Utc::now().timestamp_millis() + 300_000;
        return Ok(Response::builder()
            .header("Lambda-Runtime-Aws-Request-Id", "cold-start-1")
            .header("Lambda-Runtime-Deadline-Ms", deadline.to_string())
            .header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:bench")
            .header("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000")
            .body(Full::new(Bytes::from(event.as_bytes().to_vec())))
            .expect("a valid response"));
    }
    let outcome = if path.ends_with("/response") {
        "ok"
    } else if path.ends_with("/error") {
        "error"
    } else {
        return ok(404, String::new());
    };
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    if outcome == "error" {
        eprintln!("  the function answered with an error: {}", String::from_utf8_lossy(&body));
    }
    let mut s = seen.lock().expect("never poisoned");
    s.answered.get_or_insert((Instant::now(), outcome));
    if let Some(done) = s.done.take() {
        let _ = done.send(());
    }
    ok(202, "{}".into())
}

/// Runs `binary` on `event` with `env`; returns (to init done, to first event handled, outcome).
async fn cold_start(binary: &PathBuf, event: String, env: &[(String, String)]) -> (Duration, Duration, &'static str) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let addr = listener.local_addr().expect("bound");
    let (done_tx, done_rx) = oneshot::channel();
    let seen: Shared = Arc::new(Mutex::new(Seen { done: Some(done_tx), ..Seen::default() }));
    let event = Arc::new(event);
    let server = {
        let (seen, event) = (Arc::clone(&seen), Arc::clone(&event));
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (seen, event) = (Arc::clone(&seen), Arc::clone(&event));
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req| serve(req, Arc::clone(&event), Arc::clone(&seen)));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        })
    };
    let started = Instant::now();
    seen.lock().expect("never poisoned").started = Some(started);
    let mut child = Command::new(binary)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
    let finished = tokio::time::timeout(Duration::from_secs(120), done_rx).await;
    let _ = child.kill();
    let _ = child.wait();
    server.abort();
    assert!(finished.is_ok(), "{} handled nothing within 120 s", binary.display());
    let s = seen.lock().expect("never poisoned");
    let asked = s.asked.expect("it asked for the event") - started;
    let (answered, outcome) = s.answered.expect("it answered");
    (asked, answered - started, outcome)
}

/// A database, the resources of a stack in moto and the configuration pointing at them.
struct Stack {
    _db: TestDb,
    clients: Clients,
    settings: Settings,
    target: TargetId,
}

impl Stack {
    async fn new() -> Stack {
        let db = TestDb::new().await;
        db.exec(&format!(
            "CREATE ROLE {ro}; CREATE SCHEMA billing; CREATE TABLE billing.invoices (id int);
             GRANT USAGE ON SCHEMA billing TO {ro}; GRANT SELECT ON billing.invoices TO {ro};",
            ro = db.ident("app_ro"),
        ))
        .await;
        let clients = Clients::for_endpoint(&moto::endpoint()).await;
        let prefix = moto::unique_prefix("coldstart");
        let target = TargetId::new(format!("{prefix}/orders")).expect("a target id");
        let mut settings = provision::create(&clients, &prefix).await.expect("moto makes the resources");
        settings.targets = vec![target.clone()];
        let secret = db.rds_secret(None, Some("")).to_string();
        for id in [settings.target_secret_id(&target), settings.revoker_secret_id(&target)] {
            moto::put_secret(&clients.secrets, &id, &secret).await;
        }
        for (id, value) in
            [(&settings.webhook_secret_id, WEBHOOK_KEY), (&settings.audit_signing_secret_id, "cold-start-signing")]
        {
            let _ = clients.secrets.create_secret().name(id).secret_string(value).send().await;
        }
        let objects = Objects::new(&clients, &settings);
        let ignore: Vec<String> = db.ignore_others().iter().map(|p| format!("{p:?}")).collect();
        let baseline = format!(
            "version: 1\nroles:\n  {ro}:\n    grants:\n      - {{ privileges: [USAGE], on: schema, name: billing }}\n      - {{ privileges: [SELECT], on: table, name: billing.invoices }}\nignore_roles: [{}]\n",
            ignore.join(", "),
            ro = db.role("app_ro"),
        );
        let key = settings.baseline_key.replace("{target}", &grantwarden_aws::objects::key_segment(&target));
        objects.put(&key, baseline.into_bytes(), "application/yaml").await.expect("the baseline");
        let policy = format!("{}registry.yaml", settings.policy_prefix);
        objects.put(&policy, POLICY.as_bytes().to_vec(), "application/yaml").await.expect("the registry");
        objects.put(&settings.scoring_key, SCORING.as_bytes().to_vec(), "application/yaml").await.expect("scoring");
        Stack { _db: db, clients, settings, target }
    }

    fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> =
            self.settings.to_env().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        for (k, v) in [
            ("AWS_ENDPOINT_URL", moto::endpoint()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "bench".into()),
            ("AWS_SECRET_ACCESS_KEY", "bench".into()),
            ("AWS_LAMBDA_FUNCTION_NAME", "bench".into()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024".into()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/bench".into()),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "bench".into()),
            ("RUST_LOG", "warn".into()),
        ] {
            env.push((k.to_owned(), v));
        }
        env
    }

    /// The grant webhook as API Gateway's HTTP API hands it over, signed now with the stored key.
    fn webhook_event(&self) -> String {
        let body = serde_json::json!({ "delivery_id": "d-cold-1", "source": "okta-workflows",
            "target": self.target.as_str(), "principal": "alice@example.com", "role": "alice_tmp",
            "privileges": ["SELECT"], "object": { "type": "schema", "name": "billing" },
            "justification": "INC-1", "requested_by": "alice@example.com",
            "expires_at": (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339() })
        .to_string();
        let t = chrono::Utc::now().timestamp();
        let request = grantwarden_core::signature::SignedRequest {
            method: "POST",
            path: "/webhooks/grants",
            body: body.as_bytes(),
        };
        let signature = grantwarden_core::signature::sign_v2(WEBHOOK_KEY.as_bytes(), t, &request)
            .expect("a plain path and method are signable");
        let mut event: serde_json::Value =
            serde_json::from_str(include_str!("../../../events/intake-http-api.json")).expect("the sample event");
        event["headers"]["x-grantwarden-signature"] = serde_json::json!(signature);
        event["body"] = serde_json::json!(body);
        event["isBase64Encoded"] = serde_json::json!(false);
        event.to_string()
    }

    /// Every message of the chunk queue, as the SQS event extract receives.
    async fn chunk_event(&self) -> String {
        let url = self.settings.chunk_queue_url.clone().expect("provision makes the chunk queue");
        let mut records = Vec::new();
        for _ in 0..5 {
            let out = self
                .clients
                .sqs
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .expect("receive");
            let got = out.messages.unwrap_or_default();
            if got.is_empty() && !records.is_empty() {
                break;
            }
            for m in got {
                let attributes: HashMap<String, String> =
                    m.attributes.unwrap_or_default().into_iter().map(|(k, v)| (k.as_str().to_owned(), v)).collect();
                records.push(serde_json::json!({ "messageId": m.message_id, "receiptHandle": m.receipt_handle,
                    "body": m.body, "attributes": attributes, "messageAttributes": {}, "md5OfBody": m.md5_of_body,
                    "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:chunks",
                    "awsRegion": "us-east-1" }));
            }
        }
        serde_json::json!({ "Records": records }).to_string()
    }

    async fn stream_event(&self, table: &str) -> String {
        serde_json::to_string(&moto::table_stream(&self.clients.dynamodb, table).await).expect("an event")
    }
}

fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("GRANTWARDEN_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("release")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let dir = bin_dir();
    let runs: usize = std::env::var("BENCH_RUNS").ok().and_then(|n| n.parse().ok()).unwrap_or(3);
    let functions = ["intake", "fanout", "extract", "diff", "revoke", "audit"];
    let mut figures: HashMap<&str, Vec<(Duration, Duration, &'static str)>> = HashMap::new();
    for run in 0..runs {
        eprintln!("run {} of {runs}", run + 1);
        let stack = Stack::new().await;
        let env = stack.env();
        for name in functions {
            let event = match name {
                "intake" => stack.webhook_event(),
                "fanout" => include_str!("../../../events/fanout-schedule.json").to_owned(),
                "extract" => stack.chunk_event().await,
                "diff" => stack.stream_event(&stack.settings.scans_table).await,
                "revoke" => include_str!("../../../events/revoke-sweep.json").to_owned(),
                _ => stack.stream_event(&stack.settings.journal_table).await,
            };
            let binary = dir.join(format!("grantwarden-{name}"));
            let figure = cold_start(&binary, event, &env).await;
            figures.entry(name).or_default().push(figure);
        }
    }
    println!(
        "cold start of each function to its first event handled ({runs} runs; moto and PostgreSQL on this machine)"
    );
    println!("{:<8} {:>10} {:>14} {:>10} {:>10}", "function", "binary MB", "init (median)", "first event", "slowest");
    for name in functions {
        let f = &figures[name];
        let size = std::fs::metadata(dir.join(format!("grantwarden-{name}"))).map(|m| m.len()).unwrap_or(0);
        let outcomes: Vec<&str> = f.iter().map(|(_, _, o)| *o).collect();
        let init = median(f.iter().map(|(i, _, _)| *i).collect());
        let first = median(f.iter().map(|(_, d, _)| *d).collect());
        let slowest = f.iter().map(|(_, d, _)| *d).max().unwrap_or_default();
        let note = if outcomes.iter().all(|o| *o == "ok") { String::new() } else { format!("  ({outcomes:?})") };
        println!(
            "{name:<8} {:>10.1} {:>11.0} ms {:>7.0} ms {:>7.0} ms{note}",
            size as f64 / 1_048_576.0,
            init.as_secs_f64() * 1000.0,
            first.as_secs_f64() * 1000.0,
            slowest.as_secs_f64() * 1000.0
        );
    }
}
