//! The request message carried by the `price-compare-requests` topic.
//!
//! It is versioned JSON: `{"v":1,"productId":"42","requestId":"…","requestedAtMs":1732000000000}`, and
//! `"traceparent":"00-…"` when the request joined a trace ([`crate::trace_context`]); readers of version 1
//! that predate that field ignore it.
//! Its Kafka key is the bare decimal product id ([`PriceRequest::kafka_key`]), so that every request for one
//! product lands in one partition.

use serde::{Deserialize, Serialize};

use crate::{ProductId, UnixMillis};

/// The message version this release writes and reads.
pub const MESSAGE_VERSION: u32 = 1;

/// The longest request id accepted.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Why bytes are not a request message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// The bytes are not a JSON object with a numeric `v`.
    #[error("not a versioned JSON message: {0}")]
    NotVersionedJson(String),
    /// The message is of a version this release does not read.
    #[error("unsupported message version {0} (this release reads version {MESSAGE_VERSION})")]
    UnsupportedVersion(u64),
    /// The message has the right version but a missing or invalid field.
    #[error("invalid message: {0}")]
    Invalid(String),
    /// The request id is empty, too long or not printable ASCII.
    #[error("the request id must be 1 to {MAX_REQUEST_ID_LEN} printable ASCII characters")]
    BadRequestId,
}

/// A request to compare the prices of one product.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PriceRequest {
    /// The message version, always [`MESSAGE_VERSION`] once parsed.
    pub v: u32,
    /// The product to compare.
    pub product_id: ProductId,
    /// An id for tracing this request through the pipeline.
    pub request_id: String,
    /// When the request was made.
    pub requested_at_ms: UnixMillis,
    /// The W3C `traceparent` of the edge's span that published the request, if any. Read leniently: a
    /// value that is not a valid `traceparent` starts a new trace, it never dead-letters the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

#[derive(Deserialize)]
struct Envelope {
    v: u64,
}

impl PriceRequest {
    /// A request of the current version.
    pub fn new(
        product_id: ProductId,
        request_id: impl Into<String>,
        requested_at_ms: UnixMillis,
    ) -> Self {
        Self {
            v: MESSAGE_VERSION,
            product_id,
            request_id: request_id.into(),
            requested_at_ms,
            traceparent: None,
        }
    }

    /// The same request, joined to the trace whose `traceparent` is given.
    pub fn with_traceparent(mut self, traceparent: impl Into<String>) -> Self {
        self.traceparent = Some(traceparent.into());
        self
    }

    /// Reads a message, checking its version first so that a newer producer gets a clear error.
    pub fn from_json(bytes: &[u8]) -> Result<Self, MessageError> {
        let envelope: Envelope = serde_json::from_slice(bytes)
            .map_err(|e| MessageError::NotVersionedJson(e.to_string()))?;
        if envelope.v != u64::from(MESSAGE_VERSION) {
            return Err(MessageError::UnsupportedVersion(envelope.v));
        }
        let request: Self =
            serde_json::from_slice(bytes).map_err(|e| MessageError::Invalid(e.to_string()))?;
        let id = &request.request_id;
        if id.is_empty()
            || id.len() > MAX_REQUEST_ID_LEN
            || !id.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(MessageError::BadRequestId);
        }
        Ok(request)
    }

    /// The message as JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a request always serializes")
    }

    /// The Kafka record key: the bare decimal product id.
    pub fn kafka_key(&self) -> String {
        self.product_id.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn request() -> PriceRequest {
        PriceRequest::new(ProductId::new(42).unwrap(), "req-1", 1_700_000_000_000)
    }

    #[test]
    fn has_a_stable_wire_form() {
        assert_eq!(
            request().to_json(),
            r#"{"v":1,"productId":"42","requestId":"req-1","requestedAtMs":1700000000000}"#
        );
        assert_eq!(request().kafka_key(), "42");
    }

    #[test]
    fn rejects_bad_messages_with_typed_errors() {
        type Check = fn(&MessageError) -> bool;
        let cases: [(&str, Check); 7] = [
            ("", |e| matches!(e, MessageError::NotVersionedJson(_))),
            ("not json", |e| {
                matches!(e, MessageError::NotVersionedJson(_))
            }),
            ("{}", |e| matches!(e, MessageError::NotVersionedJson(_))),
            (r#"{"v":2,"productId":"1"}"#, |e| {
                matches!(e, MessageError::UnsupportedVersion(2))
            }),
            (
                r#"{"v":1,"productId":"0","requestId":"a","requestedAtMs":1}"#,
                |e| matches!(e, MessageError::Invalid(_)),
            ),
            (r#"{"v":1,"productId":"1","requestedAtMs":1}"#, |e| {
                matches!(e, MessageError::Invalid(_))
            }),
            (
                r#"{"v":1,"productId":"1","requestId":"","requestedAtMs":1}"#,
                |e| matches!(e, MessageError::BadRequestId),
            ),
        ];
        for (text, is_expected) in cases {
            let error = PriceRequest::from_json(text.as_bytes()).unwrap_err();
            assert!(is_expected(&error), "{text:?} gave {error:?}");
        }
    }

    #[test]
    fn ignores_unknown_fields_of_its_own_version() {
        let text = r#"{"v":1,"productId":"7","requestId":"r","requestedAtMs":5,"extra":true}"#;
        assert_eq!(
            PriceRequest::from_json(text.as_bytes())
                .unwrap()
                .product_id
                .get(),
            7
        );
    }

    proptest! {
        #[test]
        fn round_trips(id in 1u64.., rid in "[!-~]{1,128}", at in any::<u64>()) {
            let request = PriceRequest::new(ProductId::new(id).unwrap(), rid, at);
            prop_assert_eq!(PriceRequest::from_json(request.to_json().as_bytes()), Ok(request));
        }

        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = PriceRequest::from_json(&bytes);
        }
    }
}
