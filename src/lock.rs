//! One run per shop at a time: `<root>/<shop>/lock`.
//!
//! On a local root the lock is an OS file lock (`flock`) on that file: the kernel
//! releases it when the holder exits, however it dies, so a lock is never stale;
//! the file says who holds it. On an object store (several machines sharing a
//! bucket) it is an object written only if absent, with a lease that the holder
//! renews while it runs; a lock whose lease expired (its holder died), or whose
//! holder ran on this machine and is gone, is taken over with a write
//! conditional on the version read, so of two takers one wins.

use crate::storage::DataRoot;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long an object-store lock holds without renewal.
pub const LEASE: Duration = Duration::from_secs(600);

/// Who holds a lock, as written in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Holder {
    /// `host/pid`.
    pub holder: String,
    pub since: String,
    /// Object stores: the lock is free after this unless renewed.
    #[serde(default)]
    pub lease_until: Option<String>,
    /// Tells this holder's lock from another's.
    pub token: String,
}

impl Holder {
    fn new(lease: Option<Duration>) -> Holder {
        let host = hostname();
        let now = chrono::Utc::now();
        Holder {
            holder: format!("{host}/{}", std::process::id()),
            since: crate::time::now_rfc3339(),
            lease_until: lease.map(|l| (now + chrono::Duration::from_std(l).unwrap_or_default()).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            token: format!("{:016x}", crate::hash::fnv1a(format!("{host}{}{}", std::process::id(), now.timestamp_nanos_opt().unwrap_or(0)).as_bytes())),
        }
    }

    fn expired(&self) -> bool {
        self.lease_until.as_deref().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).is_none_or(|t| t < chrono::Utc::now())
    }

    /// The holder ran on this machine and its process is gone (killed before it
    /// could release the lock): no need to wait out its lease.
    fn dead_here(&self) -> bool {
        let Some((host, pid)) = self.holder.rsplit_once('/') else { return false };
        host == hostname() && pid.parse::<u32>().is_ok_and(|pid| pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists())
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "localhost".into())
}

/// A held lock; released when dropped.
pub struct ShopLock {
    held: Held,
}

enum Held {
    /// Held for its `flock`, released with it.
    Local { _file: std::fs::File },
    Remote { root: DataRoot, rel: String, token: String, stop: Arc<AtomicBool>, renewer: Option<std::thread::JoinHandle<()>> },
}

fn lock_path(shop: &str) -> String {
    format!("{shop}/lock")
}

impl ShopLock {
    /// Takes the lock of `shop`, or fails at once with who holds it
    /// (`shop S is locked by host/pid since T`). A lock left by a dead holder is
    /// taken over, and said so in the log.
    pub fn acquire(root: &DataRoot, shop: &str) -> Result<ShopLock> {
        ShopLock::acquire_with_lease(root, shop, LEASE)
    }

    /// [`ShopLock::acquire`] with another lease (object stores).
    pub fn acquire_with_lease(root: &DataRoot, shop: &str, lease: Duration) -> Result<ShopLock> {
        let lock = match root.local_dir() {
            Some(dir) => acquire_local(&dir.join(lock_path(shop)), shop)?,
            None => acquire_remote(root, shop, lease)?,
        };
        // Held: whatever a killed writer left half-staged is litter now.
        let removed = root.remove_staging_litter(shop)?;
        if removed > 0 {
            tracing::info!("removed {removed} staging files left by an interrupted run of shop {shop}");
        }
        Ok(lock)
    }
}

/// Another process holds the shop's lock (callers tell it from a failure with
/// `downcast_ref::<Locked>()`: the shop is busy, not broken).
#[derive(Debug, thiserror::Error)]
#[error("shop {shop} is locked by {holder}")]
pub struct Locked {
    pub shop: String,
    /// `host/pid since T`, or who else could be said.
    pub holder: String,
}

fn locked(shop: &str, holder: &Holder) -> anyhow::Error {
    Locked { shop: shop.to_string(), holder: format!("{} since {}", holder.holder, holder.since) }.into()
}

