//! Shopify → raw snapshots. A historical fetch pulls the whole shop with one bulk
//! operation per root entity (run side by side from API 2026-01); an incremental
//! fetch runs the same queries filtered to records updated since each entity's
//! watermark. Refund lines, which bulk queries cannot hold, follow with paged
//! queries for the refunded orders ([`refunds`]). Files dropped in an inbox
//! (webhook payloads, web-pixel events) land in the same snapshot.
//!
//! Watermarks are Shopify's own clock — the time each bulk operation started,
//! minus an overlap — never ours, and they advance only after the snapshot is
//! committed. Records fetched twice by the overlap are versions normalization
//! already deduplicates, so the overlap costs a few rows and misses nothing.

pub mod bulk;
pub mod client;
pub mod queries;
pub mod refunds;

use crate::config::Secret;
use crate::land::inbox::Inbox;
use crate::land::{self, InputFile, InputKind, LandReport};
use crate::retry::Retry;
use crate::state::ShopState;
use crate::storage::DataRoot;
use crate::vocabulary::RawEntity;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Pull the whole shop; the snapshot replaces earlier ones; watermarks reset.
    Historical,
    /// Pull records updated since the watermarks.
    Incremental,
}

#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// `https://NAME.myshopify.com`, or a proxy / test server.
    pub api_url: String,
    pub api_version: String,
    pub token: Secret,
    pub mode: Mode,
    /// A folder of webhook payloads and event files to land with the fetch; landed
    /// files move to `<inbox>/landed/<snapshot>/`.
    pub inbox: Option<PathBuf>,
    /// How far before a bulk operation's start the next fetch begins.
    pub overlap: Duration,
    pub retry: Retry,
    pub polling: bulk::Polling,
    pub timeout: Duration,
    /// Let a historical fetch that finds an entity empty replace what was landed.
    pub allow_mass_delete: bool,
    /// Inbox files younger than this are left for the next run (they may still be
    /// being written).
    pub inbox_settle: Duration,
}

impl FetchOptions {
    pub fn new(api_url: &str, token: Secret, mode: Mode) -> FetchOptions {
        FetchOptions {
            api_url: api_url.to_string(),
            api_version: queries::API_VERSION.into(),
            token,
            mode,
            inbox: None,
            overlap: Duration::from_secs(300),
            retry: Retry { max_retries: 8, ..Retry::default() },
            polling: bulk::Polling::default(),
            timeout: Duration::from_secs(60),
            allow_mass_delete: false,
            inbox_settle: Duration::from_secs(5),
        }
    }
}

#[derive(Debug, serde::Serialize)]
pub struct FetchReport {
    /// The Admin API version asked for.
    pub api_version: String,
    /// Objects per entity, as Shopify counted them.
    pub objects: BTreeMap<&'static str, u64>,
    /// The refund lines fetched apart from the bulk queries.
    pub refunds: refunds::RefundFetch,
    pub inbox_files: usize,
    pub landed: LandReport,
    pub watermarks: BTreeMap<String, String>,
}

