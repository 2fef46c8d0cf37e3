#[test]
#[ignore]
fn scratch_profile_main() {
    let root = shopfeat::storage::DataRoot::open("/tmp/shops-large").unwrap();
    let raw = shopfeat::normalize::RawTables::open(&root, "large").unwrap();
    let t = crate::common::ts("2025-11-30T23:59:59Z");
    for (name, lf) in shopfeat::normalize::normalize(&raw, Some(t)).unwrap().for_features().named() {
        let started = std::time::Instant::now();
        let df = lf.collect().unwrap();
        println!("{name}: {} rows, {:.2} s, {:.0} MB", df.height(), started.elapsed().as_secs_f64(), df.estimated_size() as f64 / 1e6);
    }
}
