//! grantwarden-oidc: who a token says a person is, verified.
//!
//! An identity provider with OpenID Connect discovery (Okta, Entra ID, Google,
//! Keycloak, Cognito...) signs ID tokens; the portal receives one at sign-in
//! and machine clients send one as `Authorization: Bearer`. A [`Verifier`]
//! reads the issuer's discovery document and its signing keys (JWKS), and
//! accepts a token only when all of this holds:
//! - its algorithm is an asymmetric one ([`ALGORITHMS`]): `none` and the HMAC
//!   algorithms are refused before any key is looked at (an HMAC "signature"
//!   made with the issuer's public key as the secret proves nothing);
//! - its key id names one of the issuer's keys of that algorithm's family, and
//!   the signature verifies (jsonwebtoken does the cryptography). A key id we do
//!   not know makes the verifier fetch the keys again (the issuer rotated), at
//!   most once per [`Settings::min_refresh`];
//! - `iss` is the issuer, `aud` holds the client id (and `azp`, when there are
//!   several audiences, is the client id), `exp` is in the future, `nbf` and
//!   `iat` are not, all against the caller's clock with a small leeway;
//! - when the caller expects a nonce (the sign-in it started), `nonce` is it;
//! - the identity claim (`email` by default) is there, and `email_verified` is
//!   not `false`.
//!
//! The result is a [`grantwarden_core::identity::Actor`]: the identity,
//! lower-cased, the `groups` claim, and the sign-in time (`auth_time`, else `iat`).
//!
//! It never logs a token, and errors never quote one.
//!
//! # Layout
//! - [`Settings`]: issuer, client id and claims, read from the environment by the binaries.
//! - [`Verifier`]: discovery, the key cache, [`Verifier::verify`].
//! - [`TokenRefusal`]: why a token is not accepted, one variant per check.
#![deny(missing_docs)]

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use grantwarden_core::identity::Actor;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::RwLock;

/// The signature algorithms a token may use: asymmetric only.
pub const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// How far the issuer's clock and ours may disagree.
pub const LEEWAY: Duration = Duration::from_secs(60);

/// What the verifier needs to know of the identity provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The issuer URL (`iss`); its discovery document is at
    /// `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// The client id grantwarden is registered as: a token's audience.
    pub client_id: String,
    /// The claim that is the identity (default `email`).
    pub identity_claim: String,
    /// The claim listing the person's groups (default `groups`).
    pub groups_claim: String,
    /// The shortest time between two fetches of the issuer's keys.
    pub min_refresh: Duration,
    /// The timeout of each request to the identity provider.
    pub timeout: Duration,
}

impl Settings {
    /// Settings that read the identity and the groups from the named claims.
    pub fn with_claims(issuer: &str, client_id: &str, identity_claim: &str, groups_claim: &str) -> Self {
        Settings {
            identity_claim: identity_claim.to_owned(),
            groups_claim: groups_claim.to_owned(),
            ..Self::new(issuer, client_id)
        }
    }

    /// Settings with the default claims.
    pub fn new(issuer: &str, client_id: &str) -> Self {
        Settings {
            issuer: issuer.trim_end_matches('/').to_owned(),
            client_id: client_id.to_owned(),
            identity_claim: "email".into(),
            groups_claim: "groups".into(),
            min_refresh: Duration::from_secs(30),
            timeout: Duration::from_secs(5),
        }
    }
}

/// The identity provider's endpoints, from its discovery document.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Discovery {
    /// `issuer`: must be the configured one.
    pub issuer: String,
    /// `authorization_endpoint`: where the portal sends a browser to sign in.
    pub authorization_endpoint: String,
    /// `token_endpoint`: where the portal exchanges the code.
    pub token_endpoint: String,
    /// `jwks_uri`: the signing keys.
    pub jwks_uri: String,
    /// `end_session_endpoint`, when the provider has one (sign-out).
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
}

