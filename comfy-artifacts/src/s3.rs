//! [`S3Store`]: blobs in S3-compatible object storage (AWS S3, Cloudflare R2, MinIO, ...),
//! through the `object_store` crate.
//!
//! Keys under the configured prefix (a folder, possibly empty):
//! - `<prefix>/sha256/<64 hex digits>`: one object per blob;
//! - `<prefix>/tmp/<uuid>`: bodies larger than one part while they are received.
//!
//! A body that fits in one part (8 MiB) is hashed in memory and written with one `PUT` to
//! its final key (a `PUT` is atomic). A larger one streams to a temp key as a multipart
//! upload (memory: the part being filled plus [`PARTS_IN_FLIGHT`] parts being sent), is
//! hashed on the way, and is then copied to its final key and the temp deleted. On any
//! failure, the multipart upload is aborted and the temp deleted; a put future dropped
//! halfway does the same from a spawned task. A crash can still leave temps and unfinished
//! uploads: [`S3Store::remove_stale_temps`] removes the former, a bucket lifecycle rule
//! ("abort incomplete multipart uploads after N days") the latter.
//!
//! S3's single-request copy is limited to 5 GiB, so that is the largest file this backend
//! stores.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use sha2::{Digest, Sha256};

use crate::local::check_range;
use crate::{ArtifactError, Blob, BlobStore, ByteStream, FileId, Listed, PutOptions, Stored};

/// Size of one multipart part; a body up to this size is written with a single `PUT`.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Parts of one upload sent at the same time.
pub const PARTS_IN_FLIGHT: usize = 2;

/// Where an [`S3Store`] keeps its blobs, and how it signs in.
#[derive(Clone, Default)]
pub struct S3Config {
    /// The bucket (it must exist).
    pub bucket: String,
    /// The service's URL, for anything but AWS itself (R2, MinIO, ...); `None` for AWS.
    pub endpoint: Option<String>,
    /// The region (`auto` for R2; MinIO accepts any).
    pub region: String,
    /// Access key id; with no keys, credentials come from the instance or container
    /// metadata (as on AWS).
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
    /// A folder in the bucket the keys are under, e.g. `comfy/files` (slashes at either
    /// end do not matter); empty for the bucket's root.
    pub prefix: String,
    /// Allow an `http://` endpoint (a local MinIO); otherwise only `https://`.
    pub allow_http: bool,
    /// How the service does copy-if-not-exists, in `object_store`'s notation (e.g.
    /// `header: cf-copy-destination-if-none-match: *` for R2); `None`: a head, then a copy.
    pub copy_if_not_exists: Option<String>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |secret: &Option<String>| secret.as_ref().map(|_| "<hidden>");
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &hidden(&self.session_token))
            .field("prefix", &self.prefix)
            .field("allow_http", &self.allow_http)
            .field("copy_if_not_exists", &self.copy_if_not_exists)
            .finish()
    }
}

impl S3Config {
    /// The configuration for `bucket` from the standard AWS variables: `AWS_REGION` (or
    /// `AWS_DEFAULT_REGION`, else `us-east-1`), `AWS_ENDPOINT_URL_S3` (or
    /// `AWS_ENDPOINT_URL`), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`, and `AWS_ALLOW_HTTP=true` for an `http://` endpoint.
    pub fn from_env(bucket: impl Into<String>) -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        S3Config {
            bucket: bucket.into(),
            endpoint: var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL")),
            region: var("AWS_REGION")
                .or_else(|| var("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".to_owned()),
            access_key_id: var("AWS_ACCESS_KEY_ID"),
            secret_access_key: var("AWS_SECRET_ACCESS_KEY"),
            session_token: var("AWS_SESSION_TOKEN"),
            prefix: String::new(),
            allow_http: var("AWS_ALLOW_HTTP").is_some_and(|v| v.trim() == "true"),
            copy_if_not_exists: None,
        }
    }
}

/// A content-addressed blob store in an S3-compatible bucket (see the module docs).
#[derive(Clone)]
pub struct S3Store {
    store: Arc<AmazonS3>,
    bucket: String,
    blobs: Path,
    tmp: Path,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("bucket", &self.bucket)
            .field("blobs", &self.blobs.as_ref())
            .finish_non_exhaustive()
    }
}

fn backend(error: object_store::Error) -> ArtifactError {
    ArtifactError::Backend(error.to_string())
}

