//! Secrets Manager, cached: target credentials and the webhook key; and the
//! just-in-time credentials' own secrets, tagged by grantwarden.
//!
//! A secret is fetched at most once per TTL per container, so a warm Lambda
//! does not call Secrets Manager per event, and a rotated secret is picked
//! up within the TTL. Values never reach a log or an error message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::types::Tag;
use serde::Deserialize;

use crate::{AwsError, Clients};

/// Secrets with a TTL cache, shared by clones.
#[derive(Clone)]
pub struct SecretCache {
    client: aws_sdk_secretsmanager::Client,
    ttl: Duration,
    cache: Arc<Mutex<HashMap<String, (Instant, String)>>>,
}

impl std::fmt::Debug for SecretCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretCache").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl SecretCache {
    /// A cache that keeps each value for `ttl`.
    pub fn new(clients: &Clients, ttl: Duration) -> Self {
        Self { client: clients.secrets.clone(), ttl, cache: Arc::new(Mutex::new(HashMap::new())) }
    }

    /// A secret's string value.
    pub async fn string(&self, id: &str) -> Result<String, AwsError> {
        if let Some((at, value)) = self.cache.lock().expect("the cache lock is never poisoned").get(id)
            && at.elapsed() < self.ttl
        {
            return Ok(value.clone());
        }
        let out = self
            .client
            .get_secret_value()
            .secret_id(id)
            .send()
            .await
            .map_err(|e| AwsError::sdk(format!("GetSecretValue {id}"), e))?;
        let value = out.secret_string.ok_or_else(|| AwsError::Decode {
            what: format!("secret {id}"),
            reason: "has no string value (binary secrets are not read)".into(),
        })?;
        self.cache
            .lock()
            .expect("the cache lock is never poisoned")
            .insert(id.to_owned(), (Instant::now(), value.clone()));
        Ok(value)
    }

    /// A target's RDS-style credentials.
    pub async fn rds(&self, id: &str) -> Result<RdsSecret, AwsError> {
        RdsSecret::parse(id, &self.string(id).await?)
    }

    /// A target's RDS-style credentials, which must be PostgreSQL's: `what`
    /// (say, `just-in-time access`) is built for PostgreSQL only.
    pub async fn postgres(&self, id: &str, what: &str) -> Result<RdsSecret, AwsError> {
        let secret = self.rds(id).await?;
        match secret.engine() {
            DbEngine::Postgres => Ok(secret),
            DbEngine::Mysql => Err(AwsError::Decode {
                what: format!("secret {id}"),
                reason: format!(
                    "field engine: {:?} is a MySQL or MariaDB server, and {what} is built for PostgreSQL targets only",
                    secret.engine
                ),
            }),
        }
    }
}

/// Which reader and executor a target's secret calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbEngine {
    /// `postgres`, `postgresql`, `aurora-postgresql`.
    Postgres,
    /// `mysql`, `mariadb`, `aurora-mysql` (and `aurora`, Aurora MySQL's first engine name).
    Mysql,
}

impl DbEngine {
    /// The engine an RDS secret's `engine` names, if grantwarden reads it.
    pub fn of(engine: &str) -> Option<Self> {
        match engine {
            "postgres" | "postgresql" | "aurora-postgresql" => Some(DbEngine::Postgres),
            "mysql" | "mariadb" | "aurora-mysql" | "aurora" => Some(DbEngine::Mysql),
            _ => None,
        }
    }
}

/// The JSON an RDS-managed (or hand-made) database secret holds.
#[derive(Clone, Deserialize, PartialEq, Eq)]
pub struct RdsSecret {
    /// `postgres` (also `postgresql`, `aurora-postgresql`), or `mysql`,
    /// `mariadb`, `aurora-mysql` ([`DbEngine::of`]).
    pub engine: String,
    /// Host name.
    pub host: String,
    /// Port (a number, or a string as some tools write it).
    #[serde(deserialize_with = "port")]
    pub port: u16,
    /// Login role.
    pub username: String,
    /// Its password; may be empty where trust or IAM auth is used.
    #[serde(default)]
    pub password: String,
    /// Database name: the one a PostgreSQL secret connects to (required);
    /// a MySQL or MariaDB scan reads the whole server, and RDS's MySQL
    /// secrets often have none.
    #[serde(default)]
    pub dbname: String,
}

