//! A vendor's request, as its profile describes it: the method, the URL (a base and a path), the query,
//! a JSON body for a POST, and headers; any of the URL's path, the query values and the body's strings
//! may name the product by one of its identifiers ([`Placeholder`]).
//!
//! Everything is parsed once, at load: a request for a product only fills in the identifiers.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;

use pricefront_core::gtin::{Gtin, GtinForm};
use pricefront_core::ProductId;
use reqwest::header::HeaderMap;
use reqwest::{Method, Url};
use serde_json::Value;

/// A name for the product in a request template.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Placeholder {
    /// `{productId}`: the product id as it is.
    ProductId,
    /// `{gtin14}`, `{gtin13}`, `{upc}`: the product id read as a GTIN, zero-padded
    /// ([`pricefront_core::gtin`]).
    Gtin(GtinForm),
    /// `{id:SCHEME}`: the product's identifier in `SCHEME` from the identifier map (an ASIN, a SKU).
    Mapped(String),
}

impl std::fmt::Display for Placeholder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Placeholder::ProductId => f.write_str("{productId}"),
            Placeholder::Gtin(form) => write!(f, "{{{}}}", form.placeholder()),
            Placeholder::Mapped(scheme) => write!(f, "{{id:{scheme}}}"),
        }
    }
}

/// Why a template cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// `{id:…}` names no valid scheme.
    #[error(
        "{0:?} is not an identifier scheme (lower-case letters, digits and _, e.g. {{id:asin}})"
    )]
    BadScheme(String),
}

/// A text with placeholders. Only the names above are placeholders: other braces (eBay's
/// `conditionIds:{1000}` filter) stay as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Name(Placeholder),
}

impl Template {
    /// Parses `text`.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let name = after.find('}').map(|close| &after[..close]);
            let placeholder = match name {
                Some("productId") => Some(Placeholder::ProductId),
                Some("gtin14") => Some(Placeholder::Gtin(GtinForm::Gtin14)),
                Some("gtin13") => Some(Placeholder::Gtin(GtinForm::Gtin13)),
                Some("upc") => Some(Placeholder::Gtin(GtinForm::Upc)),
                Some(name) => match name.strip_prefix("id:") {
                    Some(scheme) if pricefront_core::identifier_map::is_scheme_name(scheme) => {
                        Some(Placeholder::Mapped(scheme.to_owned()))
                    }
                    Some(scheme) => return Err(TemplateError::BadScheme(scheme.to_owned())),
                    None => None,
                },
                None => None,
            };
            match (placeholder, name) {
                (Some(placeholder), Some(name)) => {
                    literal.push_str(&rest[..open]);
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Name(placeholder));
                    rest = &after[name.len() + 1..];
                }
                _ => {
                    literal.push_str(&rest[..=open]);
                    rest = after;
                }
            }
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Self { parts })
    }

    /// The placeholders it names.
    pub fn placeholders(&self) -> impl Iterator<Item = &Placeholder> {
        self.parts.iter().filter_map(|part| match part {
            Part::Name(placeholder) => Some(placeholder),
            Part::Text(_) => None,
        })
    }

    /// The text with `ids` filled in; `Err` names the first identifier the product does not have.
    pub fn render(&self, ids: &Identifiers<'_>) -> Result<Cow<'_, str>, Placeholder> {
        if let [Part::Text(text)] = self.parts.as_slice() {
            return Ok(Cow::Borrowed(text));
        }
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Name(placeholder) => ids.write(placeholder, &mut out)?,
            }
        }
        Ok(Cow::Owned(out))
    }
}

/// A product's identifiers, as a request names them.
#[derive(Debug, Clone, Copy)]
pub struct Identifiers<'a> {
    product: ProductId,
    /// The product id read as a GTIN, when the catalog's ids are GTINs and it is a valid one.
    gtin: Option<Gtin>,
    /// The product's identifiers from the identifier map, by scheme.
    mapped: &'a HashMap<String, String>,
}