/// The identity provider could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// A request to it failed.
    #[error("the identity provider did not answer {url}: {reason}")]
    Unreachable {
        /// What was asked.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// Its discovery document names another issuer.
    #[error("the discovery document of {configured} names issuer {found}")]
    IssuerMismatch {
        /// The configured issuer.
        configured: String,
        /// The issuer the document names.
        found: String,
    },
}

/// Why a token is not accepted.
#[derive(Debug, thiserror::Error)]
pub enum TokenRefusal {
    /// Not three base64url parts with a readable header.
    #[error("the token is not a signed JWT: {0}")]
    Malformed(String),
    /// `none`, an HMAC algorithm, or one we do not know.
    #[error("the token's algorithm {0} is not accepted: tokens are signed with the issuer's asymmetric keys")]
    Algorithm(String),
    /// No `kid`, or none of the issuer's keys has it (even after fetching them again).
    #[error("the token's key {0:?} is not one of the issuer's signing keys")]
    UnknownKey(String),
    /// The key's type does not fit the algorithm, or the key cannot be used.
    #[error("key {kid} cannot verify {alg} signatures")]
    KeyMismatch {
        /// The key id.
        kid: String,
        /// The algorithm.
        alg: String,
    },
    /// The signature does not verify, or a claim has the wrong type.
    #[error("the token does not verify: {0}")]
    Invalid(String),
    /// `iss` is another issuer.
    #[error("the token was issued by {0}, not the configured issuer")]
    Issuer(String),
    /// `aud` does not hold the client id, or `azp` is another client.
    #[error("the token is not for this client (aud/azp)")]
    Audience,
    /// `exp` has passed.
    #[error("the token expired at {0}")]
    Expired(DateTime<Utc>),
    /// `nbf` or `iat` is in the future.
    #[error("the token is not valid yet")]
    NotYetValid,
    /// The nonce of the sign-in is missing or another.
    #[error("the token's nonce is not the one this sign-in sent")]
    Nonce,
    /// The identity claim is missing or empty.
    #[error("the token has no {0} claim")]
    NoIdentity(String),
    /// `email_verified` is false.
    #[error("the identity provider has not verified this email address")]
    EmailNotVerified,
    /// The provider could not be asked for its keys.
    #[error(transparent)]
    Provider(#[from] ProviderError),
}

impl TokenRefusal {
    /// Whether the refusal is ours to fix (the provider is down), not the token's.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, TokenRefusal::Provider(_))
    }
}

/// A verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Who it says the person is.
    pub actor: Actor,
    /// `sub`.
    pub subject: String,
    /// `exp`.
    pub expires_at: DateTime<Utc>,
}

struct Keys {
    set: JwkSet,
    fetched: Instant,
}

/// Verifies tokens of one issuer for one client; cheap to share (`Arc`).
pub struct Verifier {
    settings: Settings,
    discovery: Discovery,
    http: reqwest::Client,
    keys: RwLock<Keys>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("issuer", &self.settings.issuer).finish_non_exhaustive()
    }
}

/// The claims a token is read for; the rest is ignored.
#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    sub: Option<String>,
    #[serde(default)]
    aud: Audience,
    azp: Option<String>,
    exp: i64,
    nbf: Option<i64>,
    iat: Option<i64>,
    auth_time: Option<i64>,
    nonce: Option<String>,
    email_verified: Option<serde_json::Value>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
    #[default]
    None,
}

impl Audience {
    fn all(&self) -> Vec<&str> {
        match self {
            Audience::One(a) => vec![a.as_str()],
            Audience::Many(list) => list.iter().map(String::as_str).collect(),
            Audience::None => Vec::new(),
        }
    }
}

