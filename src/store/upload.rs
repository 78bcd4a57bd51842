//! Uploading a spool file to the store in bounded memory.
//!
//! On S3 the upload drives the multipart API itself (object_store's
//! `MultipartStore`), so that each part has a fixed number and can be sent
//! again after a failure; the high-level writer numbers parts as it goes and
//! cannot retry one. At most `PARTS_IN_FLIGHT` parts are in memory. An
//! upload that cannot complete is aborted, so reeld leaves no incomplete
//! multipart upload behind (a crash still can: the README's lifecycle rule
//! removes those).
//!
//! On a local store on the spool's file system, the spool file is renamed
//! to its key. On another file system, object_store writes a staging file
//! and renames it into place; the file is read in 1 MiB pieces.

use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use object_store::aws::AmazonS3;
use object_store::local::LocalFileSystem;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, MultipartId, ObjectStore, ObjectStoreExt, PutMultipartOptions,
    PutPayload, WriteMultipart,
};
use tokio::io::AsyncReadExt;
use tracing::warn;

use super::retry::{Waiting, persist};
use super::{Problem, StoreError};

/// The smallest part reeld sends (S3's minimum is 5 MiB).
const MIN_PART_BYTES: u64 = 16 * 1024 * 1024;
/// S3 allows 10 000 parts; larger files get larger parts.
const MAX_PARTS: u64 = 9_000;
/// Parts being sent at once, and so held in memory at once.
const PARTS_IN_FLIGHT: usize = 3;
/// How long an abort keeps trying when the store is unavailable.
const ABORT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

/// The part size for a file of `size` bytes: 16 MiB, or more for files
/// past 140 GiB, rounded up to whole MiB.
pub fn part_size_for(size: u64) -> u64 {
    const MIB: u64 = 1024 * 1024;
    let needed = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    needed.max(MIN_PART_BYTES)
}

/// The content type a stored file is served with.
pub fn content_type_of(key: &ObjectPath) -> &'static str {
    if key.as_ref().ends_with(".m4a") {
        "audio/mp4"
    } else {
        "video/mp4"
    }
}

/// Uploads `path` to `key` on S3; returns the bytes stored.
pub async fn put_file_s3(
    s3: &Arc<AmazonS3>,
    key: &ObjectPath,
    path: &Path,
    waiting: Waiting<'_>,
) -> Result<u64, StoreError> {
    let local_err = StoreError::local(path);
    let op_err = StoreError::on(key);
    let size = tokio::fs::metadata(path).await.map_err(local_err)?.len();
    let part_size = part_size_for(size);
    let id = persist("starting a multipart upload", waiting, || async {
        let options = PutMultipartOptions {
            attributes: Attributes::from_iter([(
                Attribute::ContentType,
                object_store::AttributeValue::from(content_type_of(key)),
            )]),
            ..Default::default()
        };
        s3.create_multipart_opts(key, options).await.map_err(op_err)
    })
    .await?;
    let mut pending = PendingUpload {
        s3: s3.clone(),
        key: key.clone(),
        id: Some(id.clone()),
    };
    let sent = send_parts(s3, key, &id, path, size, part_size, waiting).await;
    let parts = match sent {
        Ok(parts) => parts,
        Err(e) => {
            pending.abort().await;
            return Err(e);
        }
    };
    let mut calls = 0;
    let completed = persist("completing a multipart upload", waiting, || {
        let attempt = s3.complete_multipart(key, &id, parts.clone());
        calls += 1;
        async move { attempt.await.map_err(op_err) }
    })
    .await;
    match completed {
        Ok(_) => {
            pending.id = None;
            Ok(size)
        }
        // A completion whose answer was lost: the upload is gone because it
        // became the object. The object's size tells.
        Err(e) if calls > 1 && object_size(s3, key).await == Some(size) => {
            warn!(key = %key, error = %e.chain(), "The completed upload was found stored.");
            // Harmless if the upload became the object (NoSuchUpload), and
            // removes it if an equal object was there already.
            pending.abort().await;
            Ok(size)
        }
        Err(e) => {
            pending.abort().await;
            Err(e)
        }
    }
}

async fn object_size(s3: &AmazonS3, key: &ObjectPath) -> Option<u64> {
    s3.head(key).await.ok().map(|meta| meta.size)
}

/// Reads the file part by part and sends each, retrying a part in place
/// while the store is unavailable.
async fn send_parts(
    s3: &Arc<AmazonS3>,
    key: &ObjectPath,
    id: &MultipartId,
    path: &Path,
    size: u64,
    part_size: u64,
    waiting: Waiting<'_>,
) -> Result<Vec<PartId>, StoreError> {
    let local_err = StoreError::local(path);
    let mut file = tokio::fs::File::open(path).await.map_err(local_err)?;
    let count = size.div_ceil(part_size).max(1) as usize;
    let mut parts: Vec<Option<PartId>> = vec![None; count];
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut next = 0;
    while next < count || !in_flight.is_empty() {
        if next < count && in_flight.len() < PARTS_IN_FLIGHT {
            let mut buf = Vec::with_capacity(part_size as usize);
            (&mut file)
                .take(part_size)
                .read_to_end(&mut buf)
                .await
                .map_err(local_err)?;
            let payload = PutPayload::from(bytes::Bytes::from(buf));
            let index = next;
            in_flight.push(async move {
                let what = format!("sending part {} of {count}", index + 1);
                let part = persist(&what, waiting, || async {
                    s3.put_part(key, id, index, payload.clone())
                        .await
                        .map_err(StoreError::on(key))
                })
                .await?;
                Ok::<_, StoreError>((index, part))
            });
            next += 1;
            continue;
        }
        if let Some(done) = in_flight.next().await {
            let (index, part) = done?;
            parts[index] = Some(part);
        }
    }
    Ok(parts.into_iter().flatten().collect())
}

