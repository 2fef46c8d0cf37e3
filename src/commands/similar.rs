use super::Outcome;
use crate::cli::Global;
use crate::evaluate::sources::{Knowledge, Source};
use crate::storage::DataRoot;
use anyhow::{bail, Result};
use std::collections::HashMap;

/// Print a product's nearest neighbours by each source side by side, from the
/// current feature tables: products bought with it (by lift and by
/// confidence), viewed in the same sessions (among those bought together),
/// sharing its collections, and nearest by product_embeddings (cosine) — titles and scores, products on sale only.
#[derive(Debug, clap::Args)]
pub struct SimilarArgs {
    /// The product (its numeric id).
    pub product_id: i64,
    /// Neighbours per source.
    #[arg(long, default_value_t = 10, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub k: usize,
    /// Print JSON (`{product_id, title, sources: {name: [{product_id, title, score}]}}`).
    #[arg(long)]
    pub json: bool,
}

/// The sources a product has neighbours by.
const SOURCES: [Source; 5] = [Source::PairsLift, Source::PairsConfidence, Source::CoView, Source::SameCollection, Source::Embedding];

pub fn run(global: &Global, args: SimilarArgs) -> Result<Outcome> {
    let root = DataRoot::open(&global.root)?;
    let current = |table: &str| crate::sinks::parquet::read_current_required(&root, &global.shop, table);
    let (products, pairs) = (current("product_features")?, current("product_pair_features")?);
    let titles: HashMap<i64, String> = products.column("product_id")?.i64()?.iter().zip(products.column("title")?.str()?.iter()).filter_map(|(id, t)| Some((id?, t.unwrap_or("").to_string()))).collect();
    let Some(title) = titles.get(&args.product_id) else {
        bail!("product {} is not in the current feature tables of shop {} (a deleted product, or one created since the last run)", args.product_id, global.shop);
    };
    let embeddings = crate::sinks::parquet::read_current(&root, &global.shop, "product_embeddings")?;
    let knowledge = Knowledge::of_catalog(&products, &pairs, embeddings.as_ref())?;
    let lists: Vec<(Source, Vec<(i64, f64)>)> = SOURCES.iter().map(|&s| (s, knowledge.neighbours(s, args.product_id, args.k))).collect();
    if args.json {
        let sources: serde_json::Map<String, serde_json::Value> = lists
            .iter()
            .map(|(s, list)| (s.name().to_string(), list.iter().map(|(p, score)| serde_json::json!({"product_id": p, "title": titles.get(p), "score": score})).collect()))
            .collect();
        println!("{}", serde_json::json!({"product_id": args.product_id, "title": title, "sources": sources}));
        return Ok(Outcome::Success);
    }
    println!("neighbours of {} {title}", args.product_id);
    const WIDTH: usize = 34;
    let cell = |text: String| -> String {
        let cut: String = text.chars().take(WIDTH).collect();
        format!("{cut:<WIDTH$}")
    };
    println!("{:>3}  {}", "", SOURCES.iter().map(|s| cell(s.name().to_string())).collect::<Vec<_>>().join(" "));
    for rank in 0..args.k {
        let row: Vec<String> = lists
            .iter()
            .map(|(_, list)| match list.get(rank) {
                Some((p, score)) => cell(format!("{} ({score:.3})", titles.get(p).map(String::as_str).unwrap_or("?"))),
                None => cell(String::new()),
            })
            .collect();
        println!("{:>3}  {}", rank + 1, row.join(" "));
    }
    Ok(Outcome::Success)
}
