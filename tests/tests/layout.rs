//! The workspace's layout rules (docs/architecture.md), checked: which crate
//! may depend on which, what the production binaries link, and no import
//! cycles between the modules of a production crate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use comfy_test_support::sources;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cargo(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO"))
        .args(args)
        .arg("--manifest-path")
        .arg(repo().join("Cargo.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The workspace crates each workspace crate depends on: (normal, dev).
fn workspace_edges() -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
    let meta: Value =
        serde_json::from_str(&cargo(&["metadata", "--format-version", "1", "--no-deps"])).unwrap();
    let members: BTreeSet<String> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    let mut edges = BTreeMap::new();
    for p in meta["packages"].as_array().unwrap() {
        let (mut normal, mut dev) = (BTreeSet::new(), BTreeSet::new());
        for d in p["dependencies"].as_array().unwrap() {
            let name = d["name"].as_str().unwrap().to_owned();
            if !members.contains(&name) {
                continue;
            }
            if d["kind"] == "dev" {
                dev.insert(name);
            } else {
                normal.insert(name);
            }
        }
        edges.insert(p["name"].as_str().unwrap().to_owned(), (normal, dev));
    }
    edges
}

#[test]
fn crates_depend_only_as_the_architecture_allows() {
    // crate → the workspace crates it may use at run time.
    let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("comfy-adapter", &[][..]),
        ("comfy-queue-api", &[][..]),
        ("comfy-artifacts", &[][..]),
        ("comfy-frontend", &[][..]),
        ("comfy-sealed", &[][..]),
        ("comfy-routing", &[][..]),
        (
            "comfy-queue",
            &["comfy-artifacts", "comfy-queue-api", "comfy-routing"][..],
        ),
        (
            "comfy-worker",
            &[
                "comfy-adapter",
                "comfy-queue-api",
                "comfy-routing",
                "comfy-sealed",
            ][..],
        ),
        (
            "comfy-gateway",
            &["comfy-adapter", "comfy-queue-api", "comfy-sealed"][..],
        ),
        ("comfy-emulator", &["comfy-adapter"][..]),
        ("comfyctl", &["comfy-adapter", "comfy-emulator"][..]),
        (
            "comfy-stack",
            &[
                "comfy-adapter",
                "comfy-artifacts",
                "comfy-emulator",
                "comfy-frontend",
                "comfy-gateway",
                "comfy-queue",
                "comfy-queue-api",
                "comfy-worker",
            ][..],
        ),
        (
            "comfy-test-support",
            &["comfy-adapter", "comfy-frontend"][..],
        ),
    ]);
    for (krate, (normal, dev)) in workspace_edges() {
        if krate == "comfy-e2e" {
            continue;
        }
        let may = allowed
            .get(krate.as_str())
            .unwrap_or_else(|| panic!("{krate} is not in docs/architecture.md's table"));
        for d in &normal {
            assert!(may.contains(&d.as_str()), "{krate} depends on {d}");
        }
        // Test code only through the support crate; production crates'
        // tests never pull in the emulator or the stack unless their
        // runtime already may.
        for d in &dev {
            assert!(
                d == "comfy-test-support" || may.contains(&d.as_str()),
                "{krate} has {d} as a dev-dependency"
            );
        }
        assert!(
            !normal.contains("comfy-test-support"),
            "{krate} links test code"
        );
    }
}

