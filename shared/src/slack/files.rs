//! Users' Slack uploads in, the agent's files out.
//!
//! Downloads are the one place this product fetches a URL it did not build itself (it comes
//! from the event payload), with the bot token attached, so they pass an SSRF guard: only
//! `https` URLs on an allow-listed host (Slack's file hosts by default), no credentials in the
//! URL, redirects followed by hand and re-checked at every hop, the body size capped while it
//! streams, and a timeout. The token is only ever sent to a host that passed the check.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, LOCATION};
use reqwest::Url;
use secrecy::SecretString;

use crate::ports::{ChatError, DownloadedFile, FileFetchError, FileTransfer};
use crate::slack::client::{FileUpload, SlackWebClient};
use crate::Result;

/// Slack's file hosts: where `url_private` and `url_private_download` point.
pub const DEFAULT_FILE_HOSTS: &[&str] = &["files.slack.com", "files-edu.slack.com"];
/// A Slack download needs at most a redirect or two (e.g. to a regional host).
pub const MAX_REDIRECTS: usize = 3;
/// One request (headers and the whole body) of a download.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// One allowed host, with the port it must be reached on (`None` = the scheme's default).
#[derive(Debug, Clone, PartialEq, Eq)]
struct HostRule {
    /// As the URL parser normalises it: lower case, IPv6 in brackets.
    host: String,
    port: Option<u16>,
    loopback: bool,
}

/// The hosts user files may be downloaded from (SLACK_FILE_HOSTS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHosts {
    rules: Vec<HostRule>,
}

impl Default for FileHosts {
    fn default() -> Self {
        Self::slack()
    }
}

impl FileHosts {
    /// Slack's own file hosts, https only.
    pub fn slack() -> Self {
        let rules = DEFAULT_FILE_HOSTS
            .iter()
            .map(|h| HostRule { host: (*h).to_string(), port: None, loopback: false })
            .collect();
        FileHosts { rules }
    }

    /// Parses a comma-separated list of hosts, each optionally with `:port`
    /// (`files.slack.com,127.0.0.1:8080`). Names only: no scheme, path or credentials.
    pub fn parse(list: &str) -> std::result::Result<Self, String> {
        let mut rules = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry.contains(['/', '@', '?', '#', '\\']) || entry.chars().any(char::is_whitespace) {
                return Err(format!("{entry:?} is not a host name (give host or host:port, without scheme or path)"));
            }
            let url = Url::parse(&format!("https://{entry}/")).map_err(|e| format!("{entry:?} is not a host: {e}"))?;
            let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| format!("{entry:?} has no host"))?;
            // `Url` drops a port equal to the scheme's default; keep what was written.
            let port = match url.port() {
                Some(p) => Some(p),
                None if entry.ends_with(":443") => Some(443),
                None => None,
            };
            rules.push(HostRule { host: host.to_string(), port, loopback: is_loopback(&url) });
        }
        if rules.is_empty() {
            return Err("the list is empty".into());
        }
        Ok(FileHosts { rules })
    }

    /// Whether `url` may be fetched (with the bot token): an allowed host on its port, `https`
    /// (plain `http` only for a listed loopback host, i.e. local tests), no credentials.
    pub fn check(&self, url: &Url) -> std::result::Result<(), FileFetchError> {
        let refuse = |why: &str| Err(FileFetchError::NotAllowed(why.to_string()));
        if !url.username().is_empty() || url.password().is_some() {
            return refuse("credentials in the URL");
        }
        let Some(host) = url.host_str() else { return refuse("no host") };
        let Some(rule) = self.rules.iter().find(|r| r.host == host) else {
            return refuse(&format!("host {host} is not an allowed file host"));
        };
        match url.scheme() {
            "https" => {}
            "http" if rule.loopback => {}
            "http" => return refuse("plain http"),
            _ => return refuse("not an http(s) URL"),
        }
        let port_ok = match rule.port {
            Some(p) => url.port_or_known_default() == Some(p),
            None => url.port().is_none(),
        };
        if !port_ok {
            return refuse(&format!("port {} of {host} is not allowed", url.port_or_known_default().unwrap_or(0)));
        }
        Ok(())
    }
}

