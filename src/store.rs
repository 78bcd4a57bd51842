//! Storage of outputs through `object_store`: local disk or S3-compatible
//! buckets, and the key layout (`assets/{asset_id}/{name}`).
//!
//! Uploads are multipart and only become visible when complete: on S3 an
//! object exists once `CompleteMultipartUpload` succeeds; on local disk
//! `object_store` writes a staging file beside the key and renames it into
//! place. A half-written output is therefore never readable at its final key.

use std::path::Path;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use tokio::io::AsyncReadExt;

use crate::config::StorageConfig;

/// Bytes sent per multipart part.
const PART_SIZE_BYTES: usize = 16 * 1024 * 1024;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store could not be set up from the config.
    #[error("cannot open the store {what}: {source}")]
    Open {
        /// The store's description.
        what: String,
        /// The cause.
        source: object_store::Error,
    },
    /// A local file to upload could not be read.
    #[error("cannot read {path} for upload: {source}")]
    ReadLocal {
        /// The file.
        path: String,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The store refused or failed an operation.
    #[error("store operation on {key} failed: {source}")]
    Operation {
        /// The object key.
        key: String,
        /// The cause.
        source: object_store::Error,
    },
}

impl StoreError {
    /// Storage failures are environmental (server down, disk full): retry.
    pub fn is_transient(&self) -> bool {
        true
    }
}

/// The object key of an asset's file `name` (e.g. `master.mp4`).
pub fn asset_key(asset_id: &str, name: &str) -> ObjectPath {
    ObjectPath::from(format!("assets/{asset_id}/{name}"))
}

/// The folder of all of an asset's files.
pub fn asset_prefix(asset_id: &str) -> ObjectPath {
    ObjectPath::from(format!("assets/{asset_id}"))
}

/// Where an asset's master is stored.
pub fn master_key(asset_id: &str) -> ObjectPath {
    asset_key(asset_id, "master.mp4")
}

/// The configured object store.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    description: String,
    /// The root folder of a local store (its free space is checked).
    local_root: Option<std::path::PathBuf>,
}

