//! [`LocalStore`]: blobs in a local directory.
//!
//! Layout under the root:
//! - `sha256/<first 2 hex digits>/<64 hex digits>`: one file per blob;
//! - `tmp/<uuid>`: bodies being received. A put writes here, fsyncs, then renames the file
//!   into `sha256/` (same file system, so the rename is atomic): a blob's file is always
//!   complete. Temp files a crash left behind are removed by [`LocalStore::open`], so a root
//!   belongs to one process at a time. A body under 1 MiB is held in memory until it is all
//!   in, then written, synced and renamed in one step; a body whose blob is stored already
//!   is not written again.
//!
//! Paths are built from the [`FileId`] alone (its hex form), never from anything a caller
//! names.

use std::io::{ErrorKind, SeekFrom};
use std::ops::Range;
use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use std::io::Write as _;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::task::JoinHandle;
use tokio_util::io::ReaderStream;

use crate::{ArtifactError, Blob, BlobStore, ByteStream, FileId, Listed, PutOptions, Stored};

/// How much of a body is held in memory before it is written to its temp file (a body
/// under this is written, synced and renamed in one blocking step).
const WRITE_BUFFER: usize = 1 << 20;
const READ_CHUNK: usize = 64 * 1024;

/// A content-addressed blob store in a local directory (see the module docs for its layout).
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// Opens (creating it if needed) the store at `root`, and removes temp files an earlier
    /// process left behind when it stopped mid-upload.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self, ArtifactError> {
        let store = LocalStore { root: root.into() };
        for dir in [store.blobs_dir(), store.tmp_dir()] {
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(|e| io_failure("creating", &dir, e))?;
        }
        let tmp = store.tmp_dir();
        let mut entries = tokio::fs::read_dir(&tmp)
            .await
            .map_err(|e| io_failure("reading", &tmp, e))?;
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| io_failure("reading", &tmp, e))?
        {
            let path = entry.path();
            let removed = match entry.file_type().await {
                Ok(kind) if kind.is_dir() => tokio::fs::remove_dir_all(&path).await,
                _ => tokio::fs::remove_file(&path).await,
            };
            match removed {
                Ok(()) => tracing::info!(path = %path.display(), "removed a stale upload"),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(io_failure("removing", &path, e)),
            }
        }
        Ok(store)
    }

    /// The directory this store keeps its files in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("sha256")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn shard_dir(&self, id: &FileId) -> PathBuf {
        self.blobs_dir().join(hex::encode(&id.digest()[..1]))
    }

    fn blob_path(&self, id: &FileId) -> PathBuf {
        self.shard_dir(id).join(id.to_string())
    }

    /// Takes in `body`, hashing it: in memory while it is under [`WRITE_BUFFER`], in the temp
    /// file at `path` once it is not (one blocking write per full buffer, the next buffer
    /// filling while the last is written). The caller removes that file when this fails.
    async fn receive(
        &self,
        path: &Path,
        mut body: ByteStream,
        options: PutOptions,
    ) -> Result<Received, ArtifactError> {
        let mut hasher = Sha256::new();
        let mut size: u64 = 0;
        let mut tail: Vec<u8> = Vec::new();
        let mut writing: Option<JoinHandle<Result<std::fs::File, ArtifactError>>> = None;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(ArtifactError::Body)?;
            size = size.saturating_add(chunk.len() as u64);
            if size > options.max_bytes {
                return Err(ArtifactError::TooLarge {
                    limit: options.max_bytes,
                });
            }
            hasher.update(&chunk);
            tail.extend_from_slice(&chunk);
            if tail.len() >= WRITE_BUFFER {
                let file = match writing.take() {
                    Some(last) => joined(last).await?,
                    None => {
                        let at = path.to_owned();
                        blocking(move || create_temp(&at)).await?
                    }
                };
                // A body this large goes on: the next buffer is made full-sized at once.
                let full = std::mem::replace(&mut tail, Vec::with_capacity(WRITE_BUFFER));
                let at = path.to_owned();
                writing = Some(tokio::task::spawn_blocking(move || {
                    write_temp(&at, file, &full)
                }));
            }
        }
        let file = match writing {
            Some(last) => Some(joined(last).await?),
            None => None,
        };
        let id = FileId::from_digest(hasher.finalize().into());
        if let Some(expected) = options.expected
            && expected != id
        {
            return Err(ArtifactError::HashMismatch {
                expected,
                actual: id,
            });
        }
        Ok(Received {
            id,
            size,
            file,
            tail,
        })
    }
}

