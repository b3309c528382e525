//! `comfy-artifacts`: the queue's file store. Files are content-addressed: a file's key is
//! the SHA-256 of its bytes ([`FileId`]), so an input shared by 50 jobs, or an output that
//! ComfyUI served from cache, is stored once. Which job a file belongs to, under which name
//! and content type, is the queue's business (its job store); this crate only keeps bytes.
//!
//! One interface, [`BlobStore`], with two backends:
//! - a local directory (the default: the embedded stack needs no server);
//! - S3-compatible object storage (AWS S3, Cloudflare R2, MinIO, ...), through `object_store`.
//!
//! Bodies stream in and out: nothing holds a whole file in memory, and a body that breaks off,
//! runs past its size limit or does not match its declared hash leaves no blob under its key.

use std::fmt;
use std::ops::Range;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::stream::BoxStream;

mod local;
mod s3;

pub use local::LocalStore;
pub use s3::{PART_SIZE, PARTS_IN_FLIGHT, S3Config, S3Store};

/// A stream of body chunks, as both backends take and give them.
pub type ByteStream = BoxStream<'static, Result<Bytes, std::io::Error>>;

/// A file's id: the SHA-256 of its bytes. Its text form is 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId([u8; 32]);

impl FileId {
    /// From a digest.
    pub fn from_digest(digest: [u8; 32]) -> Self {
        FileId(digest)
    }

    /// Parse 64 hex digits (either case); `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).ok()?;
        Some(FileId(out))
    }

    /// The digest.
    pub fn digest(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileId({self})")
    }
}

/// What a put may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PutOptions {
    /// Refuse bodies longer than this ([`ArtifactError::TooLarge`]).
    pub max_bytes: u64,
    /// The hash the sender declared; a body with another hash is refused
    /// ([`ArtifactError::HashMismatch`]) and not stored.
    pub expected: Option<FileId>,
}

/// A stored blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    /// Its id.
    pub id: FileId,
    /// Its size in bytes.
    pub size: u64,
    /// False when a blob with these bytes was already there (nothing was written).
    pub created: bool,
}

/// A blob being read.
pub struct Blob {
    /// Size of the whole blob in bytes (not of the range).
    pub size: u64,
    /// The bytes asked for (the whole blob or the range).
    pub body: ByteStream,
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blob")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl Blob {
    /// The whole body in memory (for small blobs the caller has checked the size of).
    pub async fn into_bytes(self) -> Result<Vec<u8>, ArtifactError> {
        use futures_util::StreamExt;
        let mut bytes = Vec::with_capacity(usize::try_from(self.size).unwrap_or(0));
        let mut body = self.body;
        while let Some(chunk) = body.next().await {
            bytes.extend_from_slice(&chunk.map_err(ArtifactError::Body)?);
        }
        Ok(bytes)
    }
}

/// One entry of [`BlobStore::list`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listed {
    /// The blob.
    pub id: FileId,
    /// Its size.
    pub size: u64,
    /// When it was written (sweeps spare blobs younger than their grace period, which an
    /// upload may be about to refer to).
    pub modified: SystemTime,
}

/// Why a store call failed.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The body was longer than [`PutOptions::max_bytes`].
    #[error("the file is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The body's hash is not the one declared.
    #[error("the file's SHA-256 is {actual}, not the declared {expected}")]
    HashMismatch {
        /// Declared.
        expected: FileId,
        /// Computed.
        actual: FileId,
    },
    /// No blob with this id.
    #[error("no stored file {0}")]
    NotFound(FileId),
    /// The range asked for is not inside the blob.
    #[error("range {start}..{end} is outside the file of {size} bytes")]
    RangeNotSatisfiable {
        /// Start asked.
        start: u64,
        /// End asked (exclusive).
        end: u64,
        /// Size of the blob.
        size: u64,
    },
    /// The body's sender broke off (its stream yielded an error).
    #[error("the upload broke off: {0}")]
    Body(#[source] std::io::Error),
    /// The backend failed (disk, network, object storage): worth a retry.
    #[error("the file store failed: {0}")]
    Backend(String),
}

/// A content-addressed blob store. Implementations: `LocalStore`, `S3Store`.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + fmt::Debug + 'static {
    /// `local` or `s3`, for logs and `/health`.
    fn name(&self) -> &'static str;

    /// Streams `body` in while hashing it and stores it under its hash. Idempotent: storing
    /// bytes that are already there writes nothing ([`Stored::created`] false). A body that
    /// fails, runs past the limit or mismatches its declared hash leaves nothing behind.
    async fn put(&self, body: ByteStream, options: PutOptions) -> Result<Stored, ArtifactError>;

    /// The size of a blob, or `None` when there is none.
    async fn head(&self, id: &FileId) -> Result<Option<u64>, ArtifactError>;

    /// Reads a blob, or the byte range of it (`start..end`, end exclusive, inside the blob).
    async fn get(&self, id: &FileId, range: Option<Range<u64>>) -> Result<Blob, ArtifactError>;

    /// Removes a blob; removing one that is not there is not an error.
    async fn delete(&self, id: &FileId) -> Result<(), ArtifactError>;

    /// Every blob, for sweeps of files no job refers to any more.
    async fn list(&self) -> Result<Vec<Listed>, ArtifactError>;
}
