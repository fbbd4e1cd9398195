//! The registry's `notify:` section: where people are told about requests,
//! decisions and alerts in Slack, and which requests may be approved there.
//!
//! ```yaml
//! notify:
//!   channels:                      # a request's card goes to every channel that matches it
//!     - { channel: C0ORDERS, targets: ["orders-*"], paths: [read-only, migration] }
//!     - { channel: C0DBA }         # no targets, no paths: every request
//!   security_channel: C0SECURITY   # drift and break-glass alerts (besides SNS)
//!   approve_in_slack: [read-only]  # paths approved with a button (the default); never dual, never break-glass
//!   slack_approvers: [dba-lead@example.com]   # who may approve in Slack, besides access.approver_roles' emails
//!   dm_approvers: true             # each eligible approver gets the card in a DM too (default false)
//!   dm_requester: true             # the requester hears of each decision (default true)
//!   expiry_warning: 10m            # the requester is told this long before access ends (default 10m)
//! ```
//!
//! Layer 1 (it imports `error`): the paths are kept by their registry spelling
//! (`read-only`); `crate::policy` checks them against the access section.

use std::time::Duration;

use globset::{Glob, GlobMatcher};
use serde::Deserialize;

use crate::error::FieldError;

/// One channel rule as written.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChannelFile {
    /// The Slack channel id (`C0123ABCD`); a name can be renamed, an id cannot.
    channel: String,
    /// Targets (globs) whose requests go there; none: every target.
    #[serde(default)]
    targets: Vec<String>,
    /// Access paths whose requests go there (`read-only`, `migration`, `break-glass`); none: every path.
    #[serde(default)]
    paths: Vec<String>,
}

/// The `notify` section as written.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifyFile {
    /// Where requests are posted, by target and path.
    #[serde(default)]
    channels: Vec<ChannelFile>,
    /// The channel of drift and break-glass alerts (besides SNS).
    #[serde(default)]
    security_channel: Option<String>,
    /// Paths whose requests may be approved with a Slack button (default: `[read-only]`).
    /// A request that needs two approvals, or break-glass, never is.
    #[serde(default)]
    approve_in_slack: Option<Vec<String>>,
    /// Emails who may approve in Slack, besides the emails of `access.approver_roles`.
    #[serde(default)]
    slack_approvers: Vec<String>,
    /// Whether each eligible approver also gets the request in a direct message (default false).
    #[serde(default)]
    dm_approvers: bool,
    /// Whether the requester is told of each decision in a direct message (default true).
    #[serde(default)]
    dm_requester: Option<bool>,
    /// How long before access ends its requester is warned (default `10m`).
    #[schemars(schema_with = "crate::schema_format::duration")]
    #[serde(default)]
    expiry_warning: Option<String>,
}

/// Where one kind of request is posted.
#[derive(Debug, Clone)]
pub struct ChannelRule {
    /// The Slack channel id.
    pub channel: String,
    /// Targets (globs); empty: every target.
    pub targets: Vec<GlobMatcher>,
    /// Access paths by their registry spelling; empty: every path.
    pub paths: Vec<String>,
}

/// The `notify` section, validated.
#[derive(Debug, Clone)]
pub struct NotifyPolicy {
    /// Where requests are posted.
    pub channels: Vec<ChannelRule>,
    /// The channel of drift and break-glass alerts.
    pub security_channel: Option<String>,
    /// Paths (registry spelling) approved with a button in Slack.
    pub approve_in_slack: Vec<String>,
    /// Emails, lower-cased, who may approve in Slack besides the approver roles'.
    pub slack_approvers: Vec<String>,
    /// Whether eligible approvers get the request in a direct message.
    pub dm_approvers: bool,
    /// Whether the requester is told of each decision.
    pub dm_requester: bool,
    /// How long before access ends its requester is warned.
    pub expiry_warning: Duration,
}

/// The paths approved in Slack when the registry says nothing.
pub const DEFAULT_APPROVE_IN_SLACK: &str = "read-only";

/// The warning before access ends when the registry says nothing.
pub const DEFAULT_EXPIRY_WARNING: Duration = Duration::from_secs(10 * 60);

fn channel_id(field: String, id: &str) -> Result<String, FieldError> {
    let id = id.trim();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(FieldError::new(
            field,
            format!("{id:?} is not a Slack channel id (letters and digits, e.g. C0123ABCD)"),
        ));
    }
    Ok(id.to_owned())
}

