//! The crate's top-level modules form layers: none imports, directly or through others, a
//! module that imports it back. Read from the source (`use crate::…` and `crate::…` paths
//! outside comments and test modules), so a new upward import fails here with the cycle named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/store/lock.rs` → `store`); `None` for the
/// crate roots.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()?
        .as_os_str()
        .to_string_lossy()
        .into_owned();
    let name = first.trim_end_matches(".rs").to_string();
    (name != "lib" && name != "main").then_some(name)
}

/// A file's code: comments dropped, and `#[cfg(test)] mod …` blocks (test code may reach
/// anywhere) cut off. Test modules sit at the end of a file, so everything from the first one
/// on is test code; a `#[cfg(test)]` on anything else is kept.
fn code_of(text: &str) -> String {
    let mut code = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]")
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod "))
        {
            break;
        }
        let line = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        code.push_str(line);
        code.push('\n');
    }
    code
}

/// The top-level modules a file's code names through `crate::`, including in `use` groups
/// spread over several lines.
fn imports(text: &str) -> BTreeSet<String> {
    let code = code_of(text);
    assert!(
        !code.contains("crate as ") && !code.contains("super::super::"),
        "a path the layers test cannot follow (`crate as`, `super::super::`): name modules \
         with `crate::`"
    );
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a, b::c, d::{e, f}}`: the first segment of each item.
            let mut depth = 0;
            let mut item_start = true;
            for (i, ch) in group.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        rest = &group[i..];
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && (c.is_ascii_alphabetic() || c == '_') => {
                        let name: String = group[i..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        found.insert(name);
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

/// A cycle in `graph`, as the modules along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(c) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

/// The import graph of the crate's top-level modules.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(module) = top_module(&src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        let entry = graph.entry(module.clone()).or_default();
        for target in imports(&text) {
            if target != module {
                entry.insert(target);
            }
        }
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for targets in graph.values_mut() {
        targets.retain(|t| modules.contains(t));
    }
    graph
}

#[test]
fn no_import_cycle_among_the_top_level_modules() {
    let graph = module_graph();
    assert!(graph.len() > 5, "the crate's modules were found: {graph:?}");
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "the top-level modules import each other in a circle: {}\n(full graph: {graph:#?})",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn the_cycle_finder_finds_a_cycle_and_reads_grouped_imports() {
    let names = imports(
        "use crate::{\n    alpha,\n    beta::x,\n    gamma::{d, e},\n};\n// crate::ignored\n\
         let _ = crate::delta::f(); // crate::also_ignored\n\
         #[cfg(test)]\nfn helper() { crate::epsilon::g() }\n\
         #[cfg(test)]\nmod tests { use crate::zeta; }",
    );
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(names, ["alpha", "beta", "delta", "epsilon", "gamma"]);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    graph.entry("a".into()).or_default().insert("b".into());
    graph.entry("b".into()).or_default().insert("c".into());
    graph.entry("c".into()).or_default();
    assert_eq!(find_cycle(&graph), None);
    graph.entry("c".into()).or_default().insert("a".into());
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

/// The layers, lowest first, as docs/ARCHITECTURE.md draws them: a module may import only
/// modules of a lower layer. A new top-level module must be placed here.
const LAYERS: &[&[&str]] = &[
    &[
        "types",
        "exit",
        "fault",
        "paths",
        "prices",
        "random",
        "calibrate",
    ],
    &["clock", "records", "config_file"],
    &["store"],
    &["vault"],
    &["audit"],
    &["quota", "health", "oauth"],
    &["select"],
    &["error"],
    &["agent", "hardening"],
    &["ledger"],
    &["metrics"],
    &["daemon", "gateway"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

#[test]
fn every_import_goes_down_the_layers() {
    let graph = module_graph();
    let mut wrong = Vec::new();
    for (module, targets) in &graph {
        let Some(here) = layer_of(module) else {
            wrong.push(format!(
                "{module} is in no layer: place it in LAYERS and ARCHITECTURE.md"
            ));
            continue;
        };
        for target in targets {
            match layer_of(target) {
                Some(there) if there < here => {}
                _ => wrong.push(format!("{module} imports {target}")),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that go up or sideways: {wrong:#?}"
    );
}