impl Store {
    /// Opens the store described by the config (creating a local root folder).
    pub fn open(config: &StorageConfig) -> Result<Store, StoreError> {
        match config {
            StorageConfig::Local { root } => {
                std::fs::create_dir_all(root).map_err(|e| StoreError::Open {
                    what: root.display().to_string(),
                    source: object_store::Error::Generic {
                        store: "LocalFileSystem",
                        source: Box::new(e),
                    },
                })?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(root)
                    .map_err(|source| StoreError::Open {
                        what: root.display().to_string(),
                        source,
                    })?
                    // Every stored file and its directory entry are on disk
                    // before the put returns, so before the asset is
                    // committed ready and its source released.
                    .with_fsync(true);
                Ok(Store {
                    inner: Arc::new(fs),
                    description: format!("file://{}", root.display()),
                    local_root: Some(root.clone()),
                })
            }
            StorageConfig::S3 {
                bucket,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
                allow_http,
            } => {
                let mut builder = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_access_key_id(access_key_id)
                    .with_secret_access_key(&secret_access_key.0)
                    .with_allow_http(*allow_http);
                if let Some(endpoint) = endpoint {
                    builder = builder
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false);
                }
                let s3 = builder.build().map_err(|source| StoreError::Open {
                    what: format!("s3://{bucket}"),
                    source,
                })?;
                Ok(Store {
                    inner: Arc::new(s3),
                    description: format!("s3://{bucket}"),
                    local_root: None,
                })
            }
        }
    }

    /// A human description (`file:///…`, `s3://bucket`) for logs.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Uploads the local file at `path` to `key`; returns the bytes stored.
    pub async fn put_file(&self, key: &ObjectPath, path: &Path) -> Result<u64, StoreError> {
        let read_err = |source| StoreError::ReadLocal {
            path: path.display().to_string(),
            source,
        };
        let op_err = |source| StoreError::Operation {
            key: key.to_string(),
            source,
        };
        let mut file = tokio::fs::File::open(path).await.map_err(read_err)?;
        let upload = self.inner.put_multipart(key).await.map_err(op_err)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE_BYTES);
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

    /// The size of the object at `key`, or `None` when it does not exist.
    pub async fn size_of(&self, key: &ObjectPath) -> Result<Option<u64>, StoreError> {
        match self.inner.head(key).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(StoreError::Operation {
                key: key.to_string(),
                source,
            }),
        }
    }

    /// Downloads the object at `key` into a local file, streaming.
    pub async fn get_to_file(&self, key: &ObjectPath, path: &Path) -> Result<u64, StoreError> {
        use futures::StreamExt;
        use tokio::io::AsyncWriteExt;
        let op_err = |source| StoreError::Operation {
            key: key.to_string(),
            source,
        };
        let local_err = |source| StoreError::ReadLocal {
            path: path.display().to_string(),
            source,
        };
        let mut stream = self.inner.get(key).await.map_err(op_err)?.into_stream();
        let mut file = tokio::fs::File::create(path).await.map_err(local_err)?;
        let mut total = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(op_err)?;
            total += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(local_err)?;
        }
        file.flush().await.map_err(local_err)?;
        Ok(total)
    }

    /// Deletes the staging files of uploads a crash interrupted (a local
    /// store writes `KEY#N` and renames it into place when complete; reeld's
    /// keys never contain `#`). Returns how many there were. On S3 an
    /// interrupted multipart upload is invisible and costs only storage until
    /// the bucket's AbortIncompleteMultipartUpload rule removes it.
    pub fn remove_interrupted_uploads(&self) -> usize {
        let Some(root) = &self.local_root else {
            return 0;
        };
        let mut removed = 0;
        let mut stack = vec![root.join("assets")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if entry.file_name().to_string_lossy().contains('#')
                    && std::fs::remove_file(&path).is_ok()
                {
                    removed += 1;
                }
            }
        }
        removed
    }

    /// The root folder of a local store; `None` for S3.
    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    /// Deletes every object under `prefix` (an asset's folder). Returns how
    /// many there were; deleting what is already gone is not an error.
    pub async fn delete_prefix(&self, prefix: &ObjectPath) -> Result<usize, StoreError> {
        use futures::TryStreamExt;
        let op_err = |source| StoreError::Operation {
            key: prefix.to_string(),
            source,
        };
        let keys: Vec<ObjectPath> = self
            .inner
            .list(Some(prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(op_err)?;
        for key in &keys {
            match self.inner.delete(key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(source) => {
                    return Err(StoreError::Operation {
                        key: key.to_string(),
                        source,
                    });
                }
            }
        }
        Ok(keys.len())
    }

    /// Deletes one object; deleting what is already gone is not an error.
    pub async fn delete(&self, key: &ObjectPath) -> Result<(), StoreError> {
        match self.inner.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(StoreError::Operation {
                key: key.to_string(),
                source,
            }),
        }
    }

    /// Reads a whole object (small objects and tests).
    pub async fn get_bytes(&self, key: &ObjectPath) -> Result<bytes::Bytes, StoreError> {
        let op_err = |source| StoreError::Operation {
            key: key.to_string(),
            source,
        };
        self.inner
            .get(key)
            .await
            .map_err(op_err)?
            .bytes()
            .await
            .map_err(op_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_layout() {
        assert_eq!(master_key("abc").to_string(), "assets/abc/master.mp4");
        assert_eq!(
            asset_key("abc", "720p.mp4").to_string(),
            "assets/abc/720p.mp4"
        );
    }

    #[test]
    fn interrupted_local_uploads_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StorageConfig::Local {
            root: dir.path().join("store"),
        })
        .unwrap();
        let folder = dir.path().join("store/assets/a1");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("master.mp4"), b"done").unwrap();
        std::fs::write(folder.join("720p.mp4#3"), b"half").unwrap();
        assert_eq!(store.remove_interrupted_uploads(), 1);
        assert!(folder.join("master.mp4").exists());
        assert!(!folder.join("720p.mp4#3").exists());
    }

    #[tokio::test]
    async fn local_upload_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StorageConfig::Local {
            root: dir.path().join("store"),
        })
        .unwrap();
        let src = dir.path().join("f.bin");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&src, &data).unwrap();
        let key = master_key("x");
        assert_eq!(store.size_of(&key).await.unwrap(), None);
        assert_eq!(store.put_file(&key, &src).await.unwrap(), data.len() as u64);
        assert_eq!(
            store.get_bytes(&key).await.unwrap().as_ref(),
            data.as_slice()
        );
        assert!(dir.path().join("store/assets/x/master.mp4").exists());
    }
}
