//! Media for unit tests, made by ffmpeg (scripts/install-deps installs it).

use std::path::Path;

/// Runs `ffmpeg -v error -y ARGS PATH`, `args` split on whitespace.
pub fn ffmpeg(path: &Path, args: &str) {
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args.split_whitespace())
        .arg(path)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg {args}");
}
