//! A fake OpenID Connect identity provider, served over HTTP on 127.0.0.1.
//!
//! It answers like a real one where grantwarden talks to it: the discovery
//! document at `/.well-known/openid-configuration`, the signing keys at
//! `/jwks`, and the authorization code flow with PKCE: `/authorize` signs the
//! browser in as the person [`FakeIdp::sign_in_as`] names (no form: it
//! redirects back at once with a code and the state) and `/token` exchanges a
//! code once, for its redirect URI and client, when the code verifier hashes to
//! the challenge, for an ID token carrying the nonce. Tests mint tokens with [`FakeIdp::token`], signed with the
//! provider's current key (RSA, from `fixtures/oidc`, test-only keys), and can
//! rotate the key ([`FakeIdp::rotate`]) or forge tokens the way attackers do
//! (`alg: none`, HMAC with the public key as secret, another issuer's key).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const RSA_A: (&str, &str) =
    (include_str!("../fixtures/oidc/rsa-a.pem"), include_str!("../fixtures/oidc/rsa-a.jwk.json"));
const RSA_B: (&str, &str) =
    (include_str!("../fixtures/oidc/rsa-b.pem"), include_str!("../fixtures/oidc/rsa-b.jwk.json"));
const EC_A: (&str, &str) = (include_str!("../fixtures/oidc/ec-a.pem"), include_str!("../fixtures/oidc/ec-a.jwk.json"));

/// The client id the fake provider's tokens are for.
pub const CLIENT_ID: &str = "grantwarden-tests";

struct Key {
    kid: String,
    alg: Algorithm,
    pem: &'static str,
    jwk: Value,
}

impl Key {
    fn of((pem, jwk): (&'static str, &'static str), alg: Algorithm) -> Self {
        let jwk: Value = serde_json::from_str(jwk).expect("a fixture JWK");
        Key { kid: jwk["kid"].as_str().expect("a kid").to_owned(), alg, pem, jwk }
    }

    fn encoding(&self) -> EncodingKey {
        match self.alg {
            Algorithm::ES256 => EncodingKey::from_ec_pem(self.pem.as_bytes()),
            _ => EncodingKey::from_rsa_pem(self.pem.as_bytes()),
        }
        .expect("a fixture key")
    }
}

struct Provider {
    issuer: String,
    /// Keys published at /jwks.
    published: Vec<Key>,
    /// The index in `published` of the key tokens are signed with.
    current: usize,
    /// How many times /jwks was read.
    jwks_reads: usize,
    /// Who the browser is signed in as (email, groups), and since when.
    user: Option<(String, Vec<String>, DateTime<Utc>)>,
    /// Codes not yet exchanged.
    codes: HashMap<String, Code>,
    /// The query of each /authorize request, in order.
    authorizations: Vec<HashMap<String, String>>,
}

struct Code {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: String,
    email: String,
    groups: Vec<String>,
    auth_time: DateTime<Utc>,
}

/// The fake provider; it stops when dropped.
pub struct FakeIdp {
    /// The issuer URL (`http://127.0.0.1:<port>`).
    pub issuer: String,
    state: Arc<Mutex<Provider>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeIdp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeIdp {
    /// Starts a provider on a free port, signing with its first RSA key.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr: SocketAddr = listener.local_addr().expect("an address");
        let issuer = format!("http://{addr}");
        let state = Arc::new(Mutex::new(Provider {
            issuer: issuer.clone(),
            published: vec![Key::of(RSA_A, Algorithm::RS256), Key::of(EC_A, Algorithm::ES256)],
            current: 0,
            jwks_reads: 0,
            user: None,
            codes: HashMap::new(),
            authorizations: Vec::new(),
        }));
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(Arc::clone(&state));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeIdp { issuer, state, server }
    }

    /// A token for `email`, to be adjusted and signed.
    pub fn token(&self, email: &str) -> TokenBuilder {
        let now = Utc::now().timestamp();
        let state = self.state.lock().expect("the provider's state");
        TokenBuilder {
            claims: json!({
                "iss": state.issuer, "sub": format!("sub-{email}"), "aud": CLIENT_ID,
                "exp": now + 3600, "iat": now, "auth_time": now,
                "email": email, "email_verified": true,
            }),
            key: state.current,
            state: Arc::clone(&self.state),
            kid: None,
        }
    }

