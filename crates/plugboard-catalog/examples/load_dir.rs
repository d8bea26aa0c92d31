//! Loads a catalog folder and prints the time it took and the process's resident memory (a measuring aid:
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `cargo run --release -p plugboard-catalog --example load_dir -- DIR`).

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|n| n.parse().unwrap_or(0)))
        })
        .unwrap_or(0)
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: load_dir DIR");
    let before = rss_kib();
    let t = std::time::Instant::now();
    let (catalog, bad) = plugboard_catalog::Catalog::load_dir(std::path::Path::new(&dir)).unwrap();
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    let json: usize = catalog.entries().iter().map(|e| e.json.len()).sum();
    println!(
        "loaded {} (bad {}) in {ms:.1} ms; rss {} -> {} KiB; json bytes {json}",
        catalog.len(),
        bad.len(),
        before,
        rss_kib()
    );
}
