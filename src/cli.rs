//! The command line: `run`, `ingest`, `assets list|get`, `webhooks list|retry`, `probe`.
//!
//! Commands print machine-readable JSON on stdout (assets exactly as the HTTP
//! API serves them, in Mux's `{"data": …}` envelope) and human messages and
//! logs on stderr.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod keys;
mod webhooks;
use tokio_util::sync::CancellationToken;

use crate::asset::{
    Asset, AssetSettings, AssetStatus, Data, IngestType, MaxResolutionTier, RenditionRequest,
    RenditionResolution,
};
use crate::config::{Config, ConfigError};
use crate::db::{
    Db, DbError, Job, JobKind, Lease, NewAsset, NewSource, Page, SourceIdentity, SourceOrigin,
};
use crate::jobs::{self, Context, Finished, now_ms};

/// reeld: a self-hosted media transcoding daemon.
#[derive(Debug, Parser)]
#[command(name = "reeld", version, about)]
pub struct Cli {
    /// The config file. Default: ./config.toml if present, else the built-in
    /// default with paths relative to the current folder.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: watch the folder and process jobs until SIGTERM.
    Run,
    /// Run one job in a worker process (started by `reeld run`, not by hand).
    #[command(hide = true)]
    Worker {
        /// The random part of this worker's id (`host:pid:nonce`), chosen
        /// by the supervisor so that it knows the id.
        #[arg(long)]
        nonce: String,
    },
    /// Turn one file into an asset in this process, with a progress bar.
    ///
    /// Settings come from the config's defaults, then a sidecar FILE.json
    /// beside the file, then --settings.
    Ingest {
        /// The media file.
        file: PathBuf,
        /// The body of Mux's create-asset request, e.g.
        /// '{"static_renditions": [{"resolution": "720p"}]}'.
        #[arg(long, value_name = "JSON")]
        settings: Option<String>,
    },
    /// Manage the static renditions of an asset.
    Renditions {
        /// What to do.
        #[command(subcommand)]
        command: RenditionsCommand,
    },
    /// Read assets.
    Assets {
        /// What to read.
        #[command(subcommand)]
        command: AssetsCommand,
    },
    /// Inspect and replay webhook deliveries.
    Webhooks {
        /// What to do.
        #[command(subcommand)]
        command: webhooks::WebhooksCommand,
    },
    /// Make, list and delete signing keys, and sign playback tokens.
    Keys {
        /// What to do.
        #[command(subcommand)]
        command: keys::KeysCommand,
    },
    /// Check the store, database, GStreamer elements and folders; one line
    /// per check, each failure with its fix. Exits non-zero on a failure.
    Doctor,
    /// Print what probing finds in a file, as JSON.
    Probe {
        /// The media file.
        file: PathBuf,
        /// The tier whose standard-input rules are applied.
        #[arg(long, default_value = "1080p")]
        max_resolution_tier: String,
    },
}

/// `reeld renditions …`.
#[derive(Debug, Subcommand)]
pub enum RenditionsCommand {
    /// Add a static rendition to a ready asset and make it (with every other
    /// pending one) from the stored master, in this process.
    Add {
        /// The asset id.
        id: String,
        /// `highest`, `audio-only`, `2160p`, `1440p`, `1080p`, `720p`, `540p`, `480p`, `360p` or `270p`.
        resolution: String,
    },
}

/// `reeld assets …`.
#[derive(Debug, Subcommand)]
pub enum AssetsCommand {
    /// Print `{"data": [ASSET, …]}`.
    List {
        /// Assets per page.
        #[arg(long, default_value_t = 1000)]
        limit: u32,
        /// Page number, from 1.
        #[arg(long, default_value_t = 1)]
        page: u32,
    },
    /// Print `{"data": ASSET}`.
    Get {
        /// The asset id.
        id: String,
    },
}

/// Loads the config the way every command does.
pub fn load_config(explicit: Option<&Path>) -> Result<Config, ConfigError> {
    match explicit {
        Some(path) => Config::load(path),
        None => {
            let local = Path::new("config.toml");
            if local.is_file() {
                Config::load(local)
            } else {
                let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
                Config::embedded(&cwd)
            }
        }
    }
}

