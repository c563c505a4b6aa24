//! The battery of client mistakes sent to the edge: malformed paths, ids, methods, headers and bodies,
//! the fill endpoint's included. Every request is exact bytes on the wire (no URL normalisation by a
//! client library). None of them is a valid request: a valid `GET /v1/prices/{id}` of an uncached product
//! would answer 503 where the REST proxy is unreachable, and is no client mistake.

use pricefront_core::route::{fill_path, FILL_PREFIX};
use pricefront_core::ProductId;
use pricefront_harness::comparison_at;

/// One request of the battery that reaches the Worker.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    /// What the case is.
    pub label: String,
    /// The method token.
    pub method: String,
    /// The request target, as sent.
    pub target: String,
    /// Extra header lines (name, raw value bytes).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body, sent with its Content-Length.
    pub body: Option<Vec<u8>>,
    /// The statuses a correct edge may answer.
    pub expect: &'static [u16],
}

/// A request that breaks HTTP itself: the runtime (`wrangler dev` / workerd) answers it before any Worker
/// code runs.
#[derive(Debug, Clone)]
pub(crate) struct RawCase {
    /// What the case is.
    pub label: &'static str,
    /// The bytes sent.
    pub bytes: Vec<u8>,
    /// Whether to close the sending side after the bytes (a truncated body).
    pub half_close: bool,
}

const BAD_REQUEST: &[u16] = &[400];
const UNAUTHORIZED: &[u16] = &[401];
const NOT_FOUND: &[u16] = &[404];
const NOT_ALLOWED: &[u16] = &[405];
/// A refused token, or a token taken and then a bad body refused: either is a correct refusal.
const REFUSED: &[u16] = &[400, 401];

fn get(label: &str, target: &str, expect: &'static [u16]) -> Case {
    request(label, "GET", target, expect)
}

fn request(label: &str, method: &str, target: &str, expect: &'static [u16]) -> Case {
    Case {
        label: label.into(),
        method: method.into(),
        target: target.into(),
        headers: Vec::new(),
        body: None,
        expect,
    }
}

fn with_header(mut case: Case, name: &str, value: impl Into<Vec<u8>>) -> Case {
    case.headers.push((name.into(), value.into()));
    case
}

