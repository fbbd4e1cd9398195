//! Reads one chunk's catalog rows into a partial [`State`].
//!
//! Every row is validated: a value this code cannot read (an unknown
//! privilege keyword, relkind or role name) is an error naming the query and
//! field, never a panic and never a silently dropped grant.

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};

use crate::acl::parse_item;
use crate::chunks::OidRange;
use crate::error::ExtractError;
use grantwarden_core::grants::{Acl, AclEntry, Grants};
use grantwarden_core::model::{
    DefaultObjectType, DefaultPrivilege, Function, Grantee, Membership, Names, ObjectClass, ObjectRef, Relation,
    RelationKind, RlsPolicy, RoleAttributes, RoleName,
};
use grantwarden_core::snapshot::{ChunkSpec, Database, State};

/// Reads everything `chunk` covers.
pub async fn fetch_chunk(
    client: &Client,
    chunk: &ChunkSpec,
    server_version: u32,
    oids: Option<OidRange>,
) -> Result<State, ExtractError> {
    let mut f = Fetch { client, state: State::default(), objects: Vec::new(), names: Names::default(), oids };
    match chunk {
        ChunkSpec::Cluster => {
            f.roles().await?;
            f.memberships(server_version).await?;
            f.database().await?;
            f.default_acls(include_str!("sql/default_acls_global.sql"), "default_acls_global", &[]).await?;
        }
        ChunkSpec::Schemas { schemas } => {
            f.schema_level(schemas).await?;
            f.relation_level(schemas, None, None).await?;
        }
        ChunkSpec::SchemaPart { schema, from, to } => {
            let schemas = std::slice::from_ref(schema);
            if from.is_none() {
                f.schema_level(schemas).await?;
            }
            f.relation_level(schemas, from.as_deref(), to.as_deref()).await?;
        }
    }
    Ok(f.finish())
}

struct Fetch<'a> {
    client: &'a Client,
    state: State,
    /// Each object read and its ACL (shared by the relations that have the same one).
    objects: Vec<(ObjectRef, Acl)>,
    /// Schema, grantee and owner names, each kept once for the objects that repeat them.
    names: Names,
    /// Where the chunk's relations are in pg_class, when the transaction reads the planner's snapshot.
    oids: Option<OidRange>,
}

fn get<'r, T: tokio_postgres::types::FromSql<'r>>(
    row: &'r Row,
    query: &'static str,
    field: &'static str,
) -> Result<T, ExtractError> {
    row.try_get(field).map_err(|e| ExtractError::Row { query, field, message: e.to_string() })
}

fn role(row: &Row, query: &'static str, field: &'static str) -> Result<RoleName, ExtractError> {
    let name: String = get(row, query, field)?;
    RoleName::new(name).map_err(|e| ExtractError::Row { query, field, message: e.to_string() })
}

fn grantee_of(name: Option<String>, query: &'static str, field: &'static str) -> Result<Grantee, ExtractError> {
    match name {
        None => Ok(Grantee::Public),
        Some(n) => {
            RoleName::new(n).map(Grantee::Role).map_err(|e| ExtractError::Row { query, field, message: e.to_string() })
        }
    }
}

/// The `acl` column of a row (an ACL as `text[]`, see [`crate::acl`]), decoded:
/// each grantee with its privileges and grant options. An empty ACL holds none.
fn acl(row: &Row, query: &'static str, names: &mut Names) -> Result<Acl, ExtractError> {
    let items: Option<Vec<&str>> = get(row, query, "acl")?;
    let items = items.unwrap_or_default();
    let mut entries = Vec::with_capacity(items.len());
    for item in items {
        let parsed = parse_item(item).map_err(|message| ExtractError::Row { query, field: "acl", message })?;
        let grantee = match parsed.grantee {
            None => Grantee::Public,
            Some(name) => Grantee::Role(RoleName::shared(&name, names).map_err(|e| ExtractError::Row {
                query,
                field: "acl",
                message: e.to_string(),
            })?),
        };
        entries.push(AclEntry::new(grantee, parsed.privileges));
    }
    Ok(Acl::new(entries))
}

/// A role name kept in `names` (one copy per distinct name), with the query and field in any error.
fn shared_role(
    name: &str,
    names: &mut Names,
    query: &'static str,
    field: &'static str,
) -> Result<RoleName, ExtractError> {
    RoleName::shared(name, names).map_err(|e| ExtractError::Row { query, field, message: e.to_string() })
}

