//! The protocol cores stay pure (ARCHITECTURE.md §1): nothing under `src/proto/` outside its
//! tests reads a clock, draws random numbers, spawns threads, or holds what other threads
//! share (atomics, locks, channels, the buffer pool, the sockets' receive queues); nor does
//! it reach into the actors or the sockets. The caller passes time, seeds and buffers
//! (`buf::Buffers`), and the actors publish the cores' plain counters (`actor::counters`).
//!
//! A scan of the source text: each file's code with comments removed and string and char
//! literals blanked, up to its `#[cfg(test)] mod tests { … }` (which comes last); test-only
//! files (`tests.rs`, `tests/`, the TCP simulator `sim`) are skipped. The scan looks at
//! identifiers and paths with the whitespace taken out, so neither spacing (`std :: sync`),
//! grouping (`use std::{sync::Arc}`), renaming (`use std::time::Instant as T; T::now()`)
//! nor a `"//"` in a string hides what a line names; and `crate::` paths may lead only to
//! `proto`, `wire` and `buf`'s batches and `Buffers`.

use std::path::{Path, PathBuf};

/// Identifiers a core never names, wherever they appear.
const FORBIDDEN_IDENTS: &[(&str, &str)] = &[
    ("sync", "atomics, locks and channels are shared with other threads"),
    ("atomic", "atomics are shared with other threads"),
    ("Mutex", "locks belong to the actors"),
    ("RwLock", "locks belong to the actors"),
    ("Condvar", "locks belong to the actors"),
    ("Barrier", "locks belong to the actors"),
    ("OnceLock", "shared with other threads"),
    ("LazyLock", "shared with other threads"),
    ("mpsc", "channels belong to the actors"),
    ("crossbeam", "channels belong to the actors"),
    ("crossbeam_channel", "channels belong to the actors"),
    ("parking_lot", "locks belong to the actors"),
    ("thread", "threads belong to the actors"),
    ("thread_local", "per-thread state belongs to the actors"),
    ("SystemTime", "the caller passes the time"),
    ("UNIX_EPOCH", "the caller passes the time"),
    ("rand", "the caller passes seeds"),
    ("getrandom", "the caller passes seeds"),
    ("fastrand", "the caller passes seeds"),
    ("Pool", "the caller passes buffers (`buf::Buffers`), not the shared pool"),
    ("SharedQueue", "a socket's receive queue is its actor's to charge"),
    ("ByteBudget", "inbox budgets belong to the actors"),
    ("Recycler", "recyclers belong to the actors"),
    ("Recyclers", "recyclers belong to the actors"),
    ("actor", "cores do not reach into the actors"),
];

/// Prefixes of identifiers a core never names (`AtomicU64`, `AtomicBool`, …).
const FORBIDDEN_PREFIXES: &[(&str, &str)] = &[("Atomic", "atomics are shared with other threads")];

/// Text (whitespace removed but between words) a core never contains, with what must not follow it.
const FORBIDDEN_TEXT: &[(&str, &str)] = &[
    ("::now", "the caller passes the time"),
    (".elapsed(", "reads the clock: the caller passes the time"),
    ("static mut", "global mutable state is shared with other threads"),
];

/// The crate's modules a core may name (`crate::…`): the other cores, the wire formats, and
/// `buf` for `Batch`, `Buffers` and `DEFAULT_BUF_SIZE` (never its pool or queues, above).
const ALLOWED_CRATE_MODULES: &[&str] = &["proto", "wire", "buf"];
/// What a core may take from `buf` (`crate::buf::…`).
const ALLOWED_BUF_ITEMS: &[&str] = &["Batch", "Buffers", "DEFAULT_BUF_SIZE", "LARGE_BUF_SIZE", "batch_bytes"];

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

