//! Changes as SQL. Every identifier is quoted with `escape_identifier` and
//! every literal with `escape_literal` (postgres-protocol): role names come
//! from webhooks and are hostile until proven otherwise. Every function and
//! operator the statements call is qualified with `pg_catalog`, and literals
//! carry their type: the statements run as an admin in databases where other
//! roles may create functions and operators.
//!
//! A function is never rendered from text: the executor resolves it in its
//! transaction ([`Functions`], by schema, name and argument types to its OID)
//! and the statement names it by the catalog's parts, each quoted on its own:
//! `"s"."f"("pg_catalog"."int4", "app"."(")`. A function that no longer
//! resolves is left out by the executor, so one odd name neither injects into
//! the statement nor blocks the other objects.

use std::collections::BTreeMap;

use postgres_protocol::escape::{escape_identifier, escape_literal};

use grantwarden_core::access_policy::{Literal, Mask};
use grantwarden_core::change::Change;
use grantwarden_core::model::{Grant, Grantee, ObjectClass, ObjectRef, Privilege, RelationKind, RoleName};

/// A change that cannot be written as SQL safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot render {what}: {reason}")]
pub struct RenderError {
    /// The object or change.
    pub what: String,
    /// Why.
    pub reason: String,
}

fn ident(name: &str) -> String {
    escape_identifier(name)
}

fn role(r: &RoleName) -> String {
    ident(r.as_str())
}

fn grantee(g: &Grantee) -> Result<String, RenderError> {
    match g {
        Grantee::Public => Ok("PUBLIC".to_owned()),
        Grantee::Role(r) => Ok(role(r)),
        Grantee::Account(a) => Err(RenderError {
            what: a.as_str().to_owned(),
            reason: "a MySQL or MariaDB account is no PostgreSQL grantee".into(),
        }),
    }
}

fn qualified(o: &ObjectRef) -> Result<String, RenderError> {
    let schema = o.schema.as_deref().ok_or_else(|| RenderError {
        what: o.to_string(),
        reason: "a schema-qualified object without its schema".into(),
    })?;
    Ok(format!("{}.{}", ident(schema), ident(&o.name)))
}

/// A function as the catalog has it, found by OID in the running transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedFunction {
    /// `pg_proc.oid`.
    pub oid: u32,
    /// Its schema.
    pub schema: String,
    /// `proname`.
    pub name: String,
    /// Each argument type as (schema, `typname`): `("pg_catalog", "int4")`.
    pub arg_types: Vec<(String, String)>,
}

/// The functions a set of changes names, resolved in the transaction that runs
/// them, by the object the changes name.
pub type Functions = BTreeMap<ObjectRef, ResolvedFunction>;

/// `"schema"."name"("typschema"."typname", ...)`: every part quoted on its own.
fn routine(o: &ObjectRef, functions: &Functions) -> Result<String, RenderError> {
    let f = functions.get(o).ok_or_else(|| RenderError {
        what: format!("function {o}"),
        reason: "not resolved in the transaction (it no longer exists)".into(),
    })?;
    let args: Vec<String> = f.arg_types.iter().map(|(s, t)| format!("{}.{}", ident(s), ident(t))).collect();
    Ok(format!("{}.{}({})", ident(&f.schema), ident(&f.name), args.join(", ")))
}

/// `<privilege [(column)]> ON <object>` for an ACL grant.
fn on_object(g: &Grant, functions: &Functions) -> Result<String, RenderError> {
    let p = g.privilege.keyword();
    let o = &g.object;
    Ok(match o.class {
        ObjectClass::Database => format!("{p} ON DATABASE {}", ident(&o.name)),
        ObjectClass::Schema => format!("{p} ON SCHEMA {}", ident(&o.name)),
        ObjectClass::Table => format!("{p} ON TABLE {}", qualified(o)?),
        ObjectClass::Sequence => format!("{p} ON SEQUENCE {}", qualified(o)?),
        ObjectClass::Column => {
            let column = o.column.as_deref().ok_or_else(|| RenderError {
                what: o.to_string(),
                reason: "a column privilege without its column".into(),
            })?;
            format!("{p} ({}) ON TABLE {}", ident(column), qualified(o)?)
        }
        ObjectClass::Function => format!("{p} ON ROUTINE {}", routine(o, functions)?),
        ObjectClass::Role => {
            return Err(RenderError { what: o.to_string(), reason: "a role is not an object of GRANT ... ON".into() });
        }
    })
}

