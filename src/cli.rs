//! The command line: `run`, `ingest`, `assets list|get`, `probe`.
//!
//! Commands print machine-readable JSON on stdout (assets exactly as the HTTP
//! API serves them, in Mux's `{"data": …}` envelope) and human messages and
//! logs on stderr.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::asset::{AssetSettings, AssetStatus, Data, IngestType, new_asset_id};
use crate::config::{Config, ConfigError};
use crate::db::{Db, NewAsset, NewSource, SourceIdentity, SourceOrigin};
use crate::jobs::{self, Finished, now_ms};

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
    /// Turn one file into an asset in this process, with a progress bar.
    Ingest {
        /// The media file.
        file: PathBuf,
    },
    /// Read assets.
    Assets {
        /// What to read.
        #[command(subcommand)]
        command: AssetsCommand,
    },
    /// Print what probing finds in a file, as JSON.
    Probe {
        /// The media file.
        file: PathBuf,
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

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    if let Command::Probe { file } = &cli.command {
        return probe(file);
    }
    let config = match load_config(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("reeld: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    match cli.command {
        Command::Run => {
            init_logging(&config.log_level);
            match runtime.block_on(crate::daemon::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("reeld: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Ingest { file } => {
            // The progress bar is the output; only problems are logged.
            init_logging("warn");
            runtime.block_on(ingest(config, &file))
        }
        Command::Assets { command } => assets(&config, command),
        Command::Probe { .. } => unreachable!("handled above"),
    }
}

fn probe(file: &Path) -> ExitCode {
    match crate::probe::probe_file(file) {
        Ok(info) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&info).expect("info serializes")
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("reeld: {}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}

fn assets(config: &Config, command: AssetsCommand) -> ExitCode {
    let db = match Db::open(&config.database_path) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("reeld: {e}");
            return ExitCode::FAILURE;
        }
    };
    match command {
        AssetsCommand::List { limit, page } => {
            let offset = u64::from(page.max(1) - 1) * u64::from(limit);
            match db.list_assets(limit, offset) {
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
        AssetsCommand::Get { id } => match db.get_asset(&id) {
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

async fn ingest(config: Config, file: &Path) -> ExitCode {
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
    let ctx = match crate::daemon::open_context(config).await {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("reeld: {e}");
            return ExitCode::FAILURE;
        }
    };
    let settings = AssetSettings {
        max_resolution_tier: ctx.config.default_max_resolution_tier,
        video_quality: ctx.config.default_video_quality,
        master_access: Default::default(),
        normalize_audio: false,
        passthrough: None,
        meta: None,
        test: false,
    };
    let asset = NewAsset {
        id: new_asset_id(),
        created_at: now_ms() / 1000,
        settings,
        ingest_type: IngestType::OnDemandDirectUpload,
    };
    let source = NewSource {
        path: path.clone(),
        origin: SourceOrigin::Cli,
        identity,
    };
    let job_id = match ctx.db.create_asset(
        &asset,
        Some(&source),
        ctx.config.max_attempts,
        now_ms(),
        Some(&ctx.worker_id),
    ) {
        Ok(id) => id,
        Err(e) => {
            eprintln!("reeld: {e}");
            return ExitCode::FAILURE;
        }
    };
    let job = jobs_job(job_id, &asset.id, ctx.config.max_attempts);

    let bar = indicatif::ProgressBar::new(1000);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:40}] {percent:>3}% {elapsed}",
        )
        .expect("template is valid")
        .progress_chars("=> "),
    );
    bar.set_message(
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    let bar2 = bar.clone();
    let progress: jobs::ProgressFn = Arc::new(move |pct| bar2.set_position((pct * 10.0) as u64));

    let cancel = CancellationToken::new();
    let on_signal = cancel.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_signal.cancel();
    });
    let finished = jobs::run_claimed(&ctx, job, cancel, Some(progress)).await;
    bar.finish_and_clear();

    let asset = ctx.db.get_asset(&asset.id).ok().flatten();
    if let Some(asset) = &asset {
        print_data(&asset);
    }
    match (finished, asset.map(|a| a.status)) {
        (Finished::Ready, Some(AssetStatus::Ready)) => ExitCode::SUCCESS,
        (Finished::Errored(messages), _) => {
            eprintln!("reeld: {}: {}", path.display(), messages.join(" "));
            ExitCode::FAILURE
        }
        (Finished::Requeued(why), _) => {
            eprintln!(
                "reeld: {}: not finished ({why}); the job stays queued for the daemon",
                path.display()
            );
            ExitCode::FAILURE
        }
        (Finished::Ready, _) => ExitCode::FAILURE,
    }
}

/// Prints `{"data": value}` on one line, fields in Mux's order.
fn print_data<T: serde::Serialize>(value: &T) {
    let json = serde_json::to_string(&Data { data: value }).expect("assets serialize");
    println!("{json}");
}

fn jobs_job(id: i64, asset_id: &str, max_attempts: u32) -> crate::db::Job {
    crate::db::Job {
        id,
        asset_id: asset_id.to_owned(),
        attempts: 1,
        max_attempts,
        last_error: None,
    }
}