/// `NAME.myshopify.com` → `https://NAME.myshopify.com`.
pub fn shop_url(domain: &str) -> Result<String> {
    let domain = domain.trim().trim_start_matches("https://").trim_end_matches('/');
    let valid = domain.strip_suffix(".myshopify.com").is_some_and(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    if !valid {
        bail!("{domain:?} is not a shop domain like NAME.myshopify.com (use --api-url for a proxy)");
    }
    Ok(format!("https://{domain}"))
}

/// Fetches, lands one snapshot, then advances the watermarks.
pub fn fetch(root: &DataRoot, shop: &str, options: &FetchOptions) -> Result<FetchReport> {
    let started = chrono::Utc::now();
    let state = ShopState::load(root, shop)?;
    let mut since = BTreeMap::new();
    for entity in RawEntity::FETCHED {
        let mark = match options.mode {
            Mode::Historical => None,
            Mode::Incremental => match state.watermarks.get(entity.name()) {
                Some(w) => Some(w.clone()),
                None => bail!("no watermark for {entity} in shop {shop:?}: run `shopfeat fetch --mode historical` first"),
            },
        };
        since.insert(entity, mark);
    }
    let downloads = tempfile::tempdir().context("cannot create a temporary directory for the downloads")?;
    let admin = client::Admin::new(&options.api_url, &options.api_version, options.token.clone(), options.retry.clone(), options.timeout)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (finished, refunds) = runtime.block_on(fetch_all(&admin, &since, downloads.path(), options))?;
    if options.mode == Mode::Historical && !options.allow_mass_delete {
        refuse_empty_replacements(root, shop, &finished)?;
    }

    let mut files: Vec<InputFile> = finished.iter().map(|f| InputFile { kind: InputKind::Lines, path: f.file.clone() }).collect();
    files.push(InputFile { kind: InputKind::Lines, path: downloads.path().join(REFUNDS_FILE) });
    let inbox_dir = options.inbox.as_ref().map(Inbox::new);
    let inbox = match &inbox_dir {
        Some(dir) => dir.pending(options.inbox_settle)?,
        None => vec![],
    };
    files.extend(inbox.iter().cloned());
    let total = files.iter().filter_map(|f| std::fs::metadata(&f.path).ok()).map(|m| m.len()).sum();
    let progress = crate::progress::Progress::new(total, "land", true);
    let full_since = (options.mode == Mode::Historical).then_some(started);
    let landed = land::land_snapshot(root, shop, &files, &progress, full_since)?;
    progress.finish();

    // The snapshot is committed: only now may the watermarks move.
    let mut state = ShopState::load(root, shop)?;
    for f in &finished {
        let mark = (f.created_at - chrono::Duration::from_std(options.overlap)?).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let keep_later = options.mode == Mode::Incremental && state.watermarks.get(f.entity.name()).is_some_and(|old| *old > mark);
        if !keep_later {
            state.watermarks.insert(f.entity.name().to_string(), mark);
        }
    }
    state.save(root, shop)?;
    if let Some(dir) = &inbox_dir {
        dir.file_away(&inbox, &landed)?;
    }
    Ok(FetchReport {
        api_version: options.api_version.clone(),
        objects: finished.iter().map(|f| (f.entity.name(), f.objects)).collect(),
        refunds,
        inbox_files: inbox.len(),
        landed,
        watermarks: state.watermarks,
    })
}

/// A historical fetch replaces what was landed before: an entity that comes back
/// empty where the shop had records would delete all of them (and then Gorse's
/// items or users). That is refused unless asked for (`--allow-mass-delete`).
fn refuse_empty_replacements(root: &DataRoot, shop: &str, finished: &[bulk::Finished]) -> Result<()> {
    let snapshots = land::snapshots(root, shop)?;
    // From the snapshot holding the latest full one (a compacted snapshot may
    // hold it among others: its rows all count here, a bound is enough).
    let counting = &snapshots[snapshots.iter().rposition(|m| m.full_mark().is_some()).unwrap_or(0)..];
    for f in finished.iter().filter(|f| f.objects == 0) {
        let before: u64 = counting.iter().filter_map(|m| m.rows.get(f.entity.name())).sum();
        if before > 0 {
            bail!(
                "Shopify returned no {} (bulk operation {}) but {before} were landed before: refusing to replace them with nothing; \
                 if the shop really has none now, fetch again with --allow-mass-delete",
                f.entity, f.id
            );
        }
    }
    Ok(())
}

/// The file the refund lines of a fetch are saved to, beside the bulk results.
const REFUNDS_FILE: &str = "refunds.jsonl";

/// Every entity's bulk query (side by side where the API version allows it,
/// else one after another), then the refund lines of the refunded orders.
async fn fetch_all(admin: &client::Admin, since: &BTreeMap<RawEntity, Option<String>>, dir: &Path, options: &FetchOptions) -> Result<(Vec<bulk::Finished>, refunds::RefundFetch)> {
    let one = |entity: RawEntity| fetch_entity(admin, entity, since[&entity].as_deref(), dir, &options.polling);
    let finished: Vec<bulk::Finished> = if options.api_version.as_str() >= queries::CONCURRENT_BULK_SINCE {
        futures::future::try_join_all(RawEntity::FETCHED.map(one)).await?
    } else {
        let mut done = vec![];
        for entity in RawEntity::FETCHED {
            done.push(one(entity).await?);
        }
        done
    };
    let orders = finished.iter().find(|f| f.entity == RawEntity::Orders).context("the orders were not fetched")?;
    let refunded = refunds::refunded_orders(&orders.file)?;
    if !refunded.is_empty() {
        tracing::info!("fetching the refund lines of {} refunded orders", refunded.len());
    }
    let refunds = refunds::fetch_refund_lines(admin, &refunded, &dir.join(REFUNDS_FILE)).await?;
    Ok((finished, refunds))
}

/// One entity's bulk query. Customers are asked for with their default address
/// (country, province: protected customer data); when Shopify denies it to the
/// app, they are fetched again without it, with one warning, and those columns
/// stay null.
async fn fetch_entity(admin: &client::Admin, entity: RawEntity, since: Option<&str>, dir: &Path, polling: &bulk::Polling) -> Result<bulk::Finished> {
    let query = |fields| queries::bulk_query(entity, since, fields).context("not a root entity of the Admin API");
    match bulk::run(admin, entity, &query(queries::Fields::All)?, dir, polling).await {
        Err(e) if entity == RawEntity::Customers && matches!(e.downcast_ref(), Some(bulk::BulkError::AccessDenied { .. })) => {
            tracing::warn!(
                "Shopify denied this app the customers' default address (protected customer data): customers are fetched without it, \
                 so country_code, province_code and geographic_region stay null. Request protected customer data access (address) \
                 in the Partner Dashboard to fill them."
            );
            bulk::run(admin, entity, &query(queries::Fields::Unprotected)?, dir, polling).await
        }
        other => other,
    }
}

/// Since this Admin API version a webhook subscription names its endpoint `uri`
/// (before: `callbackUrl`, now deprecated).
pub const WEBHOOK_URI_SINCE: &str = "2025-10";

const SUBSCRIBE: &str = "mutation Subscribe($topic: WebhookSubscriptionTopic!, $subscription: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $subscription) {
    webhookSubscription { id }
    userErrors { field message }
  }
}";

