//! Finds every metric emission in the functions' source, so the registry in
//! `shared::metric_names` can be proved to match the code: EMF calls on `telemetry::Metrics`
//! (`.count("Name", v, &[("Key", ..)])`, `.count_with_total(..)`, and
//! `.record(&[..])[.with_total()].put("Name", ..)...emit()`) and metrics-publisher's
//! PutMetricData datums (`MetricDatum::new(NAME, ..)`, `MetricDatum { name: NAME, dimensions:
//! vec![("Key", ..)], .. }`, names through `const NAME: &str = "..."`). Names and dimension keys
//! must be literals (or such consts): anything else is reported, not skipped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One emission found in the source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    /// The crate: `functions/<emitter>`, or `shared`.
    pub emitter: String,
    pub name: String,
    /// Dimension keys, sorted.
    pub dimensions: Vec<String>,
    /// file:line
    pub at: String,
}

/// Source files: (emitter, path relative to the workspace, text).
pub type Sources = Vec<(String, String, String)>;

/// Reads the non-test Rust source of functions/*/src and shared/src.
pub fn read_sources(root: &Path) -> Result<Sources, String> {
    let mut out = Vec::new();
    let mut crates: Vec<(String, PathBuf)> = vec![("shared".into(), root.join("shared/src"))];
    let functions = std::fs::read_dir(root.join("functions")).map_err(|e| format!("reading functions/: {e}"))?;
    for entry in functions.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        crates.push((name, entry.path().join("src")));
    }
    crates.sort();
    let reached = shared_files_reached(root);
    for (emitter, dir) in crates {
        let mut files = Vec::new();
        walk(&dir, &mut files);
        files.sort();
        for f in files {
            let rel = f.strip_prefix(root).unwrap_or(&f).to_string_lossy().into_owned();
            // The emitter itself and the registry are not emissions; tests.rs files are tests.
            if rel.ends_with("shared/src/telemetry.rs")
                || rel.ends_with("shared/src/metric_names.rs")
                || f.file_name().is_some_and(|n| n == "tests.rs")
            {
                continue;
            }
            let text = std::fs::read_to_string(&f).map_err(|e| format!("reading {rel}: {e}"))?;
            // A shared module's emission is made by each function whose binaries reach it.
            let key = rel.find("shared/src/").map_or(rel.as_str(), |at| &rel[at..]);
            match reached.get(key).filter(|_| emitter == "shared") {
                Some(functions) => {
                    out.extend(functions.iter().map(|function| (function.clone(), rel.clone(), text.clone())));
                }
                None => out.push((emitter.clone(), rel, text)),
            }
        }
    }
    Ok(out)
}

