//! What only the local directory backend has: its layout on disk and the cleanup at open.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use comfy_artifacts::{BlobStore, LocalStore, PutOptions};
use futures_util::{StreamExt, stream};

fn body(bytes: &'static [u8]) -> comfy_artifacts::ByteStream {
    stream::iter([Ok(Bytes::from_static(bytes))]).boxed()
}

const UNLIMITED: PutOptions = PutOptions {
    max_bytes: u64::MAX,
    expected: None,
};

#[tokio::test]
async fn blobs_are_sharded_by_their_first_byte() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).await.unwrap();
    let stored = store.put(body(b"hello"), UNLIMITED).await.unwrap();
    let hex = stored.id.to_string();
    assert_eq!(
        hex,
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    let path = dir.path().join("sha256").join(&hex[..2]).join(&hex);
    assert_eq!(std::fs::read(path).unwrap(), b"hello");
}

#[tokio::test]
async fn open_removes_stale_temp_files_and_keeps_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).await.unwrap();
    let stored = store.put(body(b"kept"), UNLIMITED).await.unwrap();
    drop(store);
    // What a crash mid-upload leaves.
    std::fs::write(dir.path().join("tmp").join("interrupted"), b"half").unwrap();
    std::fs::create_dir(dir.path().join("tmp").join("odd-dir")).unwrap();

    let store = LocalStore::open(dir.path()).await.unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
    let listed = store.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, stored.id);
}

#[tokio::test]
async fn list_skips_what_is_not_a_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).await.unwrap();
    let stored = store.put(body(b"a blob"), UNLIMITED).await.unwrap();
    let hex = stored.id.to_string();
    let shard = dir.path().join("sha256").join(&hex[..2]);
    std::fs::write(shard.join("notes.txt"), b"x").unwrap();
    // A well-formed id in the wrong shard, and an upper-case name.
    let other = "ff".repeat(32);
    std::fs::write(shard.join(&other), b"x").unwrap();
    std::fs::write(shard.join(hex.to_uppercase()), b"x").unwrap();
    std::fs::write(dir.path().join("sha256").join("zz"), b"x").unwrap();
    let listed: Vec<_> = store.list().await.unwrap().iter().map(|l| l.id).collect();
    if hex.starts_with("ff") {
        panic!("test blob landed in the ff shard; pick other bytes");
    }
    assert_eq!(listed, vec![stored.id]);
}

#[tokio::test]
async fn a_dropped_put_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).await.unwrap();
    // A body that sends one chunk and then never ends: the put is dropped mid-way, as
    // when the client's connection is closed and its handler cancelled.
    let pending = stream::iter([Ok(Bytes::from_static(b"first chunk"))])
        .chain(stream::pending())
        .boxed();
    let put = store.put(pending, UNLIMITED);
    let timed_out = tokio::time::timeout(std::time::Duration::from_millis(200), put).await;
    assert!(timed_out.is_err(), "the put should still be waiting");
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
    assert!(store.list().await.unwrap().is_empty());
}

/// A body over the 1 MiB held in memory is written to its temp file as it arrives: put
/// again, it is found stored, and neither put leaves a temp file.
#[tokio::test]
async fn a_large_body_stored_already_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::open(dir.path()).await.unwrap();
    let bytes: Vec<u8> = (0..(5 << 20) / 4)
        .flat_map(|i: u32| i.to_le_bytes())
        .collect();
    let chunked = || {
        let chunks: Vec<Result<Bytes, std::io::Error>> = bytes
            .chunks(64 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        stream::iter(chunks).boxed()
    };
    let first = store.put(chunked(), UNLIMITED).await.unwrap();
    let again = store.put(chunked(), UNLIMITED).await.unwrap();
    assert!(first.created && !again.created);
    assert_eq!((first.id, first.size), (again.id, bytes.len() as u64));
    let hex = first.id.to_string();
    let path = dir.path().join("sha256").join(&hex[..2]).join(&hex);
    assert!(std::fs::read(path).unwrap() == bytes);
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );
}
