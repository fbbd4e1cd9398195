//! Hostile identifiers through the whole binary, as a property test against
//! real PostgreSQL. Roles, schemas, tables, columns, a sequence, a view, a
//! function, its argument's domain and the database itself are named with
//! double and single quotes, dots, spaces, tabs, newlines, backslashes, `$`,
//! `;`, `--`, multi-byte characters, capitals and leading digits, some in
//! exactly 63 bytes (NAMEDATALEN - 1), each next to neighbours whose names
//! differ only by case, a trailing space, a character dropped or added, and
//! which hold the same grants.
//!
//! Each case gets a fresh database and walks `generate`, `plan` (clean), drift
//! on the hostile objects (table, column, schema, sequence, function,
//! database, membership and default privileges), `plan` (exactly that drift,
//! named as stored), `apply --mode converge --execute` (every ACL, membership
//! and role as before the drift, the neighbours' included), two exception
//! tickets (`intake`) and three just-in-time credentials (`request`: tables,
//! a schema, and the whole database read through masking views), `revoke
//! --due` (every ACL back as it was, the issued roles gone) and a last clean
//! `plan`.
//!
//! The cases are drawn from a fixed seed, so a run is repeatable;
//! `PROPTEST_RNG_SEED` draws others and `PROPTEST_CASES` changes how many.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{grantwarden, ok, policy};
use grantwarden_core::model::MAX_NAME_BYTES;
use grantwarden_testkit::TestDb;
use postgres_protocol::escape::escape_identifier as q;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use serde_json::{Value, json};
use tokio_postgres::Client;

/// Cases a run draws when `PROPTEST_CASES` does not say.
const CASES: u32 = 8;
/// The seed when `PROPTEST_RNG_SEED` does not say.
const SEED: u64 = 0x686f_7374_696c_6521;

/// The pieces a hostile name is made of.
#[rustfmt::skip]
const FRAGMENTS: &[&str] = &[
    "\"", "\"\"", "'", ".", " ", "  ", "\t", "\n", "\\", "$", "$1", ";", "--", "/*", "(", ")", ",", "%", "_",
    "*", "[", "é", "ß", "日本", "🦀", "Ω", "A", "Tab", "SELECT", "Public", "ÉCOLE", "a", "x", "name",
    "drop table t", "0", "1", "42",
];

/// A name of at most `max` bytes made of [`FRAGMENTS`]; about a third are
/// padded to exactly `max` bytes.
fn ident(max: usize) -> impl Strategy<Value = String> {
    (prop::collection::vec(prop::sample::select(FRAGMENTS), 1..7), prop::bool::weighted(0.3))
        .prop_map(move |(parts, full)| fit(&parts.concat(), max, full))
}

/// `s` cut to at most `max` bytes on a character boundary; with `full`, then
/// padded to exactly `max` bytes (multi-byte characters first).
fn fit(s: &str, max: usize, full: bool) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    if full {
        for c in ['日', 'é', '🦀'].into_iter().cycle().take(8) {
            if out.len() + c.len_utf8() <= max {
                out.push(c);
            }
        }
        while out.len() < max {
            out.push('z');
        }
    }
    out
}

/// The names a case is made of, neighbours derived from the hostile ones.
/// Role names are suffixes: the test database's prefix goes in front.
#[derive(Debug, Clone)]
struct Names {
    /// The hostile role, and its neighbours.
    role: String,
    role_nb: Vec<String>,
    /// The hostile schema, and its neighbours (each holds a table named `table`).
    schema: String,
    schema_nb: Vec<String>,
    /// The hostile table of `schema`, and its neighbours in `schema`.
    table: String,
    table_nb: Vec<String>,
    /// A column of `table`, and a neighbour column.
    column: String,
    column_nb: String,
    /// A sequence and a view in `schema`.
    sequence: String,
    view: String,
    /// A function of `schema` taking a domain of `schema`, and a neighbour function.
    function: String,
    function_nb: String,
    domain: String,
    /// The test database's name, after its prefix.
    database: String,
}

/// Role and database suffixes leave room for the test's prefix (`gwt` + 8 hex + `_`).
const ROLE_MAX: usize = MAX_NAME_BYTES - 12;

fn names() -> impl Strategy<Value = Names> {
    let objects =
        (ident(MAX_NAME_BYTES), ident(MAX_NAME_BYTES), ident(MAX_NAME_BYTES), ident(MAX_NAME_BYTES), ident(ROLE_MAX));
    (ident(ROLE_MAX), ident(MAX_NAME_BYTES), ident(MAX_NAME_BYTES), ident(MAX_NAME_BYTES), objects).prop_map(
        |(role, schema, table, column, (sequence, view, function, domain, database))| {
            Names::new([role, schema, table, column, sequence, view, function, domain, database])
        },
    )
}

