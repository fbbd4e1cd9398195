//! What the binary's integration tests share: running it with a clean
//! environment, and the example policy registry.

use std::path::Path;
use std::process::{Command, Output};

/// Runs the binary with `args`, none of its environment fallbacks set.
pub fn grantwarden(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grantwarden"))
        .args(args)
        .env_remove("GRANTWARDEN_DATABASE_URL")
        .env_remove("GRANTWARDEN_STATE")
        .env_remove("GRANTWARDEN_POLICY")
        .output()
        .expect("the binary runs")
}

/// The standard output of a run that must exit 0; otherwise a panic with both streams.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.code() == Some(0),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Writes a baseline for one test into `dir`: `roles_yaml` (the entries under
/// `roles:`), PUBLIC keeping USAGE on schema public, every other test's roles
/// ignored. Returns its path.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn write_baseline(dir: &Path, db: &grantwarden_testkit::TestDb, roles_yaml: &str) -> String {
    let ignore: Vec<String> = db.ignore_others().iter().map(|p| format!("{p:?}")).collect();
    let text = format!(
        "version: 1\nroles:\n{roles_yaml}\npublic:\n  grants:\n    - {{ privileges: [USAGE], on: schema, name: public }}\nignore_roles: [{}]\n",
        ignore.join(", ")
    );
    let path = dir.join("baseline.yaml");
    std::fs::write(&path, text).expect("the baseline is written");
    path.to_string_lossy().into_owned()
}

/// infra/policy.example.yaml.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn policy() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/policy.example.yaml").to_string_lossy().into_owned()
}

/// Writes the billing scenario's baseline at `path`: `reader` may use schema
/// billing and read billing.invoices; `others` are declared with nothing;
/// PUBLIC keeps USAGE on public; `ignore` hides the other tests' roles.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn billing_baseline(path: &Path, reader: &str, others: &[&str], ignore: &[String]) {
    let others: String = others.iter().map(|r| format!("  {r}: {{}}\n")).collect();
    let ignore: Vec<String> = ignore.iter().map(|p| format!("{p:?}")).collect();
    let text = format!(
        "version: 1
roles:
  {reader}:
    grants:
      - {{ privileges: [USAGE], on: schema, name: billing }}
      - {{ privileges: [SELECT], on: table, name: billing.invoices }}
{others}public:
  grants:
    - {{ privileges: [USAGE], on: schema, name: public }}
ignore_roles: [{}]
",
        ignore.join(", ")
    );
    std::fs::write(path, text).expect("the baseline is written");
}

/// One sweep of `watch --once` over orders-prod at `url`, with the state store at
/// `state` and the clock at `at`; `extra` flags follow.
#[allow(dead_code)] // not every test binary that includes this module uses it
pub fn watch_once(url: &str, state: &str, at: &str, extra: &[&str]) -> Output {
    let args = ["watch", "--once", "--database", url, "--target", "orders-prod", "--state", state, "--at", at];
    grantwarden(&[&args[..], extra].concat())
}