impl Verifier {
    /// Reads the issuer's discovery document and keys.
    pub async fn discover(settings: Settings) -> Result<Self, ProviderError> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ProviderError::Unreachable { url: settings.issuer.clone(), reason: e.to_string() })?;
        let url = format!("{}/.well-known/openid-configuration", settings.issuer);
        let discovery: Discovery = get_json(&http, &url).await?;
        if discovery.issuer.trim_end_matches('/') != settings.issuer {
            return Err(ProviderError::IssuerMismatch {
                configured: settings.issuer.clone(),
                found: discovery.issuer.clone(),
            });
        }
        let set: JwkSet = get_json(&http, &discovery.jwks_uri).await?;
        Ok(Verifier { settings, discovery, http, keys: RwLock::new(Keys { set, fetched: Instant::now() }) })
    }

    /// The provider's endpoints.
    pub fn discovery(&self) -> &Discovery {
        &self.discovery
    }

    /// The settings it verifies with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The HTTP client it talks to the provider with (the portal's code exchange uses it too).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Verifies `token` at `now`; `nonce` is the one the caller's sign-in sent
    /// (`None` for a bearer token, which no sign-in of ours started).
    pub async fn verify(&self, token: &str, now: DateTime<Utc>, nonce: Option<&str>) -> Result<Verified, TokenRefusal> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            // an `alg` jsonwebtoken has no variant for (`none` among them)
            jsonwebtoken::errors::ErrorKind::Json(_) => TokenRefusal::Algorithm(alg_of(token)),
            _ => TokenRefusal::Malformed(e.to_string()),
        })?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(TokenRefusal::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.clone().ok_or_else(|| TokenRefusal::UnknownKey(String::new()))?;
        let jwk = self.key(&kid).await?;
        if !fits(&jwk, header.alg) {
            return Err(TokenRefusal::KeyMismatch { kid, alg: format!("{:?}", header.alg) });
        }
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|_| TokenRefusal::KeyMismatch { kid: kid.clone(), alg: format!("{:?}", header.alg) })?;
        // the signature only: every claim is checked below against the caller's clock
        let mut validation = Validation::new(header.alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims = HashSet::new();
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|e| TokenRefusal::Invalid(e.to_string()))?;
        self.check(data.claims, now, nonce)
    }

    fn check(&self, c: Claims, now: DateTime<Utc>, nonce: Option<&str>) -> Result<Verified, TokenRefusal> {
        if c.iss.trim_end_matches('/') != self.settings.issuer {
            return Err(TokenRefusal::Issuer(c.iss));
        }
        let audiences = c.aud.all();
        if !audiences.contains(&self.settings.client_id.as_str()) {
            return Err(TokenRefusal::Audience);
        }
        if audiences.len() > 1 && c.azp.as_deref() != Some(self.settings.client_id.as_str()) {
            return Err(TokenRefusal::Audience);
        }
        let leeway = chrono::Duration::from_std(LEEWAY).unwrap_or_default();
        let time = |s: i64| Utc.timestamp_opt(s, 0).single().ok_or_else(|| TokenRefusal::Invalid(format!("time {s}")));
        let expires_at = time(c.exp)?;
        if expires_at + leeway <= now {
            return Err(TokenRefusal::Expired(expires_at));
        }
        for t in [c.nbf, c.iat].into_iter().flatten() {
            if time(t)? - leeway > now {
                return Err(TokenRefusal::NotYetValid);
            }
        }
        if let Some(expected) = nonce
            && c.nonce.as_deref() != Some(expected)
        {
            return Err(TokenRefusal::Nonce);
        }
        let claim = &self.settings.identity_claim;
        let identity = match claim.as_str() {
            "sub" => c.sub.clone(),
            _ => c.rest.get(claim).and_then(|v| v.as_str()).map(str::to_owned),
        }
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && !s.chars().any(char::is_control))
        .ok_or_else(|| TokenRefusal::NoIdentity(claim.clone()))?;
        if claim == "email" && matches!(&c.email_verified, Some(v) if v == false || v == "false") {
            return Err(TokenRefusal::EmailNotVerified);
        }
        let groups: BTreeSet<String> = match c.rest.get(&self.settings.groups_claim) {
            Some(serde_json::Value::Array(list)) => list.iter().filter_map(|g| g.as_str()).map(str::to_owned).collect(),
            Some(serde_json::Value::String(one)) => BTreeSet::from([one.clone()]),
            _ => BTreeSet::new(),
        };
        let signed_in_at = time(c.auth_time.or(c.iat).unwrap_or(c.exp))?;
        Ok(Verified {
            actor: Actor::from_token(&identity, groups, signed_in_at, &self.settings.issuer),
            subject: c.sub.unwrap_or_default(),
            expires_at,
        })
    }

    /// The key `kid`; fetches the keys again when it is not among them (the
    /// issuer rotated), unless they were fetched within `min_refresh`.
    async fn key(&self, kid: &str) -> Result<Jwk, TokenRefusal> {
        {
            let keys = self.keys.read().await;
            if let Some(k) = keys.set.find(kid) {
                return Ok(k.clone());
            }
            if keys.fetched.elapsed() < self.settings.min_refresh {
                return Err(TokenRefusal::UnknownKey(kid.to_owned()));
            }
        }
        let mut keys = self.keys.write().await;
        if keys.set.find(kid).is_none() && keys.fetched.elapsed() >= self.settings.min_refresh {
            let set: JwkSet = get_json(&self.http, &self.discovery.jwks_uri).await?;
            tracing::info!(keys = set.keys.len(), "fetched the identity provider's signing keys again");
            *keys = Keys { set, fetched: Instant::now() };
        }
        keys.set.find(kid).cloned().ok_or_else(|| TokenRefusal::UnknownKey(kid.to_owned()))
    }
}

