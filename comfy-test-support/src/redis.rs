//! A private `redis-server` per test: a free port on 127.0.0.1, its own
//! temporary directory, no persistence, stopped on drop. Never the machine's
//! server on 6379.
//!
//! Tests using it carry `#[cfg_attr(not(has_redis), ignore = "redis-server
//! not installed")]` (the cfg comes from the test crate's build script, see
//! [`crate::probe::build_script`]), so a machine without `redis-server`
//! reports them as ignored; [`RedisServer::start`] itself fails when the
//! program is missing.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::free_port;
use crate::probe::REDIS_SERVER;

/// A running private `redis-server`, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    bin: PathBuf,
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts one and waits until it accepts connections (10 s at most).
    ///
    /// # Panics
    /// When `redis-server` is not installed (tests that need it are ignored
    /// on such a machine, so reaching this is a failure), or it does not start.
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// Like [`RedisServer::start`], with more `redis-server` arguments after the defaults
    /// (a later argument wins), e.g. `&["--appendonly", "yes"]` for a server with an
    /// append-only file in its temporary directory.
    ///
    /// # Panics
    /// As [`RedisServer::start`].
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let bin = REDIS_SERVER.find().unwrap_or_else(|| {
            panic!(
                "redis-server not found (PATH, or {}); a test that needs it must be \
                 marked #[cfg_attr(not(has_redis), ignore = \"redis-server not installed\")]",
                REDIS_SERVER.env
            )
        });
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let mut s = RedisServer {
            bin,
            child: None,
            port: free_port(),
            dir,
            extra: extra.iter().map(|a| (*a).to_owned()).collect(),
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let child = Command::new(&self.bin)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", self.bin.display()));
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills it (a no-op when stopped already).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills it and starts it again on the same port; all data is lost
    /// (`--save ""`), as after a crash of a server without persistence (unless it was
    /// started with persistence through [`RedisServer::start_with`]).
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