/// `src` with comments removed (line, block, nested) and the contents of string, raw
/// string and char literals blanked; newlines are kept, so line numbers hold.
fn strip(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    while i < c.len() {
        let prev_ident = i > 0 && ident(c[i - 1]);
        if c[i] == '/' && c.get(i + 1) == Some(&'/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if c[i] == '/' && c.get(i + 1) == Some(&'*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if c[i] == 'r' && !prev_ident && matches!(c.get(i + 1), Some('"') | Some('#')) {
            // A raw string r"…" / r#"…"# (or an identifier starting with r: copied).
            let mut j = i + 1;
            while c.get(j) == Some(&'#') {
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                out.push(c[i]);
                i += 1;
                continue;
            }
            let hashes = j - i - 1;
            i = j + 1;
            while i < c.len() && !(c[i] == '"' && (0..hashes).all(|k| c.get(i + 1 + k) == Some(&'#'))) {
                if c[i] == '\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1 + hashes;
            out.push_str("\"\"");
        } else if c[i] == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\n' {
                    out.push('\n');
                }
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c[i] == '\'' && c.get(i + 1) == Some(&'\\') {
            // An escaped char literal: '\n', '\'', '\u{…}'.
            i += 2;
            while i < c.len() && c[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else if c[i] == '\'' && c.get(i + 2) == Some(&'\'') {
            i += 3;
            out.push_str("' '");
        } else {
            out.push(c[i]);
            i += 1;
        }
    }
    out
}

/// The lines of `src` that are code outside the tests (comments removed, literals
/// blanked), with their numbers.
fn code_lines(src: &str) -> Vec<(usize, String)> {
    let stripped = strip(src);
    let lines: Vec<&str> = stripped.lines().collect();
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
        out.push((i + 1, lines[i].to_string()));
        i += 1;
    }
    out
}

/// What in `src` a core must not contain: `(line, what, why)`.
fn violations(src: &str) -> Vec<(usize, String, &'static str)> {
    // The code with whitespace taken out (one space kept between two words), each
    // character with its line.
    let is_ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let (mut text, mut line_of): (Vec<char>, Vec<usize>) = (Vec::new(), Vec::new());
    let mut gap = false;
    for (n, l) in code_lines(src) {
        for ch in l.chars() {
            if ch.is_whitespace() {
                gap = true;
                continue;
            }
            if gap && is_ident(ch) && text.last().is_some_and(|c| is_ident(*c)) {
                text.push(' ');
                line_of.push(n);
            }
            gap = false;
            text.push(ch);
            line_of.push(n);
        }
        gap = true; // a line break separates words too
    }
    let mut bad = Vec::new();
    // Identifiers.
    let mut i = 0;
    while i < text.len() {
        if !is_ident(text[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < text.len() && is_ident(text[i]) {
            i += 1;
        }
        let word: String = text[start..i].iter().collect();
        let hit = FORBIDDEN_IDENTS
            .iter()
            .find(|(w, _)| *w == word)
            .or_else(|| FORBIDDEN_PREFIXES.iter().find(|(p, _)| word.starts_with(p) && word.len() > p.len()));
        if let Some((_, why)) = hit {
            bad.push((line_of[start], word.clone(), *why));
        }
        // `crate::x` / `crate::{x::…, y}`: only the allowed modules.
        if word == "crate" && text[i..].starts_with(&[':', ':']) {
            for (pos, m) in crate_modules(&text, i + 2) {
                if !ALLOWED_CRATE_MODULES.contains(&m.as_str()) {
                    bad.push((line_of[pos], format!("crate::{m}"), "cores use only proto, wire and buf"));
                }
            }
        }
        // `buf::X` / `buf::{X, Y}`: only the batches and `Buffers` (its `RecvQueue` is the
        // sockets' receive queues, its pool and budgets the actors').
        if word == "buf" && text[i..].starts_with(&[':', ':']) {
            for (pos, m) in crate_modules(&text, i + 2) {
                if !ALLOWED_BUF_ITEMS.contains(&m.as_str()) {
                    bad.push((line_of[pos], format!("buf::{m}"), "cores take only batches and `Buffers` from buf"));
                }
            }
        }
    }
    // Text.
    let flat: String = text.iter().collect();
    let char_pos: Vec<usize> = flat.char_indices().map(|(b, _)| b).collect();
    for (needle, why) in FORBIDDEN_TEXT {
        for (b, _) in flat.match_indices(needle) {
            let k = char_pos.binary_search(&b).unwrap();
            let next = text.get(k + needle.chars().count()).copied().unwrap_or(' ');
            let whole = needle.ends_with('(') || !is_ident(next);
            let lifetime = *needle == "static mut" && k > 0 && text[k - 1] == '\'';
            if whole && !lifetime {
                bad.push((line_of[k], needle.to_string(), *why));
            }
        }
    }
    bad
}

/// The first segment of each path after `crate::` (or `buf::`) at `at`: one name, or each name at the
/// top level of a `{…}` group.
fn crate_modules(text: &[char], at: usize) -> Vec<(usize, String)> {
    let is_ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let name_at = |k: usize| -> String { text[k..].iter().take_while(|c| is_ident(**c)).collect() };
    if text.get(at) != Some(&'{') {
        return vec![(at, name_at(at))];
    }
    let (mut out, mut depth, mut k, mut expect) = (Vec::new(), 0, at, true);
    while k < text.len() {
        match text[k] {
            '{' => {
                depth += 1;
                expect = depth == 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => expect = true,
            ch if expect && depth == 1 && is_ident(ch) => {
                let name = name_at(k);
                k += name.chars().count();
                if name != "self" {
                    out.push((k - name.chars().count(), name));
                }
                expect = false;
                continue;
            }
            _ => {}
        }
        k += 1;
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
        let lines: Vec<&str> = src.lines().collect();
        for (n, what, why) in violations(&src) {
            bad.push(format!("{}:{n}: `{what}`: {why}\n    {}", f.display(), lines[n - 1].trim()));
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

/// Each of these names something a core must not have, in a form a plain substring search
/// for `std::sync`, `Instant::now`, `rand::`, `std::thread` or `crate::actor` misses.
#[test]
fn the_scan_sees_through_spacing_grouping_renaming_and_strings() {
    let disguised = [
        "use std::{sync::Arc, collections::HashMap};",
        "use std::{\n    collections::HashMap,\n    sync::Mutex,\n};",
        "let a = std :: sync :: Arc::new(0u8);",
        "use core::sync::atomic::AtomicU64;",
        "use std::time::Instant as Clock;\nfn f() -> Clock { Clock::now() }",
        "fn f(t: std::time::Instant) -> u64 { t.elapsed().as_secs() }",
        "let s = \"http://x\"; let m = std::sync::Mutex::new(0);",
        "use rand :: Rng;",
        "use std::{thread};",
        "use crate::{wire, actor::ip::IpMsg};",
        "use crate::{\n    wire::EthernetAddress,\n    socket::UdpSocket,\n};",
        "use crate::buf::SharedQueue;",
        "fn charge(q: &crate::buf::RecvQueue) {}",
        "use crate::stats::Counters;",
        "static mut COUNT: u64 = 0;",
        "/* a block comment */ use std::sync::Arc;",
    ];
    for src in disguised {
        assert!(!violations(src).is_empty(), "missed:\n{src}");
    }
    // What the cores do write stays clean.
    let clean = [
        "use crate::buf::{Batch, Buffers};\nuse crate::wire::{self, IpProtocol};",
        "pub fn handle_timeout(&mut self, now: Instant) { self.t = now; }",
        "let s = \"std::sync::Arc // Instant::now()\"; let c = '\"'; let d = '\\'';",
        "fn f<'a>(x: &'static mut u8, y: &'a str) {}",
        "/* std::sync /* nested */ Instant::now() */ let x = 1;",
        "let fs = self.fin_seq; let r#type = 1; let br = br\"crate::actor\";",
        "#[derive(Debug)]\npub struct Sync2 { now_ms: u64 }",
    ];
    for src in clean {
        assert_eq!(violations(src), vec![], "a false alarm:\n{src}");
    }
}
