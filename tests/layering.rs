//! The layers of the library and of the binary (docs/architecture.md):
//! every module may use only modules of lower layers, and no module
//! reaches itself through others (no import cycle). Fails naming the
//! import.
//!
//! Imports are read from the source: `crate::a::b::Item` paths (inside
//! `use` braces too), `super::` and a folder's own `child::` paths. A
//! path is resolved to the most specific module it names, and through
//! re-exports (`pub use child::Item` in a folder's `mod.rs`), so that an
//! item is charged to the module defining it; the re-exporting module
//! uses what it re-exports too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The library's layers, lowest first. A module may use modules of
/// earlier layers only. An entry naming a folder (`import`) covers the
/// folder's files not listed themselves; files covered by one entry may
/// use each other (the cycle check still applies to them).
const LIB_LAYERS: &[&[&str]] = &[
    // Base: values and rules with no storage.
    &["error"],
    &["time", "country", "sync"],
    &["model"],
    &["place"],
    &["json", "query", "intern"],
    // The log's format and files.
    &["entry"],
    &["codec", "folder"],
    &["logfile"],
    &["store"],
    &["log"],
    &["segment", "runfile"],
    // Derived state.
    &["index", "projection/fold"],
    &["projection/user", "projection/cells"],
    &[
        "projection/by_date",
        "projection/by_actor",
        "projection/by_place",
    ],
    &["projection/by_country"],
    &["projection"],
    &["state"],
    &["record", "snapshot", "follow", "writer", "excise"],
    // The histories: main and branches.
    &["line/main", "line/branch"],
    &["line"],
    // THE read API, then THE write path.
    &["read"],
    &["read/diff", "write"],
    &["engine"],
    // Operations over the engine.
    &["columnar", "replay", "subscribe", "merge"],
    &["integrity", "export", "import", "delta"],
    // The handle, and the crate root.
    &["db"],
    &["lib"],
];

/// The binary's layers (`src/main.rs` and `src/cli/`); it uses the
/// library only through `annals::`.
const BIN_LAYERS: &[&[&str]] = &[
    &["cli/output"],
    &["cli/common", "cli/serve/shared", "cli/serve/conns"],
    &[
        "cli/demo",
        "cli/import",
        "cli/serve/api",
        "cli/write",
        "cli/read",
        "cli/branch",
        "cli/check",
        "cli/publish",
    ],
    &["cli/serve"],
    &["cli"],
    &["main"],
];

/// Every source file under `dir` as (module path, source).
fn modules(dir: &Path, prefix: &str, out: &mut Vec<(String, String)>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            modules(&path, &format!("{prefix}{name}/"), out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            let module = match name.as_str() {
                "mod" => prefix.trim_end_matches('/').to_string(),
                _ => format!("{prefix}{name}"),
            };
            out.push((module, std::fs::read_to_string(&path).unwrap()));
        }
    }
}

/// The source without its test module and comments.
fn code(source: &str) -> String {
    source
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or(source)
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The full paths a path expression at the start of `s` names, expanding
/// braces: `a::{b, c::{d}}` gives `a::b` and `a::c::d`.
fn expand(s: &str) -> Vec<String> {
    fn ident(s: &str) -> usize {
        s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len())
    }
    fn go(s: &str, prefix: &str, out: &mut Vec<String>) -> usize {
        let mut i = 0;
        let mut path = prefix.to_string();
        loop {
            let rest = &s[i..];
            if let Some(inner) = rest.strip_prefix('{') {
                let mut j = 1;
                loop {
                    let part = &inner[j - 1..];
                    let skip = part.len() - part.trim_start().len();
                    j += skip;
                    j += go(&inner[j - 1..], &path, out);
                    let after = inner[j - 1..].trim_start();
                    j += inner[j - 1..].len() - after.len();
                    if let Some(a) = after.strip_prefix(',') {
                        j += 1;
                        if a.trim_start().starts_with('}') {
                            j += a.len() - a.trim_start().len() + 1;
                            return i + j;
                        }
                    } else {
                        return i + j + usize::from(after.starts_with('}'));
                    }
                }
            }
            let n = ident(rest);
            if n == 0 {
                // `self` in braces, `*`, or the end.
                if rest.starts_with('*') {
                    out.push(path);
                    return i + 1;
                }
                out.push(path);
                return i;
            }
            if !path.is_empty() {
                path.push_str("::");
            }
            path.push_str(&rest[..n]);
            i += n;
            if s[i..].starts_with("::") {
                i += 2;
            } else {
                // `as` renames change nothing we track.
                out.push(path);
                return i;
            }
        }
    }
    let mut out = Vec::new();
    go(s, "", &mut out);
    out
}

