//! The Worker's calls to a product's gate ([`crate::gate::ProductGate`]), each raced against the
//! Worker's own deadline (`GATE_TIMEOUT_MS` beyond the wait it asks for): a gate that is gone (reset by
//! a deploy, unreachable) is an error the caller answers from its cache, never a hang.

use std::time::Duration;

use futures::future::{select, Either};
use pricefront_core::gate::{verdict_of, AskReason, GateCall, Verdict, CLAIM_HEADER};
use pricefront_core::{ProductId, UnixMillis};
use worker::{Delay, Env};

use crate::config::{GateSettings, GATE_BINDING};
use crate::outbound;

/// Why a call to the gate gave no verdict.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The stub could not be had, or the call failed (the object was reset mid-call).
    #[error("the product gate could not be called: {0}")]
    Call(#[from] worker::Error),
    /// No answer within the deadline.
    #[error("the product gate gave no answer within {0} ms")]
    TimedOut(u64),
    /// An answer that is not a verdict.
    #[error("the product gate answered {0}, not a verdict")]
    NotAVerdict(u16),
}

/// The verdict of `product`'s gate on an ask for `reason`; a pending publish waits up to `wait_ms`
/// for its fill.
pub async fn ask(
    env: &Env,
    gate: &GateSettings,
    product: ProductId,
    reason: AskReason,
    wait_ms: u64,
) -> Result<Verdict, GateError> {
    call(env, gate, product, GateCall::Ask { reason, wait_ms }, None).await
}

/// The fill `product`'s gate holds, waiting up to `wait_ms` for one: [`Verdict::Held`] or
/// [`Verdict::Pending`].
pub async fn wait(
    env: &Env,
    gate: &GateSettings,
    product: ProductId,
    wait_ms: u64,
) -> Result<Verdict, GateError> {
    call(env, gate, product, GateCall::Wait { wait_ms }, None).await
}

/// Gives the claim `claim` of `product` back after its publish failed; logged when the gate cannot
/// hear it (its claim then runs out by itself).
pub async fn release(env: Env, gate: GateSettings, product: ProductId, claim: UnixMillis) {
    if let Err(error) = call(&env, &gate, product, GateCall::Release { claim }, None).await {
        worker::console_warn!("claim of {product} not released: {error}");
    }
}

/// Hands a stored comparison of `product` (its bytes as stored) to its gate, which answers its waiters
/// with it; logged when the gate cannot take it (waiters then answer from the cache).
pub async fn fill(env: Env, gate: GateSettings, product: ProductId, stored: Vec<u8>) {
    if let Err(error) = call(&env, &gate, product, GateCall::Fill, Some(stored)).await {
        worker::console_warn!("fill of {product} not handed to its gate: {error}");
    }
}

/// One call: the request to the product's object, its answer read, within the deadline.
async fn call(
    env: &Env,
    gate: &GateSettings,
    product: ProductId,
    call: GateCall,
    body: Option<Vec<u8>>,
) -> Result<Verdict, GateError> {
    let namespace = env.durable_object(GATE_BINDING)?;
    let name = product.to_string();
    let stub = match &gate.location_hint {
        Some(hint) => namespace.get_by_name_with_location_hint(&name, hint)?,
        None => namespace.get_by_name(&name)?,
    };
    let (method, url) = call.to_request();
    let body = body.map(|bytes| worker::js_sys::Uint8Array::from(&bytes[..]).into());
    let request = outbound::request(method, &url, None, body.as_ref())?;
    let deadline = gate.timeout
        + Duration::from_millis(match call {
            GateCall::Ask { wait_ms, .. } | GateCall::Wait { wait_ms } => wait_ms,
            _ => 0,
        });
    let exchange = outbound::send_to(stub, &request);
    let answer = match select(Box::pin(exchange), Delay::from(deadline)).await {
        Either::Left((answer, _)) => answer?,
        Either::Right(_) => return Err(GateError::TimedOut(deadline.as_millis() as u64)),
    };
    let (status, claim) = (answer.status, answer.headers.get(CLAIM_HEADER)?);
    let body = answer.body;
    match (call, status) {
        // A release or a fill has nothing to say back.
        (GateCall::Release { .. } | GateCall::Fill, 204) => Ok(Verdict::Pending),
        _ => verdict_of(status, claim.as_deref(), body).ok_or(GateError::NotAVerdict(status)),
    }
}
