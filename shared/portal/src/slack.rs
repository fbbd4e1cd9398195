//! `POST /slack/interactions`: the Approve and Deny buttons of a request's
//! card in Slack.
//!
//! The request is Slack's only when its signature verifies under the app's
//! signing secret, within five minutes, and its signature was never seen
//! before (a replay record, as intake keeps for its senders). The person is
//! the one Slack vouches for: `users.info` of the clicking user, active, not
//! a bot nor a guest, with an email Slack confirmed, in the workspace the
//! click came from. Never a name from the payload. What they may do is
//! `grantwarden_core::notify::decide_in_chat`'s: an approver the registry
//! names, and an approval only where one approval of an ordinary path
//! suffices; two approvals and break-glass are sent to the portal. The reply
//! goes to the clicker alone (`chat.postEphemeral`); the card itself is brought
//! up to date by the notice queue, for everyone.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use grantwarden_core::identity::{Actor, Voucher};
use grantwarden_core::notify::{APPROVE_ACTION, ChatDecision, ChatRefusal, decide_in_chat};
use grantwarden_core::store::{ReplayGuard, ReplayKey};
use grantwarden_core::ticket::TicketStatus;
use grantwarden_slack::{Interaction, SlackClient, verify};

use crate::{AppState, Portal, PortalStore};

/// Slack for the portal: the Web API client and the app's signing secret.
#[derive(Clone)]
pub struct SlackApp {
    /// The Web API with the bot token.
    pub client: SlackClient,
    /// The signing secret of the Slack app.
    pub signing_secret: Vec<u8>,
}

/// What the endpoint answered, as JSON `{"text": ...}` with its status.
fn reply(status: StatusCode, text: impl Into<String>) -> Response {
    (status, axum::Json(serde_json::json!({ "response_type": "ephemeral", "text": text.into() }))).into_response()
}

pub(crate) async fn interactions<S: PortalStore + ReplayGuard>(
    State(AppState(portal)): State<AppState<S>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(slack) = &portal.slack else {
        return reply(StatusCode::NOT_FOUND, "Slack is not configured on this grantwarden");
    };
    let now = portal.clock.now();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature = header("x-slack-signature");
    if let Err(refusal) = verify(&slack.signing_secret, header("x-slack-request-timestamp"), signature, &body, now) {
        tracing::warn!(error = %refusal, "Slack interaction refused");
        return reply(StatusCode::UNAUTHORIZED, refusal.to_string());
    }
    // a verified signature is used once: a captured click cannot be played again
    let key = ReplayKey::new("slack", signature.unwrap_or_default().as_bytes());
    let until = now + chrono::Duration::from_std(grantwarden_slack::SIGNATURE_WINDOW * 2).unwrap_or_default();
    match portal.store.first_use(&key, now, until).await {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!("Slack interaction replayed");
            return reply(StatusCode::CONFLICT, "this request was received before (a replayed signature)");
        }
        Err(e) => return reply(StatusCode::SERVICE_UNAVAILABLE, format!("the replay records: {e}")),
    }
    let click = match Interaction::parse(&body) {
        Ok(Some(click)) => click,
        Ok(None) => return StatusCode::OK.into_response(),
        Err(e) => return reply(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let (status, text) = decide(&portal, slack, &click, now).await;
    tracing::info!(ticket = %click.value, slack_user = %click.user, status = status.as_u16(), reply = %text, "Slack interaction");
    if let Some(channel) = &click.channel
        && let Err(e) = slack.client.post_ephemeral(channel, &click.user, &text).await
    {
        tracing::warn!(error = %e, "the reply to the Slack user was not delivered");
    }
    reply(status, text)
}

/// The decision a click asks for, and what to tell the clicker.
async fn decide<S: PortalStore>(
    portal: &Portal<S>,
    slack: &SlackApp,
    click: &Interaction,
    now: DateTime<Utc>,
) -> (StatusCode, String) {
    let registry = match &portal.registry {
        Ok(r) => r,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, format!("the policy registry is unusable: {e}")),
    };
    let actor = match who(slack, click).await {
        Ok(actor) => actor,
        Err((status, why)) => return (status, why),
    };
    let decision = if click.action == APPROVE_ACTION { ChatDecision::Approve } else { ChatDecision::Deny };
    let portal_url = portal.config.base_url.as_deref();
    match decide_in_chat(&portal.store, registry, &click.value, &actor, decision, portal_url, now).await {
        Ok(t) => {
            let text = match (decision, t.status()) {
                (ChatDecision::Deny, _) => format!("You denied {}; {} is told.", t.id(), t.request().requested_by),
                (ChatDecision::Approve, TicketStatus::Active) => format!("You approved {}: it is in force.", t.id()),
                (ChatDecision::Approve, _) => format!("You approved {}; it waits for another approval.", t.id()),
            };
            (StatusCode::OK, text)
        }
        Err(refusal) => {
            let status = match &refusal {
                ChatRefusal::Flow(grantwarden_core::ticket_flow::TicketFlowError::Store(_)) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                ChatRefusal::Flow(grantwarden_core::ticket_flow::TicketFlowError::UnknownTicket(_)) => {
                    StatusCode::NOT_FOUND
                }
                _ => StatusCode::FORBIDDEN,
            };
            (status, format!("Not done: {refusal}"))
        }
    }
}

/// The person Slack vouches for: an active member (not a bot, not a guest)
/// of the workspace the click came from, by the email Slack confirmed.
async fn who(slack: &SlackApp, click: &Interaction) -> Result<Actor, (StatusCode, String)> {
    let user =
        slack.client.user_info(&click.user).await.map_err(|e| {
            (StatusCode::SERVICE_UNAVAILABLE, format!("Slack could not say who you are ({e}); try again"))
        })?;
    let refuse = |why: &str| Err((StatusCode::FORBIDDEN, format!("Not done: {why}")));
    if user.deleted || user.bot {
        return refuse("your Slack account is deactivated or a bot");
    }
    if user.guest {
        return refuse("guests of the workspace do not approve access");
    }
    if !click.team.is_empty() && !user.team.is_empty() && user.team != click.team {
        return refuse("your account is not of the workspace the click came from");
    }
    let Some(email) = user.email.filter(|e| e.contains('@')) else {
        return refuse("Slack gives no email for your account (the app needs users:read.email)");
    };
    if !user.email_confirmed {
        return refuse("Slack has not confirmed your email");
    }
    Ok(Actor {
        id: email.trim().to_ascii_lowercase(),
        groups: Default::default(),
        signed_in_at: None,
        vouched_by: Voucher::Slack { team: user.team, user: user.id },
    })
}
