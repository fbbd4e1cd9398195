//! A whole scan of one MySQL or MariaDB server, as the reader
//! (grantwarden-mysql) returns it and `grantwarden snapshot` writes it
//! (docs/CONTRACTS.md#snapshot), and what a report says of it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::mysql::catalog::{Catalog, Server};
use crate::report::ScanFacts;
use crate::snapshot::{ChunkOutcome, ChunkSpec, TargetId};

/// A complete or incomplete scan of one MySQL or MariaDB server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scan {
    /// What was scanned.
    pub target: TargetId,
    /// Deterministic scan id.
    pub scan_id: String,
    /// When the scan started.
    pub taken_at: DateTime<Utc>,
    /// The server.
    pub server: Server,
    /// False when a chunk failed or something was unreadable
    /// ([`Catalog::unreadable`]): the catalog is then partial and must never read as clean.
    pub complete: bool,
    /// Always false: the chunks read on connections of their own, and MySQL
    /// cannot share one snapshot between connections (nor MariaDB's Aria grant
    /// tables hold one at all).
    pub consistent: bool,
    /// Every chunk and how it ended, in chunk order.
    pub chunks: Vec<ChunkOutcome>,
    /// Hex sha256 of the catalog's JSON (every collection in it sorted).
    pub sha256: String,
    /// What the server enforces.
    pub catalog: Catalog,
}

impl Scan {
    /// The scan made of `chunks`' outcomes and the `catalog` merged from the
    /// chunks that were read: complete only when every chunk was read and
    /// nothing was unreadable to the scanning account. The CLI's scan and the
    /// AWS pipeline's assembly of batches both make it here.
    pub fn new(
        target: TargetId,
        scan_id: String,
        taken_at: DateTime<Utc>,
        server: Server,
        chunks: Vec<ChunkOutcome>,
        catalog: Catalog,
    ) -> Self {
        let complete = chunks.iter().all(|c| c.error.is_none()) && catalog.unreadable.is_empty();
        Scan {
            target,
            scan_id,
            taken_at,
            server,
            complete,
            consistent: false,
            chunks,
            sha256: catalog.sha256(),
            catalog,
        }
    }

    /// What a report says of this scan: a failed chunk, and each thing the
    /// scanning account could not read, is named as not judged.
    pub fn facts(&self) -> ScanFacts {
        let failed_chunks: Vec<String> = self.chunks.iter().filter_map(ChunkOutcome::failure).collect();
        let not_judged = self
            .chunks
            .iter()
            .filter(|c| c.error.is_some())
            .map(|c| not_judged(&c.chunk))
            .chain(self.catalog.unreadable.iter().map(|u| format!("{}: not read ({})", u.what, u.why)))
            .collect();
        ScanFacts {
            target: self.target.clone(),
            scan_id: self.scan_id.clone(),
            taken_at: self.taken_at,
            sha256: self.sha256.clone(),
            complete: self.complete,
            failed_chunks,
            not_judged,
        }
    }
}

/// What a failed chunk of a MySQL or MariaDB scan leaves unjudged (the plan reports nothing there).
fn not_judged(chunk: &ChunkSpec) -> String {
    match chunk {
        ChunkSpec::Cluster => "cluster: accounts and roles (their existence, logins, role grants, proxies and \
             exposures), global and database privileges"
            .to_owned(),
        ChunkSpec::Schemas { schemas } => format!(
            "{} {}: table, column and routine privileges, and the definers of views, routines, triggers and events",
            if schemas.len() == 1 { "database" } else { "databases" },
            schemas.join(", ")
        ),
        ChunkSpec::SchemaPart { schema, .. } => format!("database {schema}: part of its table privileges"),
    }
}
