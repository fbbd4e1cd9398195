//! `grantwarden serve`: the access portal on a local port, over the local
//! state file. The same portal as the AWS function (`grantwarden-portal`):
//! people sign in at the OpenID Connect provider, ask for access, approve, end
//! tickets early and read what is in force.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use clap::Args;
use grantwarden_core::backoff::RetryPolicy;
use grantwarden_core::snapshot::TargetId;
use grantwarden_core::ticket::Ticket;
use grantwarden_portal::{IssuedCredential, Issuer};
use grantwarden_postgres::session::parse_config;
use grantwarden_postgres::{Executor, Timeouts};

use crate::exceptions::{StateArgs, load_registry};

#[derive(Args)]
pub struct ServeArgs {
    /// Where to listen; anything but loopback belongs behind TLS (the session cookie is `Secure`).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The portal's URL as browsers reach it (default `http://<listen>`); the
    /// provider sends people back to `<url>/callback`, which must be registered there.
    #[arg(long, env = "GRANTWARDEN_PORTAL_URL")]
    pub url: Option<String>,
    /// The policy registry (a YAML file or a directory of them).
    #[arg(long, env = "GRANTWARDEN_POLICY")]
    pub policy: PathBuf,
    #[command(flatten)]
    pub state: StateArgs,
    /// A database people may ask for (repeat for several).
    #[arg(long = "target", required = true)]
    pub targets: Vec<String>,
    /// The OpenID Connect issuer people sign in at.
    #[arg(long, env = "GRANTWARDEN_OIDC_ISSUER")]
    pub issuer: String,
    /// The client id the portal is registered as at the issuer.
    #[arg(long, env = "GRANTWARDEN_OIDC_CLIENT_ID")]
    pub client_id: String,
    /// The client secret, for a confidential client (none: a public client, PKCE only).
    #[arg(long, env = "GRANTWARDEN_OIDC_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// The claim that is a person's identity.
    #[arg(long, env = "GRANTWARDEN_OIDC_IDENTITY_CLAIM", default_value = "email")]
    pub identity_claim: String,
    /// The claim listing a person's groups.
    #[arg(long, env = "GRANTWARDEN_OIDC_GROUPS_CLAIM", default_value = "groups")]
    pub groups_claim: String,
    /// A file of 64 bytes or more that keys the session cookies; without it a key
    /// is drawn at start, and every session ends when the server stops.
    #[arg(long, env = "GRANTWARDEN_PORTAL_COOKIE_KEY_FILE")]
    pub cookie_key_file: Option<PathBuf>,
    /// A link to the dashboard, shown in the portal's menu.
    #[arg(long)]
    pub dashboard_url: Option<String>,
    /// `TARGET=URL`: the database of a target, as a role that may issue
    /// credentials (as for `grantwarden access issue`); with it, a requester sees
    /// their credential once in the portal. Repeat for several targets.
    #[arg(long = "database", value_parser = target_url)]
    pub databases: Vec<(TargetId, String)>,
    #[command(flatten)]
    pub slack: SlackArgs,
}

/// Slack: cards and decisions (the registry's `notify:` section says where).
#[derive(Args)]
pub struct SlackArgs {
    /// The Slack app's bot token (`xoxb-...`); with it, notices are delivered to Slack.
    #[arg(long, env = "GRANTWARDEN_SLACK_BOT_TOKEN", hide_env_values = true)]
    pub slack_token: Option<String>,
    /// The Slack app's signing secret; with it, `<url>/slack/interactions` takes its buttons.
    #[arg(long, env = "GRANTWARDEN_SLACK_SIGNING_SECRET", hide_env_values = true, requires = "slack_token")]
    pub slack_signing_secret: Option<String>,
    /// Slack's Web API.
    #[arg(long, env = "GRANTWARDEN_SLACK_API_URL", default_value = grantwarden_slack::SLACK_API)]
    pub slack_api: String,
    /// Seconds between two runs of the notice queue.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub notice_interval: u64,
}

fn target_url(s: &str) -> Result<(TargetId, String), String> {
    let (target, url) = s.split_once('=').ok_or("expected TARGET=URL")?;
    let target = TargetId::new(target).ok_or_else(|| format!("{target:?} is not a target id"))?;
    Ok((target, url.to_owned()))
}

/// Issues a ticket's credential in its target's database, as `access issue` does.
struct PostgresIssuer(BTreeMap<TargetId, String>);

impl Issuer for PostgresIssuer {
    fn issue<'a>(
        &'a self,
        ticket: &'a Ticket,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<IssuedCredential, String>> + Send + 'a>> {
        Box::pin(async move {
            let target = &ticket.request().target;
            let url = self.0.get(target).ok_or_else(|| format!("no --database for target {target}"))?;
            let timeouts = Timeouts::default();
            let config = parse_config(url, &timeouts).map_err(|e| format!("the database of {target}: {e}"))?;
            let executor = Executor::new(config.clone(), timeouts, RetryPolicy::default());
            let password = grantwarden_postgres::activate::new_password();
            let issued = executor.activate(ticket, &password, false).await.map_err(|e| format!("issuing: {e}"))?;
            let (host, port, dbname) = grantwarden_postgres::session::endpoint(&config);
            Ok(IssuedCredential { role: issued.role, password: issued.password, host, port, dbname, sql: issued.sql })
        })
    }

