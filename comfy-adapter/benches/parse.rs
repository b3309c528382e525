//! Parse speed on large answers, built from the recordings:
//! - a ~1 MB `/history` with hundreds of entries and thousands of outputs
//!   (the mixed-outputs run of 0.11.1 repeated under new ids);
//! - a ~10 MB `/object_info` (the full 0.11.1 catalogue repeated under new
//!   class names).
//!
//! Run: `cargo bench -p comfy-adapter --bench parse` (figures in docs/benchmarks.md).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use comfy_adapter::normalize;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Map, Value};
use std::hint::black_box;
use std::path::PathBuf;

fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/comfyui-0.11.1")
        .join(name);
    let x: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    x["response"]["body"].clone()
}

/// A history body of at least `target` bytes.
fn big_history(target: usize) -> Vec<u8> {
    let one = fixture("083-history-by-id-mixed-outputs.json");
    let (_, entry) = one.as_object().unwrap().iter().next().unwrap();
    let mut map = Map::new();
    let mut i = 0u32;
    loop {
        map.insert(format!("00000000-0000-4000-8000-{i:012}"), entry.clone());
        i += 1;
        if i.is_multiple_of(16) && serde_json::to_vec(&map).unwrap().len() >= target {
            return serde_json::to_vec(&map).unwrap();
        }
    }
}

/// An object_info body of at least `target` bytes.
fn big_object_info(target: usize) -> Vec<u8> {
    let full = fixture("018-object_info-full.json");
    let base = full.as_object().unwrap();
    let mut map = Map::new();
    let mut copy = 0;
    while serde_json::to_vec(&map).unwrap().len() < target {
        for (class, info) in base {
            map.insert(format!("{class}_{copy}"), info.clone());
        }
        copy += 1;
    }
    serde_json::to_vec(&map).unwrap()
}

fn bench(c: &mut Criterion) {
    let history = big_history(1 << 20);
    let entries = normalize::history_entries_from_slice(&history).unwrap();
    let count = entries.len();
    let outputs: usize = entries
        .into_iter()
        .map(|(id, item)| normalize::job_from_history(id, item).outputs.len())
        .sum();
    eprintln!(
        "history: {} bytes, {} entries, {outputs} outputs",
        history.len(),
        count
    );
    let mut g = c.benchmark_group("history");
    g.throughput(Throughput::Bytes(history.len() as u64));
    g.bench_function("parse_and_normalize_1mb", |b| {
        b.iter(|| {
            let entries = normalize::history_entries_from_slice(black_box(&history)).unwrap();
            let jobs: Vec<_> = entries
                .into_iter()
                .map(|(id, item)| normalize::job_from_history(id, item))
                .collect();
            black_box(jobs)
        });
    });
    g.bench_function("parse_only_1mb", |b| {
        b.iter(|| black_box(normalize::history_entries_from_slice(black_box(&history)).unwrap()));
    });
    g.finish();

    let info = big_object_info(10 << 20);
    eprintln!("object_info: {} bytes", info.len());
    let mut g = c.benchmark_group("object_info");
    g.throughput(Throughput::Bytes(info.len() as u64));
    g.sample_size(20);
    g.bench_function("split_10mb", |b| {
        b.iter(|| black_box(normalize::object_info_from_slice(black_box(&info)).unwrap()));
    });
    g.bench_function("split_10mb_and_parse_ksampler", |b| {
        b.iter(|| {
            let catalogue = normalize::object_info_from_slice(black_box(&info)).unwrap();
            black_box(catalogue.node("KSampler_0").unwrap().unwrap())
        });
    });
    g.bench_function("full_value_10mb_for_comparison", |b| {
        b.iter(|| {
            black_box(serde_json::from_slice::<Map<String, Value>>(black_box(&info)).unwrap())
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
