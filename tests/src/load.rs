//! A load generator for the benchmarks: keep-alive connections firing one request after
//! another over loopback, each answer checked and timed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What a load produced.
#[derive(Debug)]
pub struct Outcome {
    /// Requests answered.
    pub requests: usize,
    /// From the first request sent to the last answer.
    pub elapsed: Duration,
    /// Each request's time to its whole answer.
    pub latencies: Vec<Duration>,
}

impl Outcome {
    /// Requests answered per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// p50, p90, p99, p99.9 and the maximum.
    pub fn tail(&mut self) -> [Duration; 5] {
        [
            self.quantile(0.5),
            self.quantile(0.9),
            self.quantile(0.99),
            self.quantile(0.999),
            self.quantile(1.0),
        ]
    }

    fn quantile(&mut self, q: f64) -> Duration {
        self.latencies.sort_unstable();
        quantile(&self.latencies, q)
    }
}

/// The `q` quantile of `sorted` (nearest rank); zero when empty.
pub fn quantile<T: Copy + Default>(sorted: &[T], q: f64) -> T {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

/// `POST path` with a JSON `body`, as raw HTTP/1.1 bytes.
pub fn post_json(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: weft\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Fires `request` on `connections` keep-alive connections to `addr` for `seconds`; checks
/// each answer starts with `expect_status` (`HTTP/1.1 200`).
pub async fn load(
    addr: std::net::SocketAddr,
    request: Vec<u8>,
    expect_status: &'static str,
    seconds: f64,
    connections: usize,
) -> Outcome {
    let request = Arc::new(request);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let mut latencies = Vec::new();
            let mut buf = vec![0u8; 64 << 10];
            while Instant::now() < deadline {
                let t = Instant::now();
                stream.write_all(&request).await.expect("write");
                read_answer(&mut stream, &mut buf, expect_status).await;
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("a connection task"));
    }
    Outcome {
        requests: latencies.len(),
        elapsed: started.elapsed(),
        latencies,
    }
}

/// Reads one answer: its head (checked to start with `expect_status`), then its
/// `content-length` bytes of body.
async fn read_answer(stream: &mut tokio::net::TcpStream, buf: &mut [u8], expect_status: &str) {
    let mut filled = 0;
    let (head_end, length) = loop {
        let n = stream.read(&mut buf[filled..]).await.expect("read");
        assert!(n > 0, "the server closed the connection");
        filled += n;
        if let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).expect("ascii head");
            assert!(
                head.starts_with(expect_status),
                "unexpected response: {head}"
            );
            let length = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            break (end + 4, length);
        }
    };
    while filled < head_end + length {
        let n = stream.read(&mut buf[filled..]).await.expect("read");
        assert!(n > 0, "the server closed the connection");
        filled += n;
    }
}
