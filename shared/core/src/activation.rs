//! Activation: the plan that issues a just-in-time credential, from the
//! ticket's [`AccessGrant`] and what the target's catalog holds. Masking and
//! sensitivity follow the data (partitions, inheritance, views), and a
//! database where PUBLIC may create is refused.

use std::collections::{BTreeMap, BTreeSet};

use globset::{Glob, GlobMatcher};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::access_policy::{AccessGrant, AccessPath, AccessScope, Mask, describe, views_owner_for};
use crate::change::Change;
use crate::model::{Grant, Grantee, MAX_NAME_BYTES, ObjectClass, ObjectRef, Privilege};
use crate::ticket::Ticket;

/// A column as the catalog has it: name and type, (schema, `typname`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CatalogColumn {
    /// Its name.
    pub name: String,
    /// Its type: schema and `typname` (`pg_catalog`, `varchar`).
    pub type_name: (String, String),
}

/// Each table of a scope with its columns in order, as the catalog has them.
pub type ScopeCatalog = BTreeMap<(String, String), Vec<CatalogColumn>>;

/// The sequences each table owns (serial and identity columns), `(schema, sequence)`.
pub type OwnedSequences = BTreeMap<(String, String), Vec<(String, String)>>;

/// The relations each view or materialized view reads, directly or through other views.
pub type ViewSources = BTreeMap<(String, String), Vec<(String, String)>>;

/// The parents of each partition or inheritance child (`pg_inherits`), `(schema, table)`.
pub type Parents = BTreeMap<(String, String), Vec<(String, String)>>;

/// What issuing a credential reads of the target database before it plans.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ActivationCatalog {
    /// The database's name.
    pub database: String,
    /// The tables of the scope (all of them for a database scope).
    pub tables: ScopeCatalog,
    /// Sequences the tables own.
    pub sequences: OwnedSequences,
    /// What each view reads.
    pub views: ViewSources,
    /// Partitions' and inheritance children's parents.
    pub parents: Parents,
    /// Schemas of the database on which PUBLIC holds CREATE.
    pub public_create_schemas: Vec<String>,
    /// PUBLIC holds CREATE on the database itself (it may create schemas).
    pub public_create_database: bool,
    /// The session parameters a credential may be held to that the server has
    /// (pgaudit's only when it is loaded), each with whether the issuing role
    /// may set them on a role (superuser-only ones: a superuser or `rds_superuser`).
    pub role_settings: BTreeMap<String, bool>,
}

/// Why a credential cannot be issued as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActivationError {
    /// The ticket is an exception ticket, not just-in-time access.
    #[error("ticket {ticket} is not an access ticket")]
    NotAccessTicket {
        /// The ticket.
        ticket: String,
    },
    /// PUBLIC holds CREATE on the database.
    #[error(
        "PUBLIC may create schemas in database {database}: any credential issued here could create objects \
         that outlive it or shadow another role's schema on its search_path. Revoke it first \
         (REVOKE CREATE ON DATABASE {} FROM PUBLIC)",
        crate::model::display_ident(database)
    )]
    PublicCreatesSchemas {
        /// The database.
        database: String,
    },
    /// PUBLIC holds CREATE on a schema the registry does not allow.
    #[error(
        "PUBLIC holds CREATE on schema {schema} of database {database} (the default before PostgreSQL 15): \
         any credential issued here could create functions or operators there that run with the rights of \
         whoever calls them. Revoke it (REVOKE CREATE ON SCHEMA {} FROM PUBLIC), or allow it in the registry \
         (access.allow_public_create: [{schema}]) if you accept that",
        crate::model::display_ident(schema)
    )]
    PublicCreateOnSchema {
        /// The schema.
        schema: String,
        /// The database.
        database: String,
    },
    /// A relation named in the scope would show masked or sensitive data.
    #[error("{relation}: {why}")]
    Refused {
        /// `schema.table`.
        relation: String,
        /// Why, in words.
        why: String,
    },
    /// Nothing of a wide scope may be granted.
    #[error("{scope} holds no table grantwarden may grant{}", left_out_list(left_out))]
    NothingGrantable {
        /// The scope in words.
        scope: String,
        /// What was left out, each with its reason.
        left_out: Vec<String>,
    },
    /// A table of the scope is not in the catalog.
    #[error("no table {table}")]
    NoSuchTable {
        /// `schema.table`.
        table: String,
    },
    /// The registry masks a column the table does not have.
    #[error(
        "the masking of {table} names column {column:?}, which the table does not have: \
         refusing to issue rather than show a column unmasked (correct the registry's access.masking)"
    )]
    MaskedColumnMissing {
        /// `schema.table`.
        table: String,
        /// The column.
        column: String,
    },
    /// The row predicate names a column the table does not have.
    #[error("{table} has no column {column}")]
    NoSuchColumn {
        /// `schema.table`.
        table: String,
        /// The column.
        column: String,
    },
    /// Two tables of the scope would get views of one name.
    #[error("two tables of the scope would share the view name {name:?}")]
    ViewNameClash {
        /// The view name.
        name: String,
    },
}

