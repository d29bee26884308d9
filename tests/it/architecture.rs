//! The layer rule of `src/lib.rs`, checked from the source: every `crate::` and `super::` path in
//! `src/` (code, not comments or strings) is an edge between two top-level modules; an edge may
//! not point to a higher layer, no two modules may reach each other through any chain, and every
//! module must be in the table.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One use of another module: where it is written and what it names.
#[derive(Debug, Clone)]
struct Edge {
    from: String,
    to: String,
    at: String,
}

/// The layer table of `lib.rs`: lines `//! - layer N, what: `a`, `b``.
fn layer_table(lib: &str) -> BTreeMap<String, u32> {
    let mut out = BTreeMap::new();
    for line in lib.lines() {
        let Some(rest) = line.trim_start().strip_prefix("//! - layer ") else {
            continue;
        };
        let Some((n, mods)) = rest.split_once(':') else {
            continue;
        };
        let n: u32 = n
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| panic!("layer line without a number: {line}"));
        for m in mods.split('`').skip(1).step_by(2) {
            out.insert(m.to_string(), n);
        }
    }
    out
}

/// The source with comments, string and char literals blanked (lines kept), so that only code
/// paths are read.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, c: u8| out.push(if c == b'\n' { b'\n' } else { b' ' });
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if b[i] == b'r' && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#')) {
            // Raw string r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"')
                || (i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
            {
                out.push(b[i]);
                i += 1;
                continue;
            }
            let end: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            let mut k = j + 1;
            while k < b.len() && !b[k..].starts_with(&end) {
                k += 1;
            }
            let stop = (k + end.len()).min(b.len());
            for &c in &b[i..stop] {
                blank(&mut out, c);
            }
            i = stop;
        } else if b[i] == b'"' {
            out.push(b' ');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    blank(&mut out, b[i]);
                    i += 1;
                }
                if i < b.len() {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
            out.push(b' ');
            i += 1;
        } else if b[i] == b'\'' && (b.get(i + 2) == Some(&b'\'') || b.get(i + 1) == Some(&b'\\')) {
            // A char literal ('a', '\n', '\''); lifetimes ('a) have no closing quote.
            let mut k = i + 1;
            if b[k] == b'\\' {
                k += 1;
            }
            k += 1;
            while k < b.len() && b[k] != b'\'' {
                k += 1;
            }
            out.extend(std::iter::repeat_n(b' ', k.min(b.len() - 1) + 1 - i));
            i = k + 1;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The module path of a file below `src/`: `a/b.rs` → `[a, b]`, `a/mod.rs` → `[a]`.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

fn ident_at(s: &str) -> Option<&str> {
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    (end > 0).then(|| &s[..end])
}

/// The names a path that reaches the crate root goes on to: `x` in `…::x`, every first name of
/// a `{a, b::c}` group.
fn names_after(rest: &str) -> Vec<String> {
    if let Some(group) = rest.strip_prefix('{') {
        let mut depth = 0;
        let mut out = Vec::new();
        let mut start = true;
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => start = true,
                c if start && !c.is_whitespace() => {
                    start = false;
                    if let Some(id) = ident_at(&group[i..]) {
                        out.push(id.to_string());
                    }
                }
                _ => {}
            }
        }
        out
    } else {
        ident_at(rest)
            .map(|s| vec![s.to_string()])
            .unwrap_or_default()
    }
}