/// One module's imports: (resolved target path segments, is a re-export).
struct Import {
    path: Vec<String>,
    reexport: bool,
}

/// The paths a module names: `crate::...`, `super::...`, and in a
/// folder's `mod.rs` the paths through its own children.
fn imports(module: &str, source: &str, children: &[String]) -> Vec<Import> {
    let code = code(source);
    let parent: Vec<&str> = module.split('/').collect();
    let mut out = Vec::new();
    let mut scan = |marker: &str, base: Vec<String>| {
        for (i, _) in code.match_indices(marker) {
            // A whole word only (`acrate::` is not ours).
            let before = code[..i].chars().last();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let line_start = code[..i].rfind('\n').map_or(0, |n| n + 1);
            let line = code[line_start..i].trim_start();
            let reexport = line.starts_with("pub use") || line.starts_with("pub(crate) use");
            for p in expand(&code[i + marker.len()..]) {
                let mut path = base.clone();
                path.extend(p.split("::").filter(|s| !s.is_empty()).map(str::to_string));
                out.push(Import { path, reexport });
            }
        }
    };
    scan("crate::", Vec::new());
    if module != "lib" && module != "main" {
        let up: Vec<String> = parent[..parent.len() - 1]
            .iter()
            .map(|s| s.to_string())
            .collect();
        scan("super::", up);
    }
    for child in children {
        let name = child.rsplit('/').next().unwrap_or(child);
        let mut base: Vec<String> = match module {
            "lib" | "main" => Vec::new(),
            _ => module.split('/').map(str::to_string).collect(),
        };
        base.push(name.to_string());
        scan(&format!("{name}::"), base);
    }
    out
}

struct Crate {
    /// Module path → its imports.
    imports: BTreeMap<String, Vec<Import>>,
}

impl Crate {
    fn load(files: &[(String, String)]) -> Crate {
        let names: Vec<String> = files.iter().map(|(m, _)| m.clone()).collect();
        let mut by_module = BTreeMap::new();
        for (module, source) in files {
            // The crate root's children are the top-level modules.
            let root = module == "lib" || module == "main";
            let children: Vec<String> = names
                .iter()
                .filter(|n| match root {
                    true => !n.contains('/'),
                    false => n
                        .strip_prefix(&format!("{module}/"))
                        .is_some_and(|rest| !rest.contains('/')),
                })
                .cloned()
                .collect();
            by_module.insert(module.clone(), imports(module, source, &children));
        }
        Crate { imports: by_module }
    }

    /// The module a path names, following re-exports: the longest prefix
    /// that is a module, then (if the next segment is an item that module
    /// re-exports) where the re-export points.
    fn resolve(&self, path: &[String], depth: usize) -> Option<String> {
        for n in (1..=path.len()).rev() {
            let module = path[..n].join("/");
            if !self.imports.contains_key(&module) {
                continue;
            }
            if let (Some(item), true) = (path.get(n), depth < 8) {
                for imp in self.imports.get(&module).into_iter().flatten() {
                    if imp.reexport && imp.path.last() == Some(item) {
                        return self.resolve(&imp.path, depth + 1);
                    }
                }
            }
            return Some(module);
        }
        None
    }

    /// Module → the modules it uses.
    fn graph(&self, root: &str) -> BTreeMap<String, BTreeSet<String>> {
        let mut g = BTreeMap::new();
        for (module, imports) in &self.imports {
            let mut used = BTreeSet::new();
            for imp in imports {
                if let Some(target) = self.resolve(&imp.path, 0) {
                    if target != *module && target != root {
                        used.insert(target);
                    }
                }
            }
            g.insert(module.clone(), used);
        }
        g
    }
}

/// The layer of a module and the entry that placed it there.
fn layer_of<'a>(layers: &[&[&'a str]], module: &str) -> Option<(usize, &'a str)> {
    let exact = layers
        .iter()
        .enumerate()
        .find_map(|(i, l)| l.iter().find(|m| **m == module).map(|m| (i, *m)));
    exact.or_else(|| {
        // The nearest folder entry covering it.
        let mut prefix = module;
        while let Some(cut) = prefix.rfind('/') {
            prefix = &prefix[..cut];
            if let Some(hit) = layers
                .iter()
                .enumerate()
                .find_map(|(i, l)| l.iter().find(|m| **m == prefix).map(|m| (i, *m)))
            {
                return Some(hit);
            }
        }
        None
    })
}

