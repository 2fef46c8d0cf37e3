//! kill -9 at every stage: `ingest`, `compute`, `fetch` and `export gorse` are
//! SIGKILLed at random points (seeded, reproducible), then the root is checked —
//! the outputs are a complete generation (the previous one or the new one), the
//! snapshots visible are complete, `state.json` and the Gorse checkpoint read back
//! — and a rerun finishes, equals an uninterrupted run, and leaves no staging
//! litter. Runs per command: SHOPFEAT_CRASH_RUNS (default 20); seed:
//! SHOPFEAT_CRASH_SEED (default 7). The counts are printed (`--nocapture`).

use crate::common::copy_dir;
use crate::gorse_standin::{Faults as GorseFaults, Gorse};
use crate::shopify_fake::{read_shop, Faults, Shopify};
use polars::prelude::SerReader;
use shopfeat::storage::DataRoot;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const AS_OF: &str = "2025-11-30T23:59:59Z";
const TOKEN: &str = "shpat_crash";

fn runs() -> usize {
    std::env::var("SHOPFEAT_CRASH_RUNS").ok().and_then(|n| n.parse().ok()).unwrap_or(20)
}

/// xorshift64: the kill points, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn seeded(salt: u64) -> Rng {
        let seed: u64 = std::env::var("SHOPFEAT_CRASH_SEED").ok().and_then(|n| n.parse().ok()).unwrap_or(7);
        Rng((seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample")
}

fn shopfeat(root: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shopfeat"));
    c.args(["--root", root.to_str().unwrap(), "--shop", "s", "-q"]).args(args).env_remove("RUST_LOG").env_remove("GORSE_URL").env("SHOPIFY_ACCESS_TOKEN", TOKEN).stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

fn ok(mut c: Command) -> std::process::Output {
    let out = c.stdout(Stdio::piped()).output().unwrap();
    assert!(out.status.success(), "{c:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Starts `c`, SIGKILLs it after `delay` (unless it ended first); whether it was killed.
fn kill_after(mut c: Command, delay: Duration) -> bool {
    let mut child = c.spawn().unwrap();
    let started = Instant::now();
    while started.elapsed() < delay {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    true
}

fn litter(dir: &Path) -> Vec<PathBuf> {
    let mut found = vec![];
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(litter(&path));
        } else if entry.file_name().to_string_lossy().starts_with(".staging-") {
            found.push(path);
        }
    }
    found
}

/// The rows of every feature table computed now, from the current generation.
fn table_rows(root: &Path) -> serde_json::Value {
    let out = ok(shopfeat(root, &["compute", "--json", "--as-of", AS_OF]));
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()["tables"].clone()
}

/// What a reader can see is whole: the current generation has every file it
/// lists, each readable; the stable database opens; every visible snapshot's
/// files exist.
fn assert_readable(root: &Path, what: &str) {
    let data = DataRoot::open(root.to_str().unwrap()).unwrap();
    if let Some(pointer) = shopfeat::sinks::generation::current(&data, "s/features").unwrap() {
        for file in &pointer.files {
            let path = root.join("s/features").join(&pointer.generation).join(file);
            if file.ends_with(".parquet") {
                polars::prelude::ParquetReader::new(std::fs::File::open(&path).unwrap_or_else(|e| panic!("{what}: {}: {e}", path.display())))
                    .finish()
                    .unwrap_or_else(|e| panic!("{what}: {}: {e}", path.display()));
            }
        }
        let db = duckdb::Connection::open(root.join("s/features.duckdb")).unwrap();
        let _: i64 = db.query_row("SELECT count(*) FROM product_features", [], |r| r.get(0)).unwrap();
    }
    for manifest in shopfeat::land::snapshots(&data, "s").unwrap() {
        for (_, rel) in manifest.raw_files("s").unwrap() {
            assert!(root.join(&rel).is_file(), "{what}: snapshot {} names {rel}, which is missing", manifest.snapshot);
        }
    }
    if let Some(state) = data.get("s/state.json").unwrap() {
        serde_json::from_slice::<serde_json::Value>(&state).unwrap_or_else(|e| panic!("{what}: state.json: {e}"));
    }
    if let Some(rows) = data.get("s/state/gorse-rows.parquet").unwrap() {
        polars::prelude::ParquetReader::new(std::io::Cursor::new(rows)).finish().unwrap_or_else(|e| panic!("{what}: the Gorse checkpoint: {e}"));
    }
}

/// How long an uninterrupted run of `c` takes (the range kill points are drawn from).
fn duration(c: Command) -> Duration {
    let started = Instant::now();
    ok(c);
    started.elapsed()
}

fn report(command: &str, killed: usize, finished: usize) {
    println!("crash harness: {command}: {} runs, {killed} killed mid-run, {finished} finished before the kill; every rerun equal to an uninterrupted run", killed + finished);
    assert!(killed >= (killed + finished) / 2, "{command}: most runs must be killed mid-run to test anything ({killed} of {})", killed + finished);
}

#[test]
fn ingest_and_compute_killed_at_random_points() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference");
    ok(shopfeat(&reference, &["ingest", sample().to_str().unwrap()]));
    let expected = table_rows(&reference);
    let land_time = duration(shopfeat(&dir.path().join("timing"), &["ingest", sample().to_str().unwrap()]));
    let compute_time = duration(shopfeat(&reference, &["compute", "--as-of", AS_OF]));

    let mut rng = Rng::seeded(1);
    let (mut killed, mut finished) = (0, 0);
    for i in 0..runs() {
        let root = dir.path().join(format!("ingest-{i}"));
        let delay = Duration::from_micros(rng.below(land_time.as_micros() as u64));
        if kill_after(shopfeat(&root, &["ingest", sample().to_str().unwrap()]), delay) { killed += 1 } else { finished += 1 }
        assert_readable(&root, &format!("ingest run {i}"));
        let visible = shopfeat::land::snapshots(&DataRoot::open(root.to_str().unwrap()).unwrap(), "s").unwrap().len();
        assert!(visible <= 1, "ingest run {i}");
        ok(shopfeat(&root, &["ingest", sample().to_str().unwrap()]));
        assert_eq!(table_rows(&root), expected, "ingest run {i}: the rerun equals an uninterrupted run");
        assert!(litter(&root).is_empty(), "ingest run {i}: {:?}", litter(&root));
    }
    report("ingest", killed, finished);

    let (mut killed, mut finished) = (0, 0);
    for i in 0..runs() {
        let root = dir.path().join(format!("compute-{i}"));
        copy_dir(&reference, &root);
        let before = std::fs::read(root.join("s/features/CURRENT")).unwrap();
        let delay = Duration::from_micros(rng.below(compute_time.as_micros() as u64));
        if kill_after(shopfeat(&root, &["compute", "--as-of", AS_OF]), delay) { killed += 1 } else { finished += 1 }
        assert_readable(&root, &format!("compute run {i}"));
        let after = std::fs::read(root.join("s/features/CURRENT")).unwrap();
        let generations = std::fs::read_dir(root.join("s/features")).unwrap().flatten().filter(|e| e.path().is_dir()).count();
        assert!(after == before || generations >= 2, "compute run {i}: the previous generation, or a new complete one");
        assert_eq!(table_rows(&root), expected, "compute run {i}");
        assert!(litter(&root).is_empty(), "compute run {i}: {:?}", litter(&root));
    }
    report("compute", killed, finished);
}

#[test]
fn fetch_killed_at_random_points() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Shopify::start(TOKEN, read_shop(&sample()), "2025-12-01T00:00:00Z");
    fake.set_faults(Faults { operation_time: Some(Duration::from_millis(80)), ..Faults::default() });
    let fetch = |root: &Path| shopfeat(root, &["fetch", "--api-url", &fake.url, "--mode", "historical"]);
    let reference = dir.path().join("reference");
    let fetch_time = duration(fetch(&reference));
    let expected = table_rows(&reference);

    let mut rng = Rng::seeded(2);
    let (mut killed, mut finished) = (0, 0);
    for i in 0..runs() {
        let root = dir.path().join(format!("fetch-{i}"));
        let delay = Duration::from_micros(rng.below(fetch_time.as_micros() as u64));
        if kill_after(fetch(&root), delay) { killed += 1 } else { finished += 1 }
        assert_readable(&root, &format!("fetch run {i}"));
        // Watermarks are there only with the snapshot they describe. The
        // snapshot alone is a kill after its commit and before the watermarks
        // are saved (they move only once the data is durable): the next fetch
        // starts from the old watermarks and lands it again.
        let data = DataRoot::open(root.to_str().unwrap()).unwrap();
        let marks = shopfeat::state::ShopState::load(&data, "s").unwrap().watermarks.len();
        let snapshots = shopfeat::land::snapshots(&data, "s").unwrap().len();
        assert!([(0, 0), (0, 1), (4, 1)].contains(&(marks, snapshots)), "fetch run {i}: {marks} watermarks, {snapshots} snapshots");
        ok(fetch(&root));
        assert_eq!(table_rows(&root), expected, "fetch run {i}");
        assert!(litter(&root).is_empty(), "fetch run {i}: {:?}", litter(&root));
    }
    report("fetch", killed, finished);
}

#[test]
fn export_killed_at_random_points() {
    let dir = tempfile::tempdir().unwrap();
    let computed = dir.path().join("computed");
    ok(shopfeat(&computed, &["ingest", sample().to_str().unwrap()]));
    ok(shopfeat(&computed, &["compute", "--as-of", AS_OF]));
    let export = |root: &Path, url: &str| shopfeat(root, &["export", "gorse", "--url", url, "--batch-size", "50", "--checkpoint-secs", "0.02", "--max-retries", "2"]);
    let clean = Gorse::start(None);
    clean.set_faults(GorseFaults { latency: Duration::from_millis(5), ..GorseFaults::default() });
    let reference = dir.path().join("reference");
    copy_dir(&computed, &reference);
    let export_time = duration(export(&reference, &clean.url));
    let expected = clean.store();

    let mut rng = Rng::seeded(3);
    let (mut killed, mut finished) = (0, 0);
    for i in 0..runs() {
        let root = dir.path().join(format!("export-{i}"));
        copy_dir(&computed, &root);
        let gorse = Gorse::start(None);
        gorse.set_faults(GorseFaults { latency: Duration::from_millis(5), ..GorseFaults::default() });
        let delay = Duration::from_micros(rng.below(export_time.as_micros() as u64));
        if kill_after(export(&root, &gorse.url), delay) { killed += 1 } else { finished += 1 }
        assert_readable(&root, &format!("export run {i}"));
        ok(export(&root, &gorse.url));
        let store = gorse.store();
        assert_eq!((store.items.len(), store.users.len(), store.feedback.len()), (expected.items.len(), expected.users.len(), expected.feedback.len()), "export run {i}");
        assert!(store.items == expected.items && store.feedback == expected.feedback, "export run {i}: Gorse holds what a clean export gives");
        assert!(litter(&root).is_empty(), "export run {i}: {:?}", litter(&root));
    }
    report("export", killed, finished);
}

/// `compact` SIGKILLed at random points of a shop holding the sample and many
/// small snapshots: every time, a reader sees whole snapshots whose tables equal
/// the uncompacted ones, and the next `compact` finishes (or undoes) the
/// interrupted one and leaves one snapshot, its files and nothing else.
#[test]
fn compact_killed_at_random_points() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference");
    let data = DataRoot::open(reference.to_str().unwrap()).unwrap();
    let progress = shopfeat::progress::Progress::hidden();
    shopfeat::land::land(&data, "s", &shopfeat::land::collect_inputs(&[sample()]).unwrap(), &progress).unwrap();
    let webhooks = dir.path().join("webhooks");
    for i in 0..60u64 {
        let payload = serde_json::json!({"id": 7_100_000_000u64 + i % 7, "title": format!("version {i}"), "updated_at": format!("2025-11-{:02}T{:02}:00:00Z", 1 + i / 24, i % 24), "created_at": "2024-11-01T00:00:00Z", "status": "active", "variants": []});
        let file = webhooks.join(format!("{i}/products_update-1.json"));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, payload.to_string()).unwrap();
        shopfeat::land::land(&data, "s", &shopfeat::land::collect_inputs(&[file]).unwrap(), &progress).unwrap();
    }
    let as_of = Some(shopfeat::time::parse_time(AS_OF).unwrap());
    let expected = crate::compaction::main_tables(&data, "s", as_of);
    // Every other run, each deletion of a replaced snapshot takes a little
    // longer, so that kills land in that phase too, not only in the rewrite.
    let slow_removal = |mut c: Command, i: usize| {
        if i % 2 == 1 {
            c.env("SHOPFEAT_FAILPOINTS", "compact-remove=sleep(4)");
        }
        c
    };
    // Each kind of run draws its kill point from its own duration (a draw over
    // the slow kind's would let most fast runs finish first): the fastest of
    // three, as one timing run slowed by the tests beside it let 12 of 20
    // runs finish before their kill.
    let compact_time = [0, 1].map(|kind| {
        let timed = |n: usize| {
            let timing = dir.path().join(format!("timing-{kind}-{n}"));
            copy_dir(&reference, &timing);
            duration(slow_removal(shopfeat(&timing, &["compact"]), kind))
        };
        (0..3).map(timed).min().unwrap()
    });

    let mut rng = Rng::seeded(5);
    let (mut killed, mut finished) = (0, 0);
    let (mut finished_by_rerun, mut undone_by_rerun) = (0, 0);
    for i in 0..runs() {
        let root = dir.path().join(format!("compact-{i}"));
        copy_dir(&reference, &root);
        let delay = Duration::from_micros(rng.below(compact_time[i % 2].as_micros() as u64));
        if kill_after(slow_removal(shopfeat(&root, &["compact"]), i), delay) { killed += 1 } else { finished += 1 }
        let what = format!("compact run {i}");
        assert_readable(&root, &what);
        let data = DataRoot::open(root.to_str().unwrap()).unwrap();
        crate::compaction::assert_same_tables(&expected, &crate::compaction::main_tables(&data, "s", as_of), &what);
        let rerun: serde_json::Value = serde_json::from_slice(&ok(shopfeat(&root, &["compact", "--json"])).stdout).unwrap();
        match rerun["recovered"].as_str() {
            Some(r) if r.starts_with("finished") => finished_by_rerun += 1,
            Some(_) => undone_by_rerun += 1,
            None => {}
        }
        crate::compaction::assert_same_tables(&expected, &crate::compaction::main_tables(&data, "s", as_of), &what);
        let snapshots = shopfeat::land::snapshots(&data, "s").unwrap();
        assert_eq!(snapshots.len(), 1, "{what}");
        // Nothing but the snapshot's own files is left under raw/.
        let raw = root.join("s/raw");
        for entity in std::fs::read_dir(&raw).unwrap().flatten().filter(|e| e.path().is_dir()) {
            for file in std::fs::read_dir(entity.path()).unwrap().flatten() {
                let name = file.file_name().to_string_lossy().into_owned();
                assert!(name.starts_with(&snapshots[0].snapshot), "{what}: {} is left over", file.path().display());
            }
        }
        assert!(!raw.join("_rewrite.json").exists(), "{what}");
        assert!(litter(&root).is_empty(), "{what}: {:?}", litter(&root));
    }
    println!("crash harness: compact: {finished_by_rerun} killed after publishing (the rerun finished them), {undone_by_rerun} before (the rerun undid them)");
    report("compact", killed, finished);
}

