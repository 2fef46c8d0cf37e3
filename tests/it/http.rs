//! A minimal HTTP/1.1 server on loopback for the stand-ins of remote APIs
//! (Gorse, Shopify): keep-alive, Content-Length bodies, and replies that can be
//! late or never come (to play timeouts and dropped connections).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

pub struct Request {
    pub method: String,
    pub path: String,
    pub query: BTreeMap<String, String>,
    /// Lower-case names.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Close the connection instead of answering.
    pub drop: bool,
}

impl Reply {
    pub fn json(status: u16, body: &serde_json::Value) -> Reply {
        Reply { status, content_type: "application/json", headers: vec![], body: body.to_string().into_bytes(), delay: Duration::ZERO, drop: false }
    }

    pub fn text(status: u16, body: &str) -> Reply {
        Reply { status, content_type: "text/plain; charset=utf-8", headers: vec![], body: body.as_bytes().to_vec(), delay: Duration::ZERO, drop: false }
    }
}

type Handler = dyn Fn(&Request) -> Reply + Send + Sync;

/// Serves `handler` on a new loopback port; returns `http://127.0.0.1:PORT`.
pub fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handler: Arc<Handler> = Arc::new(handler);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((socket, _)) = listener.accept().await else { continue };
                tokio::spawn(serve(socket, handler.clone()));
            }
        });
    });
    url
}

async fn serve(socket: tokio::net::TcpStream, handler: Arc<Handler>) {
    let mut reader = BufReader::new(socket);
    while let Some(request) = read_request(&mut reader).await {
        let close = request.headers.get("connection").is_some_and(|c| c.eq_ignore_ascii_case("close"));
        let reply = handler(&request);
        if !reply.delay.is_zero() {
            tokio::time::sleep(reply.delay).await;
        }
        if reply.drop {
            return;
        }
        let mut head = format!("HTTP/1.1 {} X\r\nContent-Type: {}\r\nContent-Length: {}\r\n", reply.status, reply.content_type, reply.body.len());
        for (name, value) in &reply.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        let socket = reader.get_mut();
        if socket.write_all(head.as_bytes()).await.is_err() || socket.write_all(&reply.body).await.is_err() || close {
            return;
        }
    }
}

async fn read_request(reader: &mut BufReader<tokio::net::TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_string(), parts.next()?.to_string());
    let mut headers = BTreeMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).await.ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.ok()?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query = query.split('&').filter_map(|kv| kv.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Some(Request { method, path: path.to_string(), query, headers, body })
}

/// A blocking GET for tests reading state back: (status line, body).
pub fn get(url: &str, path: &str, headers: &[(&str, &str)]) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    let extra: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n{extra}Connection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap_or("").to_string(), body.to_string())
}
