//! The load and fault suite against the deployed stack (scripts/bench-faults):
//! each line drives the stack MiniStack runs through its real entry points
//! (HTTP, the queues, a PostgreSQL that stops), prints its figures, and the
//! run fails when a line fails. Loopback only; bounded in count and time.
//!
//! Env: `GRANTWARDEN_TEST_STACK` (the outputs of the stack scripts/bench-faults
//! deployed), `BENCH_WEBHOOKS` (default 10000), `BENCH_IN_FLIGHT` (default 32).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{SubsecRound, Utc};
use futures::StreamExt;
use grantwarden_aws::DynamoStore;
use grantwarden_core::report::Status;
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::store::TicketStore;
use grantwarden_core::ticket::TicketStatus;
use grantwarden_e2e::stack::{Stack, eventually};
use grantwarden_testkit::{OwnCluster, TestDb};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// The targets the suite scans (listed before intake starts).
const TARGETS: &[&str] = &["bench-load", "bench-poison", "bench-pgdown", "bench-expiry"];

/// One line of the table: what was tried, what was seen, whether it held.
struct Line {
    name: &'static str,
    figures: String,
    failures: Vec<String>,
    took: Duration,
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn baseline(db: &TestDb) -> String {
    let ignore: Vec<String> = db.ignore_others().iter().map(|p| format!("{p:?}")).collect();
    format!(
        "version: 1\npublic:\n  grants:\n    - {{ privileges: [USAGE], on: schema, name: public }}\nignore_roles: [{}]\n",
        ignore.join(", ")
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// What one delivery is meant to be.
#[derive(Clone)]
enum Kind {
    /// A new delivery id.
    New(usize),
    /// A redelivery of an earlier delivery id, signed anew.
    Again(usize),
    /// A body missing or mangling `field`.
    Malformed(usize, &'static str),
}

/// Delivery `n`: the same body every time it is sent (a redelivery is the same delivery).
fn webhook(prefix: &str, target: &str, n: usize, expires_at: chrono::DateTime<Utc>) -> serde_json::Value {
    serde_json::json!({
        "delivery_id": format!("{prefix}-{n}"), "source": "okta-workflows", "target": target,
        "principal": format!("user{n}@example.com"), "role": format!("{prefix}_r{n}"),
        "privileges": ["SELECT", "USAGE"], "object": { "type": "schema", "name": "billing" },
        "justification": "bench", "requested_by": format!("user{n}@example.com"),
        "expires_at": expires_at.to_rfc3339(),
    })
}

async fn webhooks(stack: Arc<Stack>) -> Line {
    let started = Instant::now();
    let total = env_number("BENCH_WEBHOOKS", 10_000);
    let in_flight = env_number("BENCH_IN_FLIGHT", 32);
    let target = "bench-load";
    let db = TestDb::new().await;
    stack.register(&TargetId::new(target).unwrap(), &db, "", &baseline(&db)).await;
    let prefix = db.prefix.clone();
    let key = Arc::new(stack.webhook_key().await);
    let expires_at = (Utc::now() + chrono::Duration::hours(7)).trunc_subsecs(0);

    // 75% new, 20% redelivered (of an id already sent), 5% malformed, shuffled
    let mut rng = rand::rngs::StdRng::seed_from_u64(27);
    let mut kinds = Vec::with_capacity(total);
    let mut fresh = 0;
    for i in 0..total {
        let roll = rng.random_range(0..100);
        kinds.push(if roll < 5 {
            Kind::Malformed(i, ["role", "expires_at", "privileges", "target"][i % 4])
        } else if roll < 25 && fresh > 0 {
            Kind::Again(rng.random_range(0..fresh))
        } else {
            fresh += 1;
            Kind::New(fresh - 1)
        });
    }
    // redeliveries keep their place after their original; the rest is mixed in blocks
    kinds[..].chunks_mut(64).for_each(|c| {
        let (mut news, mut others): (Vec<Kind>, Vec<Kind>) = c.iter().cloned().partition(|k| matches!(k, Kind::New(_)));
        others.shuffle(&mut rng);
        news.append(&mut others);
        c.clone_from_slice(&news);
    });

    let signed: Arc<std::sync::Mutex<HashMap<usize, BTreeSet<i64>>>> = Arc::default();
    let results = futures::stream::iter(kinds)
        .map(|kind| {
            let (stack, key, prefix, signed) =
                (Arc::clone(&stack), Arc::clone(&key), prefix.clone(), Arc::clone(&signed));
            async move {
                let (body, expect_field) = match &kind {
                    Kind::New(n) | Kind::Again(n) => (webhook(&prefix, target, *n, expires_at), None),
                    Kind::Malformed(n, field) => {
                        let mut w = webhook(&prefix, target, 1_000_000 + n, expires_at);
                        match *field {
                            "expires_at" => w["expires_at"] = "next tuesday".into(),
                            "privileges" => w["privileges"] = serde_json::json!("ALL"),
                            other => {
                                w.as_object_mut().unwrap().remove(other);
                            }
                        }
                        (w, Some(*field))
                    }
                };
                let mut throttled = 0;
                loop {
                    // a sender signs each attempt anew; the same body signed in the same second
                    // twice is a replay of one signed request, so each delivery of an id gets a
                    // second of its own (now, or the next one free)
                    let skew = match kind {
                        Kind::New(n) | Kind::Again(n) => {
                            let now = Utc::now().timestamp();
                            let mut used = signed.lock().unwrap();
                            let seconds = used.entry(n).or_default();
                            let t = (now..).find(|t| !seconds.contains(t)).expect("a free second");
                            seconds.insert(t);
                            now - t
                        }
                        Kind::Malformed(..) => 0,
                    };
                    let t0 = Instant::now();
                    let answer = stack.post_signed_at(&key, "/webhooks/grants", &body, skew).await;
                    if answer.status == 429 {
                        throttled += 1;
                        tokio::time::sleep(Duration::from_millis(50 * throttled)).await;
                        continue;
                    }
                    return (kind, expect_field, answer, t0.elapsed(), throttled);
                }
            }
        })
        .buffer_unordered(in_flight)
        .collect::<Vec<_>>()
        .await;
    let load_wall = started.elapsed();

    let mut failures = Vec::new();
    let mut latencies: Vec<Duration> = Vec::with_capacity(results.len());
    let (mut five_xx, mut throttled, mut statuses) = (0, 0, BTreeMap::<u16, usize>::new());
    let mut ids: HashMap<String, BTreeSet<String>> = HashMap::new();
    for (kind, field, answer, took, retries) in &results {
        latencies.push(*took);
        throttled += retries;
        *statuses.entry(answer.status).or_default() += 1;
        if answer.status >= 500 {
            five_xx += 1;
        }
        match (kind, field) {
            (Kind::Malformed(..), Some(field)) => {
                let named = answer.json()["field"].as_str().map(str::to_owned);
                if answer.status != 400 || named.as_deref() != Some(field) {
                    failures.push(format!("malformed {field}: {} naming {named:?}", answer.status));
                }
            }
            (Kind::New(n) | Kind::Again(n), _) => {
                if !matches!(answer.status, 200 | 201) {
                    failures.push(format!(
                        "delivery {n}: {} {}",
                        answer.status,
                        String::from_utf8_lossy(&answer.body).chars().take(200).collect::<String>()
                    ));
                } else if let Some(id) = answer.json()["id"].as_str() {
                    ids.entry(format!("{prefix}-{n}")).or_default().insert(id.to_owned());
                }
            }
            _ => {}
        }
    }
    // the first few answers that went wrong, after the counts that sum them up
    failures.truncate(5);
    let mut summary = Vec::new();
    if five_xx > 0 {
        summary.push(format!("{five_xx} answers were 5xx"));
    }
    for (delivery, tickets) in &ids {
        if tickets.len() != 1 {
            summary.push(format!("delivery {delivery} answered with {} ticket ids", tickets.len()));
        }
    }
    // what DynamoDB holds: exactly one ticket per delivery id
    let stored = tickets_of(&stack, target).await;
    let mut per_delivery: HashMap<String, usize> = HashMap::new();
    for delivery in &stored {
        if delivery.starts_with(&format!("{prefix}-")) {
            *per_delivery.entry(delivery.clone()).or_default() += 1;
        }
    }
    let doubled = per_delivery.values().filter(|n| **n > 1).count();
    if doubled > 0 {
        summary.push(format!("{doubled} delivery ids have more than one ticket"));
    }
    if per_delivery.len() != fresh {
        summary.push(format!("{} delivery ids have a ticket, {fresh} were sent", per_delivery.len()));
    }
    // and the journal: every ticket's `ticket.requested` is on its chain, once. Each
    // ticket's events wait in its outbox until revoke appends them from the tickets
    // stream (or, when whoever took them died, the sweep once their claim ran out)
    let store = DynamoStore::new(&stack.clients, &stack.settings);
    // its thousands of tickets would weigh on every later minute's scan and sweep
    stack.unlist(target).await;
    let load_target = TargetId::new(target).unwrap();
    let left = TicketStore::unjournaled(&store, &load_target).await.map(|e| e.len()).unwrap_or_default();
    let waited = Instant::now();
    let deadline = grantwarden_core::outbox::CLAIM.to_std().unwrap() + Duration::from_secs(180);
    let mut drained = left == 0;
    while !drained && waited.elapsed() < deadline {
        tokio::time::sleep(Duration::from_secs(15)).await;
        drained = TicketStore::unjournaled(&store, &load_target).await.is_ok_and(|e| e.is_empty());
    }
    if !drained {
        summary.push(format!("outbox entries still not journaled {} s after the load", waited.elapsed().as_secs()));
    }
    let journal = grantwarden_core::audit::AuditJournal::events(&store, target).await.unwrap_or_default();
    let mut requested: HashMap<&str, usize> = HashMap::new();
    for e in &journal {
        if e.kind == grantwarden_core::audit::event::EventKind::TicketRequested {
            *requested.entry(e.subject.as_str()).or_default() += 1;
        }
    }
    let ticket_ids: BTreeSet<&str> = ids.values().flatten().map(String::as_str).collect();
    let unjournaled = ticket_ids.iter().filter(|id| !requested.contains_key(**id)).count();
    let twice = ticket_ids.iter().filter(|id| requested.get(**id).is_some_and(|n| *n > 1)).count();
    if unjournaled > 0 || twice > 0 {
        summary.push(format!(
            "{unjournaled} tickets have no ticket.requested event, {twice} have it more than once ({} events on the chain)",
            journal.len()
        ));
    }
    latencies.sort();
    let wall = started.elapsed();
    let figures = format!(
        "{total} sent ({fresh} ids), {in_flight} in flight, {:.0}/s; statuses {statuses:?}; {throttled} throttled and resent; \
         p50 {} ms, p99 {} ms, max {} ms; {} tickets stored, {} journal events; {left} outbox entries waiting at the end \
         of the load, {}",
        total as f64 / load_wall.as_secs_f64(),
        percentile(&latencies, 0.5).as_millis(),
        percentile(&latencies, 0.99).as_millis(),
        latencies.last().copied().unwrap_or_default().as_millis(),
        per_delivery.len(),
        journal.len(),
        if drained {
            format!("all journaled {} s later", waited.elapsed().as_secs())
        } else {
            format!("not all journaled {} s later", waited.elapsed().as_secs())
        }
    );
    summary.extend(failures);
    Line { name: "webhooks: duplicates, malformed", figures, failures: summary, took: wall }
}

/// The delivery id of every ticket of `target`.
async fn tickets_of(stack: &Stack, target: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut start: Option<HashMap<String, AttributeValue>> = None;
    loop {
        let page = stack
            .clients
            .dynamodb
            .query()
            .table_name(&stack.settings.tickets_table)
            .index_name("by_target")
            .key_condition_expression("target = :t")
            .expression_attribute_values(":t", AttributeValue::S(target.to_owned()))
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("query the tickets");
        for item in page.items() {
            let ticket: grantwarden_core::ticket::Ticket =
                serde_dynamo::from_attribute_value(item["ticket"].clone()).expect("a stored ticket");
            out.push(ticket.request().delivery_id.clone());
        }
        start = page.last_evaluated_key().cloned();
        if start.is_none() {
            return out;
        }
    }
}

async fn drain(stack: &Stack, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    let mut out = Vec::new();
    loop {
        let got = stack
            .clients
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .expect("receive");
        if got.messages().is_empty() {
            return out;
        }
        out.extend(got.messages().iter().cloned());
    }
}

async fn poison(stack: Arc<Stack>) -> Line {
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut figures = Vec::new();
    let queues = [("ChunkQueue", "ChunkDeadLetterQueue"), ("RemediationQueue", "RevokeDeadLetterQueue")];
    for (queue, dead) in queues {
        let (url, dlq) = (stack.queue_url(queue), stack.queue_url(dead));
        let marker = format!("poison-{}", rand::rng().random::<u32>());
        let sent = Instant::now();
        stack
            .clients
            .sqs
            .send_message()
            .queue_url(&url)
            .message_body(format!("{{\"{marker}\": "))
            .send()
            .await
            .unwrap();
        let parked = eventually(&format!("the poison on {queue} dead-lettered"), Duration::from_secs(60), || async {
            let messages = drain(&stack, &dlq).await;
            messages.into_iter().find(|m| {
                let text = format!("{:?} {:?}", m.body(), m.message_attributes());
                text.contains(&marker) || text.contains("not a remediation request") && queue == "RemediationQueue"
            })
        })
        .await;
        let reason = parked
            .message_attributes()
            .and_then(|a| a.get("reason"))
            .and_then(|r| r.string_value().map(str::to_owned))
            .or_else(|| {
                serde_json::from_str::<serde_json::Value>(parked.body().unwrap_or_default())
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_owned))
            });
        match reason {
            Some(r) => figures.push(format!(
                "{queue} -> {dead} in {:.1} s ({})",
                sent.elapsed().as_secs_f64(),
                first_words(&r)
            )),
            None => failures.push(format!("{queue}: dead-lettered without a reason: {:?}", parked.body())),
        }
    }
    // and the queues still flow: a scan after the poison completes
    let db = TestDb::new().await;
    let target = TargetId::new("bench-poison").unwrap();
    let since = Utc::now();
    stack.register(&target, &db, "", &baseline(&db)).await;
    match tokio::time::timeout(
        Duration::from_secs(180),
        eventually("a scan behind the poison", Duration::from_secs(180), || stack.report_since(&target, since)),
    )
    .await
    {
        Ok(r) if r.summary.complete => {
            figures.push(format!("a scan behind them complete in {:.0} s", since_secs(since)))
        }
        Ok(r) => failures.push(format!("the scan behind the poison is incomplete: {:?}", r.summary.failed_chunks)),
        Err(_) => failures.push("no scan completed behind the poison".into()),
    }
    Line { name: "a poison message on each queue", figures: figures.join("; "), failures, took: started.elapsed() }
}

fn since_secs(t: chrono::DateTime<Utc>) -> f64 {
    (Utc::now() - t).num_milliseconds() as f64 / 1000.0
}

fn first_words(s: &str) -> String {
    s.chars().take(70).collect()
}

async fn scan_with_postgres_stopped(stack: Arc<Stack>, cluster: &OwnCluster) -> Line {
    let started = Instant::now();
    let mut failures = Vec::new();
    let db = cluster.database().await;
    // enough schemas for many chunks, so the server stops in the middle of the scan
    let mut sql = String::new();
    for s in 0..60 {
        sql.push_str(&format!("CREATE SCHEMA s{s};"));
        for t in 0..20 {
            sql.push_str(&format!("CREATE TABLE s{s}.t{t} (id int);"));
        }
    }
    db.exec(&sql).await;
    let target = TargetId::new("bench-pgdown").unwrap();
    let since = Utc::now();
    let dlq = stack.queue_url("ChunkDeadLetterQueue");
    drain(&stack, &dlq).await;
    stack.register(&target, &db, "", &baseline(&db)).await;
    // the scan record appears when fanout dispatched it; stop at the first chunk done
    let store = DynamoStore::new(&stack.clients, &stack.settings);
    let candidates = scans_of(&stack, &target);
    let deadline = Instant::now() + Duration::from_secs(150);
    let scan = loop {
        let mut found = None;
        for id in &candidates {
            if let Ok(Some(r)) = grantwarden_core::pipeline::ScanLedger::scan(&store, id).await
                && r.chunks_done > 0
            {
                found = Some(r);
            }
        }
        if let Some(r) = found {
            break r;
        }
        assert!(Instant::now() < deadline, "no scan of {target} began within 150 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    cluster.stop();
    let stopped = Instant::now();
    let report = tokio::time::timeout(
        Duration::from_secs(240),
        eventually("the report of the broken scan", Duration::from_secs(240), || stack.report_since(&target, since)),
    )
    .await;
    let mut figures = format!("stopped with {} of {} chunks read", scan.chunks_done, scan.chunks_total);
    if scan.chunks_done >= scan.chunks_total {
        failures.push("the scan ended before the server stopped: nothing was stopped in the middle".into());
    }
    match report {
        Ok(r) => {
            if r.summary.complete || r.summary.status == Status::Ok {
                failures.push(format!("the report says complete={} status={:?}", r.summary.complete, r.summary.status));
            }
            figures.push_str(&format!(
                "; report {:?}, complete={}, {} chunks failed, {} findings, {:.0} s after the stop",
                r.summary.status,
                r.summary.complete,
                r.summary.failed_chunks.len(),
                r.findings.len(),
                stopped.elapsed().as_secs_f64()
            ));
            if r.summary.status != Status::Incomplete {
                failures.push(format!("status {:?}, not incomplete", r.summary.status));
            }
        }
        Err(_) => failures.push("no report of the broken scan".into()),
    }
    let parked = drain(&stack, &dlq).await;
    let with_reason =
        parked.iter().filter(|m| m.message_attributes().is_some_and(|a| a.contains_key("reason"))).count();
    figures.push_str(&format!("; {} chunks dead-lettered ({with_reason} with a reason)", parked.len()));
    if parked.is_empty() || with_reason != parked.len() {
        failures.push(format!("{} dead-lettered, {with_reason} with a reason", parked.len()));
    }
    cluster.restart();
    let back = Utc::now();
    match tokio::time::timeout(
        Duration::from_secs(180),
        eventually("a complete scan after the restart", Duration::from_secs(180), || async {
            let r = stack.report_since(&target, back).await?;
            Some(r)
        }),
    )
    .await
    {
        Ok(r) if r.summary.complete => figures.push_str(&format!("; next scan complete, {:?}", r.summary.status)),
        Ok(r) => failures.push(format!("the scan after the restart is incomplete: {:?}", r.summary.failed_chunks)),
        Err(_) => failures.push("no scan after the restart".into()),
    }
    Line { name: "PostgreSQL stopped mid-scan", figures, failures, took: started.elapsed() }
}

/// The ids of `target`'s scans in the windows from now to three windows on.
fn scans_of(stack: &Stack, target: &TargetId) -> Vec<String> {
    let seconds = stack.settings.scan_window_seconds;
    (0..4)
        .map(|n| {
            let at = Utc::now() + chrono::Duration::seconds(i64::from(seconds) * n);
            grantwarden_core::snapshot::scan_id(
                target,
                &grantwarden_core::snapshot::ScanWindow::containing(at, seconds),
            )
        })
        .collect()
}

async fn expiry_with_postgres_down(stack: Arc<Stack>, cluster: &OwnCluster) -> Line {
    let started = Instant::now();
    let mut failures = Vec::new();
    let db = cluster.database().await;
    let role = db.role("carol_tmp");
    db.exec(&format!(
        "CREATE ROLE {r}; CREATE SCHEMA billing; GRANT USAGE ON SCHEMA billing TO {r};",
        r = db.ident("carol_tmp")
    ))
    .await;
    let target = TargetId::new("bench-expiry").unwrap();
    stack.register(&target, &db, "", &baseline(&db)).await;
    let key = stack.webhook_key().await;
    let expires = Utc::now() + chrono::Duration::seconds(25);
    let mut body = webhook(&db.prefix, target.as_str(), 0, expires);
    body["role"] = role.clone().into();
    body["expires_at"] = expires.to_rfc3339().into();
    let created = stack.post_signed_at(&key, "/webhooks/grants", &body, 0).await;
    let Some(id) = created.json()["id"].as_str().map(str::to_owned) else {
        return Line {
            name: "PostgreSQL down at a ticket's expiry",
            figures: String::new(),
            failures: vec![format!("the webhook was answered {}", created.status)],
            took: started.elapsed(),
        };
    };
    cluster.stop();
    let store = DynamoStore::new(&stack.clients, &stack.settings);
    // past the expiry, the schedule and at least one sweep: still due, never given up
    tokio::time::sleep(Duration::from_secs(90)).await;
    let held = store.ticket(&id).await.unwrap().unwrap().value;
    let mut figures =
        format!("expired with the server down for {:.0} s: ticket {}", since_secs(expires), held.status());
    if !matches!(held.status(), TicketStatus::Active | TicketStatus::Expired) {
        failures.push(format!("while the server was down the ticket became {}", held.status()));
    }
    cluster.restart();
    let back = Instant::now();
    match tokio::time::timeout(
        Duration::from_secs(150),
        eventually("revoked after the server returned", Duration::from_secs(150), || async {
            let t = store.ticket(&id).await.ok()??.value;
            (t.status() == TicketStatus::Revoked).then_some(t)
        }),
    )
    .await
    {
        Ok(t) => {
            let r = t.revocation().expect("a revocation");
            figures.push_str(&format!(
                "; revoked {:.0} s after the restart by {} ({} attempts)",
                back.elapsed().as_secs_f64(),
                r.trigger,
                r.attempts
            ));
            let c = db.client().await;
            let still: bool = c
                .query_one("SELECT pg_catalog.has_schema_privilege($1::text, 'billing', 'USAGE')", &[&role])
                .await
                .unwrap()
                .get(0);
            if still {
                failures.push("the grant is still there".into());
            }
        }
        Err(_) => failures.push("not revoked after the server returned".into()),
    }
    Line { name: "PostgreSQL down at a ticket's expiry", figures, failures, took: started.elapsed() }
}

#[tokio::main]
async fn main() {
    let stack = Arc::new(Stack::listing(TARGETS).await);
    let cluster = OwnCluster::start("grantwarden-bench-faults", 55441);
    // BENCH_LINES=webhooks,poison,scan,expiry (default: all)
    let only = std::env::var("BENCH_LINES").unwrap_or_default();
    let run = |name: &str| only.is_empty() || only.split(',').any(|l| l.trim() == name);
    let mut lines = Vec::new();
    // each line printed as it ends as well, so a later line that cannot go on loses none
    let done = |lines: &mut Vec<Line>, line: Line| {
        eprintln!(
            "bench-faults: {}: {} ({})",
            line.name,
            if line.failures.is_empty() { "ok" } else { "FAIL" },
            line.figures
        );
        lines.push(line);
    };
    if run("webhooks") {
        done(&mut lines, webhooks(Arc::clone(&stack)).await);
    }
    if run("poison") {
        done(&mut lines, poison(Arc::clone(&stack)).await);
    }
    if run("scan") {
        done(&mut lines, scan_with_postgres_stopped(Arc::clone(&stack), &cluster).await);
    }
    if run("expiry") {
        done(&mut lines, expiry_with_postgres_down(Arc::clone(&stack), &cluster).await);
    }

    println!("\nload and fault suite against the stack on {}\n", stack.endpoint);
    println!("{:<34} {:>6} {:>7}  figures", "line", "result", "time");
    let mut failed = false;
    for l in &lines {
        let ok = l.failures.is_empty();
        failed |= !ok;
        println!("{:<34} {:>6} {:>6.0}s  {}", l.name, if ok { "ok" } else { "FAIL" }, l.took.as_secs_f64(), l.figures);
        for f in &l.failures {
            println!("{:<34}        - {f}", "");
        }
    }
    if failed {
        std::process::exit(1);
    }
}