/// Every top-level module that `file` (module path `module`) names through `crate::` or
/// `super::`, with its line.
fn uses_in(code: &str, module: &[String]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    // Inline modules (`mod tests {`) deepen the path for `super::`; tracked by brace depth.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    for (n, line) in code.lines().enumerate() {
        let t = line.trim_start();
        let t = t.strip_prefix("pub ").unwrap_or(t);
        if let Some(name) = t.strip_prefix("mod ").and_then(ident_at) {
            if line.contains('{') {
                inline.push((name.to_string(), depth));
            }
        }
        let here: Vec<String> = module
            .iter()
            .cloned()
            .chain(inline.iter().map(|(m, _)| m.clone()))
            .collect();
        let mut i = 0;
        while let Some(p) = line[i..].find(['c', 's']) {
            let at = i + p;
            let prev_ok = at == 0 || {
                let c = line.as_bytes()[at - 1];
                !(c.is_ascii_alphanumeric() || c == b'_' || c == b':')
            };
            i = at + 1;
            if !prev_ok {
                continue;
            }
            let rest = &line[at..];
            let (base, after) = if let Some(r) = rest.strip_prefix("crate::") {
                (Vec::new(), r)
            } else if rest.starts_with("super::") {
                let mut base = here.clone();
                let mut r = rest;
                while let Some(x) = r.strip_prefix("super::") {
                    base.pop();
                    r = x;
                }
                (base, r)
            } else {
                continue;
            };
            match base.first() {
                Some(top) => out.push((top.clone(), n + 1)),
                None => out.extend(names_after(after).into_iter().map(|m| (m, n + 1))),
            }
        }
        for c in line.chars() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth = depth.saturating_sub(1);
                    while inline.last().is_some_and(|(_, d)| *d >= depth) {
                        inline.pop();
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("readable src dir").flatten() {
        let p = e.path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The layer rule's problems for the tree at `src`, one line each (empty: the tree keeps it).
fn check_tree(src: &Path) -> Vec<String> {
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs");
    let layers = layer_table(&lib);
    let mut problems = Vec::new();
    let mut files = Vec::new();
    rs_files(src, &mut files);
    files.sort();
    let mut modules = BTreeSet::new();
    let mut edges = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(src).expect("below src");
        if rel == Path::new("main.rs") || rel == Path::new("lib.rs") {
            continue;
        }
        let module = module_of(rel);
        let Some(top) = module.first().cloned() else {
            continue;
        };
        modules.insert(top.clone());
        let code = code_only(&std::fs::read_to_string(f).expect("readable source"));
        for (to, line) in uses_in(&code, &module) {
            if to != top && to != "self" {
                edges.push(Edge {
                    from: top.clone(),
                    to,
                    at: format!("{}:{line}", rel.display()),
                });
            }
        }
    }
    for m in &modules {
        if !layers.contains_key(m) {
            problems.push(format!(
                "module {m} is missing from the layer table in lib.rs"
            ));
        }
    }
    for m in layers.keys() {
        if !modules.contains(m) {
            problems.push(format!(
                "the layer table names {m}, which has no file in src/"
            ));
        }
    }
    for e in &edges {
        if let (Some(lf), Some(lt)) = (layers.get(&e.from), layers.get(&e.to)) {
            if lt > lf {
                problems.push(format!(
                    "upward import: {} (layer {lf}) uses {} (layer {lt}) at {}",
                    e.from, e.to, e.at
                ));
            }
        }
    }
    problems.extend(cycles(&edges));
    problems
}

/// Every cycle between modules, as `a -> b -> a (file:line, …)`, one per strongly connected group.
fn cycles(edges: &[Edge]) -> Vec<String> {
    let mut graph: BTreeMap<&str, BTreeMap<&str, &str>> = BTreeMap::new();
    for e in edges {
        graph
            .entry(e.from.as_str())
            .or_default()
            .entry(e.to.as_str())
            .or_insert(e.at.as_str());
    }
    let mut reported: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    for &start in graph.keys() {
        if reported.contains(start) {
            continue;
        }
        // Breadth-first search for the shortest way back to `start`.
        let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut found = None;
        while let Some(n) = queue.pop_front() {
            for (&next, _) in graph.get(n).into_iter().flatten() {
                if next == start {
                    found = Some(n);
                    break;
                }
                if !prev.contains_key(next) {
                    prev.insert(next, n);
                    queue.push_back(next);
                }
            }
            if found.is_some() {
                break;
            }
        }
        let Some(last) = found else { continue };
        let mut chain = vec![start, last];
        let mut n = last;
        while let Some(&p) = prev.get(n) {
            if p == start {
                break;
            }
            chain.insert(1, p);
            n = p;
        }
        chain.dedup();
        chain.push(start);
        let wheres: Vec<&str> = chain.windows(2).map(|w| graph[w[0]][w[1]]).collect();
        reported.extend(chain.iter().copied());
        out.push(format!(
            "cycle: {} ({})",
            chain.join(" -> "),
            wheres.join(", ")
        ));
    }
    out
}

#[test]
fn modules_only_use_modules_of_their_layer_or_below_and_never_form_a_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let problems = check_tree(&src);
    assert!(
        problems.is_empty(),
        "layer rule broken:\n{}",
        problems.join("\n")
    );
    // The table is really read: the command line on top, foundations at the bottom.
    let layers = layer_table(&std::fs::read_to_string(src.join("lib.rs")).unwrap());
    assert!(layers["cli"] > layers["serve"] && layers["serve"] > layers["fault"]);
}

/// A tree of three modules in two layers, with `extra` added to one file.
fn synthetic(extra: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    let mut files: BTreeMap<&str, String> = BTreeMap::from([
        (
            "lib.rs",
            "//! - layer 1, top: `app`\n//! - layer 0, base: `base`, `util`\npub mod app;\npub mod base;\npub mod util;\n".to_string(),
        ),
        ("app.rs", "use crate::{base, util::X};\nfn f() { crate::base::g(); }\n".to_string()),
        ("base.rs", "mod child;\n// crate::app in a comment is not a use\nconst S: &str = \"crate::app\";\n".to_string()),
        ("base/child.rs", "use super::g;\nuse crate::util::Y;\n".to_string()),
        ("util.rs", "#[cfg(test)]\nmod tests {\n    use super::*;\n}\n".to_string()),
    ]);
    for (f, text) in extra {
        files.entry(f).or_default().push_str(text);
    }
    for (f, text) in files {
        let p = src.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

#[test]
fn the_checker_finds_upward_imports_cycles_and_missing_modules() {
    assert_eq!(check_tree(synthetic(&[]).path()), Vec::<String>::new());

    let up = check_tree(
        synthetic(&[("base/child.rs", "fn h() { super::super::app::run(); }\n")]).path(),
    );
    assert!(
        up.iter().any(|p| p
            .starts_with("upward import: base (layer 0) uses app (layer 1) at base/child.rs:3")),
        "{up:?}"
    );

    let grouped = check_tree(synthetic(&[("util.rs", "use crate::{app};\n")]).path());
    assert!(
        grouped
            .iter()
            .any(|p| p.contains("util (layer 0) uses app")),
        "{grouped:?}"
    );

    let cycle = check_tree(synthetic(&[("util.rs", "fn k() { crate::base::g() }\n")]).path());
    assert!(
        cycle
            .iter()
            .any(|p| p.starts_with("cycle: base -> util -> base")
                || p.starts_with("cycle: util -> base -> util")),
        "{cycle:?}"
    );
    assert!(
        !cycle.iter().any(|p| p.starts_with("upward")),
        "same layer is allowed: {cycle:?}"
    );

    let missing = check_tree(synthetic(&[("stray.rs", "")]).path());
    assert_eq!(
        missing,
        vec!["module stray is missing from the layer table in lib.rs".to_string()]
    );
}
