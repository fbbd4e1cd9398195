//! The signed-in person, kept in an encrypted, authenticated cookie; the
//! sign-in in progress, in another; the CSRF token every form carries.
//!
//! Both cookies are private (AES-256-GCM under the portal's key, through
//! axum-extra's `PrivateCookieJar`): a browser can neither read nor forge them.
//! They are `HttpOnly`, `Secure`, `SameSite=Lax` and scoped to `/`; the
//! session lasts at most [`SESSION_LIFETIME`], the sign-in [`SIGN_IN_LIFETIME`].

use axum_extra::extract::cookie::{Cookie, PrivateCookieJar, SameSite};
use chrono::{DateTime, Utc};
use grantwarden_core::identity::{Actor, Voucher};
use serde::{Deserialize, Serialize};

/// The longest a session lasts from sign-in.
pub const SESSION_LIFETIME: chrono::Duration = chrono::Duration::hours(8);
/// How long a sign-in may take at the identity provider.
pub const SIGN_IN_LIFETIME: chrono::Duration = chrono::Duration::minutes(10);

const SESSION: &str = "gw_session";
const SIGN_IN: &str = "gw_sign_in";

/// A signed-in person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The identity, lower-cased.
    pub person: String,
    /// The identity provider's groups.
    pub groups: Vec<String>,
    /// The token's sign-in time (`auth_time`).
    pub signed_in_at: DateTime<Utc>,
    /// The issuer that vouched for it.
    pub issuer: String,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
    /// The CSRF token of this session's forms.
    pub csrf: String,
}

impl Session {
    /// A session for the person a verified token names, from `now`.
    pub fn start(actor: &Actor, now: DateTime<Utc>) -> Self {
        let issuer = match &actor.vouched_by {
            Voucher::Token { issuer } => issuer.clone(),
            other => other.to_string(),
        };
        Session {
            person: actor.id.clone(),
            groups: actor.groups.iter().cloned().collect(),
            signed_in_at: actor.signed_in_at.unwrap_or(now),
            issuer,
            expires_at: now + SESSION_LIFETIME,
            csrf: random_token(),
        }
    }

    /// The person as an actor of the core's use cases.
    pub fn actor(&self) -> Actor {
        Actor::from_token(&self.person, self.groups.iter().cloned().collect(), self.signed_in_at, &self.issuer)
    }

    /// The session in `jar`, if there is one that has not ended at `now`.
    pub fn read(jar: &PrivateCookieJar, now: DateTime<Utc>) -> Option<Self> {
        let cookie = jar.get(SESSION)?;
        let session: Session = serde_json::from_str(cookie.value()).ok()?;
        (session.expires_at > now).then_some(session)
    }

    /// `jar` holding this session.
    pub fn write(&self, jar: PrivateCookieJar) -> PrivateCookieJar {
        let value = serde_json::to_string(self).expect("a session serializes");
        // the browser forgets it when the session ends; the server checks expires_at anyway
        jar.add(cookie(SESSION, value, (self.expires_at - Utc::now()).num_seconds()))
    }

    /// `jar` without a session.
    pub fn clear(jar: PrivateCookieJar) -> PrivateCookieJar {
        jar.remove(Cookie::build(SESSION).path("/"))
    }

    /// Whether `token` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, token: &str) -> bool {
        let (a, b) = (self.csrf.as_bytes(), token.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// A sign-in in progress: what the provider must send back, and where to go after.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingSignIn {
    /// The sign-in (state, nonce, PKCE verifier).
    pub sign_in: grantwarden_oidc::SignIn,
    /// The portal page to return to (a path of the portal).
    pub return_to: String,
    /// When it was started.
    pub started_at: DateTime<Utc>,
}

impl PendingSignIn {
    /// The sign-in in `jar`, if it has not run out at `now`.
    pub fn read(jar: &PrivateCookieJar, now: DateTime<Utc>) -> Option<Self> {
        let pending: PendingSignIn = serde_json::from_str(jar.get(SIGN_IN)?.value()).ok()?;
        (now - pending.started_at < SIGN_IN_LIFETIME).then_some(pending)
    }

    /// `jar` holding this sign-in.
    pub fn write(&self, jar: PrivateCookieJar) -> PrivateCookieJar {
        let value = serde_json::to_string(self).expect("a sign-in serializes");
        jar.add(cookie(SIGN_IN, value, SIGN_IN_LIFETIME.num_seconds()))
    }

    /// `jar` without it (a sign-in is used once).
    pub fn clear(jar: PrivateCookieJar) -> PrivateCookieJar {
        jar.remove(Cookie::build(SIGN_IN).path("/"))
    }
}

fn cookie(name: &'static str, value: String, max_age_seconds: i64) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/")
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(max_age_seconds.max(0)))
        .build()
}

/// 32 random bytes, URL-safe.
pub fn random_token() -> String {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `path` is a path of this portal to return to after sign-in
/// (never another site: `//host`, `/\host` or a scheme are refused).
pub fn is_local_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.starts_with("/\\")
        && !path.chars().any(|c| c.is_control() || c == '\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_of_the_portal_are_returned_to() {
        for ok in ["/", "/requests/tkt-1", "/requests/new?x=1"] {
            assert!(is_local_path(ok), "{ok}");
        }
        for bad in ["https://evil.test/", "//evil.test", "/\\evil.test", "evil", "", "/a\nb"] {
            assert!(!is_local_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_csrf_token_matches_only_itself() {
        let actor = Actor::from_token("a@example.com", Default::default(), Utc::now(), "https://idp");
        let s = Session::start(&actor, Utc::now());
        assert!(s.csrf_matches(&s.csrf.clone()));
        assert!(!s.csrf_matches(""));
        assert!(!s.csrf_matches(&random_token()));
    }
}