    /// Publishes a new key and signs with it from now on; the old one stays
    /// published until [`FakeIdp::retire_old_keys`].
    pub fn rotate(&self) {
        let mut state = self.state.lock().expect("the provider's state");
        state.published.push(Key::of(RSA_B, Algorithm::RS256));
        state.current = state.published.len() - 1;
    }

    /// Publishes only the current key.
    pub fn retire_old_keys(&self) {
        let mut state = self.state.lock().expect("the provider's state");
        let at = state.current;
        let current = state.published.remove(at);
        state.published = vec![current];
        state.current = 0;
    }

    /// Signs the browser in as `email` with `groups`, at `since` (the sign-in
    /// an `/authorize` without `max_age` or `prompt=login` reuses).
    pub fn sign_in_as(&self, email: &str, groups: &[&str], since: DateTime<Utc>) {
        let mut state = self.state.lock().expect("the provider's state");
        state.user = Some((email.to_owned(), groups.iter().map(|g| g.to_string()).collect(), since));
    }

    /// The queries of the `/authorize` requests so far.
    pub fn authorizations(&self) -> Vec<HashMap<String, String>> {
        self.state.lock().expect("the provider's state").authorizations.clone()
    }

    /// How many times the signing keys were read.
    pub fn jwks_reads(&self) -> usize {
        self.state.lock().expect("the provider's state").jwks_reads
    }

    /// The published RSA public key's modulus, base64url: what an attacker
    /// has, for the HMAC confusion forgery.
    pub fn public_jwk(&self) -> Value {
        let state = self.state.lock().expect("the provider's state");
        state.published[state.current].jwk.clone()
    }
}

/// A token being made; [`TokenBuilder::signed`] signs it like the provider.
pub struct TokenBuilder {
    claims: Value,
    key: usize,
    state: Arc<Mutex<Provider>>,
    kid: Option<String>,
}

impl TokenBuilder {
    /// Sets (or with `Value::Null`, removes) a claim.
    pub fn claim(mut self, name: &str, value: Value) -> Self {
        let claims = self.claims.as_object_mut().expect("claims are an object");
        if value.is_null() {
            claims.remove(name);
        } else {
            claims.insert(name.to_owned(), value);
        }
        self
    }

    /// The person's groups.
    pub fn groups(self, groups: &[&str]) -> Self {
        self.claim("groups", json!(groups))
    }

    /// Signed in at `at`.
    pub fn signed_in_at(self, at: DateTime<Utc>) -> Self {
        self.claim("auth_time", json!(at.timestamp())).claim("iat", json!(at.timestamp()))
    }

    /// Issued (and signed in) at `at`, valid for an hour: for tests whose clock is not the wall's.
    pub fn issued_at(self, at: DateTime<Utc>) -> Self {
        self.signed_in_at(at).claim("exp", json!(at.timestamp() + 3600))
    }

    /// Signed with the provider's EC key (ES256) instead.
    pub fn with_ec_key(mut self) -> Self {
        let state = self.state.lock().expect("the provider's state");
        self.key = state.published.iter().position(|k| k.alg == Algorithm::ES256).expect("an EC key");
        drop(state);
        self
    }

    /// A `kid` header other than the key's.
    pub fn kid(mut self, kid: &str) -> Self {
        self.kid = Some(kid.to_owned());
        self
    }

    /// Signed by the provider.
    pub fn signed(self) -> String {
        let state = self.state.lock().expect("the provider's state");
        let key = &state.published[self.key];
        let mut header = Header::new(key.alg);
        header.kid = Some(self.kid.clone().unwrap_or_else(|| key.kid.clone()));
        jsonwebtoken::encode(&header, &self.claims, &key.encoding()).expect("a token")
    }

