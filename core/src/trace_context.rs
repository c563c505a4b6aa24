//! W3C Trace Context (`traceparent`): one trace from a client's request at the edge, through the Kafka
//! record, to the consumer's spans and every vendor call.
//!
//! The header is `{version}-{trace-id}-{parent-id}-{flags}`, for example
//! `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`. A hop that receives one keeps its trace id
//! and sends on its own span id as the parent id; a hop that receives none (or one it cannot read)
//! starts a trace. Randomness is the caller's: the core never draws it.
//!
//! The edge answers with `traceresponse` (W3C Trace Context Level 2), the same form with its own span
//! id, so that a support person can find one request's whole path from the client's side.

use std::fmt;

/// The request header that carries the trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The response header that tells the client the trace (and the edge's span) its request joined.
pub const TRACERESPONSE: &str = "traceresponse";

/// The `sampled` flag: the caller may have recorded its span and asks the next hops to record theirs.
const SAMPLED: u8 = 0x01;

/// One hop's place in a trace: which trace, which span this hop is, and the trace flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// The trace's id: 16 bytes, never all zero.
    pub trace_id: [u8; 16],
    /// The span's id: 8 bytes, never all zero.
    pub span_id: [u8; 8],
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
}

impl TraceContext {
    /// Reads a `traceparent` header. `None` for anything the specification says to ignore: wrong
    /// length or characters, uppercase hex, all-zero ids, version `ff`, or a version-00 header with extra
    /// fields. A later version is read by its first four fields, as the specification asks.
    pub fn parse(header: &str) -> Option<Self> {
        let header = header.trim_matches([' ', '\t']);
        let mut fields = header.split('-');
        let version = byte_array::<1>(fields.next()?)?[0];
        let trace_id = byte_array::<16>(fields.next()?)?;
        let span_id = byte_array::<8>(fields.next()?)?;
        let flags = byte_array::<1>(fields.next()?)?[0];
        let extra = fields.next();
        let valid_version = match version {
            0x00 => extra.is_none(),
            0xff => false,
            _ => true,
        };
        (valid_version && trace_id != [0; 16] && span_id != [0; 8]).then_some(Self {
            trace_id,
            span_id,
            flags,
        })
    }

    /// A new trace, sampled, from 24 random bytes (16 for the trace id, 8 for the span id). Zero bytes
    /// (a broken random source) still give valid ids.
    pub fn start(random: [u8; 24]) -> Self {
        let (trace, span) = random.split_at(16);
        Self {
            trace_id: non_zero(trace.try_into().expect("16 bytes")),
            span_id: non_zero(span.try_into().expect("8 bytes")),
            flags: SAMPLED,
        }
    }

    /// The context of `header` when it is a valid `traceparent`, else a new trace: what the edge does
    /// with a client's request. The result's span id is this hop's own (from `random`'s last 8 bytes).
    pub fn continue_or_start(header: Option<&str>, random: [u8; 24]) -> Self {
        match header.and_then(Self::parse) {
            Some(parent) => parent.child(random[16..].try_into().expect("8 bytes")),
            None => Self::start(random),
        }
    }

    /// A span of the same trace, from 8 random bytes: what a hop sends on as the next hop's parent.
    pub fn child(&self, random: [u8; 8]) -> Self {
        Self {
            span_id: non_zero(random),
            ..*self
        }
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The span id as 16 lowercase hex digits.
    pub fn span_id_hex(&self) -> String {
        hex(&self.span_id)
    }
}

/// The header form, version 00: `00-{trace-id}-{span-id}-{flags}`.
impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Written into one stack buffer: the consumer writes one for every vendor call.
        let mut header = [b'-'; 55];
        header[..2].copy_from_slice(b"00");
        hex_into(&self.trace_id, &mut header[3..35]);
        hex_into(&self.span_id, &mut header[36..52]);
        hex_into(&[self.flags], &mut header[53..55]);
        f.write_str(std::str::from_utf8(&header).map_err(|_| fmt::Error)?)
    }
}

/// `N` bytes from exactly `2 * N` lowercase hex digits.
fn byte_array<const N: usize>(field: &str) -> Option<[u8; N]> {
    let digits = field.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let mut bytes = [0; N];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(bytes)
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

/// Lowercase hex, two digits a byte.
fn hex(bytes: &[u8]) -> String {
    let mut digits = vec![0; 2 * bytes.len()];
    hex_into(bytes, &mut digits);
    String::from_utf8(digits).expect("hex digits are ASCII")
}

/// Writes `bytes` as lowercase hex into `out` (twice as long): a table lookup, where a `format!` per
/// byte showed in the consumer's profile.
fn hex_into(bytes: &[u8], out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (byte, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
}

/// The bytes, with the last one set to 1 when all are zero (an all-zero id is invalid).
fn non_zero<const N: usize>(mut bytes: [u8; N]) -> [u8; N] {
    if bytes.iter().all(|&b| b == 0) {
        bytes[N - 1] = 1;
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn reads_and_writes_the_specifications_example() {
        let context = TraceContext::parse(EXAMPLE).unwrap();
        assert_eq!(context.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(context.span_id_hex(), "00f067aa0ba902b7");
        assert_eq!(context.flags, 1);
        assert_eq!(context.to_string(), EXAMPLE);
    }

    #[test]
    fn ignores_what_the_specification_says_to_ignore() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn reads_a_later_version_by_its_first_four_fields() {
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-whatever";
        let context = TraceContext::parse(later).unwrap();
        assert_eq!(context.to_string(), EXAMPLE);
    }

    #[test]
    fn continues_a_valid_trace_with_its_own_span_and_starts_one_otherwise() {
        let random = [7; 24];
        let continued = TraceContext::continue_or_start(Some(EXAMPLE), random);
        assert_eq!(continued.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(continued.span_id, [7; 8]);
        let started = TraceContext::continue_or_start(Some("garbage"), random);
        assert_eq!(started.trace_id, [7; 16]);
        assert_eq!(started.flags, SAMPLED);
        let zero = TraceContext::continue_or_start(None, [0; 24]);
        assert!(TraceContext::parse(&zero.to_string()).is_some());
    }

    proptest! {
        #[test]
        fn every_context_it_makes_reads_back(random in proptest::array::uniform24(any::<u8>()), span in proptest::array::uniform8(any::<u8>())) {
            let context = TraceContext::start(random);
            prop_assert_eq!(TraceContext::parse(&context.to_string()), Some(context));
            let child = context.child(span);
            prop_assert_eq!(child.trace_id, context.trace_id);
            prop_assert_eq!(TraceContext::parse(&child.to_string()), Some(child));
        }
    }
}
