//! Creates the resources grantwarden uses, under a name prefix: for tests
//! against moto and for trying the functions locally. Production stacks are
//! created by infra/template.yaml; the key schemas here must match it.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::tickets::{ACTIVE_INDEX, BY_TARGET_INDEX, OUTBOX_INDEX};
use crate::{AwsError, Clients, Settings};

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder().attribute_name(name).key_type(kind).build().expect("name and type are set")
}

fn attr(name: &str, kind: ScalarAttributeType) -> AttributeDefinition {
    AttributeDefinition::builder().attribute_name(name).attribute_type(kind).build().expect("name and type are set")
}

fn index(name: &str, hash: &str, range: &str) -> GlobalSecondaryIndex {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(hash, KeyType::Hash))
        .key_schema(key(range, KeyType::Range))
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .expect("name, keys and projection are set")
}

/// One table with a NEW_AND_OLD_IMAGES stream.
async fn table(
    clients: &Clients,
    name: &str,
    keys: &[(&str, ScalarAttributeType, KeyType)],
    extra_attrs: &[(&str, ScalarAttributeType)],
    indexes: Vec<GlobalSecondaryIndex>,
) -> Result<(), AwsError> {
    let mut create =
        clients.dynamodb.create_table().table_name(name).billing_mode(BillingMode::PayPerRequest).stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .expect("enabled is set"),
        );
    for (n, t, k) in keys {
        create = create.key_schema(key(n, k.clone())).attribute_definitions(attr(n, t.clone()));
    }
    for (n, t) in extra_attrs {
        create = create.attribute_definitions(attr(n, t.clone()));
    }
    if !indexes.is_empty() {
        create = create.set_global_secondary_indexes(Some(indexes));
    }
    create.send().await.map_err(|e| AwsError::sdk(format!("CreateTable {name}"), e))?;
    Ok(())
}

/// Turns on the TTL of `table` on `attribute` (epoch seconds).
async fn enable_ttl(clients: &Clients, table: &str, attribute: &str) -> Result<(), AwsError> {
    clients
        .dynamodb
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(attribute)
                .enabled(true)
                .build()
                .expect("name and flag are set"),
        )
        .send()
        .await
        .map_err(|e| AwsError::sdk(format!("UpdateTimeToLive {table}"), e))?;
    Ok(())
}

/// The ARN of the queue at `url` (a redrive policy names its dead-letter queue by ARN).
async fn queue_arn(clients: &Clients, url: &str) -> Result<String, AwsError> {
    Ok(clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| AwsError::sdk(format!("GetQueueAttributes {url}"), e))?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .unwrap_or_default())
}

