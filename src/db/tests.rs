use super::*;
use crate::asset::{
    AssetErrors, AssetSettings, AssetStatus, IngestType, MaxResolutionTier, MediaSummary,
    ProgressState, VideoQuality,
};

fn settings() -> AssetSettings {
    let mut s = AssetSettings::defaults(MaxResolutionTier::P1080, VideoQuality::Plus);
    s.passthrough = Some("p".into());
    s
}

fn new_asset(id: &str) -> NewAsset {
    NewAsset {
        id: id.into(),
        created_at: 1_700_000_000,
        settings: settings(),
        ingest_type: IngestType::OnDemandDirectUpload,
    }
}

const POLICY: LeasePolicy = LeasePolicy {
    stale_after_ms: 30_000,
};

fn open() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(&dir.path().join("t.db")).unwrap();
    (dir, db)
}

fn create(db: &Db, id: &str) -> i64 {
    db.write(|tx| tx.create_asset(&new_asset(id), None, 3, 0, None, None))
        .unwrap()
}

fn claim(db: &Db, worker: &str) -> Option<Job> {
    db.write(|tx| tx.claim_job(worker, POLICY, None)).unwrap()
}

fn heartbeat(db: &Db, lease: &Lease) -> LeaseStatus {
    db.write(|tx| tx.heartbeat(lease)).unwrap()
}

