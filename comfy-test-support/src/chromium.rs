//! Headless Chromium driven over WebDriver ([`fantoccini`]) by Debian's
//! `chromedriver` (package `chromium-driver`, built from the same source as
//! the browser, so their versions always match). Everything stays on this
//! machine: the driver listens on a free 127.0.0.1 port, the browser runs
//! with a fresh profile in a temporary directory and with its background
//! networking off.
//!
//! Tests using it carry `#[cfg_attr(not(has_chromium), ignore = "chromium
//! or chromedriver not installed")]`; [`Browser::launch`] fails when either
//! is missing.

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The WebDriver client crate, for its types (`Locator`, errors) without a
/// second dependency line (and version) in each test crate.
pub use fantoccini;

use fantoccini::ClientBuilder;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::ports::free_port;
use crate::probe::{CHROMEDRIVER, CHROMIUM, Program};

/// The browser's command line: headless, no sandbox (tests run as root in
/// CI), no GPU, and nothing that reaches outside this machine.
pub const CHROMIUM_ARGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
];

/// How long [`Browser::wait_for`] waits.
pub const WAIT: Duration = Duration::from_secs(10);

/// A WebDriver session in a headless Chromium of its own. Call
/// [`Browser::close`] at the end; dropping it kills the driver and the
/// browser too (their whole process group).
#[derive(Debug)]
pub struct Browser {
    client: Option<fantoccini::Client>,
    driver: Child,
    /// The driver's base URL, for the commands fantoccini has no method for.
    base: String,
    dir: tempfile::TempDir,
}

fn find(p: &Program) -> std::path::PathBuf {
    p.find().unwrap_or_else(|| {
        panic!(
            "{} not found (PATH, or {}); a test that needs it must be marked \
             #[cfg_attr(not(has_chromium), ignore = \"chromium or chromedriver not installed\")]",
            p.what, p.env
        )
    })
}

impl Browser {
    /// Starts chromedriver and a browser session.
    ///
    /// # Panics
    /// When Chromium or chromedriver is not installed, or the session cannot
    /// be created (the message carries the end of chromedriver's log).
    pub async fn launch() -> Browser {
        let chromium = find(&CHROMIUM);
        let chromedriver = find(&CHROMEDRIVER);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let log = dir.path().join("chromedriver.log");
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that a drop can end the browser with it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", chromedriver.display()));
        let base = format!("http://127.0.0.1:{port}");
        let mut browser = Browser {
            client: None,
            driver,
            base: base.clone(),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = reqwest::get(format!("{base}/status")).await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not answer within 20 s:\n{}",
                browser.driver_log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = browser.dir.path().join("profile");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| (*a).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = json!({
            "goog:chromeOptions": {"binary": chromium, "args": args},
        });
        let Value::Object(caps) = caps else {
            unreachable!("a JSON object literal")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&base)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no WebDriver session in {}: {e}\n{}",
                    chromium.display(),
                    browser.driver_log()
                )
            });
        browser.client = Some(client);
        browser
    }

    /// The WebDriver client (navigate, find elements, click, screenshot).
    pub fn client(&self) -> &fantoccini::Client {
        self.client
            .as_ref()
            .unwrap_or_else(|| unreachable!("set by launch, taken only by close"))
    }

    /// Evaluates a JavaScript expression in the page and returns its value.
    pub async fn eval(&self, expression: &str) -> Value {
        self.client()
            .execute(&format!("return ({expression});"), Vec::new())
            .await
            .unwrap_or_else(|e| panic!("evaluating {expression}: {e}"))
    }

    /// Polls `expression` until it is `true` ([`WAIT`] at most); panics with
    /// the page's text when it never is.
    pub async fn wait_for(&self, expression: &str) {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if self.eval(expression).await == json!(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let text = self.eval("document.body.innerText").await;
        panic!("timed out waiting for {expression}; page shows:\n{text}");
    }

    /// Sends `headers` with every request the page makes from now on,
    /// WebSocket handshakes included (what a reverse proxy in front of the
    /// app would add, e.g. the user header nginx sets after its basic auth).
    /// Replaces the headers set before; `&[]` removes them.
    ///
    /// Chrome DevTools' `Network.setExtraHTTPHeaders`, through chromedriver's
    /// CDP passthrough (`/session/{id}/goog/cdp/execute`).
    ///
    /// # Panics
    /// When the driver refuses the command.
    pub async fn set_extra_headers(&self, headers: &[(&str, &str)]) {
        let headers: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        self.cdp("Network.enable", json!({})).await;
        self.cdp("Network.setExtraHTTPHeaders", json!({"headers": headers}))
            .await;
    }

    /// Runs one Chrome DevTools Protocol command in the page and returns its result.
    ///
    /// # Panics
    /// When the driver refuses the command.
    pub async fn cdp(&self, cmd: &str, params: Value) -> Value {
        let session = self
            .client()
            .session_id()
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no WebDriver session for {cmd}"));
        let resp = reqwest::Client::new()
            .post(format!("{}/session/{session}/goog/cdp/execute", self.base))
            .json(&json!({"cmd": cmd, "params": params}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{cmd}: {e}"));
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{cmd}: {status} {body}");
        body.get("value").cloned().unwrap_or(Value::Null)
    }

    /// Ends the session (the browser exits) and stops chromedriver.
    pub async fn close(mut self) {
        if let Some(c) = self.client.take() {
            let _ = c.close().await;
        }
        self.kill();
    }

    fn driver_log(&self) -> String {
        let log =
            std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn kill(&mut self) {
        // The browser is the driver's child, in the driver's process group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill();
    }
}