impl S3Store {
    /// A store over `config`'s bucket. Makes no request: a wrong bucket or key shows at the
    /// first call.
    pub fn new(config: &S3Config) -> Result<Self, ArtifactError> {
        let invalid = |what: String| ArtifactError::Backend(format!("S3 configuration: {what}"));
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_allow_http(config.allow_http);
        if let Some(endpoint) = &config.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        match (&config.access_key_id, &config.secret_access_key) {
            (Some(id), Some(secret)) => {
                builder = builder
                    .with_access_key_id(id)
                    .with_secret_access_key(secret);
            }
            (None, None) => {}
            _ => {
                return Err(invalid(
                    "an access key id needs its secret access key, and the other way round"
                        .to_owned(),
                ));
            }
        }
        if let Some(token) = &config.session_token {
            builder = builder.with_token(token);
        }
        if let Some(mode) = &config.copy_if_not_exists {
            builder = builder.with_config(AmazonS3ConfigKey::CopyIfNotExists, mode);
        }
        let store = builder.build().map_err(|e| invalid(e.to_string()))?;
        let prefix = config.prefix.trim_matches('/');
        let base = Path::parse(prefix).map_err(|e| invalid(format!("prefix {prefix:?}: {e}")))?;
        Ok(S3Store {
            store: Arc::new(store),
            bucket: config.bucket.clone(),
            blobs: base.clone().join("sha256"),
            tmp: base.join("tmp"),
        })
    }

    fn key(&self, id: &FileId) -> Path {
        self.blobs.clone().join(id.to_string())
    }

    /// Deletes the temp objects (`<prefix>/tmp/...`) older than `older_than`: what puts
    /// of a process that crashed left. Returns how many it deleted. Younger ones may be
    /// uploads under way in another process.
    pub async fn remove_stale_temps(&self, older_than: Duration) -> Result<usize, ArtifactError> {
        let cutoff = SystemTime::now()
            .checked_sub(older_than)
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let temps: Vec<_> = self
            .store
            .list(Some(&self.tmp))
            .try_collect()
            .await
            .map_err(backend)?;
        let mut removed = 0;
        for meta in temps {
            if SystemTime::from(meta.last_modified) < cutoff {
                match self.store.delete(&meta.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => removed += 1,
                    Err(e) => return Err(backend(e)),
                }
            }
        }
        Ok(removed)
    }

    /// A body that ended within one part: one `PUT` to its final key, unless it is there.
    async fn put_whole(
        &self,
        parts: Vec<Bytes>,
        id: FileId,
        size: u64,
    ) -> Result<Stored, ArtifactError> {
        let key = self.key(&id);
        if self.exists(&key).await? {
            return Ok(Stored {
                id,
                size,
                created: false,
            });
        }
        self.store
            .put(&key, PutPayload::from_iter(parts))
            .await
            .map_err(backend)?;
        Ok(Stored {
            id,
            size,
            created: true,
        })
    }

    async fn exists(&self, key: &Path) -> Result<bool, ArtifactError> {
        match self.store.head(key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(backend(e)),
        }
    }

    /// Copies the complete temp object to `key` unless a blob is there; true when copied.
    async fn place(&self, temp: &Path, key: &Path) -> Result<bool, ArtifactError> {
        match self.store.copy_if_not_exists(temp, key).await {
            Ok(()) => return Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => return Ok(false),
            Err(
                object_store::Error::NotSupported { .. }
                | object_store::Error::NotImplemented { .. },
            ) => {}
            Err(e) => return Err(backend(e)),
        }
        if self.exists(key).await? {
            return Ok(false);
        }
        // Two puts of the same bytes may both copy: the object is the same either way.
        self.store.copy(temp, key).await.map_err(backend)?;
        Ok(true)
    }

    /// The multipart half of a put: `first` (one part's worth, already hashed and counted)
    /// and the rest of `body`, to a temp key, then to the final key.
    async fn put_parts(
        &self,
        temp: &mut TempUpload,
        first: Vec<Bytes>,
        mut body: ByteStream,
        mut hasher: Sha256,
        mut size: u64,
        options: PutOptions,
    ) -> Result<Stored, ArtifactError> {
        let upload = self.store.put_multipart(&temp.key).await.map_err(backend)?;
        let write = temp
            .write
            .insert(WriteMultipart::new_with_chunk_size(upload, PART_SIZE));
        for chunk in first {
            write.put(chunk);
        }
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(ArtifactError::Body)?;
            size = size.saturating_add(chunk.len() as u64);
            if size > options.max_bytes {
                return Err(ArtifactError::TooLarge {
                    limit: options.max_bytes,
                });
            }
            hasher.update(&chunk);
            write
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(backend)?;
            write.put(chunk);
        }
        let id = FileId::from_digest(hasher.finalize().into());
        if let Some(expected) = options.expected
            && expected != id
        {
            return Err(ArtifactError::HashMismatch {
                expected,
                actual: id,
            });
        }
        if let Some(write) = temp.write.take() {
            // On failure, `finish` aborts the upload itself.
            write.finish().await.map_err(backend)?;
            temp.written = true;
        }
        let created = self.place(&temp.key, &self.key(&id)).await?;
        Ok(Stored { id, size, created })
    }
}