impl Names {
    /// The names of a case from its hostile ones: role, schema, table, column,
    /// sequence, view, function, domain and database.
    fn new(hostile: [String; 9]) -> Names {
        let [role, schema, table, column, sequence, view, function, domain, database] = hostile;
        let mut roles = BTreeSet::new();
        let role = unique(role, &mut roles, ROLE_MAX, &|_| true);
        let role_nb = neighbours(&role, &mut roles, ROLE_MAX, &|_| true);
        // pg_* is reserved for system schemas; public is there already
        let schema_ok = |s: &str| !s.starts_with("pg_") && s != "public" && s != "information_schema";
        let mut schemas = BTreeSet::new();
        let schema = unique(schema, &mut schemas, MAX_NAME_BYTES, &schema_ok);
        let schema_nb = neighbours(&schema, &mut schemas, MAX_NAME_BYTES, &schema_ok);
        let mut relations = BTreeSet::new();
        let table = unique(table, &mut relations, MAX_NAME_BYTES, &|_| true);
        let table_nb = neighbours(&table, &mut relations, MAX_NAME_BYTES, &|_| true);
        let sequence = unique(sequence, &mut relations, MAX_NAME_BYTES, &|_| true);
        let view = unique(view, &mut relations, MAX_NAME_BYTES, &|_| true);
        // a relation's row type shares the domain's namespace
        let domain = unique(domain, &mut relations, MAX_NAME_BYTES, &|_| true);
        let mut functions = BTreeSet::new();
        let function = unique(function, &mut functions, MAX_NAME_BYTES, &|_| true);
        let function_nb = neighbours(&function, &mut functions, MAX_NAME_BYTES, &|_| true).swap_remove(0);
        let mut columns = BTreeSet::new();
        // system column names are taken in every table
        let column_ok = |c: &str| !["tableoid", "cmax", "xmax", "cmin", "xmin", "ctid", "oid"].contains(&c);
        let column = unique(column, &mut columns, MAX_NAME_BYTES, &column_ok);
        let column_nb = neighbours(&column, &mut columns, MAX_NAME_BYTES, &column_ok).swap_remove(0);
        Names {
            role,
            role_nb,
            schema,
            schema_nb,
            table,
            table_nb,
            column,
            column_nb,
            sequence,
            view,
            function,
            function_nb,
            domain,
            database,
        }
    }
}

/// `candidate` when it is free and `ok`, else a variant of it that is; taken from then on.
fn unique(candidate: String, taken: &mut BTreeSet<String>, max: usize, ok: &dyn Fn(&str) -> bool) -> String {
    let mut name = candidate.clone();
    let mut n = 0u32;
    while name.is_empty() || taken.contains(&name) || !ok(&name) {
        n += 1;
        let tail = format!("~{n}");
        name = fit(&candidate, max - tail.len(), false) + &tail;
    }
    taken.insert(name.clone());
    name
}

/// Four names next to `h`: its ASCII case swapped, with a trailing space, one
/// character shorter, one character longer (each within `max` bytes, the last
/// character replaced when there is no room).
fn neighbours(h: &str, taken: &mut BTreeSet<String>, max: usize, ok: &dyn Fn(&str) -> bool) -> Vec<String> {
    let swapped: String = h
        .chars()
        .map(|c| if c.is_ascii_uppercase() { c.to_ascii_lowercase() } else { c.to_ascii_uppercase() })
        .collect();
    let shorter = {
        let mut s = h.to_owned();
        s.pop();
        s
    };
    let candidates = [swapped, fit(h, max - 1, false) + " ", shorter, fit(h, max - 1, false) + "x"];
    candidates.into_iter().map(|c| unique(c, taken, max, ok)).collect()
}

/// `schema.name`, each part quoted.
fn qn(schema: &str, name: &str) -> String {
    format!("{}.{}", q(schema), q(name))
}

/// A case's names, its roles' with the test database's prefix.
struct Case<'a> {
    n: &'a Names,
    role: String,
    role_nb: Vec<String>,
    database: String,
}

impl<'a> Case<'a> {
    fn new(db: &TestDb, n: &'a Names) -> Self {
        let role = db.role(&n.role);
        let role_nb = n.role_nb.iter().map(|r| db.role(r)).collect();
        Case { n, role, role_nb, database: db.name.clone() }
    }

