//! A small fault-injecting HTTP proxy in front of the AWS emulator, on 127.0.0.1 only: it fails
//! chosen calls with throttling or 5xx answers, or forwards a call and holds back its response
//! (the "crashed right after create" window), and counts what it saw.
//!
//! One request per connection (`Connection: close`), which the SDK handles by reconnecting.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

/// What to do to requests whose body or target header contains a marker.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer `count` matching requests with a throttling error.
    Throttle { marker: &'static str, count: usize },
    /// Answer `count` matching requests with HTTP 503.
    Unavailable { marker: &'static str, count: usize },
    /// Forward the first matching request, then hold its response for `hold`.
    HoldResponse {
        marker: &'static str,
        hold: Duration,
    },
}

#[derive(Default)]
struct State {
    faults: Vec<Fault>,
    injected: usize,
    forwarded: usize,
}

/// A running proxy.
pub struct FaultProxy {
    pub port: u16,
    state: Arc<Mutex<State>>,
    /// Notified when a held request has reached the emulator.
    pub held: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Starts a proxy to the emulator at `upstream_port` with the given faults.
    pub async fn start(upstream_port: u16, faults: Vec<Fault>) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State {
            faults,
            ..State::default()
        }));
        let held = Arc::new(Notify::new());
        let (s, h) = (state.clone(), held.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(handle(stream, upstream_port, s.clone(), h.clone()));
            }
        });
        Self {
            port,
            state,
            held,
            task,
        }
    }

    /// Requests answered with an injected fault.
    pub fn injected(&self) -> usize {
        self.state.lock().expect("lock").injected
    }

    /// Requests forwarded to the emulator.
    pub fn forwarded(&self) -> usize {
        self.state.lock().expect("lock").forwarded
    }

    /// The endpoint URL to give the operator.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

async fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < header_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf)
}

/// Rewrites the request to close the upstream connection after the response.
fn with_connection_close(request: &[u8]) -> Vec<u8> {
    let Some(pos) = request.windows(4).position(|w| w == b"\r\n\r\n") else {
        return request.to_vec();
    };
    let head = String::from_utf8_lossy(&request[..pos]);
    let mut out: Vec<String> = head
        .lines()
        .filter(|l| !l.to_lowercase().starts_with("connection:"))
        .map(str::to_owned)
        .collect();
    out.push("Connection: close".into());
    let mut bytes = out.join("\r\n").into_bytes();
    bytes.extend_from_slice(b"\r\n\r\n");
    bytes.extend_from_slice(&request[pos + 4..]);
    bytes
}

fn throttling_response(json_protocol: bool) -> Vec<u8> {
    let (content_type, body) = if json_protocol {
        (
            "application/x-amz-json-1.0",
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#.to_owned(),
        )
    } else {
        (
            "text/xml",
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>".to_owned(),
        )
    };
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: {content_type}\r\nx-amzn-ErrorType: ThrottlingException\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn unavailable_response() -> Vec<u8> {
    let body = "Service Unavailable";
    format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn handle(
    mut client: TcpStream,
    upstream_port: u16,
    state: Arc<Mutex<State>>,
    held: Arc<Notify>,
) {
    let Some(request) = read_request(&mut client).await else {
        return;
    };
    let text = String::from_utf8_lossy(&request).to_string();
    let json_protocol = text.to_lowercase().contains("x-amz-target:");
    let mut hold = None;
    let injected = {
        let mut s = state.lock().expect("lock");
        let mut answer = None;
        for fault in &mut s.faults {
            match fault {
                Fault::Throttle { marker, count } if *count > 0 && text.contains(*marker) => {
                    *count -= 1;
                    answer = Some((marker.to_string(), throttling_response(json_protocol)));
                    break;
                }
                Fault::Unavailable { marker, count } if *count > 0 && text.contains(*marker) => {
                    *count -= 1;
                    answer = Some((marker.to_string(), unavailable_response()));
                    break;
                }
                Fault::HoldResponse { marker, hold: h } if text.contains(*marker) => {
                    hold = Some((marker.to_string(), *h));
                    break;
                }
                _ => {}
            }
        }
        if let Some((marker, _)) = &hold {
            let _ = marker;
            // Only the first matching request is held.
            s.faults
                .retain(|f| !matches!(f, Fault::HoldResponse { .. }));
        }
        if answer.is_some() {
            s.injected += 1;
        } else {
            s.forwarded += 1;
        }
        answer.map(|(_, r)| r)
    };
    if let Some(response) = injected {
        let _ = client.write_all(&response).await;
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", upstream_port)).await else {
        return;
    };
    if upstream
        .write_all(&with_connection_close(&request))
        .await
        .is_err()
    {
        return;
    }
    let mut response = Vec::new();
    let _ = upstream.read_to_end(&mut response).await;
    if let Some((_, duration)) = hold {
        held.notify_one();
        tokio::time::sleep(duration).await;
    }
    let _ = client.write_all(&response).await;
}
