//! Files of jobs through the HTTP API (`tower::ServiceExt::oneshot`, a real local file
//! store in a temp dir): uploads, inputs at submit and in next-job, worker output uploads,
//! downloads with ranges, who may read what, limits, hashes, dedup and the sweep.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::http::StatusCode;
use comfy_queue::Settings;
use comfy_queue::clock::{Clock, SystemClock};
use common::{ADMIN, ALICE, BOB, Resp, TestApp, WORKER, assert_error, authed_settings, test_app};
use serde_json::{Value, json};

fn app() -> TestApp {
    test_app(authed_settings())
}

/// Some bytes that are not valid UTF-8, so nothing reads them as text by accident.
fn png(n: usize, seed: u8) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    v.extend((0..n).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    v
}

async fn upload(a: &TestApp, who: (&str, &str), name: &str, bytes: &[u8]) -> Resp {
    a.req_typed(
        "POST",
        &format!("/api/files?filename={name}"),
        &[who],
        Some("image/png"),
        bytes.to_vec(),
    )
    .await
}

async fn submit_with(a: &TestApp, who: (&str, &str), user: &str, inputs: Value) -> Resp {
    a.req(
        "POST",
        "/api/jobs",
        &[who],
        Some(
            serde_json::to_vec(
                &json!({"user_id": user, "workflow": {"1": {"class_type": "LoadImage"}}, "inputs": inputs}),
            )
            .unwrap(),
        ),
    )
    .await
}

