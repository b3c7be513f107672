//! The AWS operations a function binary's code can call, as IAM actions: the static half of the
//! permissions check (tests/tests/permissions.rs compares them with the binary's role in
//! template.yaml).
//!
//! A binary's code is its crate's files that its entry names (`binary_sources`, as the env-var
//! check uses) plus the shared crate's files those name. Shared adapters are held to what the
//! binary uses: in a shared file only the functions the binary calls by name (and what they call
//! in the same file) count, so `DynamoDbConversations`' feedback transaction counts for the worker
//! but not for metrics-publisher, which reads turns through the same type. An operation is a
//! method call `.put_item()` whose name is an operation of an SDK crate the file names
//! (`aws_sdk_dynamodb`): the list comes from the SDK crates in Cargo.lock, so a new operation
//! is seen without touching this file. Its IAM actions are `<prefix>:<Operation>` unless
//! `ACTIONS` says otherwise (Service Authorization Reference).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::binary_sources::{binary_sources, crate_of, shared_sources};
use crate::metric_scan::{matching_close, production_code};
use crate::moto::workspace_root;

/// SDK crate -> IAM service prefix. An SDK crate missing here is reported, not skipped.
pub const SERVICES: &[(&str, &str)] = &[
    ("aws_sdk_athena", "athena"),
    ("aws_sdk_bedrockagentruntime", "bedrock"),
    ("aws_sdk_bedrockagentcore", "bedrock-agentcore"),
    ("aws_sdk_cloudwatch", "cloudwatch"),
    ("aws_sdk_dynamodb", "dynamodb"),
    ("aws_sdk_firehose", "firehose"),
    ("aws_sdk_s3", "s3"),
    ("aws_sdk_secretsmanager", "secretsmanager"),
    ("aws_sdk_sqs", "sqs"),
];

/// Operations authorised by other actions than `<prefix>:<Operation>`, or by more than it.
/// DynamoDB's TransactWriteItems is authorised per item (see `transaction_actions`).
pub const ACTIONS: &[(&str, &[&str])] = &[
    ("s3:ListObjectsV2", &["s3:ListBucket"]),
    ("s3:ListObjects", &["s3:ListBucket"]),
    ("s3:HeadBucket", &["s3:ListBucket"]),
    ("s3:HeadObject", &["s3:GetObject"]),
    ("s3:CopyObject", &["s3:GetObject", "s3:PutObject"]),
    ("s3:DeleteObjects", &["s3:DeleteObject"]),
    ("s3:CreateMultipartUpload", &["s3:PutObject"]),
    ("s3:UploadPart", &["s3:PutObject"]),
    ("s3:CompleteMultipartUpload", &["s3:PutObject"]),
    ("dynamodb:TransactGetItems", &["dynamodb:GetItem"]),
    // Athena runs the query with the caller's permissions: it reads the Glue catalog and the
    // table's objects, and writes the results (and UNLOAD's output) to S3, in parts when large.
    (
        "athena:StartQueryExecution",
        &[
            "athena:StartQueryExecution",
            "glue:GetDatabase",
            "glue:GetTable",
            "glue:GetPartitions",
            "s3:GetObject",
            "s3:ListBucket",
            "s3:GetBucketLocation",
            "s3:PutObject",
            "s3:AbortMultipartUpload",
        ],
    ),
];

/// The operations of each SDK crate in the build: crate ident (`aws_sdk_dynamodb`) -> method
/// name (`put_item`) -> operation name (`PutItem`).
#[derive(Debug, Clone, Default)]
pub struct SdkOperations(pub BTreeMap<String, BTreeMap<String, String>>);