/// The cases that reach the Worker. `product` and `other` are two valid ids nobody else uses; `token` is
/// the Worker's fill token.
pub(crate) fn worker_cases(
    product: ProductId,
    other: ProductId,
    token: &str,
    now_ms: u64,
) -> Vec<Case> {
    let mut cases = Vec::new();
    // Bad product ids.
    for (label, id) in [
        ("letters", "abc"),
        ("zero", "0"),
        ("negative", "-1"),
        ("leading zero", "007"),
        ("decimal", "1.5"),
        ("exponent", "1e3"),
        ("plus sign", "+1"),
        ("hex", "0x1F"),
        ("u64 overflow", "18446744073709551616"),
        ("32 digits", "99999999999999999999999999999999"),
        ("empty", ""),
        ("encoded space", "%20"),
        ("encoded NUL", "%00"),
        ("bad escape", "%zz"),
        ("encoded slash", "1%2F2"),
        ("fullwidth digit", "%EF%BC%91"),
        ("encoded script", "%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
        ("SQL", "1'%20OR%201=1--"),
        ("raw non-ASCII", "\u{ff}"),
        ("with a query", "abc?x=1"),
    ] {
        cases.push(get(
            &format!("id: {label}"),
            &format!("/v1/prices/{id}"),
            BAD_REQUEST,
        ));
    }
    cases.push(get(
        "id: 4096 digits",
        &format!("/v1/prices/{}", "9".repeat(4096)),
        BAD_REQUEST,
    ));
    cases.push(get(
        "id: 4096 letters",
        &format!("/v1/prices/{}", "a".repeat(4096)),
        BAD_REQUEST,
    ));
    // Unknown paths.
    for path in [
        "/",
        "/v1",
        "/v1/",
        "/v1/prices",
        "/v1/prices//",
        "/v1/prices/1/x",
        "/v1/prices/1/",
        "/V1/PRICES/1",
        "/v2/prices/1",
        "/%76%31/prices/1",
        "/v1/prices/../healthz",
        "/internal",
        "/internal/v1/prices",
        "/healthz/",
        "/.env",
        "/favicon.ico",
    ] {
        cases.push(get(&format!("path: {path}"), path, NOT_FOUND));
    }
    cases.push(get("path: 8 KiB", &"/a".repeat(4096), NOT_FOUND));
    // Wrong methods (the path is valid; the method is the mistake).
    for method in [
        "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "MKCOL", "PURGE", "LOCK",
    ] {
        cases.push(request(
            &format!("method: {method} on prices"),
            method,
            &format!("/v1/prices/{product}"),
            NOT_ALLOWED,
        ));
    }
    for method in ["GET", "HEAD", "POST", "DELETE", "PATCH", "PROPFIND"] {
        cases.push(request(
            &format!("method: {method} on fill"),
            method,
            &fill_path(product),
            NOT_ALLOWED,
        ));
    }
    for method in ["POST", "PUT", "DELETE"] {
        cases.push(request(
            &format!("method: {method} on health"),
            method,
            "/healthz",
            NOT_ALLOWED,
        ));
    }
    cases.push(request(
        "method: HEAD with a bad id",
        "HEAD",
        "/v1/prices/abc",
        BAD_REQUEST,
    ));
    cases.push(request(
        "method: HEAD on no path",
        "HEAD",
        "/nowhere",
        NOT_FOUND,
    ));
    // Odd headers on otherwise refused requests.
    let bad_id = || get("", "/v1/prices/abc", BAD_REQUEST);
    let header_cases = [
        (
            "If-None-Match garbage",
            "If-None-Match",
            b"\"unterminated".to_vec(),
        ),
        ("Accept text/html", "Accept", b"text/html".to_vec()),
        ("Accept nonsense", "Accept", b";;;,,,*/*;q=abc".to_vec()),
        ("16 KiB header", "X-Padding", vec![b'a'; 16 * 1024]),
        ("non-ASCII header bytes", "X-Weird", vec![0xff, 0xfe, b'a']),
        (
            "Content-Type on a GET",
            "Content-Type",
            b"application/json".to_vec(),
        ),
        ("foreign Host", "X-Forwarded-Host", b"evil.example".to_vec()),
        ("Range", "Range", b"bytes=0-1,5-9".to_vec()),
    ];
    for (label, name, value) in header_cases {
        let mut case = with_header(bad_id(), name, value);
        case.label = format!("header: {label}");
        cases.push(case);
    }
    let mut many = bad_id();
    many.label = "header: 100 extra headers".into();
    for i in 0..100 {
        many.headers.push((format!("X-Extra-{i}"), b"x".to_vec()));
    }
    cases.push(many);
    let mut body_on_get = bad_id();
    body_on_get.label = "header: a body on a GET".into();
    body_on_get.body = Some(b"{\"hello\":1}".to_vec());
    cases.push(body_on_get);

    // The fill endpoint: tokens.
    let fill_target = fill_path(product);
    let valid = comparison_at(product, now_ms, 60_000)
        .to_json()
        .into_bytes();
    let fill = |label: &str, authorization: Option<Vec<u8>>, body: Vec<u8>, expect| {
        let mut case = request(&format!("fill: {label}"), "PUT", &fill_target, expect);
        if let Some(value) = authorization {
            case.headers.push(("Authorization".into(), value));
        }
        case.headers
            .push(("Content-Type".into(), b"application/json".to_vec()));
        case.body = Some(body);
        case
    };
    let bearer = |t: &str| format!("Bearer {t}").into_bytes();
    let mut shorter = token.to_owned();
    shorter.pop();
    cases.push(fill("no token", None, valid.clone(), UNAUTHORIZED));
    cases.push(fill(
        "wrong token",
        Some(bearer("wrong")),
        valid.clone(),
        UNAUTHORIZED,
    ));
    cases.push(fill(
        "empty bearer",
        Some(b"Bearer".to_vec()),
        valid.clone(),
        UNAUTHORIZED,
    ));
    cases.push(fill(
        "empty bearer with space",
        Some(b"Bearer ".to_vec()),
        valid.clone(),
        UNAUTHORIZED,
    ));
    cases.push(fill(
        "token plus one",
        Some(bearer(&format!("{token}x"))),
        valid.clone(),
        UNAUTHORIZED,
    ));
    cases.push(fill(
        "token minus one",
        Some(bearer(&shorter)),
        valid.clone(),
        UNAUTHORIZED,
    ));
    cases.push(fill(
        "Basic scheme",
        Some(format!("Basic {token}").into_bytes()),
        valid.clone(),
        UNAUTHORIZED,
    ));
    cases.push(fill(
        "token without scheme",
        Some(token.as_bytes().to_vec()),
        valid.clone(),
        UNAUTHORIZED,
    ));
    cases.push(fill(
        "non-ASCII token",
        Some(b"Bearer \xff\xfe\xfd".to_vec()),
        valid.clone(),
        UNAUTHORIZED,
    ));
    cases.push(fill(
        "8 KiB token",
        Some(bearer(&"t".repeat(8192))),
        valid.clone(),
        UNAUTHORIZED,
    ));
    cases.push(fill(
        "lower-case scheme, bad body",
        Some(format!("bearer {token}").into_bytes()),
        b"{".to_vec(),
        REFUSED,
    ));
    cases.push(fill(
        "8 MiB body, no token",
        None,
        vec![b'{'; 8 << 20],
        UNAUTHORIZED,
    ));
    let mut twice = fill(
        "two Authorization headers, bad body",
        Some(bearer("wrong")),
        b"{".to_vec(),
        REFUSED,
    );
    twice.headers.push(("Authorization".into(), bearer(token)));
    cases.push(twice);

    // The fill endpoint: bodies, with the right token.
    let right = || Some(bearer(token));
    let other_json = comparison_at(other, now_ms, 60_000).to_json();
    let mutate = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut value: serde_json::Value =
            serde_json::from_slice(&valid).expect("a comparison is JSON");
        edit(&mut value);
        value.to_string().into_bytes()
    };
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("empty body", Vec::new()),
        ("truncated JSON", b"{".to_vec()),
        ("null", b"null".to_vec()),
        ("array", b"[]".to_vec()),
        ("string", b"\"x\"".to_vec()),
        ("number", b"42".to_vec()),
        ("unknown shape", b"{\"a\":1}".to_vec()),
        ("another product's comparison", other_json.into_bytes()),
        ("version 2", mutate(&|v| v["v"] = 2.into())),
        ("product 0", mutate(&|v| v["productId"] = "0".into())),
        (
            "times out of order",
            mutate(&|v| v["freshUntilMs"] = 1.into()),
        ),
        (
            "wrong best offer",
            mutate(&|v| v["bestOffer"] = v["offers"][1].clone()),
        ),
        (
            "complete with failures",
            mutate(&|v| {
                v["failures"] =
                    serde_json::json!([{"vendor":"x","kind":"timeout","detail":"d","attempts":1}]);
            }),
        ),
        (
            "negative price",
            mutate(&|v| v["offers"][0]["price"]["minorUnits"] = (-5).into()),
        ),
        (
            "unknown currency",
            mutate(&|v| v["offers"][0]["price"]["currency"] = "XXZ".into()),
        ),
        (
            "invalid UTF-8",
            b"{\"v\":1,\"productId\":\"\xff\xfe\"}".to_vec(),
        ),
        (
            "10,000 nested arrays",
            [vec![b'['; 10_000], vec![b']'; 10_000]].concat(),
        ),
        ("8 MiB of garbage", vec![b'x'; 8 << 20]),
        (
            "8 MiB string in unknown shape",
            [b"{\"a\":\"".to_vec(), vec![b'a'; 8 << 20], b"\"}".to_vec()].concat(),
        ),
    ];
    for (label, body) in bodies {
        cases.push(fill(label, right(), body, BAD_REQUEST));
    }
    let mut text_plain = fill("text/plain body", right(), b"{".to_vec(), BAD_REQUEST);
    text_plain
        .headers
        .retain(|(name, _)| name != "Content-Type");
    text_plain
        .headers
        .push(("Content-Type".into(), b"text/plain".to_vec()));
    cases.push(text_plain);
    let mut bad_path = fill("a bad id in the path", right(), valid.clone(), BAD_REQUEST);
    bad_path.target = format!("{FILL_PREFIX}abc");
    cases.push(bad_path);
    let mut zero_path = fill("id 0 in the path", right(), valid.clone(), BAD_REQUEST);
    zero_path.target = format!("{FILL_PREFIX}0");
    cases.push(zero_path);
    let mut wrong_product = fill(
        "a valid comparison for another id",
        right(),
        valid,
        BAD_REQUEST,
    );
    wrong_product.target = fill_path(other);
    cases.push(wrong_product);
    cases
}

