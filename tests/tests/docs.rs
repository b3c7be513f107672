//! The documentation stays true to the repository (issue 14, "the front door"): the README is a
//! short front door that links nothing outside the repository; every relative link in the README,
//! `docs/*.md` and the function READMEs reaches a file (and a heading, when it names one) inside
//! the repository; and every env var template.yaml sets on a function (its own `Environment` and
//! the `Globals`) is listed in a table of that function's README. Reads files only.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use serde_yaml::Value;
use tests::moto::workspace_root;
use tests::template::Template;

/// The README is a front door, not a specification (about 150 lines).
const README_MAX_LINES: usize = 160;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// README.md, docs/*.md and functions/*/README.md, as paths under the workspace root.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut docs = vec![root.join("README.md")];
    let mut in_dir = |dir: PathBuf, pick: &dyn Fn(&Path) -> Option<PathBuf>| {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
        let mut found: Vec<PathBuf> = entries.filter_map(|e| pick(&e.ok()?.path())).collect();
        found.sort();
        docs.extend(found);
    };
    in_dir(root.join("docs"), &|p| (p.extension()? == "md").then(|| p.to_path_buf()));
    in_dir(root.join("functions"), &|p| Some(p.join("README.md")).filter(|r| r.is_file()));
    docs
}

/// The text outside fenced code blocks and inline code spans, line by line (links in code are
/// examples, not links).
fn prose_lines(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Drop inline code: every other piece between backticks.
        out.push(line.split('`').step_by(2).collect::<String>());
    }
    out
}

/// The targets of inline Markdown links `[text](target)` in `text` (outside code).
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose_lines(text) {
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].trim();
            // `[text](target "title")`: the title is not part of the target.
            targets.push(target.split_whitespace().next().unwrap_or_default().to_string());
            rest = &after[end..];
        }
    }
    targets
}

/// A heading's anchor as GitHub makes it: lower case, spaces to hyphens, punctuation dropped.
fn anchor_of(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown document's headings.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut fenced = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.insert(anchor_of(line.trim_start_matches('#')));
        }
    }
    out
}

/// `path` with `.` and `..` resolved lexically (no file system access), or None when `..` climbs
/// above the start.
fn normalise(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    Some(out)
}

/// What is wrong with one document's relative links (empty when nothing is).
fn broken_links(root: &Path, doc: &Path) -> Vec<String> {
    let text = read(doc);
    let rel_doc = doc.strip_prefix(root).unwrap_or(doc);
    let dir = rel_doc.parent().unwrap_or(Path::new(""));
    let mut problems = Vec::new();
    for target in link_targets(&text) {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (file, anchor) = match target.split_once('#') {
            Some((f, a)) => (f, Some(a)),
            None => (target.as_str(), None),
        };
        let (resolved, shown) = if file.is_empty() {
            (rel_doc.to_path_buf(), rel_doc.display().to_string())
        } else {
            match normalise(&dir.join(file)) {
                Some(p) => (p.clone(), p.display().to_string()),
                None => {
                    problems.push(format!("{}: link {target:?} leaves the repository", rel_doc.display()));
                    continue;
                }
            }
        };
        let full = root.join(&resolved);
        if !full.exists() {
            problems.push(format!("{}: link {target:?} points at {shown}, which does not exist", rel_doc.display()));
            continue;
        }
        if let Some(anchor) = anchor.filter(|a| !a.is_empty()) {
            if full.extension().is_some_and(|e| e == "md") && !anchors(&read(&full)).contains(anchor) {
                problems.push(format!("{}: link {target:?}: {shown} has no heading #{anchor}", rel_doc.display()));
            }
        }
    }
    problems
}

/// The env var names a table of a README lists: backticked names in the first cell of its rows.
fn listed_env_vars(readme: &str) -> BTreeSet<String> {
    let mut listed = BTreeSet::new();
    for line in readme.lines().filter(|l| l.trim_start().starts_with('|')) {
        let first_cell = line.trim_start().trim_start_matches('|').split('|').next().unwrap_or_default();
        for name in first_cell.split('`').skip(1).step_by(2) {
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_') {
                listed.insert(name.to_string());
            }
        }
    }
    listed
}