fn left_out_list(left_out: &[String]) -> String {
    if left_out.is_empty() { String::new() } else { format!(": {}", left_out.join("; ")) }
}

/// A credential's plan: the changes, in one transaction, and what a wide scope left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Activation {
    /// The changes, in order.
    pub changes: Vec<Change>,
    /// Relations of a schema or database scope not granted, with the reason.
    pub left_out: Vec<String>,
}

type Relation = (String, String);

/// How sensitivity and masking follow the data: a partition or inheritance
/// child holds its parent's rows, a parent shows its children's rows, and a
/// view (or materialized view) shows what it reads. Sensitive and masked
/// tables, as the registry names them, pass that on through all three.
struct DataFlow<'a> {
    grant: &'a AccessGrant,
    catalog: &'a ActivationCatalog,
    /// Direct children of each relation.
    children: BTreeMap<&'a Relation, Vec<&'a Relation>>,
    /// The ticket's sensitive schema globs, compiled once.
    sensitive_schemas: Vec<GlobMatcher>,
}

impl<'a> DataFlow<'a> {
    fn new(grant: &'a AccessGrant, catalog: &'a ActivationCatalog) -> Self {
        let mut children: BTreeMap<&Relation, Vec<&Relation>> = BTreeMap::new();
        for (child, parents) in &catalog.parents {
            for p in parents {
                children.entry(p).or_default().push(child);
            }
        }
        // the globs were checked when the registry was loaded; one that no longer compiles matches nothing
        let sensitive_schemas =
            grant.sensitive_schemas.iter().filter_map(|g| Glob::new(g).ok()).map(|g| g.compile_matcher()).collect();
        Self { grant, catalog, children, sensitive_schemas }
    }

    /// The relation, its ancestors and its descendants: whose rows it shows or holds.
    fn lineage(&self, r: &Relation) -> Vec<Relation> {
        let mut seen = std::collections::BTreeSet::new();
        let mut up = vec![r.clone()];
        while let Some(x) = up.pop() {
            if seen.insert(x.clone()) {
                up.extend(self.catalog.parents.get(&x).into_iter().flatten().cloned());
            }
        }
        let mut down = vec![r.clone()];
        let mut below = std::collections::BTreeSet::new();
        while let Some(x) = down.pop() {
            if below.insert(x.clone()) {
                down.extend(self.children.get(&x).into_iter().flatten().map(|c| (*c).clone()));
            }
        }
        seen.extend(below);
        seen.into_iter().collect()
    }

    /// The masks that apply to `r`'s columns: the registry's for it and for every
    /// table of its lineage, where `r` has the column.
    fn masks(&self, r: &Relation) -> BTreeMap<String, Mask> {
        let columns = self.catalog.tables.get(r);
        let mut out = BTreeMap::new();
        for l in self.lineage(r) {
            let Some(m) = self.grant.masking.get(&format!("{}.{}", l.0, l.1)) else { continue };
            for (column, mask) in m {
                // the relation's own masks name its columns (checked apart); a relative's may not
                let has = columns.is_none_or(|c| c.iter().any(|k| k.name == *column));
                if has || l == *r {
                    out.entry(column.clone()).or_insert(*mask);
                }
            }
        }
        out
    }

    /// Whether the registry names `r` sensitive, by table or by schema.
    fn named_sensitive(&self, r: &Relation) -> bool {
        let name = format!("{}.{}", r.0, r.1);
        self.grant.sensitive_tables.contains(&name) || self.sensitive_schemas.iter().any(|g| g.is_match(&r.0))
    }

    /// Why `r` is sensitive through another relation: a parent, a child, or what a view reads.
    fn sensitive_through(&self, r: &Relation) -> Option<String> {
        if let Some(l) = self.lineage(r).into_iter().find(|l| l != r && self.named_sensitive(l)) {
            return Some(format!("it shares rows with the sensitive table {}.{} (partition or inheritance)", l.0, l.1));
        }
        for source in self.catalog.views.get(r).into_iter().flatten() {
            if let Some(l) = self.lineage(source).into_iter().find(|l| self.named_sensitive(l)) {
                return Some(format!("it is a view over the sensitive table {}.{}", l.0, l.1));
            }
        }
        None
    }

    /// The masked relation a view reads, if any (through its lineage too).
    fn masked_source(&self, r: &Relation) -> Option<Relation> {
        self.catalog.views.get(r).into_iter().flatten().find(|source| !self.masks(source).is_empty()).cloned()
    }
}

