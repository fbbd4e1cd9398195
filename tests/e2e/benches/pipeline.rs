//! The AWS scan pipeline at scale: the real fanout, extract and diff handlers,
//! in this process, against moto and the local PostgreSQL, fed what moto holds
//! (SQS messages drained as Lambda's poller would hand them over, the scans
//! table's stream read back), as the e2e tests do. Run by scripts/bench-pipeline,
//! which makes the databases and starts moto.
//!
//! Two scenarios, each one scheduled window:
//!   - large: one target, the 100k-table catalog of tests/bench (database
//!     `BENCH_LARGE_DB`), then the same database planned by the CLI
//!     (`GRANTWARDEN_BIN plan`) in the same run: its time is the yardstick and
//!     its findings must equal the pipeline's report;
//!   - many: `BENCH_TARGETS` targets (databases `gwpipe_0001...`), no chunk lost,
//!     no scan left open, one report each.
//!
//! Per stage it prints invocations, wall time, the sum of handler time (what
//! Lambda bills), the largest peak of heap memory one invocation added, and
//! the AWS requests and bytes (counted by a proxy in front of moto: what went
//! over the wire). Then the cost of one scan at the list prices below.
//!
//! Fanout and diff invocations run one at a time (Lambda gives each its own
//! process, so a peak is one invocation's). Extract invocations run
//! `BENCH_EXTRACT_CONCURRENCY` at once (default 4, the template's
//! `ExtractConcurrency`), as a deployment runs them; their peak is then that
//! of so many at once (1 gives one invocation's).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::dynamodb::Event as StreamEvent;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sqs::SqsEvent;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use grantwarden_aws::{Clients, Objects, SecretCache, Settings, provision};
use grantwarden_core::pipeline::{ScanLedger, ScanStatus};
use grantwarden_core::report::Report;
use grantwarden_core::snapshot::{ScanWindow, TargetId, scan_id};
use grantwarden_diff::{Diff, Handled};
use grantwarden_extract::Extract;
use grantwarden_fanout::Fanout;
use grantwarden_postgres::ScanOptions;
use grantwarden_testkit::moto;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use lambda_runtime::{Context, LambdaEvent};
use tokio::net::TcpListener;

// ------------------------------------------------------------------ prices
// AWS on-demand list prices, region us-east-1 (N. Virginia), x86, as published
// on the AWS pricing pages (Lambda, SQS, DynamoDB since its November 2024
// on-demand reduction, S3 Standard, Secrets Manager) and last checked in 2025:
// this machine cannot reach them, so update these when they change.
const PRICES_AS_OF: &str = "us-east-1 list prices, x86 Lambda, as published in 2025";
const LAMBDA_GB_SECOND: f64 = 0.000_016_666_7;
const LAMBDA_REQUEST: f64 = 0.20 / 1e6;
const SQS_REQUEST: f64 = 0.40 / 1e6;
const DYNAMO_WRU: f64 = 0.625 / 1e6;
const DYNAMO_RRU: f64 = 0.125 / 1e6;
const S3_PUT_LIST: f64 = 0.005 / 1e3;
const S3_GET: f64 = 0.0004 / 1e3;
const S3_GB_MONTH: f64 = 0.023;
const SECRETS_CALL: f64 = 0.05 / 1e4;
/// Memory of each function in infra/template.yaml (MB): Lambda bills GB-seconds of it.
const MEMORY_MB: [(&str, f64); 3] = [("fanout", 512.0), ("extract", 512.0), ("diff", 1024.0)];
/// Days a scan's manifest and batches are kept (the template's lifecycle rule on snapshots/).
const SNAPSHOT_DAYS: f64 = 30.0;

const POLICY: &str = include_str!("../../../infra/policy.example.yaml");

// ------------------------------------------------------------------ memory

