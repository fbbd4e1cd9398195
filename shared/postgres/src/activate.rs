//! Issuing a just-in-time credential: the role, its grants and its views, in
//! one transaction. The caller draws the password ([`new_password`]) and hands
//! it out once; the server only ever sees its SCRAM-SHA-256 verifier (so a
//! statement log or pgaudit never holds the password), and the SQL returned
//! for printing and the journal holds a placeholder instead.
//!
//! The role carries a comment naming its ticket. Issuing again after a crash
//! between the commit and recording the ticket as issued finds that role and
//! only sets its password: the first attempt's transaction made the rest.

use rand::Rng;
use rand::distr::Alphanumeric;
use tokio_postgres::Client;

use crate::render::{PASSWORD_PLACEHOLDER, render};
use crate::revoke::{Executor, Failure, acl_locks, run_all};
use crate::session::connect;
use grantwarden_core::access::{AccessScope, OwnedSequences, ScopeCatalog, ViewSources, plan_activation};
use grantwarden_core::change::Change;
use grantwarden_core::revoke::{ExecError, FailureClass};
use grantwarden_core::ticket::Ticket;

/// Tables (and views, materialized views, foreign and partitioned tables) with
/// their columns in order: of the schemas in `$1`, or with `$2` of every
/// ordinary schema (not the system ones, not grantwarden's own view schemas).
const SCOPE_TABLES: &str = "\
SELECT n.nspname::text, c.relname::text, array_agg(a.attname::text ORDER BY a.attnum)
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND (n.nspname = ANY($1)
        OR ($2 AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname NOT LIKE 'gw\\_access\\_%'))
 GROUP BY 1, 2";

/// Sequences owned by a table (serial and identity columns): table, then sequence.
const OWNED_SEQUENCES: &str = "\
SELECT tn.nspname::text, t.relname::text, sn.nspname::text, s.relname::text
  FROM pg_catalog.pg_class s
  JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
  JOIN pg_catalog.pg_depend d ON d.objid = s.oid AND d.classid = 'pg_catalog.pg_class'::regclass
   AND d.refclassid = 'pg_catalog.pg_class'::regclass AND d.deptype IN ('a', 'i')
  JOIN pg_catalog.pg_class t ON t.oid = d.refobjid
  JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
 WHERE s.relkind = 'S'";

/// The relations each view or materialized view reads, through its rewrite
/// rule's dependencies, and through the views it reads in turn.
const VIEW_SOURCES: &str = "\
WITH RECURSIVE reads(view_oid, rel_oid) AS (
    SELECT r.ev_class, d.refobjid
      FROM pg_catalog.pg_rewrite r
      JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
     WHERE d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid <> r.ev_class
    UNION
    SELECT reads.view_oid, d.refobjid
      FROM reads
      JOIN pg_catalog.pg_rewrite r ON r.ev_class = reads.rel_oid
      JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_rewrite'::regclass AND d.objid = r.oid
     WHERE d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid <> r.ev_class
)
SELECT DISTINCT vn.nspname::text, v.relname::text, tn.nspname::text, t.relname::text
  FROM reads
  JOIN pg_catalog.pg_class v ON v.oid = reads.view_oid
  JOIN pg_catalog.pg_namespace vn ON vn.oid = v.relnamespace
  JOIN pg_catalog.pg_class t ON t.oid = reads.rel_oid
  JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
 WHERE v.relkind IN ('v', 'm')";

/// A credential issued for a ticket.
pub struct Issued {
    /// The role to log in as.
    pub role: String,
    /// Its password: shown once, never logged.
    pub password: String,
    /// The SQL as run, the password replaced by a placeholder.
    pub sql: Vec<String>,
    /// Attempts it took.
    pub attempts: u32,
    /// The role existed already (an earlier attempt committed it): only its password was set.
    pub reissued: bool,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("role", &self.role)
            .field("password", &"<redacted>")
            .field("reissued", &self.reissued)
            .finish()
    }
}

async fn scope_catalog(client: &Client, scope: &AccessScope) -> Result<ScopeCatalog, Failure> {
    let schemas: Vec<String> = scope.schema().map(str::to_owned).into_iter().collect();
    let everything = matches!(scope, AccessScope::Database);
    let rows = client
        .query(SCOPE_TABLES, &[&schemas, &everything])
        .await
        .map_err(Failure::db("reading the tables of the scope"))?;
    Ok(rows.iter().map(|r| ((r.get::<_, String>(0), r.get::<_, String>(1)), r.get::<_, Vec<String>>(2))).collect())
}

async fn owned_sequences(client: &Client) -> Result<OwnedSequences, Failure> {
    let mut out = OwnedSequences::new();
    for r in client.query(OWNED_SEQUENCES, &[]).await.map_err(Failure::db("reading owned sequences"))? {
        out.entry((r.get(0), r.get(1))).or_default().push((r.get(2), r.get(3)));
    }
    Ok(out)
}

