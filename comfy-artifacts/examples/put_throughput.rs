//! Streams a generated body into each backend and prints the throughput and how much the
//! process's peak resident memory grew: figures to look at, not assertions.
//!
//! ```sh
//! cargo run --release -p comfy-artifacts --example put_throughput -- [MiB]   # default 200
//! ```
//!
//! S3 runs against a private `moto_server` (`comfy_test_support::s3`); without one it is
//! skipped. moto keeps objects in its own memory, in another process: the memory figure is
//! this process's (the client's) alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use bytes::Bytes;
use comfy_artifacts::{BlobStore, ByteStream, LocalStore, PutOptions, S3Config, S3Store};
use futures_util::{StreamExt, stream};

const MIB: u64 = 1 << 20;
const CHUNK: usize = 256 * 1024;

/// A `/proc/self/status` field, in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Resets the peak RSS (`VmHWM`) to the current RSS, so each run's peak is its own.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// `mib` MiB in 256 KiB chunks, each its own allocation (as a body read off a socket is: a
/// store that keeps chunks shows it in its memory), then a last chunk naming the run, so
/// every run stores new bytes.
fn body(mib: u64, run: &str) -> ByteStream {
    let block: Bytes = (0..CHUNK)
        .map(|i| (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes()[0])
        .collect::<Vec<u8>>()
        .into();
    let count = (mib * MIB) as usize / CHUNK;
    let tail = Bytes::from(format!("{run} {:?}", Instant::now()));
    stream::iter(
        std::iter::repeat_n(block, count)
            .map(|b| Bytes::copy_from_slice(&b))
            .chain([tail])
            .map(Ok),
    )
    .boxed()
}

async fn measure(name: &str, store: &dyn BlobStore, mib: u64) {
    let reset = reset_peak();
    let rss_before = status_kib("VmRSS");
    let hwm_before = status_kib("VmHWM");
    let started = Instant::now();
    let stored = store
        .put(
            body(mib, name),
            PutOptions {
                max_bytes: u64::MAX,
                expected: None,
            },
        )
        .await
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    let hwm_after = status_kib("VmHWM");
    let base = if reset { rss_before } else { hwm_before };
    println!(
        "{name:>6}: {mib} MiB in {secs:.2} s = {:.1} MB/s; peak RSS {} KiB -> {} KiB (+{:.1} MiB{}); id {}",
        stored.size as f64 / 1e6 / secs,
        base,
        hwm_after,
        hwm_after.saturating_sub(base) as f64 / 1024.0,
        if reset {
            ""
        } else {
            ", peak not resettable: growth over the earlier peak"
        },
        stored.id,
    );
}

#[tokio::main]
async fn main() {
    let mib: u64 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("the size in MiB"))
        .unwrap_or(200);

    let dir = tempfile::tempdir().unwrap();
    let local = LocalStore::open(dir.path()).await.unwrap();
    measure("local", &local, mib).await;

    if comfy_test_support::probe::MOTO_SERVER.find().is_none() {
        println!(
            "    s3: skipped, moto_server not found (PATH or {})",
            comfy_test_support::probe::MOTO_SERVER.env
        );
        return;
    }
    let server = comfy_test_support::s3::S3Server::start();
    server.create_bucket("bench").await;
    let s3 = S3Store::new(&S3Config {
        bucket: "bench".to_owned(),
        endpoint: Some(server.endpoint()),
        region: comfy_test_support::s3::REGION.to_owned(),
        access_key_id: Some(comfy_test_support::s3::ACCESS_KEY_ID.to_owned()),
        secret_access_key: Some(comfy_test_support::s3::SECRET_ACCESS_KEY.to_owned()),
        allow_http: true,
        ..S3Config::default()
    })
    .unwrap();
    measure("s3", &s3, mib).await;
}