/// `privacy redact-customer` SIGKILLed at random points: the raw store holds the
/// customer whole or not at all (the rewrite commits every snapshot at once),
/// and a rerun of the same request finishes the erasure: nothing under the
/// shop names them.
#[test]
fn redaction_killed_at_random_points() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference");
    ok(shopfeat(&reference, &["ingest", sample().to_str().unwrap()]));
    // A second snapshot naming them, so the erasure rewrites several.
    let data = DataRoot::open(reference.to_str().unwrap()).unwrap();
    let (id, email) = crate::privacy::a_customer_with_orders_and_events(&data);
    let more = dir.path().join("more/webhooks");
    std::fs::create_dir_all(&more).unwrap();
    std::fs::write(more.join("customers_update-1.json"), serde_json::json!({"id": id, "email": email, "first_name": "Ada", "updated_at": "2025-11-20T00:00:00Z"}).to_string()).unwrap();
    ok(shopfeat(&reference, &["ingest", more.parent().unwrap().to_str().unwrap()]));
    ok(shopfeat(&reference, &["compute", "--as-of", AS_OF]));
    let customer = shopfeat::privacy::Customer { id: Some(id), email: Some(email), phone: None };
    let person = shopfeat::privacy::redact::identify(&data, &shopfeat::land::snapshots(&data, "s").unwrap(), &customer, &[]).unwrap();
    let id_text = id.to_string();
    let redact = |root: &Path| shopfeat(root, &["privacy", "redact-customer", "--customer-id", &id_text, "--request-id", "r-1"]);
    let timing = dir.path().join("timing");
    copy_dir(&reference, &timing);
    let redact_time = duration(redact(&timing));

    let mut rng = Rng::seeded(6);
    let (mut killed, mut finished) = (0, 0);
    let (mut before_commit, mut after_commit) = (0, 0);
    for i in 0..runs() {
        let root = dir.path().join(format!("redact-{i}"));
        copy_dir(&reference, &root);
        let delay = Duration::from_micros(rng.below(redact_time.as_micros() as u64));
        if kill_after(redact(&root), delay) { killed += 1 } else { finished += 1 }
        let what = format!("redaction run {i}");
        assert_readable(&root, &what);
        let data = DataRoot::open(root.to_str().unwrap()).unwrap();
        // Whole or nothing: every raw row naming them, or none.
        let named = raw_strings_naming(&data, &person);
        if named == 0 { after_commit += 1 } else { before_commit += 1 }
        assert!(named == 0 || named == raw_strings_naming(&DataRoot::open(reference.to_str().unwrap()).unwrap(), &person), "{what}: {named} raw values name them, a mix");
        ok(redact(&root));
        let mut found = vec![];
        crate::privacy::findings(&root.join("s"), &person, &[id], &mut found);
        assert!(found.is_empty(), "{what}: the rerun left {found:#?}");
        assert!(litter(&root).is_empty(), "{what}: {:?}", litter(&root));
    }
    println!("crash harness: redaction: {before_commit} left the raw store as it was, {after_commit} erased; every rerun finished the erasure");
    report("privacy redact-customer", killed, finished);
}

/// Raw values (every string column of every live snapshot) naming `person`.
fn raw_strings_naming(data: &DataRoot, person: &shopfeat::privacy::redact::Person) -> usize {
    let mut named = 0;
    for manifest in shopfeat::land::snapshots(data, "s").unwrap() {
        for (_, rel) in manifest.raw_files("s").unwrap() {
            let frame = polars::prelude::ParquetReader::new(std::fs::File::open(data.local_copy(&rel).unwrap()).unwrap()).finish().unwrap();
            for column in frame.columns().iter().filter(|c| c.dtype() == &polars::prelude::DataType::String) {
                named += column.str().unwrap().iter().flatten().filter(|s| person.named_in(s.as_bytes())).count();
            }
        }
    }
    named
}
