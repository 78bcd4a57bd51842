//! The `sources` table: the file each asset was made from, by identity
//! (device, inode, size, mtime), and what has been done with it since.

use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};

use super::{DbError, Read, Tx};
use crate::asset::{AssetErrors, AssetStatus};

/// The identity of a source file: the same file dropped again gets a new
/// inode, size or mtime, and so a new identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SourceIdentity {
    /// `st_dev`.
    pub device: u64,
    /// `st_ino`.
    pub inode: u64,
    /// Bytes.
    pub size: u64,
    /// Modification time, ns since the epoch.
    pub mtime_ns: i64,
}

impl SourceIdentity {
    /// Reads the identity of the file at `path` (one `stat`); anything but a
    /// regular file is an `InvalidInput` error.
    pub fn of(path: &Path) -> std::io::Result<SourceIdentity> {
        let m = std::fs::metadata(path)?;
        if !m.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
        Ok(SourceIdentity::from_metadata(&m))
    }

    /// The identity `stat` or `fstat` showed.
    pub fn from_metadata(m: &std::fs::Metadata) -> SourceIdentity {
        use std::os::unix::fs::MetadataExt;
        SourceIdentity {
            device: m.dev(),
            inode: m.ino(),
            size: m.size(),
            mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        }
    }

    /// Whether both name the same file, however it changed since.
    pub fn same_inode(&self, other: &SourceIdentity) -> bool {
        self.device == other.device && self.inode == other.inode
    }
}

/// Where an asset's source came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceOrigin {
    /// The watch folder: reeld disposes of it after success or failure.
    Watch,
    /// `reeld ingest FILE`: the user's file is never touched.
    Cli,
    /// `POST /video/v1/assets` with a `file://` input: never touched either.
    Api,
    /// A direct upload's bytes in the spool: reeld's own copy, removed once
    /// the asset has finished (ready or errored) or is deleted.
    Upload,
    /// An `http(s)://` input: `path` holds the URL, and each attempt of the
    /// job fetches it into its own spool folder.
    Url,
}

/// What a transcode job reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceInput {
    /// A file, by identity.
    File {
        /// Where it was taken from.
        path: PathBuf,
        /// Its identity then.
        identity: SourceIdentity,
    },
    /// An `http(s)://` URL to fetch first.
    Url(String),
}

impl SourceOrigin {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            SourceOrigin::Watch => "watch",
            SourceOrigin::Cli => "cli",
            SourceOrigin::Api => "api",
            SourceOrigin::Upload => "upload",
            SourceOrigin::Url => "url",
        }
    }
}

/// What has been done with a source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Waiting for the asset to finish.
    Pending,
    /// Left in place (`on_success = keep`).
    Kept,
    /// Moved to the done folder.
    Moved,
    /// Deleted (`on_success = delete`).
    Deleted,
    /// Moved to the failed folder.
    Failed,
    /// A CLI source: never touched.
    Untouched,
    /// Another file had taken its name by the time the asset finished (a
    /// re-export renamed over it, or a rewrite in place): left alone, since
    /// that file is an asset of its own.
    Replaced,
}

impl Disposition {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Disposition::Pending => "pending",
            Disposition::Kept => "kept",
            Disposition::Moved => "moved",
            Disposition::Deleted => "deleted",
            Disposition::Failed => "failed",
            Disposition::Untouched => "untouched",
            Disposition::Replaced => "replaced",
        }
    }
}

/// The source an asset is made from.
#[derive(Debug, Clone)]
pub struct NewSource {
    /// Absolute path at the time it was taken (for a URL input, the URL).
    pub path: PathBuf,
    /// Where it came from.
    pub origin: SourceOrigin,
    /// Its identity.
    pub identity: SourceIdentity,
    /// The sidecar settings file taken with it, moved or deleted along with it.
    pub sidecar: Option<PathBuf>,
}

/// A source whose asset has finished but which has not been disposed of yet.
#[derive(Debug, Clone)]
pub struct PendingSource {
    /// The asset.
    pub asset_id: String,
    /// Whether the asset is ready (else errored).
    pub status: AssetStatus,
    /// Where the source was taken from.
    pub path: PathBuf,
    /// The recorded file: only this file is moved or deleted.
    pub identity: SourceIdentity,
    /// The asset's errors, for the `.error.json`.
    pub errors: Option<AssetErrors>,
    /// The sidecar settings file, if one was taken with the source.
    pub sidecar: Option<PathBuf>,
    /// Whether it is reeld's own copy (a direct upload's bytes), removed
    /// whatever the outcome, rather than a watch-folder file.
    pub own_copy: bool,
}

