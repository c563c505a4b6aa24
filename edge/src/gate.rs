//! The `ProductGate` Durable Object: one per product (named by its id), the coordinator every miss of
//! the product asks before it publishes and every fill of it reaches. Its rules are
//! [`pricefront_core::gate`]; this object keeps a [`Gate`] in memory and wakes the waiters when a fill
//! arrives. Nothing is stored: a gate that is reset (a deploy, an eviction) starts empty, and the
//! Worker, which races every call against its own deadline, falls back to its cache.
//!
//! Only the Worker reaches it: a Durable Object has no public route, only the `GATES` binding's stubs.

use std::cell::RefCell;

use futures::channel::oneshot;
use futures::future::{select, Either};
use pricefront_core::gate::{
    verdict_status, Gate, GateCall, Verdict, CLAIM_HEADER, DEFAULT_KEEP_MS,
};
use pricefront_core::problem::Problem;
use pricefront_core::stored::Stored;
use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use crate::clock::now_ms;
use crate::reply;

/// One product's gate.
#[durable_object(fetch)]
pub struct ProductGate {
    gate: RefCell<Gate>,
    /// The calls waiting for the next fill.
    waiters: RefCell<Vec<oneshot::Sender<Stored>>>,
    /// How long a fill is held (`GATE_KEEP_MS`).
    keep_ms: u64,
}

impl DurableObject for ProductGate {
    fn new(_state: State, env: Env) -> Self {
        let keep_ms = env
            .var("GATE_KEEP_MS")
            .ok()
            .and_then(|value| value.to_string().parse().ok())
            .unwrap_or(DEFAULT_KEEP_MS);
        Self {
            gate: RefCell::new(Gate::default()),
            waiters: RefCell::new(Vec::new()),
            keep_ms,
        }
    }

    async fn fetch(&self, mut request: Request) -> Result<Response> {
        // Not `request.url()`: the url crate's parser would double the wasm's size.
        let url = request.inner().url();
        let query = url.split_once('?').map(|(_, query)| query);
        let method = request.inner().method();
        let call = match GateCall::parse(&method, &request.path(), query) {
            Ok(call) => call,
            Err(problem) => return reply::problem(&problem),
        };
        let now = now_ms();
        let verdict = match call {
            GateCall::Ask { reason, wait_ms } => {
                let verdict = self.gate.borrow_mut().ask(reason, now);
                match verdict {
                    Verdict::Pending if wait_ms > 0 => self.wait(wait_ms).await,
                    verdict => verdict,
                }
            }
            GateCall::Wait { wait_ms } => {
                let held = self.gate.borrow().fresh(now).cloned();
                match held {
                    Some(stored) => Verdict::Held(stored),
                    None => self.wait(wait_ms).await,
                }
            }
            GateCall::Release { claim } => {
                self.gate.borrow_mut().release(claim);
                return Ok(Response::empty()?.with_status(204));
            }
            GateCall::Fill => {
                let body = request.bytes().await?;
                let Some(stored) = Stored::from_bytes(body) else {
                    return reply::problem(&Problem::invalid_comparison(
                        "the gate takes a stored comparison",
                    ));
                };
                self.fill(stored, now);
                return Ok(Response::empty()?.with_status(204));
            }
        };
        answer(verdict)
    }
}

impl ProductGate {
    /// Waits up to `wait_ms` for the next fill: [`Verdict::Held`] with it, or [`Verdict::Pending`].
    async fn wait(&self, wait_ms: u64) -> Verdict {
        let (sender, receiver) = oneshot::channel();
        {
            let mut waiters = self.waiters.borrow_mut();
            waiters.retain(|waiter| !waiter.is_canceled());
            waiters.push(sender);
        }
        let timeout = worker::Delay::from(std::time::Duration::from_millis(wait_ms));
        match select(receiver, timeout).await {
            Either::Left((Ok(stored), _)) => Verdict::Held(stored),
            _ => Verdict::Pending,
        }
    }

    /// Holds a fill and answers every waiter with what the gate now holds (the fill, or a newer one).
    fn fill(&self, stored: Stored, now: u64) {
        let mut gate = self.gate.borrow_mut();
        gate.fill(stored, now, self.keep_ms);
        let Some(held) = gate.fresh(now) else {
            return;
        };
        for waiter in self.waiters.borrow_mut().drain(..) {
            let _ = waiter.send(held.clone());
        }
    }
}

/// A verdict as the gate's answer ([`verdict_status`]): the held bytes, the claim, or nothing.
fn answer(verdict: Verdict) -> Result<Response> {
    let status = verdict_status(&verdict);
    match verdict {
        Verdict::Held(stored) => reply::json_bytes(status, stored.json),
        Verdict::Publish { claim } => {
            let mut response = Response::empty()?.with_status(status);
            response
                .headers_mut()
                .set(CLAIM_HEADER, &claim.to_string())?;
            Ok(response)
        }
        Verdict::Pending => Ok(Response::empty()?.with_status(status)),
    }
}
