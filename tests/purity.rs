//! The protocol cores stay pure (ARCHITECTURE.md §1): nothing under `src/proto/` outside its
//! tests reads a clock, draws random numbers, spawns threads, or holds what other threads
//! share (atomics, locks, channels, the buffer pool); nor does it reach into the actors or
//! the sockets. The caller passes time, seeds and buffers (`buf::Buffers`), and the actors
//! publish the cores' plain counters (`actor::counters`).
//!
//! A scan of the source text: each file's code with `//` comments removed, up to its
//! `#[cfg(test)] mod tests { … }` (which comes last); test-only files (`tests.rs`,
//! `tests/`, the TCP simulator `sim`) are skipped.

use std::path::{Path, PathBuf};

const FORBIDDEN: &[(&str, &str)] = &[
    ("std::sync", "atomics, locks and channels are shared with other threads"),
    ("Atomic", "atomics are shared with other threads"),
    ("crossbeam", "channels belong to the actors"),
    ("parking_lot", "locks belong to the actors"),
    ("Instant::now", "the caller passes the time"),
    ("SystemTime", "the caller passes the time"),
    ("rand::", "the caller passes seeds"),
    ("std::thread", "threads belong to the actors"),
    ("Pool", "the caller passes buffers (`buf::Buffers`), not the shared pool"),
    ("crate::actor", "cores do not reach into the actors"),
    ("crate::socket", "cores do not reach into the sockets"),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            if name != "tests" && name != "sim" {
                rust_files(&p, out);
            }
        } else if name.ends_with(".rs") && name != "tests.rs" && name != "sim.rs" {
            out.push(p);
        }
    }
}

/// The lines of `src` that are code outside the tests, with their numbers.
fn code_lines(src: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = src.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim();
        if t == "#[cfg(test)]" {
            let next = lines.get(i + 1).map_or("", |l| l.trim());
            if next.starts_with("mod ") && next.ends_with('{') {
                break; // the tests module, last in the file
            }
            if next.starts_with("mod ") && next.ends_with(';') {
                i += 2; // a test-only module in its own file (skipped above)
                continue;
            }
        }
        let code = lines[i].split("//").next().unwrap_or("");
        out.push((i + 1, code.to_string()));
        i += 1;
    }
    out
}

#[test]
fn protocol_cores_share_nothing_with_other_threads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/proto");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 20, "found the cores: {files:?}");
    let mut bad = Vec::new();
    for f in &files {
        let src = std::fs::read_to_string(f).unwrap();
        for (n, line) in code_lines(&src) {
            for (token, why) in FORBIDDEN {
                if line.contains(token) {
                    bad.push(format!("{}:{n}: `{token}`: {why}\n    {}", f.display(), line.trim()));
                }
            }
        }
    }
    assert!(bad.is_empty(), "impure code in src/proto:\n{}", bad.join("\n"));
}

#[test]
fn the_scan_sees_code_and_skips_comments_and_tests() {
    let src = "use std::sync::Arc; // x\n// Instant::now\nfn f() {}\n#[cfg(test)]\nmod sim;\nfn g() {}\n#[cfg(test)]\nmod tests {\n    use rand::random;\n}\n";
    let lines: Vec<_> = code_lines(src).into_iter().map(|(n, l)| (n, l.trim().to_string())).collect();
    assert_eq!(
        lines,
        vec![(1, "use std::sync::Arc;".into()), (2, "".into()), (3, "fn f() {}".into()), (6, "fn g() {}".into())]
    );
}
