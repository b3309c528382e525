//! How long a `LocalStore::put` of a small file takes, new bytes and bytes stored already.
//!
//! ```sh
//! cargo run --release -p comfy-artifacts --example put_latency -- 2000 [size-bytes] [dir]
//! ```
//!
//! Puts `n` distinct bodies of `size` bytes (default 4096, about an output PNG of a small
//! image), then the first of them `n` times again, one after another, into a new store in
//! a temporary directory under `dir` (default: the system's; put it on the disk the queue
//! uses: the figures are mostly its `fsync`s). Prints p50/p90/p99/max in microseconds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use bytes::Bytes;
use comfy_artifacts::{BlobStore, ByteStream, LocalStore, PutOptions};
use futures_util::StreamExt;
use std::time::Instant;

fn body(bytes: Bytes) -> ByteStream {
    futures_util::stream::iter([Ok(bytes)]).boxed()
}

fn print(label: &str, mut us: Vec<f64>) {
    us.sort_by(f64::total_cmp);
    let at = |q: f64| us[((us.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{label}: n {}, p50 {:.0} µs, p90 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        us.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map_or(2000, |a| a.parse().expect("n: a number"));
    let size: usize = args
        .next()
        .map_or(4096, |a| a.parse().expect("size: a number"));
    let parent = args.next().map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::tempdir_in(parent).expect("a temporary directory");
    let store = LocalStore::open(dir.path()).await.expect("the store");
    let options = PutOptions {
        max_bytes: u64::MAX,
        expected: None,
    };
    let bodies: Vec<Bytes> = (0..n)
        .map(|i| {
            let mut b = vec![0u8; size.max(8)];
            b[..8].copy_from_slice(&(i as u64).to_le_bytes());
            Bytes::from(b)
        })
        .collect();
    let mut new = Vec::with_capacity(n);
    for b in &bodies {
        let t = Instant::now();
        let stored = store.put(body(b.clone()), options).await.expect("a put");
        new.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(stored.created);
    }
    let mut again = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let stored = store
            .put(body(bodies[0].clone()), options)
            .await
            .expect("a put");
        again.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(!stored.created);
    }
    println!("LocalStore::put, {size} bytes, one at a time:");
    print("  new bytes", new);
    print("  stored already", again);
}
