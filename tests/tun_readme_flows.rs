//! The README's block of the seeds' flows, run as it stands (bash, in a namespace of its own,
//! from the repository's top directory): every flow ends, the UDP check passes, and each
//! transfer's SHA-256 is the same at both ends.

mod common;
use common::*;
use std::process::Command;

/// The first ```sh block after the line that starts "The seeds' flows".
fn flows_block() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let at = readme.find("The seeds' flows").expect("the flows section");
    let rest = &readme[at..];
    let start = rest.find("```sh\n").expect("a sh block") + 6;
    let len = rest[start..].find("```").expect("the block's end");
    rest[start..start + len].to_string()
}

#[test]
fn readme_flows_run_as_pasted() {
    in_netns("readme_flows_run_as_pasted", || {
        let block = flows_block();
        assert!(block.contains("tcp_bulk_upload"), "{block}");
        let out = Command::new("timeout")
            .args(["180", "bash", "-e", "-c", &format!("ip link set lo up\n{block}")])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("NO_COLOR", "1")
            .output()
            .expect("run bash");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "the block failed: {:?}\n{text}", out.status);
        assert!(text.contains("15 passed, 0 failed"), "{text}");
        // chargen → download, and upload → sink: each hash printed by both ends.
        let hashes: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("bytes=67108864"))
            .filter_map(|l| l.split("sha256=").nth(1))
            .collect();
        assert_eq!(hashes.len(), 4, "{text}");
        assert!(hashes.iter().all(|h| *h == hashes[0] && h.len() == 64), "{hashes:?}");
    });
}