/// For each shared file (relative path), the function crates whose binaries reach it.
fn shared_files_reached(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut reached: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(root.join("functions")).into_iter().flatten().flatten() {
        let function = entry.file_name().to_string_lossy().into_owned();
        let src = entry.path().join("src");
        let mut binaries: Vec<String> = std::fs::read_dir(src.join("bin"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|b| b.path().file_stem().map(|s| s.to_string_lossy().into_owned()))
            .collect();
        if src.join("main.rs").exists() {
            binaries.push(function.clone());
        }
        for binary in binaries {
            let own = crate::binary_sources::binary_sources(&entry.path(), &binary);
            for f in crate::binary_sources::shared_sources(&own) {
                // Keyed like read_sources' paths, whatever form of the root each was found from.
                let path = f.to_string_lossy();
                let Some(at) = path.find("shared/src/") else { continue };
                reached.entry(path[at..].to_string()).or_default().insert(function.clone());
            }
        }
    }
    reached
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without its `#[cfg(test)]` part and comments.
pub(crate) fn production_code(text: &str) -> String {
    // A test-only `mod x;` declaration is skipped; the first test-only block ends the code.
    let mut code = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("#[cfg(test)]") {
        code.push_str(&rest[..i]);
        let after = &rest[i + "#[cfg(test)]".len()..];
        let next = after.trim_start();
        let declaration = next.lines().next().unwrap_or_default().trim();
        if declaration.starts_with("mod ") && declaration.ends_with(';') {
            rest = &next[next.find(';').map_or(next.len(), |e| e + 1)..];
        } else {
            rest = "";
        }
    }
    code.push_str(rest);
    code.lines()
        .map(|l| match l.find("//") {
            // Keep `//` inside string literals (URLs): only cut when it starts the code's comment.
            Some(i) if l[..i].matches('"').count() % 2 == 0 => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every emission in `sources`, and the problems (emissions the scan cannot read).
pub fn scan(sources: &Sources) -> (Vec<Found>, Vec<String>) {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let mut consts: BTreeMap<(String, String), String> = BTreeMap::new();
    for (emitter, _, text) in sources {
        for (name, value) in str_consts(&production_code(text)) {
            consts.insert((emitter.clone(), name), value);
        }
    }
    for (emitter, rel, text) in sources {
        let code = production_code(text);
        let line_of = |pos: usize| format!("{rel}:{}", code[..pos].matches('\n').count() + 1);
        let mut push = |name: String, dims: Vec<String>, pos: usize| {
            let mut dimensions = dims;
            dimensions.sort();
            found.push(Found { emitter: emitter.clone(), name, dimensions, at: line_of(pos) });
        };
        // .count("Name", value, &[...]) and .count_with_total(...)
        for (call, total) in [(".count(", false), (".count_with_total(", true)] {
            for (pos, _) in code.match_indices(call) {
                let args = &code[pos + call.len()..];
                if args.trim_start().starts_with(')') {
                    continue; // Iterator::count()
                }
                let Some(name) = literal_at(args) else {
                    if !args.trim_start().starts_with(|c: char| c.is_ascii_digit()) {
                        problems.push(format!("{}: metric name is not a string literal", line_of(pos)));
                    }
                    continue;
                };
                match dims_after(args) {
                    Ok(d) => {
                        if total && !d.is_empty() {
                            push(name.clone(), Vec::new(), pos);
                        }
                        push(name, d, pos);
                    }
                    Err(e) => problems.push(format!("{}: {name}: {e}", line_of(pos))),
                }
            }
        }
        // .record(&[...]) [.with_total()] .put("Name", ...) ... .emit()
        for (pos, _) in code.match_indices(".record(") {
            let args = &code[pos + ".record(".len()..];
            if !args.trim_start().starts_with("&[") {
                // Another type's record() (Firehose, audit logs); Metrics::record with computed
                // dimensions would hide them from this check.
                if code[..pos].trim_end().ends_with("metrics") {
                    problems.push(format!("{}: metrics.record(..) dimensions are not a &[..] literal", line_of(pos)));
                }
                continue;
            }
            let dims = match dims_after(args) {
                Ok(d) => d,
                Err(e) => {
                    problems.push(format!("{}: record: {e}", line_of(pos)));
                    continue;
                }
            };
            let Some(end) = args.find(".emit()") else {
                problems.push(format!("{}: record(...) without .emit()", line_of(pos)));
                continue;
            };
            let chain = &args[..end];
            let total = chain.contains(".with_total()");
            for (p, _) in chain.match_indices(".put(") {
                match literal_at(&chain[p + ".put(".len()..]) {
                    Some(name) => {
                        if total && !dims.is_empty() {
                            push(name.clone(), Vec::new(), pos);
                        }
                        push(name, dims.clone(), pos);
                    }
                    None => problems.push(format!("{}: .put(..) name is not a string literal", line_of(pos))),
                }
            }
        }
        // PutMetricData datums (metrics-publisher).
        for (pos, _) in code.match_indices("MetricDatum::new(") {
            let args = &code[pos + "MetricDatum::new(".len()..];
            match name_expr(args, emitter, &consts) {
                Some(name) => push(name, Vec::new(), pos),
                None => {
                    problems.push(format!("{}: MetricDatum::new name is neither a literal nor a const", line_of(pos)))
                }
            }
        }
        for (pos, _) in code.match_indices("MetricDatum {") {
            let before = code[..pos].trim_end();
            if before.ends_with("struct") || before.ends_with("impl") || before.ends_with("for") {
                continue;
            }
            let body = &code[pos + "MetricDatum {".len()..];
            let body = &body[..matching_close(body, '{', '}').unwrap_or(body.len())];
            let Some(n) = body.find("name:") else { continue }; // the constructor's own shorthand
            let Some(name) = name_expr(&body[n + "name:".len()..], emitter, &consts) else {
                problems.push(format!("{}: MetricDatum name is neither a literal nor a const", line_of(pos)));
                continue;
            };
            let dims = match body.find("dimensions:") {
                None => Vec::new(),
                Some(d) => {
                    let v = &body[d + "dimensions:".len()..];
                    if v.trim_start().starts_with("Vec::new()") {
                        Vec::new()
                    } else if let Some(open) = v.find('[') {
                        match keys_in(&v[open + 1..open + 1 + matching_close(&v[open + 1..], '[', ']').unwrap_or(0)]) {
                            Ok(k) => k,
                            Err(e) => {
                                problems.push(format!("{}: {name}: {e}", line_of(pos)));
                                continue;
                            }
                        }
                    } else {
                        problems.push(format!("{}: {name}: dimensions are not a vec![..] literal", line_of(pos)));
                        continue;
                    }
                }
            };
            push(name, dims, pos);
        }
    }
    found.sort();
    found.dedup_by(|a, b| a.emitter == b.emitter && a.name == b.name && a.dimensions == b.dimensions);
    (found, problems)
}

/// `const NAME: &str = "value";` pairs.
fn str_consts(code: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (pos, _) in code.match_indices("const ") {
        let rest = &code[pos + "const ".len()..];
        let Some(colon) = rest.find(':') else { continue };
        let ident = rest[..colon].trim();
        if !ident.chars().all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()) {
            continue;
        }
        let after = rest[colon + 1..].trim_start();
        if let Some(v) = after.strip_prefix("&str").and_then(|a| a.trim_start().strip_prefix('=')) {
            if let Some(lit) = literal_at(v) {
                out.push((ident.to_string(), lit));
            }
        }
    }
    out
}

/// A string literal or a const of the crate at the start of `s`.
fn name_expr(s: &str, emitter: &str, consts: &BTreeMap<(String, String), String>) -> Option<String> {
    if let Some(l) = literal_at(s) {
        return Some(l);
    }
    let ident: String = s.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    consts.get(&(emitter.to_string(), ident)).cloned()
}

/// The string literal at the start of `s` (after whitespace).
fn literal_at(s: &str) -> Option<String> {
    let s = s.trim_start().strip_prefix('"')?;
    Some(s[..s.find('"')?].to_string())
}

/// The dimension keys of the `&[("Key", value), ...]` argument after the metric name (or first).
fn dims_after(args: &str) -> Result<Vec<String>, String> {
    let call_end = matching_close(args, '(', ')').ok_or("unbalanced call")?;
    let args = &args[..call_end];
    let open = args.find("&[").ok_or("dimensions are not a &[..] literal")?;
    let inner = &args[open + 2..];
    let close = matching_close(inner, '[', ']').ok_or("unbalanced dimensions")?;
    keys_in(&inner[..close])
}

/// Keys of `("Key", value)` tuples.
fn keys_in(list: &str) -> Result<Vec<String>, String> {
    let mut keys = Vec::new();
    for (i, _) in list.match_indices('(') {
        // Only tuples at the list's own level start a dimension; `&e.code()` does not.
        let before = list[..i].trim_end();
        if !(before.is_empty() || before.ends_with(',')) {
            continue;
        }
        match literal_at(&list[i + 1..]) {
            Some(k) => keys.push(k),
            None => return Err(format!("dimension key is not a string literal in [{}]", list.trim())),
        }
    }
    if keys.is_empty() && !list.trim().is_empty() {
        return Err(format!("dimensions [{}] are not (\"Key\", value) tuples", list.trim()));
    }
    Ok(keys)
}

/// Byte index of the bracket closing the one opened just before `s`.
pub(crate) fn matching_close(s: &str, open: char, close: char) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_str = false;
    let mut prev = ' ';
    for (i, c) in s.char_indices() {
        if c == '"' && prev != '\\' {
            in_str = !in_str;
        } else if !in_str {
            if c == open {
                depth += 1;
            } else if c == close {
                if depth == 0 {
                    return Some(i);
                }
                depth -= 1;
            }
        }
        prev = c;
    }
    None
}

/// Constructors of the two publishing paths that must be given the monitoring level, or they
/// publish every series whatever `METRICS_LEVEL` says.
const LEVELLED: &[&str] = &["Metrics::stdout(", "CloudWatchMetrics::new("];

/// Every production construction of an emitter (`Metrics::stdout(..)`, metrics-publisher's
/// `CloudWatchMetrics::new(..)`) not followed by `.at_level(..)`: such an emitter would publish
/// the full set of series at `MonitoringLevel` essential too.
pub fn unlevelled_emitters(sources: &Sources) -> Vec<String> {
    let mut problems = Vec::new();
    for (_, rel, text) in sources {
        let code = production_code(text);
        for ctor in LEVELLED {
            for (pos, _) in code.match_indices(ctor) {
                let args = &code[pos + ctor.len()..];
                let Some(close) = matching_close(args, '(', ')') else {
                    problems.push(format!("{rel}: unbalanced {ctor}..)"));
                    continue;
                };
                if !args[close + 1..].trim_start().starts_with(".at_level(") {
                    let line = code[..pos].matches('\n').count() + 1;
                    problems.push(format!(
                        "{rel}:{line}: {ctor}..) without .at_level(shared::telemetry::metrics_level()?)"
                    ));
                }
            }
        }
    }
    problems
}

/// Compares the scan with the registry: every emission registered (name, emitter, exact
/// dimension set), and every registered emission present in the code.
pub fn check_registry(found: &[Found]) -> Vec<String> {
    use shared::metric_names::{find, same_keys, METRICS};
    let mut problems = Vec::new();
    for f in found {
        let keys: Vec<&str> = f.dimensions.iter().map(String::as_str).collect();
        match find(&f.name) {
            None => {
                problems.push(format!("{} emits {} but shared/src/metric_names.rs does not register it", f.at, f.name))
            }
            Some(spec) => {
                if !spec.emissions.iter().any(|e| e.emitter == f.emitter && same_keys(e.dimensions, &keys)) {
                    problems.push(format!(
                        "{} emits {} with dimensions {:?} from {}, which shared/src/metric_names.rs does not register (registered: {:?})",
                        f.at, f.name, keys, f.emitter, spec.emissions
                    ));
                }
            }
        }
    }
    let present: BTreeSet<(String, String, Vec<String>)> =
        found.iter().map(|f| (f.emitter.clone(), f.name.clone(), f.dimensions.clone())).collect();
    for spec in METRICS {
        for e in spec.emissions {
            let mut keys: Vec<String> = e.dimensions.iter().map(|k| k.to_string()).collect();
            keys.sort();
            if !present.contains(&(e.emitter.to_string(), spec.name.to_string(), keys.clone())) {
                problems.push(format!(
                    "shared/src/metric_names.rs registers {} with dimensions {:?} from {}, but no code there emits it",
                    spec.name, keys, e.emitter
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(emitter: &str, text: &str) -> Sources {
        vec![(emitter.to_string(), format!("functions/{emitter}/src/x.rs"), text.to_string())]
    }

    #[test]
    fn a_test_only_module_declaration_does_not_end_the_production_code() {
        let code = "mod a;\n#[cfg(test)]\nmod proptests;\nfn kept() {}\n#[cfg(test)]\nmod tests { fn gone() {} }\n";
        let p = production_code(code);
        assert!(p.contains("fn kept") && !p.contains("proptests") && !p.contains("gone"), "{p}");
    }

    #[test]
    fn reads_counts_records_and_datums() {
        let code = r#"
            const HEARTBEAT: &str = "Heartbeat";
            fn f() {
                let n = v.iter().count();
                self.metrics.count_with_total("APIErrors", 1.0, &[("ErrorCode", &e.code())]);
                self.metrics.count("SignatureFailures", 1.0, &[]); // a "comment"
                self.metrics
                    .record(&[("AgentId", agent), ("ModelId", model)])
                    .with_total()
                    .put("InputTokens", 1.0, Unit::Count)
                    .emit();
                out.push(MetricDatum::new(HEARTBEAT, 1.0, MetricUnit::Count));
                out.push(MetricDatum { name: "ActionSuccessRate", value: 1.0, dimensions: vec![("Action", a)] });
            }
            #[cfg(test)]
            mod tests { fn t() { m.count("NotProduction", 1.0, &[]); } }
        "#;
        let (found, problems) = scan(&src("x", code));
        assert!(problems.is_empty(), "{problems:?}");
        let got: Vec<(String, Vec<String>)> = found.into_iter().map(|f| (f.name, f.dimensions)).collect();
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            got,
            vec![
                ("APIErrors".into(), v(&[])),
                ("APIErrors".into(), v(&["ErrorCode"])),
                ("ActionSuccessRate".into(), v(&["Action"])),
                ("Heartbeat".into(), v(&[])),
                ("InputTokens".into(), v(&[])),
                ("InputTokens".into(), v(&["AgentId", "ModelId"])),
                ("SignatureFailures".into(), v(&[])),
            ]
        );
    }

    #[test]
    fn an_emitter_without_a_level_is_reported() {
        let levelled = "fn main() { let m = Metrics::stdout(&ns).at_level(metrics_level()?); }";
        assert!(unlevelled_emitters(&src("x", levelled)).is_empty());
        let bare = "fn main() { let s = CloudWatchMetrics::new(client(&sdk), &ns);\n }";
        let p = unlevelled_emitters(&src("x", bare));
        assert!(p.len() == 1 && p[0].contains("CloudWatchMetrics::new"), "{p:?}");
    }

    #[test]
    fn a_computed_name_or_key_is_a_problem_not_a_silent_skip() {
        let (_, problems) = scan(&src("x", "fn f() { m.count(name, 1.0, &[]); m.count(\"A\", 1.0, &[(key, v)]); }"));
        assert_eq!(problems.len(), 2, "{problems:?}");
    }
}