async fn view_sources(client: &Client) -> Result<ViewSources, Failure> {
    let mut out = ViewSources::new();
    for r in client.query(VIEW_SOURCES, &[]).await.map_err(Failure::db("reading what views read"))? {
        out.entry((r.get(0), r.get(1))).or_default().push((r.get(2), r.get(3)));
    }
    Ok(out)
}

/// A fresh random password for a credential (32 alphanumeric characters).
pub fn new_password() -> String {
    rand::rng().sample_iter(&Alphanumeric).take(32).map(char::from).collect()
}

/// The comment on a role grantwarden created for `ticket_id`.
fn marker(ticket_id: &str) -> String {
    format!("grantwarden access ticket {ticket_id}")
}

const ROLE_COMMENT: &str =
    "SELECT pg_catalog.shobj_description(oid, 'pg_authid') FROM pg_catalog.pg_roles WHERE rolname = $1";

impl Executor {
    /// Issues `ticket`'s credential with `password` (dry run: plans and renders
    /// only). Idempotent: when the role exists already and was created for this
    /// ticket, only its password is set; a role of that name made otherwise is
    /// refused as permanent.
    pub async fn activate(&self, ticket: &Ticket, password: &str, dry_run: bool) -> Result<Issued, ExecError> {
        let grant = ticket.access.as_ref().ok_or_else(|| ExecError {
            class: FailureClass::Permanent,
            message: format!("ticket {} is not an access ticket", ticket.id),
            attempts: 0,
        })?;
        let role = &ticket.request.role;
        let verifier =
            postgres_protocol::escape::escape_literal(&postgres_protocol::password::scram_sha_256(password.as_bytes()));
        let ((sql, reissued), attempts) = self
            .retrying(|| async {
                let client = connect(&self.config).await.map_err(Failure::db("connecting to the target"))?;
                let begin = self.begin();
                let read_only = ["BEGIN READ ONLY".to_owned()];
                run_all(&client, if dry_run { &read_only } else { &begin }).await?;
                let existing: Option<Option<String>> = client
                    .query_opt(ROLE_COMMENT, &[&role.as_str()])
                    .await
                    .map_err(Failure::db("reading the role"))?
                    .map(|r| r.get(0));
                let changes = match &existing {
                    None => {
                        let database: String = client
                            .query_one("SELECT current_database()::text", &[])
                            .await
                            .map_err(Failure::db("reading the database name"))?
                            .get(0);
                        let catalog = scope_catalog(&client, &grant.scope).await?;
                        let sequences = owned_sequences(&client).await?;
                        let views = view_sources(&client).await?;
                        plan_activation(ticket, &database, &catalog, &sequences, &views).map_err(Failure::permanent)?
                    }
                    Some(Some(comment)) if *comment == marker(&ticket.id) => Vec::new(),
                    Some(_) => {
                        let _ = client.batch_execute("ROLLBACK").await;
                        return Err(Failure::permanent(format!(
                            "role {role} exists already and was not created for ticket {}: refusing to issue it",
                            ticket.id
                        )));
                    }
                };
                // (as printed, as run): they differ only in the password's verifier
                let with_password = |statement: &str| statement.replacen(PASSWORD_PLACEHOLDER, &verifier, 1);
                let mut statements: Vec<(String, String)> =
                    acl_locks(&changes).into_iter().map(|l| (l.clone(), l)).collect();
                if existing.is_some() {
                    let reset = format!(
                        "ALTER ROLE {} PASSWORD {PASSWORD_PLACEHOLDER}",
                        postgres_protocol::escape::escape_identifier(role.as_str())
                    );
                    statements.push((reset.clone(), with_password(&reset)));
                }
                for c in &changes {
                    for statement in render(c)? {
                        let run = if matches!(c, Change::CreateRole { .. }) {
                            with_password(&statement)
                        } else {
                            statement.clone()
                        };
                        statements.push((statement, run));
                    }
                    if let Change::CreateRole { role, .. } = c {
                        let comment = format!(
                            "COMMENT ON ROLE {} IS {}",
                            postgres_protocol::escape::escape_identifier(role.as_str()),
                            postgres_protocol::escape::escape_literal(&marker(&ticket.id))
                        );
                        statements.push((comment.clone(), comment));
                    }
                }
                let mut shown = begin.clone();
                shown.extend(statements.iter().map(|(s, _)| s.clone()));
                shown.push("COMMIT".to_owned());
                if dry_run {
                    client.batch_execute("ROLLBACK").await.map_err(Failure::db("ending the read"))?;
                    return Ok((shown, existing.is_some()));
                }
                for (printed, run) in &statements {
                    if let Err(e) = client.batch_execute(run).await {
                        let _ = client.batch_execute("ROLLBACK").await;
                        return Err(Failure::db(printed)(e));
                    }
                }
                client.batch_execute("COMMIT").await.map_err(Failure::db("committing the credential"))?;
                Ok((shown, existing.is_some()))
            })
            .await?;
        if reissued {
            tracing::warn!(ticket = %ticket.id, %role, "the role was created by an earlier attempt: its password is set anew");
        }
        Ok(Issued {
            role: role.to_string(),
            password: if dry_run { String::new() } else { password.to_owned() },
            sql,
            attempts,
            reissued,
        })
    }
}