impl std::fmt::Debug for RdsSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RdsSecret")
            .field("engine", &self.engine)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("dbname", &self.dbname)
            .finish()
    }
}

fn port<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Port {
        N(u16),
        S(String),
    }
    match Port::deserialize(d)? {
        Port::N(n) => Ok(n),
        Port::S(s) => {
            s.trim().parse().map_err(|_| serde::de::Error::custom(format!("port {s:?} is not a port number")))
        }
    }
}

impl RdsSecret {
    /// Parses and checks a secret's JSON; errors name the field, never a value.
    pub fn parse(id: &str, json: &str) -> Result<Self, AwsError> {
        let mut de = serde_json::Deserializer::from_str(json);
        let secret: Self = serde_path_to_error::deserialize(&mut de).map_err(|e| AwsError::Decode {
            what: format!("secret {id}"),
            // the inner error of a syntax error may quote the input: keep only its position
            reason: match e.inner().classify() {
                serde_json::error::Category::Data | serde_json::error::Category::Eof => {
                    format!("field {}: {}", e.path(), e.inner())
                }
                _ => format!("not valid JSON (line {}, column {})", e.inner().line(), e.inner().column()),
            },
        })?;
        let refuse = |reason: String| Err(AwsError::Decode { what: format!("secret {id}"), reason });
        match DbEngine::of(&secret.engine) {
            None => refuse(format!(
                "field engine: {:?} is neither PostgreSQL (postgres, aurora-postgresql) nor MySQL or MariaDB (mysql, \
                 mariadb, aurora-mysql)",
                secret.engine
            )),
            Some(DbEngine::Postgres) if secret.dbname.is_empty() => {
                refuse("field dbname: missing; a PostgreSQL secret names the database to connect to".to_owned())
            }
            Some(_) => Ok(secret),
        }
    }

    /// Which reader and executor the secret calls for (checked by [`RdsSecret::parse`]).
    pub fn engine(&self) -> DbEngine {
        DbEngine::of(&self.engine).unwrap_or(DbEngine::Postgres)
    }
}

/// Tag on every access secret grantwarden creates: the ticket it holds the credential of.
pub const TICKET_TAG: &str = "grantwarden:ticket";

/// Tag on every access secret grantwarden creates: who created it.
pub const CREATED_BY_TAG: &str = "grantwarden:created-by";

/// The value of [`CREATED_BY_TAG`].
pub const CREATED_BY: &str = "grantwarden";

/// Why a ticket's credential secret was not used.
#[derive(Debug, thiserror::Error)]
pub enum AccessSecretError {
    /// The secret exists but grantwarden did not create it for this ticket:
    /// someone who made it first would know the password, or could read it.
    #[error(
        "secret {name} already exists and was not created by grantwarden for ticket {ticket} (its tags: {tags}): \
         refused to issue the credential into it; find out who created it, then delete it"
    )]
    NotOurs {
        /// The secret.
        name: String,
        /// The ticket.
        ticket: String,
        /// The secret's grantwarden tags as found (`none` when it has none).
        tags: String,
    },
    /// Secrets Manager failed.
    #[error(transparent)]
    Aws(#[from] AwsError),
}

/// Who made an access secret, as its tags tell.
enum Owner {
    /// grantwarden, for this ticket.
    Grantwarden,
    /// Anyone else, or grantwarden for another ticket.
    Other {
        /// Its grantwarden tags as found (`none` when it has none).
        tags: String,
    },
    /// There is no such secret.
    Missing,
}

