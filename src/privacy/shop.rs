//! `shop/redact` (48 hours after the app is uninstalled): everything of the
//! shop goes — its Gorse items, users and feedback (the keys the export
//! checkpoint lists: deleting a user or an item deletes its feedback in
//! Gorse), its whole prefix under the root (raw snapshots, generations,
//! databases, state, history, lock) and its inbox. What stays is a tombstone
//! without data, `_privacy/shops/<shop>.json`, so the fleet and `status` show
//! the shop as gone rather than failing.

use crate::sinks::gorse::checkpoint::{rows_file, Delivered};
use crate::sinks::gorse::client::Client;
use crate::sinks::gorse::mapping::Kind;
use crate::storage::DataRoot;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// What is left of a forgotten shop.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tombstone {
    pub shop: String,
    pub request_id: String,
    pub received_at: String,
    pub done_at: String,
    pub gorse_deleted: usize,
}

pub fn tombstone_path(shop: &str) -> String {
    format!("_privacy/shops/{shop}.json")
}

/// The tombstone of `shop`, when it was forgotten.
pub fn tombstone(root: &DataRoot, shop: &str) -> Result<Option<Tombstone>> {
    match root.get(&tombstone_path(shop))? {
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes).with_context(|| format!("{}: not a tombstone", tombstone_path(shop)))?)),
        None => Ok(None),
    }
}

/// Forgets `shop` (its lock held). `shares_gorse`: another shop exports to the
/// same Gorse; then an empty prefix is refused (the ids could be either's).
pub fn redact_shop(root: &DataRoot, shop: &str, request_id: &str, received_at: &str, inbox: Option<&std::path::Path>, gorse: Option<&crate::sinks::gorse::Options>, shares_gorse: bool) -> Result<Tombstone> {
    let mut deleted = 0;
    if root.get(&rows_file(shop))?.is_some() {
        let Some(gorse) = gorse else {
            bail!("shop {shop} was exported to Gorse, and no Gorse is configured here (GORSE_URL or [gorse] url): its items and users would stay there");
        };
        if gorse.prefix.is_empty() && shares_gorse {
            bail!("shop {shop} shares its Gorse with other shops without a [gorse] prefix, so its items and users cannot be told from theirs: delete them by hand, or give each shop a prefix");
        }
        deleted = delete_from_gorse(root, shop, gorse)?;
    }
    root.delete_dir(shop)?;
    if let Some(inbox) = inbox.filter(|d| d.exists()) {
        std::fs::remove_dir_all(inbox).with_context(|| format!("cannot remove {}", inbox.display()))?;
    }
    let tombstone = Tombstone { shop: shop.to_string(), request_id: request_id.to_string(), received_at: received_at.to_string(), done_at: crate::time::now_rfc3339(), gorse_deleted: deleted };
    root.put(&tombstone_path(shop), &serde_json::to_vec_pretty(&tombstone)?)?;
    tracing::info!("shop {shop} forgotten: its root, inbox and {deleted} Gorse objects removed");
    Ok(tombstone)
}

/// Deletes every user and item the checkpoint lists (`in_flight` requests at
/// once, each retried as an export's are); how many.
fn delete_from_gorse(root: &DataRoot, shop: &str, gorse: &crate::sinks::gorse::Options) -> Result<usize> {
    use futures::StreamExt;
    let delivered = Delivered::load(root, &rows_file(shop))?;
    let client = Client::new(&gorse.url, gorse.key.clone(), gorse.timeout, gorse.retry.clone())?;
    let paths: Vec<(Kind, String)> = [Kind::User, Kind::Item].into_iter().flat_map(|kind| delivered.ids(kind).into_iter().map(move |key| (kind, key))).collect();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let sent: Vec<Result<()>> = runtime.block_on(
        futures::stream::iter(&paths)
            .map(|(kind, key)| {
                let client = &client;
                async move { client.send("DELETE", &kind.delete_path(key), None).await.map(|_| ()).with_context(|| format!("deleting {} {key} from Gorse", kind.name())) }
            })
            .buffer_unordered(gorse.in_flight.max(1))
            .collect(),
    );
    sent.into_iter().collect::<Result<Vec<()>>>()?;
    Ok(paths.len())
}
