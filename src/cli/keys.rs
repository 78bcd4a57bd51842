//! `reeld keys create|list|delete|sign`: signing keys from the command
//! line, the same rows as `/system/v1/signing-keys` and Cloudflare's
//! `/stream/keys`, and a token minted with one.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use crate::config::Config;
use crate::db::{Db, SigningKeyRow};

/// `reeld keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a signing key. Prints its id and private key (as Mux gives it:
    /// `private_key`, base64 PEM; as Cloudflare: `pem` and `jwk`), once:
    /// reeld keeps only the public half.
    Create,
    /// Print every key's id, when it was made, and through what.
    List,
    /// Delete a key: tokens it signed stop working at once.
    Delete {
        /// The key id.
        id: String,
    },
    /// Print a token for a playback ID (Mux) or video uid (Cloudflare).
    Sign {
        /// The playback ID or video uid (`sub`).
        subject: String,
        /// The signing key's id (`kid`).
        #[arg(long)]
        key_id: String,
        /// A file holding the private key: PEM, or base64 PEM as
        /// `keys create` printed it.
        #[arg(long)]
        private_key: PathBuf,
        /// Seconds the token lives (at most 86400).
        #[arg(long, default_value_t = 3600)]
        expires_in: i64,
        /// A Cloudflare token (`downloadable: true`, no `aud`) instead of Mux's.
        #[arg(long)]
        cloudflare: bool,
    },
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("reeld: {message}");
    ExitCode::FAILURE
}

/// Runs a `reeld keys` command.
pub fn run(config: &Config, command: KeysCommand) -> ExitCode {
    if let KeysCommand::Sign {
        subject,
        key_id,
        private_key,
        expires_in,
        cloudflare,
    } = command
    {
        return sign(&subject, &key_id, &private_key, expires_in, cloudflare);
    }
    let db = match Db::open(&config.database_path) {
        Ok(db) => db,
        Err(e) => return fail(e),
    };
    match command {
        KeysCommand::Create => {
            let key = match crate::playback::keys::generate(crate::playback::new_playback_id()) {
                Ok(k) => k,
                Err(e) => return fail(e),
            };
            let row = SigningKeyRow {
                id: key.id.clone(),
                public_key: key.public_pem.clone(),
                origin: "cli".into(),
                created_at: crate::clock::now_s(),
            };
            if let Err(e) = db.write(|tx| tx.add_signing_key(&row)) {
                return fail(e);
            }
            println!(
                "{:#}",
                json!({
                    "id": key.id,
                    "private_key": key.private_pem_base64(),
                    "pem": key.private_pem_base64(),
                    "jwk": key.private_jwk_base64(),
                    "created_at": row.created_at.to_string(),
                })
            );
            ExitCode::SUCCESS
        }
        KeysCommand::List => match db.read(|r| r.signing_keys(u32::MAX, 0)) {
            Ok(rows) => {
                let data: Vec<_> = rows
                    .iter()
                    .map(|k| json!({"id": k.id, "created_at": k.created_at.to_string(), "origin": k.origin}))
                    .collect();
                println!("{:#}", json!({ "data": data }));
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        KeysCommand::Delete { id } => match db.write(|tx| tx.delete_signing_key(&id)) {
            Ok(true) => {
                println!("Deleted signing key {id}.");
                ExitCode::SUCCESS
            }
            Ok(false) => fail(format!("no signing key with id {id:?}")),
            Err(e) => fail(e),
        },
        KeysCommand::Sign { .. } => unreachable!("handled above"),
    }
}

fn sign(
    subject: &str,
    key_id: &str,
    file: &std::path::Path,
    expires_in: i64,
    cloudflare: bool,
) -> ExitCode {
    use base64::Engine as _;
    if !(1..=crate::playback::tokens::MAX_LIFETIME_S).contains(&expires_in) {
        return fail("--expires-in must be 1 to 86400 seconds");
    }
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => return fail(format!("cannot read {}: {e}", file.display())),
    };
    let pem = if text.contains("-----BEGIN") {
        text
    } else {
        match base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
        {
            Some(p) => p,
            None => {
                return fail(format!(
                    "{} holds neither PEM nor base64 PEM",
                    file.display()
                ));
            }
        }
    };
    let key = match jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()) {
        Ok(k) => k,
        Err(_) => return fail(format!("{} is not an RSA private key", file.display())),
    };
    let now = crate::clock::now_s();
    let claims = if cloudflare {
        json!({"sub": subject, "kid": key_id, "exp": now + expires_in, "nbf": now - 60, "iat": now,
               "downloadable": true})
    } else {
        json!({"sub": subject, "aud": "v", "exp": now + expires_in, "kid": key_id})
    };
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(key_id.to_owned());
    match jsonwebtoken::encode(&header, &claims, &key) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(format!("cannot sign: {e}")),
    }
}