    /// Roles, schemas, tables, a sequence, a view, a domain and functions,
    /// with grants on the database, the hostile objects and their neighbours,
    /// grants the hostile role holds on the neighbours, a membership, default
    /// privileges and a schema a neighbour owns.
    fn setup_sql(&self) -> String {
        let n = self.n;
        let (r, rn) = (q(&self.role), self.role_nb.iter().map(|r| q(r)).collect::<Vec<_>>());
        let t = qn(&n.schema, &n.table);
        let (c, cn) = (q(&n.column), q(&n.column_nb));
        let mut sql = format!("CREATE ROLE {r};\n");
        for x in &rn {
            sql += &format!("CREATE ROLE {x};\n");
        }
        sql += &format!("CREATE SCHEMA {};\nCREATE TABLE {t} ({c} int, {cn} int);\n", q(&n.schema));
        sql += &format!("CREATE SEQUENCE {};\n", qn(&n.schema, &n.sequence));
        sql += &format!("CREATE VIEW {} AS SELECT {c} FROM {t};\n", qn(&n.schema, &n.view));
        for tn in &n.table_nb {
            sql += &format!("CREATE TABLE {} ({c} int);\n", qn(&n.schema, tn));
        }
        for sn in &n.schema_nb {
            sql += &format!("CREATE SCHEMA {};\nCREATE TABLE {} ({c} int);\n", q(sn), qn(sn, &n.table));
        }
        let d = qn(&n.schema, &n.domain);
        sql += &format!("CREATE DOMAIN {d} AS int;\n");
        for f in [qn(&n.schema, &n.function), qn(&n.schema, &n.function_nb), qn(&n.schema_nb[0], &n.function)] {
            sql += &format!("CREATE FUNCTION {f}({d}, int) RETURNS int LANGUAGE sql AS 'SELECT 1';\n");
            sql += &format!("GRANT EXECUTE ON FUNCTION {f}({d}, int) TO {r}, {};\n", rn[0]);
        }
        // the hostile role on the hostile objects
        sql += &format!("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {r};\n", q(&self.database));
        sql += &format!("GRANT CREATE ON DATABASE {} TO {};\n", q(&self.database), rn[0]);
        sql += &format!("GRANT USAGE ON SCHEMA {} TO {r};\n", q(&n.schema));
        sql += &format!("GRANT SELECT ON {t} TO {r};\nGRANT INSERT ({c}) ON {t} TO {r};\n");
        sql += &format!("GRANT USAGE ON SEQUENCE {} TO {r};\n", qn(&n.schema, &n.sequence));
        sql += &format!("GRANT SELECT ON {} TO {r};\n", qn(&n.schema, &n.view));
        // ... and on two neighbours
        sql += &format!("GRANT UPDATE ON {} TO {r};\n", qn(&n.schema, &n.table_nb[0]));
        sql += &format!("GRANT USAGE ON SCHEMA {} TO {r};\n", q(&n.schema_nb[0]));
        sql += &format!("GRANT UPDATE ON {} TO {r};\n", qn(&n.schema_nb[0], &n.table));
        // the neighbours hold the same privileges on the hostile objects, and their own
        for (i, x) in rn.iter().enumerate() {
            let (tn, sn) = (&n.table_nb[i % n.table_nb.len()], &n.schema_nb[i % n.schema_nb.len()]);
            sql += &format!("GRANT USAGE ON SCHEMA {}, {} TO {x};\n", q(&n.schema), q(sn));
            sql += &format!("GRANT SELECT ON {t} TO {x};\nGRANT INSERT ON {} TO {x};\n", qn(&n.schema, tn));
            sql += &format!("GRANT SELECT ON {} TO {x};\n", qn(sn, &n.table));
        }
        sql += &format!("GRANT INSERT ({c}), UPDATE ({cn}) ON {t} TO {};\n", rn[0]);
        sql += &format!("GRANT {r} TO {};\n", rn[0]);
        sql += &format!(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT SELECT ON TABLES TO {r};\n",
            rn[0],
            q(&n.schema)
        );
        sql += &format!("ALTER SCHEMA {} OWNER TO {};\n", q(&n.schema_nb[n.schema_nb.len() - 1]), rn[rn.len() - 1]);
        sql
    }