fn is_loopback(url: &Url) -> bool {
    let host = url.host_str().unwrap_or_default();
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

/// Downloads users' files from Slack with the bot token, behind [`FileHosts`].
pub struct SlackFileFetcher {
    http: reqwest::Client,
    /// `Bearer <token>`, marked sensitive so it is never shown in debug output.
    authorization: HeaderValue,
    hosts: FileHosts,
}

impl std::fmt::Debug for SlackFileFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackFileFetcher").field("hosts", &self.hosts).finish_non_exhaustive()
    }
}

impl SlackFileFetcher {
    /// A fetcher sending `bot_token` to `hosts` only.
    pub fn new(bot_token: &SecretString, hosts: FileHosts) -> Result<Self> {
        let authorization = crate::slack::client::bearer(bot_token)?;
        // Every redirect is re-checked against the allow-list before it is followed.
        let http = crate::http::client(
            "Slack file",
            crate::slack::client::USER_AGENT,
            Some(DOWNLOAD_TIMEOUT),
            crate::http::Redirects::Manual,
        )?;
        Ok(SlackFileFetcher { http, authorization, hosts })
    }

    /// Downloads `url`, refusing anything the allow-list does not cover and any body over
    /// `max_bytes`.
    pub async fn fetch(&self, url: &str, max_bytes: u64) -> std::result::Result<DownloadedFile, FileFetchError> {
        let mut url = Url::parse(url).map_err(|_| FileFetchError::NotAllowed("not a URL".into()))?;
        for _hop in 0..=MAX_REDIRECTS {
            self.hosts.check(&url)?;
            let response = self
                .http
                .get(url.clone())
                .header(AUTHORIZATION, self.authorization.clone())
                .send()
                .await
                .map_err(transport)?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or(FileFetchError::Http(status.as_u16()))?;
                url =
                    url.join(location).map_err(|_| FileFetchError::NotAllowed("redirect to an invalid URL".into()))?;
                continue;
            }
            if !status.is_success() {
                return Err(FileFetchError::Http(status.as_u16()));
            }
            return read_limited(response, max_bytes).await;
        }
        Err(FileFetchError::TooManyRedirects)
    }
}

