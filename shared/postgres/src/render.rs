//! Changes as SQL. Every identifier is quoted with `escape_identifier` and
//! every literal with `escape_literal` (postgres-protocol): role names come
//! from webhooks and are hostile until proven otherwise.

use postgres_protocol::escape::{escape_identifier, escape_literal};

use grantwarden_core::access::{Literal, Mask};
use grantwarden_core::change::Change;
use grantwarden_core::model::{Grant, Grantee, ObjectClass, ObjectRef, Privilege, RoleName};

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

fn grantee(g: &Grantee) -> String {
    match g {
        Grantee::Public => "PUBLIC".to_owned(),
        Grantee::Role(r) => role(r),
    }
}

fn qualified(o: &ObjectRef) -> Result<String, RenderError> {
    let schema = o.schema.as_deref().ok_or_else(|| RenderError {
        what: o.to_string(),
        reason: "a schema-qualified object without its schema".into(),
    })?;
    Ok(format!("{}.{}", ident(schema), ident(&o.name)))
}

/// `schema.name(argtypes)` of a function signature `name(argtypes)`: the name is
/// quoted; the argument types (from the catalog's `oidvectortypes` or a baseline)
/// may only hold what type names hold, so nothing else can ride along.
fn routine(o: &ObjectRef) -> Result<String, RenderError> {
    let bad = |reason: &str| RenderError { what: format!("function {o}"), reason: reason.into() };
    let schema = o.schema.as_deref().ok_or_else(|| bad("no schema"))?;
    let open = o.name.find('(').ok_or_else(|| bad("no argument list"))?;
    let (name, args) = o.name.split_at(open);
    let args =
        args.strip_prefix('(').and_then(|a| a.strip_suffix(')')).ok_or_else(|| bad("unbalanced argument list"))?;
    let type_char = |c: char| c.is_alphanumeric() || matches!(c, '_' | ' ' | ',' | '.' | '[' | ']' | '"' | '(' | ')');
    if !args.chars().all(type_char) || args.contains("--") || args.contains(';') {
        return Err(bad("argument types hold characters no type name has"));
    }
    // parentheses only as in numeric(10,2) or character varying(20)
    let depth = args.chars().try_fold(0i32, |d, c| match c {
        '(' => Some(d + 1),
        ')' if d > 0 => Some(d - 1),
        ')' => None,
        _ => Some(d),
    });
    if depth != Some(0) {
        return Err(bad("unbalanced parentheses in the argument types"));
    }
    Ok(format!("{}.{}({args})", ident(schema), ident(name)))
}

/// `<privilege [(column)]> ON <object>` for an ACL grant.
fn on_object(g: &Grant) -> Result<String, RenderError> {
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
        ObjectClass::Function => format!("{p} ON ROUTINE {}", routine(o)?),
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
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = {} AND pid <> pg_backend_pid()",
        escape_literal(r.as_str())
    )
}

/// The SQL of one change, as it runs. `DropOwned` runs in its own database:
/// its two statements are returned here and the executor connects there.
pub fn render(change: &Change) -> Result<Vec<String>, RenderError> {
    Ok(match change {
        Change::Grant { grant } => {
            let option = if grant.grantable { " WITH GRANT OPTION" } else { "" };
            vec![format!("GRANT {} TO {}{option}", on_object(grant)?, grantee(&grant.grantee))]
        }
        Change::Revoke { grant, cascade, option_only } => {
            let option = if *option_only { "GRANT OPTION FOR " } else { "" };
            let cascade = if *cascade { " CASCADE" } else { "" };
            vec![format!("REVOKE {option}{} FROM {}{cascade}", on_object(grant)?, grantee(&grant.grantee))]
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
                grantee(to)
            )]
        }
        Change::TerminateSessions { role: r } => vec![terminate_sessions_sql(r)],
        Change::DropOwned { role: r, reassign_to, .. } => {
            let to = reassign_to.as_ref().map(role).unwrap_or_else(|| "CURRENT_USER".to_owned());
            vec![format!("REASSIGN OWNED BY {} TO {to}", role(r)), format!("DROP OWNED BY {}", role(r))]
        }
        Change::DropRole { role: r } => vec![format!("DROP ROLE IF EXISTS {}", role(r))],
        Change::CreateRole { role: r, valid_until, connection_limit } => vec![format!(
            "CREATE ROLE {} LOGIN NOINHERIT PASSWORD {PASSWORD_PLACEHOLDER} VALID UNTIL {} CONNECTION LIMIT {connection_limit}",
            role(r),
            escape_literal(&valid_until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        )],
        Change::CreateSchema { schema } => vec![format!("CREATE SCHEMA IF NOT EXISTS {}", ident(schema))],
        Change::CreateView { schema, name, source_schema, source_table, columns, predicate } => {
            if columns.is_empty() {
                return Err(RenderError { what: format!("view {schema}.{name}"), reason: "no columns".into() });
            }
            let select: Vec<String> = columns
                .iter()
                .map(|(c, mask)| {
                    let col = ident(c);
                    match mask {
                        None => col,
                        Some(Mask::Partial) => format!(
                            "CASE WHEN {col} IS NULL THEN NULL ELSE left({col}::text, 2) || repeat('*', greatest(length({col}::text) - 2, 0)) END AS {col}"
                        ),
                        Some(Mask::Hash) => {
                            format!("encode(sha256(convert_to({col}::text, 'UTF8')), 'hex') AS {col}")
                        }
                    }
                })
                .collect();
            let filter = match predicate {
                None => String::new(),
                Some(p) => {
                    let values: Vec<String> = p
                        .values
                        .iter()
                        .map(|v| match v {
                            Literal::Int(n) => n.to_string(),
                            Literal::Text(t) => escape_literal(t),
                        })
                        .collect();
                    format!(" WHERE {} IN ({}) WITH CASCADED CHECK OPTION", ident(&p.column), values.join(", "))
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
        Change::DropSchema { schema } => vec![format!("DROP SCHEMA IF EXISTS {} CASCADE", ident(schema))],
        Change::SetValidUntil { role: r, valid_until } => vec![format!(
            "ALTER ROLE {} VALID UNTIL {}",
            role(r),
            escape_literal(&valid_until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        )],
    })
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
        render(&c).unwrap().join("; ")
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
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'o''brien' AND pid <> pg_backend_pid()"
        );
        assert_eq!(
            sql(Change::DropOwned { role: r("tmp"), database: "db".into(), reassign_to: None }),
            r#"REASSIGN OWNED BY "tmp" TO CURRENT_USER; DROP OWNED BY "tmp""#
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
    fn function_signatures_are_quoted_and_their_types_checked() {
        let f = |sig: &str| Grant {
            object: ObjectRef::in_schema(ObjectClass::Function, "app", sig),
            grantee: Grantee::Public,
            privilege: Privilege::Execute,
            grantable: false,
        };
        assert_eq!(
            sql(Change::Revoke { grant: f("total(integer, numeric(10,2))"), cascade: false, option_only: false }),
            r#"REVOKE EXECUTE ON ROUTINE "app"."total"(integer, numeric(10,2)) FROM PUBLIC"#
        );
        for bad in ["f(int); DROP TABLE x; --", "f(int))", "f", "f(int -- x)"] {
            assert!(render(&Change::Grant { grant: f(bad) }).is_err(), "{bad}");
        }
    }
}
