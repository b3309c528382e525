//! Emulator rules for files the recordings do not show: double-encoded
//! userdata paths, moves out of the user folder, settings, upload renaming,
//! `/view` subfolders and annotated names, unknown model folders. (Every
//! recorded probe is covered by `emulator_fidelity.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_emulator::{Emulator, EmulatorConfig};
use serde_json::{Value, json};

/// A 1×1 PNG.
const PNG_1X1: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

async fn get_json(client: &reqwest::Client, url: &str) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn file_rules_beyond_the_recordings() {
    let emu = Emulator::start(EmulatorConfig::new("0.11.1"))
        .await
        .unwrap();
    let base = emu.url();
    let client = reqwest::Client::new();
    let status =
        |rb: reqwest::RequestBuilder| async move { rb.send().await.unwrap().status().as_u16() };

    assert_eq!(status(client.get(format!("{base}/users"))).await, 200);
    let users = get_json(&client, &format!("{base}/users")).await;
    assert_eq!(users["migrated"], json!(false));

    // `%252F` arrives as `%2F`, which ComfyUI decodes once more.
    let post = client
        .post(format!("{base}/userdata/a%252Fb.json"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status().as_u16(), 200);
    assert_eq!(post.json::<Value>().await.unwrap(), json!("a/b.json"));
    assert!(emu.data_dir().join("user/default/a/b.json").is_file());
    assert_eq!(
        status(client.get(format!("{base}/userdata/..%252F..%252Fx.json"))).await,
        403
    );
    // ComfyUI carries on with the 403 answer as the destination and fails.
    assert_eq!(
        status(client.post(format!("{base}/userdata/a%2Fb.json/move/..%2F..%2Fx.json"))).await,
        500
    );
    assert_eq!(status(client.get(format!("{base}/userdata"))).await, 400);

    // Settings live in the user folder.
    assert_eq!(
        status(
            client
                .post(format!("{base}/settings/Comfy.Theme"))
                .json(&json!("dark"))
        )
        .await,
        200
    );
    let theme = get_json(&client, &format!("{base}/settings/Comfy.Theme")).await;
    assert_eq!(theme, json!("dark"));
    let users = get_json(&client, &format!("{base}/users")).await;
    assert_eq!(users["migrated"], json!(true));

    // Without overwrite, other bytes under the same name get ` (1)`; the
    // same bytes keep the name.
    let upload = |bytes: &'static [u8], overwrite: Option<&'static str>| {
        let client = client.clone();
        let base = base.clone();
        async move {
            let part = reqwest::multipart::Part::bytes(bytes).file_name("u.png");
            let mut form = reqwest::multipart::Form::new().part("image", part);
            if let Some(o) = overwrite {
                form = form.text("overwrite", o);
            }
            let v: Value = client
                .post(format!("{base}/upload/image"))
                .multipart(form)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["name"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(upload(PNG_1X1, None).await, "u.png");
    assert_eq!(upload(PNG_1X1, None).await, "u.png");
    assert_eq!(upload(b"other", None).await, "u (1).png");
    assert_eq!(upload(b"other", Some("true")).await, "u.png");

    let view = |q: &'static str| client.get(format!("{base}/view?{q}"));
    assert_eq!(status(view("filename=u.png&type=input")).await, 200);
    assert_eq!(
        status(view("filename=u.png&type=input&subfolder=..")).await,
        403
    );
    assert_eq!(status(view("filename=u.png [input]")).await, 200);
    assert_eq!(status(view("filename=u.png")).await, 404);

    assert_eq!(
        status(client.get(format!("{base}/models/loras"))).await,
        200
    );
    assert_eq!(status(client.get(format!("{base}/models/nope"))).await, 404);
    emu.stop().await;
}
