//! `comfy-stack --help` as a user reads it (and, as a side effect that the
//! end-to-end kill tests rely on, `cargo test` builds the binary).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn help_describes_the_stack_not_the_worker() {
    let out = Command::new(env!("CARGO_BIN_EXE_comfy-stack"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--demo"), "{text}");
    assert!(!text.contains("GPU worker of the multi-user"), "{text}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the stack when the test ends, also on a failed assertion.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The README's first command: the demo's completed jobs print output URLs on the queue
/// (the worker stored ComfyUI's files there), and the first one serves a PNG.
#[tokio::test]
async fn the_demo_prints_outputs_served_by_the_queue() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let queue = format!("127.0.0.1:{}", free_port());
    let gateway = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_comfy-stack"))
        .args(["--demo", "--listen", &queue, "--gateway-listen", &gateway])
        .args(["--emulator-listen", &format!("127.0.0.1:{}", free_port())])
        .args([
            "--worker-health-listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .arg("--db")
        .arg(dir.path().join("q.db"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    let lines = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        let mut rest = std::io::BufReader::new(stdout).lines();
        for line in rest.by_ref() {
            let line = line.unwrap();
            let done = line.contains("all 8 jobs ended");
            seen.push(line);
            if done {
                break;
            }
        }
        // Keep reading until the stack is killed: it still prints, and a closed pipe
        // would make it panic.
        std::thread::spawn(move || rest.for_each(drop));
        seen
    });
    let lines = tokio::time::timeout(std::time::Duration::from_secs(240), lines)
        .await
        .expect("the demo did not end its jobs in 240 s")
        .unwrap();
    let hello = lines
        .iter()
        .find(|l| l.contains("COMPLETED hello"))
        .unwrap_or_else(|| panic!("no completed hello job in:\n{}", lines.join("\n")));
    let url = hello
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap();
    assert!(
        url.starts_with(&format!("http://{queue}/api/jobs/")) && url.contains("/files/output/"),
        "{hello}"
    );
    let resp = reqwest::get(url).await.unwrap();
    assert_eq!(resp.status(), 200, "{url}");
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "image/png",
        "{url}"
    );
    let body = resp.bytes().await.unwrap();
    assert!(body.starts_with(b"\x89PNG"), "{url} is not a PNG");

    // The user side: the printed URL opens the demo user's own ComfyUI frontend
    // through the gateway, whose queue panel lists the demo's jobs.
    let open = lines
        .iter()
        .find(|l| l.trim_start().starts_with("open "))
        .unwrap_or_else(|| panic!("no URL to open in:\n{}", lines.join("\n")));
    let page_url = format!("http://{gateway}/demo/");
    assert!(open.contains(&page_url), "{open}");
    let page = reqwest::get(&page_url).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<div id=\"vue-app\""),
        "not the ComfyUI frontend: {html:.300}"
    );
    let jobs: serde_json::Value = reqwest::get(format!(
        "{page_url}api/jobs?status=completed,failed,cancelled&limit=64&offset=0"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(jobs["pagination"]["total"], 8, "{jobs}");
    let failed = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["status"] == "failed")
        .count();
    assert_eq!(failed, 1, "only the failure example fails: {jobs}");
    // The template browser lists the platform's templates and opens them.
    let index: serde_json::Value = reqwest::get(format!("{page_url}templates/index.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = index[0]["templates"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"video_ltx2_t2v"), "{index}");
    let template: serde_json::Value =
        reqwest::get(format!("{page_url}templates/video_ltx2_t2v.json"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert!(template["nodes"].is_array());
    // The templates are in the demo user's workflows menu.
    let listed: serde_json::Value = reqwest::get(format!("{page_url}api/userdata?dir=workflows"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "video_ltx2_t2v.json"),
        "{listed}"
    );
}