    /// Drift on the hostile objects: grants nobody declared, declared grants
    /// gone, an undeclared membership, default privileges changed.
    fn drift_sql(&self) -> String {
        let n = self.n;
        let (r, t) = (q(&self.role), qn(&n.schema, &n.table));
        format!(
            "GRANT DELETE ON {t} TO {r};\nGRANT CREATE ON SCHEMA {s} TO {r};\n\
             REVOKE SELECT ON {t} FROM {r};\nREVOKE INSERT ({c}) ON {t} FROM {r};\n\
             REVOKE USAGE ON SEQUENCE {seq} FROM {r};\nGRANT {nb} TO {r};\n\
             REVOKE EXECUTE ON FUNCTION {f}({d}, int) FROM {r};\n\
             ALTER DEFAULT PRIVILEGES FOR ROLE {nb0} IN SCHEMA {s} REVOKE SELECT ON TABLES FROM {r};\n\
             ALTER DEFAULT PRIVILEGES FOR ROLE {nb0} IN SCHEMA {s} GRANT USAGE ON SEQUENCES TO {r};\n\
             GRANT CREATE ON DATABASE {db} TO {r};\nREVOKE TEMPORARY ON DATABASE {db} FROM {r};\n",
            s = q(&n.schema),
            c = q(&n.column),
            seq = qn(&n.schema, &n.sequence),
            nb = q(&self.role_nb[1]),
            nb0 = q(&self.role_nb[0]),
            db = q(&self.database),
            f = qn(&n.schema, &n.function),
            d = qn(&n.schema, &n.domain),
        )
    }

    /// The findings [`Case::drift_sql`] must give; `arguments` are the
    /// function's argument types as the catalog spells them.
    fn expected_drift(&self, arguments: &str) -> BTreeSet<Finding> {
        let n = self.n;
        let f =
            |kind: &str, privilege: &str, ty: &str, schema: Option<&str>, name: &str, column: Option<&str>| Finding {
                kind: kind.into(),
                grantee: self.role.clone(),
                privilege: privilege.into(),
                ty: ty.into(),
                schema: schema.map(str::to_owned),
                name: name.into(),
                column: column.map(str::to_owned),
                for_role: None,
                arguments: None,
            };
        let default = |kind: &str, privilege: &str, on: &str| Finding {
            for_role: Some(self.role_nb[0].clone()),
            ..f(kind, privilege, "default_privileges", Some(&n.schema), on, None)
        };
        let s = Some(n.schema.as_str());
        BTreeSet::from([
            f("unauthorized", "DELETE", "table", s, &n.table, None),
            f("unauthorized", "CREATE", "schema", None, &n.schema, None),
            f("missing", "SELECT", "table", s, &n.table, None),
            f("missing", "INSERT", "column", s, &n.table, Some(&n.column)),
            f("missing", "USAGE", "sequence", s, &n.sequence, None),
            f("unauthorized", "MEMBER", "role", None, &self.role_nb[1], None),
            Finding {
                arguments: Some(arguments.to_owned()),
                ..f("missing", "EXECUTE", "function", s, &n.function, None)
            },
            default("missing", "SELECT", "tables"),
            default("unauthorized", "USAGE", "sequences"),
            f("unauthorized", "CREATE", "database", None, &self.database, None),
            f("missing", "TEMPORARY", "database", None, &self.database, None),
        ])
    }
}

/// A finding as the JSON report names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Finding {
    kind: String,
    grantee: String,
    privilege: String,
    ty: String,
    schema: Option<String>,
    name: String,
    column: Option<String>,
    for_role: Option<String>,
    arguments: Option<String>,
}

impl Finding {
    fn of(v: &Value) -> Finding {
        let s = |v: &Value| v.as_str().map(str::to_owned);
        let o = &v["object"];
        Finding {
            kind: s(&v["kind"]).unwrap_or_default(),
            grantee: s(&v["grantee"]).unwrap_or_default(),
            privilege: s(&v["privilege"]).unwrap_or_default(),
            ty: s(&o["type"]).unwrap_or_default(),
            schema: s(&o["schema"]),
            name: s(&o["name"]).unwrap_or_default(),
            column: s(&o["column"]),
            for_role: s(&o["for_role"]),
            arguments: s(&o["arguments"]),
        }
    }
}

