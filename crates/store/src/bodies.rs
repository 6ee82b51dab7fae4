//! Request and response bodies kept apart from the inference rows: the insert statements the
//! writer adds to a batch's transaction (only for records actually inserted, so a replay never
//! writes them twice) and the lookup that joins them back onto one record.

use std::collections::HashSet;

use sqlx::{Database, Encode, QueryBuilder, Type};

use crate::record::InferenceRecord;

/// Bind parameters per body row.
pub(crate) const PARAMS_PER_ROW: usize = 4;

/// `INSERT INTO inference_bodies` statements for the records of `records` that carry bodies and
/// whose id is in `inserted`, `rows_per_statement` rows each.
pub(crate) fn statements<'a, DB>(
    records: &'a [InferenceRecord],
    inserted: &HashSet<String>,
    rows_per_statement: usize,
) -> Vec<QueryBuilder<'a, DB>>
where
    DB: Database,
    &'a str: Encode<'a, DB> + Type<DB>,
    Option<&'a str>: Encode<'a, DB> + Type<DB>,
    i64: Encode<'a, DB> + Type<DB>,
{
    let rows: Vec<_> = records
        .iter()
        .filter(|r| inserted.contains(&r.id))
        .filter_map(|r| r.bodies.as_ref().map(|b| (r, b)))
        .collect();
    rows.chunks(rows_per_statement.max(1))
        .map(|chunk| {
            let mut qb = QueryBuilder::<DB>::new(
                "INSERT INTO inference_bodies (id, created_at_ms, request, response) ",
            );
            qb.push_values(chunk, |mut b, (r, bodies)| {
                b.push_bind(r.id.as_str())
                    .push_bind(r.created_at_ms)
                    .push_bind(bodies.request.as_str())
                    .push_bind(bodies.response.as_deref());
            });
            qb.push(" ON CONFLICT (id) DO NOTHING");
            qb
        })
        .collect()
}
