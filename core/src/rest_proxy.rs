//! The bodies of the Kafka REST proxy produce APIs, so that the edge can publish over HTTP.
//!
//! - **v2** (Confluent REST Proxy v2, Strimzi Kafka Bridge, Redpanda's HTTP proxy):
//!   `POST /topics/{topic}` with the binary embedded format, answered by `{"offsets":[...]}`.
//! - **v3** (Confluent Platform and Confluent Cloud):
//!   `POST /v3/clusters/{cluster_id}/topics/{topic}/records`, one record per call.
//!
//! The paths are relative to the proxy's base URL (`REST_PROXY_URL`, [`produce_url`]), which is where
//! the API lives, not always the host: the standalone Confluent REST Proxy (and the v2 proxies) serve
//! at the root (`https://rest-proxy.example.com:8082`), Confluent Cloud and Confluent Server serve v3
//! under `/kafka` (`https://pkc-xxxxx.<region>.<cloud>.confluent.cloud:443/kafka`).
//!
//! Whatever the API, the record key is the bare decimal product id (v2: its bytes in base64; v3: a
//! `STRING`), so both put one product's requests in one partition.
//!
//! The request's `traceparent` ([`crate::trace_context`]) travels in the message always, and in a
//! record header too where the API carries headers: v3, and the Strimzi Kafka Bridge's v2
//! (`REST_PROXY_RECORD_HEADERS=true`; Confluent's v2 has no record headers).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::trace_context::TRACEPARENT;
use crate::PriceRequest;

/// The content type of a v2 produce request in the binary embedded format.
pub const V2_BINARY_CONTENT_TYPE: &str = "application/vnd.kafka.binary.v2+json";
/// The content type a v2 client accepts in reply.
pub const V2_ACCEPT: &str = "application/vnd.kafka.v2+json";
/// The content type of v3 requests and replies.
pub const V3_CONTENT_TYPE: &str = "application/json";

/// Which produce API the REST proxy speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyApi {
    /// `POST /topics/{topic}`.
    V2 {
        /// Whether records carry headers (`[{"key":..,"value":<base64>}]`): the Strimzi Kafka Bridge's
        /// v2 does, Confluent's v2 does not.
        record_headers: bool,
    },
    /// `POST /v3/clusters/{cluster_id}/topics/{topic}/records`.
    V3 {
        /// The Kafka cluster id that the proxy serves.
        cluster_id: String,
    },
}

/// One HTTP call that produces a record: what to send, relative to the proxy's base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceCall {
    /// The path, starting with `/`.
    pub path: String,
    /// The `Content-Type` header.
    pub content_type: &'static str,
    /// The `Accept` header.
    pub accept: &'static str,
    /// The JSON body.
    pub body: String,
}

/// Where the proxy says a record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordPosition {
    /// The partition.
    pub partition: i32,
    /// The offset within the partition.
    pub offset: i64,
}

/// Why a produce call did not write the record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProduceError {
    /// The proxy refused the call (4xx): a configuration or credentials problem, not worth retrying.
    #[error("the REST proxy refused the record ({status}): {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The proxy's message.
        message: String,
    },
    /// The proxy or the cluster behind it is failing (5xx, or an error for the record): retry later.
    #[error("the REST proxy could not write the record ({status}): {message}")]
    Unavailable {
        /// The HTTP status, or the record's error code.
        status: u16,
        /// The proxy's message.
        message: String,
    },
    /// A success status with a body that is not a produce reply.
    #[error("the REST proxy answered with an unexpected body: {0}")]
    Malformed(String),
}