/// Every ACL entry of the database, its schemas, relations, columns,
/// functions and default privileges (a NULL ACL read as its default), and the memberships
/// and attributes of this test's roles: one row each, as text.
async fn acls(admin: &Client, prefix: &str) -> BTreeSet<Vec<String>> {
    const SQL: &str = "
        WITH objects(class, schema, name, col, acl) AS (
            SELECT 'database', '', datname::text, '', coalesce(datacl, acldefault('d', datdba))
              FROM pg_database WHERE datname = current_database()
            UNION ALL
            SELECT 'schema', '', nspname::text, '', coalesce(nspacl, acldefault('n', nspowner))
              FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
            UNION ALL
            SELECT 'relation ' || c.relkind::text, n.nspname::text, c.relname::text, '',
                   coalesce(c.relacl, acldefault((CASE c.relkind WHEN 'S' THEN 's' ELSE 'r' END)::\"char\", c.relowner))
              FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
               AND c.relkind IN ('r', 'v', 'm', 'S', 'p', 'f')
            UNION ALL
            SELECT 'column', n.nspname::text, c.relname::text, a.attname::text, a.attacl
              FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE a.attacl IS NOT NULL AND n.nspname NOT LIKE 'pg\\_%'
            UNION ALL
            SELECT 'function', n.nspname::text, p.proname::text, oidvectortypes(p.proargtypes),
                   coalesce(p.proacl, acldefault('f', p.proowner))
              FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'
            UNION ALL
            SELECT 'default ' || d.defaclobjtype::text, coalesce(n.nspname::text, ''), pg_get_userbyid(d.defaclrole)::text, '',
                   d.defaclacl
              FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
        )
        SELECT o.class, o.schema, o.name, o.col, pg_get_userbyid(e.grantor)::text,
               CASE WHEN e.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(e.grantee)::text END,
               e.privilege_type, e.is_grantable::text
          FROM objects o, aclexplode(o.acl) e
        UNION ALL
        SELECT 'member', '', r.rolname::text, m.rolname::text, coalesce(g.rolname::text, ''), '',
               am.admin_option::text, ''
          FROM pg_auth_members am JOIN pg_roles r ON r.oid = am.roleid JOIN pg_roles m ON m.oid = am.member
          LEFT JOIN pg_roles g ON g.oid = am.grantor
         WHERE starts_with(r.rolname, $1) OR starts_with(m.rolname, $1)
        UNION ALL
        SELECT 'role', '', rolname::text, '', rolsuper::text || rolinherit::text || rolcreaterole::text
               || rolcreatedb::text || rolcanlogin::text || rolbypassrls::text, coalesce(rolvaliduntil::text, ''),
               rolconnlimit::text, ''
          FROM pg_roles WHERE starts_with(rolname, $1)";
    let rows = admin.query(SQL, &[&format!("{prefix}_")]).await.expect("the ACLs are read");
    rows.iter().map(|row| (0..8).map(|i| row.get::<_, String>(i)).collect()).collect()
}

/// What changed from `before` to `after`, for a failure message.
fn changes(before: &BTreeSet<Vec<String>>, after: &BTreeSet<Vec<String>>) -> String {
    let gone = before.difference(after).map(|r| format!("- {r:?}\n"));
    let new = after.difference(before).map(|r| format!("+ {r:?}\n"));
    gone.chain(new).collect()
}

/// The whole walk for one case, in a fresh database.
async fn hostile_names_pass_every_step(n: &Names) {
    let db = TestDb::named(&n.database).await;
    let case = Case::new(&db, n);
    let setup = case.setup_sql();
    db.exec(&setup).await;
    let admin = db.client().await;
    // type names as grantwarden reads them, schema-qualified outside pg_catalog
    admin.batch_execute("SET search_path = pg_catalog, pg_temp").await.expect("search_path pinned");
    let dir = tempfile::tempdir().expect("a temp dir");
    let walk =
        Walk { db: &db, case, admin, dir: dir.path(), url: db.url(), baseline: dir.path().join("baseline.yaml") };

    // generate, then plan against it: no drift
    let ignore = db.ignore_others().join(",");
    let out = grantwarden(&["generate", "--database", &walk.url, "--ignore-roles", &ignore, "-o", walk.baseline()]);
    ok(&out);
    let generated = std::fs::read_to_string(&walk.baseline).expect("generate wrote the baseline");
    let (code, findings, text) = walk.plan();
    assert!(code == Some(0) && findings.is_empty(), "generate then plan is clean:\n{text}\n{generated}\n{setup}");
    let original = walk.acls().await;

    walk.drift_is_reported_and_converged(&original, &generated).await;
    walk.temporary_access_is_revoked(&original).await;
    let (code, findings, text) = walk.plan();
    assert!(code == Some(0) && findings.is_empty(), "clean at the end:\n{text}");
}

/// One case's database, names, files and superuser connection, as the walk goes.
struct Walk<'a> {
    db: &'a TestDb,
    case: Case<'a>,
    admin: Client,
    dir: &'a Path,
    url: String,
    baseline: PathBuf,
}

impl Walk<'_> {
    fn baseline(&self) -> &str {
        self.baseline.to_str().expect("a UTF-8 temp path")
    }

    /// `plan --format json` against the baseline: exit code, findings, and the output for a failure message.
    fn plan(&self) -> (Option<i32>, BTreeSet<Finding>, String) {
        let out = grantwarden(&["plan", "--database", &self.url, "--baseline", self.baseline(), "--format", "json"]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let report: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("plan prints JSON ({e}):\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
        let findings = report["findings"].as_array().map(|f| f.iter().map(Finding::of).collect()).unwrap_or_default();
        (out.status.code(), findings, format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr)))
    }

    async fn acls(&self) -> BTreeSet<Vec<String>> {
        acls(&self.admin, &self.db.prefix).await
    }

    /// Runs the binary with the walk's state store, as of `at`.
    fn at(&self, args: &[&str], at: &str) -> Output {
        let state = self.dir.join("state.db");
        grantwarden(&[args, &["--state", state.to_str().expect("a UTF-8 temp path"), "--at", at]].concat())
    }

    /// Writes `body` as `name.json` and returns its path.
    fn write_json(&self, name: &str, body: &Value) -> String {
        let path = self.dir.join(format!("{name}.json"));
        std::fs::write(&path, body.to_string()).expect("the file is written");
        path.to_string_lossy().into_owned()
    }

    /// Each relation of the database: schema, name, relkind, and whether `role` may SELECT it.
    async fn reach(&self, role: &str) -> Vec<(String, String, String, bool)> {
        let sql = "SELECT n.nspname::text, c.relname::text, c.relkind::text, has_table_privilege($1, c.oid, 'SELECT')
                     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE c.relkind IN ('r', 'v') AND n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'";
        let rows = self.admin.query(sql, &[&role]).await.expect("privileges read");
        rows.iter().map(|row| (row.get(0), row.get(1), row.get(2), row.get(3))).collect()
    }

    /// Drift on the hostile objects is reported exactly, named as stored, and
    /// converge puts it right touching nothing else.
    async fn drift_is_reported_and_converged(&self, original: &BTreeSet<Vec<String>>, generated: &str) {
        let n = self.case.n;
        let drift = self.case.drift_sql();
        self.db.exec(&drift).await;
        let (code, findings, text) = self.plan();
        assert_eq!(code, Some(2), "{text}");
        let arguments: String = self
            .admin
            .query_one(
                "SELECT oidvectortypes(p.proargtypes) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                  WHERE n.nspname = $1 AND p.proname = $2",
                &[&n.schema, &n.function],
            )
            .await
            .expect("the function's arguments are read")
            .get(0);
        let expected = self.case.expected_drift(&arguments);
        assert_eq!(
            findings,
            expected,
            "plan reports exactly the drift:\nmissing from the report: {:#?}\nnot expected: {:#?}\n{drift}\n{generated}",
            expected.difference(&findings).collect::<Vec<_>>(),
            findings.difference(&expected).collect::<Vec<_>>()
        );

        let apply = ["apply", "--database", &self.url, "--baseline", self.baseline(), "--mode", "converge"];
        let applied = ok(&self.at(&[&apply[..], &["--execute"]].concat(), "2026-11-22T11:00:00Z"));
        let converged = self.acls().await;
        assert!(
            converged == *original,
            "converge restores exactly the state before the drift:\n{}\n{applied}",
            changes(original, &converged)
        );
        let (code, findings, text) = self.plan();
        assert!(code == Some(0) && findings.is_empty(), "clean after converge:\n{text}");
    }

    /// Two exception tickets of the hostile role and three credentials on
    /// hostile objects reach what they name and nothing else, and are gone,
    /// all of them and only them, once revoked.
    async fn temporary_access_is_revoked(&self, original: &BTreeSet<Vec<String>>) {
        let (n, db) = (self.case.n, self.db);
        let (r, s, t) = (q(&self.case.role), &n.schema, &n.table);
        let (tn, sn) = (&n.table_nb[0], &n.schema_nb[1]);
        // what a provisioning system granted, as its webhooks say
        db.exec(&format!(
            "GRANT SELECT ON {} TO {r};\nGRANT USAGE ON SCHEMA {} TO {r};\nGRANT SELECT ON {} TO {r};",
            qn(s, tn),
            q(sn),
            qn(sn, t)
        ))
        .await;
        let webhook = |id: &str, privileges: &[&str], object: Value| {
            json!({ "delivery_id": format!("{}-{id}", db.prefix), "source": "okta-workflows", "target": "orders-prod",
                "principal": "alice@example.com", "role": self.case.role, "privileges": privileges, "object": object,
                "justification": "INC-1", "requested_by": "alice@example.com", "expires_at": "2026-11-22T14:00:00Z" })
        };
        let tickets = [
            webhook("table", &["SELECT"], json!({ "type": "table", "schema": s, "name": tn })),
            webhook("schema", &["USAGE", "SELECT"], json!({ "type": "schema", "name": sn })),
        ];
        let mut ids = Vec::new();
        for (i, body) in tickets.iter().enumerate() {
            let file = self.write_json(&format!("ticket-{i}"), body);
            let out = ok(&self.at(&["intake", &file, "--policy", &policy()], "2026-11-22T12:00:00Z"));
            let line: Value = serde_json::from_str(out.lines().next().unwrap_or_default()).expect("intake prints JSON");
            assert_eq!(line["ticket"]["status"], "active", "{out}");
            ids.push(line["ticket"]["id"].as_str().expect("a ticket id").to_owned());
        }

        // credentials for the hostile table and a neighbour, and for the hostile schema
        let mut issued = Vec::new();
        let scopes =
            [json!({ "on": "tables", "schema": s, "tables": [t, tn] }), json!({ "on": "schema", "schema": s })];
        for (i, scope) in scopes.into_iter().enumerate() {
            let (ticket, role, _) = self.request(&format!("scope-{i}"), scope, &policy()).await;
            ids.push(ticket);
            for (schema, relation, kind, can) in self.reach(&role).await {
                let expected = match i {
                    0 => schema == *s && (relation == *t || relation == *tn),
                    // every table of the schema (its view is not this test's question), nothing elsewhere
                    _ if schema == *s && kind == "v" => continue,
                    _ => schema == *s,
                };
                assert_eq!(can, expected, "{role} reads {schema:?}.{relation:?} ({kind})");
            }
            issued.push(role);
        }
        if let Some((ticket, role)) = self.masked_database_scope().await {
            ids.push(ticket);
            issued.push(role);
        }

        let revoke = ["revoke", "--due", "--database", &self.url, "--target", "orders-prod", "--json"];
        let out = ok(&self.at(&[&revoke[..], &["--baseline", self.baseline()]].concat(), "2026-11-22T15:00:00Z"));
        let outcomes: BTreeSet<(String, String)> = out
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("revoke prints JSON lines"))
            .map(|v| (v["ticket"].as_str().unwrap_or("").to_owned(), v["outcome"].as_str().unwrap_or("").to_owned()))
            .collect();
        let all_revoked: BTreeSet<(String, String)> = ids.into_iter().map(|id| (id, "revoked".to_owned())).collect();
        assert_eq!(outcomes, all_revoked, "{out}");
        let revoked = self.acls().await;
        assert!(
            revoked == *original,
            "the tickets' grants are gone and nothing else changed:\n{}\n{out}",
            changes(original, &revoked)
        );
        let left: i64 = self
            .admin
            .query_one("SELECT count(*) FROM pg_roles WHERE rolname = ANY($1)", &[&issued])
            .await
            .expect("roles read")
            .get(0);
        assert_eq!(left, 0, "the issued roles are dropped");
    }

    /// `request` of a read-only credential for `scope` under the registry at
    /// `registry`, issued at once: its ticket, role and views' schema.
    async fn request(&self, id: &str, scope: Value, registry: &str) -> (String, String, String) {
        let body = json!({ "id": format!("{}-{id}", self.db.prefix), "identity": "alice@example.com",
            "target": "orders-prod", "path": "read-only", "scope": scope, "duration": "20m", "justification": "CHG-1" });
        let file = self.write_json(&format!("request-{id}"), &body);
        let out =
            ok(&self.at(&["request", &file, "--policy", registry, "--database", &self.url], "2026-11-22T12:00:00Z"));
        let line: Value = serde_json::from_str(out.trim()).expect("request prints JSON");
        assert_eq!(line["outcome"], "issued", "{out}");
        let field = |k: &str| line[k].as_str().unwrap_or_default().to_owned();
        (field("ticket"), field("role"), field("views_schema"))
    }

    /// A credential for the whole database, the hostile table and its
    /// namesake in a neighbour schema masked: each is read through a view of
    /// its own, masked, and neither table nor the view over one is granted.
    /// The registry names a masked table `schema.table`, which cannot name
    /// one with a dot in its names: then there is no such credential (None).
    async fn masked_database_scope(&self) -> Option<(String, String)> {
        let n = self.case.n;
        let (s, t, c, sn) = (&n.schema, &n.table, &n.column, &n.schema_nb[0]);
        if [s, t, sn].iter().any(|x| x.contains('.')) {
            return None;
        }
        let masking: serde_json::Map<String, Value> =
            [(format!("{s}.{t}"), json!({ c: "partial" })), (format!("{sn}.{t}"), json!({ c: "hash" }))]
                .into_iter()
                .collect();
        let registry = json!({ "version": "1", "owner": "security@example.com", "approver": "ciso@example.com",
            "categories": { "read-only": { "framework": "SOC2", "max_ttl": "8h", "approvals": 0, "weight_factor": 0.1 } },
            "routes": [{ "match": {}, "category": "read-only", "tag": "read" }],
            "access": { "paths": { "read-only": { "max_ttl": "8h" } }, "masking": masking } });
        let registry = self.write_json("masked-policy", &registry);
        self.db.exec(&format!("INSERT INTO {} ({}) VALUES (12345);", qn(s, t), q(c))).await;
        let (ticket, role, views) = self.request("database", json!({ "on": "database" }), &registry).await;
        let reach = self.reach(&role).await;
        let mut through = Vec::new();
        for (schema, relation, _, can) in &reach {
            let hidden = (relation == t && (schema == s || schema == sn)) || (schema == s && relation == &n.view);
            assert_eq!(*can, *schema == views || !hidden, "{role} reads {schema:?}.{relation:?}: {reach:?}");
            if *schema == views {
                through.push(relation.clone());
            }
        }
        assert_eq!(through.len(), 2, "a view for each masked table: {reach:?}");
        let me = grantwarden_testkit::connect(&self.db.url_as(&role)).await.expect("the credential logs in");
        let mut seen = Vec::new();
        for view in &through {
            let sql = format!("SELECT {}::text FROM {}", q(c), qn(&views, view));
            for row in me.query(&sql, &[]).await.unwrap_or_else(|e| panic!("{sql}: {e}")) {
                seen.push(row.get::<_, Option<String>>(0));
            }
        }
        assert_eq!(seen, [Some("12***".to_owned())], "masked, as the registry says");
        Some((ticket, role))
    }
}

