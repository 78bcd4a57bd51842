//! The media engine in worker processes: a worker that dies (SIGSEGV,
//! SIGKILL, out of memory) costs its job a retry, never the daemon; a file
//! that kills every worker errors after the crash limit; Landlock confines
//! a worker to its job's files; the supervisor's memory stays flat.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::*;

const TIMEOUT: Duration = Duration::from_secs(180);

/// The processes whose parent is `pid`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(after_name) = stat.rsplit_once(')').map(|(_, rest)| rest.to_owned()) else {
            continue;
        };
        let ppid = after_name
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            out.push(child);
        }
    }
    out
}

fn kill(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// How often `needle` occurs in the daemon's log.
fn count_in_log(daemon: &TestDaemon, needle: &str) -> usize {
    std::fs::read_to_string(&daemon.log)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

/// Waits for the `n`-th job start in a worker (its `Source probed.` line)
/// and returns the worker running it.
fn wait_for_job_start(daemon: &TestDaemon, n: usize) -> u32 {
    wait_for(TIMEOUT, &format!("job start number {n}"), || {
        count_in_log(daemon, "Source probed.") >= n
    });
    let workers = children_of(daemon.pid());
    assert_eq!(workers.len(), 1, "one worker per slot: {workers:?}");
    workers[0]
}

fn vm_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

#[test]
fn a_worker_killed_mid_transcode_costs_a_retry_and_the_api_keeps_answering() {
    let env = TestEnv::new(&[("video_quality = \"plus\"", "video_quality = \"premium\"")]);
    let clip = long_clip(&env);
    let daemon = env.start_daemon();
    let api = env.api(&daemon);

    // The API is asked all along; every answer must be a 200.
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let poller = {
        let (api, stop, answered, failed) =
            (api.clone(), stop.clone(), answered.clone(), failed.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if api.get("/video/v1/assets").status == 200 {
                    answered.fetch_add(1, Ordering::SeqCst);
                } else {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    std::fs::copy(&clip, env.watch_dir().join("long.mkv")).unwrap();
    env.wait_until_transcoding(TIMEOUT);
    let first = wait_for_job_start(&daemon, 1);
    kill(first, "SEGV");
    wait_for(TIMEOUT, "the death to be seen", || {
        count_in_log(&daemon, "A worker died while processing a file") >= 1
    });
    let second = wait_for_job_start(&daemon, 2);
    assert_ne!(first, second, "a new worker runs the retry");
    std::thread::sleep(Duration::from_millis(1500));
    kill(second, "KILL");
    let assets = env.wait_for_assets(TIMEOUT, "the asset to be ready", |a| {
        a.len() == 1 && a[0]["status"] != "preparing"
    });
    stop.store(true, Ordering::SeqCst);
    poller.join().unwrap();

    assert_eq!(assets[0]["status"], "ready", "{assets:#?}\n{}", env.logs());
    let log = env.logs();
    assert!(log.contains("signal 11 (SIGSEGV)"), "{log}");
    assert!(log.contains("signal 9 (SIGKILL)"), "{log}");
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "every API request was answered"
    );
    assert!(answered.load(Ordering::SeqCst) > 10);
    let asset_spool = env.data("spool").join(assets[0]["id"].as_str().unwrap());
    wait_for(TIMEOUT, "the asset's spool folder to be removed", || {
        !asset_spool.exists()
    });
    let spool = files_below(&env.data("spool"));
    assert!(spool.is_empty(), "spool left behind: {spool:?}");
}

#[test]
fn a_file_that_kills_every_worker_errors_at_the_crash_limit_and_the_next_file_is_done() {
    let env = TestEnv::new(&[("video_quality = \"plus\"", "video_quality = \"premium\"")]);
    let clip = long_clip(&env);
    let daemon = env.start_daemon();
    std::fs::copy(&clip, env.watch_dir().join("deadly.mkv")).unwrap();
    for attempt in 1..=3 {
        let worker = wait_for_job_start(&daemon, attempt);
        kill(worker, "KILL");
        wait_for(TIMEOUT, "the death to be seen", || {
            count_in_log(&daemon, "A worker died while processing a file") >= attempt
        });
    }
    let assets = env.wait_for_assets(TIMEOUT, "the asset to error", |a| {
        a.len() == 1 && a[0]["status"] == "errored"
    });
    let message = assets[0]["errors"]["messages"][0].as_str().unwrap();
    assert_eq!(
        message,
        "The file crashed the media engine 3 times; it may be malformed or hostile."
    );
    wait_for(TIMEOUT, "the source to move to the failed folder", || {
        env.data("failed/deadly.mkv").exists()
    });

    // The daemon is up, and takes the next file as usual.
    let small = env.dir.path().join("small.mp4");
    make_clip(&small, ClipSpec::av(640, 360, 1));
    std::fs::copy(&small, env.watch_dir().join("small.mp4")).unwrap();
    let assets = env.wait_for_assets(TIMEOUT, "the next file to be ready", |a| {
        a.iter().any(|x| x["status"] == "ready")
    });
    assert_eq!(with_status(&assets, "ready").len(), 1, "{assets:#?}");
}

#[test]
fn a_source_that_needs_more_memory_than_a_worker_may_take_errors_with_that_reason() {
    // Measured peaks of a worker's data segment at video_quality "premium"
    // (x264 "slow"): 0.3 GB for a 360p encode, 3.8 GB for a 2160p one.
    let env = TestEnv::new(&[
        ("worker_memory_mb = 8192", "worker_memory_mb = 1000"),
        (
            "max_resolution_tier = \"1080p\"",
            "max_resolution_tier = \"2160p\"",
        ),
        ("video_quality = \"plus\"", "video_quality = \"premium\""),
    ]);
    let uhd = env.dir.path().join("uhd.mp4");
    make_clip(&uhd, ClipSpec::av(3840, 2160, 2));
    // Matroska: encoded, not remuxed.
    let uhd = to_matroska(&uhd);
    let daemon = env.start_daemon();
    std::fs::copy(&uhd, env.watch_dir().join("uhd.mkv")).unwrap();
    let assets = env.wait_for_assets(TIMEOUT, "the 2160p asset to error", |a| {
        a.len() == 1 && a[0]["status"] == "errored"
    });
    let message = assets[0]["errors"]["messages"][0].as_str().unwrap();
    assert!(
        message.contains("needs more memory than transcode.worker_memory_mb allows (1000 MiB)"),
        "{message}\n{}",
        env.logs()
    );
    let small = env.dir.path().join("small.mp4");
    make_clip(&small, ClipSpec::av(640, 360, 1));
    std::fs::copy(to_matroska(&small), env.watch_dir().join("small.mkv")).unwrap();
    env.wait_for_assets(
        TIMEOUT,
        "a small file to be encoded under the same limit",
        |a| a.iter().any(|x| x["status"] == "ready"),
    );
    drop(daemon);
}

#[test]
fn a_worker_cannot_read_outside_its_jobs_files() {
    let env = TestEnv::new(&[("max_attempts = 3", "max_attempts = 1")]);
    // A fragment that also reads /etc/hostname, which no job needs.
    env.edit_fragment("h264-plus.gst", |text| {
        text.lines()
            .map(|l| {
                if l.starts_with("reeldx264enc") {
                    format!("{l} filesrc location=/etc/hostname ! fakesink")
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    let mp4 = env.dir.path().join("clip.mp4");
    make_clip(&mp4, ClipSpec::av(640, 360, 1));
    let mkv = to_matroska(&mp4);

    // In this process (`reeld ingest`, not confined) the fragment works.
    let (ok, asset, stderr) = env.ingest(&mkv, None);
    assert!(ok && asset["status"] == "ready", "{asset:#}\n{stderr}");

    let daemon = env.start_daemon();
    std::fs::copy(&mkv, env.watch_dir().join("clip.mkv")).unwrap();
    let assets = env.wait_for_assets(TIMEOUT, "the daemon's asset to error", |a| {
        a.iter().any(|x| x["status"] == "errored")
    });
    let errored = with_status(&assets, "errored");
    let message = errored[0]["errors"]["messages"].to_string();
    assert!(
        message.contains("/etc/hostname"),
        "{message}\n{}",
        env.logs()
    );
    assert!(
        count_in_log(
            &daemon,
            "The worker is confined to its job's files (Landlock)."
        ) >= 1,
        "{}",
        env.logs()
    );
}

#[test]
fn the_supervisors_memory_stays_flat_over_two_hundred_jobs() {
    let env = TestEnv::new(&[("settle_seconds = 1", "settle_seconds = 0")]);
    let m4a = env.dir.path().join("tone.m4a");
    let out = m4a.to_str().unwrap();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440",
        "-t",
        "0.5",
        "-c:a",
        "aac",
        out,
    ]);
    let daemon = env.start_daemon();
    let drop_files = |from: usize, to: usize| {
        for i in from..to {
            std::fs::copy(&m4a, env.watch_dir().join(format!("tone-{i:03}.m4a"))).unwrap();
        }
    };
    let ready = |n: usize| {
        move |a: &[serde_json::Value]| a.len() == n && a.iter().all(|x| x["status"] == "ready")
    };
    drop_files(0, 10);
    env.wait_for_assets(TIMEOUT, "10 ready", ready(10));
    let after_10 = vm_rss_kib(daemon.pid());
    for batch in 1..20 {
        drop_files(batch * 10, batch * 10 + 10);
        env.wait_for_assets(TIMEOUT, "the next 10 ready", ready(batch * 10 + 10));
    }
    let after_200 = vm_rss_kib(daemon.pid());
    eprintln!("supervisor VmRSS: {after_10} KiB after 10 jobs, {after_200} KiB after 200");
    assert!(
        after_200 * 10 <= after_10 * 11,
        "RSS grew from {after_10} KiB to {after_200} KiB"
    );
}
