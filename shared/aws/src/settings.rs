//! Resource names and locations, read from the environment once at cold start.
//!
//! Names default to what infra/template.yaml creates (`grantwarden-*`), so a
//! function only needs the variables for resources without a fixed name
//! (queue URLs, topic ARN). Each function checks at cold start that what it
//! uses is set (`require`), so a misconfiguration fails before the first event.

use grantwarden_core::snapshot::TargetId;

use crate::archive::Retention;

/// Resource names and locations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Tickets table (`GRANTWARDEN_TICKETS_TABLE`).
    pub tickets_table: String,
    /// Findings table (`GRANTWARDEN_FINDINGS_TABLE`).
    pub findings_table: String,
    /// Audit journal table (`GRANTWARDEN_JOURNAL_TABLE`).
    pub journal_table: String,
    /// Scan records table (`GRANTWARDEN_SCANS_TABLE`).
    pub scans_table: String,
    /// Incident states from the incident webhook (`GRANTWARDEN_INCIDENTS_TABLE`).
    pub incidents_table: String,
    /// Lease items whose DynamoDB TTL is a ticket's expiry (`GRANTWARDEN_LEASES_TABLE`).
    pub leases_table: String,
    /// Scheduler group of the one-time revoke schedules (`GRANTWARDEN_SCHEDULE_GROUP`).
    pub schedule_group: String,
    /// The revoke function, target of those schedules (`GRANTWARDEN_REVOKE_FUNCTION_ARN`).
    pub revoke_function_arn: Option<String>,
    /// The role EventBridge Scheduler assumes to invoke it (`GRANTWARDEN_SCHEDULER_ROLE_ARN`).
    pub scheduler_role_arn: Option<String>,
    /// Dead-letter queue of revocations that cannot succeed (`GRANTWARDEN_REVOKE_DLQ_URL`).
    pub revoke_dlq_url: Option<String>,
    /// Drift remediation the diff plans after each complete scan (`GRANTWARDEN_REMEDIATION_MODE`:
    /// `report`, the default, plans nothing; `revoke-unauthorized`; `converge`).
    pub remediation_mode: grantwarden_core::remediate::Mode,
    /// Queue the diff hands remediation to and revoke runs it from (`GRANTWARDEN_REMEDIATION_QUEUE_URL`).
    pub remediation_queue_url: Option<String>,
    /// The revoke function plans and journals revocations and remediation but runs
    /// nothing against a database (`GRANTWARDEN_REVOKE_DRY_RUN`: `true` or `false`, the default).
    pub revoke_dry_run: bool,
    /// The revoke function runs the remediation it receives (`GRANTWARDEN_REMEDIATION_EXECUTE`:
    /// `true`, or `false`, the default: it plans and journals `remediation.planned` only,
    /// as `grantwarden apply` without `--execute`).
    pub remediation_execute: bool,
    /// Ticket writes leave their journal events to the tickets stream's consumer
    /// (the revoke function), one appender per shard, instead of appending them
    /// in the request (`GRANTWARDEN_JOURNAL_FROM_STREAM`: `true`, as the template
    /// sets it, or `false`, the default, for a store without that consumer).
    pub journal_from_stream: bool,
    /// Prefix of the secrets a just-in-time credential is delivered in; a ticket's is
    /// `<prefix><ticket id>` (`GRANTWARDEN_ACCESS_SECRET_PREFIX`), deleted at revocation.
    pub access_secret_prefix: String,
    /// Prefix of the secrets of the role that revokes; a target's is `<prefix><target>`
    /// (`GRANTWARDEN_REVOKER_SECRET_PREFIX`), never the reader's.
    pub revoker_secret_prefix: String,
    /// Bucket of snapshots, reports and configuration (`GRANTWARDEN_BUCKET`).
    pub bucket: String,
    /// Object-Lock bucket archiving the audit journal (`GRANTWARDEN_AUDIT_BUCKET`).
    pub audit_bucket: String,
    /// Lock of each archived event (`GRANTWARDEN_AUDIT_RETENTION_MODE`: COMPLIANCE or
    /// GOVERNANCE; `GRANTWARDEN_AUDIT_RETENTION_DAYS`).
    pub audit_retention: Retention,
    /// Chunk queue URL (`GRANTWARDEN_CHUNK_QUEUE_URL`).
    pub chunk_queue_url: Option<String>,
    /// Dead-letter queue of chunks that failed for good (`GRANTWARDEN_CHUNK_DLQ_URL`).
    pub chunk_dlq_url: Option<String>,
    /// SNS topic for alerts (`GRANTWARDEN_ALERT_TOPIC_ARN`).
    pub alert_topic_arn: Option<String>,
    /// Prefix of target secrets; a target's secret is `<prefix><target>` (`GRANTWARDEN_SECRET_PREFIX`).
    pub secret_prefix: String,
    /// Secret holding the webhook HMAC key (`GRANTWARDEN_WEBHOOK_SECRET_ID`).
    pub webhook_secret_id: String,
    /// Intake also accepts legacy `v1=` signatures (body only), on the routes whose
    /// body names its own target, for a transition (`GRANTWARDEN_WEBHOOK_LEGACY_V1`:
    /// `true`, or `false`, the default).
    pub webhook_legacy_v1: bool,
    /// Signed requests already accepted, each once (`GRANTWARDEN_REPLAY_TABLE`).
    pub replay_table: String,
    /// Secret holding the PagerDuty v3 webhook subscription's signing secret
    /// (`GRANTWARDEN_PAGERDUTY_SECRET_ID`); unset: PagerDuty webhooks are refused.
    pub pagerduty_secret_id: Option<String>,
    /// Secret holding the token Opsgenie's outgoing webhook sends in
    /// `X-Grantwarden-Opsgenie-Token` (`GRANTWARDEN_OPSGENIE_SECRET_ID`); unset:
    /// Opsgenie webhooks are refused.
    pub opsgenie_secret_id: Option<String>,
    /// The OpenID Connect issuer whose tokens name people (`GRANTWARDEN_OIDC_ISSUER`);
    /// unset: no bearer token is accepted.
    pub oidc_issuer: Option<String>,
    /// The client id tokens must be for (`GRANTWARDEN_OIDC_CLIENT_ID`; required with the issuer).
    pub oidc_client_id: Option<String>,
    /// The claim that is a person's identity (`GRANTWARDEN_OIDC_IDENTITY_CLAIM`, default `email`).
    pub oidc_identity_claim: String,
    /// The claim listing a person's groups (`GRANTWARDEN_OIDC_GROUPS_CLAIM`, default `groups`).
    pub oidc_groups_claim: String,
    /// Secret holding the OIDC client secret of a confidential client
    /// (`GRANTWARDEN_OIDC_CLIENT_SECRET_ID`); unset: a public client (PKCE).
    pub oidc_client_secret_id: Option<String>,
    /// Secret holding the portal's session cookie key, 64 characters or more
    /// (`GRANTWARDEN_PORTAL_COOKIE_SECRET_ID`).
    pub portal_cookie_secret_id: String,
    /// The portal's URL (`GRANTWARDEN_PORTAL_URL`); unset: `https://<Host>` of each request.
    pub portal_url: Option<String>,
    /// Secret holding the Slack app's bot token (`GRANTWARDEN_SLACK_BOT_TOKEN_SECRET_ID`);
    /// unset: nothing is posted to Slack.
    pub slack_bot_token_secret_id: Option<String>,
    /// Secret holding the Slack app's signing secret (`GRANTWARDEN_SLACK_SIGNING_SECRET_ID`);
    /// unset: the portal does not take Slack's buttons.
    pub slack_signing_secret_id: Option<String>,
    /// Slack's Web API (`GRANTWARDEN_SLACK_API_URL`, default `https://slack.com/api`).
    pub slack_api_url: String,
    /// The queue of chat notices (`GRANTWARDEN_NOTICE_QUEUE_URL`).
    pub notice_queue_url: Option<String>,
    /// Where notices that cannot be delivered are kept, with their reason (`GRANTWARDEN_NOTICE_DLQ_URL`).
    pub notice_dlq_url: Option<String>,
    /// Secret holding the Ed25519 key that signs audit digests
    /// (`GRANTWARDEN_AUDIT_SIGNING_SECRET_ID`): a PKCS#8 PEM key, or a
    /// generated string whose sha256 is the seed.
    pub audit_signing_secret_id: String,
    /// Targets, comma-separated (`GRANTWARDEN_TARGETS`); empty with `targets_key` set.
    pub targets: Vec<TargetId>,
    /// Object listing the targets, one per line or a JSON array (`GRANTWARDEN_TARGETS_KEY`).
    pub targets_key: Option<String>,
    /// Baseline object; `{target}` is replaced by the target id (`GRANTWARDEN_BASELINE_KEY`).
    pub baseline_key: String,
    /// Prefix of the policy registry's YAML objects (`GRANTWARDEN_POLICY_PREFIX`).
    pub policy_prefix: String,
    /// Scoring config object; absent object means the standard weights (`GRANTWARDEN_SCORING_KEY`).
    pub scoring_key: String,
    /// Length of the schedule period a scan id is derived from (`GRANTWARDEN_SCAN_WINDOW_SECONDS`).
    pub scan_window_seconds: u32,
    /// Receives after which a transiently failing chunk is given up (`GRANTWARDEN_CHUNK_MAX_RECEIVES`);
    /// must be below the queue's redrive maxReceiveCount so the scan record learns of it.
    pub chunk_max_receives: u32,
}

