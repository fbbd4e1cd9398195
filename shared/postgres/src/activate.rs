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

use crate::render::{Functions, PASSWORD_PLACEHOLDER, render};
use crate::revoke::{Executor, Failure, acl_locks, run_all};
use crate::session::connect;
use grantwarden_core::access_policy::AccessScope;
use grantwarden_core::activation::{ActivationCatalog, CatalogColumn, plan_activation};
use grantwarden_core::change::Change;
use grantwarden_core::revoke::{ExecError, FailureClass};
use grantwarden_core::ticket::Ticket;

// Every query here runs in the issuing transaction of a privileged role: every
// function and operator is qualified (beside the pinned search_path).

/// Tables (and views, materialized views, foreign and partitioned tables) with
/// their columns in order, each with its type as (schema, typname): of the
/// schemas in `$1`, or with `$2` of every ordinary schema (not the system ones,
/// not grantwarden's own view schemas).
const SCOPE_TABLES: &str = "\
SELECT n.nspname::pg_catalog.text, c.relname::pg_catalog.text,
       pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY a.attnum),
       pg_catalog.array_agg(tn.nspname::pg_catalog.text ORDER BY a.attnum),
       pg_catalog.array_agg(t.typname::pg_catalog.text ORDER BY a.attnum)
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
  JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid
   AND a.attnum OPERATOR(pg_catalog.>) 0::pg_catalog.int2 AND NOT a.attisdropped
  JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) a.atttypid
  JOIN pg_catalog.pg_namespace tn ON tn.oid OPERATOR(pg_catalog.=) t.typnamespace
 WHERE c.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,v,m,f}'::pg_catalog.\"char\"[])
   AND (n.nspname::pg_catalog.text OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[])
        OR ($2 AND n.nspname OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,information_schema}'::pg_catalog.name[])
               AND NOT pg_catalog.starts_with(n.nspname::pg_catalog.text, 'pg_'::pg_catalog.text)
               AND NOT pg_catalog.starts_with(n.nspname::pg_catalog.text, 'gw_access_'::pg_catalog.text)))
 GROUP BY 1, 2";

/// Sequences owned by a table (serial and identity columns): table, then sequence.
const OWNED_SEQUENCES: &str = "\
SELECT tn.nspname::pg_catalog.text, t.relname::pg_catalog.text, sn.nspname::pg_catalog.text, s.relname::pg_catalog.text
  FROM pg_catalog.pg_class s
  JOIN pg_catalog.pg_namespace sn ON sn.oid OPERATOR(pg_catalog.=) s.relnamespace
  JOIN pg_catalog.pg_depend d ON d.objid OPERATOR(pg_catalog.=) s.oid
   AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
   AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
   AND d.deptype OPERATOR(pg_catalog.=) ANY ('{a,i}'::pg_catalog.\"char\"[])
  JOIN pg_catalog.pg_class t ON t.oid OPERATOR(pg_catalog.=) d.refobjid
  JOIN pg_catalog.pg_namespace tn ON tn.oid OPERATOR(pg_catalog.=) t.relnamespace
 WHERE s.relkind OPERATOR(pg_catalog.=) 'S'::pg_catalog.\"char\"";

/// The relations each view or materialized view reads, through its rewrite
/// rule's dependencies, and through the views it reads in turn.
const VIEW_SOURCES: &str = "\
WITH RECURSIVE reads(view_oid, rel_oid) AS (
    SELECT r.ev_class, d.refobjid
      FROM pg_catalog.pg_rewrite r
      JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
       AND d.objid OPERATOR(pg_catalog.=) r.oid
     WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.refobjid OPERATOR(pg_catalog.<>) r.ev_class
    UNION
    SELECT reads.view_oid, d.refobjid
      FROM reads
      JOIN pg_catalog.pg_rewrite r ON r.ev_class OPERATOR(pg_catalog.=) reads.rel_oid
      JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
       AND d.objid OPERATOR(pg_catalog.=) r.oid
     WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
       AND d.refobjid OPERATOR(pg_catalog.<>) r.ev_class
)
SELECT DISTINCT vn.nspname::pg_catalog.text, v.relname::pg_catalog.text,
       tn.nspname::pg_catalog.text, t.relname::pg_catalog.text
  FROM reads
  JOIN pg_catalog.pg_class v ON v.oid OPERATOR(pg_catalog.=) reads.view_oid
  JOIN pg_catalog.pg_namespace vn ON vn.oid OPERATOR(pg_catalog.=) v.relnamespace
  JOIN pg_catalog.pg_class t ON t.oid OPERATOR(pg_catalog.=) reads.rel_oid
  JOIN pg_catalog.pg_namespace tn ON tn.oid OPERATOR(pg_catalog.=) t.relnamespace
 WHERE v.relkind OPERATOR(pg_catalog.=) ANY ('{v,m}'::pg_catalog.\"char\"[])";

/// Each partition and inheritance child with its direct parent (`pg_inherits`).
const PARENTS: &str = "\
SELECT cn.nspname::pg_catalog.text, c.relname::pg_catalog.text, pn.nspname::pg_catalog.text, p.relname::pg_catalog.text
  FROM pg_catalog.pg_inherits i
  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.inhrelid
  JOIN pg_catalog.pg_namespace cn ON cn.oid OPERATOR(pg_catalog.=) c.relnamespace
  JOIN pg_catalog.pg_class p ON p.oid OPERATOR(pg_catalog.=) i.inhparent
  JOIN pg_catalog.pg_namespace pn ON pn.oid OPERATOR(pg_catalog.=) p.relnamespace
 WHERE c.relkind OPERATOR(pg_catalog.<>) 'i'::pg_catalog.\"char\"";

/// Schemas of this database on which PUBLIC (grantee 0) holds CREATE; a NULL
/// ACL is the owner's alone.
const PUBLIC_CREATE_SCHEMAS: &str = "\
SELECT n.nspname::pg_catalog.text
  FROM pg_catalog.pg_namespace n, LATERAL pg_catalog.aclexplode(n.nspacl) a
 WHERE a.grantee OPERATOR(pg_catalog.=) 0::pg_catalog.oid
   AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'::pg_catalog.text
 ORDER BY 1";

/// The session parameters a credential may be held to that this server has,
/// and whether the issuing role may set them on a role: a `user` parameter
/// whoever may alter the role can; a `superuser` one (pgaudit's,
/// `temp_file_limit`) only a superuser, or on RDS a direct member of
/// `rds_superuser` (RDS's own rule). A parameter the server lacks (pgaudit
/// not loaded) is not listed.
const ROLE_SETTINGS: &str = "SELECT s.name::pg_catalog.text,
       s.context OPERATOR(pg_catalog.=) 'user'::pg_catalog.text OR r.rolsuper
       OR EXISTS (SELECT FROM pg_catalog.pg_auth_members m, pg_catalog.pg_roles g
                   WHERE m.member OPERATOR(pg_catalog.=) r.oid AND g.oid OPERATOR(pg_catalog.=) m.roleid
                     AND g.rolname OPERATOR(pg_catalog.=) 'rds_superuser'::pg_catalog.name)
  FROM pg_catalog.pg_settings s, pg_catalog.pg_roles r
 WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER
   AND s.name OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.text[])";

