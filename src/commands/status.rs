use super::Outcome;
use crate::cli::Global;
use crate::config::Config;
use crate::status::{self, Level, ShopStatus};
use crate::storage::DataRoot;
use anyhow::Result;
use std::io::Write;

/// Whether last night worked: per shop, the last successful and failed runs, the
/// current generation and the watermarks, then every check on one line —
/// `ok` / `warn` / `fail`, the number that decided it and the threshold (in the
/// config file's `[status]`).
///
/// Exit code: 0 when nothing failed (warnings included), 1 on a warning with
/// `--strict`, 2 when a check failed — a shop that never ran successfully fails.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Every shop of the config file's `[[shops]]` (else every shop under the
    /// root) instead of `--shop`.
    #[arg(long)]
    pub all: bool,
    /// Exit 1 on a warning.
    #[arg(long)]
    pub strict: bool,
    /// The shop's inbox (webhook and event files waiting to land), to report its
    /// backlog [default: <root>/<shop>/inbox, `serve`'s, when it exists].
    #[arg(long, value_name = "DIR", conflicts_with = "inboxes")]
    pub inbox: Option<std::path::PathBuf>,
    /// Where `serve` keeps the shops' inboxes (its `--inboxes DIR`): each shop's
    /// is DIR/<shop>.
    #[arg(long, value_name = "DIR")]
    pub inboxes: Option<std::path::PathBuf>,
    /// Print the statuses as one JSON array on stdout (the summary goes to stderr).
    #[arg(long)]
    pub json: bool,
}

pub fn run(global: &Global, args: StatusArgs) -> Result<Outcome> {
    let config = Config::load(global.config.as_deref())?;
    let root = DataRoot::open(&global.root)?;
    // The fleet is the config file's shops when it lists them (a shop that never
    // ran is then a failing check, not a missing line), else every shop folder.
    let shops = match (args.all, config.shops.is_empty()) {
        (true, false) => config.shops.iter().map(|s| s.id.clone()).collect(),
        (true, true) => status::shops(&root)?,
        (false, _) => vec![global.shop.clone()],
    };
    // Shops forgotten by `shop/redact` are gone, not failing.
    let (mut live, mut gone) = (vec![], 0);
    for shop in shops {
        match crate::privacy::shop::tombstone(&root, &shop)? {
            Some(t) => {
                eprintln!("shop {shop}: gone (shop/redact {} done {})", t.request_id, t.done_at);
                gone += 1;
            }
            None => live.push(shop),
        }
    }
    let shops = live;
    let now = chrono::Utc::now();
    let inbox_of = |shop: &str| args.inbox.clone().or_else(|| args.inboxes.as_ref().map(|d| d.join(shop)));
    let statuses = shops.iter().map(|shop| status::status(&root, shop, &config.status, now, inbox_of(shop).as_deref())).collect::<Result<Vec<_>>>()?;
    super::print_report(args.json, &statuses, |out| statuses.iter().try_for_each(|s| print_status(out, s)))?;
    let count = |level| statuses.iter().filter(|s| s.level() == level).count();
    // No shop at all fails; only gone ones do not.
    let worst = statuses.iter().map(ShopStatus::level).max().unwrap_or(if gone > 0 { Level::Ok } else { Level::Fail });
    Ok(match worst {
        Level::Fail => Outcome::Exit(2, format!("{} of {} shops have a failing check", count(Level::Fail), statuses.len())),
        Level::Warn if args.strict => Outcome::Exit(1, format!("{} of {} shops have a warning (--strict)", count(Level::Warn), statuses.len())),
        _ => Outcome::Success,
    })
}

fn print_status(out: &mut dyn Write, s: &ShopStatus) -> std::io::Result<()> {
    writeln!(out, "shop {}", s.shop)?;
    let run = |r: &Option<status::RunSummary>| r.as_ref().map(|r| format!("{} {} ({})", r.command, r.started_at, r.outcome)).unwrap_or_else(|| "none".into());
    writeln!(out, "  last success  {}", run(&s.last_success))?;
    writeln!(out, "  last failure  {}", run(&s.last_failure))?;
    if let Some(error) = s.last_failure.as_ref().and_then(|r| r.error.as_deref()) {
        writeln!(out, "                {}", one_line(error, 200))?;
    }
    writeln!(out, "  generation    {}", s.generation.as_deref().map(|g| format!("{g} published {}", s.generation_published_at.as_deref().unwrap_or("?"))).unwrap_or_else(|| "none".into()))?;
    for (entity, mark) in &s.watermarks {
        writeln!(out, "  watermark     {entity:<12} {mark}")?;
    }
    if let Some(e) = &s.last_export {
        writeln!(out, "  last export   {} to {} ({} rows acknowledged)", e.finished_at.as_deref().unwrap_or("unfinished"), e.target, e.rows_delivered)?;
    }
    if let Some((send, delete)) = s.export_pending {
        writeln!(out, "  export now    would send {send} rows, delete {delete}")?;
    }
    if let Some(n) = s.inbox_files {
        writeln!(out, "  inbox         {n} files waiting")?;
    }
    if s.privacy.pending + s.privacy.done > 0 {
        writeln!(out, "  privacy       {} requests waiting, {} overdue, {} carried out", s.privacy.pending, s.privacy.overdue, s.privacy.done)?;
    }
    for (entity, store) in &s.raw {
        writeln!(out, "  raw           {entity:<18} {:>6} snapshots {:>10} rows {:>10.1} MB", store.snapshots, store.rows, store.bytes as f64 / 1e6)?;
    }
    if let Some(fit) = &s.lifetime_model {
        writeln!(out, "  lifetime      {}", lifetime_line(fit))?;
    }
    for c in &s.checks {
        writeln!(out, "  {:<4}  {:<30} {}  ({})", c.level.name(), c.check, c.value, c.threshold)?;
    }
    Ok(())
}

/// The fitted parameters, in the papers' notation (α per day).
fn lifetime_line(fit: &crate::clv::ModelFit) -> String {
    let mut line = format!("{}: {} customers, {} repeat", fit.status.as_str(), fit.customers, fit.repeat_customers);
    if let (Some(m), Some(ll)) = (fit.bgnbd, fit.bgnbd_log_likelihood) {
        line += &format!("; BG/NBD r={:.4} α={:.4}/day a={:.4} b={:.4} (LL {ll:.1})", m.r, m.alpha, m.a, m.b);
    }
    if let (Some(m), Some(ll)) = (fit.gamma_gamma, fit.gamma_gamma_log_likelihood) {
        line += &format!("; Gamma-Gamma p={:.4} q={:.4} γ={:.4} (LL {ll:.1})", m.p, m.q, m.gamma);
    }
    line + &format!("; fitted in {:.2} s", fit.seconds)
}

/// `text` on one line, cut to `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &flat[..at]),
        None => flat,
    }
}
