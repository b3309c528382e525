//! The workers' node catalogues over HTTP (`tower::ServiceExt::oneshot`, a real local file
//! store in a temp dir): `PUT /api/workers/catalogues/{sha256}`, registration with
//! `catalogue`, `GET /api/catalogues` and `GET /api/catalogues/{sha256}`: who may call them,
//! hashes, limits, what is listed, and that the sweep keeps what a registration names.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use comfy_queue::Settings;
use comfy_queue::clock::{Clock, SystemClock};
use common::{ADMIN, ALICE, Resp, TestApp, WORKER, assert_error, authed_settings, test_app};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const BAD: (&str, &str) = ("authorization", "Bearer nope");

fn app() -> TestApp {
    test_app(authed_settings())
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A small catalogue in `/object_info`'s shape, one per `ckpt` (the loader's choices).
fn catalogue(ckpt: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "CheckpointLoaderSimple": {
            "input": {"required": {"ckpt_name": [[ckpt]]}},
            "output": ["MODEL", "CLIP", "VAE"],
            "name": "CheckpointLoaderSimple",
            "category": "loaders"
        },
        "SaveImage": {"input": {"required": {"images": ["IMAGE"]}}, "output": []}
    }))
    .unwrap()
}

async fn put(a: &TestApp, who: &[(&str, &str)], id: &str, body: &[u8]) -> Resp {
    a.req_typed(
        "PUT",
        &format!("/api/workers/catalogues/{id}"),
        who,
        Some("application/json"),
        body.to_vec(),
    )
    .await
}

async fn register(a: &TestApp, worker: &str, version: &str, catalogue: Option<&str>) -> Resp {
    let mut body = json!({"worker_id": worker, "comfyui_version": version, "line": "cancel-api"});
    if let Some(c) = catalogue {
        body["catalogue"] = json!(c);
    }
    a.req(
        "POST",
        "/api/workers/register",
        &[WORKER],
        Some(serde_json::to_vec(&body).unwrap()),
    )
    .await
}

#[tokio::test]
async fn a_worker_publishes_its_catalogue_and_every_caller_reads_it() {
    let a = app();
    let bytes = catalogue("flux2.safetensors");
    let id = sha(&bytes);

    let r = put(&a, &[WORKER], &id, &bytes).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json, json!({"sha256": id, "size": bytes.len()}));
    // The same bytes again store nothing new.
    let r = put(&a, &[WORKER], &id, &bytes).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json, json!({"sha256": id, "size": bytes.len()}));
    assert_eq!(a.blob_count(), 1);

    // Not served before a registration names it.
    let r = a
        .req("GET", &format!("/api/catalogues/{id}"), &[ALICE], None)
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "catalogue_not_found");

    // The hash's case does not matter; the record keeps it lowercase.
    let r = register(&a, "gpu-1", "0.33.0", Some(&id.to_ascii_uppercase())).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.json["catalogue"], id.as_str());
    let r = a.req("GET", "/api/workers", &[ADMIN], None).await;
    assert_eq!(r.json[0]["worker_id"], "gpu-1");
    assert_eq!(r.json[0]["catalogue"], id.as_str());

    for who in [ALICE, WORKER, ADMIN] {
        let r = a.req("GET", "/api/catalogues", &[who], None).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(
            r.json,
            json!({"catalogues": [{"sha256": id, "size": bytes.len(), "comfyui_version": "0.33.0",
                                   "line": "cancel-api", "workers": ["gpu-1"]}]})
        );
        let r = a
            .req("GET", &format!("/api/catalogues/{id}"), &[who], None)
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        assert_eq!(r.bytes, bytes);
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(
            r.headers["content-length"],
            bytes.len().to_string().as_str()
        );
        assert_eq!(r.headers["etag"], format!("\"{id}\"").as_str());
        let cache = r.headers["cache-control"].to_str().unwrap();
        assert!(cache.contains("immutable"), "{cache}");
    }
    let r = a
        .req(
            "GET",
            &format!("/api/catalogues/{id}"),
            &[ALICE, ("if-none-match", &format!("\"{id}\""))],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    assert!(r.bytes.is_empty());
}

