//! The bridge's modules form no import cycle, file by file: dependencies point one way
//! (ingress → domain → backends → shared pieces), as `ARCHITECTURE.md` draws them.
//!
//! A module is a file (`exec/aws.rs` is `exec::aws`). An edge is a `crate::…` or `super::…` path
//! in its code (tests excluded) that names another module; a parent and its children may refer
//! to each other (a `mod.rs` re-exporting its children is not a cycle).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

type Graph = BTreeMap<String, BTreeSet<String>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read source dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `exec/aws.rs` → `exec::aws`, `exec/mod.rs` → `exec`; `None` for the crate roots.
fn module_of(root: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(root).ok()?.with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    match parts.as_slice() {
        [only] if only == "lib" || only == "main" => None,
        _ => Some(parts.join("::")),
    }
}

/// The longest known module that `path` starts with.
fn resolve(modules: &BTreeSet<String>, path: &[&str]) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|k| path[..k].join("::"))
        .find(|m| modules.contains(m))
}

fn related(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"))
}

/// The module graph of a crate's source directory.
fn graph(root: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(root, &mut files);
    let sources: BTreeMap<String, String> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).expect("read source");
            let code = text.split("#[cfg(test)]").next().unwrap_or("").to_string();
            Some((module_of(root, f)?, code))
        })
        .collect();
    let modules: BTreeSet<String> = sources.keys().cloned().collect();
    let path = Regex::new(r"\b(crate|super)::((?:[a-z_][a-z0-9_]*::)*[a-z_][a-z0-9_]*)").unwrap();
    let group = Regex::new(r"\bcrate::\{([^}]*)\}").unwrap();
    let mut g = Graph::new();
    for (m, code) in &sources {
        let here: Vec<&str> = m.split("::").collect();
        let mut targets = Vec::new();
        for c in path.captures_iter(code) {
            let mut p: Vec<&str> = if &c[1] == "super" {
                here[..here.len() - 1].to_vec()
            } else {
                Vec::new()
            };
            p.extend(c.get(2).unwrap().as_str().split("::"));
            targets.extend(resolve(&modules, &p));
        }
        for c in group.captures_iter(code) {
            for item in c[1].split(',') {
                let p: Vec<&str> = item.trim().split("::").collect();
                targets.extend(resolve(&modules, &p));
            }
        }
        let edges = g.entry(m.clone()).or_default();
        edges.extend(targets.into_iter().filter(|t| !related(m, t)));
    }
    g
}

/// One cycle, as the modules along it, if the graph has any.
fn find_cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(
        g: &Graph,
        m: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for next in g.get(m).into_iter().flatten() {
            if let Some(c) = visit(g, next, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|m| visit(g, m, &mut Vec::new(), &mut done))
}

#[test]
fn the_bridge_has_no_module_cycle() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bridge/src");
    let g = graph(&root);
    assert!(
        g.len() > 40,
        "found only {} modules under {}",
        g.len(),
        root.display()
    );
    if let Some(cycle) = find_cycle(&g) {
        panic!(
            "module cycle in the bridge: {}. Move the shared piece down a layer (see ARCHITECTURE.md).",
            cycle.join(" → ")
        );
    }
}

#[test]
fn the_top_layers_point_down() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bridge/src");
    let g = graph(&root);
    let top = |m: &str| m.split("::").next().unwrap_or(m).to_string();
    // Nothing below the ingress reaches up into it, and the backends reach no domain service.
    for (m, edges) in &g {
        for t in edges {
            let (from, to) = (top(m), top(t));
            let up = match from.as_str() {
                "exec" | "identity" => {
                    ["app", "change", "reads", "ctx", "cli", "exec", "identity"]
                        .contains(&to.as_str())
                        && to != from
                }
                "change" | "reads" | "ctx" => ["app", "cli"].contains(&to.as_str()),
                "config" | "slack" | "base" | "store" | "clock" | "shared" => {
                    ["app", "change", "reads", "ctx", "exec", "identity", "cli"]
                        .contains(&to.as_str())
                }
                _ => false,
            };
            assert!(!up, "`{m}` uses `{t}`, a layer above it");
        }
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let g: Graph = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec![]),
    ]
    .into_iter()
    .map(|(m, e)| (m.to_string(), e.into_iter().map(String::from).collect()))
    .collect();
    assert_eq!(find_cycle(&g).unwrap(), ["a", "b", "c", "a"]);
    let mut acyclic = g.clone();
    acyclic.get_mut("c").unwrap().clear();
    assert_eq!(find_cycle(&acyclic), None);
}
