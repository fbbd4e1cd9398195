//! The two timers of an active ticket: a lease item and a one-time schedule.
//!
//! DynamoDB TTL deletes lazily (within days) and deletes the item it expires,
//! so the ticket itself never carries the TTL: a separate lease item does,
//! and its REMOVE on the leases table's stream (made by the TTL service,
//! `userIdentity` `dynamodb.amazonaws.com`) is one trigger of the revoke
//! function. A one-time EventBridge Scheduler schedule `at(expires_at)` is
//! the precise one; the sweeper catches what both miss. The schedule deletes
//! itself after it runs; ending a ticket early deletes both.

use aws_sdk_scheduler::types::{ActionAfterCompletion, FlexibleTimeWindow, FlexibleTimeWindowMode, Target};
use chrono::{DateTime, SecondsFormat, Utc};
use grantwarden_core::ticket::Ticket;
use serde::{Deserialize, Serialize};

use crate::{AwsError, Clients, Settings, item};

/// The leases table's TTL attribute (epoch seconds).
pub const TTL_ATTRIBUTE: &str = "ttl";

/// A lease item as stored: keyed by ticket, expiring (TTL attribute `ttl`,
/// epoch seconds) with the ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The ticket.
    pub ticket_id: String,
    /// Its target.
    pub target: String,
    /// Its role.
    pub role: String,
    /// The expiry, RFC 3339.
    pub expires_at: String,
    /// The expiry in epoch seconds: the table's TTL attribute.
    pub ttl: i64,
}

/// What the scheduled invocation hands the revoke function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledRevoke {
    /// The ticket to revoke.
    pub ticket_id: String,
    /// `schedule` from the schedule; `operator` when a person invokes the function
    /// by hand to retry a failed revocation.
    pub trigger: String,
}

/// Leases and schedules of active tickets.
#[derive(Clone, Debug)]
pub struct Timers {
    dynamodb: aws_sdk_dynamodb::Client,
    scheduler: aws_sdk_scheduler::Client,
    table: String,
    group: String,
    function_arn: Option<String>,
    role_arn: Option<String>,
}

/// The schedule of a ticket: ticket ids are `tkt-` + hex, within Scheduler's name rules.
pub fn schedule_name(ticket_id: &str) -> String {
    format!("revoke-{ticket_id}")
}

/// When a timer of a ticket expiring at `expires_at` fires: the expiry rounded up
/// to the whole second. `at()` and the TTL attribute take whole seconds, and a
/// timer that fired before the expiry would find the ticket not due yet and
/// leave it to the sweeper, a minute later.
pub fn fire_at(expires_at: DateTime<Utc>) -> DateTime<Utc> {
    let truncated = expires_at.timestamp();
    let seconds = if expires_at.timestamp_subsec_nanos() > 0 { truncated + 1 } else { truncated };
    DateTime::from_timestamp(seconds, 0).unwrap_or(expires_at)
}

impl Timers {
    /// The leases table and schedule group of `settings`. Creating schedules needs
    /// the revoke function's ARN and the scheduler role; without them only the
    /// lease is armed (and the sweeper bounds the latency).
    pub fn new(clients: &Clients, settings: &Settings) -> Self {
        Self {
            dynamodb: clients.dynamodb.clone(),
            scheduler: clients.scheduler.clone(),
            table: settings.leases_table.clone(),
            group: settings.schedule_group.clone(),
            function_arn: settings.revoke_function_arn.clone(),
            role_arn: settings.scheduler_role_arn.clone(),
        }
    }

    /// Arms both timers of an active ticket. Idempotent: the lease is put again,
    /// an existing schedule is left as it is.
    pub async fn arm(&self, ticket: &Ticket) -> Result<(), AwsError> {
        let lease = Lease {
            ticket_id: ticket.id().to_owned(),
            target: ticket.request().target.to_string(),
            role: ticket.request().role.to_string(),
            expires_at: ticket.expires_at().to_rfc3339_opts(SecondsFormat::Millis, true),
            ttl: fire_at(ticket.expires_at()).timestamp(),
        };
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item::to(&format!("lease {}", ticket.id()), &lease)?))
            .send()
            .await
            .map_err(|e| AwsError::sdk(format!("PutItem {} {}", self.table, ticket.id()), e))?;
        let (Some(function), Some(role)) = (&self.function_arn, &self.role_arn) else {
            tracing::warn!(ticket = %ticket.id(), "no revoke function or scheduler role configured: lease only");
            return Ok(());
        };
        let input =
            serde_json::to_string(&ScheduledRevoke { ticket_id: ticket.id().to_owned(), trigger: "schedule".into() })
                .expect("a schedule input always serializes");
        let at = format!("at({})", fire_at(ticket.expires_at()).format("%Y-%m-%dT%H:%M:%S"));
        let name = schedule_name(ticket.id());
        let created = self
            .scheduler
            .create_schedule()
            .name(&name)
            .group_name(&self.group)
            .schedule_expression(&at)
            .schedule_expression_timezone("UTC")
            .flexible_time_window(
                FlexibleTimeWindow::builder().mode(FlexibleTimeWindowMode::Off).build().expect("mode is set"),
            )
            .action_after_completion(ActionAfterCompletion::Delete)
            .target(Target::builder().arn(function).role_arn(role).input(input).build().expect("arn and role are set"))
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conflict_exception()) => Ok(()),
            Err(e) => Err(AwsError::sdk(format!("CreateSchedule {}/{name}", self.group), e)),
        }
    }

    /// Moves both timers to the ticket's new expiry (a renewed break-glass window).
    pub async fn rearm(&self, ticket: &Ticket) -> Result<(), AwsError> {
        let name = schedule_name(ticket.id());
        match self.scheduler.delete_schedule().name(&name).group_name(&self.group).send().await {
            Ok(_) => {}
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {}
            Err(e) => return Err(AwsError::sdk(format!("DeleteSchedule {}/{name}", self.group), e)),
        }
        self.arm(ticket).await
    }

    /// Disarms both: the ticket ended (revoked, or early). Missing ones are fine.
    pub async fn disarm(&self, ticket_id: &str) -> Result<(), AwsError> {
        self.dynamodb
            .delete_item()
            .table_name(&self.table)
            .key("ticket_id", aws_sdk_dynamodb::types::AttributeValue::S(ticket_id.to_owned()))
            .send()
            .await
            .map_err(|e| AwsError::sdk(format!("DeleteItem {} {ticket_id}", self.table), e))?;
        let name = schedule_name(ticket_id);
        match self.scheduler.delete_schedule().name(&name).group_name(&self.group).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(()),
            Err(e) => Err(AwsError::sdk(format!("DeleteSchedule {}/{name}", self.group), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_at_the_expiry_rounded_up_to_the_second() {
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert_eq!(fire_at(at("2026-11-22T18:00:00Z")), at("2026-11-22T18:00:00Z"));
        assert_eq!(fire_at(at("2026-11-22T18:00:00.001Z")), at("2026-11-22T18:00:01Z"));
        assert_eq!(fire_at(at("2026-11-22T18:00:59.999999999Z")), at("2026-11-22T18:01:00Z"));
    }
}
