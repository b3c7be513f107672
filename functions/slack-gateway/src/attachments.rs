//! Files in a turn: the user's uploads passed to the agent (Bedrock `sessionState.files`), the
//! agent's files shared in the thread.
//!
//! A file that cannot be passed on never costs the user their answer: the turn runs with the
//! files that could be passed, and the reply says in one line per file which one was skipped
//! and why. A file the agent returns that cannot be shared is logged and counted; the answer
//! already went out, so it never fails the turn.

use shared::domain::{AgentFile, ThreadRef};
use shared::ports::{
    AgentError, AgentErrorKind, AgentInputFile, AgentRequest, FileFetchError, FileTransfer, FileUseCase,
};
use shared::slack::mrkdwn::escape;
use shared::telemetry::Metrics;
use tracing::{error, info, warn};

use crate::work::SlackFile;

/// Bedrock's limit on inline files in one request.
pub const BEDROCK_MAX_FILES: usize = 5;
/// Bedrock's limit on the inline files' total size (10 MB, as `ByteContentFile.data` documents it).
pub const BEDROCK_MAX_TOTAL_BYTES: u64 = 10_485_760;

/// File types Bedrock Agents documents for attached files, with the media type each is sent as.
const SUPPORTED: &[(&str, &str)] = &[
    ("csv", "text/csv"),
    ("xls", "application/vnd.ms-excel"),
    ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    ("json", "application/json"),
    ("yaml", "application/yaml"),
    ("yml", "application/yaml"),
    ("doc", "application/msword"),
    ("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    ("html", "text/html"),
    ("htm", "text/html"),
    ("md", "text/markdown"),
    ("txt", "text/plain"),
    ("pdf", "application/pdf"),
];
/// How the supported types are named to users.
const SUPPORTED_IN_WORDS: &str = "CSV, Excel, JSON, YAML, Word, HTML, Markdown, text and PDF";

/// Limits on the files passed to the agent (FILES_MAX_COUNT, FILES_MAX_TOTAL_BYTES,
/// FILES_USE_CASE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSettings {
    /// Files passed per message; 0 = files are not passed at all.
    pub max_count: usize,
    /// Total bytes passed per message (one file over it is skipped whole).
    pub max_total_bytes: u64,
    pub use_case: FileUseCase,
}

impl Default for FileSettings {
    fn default() -> Self {
        FileSettings {
            max_count: BEDROCK_MAX_FILES,
            max_total_bytes: BEDROCK_MAX_TOTAL_BYTES,
            use_case: FileUseCase::CodeInterpreter,
        }
    }
}

impl FileSettings {
    /// Reads the limits; values above Bedrock's own fail init (Bedrock would refuse the turn).
    pub fn from_env() -> shared::Result<Self> {
        use shared::config::{optional, parsed};
        let d = FileSettings::default();
        let max_count: usize = parsed("FILES_MAX_COUNT", d.max_count)?;
        if max_count > BEDROCK_MAX_FILES {
            return Err(shared::Error::Config(format!(
                "FILES_MAX_COUNT is {max_count}; Bedrock takes at most {BEDROCK_MAX_FILES} files per request"
            )));
        }
        let max_total_bytes: u64 = parsed("FILES_MAX_TOTAL_BYTES", d.max_total_bytes)?;
        if max_total_bytes == 0 || max_total_bytes > BEDROCK_MAX_TOTAL_BYTES {
            return Err(shared::Error::Config(format!(
                "FILES_MAX_TOTAL_BYTES is {max_total_bytes}; it must be between 1 and Bedrock's {BEDROCK_MAX_TOTAL_BYTES}"
            )));
        }
        let use_case = match optional("FILES_USE_CASE") {
            None => d.use_case,
            Some(v) => v.parse().map_err(|e| shared::Error::Config(format!("FILES_USE_CASE: {e}")))?,
        };
        Ok(FileSettings { max_count, max_total_bytes, use_case })
    }
}

/// The user's files as far as they can be passed to the agent.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FilesIn {
    pub files: Vec<AgentInputFile>,
    /// One line per skipped file, for the reply.
    pub notes: Vec<String>,
}

