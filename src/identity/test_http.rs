//! A minimal HTTP/1.1 server for unit tests of the HTTP clients (no extra dependencies).

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// (method, path with query, lower-cased head, body) → (status, JSON body).
pub(crate) type Handler = dyn Fn(&str, &str, &str, &str) -> (u16, String) + Send + Sync;

/// A minimal HTTP/1.1 server on loopback: one request per connection, answered by `handler`
/// with (status, JSON body).
pub(crate) async fn serve(handler: Arc<Handler>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let (head_end, content_length) = loop {
                    let n = sock.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map(|v| v.trim().parse::<usize>().unwrap())
                            .unwrap_or(0);
                        break (i + 4, len);
                    }
                };
                while buf.len() < head_end + content_length {
                    let n = sock.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                }
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let mut first = head.lines().next().unwrap().split(' ');
                let (method, path) = (first.next().unwrap(), first.next().unwrap());
                let body = String::from_utf8_lossy(&buf[head_end..]).into_owned();
                let (status, out) = handler(method, path, &head.to_lowercase(), &body);
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{out}",
                    out.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}
