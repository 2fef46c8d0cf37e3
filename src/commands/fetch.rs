use super::Outcome;
use crate::cli::{Global, ShopifyArgs};
use crate::config::Config;
use crate::pipeline::{self, FetchedReport};
use crate::shopify::Mode;
use crate::history::Recorder;
use crate::lock::ShopLock;
use crate::storage::DataRoot;
use anyhow::{bail, Result};
use std::io::Write;

/// Pull the shop from Shopify's Admin API into a raw snapshot: every record
/// (historical) or those updated since the last fetch (incremental), with GraphQL
/// bulk operations, plus the webhook and event files in `--inbox`.
///
/// The access token comes from SHOPIFY_ACCESS_TOKEN or `[shopify] access_token` in
/// the config file, never from a flag. Watermarks (per entity, in the shop's
/// state.json) advance only after the snapshot is written.
#[derive(Debug, clap::Args)]
pub struct FetchArgs {
    #[command(flatten)]
    pub shopify: ShopifyArgs,
    /// historical: the whole shop, replacing earlier snapshots, watermarks reset;
    /// incremental: records updated since the watermarks.
    #[arg(long, value_enum, default_value_t = Mode::Incremental)]
    pub mode: Mode,
    /// Exit non-zero (2) when any record was skipped (it is kept in the
    /// snapshot's rejected file; the watermarks move past it all the same).
    #[arg(long)]
    pub strict: bool,
    /// Print the report as one JSON object on stdout (the summary goes to stderr).
    #[arg(long)]
    pub json: bool,
}

pub fn run(global: &Global, args: FetchArgs) -> Result<Outcome> {
    let config = Config::load(global.config.as_deref())?;
    let Some(api_url) = args.shopify.api_url(&config)? else {
        bail!("which shop? pass --shop-domain NAME.myshopify.com (or --api-url), or set [shopify] shop_domain in the config file");
    };
    let options = args.shopify.options(&api_url, &config, args.mode)?;
    let root = DataRoot::open(&global.root)?;
    let _lock = ShopLock::acquire(&root, &global.shop)?;
    let recorder = Recorder::start(&root, &global.shop, "fetch")?;
    let result = pipeline::fetch(&root, &global.shop, &options);
    recorder.finish(result.as_ref())?;
    let report = result?;
    super::print_report(args.json, &report, |out| print_fetched(out, &report))?;
    Ok(super::skipped_records(&report.fetched.landed, args.strict))
}

/// Objects fetched, the snapshot landed, the watermarks.
pub fn print_fetched(out: &mut dyn Write, report: &FetchedReport) -> std::io::Result<()> {
    let f = &report.fetched;
    let objects: Vec<String> = f.objects.iter().map(|(e, n)| format!("{n} {e}")).collect();
    writeln!(out, "fetched {} objects ({}); {} inbox files", f.objects.values().sum::<u64>(), objects.join(", "), f.inbox_files)?;
    writeln!(out, "snapshot {}: {} rows landed, {} skipped", f.landed.snapshot, f.landed.landed_total(), f.landed.skipped_total())?;
    for (entity, mark) in &f.watermarks {
        writeln!(out, "watermark {entity:<12} {mark}")?;
    }
    Ok(())
}