#[tokio::test]
async fn who_may_call_the_catalogue_routes() {
    let a = app();
    let bytes = catalogue("a.safetensors");
    let id = sha(&bytes);
    // Uploads are a worker's (or an admin's).
    assert_error(
        &put(&a, &[], &id, &bytes).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &put(&a, &[BAD], &id, &bytes).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &put(&a, &[ALICE], &id, &bytes).await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_eq!(a.blob_count(), 0);
    assert_eq!(
        put(&a, &[ADMIN], &id, &bytes).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        register(&a, "gpu-1", "0.11.1", Some(&id)).await.status,
        StatusCode::OK
    );
    // Reads need someone authenticated: anonymous callers and bad tokens get 401.
    for path in [
        "/api/catalogues".to_owned(),
        format!("/api/catalogues/{id}"),
    ] {
        assert_error(
            &a.req("GET", &path, &[], None).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
        assert_error(
            &a.req("GET", &path, &[BAD], None).await,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
        assert_eq!(
            a.req("GET", &path, &[ALICE], None).await.status,
            StatusCode::OK
        );
    }
    // With auth off, anyone.
    let open = test_app(Settings::default());
    assert_eq!(
        put(&open, &[], &id, &bytes).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        register(&open, "gpu-1", "0.11.1", Some(&id)).await.status,
        StatusCode::OK
    );
    let r = open.req("GET", "/api/catalogues", &[], None).await;
    assert_eq!(r.json["catalogues"][0]["sha256"], id.as_str());
}

#[tokio::test]
async fn a_body_with_another_hash_is_422_and_nothing_is_kept() {
    let a = app();
    let bytes = catalogue("a.safetensors");
    let other = sha(b"something else");
    let r = put(&a, &[WORKER], &other, &bytes).await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "hash_mismatch");
    assert_eq!(r.json["error"]["field"], "sha256");
    assert_eq!(a.blob_count(), 0);
    // Not 64 hex digits.
    for bad in ["abc", &"g".repeat(64), &"a".repeat(65)] {
        let r = put(&a, &[WORKER], bad, &bytes).await;
        assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_sha256");
    }
    assert_eq!(a.blob_count(), 0);
    // A registration naming bytes nobody stored is refused.
    let r = register(&a, "gpu-1", "0.11.1", Some(&other)).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "unknown_catalogue");
    assert_eq!(r.json["error"]["field"], "catalogue");
    let r = register(&a, "gpu-1", "0.11.1", Some("not-a-hash")).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "unknown_catalogue");
    // Nothing was registered.
    assert_eq!(
        a.req("GET", "/api/workers", &[ADMIN], None).await.json,
        json!([])
    );
}

