//! TAP/DALI request parameters, read from the GET query string, a POST
//! `application/x-www-form-urlencoded` body, or a POST `multipart/form-data` body (which is
//! how inline UPLOAD tables arrive).
//!
//! DALI 1.1: parameter names are case-insensitive, values are not; unknown parameters are
//! ignored. A multipart part with a file name is a file; a part without one is a parameter
//! (and is also kept as a file, so that `UPLOAD=t,param:part` can name either).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRef, FromRequest, Multipart, Request};
use axum::http::{header, Method};
use bytes::Bytes;
use futures::StreamExt;

use super::error::TapError;
use super::TapState;

/// One table to upload: `UPLOAD=name,uri`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadRef {
    /// The table name; the query reads it as `TAP_UPLOAD.name`.
    pub name: String,
    /// Where the table is: `param:part` (a multipart part) or an `http(s):` URL.
    pub uri: String,
}

/// The parameters of one TAP request.
///
/// Routes that use this extractor must lift axum's default 2 MB body limit (with
/// `axum::extract::DefaultBodyLimit::disable()` as a layer): the extractor enforces
/// [`super::TapConfig::max_upload_bytes`] itself and answers 413 with a clear message.
#[derive(Debug, Clone, Default)]
pub struct TapParams {
    /// `LANG`.
    pub lang: Option<String>,
    /// `QUERY`.
    pub query: Option<String>,
    /// `RESPONSEFORMAT`, or else `FORMAT`.
    pub format: Option<String>,
    /// `MAXREC`, as sent; see [`TapParams::maxrec`].
    pub maxrec: Option<String>,
    /// `RUNID`.
    pub runid: Option<String>,
    /// Every `UPLOAD=name,uri;name2,uri2` (the parameter may also be repeated).
    pub uploads: Vec<UploadRef>,
    /// Multipart parts by part name.
    pub files: HashMap<String, Bytes>,
    /// Every parameter in the order received, names upper-cased.
    pub all: Vec<(String, String)>,
}

impl TapParams {
    /// Builds the parameters from `(name, value)` pairs (names in any case) and files.
    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, String)>,
        files: HashMap<String, Bytes>,
    ) -> Result<Self, TapError> {
        let all: Vec<(String, String)> = pairs
            .into_iter()
            .map(|(name, value)| (name.to_ascii_uppercase(), value))
            .collect();
        let mut params = TapParams {
            all,
            files,
            ..TapParams::default()
        };
        params.lang = params.get("LANG").map(str::to_string);
        params.query = params.get("QUERY").map(str::to_string);
        params.format = params
            .get("RESPONSEFORMAT")
            .or_else(|| params.get("FORMAT"))
            .map(str::to_string);
        params.maxrec = params.get("MAXREC").map(str::to_string);
        params.runid = params.get("RUNID").map(str::to_string);
        let mut uploads = Vec::new();
        for (name, value) in &params.all {
            if name == "UPLOAD" {
                uploads.extend(parse_upload(value)?);
            }
        }
        params.uploads = uploads;
        Ok(params)
    }

    /// The first value of a parameter, by case-insensitive name.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.all
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `MAXREC` as a number: `None` when absent, an error unless a non-negative integer.
    pub fn maxrec(&self) -> Result<Option<u64>, TapError> {
        match self.maxrec.as_deref().map(str::trim) {
            None => Ok(None),
            Some(text) => text.parse::<u64>().map(Some).map_err(|_| {
                TapError::bad_request(format!(
                    "MAXREC must be a non-negative integer, got '{text}'"
                ))
            }),
        }
    }
}

/// Parses one `UPLOAD` value: `name,uri` pairs separated by `;`.
pub fn parse_upload(value: &str) -> Result<Vec<UploadRef>, TapError> {
    let mut out = Vec::new();
    for item in value.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((name, uri)) = item.split_once(',') else {
            return Err(TapError::bad_request(format!(
                "UPLOAD '{item}' is not of the form name,uri (for example UPLOAD=mytable,param:file1)"
            )));
        };
        let (name, uri) = (name.trim(), uri.trim());
        if name.is_empty() || uri.is_empty() {
            return Err(TapError::bad_request(format!(
                "UPLOAD '{item}' needs both a table name and a URI (name,uri)"
            )));
        }
        out.push(UploadRef {
            name: name.to_string(),
            uri: uri.to_string(),
        });
    }
    Ok(out)
}

fn too_large(limit: usize) -> TapError {
    TapError::TooLarge(format!(
        "the request body is larger than this service accepts ({limit} bytes); \
         upload a smaller table"
    ))
}

/// Wraps a body so that reading more than `limit` bytes fails (and sets `hit`).
fn limited(body: Body, limit: usize, hit: Arc<AtomicBool>) -> Body {
    let mut seen = 0usize;
    Body::from_stream(body.into_data_stream().map(move |chunk| {
        let chunk = chunk?;
        seen = seen.saturating_add(chunk.len());
        if seen > limit {
            hit.store(true, Ordering::Relaxed);
            return Err(axum::Error::new(std::io::Error::other(
                "request body too large",
            )));
        }
        Ok(chunk)
    }))
}

fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, TapError> {
    match query {
        None | Some("") => Ok(Vec::new()),
        Some(q) => serde_urlencoded_pairs(q.as_bytes()),
    }
}

fn serde_urlencoded_pairs(bytes: &[u8]) -> Result<Vec<(String, String)>, TapError> {
    // `form_urlencoded` through axum's Form would reject repeated names into a map; read
    // the pairs ourselves, which keeps order and repetitions.
    let text = std::str::from_utf8(bytes)
        .map_err(|_| TapError::bad_request("the parameters are not valid UTF-8"))?;
    let mut out = Vec::new();
    for piece in text.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
        out.push((percent_decode(name)?, percent_decode(value)?));
    }
    Ok(out)
}

/// Decodes `application/x-www-form-urlencoded` text: `+` is a space, `%XX` a byte.
fn percent_decode(text: &str) -> Result<String, TapError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => {
                        return Err(TapError::bad_request(format!(
                            "bad percent-encoding in parameter text '{text}'"
                        )))
                    }
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| TapError::bad_request("a parameter is not valid UTF-8 once decoded"))
}

/// The largest request body the [`TapParams`] extractor reads, in bytes. Taken from
/// [`super::TapConfig::max_upload_bytes`] when the router state is `Arc<TapState>`.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimit(pub usize);

impl FromRef<Arc<TapState>> for UploadLimit {
    fn from_ref(state: &Arc<TapState>) -> Self {
        UploadLimit(state.config.max_upload_bytes)
    }
}