/// A setting is missing or malformed.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}: {reason}")]
pub struct SettingsError {
    /// The variable.
    pub name: &'static str,
    /// What is wrong.
    pub reason: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            tickets_table: "grantwarden-tickets".into(),
            findings_table: "grantwarden-findings".into(),
            journal_table: "grantwarden-journal".into(),
            scans_table: "grantwarden-scans".into(),
            incidents_table: "grantwarden-incidents".into(),
            leases_table: "grantwarden-leases".into(),
            schedule_group: "grantwarden-revoke".into(),
            revoke_function_arn: None,
            scheduler_role_arn: None,
            revoke_dlq_url: None,
            revoker_secret_prefix: "grantwarden/revoker/".into(),
            access_secret_prefix: "grantwarden/access/".into(),
            remediation_mode: grantwarden_core::remediate::Mode::Report,
            remediation_queue_url: None,
            revoke_dry_run: false,
            remediation_execute: false,
            journal_from_stream: false,
            bucket: "grantwarden".into(),
            audit_bucket: "grantwarden-audit".into(),
            audit_retention: Retention::default(),
            chunk_queue_url: None,
            chunk_dlq_url: None,
            alert_topic_arn: None,
            secret_prefix: "grantwarden/targets/".into(),
            webhook_secret_id: "grantwarden/webhook-hmac".into(),
            webhook_legacy_v1: false,
            replay_table: "grantwarden-replay".into(),
            pagerduty_secret_id: None,
            opsgenie_secret_id: None,
            oidc_issuer: None,
            oidc_client_id: None,
            oidc_identity_claim: "email".into(),
            oidc_groups_claim: "groups".into(),
            oidc_client_secret_id: None,
            portal_cookie_secret_id: "grantwarden/portal-cookie-key".into(),
            portal_url: None,
            slack_bot_token_secret_id: None,
            slack_signing_secret_id: None,
            slack_api_url: "https://slack.com/api".into(),
            notice_queue_url: None,
            notice_dlq_url: None,
            audit_signing_secret_id: "grantwarden/audit-signing-key".into(),
            targets: Vec::new(),
            targets_key: None,
            baseline_key: "config/baselines/{target}.yaml".into(),
            policy_prefix: "config/policy/".into(),
            scoring_key: "config/scoring.yaml".into(),
            scan_window_seconds: 3600,
            chunk_max_receives: 4,
        }
    }
}

