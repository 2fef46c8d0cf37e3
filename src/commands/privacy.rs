use super::Outcome;
use crate::cli::{Global, PairArgs};
use crate::config::Config;
use crate::lock::ShopLock;
use crate::privacy::{self, Customer, Request};
use crate::storage::DataRoot;
use anyhow::{bail, Result};
use std::path::PathBuf;

/// Carry out a privacy request by hand, as `serve` does for Shopify's
/// compliance webhooks: for shops without `serve`, or requests received by
/// other means. Each leaves an audit record (no personal data) under
/// `<root>/<shop>/privacy/audit/`, which `status` lists; a request id done
/// before is not done again.
#[derive(Debug, clap::Args)]
pub struct PrivacyArgs {
    #[command(subcommand)]
    pub request: PrivacyRequest,
}

#[derive(Debug, clap::Subcommand)]
pub enum PrivacyRequest {
    /// Erase a customer (`customers/redact`): afterwards nothing under the shop's
    /// root names them (id, email, phone, addresses, stitched browser ids); their
    /// orders and events stay as anonymous guest records; the features are
    /// recomputed without them, older generations dropped, and Gorse (when
    /// configured) loses their user and feedback.
    RedactCustomer(SubjectArgs),
    /// Export what the shop holds of a customer (`customers/data_request`): every
    /// raw record naming them, their feature rows, what Gorse was sent, as one
    /// JSON document in `<root>/<shop>/privacy/exports/<data request id>.json`.
    ExportCustomer(ExportArgs),
    /// Forget the shop (`shop/redact`, 48 h after the app is uninstalled): its
    /// Gorse items and users (with their feedback), its whole folder under the
    /// root and its inbox. A tombstone without data stays
    /// (`<root>/_privacy/shops/<shop>.json`); `status` and `run --all` then show
    /// the shop as gone.
    RedactShop(ShopArgs),
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub subject: SubjectArgs,
    /// The request's `data_request.id`: the export's file name.
    #[arg(long)]
    pub data_request_id: String,
}

#[derive(Debug, clap::Args)]
pub struct ShopArgs {
    /// The shop's inbox, removed with it.
    #[arg(long)]
    pub inbox: Option<PathBuf>,
    /// The request's id, for the tombstone (default: one made from the time).
    #[arg(long)]
    pub request_id: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct SubjectArgs {
    /// The customer's id (a number or a GID).
    #[arg(long)]
    pub customer_id: Option<String>,
    #[arg(long)]
    pub email: Option<String>,
    #[arg(long)]
    pub phone: Option<String>,
    /// Orders to include (`orders_to_redact` / `orders_requested`), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub orders: Vec<String>,
    /// The request's id, for the audit record (default: one made from the time).
    #[arg(long)]
    pub request_id: Option<String>,
    /// The shop's inbox (as `serve --inboxes` has it), whose landed and rejected
    /// copies are erased too.
    #[arg(long)]
    pub inbox: Option<PathBuf>,
    #[command(flatten)]
    pub pairs: PairArgs,
}

impl SubjectArgs {
    fn customer(&self) -> Result<Customer> {
        let id = match &self.customer_id {
            Some(s) => Some(s.rsplit('/').next().and_then(|tail| tail.trim().parse().ok()).ok_or_else(|| anyhow::anyhow!("--customer-id {s:?} is not a customer id"))?),
            None => None,
        };
        let customer = Customer { id, email: self.email.clone(), phone: self.phone.clone() };
        if customer == Customer::default() {
            bail!("name the customer: --customer-id, --email or --phone");
        }
        Ok(customer)
    }

    fn orders(&self) -> Result<Vec<i64>> {
        self.orders.iter().map(|o| o.rsplit('/').next().and_then(|t| t.trim().parse().ok()).ok_or_else(|| anyhow::anyhow!("--orders: {o:?} is not an order id"))).collect()
    }
}

pub fn run(global: &Global, args: PrivacyArgs) -> Result<Outcome> {
    let config = Config::load(global.config.as_deref())?;
    let root = DataRoot::open(&global.root)?;
    let _lock = ShopLock::acquire(&root, &global.shop)?;
    let now = crate::time::now_rfc3339();
    let made_up = || format!("manual-{}", crate::land::new_snapshot_id(chrono::Utc::now()));
    let gorse = config.gorse_url().map(|url| crate::sinks::gorse::Options::from_config(&url, &config));
    let subject = match args.request {
        PrivacyRequest::RedactCustomer(subject) => subject,
        PrivacyRequest::ExportCustomer(export) => {
            let request = Request::ExportCustomer { customer: export.subject.customer()?, orders: export.subject.orders()?, data_request_id: export.data_request_id.clone() };
            let request_id = export.subject.request_id.clone().unwrap_or_else(made_up);
            let audit = privacy::carry_out(&root, &global.shop, &request_id, &now, &request, None)?;
            println!("customers/data_request {request_id}: exported to {}/{}", root.describe(), audit.export.unwrap_or_default());
            return Ok(Outcome::Success);
        }
        PrivacyRequest::RedactShop(shop) => {
            let shares = config.shops.iter().filter(|s| s.id != global.shop).any(|s| s.gorse_url.is_none() || s.gorse_url == gorse.as_ref().map(|g| g.url.clone()));
            let request_id = shop.request_id.clone().unwrap_or_else(made_up);
            let tombstone = privacy::shop::redact_shop(&root, &global.shop, &request_id, &now, shop.inbox.as_deref(), gorse.as_ref(), shares && gorse.is_some())?;
            println!("shop/redact {request_id}: shop {} forgotten ({} Gorse objects deleted)", tombstone.shop, tombstone.gorse_deleted);
            return Ok(Outcome::Success);
        }
    };
    let request = Request::RedactCustomer { customer: subject.customer()?, orders: subject.orders()? };
    let request_id = subject.request_id.clone().unwrap_or_else(made_up);
    let audit = privacy::carry_out(&root, &global.shop, &request_id, &now, &request, subject.inbox.as_deref())?;
    let removed = privacy::refresh(&root, &global.shop, gorse.as_ref(), subject.pairs.options())?;
    println!(
        "{} {}: {} snapshots rewritten, {} rows redacted, {} other files deleted; features recomputed, {removed} older generations removed{}",
        audit.topic,
        audit.request_id,
        audit.snapshots_rewritten,
        audit.rows_redacted,
        audit.files_deleted,
        if gorse.is_some() { "; exported to Gorse" } else { "" }
    );
    Ok(Outcome::Success)
}
