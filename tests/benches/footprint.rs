//! Release footprint of the gateway binaries: bootstrap size on disk and peak RSS (VmHWM) while
//! handling their sample event under a local Lambda Runtime API, against the emulators.
//! Run: `cargo build --release --workspace --bins && cargo bench -p tests --bench footprint`.

use tests::function_process::binary_path;
use tests::gateway_binaries::round_trip;
use tests::lambda_runtime_api::Outcome;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    for name in ["slack-ingress", "slack-worker"] {
        let size = std::fs::metadata(binary_path(name, "release")).map(|m| m.len()).unwrap_or(0);
        println!("{name}: release binary {:.2} MiB", size as f64 / 1048576.0);
    }
    let trip = rt.block_on(round_trip("release", "footprint", "CFOOTPRINT"));
    let ok = |o: &Result<Outcome, String>| matches!(o, Ok(Outcome::Response(_)));
    assert!(
        ok(&trip.ingress_response) && ok(&trip.worker_response),
        "round trip failed:\n{}\n{}",
        trip.ingress_output,
        trip.worker_output
    );
    let mib = |k: Option<u64>| k.map_or("n/a".to_string(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    println!("slack-ingress: peak RSS {} on a signed app_mention", mib(trip.ingress_peak_rss_kib));
    println!(
        "slack-worker: peak RSS {} on one SQS turn (agent, Slack, Firehose, SQS, DynamoDB)",
        mib(trip.worker_peak_rss_kib)
    );
}
