//! A CloudWatch endpoint on loopback that accepts every request (rpc-v2-cbor, empty output) and
//! records it: moto does not serve the Rust SDK's CBOR protocol, and metrics-publisher's
//! PutMetricData must succeed for its run to succeed.

use std::sync::{Arc, Mutex, PoisonError};

/// Requests the endpoint received: (path, body).
type Requests = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// The running endpoint; its thread lives as long as the test process.
pub struct FakeCloudWatch {
    addr: std::net::SocketAddr,
    requests: Requests,
}

impl FakeCloudWatch {
    /// Starts the endpoint on 127.0.0.1 and an ephemeral port.
    pub fn start() -> FakeCloudWatch {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener =
            std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("fake CloudWatch: bind: {e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("fake CloudWatch: addr: {e}"));
        let requests: Requests = Arc::default();
        let seen = requests.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let mut reader = BufReader::new(conn);
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                let path = line.split_whitespace().nth(1).unwrap_or_default().to_string();
                let mut len = 0usize;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
                let mut body = vec![0u8; len];
                let _ = reader.read_exact(&mut body);
                seen.lock().unwrap_or_else(PoisonError::into_inner).push((path, body));
                let mut conn = reader.into_inner();
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nsmithy-protocol: rpc-v2-cbor\r\ncontent-type: application/cbor\r\n\
                      content-length: 1\r\nconnection: close\r\n\r\n\xa0",
                );
            }
        });
        FakeCloudWatch { addr, requests }
    }

    /// The endpoint URL (for AWS_ENDPOINT_URL_CLOUDWATCH or `endpoint_url`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far: (path, body).
    pub fn requests(&self) -> Vec<(String, Vec<u8>)> {
        self.requests.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}
