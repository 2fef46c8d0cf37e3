//! A shop that lives for a long time (issue 24): the sample shop, then one
//! `products/update` payload per snapshot, as `serve` cycles land them, and
//! `compute` timed as more pile up — without compaction, after one `compact`,
//! and with compaction automatic (after every landing, `compact_if_due` with the
//! default threshold, as a cycle's end does).
//!
//! Peers in the same run on the same data: the same records freshly landed as
//! one snapshot (the sample and every payload in one `ingest`) for the
//! compacted shop, and the same shop after 10 cycles for the one compacted
//! automatically. Each `compute` is its own process; its peak is the
//! largest RSS sampled from `/proc/<pid>/status` every 5 ms by this process (an
//! instrument outside the one measured). Times are the
//! median of three runs.
//!
//! `SHOPFEAT_BENCH=lifecycle cargo bench --bench pipeline`; env
//! `SHOPFEAT_LIFECYCLE_SNAPSHOTS` (default 10,000).

use shopfeat::land::{self, compact};
use shopfeat::progress::Progress;
use shopfeat::storage::DataRoot;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const AS_OF: &str = "2025-11-30T23:59:59Z";
const SHOP: &str = "bench";

pub fn run() {
    let snapshots: usize = std::env::var("SHOPFEAT_LIFECYCLE_SNAPSHOTS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample");
    let dir = tempfile::tempdir().expect("temp dir");
    let payloads = Payloads::new(dir.path().join("payloads"));
    println!("{:<48} {:>10} {:>9} {:>14}", "shop", "compute s", "peak MB", "files in raw/");
    let row = |what: &str, m: &Measured, root: &Path| println!("{what:<48} {:>10.3} {:>9.0} {:>14}", m.seconds, m.peak_mb, files_under(&root.join(SHOP).join("raw")));

    let sample_alone = dir.path().join("sample-alone");
    land_sample(&sample_alone, &sample);
    row("the sample alone, 1 snapshot", &compute(&sample_alone), &sample_alone);
    // The peer of the compacted shop: the same records landed at once.
    let fresh = dir.path().join("fresh");
    let everything = payloads.all_in_one(snapshots);
    let data = DataRoot::open(fresh.to_str().expect("utf-8")).expect("root");
    land::land(&data, SHOP, &land::collect_inputs(&[sample.clone(), everything]).expect("inputs"), &Progress::hidden()).expect("land at once");
    let fresh_compute = compute(&fresh);
    row(&format!("the sample + {snapshots} payloads in 1 snapshot"), &fresh_compute, &fresh);

    // Without compaction.
    let piled = dir.path().join("piled");
    land_sample(&piled, &sample);
    let root = DataRoot::open(piled.to_str().expect("utf-8")).expect("root");
    let started = Instant::now();
    for i in 0..snapshots {
        payloads.land(&root, i);
        if [10, 1000].contains(&(i + 1)) {
            row(&format!("+{} snapshots, no compaction", i + 1), &compute(&piled), &piled);
        }
    }
    let landing = started.elapsed().as_secs_f64() / snapshots as f64;
    let piled_compute = compute(&piled);
    row(&format!("+{snapshots} snapshots, no compaction"), &piled_compute, &piled);
    let started = Instant::now();
    let report = compact::compact(&root, SHOP, &compact::Policy::default()).expect("compact");
    let compaction = started.elapsed().as_secs_f64();
    let compacted = compute(&piled);
    row(&format!("+{snapshots} snapshots, then `compact`"), &compacted, &piled);

    // Compaction automatic, as every cycle's end checks it.
    let auto = dir.path().join("auto");
    land_sample(&auto, &sample);
    let root = DataRoot::open(auto.to_str().expect("utf-8")).expect("root");
    let mut at_ten = None;
    let started = Instant::now();
    for i in 0..snapshots {
        payloads.land(&root, i);
        compact::compact_if_due(&root, SHOP, &compact::Policy::default()).expect("compact");
        if i + 1 == 10 {
            let m = compute(&auto);
            row("10 cycles, compaction automatic", &m, &auto);
            at_ten = Some(m);
        }
    }
    let cycle = started.elapsed().as_secs_f64() / snapshots as f64;
    let at_end = compute(&auto);
    row(&format!("{snapshots} cycles, compaction automatic"), &at_end, &auto);
    let at_ten = at_ten.expect("at least 10 cycles");

    println!();
    println!("landing one payload: {:.1} ms; a cycle's landing with automatic compaction: {:.1} ms (amortized)", landing * 1e3, cycle * 1e3);
    println!("compact: {} snapshots merged in {compaction:.2} s", report.merged.iter().map(|m| m.replaced).sum::<usize>());
    println!(
        "compute after compaction / the same records landed at once: time {:.2}x, peak {:.2}x (target: time within 1.1x)",
        compacted.seconds / fresh_compute.seconds,
        compacted.peak_mb / fresh_compute.peak_mb
    );
    println!(
        "compute at {snapshots} automatic cycles / at 10: time {:.2}x, peak {:.2}x (target: within 1.2x); without compaction: time {:.2}x, peak {:.2}x",
        at_end.seconds / at_ten.seconds,
        at_end.peak_mb / at_ten.peak_mb,
        piled_compute.seconds / at_ten.seconds,
        piled_compute.peak_mb / at_ten.peak_mb
    );
}

