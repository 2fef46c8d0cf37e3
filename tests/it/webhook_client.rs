//! What `serve`'s tests and benchmark share: the server run in this process, and a
//! bare HTTP/1.1 client (one request per connection) that signs webhook
//! deliveries as Shopify does.

use shopfeat::config::Secret;
use shopfeat::serve;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

/// A `serve` running in this process on its own runtime; stopped when dropped.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    pub fn start(options: serve::ServeOptions) -> Server {
        let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            runtime.block_on(serve::serve(options, Some(bound_tx), async move {
                let _ = stop_rx.await;
            }))
        });
        let addr = bound_rx.blocking_recv().expect("the server reports its address");
        Server { addr, stop: Some(stop_tx), thread: Some(thread) }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the server thread").expect("the server ends cleanly");
        }
    }
}

pub struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// One HTTP/1.1 request on its own connection.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> std::io::Result<Response> {
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: test\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n", body.len())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| std::io::Error::other(format!("no HTTP answer: {text:?}")))?;
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).ok_or_else(|| std::io::Error::other("no status"))?;
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    Ok(Response { status, headers, body: body.to_string() })
}

/// Posts `body` as Shopify delivers a webhook: signed with `secret`.
pub fn deliver(addr: SocketAddr, secret: &str, domain: &str, topic: &str, id: &str, body: &[u8]) -> Response {
    let hmac = serve::sign(&Secret::new(secret), body);
    let headers = [("Content-Type", "application/json"), ("X-Shopify-Hmac-Sha256", hmac.as_str()), ("X-Shopify-Shop-Domain", domain), ("X-Shopify-Topic", topic), ("X-Shopify-Webhook-Id", id)];
    request(addr, "POST", "/webhooks/shopify", &headers, body).expect("the server answers")
}

