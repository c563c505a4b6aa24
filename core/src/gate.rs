//! The product gate (edge): one coordinator per product, a Durable Object, that every miss of the
//! product asks before it publishes, and that every fill of it reaches. Its rules, and the calls the
//! Worker makes to it, are here; the object (`edge/src/gate.rs`) only keeps a [`Gate`] in memory and
//! wakes the waiters.
//!
//! - **Publish once.** A miss asks; the first ask of a coalescing window gets a claim
//!   ([`Verdict::Publish`]) and publishes, every other ask within it hears that a publish is under way
//!   ([`Verdict::Pending`]). A publish that failed gives its claim back ([`Gate::release`]).
//! - **Fills wake waiters.** A fill is kept ([`Gate::fill`]) and answers every waiter; a fill that
//!   arrives before its waiter is still held when the waiter asks.
//! - **Consistent without Redis.** The last fill is held for `GATE_KEEP_MS` (KV's propagation bound),
//!   so a location whose KV has not caught up is answered from the gate ([`Verdict::Held`]).
//!
//! The calls ([`GateCall`]) travel as HTTP requests to the object's `fetch`: their paths and query
//! strings are written and read here, so that the two sides agree by construction.

use crate::edge_rules::{decide_read_of, ReadDecision};
use crate::newest_wins::{replacement_of, Held, Replacement};
use crate::problem::Problem;
use crate::stored::Stored;
use crate::UnixMillis;

/// How long a claim suppresses other publishes of the product (the per-isolate claim's window too).
pub const COALESCE_MS: u64 = 5_000;

/// How long the gate holds a fill unless configured (`GATE_KEEP_MS`): KV's propagation bound.
pub const DEFAULT_KEEP_MS: u64 = 60_000;

/// The longest one call waits on the gate for a fill, whatever it asks.
pub const MAX_WAIT_MS: u64 = 60_000;

/// Why the Worker asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskReason {
    /// No tier had a usable result: a client waits for the first one (or polls for it).
    Miss,
    /// The cache holds a result computed at `have_computed_at_ms` that is due a refresh.
    Refresh {
        /// When the result the Worker holds was computed.
        have_computed_at_ms: UnixMillis,
    },
}

/// The gate's answer to an ask.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The gate holds a fresh result (newer than the refreshed one): serve it, publish nothing.
    Held(Stored),
    /// Publish now; give the claim (named by its end) back if the publish fails.
    Publish {
        /// Until when the claim runs, which names it for [`Gate::release`].
        claim: UnixMillis,
    },
    /// A publish is under way: nothing to do but wait for its fill (or poll).
    Pending,
}

/// One product's gate: its running claim and its last fill.
#[derive(Debug, Default)]
pub struct Gate {
    claim_until: Option<UnixMillis>,
    held: Option<(Stored, UnixMillis)>,
}

impl Gate {
    /// The verdict on an ask for `reason` at `now_ms`, claiming the publish when nobody holds it.
    pub fn ask(&mut self, reason: AskReason, now_ms: UnixMillis) -> Verdict {
        if let Some(held) = self.fresh(now_ms) {
            let newer = match reason {
                AskReason::Miss => true,
                AskReason::Refresh {
                    have_computed_at_ms,
                } => held.header.computed_at_ms > have_computed_at_ms,
            };
            if newer {
                return Verdict::Held(held.clone());
            }
        }
        if self.claim_until.is_some_and(|until| until > now_ms) {
            return Verdict::Pending;
        }
        let claim = now_ms + COALESCE_MS;
        self.claim_until = Some(claim);
        Verdict::Publish { claim }
    }

    /// The held fill, if it is still kept and fresh at `now_ms`: what a waiter is answered with.
    pub fn fresh(&self, now_ms: UnixMillis) -> Option<&Stored> {
        self.held
            .as_ref()
            .filter(|(stored, kept_until)| {
                *kept_until > now_ms
                    && matches!(
                        decide_read_of(Some(stored.header.lifetime()), now_ms),
                        ReadDecision::Fresh { .. }
                    )
            })
            .map(|(stored, _)| stored)
    }