impl<S> FromRequest<S> for TapParams
where
    S: Send + Sync,
    UploadLimit: FromRef<S>,
{
    type Rejection = TapError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let UploadLimit(limit) = UploadLimit::from_ref(state);
        let mut pairs = query_pairs(req.uri().query())?;
        let mut files = HashMap::new();
        if req.method() == Method::GET || req.method() == Method::HEAD {
            return TapParams::from_pairs(pairs, files);
        }
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Err(too_large(limit));
        }
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let hit = Arc::new(AtomicBool::new(false));
        let req = req.map(|body| limited(body, limit, hit.clone()));
        if content_type.starts_with("multipart/form-data") {
            let mut multipart = Multipart::from_request(req, state).await.map_err(|e| {
                TapError::bad_request(format!("cannot read the multipart body: {e}"))
            })?;
            let fail = |e: axum::extract::multipart::MultipartError| {
                if hit.load(Ordering::Relaxed) {
                    too_large(limit)
                } else {
                    TapError::bad_request(format!("cannot read the multipart body: {e}"))
                }
            };
            while let Some(field) = multipart.next_field().await.map_err(fail)? {
                let Some(name) = field.name().map(str::to_string) else {
                    continue;
                };
                let has_file_name = field.file_name().is_some();
                let data = field.bytes().await.map_err(fail)?;
                if !has_file_name {
                    if let Ok(text) = std::str::from_utf8(&data) {
                        pairs.push((name.clone(), text.to_string()));
                    }
                }
                files.insert(name, data);
            }
        } else {
            let body = axum::body::to_bytes(req.into_body(), usize::MAX)
                .await
                .map_err(|e| {
                    if hit.load(Ordering::Relaxed) {
                        too_large(limit)
                    } else {
                        TapError::bad_request(format!("cannot read the request body: {e}"))
                    }
                })?;
            // A form body, or none at all. Other bodies carry no DALI parameters.
            if content_type.is_empty()
                || content_type.starts_with("application/x-www-form-urlencoded")
            {
                pairs.extend(serde_urlencoded_pairs(&body)?);
            } else if !body.is_empty() {
                return Err(TapError::bad_request(format!(
                    "unsupported Content-Type '{content_type}': send parameters as \
                     application/x-www-form-urlencoded or multipart/form-data"
                )));
            }
        }
        TapParams::from_pairs(pairs, files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use axum::Router;

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn names_are_case_insensitive() {
        let p = TapParams::from_pairs(
            pairs(&[
                ("lang", "ADQL"),
                ("Query", "SELECT 1"),
                ("format", "csv"),
                ("MaxRec", "10"),
                ("runId", "r1"),
                ("whatever", "ignored"),
            ]),
            HashMap::new(),
        )
        .unwrap();
        assert_eq!(p.lang.as_deref(), Some("ADQL"));
        assert_eq!(p.query.as_deref(), Some("SELECT 1"));
        assert_eq!(p.format.as_deref(), Some("csv"));
        assert_eq!(p.maxrec().unwrap(), Some(10));
        assert_eq!(p.runid.as_deref(), Some("r1"));
        assert_eq!(p.get("WHATEVER"), Some("ignored"));
        assert_eq!(p.get("whatever"), Some("ignored"));
        assert_eq!(p.all[0], ("LANG".to_string(), "ADQL".to_string()));
    }

    #[test]
    fn responseformat_wins_over_format() {
        let p = TapParams::from_pairs(
            pairs(&[("FORMAT", "csv"), ("responseformat", "json")]),
            HashMap::new(),
        )
        .unwrap();
        assert_eq!(p.format.as_deref(), Some("json"));
    }

    #[test]
    fn maxrec_must_be_a_count() {
        for bad in ["-1", "ten", "1.5", ""] {
            let p = TapParams::from_pairs(pairs(&[("MAXREC", bad)]), HashMap::new()).unwrap();
            let e = p.maxrec().unwrap_err();
            assert!(e.to_string().contains("MAXREC"), "{e}");
        }
        let p = TapParams::from_pairs(pairs(&[("MAXREC", " 0 ")]), HashMap::new()).unwrap();
        assert_eq!(p.maxrec().unwrap(), Some(0));
    }

    #[test]
    fn uploads_parse() {
        let p = TapParams::from_pairs(
            pairs(&[
                ("UPLOAD", "a,param:f1; b , http://x/y.xml"),
                ("upload", "c,param:f2"),
            ]),
            HashMap::new(),
        )
        .unwrap();
        let names: Vec<_> = p
            .uploads
            .iter()
            .map(|u| (u.name.as_str(), u.uri.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("a", "param:f1"),
                ("b", "http://x/y.xml"),
                ("c", "param:f2")
            ]
        );
        let e =
            TapParams::from_pairs(pairs(&[("UPLOAD", "justaname")]), HashMap::new()).unwrap_err();
        assert!(e.to_string().contains("name,uri"), "{e}");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            serde_urlencoded_pairs(b"QUERY=SELECT+%2A+FROM+t&lang=ADQL&flag").unwrap(),
            pairs(&[("QUERY", "SELECT * FROM t"), ("lang", "ADQL"), ("flag", "")])
        );
        assert!(serde_urlencoded_pairs(b"QUERY=%ZZ").is_err());
    }

    async fn serve(limit: usize) -> String {
        async fn echo(p: TapParams) -> String {
            let mut files: Vec<_> = p
                .files
                .iter()
                .map(|(k, v)| format!("{k}={}", String::from_utf8_lossy(v)))
                .collect();
            files.sort();
            format!(
                "lang={:?} query={:?} format={:?} uploads={:?} files={files:?}",
                p.lang,
                p.query,
                p.format,
                p.uploads
                    .iter()
                    .map(|u| format!("{}->{}", u.name, u.uri))
                    .collect::<Vec<_>>()
            )
        }
        let app = Router::new()
            .route("/p", get(echo).post(echo))
            .layer(axum::extract::DefaultBodyLimit::disable())
            .with_state(UploadLimit(limit));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        format!("http://{addr}/p")
    }

    async fn text(resp: reqwest::Response) -> (u16, String) {
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    fn multipart() -> reqwest::multipart::Form {
        reqwest::multipart::Form::new()
            .text("Lang", "ADQL")
            .text("query", "SELECT * FROM TAP_UPLOAD.t")
            .text("upload", "t,param:tab")
            .part(
                "tab",
                reqwest::multipart::Part::bytes(b"<VOTABLE/>".to_vec()).file_name("t.xml"),
            )
    }

    #[tokio::test]
    async fn get_post_and_multipart() {
        let url = serve(1 << 20).await;
        let client = reqwest::Client::new();
        let (status, body) = text(
            client
                .get(format!("{url}?lang=ADQL&QUERY=SELECT%201&Format=csv"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            "lang=Some(\"ADQL\") query=Some(\"SELECT 1\") format=Some(\"csv\") uploads=[] files=[]"
        );

        let (status, body) = text(
            client
                .post(format!("{url}?LANG=ADQL"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body("query=SELECT+2&RESPONSEFORMAT=json")
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            "lang=Some(\"ADQL\") query=Some(\"SELECT 2\") format=Some(\"json\") uploads=[] files=[]"
        );

        let (status, body) = text(
            client
                .post(&url)
                .multipart(multipart())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            "lang=Some(\"ADQL\") query=Some(\"SELECT * FROM TAP_UPLOAD.t\") format=None \
             uploads=[\"t->param:tab\"] files=[\"Lang=ADQL\", \"query=SELECT * FROM TAP_UPLOAD.t\", \
             \"tab=<VOTABLE/>\", \"upload=t,param:tab\"]"
        );

        // Over the limit: 413 with a VOTable error document.
        let small = serve(100).await;
        let (status, body) = text(
            client
                .post(&small)
                .multipart(multipart())
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 413, "{body}");
        assert!(body.contains("QUERY_STATUS"), "{body}");
        assert!(
            body.contains("larger than this service accepts (100 bytes)"),
            "{body}"
        );
    }
}