/// Just-in-time credentials, each in a secret of its own (`<prefix><ticket id>`),
/// deleted at revocation. Values never reach a log.
///
/// Each secret is created with the tags [`TICKET_TAG`] (the ticket id) and
/// [`CREATED_BY_TAG`] = [`CREATED_BY`]. A secret found under a ticket's name
/// is reused (a retry after a crash issues the password already delivered)
/// only with both tags naming that ticket: one made beforehand by someone
/// else is refused, or its maker would hold the credential.
#[derive(Clone, Debug)]
pub struct AccessSecrets {
    client: aws_sdk_secretsmanager::Client,
    prefix: String,
}

impl AccessSecrets {
    /// The secrets under `prefix` (`GRANTWARDEN_ACCESS_SECRET_PREFIX`).
    pub fn new(clients: &Clients, prefix: &str) -> Self {
        Self { client: clients.secrets.clone(), prefix: prefix.to_owned() }
    }

    /// The secret of a ticket's credential.
    pub fn name(&self, ticket_id: &str) -> String {
        format!("{}{ticket_id}", self.prefix)
    }

    /// The credential of a ticket: `fresh`, stored in a new tagged secret, or
    /// what an earlier attempt stored (so a retry issues the password already
    /// delivered, not a second one), provided its tags show grantwarden created
    /// it for this ticket. `valid_until` is stored beside it for the reader.
    pub async fn get_or_create(
        &self,
        ticket_id: &str,
        fresh: &RdsSecret,
        valid_until: chrono::DateTime<chrono::Utc>,
    ) -> Result<RdsSecret, AccessSecretError> {
        let name = self.name(ticket_id);
        let value = serde_json::json!({ "engine": fresh.engine, "host": fresh.host, "port": fresh.port,
            "dbname": fresh.dbname, "username": fresh.username, "password": fresh.password,
            "valid_until": valid_until, "ticket": ticket_id });
        let created = self
            .client
            .create_secret()
            .name(&name)
            .description(format!("grantwarden just-in-time credential of ticket {ticket_id}; deleted at revocation"))
            .secret_string(value.to_string())
            .tags(Tag::builder().key(TICKET_TAG).value(ticket_id).build())
            .tags(Tag::builder().key(CREATED_BY_TAG).value(CREATED_BY).build())
            .send()
            .await;
        match created {
            Ok(_) => Ok(fresh.clone()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_exists_exception()) => {
                match self.owner(&name, ticket_id).await? {
                    Owner::Grantwarden => {}
                    // deleted since: a new one, created on the next attempt, is as good
                    Owner::Missing => {
                        return Err(AwsError::Service {
                            op: format!("CreateSecret {name}"),
                            message: "the secret existed, then was gone".into(),
                            retryable: true,
                        }
                        .into());
                    }
                    Owner::Other { tags } => {
                        return Err(AccessSecretError::NotOurs { name, ticket: ticket_id.to_owned(), tags });
                    }
                }
                self.value(&name).await
            }
            Err(e) => Err(AwsError::sdk(format!("CreateSecret {name}"), e).into()),
        }
    }

    /// The credential delivered for a ticket, if its secret is there and
    /// grantwarden made it for that ticket (by its tags): what the portal shows
    /// its requester once.
    pub async fn read(&self, ticket_id: &str) -> Result<Option<RdsSecret>, AccessSecretError> {
        let name = self.name(ticket_id);
        match self.owner(&name, ticket_id).await? {
            Owner::Grantwarden => {}
            Owner::Missing => return Ok(None),
            Owner::Other { tags } => {
                return Err(AccessSecretError::NotOurs { name, ticket: ticket_id.to_owned(), tags });
            }
        }
        self.value(&name).await.map(Some)
    }

    /// The credential in secret `name`, whose owner was checked.
    async fn value(&self, name: &str) -> Result<RdsSecret, AccessSecretError> {
        let out = self
            .client
            .get_secret_value()
            .secret_id(name)
            .send()
            .await
            .map_err(|e| AwsError::sdk(format!("GetSecretValue {name}"), e))?;
        let json = out
            .secret_string
            .ok_or_else(|| AwsError::Decode { what: format!("secret {name}"), reason: "has no string value".into() })?;
        Ok(RdsSecret::parse(name, &json)?)
    }

