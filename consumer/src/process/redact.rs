//! Secrets kept out of everything the process writes: logs at every level, error texts, failure
//! details stored with results, span fields.
//!
//! Every value the vendors file takes from the environment for a header, a query parameter, a body or
//! an authentication setting is registered here at load ([`register`]), with the forms it travels in
//! (percent-encoded, in a Basic credential), and so is every access token as it is minted. The log
//! writer ([`RedactingWriter`]) and failure details ([`redact`]) replace each with `[redacted]`.

use std::borrow::Cow;
use std::io::Write;
use std::sync::{PoisonError, RwLock};

/// What a secret is replaced with.
pub const REDACTED: &str = "[redacted]";

/// The shortest value treated as a secret: shorter ones (a key version "1") would redact everything.
const SHORTEST_SECRET: usize = 6;

/// The most secrets kept: the file's are few; minted tokens past this replace the oldest tokens.
const MOST_SECRETS: usize = 256;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers `secret` (and its percent-encoded form) to be redacted from now on.
pub fn register(secret: &str) {
    if secret.len() < SHORTEST_SECRET {
        return;
    }
    let encoded: String = form_urlencoded::byte_serialize(secret.as_bytes()).collect();
    let mut secrets = SECRETS.write().unwrap_or_else(PoisonError::into_inner);
    for form in [secret.to_owned(), encoded] {
        if !secrets.contains(&form) {
            if secrets.len() >= MOST_SECRETS {
                secrets.remove(0);
            }
            secrets.push(form);
        }
    }
    // Longest first, so that a secret containing another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every registered secret replaced by [`REDACTED`].
pub fn redact(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(PoisonError::into_inner);
    let mut out = Cow::Borrowed(text);
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
        }
    }
    out
}

/// An HTTP client error as text, without its URL (whose query may carry a key) and redacted.
pub fn error_text(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "body error"
    } else {
        "request failed"
    };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    let mut detail = String::new();
    while let Some(cause) = source {
        detail = cause.to_string();
        source = cause.source();
    }
    let text = if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    };
    redact(&text).into_owned()
}

/// A writer that redacts secrets from what passes through it: the log's, line by line (the `tracing`
/// formatter writes each event whole).
#[derive(Debug)]
pub struct RedactingWriter<W>(pub W);

impl<W: Write> Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0.write_all(redact(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Makes [`RedactingWriter`]s over standard output, for the `tracing` formatter.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedactedStdout;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactedStdout {
    type Writer = RedactingWriter<std::io::StdoutLock<'a>>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter(std::io::stdout().lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_and_their_encoded_forms_are_redacted() {
        register("sk_live/abc+def");
        register("short");
        let text = "key=sk_live%2Fabc%2Bdef raw sk_live/abc+def short";
        assert_eq!(
            redact(text),
            "key=[redacted] raw [redacted] short",
            "the short value is no secret"
        );
        let mut out = Vec::new();
        RedactingWriter(&mut out)
            .write_all(b"a sk_live/abc+def b")
            .unwrap();
        assert_eq!(out, b"a [redacted] b");
    }
}
