//! State in one SQLite file (WAL): assets, the job queue, the sources assets
//! were made from, and their rendition files. Every SQL statement of reeld
//! lives below this module, one file per table.
//!
//! Writes are transaction-scoped: [`Db::write`] hands the caller a [`Tx`]
//! and commits everything it did at once, so a state change and whatever
//! belongs with it (a job, a rendition row, later an outbox event) land
//! together or not at all. Reads go through [`Db::read`] on their own
//! connections: in WAL mode a reader never waits behind the writer, so API
//! reads do not queue behind heartbeats and progress updates.
//!
//! Callers see typed rows and [`DbError`] only, never a SQLite type, so a
//! second engine (Postgres, for many machines sharing one queue) can stand
//! behind the same `Tx` and `Read` calls.
//!
//! The connections are synchronous; callers on the async runtime go through
//! `spawn_blocking`. Several processes may open the same file (the daemon
//! and `reeld assets list`): WAL plus a busy timeout keeps that safe.

mod assets;
mod job_list;
mod outbox;
mod playback;
mod queue;
mod renditions;
mod schema;
mod sessions;
mod sources;
mod uploads;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::Connection;

pub use assets::{AssetFilter, AssetRecord, MASTER_ACCESS_TTL_S, NewAsset, Page};
pub use job_list::JobListing;
pub use outbox::{AttemptOutcome, Delivery, DeliveryRow, OutboxEvent};
pub use playback::SigningKeyRow;
pub use queue::{Job, JobKind, Lease, LeasePolicy, LeaseStatus, MAX_CRASHES};
pub use renditions::RenditionRow;
pub use sessions::SessionRow;
pub use sources::{
    Disposition, NewSource, PendingSource, SourceIdentity, SourceInput, SourceOrigin,
};
pub use uploads::{NewUpload, UploadError, UploadRecord, UploadStatus};

/// How long a statement waits for another process's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Read connections kept open for reuse; more are opened when needed.
const IDLE_READERS: usize = 4;

/// A database failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The file could not be opened or migrated.
    #[error("cannot open database {path}: {source}")]
    Open {
        /// The SQLite file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
    /// A statement failed.
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    /// A stored row holds a value this version does not understand.
    #[error("corrupt row in {table}: {detail}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A write of a job was refused: this worker no longer holds its lease
    /// (another worker took it over, or the job was cancelled).
    #[error("job {job_id}: the lease (generation {generation}) is no longer held by this worker")]
    LeaseLost {
        /// The job.
        job_id: i64,
        /// The generation the worker held.
        generation: i64,
    },
}

/// A handle on the database, cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    observer: std::sync::OnceLock<Arc<dyn ChangeObserver>>,
}

/// Turns the changes to an asset that one transaction made into events for
/// the outbox (the webhooks module implements it). The database calls it
/// inside the transaction, so an event commits with its change or not at all.
pub trait ChangeObserver: Send + Sync {
    /// The events for an asset that was `before` and is now `after` (`None`:
    /// did not exist, or was deleted).
    fn events(&self, before: Option<&AssetRecord>, after: Option<&AssetRecord>)
    -> Vec<OutboxEvent>;
    /// The events for a direct upload that one transaction moved to a new
    /// status (`video.upload.created`, `.asset_created`, …), if any.
    fn upload_events(&self, kind: &'static str, upload: &UploadRecord) -> Vec<OutboxEvent>;
    /// Called after a transaction with events committed.
    fn committed(&self);
}

/// The writes (and reads) of one transaction. Made by [`Db::write`].
pub struct Tx<'a> {
    conn: &'a Connection,
    /// Assets this transaction changed, as they were before it, when an
    /// observer wants their events.
    touched: Option<std::cell::RefCell<Vec<Touched>>>,
    /// What turns upload changes into events, written as they happen.
    observer: Option<&'a dyn ChangeObserver>,
    /// Whether an event was written (the observer is told after commit).
    wrote_events: std::cell::Cell<bool>,
}

/// An asset a transaction changed, and how it was before.
type Touched = (String, Option<AssetRecord>);

/// Reads on a connection of their own (or inside a write transaction).
#[derive(Clone, Copy)]
pub struct Read<'a> {
    conn: &'a Connection,
}

impl Read<'_> {
    /// SQLite's `PRAGMA quick_check` answer (`ok` when sound) and the
    /// schema version.
    pub fn quick_check(&self) -> Result<(String, i64), DbError> {
        let result: String = self
            .conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?;
        Ok((result, version))
    }
}