/// Moves every job's lease times `ms` into the past: the database's clock
/// cannot be set, so time passes for the jobs instead.
fn age_jobs(db: &Db, ms: i64) {
    db.write(|tx| {
        tx.conn.execute(
            "UPDATE jobs SET heartbeat_at = heartbeat_at - ?1, not_before = not_before - ?1",
            [ms],
        )?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn lease_lifecycle() {
    let (_dir, db) = open();
    let job = create(&db, "a1");

    let claimed = claim(&db, "w1").unwrap();
    assert_eq!((claimed.id, claimed.attempts), (job, 1));
    // Held: nobody else gets it while the heartbeat is fresh.
    assert!(claim(&db, "w2").is_none());
    age_jobs(&db, 20_000);
    assert_eq!(heartbeat(&db, &claimed.lease), LeaseStatus::Held);
    age_jobs(&db, 20_000);
    assert!(claim(&db, "w2").is_none());
    // Stale: another worker takes it over and the first one's heartbeat
    // fails. The dead holder's attempt is given back; its crash counts.
    age_jobs(&db, 20_000);
    let taken = claim(&db, "w2").unwrap();
    assert_eq!((taken.attempts, taken.crashes), (1, 1));
    assert_eq!(taken.lease.generation, claimed.lease.generation + 1);
    assert_eq!(heartbeat(&db, &claimed.lease), LeaseStatus::Lost);

    // Requeue with backoff: not claimable before the delay has passed.
    db.write(|tx| tx.requeue_job(&taken.lease, Some("store down"), 10_000, false))
        .unwrap();
    age_jobs(&db, 5_000);
    assert!(claim(&db, "w3").is_none());
    age_jobs(&db, 5_000);
    let again = claim(&db, "w3").unwrap();
    assert_eq!(again.last_error.as_deref(), Some("store down"));
    assert_eq!((again.attempts, again.crashes), (2, 1));

    db.write(|tx| {
        tx.finish_ready(
            &again.lease,
            "a1",
            Some(&MediaSummary::default()),
            &[],
            80_000,
        )
    })
    .unwrap();
    age_jobs(&db, 1_000_000);
    assert!(claim(&db, "w4").is_none());
    let asset = db.read(|r| r.asset("a1")).unwrap().unwrap();
    assert_eq!(asset.status, AssetStatus::Ready);
    assert_eq!(asset.progress.progress, 100.0);
}

#[test]
fn a_stale_worker_cannot_write_the_outcome() {
    let (_dir, db) = open();
    create(&db, "a1");
    let stale = claim(&db, "w1").unwrap();
    age_jobs(&db, 100_000);
    let current = claim(&db, "w2").unwrap();
    let errors = AssetErrors {
        kind: "invalid_input".into(),
        messages: vec!["bad".into()],
    };
    let lost = |r: Result<(), DbError>| matches!(r, Err(DbError::LeaseLost { .. }));
    assert!(lost(db.write(|tx| tx.finish_ready(
        &stale.lease,
        "a1",
        Some(&MediaSummary::default()),
        &[],
        2
    ))));
    assert!(lost(db.write(|tx| tx.finish_errored(
        &stale.lease,
        "a1",
        &errors,
        2
    ))));
    assert!(lost(db.write(|tx| tx.requeue_job(
        &stale.lease,
        None,
        0,
        true
    ))));
    assert!(lost(db.write(|tx| tx.set_progress(
        &stale.lease,
        "a1",
        ProgressState::Transcoding,
        50.0,
        2
    ))));
    let asset = db.read(|r| r.asset("a1")).unwrap().unwrap();
    assert_eq!(asset.status, AssetStatus::Preparing);
    assert_eq!(asset.progress.progress, 0.0);
    // The current holder still can.
    db.write(|tx| tx.finish_errored(&current.lease, "a1", &errors, 3))
        .unwrap();
    assert_eq!(
        db.read(|r| r.asset("a1")).unwrap().unwrap().status,
        AssetStatus::Errored
    );
}

#[test]
fn a_failed_write_commits_nothing() {
    let (_dir, db) = open();
    let result: Result<(), DbError> = db.write(|tx| {
        tx.create_asset(&new_asset("a1"), None, 3, 0, None, None)?;
        Err(DbError::Corrupt {
            table: "test",
            detail: "abort".into(),
        })
    });
    assert!(result.is_err());
    assert!(db.read(|r| r.asset("a1")).unwrap().is_none());
    assert!(claim(&db, "w").is_none());
}

#[test]
fn deleting_an_asset_cancels_its_jobs() {
    let (_dir, db) = open();
    create(&db, "running");
    create(&db, "queued");
    let job = claim(&db, "w1").unwrap();
    assert_eq!(job.asset_id, "running");
    assert!(db.write(|tx| tx.delete_asset("running", 2)).unwrap());
    assert!(db.write(|tx| tx.delete_asset("queued", 2)).unwrap());
    assert!(
        !db.write(|tx| tx.delete_asset("queued", 3)).unwrap(),
        "already deleted"
    );
    assert!(db.read(|r| r.asset("running")).unwrap().is_none());
    // The queued job is gone from the queue; the running one is told to stop.
    assert!(claim(&db, "w2").is_none());
    assert_eq!(heartbeat(&db, &job.lease), LeaseStatus::CancelRequested);
    // Its files wait for the job to stop before they are purged.
    assert_eq!(
        db.read(|r| r.assets_to_purge(0)).unwrap(),
        vec!["queued".to_string()]
    );
    db.write(|tx| tx.cancel_job(&job.lease, 5)).unwrap();
    assert_eq!(db.read(|r| r.assets_to_purge(0)).unwrap().len(), 2);
    db.write(|tx| tx.mark_purged("running", 6)).unwrap();
    assert_eq!(
        db.read(|r| r.assets_to_purge(0)).unwrap(),
        vec!["queued".to_string()]
    );
}

#[test]
fn pages_by_offset_and_cursor_agree() {
    let (_dir, db) = open();
    for i in 0..7 {
        let mut a = new_asset(&format!("a{i}"));
        a.created_at = 1_700_000_000 + i / 2; // ties on created_at too
        db.write(|tx| tx.create_asset(&a, None, 3, 0, None, None))
            .unwrap();
    }
    let mut by_cursor = Vec::new();
    let mut page = Page::Offset(0);
    loop {
        let (records, more) = db.read(|r| r.list_assets(3, &page)).unwrap();
        by_cursor.extend(records.iter().map(|a| a.id.clone()));
        let Some(last) = records.last() else { break };
        if !more {
            break;
        }
        page = Page::After {
            created_at: last.created_at,
            id: last.id.clone(),
        };
    }
    let (all, more) = db.read(|r| r.list_assets(100, &Page::Offset(0))).unwrap();
    assert!(!more);
    let all: Vec<String> = all.into_iter().map(|a| a.id).collect();
    assert_eq!(by_cursor, all);
    assert_eq!(all.first().map(String::as_str), Some("a6"), "newest first");
    let (second, _) = db.read(|r| r.list_assets(3, &Page::Offset(3))).unwrap();
    assert_eq!(second[0].id, all[3]);
}

#[test]
fn dead_workers_release_their_leases() {
    let (_dir, db) = open();
    create(&db, "a1");
    create(&db, "a2");
    claim(&db, "dead").unwrap();
    claim(&db, "alive").unwrap();
    assert_eq!(
        db.write(|tx| tx.release_dead_leases(|w| w == "dead"))
            .unwrap(),
        1
    );
    let j = claim(&db, "new").unwrap();
    assert_eq!(j.asset_id, "a1");
    // A crash is not a failed attempt, but it is counted.
    assert_eq!((j.attempts, j.crashes), (1, 1));
}

#[test]
fn sources_are_recorded_with_their_asset() {
    let (_dir, db) = open();
    let identity = SourceIdentity {
        device: 1,
        inode: 2,
        size: 3,
        mtime_ns: 4,
    };
    let source = NewSource {
        path: "/w/a.mp4".into(),
        origin: SourceOrigin::Watch,
        identity,
        sidecar: None,
    };
    assert!(!db.read(|r| r.watch_source_known(&identity)).unwrap());
    db.write(|tx| tx.create_asset(&new_asset("a1"), Some(&source), 3, 0, None, None))
        .unwrap();
    assert!(db.read(|r| r.watch_source_known(&identity)).unwrap());
    let other = SourceIdentity {
        mtime_ns: 5,
        ..identity
    };
    assert!(!db.read(|r| r.watch_source_known(&other)).unwrap());
    assert!(
        db.read(|r| r.pending_sources()).unwrap().is_empty(),
        "still preparing"
    );
    let job = claim(&db, "w").unwrap();
    let errors = AssetErrors {
        kind: "invalid_input".into(),
        messages: vec!["bad".into()],
    };
    db.write(|tx| tx.finish_errored(&job.lease, "a1", &errors, 1))
        .unwrap();
    let pending = db.read(|r| r.pending_sources()).unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].errors.as_ref(), Some(&errors));
    db.write(|tx| tx.set_disposition("a1", Disposition::Failed))
        .unwrap();
    assert!(db.read(|r| r.pending_sources()).unwrap().is_empty());
}

#[test]
fn reads_do_not_wait_for_an_open_write() {
    let (_dir, db) = open();
    create(&db, "a1");
    let (entered_tx, entered_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let writer = {
        let db = db.clone();
        std::thread::spawn(move || {
            db.write(|tx| {
                tx.create_asset(&new_asset("a2"), None, 3, 0, None, None)?;
                entered_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                Ok(())
            })
            .unwrap()
        })
    };
    entered_rx.recv().unwrap();
    // The writer holds its transaction open; a read still answers, from the
    // last committed state.
    let (seen, _) = db.read(|r| r.list_assets(10, &Page::Offset(0))).unwrap();
    assert_eq!(seen.len(), 1);
    release_tx.send(()).unwrap();
    writer.join().unwrap();
    let (seen, _) = db.read(|r| r.list_assets(10, &Page::Offset(0))).unwrap();
    assert_eq!(seen.len(), 2);
}

#[test]
fn concurrent_first_opens_migrate_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || Db::open(&path).map(|_| ()))
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
}

#[test]
fn reopening_keeps_data_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    create(&Db::open(&path).unwrap(), "a1");
    let db = Db::open(&path).unwrap();
    let (list, _) = db.read(|r| r.list_assets(10, &Page::Offset(0))).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].created_at, 1_700_000_000);
    assert_eq!(list[0].settings.passthrough.as_deref(), Some("p"));
}

#[test]
fn a_deleted_assets_job_is_not_run_again_after_its_worker_dies() {
    let (_dir, db) = open();
    create(&db, "a1");
    let job = claim(&db, "dead").unwrap();
    assert!(db.write(|tx| tx.delete_asset("a1", 2)).unwrap());
    // Its lease goes stale, or its process is found dead: nobody takes it.
    age_jobs(&db, 1_000_000);
    assert!(claim(&db, "w2").is_none());
    assert_eq!(
        db.write(|tx| tx.release_dead_leases(|w| w == "dead"))
            .unwrap(),
        1
    );
    assert!(claim(&db, "w2").is_none());
    assert_eq!(
        db.read(|r| r.job_state("a1")).unwrap().as_deref(),
        Some("cancelled")
    );
    assert_eq!(heartbeat(&db, &job.lease), LeaseStatus::Lost);
}