impl Settings {
    /// Reads every `GRANTWARDEN_*` variable over the defaults.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the settings through `get` (the environment, or a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let d = Self::default();
        let text = |name: &'static str, default: String| -> Result<String, SettingsError> {
            match get(name) {
                None => Ok(default),
                Some(v) if v.trim().is_empty() => Err(SettingsError { name, reason: "is set but empty".into() }),
                Some(v) => Ok(v),
            }
        };
        let opt = |name: &'static str| get(name).filter(|v| !v.trim().is_empty());
        let flag = |name: &'static str| -> Result<bool, SettingsError> {
            match get(name).as_deref().map(str::trim) {
                None | Some("false") => Ok(false),
                Some("true") => Ok(true),
                Some(other) => Err(SettingsError { name, reason: format!("{other:?} is neither true nor false") }),
            }
        };
        let number = |name: &'static str, default: u32| -> Result<u32, SettingsError> {
            match get(name) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<u32>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(SettingsError { name, reason: format!("{v:?} is not a positive whole number") }),
                },
            }
        };
        Ok(Self {
            tickets_table: text("GRANTWARDEN_TICKETS_TABLE", d.tickets_table)?,
            findings_table: text("GRANTWARDEN_FINDINGS_TABLE", d.findings_table)?,
            journal_table: text("GRANTWARDEN_JOURNAL_TABLE", d.journal_table)?,
            scans_table: text("GRANTWARDEN_SCANS_TABLE", d.scans_table)?,
            incidents_table: text("GRANTWARDEN_INCIDENTS_TABLE", d.incidents_table)?,
            leases_table: text("GRANTWARDEN_LEASES_TABLE", d.leases_table)?,
            schedule_group: text("GRANTWARDEN_SCHEDULE_GROUP", d.schedule_group)?,
            revoke_function_arn: opt("GRANTWARDEN_REVOKE_FUNCTION_ARN"),
            scheduler_role_arn: opt("GRANTWARDEN_SCHEDULER_ROLE_ARN"),
            revoke_dlq_url: opt("GRANTWARDEN_REVOKE_DLQ_URL"),
            revoker_secret_prefix: text("GRANTWARDEN_REVOKER_SECRET_PREFIX", d.revoker_secret_prefix)?,
            access_secret_prefix: text("GRANTWARDEN_ACCESS_SECRET_PREFIX", d.access_secret_prefix)?,
            remediation_mode: match get("GRANTWARDEN_REMEDIATION_MODE").as_deref().map(str::trim) {
                None | Some("report") => grantwarden_core::remediate::Mode::Report,
                Some("revoke-unauthorized") => grantwarden_core::remediate::Mode::RevokeUnauthorized,
                Some("converge") => grantwarden_core::remediate::Mode::Converge,
                Some(other) => {
                    return Err(SettingsError {
                        name: "GRANTWARDEN_REMEDIATION_MODE",
                        reason: format!("{other:?} is not report, revoke-unauthorized or converge"),
                    });
                }
            },
            remediation_queue_url: opt("GRANTWARDEN_REMEDIATION_QUEUE_URL"),
            revoke_dry_run: flag("GRANTWARDEN_REVOKE_DRY_RUN")?,
            remediation_execute: flag("GRANTWARDEN_REMEDIATION_EXECUTE")?,
            journal_from_stream: flag("GRANTWARDEN_JOURNAL_FROM_STREAM")?,
            bucket: text("GRANTWARDEN_BUCKET", d.bucket)?,
            audit_bucket: text("GRANTWARDEN_AUDIT_BUCKET", d.audit_bucket)?,
            audit_retention: Retention {
                compliance: match get("GRANTWARDEN_AUDIT_RETENTION_MODE").as_deref().map(str::trim) {
                    None | Some("COMPLIANCE") => true,
                    Some("GOVERNANCE") => false,
                    Some(other) => {
                        return Err(SettingsError {
                            name: "GRANTWARDEN_AUDIT_RETENTION_MODE",
                            reason: format!("{other:?} is neither COMPLIANCE nor GOVERNANCE"),
                        });
                    }
                },
                days: number("GRANTWARDEN_AUDIT_RETENTION_DAYS", d.audit_retention.days)?,
            },
            chunk_queue_url: opt("GRANTWARDEN_CHUNK_QUEUE_URL"),
            chunk_dlq_url: opt("GRANTWARDEN_CHUNK_DLQ_URL"),
            alert_topic_arn: opt("GRANTWARDEN_ALERT_TOPIC_ARN"),
            secret_prefix: get("GRANTWARDEN_SECRET_PREFIX").unwrap_or(d.secret_prefix),
            webhook_secret_id: text("GRANTWARDEN_WEBHOOK_SECRET_ID", d.webhook_secret_id)?,
            webhook_legacy_v1: flag("GRANTWARDEN_WEBHOOK_LEGACY_V1")?,
            replay_table: text("GRANTWARDEN_REPLAY_TABLE", d.replay_table)?,
            pagerduty_secret_id: opt("GRANTWARDEN_PAGERDUTY_SECRET_ID"),
            opsgenie_secret_id: opt("GRANTWARDEN_OPSGENIE_SECRET_ID"),
            oidc_issuer: opt("GRANTWARDEN_OIDC_ISSUER"),
            oidc_client_id: opt("GRANTWARDEN_OIDC_CLIENT_ID"),
            oidc_identity_claim: text("GRANTWARDEN_OIDC_IDENTITY_CLAIM", d.oidc_identity_claim)?,
            oidc_groups_claim: text("GRANTWARDEN_OIDC_GROUPS_CLAIM", d.oidc_groups_claim)?,
            oidc_client_secret_id: opt("GRANTWARDEN_OIDC_CLIENT_SECRET_ID"),
            portal_cookie_secret_id: text("GRANTWARDEN_PORTAL_COOKIE_SECRET_ID", d.portal_cookie_secret_id)?,
            portal_url: opt("GRANTWARDEN_PORTAL_URL"),
            slack_bot_token_secret_id: opt("GRANTWARDEN_SLACK_BOT_TOKEN_SECRET_ID"),
            slack_signing_secret_id: opt("GRANTWARDEN_SLACK_SIGNING_SECRET_ID"),
            slack_api_url: text("GRANTWARDEN_SLACK_API_URL", d.slack_api_url)?,
            notice_queue_url: opt("GRANTWARDEN_NOTICE_QUEUE_URL"),
            notice_dlq_url: opt("GRANTWARDEN_NOTICE_DLQ_URL"),
            audit_signing_secret_id: text("GRANTWARDEN_AUDIT_SIGNING_SECRET_ID", d.audit_signing_secret_id)?,
            targets: parse_targets(&get("GRANTWARDEN_TARGETS").unwrap_or_default()),
            targets_key: opt("GRANTWARDEN_TARGETS_KEY"),
            baseline_key: text("GRANTWARDEN_BASELINE_KEY", d.baseline_key)?,
            policy_prefix: text("GRANTWARDEN_POLICY_PREFIX", d.policy_prefix)?,
            scoring_key: text("GRANTWARDEN_SCORING_KEY", d.scoring_key)?,
            scan_window_seconds: number("GRANTWARDEN_SCAN_WINDOW_SECONDS", d.scan_window_seconds)?,
            chunk_max_receives: number("GRANTWARDEN_CHUNK_MAX_RECEIVES", d.chunk_max_receives)?,
        })
    }

    /// The `GRANTWARDEN_*` variables that give these settings back through
    /// [`Settings::from_env`]: to start a function binary against resources made
    /// by [`crate::provision::create`] (local runs, the cold-start bench).
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let mode = match self.remediation_mode {
            grantwarden_core::remediate::Mode::Report => "report",
            grantwarden_core::remediate::Mode::RevokeUnauthorized => "revoke-unauthorized",
            grantwarden_core::remediate::Mode::Converge => "converge",
        };
        let mut env = vec![
            ("GRANTWARDEN_TICKETS_TABLE", self.tickets_table.clone()),
            ("GRANTWARDEN_FINDINGS_TABLE", self.findings_table.clone()),
            ("GRANTWARDEN_JOURNAL_TABLE", self.journal_table.clone()),
            ("GRANTWARDEN_SCANS_TABLE", self.scans_table.clone()),
            ("GRANTWARDEN_INCIDENTS_TABLE", self.incidents_table.clone()),
            ("GRANTWARDEN_LEASES_TABLE", self.leases_table.clone()),
            ("GRANTWARDEN_SCHEDULE_GROUP", self.schedule_group.clone()),
            ("GRANTWARDEN_REVOKER_SECRET_PREFIX", self.revoker_secret_prefix.clone()),
            ("GRANTWARDEN_ACCESS_SECRET_PREFIX", self.access_secret_prefix.clone()),
            ("GRANTWARDEN_REMEDIATION_MODE", mode.to_owned()),
            ("GRANTWARDEN_REVOKE_DRY_RUN", self.revoke_dry_run.to_string()),
            ("GRANTWARDEN_REMEDIATION_EXECUTE", self.remediation_execute.to_string()),
            ("GRANTWARDEN_BUCKET", self.bucket.clone()),
            ("GRANTWARDEN_AUDIT_BUCKET", self.audit_bucket.clone()),
            (
                "GRANTWARDEN_AUDIT_RETENTION_MODE",
                if self.audit_retention.compliance { "COMPLIANCE" } else { "GOVERNANCE" }.to_owned(),
            ),
            ("GRANTWARDEN_AUDIT_RETENTION_DAYS", self.audit_retention.days.to_string()),
            ("GRANTWARDEN_SECRET_PREFIX", self.secret_prefix.clone()),
            ("GRANTWARDEN_WEBHOOK_SECRET_ID", self.webhook_secret_id.clone()),
            ("GRANTWARDEN_WEBHOOK_LEGACY_V1", self.webhook_legacy_v1.to_string()),
            ("GRANTWARDEN_REPLAY_TABLE", self.replay_table.clone()),
            ("GRANTWARDEN_AUDIT_SIGNING_SECRET_ID", self.audit_signing_secret_id.clone()),
            ("GRANTWARDEN_TARGETS", self.targets.iter().map(TargetId::as_str).collect::<Vec<_>>().join(",")),
            ("GRANTWARDEN_BASELINE_KEY", self.baseline_key.clone()),
            ("GRANTWARDEN_POLICY_PREFIX", self.policy_prefix.clone()),
            ("GRANTWARDEN_SCORING_KEY", self.scoring_key.clone()),
            ("GRANTWARDEN_SCAN_WINDOW_SECONDS", self.scan_window_seconds.to_string()),
            ("GRANTWARDEN_CHUNK_MAX_RECEIVES", self.chunk_max_receives.to_string()),
            ("GRANTWARDEN_OIDC_IDENTITY_CLAIM", self.oidc_identity_claim.clone()),
            ("GRANTWARDEN_OIDC_GROUPS_CLAIM", self.oidc_groups_claim.clone()),
            ("GRANTWARDEN_PORTAL_COOKIE_SECRET_ID", self.portal_cookie_secret_id.clone()),
            ("GRANTWARDEN_SLACK_API_URL", self.slack_api_url.clone()),
        ];
        let optional = [
            ("GRANTWARDEN_REVOKE_FUNCTION_ARN", &self.revoke_function_arn),
            ("GRANTWARDEN_SCHEDULER_ROLE_ARN", &self.scheduler_role_arn),
            ("GRANTWARDEN_REVOKE_DLQ_URL", &self.revoke_dlq_url),
            ("GRANTWARDEN_REMEDIATION_QUEUE_URL", &self.remediation_queue_url),
            ("GRANTWARDEN_CHUNK_QUEUE_URL", &self.chunk_queue_url),
            ("GRANTWARDEN_CHUNK_DLQ_URL", &self.chunk_dlq_url),
            ("GRANTWARDEN_ALERT_TOPIC_ARN", &self.alert_topic_arn),
            ("GRANTWARDEN_TARGETS_KEY", &self.targets_key),
            ("GRANTWARDEN_PAGERDUTY_SECRET_ID", &self.pagerduty_secret_id),
            ("GRANTWARDEN_OPSGENIE_SECRET_ID", &self.opsgenie_secret_id),
            ("GRANTWARDEN_OIDC_ISSUER", &self.oidc_issuer),
            ("GRANTWARDEN_OIDC_CLIENT_ID", &self.oidc_client_id),
            ("GRANTWARDEN_OIDC_CLIENT_SECRET_ID", &self.oidc_client_secret_id),
            ("GRANTWARDEN_PORTAL_URL", &self.portal_url),
            ("GRANTWARDEN_SLACK_BOT_TOKEN_SECRET_ID", &self.slack_bot_token_secret_id),
            ("GRANTWARDEN_SLACK_SIGNING_SECRET_ID", &self.slack_signing_secret_id),
            ("GRANTWARDEN_NOTICE_QUEUE_URL", &self.notice_queue_url),
            ("GRANTWARDEN_NOTICE_DLQ_URL", &self.notice_dlq_url),
        ];
        env.extend(optional.into_iter().filter_map(|(name, v)| v.clone().map(|v| (name, v))));
        // no targets is no variable (an empty one reads as no targets too)
        env.retain(|(name, v)| *name != "GRANTWARDEN_TARGETS" || !v.is_empty());
        env
    }

    /// The identity provider as configured (issuer, client id, identity claim,
    /// groups claim), checked: a client id is required with an issuer. `None`
    /// without an issuer.
    pub fn oidc(&self) -> Result<Option<(&str, &str, &str, &str)>, SettingsError> {
        let Some(issuer) = &self.oidc_issuer else { return Ok(None) };
        let client_id = Self::require(&self.oidc_client_id, "GRANTWARDEN_OIDC_CLIENT_ID")?;
        Ok(Some((issuer, client_id, &self.oidc_identity_claim, &self.oidc_groups_claim)))
    }

    /// An optional setting a function cannot work without.
    pub fn require<'a>(value: &'a Option<String>, name: &'static str) -> Result<&'a str, SettingsError> {
        value.as_deref().ok_or(SettingsError { name, reason: "must be set for this function".into() })
    }

    /// The secret a ticket's just-in-time credential is delivered in.
    pub fn access_secret_id(&self, ticket_id: &str) -> String {
        format!("{}{ticket_id}", self.access_secret_prefix)
    }

    /// The secret id of the revoking role's credentials for a target.
    pub fn revoker_secret_id(&self, target: &TargetId) -> String {
        format!("{}{}", self.revoker_secret_prefix, target)
    }

    /// The secret id of a target's credentials.
    pub fn target_secret_id(&self, target: &TargetId) -> String {
        format!("{}{}", self.secret_prefix, target)
    }
}

