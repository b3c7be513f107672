//! Which source files each function binary is made of: its crate's entry file and the crate
//! modules it names, transitively. The template-versus-code checks (env vars in deploy.rs, AWS
//! calls in permissions.rs) hold each binary to its own code, not to its crate's or shared's.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::moto::workspace_root;

/// Every .rs file under `dir`.
pub fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())).flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    out
}

/// The source files a binary is made of within its crate: its entry file, then every module of
/// the crate it names (`<crate>::m::` or `crate::m::`), transitively. Several binaries share
/// slack-gateway's lib, and each must be held to its own config only.
pub fn binary_sources(crate_dir: &Path, binary: &str) -> Vec<PathBuf> {
    let src = crate_dir.join("src");
    let entry = [src.join(format!("bin/{binary}.rs")), src.join("main.rs")]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no entry file for {binary} in {}", src.display()));
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).expect("Cargo.toml");
    let package = manifest
        .lines()
        .find_map(|l| l.strip_prefix("name = \""))
        .and_then(|l| l.split('"').next())
        .expect("package name")
        .replace('-', "_");
    let mut seen = BTreeSet::new();
    let mut queue = vec![entry];
    let mut files = Vec::new();
    while let Some(file) = queue.pop() {
        if !seen.insert(file.clone()) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for prefix in [format!("{package}::"), "crate::".to_string()] {
            for piece in text.split(prefix.as_str()).skip(1) {
                let module: String = piece.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                let as_file = src.join(format!("{module}.rs"));
                if as_file.exists() {
                    queue.push(as_file);
                }
                if src.join(&module).is_dir() {
                    queue.extend(rust_files(&src.join(&module)));
                }
            }
        }
        files.push(file);
    }
    files
}

/// The crate directory (under functions/) that builds `binary`.
pub fn crate_of(binary: &str) -> PathBuf {
    let functions = workspace_root().join("functions");
    for entry in std::fs::read_dir(&functions).expect("functions/").flatten() {
        let dir = entry.path();
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_default();
        let named_bin = manifest.contains(&format!("name = \"{binary}\""));
        if dir.join(format!("src/bin/{binary}.rs")).exists() || (named_bin && manifest.contains("[[bin]]")) {
            return dir;
        }
        if named_bin && dir.join("src/main.rs").exists() {
            return dir;
        }
    }
    panic!("no crate under functions/ builds the binary {binary}");
}

/// The shared crate's files that `files` name (`shared::a::b::..`, `use shared::{a::B, c}`), and
/// those the reached files name in turn (`crate::a::..`, child `mod x;`), transitively. A file
/// is reached when a path names it; what of it a binary runs is the caller's question.
pub fn shared_sources(files: &[PathBuf]) -> Vec<PathBuf> {
    let src = workspace_root().join("shared/src");
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    let mut queue: Vec<(PathBuf, &str)> = files.iter().map(|f| (f.clone(), "shared::")).collect();
    let mut out = Vec::new();
    while let Some((file, prefix)) = queue.pop() {
        let text = crate::metric_scan::production_code(&std::fs::read_to_string(&file).unwrap_or_default());
        let mut named = Vec::new();
        for piece in text.split(prefix).skip(1) {
            named.extend(paths_at(piece));
        }
        if prefix == "crate::" {
            // `mod x;` in a/mod.rs (or a.rs) declares a/x.rs.
            let dir = if file.ends_with("mod.rs") || file.ends_with("lib.rs") {
                file.parent().map(Path::to_path_buf)
            } else {
                file.file_stem().and_then(|s| file.parent().map(|p| p.join(s)))
            };
            for line in text.lines() {
                let l = line.trim().trim_start_matches("pub ").trim_start_matches("pub(crate) ");
                if let (Some(m), Some(dir)) = (l.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')), &dir) {
                    for f in [dir.join(format!("{m}.rs")), dir.join(m).join("mod.rs")] {
                        if f.exists() && seen.insert(f.clone()) {
                            queue.push((f.clone(), "crate::"));
                            out.push(f);
                        }
                    }
                }
            }
        }
        for segments in named {
            if let Some(f) = module_file(&src, &segments) {
                if seen.insert(f.clone()) {
                    queue.push((f.clone(), "crate::"));
                    out.push(f);
                }
            }
        }
    }
    out.sort();
    out
}

/// The module paths at the start of `s` (the text after `shared::` or `crate::`): `a::b::C` is
/// one, `{a::B, c}` several.
fn paths_at(s: &str) -> Vec<Vec<String>> {
    let ident = |s: &str| -> String { s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect() };
    let mut segments = Vec::new();
    let mut rest = s;
    loop {
        let id = ident(rest);
        if id.is_empty() {
            break;
        }
        rest = &rest[id.len()..];
        segments.push(id);
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => return vec![segments],
        }
    }
    if let Some(inner) = rest.strip_prefix('{') {
        let Some(close) = crate::metric_scan::matching_close(inner, '{', '}') else { return vec![segments] };
        let mut out = Vec::new();
        for item in inner[..close].split(',') {
            for tail in paths_at(item.trim()) {
                out.push(segments.iter().cloned().chain(tail).collect());
            }
        }
        if out.is_empty() {
            out.push(segments);
        }
        return out;
    }
    vec![segments]
}

/// The file of the deepest module that `segments` (a path inside the shared crate) names.
fn module_file(src: &Path, segments: &[String]) -> Option<PathBuf> {
    for n in (1..=segments.len()).rev() {
        let dir = segments[..n].iter().fold(src.to_path_buf(), |p, s| p.join(s));
        let file = dir.with_extension("rs");
        if file.exists() {
            return Some(file);
        }
        if dir.join("mod.rs").exists() {
            return Some(dir.join("mod.rs"));
        }
    }
    None
}
