//! The replicas' link through Redis: one pub/sub channel (`P:bus`) that every queue process
//! on the same Redis and prefix publishes to and listens on, and the server's clock (`TIME`).
//!
//! Only transport: bytes out, bytes in. What the bytes mean is the `replicas` module's.
//! Pub/sub delivers to whoever listens at the moment and keeps nothing: a replica that
//! was disconnected misses what was said meanwhile (see [`RedisBus::listen`]).

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::clock::Millis;
use crate::store::StoreError;

/// A connection for publishing and the client to open listening connections with.
#[derive(Clone)]
pub struct RedisBus {
    client: redis::Client,
    conn: ConnectionManager,
    channel: String,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl RedisBus {
    /// Connect to `url`; the channel is `prefix:bus`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(10)))
            .set_connection_timeout(Some(Duration::from_secs(2)));
        let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        Ok(Self {
            client,
            conn,
            channel: format!("{prefix}:bus"),
        })
    }

    /// The channel's name.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Publish `payload` to every replica listening now (this one included); the number
    /// of listeners that got it.
    pub async fn publish(&self, payload: &[u8]) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let n: u64 = redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(payload)
            .query_async(&mut conn)
            .await?;
        Ok(n)
    }

    /// Listen on the channel: the payloads published from now on, until the connection
    /// is lost (the stream ends; listen again, knowing that what was published in between
    /// is gone).
    pub async fn listen(&self) -> Result<impl Stream<Item = Vec<u8>> + Send + use<>, StoreError> {
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(&self.channel).await?;
        Ok(pubsub
            .into_on_message()
            .map(|msg| msg.get_payload_bytes().to_vec()))
    }

    /// How many connections listen on the channel now (`PUBSUB NUMSUB`; this replica's own
    /// included once it listens).
    pub async fn listeners(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        let (_, n): (String, u64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(&self.channel)
            .query_async(&mut conn)
            .await?;
        Ok(n)
    }

    /// The Redis server's clock (`TIME`), in ms since the epoch.
    pub async fn server_time(&self) -> Result<Millis, StoreError> {
        let mut conn = self.conn.clone();
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut conn).await?;
        Ok(secs.saturating_mul(1000).saturating_add(micros / 1000))
    }
}
