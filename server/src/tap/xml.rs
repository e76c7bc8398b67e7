//! What every XML document of the TAP service shares: the one escaper, the XML and VOTable
//! heads, the namespaces, the content types and the service's base URL.

use axum::http::{header, HeaderMap};

/// The XML declaration every document starts with.
pub const XML_HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// Content type of the VOSI and UWS documents.
pub const XML_CONTENT_TYPE: &str = "text/xml; charset=UTF-8";
/// Content type of VOTable documents (results and errors).
pub const VOTABLE_MIME: &str = "application/x-votable+xml";
/// Content type of the DALI examples page.
pub const XHTML_CONTENT_TYPE: &str = "application/xhtml+xml; charset=utf-8";

/// Namespace of XML Schema instances (`xsi:type`).
pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// Namespace of XLink (`xlink:href` in UWS job lists).
pub const XLINK_NS: &str = "http://www.w3.org/1999/xlink";
/// Namespace of UWS 1.1 documents (which keep the 1.0 namespace).
pub const UWS_NS: &str = "http://www.ivoa.net/xml/UWS/v1.0";
/// Namespace of the VOSI tables root elements.
pub const VOSI_TABLES_NS: &str = "http://www.ivoa.net/xml/VOSITables/v1.0";
/// Namespace of the VODataService types.
pub const VODATASERVICE_NS: &str = "http://www.ivoa.net/xml/VODataService/v1.1";

/// The opening of every VOTable document we write: VOTable 1.4 keeps the 1.3 namespace.
pub const VOTABLE_HEAD: &str = concat!(
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
    "<VOTABLE version=\"1.4\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\" ",
    "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" ",
    "xsi:schemaLocation=\"http://www.ivoa.net/xml/VOTable/v1.3 ",
    "http://www.ivoa.net/xml/VOTable/votable-1.4.xsd\">\n"
);

/// Whether XML 1.0 can carry `c` at all (the `Char` production; Rust's `char` already
/// excludes the surrogates).
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r')
        || ('\u{20}'..='\u{D7FF}').contains(&c)
        || ('\u{E000}'..='\u{FFFD}').contains(&c)
        || c >= '\u{10000}'
}

/// Appends `text` to `out` escaped for XML element content and double-quoted attribute
/// values (every attribute we write is double-quoted, so `'` stays as it is).
///
/// Characters XML 1.0 cannot carry at all (most C0 controls, U+FFFE, U+FFFF) are replaced
/// by U+FFFD rather than stripped: a reader then sees that something was there (a stripped
/// character would silently join the words around it), and no character reference can
/// carry them either, since XML 1.0 forbids `&#1;` as well.
pub fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            c if xml_char(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
}

/// `text` escaped for XML (see [`escape_into`]).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(text, &mut out);
    out
}

/// The scheme and host the client reached us at (`https://host`), without a path.
///
/// The scheme is https only when a proxy in front of us says so in `X-Forwarded-Proto`;
/// the host is the Host header when it is plain printable ASCII (anything else could
/// inject markup or a different URL into our documents), else `localhost`.
pub fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_replaces_what_xml_cannot_carry() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c'");
        assert_eq!(escape("a\u{1}b\tc\u{FFFE}"), "a\u{FFFD}b\tc\u{FFFD}");
        assert_eq!(escape("\u{10000}é"), "\u{10000}é");
    }

    #[test]
    fn origin_honours_forwarded_proto_and_refuses_odd_hosts() {
        let mut headers = HeaderMap::new();
        assert_eq!(origin(&headers), "http://localhost");
        headers.insert(header::HOST, "example.org:8080".parse().unwrap());
        assert_eq!(origin(&headers), "http://example.org:8080");
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        assert_eq!(origin(&headers), "https://example.org:8080");
        headers.insert(header::HOST, "a b".parse().unwrap());
        assert_eq!(origin(&headers), "https://localhost");
    }
}