fn attribute(p: Privilege, enabled: bool) -> Result<&'static str, RenderError> {
    Ok(match (p, enabled) {
        (Privilege::Superuser, true) => "SUPERUSER",
        (Privilege::Superuser, false) => "NOSUPERUSER",
        (Privilege::CreateRole, true) => "CREATEROLE",
        (Privilege::CreateRole, false) => "NOCREATEROLE",
        (Privilege::CreateDb, true) => "CREATEDB",
        (Privilege::CreateDb, false) => "NOCREATEDB",
        (Privilege::Login, true) => "LOGIN",
        (Privilege::Login, false) => "NOLOGIN",
        (Privilege::Replication, true) => "REPLICATION",
        (Privilege::Replication, false) => "NOREPLICATION",
        (Privilege::BypassRls, true) => "BYPASSRLS",
        (Privilege::BypassRls, false) => "NOBYPASSRLS",
        _ => return Err(RenderError { what: p.to_string(), reason: "not a role attribute".into() }),
    })
}

/// The statement that ends `role`'s other sessions and returns how many it ended.
pub fn terminate_sessions_sql(r: &RoleName) -> String {
    format!(
        "SELECT pg_catalog.count(*) FILTER (WHERE pg_catalog.pg_terminate_backend(a.pid)) \
         FROM pg_catalog.pg_stat_activity a \
         WHERE a.usename OPERATOR(pg_catalog.=) {}::pg_catalog.name \
         AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()",
        escape_literal(r.as_str())
    )
}