/// An incomplete multipart upload, aborted when it is given up on; if the
/// upload's task is dropped (a cancelled job), the abort runs as a task of
/// its own.
struct PendingUpload {
    s3: Arc<AmazonS3>,
    key: ObjectPath,
    id: Option<MultipartId>,
}

impl PendingUpload {
    async fn abort(&mut self) {
        if let Some(id) = self.id.take() {
            abort_upload(self.s3.clone(), self.key.clone(), id).await;
        }
    }
}

impl Drop for PendingUpload {
    fn drop(&mut self) {
        if let Some(id) = self.id.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(abort_upload(self.s3.clone(), self.key.clone(), id));
        }
    }
}

async fn abort_upload(s3: Arc<AmazonS3>, key: ObjectPath, id: MultipartId) {
    let attempt = persist(
        "aborting a multipart upload",
        &super::retry::quietly,
        || async {
            s3.abort_multipart(&key, &id)
                .await
                .map_err(StoreError::on(&key))
        },
    );
    match tokio::time::timeout(ABORT_PATIENCE, attempt).await {
        Ok(Ok(())) => {}
        Ok(Err(e))
            if matches!(e.problem(), Problem::Failed) && e.chain().contains("NoSuchUpload") => {}
        Ok(Err(e)) => {
            warn!(key = %key, error = %e.chain(), "Cannot abort an incomplete multipart upload; the bucket's lifecycle rule must remove it.")
        }
        Err(_) => {
            warn!(key = %key, "The store did not come back in time to abort an incomplete multipart upload; the bucket's lifecycle rule must remove it.")
        }
    }
}

/// Moves the spool file `path` to `key` of the local store rooted at
/// `root` by rename, when both are on one file system: no byte is copied.
/// The file's data and every folder entry from the key up to the root are
/// synced before it returns, as object_store's fsync mode does for a put.
/// `Ok(None)`: another file system; the caller copies instead.
pub async fn rename_into_local(
    local: &Arc<LocalFileSystem>,
    root: &Path,
    key: &ObjectPath,
    path: &Path,
) -> Result<Option<u64>, StoreError> {
    let dest = local.path_to_filesystem(key).map_err(StoreError::on(key))?;
    let (root, src) = (root.to_owned(), path.to_owned());
    let moved = tokio::task::spawn_blocking(move || -> std::io::Result<Option<u64>> {
        let file = std::fs::File::open(&src)?;
        let bytes = file.metadata()?.len();
        file.sync_all()?;
        let folder = dest.parent().unwrap_or(&root).to_owned();
        // The folders to sync: the key's, and every one up to the first
        // that already existed, whose entries create_dir_all adds to.
        let mut to_sync = vec![folder.clone()];
        let mut existing = folder.as_path();
        while !existing.exists() && existing != root {
            match existing.parent() {
                Some(parent) => {
                    to_sync.push(parent.to_owned());
                    existing = parent;
                }
                None => break,
            }
        }
        std::fs::create_dir_all(&folder)?;
        match std::fs::rename(&src, &dest) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => return Ok(None),
            Err(e) => return Err(e),
        }
        for dir in to_sync {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(Some(bytes))
    })
    .await
    .expect("rename task does not panic");
    moved.map_err(StoreError::local(path))
}

/// Uploads `path` to `key` on a local store (staging file, then rename).
pub async fn put_file_local(
    objects: &Arc<dyn ObjectStore>,
    key: &ObjectPath,
    path: &Path,
) -> Result<u64, StoreError> {
    let read_err = StoreError::local(path);
    let op_err = StoreError::on(key);
    let mut file = tokio::fs::File::open(path).await.map_err(read_err)?;
    let upload = objects.put_multipart(key).await.map_err(op_err)?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, MIN_PART_BYTES as usize);
    let mut buf = vec![0u8; 1024 * 1024];
    let mut total = 0u64;
    loop {
        let n = match file.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(read_err(e));
            }
        };
        if n == 0 {
            break;
        }
        total += n as u64;
        writer.wait_for_capacity(4).await.map_err(op_err)?;
        writer.write(&buf[..n]);
    }
    writer.finish().await.map_err(op_err)?;
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_stay_within_s3s_limits() {
        const MIB: u64 = 1024 * 1024;
        assert_eq!(part_size_for(0), 16 * MIB);
        assert_eq!(part_size_for(10 * 1024 * MIB), 16 * MIB);
        let huge = 5 * 1024 * 1024 * MIB; // 5 TiB, S3's largest object
        let part = part_size_for(huge);
        assert!(huge.div_ceil(part) <= 10_000);
        assert_eq!(part % MIB, 0);
    }
}
