//! Memory stays bounded whatever the output size. Alone in its binary, so
//! the peak RSS it reads is this test's own under any test runner.

use std::time::Duration;

use subrt::runtime::{
    DEFAULT_CAPTURE_LIMIT, ExecRequest, LaunchSpec, RuntimeEvent, StreamKind, spawn_runtime,
};
use subrt::spec::EnvironmentSpec;

/// Peak resident memory of this process, from /proc/self/status.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gibibyte_through_stream_stays_under_100_mb() {
    const GIB: u64 = 1 << 30;
    let launch = LaunchSpec::new(EnvironmentSpec::local("mem"), std::env::temp_dir());
    let runtime = spawn_runtime(launch).await.unwrap();
    let request = ExecRequest::new("head -c 1G /dev/zero").timeout(Duration::from_secs(120));
    let mut events = runtime.stream(request).await.unwrap();
    let mut seen = 0u64;
    let mut result = None;
    while let Some(event) = events.next_event().await {
        match event {
            RuntimeEvent::Output(chunk) if chunk.stream == StreamKind::Stdout => {
                seen += chunk.data.len() as u64
            }
            RuntimeEvent::Finished(r) => result = Some(r),
            _ => {}
        }
    }
    let result = result.expect("Finished");
    assert_eq!(seen, GIB, "every byte is delivered as an event");
    assert_eq!(
        result.stdout.total_bytes, GIB,
        "the result counts every byte"
    );
    assert_eq!(
        result.stdout.data.len(),
        DEFAULT_CAPTURE_LIMIT,
        "and keeps the cap"
    );
    assert!(result.stdout.truncated());
    let peak = peak_rss_bytes();
    assert!(peak < 100_000_000, "peak RSS {} MB", peak / 1_000_000);
}
