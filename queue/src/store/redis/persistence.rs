//! What a Redis server keeps across a crash, read with `CONFIG GET` at start, and the rule
//! the queue applies to it: without an append-only file a crash loses acknowledged jobs,
//! so the server refuses such a Redis unless told otherwise (`--allow-volatile-redis`).

use std::collections::HashMap;

use super::RedisStore;
use crate::store::StoreError;

/// The persistence settings of a Redis server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persistence {
    /// `appendonly yes`: every write goes to the append-only file before it is answered.
    pub appendonly: bool,
    /// `appendfsync`: `always`, `everysec` or `no` (when the file is flushed to disk).
    pub appendfsync: String,
    /// `save`: the RDB snapshot rules (`""` = none), e.g. `3600 1 300 100 60 10000`.
    pub save: String,
}

/// The Redis would lose acknowledged jobs in a crash, and the queue was not told to accept it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Redis runs without an append-only file (appendonly no): {window}. Configure \
     `appendonly yes` (and `appendfsync everysec` or `always`), or start with \
     --allow-volatile-redis to accept the loss"
)]
pub struct VolatileRedis {
    /// What a crash loses (from [`Persistence::loss_window`]).
    pub window: String,
}

impl Persistence {
    /// Whether acknowledged writes survive a crash of the Redis process.
    pub fn is_durable(&self) -> bool {
        self.appendonly
    }

    /// What a crash loses, in words.
    pub fn loss_window(&self) -> String {
        if self.appendonly {
            return match self.appendfsync.as_str() {
                "always" => "nothing acknowledged: each write is synced to disk before it is \
                             answered"
                    .into(),
                "everysec" => "nothing acknowledged when Redis itself crashes; up to about 1 s \
                               (at worst 2 s) of acknowledged writes when the machine does \
                               (power loss, kernel crash)"
                    .into(),
                other => format!(
                    "nothing acknowledged when Redis itself crashes; when the machine does, \
                     whatever the kernel had not flushed yet (appendfsync {other}: about 30 s \
                     on Linux)"
                ),
            };
        }
        if self.save.trim().is_empty() {
            "a crash or restart loses every job (no snapshots: save \"\")".into()
        } else {
            format!(
                "a crash loses every job acknowledged since the last snapshot (save {:?})",
                self.save
            )
        }
    }

    /// The queue's rule: a durable Redis always, a volatile one only with `allow_volatile`.
    pub fn check(&self, allow_volatile: bool) -> Result<(), VolatileRedis> {
        if self.is_durable() || allow_volatile {
            Ok(())
        } else {
            Err(VolatileRedis {
                window: self.loss_window(),
            })
        }
    }
}

impl RedisStore {
    /// Read the server's persistence settings (`CONFIG GET appendonly`, `appendfsync`,
    /// `save`). Fails where `CONFIG` is not allowed (some hosted Redis).
    pub async fn persistence(&self) -> Result<Persistence, StoreError> {
        let mut conn = self.conn.clone();
        let appendonly = config_get(&mut conn, "appendonly").await?;
        let appendfsync = config_get(&mut conn, "appendfsync").await?;
        let save = config_get(&mut conn, "save").await?;
        Ok(Persistence {
            appendonly: appendonly.eq_ignore_ascii_case("yes"),
            appendfsync: appendfsync.to_ascii_lowercase(),
            save,
        })
    }
}

async fn config_get(
    conn: &mut redis::aio::ConnectionManager,
    name: &str,
) -> Result<String, StoreError> {
    let v: HashMap<String, String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async(conn)
        .await
        .map_err(StoreError::from)?;
    Ok(v.get(name).cloned().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(appendonly: bool, appendfsync: &str, save: &str) -> Persistence {
        Persistence {
            appendonly,
            appendfsync: appendfsync.into(),
            save: save.into(),
        }
    }

    #[test]
    fn only_an_append_only_file_passes_without_the_flag() {
        assert_eq!(p(true, "everysec", "").check(false), Ok(()));
        assert_eq!(p(true, "always", "3600 1").check(false), Ok(()));
        let e = p(false, "everysec", "3600 1 300 100")
            .check(false)
            .unwrap_err();
        assert!(e.window.contains("since the last snapshot"), "{e}");
        assert!(e.to_string().contains("--allow-volatile-redis"), "{e}");
        let e = p(false, "everysec", "").check(false).unwrap_err();
        assert!(e.window.contains("every job"), "{e}");
        assert_eq!(p(false, "everysec", "").check(true), Ok(()));
    }

    #[test]
    fn the_loss_window_follows_appendfsync() {
        assert!(
            p(true, "always", "")
                .loss_window()
                .starts_with("nothing acknowledged:")
        );
        assert!(p(true, "everysec", "").loss_window().contains("1 s"));
        assert!(p(true, "no", "").loss_window().contains("30 s"));
    }
}