fn acquire_local(path: &std::path::Path, shop: &str) -> Result<ShopLock> {
    std::fs::create_dir_all(path.parent().context("lock path has no parent")?)?;
    let mut file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut previous = String::new();
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            file.read_to_string(&mut previous)?;
            return Err(match serde_json::from_str::<Holder>(&previous) {
                Ok(holder) => locked(shop, &holder),
                Err(_) => Locked { shop: shop.to_string(), holder: "another process".into() }.into(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(e).with_context(|| format!("cannot lock {}", path.display())),
    }
    file.read_to_string(&mut previous)?;
    if let Ok(gone) = serde_json::from_str::<Holder>(&previous) {
        tracing::warn!("taking over the lock of shop {shop} left by {} since {} (that process is gone)", gone.holder, gone.since);
    }
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(&serde_json::to_vec(&Holder::new(None))?)?;
    file.flush()?;
    Ok(ShopLock { held: Held::Local { _file: file } })
}

fn acquire_remote(root: &DataRoot, shop: &str, lease: Duration) -> Result<ShopLock> {
    let rel = lock_path(shop);
    let holder = Holder::new(Some(lease));
    let bytes = serde_json::to_vec(&holder)?;
    let mut version = root.put_if(&rel, &bytes, None)?;
    if version.is_none() {
        let Some((current, current_version)) = root.get_versioned(&rel)? else {
            bail!("the lock of shop {shop} vanished while it was being taken: try again");
        };
        let current: Holder = serde_json::from_slice(&current).with_context(|| format!("{}/{rel} is not a lock", root.describe()))?;
        if !current.expired() && !current.dead_here() {
            return Err(locked(shop, &current));
        }
        version = root.put_if(&rel, &bytes, Some(&current_version))?;
        if version.is_none() {
            return Err(Locked { shop: shop.to_string(), holder: "another process, which took over its expired lock first".into() }.into());
        }
        let why = if current.expired() { "its lease expired" } else { "that process is gone" };
        tracing::warn!("taking over the lock of shop {shop} left by {} since {} ({why})", current.holder, current.since);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let token = holder.token.clone();
    let renewer = renew(root.describe(), rel.clone(), holder, version.expect("a version after a successful write"), lease, stop.clone());
    Ok(ShopLock { held: Held::Remote { root: DataRoot::open(&root.describe())?, rel, token, stop, renewer: Some(renewer) } })
}

/// Renews the lease every third of it, each write conditional on the last one,
/// until `stop`; a failed renewal (the lock was taken over) is logged.
fn renew(url: String, rel: String, mut holder: Holder, mut version: object_store::UpdateVersion, lease: Duration, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let Ok(root) = DataRoot::open(&url) else { return };
        let step = Duration::from_millis(100).min(lease / 3);
        let mut since_renewal = Duration::ZERO;
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(step);
            since_renewal += step;
            if since_renewal < lease / 3 {
                continue;
            }
            since_renewal = Duration::ZERO;
            holder.lease_until = Some((chrono::Utc::now() + chrono::Duration::from_std(lease).unwrap_or_default()).to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            match serde_json::to_vec(&holder).map_err(anyhow::Error::from).and_then(|bytes| root.put_if(&rel, &bytes, Some(&version))) {
                Ok(Some(next)) => version = next,
                Ok(None) => {
                    tracing::error!("the lock {rel} was taken over by another process: this run no longer holds it");
                    return;
                }
                Err(e) => tracing::warn!("cannot renew the lock {rel}: {e:#}"),
            }
        }
    })
}

impl Drop for ShopLock {
    fn drop(&mut self) {
        if let Held::Remote { root, rel, token, stop, renewer } = &mut self.held {
            stop.store(true, Ordering::Relaxed);
            if let Some(r) = renewer.take() {
                let _ = r.join();
            }
            // Removed only while it is still ours (not taken over meanwhile).
            let ours = root.get_versioned(rel).ok().flatten().and_then(|(b, _)| serde_json::from_slice::<Holder>(&b).ok()).is_some_and(|h| h.token == *token);
            if ours {
                let _ = root.delete(rel);
            }
        }
        // A local flock goes with the file; emptied first, so the next holder knows
        // this one ended cleanly (a file still naming its holder was left by a
        // process that died).
        if let Held::Local { _file: file } = &self.held {
            let _ = file.set_len(0);
        }
    }
}
