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

/// Plans the chunks of a scan, inside the caller's transaction.
pub async fn plan_chunks(client: &Client, max_relations: i64) -> Result<Vec<ChunkSpec>, ExtractError> {
    let max_relations = max_relations.max(1);
    let rows =
        client.query(include_str!("sql/chunk_schemas.sql"), &[]).await.map_err(ExtractError::db("planning chunks"))?;
    let mut chunks = vec![ChunkSpec::Cluster];
    let mut group: Vec<String> = Vec::new();
    let mut group_size = 0i64;
    for row in rows {
        let schema: String = row.try_get("schema").map_err(ExtractError::db("reading chunk_schemas.schema"))?;
        let relations: i64 = row.try_get("relations").map_err(ExtractError::db("reading chunk_schemas.relations"))?;
        if relations > max_relations {
            let bounds: Vec<String> = client
                .query(include_str!("sql/chunk_bounds.sql"), &[&schema, &max_relations])
                .await
                .map_err(ExtractError::db(format!("splitting schema {schema}")))?
                .iter()
                .map(|r| r.try_get::<_, String>("relname"))
                .collect::<Result<_, _>>()
                .map_err(ExtractError::db("reading chunk_bounds.relname"))?;
            chunks.extend(split_ranges(&schema, &bounds));
            continue;
        }
        if !group.is_empty() && (group_size + relations > max_relations || group.len() >= MAX_SCHEMAS_PER_CHUNK) {
            chunks.push(ChunkSpec::Schemas { schemas: std::mem::take(&mut group) });
            group_size = 0;
        }
        group.push(schema);
        group_size += relations;
    }
    if !group.is_empty() {
        chunks.push(ChunkSpec::Schemas { schemas: group });
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
}