    fn extend<'a>(
        &'a self,
        ticket: &'a Ticket,
        until: chrono::DateTime<chrono::Utc>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let executor = self.executor(&ticket.request().target)?;
            let change = grantwarden_core::change::Change::SetValidUntil {
                role: ticket.request().role.clone(),
                valid_until: until,
            };
            executor.apply(&[change], false).await.map(|_| ()).map_err(|e| format!("moving VALID UNTIL: {e}"))
        })
    }
}

impl PostgresIssuer {
    fn executor(&self, target: &TargetId) -> Result<Executor, String> {
        let url = self.0.get(target).ok_or_else(|| format!("no --database for target {target}"))?;
        let timeouts = Timeouts::default();
        let config = parse_config(url, &timeouts).map_err(|e| format!("the database of {target}: {e}"))?;
        Ok(Executor::new(config, timeouts, RetryPolicy::default()))
    }
}

/// The notice queue, every `interval`: the journal's new events into
/// notices, the warnings of access about to end, then delivery to Slack (what
/// fails waits for its retry in the state file; nothing blocks the portal).
async fn notices(
    portal: Arc<grantwarden_portal::Portal<grantwarden_local::LocalStore>>,
    slack: grantwarden_slack::SlackClient,
    registry: grantwarden_core::policy::PolicyRegistry,
    url: String,
    interval: std::time::Duration,
) {
    use grantwarden_core::notify;
    use grantwarden_core::store::TicketStore;
    // the warnings read every ticket: once a minute, as the notify function does on AWS
    const WARN_EVERY: chrono::TimeDelta = chrono::TimeDelta::minutes(1);
    let store = portal.store();
    let mut warned_at: Option<chrono::DateTime<chrono::Utc>> = None;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = chrono::Utc::now();
        let run = async {
            notify::pump(store, store, &registry, now).await?;
            if warned_at.is_none_or(|at| now - at >= WARN_EVERY) {
                let open = store.tickets(None).await?;
                notify::warn_expiring(store, &open, &registry, now).await?;
                warned_at = Some(now);
            }
            notify::deliver(store, store, &slack, &registry, Some(&url), now, 100).await
        };
        match run.await {
            Ok(done) if done != notify::Delivery::default() => {
                tracing::info!(delivered = done.delivered, retrying = done.retrying, dead = done.dead, "notices")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "the notice queue could not run; next time"),
        }
    }
}

pub async fn run(args: ServeArgs) -> Result<()> {
    let store = args.state.open()?;
    let registry = load_registry(&args.policy).map_err(anyhow::Error::msg).context("the policy registry")?;
    let targets = args
        .targets
        .iter()
        .map(|t| TargetId::new(t).with_context(|| format!("--target {t:?} is not a target id")))
        .collect::<Result<Vec<_>>>()?;
    let cookie_key = match &args.cookie_key_file {
        Some(path) => {
            let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            grantwarden_portal::cookie_key(&bytes).map_err(anyhow::Error::msg).context(path.display().to_string())?
        }
        None => axum_extra::extract::cookie::Key::generate(),
    };
    let url = args.url.clone().unwrap_or_else(|| format!("http://{}", args.listen)).trim_end_matches('/').to_owned();
    let oidc = grantwarden_oidc::Settings::with_claims(
        &args.issuer,
        &args.client_id,
        &args.identity_claim,
        &args.groups_claim,
    );
    let config = grantwarden_portal::Config {
        client_secret: args.client_secret.clone(),
        dashboard_url: args.dashboard_url.clone(),
        ..grantwarden_portal::Config::new(Some(url.clone()), cookie_key, targets)
    };
    let verifier = Arc::new(grantwarden_oidc::LazyVerifier::new(oidc));
    let notify = registry.clone();
    let mut portal = grantwarden_portal::Portal::new(store, Ok(registry), Some(verifier), config);
    let slack = args
        .slack
        .slack_token
        .as_deref()
        .map(|token| grantwarden_slack::SlackClient::new(&args.slack.slack_api, token));
    if let (Some(client), Some(secret)) = (&slack, &args.slack.slack_signing_secret) {
        portal = portal.with_slack(grantwarden_portal::slack::SlackApp {
            client: client.clone(),
            signing_secret: secret.trim().as_bytes().to_vec(),
        });
    }
    if !args.databases.is_empty() {
        portal = portal.with_issuer(Arc::new(PostgresIssuer(args.databases.iter().cloned().collect())));
    }
    let portal = Arc::new(portal);
    match (slack, notify.notify.is_some()) {
        (Some(client), true) => {
            let interval = std::time::Duration::from_secs(args.slack.notice_interval);
            tokio::spawn(notices(Arc::clone(&portal), client, notify, url.clone(), interval));
        }
        (None, true) => {
            eprintln!("grantwarden: the registry has a notify section but no Slack token is given: nothing is posted")
        }
        (Some(_), false) => {
            eprintln!("grantwarden: a Slack token but no notify section in the registry: nothing is posted")
        }
        (None, false) => {}
    }
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    eprintln!("grantwarden: the portal is at {url} (sign-in returns to {url}/callback)");
    axum::serve(listener, grantwarden_portal::router(portal))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving the portal")
}