impl Read<'_> {
    /// Every watch-folder source still where it was taken from (kept, or
    /// awaiting its move or delete), with its identity, one at a time.
    pub fn watch_sources_in_place(
        &self,
        mut each: impl FnMut(&Path, SourceIdentity),
    ) -> Result<(), DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT path, device, inode, size, mtime_ns FROM sources
             WHERE origin = 'watch' AND disposition IN ('kept', 'pending')",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let path: String = r.get(0)?;
            each(
                Path::new(&path),
                SourceIdentity {
                    device: r.get::<_, i64>(1)? as u64,
                    inode: r.get::<_, i64>(2)? as u64,
                    size: r.get::<_, i64>(3)? as u64,
                    mtime_ns: r.get(4)?,
                },
            );
        }
        Ok(())
    }

    /// Whether a watch-folder source with this identity already made an asset.
    pub fn watch_source_known(&self, id: &SourceIdentity) -> Result<bool, DbError> {
        let found: Option<i64> = self
            .conn
            .query_row(
                "SELECT 1 FROM sources WHERE device = ?1 AND inode = ?2 AND size = ?3 AND mtime_ns = ?4
                 AND origin = 'watch' LIMIT 1",
                params![id.device as i64, id.inode as i64, id.size as i64, id.mtime_ns],
                |r| r.get(0),
            )
            .optional()?;
        Ok(found.is_some())
    }

    /// What an asset is made from: the file it was taken from and its
    /// identity then, or the URL to fetch.
    pub fn source(&self, asset_id: &str) -> Result<Option<SourceInput>, DbError> {
        Ok(self
            .conn
            .query_row(
                "SELECT path, device, inode, size, mtime_ns, origin FROM sources WHERE asset_id = ?1",
                params![asset_id],
                |r| {
                    let path: String = r.get(0)?;
                    Ok(if r.get::<_, String>(5)? == SourceOrigin::Url.as_str() {
                        SourceInput::Url(path)
                    } else {
                        SourceInput::File {
                            path: PathBuf::from(path),
                            identity: identity_from_row(r, 1)?,
                        }
                    })
                },
            )
            .optional()?)
    }

    /// Watch-folder sources of finished assets that still await their move,
    /// delete or keep (left over if the daemon stopped in between).
    pub fn pending_sources(&self) -> Result<Vec<PendingSource>, DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT s.asset_id, a.status, s.path, a.errors, s.sidecar,
                    s.device, s.inode, s.size, s.mtime_ns, s.origin = 'upload'
             FROM sources s JOIN assets a ON a.id = s.asset_id
             WHERE s.disposition = 'pending'
               AND (a.status != 'preparing' OR (s.origin = 'upload' AND a.deleted_at IS NOT NULL))
             ORDER BY a.created_at",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                identity_from_row(r, 5)?,
                r.get::<_, bool>(9)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (asset_id, status, path, errors, sidecar, identity, own_copy) = row?;
            out.push(PendingSource {
                asset_id,
                status: super::assets::parse_status(&status)?,
                path: PathBuf::from(path),
                identity,
                errors: errors.and_then(|e| serde_json::from_str(&e).ok()),
                sidecar: sidecar.map(PathBuf::from),
                own_copy,
            });
        }
        Ok(out)
    }
}

fn identity_from_row(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<SourceIdentity> {
    Ok(SourceIdentity {
        device: r.get::<_, i64>(first)? as u64,
        inode: r.get::<_, i64>(first + 1)? as u64,
        size: r.get::<_, i64>(first + 2)? as u64,
        mtime_ns: r.get(first + 3)?,
    })
}

impl Tx<'_> {
    /// Records what was done with a source.
    pub fn set_disposition(&self, asset_id: &str, disposition: Disposition) -> Result<(), DbError> {
        self.conn.execute(
            "UPDATE sources SET disposition = ?2 WHERE asset_id = ?1",
            params![asset_id, disposition.as_str()],
        )?;
        Ok(())
    }

    pub(super) fn insert_source(&self, asset_id: &str, s: &NewSource) -> Result<(), DbError> {
        let disposition = match s.origin {
            SourceOrigin::Watch | SourceOrigin::Upload => Disposition::Pending,
            SourceOrigin::Cli | SourceOrigin::Api | SourceOrigin::Url => Disposition::Untouched,
        };
        self.conn.execute(
            "INSERT INTO sources (asset_id, path, origin, device, inode, size, mtime_ns, disposition, sidecar)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                asset_id,
                s.path.to_string_lossy(),
                s.origin.as_str(),
                s.identity.device as i64,
                s.identity.inode as i64,
                s.identity.size as i64,
                s.identity.mtime_ns,
                disposition.as_str(),
                s.sidecar.as_ref().map(|p| p.to_string_lossy().into_owned()),
            ],
        )?;
        Ok(())
    }
}