/// Downloads the message's files within the limits; every file not passed gets a note.
pub async fn gather(
    files: &[SlackFile],
    transfer: &dyn FileTransfer,
    settings: &FileSettings,
    metrics: &Metrics,
    event_id: &str,
) -> FilesIn {
    let mut out = FilesIn::default();
    let mut used: u64 = 0;
    for file in files {
        let name = file.display_name();
        let skip = |why: String| skipped_note(&name, &why);
        if settings.max_count == 0 {
            out.notes.push(skip("this assistant doesn't take files".into()));
            continue;
        }
        if out.files.len() >= settings.max_count {
            out.notes.push(skip(format!("I can take at most {} files per message", settings.max_count)));
            continue;
        }
        let Some((ext, media_type)) = file_type(file) else {
            out.notes.push(skip(format!("I can only read {SUPPORTED_IN_WORDS} files")));
            continue;
        };
        let remaining = settings.max_total_bytes.saturating_sub(used);
        if let Some(size) = file.size.filter(|s| *s > remaining) {
            out.notes.push(skip(too_large(Some(size), used, settings.max_total_bytes)));
            continue;
        }
        let Some(url) = file.download_url() else {
            out.notes.push(skip("Slack didn't share a download link for it".into()));
            continue;
        };
        let downloaded = match transfer.download(url, remaining).await {
            Ok(d) if looks_like_a_login_page(d.content_type.as_deref(), media_type) => Err(FileFetchError::NotAFile),
            other => other,
        };
        let bytes = match downloaded {
            Ok(d) => d.bytes,
            Err(e) => {
                warn!(event_id, file_id = %file.id, error = %e, "user file not passed to the agent");
                let why = match e {
                    FileFetchError::NotAllowed(_) => {
                        "it isn't stored on Slack's file servers, so I didn't fetch it".into()
                    }
                    // Slack's declared size fitted, the body did not: its real size is unknown.
                    FileFetchError::TooLarge { .. } => too_large(None, used, settings.max_total_bytes),
                    FileFetchError::NotAFile => {
                        "Slack didn't let me download it (the app may lack the files:read scope)".into()
                    }
                    FileFetchError::Http(_) | FileFetchError::Transport(_) | FileFetchError::TooManyRedirects => {
                        metrics.count_with_total("APIErrors", 1.0, &[("ErrorCode", "SlackFileDownload")]);
                        "downloading it from Slack failed".into()
                    }
                };
                out.notes.push(skip(why));
                continue;
            }
        };
        if bytes.is_empty() {
            out.notes.push(skip("it is empty".into()));
            continue;
        }
        used += bytes.len() as u64;
        let agent_name = unique_name(&safe_name(&name, &file.id, ext), &out.files);
        out.files.push(AgentInputFile {
            name: agent_name,
            media_type: media_type.to_string(),
            bytes,
            use_case: settings.use_case,
        });
    }
    if !files.is_empty() {
        info!(event_id, attached = files.len(), passed = out.files.len(), bytes = used, "user files prepared");
    }
    out
}

/// The input text when the message had no text of its own, only files.
pub fn input_or_placeholder(input: String, files: &FilesIn) -> String {
    if !input.trim().is_empty() {
        return input;
    }
    if files.files.is_empty() {
        return "The user sent files that could not be passed on. Tell them you received no readable file.".into();
    }
    let names: Vec<&str> = files.files.iter().map(|f| f.name.as_str()).collect();
    format!("The user attached {} without a message. Look at it and summarise what it contains.", names.join(", "))
}

/// When the agent refused a request that carried files (e.g. a code interpreter that is not
/// enabled), drops the files so the turn can run again without them, and says so.
pub fn drop_files_after_rejection(error: &AgentError, request: &mut AgentRequest) -> Option<String> {
    if error.kind != AgentErrorKind::Rejected || request.files.is_empty() {
        return None;
    }
    let names: Vec<String> = request.files.drain(..).map(|f| format!("`{}`", backtick_safe(&f.name))).collect();
    warn!(code = %error.code, files = names.len(), "agent refused the request with files; retrying without them");
    Some(format!("The assistant couldn't take {} ({}), so I answered without them.", names.join(", "), error.code))
}

