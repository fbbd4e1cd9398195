//! Who is acting, and who says so.
//!
//! A person is never a string from a request body. A person is an [`Actor`]:
//! an identity with the [`Voucher`] that established it.
//! - A verified OpenID Connect token (the portal's session, or a bearer token
//!   on the machine API): the identity claim, the groups and the time of sign-in
//!   are the token's.
//! - A signed sender of the registry's `senders:` section (an HMAC key of its
//!   own): it may name a person only on the routes and for the principals the
//!   registry lists for it ([`SenderRule::assert`]), and every event it causes
//!   records that it was asserted by that sender.
//! - The operator of the local CLI, who holds the state file and the database
//!   URL: `--by` is theirs to say.
//!
//! Two acts need a sign-in no older than [`RECENT_SIGN_IN`]: an approval that
//! is one of two (dual approval), and renewing break-glass access. Only a token
//! proves a sign-in time, so a sender can do neither.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};

use crate::error::FieldError;

/// How old a sign-in may be for a dual approval or a break-glass renewal.
pub const RECENT_SIGN_IN: Duration = Duration::from_secs(15 * 60);

/// The sender whose key is the function's own webhook key
/// (`GRANTWARDEN_WEBHOOK_KEY_SECRET`); without an entry in `senders:` it may
/// send grant events only.
pub const WEBHOOK_SENDER: &str = "webhook";

/// What established an actor's identity; journaled with what the actor did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Voucher {
    /// A token of this OpenID Connect issuer, verified.
    Token {
        /// The issuer (`iss`).
        issuer: String,
    },
    /// A signed sender of the registry, asserting the person it names.
    Sender {
        /// The sender's name in the registry.
        sender: String,
    },
    /// The operator of the local CLI.
    Operator,
    /// A Slack user, as a request signed with the Slack app's signing secret
    /// says, whose email Slack verified (`users.info`). Proves no recent
    /// sign-in: chat cannot enforce one.
    Slack {
        /// The workspace (team id).
        team: String,
        /// The Slack user id.
        user: String,
    },
}

impl fmt::Display for Voucher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Voucher::Token { issuer } => write!(f, "a token of {issuer}"),
            Voucher::Sender { sender } => write!(f, "sender {sender}"),
            Voucher::Operator => f.write_str("the local operator"),
            Voucher::Slack { team, user } => write!(f, "Slack user {user} of {team}"),
        }
    }
}

/// A person acting, as their voucher says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// The identity (an email address), lower-cased.
    pub id: String,
    /// The identity provider's groups of the person (a token's `groups` claim).
    pub groups: BTreeSet<String>,
    /// When the person signed in, where the voucher proves it (a token's `auth_time`).
    pub signed_in_at: Option<DateTime<Utc>>,
    /// What established the identity.
    pub vouched_by: Voucher,
}

impl Actor {
    /// The operator of the local CLI, named by `--by`.
    pub fn operator(id: &str) -> Self {
        Actor {
            id: id.trim().to_ascii_lowercase(),
            groups: BTreeSet::new(),
            signed_in_at: None,
            vouched_by: Voucher::Operator,
        }
    }

    /// A person a verified token names.
    pub fn from_token(id: &str, groups: BTreeSet<String>, signed_in_at: DateTime<Utc>, issuer: &str) -> Self {
        Actor {
            id: id.trim().to_ascii_lowercase(),
            groups,
            signed_in_at: Some(signed_in_at),
            vouched_by: Voucher::Token { issuer: issuer.to_owned() },
        }
    }

    /// Whether the actor may do what needs a recent sign-in: a token's sign-in
    /// within [`RECENT_SIGN_IN`], or the local operator (at the machine itself).
    pub fn recent_sign_in(&self, now: DateTime<Utc>) -> Result<(), IdentityRefusal> {
        match (&self.vouched_by, self.signed_in_at) {
            (Voucher::Operator, _) => Ok(()),
            (Voucher::Token { .. }, Some(at)) => {
                let age = (now - at).to_std().unwrap_or_default();
                if age <= RECENT_SIGN_IN {
                    Ok(())
                } else {
                    Err(IdentityRefusal::SignInTooOld { minutes: age.as_secs() / 60 })
                }
            }
            (voucher, _) => Err(IdentityRefusal::NoSignIn(voucher.to_string())),
        }
    }

