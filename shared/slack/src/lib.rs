//! grantwarden-slack: Slack's side of `grantwarden_core::notify`.
//!
//! - [`SlackClient`]: the Web API calls grantwarden makes with its bot token
//!   (`chat.postMessage`, `chat.update`, `chat.postEphemeral`, `users.info`,
//!   `users.lookupByEmail`), each failure sorted into one retrying can fix
//!   (rate limits, Slack's own errors, the network) and one it cannot (no such
//!   channel, a revoked token). It implements the core's `Chat` port.
//! - [`blocks`]: a request's card in Block Kit, with Approve and Deny buttons
//!   (their value is the ticket id) or a link to the portal.
//! - [`verify`]: an interaction request is Slack's only when its
//!   `X-Slack-Signature` is the HMAC-SHA256 of `v0:<timestamp>:<body>` under
//!   the app's signing secret (compared in constant time) and its timestamp is
//!   within five minutes of now.
//! - [`Interaction`]: a button click as Slack posts it (`payload=` JSON).
//!
//! Slack's Web API is a handful of JSON-over-HTTPS calls; the Rust clients
//! that cover all of it (slack-morphism) bring their own HTTP stack, so these
//! few calls go through the reqwest the workspace already uses.
#![deny(missing_docs)]

use std::time::Duration;

use chrono::{DateTime, Utc};
use grantwarden_core::notify::{APPROVE_ACTION, Chat, ChatError, DENY_ACTION, Message, Posted};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

/// Slack's Web API.
pub const SLACK_API: &str = "https://slack.com/api";

/// How far an interaction's timestamp may be from now (Slack's own advice).
pub const SIGNATURE_WINDOW: Duration = Duration::from_secs(5 * 60);

/// The Slack Web API with the app's bot token.
#[derive(Clone)]
pub struct SlackClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl std::fmt::Debug for SlackClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackClient").field("base", &self.base).finish_non_exhaustive()
    }
}

/// A Slack user, as `users.info` tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlackUser {
    /// The user id.
    pub id: String,
    /// The workspace.
    pub team: String,
    /// The profile's email (needs the `users:read.email` scope).
    pub email: Option<String>,
    /// Whether Slack confirmed the email.
    pub email_confirmed: bool,
    /// Deactivated.
    pub deleted: bool,
    /// A bot.
    pub bot: bool,
    /// A guest (single- or multi-channel).
    pub guest: bool,
}

impl SlackClient {
    /// A client of the Web API at `base` (normally [`SLACK_API`]) with `token` (`xoxb-...`).
    pub fn new(base: &str, token: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .connect_timeout(Duration::from_secs(3))
            .build()
            .expect("a reqwest client with timeouts builds");
        SlackClient { http, base: base.trim_end_matches('/').to_owned(), token: token.trim().to_owned() }
    }

    /// Calls `method` with `body` (JSON), Slack's answer when `ok`.
    async fn call(&self, method: &str, body: &Value) -> Result<Value, ChatError> {
        let request = self.http.post(format!("{}/{method}", self.base)).bearer_auth(&self.token).json(body);
        self.answer(method, request).await
    }

    /// Calls `method` with form `params` (the read methods take no JSON).
    async fn read(&self, method: &str, params: &[(&str, &str)]) -> Result<Value, ChatError> {
        let request = self.http.post(format!("{}/{method}", self.base)).bearer_auth(&self.token).form(params);
        self.answer(method, request).await
    }

    async fn answer(&self, method: &str, request: reqwest::RequestBuilder) -> Result<Value, ChatError> {
        let response =
            request.send().await.map_err(|e| ChatError::Transient(format!("{method}: Slack unreachable: {e}")))?;
        let status = response.status();
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).unwrap_or("?").to_owned();
            return Err(ChatError::Transient(format!("{method}: rate limited by Slack (retry after {after} s)")));
        }
        if status.is_server_error() {
            return Err(ChatError::Transient(format!("{method}: Slack answered {status}")));
        }
        let body: Value = response
            .json()
            .await
            .map_err(|e| ChatError::Transient(format!("{method}: Slack's answer is not JSON ({status}): {e}")))?;
        if body.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(body);
        }
        let error = body.get("error").and_then(Value::as_str).unwrap_or("no error given").to_owned();
        Err(classify(method, &error))
    }

    /// `users.info`: who a Slack user is.
    pub async fn user_info(&self, user: &str) -> Result<SlackUser, ChatError> {
        let body = self.read("users.info", &[("user", user)]).await?;
        let u = &body["user"];
        let flag = |k: &str| u.get(k).and_then(Value::as_bool).unwrap_or(false);
        Ok(SlackUser {
            id: u.get("id").and_then(Value::as_str).unwrap_or(user).to_owned(),
            team: u.get("team_id").and_then(Value::as_str).unwrap_or_default().to_owned(),
            email: u.pointer("/profile/email").and_then(Value::as_str).map(str::to_owned),
            email_confirmed: flag("is_email_confirmed"),
            deleted: flag("deleted"),
            bot: flag("is_bot") || flag("is_app_user"),
            guest: flag("is_restricted") || flag("is_ultra_restricted"),
        })
    }

    /// `chat.postEphemeral`: a reply only `user` sees in `channel`.
    pub async fn post_ephemeral(&self, channel: &str, user: &str, text: &str) -> Result<(), ChatError> {
        self.call("chat.postEphemeral", &json!({ "channel": channel, "user": user, "text": text })).await.map(|_| ())
    }
}

