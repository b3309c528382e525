//! What only the S3 backend has: its keys, its configuration, the sweep of stale temps.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use comfy_artifacts::{BlobStore, PutOptions, S3Config, S3Store};
use comfy_test_support::s3::{ACCESS_KEY_ID, REGION, S3Server, SECRET_ACCESS_KEY};
use futures_util::{StreamExt, TryStreamExt, stream};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

const UNLIMITED: PutOptions = PutOptions {
    max_bytes: u64::MAX,
    expected: None,
};

fn config(server: &S3Server, bucket: &str, prefix: &str) -> S3Config {
    S3Config {
        bucket: bucket.to_owned(),
        endpoint: Some(server.endpoint()),
        region: REGION.to_owned(),
        access_key_id: Some(ACCESS_KEY_ID.to_owned()),
        secret_access_key: Some(SECRET_ACCESS_KEY.to_owned()),
        prefix: prefix.to_owned(),
        allow_http: true,
        ..S3Config::default()
    }
}

fn raw(server: &S3Server, bucket: &str) -> object_store::aws::AmazonS3 {
    object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_endpoint(server.endpoint())
        .with_region(REGION)
        .with_access_key_id(ACCESS_KEY_ID)
        .with_secret_access_key(SECRET_ACCESS_KEY)
        .with_allow_http(true)
        .build()
        .unwrap()
}

async fn keys(raw: &object_store::aws::AmazonS3) -> Vec<String> {
    let mut keys: Vec<String> = raw
        .list(None)
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap();
    keys.sort();
    keys
}

fn body(bytes: &'static [u8]) -> comfy_artifacts::ByteStream {
    stream::iter([Ok(Bytes::from_static(bytes))]).boxed()
}

#[tokio::test]
#[cfg_attr(not(has_s3), ignore = "moto_server not installed")]
async fn keys_are_the_hash_under_the_prefix_and_prefixes_do_not_mix() {
    let server = S3Server::start();
    server.create_bucket("shared").await;
    let a = S3Store::new(&config(&server, "shared", "/tenant-a/files/")).unwrap();
    let b = S3Store::new(&config(&server, "shared", "tenant-b")).unwrap();
    let root = S3Store::new(&config(&server, "shared", "")).unwrap();
    let stored = a.put(body(b"hello"), UNLIMITED).await.unwrap();
    b.put(body(b"other"), UNLIMITED).await.unwrap();
    root.put(body(b"at the root"), UNLIMITED).await.unwrap();
    let hello = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
    assert_eq!(stored.id.to_string(), hello);
    let keys = keys(&raw(&server, "shared")).await;
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(
        keys.contains(&format!("tenant-a/files/sha256/{hello}")),
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.starts_with("tenant-b/sha256/")),
        "{keys:?}"
    );
    assert!(keys.iter().any(|k| k.starts_with("sha256/")), "{keys:?}");

    let listed: Vec<_> = a.list().await.unwrap().iter().map(|l| l.id).collect();
    assert_eq!(listed, vec![stored.id]);
    assert_eq!(b.head(&stored.id).await.unwrap(), None);
    assert_eq!(b.list().await.unwrap().len(), 1);
    assert_eq!(root.list().await.unwrap().len(), 1);
}

#[tokio::test]
#[cfg_attr(not(has_s3), ignore = "moto_server not installed")]
async fn list_skips_keys_that_are_not_blobs() {
    let server = S3Server::start();
    server.create_bucket("files").await;
    let store = S3Store::new(&config(&server, "files", "files")).unwrap();
    let stored = store.put(body(b"a blob"), UNLIMITED).await.unwrap();
    let raw = raw(&server, "files");
    for key in [
        "files/sha256/notes.txt".to_owned(),
        format!("files/sha256/nested/{}", stored.id),
        format!("files/sha256/{}", stored.id.to_string().to_uppercase()),
    ] {
        raw.put(&Path::from(key), Bytes::from_static(b"x").into())
            .await
            .unwrap();
    }
    let listed: Vec<_> = store.list().await.unwrap().iter().map(|l| l.id).collect();
    assert_eq!(listed, vec![stored.id]);
}

