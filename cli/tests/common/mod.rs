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

/// infra/policy.example.yaml.
pub fn policy() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/policy.example.yaml").to_string_lossy().into_owned()
}
