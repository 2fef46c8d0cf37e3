//! One run per shop at a time: a second run exits at once saying who holds the
//! shop; a lock left by a dead holder is taken over; on an object store, of two
//! processes taking over an expired lock exactly one wins.

use shopfeat::lock::{Holder, ShopLock};
use shopfeat::storage::DataRoot;
use std::path::Path;
use std::time::Duration;

fn shopfeat(root: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_shopfeat"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["--root", root.to_str().unwrap(), "--shop", "s1"])
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("GORSE_URL")
        .output()
        .unwrap()
}

#[test]
fn a_second_run_on_a_locked_shop_exits_at_once_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let root = DataRoot::open(dir.path().to_str().unwrap()).unwrap();
    let held = ShopLock::acquire(&root, "s1").unwrap();
    for args in [vec!["run"], vec!["ingest", "data/sample"], vec!["compute"]] {
        let started = std::time::Instant::now();
        let out = shopfeat(dir.path(), &args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // `run` says "locked" with its own exit code (3), for schedulers and `run --all`.
        let locked_code = if args[0] == "run" { 3 } else { 1 };
        assert_eq!(out.status.code(), Some(locked_code), "{args:?}: {stderr}");
        assert!(stderr.contains(&format!("shop s1 is locked by ")) && stderr.contains(&format!("/{} since ", std::process::id())), "{stderr}");
        assert!(started.elapsed() < Duration::from_secs(10), "at once");
    }
    assert!(!dir.path().join("s1/raw").exists(), "the locked-out run landed nothing");
    drop(held);
    let out = shopfeat(dir.path(), &["run"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_lock_left_by_a_dead_process_is_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("s1")).unwrap();
    let gone = r#"{"holder":"old-host/4242","since":"2025-12-01T00:00:00Z","token":"x"}"#;
    std::fs::write(dir.path().join("s1/lock"), gone).unwrap();
    let out = shopfeat(dir.path(), &["run"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("taking over the lock of shop s1 left by old-host/4242"), "{stderr}");
}

#[test]
fn an_object_store_lock_excludes_others_and_expires_with_its_lease() {
    let root = DataRoot::open("memory:///locks-a").unwrap();
    let held = ShopLock::acquire(&root, "s1").unwrap();
    let other = DataRoot::open("memory:///locks-a").unwrap();
    let err = ShopLock::acquire(&other, "s1").err().expect("locked").to_string();
    assert!(err.starts_with("shop s1 is locked by "), "{err}");
    drop(held);
    let again = ShopLock::acquire(&other, "s1").expect("free once released");
    drop(again);

    // A holder that died: its lease has run out.
    let expired = Holder { holder: "dead-host/1".into(), since: "2025-01-01T00:00:00Z".into(), lease_until: Some("2025-01-01T00:10:00Z".into()), token: "dead".into(), boot: None };
    root.put("s2/lock", &serde_json::to_vec(&expired).unwrap()).unwrap();
    let takers: Vec<_> = (0..6)
        .map(|_| std::thread::spawn(|| ShopLock::acquire(&DataRoot::open("memory:///locks-a").unwrap(), "s2").map(|l| { std::thread::sleep(Duration::from_millis(200)); drop(l) })))
        .collect();
    let won = takers.into_iter().map(|t| t.join().unwrap()).filter(Result::is_ok).count();
    assert_eq!(won, 1, "exactly one of the takers wins");
}

#[test]
fn a_held_object_store_lock_is_renewed_while_its_run_goes_on() {
    let root = DataRoot::open("memory:///locks-b").unwrap();
    let held = ShopLock::acquire_with_lease(&root, "s1", Duration::from_millis(300)).unwrap();
    std::thread::sleep(Duration::from_millis(900));
    let err = ShopLock::acquire(&root, "s1").err().expect("still held: renewed past its first lease").to_string();
    assert!(err.contains("is locked by"), "{err}");
    drop(held);
    assert!(root.get("s1/lock").unwrap().is_none(), "released on drop");
}

#[test]
fn a_holder_on_this_host_name_is_not_gone_just_because_its_pid_is_absent_here() {
    let root = DataRoot::open("memory:///locks-c").unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim().to_string();
    let in_an_hour = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    // Another container of the same pod: the same host name, pids of its own
    // (999999 is none of ours), its lease running.
    let neighbour = Holder { holder: format!("{host}/999999"), since: chrono::Utc::now().to_rfc3339(), lease_until: Some(in_an_hour.clone()), token: "neighbour".into(), boot: None };
    root.put("s1/lock", &serde_json::to_vec(&neighbour).unwrap()).unwrap();
    let err = ShopLock::acquire(&root, "s1").err().expect("held until its lease ends").to_string();
    assert!(err.contains(&format!("{host}/999999")), "{err}");

    // A holder of this very boot and pid namespace whose process is gone: taken over at once.
    let held = ShopLock::acquire(&root, "s2").unwrap();
    let ours: Holder = serde_json::from_slice(&root.get("s2/lock").unwrap().unwrap()).unwrap();
    drop(held);
    assert!(ours.boot.is_some(), "the lock says which boot and namespace its pid belongs to");
    let gone = Holder { holder: format!("{host}/999999"), token: "gone".into(), ..ours };
    root.put("s2/lock", &serde_json::to_vec(&gone).unwrap()).unwrap();
    drop(ShopLock::acquire(&root, "s2").expect("its process is gone: no need to wait out the lease"));
}
