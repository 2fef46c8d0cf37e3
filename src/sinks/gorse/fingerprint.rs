//! Row fingerprints, computed column by column from the feature Parquet: an export
//! compares them with what Gorse acknowledged and builds the JSON of changed rows
//! only (an unchanged re-export of a large shop builds none).
//!
//! A fingerprint covers every value the row's Gorse object holds, in the form it
//! is sent (labels scaled and rounded, empty text left out), so it changes when the
//! object changes; a few representation-only differences (a null `is_active` that
//! becomes `false`) may change it without changing the object, which costs one
//! resend, never a missed update.

use super::mapping::{embedding_number, scaled_label, Kind, Label, Source, FEEDBACK_TYPES, ITEM_LABELS, USER_LABELS};
use crate::hash::Fnv1a;
use anyhow::{Context, Result};
use polars::prelude::*;

/// One present candidate of a source: (candidate index, key, fingerprint).
pub(super) type Fingerprint = (usize, String, u64);

/// The fingerprint of every candidate of `source` that is a Gorse object.
pub(super) fn fingerprints(source: &Source) -> Result<Vec<Fingerprint>> {
    let frame = &source.frame;
    let ids = |column: &str| -> Result<Vec<String>> {
        let id = |id: Option<i64>| id.map(|id| format!("{}{id}", source.prefix)).with_context(|| format!("{column} is null"));
        frame.column(column)?.i64()?.iter().map(id).collect()
    };
    Ok(match source.kind {
        Kind::Item => {
            let mut rows = Rows::new(frame.height());
            rows.mix_bool(frame, "is_active")?;
            rows.mix_str_list(frame, "collection_handles")?;
            rows.mix_text(frame, "product_type")?;
            rows.mix_text(frame, "title")?;
            rows.mix_i64(frame, "published_at")?;
            rows.mix_labels(frame, ITEM_LABELS)?;
            rows.mix_vectors(frame, "embedding")?;
            rows.keyed(ids("product_id")?, |i| i)
        }
        Kind::User => {
            let mut rows = Rows::new(frame.height());
            rows.mix_labels(frame, USER_LABELS)?;
            rows.keyed(ids("customer_id")?, |i| i)
        }
        Kind::Feedback => {
            let (users, items) = (ids("customer_id")?, ids("product_id")?);
            let mut all = vec![];
            for (t, (kind, count, at)) in FEEDBACK_TYPES.iter().enumerate() {
                let counts = frame.column(count)?.i64()?;
                let mut rows = Rows::new(frame.height());
                rows.mix_i64(frame, count)?;
                rows.mix_i64(frame, at)?;
                let present: Vec<bool> = counts.iter().map(|c| c.unwrap_or(0) > 0).collect();
                // Keys only where the type is an object (an empty String does not allocate).
                let key = |((user, item), here): ((&String, &String), &bool)| if *here { format!("{kind}/{user}/{item}") } else { String::new() };
                let keys = users.iter().zip(&items).zip(&present).map(key).collect();
                let per_row = FEEDBACK_TYPES.len();
                all.extend(rows.keyed(keys, |row| row * per_row + t).into_iter().filter(|(i, _, _)| present[i / per_row]));
            }
            all.sort_unstable_by_key(|(i, _, _)| *i);
            all
        }
    })
}

/// One running hash per row, fed a column at a time. Every value is preceded by a
/// presence byte and strings by their length, so no two different rows feed the
/// same bytes.
struct Rows(Vec<Fnv1a>);

impl Rows {
    fn new(n: usize) -> Rows {
        Rows(vec![Fnv1a::default(); n])
    }

    fn mix<T>(&mut self, values: impl Iterator<Item = Option<T>>, bytes: impl Fn(&mut Fnv1a, T)) {
        for (h, value) in self.0.iter_mut().zip(values) {
            match value {
                Some(v) => {
                    h.update(&[1]);
                    bytes(h, v);
                }
                None => h.update(&[0]),
            }
        }
    }

    fn mix_i64(&mut self, frame: &DataFrame, column: &str) -> Result<()> {
        self.mix(frame.column(column)?.i64()?.iter(), |h, v| h.update(&v.to_le_bytes()));
        Ok(())
    }

    fn mix_f64(&mut self, values: impl Iterator<Item = Option<f64>>) {
        self.mix(values, |h, v| h.update(&v.to_bits().to_le_bytes()));
    }

    fn mix_bool(&mut self, frame: &DataFrame, column: &str) -> Result<()> {
        self.mix(frame.column(column)?.bool()?.iter(), |h, v| h.update(&[v as u8]));
        Ok(())
    }

    /// Text as the object holds it: an empty string is no value.
    fn mix_text(&mut self, frame: &DataFrame, column: &str) -> Result<()> {
        self.mix(frame.column(column)?.str()?.iter().map(|s| s.filter(|s| !s.is_empty())), mix_str);
        Ok(())
    }

    fn mix_str_list(&mut self, frame: &DataFrame, column: &str) -> Result<()> {
        let lists = frame.column(column)?.list()?;
        for (h, list) in self.0.iter_mut().zip(lists.amortized_iter()) {
            let Some(list) = list else {
                h.update(&[0]);
                continue;
            };
            let items = list.as_ref().str()?;
            h.update(&(items.len() as u64).to_le_bytes());
            for item in items.iter() {
                h.update(&[item.is_some() as u8]);
                mix_str(h, item.unwrap_or_default());
            }
        }
        Ok(())
    }

    /// A vector label as sent ([`embedding_number`]).
    fn mix_vectors(&mut self, frame: &DataFrame, column: &str) -> Result<()> {
        let lists = frame.column(column)?.list()?;
        for (h, list) in self.0.iter_mut().zip(lists.amortized_iter()) {
            let Some(list) = list else {
                h.update(&[0]);
                continue;
            };
            let numbers = list.as_ref().f32()?;
            h.update(&[1]);
            h.update(&(numbers.len() as u64).to_le_bytes());
            for x in numbers.into_no_null_iter() {
                h.update(&embedding_number(x).to_bits().to_le_bytes());
            }
        }
        Ok(())
    }

    fn mix_labels(&mut self, frame: &DataFrame, labels: &[(&str, Label)]) -> Result<()> {
        for (_, label) in labels {
            match *label {
                Label::Text(c) => self.mix_text(frame, c)?,
                Label::Flag(c) => self.mix_bool(frame, c)?,
                Label::Ratio(c, _) | Label::Log(c, _) => {
                    let values = frame.column(c)?.cast(&DataType::Float64)?;
                    self.mix_f64(values.f64()?.iter().map(|x| x.map(|x| scaled_label(*label, x))));
                }
            }
        }
        Ok(())
    }

    /// (candidate, key, hash) per row: the key is hashed too, so a row that takes
    /// another row's key never matches that row's hash by accident.
    fn keyed(self, keys: Vec<String>, candidate: impl Fn(usize) -> usize) -> Vec<Fingerprint> {
        self.0
            .into_iter()
            .zip(keys)
            .enumerate()
            .map(|(row, (mut h, key))| {
                mix_str(&mut h, &key);
                (candidate(row), key, h.finish())
            })
            .collect()
    }
}

fn mix_str(h: &mut Fnv1a, s: &str) {
    h.update(&(s.len() as u64).to_le_bytes());
    h.update(s.as_bytes());
}