impl Tx<'_> {
    /// Reads inside this transaction: they see its writes so far.
    pub fn read(&self) -> Read<'_> {
        Read { conn: self.conn }
    }

    /// Notes that `asset_id` is about to change (once per transaction), so
    /// that its events can be worked out at commit.
    fn touch(&self, asset_id: &str) -> Result<(), DbError> {
        let Some(touched) = &self.touched else {
            return Ok(());
        };
        if touched.borrow().iter().any(|(id, _)| id == asset_id) {
            return Ok(());
        }
        let before = self.read().asset(asset_id)?;
        touched.borrow_mut().push((asset_id.to_owned(), before));
        Ok(())
    }
}

impl Db {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Db, DbError> {
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let writer = open_retrying(path, true)?;
        Ok(Db {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
                observer: std::sync::OnceLock::new(),
            }),
        })
    }

    /// Sets what turns changes into outbox events (once; later calls are
    /// ignored). Without one, no events are written.
    pub fn set_observer(&self, observer: Arc<dyn ChangeObserver>) {
        let _ = self.inner.observer.set(observer);
    }

    /// Runs `f` in one write transaction (`BEGIN IMMEDIATE`): everything it
    /// wrote commits when it returns `Ok`, nothing when it returns `Err`.
    pub fn write<T>(&self, f: impl FnOnce(&Tx<'_>) -> Result<T, DbError>) -> Result<T, DbError> {
        // A panic while holding the lock leaves SQLite consistent (the
        // transaction is rolled back on drop), so a poisoned lock is usable.
        let mut conn = self.inner.writer.lock().unwrap_or_else(|e| e.into_inner());
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let observer = self.inner.observer.get();
        let scope = Tx {
            conn: &tx,
            touched: observer.map(|_| Default::default()),
            observer: observer.map(|o| o.as_ref()),
            wrote_events: Default::default(),
        };
        let value = f(&scope)?;
        let mut wrote_events = scope.wrote_events.get();
        if let (Some(observer), Some(touched)) = (observer, scope.touched) {
            let outbox = Tx {
                conn: &tx,
                touched: None,
                observer: None,
                wrote_events: Default::default(),
            };
            for (id, before) in touched.into_inner() {
                let after = outbox.read().asset(&id)?;
                for event in observer.events(before.as_ref(), after.as_ref()) {
                    outbox.push_event(&event)?;
                    wrote_events = true;
                }
            }
        }
        tx.commit()?;
        if wrote_events && let Some(observer) = observer {
            observer.committed();
        }
        Ok(value)
    }

    /// Runs `f` on a read connection. It sees one consistent snapshot and
    /// never waits for the writer.
    pub fn read<T>(&self, f: impl FnOnce(Read<'_>) -> Result<T, DbError>) -> Result<T, DbError> {
        let pooled = self
            .inner
            .readers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => open_retrying(&self.inner.path, false)?,
        };
        let value = {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)?;
            let value = f(Read { conn: &tx });
            // A read transaction has nothing to commit; ending it releases
            // the snapshot.
            let _ = tx.finish();
            value
        };
        let mut idle = self.inner.readers.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < IDLE_READERS {
            idle.push(conn);
        }
        value
    }
}

fn open_retrying(path: &Path, migrate: bool) -> Result<Connection, DbError> {
    let started = std::time::Instant::now();
    loop {
        match open_connection(path, migrate) {
            Ok(conn) => return Ok(conn),
            // SQLite does not call the busy handler for every lock taken
            // while opening (WAL recovery after a crash, the journal-mode
            // switch), so opening retries by itself.
            Err(e) if is_busy(&e) && started.elapsed() < BUSY_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(source) => {
                return Err(DbError::Open {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
}

fn open_connection(path: &Path, migrate: bool) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if migrate {
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            conn.pragma_update(None, "journal_mode", "WAL")?;
        }
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    if migrate {
        schema::migrate(&mut conn)?;
    }
    Ok(conn)
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// A JSON column's value, or a `Corrupt` error naming the table and field.
fn json_column<T: serde::de::DeserializeOwned>(
    table: &'static str,
    what: &str,
    text: &str,
) -> Result<T, DbError> {
    serde_json::from_str(text).map_err(|e| DbError::Corrupt {
        table,
        detail: format!("{what}: {e}"),
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("stored types serialize")
}

#[cfg(test)]
mod tests;
