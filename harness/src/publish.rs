//! Publishing requests onto a [`TestEnv`]'s topic: straight to Kafka (keyed and partitioned as the REST
//! proxy does), or through the Kafka REST proxy as the edge does.

use std::time::Duration;

use futures::StreamExt;
use pricefront_core::rest_proxy::{ProxyApi, RecordPosition};
use pricefront_core::{PriceRequest, ProductId};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

use crate::stack::bridge_url;
use crate::{now_ms, HarnessError, TestEnv};

impl TestEnv {
    /// Publishes a request for each product straight to Kafka, keyed by the bare product id (the record
    /// the REST proxy writes for the edge).
    pub async fn publish(
        &self,
        products: impl IntoIterator<Item = ProductId>,
    ) -> Result<Vec<RecordPosition>, HarnessError> {
        Ok(self
            .publish_placed(products)
            .await?
            .into_iter()
            .map(|(_, position)| position)
            .collect())
    }

    /// Like [`TestEnv::publish`], with the product each record is for (to know its partition).
    pub async fn publish_placed(
        &self,
        products: impl IntoIterator<Item = ProductId>,
    ) -> Result<Vec<(ProductId, RecordPosition)>, HarnessError> {
        publish_each(products, 64, |request| async move {
            let position = self
                .publish_raw(request.kafka_key().as_bytes(), request.to_json().as_bytes())
                .await?;
            Ok((request.product_id, position))
        })
        .await
    }

    /// Publishes a record with raw `key` and `value` bytes straight to Kafka.
    pub async fn publish_raw(
        &self,
        key: &[u8],
        value: &[u8],
    ) -> Result<RecordPosition, HarnessError> {
        self.publish_with_headers(key, value, &[]).await
    }

    /// Publishes a record with raw `key` and `value` bytes and the record `headers` (name, value)
    /// straight to Kafka.
    pub async fn publish_with_headers(
        &self,
        key: &[u8],
        value: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<RecordPosition, HarnessError> {
        let mut record_headers = OwnedHeaders::new();
        for (name, header_value) in headers {
            record_headers = record_headers.insert(Header {
                key: name,
                value: Some(header_value.as_bytes()),
            });
        }
        let record = FutureRecord::to(&self.topic)
            .key(key)
            .payload(value)
            .headers(record_headers);
        let delivery = self
            .producer
            .send(record, Duration::from_secs(30))
            .await
            .map_err(|(error, _)| HarnessError::StackDown {
                part: "Kafka",
                detail: format!("it refused the record: {error}"),
            })?;
        Ok(RecordPosition {
            partition: delivery.partition,
            offset: delivery.offset,
        })
    }

    /// Publishes a request for each product through the Kafka REST proxy (v2), as the edge does.
    pub async fn publish_via_rest_proxy(
        &self,
        products: impl IntoIterator<Item = ProductId>,
    ) -> Result<Vec<RecordPosition>, HarnessError> {
        publish_each(products, 16, |request| async move {
            self.publish_request_via_rest_proxy(&request).await
        })
        .await
    }

    /// Publishes `request` through the Kafka REST proxy (the Strimzi Kafka Bridge's v2, record headers
    /// on) with the body the edge sends; where the proxy says it landed.
    pub async fn publish_request_via_rest_proxy(
        &self,
        request: &PriceRequest,
    ) -> Result<RecordPosition, HarnessError> {
        let api = ProxyApi::V2 {
            record_headers: true,
        };
        let call = api.produce_call(&self.topic, request);
        let response = self
            .http
            .post(format!("{}{}", bridge_url(), call.path))
            .header("content-type", call.content_type)
            .header("accept", call.accept)
            .body(call.body)
            .send()
            .await
            .map_err(|e| HarnessError::RestProxy(format!("not reachable: {e}")))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| HarnessError::RestProxy(e.to_string()))?;
        api.parse_reply(status, &bytes)
            .map_err(|e| HarnessError::RestProxy(e.to_string()))
    }
}

/// Sends a new request for each product with `send`, `concurrency` at a time; the first error, if any.
async fn publish_each<F, Fut, T>(
    products: impl IntoIterator<Item = ProductId>,
    concurrency: usize,
    send: F,
) -> Result<Vec<T>, HarnessError>
where
    F: Fn(PriceRequest) -> Fut,
    Fut: std::future::Future<Output = Result<T, HarnessError>>,
{
    let requests: Vec<_> = products
        .into_iter()
        .map(|p| PriceRequest::new(p, uuid::Uuid::new_v4().to_string(), now_ms()))
        .collect();
    futures::stream::iter(requests)
        .map(send)
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}
