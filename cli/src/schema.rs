//! `grantwarden schema <kind>`: the JSON Schema of a hand-written YAML input
//! (baseline, policy registry, scoring config, MySQL and MariaDB baseline), as checked in under
//! docs/schemas/ for editors to complete and validate those files.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use grantwarden_core::schema::{self, SchemaKind};

#[derive(Args)]
pub struct SchemaArgs {
    /// Which file's schema.
    #[arg(value_enum)]
    kind: Kind,
}

/// [`SchemaKind`] as the command line names it.
#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    /// The baseline manifest.
    Baseline,
    /// A policy registry file.
    Policy,
    /// The scoring config.
    Scoring,
    /// The MySQL and MariaDB baseline.
    MysqlBaseline,
}

impl From<Kind> for SchemaKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Baseline => SchemaKind::Baseline,
            Kind::Policy => SchemaKind::Policy,
            Kind::Scoring => SchemaKind::Scoring,
            Kind::MysqlBaseline => SchemaKind::MysqlBaseline,
        }
    }
}

/// Prints the schema as pretty JSON with a trailing newline: the bytes of docs/schemas/<kind>.schema.json.
pub fn run(args: SchemaArgs) -> Result<ExitCode> {
    let schema = schema::for_kind(args.kind.into());
    let mut text = serde_json::to_string_pretty(&schema).context("writing the schema as JSON")?;
    text.push('\n');
    std::io::stdout().lock().write_all(text.as_bytes()).context("writing the schema to stdout")?;
    Ok(ExitCode::SUCCESS)
}
