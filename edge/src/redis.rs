//! Redis over the Workers sockets API: one connection per command, TLS for `rediss://`, and the
//! connection's AUTH and SELECT pipelined with the command in one write. The protocol itself (URL,
//! framing, replies) is in [`pricefront_core::redis_protocol`].
//!
//! Every command is bounded by `REDIS_TIMEOUT_MS` (connecting, the handshake and the reply together):
//! a Redis that accepts and never answers costs a read that long, and the caller falls back (to KV, or
//! to letting a miss through).
//!
//! A connection cannot outlive its request: the Workers runtime binds every I/O object to the request
//! that created it, so an isolate cannot keep one open for the next request.

use std::pin::pin;
use std::time::Duration;

use futures::future::{select, Either};
use pricefront_core::redis_protocol::{encode_command, parse_reply, RedisAddress, Reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use worker::{Delay, Error, Result, SecureTransport, Socket};

/// Sends one command to Redis at `address` (after its handshake) and returns its reply, or an error
/// when it takes longer than `timeout` (the connection is dropped).
pub async fn command(address: &RedisAddress, timeout: Duration, args: &[&[u8]]) -> Result<Reply> {
    match select(pin!(exchange(address, args)), Delay::from(timeout)).await {
        Either::Left((reply, _)) => reply,
        Either::Right(_) => Err(Error::RustError(format!(
            "redis gave no answer within {} ms",
            timeout.as_millis()
        ))),
    }
}

async fn exchange(address: &RedisAddress, args: &[&[u8]]) -> Result<Reply> {
    let transport = if address.tls {
        SecureTransport::On
    } else {
        SecureTransport::Off
    };
    let mut socket = Socket::builder()
        .secure_transport(transport)
        .connect(address.host.clone(), address.port)?;
    let handshake = address.handshake();
    let mut frame = Vec::new();
    for step in &handshake {
        let step: Vec<&[u8]> = step.iter().map(Vec::as_slice).collect();
        encode_command(&mut frame, &step);
    }
    encode_command(&mut frame, args);
    socket.write_all(&frame).await?;
    socket.flush().await?;

    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut replies = Vec::with_capacity(handshake.len() + 1);
    while replies.len() <= handshake.len() {
        let parsed = parse_reply(&buffer).map_err(|e| Error::RustError(e.to_string()))?;
        if let Some((reply, used)) = parsed {
            buffer.drain(..used);
            replies.push(reply);
            continue;
        }
        let read = socket.read(&mut chunk).await?;
        if read == 0 {
            return Err(Error::RustError(
                "redis closed the connection mid-reply".into(),
            ));
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let _ = socket.close().await;
    replies
        .pop()
        .ok_or_else(|| Error::RustError("redis: no reply".into()))
}
