//! Storage of outputs through `object_store`: local disk or S3-compatible
//! buckets, and the key layout (`assets/{asset_id}/{name}`).
//!
//! Uploads are multipart and only become visible when complete: on S3 an
//! object exists once `CompleteMultipartUpload` succeeds; on local disk
//! `object_store` writes a staging file beside the key and renames it into
//! place. A half-written output is therefore never readable at its final key.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};

use crate::config::{S3Config, StorageConfig};

mod error;
mod health;
pub mod probe;
pub mod retry;
mod upload;

pub use error::{Problem, StoreError};
pub use health::Health;
pub use retry::{Waiting, quietly};

/// How long a connection to S3 may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may take, a whole part upload included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest a presigned URL lives (SigV4's limit is 7 days).
pub const MAX_PRESIGNED: Duration = Duration::from_secs(7 * 24 * 3600);

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

/// The configured object store. Clones share one backend, which a SIGHUP
/// with a new `[storage]` replaces for every later operation (one already
/// under way finishes on the backend it started on).
#[derive(Clone)]
pub struct Store {
    current: Arc<RwLock<Arc<Backend>>>,
    health: Arc<Health>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("description", &self.description())
            .finish()
    }
}

/// One opened `[storage]`.
struct Backend {
    config: StorageConfig,
    objects: Arc<dyn ObjectStore>,
    /// The same bucket through its multipart interface, for uploads.
    s3: Option<Arc<AmazonS3>>,
    /// Signs download URLs: the bucket at its public endpoint.
    presigner: Option<Arc<AmazonS3>>,
    description: String,
    /// The root folder of a local store (its free space is checked).
    local_root: Option<PathBuf>,
    /// The same local store, concrete, for the paths of its keys.
    local: Option<Arc<object_store::local::LocalFileSystem>>,
}

impl Backend {
    fn open(config: &StorageConfig) -> Result<Backend, StoreError> {
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
                let fs = Arc::new(fs);
                Ok(Backend {
                    config: config.clone(),
                    objects: fs.clone(),
                    local: Some(fs),
                    s3: None,
                    presigner: None,
                    description: format!("file://{}", root.display()),
                    local_root: Some(root.clone()),
                })
            }
            StorageConfig::S3(c) => {
                let s3 = Arc::new(s3_client(c, c.endpoint.as_deref())?);
                let presigner = match &c.public_endpoint {
                    Some(public) => Arc::new(s3_client(c, Some(public))?),
                    None => s3.clone(),
                };
                Ok(Backend {
                    config: config.clone(),
                    objects: s3.clone(),
                    s3: Some(s3),
                    presigner: Some(presigner),
                    description: format!("s3://{}", c.bucket),
                    local_root: None,
                    local: None,
                })
            }
        }
    }
}

fn s3_client(c: &S3Config, endpoint: Option<&str>) -> Result<AmazonS3, StoreError> {
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&c.bucket)
        .with_region(&c.region)
        .with_access_key_id(&c.access_key_id)
        .with_secret_access_key(&c.secret_access_key.0)
        .with_virtual_hosted_style_request(c.virtual_hosted_style)
        // The whole client options: `allow_http` is one of them, so it is
        // set here rather than beside them, where this would undo it.
        .with_client_options(
            ClientOptions::new()
                .with_allow_http(c.allow_http)
                .with_connect_timeout(CONNECT_TIMEOUT)
                .with_timeout(REQUEST_TIMEOUT),
        )
        // A few quick retries for a dropped connection; longer outages are
        // waited out by reeld's own loop, which says so in the log.
        .with_retry(RetryConfig {
            backoff: object_store::BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                base: 2.0,
            },
            max_retries: 3,
            retry_timeout: Duration::from_secs(20),
        });
    if let Some(token) = &c.session_token {
        builder = builder.with_token(&token.0);
    }
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint_for(endpoint, &c.bucket, c.virtual_hosted_style));
    }
    builder.build().map_err(|source| StoreError::Open {
        what: format!("s3://{}", c.bucket),
        source,
    })
}