impl<'a> Identifiers<'a> {
    /// The identifiers of `product`: GTIN forms when `ids_are_gtins`, and `mapped` from the map.
    pub fn new(
        product: ProductId,
        ids_are_gtins: bool,
        mapped: &'a HashMap<String, String>,
    ) -> Self {
        Self {
            product,
            gtin: ids_are_gtins.then(|| Gtin::of(product)).flatten(),
            mapped,
        }
    }

    fn write(&self, placeholder: &Placeholder, out: &mut String) -> Result<(), Placeholder> {
        let missing = || placeholder.clone();
        match placeholder {
            Placeholder::ProductId => {
                let _ = write!(out, "{}", self.product);
            }
            Placeholder::Gtin(form) => out.push_str(
                self.gtin
                    .as_ref()
                    .and_then(|g| g.form(*form))
                    .ok_or_else(missing)?,
            ),
            Placeholder::Mapped(scheme) => {
                out.push_str(self.mapped.get(scheme).ok_or_else(missing)?)
            }
        }
        Ok(())
    }
}

/// A JSON body template: the JSON as written, with placeholders in its strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyTemplate {
    /// A string with placeholders.
    Text(Template),
    /// An array.
    Array(Vec<BodyTemplate>),
    /// An object (its keys as written).
    Object(Vec<(String, BodyTemplate)>),
    /// A number, a boolean or null.
    Other(Value),
}

impl BodyTemplate {
    /// Parses a JSON text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        Self::of(value).map_err(|e| e.to_string())
    }

    fn of(value: Value) -> Result<Self, TemplateError> {
        Ok(match value {
            Value::String(text) => BodyTemplate::Text(Template::parse(&text)?),
            Value::Array(items) => {
                BodyTemplate::Array(items.into_iter().map(Self::of).collect::<Result<_, _>>()?)
            }
            Value::Object(map) => BodyTemplate::Object(
                map.into_iter()
                    .map(|(k, v)| Ok((k, Self::of(v)?)))
                    .collect::<Result<_, TemplateError>>()?,
            ),
            other => BodyTemplate::Other(other),
        })
    }

    fn placeholders(&self, into: &mut BTreeSet<Placeholder>) {
        match self {
            BodyTemplate::Text(template) => into.extend(template.placeholders().cloned()),
            BodyTemplate::Array(items) => items.iter().for_each(|i| i.placeholders(into)),
            BodyTemplate::Object(fields) => fields.iter().for_each(|(_, v)| v.placeholders(into)),
            BodyTemplate::Other(_) => {}
        }
    }

    fn render(&self, ids: &Identifiers<'_>) -> Result<Value, Placeholder> {
        Ok(match self {
            BodyTemplate::Text(template) => Value::String(template.render(ids)?.into_owned()),
            BodyTemplate::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| i.render(ids))
                    .collect::<Result<_, _>>()?,
            ),
            BodyTemplate::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.render(ids)?)))
                    .collect::<Result<_, Placeholder>>()?,
            ),
            BodyTemplate::Other(value) => value.clone(),
        })
    }
}

/// A vendor's request, ready to be filled in for a product.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    /// GET or POST.
    pub method: Method,
    /// `scheme://authority` of the URL, parsed once: parsing whole URLs (the host through IDNA) took
    /// about a twentieth of the consumer's CPU.
    origin: Url,
    /// The rest of the URL (path, and a query written in it).
    path: Template,
    /// Query parameters added to the URL, values percent-encoded.
    query: Vec<(String, Template)>,
    /// The JSON body of a POST.
    body: Option<BodyTemplate>,
    /// Headers sent with every request (secrets already substituted).
    pub headers: HeaderMap,
}

/// A request filled in for one product.
#[derive(Debug, Clone)]
pub struct FilledRequest {
    /// The method.
    pub method: Method,
    /// The URL, query included.
    pub url: Url,
    /// The JSON body, for a POST.
    pub body: Option<Vec<u8>>,
}

