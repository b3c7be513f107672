//! moto in server mode on a free loopback port, installed by `scripts/tools.sh` when missing.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace root (tests/ is one level below it).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// The directory holding the project's tools (moto_server, sam, cfn-lint, cargo-lambda).
/// `SLACKBR_TOOLS_BIN` wins; otherwise `scripts/tools.sh` installs them if needed.
pub fn tools_bin() -> std::io::Result<PathBuf> {
    if let Ok(p) = std::env::var("SLACKBR_TOOLS_BIN") {
        return Ok(PathBuf::from(p));
    }
    let out = Command::new("bash").arg(workspace_root().join("scripts/tools.sh")).stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        return Err(std::io::Error::other("scripts/tools.sh failed"));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// A running moto server. The process is stopped when this is dropped, and a watchdog stops it
/// when the test process exits (statics are never dropped).
pub struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    /// Starts moto_server (through `tests/moto/serve.py`, which serialises DynamoDB requests:
    /// see there) and waits until it answers. `MOTO_STDERR=path` keeps moto's request log and
    /// tracebacks in that file.
    pub fn start() -> std::io::Result<Moto> {
        Moto::start_with("serve.py", &[])
    }

    /// Starts moto through `tests/moto/<script>` with extra environment (e.g. `serve_iam.py`
    /// with INITIAL_NO_AUTH_ACTION_COUNT, which enforces IAM).
    pub fn start_with(script: &str, env: &[(&str, &str)]) -> std::io::Result<Moto> {
        let python = tools_bin()?.join("python3");
        let serve = workspace_root().join("tests/moto").join(script);
        let port = free_port()?;
        let parent = std::process::id();
        let stderr = match std::env::var_os("MOTO_STDERR") {
            Some(path) => Stdio::from(std::fs::File::create(path)?),
            None => Stdio::null(),
        };
        let child = Command::new(&python)
            .envs(env.iter().copied())
            .arg(&serve)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()?;
        // The watchdog ends moto when the test binary goes away, however it goes away (statics
        // are never dropped). It watches moto itself, so a dropped Moto leaves nothing behind.
        let watchdog = format!(
            "while kill -0 {parent} 2>/dev/null && kill -0 {m} 2>/dev/null; do sleep 1; done; kill {m} 2>/dev/null",
            m = child.id()
        );
        Command::new("sh")
            .arg("-c")
            .arg(watchdog)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let moto = Moto { child, port };
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(moto);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(std::io::Error::other("moto_server did not start within 60 s"))
    }

    /// The endpoint URL for AWS_ENDPOINT_URL / `endpoint_url`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// An SDK config pointed at this moto: region us-east-1, static test credentials.
    pub fn sdk_config(&self) -> aws_config::SdkConfig {
        sdk_config_for(&self.endpoint())
    }
}

/// An SDK config for an emulator endpoint.
pub fn sdk_config_for(endpoint: &str) -> aws_config::SdkConfig {
    use aws_config::{BehaviorVersion, Region};
    let creds = aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "tests");
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::SharedCredentialsProvider::new(creds))
        .build()
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Kill and reap moto itself (killing a wrapper shell once left moto orphaned).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