/// The names under `Environment: Variables:` of a function's properties (or of the Globals).
fn env_names(function: Option<&Value>) -> BTreeSet<String> {
    function
        .and_then(|f| f.get("Environment"))
        .and_then(|e| e.get("Variables"))
        .and_then(Value::as_mapping)
        .map(|vars| vars.keys().filter_map(|k| k.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// The function folder a binary is built from.
fn folder_of(binary: &str) -> &str {
    match binary {
        "slack-ingress" | "slack-worker" => "slack-gateway",
        other => other,
    }
}

#[test]
fn the_readme_is_a_short_front_door_that_links_nothing_outside() {
    let readme = read(&workspace_root().join("README.md"));
    let lines = readme.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines; at most {README_MAX_LINES} (move reference to docs/ or a function README)"
    );
    let outside: Vec<&str> = readme.lines().filter(|l| l.contains("http://") || l.contains("https://")).collect();
    assert!(outside.is_empty(), "README.md links outside the repository:\n{}", outside.join("\n"));
}

#[test]
fn every_relative_link_reaches_a_file_of_the_repository() {
    let root = workspace_root();
    let docs = documents(&root);
    assert!(docs.len() >= 7, "expected the README, docs/ and the five function READMEs: {docs:?}");
    let problems: Vec<String> = docs.iter().flat_map(|d| broken_links(&root, d)).collect();
    assert!(problems.is_empty(), "broken links:\n{}", problems.join("\n"));
}

#[test]
fn every_env_var_the_template_sets_is_listed_in_its_functions_readme() {
    let root = workspace_root();
    let template = Template::load(&root.join("template.yaml")).expect("template.yaml");
    let globals = env_names(template.global_function());
    let functions = template.resources_of_type("AWS::Serverless::Function");
    assert!(functions.len() >= 6, "expected the six functions of template.yaml, found {}", functions.len());
    let mut problems = Vec::new();
    for (logical, resource) in functions {
        let binary = resource
            .get("Metadata")
            .and_then(|m| m.get("BuildProperties"))
            .and_then(|b| b.get("Binary"))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{logical} has no Metadata.BuildProperties.Binary"));
        let path = format!("functions/{}/README.md", folder_of(binary));
        let Ok(readme) = std::fs::read_to_string(root.join(&path)) else {
            problems.push(format!("{logical} ({binary}): {path} does not exist"));
            continue;
        };
        let listed = listed_env_vars(&readme);
        let set: BTreeSet<String> = env_names(resource.get("Properties")).union(&globals).cloned().collect();
        for var in set.difference(&listed) {
            problems.push(format!("{logical} ({binary}): template.yaml sets {var}, which no table of {path} lists"));
        }
    }
    assert!(problems.is_empty(), "env vars missing from the function READMEs:\n{}", problems.join("\n"));
}

#[test]
fn the_checks_see_what_they_look_for() {
    let text = "See [a](docs/a.md#b-c) and `[not](code.md)`.\n```\n[nor](block.md)\n```\n[c](x.md \"title\")";
    assert_eq!(link_targets(text), ["docs/a.md#b-c", "x.md"]);
    assert_eq!(anchor_of(" Why Parquet: the layout benchmark"), "why-parquet-the-layout-benchmark");
    assert_eq!(anchor_of("Files in and out"), "files-in-and-out");
    let table =
        "| var | default |\n|---|---|\n| `AGENT_ID`, `AGENT_ALIAS_ID` | required, see `NOT_THIS` |\nprose `NOR_THIS`";
    assert_eq!(listed_env_vars(table), BTreeSet::from(["AGENT_ID".to_string(), "AGENT_ALIAS_ID".to_string()]));
    assert_eq!(normalise(Path::new("functions/x/../../docs/a.md")), Some(PathBuf::from("docs/a.md")));
    assert_eq!(normalise(Path::new("../outside.md")), None);
    assert_eq!(folder_of("slack-worker"), "slack-gateway");
    assert_eq!(folder_of("token-logging"), "token-logging");
}