#[test]
fn production_binaries_link_no_emulator_store_or_test_code() {
    for (krate, banned) in [
        (
            "comfy-worker",
            &[
                "comfy-emulator",
                "comfy-test-support",
                "rusqlite",
                "redis",
                "comfy-queue",
                "axum-test",
                "wiremock",
            ][..],
        ),
        (
            "comfy-queue",
            &["comfy-emulator", "comfy-test-support", "comfy-adapter"][..],
        ),
        (
            "comfy-gateway",
            &[
                "comfy-emulator",
                "comfy-test-support",
                "comfy-queue",
                "rusqlite",
                "redis",
                "wiremock",
            ][..],
        ),
        (
            "comfy-adapter",
            &["comfy-emulator", "axum", "clap", "rusqlite", "redis"][..],
        ),
    ] {
        // `cargo tree -e normal`: what the binary links (dev-dependencies
        // are not linked into it).
        let tree = cargo(&["tree", "-p", krate, "-e", "normal", "--prefix", "none"]);
        for line in tree.lines() {
            let name = line.split_whitespace().next().unwrap_or_default();
            assert!(!banned.contains(&name), "{krate} links {name}:\n{tree}");
        }
    }
    // And the plain `cargo tree -p comfy-worker` (dev-dependencies too).
    let tree = cargo(&["tree", "-p", "comfy-worker", "--prefix", "none"]);
    for banned in ["comfy-emulator", "rusqlite", "redis"] {
        assert!(
            !tree
                .lines()
                .any(|l| l.split_whitespace().next() == Some(banned)),
            "cargo tree -p comfy-worker shows {banned}"
        );
    }
}

/// The top-level modules of `src/` a file of module `from` imports
/// (`crate::x`, `super::x` at the top level).
fn imports(text: &str, modules: &BTreeSet<String>, from: &str, top: bool) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut code = String::new();
    for (_, line) in sources::code_lines(text) {
        code.push_str(line);
        code.push('\n');
    }
    let mut prefixes = vec!["crate::"];
    if top {
        prefixes.push("super::");
    }
    for prefix in prefixes {
        for (i, _) in code.match_indices(prefix) {
            let rest = &code[i + prefix.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if modules.contains(&name) && name != from {
                out.insert(name);
            }
        }
        // `use crate::{a, b::c}`
        for (i, _) in code.match_indices(&format!("{prefix}{{")) {
            let rest = &code[i + prefix.len() + 1..];
            let group: String = rest.chars().take_while(|c| *c != '}').collect();
            for part in group.split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if modules.contains(&name) && name != from {
                    out.insert(name);
                }
            }
        }
    }
    out
}

fn module_cycle(src: &Path) -> Option<Vec<String>> {
    let mut modules = BTreeSet::new();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let stem = name.strip_suffix(".rs").unwrap_or(&name).to_owned();
        if !matches!(stem.as_str(), "lib" | "main" | "bin") {
            modules.insert(stem);
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in &modules {
        let (mut fs, file) = (Vec::new(), src.join(format!("{m}.rs")));
        if file.is_file() {
            fs.push(file);
        }
        fs.extend(sources::rust_files(&src.join(m)));
        let mut deps = BTreeSet::new();
        for f in fs {
            let top = f.parent() == Some(src) || f.file_name().is_some_and(|n| n == "mod.rs");
            deps.extend(imports(
                &std::fs::read_to_string(&f).unwrap(),
                &modules,
                m,
                top,
            ));
        }
        graph.insert(m.clone(), deps);
    }
    // Depth-first search for a back edge.
    fn visit(
        n: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(n.to_owned(), 1);
        path.push(n.to_owned());
        for d in graph.get(n).into_iter().flatten() {
            match state.get(d.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = path.iter().position(|p| p == d).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(d.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(d, graph, state, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(n.to_owned(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for m in graph.keys() {
        if state.get(m.as_str()).copied().unwrap_or(0) == 0
            && let Some(c) = visit(m, &graph, &mut state, &mut Vec::new())
        {
            return Some(c);
        }
    }
    None
}

#[test]
fn the_modules_of_each_production_crate_import_each_other_without_cycles() {
    let mut cycles = Vec::new();
    for krate in [
        "comfy-adapter",
        "comfy-emulator",
        "comfyctl",
        "queue",
        "worker",
        "comfy-stack",
        "comfy-gateway",
    ] {
        if let Some(c) = module_cycle(&repo().join(krate).join("src")) {
            cycles.push(format!("{krate}: {}", c.join(" → ")));
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}
