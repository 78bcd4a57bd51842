use super::*;

#[test]
fn open_writers_are_seen_and_readers_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().canonicalize().unwrap();
    let w = dir.join("w.mp4");
    let r = dir.join("r.mp4");
    std::fs::write(&r, b"x").unwrap();
    let writer = std::fs::File::create(&w).unwrap();
    let reader = std::fs::File::open(&r).unwrap();
    let busy = open_for_writing(&[w.clone(), r.clone()]);
    assert!(busy.contains(&w));
    assert!(!busy.contains(&r));
    drop(writer);
    drop(reader);
    assert!(open_for_writing(std::slice::from_ref(&w)).is_empty());
}

#[test]
fn scan_skips_excluded_folders() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    std::fs::create_dir_all(root.join("failed")).unwrap();
    std::fs::write(root.join("a/b/x.mp4"), b"x").unwrap();
    std::fs::write(root.join("failed/y.mp4"), b"y").unwrap();
    std::fs::write(root.join("a/kept.mp4"), b"k").unwrap();
    let mut files = 0;
    let kept = root.join("a/kept.mp4");
    let found = scan(root, &[root.join("failed")], &|p| p == kept, &mut files);
    assert_eq!(found, vec![root.join("a/b/x.mp4")]);
    assert_eq!(files, 2, "passed over, but counted");
}