/// The endpoint URL object_store is given: as configured for path-style
/// requests; with the bucket as the first label of the host for
/// virtual-hosted ones (object_store uses that endpoint as it is).
fn endpoint_for(endpoint: &str, bucket: &str, virtual_hosted_style: bool) -> String {
    if !virtual_hosted_style {
        return endpoint.to_owned();
    }
    match url::Url::parse(endpoint) {
        Ok(mut url) => {
            let host = url.host_str().unwrap_or_default().to_owned();
            if url.set_host(Some(&format!("{bucket}.{host}"))).is_err() {
                return endpoint.to_owned();
            }
            url.as_str().trim_end_matches('/').to_owned()
        }
        Err(_) => endpoint.to_owned(),
    }
}

impl Store {
    /// Opens the store described by the config (creating a local root folder).
    pub fn open(config: &StorageConfig) -> Result<Store, StoreError> {
        Ok(Store {
            current: Arc::new(RwLock::new(Arc::new(Backend::open(config)?))),
            health: Arc::default(),
        })
    }

    /// Puts a new `[storage]` in place for every later operation (SIGHUP).
    pub fn replace(&self, config: &StorageConfig) -> Result<(), StoreError> {
        let backend = Arc::new(Backend::open(config)?);
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = backend;
        Ok(())
    }

    /// The `[storage]` the store now uses.
    pub fn config(&self) -> StorageConfig {
        self.backend().config.clone()
    }

    fn backend(&self) -> Arc<Backend> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether the queue may use the store.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// A human description (`file:///…`, `s3://bucket`) for logs.
    pub fn description(&self) -> String {
        self.backend().description.clone()
    }

    /// Uploads the local file at `path` to `key`; returns the bytes stored.
    /// While the store is unavailable the upload waits and retries, telling
    /// `waiting`; it returns an error only for other problems.
    ///
    /// The file is consumed: on a local store on the same file system it is
    /// renamed into place (no copy), so the caller must not read it after.
    pub async fn put_file(
        &self,
        key: &ObjectPath,
        path: &Path,
        waiting: Waiting<'_>,
    ) -> Result<u64, StoreError> {
        let backend = self.backend();
        if let Some(s3) = &backend.s3 {
            return upload::put_file_s3(s3, key, path, waiting).await;
        }
        if let (Some(local), Some(root)) = (&backend.local, &backend.local_root)
            && let Some(bytes) = upload::rename_into_local(local, root, key, path).await?
        {
            return Ok(bytes);
        }
        upload::put_file_local(&backend.objects, key, path).await
    }

    /// A presigned URL for a `method` (GET or HEAD) of `key` that lives `expires_in` (at most
    /// `MAX_PRESIGNED`), with `response-content-disposition` when
    /// `disposition` is given. `None` for a local store, whose files reeld
    /// serves itself.
    pub async fn presigned_get(
        &self,
        method: &axum::http::Method,
        key: &ObjectPath,
        expires_in: Duration,
        disposition: Option<&str>,
    ) -> Result<Option<String>, StoreError> {
        use object_store::signer::{SignedUrlOptions, Signer};
        let backend = self.backend();
        let Some(presigner) = &backend.presigner else {
            return Ok(None);
        };
        let mut options = SignedUrlOptions::default();
        if let Some(d) = disposition {
            options = options.with_query([("response-content-disposition", d)]);
        }
        let url = presigner
            .signed_url_opts(
                method.clone(),
                key,
                expires_in.clamp(Duration::from_secs(1), MAX_PRESIGNED),
                &options,
            )
            .await
            .map_err(StoreError::on(key))?;
        Ok(Some(url.to_string()))
    }

