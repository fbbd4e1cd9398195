//! A fake Slack Web API, served over HTTP on 127.0.0.1.
//!
//! It answers the calls grantwarden makes as Slack does: JSON bodies with
//! `ok` and, on failure, Slack's `error` strings (`invalid_auth` for another
//! token, `channel_not_found`, `message_not_found`, `users_not_found`,
//! `user_not_found`); `chat.postMessage` to a user id opens the app's direct
//! message with them (a `D...` channel). Every call is recorded with its
//! parameters, and the service can be taken down ([`FakeSlack::set_down`]:
//! 503 to everything) and brought back.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Default)]
struct Workspace {
    token: String,
    users: BTreeMap<String, Value>,
    channels: BTreeSet<String>,
    messages: BTreeMap<(String, String), Value>,
    calls: Vec<(String, Value)>,
    down: bool,
    next_ts: u64,
}

/// The fake Slack; it stops when dropped.
pub struct FakeSlack {
    /// The Web API's base URL (`http://127.0.0.1:<port>/api`).
    pub api: String,
    /// The bot token it accepts.
    pub token: String,
    /// The workspace's team id.
    pub team: String,
    state: Arc<Mutex<Workspace>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeSlack {
    /// Starts a workspace `T0GRANT` whose bot token is `xoxb-test`, with no
    /// users or channels, on a free port.
    pub async fn start() -> Self {
        Self::start_on("127.0.0.1:0", "xoxb-test").await
    }

    /// The same on `addr` (a port the code under test was configured with
    /// before), accepting the bot token `token`.
    pub async fn start_on(addr: &str, token: &str) -> Self {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("the fake Slack's port is free");
        let addr: SocketAddr = listener.local_addr().expect("an address");
        let (token, team) = (token.to_owned(), "T0GRANT".to_owned());
        let state = Arc::new(Mutex::new(Workspace { token: token.clone(), next_ts: 1, ..Default::default() }));
        let app = Router::new().route("/api/{method}", post(call)).with_state(Arc::clone(&state));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeSlack { api: format!("http://{addr}/api"), token, team, state, server }
    }

    /// Adds a member `id` with `email` (confirmed by Slack unless `confirmed` is false).
    pub fn add_user(&self, id: &str, email: &str, confirmed: bool) {
        let team = self.team.clone();
        self.put_user(
            id,
            json!({ "id": id, "team_id": team, "name": email.split('@').next(), "deleted": false,
            "is_bot": false, "is_restricted": false, "is_ultra_restricted": false,
            "is_email_confirmed": confirmed, "profile": { "email": email } }),
        );
    }

    /// Adds or replaces a user as `users.info` returns it.
    pub fn put_user(&self, id: &str, user: Value) {
        self.state.lock().expect("the workspace").users.insert(id.to_owned(), user);
    }

    /// Adds a channel the bot is in.
    pub fn add_channel(&self, id: &str) {
        self.state.lock().expect("the workspace").channels.insert(id.to_owned());
    }

    /// Takes the service down (503 to every call) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.state.lock().expect("the workspace").down = down;
    }

    /// The parameters of every call of `method` answered, in order.
    pub fn calls(&self, method: &str) -> Vec<Value> {
        let state = self.state.lock().expect("the workspace");
        state.calls.iter().filter(|(m, _)| m == method).map(|(_, p)| p.clone()).collect()
    }

    /// The message at `channel`/`ts` as last posted or updated.
    pub fn message(&self, channel: &str, ts: &str) -> Option<Value> {
        self.state.lock().expect("the workspace").messages.get(&(channel.to_owned(), ts.to_owned())).cloned()
    }

    /// The messages of `channel`, in order of posting.
    pub fn messages(&self, channel: &str) -> Vec<Value> {
        let state = self.state.lock().expect("the workspace");
        state.messages.iter().filter(|((c, _), _)| c == channel).map(|(_, m)| m.clone()).collect()
    }
}

/// The form body Slack posts when `user` of workspace `team` presses the
/// button `action` (its value `ticket`) on a card in `channel`.
pub fn click_body(team: &str, user: &str, channel: &str, action: &str, ticket: &str) -> String {
    let payload = json!({ "type": "block_actions", "team": { "id": team }, "user": { "id": user },
        "channel": { "id": channel }, "container": { "type": "message", "message_ts": "1800000000.000001" },
        "actions": [{ "action_id": action, "value": ticket, "type": "button" }] });
    serde_urlencoded::to_string([("payload", payload.to_string())]).expect("a form body")
}

fn fail(error: &str) -> Value {
    json!({ "ok": false, "error": error })
}

async fn call(
    State(state): State<Arc<Mutex<Workspace>>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut ws = state.lock().expect("the workspace");
    if ws.down {
        return (StatusCode::SERVICE_UNAVAILABLE, "slack is down").into_response();
    }
    let json_body =
        headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|c| c.starts_with("application/json"));
    let params: Value = if json_body {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    } else {
        let pairs: BTreeMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
        json!(pairs)
    };
    let bearer = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(ws.token.as_str()) {
        return axum::Json(fail("invalid_auth")).into_response();
    }
    ws.calls.push((method.clone(), params.clone()));
    let text = |k: &str| params.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let answer = match method.as_str() {
        "chat.postMessage" => {
            let mut channel = text("channel");
            if ws.users.contains_key(&channel) {
                channel = format!("D{}", &channel[1..]);
            } else if !ws.channels.contains(&channel) {
                return axum::Json(fail("channel_not_found")).into_response();
            }
            let ts = format!("1800000000.{:06}", ws.next_ts);
            ws.next_ts += 1;
            ws.messages.insert((channel.clone(), ts.clone()), params.clone());
            json!({ "ok": true, "channel": channel, "ts": ts, "message": { "text": text("text") } })
        }
        "chat.update" => {
            let key = (text("channel"), text("ts"));
            if !ws.messages.contains_key(&key) {
                return axum::Json(fail("message_not_found")).into_response();
            }
            ws.messages.insert(key.clone(), params.clone());
            json!({ "ok": true, "channel": key.0, "ts": key.1 })
        }
        "chat.postEphemeral" => json!({ "ok": true, "message_ts": "1800000000.999999" }),
        "users.info" => match ws.users.get(&text("user")) {
            Some(user) => json!({ "ok": true, "user": user }),
            None => fail("user_not_found"),
        },
        "users.lookupByEmail" => {
            let email = text("email").to_ascii_lowercase();
            let found =
                ws.users.values().find(|u| u.pointer("/profile/email").and_then(Value::as_str) == Some(email.as_str()));
            match found {
                Some(user) => json!({ "ok": true, "user": user }),
                None => fail("users_not_found"),
            }
        }
        _ => fail("unknown_method"),
    };
    axum::Json(answer).into_response()
}
