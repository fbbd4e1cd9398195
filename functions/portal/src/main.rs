//! The portal Lambda: `grantwarden_portal`'s router over DynamoDB, behind a
//! Lambda Function URL (auth type NONE: people sign in at the OpenID Connect
//! provider; the session is an encrypted cookie).
//!
//! Environment (see `grantwarden_aws::settings`):
//! - `GRANTWARDEN_TICKETS_TABLE`, `GRANTWARDEN_JOURNAL_TABLE`, `GRANTWARDEN_INCIDENTS_TABLE`
//! - `GRANTWARDEN_JOURNAL_FROM_STREAM`: `true`, the revoke function appends ticket events
//! - `GRANTWARDEN_BUCKET`, `GRANTWARDEN_POLICY_PREFIX`: the policy registry
//! - `GRANTWARDEN_TARGETS` or `GRANTWARDEN_TARGETS_KEY`: the databases one may ask for
//! - `GRANTWARDEN_OIDC_ISSUER`, `GRANTWARDEN_OIDC_CLIENT_ID`, `GRANTWARDEN_OIDC_IDENTITY_CLAIM`,
//!   `GRANTWARDEN_OIDC_GROUPS_CLAIM`; `GRANTWARDEN_OIDC_CLIENT_SECRET_ID` (a confidential client)
//! - `GRANTWARDEN_PORTAL_COOKIE_SECRET_ID`: the session cookie key (64 characters or more)
//! - `GRANTWARDEN_PORTAL_URL`: the portal's URL (unset: the Function URL's host)
//! - `GRANTWARDEN_ACCESS_SECRET_PREFIX`: where the revoke function delivers
//!   credentials; the portal shows each to its requester once
//! - `GRANTWARDEN_SLACK_SIGNING_SECRET_ID`, `GRANTWARDEN_SLACK_BOT_TOKEN_SECRET_ID`,
//!   `GRANTWARDEN_SLACK_API_URL`: with them, `/slack/interactions` takes the
//!   buttons of the Slack cards
//! - `RUST_LOG`, and the usual `AWS_REGION` / `AWS_ENDPOINT_URL`
//!
//! IAM actions: `dynamodb:GetItem`, `PutItem`, `UpdateItem`, `Query` on the
//! tickets table (and its indexes) and the journal; `dynamodb:GetItem` on the
//! incidents table; `dynamodb:Scan` on the tickets table (the lists of the
//! portal); `s3:ListBucket` and `s3:GetObject` on the configuration;
//! `secretsmanager:GetSecretValue` on the cookie key (and the client secret,
//! the Slack bot token and signing secret), `dynamodb:PutItem` and
//! `DeleteItem` on the replay table (each Slack signature accepted once),
//! `secretsmanager:DescribeSecret` and `GetSecretValue` on the access secrets.
//! No PostgreSQL access: the revoke function issues credentials into their
//! secrets, and the portal shows each once.
#![deny(missing_docs)]

use std::sync::Arc;

use grantwarden_aws::{Clients, DynamoStore, Objects, Settings};
use lambda_http::Error;

#[tokio::main]
async fn main() -> Result<(), Error> {
    grantwarden_aws::logging::init_json();
    let settings = Settings::from_env()?;
    let clients = Clients::load().await;
    let objects = Objects::new(&clients, &settings);
    let secrets = grantwarden_aws::SecretCache::new(&clients, std::time::Duration::from_secs(300));

    // an unreadable cookie key is bad configuration: fail the cold start
    let key = secrets.string(&settings.portal_cookie_secret_id).await?;
    let cookie_key = grantwarden_portal::cookie_key(key.trim().as_bytes())?;
    let client_secret = match &settings.oidc_client_secret_id {
        Some(id) => Some(secrets.string(id).await?.trim().to_owned()),
        None => None,
    };
    let targets = objects.named_targets(&settings).await?;
    let registry = objects.policy_registry().await.map_err(|e| e.to_string());
    if let Err(why) = &registry {
        tracing::error!(error = %why, "policy registry unusable; requests cannot be made");
    }
    let oidc = match settings.oidc()? {
        Some((issuer, client_id, identity, groups)) => {
            let oidc = grantwarden_oidc::Settings::with_claims(issuer, client_id, identity, groups);
            Some(Arc::new(grantwarden_oidc::LazyVerifier::new(oidc)))
        }
        None => {
            tracing::warn!("no GRANTWARDEN_OIDC_ISSUER: nobody can sign in to the portal");
            None
        }
    };
    let config = grantwarden_portal::Config {
        base_url: settings.portal_url.clone().map(|u| u.trim_end_matches('/').to_owned()),
        client_secret,
        cookie_key,
        targets: targets.into_iter().collect(),
        dashboard_url: None,
    };
    let store = DynamoStore::new(&clients, &settings);
    let revealer = grantwarden_portal_fn::SecretRevealer(grantwarden_aws::AccessSecrets::new(
        &clients,
        &settings.access_secret_prefix,
    ));
    let mut portal = grantwarden_portal::Portal::new(store, registry, oidc, config).with_revealer(Arc::new(revealer));
    // Slack's buttons, when the app's secrets are configured (unreadable: bad configuration)
    if let Some(signing_id) = &settings.slack_signing_secret_id {
        let token_id = Settings::require(&settings.slack_bot_token_secret_id, "GRANTWARDEN_SLACK_BOT_TOKEN_SECRET_ID")?;
        let token = secrets.string(token_id).await?;
        let signing_secret = secrets.string(signing_id).await?;
        portal = portal.with_slack(grantwarden_portal::slack::SlackApp {
            client: grantwarden_slack::SlackClient::new(&settings.slack_api_url, token.trim()),
            signing_secret: signing_secret.trim().as_bytes().to_vec(),
        });
    }
    let portal = Arc::new(portal);
    lambda_http::run(grantwarden_portal::router(portal)).await
}