/// Sets up logging to stderr at `level` (or `RUST_LOG`, which wins). Returns
/// the function that changes the level later (SIGHUP).
fn init_logging(level: &str) -> crate::daemon::SetLogLevel {
    let from_env = std::env::var_os("RUST_LOG").is_some();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_filter_reloading();
    let handle = builder.reload_handle();
    let _ = builder.try_init();
    Box::new(move |level: &str| {
        if from_env {
            return Err("RUST_LOG is set and takes precedence over log.level".to_owned());
        }
        let filter = tracing_subscriber::EnvFilter::try_new(level).map_err(|e| e.to_string())?;
        handle.reload(filter).map_err(|e| e.to_string())
    })
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    if let Command::Probe {
        file,
        max_resolution_tier,
    } = &cli.command
    {
        let Ok(tier) =
            serde_json::from_value::<MaxResolutionTier>(max_resolution_tier.as_str().into())
        else {
            eprintln!(
                "reeld: unknown max_resolution_tier {max_resolution_tier:?}; expected 1080p, 1440p or 2160p"
            );
            return ExitCode::from(2);
        };
        return probe(file, tier);
    }
    let config = match load_config(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("reeld: {e}");
            return ExitCode::from(2);
        }
    };
    if let Command::Worker { nonce } = &cli.command {
        // One thread until the worker has confined itself: its runtime is
        // built after that (see `worker`).
        let _log_level = init_logging(&config.log_level);
        return crate::worker::run(config, nonce);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    match cli.command {
        Command::Run => {
            let log_level = init_logging(&config.log_level);
            let source = cli.config.clone();
            let reload = crate::daemon::Reload {
                config: Box::new(move || load_config(source.as_deref())),
                log_level,
            };
            let worker = crate::supervisor::Launch::this_program(cli.config.as_deref());
            match runtime.block_on(crate::daemon::run(config, Some(reload), worker)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("reeld: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Worker { .. } => unreachable!("handled before the runtime starts"),
        Command::Ingest { file, settings } => {
            // The progress bar is the output; only problems are logged.
            let _log_level = init_logging("warn");
            runtime.block_on(ingest(config, &file, settings.as_deref()))
        }
        Command::Renditions {
            command: RenditionsCommand::Add { id, resolution },
        } => {
            let _log_level = init_logging("warn");
            runtime.block_on(add_rendition(config, &id, &resolution))
        }
        Command::Assets { command } => assets(&config, command),
        Command::Webhooks { command } => webhooks::run(&config, command),
        Command::Keys { command } => keys::run(&config, command),
        Command::Doctor => {
            let _log_level = init_logging("error");
            if runtime.block_on(crate::doctor::run(&config)) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Probe { .. } => unreachable!("handled above"),
    }
}

fn probe(file: &Path, tier: MaxResolutionTier) -> ExitCode {
    match crate::probe::probe_file(file) {
        Ok(info) => {
            let inspection = crate::inspect::inspect(file);
            let reasons = crate::standard::reasons(&info, inspection.as_ref().ok(), tier);
            let mut report = serde_json::to_value(&info).expect("info serializes");
            report["measured"] = match &inspection {
                Ok(i) => serde_json::to_value(&i.video).expect("measurements serialize"),
                Err(e) => serde_json::Value::String(e.to_string()),
            };
            report["non_standard_input_reasons"] =
                serde_json::to_value(&reasons).expect("reasons serialize");
            print_line(&serde_json::to_string_pretty(&report).expect("report serializes"));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("reeld: {}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}

fn assets(config: &Config, command: AssetsCommand) -> ExitCode {
    let opened = Db::open(&config.database_path)
        .map_err(|e| e.to_string())
        .and_then(|db| {
            crate::daemon::links_for(config, None)
                .map(|links| (db, links))
                .map_err(|e| e.to_string())
        });
    let (db, links) = match opened {
        Ok(both) => both,
        Err(e) => {
            eprintln!("reeld: {e}");
            return ExitCode::FAILURE;
        }
    };
    let now_s = crate::clock::now_s();
    match command {
        AssetsCommand::List { limit, page } => {
            let offset = u64::from(page.max(1) - 1) * u64::from(limit);
            let listed = db
                .read(|r| r.list_assets(limit, &Page::Offset(offset)))
                .and_then(|(records, _)| {
                    records
                        .into_iter()
                        .map(|record| crate::view::asset(record, Some(&links), now_s))
                        .collect::<Result<Vec<_>, _>>()
                });
            match listed {
                Ok(list) => {
                    print_data(&list);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("reeld: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        AssetsCommand::Get { id } => match asset_json(&db, &links, &id) {
            Ok(Some(asset)) => {
                print_data(&asset);
                ExitCode::SUCCESS
            }
            Ok(None) => {
                eprintln!("reeld: no asset with id {id:?}");
                ExitCode::FAILURE
            }
            Err(e) => {
                eprintln!("reeld: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// One asset as the API serves it.
fn asset_json(db: &Db, links: &crate::links::Links, id: &str) -> Result<Option<Asset>, DbError> {
    db.read(|r| r.asset(id))?
        .map(|record| crate::view::asset(record, Some(links), crate::clock::now_s()))
        .transpose()
}

async fn ingest(config: Config, file: &Path, settings_json: Option<&str>) -> ExitCode {
    let path = match file.canonicalize() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("reeld: cannot open {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    let identity = match SourceIdentity::of(&path) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("reeld: cannot read {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let base = AssetSettings::defaults(
        config.default_max_resolution_tier,
        config.default_video_quality,
    );
    let (mut settings, sidecar, problem) = crate::settings::with_sidecar(base, &path);
    let problem = problem.or_else(|| {
        settings_json.and_then(|text| {
            crate::settings::apply_json_text(&mut settings, text, "--settings").err()
        })
    });
    let ctx = match crate::daemon::open_context(config, None).await {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("reeld: {e}");
            return ExitCode::FAILURE;
        }
    };
    let asset = NewAsset::now(settings, IngestType::OnDemandDirectUpload);
    let source = NewSource {
        path: path.clone(),
        origin: SourceOrigin::Cli,
        identity,
        sidecar,
    };
    let initial_error = problem.map(|p| p.asset_errors());
    let job_id = match ctx.db.write(|tx| {
        tx.create_asset(
            &asset,
            Some(&source),
            ctx.config.max_attempts,
            now_ms(),
            Some(&ctx.worker_id),
            initial_error.as_ref(),
        )
    }) {
        Ok(id) => id,
        Err(e) => {
            eprintln!("reeld: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(errors) = initial_error {
        print_asset(&ctx, &asset.id);
        eprintln!("reeld: {}: {}", path.display(), errors.messages.join(" "));
        return ExitCode::FAILURE;
    }
    let label = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let job = claimed_job(
        job_id,
        JobKind::Transcode,
        &asset.id,
        ctx.config.max_attempts,
        &ctx.worker_id,
    );
    let mut finished = run_with_progress(&ctx, job, label.clone()).await;
    // A remuxed master leaves the renditions that need a decode to a
    // follow-up job; the command waits for those too.
    if matches!(finished, Finished::Ready)
        && let Ok(Some(id)) = ctx
            .db
            .read(|r| r.queued_job(&asset.id, JobKind::Renditions))
        && let Ok(Some(job)) = ctx
            .db
            .write(|tx| tx.claim_job(&ctx.worker_id, crate::jobs::LEASE_POLICY, Some(id)))
    {
        finished = run_with_progress(&ctx, job, format!("{label} (renditions)")).await;
    }
    report(&ctx, &asset.id, &path.display().to_string(), finished)
}

async fn add_rendition(config: Config, asset_id: &str, resolution: &str) -> ExitCode {
    let Some(resolution) = RenditionResolution::parse(resolution) else {
        eprintln!(
            "reeld: unknown resolution {resolution:?}; expected one of {}",
            RenditionResolution::ALL.map(|r| r.as_str()).join(", ")
        );
        return ExitCode::from(2);
    };
    let ctx = match crate::daemon::open_context(config, None).await {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("reeld: {e}");
            return ExitCode::FAILURE;
        }
    };
    let added = crate::jobs::renditions::add(
        &ctx.db,
        asset_id,
        RenditionRequest {
            resolution,
            passthrough: None,
        },
        ctx.config.max_attempts,
        Some(&ctx.worker_id),
    );
    let job_id = match added {
        Ok((_, Some(job_id))) => job_id,
        Ok((_, None)) => {
            // Already requested: nothing to make.
            print_asset(&ctx, asset_id);
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("reeld: {e}");
            return ExitCode::FAILURE;
        }
    };
    let job = claimed_job(
        job_id,
        JobKind::Renditions,
        asset_id,
        ctx.config.max_attempts,
        &ctx.worker_id,
    );
    let finished =
        run_with_progress(&ctx, job, format!("{asset_id} {}", resolution.as_str())).await;
    report(&ctx, asset_id, asset_id, finished)
}

/// Runs a job this process holds the lease of, drawing a progress bar.
async fn run_with_progress(ctx: &Arc<Context>, job: Job, label: String) -> Finished {
    let bar = indicatif::ProgressBar::new(1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:40}] {percent:>3}% {elapsed}",
        )
        .expect("template is valid")
        .progress_chars("=> "),
    );
    bar.set_message(label);
    bar.enable_steady_tick(Duration::from_millis(200));
    let bar2 = bar.clone();
    let progress: jobs::ProgressFn = Arc::new(move |pct| bar2.set_position((pct * 10.0) as u64));
    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_signal.cancel();
    });
    let finished = jobs::run_claimed(ctx, job, cancel, Some(progress)).await;
    bar.finish_and_clear();
    finished
}

fn print_asset(ctx: &Context, asset_id: &str) {
    if let Ok(Some(asset)) = asset_json(&ctx.db, &ctx.links, asset_id) {
        print_data(&asset);
    }
}

/// Prints the asset and turns the job's end into an exit code.
fn report(ctx: &Context, asset_id: &str, what: &str, finished: Finished) -> ExitCode {
    print_asset(ctx, asset_id);
    let status = ctx
        .db
        .read(|r| r.asset(asset_id))
        .ok()
        .flatten()
        .map(|a| a.status);
    match (finished, status) {
        (Finished::Ready, Some(AssetStatus::Ready)) => ExitCode::SUCCESS,
        (Finished::Errored(messages), _) => {
            eprintln!("reeld: {what}: {}", messages.join(" "));
            ExitCode::FAILURE
        }
        (Finished::Requeued(why), _) => {
            eprintln!("reeld: {what}: not finished ({why}); the job stays queued for the daemon");
            ExitCode::FAILURE
        }
        (Finished::Stopped(why), _) => {
            eprintln!("reeld: {what}: stopped ({why})");
            ExitCode::FAILURE
        }
        (Finished::Ready, _) => ExitCode::FAILURE,
    }
}

/// Prints `{"data": value}` on one line, fields in Mux's order.
fn print_data<T: serde::Serialize>(value: &T) {
    let json = serde_json::to_string(&Data { data: value }).expect("assets serialize");
    print_line(&json);
}

/// Writes a line to stdout. A reader that went away (`reeld assets list |
/// head`) is not an error worth a panic.
fn print_line(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// A job this process created already claimed (generation 1).
fn claimed_job(id: i64, kind: JobKind, asset_id: &str, max_attempts: u32, worker: &str) -> Job {
    Job {
        lease: Lease {
            job_id: id,
            worker_id: worker.to_owned(),
            generation: 1,
        },
        id,
        kind,
        asset_id: asset_id.to_owned(),
        attempts: 1,
        max_attempts,
        last_error: None,
        crashes: 0,
    }
}