/// The changes that issue a ticket's credential, in one transaction (a write
/// path also gets USAGE on the sequences its tables own): the role (LOGIN,
/// VALID UNTIL the expiry, a connection limit, NOINHERIT), CONNECT on the
/// database, and exactly the scope: plain tables by GRANT, row scope and
/// masked tables through security-barrier views in the ticket's own schema,
/// owned by a role of their own that holds only what they read (nobody
/// else's access changes; row-level security is never switched on, and
/// still applies to what the views read).
///
/// Masking and sensitivity follow the data (`DataFlow`): a partition, an
/// inheritance child or a parent of a masked table is masked too, and of a
/// sensitive table sensitive too. A view reading a masked relation is left
/// out of a schema or database scope and refused when named; one reading a
/// sensitive relation likewise unless a person approved the ticket (a scope
/// the registry names sensitive already needs one). A mask naming a column
/// the table lacks is refused (a renamed column would show unmasked).
///
/// Issuing refuses where PUBLIC holds CREATE on a schema (any role, the
/// credential included, could create there functions and operators that run
/// as whoever calls them) unless the registry allows that schema, and where
/// PUBLIC may create schemas in the database.
pub fn plan_activation(ticket: &Ticket, catalog: &ActivationCatalog) -> Result<Activation, ActivationError> {
    let grant = ticket.access().ok_or_else(|| ActivationError::NotAccessTicket { ticket: ticket.id().to_owned() })?;
    let database = &catalog.database;
    if catalog.public_create_database {
        return Err(ActivationError::PublicCreatesSchemas { database: database.clone() });
    }
    let allowed = |schema: &str| {
        grant.allow_public_create.iter().any(|g| Glob::new(g).is_ok_and(|g| g.compile_matcher().is_match(schema)))
    };
    if let Some(schema) = catalog.public_create_schemas.iter().find(|s| !allowed(s)) {
        return Err(ActivationError::PublicCreateOnSchema { schema: schema.clone(), database: database.clone() });
    }
    let flow = DataFlow::new(grant, catalog);
    let role = ticket.request().role.clone();
    let who = Grantee::Role(role.clone());
    let owner = views_owner_for(&role);
    let mut out = vec![
        Change::CreateRole {
            role: role.clone(),
            valid_until: ticket.expires_at(),
            connection_limit: grant.connection_limit,
        },
        Change::Grant {
            grant: Grant {
                object: ObjectRef::database(database),
                grantee: who.clone(),
                privilege: Privilege::Connect,
                grantable: false,
            },
        },
    ];
    let wide = matches!(grant.scope, AccessScope::Database | AccessScope::Schema { .. });
    let mut tables: Vec<Relation> = match &grant.scope {
        AccessScope::Database => catalog.tables.keys().cloned().collect(),
        AccessScope::Schema { schema } => catalog.tables.keys().filter(|(s, _)| s == schema).cloned().collect(),
        AccessScope::Tables { schema, tables } => tables.iter().map(|t| (schema.clone(), t.clone())).collect(),
        AccessScope::Rows { schema, table, .. } => vec![(schema.clone(), table.clone())],
    };
    // a person approved it, or an open incident did: a sensitive scope is what they agreed to
    let vouched = ticket.approvals_required() > 0 || grant.path == AccessPath::BreakGlass;
    let mut left_out = Vec::new();
    let mut refused = None;
    tables.retain(|r| {
        let why = match flow.masked_source(r) {
            Some((s, t)) => Some(format!(
                "it is a view over the masked table {s}.{t}: it would show the masked columns as they are \
                 (ask for {s}.{t}, whose view masks them)"
            )),
            None if !vouched => flow.sensitive_through(r).map(|why| {
                format!(
                    "{why}, and nobody approved this ticket (ask for it by name: a sensitive scope needs an approver)"
                )
            }),
            None => None,
        };
        match why {
            None => true,
            Some(why) => {
                let relation = format!("{}.{}", r.0, r.1);
                if wide {
                    left_out.push(format!("{relation}: {why}"));
                } else if refused.is_none() {
                    refused = Some(ActivationError::Refused { relation, why });
                }
                false
            }
        }
    });
    if let Some(refused) = refused {
        return Err(refused);
    }
    if tables.is_empty() {
        return Err(ActivationError::NothingGrantable { scope: describe(&grant.scope), left_out });
    }
    // one views schema for the whole ticket: a database scope may hold two tables of one name
    let mut view_names = BTreeSet::new();
    let write = grant.path != AccessPath::ReadOnly;
    let mut usage = std::collections::BTreeSet::new();
    // what the views' owner must hold, and what runs as it
    let mut owner_reads = Vec::new();
    let mut owner_usage = std::collections::BTreeSet::new();
    let mut views = Vec::new();
    for (schema, table) in &tables {
        let relation = (schema.clone(), table.clone());
        let columns = catalog
            .tables
            .get(&relation)
            .ok_or_else(|| ActivationError::NoSuchTable { table: format!("{schema}.{table}") })?;
        if let Some(unknown) = grant
            .masking
            .get(&format!("{schema}.{table}"))
            .and_then(|m| m.keys().find(|c| !columns.iter().any(|k| k.name == **c)))
        {
            return Err(ActivationError::MaskedColumnMissing {
                table: format!("{schema}.{table}"),
                column: unknown.clone(),
            });
        }
        let masks = flow.masks(&relation);
        let predicate = match &grant.scope {
            AccessScope::Rows { predicate, .. } => {
                let column = columns.iter().find(|c| c.name == predicate.column).ok_or_else(|| {
                    ActivationError::NoSuchColumn {
                        table: format!("{schema}.{table}"),
                        column: predicate.column.clone(),
                    }
                })?;
                Some((predicate.clone(), column.type_name.clone()))
            }
            _ => None,
        };
        let mut privileges = vec![Privilege::Select];
        if write && masks.is_empty() {
            privileges.extend([Privilege::Insert, Privilege::Update, Privilege::Delete]);
        }
        if !masks.is_empty() || predicate.is_some() {
            let clash = tables.iter().filter(|(_, t)| t == table).count() > 1;
            let name = view_name(schema, table, clash, &view_names);
            if !view_names.insert(name.clone()) {
                return Err(ActivationError::ViewNameClash { name });
            }
            owner_usage.insert(schema.clone());
            for p in privileges.iter().copied() {
                owner_reads.push(Change::Grant {
                    grant: Grant {
                        object: ObjectRef::in_schema(ObjectClass::Table, schema, table),
                        grantee: Grantee::Role(owner.clone()),
                        privilege: p,
                        grantable: false,
                    },
                });
            }
            views.push(Change::CreateView {
                schema: grant.views_schema.clone(),
                name: name.clone(),
                source_schema: schema.clone(),
                source_table: table.clone(),
                columns: columns.iter().map(|c| (c.name.clone(), masks.get(&c.name).copied())).collect(),
                predicate_type: predicate.as_ref().map(|(_, t)| t.clone()),
                predicate: predicate.map(|(p, _)| p),
            });
            for p in privileges {
                views.push(Change::Grant {
                    grant: Grant {
                        object: ObjectRef::in_schema(ObjectClass::Table, &grant.views_schema, &name),
                        grantee: who.clone(),
                        privilege: p,
                        grantable: false,
                    },
                });
            }
        } else {
            usage.insert(schema.clone());
            for p in privileges.iter().copied() {
                out.push(Change::Grant {
                    grant: Grant {
                        object: ObjectRef::in_schema(ObjectClass::Table, schema, table),
                        grantee: who.clone(),
                        privilege: p,
                        grantable: false,
                    },
                });
            }
            // an INSERT that takes a serial or identity default needs its sequence
            if privileges.contains(&Privilege::Insert) {
                for (seq_schema, seq) in catalog.sequences.get(&relation).into_iter().flatten() {
                    usage.insert(seq_schema.clone());
                    out.push(Change::Grant {
                        grant: Grant {
                            object: ObjectRef::in_schema(ObjectClass::Sequence, seq_schema, seq),
                            grantee: who.clone(),
                            privilege: Privilege::Usage,
                            grantable: false,
                        },
                    });
                }
            }
        }
    }
    let usage_of = |schema: &str, to: &Grantee| Change::Grant {
        grant: Grant {
            object: ObjectRef::schema(schema),
            grantee: to.clone(),
            privilege: Privilege::Usage,
            grantable: false,
        },
    };
    for schema in usage {
        out.push(usage_of(&schema, &who));
    }
    if !views.is_empty() {
        out.push(Change::CreateViewOwner { role: owner.clone() });
        out.extend(owner_usage.iter().map(|s| usage_of(s, &Grantee::Role(owner.clone()))));
        out.extend(owner_reads);
        out.push(Change::CreateSchema { schema: grant.views_schema.clone(), owner: owner.clone() });
        // the owner creates its views and hands them out: nothing of the admin's is in them
        out.push(Change::SetRole { role: Some(owner.clone()) });
        out.extend(views);
        out.push(usage_of(&grant.views_schema, &who));
        out.push(Change::SetRole { role: None });
    }
    // what the sessions are held to: set where the issuing role may, and what is lost said otherwise
    for setting in grant.session.role_settings() {
        match catalog.role_settings.get(setting.name()) {
            Some(true) => out.push(Change::SetRoleSetting { role: role.clone(), setting }),
            Some(false) => left_out.push(format!(
                "{}: only a superuser (rds_superuser on RDS) may set it and the issuing role is not one: {}",
                setting.name(),
                setting.lost()
            )),
            None => left_out.push(format!(
                "{}: the server has no such parameter{}: {}",
                setting.name(),
                if setting.name().starts_with("pgaudit.") { " (pgaudit is not loaded, or older than 1.7)" } else { "" },
                setting.lost()
            )),
        }
    }
    Ok(Activation { changes: out, left_out })
}