/// The system allocator, counting the bytes in use and their peak.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size > layout.size() {
                let now = IN_USE.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size - layout.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                IN_USE.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f`, returning its output, its wall time and the most heap it added at any point.
async fn measured<T>(f: impl std::future::Future<Output = T>) -> (T, Duration, usize) {
    let base = IN_USE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let started = Instant::now();
    let out = f.await;
    let took = started.elapsed();
    (out, took, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

// ------------------------------------------------------------------ AWS traffic

/// Requests and bytes per AWS operation, as counted by the proxy.
#[derive(Default, Clone, Debug)]
struct Traffic {
    /// (service, operation) -> (requests, request bytes, response bytes, DynamoDB capacity units)
    ops: BTreeMap<(String, String), (u64, u64, u64, u64)>,
    /// Per service: the wall time at least one of its requests was in flight
    /// (counted when its last request in flight ends).
    busy: BTreeMap<String, Duration>,
    /// Per service: requests in flight, and since when one has been.
    in_flight: BTreeMap<String, (usize, Option<Instant>)>,
}

impl Traffic {
    fn since(&self, before: &Traffic) -> Traffic {
        let mut ops = self.ops.clone();
        for (k, (n, up, down, units)) in &before.ops {
            if let Some(e) = ops.get_mut(k) {
                *e = (e.0 - n, e.1 - up, e.2 - down, e.3 - units);
            }
        }
        ops.retain(|_, v| v.0 > 0);
        let mut busy = self.busy.clone();
        for (k, d) in &before.busy {
            if let Some(e) = busy.get_mut(k) {
                *e = e.saturating_sub(*d);
            }
        }
        Traffic { ops, busy, in_flight: BTreeMap::new() }
    }

    fn started(&mut self, service: &str) {
        let e = self.in_flight.entry(service.to_owned()).or_default();
        if e.0 == 0 {
            e.1 = Some(Instant::now());
        }
        e.0 += 1;
    }

    fn ended(&mut self, service: &str) {
        let e = self.in_flight.entry(service.to_owned()).or_default();
        e.0 = e.0.saturating_sub(1);
        if e.0 == 0
            && let Some(since) = e.1.take()
        {
            *self.busy.entry(service.to_owned()).or_default() += since.elapsed();
        }
    }

    fn busy(&self, service: &str) -> Duration {
        self.busy.get(service).copied().unwrap_or_default()
    }

    fn sum(&self, service: &str, pick: impl Fn(&str) -> bool) -> (u64, u64, u64, u64) {
        self.ops
            .iter()
            .filter(|((s, op), _)| s == service && pick(op))
            .fold((0, 0, 0, 0), |a, (_, v)| (a.0 + v.0, a.1 + v.1, a.2 + v.2, a.3 + v.3))
    }

    fn requests(&self, service: &str) -> u64 {
        self.sum(service, |_| true).0
    }

    fn s3_puts(&self) -> (u64, u64) {
        let (n, up, _, _) = self.sum("s3", |op| op == "PutObject");
        (n, up)
    }
    fn s3_gets(&self) -> (u64, u64) {
        let (n, _, down, _) = self.sum("s3", |op| op == "GetObject");
        (n, down)
    }
    fn s3_lists(&self) -> u64 {
        self.sum("s3", |op| op == "ListObjectsV2").0
    }
    fn dynamo_writes(&self) -> u64 {
        self.sum("dynamodb", is_write).3
    }
    fn dynamo_reads(&self) -> u64 {
        self.sum("dynamodb", |op| !is_write(op)).3
    }
}

fn is_write(op: &str) -> bool {
    matches!(op, "PutItem" | "UpdateItem" | "DeleteItem" | "TransactWriteItems" | "BatchWriteItem")
}

/// Capacity units of one DynamoDB request, from its size: a write is a unit per
/// KB written (a transaction's items twice), a read a unit per 4 KB read.
fn capacity_units(op: &str, request: usize, response: usize) -> u64 {
    let per = |bytes: usize, unit: usize| (bytes.div_ceil(unit)).max(1) as u64;
    match op {
        "TransactWriteItems" => 2 * per(request, 1024),
        op if is_write(op) => per(request, 1024),
        "GetItem" | "Query" | "Scan" | "BatchGetItem" => per(response, 4096),
        _ => 0,
    }
}

/// A proxy in front of moto that counts every request by service and operation.
struct Proxy {
    url: String,
    traffic: Arc<Mutex<Traffic>>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let traffic = Arc::new(Mutex::new(Traffic::default()));
        let client: hyper_util::client::legacy::Client<_, Full<Bytes>> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(hyper_util::client::legacy::connect::HttpConnector::new());
        let upstream: Arc<str> = upstream.trim_end_matches('/').into();
        let counted = Arc::clone(&traffic);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (client, upstream, traffic) = (client.clone(), Arc::clone(&upstream), Arc::clone(&counted));
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (client, upstream, traffic) = (client.clone(), Arc::clone(&upstream), Arc::clone(&traffic));
                        async move { Ok::<_, Infallible>(forward(req, &client, &upstream, &traffic).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Proxy { url, traffic }
    }

    fn traffic(&self) -> Traffic {
        self.traffic.lock().expect("never poisoned").clone()
    }
}

type Upstream = hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

async fn forward(
    req: Request<Incoming>,
    client: &Upstream,
    upstream: &str,
    traffic: &Mutex<Traffic>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let (service, op) = operation(&parts, &body);
    let uri = format!("{upstream}{}", parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"));
    let mut out = Request::builder().method(parts.method.clone()).uri(uri);
    for (name, value) in &parts.headers {
        out = out.header(name, value);
    }
    let sent = body.len();
    traffic.lock().expect("never poisoned").started(&service);
    let response = client.request(out.body(Full::new(body)).expect("a request")).await;
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            traffic.lock().expect("never poisoned").ended(&service);
            return Response::builder().status(502).body(Full::new(Bytes::from(e.to_string()))).expect("a response");
        }
    };
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let units = if service == "dynamodb" { capacity_units(&op, sent, body.len()) } else { 0 };
    let mut t = traffic.lock().expect("never poisoned");
    t.ended(&service);
    let e = t.ops.entry((service, op)).or_default();
    *e = (e.0 + 1, e.1 + sent as u64, e.2 + body.len() as u64, e.3 + units);
    Response::from_parts(parts, Full::new(body))
}

/// The AWS service and operation of a request: the JSON protocols name it in
/// `X-Amz-Target`, the query protocol (SNS) in `Action=`, and S3 by method and path.
fn operation(parts: &hyper::http::request::Parts, body: &[u8]) -> (String, String) {
    if let Some(target) = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        let (prefix, op) = target.split_once('.').unwrap_or((target, ""));
        let service = match prefix {
            p if p.starts_with("DynamoDBStreams") => "dynamodbstreams",
            p if p.starts_with("DynamoDB") => "dynamodb",
            p if p.starts_with("AmazonSQS") => "sqs",
            "secretsmanager" => "secretsmanager",
            other => other,
        };
        return (service.to_owned(), op.to_owned());
    }
    let text = String::from_utf8_lossy(body);
    if let Some(action) = text.split('&').find_map(|kv| kv.strip_prefix("Action=")) {
        return ("sns".to_owned(), action.to_owned());
    }
    let query = parts.uri.query().unwrap_or("");
    let op = match parts.method.as_str() {
        "GET" if query.contains("list-type=2") => "ListObjectsV2",
        "GET" => "GetObject",
        "PUT" => "PutObject",
        "HEAD" => "HeadObject",
        "DELETE" => "DeleteObject",
        other => other,
    };
    ("s3".to_owned(), op.to_owned())
}

// ------------------------------------------------------------------ stages

/// One stage's figures.
#[derive(Default)]
struct Stage {
    name: &'static str,
    function: &'static str,
    invocations: usize,
    wall: Duration,
    handler_sum: Duration,
    peak: usize,
    /// Invocations that ran at once (the peak is theirs together).
    at_once: usize,
    traffic: Traffic,
}

impl Stage {
    fn memory_gb(&self) -> f64 {
        MEMORY_MB.iter().find(|(f, _)| *f == self.function).map(|(_, mb)| mb / 1024.0).unwrap_or(0.0)
    }
}

fn lambda<T>(payload: T) -> LambdaEvent<T> {
    LambdaEvent { payload, context: Context::default() }
}

struct Bench {
    clients: Clients,
    proxy: Proxy,
    settings: Settings,
    now: DateTime<Utc>,
    extract_concurrency: usize,
}

impl Bench {
    fn clock(&self) -> Arc<dyn grantwarden_aws::Clock> {
        let now = self.now;
        Arc::new(move || now)
    }

    fn options(&self) -> ScanOptions {
        ScanOptions { window_seconds: self.settings.scan_window_seconds, ..ScanOptions::default() }
    }

    fn schedule(&self) -> LambdaEvent<EventBridgeEvent<serde_json::Value>> {
        lambda(
            serde_json::from_value(serde_json::json!({
                "version": "0", "id": "bench", "detail-type": "Scheduled Event", "source": "aws.events",
                "account": "123456789012", "time": self.now.to_rfc3339(), "region": "us-east-1",
                "resources": [], "detail": {}
            }))
            .expect("a schedule event"),
        )
    }

    /// Runs one scheduled window over `targets`: fanout, every chunk, every ended scan.
    async fn window(&self, targets: &[TargetId]) -> (Vec<Stage>, Duration, Vec<Handled>) {
        let mut settings = self.settings.clone();
        settings.targets = targets.to_vec();
        let secrets = SecretCache::new(&self.clients, Duration::from_secs(300));
        let started = Instant::now();

        // fanout: one invocation for the whole schedule
        let fanout = Fanout::new(&self.clients, settings.clone(), secrets.clone(), self.options(), self.clock())
            .expect("fanout settings");
        let before = self.proxy.traffic();
        let (outcomes, took, peak) = measured(fanout.handle(self.schedule())).await;
        let outcomes = outcomes.expect("every target fanned out");
        let chunks: usize = outcomes.iter().map(|o| o.chunks_sent).sum();
        let fan = Stage {
            name: "fanout",
            function: "fanout",
            invocations: 1,
            wall: took,
            handler_sum: took,
            peak,
            at_once: 1,
            traffic: self.proxy.traffic().since(&before),
        };

        // extract: Lambda's poller hands each message over alone (BatchSize 1)
        let queue = settings.chunk_queue_url.clone().expect("a chunk queue");
        let before = self.proxy.traffic();
        let stage_started = Instant::now();
        let drained = moto::drain(&self.clients.sqs, &queue, chunks).await;
        assert_eq!(drained.records.len(), chunks, "every chunk message is on the queue");
        let distinct: std::collections::BTreeSet<&str> =
            drained.records.iter().filter_map(|r| r.message_id.as_deref()).collect();
        assert_eq!(distinct.len(), chunks, "each chunk message taken once");
        let extract = Extract::new(&self.clients, settings.clone(), secrets.clone(), self.options(), self.clock())
            .expect("extract settings");
        let mut handler_sum = Duration::ZERO;
        let mut peak = 0usize;
        let receipts: Vec<String> = drained.records.iter().filter_map(|r| r.receipt_handle.clone()).collect();
        let events: Vec<SqsEvent> = drained
            .records
            .into_iter()
            .map(|r| {
                let mut one = SqsEvent::default();
                one.records = vec![r];
                one
            })
            .collect();
        if self.extract_concurrency <= 1 {
            for event in events {
                let (response, took, p) = measured(extract.handle(lambda(event))).await;
                let response = response.expect("infallible");
                assert!(
                    response.batch_item_failures.is_empty(),
                    "no chunk is retried: {:?}",
                    response.batch_item_failures
                );
                handler_sum += took;
                peak = peak.max(p);
            }
        } else {
            let base = IN_USE.load(Ordering::Relaxed);
            PEAK.store(base, Ordering::Relaxed);
            let timed = futures::stream::iter(events)
                .map(|event| {
                    let extract = &extract;
                    async move {
                        let started = Instant::now();
                        let response = extract.handle(lambda(event)).await.expect("infallible");
                        assert!(response.batch_item_failures.is_empty(), "{:?}", response.batch_item_failures);
                        started.elapsed()
                    }
                })
                .buffer_unordered(self.extract_concurrency)
                .collect::<Vec<Duration>>()
                .await;
            handler_sum = timed.iter().sum();
            peak = PEAK.load(Ordering::Relaxed).saturating_sub(base);
        }
        // what Lambda's poller does after a handled message: delete it (ten at a time)
        for ten in receipts.chunks(10) {
            let mut delete = self.clients.sqs.delete_message_batch().queue_url(&queue);
            for (i, receipt) in ten.iter().enumerate() {
                delete = delete.entries(
                    aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .build()
                        .expect("an entry"),
                );
            }
            delete.send().await.expect("the handled messages deleted");
        }
        let ext = Stage {
            name: "extract",
            function: "extract",
            invocations: chunks,
            wall: stage_started.elapsed(),
            handler_sum,
            peak,
            at_once: self.extract_concurrency.max(1),
            traffic: self.proxy.traffic().since(&before),
        };

        // diff: the scans table's stream, ten records per invocation
        let before = self.proxy.traffic();
        let stage_started = Instant::now();
        let stream: StreamEvent = moto::table_stream(&self.clients.dynamodb, &settings.scans_table).await;
        let diff = Diff::new(&self.clients, &settings, self.clock()).expect("diff settings");
        let (mut handled, mut handler_sum, mut peak, mut invocations) = (Vec::new(), Duration::ZERO, 0usize, 0usize);
        for records in stream.records.chunks(10) {
            let mut event = StreamEvent::default();
            event.records = records.to_vec();
            let (out, took, p) = measured(diff.handle(lambda(event))).await;
            handled.extend(out.expect("the diff handles every record"));
            handler_sum += took;
            peak = peak.max(p);
            invocations += 1;
        }
        let dif = Stage {
            name: "diff",
            function: "diff",
            invocations,
            wall: stage_started.elapsed(),
            handler_sum,
            peak,
            at_once: 1,
            traffic: self.proxy.traffic().since(&before),
        };
        let end_to_end = started.elapsed();
        (vec![fan, ext, dif], end_to_end, handled)
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

fn print_stages(stages: &[Stage]) {
    println!(
        "  {:<8} {:>7} {:>9} {:>12} {:>10} {:>14} {:>12} {:>12} {:>9} {:>9}",
        "stage",
        "invoc.",
        "wall s",
        "handler s",
        "peak MB",
        "S3 put/get",
        "S3 MB up/dn",
        "Dynamo RU/WU",
        "Dynamo s",
        "SQS"
    );
    for s in stages {
        let (puts, up) = s.traffic.s3_puts();
        let (gets, down) = s.traffic.s3_gets();
        println!(
            "  {:<8} {:>7} {:>9.2} {:>12.2} {:>10} {:>14} {:>12} {:>12} {:>9.2} {:>9}",
            s.name,
            s.invocations,
            s.wall.as_secs_f64(),
            s.handler_sum.as_secs_f64(),
            if s.at_once > 1 {
                format!("{:.1} ({}x)", mb(s.peak as u64), s.at_once)
            } else {
                format!("{:.1}", mb(s.peak as u64))
            },
            format!("{puts}/{gets}"),
            format!("{:.1}/{:.1}", mb(up), mb(down)),
            format!("{}r/{}w", s.traffic.dynamo_reads(), s.traffic.dynamo_writes()),
            s.traffic.busy("dynamodb").as_secs_f64(),
            s.traffic.requests("sqs"),
        );
    }
}

/// The cost of one window's scans, by service, and in dollars.
fn print_cost(stages: &[Stage], targets: usize) {
    let mut lambda_gbs = 0.0;
    let mut requests = 0.0;
    let mut sqs = 0.0;
    let (mut wru, mut rru, mut puts, mut gets, mut stored, mut secrets) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for s in stages {
        // billed per millisecond, each invocation at least one
        let billed = s.handler_sum.as_secs_f64().max(s.invocations as f64 / 1000.0);
        lambda_gbs += billed * s.memory_gb();
        requests += s.invocations as f64;
        // what the handlers send, and the poller's receives and deletes (billed to the account)
        sqs += s.traffic.requests("sqs") as f64;
        wru += s.traffic.dynamo_writes() as f64;
        rru += s.traffic.dynamo_reads() as f64;
        let (p, up) = s.traffic.s3_puts();
        puts += p as f64 + s.traffic.s3_lists() as f64;
        gets += s.traffic.s3_gets().0 as f64;
        stored += up as f64;
        secrets += s.traffic.requests("secretsmanager") as f64;
    }
    let storage = stored / 1e9 * S3_GB_MONTH * SNAPSHOT_DAYS / 30.0;
    let items = [
        ("Lambda GB-s", lambda_gbs, lambda_gbs * LAMBDA_GB_SECOND),
        ("Lambda requests", requests, requests * LAMBDA_REQUEST),
        ("SQS requests", sqs, sqs * SQS_REQUEST),
        ("DynamoDB WRU", wru, wru * DYNAMO_WRU),
        ("DynamoDB RRU", rru, rru * DYNAMO_RRU),
        ("S3 PUT/LIST", puts, puts * S3_PUT_LIST),
        ("S3 GET", gets, gets * S3_GET),
        ("S3 storage (GB kept)", stored / 1e9, storage),
        ("Secrets Manager calls", secrets, secrets * SECRETS_CALL),
    ];
    let total: f64 = items.iter().map(|i| i.2).sum();
    println!("  cost of one scan ({PRICES_AS_OF}; snapshots kept {SNAPSHOT_DAYS} days):");
    for (name, quantity, dollars) in items {
        println!("    {name:<24} {quantity:>14.2} ${dollars:>12.6}");
    }
    let per_target = total / targets as f64;
    println!(
        "    total ${total:.6} per window; per target ${per_target:.6} a scan, ${:.2} a month at an hourly schedule",
        per_target * 24.0 * 30.0
    );
}

/// What a finding is, without its age-weighted score (the e2e tests compare the same).
fn shape(r: &Report) -> Vec<String> {
    let mut out: Vec<String> = r
        .findings
        .iter()
        .map(|f| format!("{:?} {:?} {} {} {:?}", f.kind, f.severity, f.grantee, f.privilege, f.object))
        .collect();
    out.sort();
    out
}

async fn put_target(bench: &Bench, target: &TargetId, dbname: &str, baseline: &[u8]) {
    let (host, port, user) = pg();
    let secret = serde_json::json!({
        "engine": "postgres", "host": host, "port": port, "username": user, "password": "", "dbname": dbname,
    });
    moto::put_secret(&bench.clients.secrets, &bench.settings.target_secret_id(target), &secret.to_string()).await;
    let key = bench.settings.baseline_key.replace("{target}", &grantwarden_aws::objects::key_segment(target));
    Objects::new(&bench.clients, &bench.settings)
        .put(&key, baseline.to_vec(), "application/yaml")
        .await
        .expect("baseline stored");
}

/// `grantwarden generate` of `url` into `path`; with `drift`, drift made on paper: the
/// first three lines granting DELETE left out, so those grants (a schema's
/// tables each, a few hundred) are findings for the pipeline and plan to agree
/// on. (Every finding is a DynamoDB item and journal events: a drift of every
/// DELETE grant of the large catalog, 130k findings, is another benchmark.)
fn baseline_with_drift(url: &str, path: &std::path::Path, drift: bool) -> Vec<u8> {
    let (out, _) =
        cli(&["generate", "--database", url, "--ignore-roles", "pg_*,postgres", "--output", path.to_str().unwrap()]);
    assert!(out.status.success(), "generate: {}", String::from_utf8_lossy(&out.stderr));
    let text = std::fs::read_to_string(path).expect("the generated baseline");
    let mut left_out = 0;
    let edited: String = text
        .lines()
        .filter(|l| {
            let drop = drift && left_out < 3 && l.contains("DELETE");
            left_out += usize::from(drop);
            !drop
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(edited.len() != text.len(), drift, "the catalog grants DELETE somewhere");
    std::fs::write(path, &edited).expect("the baseline written");
    edited.into_bytes()
}

/// The local PostgreSQL (`PGHOST`, `PGPORT`, `PGUSER`; trust authentication).
fn pg() -> (String, u16, String) {
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    (var("PGHOST", "127.0.0.1"), var("PGPORT", "5432").parse().expect("PGPORT is a port"), var("PGUSER", "postgres"))
}

/// Runs the CLI under comparison with `args`; its output and wall time.
fn cli(args: &[&str]) -> (std::process::Output, Duration) {
    let bin = std::env::var("GRANTWARDEN_BIN").expect("GRANTWARDEN_BIN: the CLI to compare with");
    let started = Instant::now();
    let out = std::process::Command::new(&bin).args(args).output().unwrap_or_else(|e| panic!("running {bin}: {e}"));
    (out, started.elapsed())
}

impl Bench {
    /// A stack of its own in moto for one scenario (its queues, tables and
    /// stream hold nothing of another), with the policy registry in place
    /// (without one the diff fails secure: an untagged finding).
    async fn new(clients: Clients, proxy: Proxy, scenario: &str) -> Bench {
        let prefix = moto::unique_prefix(&format!("bench-{scenario}"));
        let settings = provision::create(&clients, &prefix).await.expect("the stack is provisioned in moto");
        // the template's visibility timeout: a message taken off the queue stays
        // taken while the others are drained and extracted (with the emulator's
        // 30 s, hundreds of targets' messages came round again during the drain)
        clients
            .sqs
            .set_queue_attributes()
            .queue_url(settings.chunk_queue_url.as_deref().expect("a chunk queue"))
            .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, "720")
            .send()
            .await
            .expect("the visibility timeout set");
        let policy_key = format!("{}registry.yaml", settings.policy_prefix);
        Objects::new(&clients, &settings)
            .put(&policy_key, POLICY.as_bytes().to_vec(), "application/yaml")
            .await
            .expect("the registry stored");
        Bench {
            clients,
            proxy,
            settings,
            now: Utc::now(),
            extract_concurrency: std::env::var("BENCH_EXTRACT_CONCURRENCY")
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(4),
        }
    }
}

#[tokio::main]
async fn main() {
    let endpoint = moto::endpoint();
    let (host, port, user) = pg();
    let pg = format!("postgres://{user}@{host}:{port}");
    let work = tempfile::tempdir().expect("a work directory");
    let scenarios = std::env::var("BENCH_SCENARIOS").unwrap_or_else(|_| "large many".into());

    if scenarios.contains("large") {
        let db = std::env::var("BENCH_LARGE_DB").unwrap_or_else(|_| "gwbench_large".into());
        let url = format!("{pg}/{db}");
        // twice, each in a stack of its own: the baseline as generated (no drift:
        // the scan path alone), then with a few hundred findings to open and compare
        for (drift, what) in [(false, "the baseline as generated, no drift"), (true, "three baseline lines left out")] {
            let proxy = Proxy::start(endpoint.clone()).await;
            let bench = Bench::new(Clients::for_endpoint(&proxy.url).await, proxy, "large").await;
            let baseline = work.path().join("large.yaml");
            let yaml = baseline_with_drift(&url, &baseline, drift);
            let plan_json = work.path().join("plan.json");
            let (out, plan_time) = cli(&[
                "plan",
                "--database",
                &url,
                "--baseline",
                baseline.to_str().unwrap(),
                "--format",
                "json",
                "--output",
                plan_json.to_str().unwrap(),
            ]);
            assert!(matches!(out.status.code(), Some(0 | 2)), "plan: {}", String::from_utf8_lossy(&out.stderr));
            let target = TargetId::new(format!("bench/{db}")).expect("a target id");
            put_target(&bench, &target, &db, &yaml).await;
            let (stages, end_to_end, handled) = bench.window(std::slice::from_ref(&target)).await;
            println!("\nlarge: one target, database {db}; {what}");
            print_stages(&stages);
            println!(
                "  end to end (schedule to report) {:.2} s; grantwarden plan on the same database {:.2} s: x{:.2}",
                end_to_end.as_secs_f64(),
                plan_time.as_secs_f64(),
                end_to_end.as_secs_f64() / plan_time.as_secs_f64()
            );
            let Some(Handled::Reported { key, .. }) = handled.iter().find(|h| matches!(h, Handled::Reported { .. }))
            else {
                panic!("no report: {handled:?}");
            };
            let aws: Report =
                Objects::new(&bench.clients, &bench.settings).get_json(key).await.unwrap().expect("the report");
            let local: Report =
                serde_json::from_slice(&std::fs::read(&plan_json).unwrap()).expect("plan's JSON report");
            assert!(aws.summary.complete, "the scan is complete");
            assert_eq!(aws.findings.is_empty(), !drift, "findings exactly where the baseline leaves grants out");
            assert_eq!(shape(&aws), shape(&local), "the pipeline's findings are plan's");
            assert_eq!(
                (aws.summary.unauthorized, aws.summary.missing, aws.summary.status),
                (local.summary.unauthorized, local.summary.missing, local.summary.status)
            );
            println!("  report equal to plan's: {} findings, status {:?}", aws.findings.len(), aws.summary.status);
            print_cost(&stages, 1);
        }
    }

    if scenarios.contains("many") {
        let proxy = Proxy::start(endpoint.clone()).await;
        let bench = Bench::new(Clients::for_endpoint(&proxy.url).await, proxy, "many").await;
        let n: usize = std::env::var("BENCH_TARGETS").ok().and_then(|n| n.parse().ok()).unwrap_or(500);
        let template = format!("{pg}/gwpipe_0001");
        let yaml = baseline_with_drift(&template, &work.path().join("small.yaml"), true);
        let mut targets = Vec::with_capacity(n);
        for i in 1..=n {
            let db = format!("gwpipe_{i:04}");
            let target = TargetId::new(format!("bench/{db}")).expect("a target id");
            put_target(&bench, &target, &db, &yaml).await;
            targets.push(target);
        }
        let (stages, end_to_end, handled) = bench.window(&targets).await;
        println!("\nmany: {n} targets (databases gwpipe_0001..{n:04})");
        print_stages(&stages);
        let reported = handled.iter().filter(|h| matches!(h, Handled::Reported { .. })).count();
        let store = grantwarden_aws::DynamoStore::new(&bench.clients, &bench.settings);
        let window = ScanWindow::containing(bench.now, bench.settings.scan_window_seconds);
        let mut open = 0;
        let mut incomplete = 0;
        for t in &targets {
            match store.scan(&scan_id(t, &window)).await.expect("the scan record").map(|r| r.status) {
                Some(ScanStatus::Complete) => {}
                Some(ScanStatus::Incomplete) => incomplete += 1,
                _ => open += 1,
            }
        }
        let dead = bench
            .clients
            .sqs
            .get_queue_attributes()
            .queue_url(bench.settings.chunk_dlq_url.as_deref().expect("a DLQ"))
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await
            .expect("DLQ attributes");
        let dead = dead
            .attributes
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages).cloned())
            .unwrap_or_default();
        println!(
            "  end to end (schedule to the last report) {:.2} s; {reported} reports, {open} scans open, {incomplete} incomplete, {dead} dead letters",
            end_to_end.as_secs_f64()
        );
        assert_eq!((reported, open, incomplete), (n, 0, 0), "every scan ended complete with its report");
        assert_eq!(dead, "0", "no chunk was lost");
        print_cost(&stages, n);
    }
}
