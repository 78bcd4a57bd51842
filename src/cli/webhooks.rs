//! `reeld webhooks list|retry`: the webhook outbox from the command line,
//! the same rows as `GET /video/v1/webhook-events`.

use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Config;
use crate::db::Db;

/// `reeld webhooks …`.
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Print `{"data": [DELIVERY, …]}`, newest first.
    List {
        /// Only `pending`, `delivered` or `failed` ones.
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Send an event again (to every endpoint it has not reached); a running
    /// daemon picks it up within a second.
    Retry {
        /// The event id.
        id: String,
    },
}

/// Runs a `reeld webhooks` command.
pub fn run(config: &Config, command: WebhooksCommand) -> ExitCode {
    let db = match Db::open(&config.database_path) {
        Ok(db) => db,
        Err(e) => {
            eprintln!("reeld: {e}");
            return ExitCode::FAILURE;
        }
    };
    match command {
        WebhooksCommand::List { status, limit } => {
            if let Some(s) = &status
                && !matches!(s.as_str(), "pending" | "delivered" | "failed")
            {
                eprintln!("reeld: --status must be pending, delivered or failed");
                return ExitCode::from(2);
            }
            match db.read(|r| r.deliveries(status.as_deref(), limit)) {
                Ok(rows) => {
                    super::print_data(&rows);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("reeld: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        WebhooksCommand::Retry { id } => {
            match db.write(|tx| tx.retry_event(&id, crate::jobs::now_ms())) {
                Ok(0) => {
                    eprintln!("reeld: no undelivered webhook event with id {id:?}");
                    ExitCode::FAILURE
                }
                Ok(n) => {
                    eprintln!("reeld: event {id} queued again for {n} endpoint(s)");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("reeld: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