/// Lease the next job as worker `w`: (job id, lease token, the whole leased job).
async fn lease(a: &TestApp, w: &str) -> (String, String, Value) {
    let r = a
        .req(
            "GET",
            &format!("/api/workers/next-job?worker_id={w}"),
            &[WORKER],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let job = r.json["job"].clone();
    assert!(job.is_object(), "no job: {}", r.text);
    (
        job["id"].as_str().unwrap().to_owned(),
        job["lease_token"].as_str().unwrap().to_owned(),
        job,
    )
}

async fn put_output(
    a: &TestApp,
    id: &str,
    token: &str,
    query: &str,
    headers: &[(&str, &str)],
    bytes: &[u8],
) -> Resp {
    let mut h = vec![WORKER];
    h.extend_from_slice(headers);
    a.req_typed(
        "POST",
        &format!("/api/workers/jobs/{id}/files?lease_token={token}&{query}"),
        &h,
        Some("application/octet-stream"),
        bytes.to_vec(),
    )
    .await
}

#[tokio::test]
async fn upload_submit_lease_download_and_outputs() {
    let a = app();
    let photo = png(5000, 1);
    let r = upload(&a, ALICE, "photo.png", &photo).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let sha = r.json["sha256"].as_str().unwrap().to_owned();
    assert_eq!(sha.len(), 64);
    assert_eq!(r.json["size"], photo.len());
    assert_eq!(r.json["content_type"], "image/png");
    assert_eq!(r.json["filename"], "photo.png");
    // The same bytes again: 200, still one blob.
    let again = upload(&a, ALICE, "photo.png", &photo).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.json["sha256"], sha.as_str());
    assert_eq!(a.blob_count(), 1);

    let r = submit_with(
        &a,
        ALICE,
        "alice",
        json!([{"sha256": sha, "filename": "pasted/photo.png"}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let input = &r.json["files"][0];
    assert_eq!(input["role"], "input");
    assert_eq!(input["subfolder"], "pasted");
    assert_eq!(input["filename"], "photo.png");
    assert_eq!(input["size"], photo.len());
    assert_eq!(input["content_type"], "image/png");
    let id = r.json["id"].as_str().unwrap().to_owned();
    let input_url = format!("/api/jobs/{id}/files/input/pasted/photo.png");
    assert_eq!(input["url"], input_url.as_str());

    // next-job hands the inputs to the worker, which reads them with its lease token.
    let (leased, token, job) = lease(&a, "gpu-1").await;
    assert_eq!(leased, id);
    assert_eq!(job["inputs"][0]["url"], input_url.as_str());
    assert_eq!(job["inputs"][0]["sha256"], sha.as_str());
    let r = a
        .req(
            "GET",
            &format!("{input_url}?lease_token={token}"),
            &[WORKER],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.headers["content-type"], "image/png");
    assert_eq!(
        r.headers["content-length"],
        photo.len().to_string().as_str()
    );
    assert_eq!(r.headers["etag"], format!("\"{sha}\"").as_str());
    assert_eq!(r.headers["accept-ranges"], "bytes");
    assert_eq!(r.headers["x-content-type-options"], "nosniff");
    assert_eq!(r.headers["content-security-policy"], "sandbox");
    assert_eq!(
        r.headers["content-disposition"],
        "inline; filename=\"photo.png\"; filename*=UTF-8''photo.png"
    );
    assert_eq!(r.bytes, photo);
    // The worker without the token, or with a wrong one: as if there were no job.
    for uri in [input_url.clone(), format!("{input_url}?lease_token=nope")] {
        let r = a.req("GET", &uri, &[WORKER], None).await;
        assert_error(&r, StatusCode::NOT_FOUND, "job_not_found");
    }
    // Another user: 404 too. The owner and admins (also with ?token=) read it.
    let r = a.req("GET", &input_url, &[BOB], None).await;
    assert_error(&r, StatusCode::NOT_FOUND, "job_not_found");
    for (uri, headers) in [
        (input_url.clone(), vec![ALICE]),
        (input_url.clone(), vec![ADMIN]),
        (format!("{input_url}?token=atok"), vec![]),
    ] {
        let r = a.req("GET", &uri, &headers, None).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.text);
        assert_eq!(r.bytes, photo);
    }
    let r = a.get(&input_url).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    let r = a.get(&format!("{input_url}?token=wrong")).await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    // A file the job does not have.
    let r = a
        .req(
            "GET",
            &format!("/api/jobs/{id}/files/output/none.png"),
            &[ALICE],
            None,
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "file_not_found");
    let r = a
        .req(
            "GET",
            &format!("/api/jobs/{id}/files/bogus/photo.png"),
            &[ALICE],
            None,
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "file_not_found");

    // The worker stores an output.
    let out = png(3000, 7);
    let r = put_output(
        &a,
        &id,
        &token,
        "role=output&filename=ComfyUI_00001_.png&node_id=9&kind=image",
        &[],
        &out,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["role"], "output");
    assert_eq!(r.json["subfolder"], "");
    assert_eq!(r.json["node_id"], "9");
    assert_eq!(r.json["kind"], "image");
    assert_eq!(r.json["size"], out.len());
    assert_eq!(r.json["content_type"], "image/png", "guessed from the name");
    let out_url = format!("/api/jobs/{id}/files/output/ComfyUI_00001_.png");
    assert_eq!(r.json["url"], out_url.as_str());
    // A temp file in a subfolder, with the hash declared.
    let preview = png(100, 9);
    let preview_sha = {
        let r = upload(&a, BOB, "x.png", &preview).await;
        r.json["sha256"].as_str().unwrap().to_owned()
    };
    let r = put_output(
        &a,
        &id,
        &token,
        "role=temp&filename=p.png&subfolder=previews/a",
        &[("x-content-sha256", &preview_sha.to_uppercase())],
        &preview,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        r.json["url"],
        format!("/api/jobs/{id}/files/temp/previews/a/p.png").as_str()
    );

    // The job lists its files: the input first, then in upload order.
    let r = a
        .req("GET", &format!("/api/jobs/{id}"), &[ALICE], None)
        .await;
    let files = r.json["files"].as_array().unwrap();
    let roles: Vec<&str> = files.iter().map(|f| f["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["input", "output", "temp"], "{}", r.text);
    let r = a.req("GET", "/api/jobs", &[ALICE], None).await;
    assert_eq!(r.json[0]["files"].as_array().unwrap().len(), 3);

    // The owner downloads the output: bytes, type, length.
    let r = a.req("GET", &out_url, &[ALICE], None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.bytes, out);
    assert_eq!(r.headers["content-type"], "image/png");
    assert_eq!(r.headers["content-length"], out.len().to_string().as_str());
    // If-None-Match with its ETag: 304.
    let etag = r.headers["etag"].to_str().unwrap().to_owned();
    let r = a
        .req("GET", &out_url, &[ALICE, ("if-none-match", &etag)], None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);

    // Ranges.
    let n = out.len();
    for (range, want) in [
        ("bytes=0-3", 0..4),
        ("bytes=10-", 10..n),
        ("bytes=-5", n - 5..n),
        ("bytes=100-100000", 100..n),
    ] {
        let r = a
            .req("GET", &out_url, &[ALICE, ("range", range)], None)
            .await;
        assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(
            r.headers["content-range"],
            format!("bytes {}-{}/{n}", want.start, want.end - 1).as_str()
        );
        assert_eq!(
            r.headers["content-length"],
            (want.end - want.start).to_string().as_str()
        );
        assert_eq!(r.bytes, out[want].to_vec(), "{range}");
    }
    let r = a
        .req(
            "GET",
            &out_url,
            &[ALICE, ("range", &format!("bytes={n}-"))],
            None,
        )
        .await;
    assert_error(
        &r,
        StatusCode::RANGE_NOT_SATISFIABLE,
        "range_not_satisfiable",
    );
    assert_eq!(r.headers["content-range"], format!("bytes */{n}").as_str());
    let r = a
        .req("GET", &out_url, &[ALICE, ("range", "bytes=0-1,5-9")], None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "several ranges: the whole file");
    assert_eq!(r.bytes, out);

    // Uploading the same name again replaces the entry and keeps its place.
    let out2 = png(1000, 3);
    let r = put_output(&a, &id, &token, "filename=ComfyUI_00001_.png", &[], &out2).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = a
        .req("GET", &format!("/api/jobs/{id}"), &[ALICE], None)
        .await;
    let files = r.json["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    assert_eq!(files[1]["size"], out2.len());
    let r = a.req("GET", &out_url, &[ALICE], None).await;
    assert_eq!(r.bytes, out2);

    // After the job completed the lease is gone: uploads and worker reads are refused.
    let r = a
        .req(
            "POST",
            &format!("/api/workers/complete-job?job_id={id}&lease_token={token}"),
            &[WORKER],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let r = put_output(&a, &id, &token, "filename=late.png", &[], &out).await;
    assert_error(&r, StatusCode::CONFLICT, "lease_conflict");
    let r = a
        .req(
            "GET",
            &format!("{out_url}?lease_token={token}"),
            &[WORKER],
            None,
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "job_not_found");
    assert_eq!(a.temp_file_count(), 0);
}

#[tokio::test]
async fn a_stale_lease_cannot_upload() {
    let a = test_app(Settings {
        lease_ms: 1000,
        legacy_lease_ms: 1000,
        ..authed_settings()
    });
    a.submit_as(ADMIN, "alice").await;
    let (id, old, _) = lease(&a, "gpu-1").await;
    a.clock.advance(5000);
    a.state.reap_once().await.unwrap();
    let (again, new, _) = lease(&a, "gpu-2").await;
    assert_eq!(again, id);
    let r = put_output(&a, &id, &old, "filename=o.png", &[], b"x").await;
    assert_error(&r, StatusCode::CONFLICT, "lease_conflict");
    let r = put_output(&a, &id, &new, "filename=o.png", &[], b"x").await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // A job id that names nothing, and one that is not a UUID.
    let r = put_output(
        &a,
        &uuid::Uuid::new_v4().to_string(),
        &new,
        "filename=o.png",
        &[],
        b"x",
    )
    .await;
    assert_error(&r, StatusCode::NOT_FOUND, "job_not_found");
    let r = put_output(&a, "nope", &new, "filename=o.png", &[], b"x").await;
    assert_error(&r, StatusCode::NOT_FOUND, "job_not_found");
    // Users may not upload as workers.
    let r = a
        .req_typed(
            "POST",
            &format!("/api/workers/jobs/{id}/files?lease_token={new}&filename=o.png"),
            &[ALICE],
            None,
            b"x".to_vec(),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn a_hash_mismatch_stores_nothing() {
    let a = app();
    a.submit_as(ADMIN, "alice").await;
    let (id, token, _) = lease(&a, "gpu-1").await;
    let wrong = "ab".repeat(32);
    let r = put_output(
        &a,
        &id,
        &token,
        "filename=o.png",
        &[("x-content-sha256", &wrong)],
        &png(2000, 1),
    )
    .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "hash_mismatch");
    assert_eq!(a.blob_count(), 0);
    assert_eq!(a.temp_file_count(), 0);
    let r = a
        .req("GET", &format!("/api/jobs/{id}"), &[ADMIN], None)
        .await;
    assert_eq!(r.json["files"], json!([]));
    // The same for a user upload, and a malformed declared hash.
    let r = a
        .req_typed(
            "POST",
            "/api/files?filename=a.png",
            &[ALICE, ("x-content-sha256", &wrong)],
            None,
            png(10, 1),
        )
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "hash_mismatch");
    let r = a
        .req_typed(
            "POST",
            "/api/files?filename=a.png",
            &[ALICE, ("x-content-sha256", "xyz")],
            None,
            png(10, 1),
        )
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_sha256");
    assert_eq!(a.blob_count(), 0);
}

#[tokio::test]
async fn inputs_must_be_the_users_uploads() {
    let a = app();
    let r = upload(&a, ALICE, "a.png", &png(10, 1)).await;
    let sha = r.json["sha256"].as_str().unwrap().to_owned();
    let unknown = "cd".repeat(32);
    let r = submit_with(
        &a,
        ALICE,
        "alice",
        json!([{"sha256": sha, "filename": "a.png"}, {"sha256": unknown, "filename": "b.png"}]),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "unknown_file");
    assert_eq!(r.json["error"]["field"], "inputs[1].sha256");
    // Bob cannot use Alice's upload.
    let r = submit_with(
        &a,
        BOB,
        "bob",
        json!([{"sha256": sha, "filename": "a.png"}]),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "unknown_file");
    assert_eq!(r.json["error"]["field"], "inputs[0].sha256");
    // An admin submitting for Alice may use it.
    let r = submit_with(
        &a,
        ADMIN,
        "alice",
        json!([{"sha256": sha, "filename": "a.png"}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // Nothing was stored by the refused submits.
    let r = a.req("GET", "/api/jobs", &[ADMIN], None).await;
    assert_eq!(r.json.as_array().unwrap().len(), 1);

    for (inputs, status, code, field) in [
        (
            json!([{"sha256": "12", "filename": "a.png"}]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_sha256",
            "inputs[0].sha256",
        ),
        (
            json!([{"sha256": sha, "filename": "../a.png"}]),
            StatusCode::BAD_REQUEST,
            "invalid_filename",
            "inputs[0].filename",
        ),
        (
            json!([{"sha256": sha, "filename": "/etc/a.png"}]),
            StatusCode::BAD_REQUEST,
            "invalid_filename",
            "inputs[0].filename",
        ),
        (
            json!([{"sha256": sha, "filename": "a\u{0}.png"}]),
            StatusCode::BAD_REQUEST,
            "invalid_filename",
            "inputs[0].filename",
        ),
        (
            json!([{"sha256": sha, "filename": "x//a.png"}]),
            StatusCode::BAD_REQUEST,
            "invalid_filename",
            "inputs[0].filename",
        ),
        (
            json!([{"sha256": sha, "filename": format!("{}.png", "a".repeat(300))}]),
            StatusCode::BAD_REQUEST,
            "invalid_filename",
            "inputs[0].filename",
        ),
        (
            json!([{"sha256": sha, "filename": "a.png"}, {"sha256": sha, "filename": "a.png"}]),
            StatusCode::BAD_REQUEST,
            "invalid_filename",
            "inputs[1].filename",
        ),
        (
            json!("a.png"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_type",
            "inputs",
        ),
        (
            json!([{"sha256": 1, "filename": "a.png"}]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_type",
            "inputs[0].sha256",
        ),
    ] {
        let r = submit_with(&a, ALICE, "alice", inputs.clone()).await;
        assert_error(&r, status, code);
        assert_eq!(r.json["error"]["field"], field, "{inputs}: {}", r.text);
    }
}

#[tokio::test]
async fn upload_names_users_and_limits() {
    let a = test_app(Settings {
        max_file_bytes: 1000,
        ..authed_settings()
    });
    // Over the limit, with and without a declared length.
    let r = upload(&a, ALICE, "big.png", &png(2000, 1)).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let r = a
        .req_typed(
            "POST",
            "/api/files?filename=big.png",
            &[ALICE, ("content-length", "2008")],
            None,
            png(2000, 1),
        )
        .await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    assert_eq!(a.blob_count(), 0);
    assert_eq!(a.temp_file_count(), 0);
    a.submit_as(ADMIN, "alice").await;
    let (id, token, _) = lease(&a, "gpu-1").await;
    let r = put_output(&a, &id, &token, "filename=o.png", &[], &png(2000, 1)).await;
    assert_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let r = upload(&a, ALICE, "ok.png", &png(900, 1)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    // File names.
    for name in ["..", "a%2Fb.png", "a%00.png", "", "%2E"] {
        let r = upload(&a, ALICE, name, b"x").await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_filename");
    }
    let r = a
        .req_typed("POST", "/api/files", &[ALICE], None, b"x".to_vec())
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "missing_field");
    for q in [
        "filename=o.png&subfolder=../x",
        "filename=o.png&subfolder=/abs",
        "filename=a/b.png",
    ] {
        let r = put_output(&a, &id, &token, q, &[], b"x").await;
        assert_error(&r, StatusCode::BAD_REQUEST, "invalid_filename");
    }
    let r = put_output(&a, &id, &token, "filename=o.png&role=input", &[], b"x").await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_role");
    let r = put_output(
        &a,
        &id,
        &token,
        &format!("filename=o.png&kind={}", "k".repeat(201)),
        &[],
        b"x",
    )
    .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "invalid_value");

    // Who uploads as whom: a user only as themself; an admin names the user.
    let r = a
        .req_typed(
            "POST",
            "/api/files?filename=a.png&user_id=bob",
            &[ALICE],
            None,
            b"x".to_vec(),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = a
        .req_typed(
            "POST",
            "/api/files?filename=a.png",
            &[ADMIN],
            None,
            b"x".to_vec(),
        )
        .await;
    assert_error(&r, StatusCode::UNPROCESSABLE_ENTITY, "missing_field");
    let r = a
        .req_typed(
            "POST",
            "/api/files?filename=a.png&user_id=bob",
            &[ADMIN],
            None,
            b"x".to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert!(
        a.state
            .store
            .upload("bob", r.json["sha256"].as_str().unwrap())
            .await
            .unwrap()
            .is_some()
    );
    let r = a
        .req_typed(
            "POST",
            "/api/files?filename=a.png",
            &[WORKER],
            None,
            b"x".to_vec(),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = a
        .req_typed(
            "POST",
            "/api/files?filename=a.png",
            &[],
            None,
            b"x".to_vec(),
        )
        .await;
    assert_error(&r, StatusCode::UNAUTHORIZED, "unauthorized");
    // The declared content type is kept unless it is generic.
    let r = a
        .req_typed(
            "POST",
            "/api/files?filename=a.bin",
            &[ALICE],
            Some("image/webp"),
            b"y".to_vec(),
        )
        .await;
    assert_eq!(r.json["content_type"], "image/webp");
    let r = a
        .req_typed(
            "POST",
            "/api/files?filename=a.mp4",
            &[ALICE],
            Some("application/octet-stream"),
            b"z".to_vec(),
        )
        .await;
    assert_eq!(r.json["content_type"], "video/mp4");
}

#[tokio::test]
async fn the_same_bytes_of_two_jobs_are_one_blob() {
    let a = app();
    a.submit_as(ADMIN, "alice").await;
    a.submit_as(ADMIN, "bob").await;
    let (j1, t1, _) = lease(&a, "gpu-1").await;
    let (j2, t2, _) = lease(&a, "gpu-2").await;
    let bytes = png(4000, 5);
    for (id, token) in [(&j1, &t1), (&j2, &t2)] {
        let r = put_output(&a, id, token, "filename=same.png", &[], &bytes).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    }
    assert_eq!(a.blob_count(), 1);
    for id in [&j1, &j2] {
        let r = a
            .req(
                "GET",
                &format!("/api/jobs/{id}/files/output/same.png"),
                &[ADMIN],
                None,
            )
            .await;
        assert_eq!(r.bytes, bytes);
    }
}

#[tokio::test]
async fn the_sweep_forgets_expired_files_and_deletes_their_blobs() {
    let a = app();
    // The blobs' modification times are real; the clock starts at the real time.
    let start = SystemClock.now_ms();
    a.clock.set(start);
    let retention = a.state.settings.file_retention_ms;
    let grace = a.state.settings.upload_grace_ms;

    // An upload nobody names, one a pending job names, and a finished job's output.
    let lonely = upload(&a, ALICE, "lonely.png", &png(100, 1)).await;
    assert_eq!(lonely.status, StatusCode::CREATED);
    let named = upload(&a, ALICE, "named.png", &png(100, 2)).await;
    let named_sha = named.json["sha256"].as_str().unwrap().to_owned();
    a.submit_as(ADMIN, "bob").await;
    let (done, token, _) = lease(&a, "gpu-1").await;
    let out = put_output(&a, &done, &token, "filename=o.png", &[], &png(100, 3)).await;
    assert_eq!(out.status, StatusCode::CREATED);
    let r = a
        .req(
            "POST",
            &format!("/api/workers/complete-job?job_id={done}&lease_token={token}"),
            &[WORKER],
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let waiting = submit_with(
        &a,
        ALICE,
        "alice",
        json!([{"sha256": named_sha, "filename": "named.png"}]),
    )
    .await;
    assert_eq!(waiting.status, StatusCode::CREATED, "{}", waiting.text);
    let waiting = waiting.json["id"].as_str().unwrap().to_owned();
    assert_eq!(a.blob_count(), 3);

    // Nothing is due yet.
    let report = a.state.sweep_files_once().await.unwrap();
    assert_eq!(report, comfy_queue::SweepReport::default());

    // Past the grace period: the lonely upload is forgotten and its blob deleted; the named
    // one stays referenced by the pending job; the finished job's output is kept (retention).
    a.clock.set(start + grace + 60_000);
    let report = a.state.sweep_files_once().await.unwrap();
    assert_eq!(report.uploads, 2, "{report:?}");
    assert_eq!(report.jobs, 0);
    assert_eq!(report.blobs_deleted, 1, "{report:?}");
    assert_eq!(a.blob_count(), 2);
    let r = a
        .req(
            "GET",
            &format!("/api/jobs/{waiting}/files/input/named.png"),
            &[ALICE],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Its upload is forgotten: a new submit naming it is refused.
    let r = submit_with(
        &a,
        ALICE,
        "alice",
        json!([{"sha256": named_sha, "filename": "n.png"}]),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "unknown_file");

    // Past the retention: the finished job's files go, the pending job's stay.
    a.clock.set(start + retention + grace + 120_000);
    let report = a.state.sweep_files_once().await.unwrap();
    assert_eq!(report.jobs, 1, "{report:?}");
    assert_eq!(report.blobs_deleted, 1, "{report:?}");
    assert_eq!(a.blob_count(), 1);
    let r = a
        .req("GET", &format!("/api/jobs/{done}"), &[ADMIN], None)
        .await;
    assert_eq!(r.json["files"], json!([]));
    let r = a
        .req(
            "GET",
            &format!("/api/jobs/{done}/files/output/o.png"),
            &[ADMIN],
            None,
        )
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "file_not_found");
    let r = a
        .req(
            "GET",
            &format!("/api/jobs/{waiting}/files/input/named.png"),
            &[ALICE],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn a_retried_attempt_starts_without_the_earlier_outputs() {
    let a = app();
    a.submit_as(ADMIN, "alice").await;
    let (id, token, _) = lease(&a, "gpu-1").await;
    let r = put_output(&a, &id, &token, "filename=half.png", &[], b"half").await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = a
        .req(
            "POST",
            &format!("/api/workers/fail-job?job_id={id}&lease_token={token}"),
            &[WORKER],
            Some(br#"{"error": "oom", "retry": true}"#.to_vec()),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    a.clock.advance(3_600_000);
    let (again, _, job) = lease(&a, "gpu-2").await;
    assert_eq!(again, id);
    assert_eq!(job["inputs"], json!([]));
    let r = a
        .req("GET", &format!("/api/jobs/{id}"), &[ADMIN], None)
        .await;
    assert_eq!(r.json["files"], json!([]));
}

trait SubmitAs {
    async fn submit_as(&self, who: (&str, &str), user: &str) -> String;
}

impl SubmitAs for TestApp {
    async fn submit_as(&self, who: (&str, &str), user: &str) -> String {
        let r = submit_with(self, who, user, json!([])).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.json["id"].as_str().unwrap().to_owned()
    }
}

/// The same round trip on the Redis backend: upload, input at submit and in next-job,
/// worker read, output upload, listing and download.
#[tokio::test]
#[cfg_attr(not(has_redis), ignore = "redis-server not installed")]
async fn files_over_redis() {
    let server = common::RedisServer::start();
    let store = comfy_queue::store::redis::RedisStore::connect(&server.url(), "files")
        .await
        .unwrap();
    let a = common::test_app_with(
        std::sync::Arc::new(store),
        authed_settings(),
        Box::new(server),
    );
    let photo = png(700, 4);
    let r = upload(&a, ALICE, "photo.png", &photo).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let sha = r.json["sha256"].as_str().unwrap().to_owned();
    assert_eq!(
        upload(&a, ALICE, "photo.png", &photo).await.status,
        StatusCode::OK
    );
    let r = submit_with(&a, ALICE, "bob", json!([])).await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = submit_with(
        &a,
        ALICE,
        "alice",
        json!([{"sha256": "ef".repeat(32), "filename": "x.png"}]),
    )
    .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "unknown_file");
    let r = submit_with(
        &a,
        ALICE,
        "alice",
        json!([{"sha256": sha, "filename": "in/photo.png"}]),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.json["files"][0]["subfolder"], "in");
    let (id, token, job) = lease(&a, "gpu-1").await;
    let url = job["inputs"][0]["url"].as_str().unwrap().to_owned();
    let r = a
        .req(
            "GET",
            &format!("{url}?lease_token={token}"),
            &[WORKER],
            None,
        )
        .await;
    assert_eq!(r.bytes, photo);
    let out = png(900, 8);
    let r = put_output(&a, &id, &token, "filename=o.png&kind=image", &[], &out).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let r = put_output(&a, &id, "stale", "filename=o.png", &[], &out).await;
    assert_error(&r, StatusCode::CONFLICT, "lease_conflict");
    let r = a
        .req("GET", &format!("/api/jobs/{id}"), &[ALICE], None)
        .await;
    let files = r.json["files"].as_array().unwrap();
    assert_eq!(files.len(), 2, "{}", r.text);
    assert_eq!(files[1]["kind"], "image");
    let r = a
        .req(
            "GET",
            files[1]["url"].as_str().unwrap(),
            &[ALICE, ("range", "bytes=-100")],
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes, out[out.len() - 100..].to_vec());
    let r = a
        .req("GET", files[1]["url"].as_str().unwrap(), &[BOB], None)
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "job_not_found");
}