#[tokio::test]
#[cfg_attr(not(has_s3), ignore = "moto_server not installed")]
async fn stale_temps_are_removed_and_young_ones_kept() {
    let server = S3Server::start();
    server.create_bucket("files").await;
    let store = S3Store::new(&config(&server, "files", "files")).unwrap();
    let raw = raw(&server, "files");
    // What a crash between the upload and the copy leaves.
    raw.put(
        &Path::from("files/tmp/left-by-a-crash"),
        Bytes::from_static(b"x").into(),
    )
    .await
    .unwrap();
    let kept = store.put(body(b"kept"), UNLIMITED).await.unwrap();

    assert_eq!(
        store
            .remove_stale_temps(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(keys(&raw).await.len(), 2);
    assert_eq!(store.remove_stale_temps(Duration::ZERO).await.unwrap(), 1);
    assert_eq!(keys(&raw).await, vec![format!("files/sha256/{}", kept.id)]);
}

#[tokio::test]
#[cfg_attr(not(has_s3), ignore = "moto_server not installed")]
async fn a_dropped_put_aborts_its_multipart_upload() {
    let server = S3Server::start();
    server.create_bucket("files").await;
    let store = S3Store::new(&config(&server, "files", "files")).unwrap();
    // Two parts' worth, then a body that never ends: the put is dropped mid-upload, as
    // when the client's connection is closed and its handler cancelled.
    let part = Bytes::from(vec![7u8; comfy_artifacts::PART_SIZE]);
    let pending = stream::iter([Ok(part.clone()), Ok(part)])
        .chain(stream::pending())
        .boxed();
    let put = store.put(pending, UNLIMITED);
    let timed_out = tokio::time::timeout(Duration::from_secs(3), put).await;
    assert!(timed_out.is_err(), "the put should still be waiting");
    // The cleanup runs in a spawned task.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while server.unfinished_uploads("files").await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the dropped put's multipart upload was not aborted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(keys(&raw(&server, "files")).await.is_empty());
}

#[tokio::test]
#[cfg_attr(not(has_s3), ignore = "moto_server not installed")]
async fn a_missing_bucket_is_a_backend_error() {
    let server = S3Server::start();
    let store = S3Store::new(&config(&server, "never-created", "")).unwrap();
    let err = store.put(body(b"x"), UNLIMITED).await.unwrap_err();
    assert!(
        matches!(err, comfy_artifacts::ArtifactError::Backend(_)),
        "{err:?}"
    );
}

#[test]
fn config_debug_hides_the_secrets() {
    let config = S3Config {
        bucket: "b".to_owned(),
        secret_access_key: Some("very-secret".to_owned()),
        session_token: Some("token-secret".to_owned()),
        access_key_id: Some("AKIDEXAMPLE".to_owned()),
        region: "auto".to_owned(),
        ..S3Config::default()
    };
    let shown = format!("{config:?}");
    assert!(!shown.contains("very-secret"), "{shown}");
    assert!(!shown.contains("token-secret"), "{shown}");
    assert!(shown.contains("AKIDEXAMPLE"), "{shown}");
}

#[test]
fn config_refuses_half_a_key_and_a_bad_prefix() {
    let half = S3Config {
        bucket: "b".to_owned(),
        region: "auto".to_owned(),
        access_key_id: Some("AKIDEXAMPLE".to_owned()),
        ..S3Config::default()
    };
    assert!(S3Store::new(&half).is_err());
    let bad_prefix = S3Config {
        bucket: "b".to_owned(),
        region: "auto".to_owned(),
        prefix: "a/../b".to_owned(),
        ..S3Config::default()
    };
    assert!(S3Store::new(&bad_prefix).is_err());
}