    /// The identity a request body names must be the actor's own: a body
    /// never speaks for another person than its credential.
    pub fn check_named(&self, field: &str, named: Option<&str>) -> Result<(), IdentityRefusal> {
        match named.map(str::trim) {
            Some(named) if !named.is_empty() && !named.eq_ignore_ascii_case(&self.id) => {
                Err(IdentityRefusal::NamesAnother {
                    field: field.to_owned(),
                    named: named.to_owned(),
                    actor: self.id.clone(),
                    voucher: self.vouched_by.to_string(),
                })
            }
            _ => Ok(()),
        }
    }
}

/// Why an identity is not accepted for an act.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityRefusal {
    /// The sender is not in the registry's `senders:`.
    #[error("sender {0:?} is not in the registry's senders")]
    UnknownSender(String),
    /// The sender may not act on this route.
    #[error("sender {sender} may not send {route} (registry senders.{sender}.routes)")]
    RouteNotAllowed {
        /// The sender.
        sender: String,
        /// The route.
        route: SenderRoute,
    },
    /// The sender may not name this person.
    #[error("sender {sender} may not assert {person} (registry senders.{sender}.principals)")]
    PrincipalNotAllowed {
        /// The sender.
        sender: String,
        /// The person named.
        person: String,
    },
    /// The sender must name a person and did not.
    #[error("{field}: a sender must name the person it acts for")]
    NobodyNamed {
        /// The body field that names a person on this route.
        field: String,
    },
    /// The body names another person than the credential.
    #[error(
        "{field}: the body names {named}, but {voucher} says this is {actor}; a body never speaks for another person"
    )]
    NamesAnother {
        /// The field.
        field: String,
        /// Whom it names.
        named: String,
        /// The verified actor.
        actor: String,
        /// Who verified them.
        voucher: String,
    },
    /// The act needs a recent sign-in and the token's is older.
    #[error("this needs a sign-in within the last 15 minutes; the last was {minutes} minutes ago: sign in again")]
    SignInTooOld {
        /// Minutes since sign-in.
        minutes: u64,
    },
    /// The act needs a recent sign-in and the voucher proves none.
    #[error("this needs a sign-in within the last 15 minutes, which {0} cannot prove: use a token or the portal")]
    NoSignIn(String),
}

/// What a signed sender may do, each a route of the intake API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SenderRoute {
    /// `POST /webhooks/grants` and generic grant payloads on `POST /requests`:
    /// it names who asked for the grant (`requested_by`).
    Grants,
    /// Just-in-time access requests on `POST /requests` (`identity`).
    Requests,
    /// `POST /requests/{ticket}/approvals` (`approver`).
    Approvals,
    /// `POST /tickets/{ticket}/revoke` (`by`).
    Revoke,
    /// `GET /tickets/{ticket}`.
    Read,
}

impl fmt::Display for SenderRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SenderRoute::Grants => "grants",
            SenderRoute::Requests => "requests",
            SenderRoute::Approvals => "approvals",
            SenderRoute::Revoke => "revoke",
            SenderRoute::Read => "read",
        })
    }
}

/// One sender as written in the registry.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SenderFile {
    /// Where its HMAC key is (a Secrets Manager secret id on AWS; the name of an
    /// environment variable holding it locally). The `webhook` sender's key is
    /// the function's own webhook key and needs none.
    #[serde(default)]
    pub key_secret: Option<String>,
    /// What it may send (default: `[grants]`).
    #[serde(default)]
    pub routes: Option<Vec<SenderRoute>>,
    /// Whom it may name (globs of identities, e.g. `*@example.com`; default: anyone, `*`).
    #[serde(default)]
    pub principals: Option<Vec<String>>,
}

/// One sender, validated.
#[derive(Debug, Clone)]
pub struct SenderRule {
    /// Its name.
    pub name: String,
    /// Where its key is.
    pub key_secret: Option<String>,
    /// What it may send.
    pub routes: BTreeSet<SenderRoute>,
    principals: Vec<(String, GlobMatcher)>,
}