/// The name of the view over `schema.table` in the ticket's views schema: the
/// table's own, or `schema__table` when another table of the scope has the
/// same name. PostgreSQL cuts a name to 63 bytes, and two cut names can meet
/// (schemas `a` and `a__b` over tables `b__b__...`), so a name that does not
/// fit, or is `taken`, is cut shorter and ends with a digest of schema and table.
fn view_name(schema: &str, table: &str, clash: bool, taken: &BTreeSet<String>) -> String {
    let full = if clash { format!("{schema}__{table}") } else { table.to_owned() };
    if full.len() <= MAX_NAME_BYTES && !taken.contains(&full) {
        return full;
    }
    let mut head = String::new();
    for c in full.chars() {
        if head.len() + c.len_utf8() > MAX_NAME_BYTES - 11 {
            break;
        }
        head.push(c);
    }
    (0u32..)
        .map(|n| {
            let digest = hex::encode(Sha256::digest(format!("{schema}\0{table}\0{n}")));
            format!("{head}_{}", &digest[..10])
        })
        .find(|name| !taken.contains(name))
        .expect("an unbounded range of digests holds a name not taken")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::tests::{decide, request, tables, ticket};
    use crate::model::RoleName;
    use crate::ticket::TicketStatus;

    /// The relations and views a database scope sees: billing.customers is masked.
    fn scope_catalog() -> ActivationCatalog {
        let cols = |c: &[&str]| {
            c.iter()
                .map(|s| CatalogColumn { name: s.to_string(), type_name: ("pg_catalog".into(), "text".into()) })
                .collect::<Vec<_>>()
        };
        let key = |s: &str, t: &str| (s.to_owned(), t.to_owned());
        let tables: ScopeCatalog = [
            (key("billing", "customers"), cols(&["id", "email", "ssn"])),
            (key("billing", "invoices"), cols(&["id", "customer_id"])),
            (key("reports", "customer_list"), cols(&["id", "email"])),
            (key("reports", "invoices"), cols(&["id", "total"])),
            (key("reports", "totals"), cols(&["total"])),
        ]
        .into();
        let views: ViewSources = [
            (key("reports", "customer_list"), vec![key("billing", "customers")]),
            (key("reports", "totals"), vec![key("billing", "invoices")]),
        ]
        .into();
        ActivationCatalog { database: "orders".into(), tables, views, ..ActivationCatalog::default() }
    }

    /// What the credential itself is granted (not the views' owner), and the views made.
    fn granted(changes: &[Change]) -> Vec<String> {
        let owner = |g: &Grant| g.grantee.role().is_some_and(|r| r.as_str().ends_with("_views"));
        changes
            .iter()
            .filter_map(|c| match c {
                Change::Grant { grant } if grant.privilege == Privilege::Select && !owner(grant) => {
                    Some(grant.object.to_string())
                }
                Change::CreateView { schema, name, source_schema, source_table, .. } => {
                    Some(format!("view {schema}.{name} of {source_schema}.{source_table}"))
                }
                _ => None,
            })
            .collect()
    }

    fn columns_of_view(changes: &[Change], view: &str) -> Vec<(String, Option<Mask>)> {
        changes
            .iter()
            .find_map(|c| match c {
                Change::CreateView { name, columns, .. } if name == view => Some(columns.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no view {view}: {changes:?}"))
    }

    #[test]
    fn session_settings_are_set_where_the_issuer_may_and_what_is_lost_is_said_otherwise() {
        let mut t = ticket(decide(&request(AccessPath::ReadOnly, AccessScope::Database, "1h", None)));
        t.set_status(TicketStatus::Active);
        let mut grant = t.access().unwrap().clone();
        grant.session.statement_timeout_ms = Some(60_000);
        grant.session.temp_file_limit_kb = Some(1024);
        t.set_access(Some(grant));
        let settings = |plan: &Activation| -> Vec<String> {
            plan.changes
                .iter()
                .filter_map(|c| match c {
                    Change::SetRoleSetting { role, setting } => {
                        Some(format!("{role} {}={}", setting.name(), setting.value()))
                    }
                    _ => None,
                })
                .collect()
        };
        let role = t.request().role.clone();
        // a superuser on a server with pgaudit: everything
        let mut catalog = scope_catalog();
        catalog.role_settings =
            crate::session_limits::RoleSetting::PARAMETERS.iter().map(|p| (p.to_string(), true)).collect();
        let plan = plan_activation(&t, &catalog).unwrap();
        assert_eq!(
            settings(&plan),
            [
                format!("{role} pgaudit.log=read, write, function, role, ddl"),
                format!("{role} pgaudit.log_rows=on"),
                format!("{role} pgaudit.log_relation=on"),
                format!("{role} statement_timeout=60000ms"),
                format!("{role} temp_file_limit=1024kB"),
            ]
        );
        assert!(
            !plan.left_out.iter().any(|l| l.starts_with("pgaudit") || l.starts_with("temp_file")),
            "{:?}",
            plan.left_out
        );
        // a CREATEROLE admin: the timeouts only; the rest is said, with what it costs
        for p in ["pgaudit.log", "pgaudit.log_rows", "pgaudit.log_relation", "temp_file_limit"] {
            catalog.role_settings.insert(p.to_string(), false);
        }
        let plan = plan_activation(&t, &catalog).unwrap();
        assert_eq!(settings(&plan), [format!("{role} statement_timeout=60000ms")]);
        assert!(plan.left_out.iter().any(|l| l.starts_with("pgaudit.log: only a superuser (rds_superuser on RDS)")
            && l.ends_with(
                "the credential's statements are not audited (unless pgaudit.log is set for the whole server)"
            )));
        assert!(plan.left_out.iter().any(|l| l.starts_with("temp_file_limit: only a superuser")));
        // no pgaudit on the server
        catalog.role_settings.retain(|p, _| !p.starts_with("pgaudit."));
        let plan = plan_activation(&t, &catalog).unwrap();
        assert!(
            plan.left_out
                .iter()
                .any(|l| l.starts_with("pgaudit.log: the server has no such parameter (pgaudit is not loaded"))
        );
    }

    #[test]
    fn activation_masks_through_views_and_leaves_out_a_view_that_reads_a_masked_table() {
        let catalog = scope_catalog();
        let mut t = ticket(decide(&request(AccessPath::ReadOnly, AccessScope::Database, "1h", None)));
        t.set_status(TicketStatus::Active);
        let schema = t.access().unwrap().views_schema.clone();
        let plan = plan_activation(&t, &catalog).unwrap();
        let got = granted(&plan.changes);
        assert!(got.contains(&format!("view {schema}.customers of billing.customers")), "{got:?}");
        assert!(got.contains(&format!("{schema}.customers")), "read through its masking view: {got:?}");
        assert!(!got.contains(&"billing.customers".to_owned()), "never the masked table itself: {got:?}");
        assert!(!got.iter().any(|g| g.contains("customer_list")), "a view over the masked table is left out");
        assert!(plan.left_out.iter().any(|l| l.starts_with("reports.customer_list: it is a view over the masked")));
        assert!(got.contains(&"reports.totals".to_owned()), "a view over unmasked tables is granted: {got:?}");
        assert!(got.contains(&"billing.invoices".to_owned()) && got.contains(&"reports.invoices".to_owned()));
        assert_eq!(
            columns_of_view(&plan.changes, "customers"),
            [("id".into(), None), ("email".into(), Some(Mask::Partial)), ("ssn".into(), Some(Mask::Hash))]
        );

        // named outright, such a view is refused with the reason
        let reports = AccessScope::Tables { schema: "reports".into(), tables: vec!["customer_list".into()] };
        let named = ticket(decide(&request(AccessPath::ReadOnly, reports, "1h", None)));
        let err = plan_activation(&named, &catalog).unwrap_err().to_string();
        assert!(err.contains("view over the masked table billing.customers"), "{err}");
    }

    #[test]
    fn views_are_made_and_handed_out_by_an_owner_that_holds_only_what_they_read() {
        let catalog = scope_catalog();
        let t = ticket(decide(&request(AccessPath::ReadOnly, AccessScope::Database, "1h", None)));
        let plan = plan_activation(&t, &catalog).unwrap().changes;
        let owner = views_owner_for(&t.request().role);
        let schema = t.access().unwrap().views_schema.clone();
        let at = |wanted: &Change| plan.iter().position(|c| c == wanted).unwrap_or_else(|| panic!("{wanted:?}"));
        let create = at(&Change::CreateViewOwner { role: owner.clone() });
        let made = at(&Change::CreateSchema { schema: schema.clone(), owner: owner.clone() });
        let (set, reset) = (at(&Change::SetRole { role: Some(owner.clone()) }), at(&Change::SetRole { role: None }));
        assert!(create < made && made < set && set < reset, "{plan:?}");
        for (i, c) in plan.iter().enumerate() {
            if matches!(c, Change::CreateView { .. }) {
                assert!(set < i && i < reset, "views are created as their owner");
            }
        }
        let owner_holds: Vec<String> = plan
            .iter()
            .filter_map(|c| match c {
                Change::Grant { grant } if grant.grantee == Grantee::Role(owner.clone()) => {
                    Some(format!("{} {}", grant.privilege, grant.object))
                }
                _ => None,
            })
            .collect();
        assert_eq!(owner_holds, ["USAGE billing", "SELECT billing.customers"], "only what its one view reads");
        assert!(schema.starts_with("gw_access_") && schema.len() == "gw_access_".len() + 16, "{schema}");
        let again = ticket(decide(&request(AccessPath::ReadOnly, AccessScope::Database, "1h", None)));
        assert_ne!(again.access().unwrap().views_schema, schema, "drawn, not derived from the request");
    }

    #[test]
    fn masking_and_sensitivity_follow_partitions_inheritance_and_views() {
        let mut catalog = scope_catalog();
        let key = |s: &str, t: &str| (s.to_owned(), t.to_owned());
        let cols = |c: &[&str]| {
            c.iter()
                .map(|s| CatalogColumn { name: s.to_string(), type_name: ("pg_catalog".into(), "text".into()) })
                .collect::<Vec<_>>()
        };
        // billing.customers has a partition; app.ledger inherits from billing.invoices2, which
        // has a masked child; reports.copy is a view over the partition of a sensitive table
        catalog.tables.insert(key("billing", "customers_2024"), cols(&["id", "email", "ssn"]));
        catalog.tables.insert(key("app", "ledger_parent"), cols(&["id", "card"]));
        catalog.tables.insert(key("app", "ledger_child"), cols(&["id", "card", "note"]));
        catalog.tables.insert(key("app", "by_partition"), cols(&["id", "email"]));
        catalog.parents.insert(key("billing", "customers_2024"), vec![key("billing", "customers")]);
        catalog.parents.insert(key("app", "ledger_child"), vec![key("app", "ledger_parent")]);
        catalog.views.insert(key("app", "by_partition"), vec![key("billing", "customers_2024")]);
        let mut t = ticket(decide(&request(AccessPath::ReadOnly, tables(&["customers_2024"]), "1h", None)));
        t.access_mut().unwrap().masking.insert("app.ledger_child".into(), [("card".into(), Mask::Hash)].into());
        let masked = |t: &Ticket| plan_activation(t, &catalog).map(|a| a.changes);
        // the partition of a sensitive table is sensitive: not without an approver...
        let err = masked(&t).unwrap_err().to_string();
        assert!(err.contains("shares rows with the sensitive table billing.customers"), "{err}");
        // ...and approved, masked as its parent is
        t.set_approvals_required(1);

        // a partition of the masked table is read through a masking view, never granted bare
        let plan = masked(&t).unwrap();
        assert_eq!(
            columns_of_view(&plan, "customers_2024"),
            [("id".into(), None), ("email".into(), Some(Mask::Partial)), ("ssn".into(), Some(Mask::Hash))]
        );
        assert!(!granted(&plan).contains(&"billing.customers_2024".to_owned()));

        // the parent of a masked child shows the child's rows: masked as well
        let mut parent = t.clone();
        parent.access_mut().unwrap().scope =
            AccessScope::Tables { schema: "app".into(), tables: vec!["ledger_parent".into()] };
        assert_eq!(
            columns_of_view(&masked(&parent).unwrap(), "ledger_parent"),
            [("id".into(), None), ("card".into(), Some(Mask::Hash))]
        );

        // a view over that partition reads a masked relation: refused when named...
        let mut view = t.clone();
        view.access_mut().unwrap().scope =
            AccessScope::Tables { schema: "app".into(), tables: vec!["by_partition".into()] };
        let err = masked(&view).unwrap_err().to_string();
        assert!(err.contains("view over the masked table billing.customers_2024"), "{err}");
        // ...and left out of the schema
        let mut schema = t.clone();
        schema.access_mut().unwrap().scope = AccessScope::Schema { schema: "app".into() };
        let a = plan_activation(&schema, &catalog).unwrap();
        assert!(a.left_out.iter().any(|l| l.starts_with("app.by_partition")), "{:?}", a.left_out);

        // sensitivity without masking: a view over a sensitive table, issued with no approval
        let mut unmasked = t.clone();
        unmasked.set_approvals_required(0);
        unmasked.access_mut().unwrap().masking.clear();
        unmasked.access_mut().unwrap().scope =
            AccessScope::Tables { schema: "app".into(), tables: vec!["by_partition".into()] };
        assert_eq!(unmasked.approvals_required(), 0);
        let err = plan_activation(&unmasked, &catalog).unwrap_err().to_string();
        assert!(err.contains("sensitive table billing.customers") && err.contains("nobody approved"), "{err}");
        // a person approved it: what they approved is issued
        unmasked.set_approvals_required(1);
        assert!(plan_activation(&unmasked, &catalog).is_ok());
    }

    #[test]
    fn a_tickets_views_and_what_their_owner_reads_are_its_own_not_drift() {
        let t = ticket(decide(&request(AccessPath::ReadOnly, tables(&["invoices"]), "1h", None)));
        let (target, role) = (t.request().target.clone(), t.request().role.clone());
        let views = t.access().unwrap().views_schema.clone();
        let owner = views_owner_for(&role);
        let invoices = ObjectRef::in_schema(ObjectClass::Table, "billing", "invoices");
        assert!(t.covers(&target, &role, Privilege::Usage, &ObjectRef::schema(&views)));
        assert!(t.covers(&target, &role, Privilege::Select, &ObjectRef::in_schema(ObjectClass::Table, &views, "x")));
        assert!(t.covers(&target, &owner, Privilege::Select, &invoices), "the owner reads the scope for the views");
        assert!(!t.covers(&target, &owner, Privilege::Delete, &invoices), "no more than the ticket gives");
        let other = RoleName::new("mallory").unwrap();
        assert!(!t.covers(&target, &other, Privilege::Select, &ObjectRef::in_schema(ObjectClass::Table, &views, "x")));
    }

    #[test]
    fn issuing_refuses_where_public_may_create_unless_the_registry_allows_the_schema() {
        let mut catalog = scope_catalog();
        catalog.public_create_schemas = vec!["public".into()];
        let mut t = ticket(decide(&request(AccessPath::ReadOnly, tables(&["invoices"]), "1h", None)));
        let err = plan_activation(&t, &catalog).unwrap_err().to_string();
        assert!(err.contains("PUBLIC holds CREATE on schema public"), "{err}");
        assert!(err.contains("REVOKE CREATE ON SCHEMA public FROM PUBLIC"), "says how to fix it: {err}");
        assert!(err.contains("access.allow_public_create"), "{err}");
        t.access_mut().unwrap().allow_public_create = vec!["pub*".into()];
        assert!(plan_activation(&t, &catalog).is_ok());
        catalog.public_create_database = true;
        let err = plan_activation(&t, &catalog).unwrap_err().to_string();
        assert!(err.contains("PUBLIC may create schemas in database orders"), "{err}");
    }

    #[test]
    fn a_mask_on_a_column_the_table_lacks_refuses_and_same_named_tables_get_distinct_views() {
        let mut catalog = scope_catalog();
        let mut t = ticket(decide(&request(AccessPath::ReadOnly, AccessScope::Database, "1h", None)));
        let schema = t.access().unwrap().views_schema.clone();
        // two masked tables called invoices, in two schemas
        let grant = t.access_mut().unwrap();
        grant.masking.insert("billing.invoices".into(), [("customer_id".to_owned(), Mask::Hash)].into());
        grant.masking.insert("reports.invoices".into(), [("total".to_owned(), Mask::Partial)].into());
        let plan = plan_activation(&t, &catalog).unwrap();
        let got = granted(&plan.changes);
        assert!(got.contains(&format!("view {schema}.billing__invoices of billing.invoices")), "{got:?}");
        assert!(got.contains(&format!("view {schema}.reports__invoices of reports.invoices")), "{got:?}");
        assert!(got.contains(&format!("view {schema}.customers of billing.customers")), "no clash, no prefix");
        // a renamed column: the mask would silently not apply
        let renamed = ["id", "e_mail", "ssn"]
            .iter()
            .map(|c| CatalogColumn { name: c.to_string(), type_name: ("pg_catalog".into(), "text".into()) })
            .collect();
        catalog.tables.insert(("billing".into(), "customers".into()), renamed);
        let err = plan_activation(&t, &catalog).unwrap_err().to_string();
        assert!(err.contains("names column \"email\", which the table does not have"), "{err}");
    }

    #[test]
    fn view_names_stay_within_63_bytes_and_distinct_where_postgresql_would_cut_them_alike() {
        // a__<t> and a__b__<t> are the same once PostgreSQL cuts them to 63 bytes
        let table = "b__".repeat(21);
        let mut catalog = scope_catalog();
        let cols = vec![CatalogColumn { name: "email".into(), type_name: ("pg_catalog".into(), "text".into()) }];
        catalog.tables.insert(("a".into(), table.clone()), cols.clone());
        catalog.tables.insert(("a__b".into(), table.clone()), cols);
        let mut t = ticket(decide(&request(AccessPath::ReadOnly, AccessScope::Database, "1h", None)));
        for schema in ["a", "a__b"] {
            let mask = [("email".to_owned(), Mask::Partial)].into();
            t.access_mut().unwrap().masking.insert(format!("{schema}.{table}"), mask);
        }
        let plan = plan_activation(&t, &catalog).unwrap();
        let views: Vec<(&str, &str)> = plan
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::CreateView { name, source_schema, source_table, .. } if *source_table == table => {
                    Some((name.as_str(), source_schema.as_str()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(views.len(), 2, "{views:?}");
        assert!(views.iter().all(|(name, _)| name.len() <= MAX_NAME_BYTES), "{views:?}");
        assert_ne!(views[0].0, views[1].0, "two views, two names: {views:?}");
        assert!(views.iter().all(|(name, schema)| name.starts_with(&format!("{schema}__b__"))), "{views:?}");
        // each view is granted under the name it was made with
        for (name, _) in &views {
            let granted = plan.changes.iter().any(|c| {
                matches!(c, Change::Grant { grant } if grant.object.name.as_str() == *name && grant.privilege == Privilege::Select)
            });
            assert!(granted, "{name} is granted: {:?}", plan.changes);
        }
        // a name that fits and is free is kept as it is
        assert_eq!(view_name("billing", "invoices", true, &BTreeSet::new()), "billing__invoices");
        let taken = BTreeSet::from(["billing__invoices".to_owned()]);
        let other = view_name("billing", "invoices", true, &taken);
        assert!(other.starts_with("billing__invoices_") && other.len() == "billing__invoices_".len() + 10, "{other}");
        // cut on a character boundary
        let wide = view_name("s", &"日".repeat(21), false, &BTreeSet::new());
        assert!(wide.len() <= MAX_NAME_BYTES && wide.starts_with("日日"), "{wide}");
    }
}
