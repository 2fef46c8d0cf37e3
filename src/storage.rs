//! The data root: a local directory or an object-store URL (`s3://`, `gs://`,
//! `az://`, `file://`), with atomic writes.
//!
//! Every write is staged and made visible in one step: a local file is written
//! to a temporary name in its shop's `.staging/` folder, synced and renamed into
//! place; an object-store
//! write is a single put or a completed multipart upload. A reader therefore sees a
//! file whole or not at all. Paths given to [`DataRoot`] are relative to the root,
//! with `/` separators.

use anyhow::{Context, Result};
use futures::TryStreamExt;
use object_store::{path::Path as StorePath, ObjectStore, ObjectStoreExt, WriteMultipart};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A shop id as a folder name: letters, digits, `.`, `_`, `-`; not empty, not `.`
/// or `..`. It names a directory under the root (no path may escape it) and
/// appears in DuckDB paths (no glob characters).
pub fn shop_id(s: &str) -> Result<String, String> {
    let valid = !s.is_empty() && s != "." && s != ".." && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(s.to_string())
    } else {
        Err(format!("{s:?} is not a shop id: use letters, digits, '.', '_' and '-' (not '.' or '..')"))
    }
}

pub struct DataRoot {
    location: Location,
}

enum Location {
    Local(PathBuf),
    Remote { url: String, store: Arc<dyn ObjectStore>, prefix: StorePath, runtime: tokio::runtime::Runtime, cache: PathBuf },
}

/// A file being written; invisible to readers until [`StagedFile::commit`].
pub struct StagedFile {
    file: tempfile::NamedTempFile,
    rel: String,
}

impl StagedFile {
    pub fn writer(&mut self) -> &mut std::fs::File {
        self.file.as_file_mut()
    }

    /// Where the staged bytes are, for tools that read files by path (DuckDB).
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

impl DataRoot {
    /// Opens a root given as a local path or a URL with a scheme.
    pub fn open(root: &str) -> Result<Self> {
        let location = match url::Url::parse(root) {
            Ok(url) if url.scheme() != "file" && url.scheme().len() > 1 => {
                let (store, prefix) = open_store(&url).with_context(|| format!("cannot open data root {}", crate::http::without_credentials(root)))?;
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                let cache = private_dir(&std::env::temp_dir().join(format!("shopfeat-cache-{}", user_id())))?.join(sanitize(root));
                Location::Remote { url: root.to_string(), store, prefix, runtime, cache }
            }
            Ok(url) if url.scheme() == "file" => Location::Local(
                url.to_file_path().map_err(|_| anyhow::anyhow!("bad file URL {root}"))?,
            ),
            _ => Location::Local(PathBuf::from(root)),
        };
        Ok(DataRoot { location })
    }

    pub fn describe(&self) -> String {
        match &self.location {
            Location::Local(p) => p.display().to_string(),
            Location::Remote { url, .. } => url.clone(),
        }
    }

    /// The local directory of a local root.
    pub fn local_dir(&self) -> Option<&Path> {
        match &self.location {
            Location::Local(p) => Some(p),
            Location::Remote { .. } => None,
        }
    }

    fn store_path(prefix: &StorePath, rel: &str) -> StorePath {
        let mut parts: Vec<String> = prefix.parts().map(|p| p.as_ref().to_string()).collect();
        parts.extend(rel.split('/').filter(|s| !s.is_empty()).map(str::to_string));
        StorePath::from_iter(parts)
    }

    /// Starts writing `rel`; nothing is visible until the staged file is committed.
    pub fn stage(&self, rel: &str) -> Result<StagedFile> {
        let file = match &self.location {
            Location::Local(root) => {
                let dest = root.join(rel);
                let dir = dest.parent().context("destination has no parent directory")?;
                let staging = staging_dir(root, rel);
                for d in [dir, staging.as_path()] {
                    std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
                }
                staging_builder().tempfile_in(&staging).with_context(|| format!("cannot write in {}", staging.display()))?
            }
            Location::Remote { .. } => tempfile::NamedTempFile::new()?,
        };
        Ok(StagedFile { file, rel: rel.to_string() })
    }

