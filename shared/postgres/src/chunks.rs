//! Splitting a catalog into non-overlapping chunks.
//!
//! The cluster-wide facts are one chunk. Schemas are packed in name order into
//! chunks of at most `max_relations` relations; a schema larger than that is
//! split into ranges of relation names. Planning reads only counts and
//! boundaries, so it is cheap even on 100k tables.

use tokio_postgres::Client;

use crate::error::ExtractError;
use grantwarden_core::snapshot::ChunkSpec;

/// Most schemas in one packed chunk: keeps the `= ANY($1)` lists short.
const MAX_SCHEMAS_PER_CHUNK: usize = 256;

pub use grantwarden_core::snapshot::OidRange;

/// The range covering two (none when neither has one).
fn cover(range: Option<OidRange>, other: Option<OidRange>) -> Option<OidRange> {
    match (range, other) {
        (Some(a), Some(b)) => Some(OidRange { lo: a.lo.min(b.lo), hi: a.hi.max(b.hi), newer_than: a.newer_than }),
        (a, b) => a.or(b),
    }
}

/// How many relations a chunk holds at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkSize {
    /// At most this many (what a chunk extracted on its own, as by a Lambda, should hold).
    Max(i64),
    /// The catalog spread evenly over `connections` chunks, each of
    /// [`ChunkSize::SPREAD_MIN`] to [`ChunkSize::SPREAD_MAX`] relations. When
    /// the chunks share one snapshot, fewer and larger chunks read it with
    /// less overhead: each chunk costs a transaction and query plans of its
    /// own, and PostgreSQL may read a large one with parallel workers.
    Spread {
        /// Connections the chunks are read on.
        connections: usize,
    },
}

impl ChunkSize {
    /// The smallest chunk [`ChunkSize::Spread`] plans (below it, chunks are not worth splitting).
    pub const SPREAD_MIN: i64 = 2_000;
    /// The largest (above it, the progress shown and a retried chunk get coarse).
    pub const SPREAD_MAX: i64 = 50_000;

    /// The most relations of a chunk of a catalog of `relations`.
    pub fn max_relations(self, relations: i64) -> i64 {
        match self {
            ChunkSize::Max(n) => n.max(1),
            ChunkSize::Spread { connections } => {
                let connections = connections.max(1) as i64;
                let even = (relations + connections - 1) / connections;
                even.clamp(Self::SPREAD_MIN, Self::SPREAD_MAX)
            }
        }
    }
}

/// Plans the chunks of a scan, inside the caller's transaction, each with its
/// [`OidRange`] (none for the cluster chunk and for schemas without relations).
pub async fn plan_chunks_with_oids(
    client: &Client,
    size: ChunkSize,
) -> Result<Vec<(ChunkSpec, Option<OidRange>)>, ExtractError> {
    let rows =
        client.query(include_str!("sql/chunk_schemas.sql"), &[]).await.map_err(ExtractError::db("planning chunks"))?;
    let mut total = 0i64;
    for row in &rows {
        let relations: i64 = row.try_get("relations").map_err(ExtractError::db("reading chunk_schemas.relations"))?;
        total += relations;
    }
    let max_relations = size.max_relations(total);
    let mut chunks = vec![(ChunkSpec::Cluster, None)];
    let mut group: Vec<String> = Vec::new();
    let mut group_size = 0i64;
    let mut group_oids = None;
    for row in rows {
        let schema: String = row.try_get("schema").map_err(ExtractError::db("reading chunk_schemas.schema"))?;
        let relations: i64 = row.try_get("relations").map_err(ExtractError::db("reading chunk_schemas.relations"))?;
        let lo: Option<u32> = row.try_get("min_oid").map_err(ExtractError::db("reading chunk_schemas.min_oid"))?;
        let hi: Option<u32> = row.try_get("max_oid").map_err(ExtractError::db("reading chunk_schemas.max_oid"))?;
        let oids = lo.zip(hi).map(|(lo, hi)| OidRange { lo, hi, newer_than: None });
        if relations > max_relations {
            let bounds: Vec<String> = client
                .query(include_str!("sql/chunk_bounds.sql"), &[&schema, &max_relations])
                .await
                .map_err(ExtractError::db(format!("splitting schema {schema}")))?
                .iter()
                .map(|r| r.try_get::<_, String>("relname"))
                .collect::<Result<_, _>>()
                .map_err(ExtractError::db("reading chunk_bounds.relname"))?;
            // each part of the schema looks within the schema's range
            chunks.extend(split_ranges(&schema, &bounds).into_iter().map(|c| (c, oids)));
            continue;
        }
        if !group.is_empty() && (group_size + relations > max_relations || group.len() >= MAX_SCHEMAS_PER_CHUNK) {
            chunks.push((ChunkSpec::Schemas { schemas: std::mem::take(&mut group) }, group_oids.take()));
            group_size = 0;
        }
        group.push(schema);
        group_size += relations;
        group_oids = cover(group_oids, oids);
    }
    if !group.is_empty() {
        chunks.push((ChunkSpec::Schemas { schemas: group }, group_oids));
    }
    Ok(chunks)
}

/// Half-open ranges `[None, b1), [b1, b2), ..., [bn, None)`.
pub fn split_ranges(schema: &str, bounds: &[String]) -> Vec<ChunkSpec> {
    let mut out = Vec::with_capacity(bounds.len() + 1);
    let mut from: Option<String> = None;
    for b in bounds {
        out.push(ChunkSpec::SchemaPart { schema: schema.to_owned(), from: from.take(), to: Some(b.clone()) });
        from = Some(b.clone());
    }
    out.push(ChunkSpec::SchemaPart { schema: schema.to_owned(), from, to: None });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_everything_without_overlap() {
        let parts = split_ranges("s", &["g".into(), "p".into()]);
        let bounds: Vec<(Option<&str>, Option<&str>)> = parts
            .iter()
            .map(|c| match c {
                ChunkSpec::SchemaPart { from, to, .. } => (from.as_deref(), to.as_deref()),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(bounds, vec![(None, Some("g")), (Some("g"), Some("p")), (Some("p"), None)]);
        assert_eq!(split_ranges("s", &[]).len(), 1);
    }

    #[test]
    fn a_spread_catalog_makes_a_chunk_per_connection_within_bounds() {
        let spread = ChunkSize::Spread { connections: 4 };
        assert_eq!(spread.max_relations(100_000), 25_000);
        assert_eq!(spread.max_relations(1_000), ChunkSize::SPREAD_MIN, "a small catalog is not split finely");
        assert_eq!(spread.max_relations(10_000_000), ChunkSize::SPREAD_MAX);
        assert_eq!(ChunkSize::Spread { connections: 0 }.max_relations(10_000), 10_000);
        assert_eq!(ChunkSize::Max(2_000).max_relations(100_000), 2_000);
        assert_eq!(ChunkSize::Max(0).max_relations(100_000), 1);
    }

    #[test]
    fn a_packed_chunk_covers_the_oids_of_all_its_schemas() {
        let r = |lo, hi| Some(OidRange { lo, hi, newer_than: None });
        assert_eq!(cover(r(10, 20), r(5, 12)), r(5, 20));
        assert_eq!(cover(None, r(5, 12)), r(5, 12));
        assert_eq!(cover(r(10, 20), None), r(10, 20));
        assert_eq!(cover(None, None), None);
    }
}