/// Target ids from a comma- or newline-separated list (blank entries and `#` comments skipped).
pub fn parse_targets(text: &str) -> Vec<TargetId> {
    let mut out: Vec<TargetId> = text
        .split([',', '\n'])
        .map(|t| t.split('#').next().unwrap_or("").trim())
        .filter_map(|t| TargetId::new(t.to_owned()))
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_apply_and_overrides_win() {
        let env: HashMap<&str, &str> =
            [("GRANTWARDEN_BUCKET", "b1"), ("GRANTWARDEN_TARGETS", "orders-prod, billing-prod,,orders-prod")].into();
        let s = Settings::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
        assert_eq!(s.bucket, "b1");
        assert_eq!(s.tickets_table, "grantwarden-tickets");
        assert_eq!(s.targets.iter().map(TargetId::as_str).collect::<Vec<_>>(), ["billing-prod", "orders-prod"]);
    }

    #[test]
    fn a_malformed_number_names_the_variable() {
        let err =
            Settings::from_lookup(|k| (k == "GRANTWARDEN_SCAN_WINDOW_SECONDS").then(|| "hourly".into())).unwrap_err();
        assert_eq!(err.name, "GRANTWARDEN_SCAN_WINDOW_SECONDS");
        assert!(err.to_string().contains("\"hourly\""), "{err}");
    }

    #[test]
    fn the_audit_lock_defaults_to_seven_years_compliance_and_refuses_an_unknown_mode() {
        let s = Settings::from_lookup(|_| None).unwrap();
        assert_eq!(s.audit_retention, Retention { compliance: true, days: 2555 });
        let s =
            Settings::from_lookup(|k| (k == "GRANTWARDEN_AUDIT_RETENTION_MODE").then(|| "GOVERNANCE".into())).unwrap();
        assert!(!s.audit_retention.compliance);
        let err = Settings::from_lookup(|k| (k == "GRANTWARDEN_AUDIT_RETENTION_MODE").then(|| "compliant".into()))
            .unwrap_err();
        assert_eq!(err.name, "GRANTWARDEN_AUDIT_RETENTION_MODE");
    }

    #[test]
    fn settings_survive_a_round_trip_through_the_environment() {
        let s = Settings {
            targets: parse_targets("orders-prod,billing-prod"),
            chunk_queue_url: Some("http://127.0.0.1:5055/000000000000/chunks".into()),
            remediation_mode: grantwarden_core::remediate::Mode::Converge,
            revoke_dry_run: true,
            remediation_execute: true,
            audit_retention: Retention { compliance: false, days: 30 },
            webhook_legacy_v1: true,
            pagerduty_secret_id: Some("grantwarden/pagerduty-webhook".into()),
            opsgenie_secret_id: Some("grantwarden/opsgenie-webhook".into()),
            ..Settings::default()
        };
        let env: HashMap<&str, String> = s.to_env().into_iter().collect();
        assert_eq!(Settings::from_lookup(|k| env.get(k).cloned()).unwrap(), s);
    }

    #[test]
    fn legacy_v1_signatures_and_vendor_webhooks_are_off_unless_set() {
        let s = Settings::from_lookup(|_| None).unwrap();
        assert!(!s.webhook_legacy_v1);
        assert_eq!((s.pagerduty_secret_id, s.opsgenie_secret_id), (None, None));
        let err = Settings::from_lookup(|k| (k == "GRANTWARDEN_WEBHOOK_LEGACY_V1").then(|| "yes".into())).unwrap_err();
        assert_eq!(err.name, "GRANTWARDEN_WEBHOOK_LEGACY_V1");
    }

    #[test]
    fn a_missing_queue_is_reported_by_name() {
        let s = Settings::default();
        let err = Settings::require(&s.chunk_queue_url, "GRANTWARDEN_CHUNK_QUEUE_URL").unwrap_err();
        assert!(err.to_string().contains("GRANTWARDEN_CHUNK_QUEUE_URL"));
    }
}