/// A body taken in whole: its hash and size, the temp file holding its first part (`None`
/// while it fit in memory), and the bytes not written yet.
struct Received {
    id: FileId,
    size: u64,
    file: Option<std::fs::File>,
    tail: Vec<u8>,
}

/// Runs file-system work on tokio's blocking pool: a put's disk steps go there together,
/// one hop instead of one per call.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ArtifactError> + Send + 'static,
) -> Result<T, ArtifactError> {
    joined(tokio::task::spawn_blocking(work)).await
}

/// The result of blocking file-system work.
async fn joined<T>(task: JoinHandle<Result<T, ArtifactError>>) -> Result<T, ArtifactError> {
    task.await
        .map_err(|e| ArtifactError::Backend(format!("a file-system task failed: {e}")))?
}

/// Creates the temp file at `path` (it must not exist).
fn create_temp(path: &Path) -> Result<std::fs::File, ArtifactError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| io_failure("creating", path, e))
}

/// Appends `bytes` to `file`, the temp file at `path`.
fn write_temp(
    path: &Path,
    mut file: std::fs::File,
    bytes: &[u8],
) -> Result<std::fs::File, ArtifactError> {
    file.write_all(bytes)
        .map_err(|e| io_failure("writing", path, e))?;
    Ok(file)
}

/// Syncs directory `dir`, which makes the entries created or renamed in it durable. A
/// failure is logged, not returned: the blob's bytes are synced already.
fn sync_dir(dir: &Path) {
    match std::fs::File::open(dir) {
        Ok(d) => {
            if let Err(e) = d.sync_all() {
                tracing::warn!(path = %dir.display(), error = %e, "could not sync a directory");
            }
        }
        Err(e) => {
            tracing::warn!(path = %dir.display(), error = %e, "could not open a directory to sync it");
        }
    }
}

/// The disk steps of a put once its body is in (on the blocking pool): when the blob is
/// stored already, only its directory is synced (a put of the same bytes that renamed it
/// there may not have synced it yet) and the temp file is left to its guard; otherwise the
/// rest of the body is written, the temp file synced and renamed into place, and the
/// directory synced. True when this put created the blob. `temp` removes the temp file
/// unless it was renamed.
fn settle(
    mut temp: TempFile,
    received: Received,
    shard: &Path,
    target: &Path,
) -> Result<bool, ArtifactError> {
    std::fs::create_dir_all(shard).map_err(|e| io_failure("creating", shard, e))?;
    match std::fs::metadata(target) {
        Ok(_) => {
            sync_dir(shard);
            return Ok(false);
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(io_failure("reading", target, e)),
    }
    let file = match received.file {
        Some(f) => f,
        None => create_temp(&temp.path)?,
    };
    let file = write_temp(&temp.path, file, &received.tail)?;
    file.sync_all()
        .map_err(|e| io_failure("syncing", &temp.path, e))?;
    drop(file);
    // Two puts of the same bytes may both get here: each renames a complete file with the
    // same content over the other, so readers see one or the other, never a part.
    std::fs::rename(&temp.path, target).map_err(|e| io_failure("renaming into", target, e))?;
    temp.armed = false;
    // The rename is durable once the directory is synced.
    sync_dir(shard);
    Ok(true)
}

/// Removes a temp file when dropped, unless disarmed: covers errors and a put future that
/// is dropped halfway (its client went away).
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = std::fs::remove_file(&self.path)
            && e.kind() != ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %e, "could not remove a temp file");
        }
    }
}

fn io_failure(action: &str, path: &Path, error: std::io::Error) -> ArtifactError {
    ArtifactError::Backend(format!("{action} {}: {error}", path.display()))
}