/// Whether `jwk` is a key of `alg`'s family (and of `alg` itself when it says).
fn fits(jwk: &Jwk, alg: Algorithm) -> bool {
    if let Some(declared) = jwk.common.key_algorithm
        && format!("{declared:?}") != format!("{alg:?}")
    {
        return false;
    }
    matches!(
        (&jwk.algorithm, alg),
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512,
        ) | (AlgorithmParameters::EllipticCurve(_), Algorithm::ES256 | Algorithm::ES384)
            | (AlgorithmParameters::OctetKeyPair(_), Algorithm::EdDSA)
    )
}

/// The `alg` a header names, for the error, without trusting anything else in it.
fn alg_of(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
        .and_then(|h| h.get("alg").and_then(|a| a.as_str()).map(|a| a.chars().take(16).collect()))
        .unwrap_or_else(|| "(unreadable)".into())
}

async fn get_json<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &str) -> Result<T, ProviderError> {
    let failed = |reason: String| ProviderError::Unreachable { url: url.to_owned(), reason };
    let response = http.get(url).send().await.map_err(|e| failed(e.to_string()))?;
    if !response.status().is_success() {
        return Err(failed(format!("status {}", response.status())));
    }
    response.json::<T>().await.map_err(|e| failed(format!("unreadable answer: {e}")))
}

/// A verifier made on first use: a function starts (and its HMAC routes
/// serve) while the identity provider is unreachable, and discovery is tried
/// again at the next token until it succeeds.
#[derive(Debug)]
pub struct LazyVerifier {
    settings: Settings,
    cell: tokio::sync::OnceCell<Verifier>,
}

impl LazyVerifier {
    /// Discovery happens at the first [`LazyVerifier::get`].
    pub fn new(settings: Settings) -> Self {
        LazyVerifier { settings, cell: tokio::sync::OnceCell::new() }
    }

    /// A verifier already made.
    pub fn ready(verifier: Verifier) -> Self {
        LazyVerifier { settings: verifier.settings.clone(), cell: tokio::sync::OnceCell::new_with(Some(verifier)) }
    }

    /// The verifier, discovering the provider if it has not been yet.
    pub async fn get(&self) -> Result<&Verifier, ProviderError> {
        self.cell.get_or_try_init(|| Verifier::discover(self.settings.clone())).await
    }

