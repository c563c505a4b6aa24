//! Just enough of the Redis protocol (RESP2) for `GET` and `EVAL`, over the Workers sockets API.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use worker::{Error, Result, Socket};

/// A Redis reply.
pub enum Reply {
    /// `+OK` and other simple strings.
    Simple,
    /// A bulk string, or `None` for a nil.
    Bulk(Option<Vec<u8>>),
    /// An integer (`:1`), as scripts return.
    Integer(i64),
}

/// Sends one command to Redis at `host:port` and reads its reply.
pub async fn command(host: &str, port: u16, args: &[&[u8]]) -> Result<Reply> {
    let mut socket = Socket::builder().connect(host, port)?;
    let mut frame = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        frame.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        frame.extend_from_slice(arg);
        frame.extend_from_slice(b"\r\n");
    }
    socket.write_all(&frame).await?;
    socket.flush().await?;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let reply = loop {
        if let Some(reply) = parse(&buffer)? {
            break reply;
        }
        let read = socket.read(&mut chunk).await?;
        if read == 0 {
            return Err(Error::RustError(
                "redis closed the connection mid-reply".into(),
            ));
        }
        buffer.extend_from_slice(&chunk[..read]);
    };
    let _ = socket.close().await;
    Ok(reply)
}

/// Parses a complete reply, or `None` when more bytes are needed.
fn parse(buffer: &[u8]) -> Result<Option<Reply>> {
    let Some(line_end) = buffer.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let line = String::from_utf8_lossy(&buffer[1..line_end]);
    match buffer.first() {
        Some(b'+') => Ok(Some(Reply::Simple)),
        Some(b'-') => Err(Error::RustError(format!("redis: {line}"))),
        Some(b':') => line
            .parse()
            .map(|n| Some(Reply::Integer(n)))
            .map_err(|_| Error::RustError("redis: bad integer reply".into())),
        Some(b'$') => {
            let length: i64 = line
                .parse()
                .map_err(|_| Error::RustError("redis: bad bulk length".into()))?;
            if length < 0 {
                return Ok(Some(Reply::Bulk(None)));
            }
            let start = line_end + 2;
            let end = start + length as usize;
            if buffer.len() < end + 2 {
                return Ok(None);
            }
            Ok(Some(Reply::Bulk(Some(buffer[start..end].to_vec()))))
        }
        _ => Err(Error::RustError("redis: unexpected reply".into())),
    }
}