/// Checks that `range` is non-empty and inside a blob of `size` bytes.
pub(crate) fn check_range(range: &Range<u64>, size: u64) -> Result<(), ArtifactError> {
    if range.start < range.end && range.end <= size {
        Ok(())
    } else {
        Err(ArtifactError::RangeNotSatisfiable {
            start: range.start,
            end: range.end,
            size,
        })
    }
}

#[async_trait::async_trait]
impl BlobStore for LocalStore {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn put(&self, body: ByteStream, options: PutOptions) -> Result<Stored, ArtifactError> {
        let temp = TempFile {
            path: self.tmp_dir().join(uuid::Uuid::new_v4().to_string()),
            armed: true,
        };
        let received = self.receive(&temp.path, body, options).await?;
        let (id, size) = (received.id, received.size);
        let shard = self.shard_dir(&id);
        let target = self.blob_path(&id);
        // The guard goes with the blocking step, which runs to its end even when this
        // future is dropped: the temp file is removed unless it was renamed.
        let created = blocking(move || settle(temp, received, &shard, &target)).await?;
        Ok(Stored { id, size, created })
    }

    async fn head(&self, id: &FileId) -> Result<Option<u64>, ArtifactError> {
        let path = self.blob_path(id);
        match tokio::fs::metadata(&path).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_failure("reading", &path, e)),
        }
    }

    async fn get(&self, id: &FileId, range: Option<Range<u64>>) -> Result<Blob, ArtifactError> {
        let path = self.blob_path(id);
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => return Err(ArtifactError::NotFound(*id)),
            Err(e) => return Err(io_failure("opening", &path, e)),
        };
        let size = file
            .metadata()
            .await
            .map_err(|e| io_failure("reading", &path, e))?
            .len();
        let body: ByteStream = match range {
            None => ReaderStream::with_capacity(file, READ_CHUNK).boxed(),
            Some(range) => {
                check_range(&range, size)?;
                file.seek(SeekFrom::Start(range.start))
                    .await
                    .map_err(|e| io_failure("seeking in", &path, e))?;
                ReaderStream::with_capacity(file.take(range.end - range.start), READ_CHUNK).boxed()
            }
        };
        Ok(Blob { size, body })
    }

    async fn delete(&self, id: &FileId) -> Result<(), ArtifactError> {
        let path = self.blob_path(id);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_failure("removing", &path, e)),
        }
    }

    async fn list(&self) -> Result<Vec<Listed>, ArtifactError> {
        let blobs = self.blobs_dir();
        let mut out = Vec::new();
        let mut shards = tokio::fs::read_dir(&blobs)
            .await
            .map_err(|e| io_failure("reading", &blobs, e))?;
        while let Some(shard) = shards
            .next_entry()
            .await
            .map_err(|e| io_failure("reading", &blobs, e))?
        {
            let shard_name = shard.file_name();
            let Some(prefix) = shard_name.to_str().filter(|n| is_shard_name(n)) else {
                continue;
            };
            let prefix = prefix.to_owned();
            let shard_path = shard.path();
            let mut files = match tokio::fs::read_dir(&shard_path).await {
                Ok(files) => files,
                // Not a directory, or removed meanwhile: nothing of ours.
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {
                    continue;
                }
                Err(e) => return Err(io_failure("reading", &shard_path, e)),
            };
            while let Some(file) = files
                .next_entry()
                .await
                .map_err(|e| io_failure("reading", &shard_path, e))?
            {
                let name = file.file_name();
                let Some(id) = name
                    .to_str()
                    .filter(|n| n.len() == 64 && n.starts_with(&prefix))
                    .and_then(FileId::parse)
                    .filter(|id| id.to_string().as_str() == name)
                else {
                    continue;
                };
                let meta = match file.metadata().await {
                    Ok(meta) => meta,
                    // Deleted between the listing and now.
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(io_failure("reading", &file.path(), e)),
                };
                if !meta.is_file() {
                    continue;
                }
                let modified = meta
                    .modified()
                    .map_err(|e| io_failure("reading the time of", &file.path(), e))?;
                out.push(Listed {
                    id,
                    size: meta.len(),
                    modified,
                });
            }
        }
        out.sort_by_key(|listed| listed.id);
        Ok(out)
    }
}

fn is_shard_name(name: &str) -> bool {
    name.len() == 2
        && name
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