    /// Who made the secret `name`, by its tags: grantwarden for `ticket_id`, or someone else.
    async fn owner(&self, name: &str, ticket_id: &str) -> Result<Owner, AwsError> {
        let described = match self.client.describe_secret().secret_id(name).send().await {
            Ok(d) => d,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {
                return Ok(Owner::Missing);
            }
            Err(e) => return Err(AwsError::sdk(format!("DescribeSecret {name}"), e)),
        };
        let tags: std::collections::BTreeMap<&str, &str> = described
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?, t.value()?)))
            .filter(|(k, _)| k.starts_with("grantwarden:"))
            .collect();
        if tags.get(TICKET_TAG) == Some(&ticket_id) && tags.get(CREATED_BY_TAG) == Some(&CREATED_BY) {
            return Ok(Owner::Grantwarden);
        }
        let tags = if tags.is_empty() {
            "none".to_owned()
        } else {
            tags.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
        };
        Ok(Owner::Other { tags })
    }

    /// Deletes a ticket's credential secret at once (no recovery window); a
    /// missing one is fine. One grantwarden did not create for the ticket is
    /// left in place (and logged): it is evidence, and not ours to delete.
    pub async fn delete(&self, ticket_id: &str) -> Result<(), AwsError> {
        let name = self.name(ticket_id);
        match self.owner(&name, ticket_id).await? {
            Owner::Grantwarden => {}
            Owner::Missing => return Ok(()),
            Owner::Other { tags } => {
                let e = AccessSecretError::NotOurs { name, ticket: ticket_id.to_owned(), tags };
                tracing::error!(error = %e, "not deleting a secret grantwarden did not create");
                return Ok(());
            }
        }
        match self.client.delete_secret().secret_id(&name).force_delete_without_recovery(true).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => Ok(()),
            Err(e) => Err(AwsError::sdk(format!("DeleteSecret {name}"), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_rds_secret_parses_with_a_string_port_and_hides_its_password() {
        let s = RdsSecret::parse(
            "t",
            r#"{"engine":"postgres","host":"db","port":"5432","username":"u","password":"hunter2","dbname":"orders"}"#,
        )
        .unwrap();
        assert_eq!(s.port, 5432);
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn a_bad_secret_names_the_field_not_the_value() {
        let err =
            RdsSecret::parse("t", r#"{"engine":"postgres","host":"db","port":5432,"password":"hunter2","dbname":"x"}"#)
                .unwrap_err()
                .to_string();
        assert!(err.contains("username"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err =
            RdsSecret::parse("t", r#"{"engine":"oracle-ee","host":"db","port":1521,"username":"u","dbname":"x"}"#)
                .unwrap_err()
                .to_string();
        assert!(err.contains("field engine: \"oracle-ee\" is neither"), "{err}");
        let err = RdsSecret::parse("t", r#"{"engine":"postgres","host":"db","port":5432,"username":"u"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("field dbname: missing"), "{err}");
    }

    #[test]
    fn mysql_and_mariadb_secrets_need_no_database() {
        for engine in ["mysql", "mariadb", "aurora-mysql"] {
            let json = format!(r#"{{"engine":"{engine}","host":"db","port":3306,"username":"u","password":"p"}}"#);
            let s = RdsSecret::parse("t", &json).unwrap();
            assert_eq!((s.engine(), s.dbname.as_str()), (DbEngine::Mysql, ""));
        }
        let s = RdsSecret::parse(
            "t",
            r#"{"engine":"aurora-postgresql","host":"db","port":5432,"username":"u","dbname":"x"}"#,
        )
        .unwrap();
        assert_eq!(s.engine(), DbEngine::Postgres);
    }
}