/// Why the REST proxy settings cannot work: a configuration error, reported on the first request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProxyConfigError {
    /// `REST_PROXY_API=v3` without `KAFKA_CLUSTER_ID`: every produce path would be `/v3/clusters//...`.
    #[error(
        "KAFKA_CLUSTER_ID is not set, but REST_PROXY_API=v3 needs it in every produce path \
         (/v3/clusters/{{KAFKA_CLUSTER_ID}}/topics/...): set KAFKA_CLUSTER_ID to the Kafka cluster's id \
         (Confluent Cloud: lkc-...)"
    )]
    MissingClusterId,
    /// `REST_PROXY_API` is neither `v2` nor `v3`.
    #[error("REST_PROXY_API is {0:?}; it must be \"v2\" or \"v3\"")]
    UnknownApi(String),
    /// `REST_PROXY_RECORD_HEADERS` is neither `true` nor `false`.
    #[error("REST_PROXY_RECORD_HEADERS is {0:?}; it must be \"true\" or \"false\"")]
    RecordHeaders(String),
    /// A bare Confluent Cloud endpoint with v3: Confluent Cloud serves v3 under `/kafka`.
    #[error(
        "REST_PROXY_URL {url:?} is a Confluent Cloud endpoint without the /kafka prefix under which it \
         serves the v3 API: set REST_PROXY_URL to \"{url}/kafka\""
    )]
    ConfluentCloudWithoutKafkaPrefix {
        /// The configured URL, without a trailing slash.
        url: String,
    },
}

impl ProxyApi {
    /// The API from the settings `REST_PROXY_API` (unset: v2), `KAFKA_CLUSTER_ID` and
    /// `REST_PROXY_RECORD_HEADERS` (v2 only, unset: false), each `None` when unset or empty. v3 without a
    /// cluster id is an error, never a path with an empty segment.
    pub fn from_settings(
        api: Option<&str>,
        cluster_id: Option<&str>,
        record_headers: Option<&str>,
    ) -> Result<Self, ProxyConfigError> {
        let record_headers = match record_headers
            .map(|h| h.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("") | Some("false") => false,
            Some("true") => true,
            Some(_) => {
                return Err(ProxyConfigError::RecordHeaders(
                    record_headers.unwrap_or_default().to_owned(),
                ))
            }
        };
        match api.map(|a| a.trim().to_ascii_lowercase()).as_deref() {
            None | Some("") | Some("v2") => Ok(ProxyApi::V2 { record_headers }),
            Some("v3") => match cluster_id.map(str::trim) {
                Some(id) if !id.is_empty() => Ok(ProxyApi::V3 {
                    cluster_id: id.to_owned(),
                }),
                _ => Err(ProxyConfigError::MissingClusterId),
            },
            Some(_) => Err(ProxyConfigError::UnknownApi(
                api.unwrap_or_default().to_owned(),
            )),
        }
    }

    /// Checks `REST_PROXY_URL` against this API: a Confluent Cloud host with v3 needs the `/kafka`
    /// prefix (the bare endpoint answers 404 to every produce call).
    pub fn check_base_url(&self, base_url: &str) -> Result<(), ProxyConfigError> {
        let url = base_url.trim_end_matches('/');
        let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
        let (authority, path) = after_scheme
            .split_once('/')
            .map_or((after_scheme, ""), |(a, p)| (a, p));
        let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
        let confluent_cloud = host.to_ascii_lowercase().ends_with(".confluent.cloud");
        if matches!(self, ProxyApi::V3 { .. }) && confluent_cloud && path.is_empty() {
            return Err(ProxyConfigError::ConfluentCloudWithoutKafkaPrefix {
                url: url.to_owned(),
            });
        }
        Ok(())
    }

    /// The call that publishes `request` to `topic`, its `traceparent` in a record header where the
    /// API carries headers.
    pub fn produce_call(&self, topic: &str, request: &PriceRequest) -> ProduceCall {
        let key = request.kafka_key();
        let traceparent = request.traceparent.as_deref();
        match self {
            ProxyApi::V2 { record_headers } => ProduceCall {
                path: format!("/topics/{topic}"),
                content_type: V2_BINARY_CONTENT_TYPE,
                accept: V2_ACCEPT,
                body: to_json(&V2Body {
                    records: [V2Record {
                        key: BASE64.encode(key),
                        value: BASE64.encode(request.to_json()),
                        headers: traceparent.filter(|_| *record_headers).map(|value| {
                            [V2Header {
                                key: TRACEPARENT,
                                value: BASE64.encode(value),
                            }]
                        }),
                    }],
                }),
            },
            ProxyApi::V3 { cluster_id } => ProduceCall {
                path: format!("/v3/clusters/{cluster_id}/topics/{topic}/records"),
                content_type: V3_CONTENT_TYPE,
                accept: V3_CONTENT_TYPE,
                body: to_json(&V3Body {
                    key: V3Data {
                        kind: "STRING",
                        data: key.as_str(),
                    },
                    value: V3Data {
                        kind: "JSON",
                        data: request,
                    },
                    headers: traceparent.map(|value| {
                        [V3Header {
                            name: TRACEPARENT,
                            value: BASE64.encode(value),
                        }]
                    }),
                }),
            },
        }
    }

