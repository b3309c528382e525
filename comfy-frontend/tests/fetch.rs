//! Fetching a frontend from an index that speaks PyPI's Simple API as JSON (wiremock
//! serving a small wheel built here): unpacked once, found in the cache
//! after, a wrong hash or a wheel without a frontend leaves nothing behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_frontend::{FrontendCache, FrontendError};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::io::Write;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn wheel(files: &[(&str, &str)]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, body) in files {
            z.start_file(*name, opts).unwrap();
            z.write_all(body.as_bytes()).unwrap();
        }
        z.finish().unwrap();
    }
    buf.into_inner()
}

async fn index(version: &str, wheel: Vec<u8>, sha256: Option<String>) -> MockServer {
    let server = MockServer::start().await;
    let hash = sha256.unwrap_or_else(|| hex::encode(Sha256::digest(&wheel)));
    Mock::given(method("GET"))
        .and(path("/simple/comfyui-frontend-package/"))
        .and(wiremock::matchers::header("accept", "application/vnd.pypi.simple.v1+json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"files": [
            {"filename": format!("comfyui_frontend_package-{version}.tar.gz"), "url": "/files/x.tar.gz", "hashes": {"sha256": "00"}},
            {"filename": "comfyui_frontend_package-0.1.0-py3-none-any.whl", "url": "/files/old.whl", "hashes": {"sha256": "00"}},
            {"filename": format!("comfyui_frontend_package-{version}-py3-none-any.whl"), "url": "../../files/w.whl", "hashes": {"sha256": hash}},
        ]})))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/files/w.whl"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(wheel))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn a_wheel_is_fetched_checked_unpacked_and_then_served_from_the_cache() {
    let w = wheel(&[
        ("comfyui_frontend_package/__init__.py", ""),
        (
            "comfyui_frontend_package/static/index.html",
            "<html>fe</html>",
        ),
        (
            "comfyui_frontend_package/static/assets/app.js",
            "console.log(1)",
        ),
        ("comfyui_frontend_package-9.9.9.dist-info/METADATA", "x"),
    ]);
    let server = index("9.9.9", w, None).await;
    let dir = tempfile::tempdir().unwrap();
    let cache = FrontendCache::new(dir.path()).with_index(server.uri().parse().unwrap());
    assert!(cache.find("9.9.9").is_none());
    let fe = cache.fetch("9.9.9").await.unwrap();
    assert_eq!(fe, dir.path().join("9.9.9/static"));
    assert_eq!(
        std::fs::read_to_string(fe.join("index.html")).unwrap(),
        "<html>fe</html>"
    );
    assert!(fe.join("assets/app.js").is_file());
    assert!(
        !dir.path().join("9.9.9/__init__.py").exists(),
        "only the static files"
    );
    let requests = server.received_requests().await.unwrap().len();
    assert_eq!(cache.fetch("9.9.9").await.unwrap(), fe);
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        requests,
        "from the cache"
    );
}

#[tokio::test]
async fn a_wrong_hash_or_a_wheel_without_a_frontend_leaves_nothing() {
    let w = wheel(&[("comfyui_frontend_package/static/index.html", "x")]);
    let server = index("1.0.0", w, Some("ab".repeat(32))).await;
    let dir = tempfile::tempdir().unwrap();
    let cache = FrontendCache::new(dir.path()).with_index(server.uri().parse().unwrap());
    let err = cache.fetch("1.0.0").await.unwrap_err();
    assert!(matches!(err, FrontendError::HashMismatch { .. }), "{err}");

    let empty = wheel(&[("comfyui_frontend_package/__init__.py", "")]);
    let server = index("1.0.1", empty, None).await;
    let cache = FrontendCache::new(dir.path()).with_index(server.uri().parse().unwrap());
    let err = cache.fetch("1.0.1").await.unwrap_err();
    assert!(matches!(err, FrontendError::NotAFrontend(_)), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    let err = cache.fetch("../x").await.unwrap_err();
    assert!(matches!(err, FrontendError::BadVersion(_)), "{err}");
}