    /// The size of the object at `key`, or `None` when it does not exist.
    pub async fn size_of(&self, key: &ObjectPath) -> Result<Option<u64>, StoreError> {
        match self.backend().objects.head(key).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(StoreError::on(key)(source)),
        }
    }

    /// Downloads the object at `key` into a local file, streaming; while the
    /// store is unavailable it waits, tells `waiting`, and starts again.
    pub async fn get_to_file(
        &self,
        key: &ObjectPath,
        path: &Path,
        waiting: Waiting<'_>,
    ) -> Result<u64, StoreError> {
        retry::persist("downloading", waiting, || self.get_to_file_once(key, path)).await
    }

    async fn get_to_file_once(&self, key: &ObjectPath, path: &Path) -> Result<u64, StoreError> {
        use futures::StreamExt;
        use tokio::io::AsyncWriteExt;
        let op_err = StoreError::on(key);
        let local_err = StoreError::local(path);
        let objects = self.backend().objects.clone();
        let mut stream = objects.get(key).await.map_err(op_err)?.into_stream();
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
        let Some(root) = self.local_root() else {
            return 0;
        };
        let mut removed = 0;
        let mut stack = vec![root.join("assets"), root.join(probe::PROBE_PREFIX)];
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
    pub fn local_root(&self) -> Option<PathBuf> {
        self.backend().local_root.clone()
    }

    /// Deletes every object under `prefix` (an asset's folder). Returns how
    /// many there were; deleting what is already gone is not an error.
    pub async fn delete_prefix(&self, prefix: &ObjectPath) -> Result<usize, StoreError> {
        use futures::TryStreamExt;
        let op_err = StoreError::on(prefix);
        let objects = self.backend().objects.clone();
        let keys: Vec<ObjectPath> = objects
            .list(Some(prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(op_err)?;
        for key in &keys {
            match objects.delete(key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(source) => {
                    return Err(StoreError::on(key)(source));
                }
            }
        }
        Ok(keys.len())
    }

    /// The keys of every object under `prefix`.
    pub async fn list(&self, prefix: &ObjectPath) -> Result<Vec<ObjectPath>, StoreError> {
        use futures::TryStreamExt;
        let objects = self.backend().objects.clone();
        objects
            .list(Some(prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(StoreError::on(prefix))
    }

    /// Deletes one object; deleting what is already gone is not an error.
    pub async fn delete(&self, key: &ObjectPath) -> Result<(), StoreError> {
        match self.backend().objects.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(StoreError::on(key)(source)),
        }
    }

    /// Reads a whole object (small objects and tests).
    pub async fn get_bytes(&self, key: &ObjectPath) -> Result<bytes::Bytes, StoreError> {
        let op_err = StoreError::on(key);
        self.backend()
            .objects
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
    fn virtual_hosted_endpoints_name_the_bucket() {
        assert_eq!(
            endpoint_for("https://s3.example.com", "media", true),
            "https://media.s3.example.com"
        );
        assert_eq!(
            endpoint_for("http://minio.lan:9000", "media", false),
            "http://minio.lan:9000"
        );
    }

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
        assert_eq!(
            store.put_file(&key, &src, &quietly).await.unwrap(),
            data.len() as u64
        );
        assert_eq!(
            store.get_bytes(&key).await.unwrap().as_ref(),
            data.as_slice()
        );
        assert!(dir.path().join("store/assets/x/master.mp4").exists());
        assert!(!src.exists(), "renamed into place, not copied");
    }

    #[tokio::test]
    async fn local_upload_from_another_file_system_copies() {
        // /dev/shm is a tmpfs: a rename from it into the store's file
        // system fails with EXDEV, and the upload falls back to a copy.
        let Ok(shm) = tempfile::tempdir_in("/dev/shm") else {
            eprintln!("skipped: no /dev/shm");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StorageConfig::Local {
            root: dir.path().join("store"),
        })
        .unwrap();
        let src = shm.path().join("f.bin");
        std::fs::write(&src, b"across file systems").unwrap();
        let key = master_key("y");
        assert_eq!(store.put_file(&key, &src, &quietly).await.unwrap(), 19);
        assert_eq!(
            store.get_bytes(&key).await.unwrap().as_ref(),
            b"across file systems"
        );
    }
}
