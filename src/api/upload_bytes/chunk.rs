//! Writing one request's bytes into an upload's spool file.
//!
//! The file holds the upload's good bytes first: as many as the database
//! says arrived, or fewer if the file lost some (a crash before the folder
//! entry or data reached the disk). Anything after them is from a write
//! whose count never reached the database, and is cut off before writing.
//! A chunk's bytes that the file already has are skipped; the rest is
//! written and synced before the caller records the new count.

use std::path::Path;
use std::time::{Duration, Instant};

use axum::body::Body;
use futures::StreamExt as _;
use tokio::io::{AsyncSeekExt as _, AsyncWriteExt as _};

/// How long a request body may send nothing before it is cut off, so that a
/// stalled client does not hold its upload's turn for ever.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often, in bytes written, the spool's free space is checked again.
const ROOM_CHECK_EVERY: u64 = 256 << 20;

/// Why a chunk was not written whole.
#[derive(Debug)]
pub enum ChunkError {
    /// The body ended early or broke off; `end` bytes of the file are good.
    Short { end: u64, message: String },
    /// The body sent nothing for too long (or the upload's time ran out);
    /// `end` bytes of the file are good.
    Idle { end: u64, message: String },
    /// The body is larger than it said, or than the limit.
    Oversized(String),
    /// The spool filled up.
    NoRoom(String),
    /// The spool could not be written.
    Io(std::io::Error),
}

impl From<std::io::Error> for ChunkError {
    fn from(e: std::io::Error) -> ChunkError {
        ChunkError::Io(e)
    }
}

/// The spool file, open at the end of its good bytes.
pub struct Open {
    file: tokio::fs::File,
    /// Good bytes: at most what the database counts.
    pub good: u64,
}

/// Opens (creating) the file at `path`, keeps at most `recorded` bytes, and
/// says how many it has. A new file's name is synced into its folder, so
/// that the count the database records next never outlives the file.
pub async fn open(path: &Path, recorded: u64) -> Result<Open, ChunkError> {
    let existed = tokio::fs::try_exists(path).await.unwrap_or(false);
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(path)
        .await?;
    if !existed && let Some(folder) = path.parent() {
        let folder = folder.to_owned();
        tokio::task::spawn_blocking(move || std::fs::File::open(folder)?.sync_all())
            .await
            .map_err(|e| ChunkError::Io(std::io::Error::other(e)))??;
    }
    let good = file.metadata().await?.len().min(recorded);
    file.set_len(good).await?;
    Ok(Open { file, good })
}

/// What one request carries.
pub struct Request {
    /// The offset of its first byte in the file.
    pub first: u64,
    /// Its length, when the headers say.
    pub expected: Option<u64>,
    /// The most the whole file may be.
    pub max_total: u64,
    /// When the upload's URL expires: the body must be in by then.
    pub deadline: Instant,
}

/// Writes the body of `request` after the file's good bytes (`first` must
/// not be past them), syncs, and returns the new end of the good bytes.
pub async fn write(
    mut open: Open,
    folder: &Path,
    request: &Request,
    body: Body,
) -> Result<u64, ChunkError> {
    let start = open.good;
    debug_assert!(request.first <= start);
    open.file.seek(std::io::SeekFrom::Start(start)).await?;
    let mut skip = start - request.first;
    let mut arrived: u64 = 0;
    let mut end = start;
    let mut next_room_check = ROOM_CHECK_EVERY;
    let mut stream = body.into_data_stream();
    let mut stopped = None;
    loop {
        let idle =
            BODY_IDLE_TIMEOUT.min(request.deadline.saturating_duration_since(Instant::now()));
        let frame = match tokio::time::timeout(idle, stream.next()).await {
            Ok(Some(frame)) => frame,
            Ok(None) => break,
            Err(_) => {
                stopped = Some(Err(if Instant::now() >= request.deadline {
                    "The upload's time ran out while this request was still sending.".to_owned()
                } else {
                    format!(
                        "The request body sent nothing for {} s after {arrived} bytes.",
                        BODY_IDLE_TIMEOUT.as_secs()
                    )
                }));
                break;
            }
        };
        let mut bytes = match frame {
            Ok(bytes) => bytes,
            Err(e) => {
                stopped = Some(Ok(format!(
                    "The request body broke off after {arrived} bytes: {e}"
                )));
                break;
            }
        };
        arrived += bytes.len() as u64;
        if let Some(n) = request.expected
            && arrived > n
        {
            return Err(ChunkError::Oversized(format!(
                "The body is longer than the {n} bytes its headers announced."
            )));
        }
        if request.first + arrived > request.max_total {
            return Err(ChunkError::Oversized(format!(
                "The file is larger than {} bytes, the most this server takes ([api] max_upload_bytes).",
                request.max_total
            )));
        }
        if arrived >= next_room_check {
            next_room_check += ROOM_CHECK_EVERY;
            crate::disk::ensure_room(folder, "spool folder", ROOM_CHECK_EVERY)
                .map_err(ChunkError::NoRoom)?;
        }
        let drop = skip.min(bytes.len() as u64) as usize;
        skip -= drop as u64;
        let rest = bytes.split_off(drop);
        open.file.write_all(&rest).await?;
        end += rest.len() as u64;
    }
    open.file.flush().await?;
    open.file.sync_data().await?;
    match stopped {
        Some(Ok(message)) => return Err(ChunkError::Short { end, message }),
        Some(Err(message)) => return Err(ChunkError::Idle { end, message }),
        None => {}
    }
    if let Some(n) = request.expected
        && arrived < n
    {
        return Err(ChunkError::Short {
            end,
            message: format!(
                "The body ended after {arrived} of the {n} bytes its headers announced."
            ),
        });
    }
    Ok(end)
}