/// The database's name, and whether PUBLIC may create schemas in it.
const DATABASE: &str = "\
SELECT d.datname::pg_catalog.text,
       EXISTS (SELECT FROM pg_catalog.aclexplode(d.datacl) a
                WHERE a.grantee OPERATOR(pg_catalog.=) 0::pg_catalog.oid
                  AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE'::pg_catalog.text)
  FROM pg_catalog.pg_database d
 WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database()";

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
    /// Relations of a schema or database scope not granted, with the reason.
    pub left_out: Vec<String>,
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

/// Pairs of relations, `(schema, name)` to `(schema, name)`, from a four-column query.
async fn relation_pairs(
    client: &Client,
    sql: &str,
    what: &str,
) -> Result<std::collections::BTreeMap<(String, String), Vec<(String, String)>>, Failure> {
    let mut out = std::collections::BTreeMap::<_, Vec<_>>::new();
    for r in client.query(sql, &[]).await.map_err(Failure::db(format!("reading {what}")))? {
        out.entry((r.get(0), r.get(1))).or_default().push((r.get(2), r.get(3)));
    }
    Ok(out)
}

/// What planning a credential needs of the database, read in its transaction.
async fn activation_catalog(client: &Client, scope: &AccessScope) -> Result<ActivationCatalog, Failure> {
    let schemas: Vec<String> = scope.schema().map(str::to_owned).into_iter().collect();
    let everything = matches!(scope, AccessScope::Database);
    let rows = client
        .query(SCOPE_TABLES, &[&schemas, &everything])
        .await
        .map_err(Failure::db("reading the tables of the scope"))?;
    let tables = rows
        .iter()
        .map(|r| {
            let names: Vec<String> = r.get(2);
            let type_schemas: Vec<String> = r.get(3);
            let type_names: Vec<String> = r.get(4);
            let columns = names
                .into_iter()
                .zip(type_schemas.into_iter().zip(type_names))
                .map(|(name, type_name)| CatalogColumn { name, type_name })
                .collect();
            ((r.get::<_, String>(0), r.get::<_, String>(1)), columns)
        })
        .collect();
    let database = client.query_one(DATABASE, &[]).await.map_err(Failure::db("reading the database"))?;
    let public_create_schemas = client
        .query(PUBLIC_CREATE_SCHEMAS, &[])
        .await
        .map_err(Failure::db("reading where PUBLIC may create"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let names = grantwarden_core::session_limits::RoleSetting::PARAMETERS;
    let role_settings = client
        .query(ROLE_SETTINGS, &[&names])
        .await
        .map_err(Failure::db("reading which session parameters may be set"))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    Ok(ActivationCatalog {
        role_settings,
        database: database.get(0),
        public_create_database: database.get(1),
        tables,
        sequences: relation_pairs(client, OWNED_SEQUENCES, "owned sequences").await?,
        views: relation_pairs(client, VIEW_SOURCES, "what views read").await?,
        parents: relation_pairs(client, PARENTS, "partitions and inheritance").await?,
        public_create_schemas,
    })
}

/// A fresh random password for a credential (32 alphanumeric characters).
pub fn new_password() -> String {
    rand::rng().sample_iter(&Alphanumeric).take(32).map(char::from).collect()
}

/// The comment on a role grantwarden created for `ticket_id`.
fn marker(ticket_id: &str) -> String {
    format!("grantwarden access ticket {ticket_id}")
}

const ROLE_COMMENT: &str = "SELECT pg_catalog.shobj_description(r.oid, 'pg_authid'::pg_catalog.name) \
     FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) $1::pg_catalog.name";

impl Executor {
    /// Issues `ticket`'s credential with `password` (dry run: plans and renders
    /// only). Idempotent: when the role exists already and was created for this
    /// ticket, only its password is set; a role of that name made otherwise is
    /// refused as permanent.
    pub async fn activate(&self, ticket: &Ticket, password: &str, dry_run: bool) -> Result<Issued, ExecError> {
        let grant = ticket.access().ok_or_else(|| ExecError {
            class: FailureClass::Permanent,
            message: format!("ticket {} is not an access ticket", ticket.id()),
            attempts: 0,
        })?;
        let role = &ticket.request().role;
        let verifier =
            postgres_protocol::escape::escape_literal(&postgres_protocol::password::scram_sha_256(password.as_bytes()));
        let ((sql, reissued, left_out), attempts) = self
            .retrying(|| async {
                let client = connect(&self.config).await.map_err(Failure::db("connecting to the target"))?;
                let begin = self.begin();
                run_all(&client, &if dry_run { self.begin_read_only() } else { begin.clone() }).await?;
                let existing: Option<Option<String>> = client
                    .query_opt(ROLE_COMMENT, &[&role.as_str()])
                    .await
                    .map_err(Failure::db("reading the role"))?
                    .map(|r| r.get(0));
                let (changes, left_out) = match &existing {
                    None => {
                        let catalog = activation_catalog(&client, &grant.scope).await?;
                        let planned = plan_activation(ticket, &catalog).map_err(|e| {
                            Failure::permanent(format!("refusing to issue ticket {}: {e}", ticket.id()))
                        })?;
                        (planned.changes, planned.left_out)
                    }
                    Some(Some(comment)) if *comment == marker(ticket.id()) => (Vec::new(), Vec::new()),
                    Some(_) => {
                        let _ = client.batch_execute("ROLLBACK").await;
                        return Err(Failure::permanent(format!(
                            "role {role} exists already and was not created for ticket {}: refusing to issue it",
                            ticket.id()
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
                    for statement in render(c, &Functions::new())? {
                        let run = if matches!(c, Change::CreateRole { .. }) {
                            with_password(&statement)
                        } else {
                            statement.clone()
                        };
                        statements.push((statement, run));
                    }
                    let marked = match c {
                        Change::CreateRole { role, .. } => Some((role, marker(ticket.id()))),
                        Change::CreateViewOwner { role } => Some((role, format!("{} (views)", marker(ticket.id())))),
                        _ => None,
                    };
                    if let Some((role, text)) = marked {
                        let comment = format!(
                            "COMMENT ON ROLE {} IS {}",
                            postgres_protocol::escape::escape_identifier(role.as_str()),
                            postgres_protocol::escape::escape_literal(&text)
                        );
                        statements.push((comment.clone(), comment));
                    }
                }
                let mut shown = begin.clone();
                shown.extend(statements.iter().map(|(s, _)| s.clone()));
                shown.push("COMMIT".to_owned());
                if dry_run {
                    client.batch_execute("ROLLBACK").await.map_err(Failure::db("ending the read"))?;
                    return Ok((shown, existing.is_some(), left_out));
                }
                for (printed, run) in &statements {
                    if let Err(e) = client.batch_execute(run).await {
                        let _ = client.batch_execute("ROLLBACK").await;
                        return Err(Failure::db(printed)(e));
                    }
                }
                client.batch_execute("COMMIT").await.map_err(Failure::db("committing the credential"))?;
                Ok((shown, existing.is_some(), left_out))
            })
            .await?;
        if reissued {
            tracing::warn!(ticket = %ticket.id(), %role, "the role was created by an earlier attempt: its password is set anew");
        }
        Ok(Issued {
            role: role.to_string(),
            password: if dry_run { String::new() } else { password.to_owned() },
            sql,
            attempts,
            reissued,
            left_out,
        })
    }
}
