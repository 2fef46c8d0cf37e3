use super::Outcome;
use crate::cli::{Global, PairArgs};
use crate::storage::DataRoot;
use crate::trainset::{self, Candidates, Label, Layout, Rows, TrainsetOptions};
use anyhow::{Context, Result};
use polars::prelude::*;

/// Build a training set for a ranking model: for each cut-off T, rows
/// (customer, product) for every customer active in the --active-days before T and
/// each product the candidate sources propose (or the rows of --spine), with
/// the user, product, interaction and pair features exactly as `compute
/// --as-of T` gives them (columns prefixed user__, product__, interaction__,
/// pair__), and the label: whether the customer bought (or added to cart) the
/// product in (T, T + horizon], with the time of the first such event. Written
/// to OUT as Parquet partitioned by cut-off, with manifest.json (rows,
/// positives, the share of label events the candidates cover, a content hash)
/// and trainset.duckdb holding the view `trainset`.
#[derive(Debug, clap::Args)]
pub struct TrainsetArgs {
    /// Cut-offs: START..END/STEP (e.g. 2025-06-01..2025-11-01/7d; END included
    /// when a step lands on it) or a comma-separated list (RFC 3339 or
    /// YYYY-MM-DD, UTC).
    #[arg(long, value_parser = |s: &str| trainset::parse_cutoffs(s).map(Cutoffs), required_unless_present = "spine", conflicts_with = "spine")]
    pub cutoffs: Option<Cutoffs>,
    /// The label window after each cut-off: 7d, 12h, 30m.
    #[arg(long, default_value = "7d", value_parser = trainset::parse_duration)]
    pub horizon: i64,
    /// What the label records.
    #[arg(long, value_enum, default_value_t = Label::Purchase)]
    pub label: Label,
    /// With candidates: the customers are those with a view, cart add or
    /// purchase in this many days up to each cut-off.
    #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..), conflicts_with = "spine")]
    pub active_days: u32,
    /// Candidate sources and how many products each proposes per customer:
    /// pairs (bought with their purchases, by confidence), popular (purchases in
    /// 30 days), repurchase (what they bought, most bought first), embedding
    /// (nearest by product_embeddings), co_view, viewed (viewed, not bought).
    /// Each row has a flag per source named, source__<name>: whether it
    /// proposed the product.
    #[arg(long, default_value = "pairs:50,popular:50,repurchase:20,embedding:50", value_parser = |s: &str| Candidates::parse_list(s).map(CandidateList), conflicts_with = "spine")]
    pub candidates: CandidateList,
    /// Rows from this Parquet file instead: columns customer_id, product_id and
    /// cutoff (a timestamp), Feast-style; its cut-offs are the cut-offs.
    #[arg(long, value_name = "FILE.parquet")]
    pub spine: Option<std::path::PathBuf>,
    /// How the files hold the features: star writes each row's keys, source__* flags,
    /// label and pair__partner_id in rows-<n>.parquet and the features once
    /// per cut-off and entity in users.parquet, products.parquet,
    /// interactions.parquet (rows with an interaction) and pairs.parquet (each
    /// (product, partner) the rows name); the view `trainset` joins them into
    /// flat rows. Flat writes every column on every row in part-<n>.parquet
    /// (files that stand alone; on a 100,000-order shop 12 times the bytes and
    /// 3 times the time).
    #[arg(long, value_enum, default_value_t = Layout::Star)]
    pub layout: Layout,
    #[command(flatten)]
    pub pairs: PairArgs,
    /// The directory to write (it must not exist yet).
    #[arg(long, value_name = "DIR")]
    pub out: std::path::PathBuf,
    /// Print the manifest as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Parsed `--cutoffs` (one value holding many times).
#[derive(Debug, Clone)]
pub struct Cutoffs(Vec<i64>);

/// Parsed `--candidates`.
#[derive(Debug, Clone)]
pub struct CandidateList(Vec<(Candidates, usize)>);

pub fn run(global: &Global, args: TrainsetArgs) -> Result<Outcome> {
    let root = DataRoot::open(&global.root)?;
    let rows = match &args.spine {
        Some(path) => Rows::Spine(read_spine(path)?),
        None => Rows::Candidates(args.candidates.0.clone()),
    };
    let options = TrainsetOptions { cutoffs: args.cutoffs.clone().map(|c| c.0).unwrap_or_default(), horizon: args.horizon, label: args.label, rows, active_days: args.active_days, pairs: args.pairs.options(), layout: args.layout };
    let manifest = trainset::build(&root, &global.shop, &options, &args.out)?;
    super::print_report(args.json, &manifest, |out| {
        writeln!(out, "{}: {} cut-offs, {} rows, {} positives; the rows hold {:.1}% of the {} label events; content {}", args.out.display(), manifest.cutoffs.len(), manifest.rows, manifest.positives, 100.0 * manifest.covered_share, manifest.label_events, manifest.content_hash)?;
        for c in &manifest.cutoffs {
            writeln!(out, "  {}  {:>8} rows  {:>6} positives  {:>6} customers  {:.1} s", c.cutoff, c.rows, c.positives, c.customers, c.seconds)?;
        }
        Ok(())
    })?;
    Ok(Outcome::Success)
}

/// The spine's three columns, checked: a clear error names what is missing.
fn read_spine(path: &std::path::Path) -> Result<DataFrame> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open the spine {}", path.display()))?;
    let frame = ParquetReader::new(file).finish().map_err(|e| anyhow::anyhow!("{} is not a Parquet file: {e}", path.display()))?;
    for (name, ok) in [("customer_id", frame.column("customer_id").map(|c| c.dtype().is_integer())), ("product_id", frame.column("product_id").map(|c| c.dtype().is_integer())), ("cutoff", frame.column("cutoff").map(|c| matches!(c.dtype(), DataType::Datetime(_, _) | DataType::Date)))] {
        match ok {
            Ok(true) => {}
            Ok(false) => anyhow::bail!("{}: column {name} has type {}; customer_id and product_id must be integers, cutoff a timestamp", path.display(), frame.column(name)?.dtype()),
            Err(_) => anyhow::bail!("{}: no column {name} (a spine has customer_id, product_id and cutoff)", path.display()),
        }
    }
    // Timestamps in µs, UTC, whatever unit the file used.
    let cutoff = frame.column("cutoff")?.cast(&DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)))?;
    let mut frame = frame.select(["customer_id", "product_id"])?;
    frame.with_column(cutoff)?;
    if frame.column("cutoff")?.null_count() > 0 || frame.column("customer_id")?.null_count() > 0 || frame.column("product_id")?.null_count() > 0 {
        anyhow::bail!("{}: a row without a customer_id, product_id or cutoff", path.display());
    }
    Ok(frame)
}
