//! One run per shop at a time: `<root>/<shop>/lock`.
//!
//! On a local root the lock is an OS file lock (`flock`) on that file: the kernel
//! releases it when the holder exits, however it dies, so a lock is never stale;
//! the file says who holds it. On an object store (several machines sharing a
//! bucket) it is an object written only if absent, with a lease that the holder
//! renews while it runs; a lock whose lease expired (its holder died), or whose
//! holder ran on this machine (same boot, same pid namespace) and is gone, is
//! taken over with a write conditional on the version read, so of two takers one
//! wins.
//!
//! An object-store lock is also a fence: a holder frozen longer than its lease
//! (a pause, a partition) may find its lock taken over when it wakes. Before it
//! writes what readers and later runs trust (`CURRENT`, the state file), a run
//! calls [`ensure_held`], which fails once the renewer saw a takeover or the lease
//! ran out without a renewal; `CURRENT` itself is written conditionally on the
//! version the run read (see [`crate::sinks::generation`]).

use crate::storage::DataRoot;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::io::{Read, Seek, Write};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an object-store lock holds without renewal (SHOPFEAT_LOCK_LEASE_MS
/// changes it: shorter hands a dead holder's shops over sooner, at the price of
/// more renewals).
pub const LEASE: Duration = Duration::from_secs(600);

/// The lease in force: [`LEASE`] unless SHOPFEAT_LOCK_LEASE_MS says otherwise.
pub fn lease() -> Duration {
    std::env::var("SHOPFEAT_LOCK_LEASE_MS").ok().and_then(|v| v.parse().ok()).filter(|&ms: &u64| ms > 0).map(Duration::from_millis).unwrap_or(LEASE)
}

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
    /// The machine's boot id and the pid namespace of the holder: a pid means
    /// something only within both (containers in one pod share a host name, not
    /// their pids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot: Option<String>,
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
            boot: boot_and_namespace(),
        }
    }

    fn expired(&self) -> bool {
        self.lease_until.as_deref().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()).is_none_or(|t| t < chrono::Utc::now())
    }

    /// The holder ran in this process's pid namespace since the machine's last
    /// boot, and its process is gone (killed before it could release the lock): no
    /// need to wait out its lease. A host name alone proves nothing (another
    /// container of the same pod, another boot), so without the boot and
    /// namespace id only the lease counts.
    fn dead_here(&self) -> bool {
        let Some((host, pid)) = self.holder.rsplit_once('/') else { return false };
        let same_namespace = self.boot.is_some() && self.boot == boot_and_namespace();
        same_namespace && host == hostname() && pid.parse::<u32>().is_ok_and(|pid| pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists())
    }
}

/// `<boot id>/<pid namespace>`, when the kernel says both.
fn boot_and_namespace() -> Option<String> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let namespace = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(format!("{}/{}", boot.trim(), namespace.display()))
}

/// What a run knows of its object-store lock: whether it still holds it.
struct Fence {
    /// The renewer found the lock taken over.
    lost: AtomicBool,
    /// Until when the lease surely holds, by this machine's monotonic clock (a
    /// margin short of what the lock says, for clock drift between machines).
    valid_until: Mutex<Instant>,
}

impl Fence {
    fn extend(&self, written_at: Instant, lease: Duration) {
        *self.valid_until.lock().expect("fence") = written_at + lease - lease / 10;
    }
}

/// The fences of the object-store locks this process holds, by root and shop.
fn fences() -> &'static Mutex<HashMap<String, Arc<Fence>>> {
    static FENCES: std::sync::OnceLock<Mutex<HashMap<String, Arc<Fence>>>> = std::sync::OnceLock::new();
    FENCES.get_or_init(Default::default)
}

fn fence_key(root: &str, shop: &str) -> String {
    format!("{root}\u{0}{shop}")
}