impl RequestTemplate {
    /// A request to the absolute `url` (`{placeholders}` allowed after its authority), with `query`
    /// parameters, an optional JSON `body` and `headers`.
    pub fn new(
        method: Method,
        url: &str,
        query: &BTreeMap<String, String>,
        body: Option<&str>,
        headers: HeaderMap,
    ) -> Result<Self, String> {
        let scheme_end = url
            .find("://")
            .ok_or_else(|| format!("{url:?} is not an absolute http(s) URL"))?;
        let after = scheme_end + 3;
        let authority_end = url[after..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |i| after + i);
        let origin = Url::parse(&url[..authority_end])
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| format!("{url:?} is not an http(s) URL"))?;
        if url[..authority_end].contains('{') {
            return Err(format!(
                "{url:?}: placeholders may appear only after the host (in the path or the query)"
            ));
        }
        let path = Template::parse(&url[authority_end..]).map_err(|e| e.to_string())?;
        let query = query
            .iter()
            .map(|(name, value)| {
                Ok((
                    name.clone(),
                    Template::parse(value).map_err(|e| format!("query {name}: {e}"))?,
                ))
            })
            .collect::<Result<_, String>>()?;
        let body = body
            .map(|text| BodyTemplate::parse(text).map_err(|e| format!("body: {e}")))
            .transpose()?;
        if body.is_some() && method != Method::POST {
            return Err("a body is sent only with method = \"POST\"".into());
        }
        let template = Self {
            method,
            origin,
            path,
            query,
            body,
            headers,
        };
        // A sample product, to refuse a URL that cannot be made at load rather than at each call.
        let sample_ids: HashMap<String, String> = template
            .placeholders()
            .into_iter()
            .filter_map(|p| match p {
                Placeholder::Mapped(scheme) => Some((scheme, "SAMPLE1".to_owned())),
                _ => None,
            })
            .collect();
        let sample = Identifiers {
            product: ProductId::new(12_345_678_905).expect("non-zero"),
            gtin: Gtin::of(ProductId::new(12_345_678_905).expect("non-zero")),
            mapped: &sample_ids,
        };
        if let Err(RequestError::Unbuildable(error)) = template.fill(&sample) {
            return Err(format!("the URL cannot be made: {error}"));
        }
        Ok(template)
    }

    /// Every placeholder the request names.
    pub fn placeholders(&self) -> BTreeSet<Placeholder> {
        let mut names: BTreeSet<Placeholder> = self.path.placeholders().cloned().collect();
        for (_, value) in &self.query {
            names.extend(value.placeholders().cloned());
        }
        if let Some(body) = &self.body {
            body.placeholders(&mut names);
        }
        names
    }

    /// The request for the product `ids` name.
    pub fn fill(&self, ids: &Identifiers<'_>) -> Result<FilledRequest, RequestError> {
        let path = self
            .path
            .render(ids)
            .map_err(RequestError::MissingIdentifier)?;
        let mut url = Url::options()
            .base_url(Some(&self.origin))
            .parse(&path)
            .map_err(|e| RequestError::Unbuildable(e.to_string()))?;
        if !self.query.is_empty() {
            let mut pairs = url.query_pairs_mut();
            for (name, value) in &self.query {
                let value = value.render(ids).map_err(RequestError::MissingIdentifier)?;
                pairs.append_pair(name, &value);
            }
        }
        let body = match &self.body {
            Some(body) => {
                let value = body.render(ids).map_err(RequestError::MissingIdentifier)?;
                let bytes = serde_json::to_vec(&value)
                    .map_err(|e| RequestError::Unbuildable(e.to_string()))?;
                Some(bytes)
            }
            None => None,
        };
        Ok(FilledRequest {
            method: self.method.clone(),
            url,
            body,
        })
    }
}