#[tokio::test]
async fn a_catalogue_over_the_limit_is_413() {
    let a = test_app(Settings {
        max_catalogue_bytes: 100,
        ..authed_settings()
    });
    let bytes = catalogue("a-long-model-name-that-makes-this-catalogue-larger.safetensors");
    assert!(bytes.len() > 100);
    let id = sha(&bytes);
    // Told at once by Content-Length ...
    let len = bytes.len().to_string();
    let r = put(&a, &[WORKER, ("content-length", &len)], &id, &bytes).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // ... or when the stream passes the limit.
    let r = put(&a, &[WORKER], &id, &bytes).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert!(
        r.json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--max-catalogue-bytes")
    );
    assert_eq!(a.blob_count(), 0);
    // A small one passes.
    let small = br#"{"A": {"input": {}}}"#;
    assert_eq!(
        put(&a, &[WORKER], &sha(small), small).await.status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn only_an_object_of_node_classes_is_a_catalogue() {
    let a = app();
    for body in [&b"[1, 2]"[..], br#"{"A": 1}"#, b"{", b"not json"] {
        let r = put(&a, &[WORKER], &sha(body), body).await;
        assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_catalogue");
        // Nothing may name it.
        let r = register(&a, "gpu-1", "0.11.1", Some(&sha(body))).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "unknown_catalogue");
    }
    assert_eq!(a.blob_count(), 0);
    // Neither can a registration name another file of the store (a user's upload).
    let png = b"\x89PNG\r\n\x1a\n user bytes";
    let r = a
        .req_typed(
            "POST",
            "/api/files?filename=p.png",
            &[ALICE],
            Some("image/png"),
            png.to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = register(&a, "gpu-1", "0.11.1", Some(&sha(png))).await;
    assert_error(&r, StatusCode::BAD_REQUEST, "unknown_catalogue");
    let r = a
        .req(
            "GET",
            &format!("/api/catalogues/{}", sha(png)),
            &[ALICE],
            None,
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "catalogue_not_found");
    // Its upload is kept.
    assert_eq!(a.blob_count(), 1);
}

#[tokio::test]
async fn an_unregistered_or_malformed_hash_is_404() {
    let a = app();
    for id in [sha(b"nobody"), "xyz".to_owned(), "0".repeat(63)] {
        let r = a
            .req("GET", &format!("/api/catalogues/{id}"), &[ALICE], None)
            .await;
        assert_error(&r, StatusCode::NOT_FOUND, "catalogue_not_found");
    }
    // Stored but named by no registration: 404 too. Once a worker re-registers without it,
    // it is no longer served.
    let bytes = catalogue("a.safetensors");
    let id = sha(&bytes);
    assert_eq!(
        put(&a, &[WORKER], &id, &bytes).await.status,
        StatusCode::CREATED
    );
    let path = format!("/api/catalogues/{id}");
    assert_error(
        &a.req("GET", &path, &[ALICE], None).await,
        StatusCode::NOT_FOUND,
        "catalogue_not_found",
    );
    register(&a, "gpu-1", "0.11.1", Some(&id)).await;
    assert_eq!(
        a.req("GET", &path, &[ALICE], None).await.status,
        StatusCode::OK
    );
    register(&a, "gpu-1", "0.11.1", None).await;
    assert_error(
        &a.req("GET", &path, &[ALICE], None).await,
        StatusCode::NOT_FOUND,
        "catalogue_not_found",
    );
}

#[tokio::test]
async fn the_listing_has_the_live_workers_catalogues_newest_version_first() {
    let a = app();
    let lease = a.state.settings.lease_ms;
    let old = catalogue("sd15.safetensors");
    let new = catalogue("flux2.safetensors");
    let gone = catalogue("gone.safetensors");
    for b in [&old, &new, &gone] {
        assert_eq!(
            put(&a, &[WORKER], &sha(b), b).await.status,
            StatusCode::CREATED
        );
    }
    // A worker not seen for three leases is not listed, nor is one without a catalogue.
    register(&a, "gpu-gone", "0.33.0", Some(&sha(&gone))).await;
    a.clock.advance(3 * lease);
    register(&a, "gpu-old", "0.9.2", Some(&sha(&old))).await;
    register(&a, "gpu-b", "0.33.0", Some(&sha(&new))).await;
    register(&a, "gpu-a", "0.33.0", Some(&sha(&new))).await;
    register(&a, "gpu-bare", "0.33.0", None).await;
    let r = a.req("GET", "/api/catalogues", &[ALICE], None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let list = r.json["catalogues"].as_array().unwrap();
    let summary: Vec<(Value, Value, Value)> = list
        .iter()
        .map(|c| {
            (
                c["sha256"].clone(),
                c["comfyui_version"].clone(),
                c["workers"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (json!(sha(&new)), json!("0.33.0"), json!(["gpu-a", "gpu-b"])),
            (json!(sha(&old)), json!("0.9.2"), json!(["gpu-old"])),
        ]
    );
    assert_eq!(list[0]["size"], new.len());
    // The stale worker's catalogue is still served by hash (a registration names it).
    let r = a
        .req(
            "GET",
            &format!("/api/catalogues/{}", sha(&gone)),
            &[ALICE],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // A keep-alive brings it back to the listing.
    let r = a
        .req(
            "POST",
            "/api/workers/heartbeat",
            &[WORKER],
            Some(br#"{"worker_id": "gpu-gone"}"#.to_vec()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = a.req("GET", "/api/catalogues", &[ALICE], None).await;
    let workers: Vec<Value> = r.json["catalogues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["workers"].clone())
        .collect();
    assert_eq!(workers.len(), 3, "{}", r.text);
    assert!(workers.contains(&json!(["gpu-gone"])), "{}", r.text);
}

#[tokio::test]
async fn the_sweep_keeps_a_registered_catalogue_and_deletes_a_released_one() {
    let a = app();
    // The blobs' modification times are real; the clock starts at the real time.
    let start = SystemClock.now_ms();
    a.clock.set(start);
    let grace = a.state.settings.upload_grace_ms;
    let kept = catalogue("kept.safetensors");
    let lonely = catalogue("lonely.safetensors");
    for b in [&kept, &lonely] {
        assert_eq!(
            put(&a, &[WORKER], &sha(b), b).await.status,
            StatusCode::CREATED
        );
    }
    register(&a, "gpu-1", "0.33.0", Some(&sha(&kept))).await;
    assert_eq!(a.blob_count(), 2);

    // Past the grace period: the catalogue nobody registered goes, the registered one stays.
    a.clock.set(start + grace + 60_000);
    let report = a.state.sweep_files_once().await.unwrap();
    assert_eq!(report.blobs_deleted, 1, "{report:?}");
    assert_eq!(a.blob_count(), 1);
    let r = a
        .req(
            "GET",
            &format!("/api/catalogues/{}", sha(&kept)),
            &[ALICE],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.bytes, kept);

    // Once the worker registers another one, the old one is swept in its turn.
    let changed = catalogue("kept-and-a-new-model.safetensors");
    assert_eq!(
        put(&a, &[WORKER], &sha(&changed), &changed).await.status,
        StatusCode::CREATED
    );
    register(&a, "gpu-1", "0.33.0", Some(&sha(&changed))).await;
    a.clock.set(start + 2 * grace + 120_000);
    let report = a.state.sweep_files_once().await.unwrap();
    assert_eq!(report.blobs_deleted, 1, "{report:?}");
    assert_eq!(a.blob_count(), 1);
    let r = a
        .req(
            "GET",
            &format!("/api/catalogues/{}", sha(&changed)),
            &[ALICE],
            None,
        )
        .await;
    assert_eq!(r.bytes, changed);
}

#[tokio::test]
async fn the_openapi_document_has_the_catalogue_routes() {
    let a = app();
    let doc = a.get("/api/openapi.json").await.json;
    let paths = &doc["paths"];
    assert!(paths["/api/workers/catalogues/{sha256}"]["put"].is_object());
    assert!(paths["/api/catalogues"]["get"].is_object());
    assert!(paths["/api/catalogues/{sha256}"]["get"].is_object());
    let reg = &doc["components"]["schemas"]["RegisterRequest"]["properties"]["catalogue"];
    assert!(reg.is_object(), "{reg}");
    assert!(doc["components"]["schemas"]["CatalogueList"].is_object());
}

#[tokio::test]
async fn no_input_to_the_catalogue_routes_causes_a_5xx() {
    let a = test_app(Settings::default());
    let bodies: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"null".to_vec(),
        b"{".to_vec(),
        vec![0xff, 0xfe, 0x00],
        b"{\"worker_id\": \"w\", \"catalogue\": 5}".to_vec(),
        b"{\"worker_id\": \"w\", \"catalogue\": []}".to_vec(),
        b"{\"worker_id\": \"w\", \"catalogue\": \"\"}".to_vec(),
    ];
    let mut routes = vec![
        ("PUT", "/api/workers/catalogues/%00".to_owned()),
        ("PUT", "/api/workers/catalogues/%ff".to_owned()),
        ("PUT", format!("/api/workers/catalogues/{}", "z".repeat(64))),
        ("GET", "/api/catalogues/%ff".to_owned()),
        ("GET", "/api/catalogues?x=%ZZ".to_owned()),
        ("POST", "/api/workers/register".to_owned()),
        ("DELETE", "/api/catalogues".to_owned()),
    ];
    for body in &bodies {
        routes.push(("PUT", format!("/api/workers/catalogues/{}", sha(body))));
    }
    for (method, uri) in &routes {
        for body in &bodies {
            let r = a.req(method, uri, &[], Some(body.clone())).await;
            assert!(
                r.status.as_u16() < 500,
                "{method} {uri} {:?} -> {} {}",
                String::from_utf8_lossy(body),
                r.status,
                r.text
            );
            if r.status.is_client_error() {
                assert!(
                    r.json["error"]["code"].is_string(),
                    "{method} {uri}: {}",
                    r.text
                );
            }
        }
    }
}
