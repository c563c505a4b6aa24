//! A minimal HTTP/1.1 client for the edge drill: exact bytes on the wire (no URL normalisation, any
//! method token, raw header bytes), one request per connection.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An answer, as read off the wire.
#[derive(Debug)]
pub(crate) struct Answer {
    /// The status code.
    pub status: u16,
    /// The header lines (name, value).
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Answer {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `bytes` on a new connection and reads one answer (to its end, by Content-Length, chunks, or the
/// server closing), within 60 s. The answer is read while the request is still being written, so an early
/// refusal of a large body is seen. `head_only`: the answer has no body (a HEAD request).
pub(crate) async fn exchange(
    address: &str,
    bytes: &[u8],
    half_close: bool,
    head_only: bool,
) -> Result<Answer, String> {
    let limit = Duration::from_secs(60);
    let work = async {
        let stream = TcpStream::connect(address)
            .await
            .map_err(|e| e.to_string())?;
        let (mut reader, mut writer) = stream.into_split();
        let writing = async move {
            let _ = writer.write_all(bytes).await;
            if half_close {
                let _ = writer.shutdown().await;
            }
            // Kept open until the answer is read: dropping it would close the sending side.
            writer
        };
        let reading = async {
            let mut received = Vec::new();
            let mut chunk = vec![0; 64 * 1024];
            // A reset after the answer (the server closing on an unread body) keeps what was read.
            while let Ok(n) = reader.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                received.extend(&chunk[..n]);
                if complete(&received, head_only) {
                    break;
                }
            }
            received
        };
        tokio::pin!(writing);
        tokio::pin!(reading);
        let mut kept_writer = None;
        let received = loop {
            tokio::select! {
                writer = &mut writing, if kept_writer.is_none() => kept_writer = Some(writer),
                received = &mut reading => break received,
            }
        };
        parse(&received)
    };
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| format!("nothing within {limit:?}"))?
}

/// Whether `received` holds a whole answer.
fn complete(received: &[u8], head_only: bool) -> bool {
    let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    if head_only {
        return true;
    }
    let Ok(answer) = parse(received) else {
        return false;
    };
    let rest = &received[end + 4..];
    if matches!(answer.status, 100..=199 | 204 | 304) {
        true
    } else if answer
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        rest.ends_with(b"0\r\n\r\n")
    } else if let Some(length) = answer
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        rest.len() >= length
    } else {
        false
    }
}

/// Parses an HTTP/1.1 answer (Content-Length, chunked, or read to the end).
pub(crate) fn parse(received: &[u8]) -> Result<Answer, String> {
    let end = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no complete answer in {} bytes", received.len()))?;
    let head = String::from_utf8_lossy(&received[..end]);
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status line in {head:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let rest = &received[end + 4..];
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(rest)
    } else {
        let length = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse::<usize>().ok());
        rest[..length.unwrap_or(rest.len()).min(rest.len())].to_vec()
    };
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// The body of a chunked transfer (as far as it goes).
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(line_end) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&rest[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok());
        let Some(size) = size.filter(|&s| s > 0) else {
            break;
        };
        let start = line_end + 2;
        let stop = (start + size).min(rest.len());
        body.extend(&rest[start..stop]);
        rest = rest.get(stop + 2..).unwrap_or_default();
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_answers_with_length_and_chunks() {
        let answer = parse(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/problem+json\r\nContent-Length: 2\r\n\r\n{}xx").unwrap();
        assert_eq!(answer.status, 400);
        assert_eq!(answer.body, b"{}");
        assert_eq!(
            answer.header("content-type"),
            Some("application/problem+json")
        );
        let chunked = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!(chunked.body, b"abcde");
        assert!(parse(b"HTTP/1.1 200").is_err());
    }
}
