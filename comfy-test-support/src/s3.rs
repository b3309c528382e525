//! A private S3-compatible server per test: `moto_server` (PyPI package `moto[server]`, a
//! real HTTP server speaking the S3 protocol, objects in its memory) on a free port of
//! 127.0.0.1, killed on drop. Its output goes to a log file in its own temporary directory,
//! printed to stderr when the test that owns it fails.
//!
//! Tests using it carry `#[cfg_attr(not(has_s3), ignore = "moto_server not installed")]`
//! (the cfg comes from the test crate's build script, [`crate::probe::build_script`]);
//! [`S3Server::start`] itself fails when the program is missing.
//!
//! moto checks no signatures: any access key works, and the plain (unsigned) HTTP calls
//! here create buckets and look at unfinished multipart uploads, which the S3 clients
//! under test do not do.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port;
use crate::probe::MOTO_SERVER;

/// Any key: moto does not check them.
pub const ACCESS_KEY_ID: &str = "comfy-test";
/// Any secret.
pub const SECRET_ACCESS_KEY: &str = "comfy-test-secret";
/// The region the buckets are made in.
pub const REGION: &str = "us-east-1";

/// A running private `moto_server`, killed on drop.
#[derive(Debug)]
pub struct S3Server {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl S3Server {
    /// Starts one and waits until it answers HTTP (60 s at most: it is a Python program,
    /// slow to start on a loaded machine).
    ///
    /// # Panics
    /// When `moto_server` is not installed (tests that need it are ignored on such a
    /// machine, so reaching this is a failure), or it does not start.
    pub fn start() -> S3Server {
        let bin = MOTO_SERVER.find().unwrap_or_else(|| {
            panic!(
                "moto_server not found (PATH, or {}); a test that needs it must be \
                 marked #[cfg_attr(not(has_s3), ignore = \"moto_server not installed\")]",
                MOTO_SERVER.env
            )
        });
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let log_path = dir.path().join("moto.log");
        let log = std::fs::File::create(&log_path)
            .unwrap_or_else(|e| panic!("{}: {e}", log_path.display()));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|e| panic!("{}: {e}", log_path.display()));
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        let mut server = S3Server {
            child: Some(child),
            port,
            dir,
            http: reqwest::Client::new(),
        };
        server.wait_until_up(&bin);
        server
    }

    fn wait_until_up(&mut self, bin: &std::path::Path) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "{} exited ({status}) before listening on port {}; its log:\n{}",
                    bin.display(),
                    self.port,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not listen on port {} within 60 s; its log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`: the endpoint an S3 client is given (path-style requests).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("moto.log")
    }

    /// Creates a bucket (`PUT /<bucket>`).
    ///
    /// # Panics
    /// When the server does not answer 200.
    pub async fn create_bucket(&self, bucket: &str) {
        let url = format!("{}/{bucket}", self.endpoint());
        let answer = self
            .http
            .put(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {url}: {e}"));
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        assert!(status.is_success(), "PUT {url}: {status}: {text}");
    }

    /// How many multipart uploads of `bucket` were started and neither completed nor
    /// aborted (`GET /<bucket>?uploads`).
    ///
    /// # Panics
    /// When the server does not answer 200.
    pub async fn unfinished_uploads(&self, bucket: &str) -> usize {
        let url = format!("{}/{bucket}?uploads", self.endpoint());
        let answer = self
            .http
            .get(&url)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        assert!(status.is_success(), "GET {url}: {status}: {text}");
        text.matches("<Upload>").count()
    }

    /// Kills it (a no-op when stopped already); every bucket is lost.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(200)..].join("\n");
            eprintln!(
                "--- moto_server log (port {}, last 200 lines) ---\n{tail}",
                self.port
            );
        }
    }
}