/// Strongly connected components of more than one module: the cycles.
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Reachability by depth-first search from each module: small graphs.
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(m) = stack.pop() {
            for n in g.get(&m).into_iter().flatten() {
                if seen.insert(n.clone()) {
                    stack.push(n.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> = g.keys().map(|m| (m, reach(m))).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    for m in g.keys() {
        if !reached[m].contains(m) {
            continue;
        }
        let mut scc: Vec<String> = reached[m]
            .iter()
            .filter(|n| reached.get(n).is_some_and(|r| r.contains(m)))
            .cloned()
            .collect();
        scc.sort();
        if !out.contains(&scc) {
            out.push(scc);
        }
    }
    out
}

fn check(files: Vec<(String, String)>, layers: &[&[&str]], root: &str) -> usize {
    let krate = Crate::load(&files);
    let g = krate.graph(root);
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (module, used) in &g {
        let Some((own, own_entry)) = layer_of(layers, module) else {
            wrong.push(format!(
                "{module}: in no layer (add it to the layers here and to docs/architecture.md)"
            ));
            continue;
        };
        for target in used {
            checked += 1;
            match layer_of(layers, target) {
                Some((l, _)) if l < own => {}
                Some((l, entry)) if l == own && entry == own_entry => {}
                Some((l, _)) => {
                    wrong.push(format!("{module} (layer {own}) uses {target} (layer {l})"))
                }
                None => wrong.push(format!("{module} uses {target}, which is in no layer")),
            }
        }
    }
    for cycle in cycles(&g) {
        wrong.push(format!("import cycle: {}", cycle.join(" -> ")));
    }
    assert!(
        wrong.is_empty(),
        "imports against the layer order:\n{}",
        wrong.join("\n")
    );
    checked
}

fn sources() -> Vec<(String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    modules(&src, "", &mut files);
    files
}

#[test]
fn the_library_is_layered_without_cycles() {
    let files: Vec<(String, String)> = sources()
        .into_iter()
        .filter(|(m, _)| m != "main" && m != "cli" && !m.starts_with("cli/"))
        .collect();
    let checked = check(files, LIB_LAYERS, "lib");
    assert!(
        checked > 150,
        "the checker found too few imports: {checked}"
    );
}

#[test]
fn the_binary_is_layered_without_cycles() {
    let files: Vec<(String, String)> = sources()
        .into_iter()
        .filter(|(m, _)| m == "main" || m == "cli" || m.starts_with("cli/"))
        .collect();
    let checked = check(files, BIN_LAYERS, "main");
    assert!(checked >= 8, "the checker found too few imports: {checked}");
}

#[test]
fn paths_expand_through_braces() {
    assert_eq!(
        expand("a::{b, c::{d, e}, f}; x"),
        vec!["a::b", "a::c::d", "a::c::e", "a::f"]
    );
    assert_eq!(expand("a::b::C;"), vec!["a::b::C"]);
    assert_eq!(expand("a::{\n    b,\n    c,\n};"), vec!["a::b", "a::c"]);
}

#[test]
fn a_cycle_is_found() {
    let files = vec![
        ("lib".to_string(), "mod a; mod b; mod c;".to_string()),
        ("a".to_string(), "use crate::b::X;".to_string()),
        ("b".to_string(), "use crate::c::Y;".to_string()),
        ("c".to_string(), "use crate::a::Z;".to_string()),
    ];
    let krate = Crate::load(&files);
    let found = cycles(&krate.graph("lib"));
    assert_eq!(found, vec![vec!["a".to_string(), "b".into(), "c".into()]]);
}

#[test]
fn a_reexport_is_followed() {
    let files = vec![
        ("lib".to_string(), "mod a; mod b; mod c;".to_string()),
        (
            "a".to_string(),
            "pub(crate) use crate::c::Helper;".to_string(),
        ),
        ("b".to_string(), "use crate::a::Helper;".to_string()),
        ("c".to_string(), "pub fn x() {}".to_string()),
    ];
    let krate = Crate::load(&files);
    let g = krate.graph("lib");
    assert_eq!(g["b"], BTreeSet::from(["c".to_string()]));
    assert_eq!(g["a"], BTreeSet::from(["c".to_string()]));
}
