//! Building responses: JSON bodies, and the body of a problem document (its status and headers are
//! [`crate::error::EdgeError`]'s).

use pricefront_core::problem::{Problem, PROBLEM_CONTENT_TYPE};
use worker::{Response, Result};

/// A JSON response with `status`.
pub fn json(status: u16, body: &impl serde::Serialize) -> Result<Response> {
    Ok(Response::from_json(body)?.with_status(status))
}

/// A JSON response with `status` whose body is already serialized.
pub fn json_bytes(status: u16, body: Vec<u8>) -> Result<Response> {
    let mut response = Response::from_bytes(body)?.with_status(status);
    response
        .headers_mut()
        .set("Content-Type", "application/json")?;
    Ok(response)
}

/// A problem details response (RFC 9457).
pub fn problem(problem: &Problem) -> Result<Response> {
    let mut response = Response::ok(problem.to_json())?.with_status(problem.status);
    response
        .headers_mut()
        .set("Content-Type", PROBLEM_CONTENT_TYPE)?;
    Ok(response)
}
