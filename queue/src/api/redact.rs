//! What the request trace may show of a request: its URI with the values of secret query
//! parameters (`token`, `lease_token`, anything naming a token, key, secret or password)
//! replaced by `<redacted>`. Headers are never logged (the `Authorization` bearer token and
//! `X-Lease-Token` live there).

use axum::extract::Request;
use axum::http::Uri;
use tracing::Span;

const REDACTED: &str = "<redacted>";

/// Whether a query parameter of this (decoded, any case) name carries a secret.
fn is_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["token", "key", "secret", "password"]
        .iter()
        .any(|s| n.contains(s))
}

/// Percent-decode a query component (`+` is a space), leaving malformed escapes as they are.
fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The URI as it may be logged: path and query, secret values redacted.
pub(crate) fn redacted_uri(uri: &Uri) -> String {
    let path = uri.path();
    let Some(query) = uri.query() else {
        return path.to_owned();
    };
    let pairs: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if is_secret(&decode(name)) => format!("{name}={REDACTED}"),
            None if is_secret(&decode(pair)) => REDACTED.to_owned(),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

/// The span of one request in the trace layer: method, redacted URI, HTTP version.
pub(crate) fn make_span(req: &Request) -> Span {
    tracing::debug_span!(
        "request",
        method = %req.method(),
        uri = %redacted_uri(req.uri()),
        version = ?req.version(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        redacted_uri(&s.parse::<Uri>().unwrap())
    }

    #[test]
    fn secret_values_are_redacted_and_the_rest_kept() {
        assert_eq!(r("/ws?token=abc"), "/ws?token=<redacted>");
        assert_eq!(
            r("/api/workers/complete-job?job_id=J&lease_token=abc"),
            "/api/workers/complete-job?job_id=J&lease_token=<redacted>"
        );
        assert_eq!(
            r("/x?lease%5Ftoken=abc&a=1"),
            "/x?lease%5Ftoken=<redacted>&a=1"
        );
        assert_eq!(r("/x?TOKEN=abc"), "/x?TOKEN=<redacted>");
        assert_eq!(
            r("/x?api_key=abc&token"),
            "/x?api_key=<redacted>&<redacted>"
        );
        assert_eq!(r("/api/jobs?status=pending"), "/api/jobs?status=pending");
        assert_eq!(r("/api/jobs"), "/api/jobs");
        assert_eq!(r("/x?%zz=1&t%6Fken=s"), "/x?%zz=1&t%6Fken=<redacted>");
    }
}
