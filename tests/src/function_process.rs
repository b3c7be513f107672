//! Runs a function binary as Lambda would: a child process with the function's env vars and
//! AWS_LAMBDA_RUNTIME_API pointing at a local [`RuntimeApi`]. Reports its peak memory.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::lambda_runtime_api::{Outcome, RuntimeApi};

/// A running function.
pub struct FunctionProcess {
    child: Child,
    api: RuntimeApi,
    stdout_path: PathBuf,
    spawned: std::time::Instant,
}

/// The binary `name` in the workspace's target dir for `profile` ("debug" or "release").
pub fn binary_path(name: &str, profile: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::moto::workspace_root().join("target"));
    target.join(profile).join(name)
}

impl FunctionProcess {
    /// Starts `binary` with `env` (plus the variables the Lambda runtime itself sets); stdout and
    /// stderr go to `stdout_path`.
    pub fn start(binary: &Path, env: &[(String, String)], memory_mb: u32, stdout_path: &Path) -> std::io::Result<Self> {
        let api = RuntimeApi::start()?;
        let log = std::fs::File::create(stdout_path)?;
        let name = binary.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut cmd = Command::new(binary);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", &name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string())
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let spawned = std::time::Instant::now();
        let child = cmd.spawn()?;
        Ok(FunctionProcess { child, api, stdout_path: stdout_path.to_path_buf(), spawned })
    }

    /// Invokes the function with `event`.
    pub fn invoke(&self, event: Value, timeout: Duration) -> Result<Outcome, String> {
        self.api.invoke(event, timeout)
    }

    /// Invokes the function with `event` and a client context (`{"custom": {...}}`).
    pub fn invoke_with_client_context(
        &self,
        event: Value,
        client_context: &Value,
        timeout: Duration,
    ) -> Result<Outcome, String> {
        self.api.invoke_with_client_context(event, client_context, timeout)
    }

    /// From the process's start to its first request for work (its init, cold start included),
    /// once it has asked.
    pub fn init_time(&self) -> Option<Duration> {
        self.api.first_next().map(|t| t.saturating_duration_since(self.spawned))
    }

    /// Peak resident memory so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
    }

    /// What the function printed (JSON logs and EMF lines).
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    /// Waits up to `timeout` for the process to exit; its status if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let started = std::time::Instant::now();
        while started.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The init error, if the function failed to start.
    pub fn init_error(&self) -> Option<String> {
        self.api.init_error()
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