/// The temp key of a multipart put: its unfinished upload, or its complete object, until
/// cleaned up. Dropped before [`TempUpload::clean`] ran (the put future was dropped), it
/// spawns the cleanup.
struct TempUpload {
    store: Arc<AmazonS3>,
    key: Path,
    write: Option<WriteMultipart>,
    written: bool,
}

impl TempUpload {
    async fn clean(&mut self) {
        clean_temp(&self.store, &self.key, self.write.take(), self.written).await;
        self.written = false;
    }
}

async fn clean_temp(store: &AmazonS3, key: &Path, write: Option<WriteMultipart>, written: bool) {
    if let Some(write) = write
        && let Err(e) = write.abort().await
    {
        tracing::warn!(key = %key, error = %e, "could not abort a multipart upload");
    }
    if written && let Err(e) = store.delete(key).await {
        tracing::warn!(key = %key, error = %e, "could not delete a temp object");
    }
}

impl Drop for TempUpload {
    fn drop(&mut self) {
        if self.write.is_none() && !self.written {
            return;
        }
        let (store, key, write, written) = (
            Arc::clone(&self.store),
            self.key.clone(),
            self.write.take(),
            self.written,
        );
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move { clean_temp(&store, &key, write, written).await });
            }
            Err(_) => tracing::warn!(key = %key, "left a temp upload: no runtime to clean it"),
        }
    }
}

#[async_trait::async_trait]
impl BlobStore for S3Store {
    fn name(&self) -> &'static str {
        "s3"
    }

    async fn put(
        &self,
        mut body: ByteStream,
        options: PutOptions,
    ) -> Result<Stored, ArtifactError> {
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut first = Vec::new();
        let mut buffered = 0usize;
        while buffered < PART_SIZE {
            let Some(chunk) = body.next().await else {
                let id = FileId::from_digest(hasher.finalize().into());
                if let Some(expected) = options.expected
                    && expected != id
                {
                    return Err(ArtifactError::HashMismatch {
                        expected,
                        actual: id,
                    });
                }
                return self.put_whole(first, id, size).await;
            };
            let chunk = chunk.map_err(ArtifactError::Body)?;
            size = size.saturating_add(chunk.len() as u64);
            if size > options.max_bytes {
                return Err(ArtifactError::TooLarge {
                    limit: options.max_bytes,
                });
            }
            hasher.update(&chunk);
            buffered += chunk.len();
            first.push(chunk);
        }
        let mut temp = TempUpload {
            store: Arc::clone(&self.store),
            key: self.tmp.clone().join(uuid::Uuid::new_v4().to_string()),
            write: None,
            written: false,
        };
        let outcome = self
            .put_parts(&mut temp, first, body, hasher, size, options)
            .await;
        temp.clean().await;
        outcome
    }

    async fn head(&self, id: &FileId) -> Result<Option<u64>, ArtifactError> {
        match self.store.head(&self.key(id)).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(backend(e)),
        }
    }

    async fn get(&self, id: &FileId, range: Option<Range<u64>>) -> Result<Blob, ArtifactError> {
        let key = self.key(id);
        if let Some(range) = range.as_ref().filter(|r| r.is_empty()) {
            // Never a valid request; its error still names the blob's size.
            let size = self.head(id).await?.ok_or(ArtifactError::NotFound(*id))?;
            check_range(range, size)?;
        }
        let options = GetOptions {
            range: range.clone().map(GetRange::Bounded),
            ..GetOptions::default()
        };
        let result = match self.store.get_opts(&key, options).await {
            Ok(result) => result,
            Err(object_store::Error::NotFound { .. }) => return Err(ArtifactError::NotFound(*id)),
            Err(e) => {
                // A range starting past the end is refused by the service: tell that from
                // other failures by the blob's size.
                if let Some(range) = &range {
                    match self.head(id).await {
                        Ok(None) => return Err(ArtifactError::NotFound(*id)),
                        Ok(Some(size)) => check_range(range, size)?,
                        Err(_) => {}
                    }
                }
                return Err(backend(e));
            }
        };
        let size = result.meta.size;
        if let Some(range) = &range {
            // The service answers a range that runs past the end with what there is.
            check_range(range, size)?;
        }
        let body = result
            .into_stream()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .boxed();
        Ok(Blob { size, body })
    }

    async fn delete(&self, id: &FileId) -> Result<(), ArtifactError> {
        match self.store.delete(&self.key(id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(backend(e)),
        }
    }

    async fn list(&self) -> Result<Vec<Listed>, ArtifactError> {
        let mut out = Vec::new();
        let mut objects = self.store.list(Some(&self.blobs));
        while let Some(meta) = objects.try_next().await.map_err(backend)? {
            let Some(id) = meta.location.filename().and_then(FileId::parse) else {
                continue;
            };
            if meta.location != self.key(&id) {
                continue;
            }
            out.push(Listed {
                id,
                size: meta.size,
                modified: meta.last_modified.into(),
            });
        }
        out.sort_by_key(|listed| listed.id);
        Ok(out)
    }
}
