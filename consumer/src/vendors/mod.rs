//! The vendor side: whom to ask, how to ask them, and how to read and judge their answers.
//!
//! Vendors are configuration, not code: a TOML file lists them (docs/vendors.md describes every key,
//! `config/vendors/` has ready profiles for real price APIs). A vendor's profile says:
//!
//! - the request ([`request`]): method, URL, query, JSON body, headers, each naming the product by
//!   its id, a GTIN form of it or an identifier from the identifier map ([`identifiers`]);
//! - how the request is authenticated ([`auth`]): a key in a header or the query, an OAuth 2.0
//!   client-credentials token, or RSA-signed headers;
//! - how to read the answer ([`offers`]): one offer, or the cheapest of an array that passes filters,
//!   shipping included;
//! - what its error statuses mean ([`StatusKind`]), and its limits: quotas per process ([`quota`]), a
//!   daily budget for the whole group ([`budget`]), and a circuit breaker ([`breaker`]).
//!
//! [`vendor`] is one vendor ready to be asked; [`file`](mod@file) reads and checks the file; [`fetch`]
//! asks one vendor for one product with all of the above; [`fanout`] asks every vendor at once and
//! aggregates their offers.

pub mod auth;
pub mod breaker;
pub mod budget;
pub mod fanout;
pub mod fetch;
pub mod file;
pub mod identifiers;
pub mod offers;
pub mod quota;
pub mod request;
pub mod vendor;

pub use file::{load, parse, shortest_timeout, timeouts_not_within, VendorsError};
pub use offers::{CurrencySource, JsonPointer};
pub use vendor::{ProductIds, StatusKind, Vendor};