    /// Gives the claim ending at `claim` back (its publish failed), so that the next ask publishes; a
    /// newer claim stays.
    pub fn release(&mut self, claim: UnixMillis) {
        if self.claim_until == Some(claim) {
            self.claim_until = None;
        }
    }

    /// Takes a fill at `now_ms`, held for `keep_ms` unless the gate holds a newer (or a useful one
    /// over an empty one: [`crate::newest_wins`]); the request it answers is no longer under way.
    pub fn fill(&mut self, stored: Stored, now_ms: UnixMillis, keep_ms: u64) -> Replacement {
        self.claim_until = None;
        let held = self.held.as_ref().map(|(held, _)| Held::from(&held.header));
        let decision = replacement_of(Held::from(&stored.header), held);
        if decision == Replacement::Store {
            self.held = Some((stored, now_ms.saturating_add(keep_ms)));
        }
        decision
    }
}

/// A call of the Worker to a product's gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateCall {
    /// `POST /ask?reason=miss|refresh[&have=ms][&wait=ms]`: the verdict; a [`Verdict::Pending`] waits up
    /// to `wait_ms` for the fill.
    Ask {
        /// Why.
        reason: AskReason,
        /// How long to wait for the fill when a publish is under way.
        wait_ms: u64,
    },
    /// `POST /wait?wait=ms`: the held fill, waiting up to `wait_ms` for one (the publisher's wait).
    Wait {
        /// How long to wait.
        wait_ms: u64,
    },
    /// `POST /release?claim=ms`: a publish failed; give its claim back.
    Release {
        /// The claim's end, as [`Verdict::Publish`] named it.
        claim: UnixMillis,
    },
    /// `PUT /fill`, the stored comparison as the body: a fill reached the edge.
    Fill,
}

/// The origin of the gate's URLs: never fetched over the network (a stub's fetch goes to the object).
pub const GATE_ORIGIN: &str = "https://gate.pricefront.internal";

/// The header of a [`Verdict::Publish`] answer (201) that names the claim.
pub const CLAIM_HEADER: &str = "Pricefront-Gate-Claim";

impl GateCall {
    /// The method and URL of the call.
    pub fn to_request(self) -> (&'static str, String) {
        match self {
            GateCall::Ask { reason, wait_ms } => {
                let reason = match reason {
                    AskReason::Miss => "miss".to_owned(),
                    AskReason::Refresh {
                        have_computed_at_ms,
                    } => format!("refresh&have={have_computed_at_ms}"),
                };
                (
                    "POST",
                    format!("{GATE_ORIGIN}/ask?reason={reason}&wait={wait_ms}"),
                )
            }
            GateCall::Wait { wait_ms } => ("POST", format!("{GATE_ORIGIN}/wait?wait={wait_ms}")),
            GateCall::Release { claim } => ("POST", format!("{GATE_ORIGIN}/release?claim={claim}")),
            GateCall::Fill => ("PUT", format!("{GATE_ORIGIN}/fill")),
        }
    }

    /// Reads a call from its method, path and query string; waits are capped at [`MAX_WAIT_MS`].
    pub fn parse(method: &str, path: &str, query: Option<&str>) -> Result<Self, Problem> {
        let param = |name: &str| {
            query?
                .split('&')
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
        };
        let number = |name: &str| -> Result<Option<u64>, Problem> {
            param(name)
                .map(|text| {
                    text.parse()
                        .map_err(|_| bad_call(format!("{name} must be milliseconds, not {text:?}")))
                })
                .transpose()
        };
        let wait = || Ok::<_, Problem>(number("wait")?.unwrap_or(0).min(MAX_WAIT_MS));
        let call = match path {
            "/ask" => {
                let reason = match param("reason") {
                    Some("miss") => AskReason::Miss,
                    Some("refresh") => AskReason::Refresh {
                        have_computed_at_ms: number("have")?
                            .ok_or_else(|| bad_call("a refresh names the result it has (have)"))?,
                    },
                    other => {
                        return Err(bad_call(format!(
                            "reason must be miss or refresh, not {other:?}"
                        )))
                    }
                };
                GateCall::Ask {
                    reason,
                    wait_ms: wait()?,
                }
            }
            "/wait" => GateCall::Wait { wait_ms: wait()? },
            "/release" => GateCall::Release {
                claim: number("claim")?.ok_or_else(|| bad_call("release names its claim"))?,
            },
            "/fill" => GateCall::Fill,
            _ => {
                return Err(Problem::new(
                    404,
                    "not-found",
                    "Not Found",
                    format!("the gate has no call at {path}"),
                ))
            }
        };
        let expected = call.to_request().0;
        if method != expected {
            return Err(Problem::new(
                405,
                "method-not-allowed",
                "Method Not Allowed",
                format!("{path} takes {expected}, not {method}"),
            ));
        }
        Ok(call)
    }
}

