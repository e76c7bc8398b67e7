//! UPLOAD by URL (`UPLOAD=name,http://host/table.xml`, TAP 1.1 section 3.5.2): the server
//! fetches the VOTable itself, when the operator allows it
//! ([`super::TapConfig::allow_http_upload`]; off by default, since the server then makes
//! requests to whatever address a user names, inside the operator's network too).
//!
//! Only `http` and `https` URLs are fetched; the body is streamed and the fetch stops as
//! soon as the uploads of the request pass [`super::TapConfig::max_upload_bytes`]; a
//! connect timeout and a total timeout bound the wait; an HTTP error status is reported
//! with the URL and the status.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use super::error::{Result, TapError};

/// How long connecting to the host of an upload URL may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Redirects followed (each to http or https only).
const MAX_REDIRECTS: usize = 5;

/// The client fetching upload URLs (one connection pool for the process).
fn client() -> Result<&'static reqwest::Client> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    let client = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
        .user_agent(concat!(
            "Almagest/",
            env!("CARGO_PKG_VERSION"),
            " (TAP upload)"
        ))
        .build()
        .map_err(|e| TapError::internal(format!("cannot build the HTTP client: {e}")))?;
    Ok(CLIENT.get_or_init(|| client))
}

/// Whether `uri` names a table by URL (rather than a multipart part).
pub fn is_url(uri: &str) -> bool {
    let lower = uri.get(..8).unwrap_or(uri).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Fetches the document at `url` (http or https), reading at most `budget` bytes of body:
/// more is a [`TapError::TooLarge`] naming `limit`, the request's whole allowance.
pub async fn fetch(url: &str, budget: usize, limit: usize, timeout: Duration) -> Result<Bytes> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| TapError::upload(format!("'{url}' is not a valid URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(TapError::upload(format!(
            "only http and https URLs can be fetched, not '{url}'"
        )));
    }
    let too_large = || {
        TapError::TooLarge(format!(
            "the table at {url} is larger than this service accepts for the uploads of one \
             request ({limit} bytes); upload a smaller table"
        ))
    };
    let failed = |e: reqwest::Error| {
        if e.is_timeout() {
            TapError::upload(format!(
                "fetching {url} took longer than {} s",
                timeout.as_secs()
            ))
        } else {
            // The causes too (reqwest's message alone is "error sending request"), and
            // the URL once, from here.
            let mut causes = Vec::new();
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                causes.push(cause.to_string());
                source = cause.source();
            }
            let mut message = e.without_url().to_string();
            for cause in causes {
                message.push_str(": ");
                message.push_str(&cause);
            }
            TapError::upload(format!("cannot fetch {url}: {message}"))
        }
    };
    let response = client()?
        .get(parsed)
        .timeout(timeout)
        .send()
        .await
        .map_err(failed)?;
    let status = response.status();
    if !status.is_success() {
        return Err(TapError::upload(format!(
            "fetching {url} answered HTTP {status}"
        )));
    }
    if response.content_length().is_some_and(|n| n > budget as u64) {
        return Err(too_large());
    }
    let mut body = BytesMut::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(failed)?;
        if body.len() + chunk.len() > budget {
            // Stop reading: dropping the stream closes the connection.
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use axum::http::StatusCode;
    use axum::routing::get;
    use axum::Router;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Float64Type;

    use super::*;
    use crate::tap::params::TapParams;
    use crate::tap::sync::read_uploads;
    use crate::tap::TapConfig;

    const TABLE: &str = "<?xml version=\"1.0\"?>\
        <VOTABLE version=\"1.3\" xmlns=\"http://www.ivoa.net/xml/VOTable/v1.3\"><RESOURCE><TABLE>\
        <FIELD name=\"id\" datatype=\"long\"/><FIELD name=\"ra\" datatype=\"double\" unit=\"deg\"/>\
        <DATA><TABLEDATA><TR><TD>1</TD><TD>10.5</TD></TR><TR><TD>2</TD><TD>359.25</TD></TR>\
        </TABLEDATA></DATA></TABLE></RESOURCE></VOTABLE>";

    /// A local web server: `/t.xml` is the table, `/big.xml` 100 kB streamed in chunks
    /// without a length, `/redirect` goes to `/t.xml`; anything else is 404.
    async fn serve() -> String {
        let big = || async {
            let chunks = (0..100).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 1024])));
            axum::body::Body::from_stream(futures::stream::iter(chunks))
        };
        let app = Router::new()
            .route("/t.xml", get(|| async { TABLE }))
            .route("/big.xml", get(big))
            .route(
                "/redirect",
                get(|| async { (StatusCode::FOUND, [("location", "/t.xml")]) }),
            )
            .fallback(|| async { (StatusCode::NOT_FOUND, "no such table") });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}")
    }

    fn params(upload: &str) -> TapParams {
        TapParams::from_pairs(
            vec![("UPLOAD".to_string(), upload.to_string())],
            HashMap::new(),
        )
        .unwrap()
    }

    fn allowed() -> TapConfig {
        TapConfig {
            allow_http_upload: true,
            max_upload_bytes: 10_000,
            ..TapConfig::default()
        }
    }

    #[tokio::test]
    async fn fetches_a_table_by_url() {
        let base = serve().await;
        for path in ["t.xml", "redirect"] {
            let tables = read_uploads(&params(&format!("T,{base}/{path}")), &allowed())
                .await
                .unwrap();
            assert_eq!(tables.len(), 1);
            assert_eq!(tables[0].name, "t");
            assert_eq!(tables[0].schema.field(1).metadata()["unit"], "deg");
            let ra = tables[0].batches[0].column(1).as_primitive::<Float64Type>();
            assert_eq!(ra.values().to_vec(), vec![10.5, 359.25]);
        }
    }

    #[tokio::test]
    async fn http_errors_name_the_url_and_status() {
        let base = serve().await;
        let url = format!("{base}/missing.xml");
        let e = read_uploads(&params(&format!("t,{url}")), &allowed())
            .await
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            e.to_string(),
            format!("UPLOAD: table 't': fetching {url} answered HTTP 404 Not Found")
        );
        // Nobody listens on port 1.
        let e = read_uploads(&params("t,http://127.0.0.1:1/t.xml"), &allowed())
            .await
            .unwrap_err();
        let m = e.to_string();
        assert!(
            m.starts_with("UPLOAD: table 't': cannot fetch http://127.0.0.1:1/t.xml: "),
            "{m}"
        );
    }

    #[tokio::test]
    async fn bodies_over_the_limit_stop_with_413() {
        let base = serve().await;
        let e = read_uploads(&params(&format!("t,{base}/big.xml")), &allowed())
            .await
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            e.to_string().contains(&format!(
                "the table at {base}/big.xml is larger than this service accepts for the \
                 uploads of one request (10000 bytes)"
            )),
            "{e}"
        );
        // The allowance is for all the tables of the request together.
        let mut config = allowed();
        config.max_upload_bytes = TABLE.len() * 2 - 1;
        let two = params(&format!("a,{base}/t.xml;b,{base}/t.xml"));
        let e = read_uploads(&two, &config).await.unwrap_err();
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE, "{e}");
        config.max_upload_bytes = TABLE.len() * 2;
        assert_eq!(read_uploads(&two, &config).await.unwrap().len(), 2);
    }

    #[test]
    fn capabilities_declare_url_uploads_only_when_allowed() {
        let http = "<uploadMethod ivo-id=\"ivo://ivoa.net/std/TAPRegExt#upload-http\"/>";
        let https = "<uploadMethod ivo-id=\"ivo://ivoa.net/std/TAPRegExt#upload-https\"/>";
        let on = crate::tap::sync::capabilities_document("http://h/tap", &allowed());
        assert!(on.contains(http) && on.contains(https), "{on}");
        let off = crate::tap::sync::capabilities_document("http://h/tap", &TapConfig::default());
        assert!(!off.contains("upload-http"), "{off}");
        assert!(off.contains("#upload-inline"), "{off}");
    }

    #[tokio::test]
    async fn other_schemes_and_disabled_services_refuse() {
        let e = read_uploads(&params("t,ftp://example.org/t.xml"), &allowed())
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "UPLOAD: UPLOAD URI 'ftp://example.org/t.xml' is not supported; use param:<part> \
             (a multipart part) or an http(s) URL"
        );
        let e = fetch("file:///etc/passwd", 10, 10, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("only http and https"), "{e}");
        let base = serve().await;
        let e = read_uploads(&params(&format!("t,{base}/t.xml")), &TapConfig::default())
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("this service does not fetch uploads by URL"),
            "{e}"
        );
    }
}