    /// Makes a staged file visible at its destination, whole.
    pub fn commit(&self, mut staged: StagedFile) -> Result<()> {
        staged.file.as_file_mut().flush()?;
        match &self.location {
            Location::Local(root) => {
                staged.file.as_file().sync_all()?;
                let dest = root.join(&staged.rel);
                staged.file.persist(&dest).with_context(|| format!("cannot write {}", dest.display()))?;
                if let Some(dir) = dest.parent() {
                    // The rename is durable only once its directory is synced.
                    if let Ok(d) = std::fs::File::open(dir) {
                        let _ = d.sync_all();
                    }
                }
                Ok(())
            }
            Location::Remote { store, prefix, runtime, .. } => {
                let path = Self::store_path(prefix, &staged.rel);
                let mut file = staged.file.reopen()?;
                runtime.block_on(async {
                    let upload = store.put_multipart(&path).await?;
                    let mut writer = WriteMultipart::new(upload);
                    let mut buf = vec![0u8; 8 << 20];
                    let sent: Result<()> = async {
                        loop {
                            let n = file.read(&mut buf)?;
                            if n == 0 {
                                return Ok(());
                            }
                            writer.wait_for_capacity(4).await?;
                            writer.write(&buf[..n]);
                        }
                    }
                    .await;
                    match sent {
                        Ok(()) => writer.finish().await.map(|_| ()).map_err(anyhow::Error::from),
                        // A failed upload is aborted, so its parts are not kept (and billed).
                        Err(e) => {
                            let _ = writer.abort().await;
                            Err(e)
                        }
                    }
                })
                .with_context(|| format!("cannot upload {path}"))
            }
        }
    }

    /// Writes a small file atomically.
    pub fn put(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        let mut staged = self.stage(rel)?;
        staged.writer().write_all(bytes)?;
        self.commit(staged)
    }