impl SenderRule {
    /// The `webhook` sender when the registry says nothing of it: grant events, naming anyone.
    pub fn webhook_default() -> Self {
        let any = Glob::new("*").expect("a valid glob").compile_matcher();
        SenderRule {
            name: WEBHOOK_SENDER.to_owned(),
            key_secret: None,
            routes: BTreeSet::from([SenderRoute::Grants]),
            principals: vec![("*".to_owned(), any)],
        }
    }

    /// Validates one entry; errors name `senders.<name>.<field>`.
    pub fn from_file(name: &str, f: &SenderFile) -> Result<Self, FieldError> {
        let at = format!("senders.{name}");
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(FieldError::new(at, "a sender's name is letters, digits, '-' and '_'"));
        }
        if name != WEBHOOK_SENDER && f.key_secret.as_deref().is_none_or(str::is_empty) {
            return Err(FieldError::new(format!("{at}.key_secret"), "every sender but `webhook` names its own key"));
        }
        if name == WEBHOOK_SENDER && f.key_secret.is_some() {
            return Err(FieldError::new(
                format!("{at}.key_secret"),
                "`webhook` signs with the intake function's own key (GRANTWARDEN_WEBHOOK_SECRET_ID), named nowhere else",
            ));
        }
        let routes: BTreeSet<SenderRoute> =
            f.routes.clone().unwrap_or_else(|| vec![SenderRoute::Grants]).into_iter().collect();
        let principals = f
            .principals
            .clone()
            .unwrap_or_else(|| vec!["*".to_owned()])
            .into_iter()
            .map(|p| {
                let glob = p.trim().to_ascii_lowercase();
                Glob::new(&glob).map(|g| (glob.clone(), g.compile_matcher())).map_err(|e| {
                    FieldError::new(format!("{at}.principals"), format!("invalid glob {p:?}: {}", e.kind()))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(SenderRule { name: name.to_owned(), key_secret: f.key_secret.clone(), routes, principals })
    }

    /// The person this sender names on `route`, as an actor vouched for by the
    /// sender; refused when the registry does not let it name them there.
    pub fn assert(&self, route: SenderRoute, field: &str, person: Option<&str>) -> Result<Actor, IdentityRefusal> {
        if !self.routes.contains(&route) {
            return Err(IdentityRefusal::RouteNotAllowed { sender: self.name.clone(), route });
        }
        let person = person.map(str::trim).filter(|p| !p.is_empty());
        let Some(person) = person else {
            return Err(IdentityRefusal::NobodyNamed { field: field.to_owned() });
        };
        let id = person.to_ascii_lowercase();
        if !self.principals.iter().any(|(_, g)| g.is_match(&id)) {
            return Err(IdentityRefusal::PrincipalNotAllowed { sender: self.name.clone(), person: id });
        }
        Ok(Actor {
            id,
            groups: BTreeSet::new(),
            signed_in_at: None,
            vouched_by: Voucher::Sender { sender: self.name.clone() },
        })
    }

    /// Whether it may send `route` at all (a read names nobody).
    pub fn may(&self, route: SenderRoute) -> Result<(), IdentityRefusal> {
        if self.routes.contains(&route) {
            Ok(())
        } else {
            Err(IdentityRefusal::RouteNotAllowed { sender: self.name.clone(), route })
        }
    }

    /// The principal globs, as written (lower-cased).
    pub fn principals(&self) -> impl Iterator<Item = &str> {
        self.principals.iter().map(|(g, _)| g.as_str())
    }
}

/// The registry's senders, validated; `webhook` is always there.
#[derive(Debug, Clone)]
pub struct Senders(BTreeMap<String, SenderRule>);

impl Default for Senders {
    fn default() -> Self {
        Senders(BTreeMap::from([(WEBHOOK_SENDER.to_owned(), SenderRule::webhook_default())]))
    }
}

impl Senders {
    /// Validates the `senders:` section.
    pub fn from_file(f: &BTreeMap<String, SenderFile>) -> Result<Self, FieldError> {
        let mut out = Senders::default();
        for (name, sender) in f {
            out.0.insert(name.clone(), SenderRule::from_file(name, sender)?);
        }
        Ok(out)
    }

    /// A sender by name.
    pub fn get(&self, name: &str) -> Result<&SenderRule, IdentityRefusal> {
        self.0.get(name).ok_or_else(|| IdentityRefusal::UnknownSender(name.to_owned()))
    }

    /// Every sender.
    pub fn iter(&self) -> impl Iterator<Item = &SenderRule> {
        self.0.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 6, 12, 0, 0).unwrap() + chrono::Duration::minutes(minutes)
    }

    fn sender(routes: &[SenderRoute], principals: &[&str]) -> SenderRule {
        let f = SenderFile {
            key_secret: Some("grantwarden/senders/servicenow".into()),
            routes: Some(routes.to_vec()),
            principals: Some(principals.iter().map(|p| p.to_string()).collect()),
        };
        SenderRule::from_file("servicenow", &f).unwrap()
    }

    #[test]
    fn a_sender_names_only_the_people_and_routes_the_registry_lists() {
        let s = sender(&[SenderRoute::Approvals], &["*@example.com"]);
        let ok = s.assert(SenderRoute::Approvals, "approver", Some(" Bob@Example.com ")).unwrap();
        assert_eq!(ok.id, "bob@example.com");
        assert_eq!(ok.vouched_by, Voucher::Sender { sender: "servicenow".into() });
        assert!(matches!(
            s.assert(SenderRoute::Approvals, "approver", Some("ciso@evil.test")),
            Err(IdentityRefusal::PrincipalNotAllowed { .. })
        ));
        assert!(matches!(
            s.assert(SenderRoute::Requests, "identity", Some("bob@example.com")),
            Err(IdentityRefusal::RouteNotAllowed { route: SenderRoute::Requests, .. })
        ));
        assert!(matches!(s.assert(SenderRoute::Approvals, "approver", None), Err(IdentityRefusal::NobodyNamed { .. })));
    }

    #[test]
    fn the_webhook_sender_sends_grants_only_unless_the_registry_says_more() {
        let senders = Senders::from_file(&BTreeMap::new()).unwrap();
        let webhook = senders.get(WEBHOOK_SENDER).unwrap();
        assert!(webhook.assert(SenderRoute::Grants, "requested_by", Some("alice@example.com")).is_ok());
        for route in [SenderRoute::Approvals, SenderRoute::Requests, SenderRoute::Revoke, SenderRoute::Read] {
            assert!(webhook.assert(route, "x", Some("ciso@example.com")).is_err(), "{route}");
        }
        assert!(matches!(senders.get("other"), Err(IdentityRefusal::UnknownSender(_))));
        let no_key = BTreeMap::from([("jira".to_owned(), SenderFile::default())]);
        assert_eq!(Senders::from_file(&no_key).unwrap_err().field, "senders.jira.key_secret");
        let own_key = SenderFile { key_secret: Some("elsewhere".into()), ..SenderFile::default() };
        let webhook_elsewhere = BTreeMap::from([(WEBHOOK_SENDER.to_owned(), own_key)]);
        assert_eq!(Senders::from_file(&webhook_elsewhere).unwrap_err().field, "senders.webhook.key_secret");
    }

    #[test]
    fn a_dual_approval_needs_a_sign_in_of_the_last_quarter_hour() {
        let fresh = Actor::from_token("ciso@example.com", BTreeSet::new(), at(0), "https://idp.example.com");
        assert!(fresh.recent_sign_in(at(15)).is_ok());
        assert_eq!(fresh.recent_sign_in(at(16)), Err(IdentityRefusal::SignInTooOld { minutes: 16 }));
        let asserted =
            sender(&[SenderRoute::Approvals], &["*"]).assert(SenderRoute::Approvals, "approver", Some("c@x")).unwrap();
        assert!(matches!(asserted.recent_sign_in(at(0)), Err(IdentityRefusal::NoSignIn(_))));
        assert!(Actor::operator("ops@example.com").recent_sign_in(at(0)).is_ok());
    }

    #[test]
    fn a_body_never_names_another_person_than_its_credential() {
        let alice = Actor::from_token("alice@example.com", BTreeSet::new(), at(0), "https://idp.example.com");
        assert!(alice.check_named("identity", None).is_ok());
        assert!(alice.check_named("identity", Some("ALICE@example.com")).is_ok());
        let err = alice.check_named("approver", Some("ciso@example.com")).unwrap_err();
        assert!(err.to_string().starts_with("approver: the body names ciso@example.com"), "{err}");
    }
}
