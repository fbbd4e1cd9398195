//! The JSON Schemas in docs/schemas/: what `grantwarden schema <kind>` prints
//! now, and every baseline, policy registry and scoring file of the
//! repository (the examples, YAML blocks in the docs, the fixtures the tests
//! write) valid against its own. A schema and the loader agree on what a
//! file may hold: the samples below are read by both.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use grantwarden_core::baseline::Baseline;
use grantwarden_core::policy::PolicyRegistry;
use grantwarden_core::schema::SchemaKind;
use grantwarden_core::scoring::ScoringConfig;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().expect("the repository root exists")
}

fn schema_file(kind: SchemaKind) -> PathBuf {
    repo().join("docs/schemas").join(kind.file_name())
}

/// The checked-in schema (what editors read), compiled.
fn validator(kind: SchemaKind) -> jsonschema::Validator {
    let path = schema_file(kind);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    jsonschema::draft7::new(&schema).unwrap_or_else(|e| panic!("{} is no valid draft 7 schema: {e}", path.display()))
}

/// A YAML document as the validator sees it.
fn yaml_value(text: &str, origin: &str) -> Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{origin}: not YAML: {e}"))
}

/// Each failure as `path: message` (`/` for the root).
fn errors(validator: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    validator
        .iter_errors(doc)
        .map(|e| {
            let path = e.instance_path().to_string();
            format!("{}: {e}", if path.is_empty() { "/" } else { &path })
        })
        .collect()
}

/// Whether the loader of `kind` reads `text` (serde, then the checks of loading).
fn loads(kind: SchemaKind, text: &str) -> Result<(), String> {
    match kind {
        SchemaKind::Baseline => Baseline::from_yaml(text, "sample.yaml").map(drop),
        SchemaKind::Policy => PolicyRegistry::load(&[("sample.yaml".into(), text.into())]).map(drop),
        SchemaKind::Scoring => ScoringConfig::from_yaml(text, "sample.yaml").map(drop),
        SchemaKind::MysqlBaseline => {
            grantwarden_core::mysql_baseline::Baseline::from_yaml(text, "sample.yaml").map(drop)
        }
    }
    .map_err(|e| e.to_string())
}

#[test]
fn the_checked_in_schemas_are_what_the_command_prints() {
    for kind in SchemaKind::ALL {
        let printed = common::ok(&common::grantwarden(&["schema", kind.name()]));
        assert!(printed.ends_with("}\n"), "pretty JSON and a newline:\n{printed}");
        let file = schema_file(kind);
        let checked_in = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            printed == checked_in,
            "docs/schemas/{name} is not what `grantwarden schema {kind}` prints: regenerate it with\n    \
             cargo run -p grantwarden -- schema {kind} > docs/schemas/{name}",
            name = kind.file_name()
        );
    }
}

#[test]
fn schema_refuses_an_unknown_kind() {
    let o = common::grantwarden(&["schema", "manifest"]);
    assert_eq!(o.status.code(), Some(2), "a usage error");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("baseline") && stderr.contains("policy") && stderr.contains("scoring"), "{stderr}");
}

/// Top-level keys of each kind; a document whose keys are mostly one kind's is of that kind.
fn kind_by_keys(doc: &Value) -> Option<SchemaKind> {
    let keys: BTreeSet<&str> = doc.as_object()?.keys().map(String::as_str).collect();
    let of = |kind| -> &[&str] {
        match kind {
            SchemaKind::Baseline => &["version", "roles", "public", "ignore_roles"],
            SchemaKind::Policy => &["version", "owner", "approver", "change_history", "categories", "routes", "access"],
            SchemaKind::Scoring => {
                &["kind", "class", "scope", "grant_option_factor", "public_factor", "age", "thresholds", "coverage"]
            }
            SchemaKind::MysqlBaseline => &["version", "engine", "accounts", "ignore_accounts"],
        }
    };
    let mut best = SchemaKind::ALL.map(|kind| (keys.iter().filter(|k| of(kind).contains(k)).count(), kind));
    best.sort();
    let [.., (runner_up, _), (most, kind)] = best;
    // `version` alone says nothing: a baseline and a registry header both have it
    let telling = keys.iter().any(|k| *k != "version" && of(kind).contains(k));
    (telling && most * 2 > keys.len() && most > runner_up).then_some(kind)
}