/// The cases that break HTTP itself.
pub(crate) fn protocol_cases() -> Vec<RawCase> {
    let line = |text: &str| text.as_bytes().to_vec();
    let mut big_header = b"GET /v1/prices/abc HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ".to_vec();
    big_header.extend(vec![b'a'; 200 * 1024]);
    big_header.extend(b"\r\nConnection: close\r\n\r\n");
    vec![
        RawCase { label: "unknown method FOO", bytes: line("FOO /v1/prices/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"), half_close: false },
        RawCase { label: "lower-case method get", bytes: line("get /v1/prices/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"), half_close: false },
        RawCase { label: "CONNECT", bytes: line("CONNECT /v1/prices/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"), half_close: false },
        RawCase { label: "absolute-form target", bytes: line("GET http://evil.example/v1/prices/abc HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"), half_close: false },
        RawCase { label: "asterisk-form target", bytes: line("GET * HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"), half_close: false },
        RawCase { label: "target without a slash", bytes: line("GET v1/prices/abc HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"), half_close: false },
        RawCase { label: "header line without a colon", bytes: line("GET /v1/prices/abc HTTP/1.1\r\nHost: 127.0.0.1\r\nBad header line\r\nConnection: close\r\n\r\n"), half_close: false },
        RawCase { label: "HTTP/1.0 without Host", bytes: line("GET /v1/prices/abc HTTP/1.0\r\n\r\n"), half_close: false },
        RawCase { label: "200 KiB header", bytes: big_header, half_close: false },
        RawCase { label: "Content-Length -1", bytes: line("PUT /internal/v1/prices/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\nConnection: close\r\n\r\n"), half_close: false },
        RawCase { label: "bad chunk size", bytes: line("PUT /internal/v1/prices/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n"), half_close: true },
        RawCase { label: "body shorter than its Content-Length", bytes: line("PUT /internal/v1/prices/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\nConnection: close\r\n\r\n{\"a\""), half_close: true },
    ]
}
