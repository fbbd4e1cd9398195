//! `grantwarden notices`: the Slack notice queue of the local state file, as
//! `grantwarden serve` delivers it: what waits (with its attempts and last
//! failure), what was given up (with its reason), and putting a dead notice
//! back once its cause is fixed (a channel the bot was invited to, a token).

use anyhow::{Result, bail};
use clap::{Subcommand, ValueEnum};

use crate::exceptions::StateArgs;

#[derive(Clone, Copy, ValueEnum)]
pub enum NoticeState {
    /// Not delivered yet (due now, or waiting for its retry).
    Waiting,
    /// Given up, with the reason.
    Dead,
    /// Delivered.
    Delivered,
}

impl NoticeState {
    fn as_str(self) -> &'static str {
        match self {
            NoticeState::Waiting => "waiting",
            NoticeState::Dead => "dead",
            NoticeState::Delivered => "delivered",
        }
    }
}

#[derive(Subcommand)]
pub enum NoticesCommand {
    /// The notices in one state, oldest first.
    List {
        #[command(flatten)]
        state: StateArgs,
        /// Which.
        #[arg(long = "in", value_enum, default_value = "dead")]
        which: NoticeState,
        /// JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Puts dead notices back in the queue, due now with their attempts reset.
    Retry {
        /// Notice keys (as `list` shows them); none with `--all`.
        keys: Vec<String>,
        /// Every dead notice.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        state: StateArgs,
    },
}

pub fn run(command: NoticesCommand, now: chrono::DateTime<chrono::Utc>) -> Result<std::process::ExitCode> {
    match command {
        NoticesCommand::List { state, which, json } => {
            let rows = state.open()?.notices(which.as_str())?;
            for row in &rows {
                if json {
                    let line = serde_json::json!({ "key": row.key, "notice": row.notice, "state": row.state,
                        "attempts": row.attempts, "reason": row.reason });
                    println!("{line}");
                } else {
                    let notice = serde_json::to_string(&row.notice)?;
                    println!("{}\t{}\t{}\t{}", row.key, row.attempts, row.reason.as_deref().unwrap_or("-"), notice);
                }
            }
            if !json {
                eprintln!("{} {} notice(s)", rows.len(), which.as_str());
            }
        }
        NoticesCommand::Retry { keys, all, state } => {
            let store = state.open()?;
            let keys: Vec<String> = match (all, keys.is_empty()) {
                (true, true) => store.notices("dead")?.into_iter().map(|r| r.key).collect(),
                (false, false) => keys,
                (true, false) => bail!("give notice keys or --all, not both"),
                (false, true) => {
                    bail!("give the keys of the dead notices to retry (grantwarden notices list), or --all")
                }
            };
            let mut unknown = Vec::new();
            for key in &keys {
                if !store.requeue(key, now)? {
                    unknown.push(key.as_str());
                }
            }
            eprintln!("{} notice(s) queued again", keys.len() - unknown.len());
            if !unknown.is_empty() {
                bail!("no dead notice has the key(s) {}", unknown.join(", "));
            }
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