/// The kind named by a `# yaml-language-server: $schema=<path>` first line,
/// with a check that the path, relative to the file, is that schema.
fn kind_by_schema_line(file: &Path, text: &str) -> Option<SchemaKind> {
    let target = text.lines().next()?.strip_prefix("# yaml-language-server: $schema=")?.trim();
    let kind = SchemaKind::ALL.into_iter().find(|k| target.ends_with(&format!("/{}", k.file_name())));
    let kind = kind.unwrap_or_else(|| panic!("{}: $schema={target} names none of docs/schemas/", file.display()));
    let resolved = file.parent().expect("a file is in a folder").join(target);
    assert_eq!(
        resolved.canonicalize().ok().as_deref(),
        Some(schema_file(kind).as_path()),
        "{}: $schema={target} does not lead to docs/schemas/{}",
        file.display(),
        kind.file_name()
    );
    Some(kind)
}

/// Every `.yaml`/`.yml` file and every fenced yaml block of a Markdown file
/// under `dir`, with where it is; build output and hidden folders left out.
fn yaml_sources(dir: &Path, out: &mut Vec<(String, PathBuf, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("the folder reads").map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.') && !name.starts_with("target") && name != "node_modules" {
                yaml_sources(&path, out);
            }
            continue;
        }
        let shown = path.strip_prefix(repo()).unwrap().display().to_string();
        if name.ends_with(".yaml") || name.ends_with(".yml") {
            out.push((shown, path.clone(), std::fs::read_to_string(&path).unwrap()));
        } else if name.ends_with(".md") {
            let text = std::fs::read_to_string(&path).unwrap();
            let mut block: Option<(usize, String)> = None;
            for (i, line) in text.lines().enumerate() {
                match &mut block {
                    None if line.trim_start() == "```yaml" => block = Some((i + 2, String::new())),
                    Some((start, body)) if line.trim_start() == "```" => {
                        out.push((format!("{shown}:{start}"), path.clone(), std::mem::take(body)));
                        block = None;
                    }
                    Some((_, body)) => {
                        body.push_str(line);
                        body.push('\n');
                    }
                    None => {}
                }
            }
        }
    }
}

