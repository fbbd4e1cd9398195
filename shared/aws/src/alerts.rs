//! Alerts on SNS: reports (drift past a threshold, an incomplete scan), break-glass
//! credentials, and the audit digest's tamper signal.

use grantwarden_core::audit::Disagreement;
use grantwarden_core::report::Report;

use crate::AwsError;

/// The alert topic.
#[derive(Clone, Debug)]
pub struct Alerts {
    client: aws_sdk_sns::Client,
    topic_arn: String,
}

impl Alerts {
    /// Publishes to `topic_arn`.
    pub fn new(client: &aws_sdk_sns::Client, topic_arn: &str) -> Self {
        Self { client: client.clone(), topic_arn: topic_arn.to_owned() }
    }

    /// Publishes a high-priority alert about one ticket (a break-glass credential
    /// issued): the subject says what, the message carries the details as JSON.
    pub async fn ticket(&self, subject: &str, detail: &serde_json::Value) -> Result<(), AwsError> {
        self.high_priority(subject, detail).await
    }

    /// Publishes a high-priority tamper signal: the audit journal and its
    /// archive disagree, so the hourly digest refused to sign the chain.
    pub async fn digest_refused(&self, refusal: &Disagreement) -> Result<(), AwsError> {
        let subject = format!("grantwarden: TAMPER? audit chain {} disagrees with its archive", refusal.chain);
        let mut detail = serde_json::to_value(refusal).expect("a disagreement always serializes");
        detail["message"] = serde_json::Value::String(refusal.to_string());
        self.high_priority(&subject, &detail).await
    }

    async fn high_priority(&self, subject: &str, detail: &serde_json::Value) -> Result<(), AwsError> {
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(subject.chars().take(100).collect::<String>())
            .message(detail.to_string())
            .message_attributes(
                "priority",
                aws_sdk_sns::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("high")
                    .build()
                    .map_err(|e| AwsError::Decode { what: "SNS message attribute".into(), reason: e.to_string() })?,
            )
            .send()
            .await
            .map_err(|e| AwsError::sdk(format!("Publish {}", self.topic_arn), e))?;
        Ok(())
    }

    /// Publishes the alert of an incomplete scan: which chunks failed and what
    /// the report could not judge, and where the partial report is. It carries
    /// no finding: what a partial scan saw is in the report, and is not alerted on.
    pub async fn incomplete_scan(&self, report: &Report, report_uri: &str) -> Result<(), AwsError> {
        let s = &report.summary;
        let subject =
            format!("grantwarden: scan of {} is incomplete ({} chunk(s) failed)", report.target, s.failed_chunks.len());
        let message = serde_json::json!({
            "target": report.target,
            "scan_id": report.scan_id,
            "status": s.status,
            "failed_chunks": s.failed_chunks,
            "not_judged": s.not_judged,
            "declarations_not_judged": s.declarations_not_judged,
            "report": report_uri,
        });
        self.publish(&subject, &message).await
    }

    async fn publish(&self, subject: &str, message: &serde_json::Value) -> Result<(), AwsError> {
        self.client
            .publish()
            .topic_arn(&self.topic_arn)
            // SNS subjects: at most 100 characters
            .subject(subject.chars().take(100).collect::<String>())
            .message(message.to_string())
            .send()
            .await
            .map_err(|e| AwsError::sdk(format!("Publish {}", self.topic_arn), e))?;
        Ok(())
    }

    /// Publishes a report's alert: a one-line subject and the summary with the
    /// worst findings as JSON, and where the full report is.
    pub async fn report(&self, report: &Report, report_uri: &str) -> Result<(), AwsError> {
        let s = &report.summary;
        let subject = format!("grantwarden: {} is {} (score {:.1})", report.target, s.status, s.score);
        let mut worst: Vec<_> = report.findings.iter().filter(|f| f.score > 0.0).collect();
        worst.sort_by(|a, b| b.score.total_cmp(&a.score));
        worst.truncate(10);
        let message = serde_json::json!({
            "target": report.target,
            "scan_id": report.scan_id,
            "status": s.status,
            "summary": s,
            "top_findings": worst,
            "report": report_uri,
        });
        self.publish(&subject, &message).await
    }
}

/// Governance alerts go out as high-priority alerts, like a break-glass credential.
impl grantwarden_core::raise_alerts::AlertPublisher for Alerts {
    type Error = AwsError;

    async fn publish(&self, subject: &str, detail: &serde_json::Value) -> Result<(), AwsError> {
        self.ticket(subject, detail).await
    }
}
