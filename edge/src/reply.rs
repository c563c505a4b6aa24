//! Building responses.

use pricefront_core::problem::{Problem, PROBLEM_CONTENT_TYPE};
use worker::{Response, Result};

/// A JSON response with `status`.
pub fn json(status: u16, body: &impl serde::Serialize) -> Result<Response> {
    Ok(Response::from_json(body)?.with_status(status))
}

/// A problem details response (RFC 9457).
pub fn problem(problem: &Problem) -> Result<Response> {
    let mut response = Response::ok(problem.to_json())?.with_status(problem.status);
    response
        .headers_mut()
        .set("Content-Type", PROBLEM_CONTENT_TYPE)?;
    Ok(response)
}