/// One array column of a grouped row, as long as the row's other arrays.
fn column<'r, T: tokio_postgres::types::FromSql<'r>>(
    row: &'r Row,
    query: &'static str,
    field: &'static str,
    len: Option<usize>,
) -> Result<Vec<T>, ExtractError> {
    let values: Vec<T> = get(row, query, field)?;
    match len {
        Some(n) if n != values.len() => Err(ExtractError::Row {
            query,
            field,
            message: format!("{} values where the row's other arrays hold {n}", values.len()),
        }),
        _ => Ok(values),
    }
}

impl Fetch<'_> {
    async fn query(
        &self,
        sql: &str,
        name: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, ExtractError> {
        self.client.query(sql, params).await.map_err(ExtractError::db(format!("query {name}")))
    }

    fn grant(&mut self, object: ObjectRef, acl: Acl) {
        if !acl.is_empty() {
            self.objects.push((object, acl));
        }
    }

    /// The chunk's state, its objects' grants built in one go.
    fn finish(mut self) -> State {
        self.state.grants = Grants::from_objects(self.objects);
        self.state
    }

    async fn roles(&mut self) -> Result<(), ExtractError> {
        const Q: &str = "roles";
        for row in self.query(include_str!("sql/roles.sql"), Q, &[]).await? {
            let name = role(&row, Q, "name")?;
            let attrs = RoleAttributes {
                superuser: get(&row, Q, "rolsuper")?,
                inherit: get(&row, Q, "rolinherit")?,
                createrole: get(&row, Q, "rolcreaterole")?,
                createdb: get(&row, Q, "rolcreatedb")?,
                login: get(&row, Q, "rolcanlogin")?,
                replication: get(&row, Q, "rolreplication")?,
                bypassrls: get(&row, Q, "rolbypassrls")?,
                connection_limit: get(&row, Q, "rolconnlimit")?,
                valid_until: get(&row, Q, "valid_until")?,
            };
            self.state.roles.insert(name, attrs);
        }
        Ok(())
    }

    async fn memberships(&mut self, server_version: u32) -> Result<(), ExtractError> {
        const Q: &str = "memberships";
        let sql = if server_version >= 160_000 {
            include_str!("sql/memberships_16.sql")
        } else {
            include_str!("sql/memberships_13.sql")
        };
        for row in self.query(sql, Q, &[]).await? {
            self.state.memberships.insert(Membership {
                role: role(&row, Q, "role")?,
                member: role(&row, Q, "member")?,
                admin: get(&row, Q, "admin")?,
                inherit: get(&row, Q, "inherit")?,
                set: get(&row, Q, "set")?,
            });
        }
        Ok(())
    }

    async fn database(&mut self) -> Result<(), ExtractError> {
        const Q: &str = "database";
        for row in self.query(include_str!("sql/database.sql"), Q, &[]).await? {
            let name: String = get(&row, Q, "name")?;
            let owner = role(&row, Q, "owner")?;
            let acl = acl(&row, Q, &mut self.names)?;
            self.grant(ObjectRef::database(&name), acl);
            self.state.database = Some(Database { name, owner });
        }
        Ok(())
    }

    async fn default_acls(
        &mut self,
        sql: &str,
        q: &'static str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<(), ExtractError> {
        for row in self.query(sql, q, params).await? {
            let code: String = get(&row, q, "objtype")?;
            let on = DefaultObjectType::from_catalog(&code).ok_or_else(|| ExtractError::Row {
                query: q,
                field: "objtype",
                message: format!("unknown default ACL object type {code:?}"),
            })?;
            let for_role = role(&row, q, "for_role")?;
            let schema: Option<String> = get(&row, q, "schema")?;
            for e in acl(&row, q, &mut self.names)?.entries() {
                for privilege in e.privileges.iter() {
                    self.state.default_privileges.insert(DefaultPrivilege {
                        for_role: for_role.clone(),
                        schema: schema.clone(),
                        on,
                        grantee: e.grantee.clone(),
                        privilege,
                        grantable: e.grantable.contains(privilege),
                    });
                }
            }
        }
        Ok(())
    }

    /// Schema ACLs, functions and per-schema default privileges.
    async fn schema_level(&mut self, schemas: &[String]) -> Result<(), ExtractError> {
        const S: &str = "schemas";
        for row in self.query(include_str!("sql/schemas.sql"), S, &[&schemas]).await? {
            let schema: String = get(&row, S, "schema")?;
            let owner = role(&row, S, "owner")?;
            let acl = acl(&row, S, &mut self.names)?;
            self.grant(ObjectRef::schema(&schema), acl);
            self.state.schemas.insert(schema, owner);
        }
        const F: &str = "functions";
        for row in self.query(include_str!("sql/functions.sql"), F, &[&schemas]).await? {
            let schema: String = get(&row, F, "schema")?;
            let name: String = get(&row, F, "name")?;
            let arguments: String = get(&row, F, "arguments")?;
            let kind_code: String = get(&row, F, "kind")?;
            let kind = match kind_code.as_str() {
                "f" => "function",
                "p" => "procedure",
                "a" => "aggregate",
                "w" => "window",
                other => {
                    return Err(ExtractError::Row {
                        query: F,
                        field: "kind",
                        message: format!("unknown prokind {other:?}"),
                    });
                }
            };
            let owner = role(&row, F, "owner")?;
            let acl = acl(&row, F, &mut self.names)?;
            self.grant(ObjectRef::function(&schema, &name, &arguments), acl);
            self.state.functions.insert(Function { schema, name, arguments, kind: kind.to_owned(), owner });
        }
        self.default_acls(include_str!("sql/default_acls_schema.sql"), "default_acls_schema", &[&schemas]).await
    }

    /// Relations, their columns and their policies, in a name range.
    async fn relation_level(
        &mut self,
        schemas: &[String],
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<(), ExtractError> {
        const R: &str = "relations";
        // one row per distinct ACL, its relations in parallel arrays
        let lo = self.oids.map(|r| r.lo);
        let hi = self.oids.map(|r| r.hi);
        let newer = self.oids.and_then(|r| r.newer_than);
        let range: [&(dyn ToSql + Sync); 6] = [&schemas, &from, &to, &lo, &hi, &newer];
        for row in self.query(include_str!("sql/relations.sql"), R, &range).await? {
            let acl = acl(&row, R, &mut self.names)?;
            let names: Vec<&str> = column(&row, R, "names", None)?;
            let n = Some(names.len());
            let schemas: Vec<&str> = column(&row, R, "schemas", n)?;
            let kinds: Vec<&str> = column(&row, R, "kinds", n)?;
            let owners: Vec<&str> = column(&row, R, "owners", n)?;
            let rls_enabled: Vec<bool> = column(&row, R, "rls_enabled", n)?;
            let rls_forced: Vec<bool> = column(&row, R, "rls_forced", n)?;
            for (i, name) in names.into_iter().enumerate() {
                let kind = RelationKind::from_catalog(kinds[i]).ok_or_else(|| ExtractError::Row {
                    query: R,
                    field: "kinds",
                    message: format!("unknown relkind {:?}", kinds[i]),
                })?;
                let schema = self.names.get(schemas[i]);
                self.state.relations.insert(Relation {
                    owner: shared_role(owners[i], &mut self.names, R, "owners")?,
                    rls_enabled: rls_enabled[i],
                    rls_forced: rls_forced[i],
                    schema: schema.to_string(),
                    name: name.to_owned(),
                    kind,
                });
                let object = ObjectRef {
                    class: kind.class(),
                    schema: Some(schema),
                    name: name.into(),
                    column: None,
                    args: None,
                };
                self.grant(object, acl.clone());
            }
        }
        const C: &str = "columns";
        for row in self.query(include_str!("sql/columns.sql"), C, &range).await? {
            let schema: &str = get(&row, C, "schema")?;
            let table: &str = get(&row, C, "table_name")?;
            let column: &str = get(&row, C, "column_name")?;
            let acl = acl(&row, C, &mut self.names)?;
            let object = ObjectRef {
                class: ObjectClass::Column,
                schema: Some(self.names.get(schema)),
                name: self.names.get(table),
                column: Some(self.names.get(column)),
                args: None,
            };
            self.grant(object, acl);
        }
        const P: &str = "policies";
        for row in self.query(include_str!("sql/policies.sql"), P, &range).await? {
            let cmd: String = get(&row, P, "cmd")?;
            let command = match cmd.as_str() {
                "*" => "ALL",
                "r" => "SELECT",
                "a" => "INSERT",
                "w" => "UPDATE",
                "d" => "DELETE",
                other => {
                    return Err(ExtractError::Row {
                        query: P,
                        field: "cmd",
                        message: format!("unknown polcmd {other:?}"),
                    });
                }
            };
            let roles: Vec<Option<String>> = get(&row, P, "roles")?;
            let roles = roles.into_iter().map(|r| grantee_of(r, P, "roles")).collect::<Result<Vec<_>, _>>()?;
            self.state.policies.insert(RlsPolicy {
                schema: get(&row, P, "schema")?,
                table: get(&row, P, "table_name")?,
                name: get(&row, P, "name")?,
                command: command.to_owned(),
                permissive: get(&row, P, "permissive")?,
                roles,
                using: get(&row, P, "using_expr")?,
                with_check: get(&row, P, "check_expr")?,
            });
        }
        Ok(())
    }
}
