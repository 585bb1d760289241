//! The core's layers (docs/architecture.md): every module may use only
//! modules of lower layers. Fails, naming the import, when a module
//! reaches up. The front layer (the `Annals` handle and the operations
//! built on it) is still one group whose members use each other; it is
//! listed as such, so that nothing below it can join the circle.

use std::path::Path;

/// Lowest first. A module may use the ones before it.
const LAYERS: &[&[&str]] = &[
    &["error"],
    &["time", "country", "sync"],
    &["model"],
    &["json", "query", "intern"],
    &["entry"],
    &["codec", "store"],
    &["log", "segment"],
    &["index", "projection"],
    &["state"],
    // The front: still one circle (see architecture.md).
    &[
        "db",
        "read",
        "branch",
        "merge",
        "excise",
        "delta",
        "snapshot",
        "subscribe",
        "integrity",
        "projection/user",
        "export",
        "columnar",
        "import",
    ],
    &["lib"],
];

/// The layer of a source file, by its module path (`projection/user`,
/// `import/gdelt` counts as `import`).
fn layer_of(module: &str) -> Option<usize> {
    let find = |m: &str| LAYERS.iter().position(|l| l.contains(&m));
    find(module).or_else(|| find(module.split('/').next().unwrap_or(module)))
}

/// `crate::x` paths used outside the file's test module.
fn uses(source: &str) -> Vec<String> {
    let code: String = source
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or(source)
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name == "projection" && rest.starts_with("projection::user") {
            out.push("projection/user".to_string());
        } else if !name.is_empty() {
            out.push(name);
        }
    }
    out.sort();
    out.dedup();
    out
}

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

#[test]
fn no_module_uses_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    modules(&src, "", &mut files);
    let mut wrong = Vec::new();
    let mut checked = 0;
    for (module, source) in &files {
        // The command line is another crate, a client of the library
        // (`annals::`): it cannot reach into the core.
        if module == "main" || module.starts_with("cli") || module == "lib" {
            continue;
        }
        let Some(own) = layer_of(module) else {
            wrong.push(format!(
                "{module}: not in any layer (add it to LAYERS and the docs)"
            ));
            continue;
        };
        for used in uses(source) {
            checked += 1;
            match layer_of(&used) {
                Some(l) if l < own || (l == own && own == LAYERS.len() - 2) => {}
                Some(l) if l == own && used == *module => {}
                Some(l) if l == own && module.starts_with(&format!("{used}/")) => {}
                Some(l) if l == own && used.starts_with(&format!("{module}/")) => {}
                Some(l) => wrong.push(format!("{module} (layer {own}) uses {used} (layer {l})")),
                None => wrong.push(format!("{module} uses {used}, which is in no layer")),
            }
        }
    }
    assert!(checked > 50, "the checker found too few imports: {checked}");
    assert!(
        wrong.is_empty(),
        "imports against the layer order:\n{}",
        wrong.join("\n")
    );
}
