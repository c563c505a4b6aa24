// The edge's hit path as a plain JavaScript Worker, written the way Cloudflare's Workers documentation
// shows (an ES module with a fetch handler, `env.PRICES.get(key, "json")`): the peer the benchmark runs
// beside the Rust/wasm Worker. Same key (`price:v1:{id}`), same freshness rule (fresh before freshUntilMs,
// stale before staleUntilMs), same headers (Cache-Control, an ETag per served freshness, 304 on
// If-None-Match) and the same body (`{"freshness": ..., ...comparison}`).
//
// A miss publishes a request to REQUEST_TOPIC through the Kafka REST proxy at REST_PROXY_URL (v2, as the
// Strimzi Kafka Bridge and Confluent REST Proxy documentation show: POST /topics/{topic} with an
// `application/vnd.kafka.json.v2+json` body of records) and answers 202, or 503 when the proxy does not
// take it; without REST_PROXY_URL it answers 202 without publishing. The fill route exists so the
// benchmark can seed this Worker's local KV the way it seeds ours.

const ID = /^[1-9][0-9]{0,19}$/;
const MAX_ID = 18446744073709551615n;

function problem(status, slug, title, detail) {
  return new Response(JSON.stringify({ type: `/problems/${slug}`, title, status, detail }), {
    status,
    headers: { "Content-Type": "application/problem+json" },
  });
}

function validId(text) {
  return ID.test(text) && BigInt(text) <= MAX_ID;
}

function etag(comparison, freshness) {
  return `"${comparison.productId}-${comparison.computedAtMs}-${freshness}"`;
}

function ifNoneMatch(header, tag) {
  if (header === null) return false;
  if (header.trim() === "*") return true;
  const weak = (t) => t.trim().replace(/^W\//, "");
  return (header.match(/(W\/)?"[^"]*"/g) || []).some((t) => weak(t) === weak(tag));
}

async function publish(env, id, now) {
  if (!env.REST_PROXY_URL) return true;
  const response = await fetch(`${env.REST_PROXY_URL}/topics/${env.REQUEST_TOPIC}`, {
    method: "POST",
    headers: {
      "Content-Type": "application/vnd.kafka.json.v2+json",
      Accept: "application/vnd.kafka.v2+json",
    },
    body: JSON.stringify({
      records: [{ key: id, value: { v: 1, productId: id, requestId: crypto.randomUUID(), requestedAtMs: now } }],
    }),
  });
  await response.arrayBuffer();
  return response.ok;
}

async function getPrices(request, env, id) {
  const comparison = await env.PRICES.get(`price:v1:${id}`, "json");
  const now = Date.now();
  if (comparison === null || now >= comparison.staleUntilMs) {
    if (!(await publish(env, id, now))) {
      return problem(503, "unavailable", "Service Unavailable", "the request could not be queued");
    }
    return new Response(
      JSON.stringify({ status: "pending", productId: id, location: `/v1/prices/${id}`, retryAfterSecs: 2 }),
      {
        status: 202,
        headers: {
          "Content-Type": "application/json",
          Location: `/v1/prices/${id}`,
          "Retry-After": "2",
          "Cache-Control": "no-store",
        },
      },
    );
  }
  const freshness = now < comparison.freshUntilMs ? "fresh" : "stale";
  const tag = etag(comparison, freshness);
  const headers = {
    ETag: tag,
    "Cache-Control":
      freshness === "fresh"
        ? `public, max-age=${Math.floor((comparison.freshUntilMs - now) / 1000)}`
        : "no-cache",
  };
  if (ifNoneMatch(request.headers.get("If-None-Match"), tag)) {
    return new Response(null, { status: 304, headers });
  }
  headers["Content-Type"] = "application/json";
  return new Response(JSON.stringify({ freshness, ...comparison }), { status: 200, headers });
}

async function fill(request, env, id) {
  const token = env.FILL_TOKEN;
  const given = request.headers.get("Authorization") || "";
  if (!token || given !== `Bearer ${token}`) {
    return problem(401, "unauthorized", "Unauthorized", "a valid bearer token is required");
  }
  const comparison = await request.json();
  if (comparison.productId !== id) {
    return problem(400, "invalid-comparison", "Invalid comparison", "the body is another product's");
  }
  const ttl = Math.max(60, Math.ceil((comparison.staleUntilMs - Date.now()) / 1000));
  await env.PRICES.put(`price:v1:${id}`, JSON.stringify(comparison), { expirationTtl: ttl });
  return new Response(null, { status: 204 });
}

export default {
  async fetch(request, env) {
    const { pathname } = new URL(request.url);
    if (pathname === "/healthz") return new Response("ok");
    const prices = pathname.match(/^\/v1\/prices\/([^/]*)$/);
    const internal = pathname.match(/^\/internal\/v1\/prices\/([^/]*)$/);
    const match = prices || internal;
    if (!match) return problem(404, "not-found", "Not Found", "no such resource");
    if (!validId(match[1])) return problem(400, "invalid-product-id", "Invalid product id", "not a product id");
    if (prices && (request.method === "GET" || request.method === "HEAD")) return getPrices(request, env, match[1]);
    if (internal && request.method === "PUT") return fill(request, env, match[1]);
    return problem(405, "method-not-allowed", "Method Not Allowed", "not allowed here");
  },
};