/// The configuration: [`CASES`] and [`SEED`] unless the environment says otherwise.
fn config() -> Config {
    let from_env = Config::default();
    Config {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() { from_env.cases } else { CASES },
        rng_seed: match from_env.rng_seed {
            RngSeed::Random => RngSeed::Fixed(SEED),
            fixed => fixed,
        },
        failure_persistence: None,
        max_shrink_iters: 64,
        ..from_env
    }
}

/// A runtime for one test: the cases run one after the other, each to its end.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
}

#[test]
fn hostile_identifiers_pass_generate_plan_apply_and_revoke() {
    let rt = runtime();
    let mut runner = TestRunner::new(config());
    let result = runner.run(&names(), |n| {
        rt.block_on(hostile_names_pass_every_step(&n));
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn the_worst_names_pass_generate_plan_apply_and_revoke() {
    let n = Names::new([
        // 51 bytes: 63 with the test's prefix
        fit("Ro\"le'; DROP ROLE x; -- ü 日本 $1 \\", ROLE_MAX, true),
        " \"Sch.ema\" ".to_owned(),
        fit("1 \"Tab\"\"le\".'x' 🦀 $$", MAX_NAME_BYTES, true),
        "\"Col\"".to_owned(),
        "seq; --".to_owned(),
        "V.i\\ew\n".to_owned(),
        "f(app.\"(\" ), pg_catalog.lo_export(oid, text), app.g ".to_owned(),
        " Dom, ain(\"integer\") ".to_owned(),
        fit("Data'base\"\nroles: {} \\ $1; --", ROLE_MAX, true),
    ]);
    runtime().block_on(hostile_names_pass_every_step(&n));
}

#[test]
fn views_whose_names_postgresql_would_cut_alike_pass_too() {
    // a database scope masks a__b.<t> and a.<t>, t = b__b__...: their views, a__b__<t> and
    // a__<t>, are one name once cut to 63 bytes
    let mut n = Names::new(["Ro le", "a__b", &"b__".repeat(21), "Col", "s", "v", "f", "d", "db"].map(str::to_owned));
    n.schema_nb[0] = "a".to_owned();
    runtime().block_on(hostile_names_pass_every_step(&n));
}
