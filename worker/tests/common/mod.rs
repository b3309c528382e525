//! What the worker's integration tests share: a worker running in this process, and
//! stopping it (which must end cleanly within 10 s).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::time::Duration;

use comfy_worker::Worker;
use comfy_worker::config::Config;
use tokio::sync::watch;

/// A worker running as a task, with its stop switch.
pub(crate) struct Running {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// Start a worker with `config`.
pub(crate) fn start(config: Config) -> Running {
    let worker = Worker::new(config).unwrap();
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(worker.run(rx));
    Running { stop, task }
}

impl Running {
    /// Stop it and check it ended without an error.
    pub(crate) async fn stop(self) {
        self.stop.send_replace(true);
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}