#[test]
fn every_file_of_a_kind_in_the_repository_is_valid_against_its_schema() {
    let mut sources = Vec::new();
    yaml_sources(&repo(), &mut sources);
    // the fixtures the binary's tests write
    let dir = tempfile::tempdir().unwrap();
    let billing = dir.path().join("billing-baseline.yaml");
    common::billing_baseline(&billing, "gw_reader", &["gw_other"], &["pg_*".into(), "!pg_x".into()]);
    sources.push(("common::billing_baseline".into(), billing.clone(), std::fs::read_to_string(&billing).unwrap()));

    let validators = SchemaKind::ALL.map(|k| (k, validator(k)));
    let mut checked = Vec::new();
    let mut failures = Vec::new();
    for (shown, path, text) in &sources {
        let is_file = !shown.contains(".md:");
        let by_line = if is_file { kind_by_schema_line(path, text) } else { None };
        let Ok(doc) = serde_saphyr::from_str::<Value>(text) else {
            assert!(by_line.is_none(), "{shown} names a schema and is not YAML");
            continue; // not ours (say, a CloudFormation template with its tags)
        };
        let by_keys = kind_by_keys(&doc);
        let kind = match (by_line, by_keys) {
            (None, None) => continue,
            (Some(line), Some(keys)) if line != keys => {
                failures.push(format!("{shown}: names the {line} schema but reads as a {keys} file"));
                continue;
            }
            (None, Some(kind)) if is_file && !shown.starts_with("common::") => {
                let depth = Path::new(shown).components().count() - 1;
                failures.push(format!(
                    "{shown}: a {kind} file without a schema line; make its first line\n    \
                     # yaml-language-server: $schema={}docs/schemas/{}",
                    "../".repeat(depth),
                    kind.file_name()
                ));
                continue;
            }
            (Some(kind), _) | (None, Some(kind)) => kind,
        };
        let (_, validator) = validators.iter().find(|(k, _)| *k == kind).unwrap();
        let errors = errors(validator, &doc);
        if !errors.is_empty() {
            failures.push(format!("{shown} ({kind}):\n    {}", errors.join("\n    ")));
        }
        checked.push((shown.clone(), kind));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    for (known, kind) in [
        ("infra/baseline.example.yaml", SchemaKind::Baseline),
        ("infra/policy.example.yaml", SchemaKind::Policy),
        ("infra/scoring.yaml", SchemaKind::Scoring),
        ("infra/mysql-baseline.example.yaml", SchemaKind::MysqlBaseline),
        ("docs/CONTRACTS.md:", SchemaKind::MysqlBaseline),
        ("README.md:", SchemaKind::Baseline),
        ("common::billing_baseline", SchemaKind::Baseline),
    ] {
        assert!(
            checked.iter().any(|(shown, k)| shown.starts_with(known) && *k == kind),
            "{known} was not checked as a {kind} file; checked: {checked:?}"
        );
    }
}

#[test]
fn a_misspelled_field_or_a_wrong_type_fails_with_the_path_that_holds_it() {
    let baseline = validator(SchemaKind::Baseline);
    let cases = [
        (
            "version: 1\nroles:\n  app:\n    grants:\n      - { privilges: [SELECT], on: table, name: s.t }\n",
            "/roles/app/grants/0",
            "privilges",
        ),
        ("version: 1\nroles:\n  app: { login: sometimes }\n", "/roles/app/login", "boolean"),
        (
            "version: 1\nroles:\n  app:\n    grants:\n      - { privileges: SELECT, on: table, name: s.t }\n",
            "/roles/app/grants/0/privileges",
            "array",
        ),
        ("version: 1\nrole:\n  app: {}\n", "/", "role"),
    ];
    for (yaml, path, word) in cases {
        let found = errors(&baseline, &yaml_value(yaml, "case"));
        assert!(
            found.iter().any(|e| e.starts_with(&format!("{path}: ")) && e.contains(word)),
            "{yaml}\nwant an error at {path} naming {word:?}, got {found:?}"
        );
        assert!(loads(SchemaKind::Baseline, yaml).is_err(), "the loader refuses it too:\n{yaml}");
    }
}

const HEADER: &str = "version: \"1\"\nowner: a@example.com\napprover: b@example.com\n";

fn category(max_ttl: &str, rest: &str) -> String {
    format!(
        "{HEADER}categories:\n  c: {{ framework: SOC2, max_ttl: {max_ttl:?}, approvals: 1, weight_factor: 0.5{rest} }}\n"
    )
}

fn route(privilege: &str) -> String {
    format!("{}routes:\n  - {{ match: {{ privileges: [{privilege:?}] }}, category: c }}\n", category("1h", ""))
}

/// Samples that the schema and the loader must judge alike: valid for both, or refused by both.
fn agreed() -> Vec<(SchemaKind, String, bool)> {
    use SchemaKind::{Baseline as B, Policy as P, Scoring as S};
    let mut out: Vec<(SchemaKind, String, bool)> = vec![
        (B, "version: 1\nroles:\n".into(), true),
        (
            B,
            "version: 1\nroles:\n  app:\n    valid_until: 2027-01-01 00:00:00Z\n    member_of: [base, { role: ops, admin: true, set: false }]\n    grants:\n      - { privileges: [select, \" Insert \", all privileges], on: table, name: s.t }\n      - { privileges: [temp], on: database }\n      - { privileges: [USAGE], on: schema, names: [a, b] }\n  base: {}\n  ops: {}\npublic: { builtin_defaults: revoke }\nignore_roles: [\"pg_*\"]\n".into(),
            true,
        ),
        (B, "version: 2\n".into(), false),
        (B, "version: 1\nroles:\n  app:\n".into(), false),
        (B, "version: 1\nroles:\n  app: { member_of: [{ role: ops, admn: true }] }\n".into(), false),
        (B, "version: 1\nroles:\n  app: { member_of: [7] }\n".into(), false),
        (B, "version: 1\nroles:\n  app: { grants: [{ privileges: [SELECT], on: tables, name: s.t }] }\n".into(), false),
        (B, "version: 1\nroles:\n  app: { grants: [{ privileges: [SUPERUSER], on: database }] }\n".into(), false),
        (B, "version: 1\npublic: { builtin_defaults: drop }\n".into(), false),
        (P, format!("{HEADER}access:\n  paths: {{ read-only: {{ max_ttl: 8h }}, break-glass: {{ max_ttl: 30m }} }}\n"), true),
        (P, format!("{HEADER}access:\n  paths: {{ readonly: {{ max_ttl: 8h }} }}\n"), false),
        (P, format!("{HEADER}access:\n  masking: {{ s.t: {{ email: blur }} }}\n"), false),
        (P, category("4h", ", on_excess_ttl: clamp, incident_required: true"), true),
        (P, category("4h", ", on_excess_ttl: shorten"), false),
        (P, category("4h", "").replace("approvals: 1", "approvals: 3"), false),
        (P, category("4h", "").replace("weight_factor: 0.5", "weight_factor: 0"), false),
        (P, format!("{}routes:\n  - {{ match: {{ schem: x }}, category: c }}\n", category("1h", "")), false),
        (S, "{}\n".into(), true),
        (S, "class: { admin: 10 }\nthresholds: { alert_severity: high }\nage: { max_factor: 1 }\n".into(), true),
        (S, "kind: { unauthorised: 1 }\n".into(), false),
        (S, "thresholds: { alert_severity: severe }\n".into(), false),
        (S, "class: { read: -1 }\n".into(), false),
        (S, "grant_option_factor: 0\n".into(), false),
        (S, "age: { max_factor: 0.5 }\n".into(), false),
    ];
    // durations as humantime reads them
    for ttl in ["30m", "4h", "1h 30m", "1h30m", "1.5h", "2days", " 8h ", "1 0m", "3M", "250ms", "1week 2d"] {
        out.push((P, category(ttl, ""), true));
    }
    for ttl in ["4 hourz", "4", "h", "-1h", "4h!", "4H", "1.h", "", "four hours", "4h,30m"] {
        out.push((P, category(ttl, ""), false));
    }
    // privileges in any case, as the parser upper-cases them
    for p in ["SELECT", "select", " Usage ", "temp", "TEMPORARY", "all", "All Privileges", "maintain"] {
        out.push((P, route(p), true));
    }
    for p in ["SELEC", "SUPERUSER", "ALL  PRIVILEGES", "ALLPRIVILEGES", "login", ""] {
        out.push((P, route(p), false));
    }
    out
}

#[test]
fn the_schema_and_the_loader_agree_on_each_sample() {
    let validators = SchemaKind::ALL.map(|k| (k, validator(k)));
    let mut disagree = Vec::new();
    for (kind, yaml, valid) in agreed() {
        let (_, validator) = validators.iter().find(|(k, _)| *k == kind).unwrap();
        let schema = errors(validator, &yaml_value(&yaml, "sample"));
        let loaded = loads(kind, &yaml);
        if schema.is_empty() != valid || loaded.is_ok() != valid {
            disagree.push(format!(
                "{kind} sample, want {}:\n{yaml}  schema: {schema:?}\n  loader: {loaded:?}",
                if valid { "valid" } else { "refused" }
            ));
        }
    }
    assert!(disagree.is_empty(), "\n{}", disagree.join("\n"));
}

#[test]
fn what_the_schema_leaves_to_the_loader_and_the_spellings_it_asks_for() {
    let baseline = validator(SchemaKind::Baseline);
    let scoring = validator(SchemaKind::Scoring);
    // rules across fields are the loader's: the schema lets these through, loading names the path
    for (validator, kind, yaml, message) in [
        (
            &baseline,
            SchemaKind::Baseline,
            "version: 1\nroles:\n  app: { grants: [{ privileges: [SELECT], on: table, name: t }] }\n",
            "must be schema-qualified",
        ),
        (
            &baseline,
            SchemaKind::Baseline,
            "version: 1\nroles:\n  app: { grants: [{ privileges: [EXECUTE], on: table, name: s.t }] }\n",
            "cannot be granted on table",
        ),
        (&scoring, SchemaKind::Scoring, "thresholds: { warn_score: 60 }\n", "must not be above thresholds.alert_score"),
    ] {
        assert_eq!(errors(validator, &yaml_value(yaml, "sample")), Vec::<String>::new(), "{yaml}");
        let loaded = loads(kind, yaml).unwrap_err();
        assert!(loaded.contains(message), "{loaded}");
    }
    // a quoted number or boolean, or a number where text goes, still loads
    // (the parser converts scalars to the field's type); the schema asks for
    // the plain spelling: `1`, `true`, `"2.1"`
    let policy = validator(SchemaKind::Policy);
    for (validator, kind, yaml) in [
        (&baseline, SchemaKind::Baseline, "version: '1'\n".to_owned()),
        (&baseline, SchemaKind::Baseline, "version: 1\nroles:\n  app: { login: 'true' }\n".to_owned()),
        (&policy, SchemaKind::Policy, HEADER.replace("\"1\"", "2.1")),
    ] {
        assert!(!errors(validator, &yaml_value(&yaml, "sample")).is_empty(), "{yaml}");
        assert_eq!(loads(kind, &yaml), Ok(()), "{yaml}");
    }
}