    /// Verifies a token (see [`Verifier::verify`]).
    pub async fn verify(&self, token: &str, now: DateTime<Utc>, nonce: Option<&str>) -> Result<Verified, TokenRefusal> {
        self.get().await?.verify(token, now, nonce).await
    }
}

/// A sign-in started: what the browser is sent to, and what must come back.
///
/// The portal keeps `state`, `nonce` and `verifier` (in an encrypted cookie)
/// until the provider redirects back; `state` must match the callback's,
/// `nonce` the ID token's, and `verifier` proves the code is ours (PKCE S256).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct SignIn {
    /// Where to send the browser.
    pub url: String,
    /// The CSRF guard of the callback.
    pub state: String,
    /// What the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier.
    pub verifier: String,
}

/// The code exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    /// The token endpoint refused the code or could not be reached.
    #[error("the identity provider refused the sign-in: {0}")]
    Refused(String),
    /// The ID token it returned does not verify.
    #[error(transparent)]
    Token(#[from] TokenRefusal),
}

/// A random URL-safe string of `bytes` random bytes.
fn random_url_safe(bytes: usize) -> String {
    use base64::Engine as _;
    let raw: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

impl Verifier {
    /// Starts a sign-in (authorization code flow with PKCE, state and nonce);
    /// `max_age` asks the provider for a sign-in no older than that (0: a fresh one).
    pub fn sign_in(&self, redirect_uri: &str, max_age: Option<Duration>) -> SignIn {
        use base64::Engine as _;
        use sha2::Digest as _;
        let (state, nonce, verifier) = (random_url_safe(24), random_url_safe(24), random_url_safe(32));
        let challenge =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
        let mut url = reqwest::Url::parse(&self.discovery.authorization_endpoint)
            .unwrap_or_else(|_| reqwest::Url::parse("http://invalid.invalid/").expect("a URL"));
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("response_type", "code")
                .append_pair("client_id", &self.settings.client_id)
                .append_pair("redirect_uri", redirect_uri)
                .append_pair("scope", "openid email profile")
                .append_pair("state", &state)
                .append_pair("nonce", &nonce)
                .append_pair("code_challenge", &challenge)
                .append_pair("code_challenge_method", "S256");
            if let Some(age) = max_age {
                q.append_pair("max_age", &age.as_secs().to_string());
                if age.is_zero() {
                    q.append_pair("prompt", "login");
                }
            }
        }
        SignIn { url: url.into(), state, nonce, verifier }
    }

    /// Exchanges the callback's code for an ID token and verifies it with the
    /// sign-in's nonce. `client_secret` is sent (client_secret_post) when the
    /// client has one; a public client relies on PKCE alone.
    pub async fn exchange(
        &self,
        code: &str,
        sign_in: &SignIn,
        redirect_uri: &str,
        client_secret: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Verified, ExchangeError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", self.settings.client_id.as_str()),
            ("code_verifier", sign_in.verifier.as_str()),
        ];
        if let Some(secret) = client_secret {
            form.push(("client_secret", secret));
        }
        let response = self
            .http
            .post(&self.discovery.token_endpoint)
            .form(&form)
            .send()
            .await
            .map_err(|e| ExchangeError::Refused(format!("token endpoint unreachable: {e}")))?;
        let status = response.status();
        let body: serde_json::Value =
            response.json().await.map_err(|e| ExchangeError::Refused(format!("unreadable answer: {e}")))?;
        if !status.is_success() {
            let error = body.get("error").and_then(|e| e.as_str()).unwrap_or("error");
            return Err(ExchangeError::Refused(format!("{status}: {error}")));
        }
        let token = body
            .get("id_token")
            .and_then(|t| t.as_str())
            .ok_or_else(|| ExchangeError::Refused("no id_token in the answer".into()))?;
        Ok(self.verify(token, now, Some(&sign_in.nonce)).await?)
    }
}
