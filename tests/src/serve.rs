//! The real `weft serve` binary on loopback, and a small blocking HTTP/1.1 client to call it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::weft_bin;

/// A running `weft serve`; stopped with SIGTERM when dropped.
#[derive(Debug)]
pub struct Served {
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// What it printed before it started listening.
    pub banner: String,
    /// What it wrote to stderr so far, when started with [`Served::start_capturing_stderr`].
    stderr: Option<Arc<Mutex<String>>>,
}

impl Served {
    /// Starts `weft serve weft.toml --listen 127.0.0.1:0 ARGS` in `dir` with `env`, and waits
    /// until it listens.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(dir, args, env, false)
    }

    /// As [`Served::start`], keeping what it writes to stderr for [`Served::stderr`].
    pub fn start_capturing_stderr(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(dir, args, env, true)
    }

    /// What it wrote to stderr so far (empty unless started with
    /// [`Served::start_capturing_stderr`]).
    pub fn stderr(&self) -> String {
        self.stderr
            .as_ref()
            .map(|s| s.lock().expect("no reader panicked").clone())
            .unwrap_or_default()
    }

    // The child is waited for by `stop` (and so by `Drop`) once it is in `Served`; before
    // that, the only ways out are panics of the test itself.
    #[allow(clippy::zombie_processes)]
    fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)], capture: bool) -> Self {
        let mut child = Command::new(weft_bin())
            .args(["serve", "weft.toml", "--listen", "127.0.0.1:0"])
            .args(args)
            .current_dir(dir)
            .env_remove("WEFT_STORE")
            .env_remove("WEFT_LOG_FORMAT")
            // What the tests print shows only problems, unless the test reads the log.
            .env("WEFT_LOG", if capture { "info" } else { "warn" })
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(if capture {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .spawn()
            .expect("weft serve starts");
        // Read as it comes, so that the server never blocks on a full pipe.
        let stderr = child.stderr.take().map(|pipe| {
            let kept = Arc::new(Mutex::new(String::new()));
            let sink = kept.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut sink = sink.lock().expect("no reader panicked");
                    sink.push_str(&line);
                    sink.push('\n');
                }
            });
            kept
        });
        let mut lines = BufReader::new(child.stdout.take().expect("stdout"));
        let mut banner = String::new();
        loop {
            let mut line = String::new();
            if lines.read_line(&mut line).expect("read stdout") == 0 {
                let status = child.wait();
                panic!("weft serve exited ({status:?}) before listening:\n{banner}");
            }
            banner.push_str(&line);
            if let Some(rest) = line.split("on http://").nth(1) {
                let addr = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_string();
                // Keep reading its output so that it never blocks on a full pipe.
                std::thread::spawn(move || {
                    let mut sink = String::new();
                    let _ = lines.read_to_string(&mut sink);
                });
                return Self {
                    child: Some(child),
                    addr,
                    banner,
                    stderr,
                };
            }
        }
    }

    /// Sends SIGTERM and waits for the process to exit; its exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.terminate();
        self.child.take()?.wait().ok()
    }

    /// Sends SIGTERM without waiting for the process to exit.
    pub fn terminate(&self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
    }

    /// `METHOD PATH` with `headers` and `body`.
    pub fn call(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        request(&self.addr, method, path, headers, body)
    }

    /// The secret path of the webhook of `instance`'s flow `flow`, as printed at start
    /// (`/webhooks/TOKEN`).
    pub fn webhook(&self, instance: &str, flow: &str) -> String {
        let label = format!("{instance}/{flow}");
        self.banner
            .lines()
            .find_map(|line| {
                let mut words = line.split_whitespace();
                (words.next() == Some(label.as_str()))
                    .then(|| words.next())
                    .flatten()
                    .and_then(|url| url.split_once("/webhooks/"))
                    .map(|(_, token)| format!("/webhooks/{token}"))
            })
            .unwrap_or_else(|| panic!("no webhook of `{label}` at start:\n{}", self.banner))
    }

    /// `GET PATH` with a bearer token.
    pub fn get(&self, path: &str, token: &str) -> Reply {
        let auth = format!("Bearer {token}");
        self.call("GET", path, &[("authorization", &auth)], b"")
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An HTTP response.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: the body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `error.code` of an error body.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    try_request(addr, method, path, headers, body)
        .unwrap_or_else(|| panic!("no HTTP response from {addr} to {method} {path}"))
}

/// As [`request`], or `None` when nothing answers: the connection is refused or closed
/// without a response (a server that has stopped listening).
pub fn try_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Reply> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).ok()?;
    // The server may answer (413) before reading a large body; a failed write is fine then.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Some(Reply {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size =
            usize::from_str_radix(String::from_utf8_lossy(&data[..end]).trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[end + 2..end + 2 + size]);
        data = &data[end + 2 + size + 2..];
    }
}