fn land_sample(root: &Path, sample: &Path) {
    let data = DataRoot::open(root.to_str().expect("utf-8")).expect("root");
    land::land(&data, SHOP, &land::collect_inputs(&[sample.to_path_buf()]).expect("inputs"), &Progress::hidden()).expect("land the sample");
}

/// One `products/update` payload per landing: the sample's products in turn,
/// each a little later and with a new title, like a shop's daily edits.
struct Payloads {
    dir: PathBuf,
}

impl Payloads {
    fn new(dir: PathBuf) -> Payloads {
        std::fs::create_dir_all(&dir).expect("payload dir");
        Payloads { dir }
    }

    fn land(&self, root: &DataRoot, i: usize) {
        let file = self.dir.join("products_update-1.json");
        std::fs::write(&file, Self::payload(i)).expect("payload");
        land::land(root, SHOP, &land::collect_inputs(&[file]).expect("inputs"), &Progress::hidden()).expect("land a payload");
    }

    /// The first `n` payloads as one shop directory (`webhooks/`, in order by name).
    fn all_in_one(&self, n: usize) -> PathBuf {
        let shop = self.dir.join("all");
        std::fs::create_dir_all(shop.join("webhooks")).expect("dir");
        for i in 0..n {
            std::fs::write(shop.join(format!("webhooks/products_update-{i:06}.json")), Self::payload(i)).expect("payload");
        }
        shop
    }

    fn payload(i: usize) -> String {
        let product = 7_100_000_000u64 + (i % 350) as u64;
        let updated = chrono::DateTime::parse_from_rfc3339("2025-11-01T00:00:00Z").expect("time") + chrono::Duration::seconds(i as i64 * 60);
        let payload = serde_json::json!({
            "id": product, "title": format!("Product {product}, edit {i}"), "status": "active",
            "created_at": "2024-11-01T00:00:00Z", "updated_at": updated.to_rfc3339(),
            "variants": [{"id": product * 10, "product_id": product, "title": "Default", "price": format!("{}.00", 10 + i % 90), "inventory_quantity": 5}],
        });
        payload.to_string()
    }
}

struct Measured {
    seconds: f64,
    peak_mb: f64,
}

/// `compute` of the shop at the sample's clock, three times: the median time
/// and the largest sampled peak.
fn compute(root: &Path) -> Measured {
    let mut runs: Vec<Measured> = (0..3).map(|_| compute_once(root)).collect();
    runs.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let peak = runs.iter().map(|m| m.peak_mb).fold(0.0, f64::max);
    Measured { seconds: runs[1].seconds, peak_mb: peak }
}

fn compute_once(root: &Path) -> Measured {
    let started = Instant::now();
    let mut child = Command::new(crate::BIN)
        .args(["--root", root.to_str().expect("utf-8"), "--shop", SHOP, "-q", "compute", "--as-of", AS_OF])
        .env_remove("RUST_LOG")
        .env_remove("SHOPFEAT_CONFIG")
        .stdout(Stdio::null())
        .spawn()
        .expect("compute");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0u64;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_file) {
            let kb = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0);
            peak_kb = peak_kb.max(kb);
        }
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "compute failed");
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Measured { seconds: started.elapsed().as_secs_f64(), peak_mb: peak_kb as f64 / 1024.0 }
}

fn files_under(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|entries| entries.flatten().map(|e| if e.path().is_dir() { files_under(&e.path()) } else { 1 }).sum()).unwrap_or(0)
}