/// Reads the body, failing as soon as it passes `max_bytes` (Content-Length may be absent or
/// wrong, so it is only an early answer).
async fn read_limited(
    mut response: reqwest::Response,
    max_bytes: u64,
) -> std::result::Result<DownloadedFile, FileFetchError> {
    let too_large = FileFetchError::TooLarge { limit: max_bytes };
    if response.content_length().is_some_and(|len| len > max_bytes) {
        return Err(too_large);
    }
    let content_type = response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let capacity = response.content_length().unwrap_or(0).min(max_bytes);
    let mut bytes = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if (bytes.len() + chunk.len()) as u64 > max_bytes {
            return Err(too_large);
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(DownloadedFile { bytes, content_type })
}

/// Only the kind: not even the error's text (without the URL) is kept for a file download.
fn transport(err: reqwest::Error) -> FileFetchError {
    FileFetchError::Transport(crate::http::Transport::from(err).kind())
}

/// [`FileTransfer`] over Slack: guarded downloads, uploads with the external upload flow.
pub struct SlackFiles {
    fetcher: SlackFileFetcher,
    web: Arc<SlackWebClient>,
}

impl SlackFiles {
    /// Downloads through `fetcher`, uploads through `web`.
    pub fn new(fetcher: SlackFileFetcher, web: Arc<SlackWebClient>) -> Self {
        SlackFiles { fetcher, web }
    }
}

#[async_trait]
impl FileTransfer for SlackFiles {
    async fn download(&self, url: &str, max_bytes: u64) -> std::result::Result<DownloadedFile, FileFetchError> {
        self.fetcher.fetch(url, max_bytes).await
    }

    async fn upload(
        &self,
        channel: &str,
        thread_ts: &str,
        filename: &str,
        bytes: &[u8],
    ) -> std::result::Result<String, ChatError> {
        let thread_ts = (!thread_ts.is_empty()).then_some(thread_ts);
        let upload = FileUpload { channel, filename, title: filename, bytes, initial_comment: None, thread_ts };
        self.web.upload_file(upload).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    const TOKEN: &str = "xoxb-files-unit-test";

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn not_allowed(r: std::result::Result<(), FileFetchError>) -> String {
        match r {
            Err(FileFetchError::NotAllowed(why)) => why,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn default_hosts_allow_only_slack_over_https() {
        let hosts = FileHosts::slack();
        hosts.check(&url("https://files.slack.com/files-pri/T1-F1/download/a.csv")).unwrap();
        hosts.check(&url("https://FILES.SLACK.COM/files-pri/T1-F1/a.csv")).unwrap();
        hosts.check(&url("https://files-edu.slack.com/files-pri/T1-F1/a.csv")).unwrap();
        assert!(not_allowed(hosts.check(&url("https://evil.example.com/a.csv"))).contains("evil.example.com"));
        not_allowed(hosts.check(&url("https://files.slack.com.evil.example/a.csv")));
        not_allowed(hosts.check(&url("https://slack.com/a.csv")));
        not_allowed(hosts.check(&url("https://169.254.169.254/latest/meta-data/")));
        not_allowed(hosts.check(&url("https://127.0.0.1/a.csv")));
        not_allowed(hosts.check(&url("https://[::1]/a.csv")));
        assert!(not_allowed(hosts.check(&url("http://files.slack.com/a.csv"))).contains("http"));
        not_allowed(hosts.check(&url("ftp://files.slack.com/a.csv")));
        assert!(not_allowed(hosts.check(&url("https://files.slack.com:8443/a.csv"))).contains("port"));
        assert!(not_allowed(hosts.check(&url("https://u:p@files.slack.com/a.csv"))).contains("credentials"));
        assert!(not_allowed(hosts.check(&url("https://u@files.slack.com/a.csv"))).contains("credentials"));
    }

    #[test]
    fn listed_hosts_ports_and_loopback_http() {
        let hosts = FileHosts::parse(" files.slack.com , 127.0.0.1:8080,[::1]:9000,localhost:7000").unwrap();
        hosts.check(&url("https://files.slack.com/a")).unwrap();
        hosts.check(&url("http://127.0.0.1:8080/files/a")).unwrap();
        hosts.check(&url("http://[::1]:9000/a")).unwrap();
        hosts.check(&url("http://localhost:7000/a")).unwrap();
        // Same loopback host, another port: another service.
        not_allowed(hosts.check(&url("http://127.0.0.1:8081/a")));
        not_allowed(hosts.check(&url("http://127.0.0.1/a")));
        // Loopback IPs not listed, spelled differently, stay refused.
        not_allowed(hosts.check(&url("http://127.0.0.2:8080/a")));
        not_allowed(hosts.check(&url("http://localhost:8080/a")));
        // A listed non-loopback host still needs https.
        let remote = FileHosts::parse("files.example.org:8443").unwrap();
        remote.check(&url("https://files.example.org:8443/a")).unwrap();
        not_allowed(remote.check(&url("http://files.example.org:8443/a")));
        not_allowed(remote.check(&url("https://files.example.org/a")));
        // An explicit :443 entry equals the default port.
        FileHosts::parse("files.example.org:443").unwrap().check(&url("https://files.example.org/a")).unwrap();
    }

    #[test]
    fn host_lists_are_validated() {
        for bad in ["", " , ", "https://files.slack.com", "files.slack.com/path", "u@files.slack.com", "a b", "h:99999"]
        {
            assert!(FileHosts::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// A one-shot-per-connection HTTP server: answers each request with the next canned
    /// response and records the request heads.
    struct Canned {
        addr: std::net::SocketAddr,
        seen: Arc<std::sync::Mutex<Vec<String>>>,
    }

    fn serve(responses: Vec<Vec<u8>>) -> Canned {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for response in responses {
                let Ok((mut stream, _)) = listener.accept() else { return };
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).map(|n| n == 1).unwrap_or(false) {
                    head.push(byte[0]);
                }
                log.lock().unwrap().push(String::from_utf8_lossy(&head).into_owned());
                let _ = stream.write_all(&response);
            }
        });
        Canned { addr, seen }
    }

    fn ok(body: &[u8], content_length: bool) -> Vec<u8> {
        let mut r = b"HTTP/1.1 200 OK\r\nContent-Type: text/csv\r\nConnection: close\r\n".to_vec();
        if content_length {
            r.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes());
        }
        r.extend_from_slice(b"\r\n");
        r.extend_from_slice(body);
        r
    }

    fn redirect(to: &str) -> Vec<u8> {
        format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").into_bytes()
    }

    fn fetcher(hosts: &str) -> SlackFileFetcher {
        SlackFileFetcher::new(&SecretString::from(TOKEN), FileHosts::parse(hosts).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn downloads_with_the_token_and_follows_allowed_redirects() {
        let server = serve(vec![redirect("/real/a.csv"), ok(b"a,b\n1,2\n", true)]);
        let f = fetcher(&server.addr.to_string());
        let got = f.fetch(&format!("http://{}/files/a.csv", server.addr), 1024).await.unwrap();
        assert_eq!(got.bytes, b"a,b\n1,2\n");
        assert_eq!(got.content_type.as_deref(), Some("text/csv"));
        let seen = server.seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        assert!(seen[1].starts_with("GET /real/a.csv"), "{}", seen[1]);
        assert!(seen.iter().all(|h| h.to_ascii_lowercase().contains(&format!("authorization: bearer {TOKEN}"))));
        assert!(!format!("{f:?}").contains(TOKEN));
    }

    #[tokio::test]
    async fn a_redirect_to_another_host_is_not_followed() {
        let other = serve(vec![ok(b"secret", true)]);
        let server = serve(vec![redirect(&format!("http://{}/x", other.addr))]);
        let f = fetcher(&server.addr.to_string());
        let err = f.fetch(&format!("http://{}/files/a.csv", server.addr), 1024).await.unwrap_err();
        assert!(matches!(err, FileFetchError::NotAllowed(_)), "{err:?}");
        assert!(other.seen.lock().unwrap().is_empty(), "the other host must never be contacted");
    }

    #[tokio::test]
    async fn other_hosts_are_never_contacted() {
        let other = serve(vec![ok(b"secret", true)]);
        let f = fetcher("files.slack.com");
        for u in [
            format!("http://{}/x", other.addr),
            format!("https://{}/x", other.addr),
            format!("http://user:pw@{}/x", other.addr),
        ] {
            assert!(matches!(f.fetch(&u, 1024).await, Err(FileFetchError::NotAllowed(_))), "{u}");
        }
        assert!(matches!(f.fetch("not a url", 1024).await, Err(FileFetchError::NotAllowed(_))));
        assert!(other.seen.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn oversized_bodies_are_refused_with_or_without_content_length() {
        let body = vec![b'x'; 4096];
        let server = serve(vec![ok(&body, true), ok(&body, false)]);
        let f = fetcher(&server.addr.to_string());
        let u = format!("http://{}/big", server.addr);
        assert_eq!(f.fetch(&u, 4095).await.unwrap_err(), FileFetchError::TooLarge { limit: 4095 });
        // No Content-Length: the limit holds while the body streams.
        assert_eq!(f.fetch(&u, 1000).await.unwrap_err(), FileFetchError::TooLarge { limit: 1000 });
    }

    #[tokio::test]
    async fn redirect_loops_and_error_statuses_end() {
        let loops: Vec<Vec<u8>> = (0..=MAX_REDIRECTS).map(|_| redirect("/again")).collect();
        let server = serve(loops);
        let f = fetcher(&server.addr.to_string());
        assert_eq!(
            f.fetch(&format!("http://{}/a", server.addr), 10).await.unwrap_err(),
            FileFetchError::TooManyRedirects
        );
        let missing = serve(vec![b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec()]);
        let f = fetcher(&missing.addr.to_string());
        assert_eq!(f.fetch(&format!("http://{}/a", missing.addr), 10).await.unwrap_err(), FileFetchError::Http(404));
    }
}
