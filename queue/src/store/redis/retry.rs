//! Connection errors and the retry policy: calls that are safe to repeat (reads,
//! heartbeat, fenced complete/fail, reap, keyed submits) are retried with `backon` on
//! connection errors, 4 times after 100, 200, 400 and 800 ms.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use redis::aio::ConnectionManager;
use redis::{FromRedisValue, Script};

use super::RedisStore;
use crate::store::StoreError;

/// Errors worth another try: the connection, not the command, failed.
fn transient(e: &redis::RedisError) -> bool {
    e.is_connection_dropped() || e.is_io_error() || e.is_timeout() || e.is_connection_refusal()
}

/// 4 retries, 100 ms doubling (100, 200, 400, 800 ms), no jitter.
fn policy() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(100))
        .with_factor(2.0)
        .with_max_times(4)
}

impl RedisStore {
    /// Run a script; `retry` only for calls that are safe to repeat.
    pub(super) async fn eval<T: FromRedisValue>(
        &self,
        script: &Script,
        args: &[&str],
        retry: bool,
    ) -> Result<T, StoreError> {
        // One `EVALSHA` command built once and sent as often as needed: the
        // arguments are copied into it once (a script invocation copies them
        // twice more, which for a submit is its whole workflow).
        let bytes = args.iter().map(|a| a.len()).sum::<usize>() + self.prefix.len() + 64;
        let mut cmd = redis::Cmd::with_capacity(args.len() + 4, bytes);
        // One key declared (`P:layout`), so that a Cluster routes the script to the node
        // of the prefix's slot; the scripts build their other keys from ARGV[1], the prefix,
        // which on a Cluster must be a hash tag (checked at connect).
        cmd.arg("EVALSHA")
            .arg(script.get_hash())
            .arg(1)
            .arg(&self.route_key)
            .arg(&self.prefix);
        for a in args {
            cmd.arg(*a);
        }
        let cmd = &cmd;
        let once = || async move {
            let mut conn = self.conn.clone();
            match cmd.query_async::<T>(&mut conn).await {
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    script.load_async(&mut conn).await?;
                    cmd.query_async::<T>(&mut conn).await
                }
                other => other,
            }
        };
        if !retry {
            return once().await.map_err(StoreError::from);
        }
        once.retry(policy())
            .sleep(tokio::time::sleep)
            .when(transient)
            .notify(|e, _| tracing::warn!(error = %e, "redis call failed; retrying"))
            .await
            .map_err(StoreError::from)
    }

    /// Run a plain command with retries (reads only).
    pub(super) async fn read<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        (|| f(self.conn.clone()))
            .retry(policy())
            .sleep(tokio::time::sleep)
            .when(transient)
            .await
            .map_err(StoreError::from)
    }
}

#[cfg(test)]
mod tests {
    use backon::BackoffBuilder;

    use super::*;

    #[test]
    fn four_retries_after_100_200_400_800_ms() {
        // backon multiplies in f32 seconds: the delays are off by nanoseconds.
        let delays: Vec<u128> = policy().build().map(|d| d.as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800]);
    }
}