/// Creates tables, buckets (the audit one with Object Lock), queues and topic named `<prefix>-*` and returns the
/// settings that point at them. Secrets are created by the caller.
pub async fn create(clients: &Clients, prefix: &str) -> Result<Settings, AwsError> {
    use KeyType::{Hash, Range};
    use ScalarAttributeType::{N, S};
    let s = Settings {
        tickets_table: format!("{prefix}-tickets"),
        findings_table: format!("{prefix}-findings"),
        journal_table: format!("{prefix}-journal"),
        scans_table: format!("{prefix}-scans"),
        bucket: format!("{prefix}-bucket"),
        audit_bucket: format!("{prefix}-audit"),
        secret_prefix: format!("{prefix}/targets/"),
        webhook_secret_id: format!("{prefix}/webhook-hmac"),
        audit_signing_secret_id: format!("{prefix}/audit-signing-key"),
        leases_table: format!("{prefix}-leases"),
        incidents_table: format!("{prefix}-incidents"),
        replay_table: format!("{prefix}-replay"),
        schedule_group: format!("{prefix}-revoke"),
        revoker_secret_prefix: format!("{prefix}/revoker/"),
        access_secret_prefix: format!("{prefix}/access/"),
        revoke_function_arn: Some(format!("arn:aws:lambda:us-east-1:123456789012:function:{prefix}-revoke")),
        scheduler_role_arn: Some(format!("arn:aws:iam::123456789012:role/{prefix}-scheduler")),
        ..Settings::default()
    };
    table(
        clients,
        &s.tickets_table,
        &[("id", S, Hash)],
        &[("target", S), ("active_target", S), ("outbox_target", S), ("expires_at", S)],
        vec![
            index(BY_TARGET_INDEX, "target", "expires_at"),
            index(ACTIVE_INDEX, "active_target", "expires_at"),
            index(OUTBOX_INDEX, "outbox_target", "expires_at"),
        ],
    )
    .await?;
    table(clients, &s.findings_table, &[("target", S, Hash), ("key", S, Range)], &[], vec![]).await?;
    table(clients, &s.journal_table, &[("chain", S, Hash), ("seq", N, Range)], &[], vec![]).await?;
    table(clients, &s.scans_table, &[("scan_id", S, Hash)], &[], vec![]).await?;
    enable_ttl(clients, &s.scans_table, crate::scans::EXPIRE_AT).await?;
    table(clients, &s.leases_table, &[("ticket_id", S, Hash)], &[], vec![]).await?;
    table(clients, &s.incidents_table, &[("id", S, Hash)], &[], vec![]).await?;
    // no stream: nothing reads the replay table's changes
    clients
        .dynamodb
        .create_table()
        .table_name(&s.replay_table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(crate::replay::KEY, Hash))
        .attribute_definitions(attr(crate::replay::KEY, S))
        .send()
        .await
        .map_err(|e| AwsError::sdk(format!("CreateTable {}", s.replay_table), e))?;
    enable_ttl(clients, &s.replay_table, crate::replay::TTL_ATTRIBUTE).await?;
    enable_ttl(clients, &s.leases_table, crate::leases::TTL_ATTRIBUTE).await?;
    clients
        .scheduler
        .create_schedule_group()
        .name(&s.schedule_group)
        .send()
        .await
        .map_err(|e| AwsError::sdk("CreateScheduleGroup", e))?;
    clients.s3.create_bucket().bucket(&s.bucket).send().await.map_err(|e| AwsError::sdk("CreateBucket", e))?;
    // Object Lock can only be enabled when a bucket is created; the default
    // retention is the template's, each archived event also carries its own
    clients
        .s3
        .create_bucket()
        .bucket(&s.audit_bucket)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .map_err(|e| AwsError::sdk("CreateBucket audit", e))?;

    let dlq = clients
        .sqs
        .create_queue()
        .queue_name(format!("{prefix}-chunks-dlq"))
        .send()
        .await
        .map_err(|e| AwsError::sdk("CreateQueue dlq", e))?
        .queue_url
        .unwrap_or_default();
    let dlq_arn = queue_arn(clients, &dlq).await?;
    let redrive = serde_json::json!({ "deadLetterTargetArn": dlq_arn, "maxReceiveCount": s.chunk_max_receives + 1 });
    let queue = clients
        .sqs
        .create_queue()
        .queue_name(format!("{prefix}-chunks"))
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .attributes(QueueAttributeName::VisibilityTimeout, "30")
        .send()
        .await
        .map_err(|e| AwsError::sdk("CreateQueue chunks", e))?
        .queue_url
        .unwrap_or_default();
    let topic = clients
        .sns
        .create_topic()
        .name(format!("{prefix}-alerts"))
        .send()
        .await
        .map_err(|e| AwsError::sdk("CreateTopic", e))?
        .topic_arn
        .unwrap_or_default();
    let revoke_dlq = clients
        .sqs
        .create_queue()
        .queue_name(format!("{prefix}-revoke-dlq"))
        .send()
        .await
        .map_err(|e| AwsError::sdk("CreateQueue revoke dlq", e))?
        .queue_url
        .unwrap_or_default();
    let revoke_dlq_arn = queue_arn(clients, &revoke_dlq).await?;
    let redrive = serde_json::json!({ "deadLetterTargetArn": revoke_dlq_arn, "maxReceiveCount": 5 });
    let remediation = clients
        .sqs
        .create_queue()
        .queue_name(format!("{prefix}-remediation"))
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .map_err(|e| AwsError::sdk("CreateQueue remediation", e))?
        .queue_url
        .unwrap_or_default();
    let notice_dlq = clients
        .sqs
        .create_queue()
        .queue_name(format!("{prefix}-notices-dlq"))
        .send()
        .await
        .map_err(|e| AwsError::sdk("CreateQueue notices dlq", e))?
        .queue_url
        .unwrap_or_default();
    let notice_dlq_arn = queue_arn(clients, &notice_dlq).await?;
    // a backstop past the notify function's own 12 attempts (a crash each time)
    let redrive = serde_json::json!({ "deadLetterTargetArn": notice_dlq_arn, "maxReceiveCount": 20 });
    let notices = clients
        .sqs
        .create_queue()
        .queue_name(format!("{prefix}-notices"))
        .attributes(QueueAttributeName::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .map_err(|e| AwsError::sdk("CreateQueue notices", e))?
        .queue_url
        .unwrap_or_default();
    Ok(Settings {
        notice_queue_url: Some(notices),
        notice_dlq_url: Some(notice_dlq),
        remediation_queue_url: Some(remediation),
        chunk_queue_url: Some(queue),
        chunk_dlq_url: Some(dlq),
        alert_topic_arn: Some(topic),
        revoke_dlq_url: Some(revoke_dlq),
        ..s
    })
}