    /// Reads a small file; `None` when it does not exist.
    pub fn get(&self, rel: &str) -> Result<Option<Vec<u8>>> {
        match &self.location {
            Location::Local(root) => match std::fs::read(root.join(rel)) {
                Ok(bytes) => Ok(Some(bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e).with_context(|| format!("cannot read {}", root.join(rel).display())),
            },
            Location::Remote { store, prefix, runtime, .. } => {
                let path = Self::store_path(prefix, rel);
                runtime.block_on(async {
                    match store.get(&path).await {
                        Ok(got) => Ok(Some(got.bytes().await?.to_vec())),
                        Err(object_store::Error::NotFound { .. }) => Ok(None),
                        Err(e) => Err(e.into()),
                    }
                })
            }
        }
    }

    /// Names of the files directly inside directory `rel` (no staging files), sorted.
    pub fn list(&self, rel: &str) -> Result<Vec<String>> {
        let (files, _) = self.entries(rel, false)?;
        Ok(files.into_iter().map(|(name, _)| name).filter(|n| !n.starts_with(".staging-")).collect())
    }

    /// The files directly inside directory `rel` with their sizes in bytes (no
    /// staging files), sorted by name; one listing.
    pub fn sizes(&self, rel: &str) -> Result<Vec<(String, u64)>> {
        let (mut files, _) = self.entries(rel, true)?;
        files.retain(|(name, _)| !name.starts_with(".staging-"));
        Ok(files)
    }

    /// Writes a small file only if it does not exist (`version: None`) or is still
    /// at `version`; `Ok(None)` when it was not (another writer won). Only object
    /// stores answer this: a local root returns an error.
    pub fn put_if(&self, rel: &str, bytes: &[u8], version: Option<&object_store::UpdateVersion>) -> Result<Option<object_store::UpdateVersion>> {
        let Location::Remote { store, prefix, runtime, url, .. } = &self.location else {
            anyhow::bail!("conditional writes are for object-store roots");
        };
        let path = Self::store_path(prefix, rel);
        let mode = match version {
            None => object_store::PutMode::Create,
            Some(v) => object_store::PutMode::Update(v.clone()),
        };
        let put = runtime.block_on(store.put_opts(&path, bytes.to_vec().into(), mode.into()));
        match put {
            Ok(done) => Ok(Some(done.into())),
            Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Ok(None),
            Err(object_store::Error::NotImplemented { .. }) => anyhow::bail!(
                "the object store at {url} does not do conditional writes, which the per-shop lock needs (on S3 set AWS_CONDITIONAL_PUT=etag)"
            ),
            Err(e) => Err(e).with_context(|| format!("cannot write {path}")),
        }
    }

    /// A small file with its version (for [`DataRoot::put_if`]); `None` when absent.
    /// Object stores only.
    pub fn get_versioned(&self, rel: &str) -> Result<Option<(Vec<u8>, object_store::UpdateVersion)>> {
        let Location::Remote { store, prefix, runtime, .. } = &self.location else {
            anyhow::bail!("versioned reads are for object-store roots");
        };
        let path = Self::store_path(prefix, rel);
        runtime.block_on(async {
            match store.get(&path).await {
                Ok(got) => {
                    let version = object_store::UpdateVersion { e_tag: got.meta.e_tag.clone(), version: got.meta.version.clone() };
                    Ok(Some((got.bytes().await?.to_vec(), version)))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            }
        })
    }

    /// Removes a file; a missing one is fine.
    pub fn delete(&self, rel: &str) -> Result<()> {
        match &self.location {
            Location::Local(root) => match std::fs::remove_file(root.join(rel)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).with_context(|| format!("cannot remove {}", root.join(rel).display())),
                _ => Ok(()),
            },
            Location::Remote { store, prefix, runtime, cache, .. } => {
                let path = Self::store_path(prefix, rel);
                match runtime.block_on(store.delete(&path)) {
                    Err(e) if !matches!(e, object_store::Error::NotFound { .. }) => Err(e).with_context(|| format!("cannot remove {path}")),
                    // Its cached copy goes with it.
                    _ => match std::fs::remove_file(cache.join(rel)) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).with_context(|| format!("cannot remove the cached {rel}")),
                        _ => Ok(()),
                    },
                }
            }
        }
    }

    /// Names of the directories directly inside `rel` (on an object store: the
    /// common prefixes), sorted.
    pub fn subdirs(&self, rel: &str) -> Result<Vec<String>> {
        Ok(self.entries(rel, false)?.1)
    }