/// The budget notice (if any) and the file notes, as one notice under the answer.
pub fn with_notes(notice: Option<String>, notes: &[String]) -> Option<String> {
    let lines: Vec<String> = notice.into_iter().chain(notes.iter().cloned()).collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// Shares every file the agent returned in the thread; failures are logged and counted,
/// never returned. Returns how many were shared.
pub async fn share(
    files: &[AgentFile],
    thread: &ThreadRef,
    transfer: &dyn FileTransfer,
    metrics: &Metrics,
    event_id: &str,
) -> usize {
    let mut shared_count = 0;
    for (i, file) in files.iter().enumerate() {
        if file.bytes.is_empty() {
            warn!(event_id, index = i, "agent returned an empty file; not shared");
            continue;
        }
        let name = output_name(file, i);
        match transfer.upload(&thread.channel_id, &thread.thread_ts, &name, &file.bytes).await {
            Ok(file_id) => {
                shared_count += 1;
                info!(event_id, file_id = %file_id, bytes = file.bytes.len(), "agent file shared in the thread");
            }
            Err(e) => {
                metrics.count_with_total("APIErrors", 1.0, &[("ErrorCode", "SlackFileUpload")]);
                error!(event_id, error = %e, bytes = file.bytes.len(), "could not share the agent's file in the thread");
            }
        }
    }
    shared_count
}

fn skipped_note(name: &str, why: &str) -> String {
    format!("Skipped `{}`: {why}.", backtick_safe(name))
}

/// A name inside a code span: Slack markup escaped, no backtick to end the span early.
fn backtick_safe(name: &str) -> String {
    escape(&name.replace('`', "'"))
}

/// Why a file does not fit: its own size (when known) or the files before it.
fn too_large(size: Option<u64>, used: u64, limit: u64) -> String {
    match size {
        Some(s) if used > 0 && s <= limit => {
            format!("with the other files it passes the {} per message limit", human(limit))
        }
        None if used > 0 => format!("with the other files it passes the {} per message limit", human(limit)),
        Some(s) => format!("it is {}; files can be at most {} per message", human(s), human(limit)),
        None => format!("it is larger than the {} per message limit", human(limit)),
    }
}

fn human(bytes: u64) -> String {
    const MB: f64 = 1024.0 * 1024.0;
    match bytes {
        b if b >= 1024 * 1024 => format!("{:.1} MB", b as f64 / MB),
        b if b >= 1024 => format!("{} KB", b.div_ceil(1024)),
        b => format!("{b} bytes"),
    }
}

/// The file's supported extension and media type, from its name, else Slack's filetype.
fn file_type(file: &SlackFile) -> Option<(&'static str, &'static str)> {
    let from_name = file.name.as_deref().and_then(|n| n.rsplit_once('.')).map(|(_, ext)| ext.to_ascii_lowercase());
    let from_slack = file.filetype.as_deref().map(|t| match t.to_ascii_lowercase().as_str() {
        "text" => "txt".to_string(),
        "markdown" => "md".to_string(),
        other => other.to_string(),
    });
    [from_name, from_slack].into_iter().flatten().find_map(|ext| SUPPORTED.iter().find(|(e, _)| *e == ext).copied())
}

/// Slack answers a download without the right scope with its sign-in page (200, HTML).
fn looks_like_a_login_page(content_type: Option<&str>, expected: &str) -> bool {
    expected != "text/html" && content_type.is_some_and(|c| c.trim().to_ascii_lowercase().starts_with("text/html"))
}

/// A file name without directories or control characters, with its extension.
fn safe_name(name: &str, id: &str, ext: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let clean: String = base.chars().filter(|c| !c.is_control()).collect::<String>().trim().to_string();
    let clean = clean.trim_start_matches('.').to_string();
    if clean.is_empty() || clean.starts_with("file ") && clean.ends_with(id) {
        return format!("{id}.{ext}");
    }
    if clean.to_ascii_lowercase().ends_with(&format!(".{ext}")) {
        clean
    } else {
        format!("{clean}.{ext}")
    }
}

/// `name`, or `name-2.ext`... when an earlier file took it (the sandbox would overwrite it).
fn unique_name(name: &str, taken: &[AgentInputFile]) -> String {
    let used = |n: &str| taken.iter().any(|f| f.name == n);
    if !used(name) {
        return name.to_string();
    }
    let (stem, ext) = name.rsplit_once('.').unwrap_or((name, ""));
    (2..)
        .map(|i| if ext.is_empty() { format!("{stem}-{i}") } else { format!("{stem}-{i}.{ext}") })
        .find(|n| !used(n))
        .unwrap_or_else(|| name.to_string())
}

/// The agent's file name, or one made from its media type when it sent none.
fn output_name(file: &AgentFile, index: usize) -> String {
    let base = file.name.rsplit(['/', '\\']).next().unwrap_or_default().trim();
    if !base.is_empty() {
        return base.to_string();
    }
    let ext = match file.media_type.as_str() {
        "image/png" => "png",
        "image/jpeg" => "jpg",
        "image/svg+xml" => "svg",
        "text/csv" => "csv",
        "application/json" => "json",
        "application/pdf" => "pdf",
        "text/html" => "html",
        "text/plain" => "txt",
        _ => "bin",
    };
    format!("agent-file-{}.{ext}", index + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::Mutex;

    use async_trait::async_trait;
    use shared::ports::{ChatError, DownloadedFile};

    /// (channel, thread ts, file name, bytes) of one upload.
    type Upload = (String, String, String, Vec<u8>);

    /// Serves files by URL, records what was asked.
    #[derive(Default)]
    struct Files {
        by_url: HashMap<String, std::result::Result<DownloadedFile, FileFetchError>>,
        asked: Mutex<Vec<(String, u64)>>,
        uploads: Mutex<Vec<Upload>>,
        fail_uploads: bool,
    }

    #[async_trait]
    impl FileTransfer for Files {
        async fn download(&self, url: &str, max: u64) -> std::result::Result<DownloadedFile, FileFetchError> {
            self.asked.lock().unwrap().push((url.to_string(), max));
            let r = self.by_url.get(url).cloned().unwrap_or(Err(FileFetchError::Http(404)))?;
            if r.bytes.len() as u64 > max {
                return Err(FileFetchError::TooLarge { limit: max });
            }
            Ok(r)
        }

        async fn upload(&self, channel: &str, ts: &str, name: &str, bytes: &[u8]) -> Result<String, ChatError> {
            if self.fail_uploads {
                return Err(ChatError { method: "files.completeUploadExternal", error: "not_in_channel".into() });
            }
            self.uploads.lock().unwrap().push((channel.into(), ts.into(), name.into(), bytes.to_vec()));
            Ok("F1".into())
        }
    }

    fn file(id: &str, name: &str, size: u64) -> SlackFile {
        SlackFile {
            id: id.into(),
            name: Some(name.into()),
            size: Some(size),
            url_private_download: Some(format!("https://files.slack.com/{id}/{name}")),
            ..SlackFile::default()
        }
    }

    fn served(files: &[(&SlackFile, &[u8])]) -> Files {
        let mut f = Files::default();
        for (sf, bytes) in files {
            let d = DownloadedFile { bytes: bytes.to_vec(), content_type: Some("application/octet-stream".into()) };
            f.by_url.insert(sf.download_url().unwrap().to_string(), Ok(d));
        }
        f
    }

    fn metrics() -> Metrics {
        Metrics::capture("Test").0
    }

    #[tokio::test]
    async fn passes_supported_files_and_explains_each_skip() {
        let csv = file("F1", "q3.csv", 8);
        let png = file("F2", "chart.png", 8);
        let big = file("F3", "huge.pdf", 2_000);
        let gone = SlackFile { url_private_download: None, ..file("F4", "notes.txt", 3) };
        let same = file("F5", "q3.csv", 4);
        let transfer = served(&[(&csv, b"a,b\n1,2\n"), (&same, b"x,y\n")]);
        let settings = FileSettings { max_count: 5, max_total_bytes: 1_000, use_case: FileUseCase::Chat };
        let out = gather(&[csv, png, big, gone, same], &transfer, &settings, &metrics(), "E1").await;

        assert_eq!(out.files.len(), 2);
        assert_eq!(out.files[0].name, "q3.csv");
        assert_eq!(out.files[0].bytes, b"a,b\n1,2\n");
        assert_eq!(out.files[0].media_type, "text/csv");
        assert_eq!(out.files[0].use_case, FileUseCase::Chat);
        assert_eq!(out.files[1].name, "q3-2.csv", "a second file of the same name must not overwrite the first");
        assert_eq!(out.notes.len(), 3, "{:?}", out.notes);
        assert!(out.notes[0].contains("`chart.png`") && out.notes[0].contains("CSV"), "{}", out.notes[0]);
        assert!(out.notes[1].contains("`huge.pdf`") && out.notes[1].contains("1000 bytes"), "{}", out.notes[1]);
        assert!(out.notes[2].contains("`notes.txt`") && out.notes[2].contains("download link"), "{}", out.notes[2]);
        // Only the two passed files were fetched, each with the budget left.
        let asked = transfer.asked.lock().unwrap().clone();
        assert_eq!(asked.len(), 2);
        assert_eq!(asked[1].1, 1_000 - 8);
    }

    #[tokio::test]
    async fn count_limit_and_disabled_files() {
        let files: Vec<SlackFile> = (0..4).map(|i| file(&format!("F{i}"), &format!("f{i}.txt"), 1)).collect();
        let pairs: Vec<(&SlackFile, &[u8])> = files.iter().map(|f| (f, &b"x"[..])).collect();
        let transfer = served(&pairs);
        let two = FileSettings { max_count: 2, ..FileSettings::default() };
        let out = gather(&files, &transfer, &two, &metrics(), "E").await;
        assert_eq!(out.files.len(), 2);
        assert_eq!(out.notes.len(), 2);
        assert!(out.notes.iter().all(|n| n.contains("at most 2 files")), "{:?}", out.notes);

        let off = FileSettings { max_count: 0, ..FileSettings::default() };
        let out = gather(&files[..1], &transfer, &off, &metrics(), "E").await;
        assert!(out.files.is_empty() && out.notes[0].contains("doesn't take files"));
    }

    #[tokio::test]
    async fn download_failures_become_notes_not_errors() {
        let outside = file("F1", "a.csv", 3);
        let login = file("F2", "b.csv", 3);
        let broken = file("F3", "c.csv", 3);
        let liar = SlackFile { size: Some(1), ..file("F4", "d.csv", 1) };
        let empty = file("F5", "e.csv", 0);
        let mut transfer = Files::default();
        let url = |f: &SlackFile| f.download_url().unwrap().to_string();
        transfer.by_url.insert(url(&outside), Err(FileFetchError::NotAllowed("host x".into())));
        transfer.by_url.insert(
            url(&login),
            Ok(DownloadedFile { bytes: b"<html>".to_vec(), content_type: Some("text/html; charset=utf-8".into()) }),
        );
        transfer.by_url.insert(url(&broken), Err(FileFetchError::Transport("timeout")));
        transfer.by_url.insert(url(&liar), Ok(DownloadedFile { bytes: vec![b'x'; 50], content_type: None }));
        transfer.by_url.insert(url(&empty), Ok(DownloadedFile { bytes: vec![], content_type: None }));
        let settings = FileSettings { max_total_bytes: 10, ..FileSettings::default() };
        let (m, emf) = Metrics::capture("Test");
        let out = gather(&[outside, login, broken, liar, empty], &transfer, &settings, &m, "E").await;
        assert!(out.files.is_empty());
        let notes = out.notes.join("\n");
        assert!(notes.contains("isn't stored on Slack's file servers"), "{notes}");
        assert!(notes.contains("files:read"), "{notes}");
        assert!(notes.contains("downloading it from Slack failed"), "{notes}");
        assert!(notes.contains("`d.csv`: it is larger than the 10 bytes per message limit"), "{notes}");
        assert!(notes.contains("`e.csv`: it is empty"), "{notes}");
        let docs = shared::telemetry::parse_emf(&emf.lock().unwrap());
        let errors: f64 =
            docs.iter().filter(|d| d["ErrorCode"] == "SlackFileDownload").filter_map(|d| d["APIErrors"].as_f64()).sum();
        assert_eq!(errors, 1.0, "only the transport failure is an API error");
    }

    #[test]
    fn names_types_and_texts() {
        assert_eq!(safe_name("../../etc/passwd.csv", "F1", "csv"), "passwd.csv");
        assert_eq!(safe_name("report", "F1", "pdf"), "report.pdf");
        assert_eq!(safe_name("file F1", "F1", "txt"), "F1.txt");
        assert_eq!(safe_name(".hidden.md", "F1", "md"), "hidden.md");
        let by_type =
            SlackFile { name: Some("Untitled".into()), filetype: Some("text".into()), ..SlackFile::default() };
        assert_eq!(file_type(&by_type), Some(("txt", "text/plain")));
        assert_eq!(
            file_type(&SlackFile { name: Some("A.XLSX".into()), ..SlackFile::default() }).map(|t| t.0),
            Some("xlsx")
        );
        assert_eq!(file_type(&SlackFile { name: Some("x.exe".into()), ..SlackFile::default() }), None);
        assert!(skipped_note("a`b<c>.csv", "why").contains("`a'b&lt;c&gt;.csv`"));
        assert_eq!(with_notes(None, &[]), None);
        assert_eq!(with_notes(Some("budget".into()), &["a".into()]).as_deref(), Some("budget\na"));
        assert_eq!(input_or_placeholder("hi".into(), &FilesIn::default()), "hi");
        let files = FilesIn {
            files: vec![AgentInputFile {
                name: "q.csv".into(),
                media_type: "text/csv".into(),
                bytes: vec![1],
                use_case: FileUseCase::Chat,
            }],
            notes: vec![],
        };
        assert!(input_or_placeholder(" ".into(), &files).contains("q.csv"));
        assert_eq!(
            output_name(&AgentFile { name: "".into(), media_type: "image/png".into(), bytes: vec![] }, 0),
            "agent-file-1.png"
        );
        assert_eq!(
            output_name(&AgentFile { name: "/tmp/out.csv".into(), media_type: "".into(), bytes: vec![] }, 0),
            "out.csv"
        );
        assert_eq!(human(10 * 1024 * 1024), "10.0 MB");
        assert_eq!(human(1500), "2 KB");
    }

    #[test]
    fn limits_above_bedrocks_fail_init_naming_the_variable() {
        // The only test that touches these variables.
        let vars = ["FILES_MAX_COUNT", "FILES_MAX_TOTAL_BYTES", "FILES_USE_CASE"];
        assert_eq!(FileSettings::from_env().unwrap(), FileSettings::default());
        std::env::set_var("FILES_MAX_COUNT", "6");
        assert!(FileSettings::from_env().unwrap_err().to_string().contains("FILES_MAX_COUNT"));
        std::env::set_var("FILES_MAX_COUNT", "2");
        std::env::set_var("FILES_MAX_TOTAL_BYTES", "20000000");
        assert!(FileSettings::from_env().unwrap_err().to_string().contains("FILES_MAX_TOTAL_BYTES"));
        std::env::set_var("FILES_MAX_TOTAL_BYTES", "1000");
        std::env::set_var("FILES_USE_CASE", "sandbox");
        assert!(FileSettings::from_env().unwrap_err().to_string().contains("FILES_USE_CASE"));
        std::env::set_var("FILES_USE_CASE", "chat");
        let s = FileSettings::from_env().unwrap();
        for v in vars {
            std::env::remove_var(v);
        }
        assert_eq!(s, FileSettings { max_count: 2, max_total_bytes: 1000, use_case: FileUseCase::Chat });
    }

    #[test]
    fn a_rejected_request_with_files_retries_without_them() {
        let mut request = AgentRequest {
            files: vec![AgentInputFile {
                name: "q.csv".into(),
                media_type: "text/csv".into(),
                bytes: vec![1],
                use_case: FileUseCase::CodeInterpreter,
            }],
            ..AgentRequest::default()
        };
        let err = |kind| AgentError::new(kind, "ValidationException", "", vec![]);
        assert_eq!(drop_files_after_rejection(&err(AgentErrorKind::Throttled), &mut request), None);
        let note = drop_files_after_rejection(&err(AgentErrorKind::Rejected), &mut request).unwrap();
        assert!(note.contains("`q.csv`") && note.contains("ValidationException"), "{note}");
        assert!(request.files.is_empty());
        assert_eq!(drop_files_after_rejection(&err(AgentErrorKind::Rejected), &mut request), None);
    }

    #[tokio::test]
    async fn agent_files_are_shared_in_the_thread_and_failures_only_counted() {
        let thread = ThreadRef { team_id: "T".into(), channel_id: "C1".into(), thread_ts: "1.1".into() };
        let out = vec![
            AgentFile { name: "chart.png".into(), media_type: "image/png".into(), bytes: vec![1, 2, 3] },
            AgentFile { name: "empty.txt".into(), media_type: "text/plain".into(), bytes: vec![] },
        ];
        let ok = Files::default();
        assert_eq!(share(&out, &thread, &ok, &metrics(), "E").await, 1);
        let uploads = ok.uploads.lock().unwrap().clone();
        assert_eq!(uploads, vec![("C1".into(), "1.1".into(), "chart.png".into(), vec![1, 2, 3])]);

        let failing = Files { fail_uploads: true, ..Files::default() };
        let (m, emf) = Metrics::capture("Test");
        assert_eq!(share(&out, &thread, &failing, &m, "E").await, 0);
        let docs = shared::telemetry::parse_emf(&emf.lock().unwrap());
        assert!(docs.iter().any(|d| d["ErrorCode"] == "SlackFileUpload" && d["APIErrors"] == 1.0), "{docs:?}");
    }
}