/// This run no longer holds its shop's lock: another process took it over.
#[derive(Debug, thiserror::Error)]
#[error("shop {shop}: this run no longer holds the shop's lock ({why}); it writes nothing more, and another run carries on")]
pub struct LockLost {
    pub shop: String,
    pub why: String,
}

/// Fails when this process held `shop`'s object-store lock and may have lost it:
/// the renewer saw a takeover, or the lease ran out without a renewal (a frozen
/// process). Called before every write that readers or later runs trust. A local
/// root's `flock` cannot be taken over, and a process that holds no lock (a
/// library caller) has nothing to check.
pub fn ensure_held(root: &DataRoot, shop: &str) -> Result<()> {
    let Some(fence) = fences().lock().expect("fences").get(&fence_key(&root.describe(), shop)).cloned() else { return Ok(()) };
    let why = if fence.lost.load(Ordering::SeqCst) {
        "it was taken over by another process"
    } else if Instant::now() > *fence.valid_until.lock().expect("fence") {
        "its lease ran out without a renewal"
    } else {
        return Ok(());
    };
    Err(LockLost { shop: shop.to_string(), why: why.to_string() }.into())
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
    Remote { root: DataRoot, rel: String, token: String, stop: Arc<AtomicBool>, renewer: Option<std::thread::JoinHandle<()>>, fence_key: String },
}

fn lock_path(shop: &str) -> String {
    format!("{shop}/lock")
}

impl ShopLock {
    /// Takes the lock of `shop`, or fails at once with who holds it
    /// (`shop S is locked by host/pid since T`). A lock left by a dead holder is
    /// taken over, and said so in the log.
    pub fn acquire(root: &DataRoot, shop: &str) -> Result<ShopLock> {
        ShopLock::acquire_with_lease(root, shop, lease())
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
    let written_at = Instant::now();
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
    let fence = Arc::new(Fence { lost: AtomicBool::new(false), valid_until: Mutex::new(written_at) });
    fence.extend(written_at, lease);
    let fence_key = fence_key(&root.describe(), shop);
    fences().lock().expect("fences").insert(fence_key.clone(), fence.clone());
    let renewer = renew(root.describe(), rel.clone(), holder, version.expect("a version after a successful write"), lease, stop.clone(), fence);
    Ok(ShopLock { held: Held::Remote { root: DataRoot::open(&root.describe())?, rel, token, stop, renewer: Some(renewer), fence_key } })
}

/// Renews the lease every third of it, each write conditional on the last one,
/// until `stop`; each renewal extends the fence, a failed one (the lock was
/// taken over) marks it lost.
fn renew(url: String, rel: String, mut holder: Holder, mut version: object_store::UpdateVersion, lease: Duration, stop: Arc<AtomicBool>, fence: Arc<Fence>) -> std::thread::JoinHandle<()> {
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
            if fence.lost.load(Ordering::SeqCst) {
                return;
            }
            let written_at = Instant::now();
            holder.lease_until = Some((chrono::Utc::now() + chrono::Duration::from_std(lease).unwrap_or_default()).to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            match serde_json::to_vec(&holder).map_err(anyhow::Error::from).and_then(|bytes| root.put_if(&rel, &bytes, Some(&version))) {
                // A renewal conditional on the last version proves nobody took
                // the lock over meanwhile, even after a freeze past the lease.
                Ok(Some(next)) => {
                    version = next;
                    fence.extend(written_at, lease);
                }
                Ok(None) => {
                    tracing::error!("the lock {rel} was taken over by another process: this run no longer holds it");
                    fence.lost.store(true, Ordering::SeqCst);
                    return;
                }
                Err(e) => tracing::warn!("cannot renew the lock {rel}: {e:#}"),
            }
        }
    })
}

impl Drop for ShopLock {
    fn drop(&mut self) {
        if let Held::Remote { root, rel, token, stop, renewer, fence_key } = &mut self.held {
            fences().lock().expect("fences").remove(fence_key.as_str());
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