/// The SQL of one change, as it runs. `DropOwned` runs in its own database:
/// its two statements are returned here and the executor connects there. A
/// change on a function needs it in `functions` (see [`Functions`]).
pub fn render(change: &Change, functions: &Functions) -> Result<Vec<String>, RenderError> {
    Ok(match change {
        Change::Grant { grant } => {
            let option = if grant.grantable { " WITH GRANT OPTION" } else { "" };
            vec![format!("GRANT {} TO {}{option}", on_object(grant, functions)?, grantee(&grant.grantee)?)]
        }
        Change::Revoke { grant, cascade, option_only } => {
            let option = if *option_only { "GRANT OPTION FOR " } else { "" };
            let cascade = if *cascade { " CASCADE" } else { "" };
            vec![format!("REVOKE {option}{} FROM {}{cascade}", on_object(grant, functions)?, grantee(&grant.grantee)?)]
        }
        Change::GrantMembership { role: r, member, admin } => {
            let option = if *admin { " WITH ADMIN OPTION" } else { "" };
            vec![format!("GRANT {} TO {}{option}", role(r), role(member))]
        }
        Change::RevokeMembership { role: r, member } => vec![format!("REVOKE {} FROM {}", role(r), role(member))],
        Change::SetAttribute { role: r, attribute: a, enabled } => {
            vec![format!("ALTER ROLE {} {}", role(r), attribute(*a, *enabled)?)]
        }
        Change::DisableLogin { role: r } => {
            vec![format!("ALTER ROLE {} NOLOGIN VALID UNTIL '1970-01-01 00:00:00+00'", role(r))]
        }
        Change::DefaultPrivilege { grant, for_role, schema, object_type, privilege, grantee: to } => {
            let schema = schema.as_deref().map(|s| format!(" IN SCHEMA {}", ident(s))).unwrap_or_default();
            let (verb, prep) = if *grant { ("GRANT", "TO") } else { ("REVOKE", "FROM") };
            vec![format!(
                "ALTER DEFAULT PRIVILEGES FOR ROLE {}{schema} {verb} {} ON {} {prep} {}",
                role(for_role),
                privilege.keyword(),
                object_type.sql_keyword(),
                grantee(to)?
            )]
        }
        Change::TerminateSessions { role: r } => vec![terminate_sessions_sql(r)],
        Change::DropOwned { role: r, .. } => vec![format!("DROP OWNED BY {}", role(r))],
        Change::AlterOwner { object, kind, to } => {
            let keyword = match kind {
                RelationKind::Table | RelationKind::PartitionedTable => "TABLE",
                RelationKind::View => "VIEW",
                RelationKind::MaterializedView => "MATERIALIZED VIEW",
                RelationKind::ForeignTable => "FOREIGN TABLE",
                RelationKind::Sequence => "SEQUENCE",
            };
            vec![format!("ALTER {keyword} {} OWNER TO {}", qualified(object)?, role(to))]
        }
        Change::DropRole { role: r } => vec![format!("DROP ROLE IF EXISTS {}", role(r))],
        Change::CreateRole { role: r, valid_until, connection_limit } => vec![format!(
            "CREATE ROLE {} LOGIN NOINHERIT PASSWORD {PASSWORD_PLACEHOLDER} VALID UNTIL {} CONNECTION LIMIT {connection_limit}",
            role(r),
            escape_literal(&valid_until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        )],
        Change::CreateViewOwner { role: r } => vec![
            format!(
                "CREATE ROLE {} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS",
                role(r)
            ),
            // the admin creates the schema for it and sets role to it (PostgreSQL 16 and later
            // ask a non-superuser for that membership; a superuser needs none)
            format!("GRANT {} TO CURRENT_USER", role(r)),
        ],
        Change::CreateSchema { schema, owner } => {
            vec![format!("CREATE SCHEMA {} AUTHORIZATION {}", ident(schema), role(owner))]
        }
        Change::SetRole { role: Some(r) } => vec![format!("SET LOCAL ROLE {}", role(r))],
        Change::SetRole { role: None } => vec!["RESET ROLE".to_owned()],
        Change::CreateView { schema, name, source_schema, source_table, columns, predicate, predicate_type } => {
            if columns.is_empty() {
                return Err(RenderError { what: format!("view {schema}.{name}"), reason: "no columns".into() });
            }
            let select: Vec<String> = columns.iter().map(|(c, mask)| masked_column(c, *mask)).collect();
            let filter = match (predicate, predicate_type) {
                (None, _) => String::new(),
                (Some(p), Some((type_schema, type_name))) => {
                    // each value is a literal of the column's own type, compared by pg_catalog's =
                    let cast = format!("{}.{}", ident(type_schema), ident(type_name));
                    let values: Vec<String> = p
                        .values
                        .iter()
                        .map(|v| match v {
                            Literal::Int(n) => format!("{}::{cast}", escape_literal(&n.to_string())),
                            Literal::Text(t) => format!("{}::{cast}", escape_literal(t)),
                        })
                        .collect();
                    format!(
                        " WHERE {} OPERATOR(pg_catalog.=) ANY (ARRAY[{}]) WITH CASCADED CHECK OPTION",
                        ident(&p.column),
                        values.join(", ")
                    )
                }
                (Some(p), None) => {
                    return Err(RenderError {
                        what: format!("view {schema}.{name}"),
                        reason: format!("the type of column {} is unknown", p.column),
                    });
                }
            };
            vec![format!(
                "CREATE VIEW {}.{} WITH (security_barrier) AS SELECT {} FROM {}.{}{filter}",
                ident(schema),
                ident(name),
                select.join(", "),
                ident(source_schema),
                ident(source_table)
            )]
        }
        Change::DropViews { owner, .. } => {
            vec![format!("DROP OWNED BY {}", role(owner)), format!("DROP ROLE IF EXISTS {}", role(owner))]
        }
        Change::SetRoleSetting { role: r, setting } => {
            vec![format!("ALTER ROLE {} SET {} TO {}", role(r), setting.name(), escape_literal(&setting.value()))]
        }
        Change::SetValidUntil { role: r, valid_until } => vec![format!(
            "ALTER ROLE {} VALID UNTIL {}",
            role(r),
            escape_literal(&valid_until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        )],
        Change::Mysql { mysql } => {
            return Err(RenderError {
                what: mysql.to_string(),
                reason: "a MySQL or MariaDB change, not PostgreSQL's".into(),
            });
        }
    })
}

/// A view's column, masked or as it is; every function and operator qualified,
/// every argument of the type the function takes.
fn masked_column(column: &str, mask: Option<Mask>) -> String {
    let col = ident(column);
    match mask {
        None => col,
        Some(Mask::Partial) => format!(
            "CASE WHEN {col} IS NULL THEN NULL ELSE pg_catalog.left({col}::pg_catalog.text, 2) \
             OPERATOR(pg_catalog.||) pg_catalog.repeat('*'::pg_catalog.text, \
             GREATEST(pg_catalog.length({col}::pg_catalog.text) OPERATOR(pg_catalog.-) 2, 0)) END AS {col}"
        ),
        Some(Mask::Hash) => format!(
            "pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to({col}::pg_catalog.text, \
             'UTF8'::pg_catalog.name)), 'hex'::pg_catalog.text) AS {col}"
        ),
    }
}

/// Where a `CreateRole`'s password goes: printed as is (never the password),
/// replaced by the quoted password only in the statement the executor runs.
pub const PASSWORD_PLACEHOLDER: &str = "'********'";

#[cfg(test)]
mod tests {
    use super::*;
    use grantwarden_core::model::DefaultObjectType;

    fn r(name: &str) -> RoleName {
        RoleName::new(name).unwrap()
    }

    fn sql(c: Change) -> String {
        render(&c, &Functions::new()).unwrap().join("; ")
    }

    #[test]
    fn every_change_renders_with_quoted_names() {
        let hostile = r("x\"; DROP TABLE t; --");
        let grant = Grant {
            object: ObjectRef::column("bill ing", "in\"voices", "total"),
            grantee: Grantee::Role(hostile.clone()),
            privilege: Privilege::Select,
            grantable: true,
        };
        assert_eq!(
            sql(Change::Revoke { grant: grant.clone(), cascade: true, option_only: false }),
            r#"REVOKE SELECT ("total") ON TABLE "bill ing"."in""voices" FROM "x""; DROP TABLE t; --" CASCADE"#
        );
        assert_eq!(
            sql(Change::Revoke { grant: grant.clone(), cascade: true, option_only: true }),
            r#"REVOKE GRANT OPTION FOR SELECT ("total") ON TABLE "bill ing"."in""voices" FROM "x""; DROP TABLE t; --" CASCADE"#
        );
        assert_eq!(
            sql(Change::Grant { grant }),
            r#"GRANT SELECT ("total") ON TABLE "bill ing"."in""voices" TO "x""; DROP TABLE t; --" WITH GRANT OPTION"#
        );
        assert_eq!(
            sql(Change::DisableLogin { role: hostile.clone() }),
            r#"ALTER ROLE "x""; DROP TABLE t; --" NOLOGIN VALID UNTIL '1970-01-01 00:00:00+00'"#
        );
        assert_eq!(
            sql(Change::TerminateSessions { role: r("o'brien") }),
            "SELECT pg_catalog.count(*) FILTER (WHERE pg_catalog.pg_terminate_backend(a.pid)) \
             FROM pg_catalog.pg_stat_activity a WHERE a.usename OPERATOR(pg_catalog.=) 'o''brien'::pg_catalog.name \
             AND a.pid OPERATOR(pg_catalog.<>) pg_catalog.pg_backend_pid()"
        );
        assert_eq!(
            sql(Change::DropOwned { role: r("tmp"), database: "db".into() }),
            r#"DROP OWNED BY "tmp""#,
            "never REASSIGN OWNED to the admin"
        );
        assert_eq!(
            sql(Change::AlterOwner {
                object: ObjectRef::in_schema(ObjectClass::Table, "orders", "new\"table"),
                kind: RelationKind::MaterializedView,
                to: r("migrator"),
            }),
            r#"ALTER MATERIALIZED VIEW "orders"."new""table" OWNER TO "migrator""#
        );
        assert_eq!(
            sql(Change::DefaultPrivilege {
                grant: false,
                for_role: r("migrator"),
                schema: Some("orders".into()),
                object_type: DefaultObjectType::Tables,
                privilege: Privilege::Select,
                grantee: Grantee::Public,
            }),
            r#"ALTER DEFAULT PRIVILEGES FOR ROLE "migrator" IN SCHEMA "orders" REVOKE SELECT ON TABLES FROM PUBLIC"#
        );
        assert_eq!(
            sql(Change::SetAttribute { role: r("app"), attribute: Privilege::Superuser, enabled: false }),
            r#"ALTER ROLE "app" NOSUPERUSER"#
        );
        assert_eq!(
            sql(Change::RevokeMembership { role: r("app_ro"), member: r("bob") }),
            r#"REVOKE "app_ro" FROM "bob""#
        );
    }

    #[test]
    fn a_function_is_named_by_its_resolved_parts_each_quoted() {
        // the name holds what a signature is made of: it stays one quoted identifier
        let name = r#"f(app."(" ), pg_catalog.lo_export(oid, text), app.g "#;
        let object = ObjectRef::function("app", name, r#"app."(", app.")""#);
        let grant =
            Grant { object: object.clone(), grantee: Grantee::Public, privilege: Privilege::Execute, grantable: false };
        let unresolved = render(&Change::Grant { grant: grant.clone() }, &Functions::new()).unwrap_err();
        assert!(unresolved.reason.contains("not resolved"), "never rendered from text: {unresolved}");
        let functions: Functions = [(
            object,
            ResolvedFunction {
                oid: 16_384,
                schema: "app".into(),
                name: name.into(),
                arg_types: vec![("app".into(), "(".into()), ("app".into(), ")".into())],
            },
        )]
        .into();
        assert_eq!(
            render(&Change::Grant { grant }, &functions).unwrap(),
            [
                r#"GRANT EXECUTE ON ROUTINE "app"."f(app.""("" ), pg_catalog.lo_export(oid, text), app.g "("app"."(", "app".")") TO PUBLIC"#
            ]
        );
    }

    #[test]
    fn view_predicates_cast_their_values_to_the_column_type_and_compare_with_pg_catalogs_operator() {
        let view = Change::CreateView {
            schema: "gw_access_1".into(),
            name: "customers".into(),
            source_schema: "billing".into(),
            source_table: "customers".into(),
            columns: vec![("region".into(), None), ("email".into(), Some(Mask::Partial))],
            predicate: Some(grantwarden_core::access_policy::RowPredicate::parse("region in ('eu', 'o''x')").unwrap()),
            predicate_type: Some(("pg_catalog".into(), "varchar".into())),
        };
        let got = sql(view);
        assert!(
            got.ends_with(
                r#"FROM "billing"."customers" WHERE "region" OPERATOR(pg_catalog.=) ANY (ARRAY['eu'::"pg_catalog"."varchar", 'o''x'::"pg_catalog"."varchar"]) WITH CASCADED CHECK OPTION"#
            ),
            "{got}"
        );
        assert!(
            got.contains("pg_catalog.left(\"email\"::pg_catalog.text, 2) OPERATOR(pg_catalog.||) pg_catalog.repeat("),
            "{got}"
        );
        // no bare function call or operator anywhere in the statement
        for bare in [" left(", " repeat(", " length(", " || ", " = ", " IN ("] {
            assert!(!got.contains(bare), "{bare} in {got}");
        }
    }
}