/// Subscribes the app, on this shop, to `bulk_operations/finish` deliveries at
/// `endpoint` (`serve`'s `…/webhooks/shopify`), so a fetch learns that its bulk
/// operations finished without waiting for its next poll. A subscription that
/// already exists is fine.
pub async fn subscribe_bulk_finish(options: &FetchOptions, endpoint: &str) -> Result<()> {
    let admin = client::Admin::new(&options.api_url, &options.api_version, options.token.clone(), options.retry.clone(), options.timeout)?;
    let address = if options.api_version.as_str() >= WEBHOOK_URI_SINCE { "uri" } else { "callbackUrl" };
    let variables = serde_json::json!({ "topic": "BULK_OPERATIONS_FINISH", "subscription": { address: endpoint, "format": "JSON" } });
    let data = admin.graphql(SUBSCRIBE, variables).await.context("subscribing to bulk_operations/finish")?;
    let errors = data["webhookSubscriptionCreate"]["userErrors"].as_array().cloned().unwrap_or_default();
    let messages: Vec<&str> = errors.iter().filter_map(|e| e["message"].as_str()).collect();
    if messages.is_empty() || messages.iter().all(|m| m.contains("already been taken")) {
        return Ok(());
    }
    bail!("Shopify refused the bulk_operations/finish subscription: {}", messages.join("; "))
}