/// Why no request could be made for a product.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The product has no identifier the request names: the vendor does not list it.
    #[error("the product has no {0} identifier")]
    MissingIdentifier(Placeholder),
    /// The URL or the body cannot be made of what the identifiers gave.
    #[error("the request could not be made: {0}")]
    Unbuildable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(product: u64, mapped: &HashMap<String, String>) -> Identifiers<'_> {
        Identifiers::new(ProductId::new(product).unwrap(), true, mapped)
    }

    #[test]
    fn only_known_names_are_placeholders() {
        let template = Template::parse("a{upc}b{x}{productId}c:{1000}{id:asin}").unwrap();
        let names: Vec<_> = template.placeholders().map(|p| p.to_string()).collect();
        assert_eq!(names, ["{upc}", "{productId}", "{id:asin}"]);
        let mapped = HashMap::from([("asin".to_owned(), "B0TEST".to_owned())]);
        assert_eq!(
            template.render(&ids(12_345_678_905, &mapped)).unwrap(),
            "a012345678905b{x}12345678905c:{1000}B0TEST"
        );
        assert!(Template::parse("{id:ASIN}").is_err());
        assert_eq!(
            Template::parse("{")
                .unwrap()
                .render(&ids(1, &mapped))
                .unwrap(),
            "{"
        );
    }

    #[test]
    fn a_missing_identifier_is_named() {
        let none = HashMap::new();
        let upc = Template::parse("/p/{upc}").unwrap();
        // An EAN with no UPC-A form.
        assert_eq!(
            upc.render(&ids(4_006_381_333_931, &none)).unwrap_err(),
            Placeholder::Gtin(GtinForm::Upc)
        );
        let asin = Template::parse("{id:asin}").unwrap();
        assert_eq!(
            asin.render(&ids(1, &none)).unwrap_err(),
            Placeholder::Mapped("asin".into())
        );
        // Ids that are not GTINs have no GTIN forms.
        let internal = Identifiers::new(ProductId::new(12_345_678_905).unwrap(), false, &none);
        assert!(upc.render(&internal).is_err());
    }

    #[test]
    fn fills_the_path_the_query_and_the_body() {
        let query = BTreeMap::from([
            ("apiKey".to_owned(), "k&y=1".to_owned()),
            ("gtin".to_owned(), "{gtin13}".to_owned()),
        ]);
        let template = RequestTemplate::new(
            Method::POST,
            "https://api.example/v1/products(upc={upc})",
            &query,
            Some(r#"{"itemIds": ["{id:asin}"], "n": 2, "f": "conditionIds:{1000}"}"#),
            HeaderMap::new(),
        )
        .unwrap();
        let mapped = HashMap::from([("asin".to_owned(), "B0\"Q".to_owned())]);
        let filled = template.fill(&ids(12_345_678_905, &mapped)).unwrap();
        assert_eq!(
            filled.url.as_str(),
            "https://api.example/v1/products(upc=012345678905)?apiKey=k%26y%3D1&gtin=0012345678905"
        );
        let body: Value = serde_json::from_slice(&filled.body.unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"itemIds": ["B0\"Q"], "n": 2, "f": "conditionIds:{1000}"})
        );
        assert!(matches!(
            template.fill(&ids(1, &HashMap::new())),
            Err(RequestError::MissingIdentifier(_))
        ));
    }

    #[test]
    fn refuses_what_cannot_be_a_request() {
        let none = BTreeMap::new();
        let new = |method, url: &str, body: Option<&str>| {
            RequestTemplate::new(method, url, &none, body, HeaderMap::new())
        };
        assert!(new(Method::GET, "ftp://x/{upc}", None).is_err());
        assert!(new(Method::GET, "/relative/{upc}", None).is_err());
        assert!(new(Method::GET, "http://{upc}.x/", None).is_err());
        assert!(new(Method::POST, "http://x/", Some("{not json"))
            .unwrap_err()
            .contains("not JSON"));
        assert!(new(Method::GET, "http://x/", Some("{}")).is_err());
        assert!(new(Method::GET, "http://x/p/{productId}", None).is_ok());
    }
}
