use super::Outcome;
use crate::cli::{Global, PairArgs};
use crate::evaluate::{self, EvaluateOptions};
use crate::storage::DataRoot;
use anyhow::{Context, Result};

/// Measure how well the feature tables recommend: a time split at T. The
/// sources (popularity over 30 days; products bought together by lift and by
/// confidence; co-viewed; same collection; the customer's preferred category;
/// nearest by product embeddings; viewed and not bought; a blend) rank the whole catalog on
/// sale at T for every customer who bought before T, from the feature tables at
/// T only; the test set is what those customers bought in (T, T + horizon] that
/// they had not bought before. Prints hit rate, recall and NDCG at k with 95%
/// bootstrap intervals over customers, and catalog coverage. The result is kept as
/// `<root>/<shop>/evaluation.json`, which `shopfeat report` shows.
#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    /// The split T (RFC 3339 or YYYY-MM-DD, UTC); default: the shop's last order
    /// minus the horizon, so the whole test window has happened.
    #[arg(long, value_parser = crate::time::parse_time)]
    pub as_of: Option<i64>,
    /// Days after T whose purchases are the test set.
    #[arg(long, default_value_t = 14, value_parser = clap::value_parser!(u32).range(1..))]
    pub horizon_days: u32,
    /// The length of the ranked lists scored.
    #[arg(long, default_value_t = 10, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub k: usize,
    /// Bootstrap resamples of the customers for the intervals.
    #[arg(long, default_value_t = 1000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub resamples: usize,
    #[command(flatten)]
    pub pairs: PairArgs,
    /// Also write the results (one row per source) to this Parquet file.
    #[arg(long, value_name = "FILE.parquet")]
    pub out: Option<std::path::PathBuf>,
    /// Write the split (train.parquet, catalog.parquet, customers.parquet) to
    /// this directory, for a peer to train and rank on (benches/implicit_peer.sh).
    #[arg(long, value_name = "DIR")]
    pub write_split: Option<std::path::PathBuf>,
    /// Score a peer's ranked lists beside the sources, with the same split and
    /// metric code: a Parquet file of (model, customer_id, rank, product_id).
    #[arg(long, value_name = "FILE.parquet")]
    pub peer_lists: Option<std::path::PathBuf>,
    /// Print the results as one JSON object on stdout (the table goes to stderr).
    #[arg(long)]
    pub json: bool,
}

pub fn run(global: &Global, args: EvaluateArgs) -> Result<Outcome> {
    let root = DataRoot::open(&global.root)?;
    let as_of = match args.as_of {
        Some(t) => t,
        None => evaluate::last_order_at(&root, &global.shop)? - i64::from(args.horizon_days) * 86_400_000_000,
    };
    let peer_lists = match &args.peer_lists {
        Some(path) => {
            let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            use polars::prelude::SerReader;
            Some(polars::prelude::ParquetReader::new(file).finish().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?)
        }
        None => None,
    };
    let options = EvaluateOptions { as_of, horizon_days: args.horizon_days, k: args.k, resamples: args.resamples, pairs: args.pairs.options(), peer_lists, write_split: args.write_split.clone() };
    let evaluation = evaluate::evaluate(&root, &global.shop, &options)?;
    // Kept for the HTML report (`shopfeat report` shows the last evaluation).
    root.put(&evaluate::last_path(&global.shop), &serde_json::to_vec_pretty(&evaluation)?)?;
    if let Some(path) = &args.out {
        let mut frame = evaluate::as_frame(&evaluation)?;
        let mut bytes = vec![];
        polars::prelude::ParquetWriter::new(&mut bytes).finish(&mut frame).with_context(|| format!("cannot write {}", path.display()))?;
        super::write_atomically(path, &bytes)?;
    }
    super::print_report(args.json, &evaluation, |out| {
        writeln!(out, "shop {}: T = {}, horizon {} days, k = {}: {} customers tested, {} purchases to find, {} products on sale", evaluation.shop, evaluation.as_of, evaluation.horizon_days, evaluation.k, evaluation.customers, evaluation.test_purchases, evaluation.catalog)?;
        writeln!(out, "{:<22} {:>24} {:>24} {:>24} {:>9}", "source", format!("hit rate@{}", evaluation.k), format!("recall@{}", evaluation.k), format!("NDCG@{}", evaluation.k), "coverage")?;
        let cell = |e: &crate::evaluate::metrics::Estimate| format!("{:.3} [{:.3}, {:.3}]", e.mean, e.low, e.high);
        for s in &evaluation.sources {
            writeln!(out, "{:<22} {:>24} {:>24} {:>24} {:>8.1}%", s.source, cell(&s.hit_rate), cell(&s.recall), cell(&s.ndcg), 100.0 * s.coverage)?;
        }
        Ok(())
    })?;
    Ok(Outcome::Success)
}