impl NotifyPolicy {
    /// Validates the section as written (the paths are checked against the
    /// access section by the registry's loader).
    pub fn from_file(f: &NotifyFile) -> Result<Self, FieldError> {
        let mut channels = Vec::with_capacity(f.channels.len());
        for (i, c) in f.channels.iter().enumerate() {
            let p = format!("notify.channels[{i}]");
            let targets = c
                .targets
                .iter()
                .map(|g| {
                    Glob::new(g).map(|g| g.compile_matcher()).map_err(|e| {
                        FieldError::new(format!("{p}.targets"), format!("invalid glob {g:?}: {}", e.kind()))
                    })
                })
                .collect::<Result<_, _>>()?;
            channels.push(ChannelRule {
                channel: channel_id(format!("{p}.channel"), &c.channel)?,
                targets,
                paths: c.paths.iter().map(|p| p.trim().to_owned()).collect(),
            });
        }
        let security_channel =
            f.security_channel.as_deref().map(|c| channel_id("notify.security_channel".into(), c)).transpose()?;
        let expiry_warning = match &f.expiry_warning {
            None => DEFAULT_EXPIRY_WARNING,
            Some(text) => humantime::parse_duration(text).map_err(|e| {
                FieldError::new("notify.expiry_warning", format!("cannot read {text:?} as a duration: {e}"))
            })?,
        };
        let mut slack_approvers = Vec::with_capacity(f.slack_approvers.len());
        for (i, email) in f.slack_approvers.iter().enumerate() {
            let email = email.trim().to_ascii_lowercase();
            if !email.contains('@') {
                return Err(FieldError::new(
                    format!("notify.slack_approvers[{i}]"),
                    format!("{email:?} is not an email"),
                ));
            }
            slack_approvers.push(email);
        }
        Ok(NotifyPolicy {
            channels,
            security_channel,
            approve_in_slack: f
                .approve_in_slack
                .clone()
                .unwrap_or_else(|| vec![DEFAULT_APPROVE_IN_SLACK.to_owned()])
                .into_iter()
                .map(|p| p.trim().to_owned())
                .collect(),
            slack_approvers,
            dm_approvers: f.dm_approvers,
            dm_requester: f.dm_requester.unwrap_or(true),
            expiry_warning,
        })
    }

    /// The path names the section uses, each with its field, for the loader's check.
    pub fn path_names(&self) -> Vec<(String, &str)> {
        let mut out = Vec::new();
        for (i, c) in self.channels.iter().enumerate() {
            out.extend(c.paths.iter().map(|p| (format!("notify.channels[{i}].paths"), p.as_str())));
        }
        out.extend(self.approve_in_slack.iter().map(|p| ("notify.approve_in_slack".to_owned(), p.as_str())));
        out
    }

    /// The channels a request on `target` for `path` is posted to, each once.
    pub fn channels_for(&self, target: &str, path: &str) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for rule in &self.channels {
            let target_ok = rule.targets.is_empty() || rule.targets.iter().any(|g| g.is_match(target));
            let path_ok = rule.paths.is_empty() || rule.paths.iter().any(|p| p == path);
            if target_ok && path_ok && !out.contains(&rule.channel.as_str()) {
                out.push(&rule.channel);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> Result<NotifyPolicy, FieldError> {
        NotifyPolicy::from_file(&crate::yaml::parse_yaml(yaml, "registry.yaml").unwrap())
    }

    #[test]
    fn requests_go_to_every_matching_channel_once() {
        let p = policy(
            "channels:\n  - { channel: C0ORDERS, targets: ['orders-*'], paths: [read-only] }\n  - { channel: C0DBA }\n  - { channel: C0ORDERS }\n",
        )
        .unwrap();
        assert_eq!(p.channels_for("orders-prod", "read-only"), ["C0ORDERS", "C0DBA"]);
        assert_eq!(p.channels_for("billing", "migration"), ["C0DBA", "C0ORDERS"]);
        assert_eq!(p.approve_in_slack, ["read-only"], "the default");
        assert!(p.dm_requester && !p.dm_approvers);
        assert_eq!(p.expiry_warning, DEFAULT_EXPIRY_WARNING);
    }

    #[test]
    fn a_bad_field_is_named() {
        let e = policy("channels:\n  - { channel: '#orders' }\n").unwrap_err();
        assert_eq!(e.field, "notify.channels[0].channel");
        let e = policy("expiry_warning: soon\n").unwrap_err();
        assert_eq!(e.field, "notify.expiry_warning");
        let e = policy("slack_approvers: [bob]\n").unwrap_err();
        assert_eq!(e.field, "notify.slack_approvers[0]");
    }
}
