//! Release footprint of the gateway binaries: bootstrap size on disk, and for the worker on each
//! agent backend its init time (process start to its first request for work) and peak RSS
//! (VmHWM) while handling one turn under a local Lambda Runtime API, against the emulators.
//! Run: `cargo build --release --workspace --bins && cargo bench -p tests --bench footprint`.

use shared::domain::AgentBackend;
use tests::function_process::binary_path;
use tests::gateway_binaries::{round_trip_with, Trip};
use tests::lambda_runtime_api::Outcome;

/// Runs per backend; the figures are their medians.
const RUNS: usize = 5;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    for name in ["slack-ingress", "slack-worker"] {
        let size = std::fs::metadata(binary_path(name, "release")).map(|m| m.len()).unwrap_or(0);
        println!("{name}: release binary {:.2} MiB", size as f64 / 1048576.0);
    }
    for backend in [AgentBackend::Classic, AgentBackend::Harness, AgentBackend::Runtime] {
        let (mut init_ms, mut rss_mib, mut ingress_mib) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..RUNS {
            let trip = Trip { backend, ..Trip::default() };
            let prefix = format!("footprint-{backend}-{run}");
            let channel = format!("CFOOT{}{run}", backend.as_str().to_ascii_uppercase());
            let out = rt.block_on(round_trip_with("release", &prefix, &channel, &trip));
            let ok = |o: &Result<Outcome, String>| matches!(o, Ok(Outcome::Response(_)));
            assert!(
                ok(&out.ingress_response) && ok(&out.worker_response),
                "{backend} round trip failed:\n{}\n{}",
                out.ingress_output,
                out.worker_output
            );
            init_ms.extend(out.worker_init.map(|d| d.as_secs_f64() * 1000.0));
            rss_mib.extend(out.worker_peak_rss_kib.map(|k| k as f64 / 1024.0));
            ingress_mib.extend(out.ingress_peak_rss_kib.map(|k| k as f64 / 1024.0));
        }
        println!(
            "slack-worker ({backend}): init {:.0} ms, peak RSS {:.1} MiB on one turn (medians of {RUNS}); slack-ingress peak RSS {:.1} MiB",
            median(init_ms),
            median(rss_mib),
            median(ingress_mib)
        );
    }
}
