//! The file steps against a queue and a ComfyUI played by wiremock.

use super::*;
use crate::queue_client::FileRole;
use comfy_adapter::model::output::{FileRef, Output, OutputKind};
use comfy_adapter::{Capabilities, Line, Timeouts, connect};
use std::time::Duration;
use uuid::Uuid;
use wiremock::matchers::{body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Valid UTF-8, so wiremock can match the multipart body as text.
const PNG: &[u8] = b"PNG user one's photo";

fn capabilities() -> Capabilities {
    Capabilities {
        jobs_api: false,
        jobs_cancel_api: false,
        cancelled_status: false,
        uuid_prompt_ids: false,
        missing_node_type_errors: false,
        targeted_interrupt: true,
        multi_user: false,
        preview_metadata: false,
        max_upload_size: None,
    }
}

struct Rig {
    queue: MockServer,
    comfy: MockServer,
    client: QueueClient,
    adapter: Arc<dyn ComfyAdapter>,
    catalogue: CatalogueCache,
}

impl Rig {
    async fn new() -> Rig {
        let queue = MockServer::start().await;
        let comfy = MockServer::start().await;
        let client = QueueClient::new(
            &queue.uri(),
            Some("worker-token".into()),
            "w1",
            Duration::from_secs(5),
        )
        .unwrap();
        let adapter = connect(
            &comfy.uri(),
            Line::CancelApi,
            capabilities(),
            Timeouts::default(),
            None,
        )
        .unwrap();
        // The recorded catalogue of the newest recorded release.
        let text = std::fs::read_to_string(format!(
            "{}/../fixtures/comfyui-0.33.0/018-object_info-full.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let recorded: Value = serde_json::from_str(&text).unwrap();
        Mock::given(method("GET"))
            .and(path("/object_info"))
            .respond_with(ResponseTemplate::new(200).set_body_json(&recorded["response"]["body"]))
            .mount(&comfy)
            .await;
        Rig {
            queue,
            comfy,
            client,
            adapter,
            catalogue: CatalogueCache::new(),
        }
    }

    async fn prepare(
        &self,
        job: &LeasedJob,
        prompt: &mut Map<String, Value>,
    ) -> Result<(), FilesError> {
        prepare_inputs(
            &self.client,
            self.adapter.as_ref(),
            &self.catalogue,
            job,
            prompt,
        )
        .await
    }
}

fn input(job: Uuid, name: &str, bytes: &[u8]) -> JobFile {
    JobFile {
        role: FileRole::Input,
        filename: name.to_owned(),
        subfolder: String::new(),
        sha256: sha256_hex(bytes),
        size: bytes.len() as u64,
        content_type: "image/png".into(),
        node_id: None,
        kind: None,
        url: format!("/api/jobs/{job}/files/input/{name}"),
    }
}

fn job(inputs: Vec<JobFile>, id: Uuid) -> LeasedJob {
    LeasedJob {
        id,
        workflow: Value::Null,
        user_id: "alice".into(),
        metadata: json!({}),
        priority: 0,
        lease_token: "lease-1".into(),
        lease_expires_at: String::new(),
        lease_seconds: 30.0,
        heartbeat_interval_seconds: 10.0,
        attempt: 1,
        max_attempts: 3,
        inputs,
    }
}

fn prompt(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

fn job_error(r: Result<impl std::fmt::Debug, FilesError>) -> JobError {
    match r {
        Err(FilesError::Job(e)) => e,
        other => panic!("expected a job error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_input_is_downloaded_checked_uploaded_under_its_hash_and_the_prompt_rewritten() {
    let rig = Rig::new().await;
    let id = Uuid::new_v4();
    let file = input(id, "photo.png", PNG);
    let sub = input_subfolder(&file.sha256);
    assert_eq!(sub, format!("comfy-queue/{}", &file.sha256[..16]));
    Mock::given(method("GET"))
        .and(path(format!("/api/jobs/{id}/files/input/photo.png")))
        .and(query_param("lease_token", "lease-1"))
        .and(header("authorization", "Bearer worker-token"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(PNG))
        .expect(1)
        .mount(&rig.queue)
        .await;
    Mock::given(method("POST"))
        .and(path("/upload/image"))
        .and(body_string_contains(sub.as_str()))
        .and(body_string_contains("user one's photo"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"name": "photo.png", "subfolder": sub, "type": "input"})),
        )
        .expect(1)
        .mount(&rig.comfy)
        .await;
    let job = job(vec![file], id);
    let mut p = prompt(json!({
        "1": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
        "2": {"class_type": "LoadImageMask", "inputs": {"image": "photo.png [input]", "channel": "alpha"}},
        "3": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "photo.png"}},
    }));
    rig.prepare(&job, &mut p).await.unwrap();
    assert_eq!(p["1"]["inputs"]["image"], format!("{sub}/photo.png"));
    assert_eq!(
        p["2"]["inputs"]["image"],
        format!("{sub}/photo.png [input]")
    );
    // A file the server lists, and a value that is no file, stay as they were.
    assert_eq!(p["3"]["inputs"]["image"], "example.png");
    assert_eq!(p["4"]["inputs"]["filename_prefix"], "photo.png");
    // The catalogue is fetched once per server, not per job.
    let mut p2 =
        prompt(json!({"1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}}}));
    rig.prepare(&job_without_inputs(), &mut p2).await.unwrap();
    let fetched = rig.comfy.received_requests().await.unwrap_or_default();
    let fetched = fetched
        .iter()
        .filter(|r| r.url.path() == "/object_info")
        .count();
    assert_eq!(fetched, 1);
}

fn job_without_inputs() -> LeasedJob {
    job(Vec::new(), Uuid::new_v4())
}

#[tokio::test]
async fn an_input_in_a_subfolder_is_matched_by_its_whole_name() {
    let rig = Rig::new().await;
    let id = Uuid::new_v4();
    let mut file = input(id, "photo.png", PNG);
    file.subfolder = "pasted".into();
    let sub = input_subfolder(&file.sha256);
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(PNG))
        .mount(&rig.queue)
        .await;
    Mock::given(method("POST"))
        .and(path("/upload/image"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"name": "photo.png", "subfolder": sub, "type": "input"})),
        )
        .mount(&rig.comfy)
        .await;
    let mut p =
        prompt(json!({"1": {"class_type": "LoadImage", "inputs": {"image": "pasted/photo.png"}}}));
    rig.prepare(&job(vec![file], id), &mut p).await.unwrap();
    assert_eq!(p["1"]["inputs"]["image"], format!("{sub}/photo.png"));
}

#[tokio::test]
async fn bytes_that_do_not_match_the_hash_are_not_uploaded() {
    let rig = Rig::new().await;
    let id = Uuid::new_v4();
    let file = input(id, "photo.png", PNG);
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(b"other bytes".as_slice()))
        .mount(&rig.queue)
        .await;
    Mock::given(method("POST"))
        .and(path("/upload/image"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&rig.comfy)
        .await;
    let mut p = prompt(json!({"1": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}}}));
    let e = job_error(rig.prepare(&job(vec![file], id), &mut p).await);
    assert_eq!(e.class, ErrorClass::FileTransfer);
    assert!(e.retryable);
    assert!(
        e.message.contains("do not match its SHA-256"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn a_lost_lease_while_downloading_stops_the_job() {
    let rig = Rig::new().await;
    let id = Uuid::new_v4();
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(409).set_body_string("lease_conflict"))
        .expect(1)
        .mount(&rig.queue)
        .await;
    let mut p = prompt(json!({}));
    let r = rig
        .prepare(&job(vec![input(id, "a.png", PNG)], id), &mut p)
        .await;
    assert!(matches!(r, Err(FilesError::LeaseLost(_))), "{r:?}");
}

#[tokio::test]
async fn a_file_neither_given_nor_on_the_server_is_a_missing_input_that_is_not_retried() {
    let rig = Rig::new().await;
    Mock::given(method("GET"))
        .and(path("/view"))
        .and(query_param("filename", "cat.png"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&rig.comfy)
        .await;
    // Not in the catalogue's list (uploaded after it was fetched), but on the server.
    Mock::given(method("GET"))
        .and(path("/view"))
        .and(query_param("filename", "later.png"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(PNG))
        .expect(1)
        .mount(&rig.comfy)
        .await;
    let mut p = prompt(json!({
        "3": {"class_type": "LoadImage", "inputs": {"image": "example.png"}},
        "4": {"class_type": "LoadImage", "inputs": {"image": "later.png"}},
        "7": {"class_type": "LoadImage", "inputs": {"image": "cat.png"}},
    }));
    let e = job_error(rig.prepare(&job_without_inputs(), &mut p).await);
    assert_eq!(e.class, ErrorClass::MissingInput);
    assert!(!e.retryable);
    for part in ["node 7", "LoadImage", "input image", "cat.png"] {
        assert!(e.message.contains(part), "{part}: {}", e.message);
    }
    assert_eq!(e.detail["missing"][0]["node_id"], "7");
    assert_eq!(e.detail["missing"].as_array().map(Vec::len), Some(1));
    let v: Value = serde_json::from_str(&e.report_text()).unwrap();
    assert_eq!(v["class"], "missing_input");
}

#[tokio::test]
async fn an_input_the_queue_no_longer_has_is_missing() {
    let rig = Rig::new().await;
    let id = Uuid::new_v4();
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&rig.queue)
        .await;
    let mut p = prompt(json!({}));
    let e = job_error(
        rig.prepare(&job(vec![input(id, "a.png", PNG)], id), &mut p)
            .await,
    );
    assert_eq!(e.class, ErrorClass::MissingInput);
}

#[tokio::test]
async fn a_file_url_of_another_host_is_refused() {
    let rig = Rig::new().await;
    let id = Uuid::new_v4();
    let mut file = input(id, "a.png", PNG);
    file.url = "http://elsewhere.invalid/steal".into();
    let mut p = prompt(json!({}));
    let e = job_error(rig.prepare(&job(vec![file], id), &mut p).await);
    assert_eq!(e.class, ErrorClass::FileTransfer);
    assert!(e.message.contains("not a queue path"), "{}", e.message);
}

fn output(node: &str, kind: OutputKind, filename: &str, folder: FolderType) -> Output {
    Output {
        node_id: node.into(),
        kind,
        key: "images".into(),
        file: Some(FileRef {
            filename: filename.into(),
            subfolder: String::new(),
            folder,
        }),
        text: None,
        animated: false,
        cached: false,
        view_url: None,
        raw: None,
    }
}

fn stored(id: Uuid, role: &str, name: &str, bytes: &[u8], ct: &str) -> Value {
    json!({
        "role": role, "filename": name, "subfolder": "", "sha256": sha256_hex(bytes),
        "size": bytes.len(), "content_type": ct, "node_id": "9", "kind": "image",
        "url": format!("/api/jobs/{id}/files/{role}/{name}"),
    })
}

#[tokio::test]
async fn outputs_are_stored_in_the_queue_after_a_503_and_texts_are_left_alone() {
    let rig = Rig::new().await;
    let id = Uuid::new_v4();
    let video = b"emulated output".as_slice();
    Mock::given(method("GET"))
        .and(path("/view"))
        .and(query_param("filename", "out_00001_.png"))
        .and(query_param("type", "output"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(PNG))
        .expect(1)
        .mount(&rig.comfy)
        .await;
    Mock::given(method("GET"))
        .and(path("/view"))
        .and(query_param("filename", "clip.mp4"))
        .and(query_param("type", "temp"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(video))
        .expect(1)
        .mount(&rig.comfy)
        .await;
    let files = format!("/api/workers/jobs/{id}/files");
    Mock::given(method("POST"))
        .and(path(files.as_str()))
        .and(query_param("filename", "out_00001_.png"))
        .respond_with(ResponseTemplate::new(503))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&rig.queue)
        .await;
    Mock::given(method("POST"))
        .and(path(files.as_str()))
        .and(query_param("filename", "out_00001_.png"))
        .and(query_param("role", "output"))
        .and(query_param("lease_token", "lease-1"))
        .and(query_param("node_id", "9"))
        .and(query_param("kind", "image"))
        .and(header("x-content-sha256", sha256_hex(PNG).as_str()))
        .respond_with(ResponseTemplate::new(201).set_body_json(stored(
            id,
            "output",
            "out_00001_.png",
            PNG,
            "image/png",
        )))
        .expect(1)
        .with_priority(2)
        .mount(&rig.queue)
        .await;
    Mock::given(method("POST"))
        .and(path(files.as_str()))
        .and(query_param("filename", "clip.mp4"))
        .and(query_param("role", "temp"))
        .and(query_param("kind", "video"))
        .respond_with(ResponseTemplate::new(201).set_body_json(stored(
            id,
            "temp",
            "clip.mp4",
            video,
            "video/mp4",
        )))
        .expect(1)
        .mount(&rig.queue)
        .await;
    let mut text = output("5", OutputKind::Text, "", FolderType::Output);
    text.file = None;
    text.text = Some("hello".into());
    let outputs = vec![
        output("9", OutputKind::Image, "out_00001_.png", FolderType::Output),
        text,
        output("9", OutputKind::Image, "out_00001_.png", FolderType::Output),
        output("6", OutputKind::Video, "clip.mp4", FolderType::Temp),
        output("2", OutputKind::Image, "example.png", FolderType::Input),
    ];
    let got = store_outputs(
        &rig.client,
        &rig.adapter,
        &job_without_inputs_id(id),
        &outputs,
    )
    .await
    .unwrap();
    assert_eq!(got.len(), 5);
    assert!(got[1].is_none() && got[4].is_none());
    assert_eq!(got[0], got[2], "one upload for a file named twice");
    let first = got[0].clone().unwrap();
    assert_eq!(first.sha256, sha256_hex(PNG));
    let mut entries = vec![
        json!({"node_id": "9", "view_url": "http://c/view"}),
        json!({"text": "hello"}),
        json!({}),
        json!({}),
        json!({}),
    ];
    annotate_outputs(&mut entries, &got);
    assert_eq!(
        entries[0]["url"],
        format!("/api/jobs/{id}/files/output/out_00001_.png")
    );
    assert_eq!(entries[0]["content_type"], "image/png");
    assert_eq!(entries[0]["size"], PNG.len());
    assert_eq!(entries[0]["sha256"], sha256_hex(PNG));
    assert_eq!(entries[0]["view_url"], "http://c/view");
    assert_eq!(entries[1], json!({"text": "hello"}));
    assert_eq!(entries[3]["content_type"], "video/mp4");
}

fn job_without_inputs_id(id: Uuid) -> LeasedJob {
    job(Vec::new(), id)
}

#[tokio::test]
async fn a_lost_lease_while_storing_outputs_stops_at_once() {
    let rig = Rig::new().await;
    let id = Uuid::new_v4();
    Mock::given(method("GET"))
        .and(path("/view"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(PNG))
        .mount(&rig.comfy)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(409).set_body_string("lease_conflict"))
        .expect(1)
        .mount(&rig.queue)
        .await;
    let outputs = vec![
        output("9", OutputKind::Image, "a.png", FolderType::Output),
        output("9", OutputKind::Image, "b.png", FolderType::Output),
    ];
    let r = store_outputs(
        &rig.client,
        &rig.adapter,
        &job_without_inputs_id(id),
        &outputs,
    )
    .await;
    assert!(matches!(r, Err(FilesError::LeaseLost(_))), "{r:?}");
}

#[tokio::test]
async fn an_output_the_queue_cannot_store_fails_the_job_retryable() {
    let rig = Rig::new().await;
    let id = Uuid::new_v4();
    Mock::given(method("GET"))
        .and(path("/view"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(PNG))
        .mount(&rig.comfy)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(422).set_body_string("sha256 mismatch"))
        .expect(1)
        .mount(&rig.queue)
        .await;
    let outputs = vec![output("9", OutputKind::Image, "a.png", FolderType::Output)];
    let e = job_error(
        store_outputs(
            &rig.client,
            &rig.adapter,
            &job_without_inputs_id(id),
            &outputs,
        )
        .await,
    );
    assert_eq!(e.class, ErrorClass::FileTransfer);
    assert!(e.retryable);
    assert!(
        e.message.contains("a.png") && e.message.contains("422"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn a_queue_without_the_files_api_leaves_outputs_on_comfyui() {
    let rig = Rig::new().await;
    let id = Uuid::new_v4();
    Mock::given(method("GET"))
        .and(path("/view"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(PNG))
        .mount(&rig.comfy)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(404))
        .expect(1)
        .mount(&rig.queue)
        .await;
    let outputs = vec![
        output("9", OutputKind::Image, "a.png", FolderType::Output),
        output("9", OutputKind::Image, "b.png", FolderType::Output),
    ];
    let got = store_outputs(
        &rig.client,
        &rig.adapter,
        &job_without_inputs_id(id),
        &outputs,
    )
    .await
    .unwrap();
    assert_eq!(got, vec![None, None]);
}
