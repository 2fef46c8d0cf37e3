use super::Outcome;
use crate::cli::{Global, PairArgs};
use crate::config::{self, Config, ShopEntry};
use crate::land::inbox::Inbox;
use crate::pipeline::Source;
use crate::serve::{self, ServeOptions, ShopSpec};
use crate::shopify::Mode;
use crate::storage::DataRoot;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::time::Duration;

/// Receives Shopify webhooks and web-pixel events and keeps features and Gorse
/// fresh within seconds.
///
/// Routes: `POST /webhooks/shopify` (Shopify's deliveries, verified with the app's
/// API secret from SHOPIFY_API_SECRET or `[shopify] api_secret`),
/// `POST /pixel/<shop>` (web-pixel batches: a JSON array or NDJSON, with the
/// shop's ingest token), `GET /healthz`, `GET /metrics` (Prometheus).
///
/// Every accepted delivery is on disk in the shop's inbox before it is
/// acknowledged. After a shop's deliveries pause (`--debounce-ms`), an
/// incremental cycle lands its inbox, computes, publishes and exports what
/// changed to Gorse; a shop's `schedule` (cron, UTC) runs full cycles (a
/// historical fetch, or its configured inputs). Catalog, order and
/// refund deliveries (`products/*`, `orders/*`, `refunds/create`) skip the wait:
/// a fast cycle recomputes the rows they touch (the products' own columns; the
/// customer's user and interaction rows) and sends them to Gorse at once, and a
/// full recompute follows `--fast-catch-up-minutes` later.
///
/// Everything it takes is bounded (`[serve]` in the config file: max_event_bytes,
/// max_pixel_events, pixel_requests_per_sec, pixel_quota_files/_bytes,
/// webhook_quota_files/_bytes, max_in_flight, request_timeout_secs,
/// max_connections, header_timeout_secs): past a limit it answers 413, 429 or
/// 503 (with Retry-After) or 408, or closes the connection, and `/metrics`
/// counts refusals by reason. The API secret and pixel tokens must have at
/// least 16 bytes; a weak one is refused at start.
///
/// Shops: every `[[shops]]` of the config file, or the one shop `--shop` with
/// `--shop-domain` (its pixel token from SHOPFEAT_PIXEL_TOKEN or `[serve]
/// pixel_token`). SIGTERM stops accepting, finishes in-flight writes and lets
/// running cycles end (up to `--shutdown-grace-secs`).
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on [default: `[serve] listen`, else 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Single-shop mode: the shop `--shop` is, NAME.myshopify.com (else
    /// `[shopify] shop_domain`).
    #[arg(long, value_name = "DOMAIN")]
    pub shop_domain: Option<String>,
    /// Where the shops' inboxes live: DIR/<shop>/ [default: <root>/<shop>/inbox
    /// on a local root; required with an object-store root, since an inbox is a
    /// local, fsynced folder]. `status --inboxes DIR` reads the same.
    #[arg(long, value_name = "DIR")]
    pub inboxes: Option<PathBuf>,
    /// Quiet time after a shop's last delivery before its cycle starts
    /// [default: `[serve] debounce_ms`, else 500].
    #[arg(long, value_name = "MS")]
    pub debounce_ms: Option<u64>,
    /// A cycle starts at most this long after the first delivery waiting for it,
    /// however busy the shop.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub max_delay_secs: u64,
    /// Minutes from the first fast cycle (a catalog, order or refund delivery
    /// sent to Gorse at once) to the full recompute that follows it; 0 turns the fast lane off
    /// [default: `[serve] fast_catch_up_minutes`, else 15].
    #[arg(long, value_name = "MINUTES")]
    pub fast_catch_up_minutes: Option<u64>,
    /// Shops whose cycles may run at once [default: `[serve] jobs`, else 2].
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub jobs: Option<usize>,
    /// The largest request body accepted, in bytes; larger ones get 413
    /// [default: `[serve] max_body_bytes`, else 5 MiB].
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// T of every cycle (RFC 3339 or YYYY-MM-DD); default: when the cycle starts.
    #[arg(long, value_parser = crate::time::parse_time)]
    pub as_of: Option<i64>,
    /// Where Shopify reaches this server (https://…, the app's public address):
    /// shops fetched from Shopify are subscribed to `bulk_operations/finish`
    /// deliveries at <URL>/webhooks/shopify, so fetches stop polling as soon as
    /// an operation finishes.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,
    /// How long SIGTERM waits for running cycles.
    #[arg(long, default_value_t = 20, value_name = "SECS")]
    pub shutdown_grace_secs: u64,
    /// Normalize every cycle from the raw store alone. By default each shop's
    /// events and order tables stay in memory between its cycles (about 1.4 GB
    /// for a shop of 11M events and 1M orders): a cycle that landed no event
    /// or order (a catalog or customer delivery) does not read them again, and
    /// one that landed pixel events adds only those.
    #[arg(long)]
    pub no_keep_normalized: bool,
    #[command(flatten)]
    pub pairs: PairArgs,
}

pub fn run(global: &Global, args: ServeArgs) -> Result<Outcome> {
    let config = Config::load(global.config.as_deref())?;
    let Some(secret) = config::guard_secret("SHOPIFY_API_SECRET", config.shopify.api_secret.as_ref(), "[shopify] api_secret")? else {
        bail!("no webhook secret: set SHOPIFY_API_SECRET (the app's API secret key) or [shopify] api_secret in the config file");
    };
    let root = DataRoot::open(&global.root)?;
    let inbox_of = |shop: &str| -> Result<Inbox> {
        match (&args.inboxes, root.local_dir()) {
            (Some(dir), _) => Ok(Inbox::new(dir.join(shop))),
            (None, Some(dir)) => Ok(Inbox::new(dir.join(shop).join("inbox"))),
            (None, None) => bail!("the root {} is an object store: give --inboxes DIR, a local folder for the shops' inboxes", root.describe()),
        }
    };
    let shops = if config.shops.is_empty() || args.shop_domain.is_some() {
        vec![single_shop(global, &args, &config, inbox_of(&global.shop)?)?]
    } else {
        config.shops.iter().map(|entry| fleet_shop(entry, &config, inbox_of(&entry.id)?)).collect::<Result<Vec<_>>>()?
    };
    let mut options = ServeOptions::new(args.listen.as_deref().or(config.serve.listen.as_deref()).unwrap_or("127.0.0.1:8080"), &root.describe(), shops, secret);
    options.debounce = args.debounce_ms.or(config.serve.debounce_ms).map(Duration::from_millis).unwrap_or(options.debounce);
    options.max_delay = Duration::from_secs(args.max_delay_secs).max(options.debounce);
    options.fast_catch_up = match args.fast_catch_up_minutes.or(config.serve.fast_catch_up_minutes) {
        Some(0) => None,
        Some(minutes) => Some(Duration::from_secs(minutes * 60)),
        None => options.fast_catch_up,
    };
    options.jobs = args.jobs.or(config.serve.jobs).unwrap_or(options.jobs);
    options.max_body = args.max_body_bytes.or(config.serve.max_body_bytes).unwrap_or(options.max_body);
    limits(&mut options, &config.serve);
    options.as_of = args.as_of;
    options.shutdown_grace = Duration::from_secs(args.shutdown_grace_secs);
    options.public_url = args.public_url.clone();
    options.compaction = config.compaction();
    options.keep_normalized = !args.no_keep_normalized;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let served = runtime.block_on(serve::serve(options, None, serve::termination()));
    // A cycle still running after the grace period is not waited for (dropping
    // the runtime would): its outputs are all or nothing, and its inbox files
    // stay until a cycle lands them.
    runtime.shutdown_timeout(Duration::from_millis(200));
    served?;
    Ok(Outcome::Success)
}

/// The intake's limits from `[serve]`, where it sets them.
fn limits(options: &mut ServeOptions, c: &config::ServeConfig) {
    let o = options;
    o.max_event_bytes = c.max_event_bytes.unwrap_or(o.max_event_bytes);
    o.max_pixel_events = c.max_pixel_events.unwrap_or(o.max_pixel_events);
    o.webhook_quota.files = c.webhook_quota_files.unwrap_or(o.webhook_quota.files);
    o.webhook_quota.bytes = c.webhook_quota_bytes.unwrap_or(o.webhook_quota.bytes);
    o.pixel_quota.files = c.pixel_quota_files.unwrap_or(o.pixel_quota.files);
    o.pixel_quota.bytes = c.pixel_quota_bytes.unwrap_or(o.pixel_quota.bytes);
    o.max_in_flight = c.max_in_flight.unwrap_or(o.max_in_flight);
    o.request_timeout = c.request_timeout_secs.map(Duration::from_secs).unwrap_or(o.request_timeout);
    o.pixel_requests_per_sec = c.pixel_requests_per_sec.unwrap_or(o.pixel_requests_per_sec);
    o.max_connections = c.max_connections.unwrap_or(o.max_connections);
    o.header_timeout = c.header_timeout_secs.map(Duration::from_secs).unwrap_or(o.header_timeout);
}

/// The one shop of `--shop` (single-shop mode).
fn single_shop(global: &Global, args: &ServeArgs, config: &Config, inbox: Inbox) -> Result<ShopSpec> {
    let domain = args.shop_domain.clone().or(config.shopify.shop_domain.clone());
    if let Some(d) = &domain {
        crate::shopify::shop_url(d)?;
    }
    let gorse = config.gorse_url().map(|url| crate::sinks::gorse::Options::from_config(&url, config));
    let full_source = match (&domain, config::secret("SHOPIFY_ACCESS_TOKEN", config.shopify.access_token.as_ref())) {
        (Some(d), Some(token)) => Some(Source::Shopify(crate::shopify::FetchOptions::new(&crate::shopify::shop_url(d)?, token, Mode::Historical))),
        _ => None,
    };
    let spec = ShopSpec {
        id: global.shop.clone(),
        full_source: full_source.map(|s| with_inbox(s, &inbox)),
        inbox,
        gorse,
        pairs: args.pairs.options(),
        schedule: config.serve.schedule.as_deref().map(|s| schedule(&global.shop, s)).transpose()?,
        pixel_token: config::guard_secret("SHOPFEAT_PIXEL_TOKEN", config.serve.pixel_token.as_ref(), "[serve] pixel_token")?,
        origins: origins(&config.serve.storefront_origins, domain.as_deref()),
        domain,
    };
    check(&spec);
    Ok(spec)
}

/// One `[[shops]]` entry.
fn fleet_shop(entry: &ShopEntry, config: &Config, inbox: Inbox) -> Result<ShopSpec> {
    let shop = crate::fleet::resolve(entry, config, Mode::Historical)?;
    let spec = ShopSpec {
        id: shop.id.clone(),
        domain: shop.domain.clone(),
        full_source: shop.source.map(|s| with_inbox(s, &inbox)),
        inbox,
        gorse: shop.gorse,
        pairs: shop.pairs,
        schedule: entry.schedule.as_deref().map(|s| schedule(&entry.id, s)).transpose()?,
        pixel_token: match entry.pixel_token_env.as_deref() {
            Some(var) => config::guard_secret(var, None, "").with_context(|| format!("shop {}", entry.id))?,
            None => None,
        },
        origins: origins(&entry.storefront_origins, shop.domain.as_deref()),
    };
    check(&spec);
    Ok(spec)
}

/// The storefront origins allowed to post pixel events: those configured, else
/// the shop's own `https://<domain>`.
fn origins(configured: &[String], domain: Option<&str>) -> Vec<String> {
    if configured.is_empty() {
        domain.iter().map(|d| format!("https://{d}")).collect()
    } else {
        configured.to_vec()
    }
}

/// A full fetch also lands what waits in the inbox (written whole by `serve`,
/// so nothing needs to settle).
fn with_inbox(source: Source, inbox: &Inbox) -> Source {
    match source {
        Source::Shopify(mut options) => {
            options.inbox = Some(inbox.dir().to_path_buf());
            options.inbox_settle = Duration::ZERO;
            Source::Shopify(options)
        }
        other => other,
    }
}

/// A cron expression: five fields (minute hour day month weekday), or six with
/// seconds first.
pub fn schedule(shop: &str, expression: &str) -> Result<croner::Cron> {
    croner::Cron::new(expression).with_seconds_optional().parse().with_context(|| format!("shop {shop}: {expression:?} is not a cron schedule (minute hour day month weekday, optionally seconds first)"))
}

/// Says at start what this shop will not do.
fn check(spec: &ShopSpec) {
    if spec.domain.is_none() {
        tracing::warn!("shop {}: no shop domain, so no webhook delivery can name it (give --shop-domain or shop_domain)", spec.id);
    }
    if spec.pixel_token.is_none() {
        tracing::info!("shop {}: no pixel ingest token configured: POST /pixel/{} answers 401", spec.id, spec.id);
    }
    if spec.schedule.is_some() && spec.full_source.is_none() {
        tracing::warn!("shop {}: a schedule but no full source (a Shopify shop with a token, or inputs): scheduled cycles do nothing", spec.id);
    }
}