fn bad_call(detail: impl Into<String>) -> Problem {
    Problem::new(400, "invalid-gate-call", "Invalid gate call", detail)
}

/// The status a verdict travels as: 200 (the held bytes as the body), 201 (with [`CLAIM_HEADER`]),
/// 202.
pub fn verdict_status(verdict: &Verdict) -> u16 {
    match verdict {
        Verdict::Held(_) => 200,
        Verdict::Publish { .. } => 201,
        Verdict::Pending => 202,
    }
}

/// Reads a verdict back from the gate's answer; `None` for an answer that is not one (a problem
/// document, a held body that is not a stored comparison).
pub fn verdict_of(status: u16, claim: Option<&str>, body: Vec<u8>) -> Option<Verdict> {
    match status {
        200 => Stored::from_bytes(body).map(Verdict::Held),
        201 => Some(Verdict::Publish {
            claim: claim?.parse().ok()?,
        }),
        202 => Some(Verdict::Pending),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(computed_at_ms: UnixMillis, offers: usize) -> Stored {
        let comparison = crate::fixtures::comparison(computed_at_ms, offers, 600_000);
        Stored::from_bytes(comparison.to_json().into_bytes()).unwrap()
    }

    #[test]
    fn one_ask_of_a_window_publishes_and_the_others_hear_it_is_under_way() {
        let mut gate = Gate::default();
        let first = gate.ask(AskReason::Miss, 1_000);
        assert_eq!(first, Verdict::Publish { claim: 6_000 });
        for now in [1_000, 3_000, 5_999] {
            assert_eq!(gate.ask(AskReason::Miss, now), Verdict::Pending);
            let refresh = AskReason::Refresh {
                have_computed_at_ms: 0,
            };
            assert_eq!(gate.ask(refresh, now), Verdict::Pending);
        }
        assert_eq!(
            gate.ask(AskReason::Miss, 6_000),
            Verdict::Publish { claim: 11_000 },
            "a claim whose fill never came runs out"
        );
    }

    #[test]
    fn a_failed_publish_gives_its_claim_back_but_not_a_newer_one() {
        let mut gate = Gate::default();
        let Verdict::Publish { claim } = gate.ask(AskReason::Miss, 1_000) else {
            panic!("the first ask publishes");
        };
        gate.release(claim);
        let Verdict::Publish { claim: newer } = gate.ask(AskReason::Miss, 2_000) else {
            panic!("released: the next ask publishes");
        };
        gate.release(claim);
        assert_eq!(gate.ask(AskReason::Miss, 2_500), Verdict::Pending);
        gate.release(newer);
        assert!(matches!(
            gate.ask(AskReason::Miss, 2_500),
            Verdict::Publish { .. }
        ));
    }

    #[test]
    fn a_fill_is_held_for_the_keep_window_and_ends_the_claim() {
        let mut gate = Gate::default();
        gate.ask(AskReason::Miss, 1_000);
        let fill = stored(1_500, 1);
        assert_eq!(gate.fill(fill.clone(), 2_000, 60_000), Replacement::Store);
        assert_eq!(
            gate.ask(AskReason::Miss, 2_000),
            Verdict::Held(fill.clone())
        );
        assert_eq!(gate.ask(AskReason::Miss, 61_999), Verdict::Held(fill));
        assert!(
            matches!(gate.ask(AskReason::Miss, 62_000), Verdict::Publish { .. }),
            "past the keep window the gate holds nothing: KV has it everywhere by now"
        );
    }

    #[test]
    fn a_refresh_is_answered_only_by_a_newer_fill() {
        let mut gate = Gate::default();
        gate.fill(stored(1_000, 1), 1_000, 60_000);
        let same = AskReason::Refresh {
            have_computed_at_ms: 1_000,
        };
        assert!(matches!(gate.ask(same, 2_000), Verdict::Publish { .. }));
        let older = AskReason::Refresh {
            have_computed_at_ms: 500,
        };
        assert!(matches!(gate.ask(older, 2_000), Verdict::Held(_)));
    }

    #[test]
    fn the_gate_keeps_the_newer_and_the_useful_fill() {
        let mut gate = Gate::default();
        let newer = stored(2_000, 1);
        gate.fill(newer.clone(), 2_000, 60_000);
        assert_eq!(
            gate.fill(stored(1_000, 1), 2_100, 60_000),
            Replacement::KeepNewer
        );
        assert_eq!(
            gate.fill(stored(3_000, 0), 3_000, 60_000),
            Replacement::KeepUseful
        );
        assert_eq!(gate.fresh(3_000), Some(&newer));
    }

    #[test]
    fn calls_round_trip_through_their_urls() {
        let calls = [
            GateCall::Ask {
                reason: AskReason::Miss,
                wait_ms: 0,
            },
            GateCall::Ask {
                reason: AskReason::Refresh {
                    have_computed_at_ms: 123,
                },
                wait_ms: 2_000,
            },
            GateCall::Wait { wait_ms: 10_000 },
            GateCall::Release { claim: 99 },
            GateCall::Fill,
        ];
        for call in calls {
            let (method, url) = call.to_request();
            let rest = url.strip_prefix(GATE_ORIGIN).unwrap();
            let (path, query) = match rest.split_once('?') {
                Some((path, query)) => (path, Some(query)),
                None => (rest, None),
            };
            assert_eq!(GateCall::parse(method, path, query), Ok(call), "{url}");
        }
    }

    #[test]
    fn bad_calls_are_problems() {
        let status = |method, path, query| GateCall::parse(method, path, query).unwrap_err().status;
        assert_eq!(status("POST", "/ask", Some("reason=guess")), 400);
        assert_eq!(status("POST", "/ask", None), 400);
        assert_eq!(status("POST", "/ask", Some("reason=refresh")), 400);
        assert_eq!(status("POST", "/ask", Some("reason=miss&wait=soon")), 400);
        assert_eq!(status("POST", "/release", None), 400);
        assert_eq!(status("GET", "/fill", None), 405);
        assert_eq!(status("POST", "/v1/prices/7", None), 404);
        let capped = GateCall::parse("POST", "/wait", Some("wait=999999999"));
        assert_eq!(
            capped,
            Ok(GateCall::Wait {
                wait_ms: MAX_WAIT_MS
            })
        );
    }

    #[test]
    fn verdicts_round_trip_through_their_answers() {
        let held = stored(1_000, 1);
        for verdict in [
            Verdict::Held(held.clone()),
            Verdict::Publish { claim: 6_000 },
            Verdict::Pending,
        ] {
            let claim = match &verdict {
                Verdict::Publish { claim } => Some(claim.to_string()),
                _ => None,
            };
            let body = match &verdict {
                Verdict::Held(stored) => stored.json.clone(),
                _ => Vec::new(),
            };
            let status = verdict_status(&verdict);
            assert_eq!(verdict_of(status, claim.as_deref(), body), Some(verdict));
        }
        assert_eq!(verdict_of(200, None, b"{}".to_vec()), None);
        assert_eq!(verdict_of(201, None, Vec::new()), None);
        assert_eq!(verdict_of(400, None, Vec::new()), None);
    }
}
