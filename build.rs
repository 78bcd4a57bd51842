//! Builds reeldx264enc's C shim (src/x264/shim.c) against the system libx264.

fn main() {
    println!("cargo:rerun-if-changed=src/x264/shim.c");
    let x264 = pkg_config::Config::new()
        .atleast_version("0.164")
        // Linked below, after the shim that needs it.
        .cargo_metadata(false)
        .probe("x264")
        .unwrap_or_else(|e| {
            panic!(
                "libx264 not found ({e}); on Debian: apt install libx264-dev (scripts/install-deps)"
            )
        });
    let mut build = cc::Build::new();
    build
        .file("src/x264/shim.c")
        .warnings(true)
        .extra_warnings(true);
    for path in &x264.include_paths {
        build.include(path);
    }
    build.compile("reeld_x264_shim");
    for path in &x264.link_paths {
        println!("cargo:rustc-link-search=native={}", path.display());
    }
    for lib in &x264.libs {
        println!("cargo:rustc-link-lib={lib}");
    }
}