/// Slack errors that a later attempt may get past; every other one needs a person.
fn classify(method: &str, error: &str) -> ChatError {
    let transient = matches!(
        error,
        "ratelimited"
            | "internal_error"
            | "fatal_error"
            | "service_unavailable"
            | "request_timeout"
            | "team_added_to_org"
    );
    let message = format!("{method}: {error}");
    if transient { ChatError::Transient(message) } else { ChatError::Permanent(message) }
}

impl Chat for SlackClient {
    async fn post(&self, channel: &str, message: &Message) -> Result<Posted, ChatError> {
        let mut body =
            json!({ "channel": channel, "text": message.text, "unfurl_links": false, "unfurl_media": false });
        if message.card.is_some() {
            body["blocks"] = blocks(message);
        }
        let answer = self.call("chat.postMessage", &body).await?;
        Ok(Posted {
            channel: answer.get("channel").and_then(Value::as_str).unwrap_or(channel).to_owned(),
            ts: answer.get("ts").and_then(Value::as_str).unwrap_or_default().to_owned(),
            to: None,
        })
    }

    async fn update(&self, posted: &Posted, message: &Message) -> Result<(), ChatError> {
        let mut body = json!({ "channel": posted.channel, "ts": posted.ts, "text": message.text });
        body["blocks"] = if message.card.is_some() { blocks(message) } else { json!([]) };
        self.call("chat.update", &body).await.map(|_| ())
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<String>, ChatError> {
        match self.read("users.lookupByEmail", &[("email", email)]).await {
            Ok(body) => Ok(body.pointer("/user/id").and_then(Value::as_str).map(str::to_owned)),
            Err(ChatError::Permanent(e)) if e.ends_with("users_not_found") => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Text for Slack's mrkdwn: `&`, `<` and `>` escaped, so a justification
/// cannot ping `@channel` or forge a link.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The Block Kit blocks of `message`: its card's headline, fields, status,
/// and its buttons (Approve, Deny with a confirmation, the portal's page).
pub fn blocks(message: &Message) -> Value {
    let Some(card) = &message.card else {
        return json!([{ "type": "section", "text": { "type": "mrkdwn", "text": escape(&message.text) } }]);
    };
    let fields: Vec<Value> = card
        .fields
        .iter()
        // Slack refuses a field over 2000 characters (invalid_blocks): a long justification is cut
        .map(|(label, value)| {
            json!({ "type": "mrkdwn", "text": truncate(&format!("*{}*\n{}", escape(label), escape(value)), FIELD_MAX) })
        })
        .collect();
    let mut blocks =
        vec![json!({ "type": "header", "text": { "type": "plain_text", "text": truncate(&card.title, 150) } })];
    // a section holds at most ten fields
    for chunk in fields.chunks(10) {
        blocks.push(json!({ "type": "section", "fields": chunk }));
    }
    let mut status = format!("*{}*", escape(&card.status));
    if let Some(why) = &card.approve_elsewhere {
        status.push_str(&format!("\nNo approval here: {}", escape(why)));
    }
    blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": truncate(&status, SECTION_MAX) } }));
    let mut buttons = Vec::new();
    if card.approve {
        buttons.push(json!({ "type": "button", "action_id": APPROVE_ACTION, "style": "primary", "value": card.ticket,
            "text": { "type": "plain_text", "text": "Approve" } }));
    }
    if card.deny {
        buttons.push(json!({ "type": "button", "action_id": DENY_ACTION, "style": "danger", "value": card.ticket,
            "text": { "type": "plain_text", "text": "Deny" },
            "confirm": { "title": { "type": "plain_text", "text": "Deny this request?" },
                "text": { "type": "mrkdwn", "text": "Nothing will be issued; the requester is told." },
                "confirm": { "type": "plain_text", "text": "Deny" }, "deny": { "type": "plain_text", "text": "Cancel" } } }));
    }
    if let Some(link) = &card.link {
        buttons.push(json!({ "type": "button", "action_id": "grantwarden_open", "url": link,
            "text": { "type": "plain_text", "text": "Open in the portal" } }));
    }
    if !buttons.is_empty() {
        blocks.push(
            json!({ "type": "actions", "block_id": format!("grantwarden:{}", card.ticket), "elements": buttons }),
        );
    }
    blocks.push(json!({ "type": "context", "elements": [{ "type": "mrkdwn", "text": format!("grantwarden ticket `{}`", escape(&card.ticket)) }] }));
    Value::Array(blocks)
}

/// The longest text of a section field Slack takes.
const FIELD_MAX: usize = 2000;
/// The longest text of a section Slack takes.
const SECTION_MAX: usize = 3000;

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

// ---- interactions ------------------------------------------------------------

/// Why an interaction request is not Slack's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureRefusal {
    /// A header is missing or unreadable.
    #[error("{0} is missing")]
    Missing(&'static str),
    /// The timestamp is too far from now (a replay, or a clock far off).
    #[error("the request's timestamp is {seconds} s from now; Slack's requests are fresh (5 minutes at most)")]
    Stale {
        /// How far.
        seconds: i64,
    },
    /// The signature does not match the body under the signing secret.
    #[error("the X-Slack-Signature does not match the body: not signed with this app's signing secret")]
    Mismatch,
}

/// `v0=` + the hex HMAC-SHA256 of `v0:<timestamp>:<body>` under `secret`:
/// what Slack sends in `X-Slack-Signature`.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `body`, with its `X-Slack-Request-Timestamp` and `X-Slack-Signature`,
/// was signed by Slack with `secret` within [`SIGNATURE_WINDOW`] of `now`;
/// the signature is compared in constant time. Returns the timestamp.
pub fn verify(
    secret: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<i64, SignatureRefusal> {
    let ts_text = timestamp.ok_or(SignatureRefusal::Missing("X-Slack-Request-Timestamp"))?;
    let ts: i64 = ts_text.trim().parse().map_err(|_| SignatureRefusal::Missing("X-Slack-Request-Timestamp"))?;
    let signature = signature.ok_or(SignatureRefusal::Missing("X-Slack-Signature"))?;
    let seconds = now.timestamp() - ts;
    if seconds.unsigned_abs() > SIGNATURE_WINDOW.as_secs() {
        return Err(SignatureRefusal::Stale { seconds });
    }
    let given = signature.strip_prefix("v0=").and_then(|h| hex::decode(h).ok()).ok_or(SignatureRefusal::Mismatch)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(format!("v0:{ts_text}:").as_bytes());
    mac.update(body);
    mac.verify_slice(&given).map_err(|_| SignatureRefusal::Mismatch)?;
    Ok(ts)
}

/// A button click, as Slack posts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interaction {
    /// The workspace.
    pub team: String,
    /// Who clicked (a Slack user id; who they are is asked of `users.info`).
    pub user: String,
    /// Where: the channel (or direct message) of the message.
    pub channel: Option<String>,
    /// The button's `action_id`.
    pub action: String,
    /// The button's value (the ticket id).
    pub value: String,
}

#[derive(Deserialize)]
struct Form {
    payload: String,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    team: Option<Id>,
    user: Id,
    #[serde(default)]
    channel: Option<Id>,
    #[serde(default)]
    actions: Vec<Action>,
}

#[derive(Deserialize)]
struct Id {
    id: String,
}

#[derive(Deserialize)]
struct Action {
    action_id: String,
    #[serde(default)]
    value: Option<String>,
}

/// Why an interaction body cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the interaction's {field}: {reason}")]
pub struct BadInteraction {
    /// The field at fault.
    pub field: String,
    /// What is wrong.
    pub reason: String,
}

impl Interaction {
    /// Reads a `block_actions` interaction (`payload=<json>`, form-encoded);
    /// `None` for the clicks grantwarden has nothing to do with (the portal link).
    pub fn parse(body: &[u8]) -> Result<Option<Interaction>, BadInteraction> {
        let bad = |field: &str, reason: String| BadInteraction { field: field.into(), reason };
        let form: Form = serde_urlencoded::from_bytes(body).map_err(|e| bad("body", e.to_string()))?;
        let payload: Payload = serde_json::from_str(&form.payload).map_err(|e| bad("payload", e.to_string()))?;
        if payload.kind != "block_actions" {
            return Err(bad("payload.type", format!("{:?} is not a button click (block_actions)", payload.kind)));
        }
        let action = payload.actions.into_iter().next().ok_or_else(|| bad("payload.actions", "empty".into()))?;
        if action.action_id != APPROVE_ACTION && action.action_id != DENY_ACTION {
            return Ok(None);
        }
        let value = action
            .value
            .filter(|v| !v.is_empty())
            .ok_or_else(|| bad("payload.actions[0].value", "no ticket".into()))?;
        Ok(Some(Interaction {
            team: payload.team.map(|t| t.id).unwrap_or_default(),
            user: payload.user.id,
            channel: payload.channel.map(|c| c.id),
            action: action.action_id,
            value,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    #[test]
    fn slacks_documented_example_verifies() {
        // api.slack.com/authentication/verifying-requests-from-slack
        let secret = b"8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let ts = "1531420618";
        assert_eq!(sign(secret, ts, body), "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503");
        let at = DateTime::from_timestamp(1_531_420_618 + 60, 0).unwrap();
        assert_eq!(verify(secret, Some(ts), Some(&sign(secret, ts, body)), body, at), Ok(1_531_420_618));
    }

    #[test]
    fn a_forged_stale_or_unsigned_request_is_refused() {
        let ts = now().timestamp().to_string();
        let body = b"payload=%7B%7D";
        let good = sign(b"secret", &ts, body);
        assert_eq!(verify(b"other", Some(&ts), Some(&good), body, now()), Err(SignatureRefusal::Mismatch));
        assert_eq!(
            verify(b"secret", Some(&ts), Some(&good), b"payload=%7Bx%7D", now()),
            Err(SignatureRefusal::Mismatch)
        );
        assert_eq!(
            verify(b"secret", None, Some(&good), body, now()),
            Err(SignatureRefusal::Missing("X-Slack-Request-Timestamp"))
        );
        assert_eq!(
            verify(b"secret", Some(&ts), None, body, now()),
            Err(SignatureRefusal::Missing("X-Slack-Signature"))
        );
        let old = (now().timestamp() - 301).to_string();
        let refused = verify(b"secret", Some(&old), Some(&sign(b"secret", &old, body)), body, now());
        assert_eq!(refused, Err(SignatureRefusal::Stale { seconds: 301 }));
    }

    #[test]
    fn a_click_is_read_and_a_foreign_payload_named() {
        let payload = json!({ "type": "block_actions", "team": { "id": "T1" }, "user": { "id": "U2" },
            "channel": { "id": "C3" }, "actions": [{ "action_id": APPROVE_ACTION, "value": "tkt-1" }] });
        let body = serde_urlencoded::to_string([("payload", payload.to_string())]).unwrap();
        let click = Interaction::parse(body.as_bytes()).unwrap().unwrap();
        assert_eq!((click.team.as_str(), click.user.as_str(), click.value.as_str()), ("T1", "U2", "tkt-1"));
        let e = Interaction::parse(
            b"payload=%7B%22type%22%3A%22view_submission%22%2C%22user%22%3A%7B%22id%22%3A%22U%22%7D%7D",
        )
        .unwrap_err();
        assert_eq!(e.field, "payload.type");
    }

    #[test]
    fn a_long_justification_is_cut_to_what_slack_takes() {
        let card = grantwarden_core::notify::Card {
            ticket: "tkt-1".into(),
            title: "x".repeat(400),
            fields: vec![("Justification".into(), "<".repeat(5000))],
            status: "Waiting".into(),
            approve: true,
            deny: true,
            approve_elsewhere: None,
            link: None,
        };
        let blocks = blocks(&Message { text: "t".into(), card: Some(card) });
        assert_eq!(blocks[0]["text"]["text"].as_str().unwrap().chars().count(), 150);
        let field = blocks[1]["fields"][0]["text"].as_str().unwrap();
        assert_eq!(field.chars().count(), FIELD_MAX);
        assert!(field.ends_with('…'));
    }

    #[test]
    fn user_text_cannot_ping_or_link() {
        assert_eq!(escape("<!channel> & <https://x|y>"), "&lt;!channel&gt; &amp; &lt;https://x|y&gt;");
    }
}