    /// Signed with a key of the same id that the provider never published
    /// (an attacker's own RSA key).
    pub fn signed_by_stranger(self) -> String {
        let state = self.state.lock().expect("the provider's state");
        let kid = state.published[self.key].kid.clone();
        let stranger = Key::of(RSA_B, Algorithm::RS256);
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid);
        jsonwebtoken::encode(&header, &self.claims, &stranger.encoding()).expect("a token")
    }

    /// `alg: none`, no signature.
    pub fn unsigned(self) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let state = self.state.lock().expect("the provider's state");
        let header = json!({ "alg": "none", "typ": "JWT", "kid": state.published[self.key].kid });
        format!("{}.{}.", b64.encode(header.to_string()), b64.encode(self.claims.to_string()))
    }

    /// HS256 with `secret` (an attacker uses the public key's bytes), under the provider's kid.
    pub fn signed_hmac(self, secret: &[u8]) -> String {
        let state = self.state.lock().expect("the provider's state");
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(state.published[self.key].kid.clone());
        jsonwebtoken::encode(&header, &self.claims, &EncodingKey::from_secret(secret)).expect("a token")
    }
}

async fn discovery(State(state): State<Arc<Mutex<Provider>>>) -> axum::Json<Value> {
    let issuer = state.lock().expect("the provider's state").issuer.clone();
    axum::Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "end_session_endpoint": format!("{issuer}/logout"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks(State(state): State<Arc<Mutex<Provider>>>) -> axum::Json<Value> {
    let mut state = state.lock().expect("the provider's state");
    state.jwks_reads += 1;
    axum::Json(json!({ "keys": state.published.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>() }))
}

async fn authorize(State(state): State<Arc<Mutex<Provider>>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let mut state = state.lock().expect("the provider's state");
    state.authorizations.push(q.clone());
    let need = |k: &str| q.get(k).cloned().filter(|v| !v.is_empty());
    let (Some(client_id), Some(redirect_uri), Some(challenge), Some(nonce), Some(st)) =
        (need("client_id"), need("redirect_uri"), need("code_challenge"), need("nonce"), need("state"))
    else {
        return (StatusCode::BAD_REQUEST, "client_id, redirect_uri, code_challenge, nonce and state are required")
            .into_response();
    };
    if q.get("response_type").map(String::as_str) != Some("code")
        || q.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        return (StatusCode::BAD_REQUEST, "response_type=code with S256 only").into_response();
    }
    let Some((email, groups, since)) = state.user.clone() else {
        return (StatusCode::UNAUTHORIZED, "nobody is signed in at the fake provider").into_response();
    };
    // max_age or prompt=login: the person signs in again, now
    let fresh = q.contains_key("max_age") || q.get("prompt").map(String::as_str) == Some("login");
    let auth_time = if fresh { Utc::now() } else { since };
    let code = format!("code-{:032x}", rand::random::<u128>());
    state.codes.insert(
        code.clone(),
        Code { client_id, redirect_uri: redirect_uri.clone(), challenge, nonce, email, groups, auth_time },
    );
    let sep = if redirect_uri.contains('?') { '&' } else { '?' };
    let st: String = percent_encode(&st);
    Redirect::to(&format!("{redirect_uri}{sep}code={code}&state={st}")).into_response()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn token(State(state): State<Arc<Mutex<Provider>>>, Form(f): Form<HashMap<String, String>>) -> Response {
    use base64::Engine as _;
    use sha2::Digest as _;
    let mut state = state.lock().expect("the provider's state");
    let refuse = |error: &str| (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": error }))).into_response();
    if f.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return refuse("unsupported_grant_type");
    }
    // a code is good once, whatever happens next
    let Some(code) = f.get("code").and_then(|c| state.codes.remove(c)) else {
        return refuse("invalid_grant");
    };
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    if f.get("client_id") != Some(&code.client_id)
        || f.get("redirect_uri") != Some(&code.redirect_uri)
        || challenge != code.challenge
    {
        return refuse("invalid_grant");
    }
    let key = &state.published[state.current];
    let now = Utc::now().timestamp();
    let claims = json!({
        "iss": state.issuer, "sub": format!("sub-{}", code.email), "aud": code.client_id,
        "exp": now + 3600, "iat": now, "auth_time": code.auth_time.timestamp(), "nonce": code.nonce,
        "email": code.email, "email_verified": true, "groups": code.groups,
    });
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    let id_token = jsonwebtoken::encode(&header, &claims, &key.encoding()).expect("a token");
    axum::Json(json!({ "id_token": id_token, "access_token": "fake-access-token", "token_type": "Bearer", "expires_in": 3600 }))
        .into_response()
}
