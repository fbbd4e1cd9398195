//! moto, the AWS API emulator, shared by every test of a run.
//!
//! scripts/test starts one server and exports its URL as
//! `GRANTWARDEN_TEST_AWS_ENDPOINT`. Without it (a bare `cargo test`), the
//! first test that asks runs `scripts/moto` to start one on port 5055, which
//! later tests and processes reuse. Tests isolate themselves by naming their
//! resources with [`unique_prefix`], not by starting servers.

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rand::Rng;

const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:5055";

fn answers(endpoint: &str) -> bool {
    let addr = endpoint.trim_start_matches("http://").trim_end_matches('/');
    addr.parse().is_ok_and(|a| TcpStream::connect_timeout(&a, Duration::from_millis(500)).is_ok())
}

/// The moto endpoint, started when none answers.
pub fn endpoint() -> String {
    let endpoint = std::env::var("GRANTWARDEN_TEST_AWS_ENDPOINT").unwrap_or_else(|_| DEFAULT_ENDPOINT.to_owned());
    if answers(&endpoint) {
        return endpoint;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/moto");
    let port = endpoint.rsplit(':').next().unwrap_or("5055").trim_end_matches('/').to_owned();
    let out = Command::new(&script).arg(&port).output().unwrap_or_else(|e| panic!("running {}: {e}", script.display()));
    assert!(
        out.status.success() && answers(&endpoint),
        "no moto at {endpoint} and {} could not start one: {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    endpoint
}

/// Sets secret `id` to `value`, creating it when it does not exist yet.
pub async fn put_secret(secrets: &aws_sdk_secretsmanager::Client, id: &str, value: &str) {
    if secrets.create_secret().name(id).secret_string(value).send().await.is_err() {
        secrets.put_secret_value().secret_id(id).secret_string(value).send().await.expect("the secret is written");
    }
}

/// A lowercase name prefix no other test uses (valid for tables, buckets, queues).
pub fn unique_prefix(test: &str) -> String {
    let n: u32 = rand::rng().random();
    let test: String =
        test.chars().filter(|c| c.is_ascii_alphanumeric()).take(20).collect::<String>().to_ascii_lowercase();
    format!("gw-{test}-{n:08x}")
}

/// Everything a table's stream holds so far, read through the DynamoDB
/// Streams API of moto, as the event Lambda would receive. `dynamodb` is the
/// caller's client of the same endpoint (it finds the stream).
pub async fn table_stream(dynamodb: &aws_sdk_dynamodb::Client, table: &str) -> aws_lambda_events::dynamodb::Event {
    use std::collections::HashMap;

    use aws_sdk_dynamodbstreams::config::{BehaviorVersion, Credentials, Region};
    let config = aws_sdk_dynamodbstreams::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("t", "t", None, None, "test"))
        .build();
    let streams = aws_sdk_dynamodbstreams::Client::from_conf(config);
    let described = dynamodb.describe_table().table_name(table).send().await.expect("the table exists");
    let arn = described.table.and_then(|t| t.latest_stream_arn).expect("the table has a stream");
    let stream = streams.describe_stream().stream_arn(&arn).send().await.expect("the stream").stream_description;
    let mut records = Vec::new();
    for shard in stream.and_then(|s| s.shards).unwrap_or_default() {
        let iterator = streams
            .get_shard_iterator()
            .stream_arn(&arn)
            .set_shard_id(shard.shard_id)
            .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("a shard iterator")
            .shard_iterator;
        // a shard's records come a page at a time, until a page is empty
        let mut iterator = iterator;
        let mut page = Vec::new();
        while let Some(it) = iterator.take() {
            let out = streams.get_records().shard_iterator(it).send().await.expect("the records");
            let got = out.records.unwrap_or_default();
            if got.is_empty() {
                break;
            }
            page.extend(got);
            iterator = out.next_shard_iterator;
        }
        for r in page {
            let change = r.dynamodb.expect("a change");
            let image = |i: Option<HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>>| {
                serde_json::to_value(serde_dynamo::Item::from(i.unwrap_or_default())).expect("an image")
            };
            records.push(serde_json::json!({
                "eventID": r.event_id, "eventName": r.event_name.expect("a name").as_str(), "eventVersion": r.event_version,
                "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": change.approximate_creation_date_time.map(|t| t.secs()).unwrap_or(0),
                    "Keys": image(change.keys), "NewImage": image(change.new_image), "OldImage": image(change.old_image),
                    "SequenceNumber": change.sequence_number, "SizeBytes": change.size_bytes.unwrap_or(0),
                    "StreamViewType": "NEW_AND_OLD_IMAGES",
                },
                "eventSourceARN": arn,
            }));
        }
    }
    serde_json::from_value(serde_json::json!({ "Records": records })).expect("a stream event")
}

/// An SQS queue `<name>` subscribed to the SNS topic `topic`, as an operator's
/// inbox of alerts: what the code under test publishes can be read back from
/// it. Returns the queue's URL.
pub async fn alert_inbox(sqs: &aws_sdk_sqs::Client, sns: &aws_sdk_sns::Client, topic: &str, name: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName;
    let inbox = sqs.create_queue().queue_name(name).send().await.expect("the inbox queue is created");
    let inbox = inbox.queue_url.expect("a queue URL");
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&inbox)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("the inbox's attributes");
    let arn = attributes.attributes.expect("attributes")[&QueueAttributeName::QueueArn].clone();
    sns.subscribe().topic_arn(topic).protocol("sqs").endpoint(&arn).send().await.expect("subscribed to the topic");
    inbox
}

/// Takes up to `expected` messages off the queue at `url` (moto hands them out
/// ten at a time), as the SQS event Lambda would receive: body, receipt,
/// system attributes (`ApproximateReceiveCount`) and the `reason` attribute of
/// a dead letter.
pub async fn drain(sqs: &aws_sdk_sqs::Client, url: &str, expected: usize) -> aws_lambda_events::sqs::SqsEvent {
    use std::collections::HashMap;

    use aws_sdk_sqs::types::MessageSystemAttributeName;
    let mut records = Vec::new();
    // an empty receive ends it early; the bound only stops a queue that never runs dry
    for _ in 0..expected / 10 + 20 {
        if records.len() >= expected {
            break;
        }
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .expect("moto answers ReceiveMessage");
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            let attributes: HashMap<String, String> =
                m.attributes.unwrap_or_default().into_iter().map(|(k, v)| (k.as_str().to_owned(), v)).collect();
            let reason = m
                .message_attributes
                .unwrap_or_default()
                .get("reason")
                .and_then(|a| a.string_value.clone())
                .map(|r| serde_json::json!({ "reason": { "stringValue": r, "dataType": "String" } }))
                .unwrap_or_else(|| serde_json::json!({}));
            records.push(serde_json::json!({
                "messageId": m.message_id, "receiptHandle": m.receipt_handle, "body": m.body,
                "attributes": attributes, "messageAttributes": reason, "md5OfBody": m.md5_of_body,
                "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:queue",
                "awsRegion": "us-east-1",
            }));
        }
    }
    serde_json::from_value(serde_json::json!({ "Records": records })).expect("an SQS event")
}