    /// (files with their sizes when `sized`, else 0; directories) directly inside
    /// `rel`, each sorted; nothing when it does not exist. (Sizes cost a local
    /// root one stat per file; an object-store listing has them anyway.)
    fn entries(&self, rel: &str, sized: bool) -> Result<(Vec<(String, u64)>, Vec<String>)> {
        let (mut files, mut dirs) = (vec![], vec![]);
        match &self.location {
            Location::Local(root) => match std::fs::read_dir(root.join(rel)) {
                Ok(entries) => {
                    for entry in entries.filter_map(|e| e.ok()) {
                        let name = entry.file_name().to_string_lossy().into_owned();
                        match entry.file_type() {
                            Ok(t) if t.is_dir() => dirs.push(name),
                            Ok(t) if t.is_file() => files.push((name, if sized { entry.metadata().map(|m| m.len()).unwrap_or(0) } else { 0 })),
                            _ => {}
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("cannot list {}", root.join(rel).display())),
            },
            Location::Remote { store, prefix, runtime, .. } => {
                let listed = runtime.block_on(store.list_with_delimiter(Some(&Self::store_path(prefix, rel))))?;
                files.extend(listed.objects.iter().filter_map(|m| Some((m.location.filename()?.to_string(), m.size))));
                dirs.extend(listed.common_prefixes.iter().filter_map(|p| p.filename().map(str::to_string)));
            }
        }
        files.sort();
        dirs.sort();
        Ok((files, dirs))
    }

    /// Removes the directory `rel` and everything in it; a missing one is fine.
    pub fn delete_dir(&self, rel: &str) -> Result<()> {
        match &self.location {
            Location::Local(root) => match std::fs::remove_dir_all(root.join(rel)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).with_context(|| format!("cannot remove {}", root.join(rel).display())),
                _ => Ok(()),
            },
            Location::Remote { store, prefix, runtime, .. } => {
                let path = Self::store_path(prefix, rel);
                runtime.block_on(async {
                    let objects: Vec<_> = store.list(Some(&path)).try_collect().await?;
                    for object in objects {
                        store.delete(&object.location).await?;
                    }
                    anyhow::Ok(())
                })
            }
        }
    }

    /// Removes the staging files that killed writers left for `shop` (local roots;
    /// an object store stages outside the bucket): one listing of the shop's
    /// staging folder, whatever the size of its tree. Only the holder of the
    /// shop's lock may call this: another writer's staging files are not litter.
    pub fn remove_staging_litter(&self, shop: &str) -> Result<usize> {
        let Location::Local(root) = &self.location else { return Ok(0) };
        let staging = staging_dir(root, &format!("{shop}/"));
        let entries = match std::fs::read_dir(&staging) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", staging.display())),
        };
        let mut removed = 0;
        for entry in entries {
            let path = entry?.path();
            if path.file_name().is_some_and(|n| n.to_string_lossy().starts_with(".staging-")) {
                std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// A local path holding the file `rel`: the file itself on a local root, a cached
    /// download of it on a remote one (snapshots are immutable, so the cache is
    /// kept, within [`cache_limit`]: see [`DataRoot::trim_cache`]).
    pub fn local_copy(&self, rel: &str) -> Result<PathBuf> {
        match &self.location {
            Location::Local(root) => Ok(root.join(rel)),
            Location::Remote { cache, .. } => {
                let dest = cache.join(rel);
                match std::fs::File::options().write(true).open(&dest) {
                    // A hit is a use: its time orders the eviction.
                    Ok(file) => file.set_modified(std::time::SystemTime::now())?,
                    Err(_) => {
                        let bytes = self.get(rel)?.with_context(|| format!("{rel} is missing"))?;
                        std::fs::create_dir_all(dest.parent().context("no parent")?)?;
                        let mut tmp = tempfile::NamedTempFile::new_in(dest.parent().context("no parent")?)?;
                        tmp.write_all(&bytes)?;
                        tmp.persist(&dest)?;
                    }
                }
                Ok(dest)
            }
        }
    }

    /// Keeps the local cache of a remote root's `shop` under [`cache_limit`]
    /// bytes: the least recently used files go first, never one of `pinned`
    /// (the files a reader is about to open; they stay even when they alone
    /// exceed the limit). What it removed, in bytes. Nothing on a local root.
    pub fn trim_cache(&self, shop: &str, pinned: &[PathBuf]) -> Result<u64> {
        let Location::Remote { cache, .. } = &self.location else { return Ok(0) };
        let mut files = vec![];
        cached_files(&cache.join(shop), &mut files);
        let mut total: u64 = files.iter().map(|(_, bytes, _)| bytes).sum();
        let limit = cache_limit();
        if total <= limit {
            return Ok(0);
        }
        files.sort_by_key(|(_, _, used)| *used);
        let pinned: std::collections::HashSet<&Path> = pinned.iter().map(PathBuf::as_path).collect();
        let mut removed = 0;
        for (path, bytes, _) in files.iter().filter(|(path, _, _)| !pinned.contains(path.as_path())) {
            if total <= limit {
                break;
            }
            if std::fs::remove_file(path).is_ok() {
                (total, removed) = (total - bytes, removed + bytes);
            }
        }
        if total > limit {
            tracing::warn!("the cache of {shop}'s raw files holds {} MB, over its limit of {} MB: the files one computation reads do not fit it", total >> 20, limit >> 20);
        }
        Ok(removed)
    }
}

/// The default size of a remote root's local cache, per shop.
pub const DEFAULT_CACHE_BYTES: u64 = 8 << 30;

static CACHE_LIMIT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

/// Sets the cache limit for this process (the config file's `[storage]
/// cache_bytes`); the first call wins.
pub fn set_cache_limit(bytes: u64) {
    let _ = CACHE_LIMIT.set(bytes);
}

/// The local cache's limit per shop: `[storage] cache_bytes`, else
/// SHOPFEAT_CACHE_BYTES, else [`DEFAULT_CACHE_BYTES`].
pub fn cache_limit() -> u64 {
    *CACHE_LIMIT.get_or_init(|| std::env::var("SHOPFEAT_CACHE_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_CACHE_BYTES))
}

/// Every file under `dir`: path, bytes, last use.
fn cached_files(dir: &Path, out: &mut Vec<(PathBuf, u64, std::time::SystemTime)>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            cached_files(&entry.path(), out);
        } else {
            out.push((entry.path(), meta.len(), meta.modified().unwrap_or(std::time::UNIX_EPOCH)));
        }
    }
}

/// Where a local root stages the files of `rel`: one folder per shop (the first
/// segment of `rel`), renamed into place from there on commit (same
/// filesystem), so a killed writer's litter is found with one listing rather
/// than a walk of the shop's whole tree, which grows with every snapshot.
fn staging_dir(root: &Path, rel: &str) -> PathBuf {
    const STAGING: &str = ".staging";
    match rel.split_once('/') {
        Some((shop, _)) => root.join(shop).join(STAGING),
        None => root.join(STAGING),
    }
}

/// Staging files are created private; what they become is readable like any file
/// the user writes (analysts open these with DuckDB).
fn staging_builder() -> tempfile::Builder<'static, 'static> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".staging-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    builder
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' }).collect()
}

/// The current user's id (the object-store cache is per user).
fn user_id() -> String {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(meta) = std::fs::metadata("/proc/self") {
            return meta.uid().to_string();
        }
    }
    std::env::var("USER").unwrap_or_else(|_| "user".into())
}

/// `dir`, created readable by its owner only (cached snapshots are the shop's
/// data), and refused when it exists with wider permissions or another owner.
fn private_dir(dir: &Path) -> Result<PathBuf> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        if !dir.exists() {
            std::fs::DirBuilder::new().mode(0o700).recursive(true).create(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let meta = std::fs::symlink_metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
        let mine = std::fs::metadata("/proc/self").map(|m| m.uid() == meta.uid()).unwrap_or(true);
        if !meta.is_dir() || meta.permissions().mode() & 0o077 != 0 || !mine {
            anyhow::bail!("{} must be a directory only its owner can read (mode 700) to cache shop data in", dir.display());
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir.to_path_buf())
}

/// The store behind an object-store URL, configured from the usual environment
/// variables of each store (`AWS_…`, `GOOGLE_…`, `AZURE_…`). `memory://` roots
/// share one in-process store, as several clients share a bucket.
fn open_store(url: &url::Url) -> Result<(Arc<dyn ObjectStore>, StorePath)> {
    if url.scheme() == "memory" {
        static MEMORY: std::sync::OnceLock<Arc<dyn ObjectStore>> = std::sync::OnceLock::new();
        let store = MEMORY.get_or_init(|| Arc::new(object_store::memory::InMemory::new())).clone();
        return Ok((store, StorePath::from_url_path(url.path())?));
    }
    let options = std::env::vars()
        .filter(|(k, _)| ["AWS_", "GOOGLE_", "AZURE_"].iter().any(|p| k.starts_with(p)))
        .map(|(k, v)| (k.to_ascii_lowercase(), v));
    let (store, prefix) = object_store::parse_url_opts(url, options)?;
    Ok((Arc::from(store), prefix))
}
