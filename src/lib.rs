//! reeld: a self-hosted media transcoding daemon.
//!
//! Data flows one way: `watch` or `api` (or the CLI) → `db` (asset + job) →
//! `jobs` → `probe` → `plan` → `pipeline` → `store` → `db`. Nothing lower
//! calls back up. `view` turns stored records into Mux's JSON for the API
//! and the CLI alike.

pub mod api;
pub mod asset;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod db;
pub mod disk;
pub mod doctor;
pub mod graph;
pub mod inspect;
pub mod jobs;
pub mod keys;
pub mod links;
pub mod loudness;
pub mod netpolicy;
pub mod pipeline;
pub mod pipelines;
pub mod plan;
pub mod playback;
pub mod probe;
pub mod remux;
pub mod sandbox;
pub mod settings;
pub mod standard;
pub mod store;
pub mod supervisor;
pub mod systemd;
#[cfg(test)]
mod test_media;
pub mod view;
pub mod watch;
pub mod webhooks;
pub mod worker;
pub mod x264;