    /// Reads the proxy's reply to a produce call.
    pub fn parse_reply(&self, status: u16, body: &[u8]) -> Result<RecordPosition, ProduceError> {
        if !(200..300).contains(&status) {
            let message = serde_json::from_slice::<ReplyRecord>(body)
                .ok()
                .and_then(|r| r.message)
                .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect());
            return Err(
                if (400..500).contains(&status) && status != 408 && status != 429 {
                    ProduceError::Refused { status, message }
                } else {
                    ProduceError::Unavailable { status, message }
                },
            );
        }
        let malformed = |e: serde_json::Error| ProduceError::Malformed(e.to_string());
        let record = match self {
            ProxyApi::V2 { .. } => serde_json::from_slice::<V2Reply>(body)
                .map_err(malformed)?
                .offsets
                .into_iter()
                .next()
                .ok_or_else(|| ProduceError::Malformed("no offsets".into()))?,
            ProxyApi::V3 { .. } => {
                serde_json::from_slice::<ReplyRecord>(body).map_err(malformed)?
            }
        };
        if let Some(code) = record.error_code {
            // v3 puts the HTTP-like status of the record here; v2 a Kafka error code.
            if !matches!(self, ProxyApi::V3 { .. } if (200..300).contains(&code)) {
                let message = record
                    .error
                    .or(record.message)
                    .unwrap_or_else(|| "record not written".to_owned());
                return Err(ProduceError::Unavailable {
                    status: u16::try_from(code).unwrap_or(u16::MAX),
                    message,
                });
            }
        }
        let partition = match self {
            ProxyApi::V2 { .. } => record.partition,
            ProxyApi::V3 { .. } => record.partition_id,
        };
        match (partition, record.offset) {
            (Some(partition), Some(offset)) => Ok(RecordPosition {
                partition: i32::try_from(partition)
                    .map_err(|_| ProduceError::Malformed("partition out of range".into()))?,
                offset,
            }),
            _ => Err(ProduceError::Malformed(
                "no partition and offset in the reply".into(),
            )),
        }
    }
}

/// A v2 produce body: `{"records":[{"key":..,"value":..}]}`, both base64.
#[derive(Serialize)]
struct V2Body {
    records: [V2Record; 1],
}

#[derive(Serialize)]
struct V2Record {
    key: String,
    value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<[V2Header; 1]>,
}

/// A record header of the Strimzi Kafka Bridge: `{"key":..,"value":<base64>}`.
#[derive(Serialize)]
struct V2Header {
    key: &'static str,
    value: String,
}

/// A v3 record header: `{"name":..,"value":<base64>}`.
#[derive(Serialize)]
struct V3Header {
    name: &'static str,
    value: String,
}

/// A v3 produce body: `{"key":{"type":"STRING","data":..},"value":{"type":"JSON","data":..}}`.
#[derive(Serialize)]
struct V3Body<'a> {
    key: V3Data<&'a str>,
    value: V3Data<&'a PriceRequest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<[V3Header; 1]>,
}

#[derive(Serialize)]
struct V3Data<T> {
    #[serde(rename = "type")]
    kind: &'static str,
    data: T,
}

/// A v2 reply: `{"offsets":[record]}`.
#[derive(Deserialize)]
struct V2Reply {
    offsets: Vec<ReplyRecord>,
}

/// One record's outcome in a reply (v2: an element of `offsets`; v3: the whole reply), or an error
/// reply's body. Fields that do not apply are absent or null.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ReplyRecord {
    partition: Option<i64>,
    partition_id: Option<i64>,
    offset: Option<i64>,
    error_code: Option<u64>,
    error: Option<String>,
    message: Option<String>,
}

