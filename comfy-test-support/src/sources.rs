//! The workspace's own Rust sources, read as text by the tests that hold
//! its layout rules (no release named outside the table, no module cycles).

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, sorted (none when `dir` cannot be read).
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

/// The production lines of a source file with their 1-based numbers:
/// comment lines are skipped, and reading stops at the first `#[cfg(test)]`
/// (unit tests at the end of a file may name what they test).
pub fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .take_while(|(_, l)| !l.trim_start().starts_with("#[cfg(test)]"))
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(n, l)| (n + 1, l))
}