/// The host's target triple, as rustc reports it.
fn host_triple() -> Result<String, String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = std::process::Command::new(rustc).arg("-vV").output().map_err(|e| format!("rustc -vV: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_owned())
        .ok_or_else(|| "rustc -vV printed no host".to_owned())
}

impl SdkOperations {
    /// Reads every `aws-sdk-*` crate of the workspace's dependency graph (`cargo metadata`):
    /// `src/operation/<method>.rs` declares `Metadata::new("<Operation>", ..)`.
    pub fn load() -> Result<SdkOperations, String> {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // Only this platform's packages: a fresh machine has downloaded no others, and offline
        // metadata of the whole graph would ask for them (android_system_properties...).
        let host = host_triple()?;
        let out = std::process::Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--offline", "--filter-platform", &host])
            .current_dir(workspace_root())
            .output()
            .map_err(|e| format!("cargo metadata: {e}"))?;
        if !out.status.success() {
            return Err(format!("cargo metadata: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let meta: serde_json::Value =
            serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata output: {e}"))?;
        let mut ops = SdkOperations::default();
        for p in meta["packages"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().unwrap_or_default();
            if !name.starts_with("aws-sdk-") {
                continue;
            }
            let manifest = PathBuf::from(p["manifest_path"].as_str().unwrap_or_default());
            let dir = manifest.parent().unwrap_or(Path::new(".")).join("src/operation");
            let entry = ops.0.entry(name.replace('-', "_")).or_default();
            for f in std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?.flatten() {
                let path = f.path();
                let Some(method) = path.file_stem().and_then(|s| s.to_str()).filter(|_| path.is_file()) else {
                    continue;
                };
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let op = text
                    .split("Metadata::new(\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .map(str::to_string)
                    .unwrap_or_else(|| pascal(method));
                entry.insert(method.to_string(), op);
            }
        }
        if ops.0.get("aws_sdk_dynamodb").is_none_or(|m| !m.contains_key("put_item")) {
            return Err("no aws-sdk-dynamodb operations found: the SDK scan is broken".into());
        }
        Ok(ops)
    }
}

fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

/// One IAM action a binary's code needs, and the call that needs it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Call {
    /// e.g. `dynamodb:PutItem`
    pub action: String,
    /// The SDK operation, e.g. `dynamodb PutItem`.
    pub operation: String,
    /// file:line of the call.
    pub at: String,
}

/// A source file of a binary: (path relative to the workspace, text, whether all of it runs).
/// The binary's own crate files run whole; a shared file only in the functions the binary calls.
pub type BinaryFile = (String, String, bool);

/// The files of `binary`: its crate's, then the shared crate's it names.
pub fn binary_files(binary: &str) -> Result<Vec<BinaryFile>, String> {
    let root = workspace_root();
    let own = binary_sources(&crate_of(binary), binary);
    let shared = shared_sources(&own);
    let mut out = Vec::new();
    for (files, whole) in [(own, true), (shared, false)] {
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(|e| format!("{}: {e}", f.display()))?;
            let rel = f.strip_prefix(&root).unwrap_or(&f).to_string_lossy().into_owned();
            out.push((rel, text, whole));
        }
    }
    Ok(out)
}

/// Every IAM action the code in `files` can need, and the problems (calls it cannot attribute).
pub fn calls(files: &[BinaryFile], ops: &SdkOperations) -> (Vec<Call>, Vec<String>) {
    let code: Vec<String> = files.iter().map(|(_, t, _)| production_code(t)).collect();
    // What of each file runs: all of the binary's own files; of a shared file, the functions
    // that what runs elsewhere calls (grown to a fixed point, since shared files call each other).
    let mut running: Vec<Vec<(usize, usize)>> = files
        .iter()
        .zip(&code)
        .map(|((_, _, whole), c)| if *whole { vec![(0, c.len())] } else { Vec::new() })
        .collect();
    loop {
        let mut changed = false;
        for (i, (_, _, whole)) in files.iter().enumerate() {
            if *whole {
                continue;
            }
            let others: Vec<String> = (0..files.len())
                .filter(|j| *j != i)
                .map(|j| running[j].iter().map(|(s, e)| &code[j][*s..*e]).collect::<Vec<_>>().join("\n"))
                .collect();
            let others: Vec<&str> = others.iter().map(String::as_str).collect();
            let now = reachable(&code[i], &others);
            if now != running[i] {
                running[i] = now;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (i, (rel, _, _)) in files.iter().enumerate() {
        let text = &code[i];
        let crates: Vec<&String> = ops.0.keys().filter(|c| text.contains(c.as_str())).collect();
        if crates.is_empty() {
            continue;
        }
        let scopes = &running[i];
        // A transaction's items may be built in helpers: every part of the file that runs.
        let running: String = scopes.iter().map(|(s, e)| &text[*s..*e]).collect::<Vec<_>>().join("\n");
        for &(start, end) in scopes {
            let scope = &text[start..end];
            for (pos, method) in empty_calls(scope) {
                let owners: Vec<&&String> = crates.iter().filter(|c| ops.0[c.as_str()].contains_key(method)).collect();
                let at = format!("{rel}:{}", text[..start + pos].matches('\n').count() + 1);
                let krate = match owners.as_slice() {
                    [] => continue,
                    [one] => one.as_str(),
                    many => {
                        problems
                            .push(format!("{at}: .{method}() is an operation of several SDKs the file uses: {many:?}"));
                        continue;
                    }
                };
                let op = &ops.0[krate][method];
                let Some((_, prefix)) = SERVICES.iter().find(|(c, _)| *c == krate) else {
                    problems.push(format!("{at}: {krate} has no IAM prefix in sdk_calls::SERVICES"));
                    continue;
                };
                let key = format!("{prefix}:{op}");
                let actions: Vec<String> = if key == "dynamodb:TransactWriteItems" {
                    let a = transaction_actions(&running);
                    if a.is_empty() {
                        problems.push(format!("{at}: TransactWriteItems whose items (Put/Update/Delete/ConditionCheck::builder()) are not in sight"));
                    }
                    a
                } else {
                    match ACTIONS.iter().find(|(k, _)| *k == key) {
                        Some((_, list)) => list.iter().map(|a| a.to_string()).collect(),
                        None => vec![key.clone()],
                    }
                };
                for action in actions {
                    out.push(Call { action, operation: format!("{prefix} {op}"), at: at.clone() });
                }
            }
        }
    }
    out.sort();
    out.dedup();
    (out, problems)
}

/// TransactWriteItems is authorised per item: the actions of the item kinds built beside it.
fn transaction_actions(scope: &str) -> Vec<String> {
    [("Put", "PutItem"), ("Update", "UpdateItem"), ("Delete", "DeleteItem"), ("ConditionCheck", "ConditionCheckItem")]
        .iter()
        .filter(|(kind, _)| {
            scope.match_indices(&format!("{kind}::builder()")).any(|(p, _)| !ident_char_before(scope, p))
        })
        .map(|(_, action)| format!("dynamodb:{action}"))
        .collect()
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn ident_char_before(s: &str, pos: usize) -> bool {
    s[..pos].chars().next_back().is_some_and(is_ident)
}

/// `.method()` calls with no arguments (an SDK operation's fluent builder): (offset, method).
fn empty_calls(code: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    for (pos, _) in code.match_indices("()") {
        let before = &code[..pos];
        let name_len = before.chars().rev().take_while(|c| is_ident(*c)).count();
        let name_start = pos - name_len;
        if name_len > 0 && before[..name_start].trim_end().ends_with('.') {
            out.push((name_start, &code[name_start..pos]));
        }
    }
    out
}

/// One `fn` of a file: its name, whether other files can call it (`pub`, or a trait impl's),
/// and its body's byte range.
struct FnDef {
    name: String,
    exported: bool,
    /// The type of the `impl` block it is a method of: callable only where that type is used.
    self_type: Option<String>,
    body: (usize, usize),
}

fn fns(code: &str) -> Vec<FnDef> {
    // impl blocks: (body range, self type, whether a trait's: its methods are called from
    // outside through the trait).
    let mut impls: Vec<((usize, usize), String, bool)> = Vec::new();
    for (pos, _) in code.match_indices("impl") {
        let after = code[pos + 4..].chars().next();
        if ident_char_before(code, pos) || !matches!(after, Some(' ' | '<')) {
            continue;
        }
        let Some(open) = code[pos..].find('{').map(|o| pos + o) else { continue };
        let header = &code[pos..open];
        if header.contains(';') {
            continue;
        }
        if let Some(close) = matching_close(&code[open + 1..], '{', '}') {
            let is_trait = header.contains(" for ");
            let ty = match header.split(" for ").nth(1) {
                Some(t) => t,
                None => skip_generics(header["impl".len()..].trim_start()),
            };
            let ty: String = ty.trim_start().chars().take_while(|c| is_ident(*c)).collect();
            impls.push(((open, open + 1 + close), ty, is_trait));
        }
    }
    let mut out = Vec::new();
    for (pos, _) in code.match_indices("fn ") {
        if ident_char_before(code, pos) {
            continue;
        }
        let name: String = code[pos + 3..].chars().take_while(|c| is_ident(*c)).collect();
        if name.is_empty() {
            continue;
        }
        let sig = &code[pos..];
        let Some(end) = sig.find(['{', ';']) else { continue };
        if sig.as_bytes()[end] == b';' {
            continue; // a trait's declaration: no body
        }
        let open = pos + end;
        let Some(close) = matching_close(&code[open + 1..], '{', '}') else { continue };
        let line_start = code[..pos].rfind(['\n', '}', ';']).map_or(0, |i| i + 1);
        let owner = impls.iter().find(|((s, e), _, _)| *s < pos && pos < *e);
        let exported = code[line_start..pos].contains("pub") || owner.is_some_and(|(_, _, is_trait)| *is_trait);
        let self_type = owner.map(|(_, ty, _)| ty.clone());
        out.push(FnDef { name, exported, self_type, body: (open, open + 1 + close) });
    }
    out
}

/// `header` without the leading `<..>` of `impl<T: X> ..`.
fn skip_generics(header: &str) -> &str {
    match header.strip_prefix('<') {
        Some(rest) => matching_close(rest, '<', '>').map_or(rest, |c| &rest[c + 1..]),
        None => header,
    }
}

/// Whether `code` names `ident` as a whole identifier.
fn names(code: &str, ident: &str) -> bool {
    code.match_indices(ident)
        .any(|(p, _)| !ident_char_before(code, p) && !code[p + ident.len()..].starts_with(is_ident))
}

/// Whether `code` calls a function named `name` (`name(`, `.name(`, `::name(`, not `fn name(`).
fn calls_fn(code: &str, name: &str) -> bool {
    code.match_indices(name).any(|(p, _)| {
        let after = &code[p + name.len()..];
        (after.starts_with('(') || after.starts_with("::<"))
            && !ident_char_before(code, p)
            && !code[..p].trim_end().ends_with("fn")
    })
}

/// The byte ranges of the functions of `code` that run: the exported ones `others` call by name
/// (a method only where `others` also name its type: the binary constructs or uses the adapter),
/// and what those call in the same file, transitively.
fn reachable(code: &str, others: &[&str]) -> Vec<(usize, usize)> {
    let defs = fns(code);
    let mut live: BTreeSet<usize> = BTreeSet::new();
    let mut queue: Vec<usize> = defs
        .iter()
        .enumerate()
        .filter(|(_, d)| {
            d.exported
                && others.iter().any(|o| calls_fn(o, &d.name))
                && d.self_type.as_ref().is_none_or(|t| others.iter().any(|o| names(o, t)))
        })
        .map(|(i, _)| i)
        .collect();
    while let Some(i) = queue.pop() {
        if !live.insert(i) {
            continue;
        }
        let body = &code[defs[i].body.0..defs[i].body.1];
        for (j, d) in defs.iter().enumerate() {
            if !live.contains(&j) && calls_fn(body, &d.name) {
                queue.push(j);
            }
        }
    }
    live.into_iter().map(|i| defs[i].body).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops() -> SdkOperations {
        let mut m = BTreeMap::new();
        let ddb: BTreeMap<String, String> = [
            ("put_item", "PutItem"),
            ("delete_item", "DeleteItem"),
            ("query", "Query"),
            ("transact_write_items", "TransactWriteItems"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        m.insert("aws_sdk_dynamodb".to_string(), ddb);
        SdkOperations(m)
    }

    fn actions(files: &[BinaryFile]) -> Vec<String> {
        let (calls, problems) = calls(files, &ops());
        assert!(problems.is_empty(), "{problems:?}");
        calls.into_iter().map(|c| c.action).collect::<BTreeSet<_>>().into_iter().collect()
    }

    const ADAPTER: &str = r#"
        pub struct Store { client: aws_sdk_dynamodb::Client }
        impl Store {
            pub async fn claim(&self) { self.client.put_item().send().await; }
            pub async fn release(&self) { self.forget().await }
            async fn forget(&self) { self.client.delete_item().send().await; }
            pub async fn feedback(&self) {
                let put = Put::builder().build();
                self.client.transact_write_items().send().await;
            }
        }
        #[async_trait]
        impl Port for Store {
            async fn read(&self) { self.client.query().send().await; }
        }
        #[cfg(test)]
        mod tests { fn t() { c.delete_item(); } }
    "#;

    fn adapter_used_by(binary_code: &str) -> Vec<String> {
        actions(&[
            ("functions/x/src/main.rs".into(), binary_code.into(), true),
            ("shared/src/aws/store.rs".into(), ADAPTER.into(), false),
        ])
    }

    #[test]
    fn a_shared_adapter_counts_only_in_the_functions_a_binary_calls() {
        let s = "let s = Store::new(c);";
        assert_eq!(adapter_used_by(&format!("{s} s.claim().await;")), vec!["dynamodb:PutItem"]);
        // Private helpers follow their callers; trait methods are called through the port.
        assert_eq!(
            adapter_used_by(&format!("{s} s.release().await; port.read().await;")),
            vec!["dynamodb:DeleteItem", "dynamodb:Query"]
        );
        // A transaction needs the actions of the items it writes.
        assert_eq!(adapter_used_by(&format!("{s} s.feedback().await")), vec!["dynamodb:PutItem"]);
        // A definition is not a call; a method of a type the binary never names is not called.
        assert!(adapter_used_by("fn claim() {}").is_empty());
        assert!(adapter_used_by("fn main() { other.claim().await; port.read().await }").is_empty());
    }

    #[test]
    fn the_binarys_own_files_run_whole_and_need_an_sdk_in_sight() {
        let own = |t: &str| actions(&[("functions/x/src/a.rs".into(), t.into(), true)]);
        assert_eq!(own("fn f(c: &aws_sdk_dynamodb::Client) { c.query().send() }"), vec!["dynamodb:Query"]);
        // `.query()` of something that is not an SDK client, in a file that names no SDK.
        assert!(own("fn f() { url.query() }").is_empty());
    }
}