fn to_json(body: &impl Serialize) -> String {
    serde_json::to_string(body).expect("a produce body always serializes")
}

/// The URL of `call` at the proxy whose base URL is `base_url` (`REST_PROXY_URL`): the base without a
/// trailing slash, then the call's path. Confluent Cloud's base ends in `/kafka`; a standalone proxy's
/// is its root.
pub fn produce_url(base_url: &str, call: &ProduceCall) -> String {
    format!("{}{}", base_url.trim_end_matches('/'), call.path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ProductId;
    use serde_json::{json, Value};

    const V2: ProxyApi = ProxyApi::V2 {
        record_headers: false,
    };

    fn request() -> PriceRequest {
        PriceRequest::new(ProductId::new(42).unwrap(), "r1", 7)
    }

    #[test]
    fn v2_call_uses_binary_embedded_format_with_the_bare_id_as_key() {
        let call = V2.produce_call("price-compare-requests", &request());
        assert_eq!(call.path, "/topics/price-compare-requests");
        assert_eq!(call.content_type, V2_BINARY_CONTENT_TYPE);
        let body: Value = serde_json::from_str(&call.body).unwrap();
        let record = &body["records"][0];
        assert_eq!(
            BASE64.decode(record["key"].as_str().unwrap()).unwrap(),
            b"42"
        );
        let value = BASE64.decode(record["value"].as_str().unwrap()).unwrap();
        assert_eq!(PriceRequest::from_json(&value).unwrap(), request());
    }

    #[test]
    fn v3_call_uses_a_string_key() {
        let api = ProxyApi::V3 {
            cluster_id: "lkc-1".into(),
        };
        let call = api.produce_call("t", &request());
        assert_eq!(call.path, "/v3/clusters/lkc-1/topics/t/records");
        let body: Value = serde_json::from_str(&call.body).unwrap();
        assert_eq!(body["key"], json!({"type": "STRING", "data": "42"}));
        let value = serde_json::to_vec(&body["value"]["data"]).unwrap();
        assert_eq!(PriceRequest::from_json(&value).unwrap(), request());
    }

    #[test]
    fn the_traceparent_rides_in_a_record_header_where_the_api_carries_headers() {
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let traced = request().with_traceparent(traceparent);
        let encoded = BASE64.encode(traceparent);
        let bridge = ProxyApi::V2 {
            record_headers: true,
        };
        let body: Value = serde_json::from_str(&bridge.produce_call("t", &traced).body).unwrap();
        assert_eq!(
            body["records"][0]["headers"],
            json!([{"key": "traceparent", "value": encoded}])
        );
        let v3 = ProxyApi::V3 {
            cluster_id: "lkc-1".into(),
        };
        let body: Value = serde_json::from_str(&v3.produce_call("t", &traced).body).unwrap();
        assert_eq!(
            body["headers"],
            json!([{"name": "traceparent", "value": encoded}])
        );
        // Confluent's v2 has no record headers: the trace rides in the message alone.
        let body: Value = serde_json::from_str(&V2.produce_call("t", &traced).body).unwrap();
        assert_eq!(body["records"][0].get("headers"), None);
        let value = BASE64
            .decode(body["records"][0]["value"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            PriceRequest::from_json(&value)
                .unwrap()
                .traceparent
                .as_deref(),
            Some(traceparent)
        );
        // Without a trace, no headers at all, whatever the API.
        let body: Value = serde_json::from_str(&bridge.produce_call("t", &request()).body).unwrap();
        assert_eq!(body["records"][0].get("headers"), None);
    }

    #[test]
    fn record_headers_is_a_boolean() {
        assert_eq!(
            ProxyApi::from_settings(Some("v2"), None, Some("true")),
            Ok(ProxyApi::V2 {
                record_headers: true
            })
        );
        assert_eq!(
            ProxyApi::from_settings(Some("v2"), None, Some("yes")),
            Err(ProxyConfigError::RecordHeaders("yes".into()))
        );
    }

    #[test]
    fn v3_produce_urls_for_confluent_cloud_and_a_standalone_proxy() {
        let api = ProxyApi::from_settings(Some("v3"), Some("lkc-1"), None).unwrap();
        let call = api.produce_call("price-compare-requests", &request());
        // Confluent Cloud (and Confluent Server): the v3 API is under /kafka.
        let cloud = "https://pkc-abc12.eu-west-1.aws.confluent.cloud:443/kafka";
        assert_eq!(api.check_base_url(cloud), Ok(()));
        assert_eq!(
            produce_url(cloud, &call),
            "https://pkc-abc12.eu-west-1.aws.confluent.cloud:443/kafka/v3/clusters/lkc-1/topics/price-compare-requests/records"
        );
        // The standalone Confluent REST Proxy: at its root.
        let standalone = "http://rest-proxy.internal:8082/";
        assert_eq!(api.check_base_url(standalone), Ok(()));
        assert_eq!(
            produce_url(standalone, &call),
            "http://rest-proxy.internal:8082/v3/clusters/lkc-1/topics/price-compare-requests/records"
        );
        // The bare Confluent Cloud endpoint (404 on every produce) is refused, saying what to set.
        let bare = "https://pkc-abc12.eu-west-1.aws.confluent.cloud:443/";
        let error = api.check_base_url(bare).unwrap_err();
        assert!(error
            .to_string()
            .contains("\"https://pkc-abc12.eu-west-1.aws.confluent.cloud:443/kafka\""));
        // v2 paths stay at the base too.
        let v2 = V2.produce_call("t", &request());
        assert_eq!(
            produce_url("http://127.0.0.1:8080", &v2),
            "http://127.0.0.1:8080/topics/t"
        );
        assert_eq!(V2.check_base_url(bare), Ok(()));
    }

    #[test]
    fn v3_without_a_cluster_id_is_a_configuration_error() {
        for missing in [None, Some(""), Some("  ")] {
            let error = ProxyApi::from_settings(Some("v3"), missing, None).unwrap_err();
            assert_eq!(error, ProxyConfigError::MissingClusterId);
            assert!(error.to_string().contains("KAFKA_CLUSTER_ID"));
        }
        assert_eq!(
            ProxyApi::from_settings(Some("V3"), Some("lkc-1"), None),
            Ok(ProxyApi::V3 {
                cluster_id: "lkc-1".into()
            })
        );
        assert_eq!(ProxyApi::from_settings(None, None, None), Ok(V2));
        assert_eq!(ProxyApi::from_settings(Some("v2"), None, None), Ok(V2));
        assert!(matches!(
            ProxyApi::from_settings(Some("v4"), None, None),
            Err(ProxyConfigError::UnknownApi(_))
        ));
    }

    #[test]
    fn replies_are_read_for_both_apis() {
        let v2 = br#"{"offsets":[{"partition":2,"offset":17}]}"#;
        assert_eq!(
            V2.parse_reply(200, v2),
            Ok(RecordPosition {
                partition: 2,
                offset: 17
            })
        );
        let v3 =
            br#"{"error_code":200,"cluster_id":"c","topic_name":"t","partition_id":1,"offset":5}"#;
        let api = ProxyApi::V3 {
            cluster_id: "c".into(),
        };
        assert_eq!(
            api.parse_reply(200, v3),
            Ok(RecordPosition {
                partition: 1,
                offset: 5
            })
        );
    }

    #[test]
    fn failures_are_classified() {
        let refused = br#"{"error_code":404,"message":"topic not found"}"#;
        assert!(matches!(
            V2.parse_reply(404, refused),
            Err(ProduceError::Refused { status: 404, .. })
        ));
        assert!(matches!(
            V2.parse_reply(503, b"<html>"),
            Err(ProduceError::Unavailable { status: 503, .. })
        ));
        let record_error = br#"{"offsets":[{"partition":null,"offset":null,"error_code":50002,"error":"broker down"}]}"#;
        assert!(matches!(
            V2.parse_reply(200, record_error),
            Err(ProduceError::Unavailable { status: 50002, .. })
        ));
        assert!(matches!(
            V2.parse_reply(200, b"{}"),
            Err(ProduceError::Malformed(_))
        ));
    }
}
