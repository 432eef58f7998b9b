//! The one request a run sends over and over, parsed once from the command
//! line so a typo fails before any load is generated.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use hyper::{Method, Request};

/// A fixed request: method, path, headers and body. Cloning it is cheap
/// (the body is reference-counted), so each send builds a fresh
/// `hyper::Request` without copying the payload.
#[derive(Clone, Debug)]
pub struct RequestSpec {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

/// Why a request description was rejected.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("invalid method {0:?}")]
    Method(String),
    #[error("path must start with '/': {0:?}")]
    Path(String),
    #[error("header {0:?} is not of the form 'name: value'")]
    Header(String),
    #[error("body is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot read body file {path}: {source}")]
    BodyFile {
        path: String,
        source: std::io::Error,
    },
}

impl RequestSpec {
    /// A body-less request, e.g. `GET /v1/health`.
    pub fn new(method: &str, path: &str) -> Result<Self, SpecError> {
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| SpecError::Method(method.to_owned()))?;
        if !path.starts_with('/') {
            return Err(SpecError::Path(path.to_owned()));
        }
        Ok(Self {
            method,
            path: path.to_owned(),
            headers: Vec::new(),
            body: Bytes::new(),
        })
    }

    /// Adds a `name: value` header.
    pub fn header(mut self, raw: &str) -> Result<Self, SpecError> {
        let bad = || SpecError::Header(raw.to_owned());
        let (name, value) = raw.split_once(':').ok_or_else(bad)?;
        let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad())?;
        let value = HeaderValue::from_str(value.trim()).map_err(|_| bad())?;
        self.headers.push((name, value));
        Ok(self)
    }

    /// Sets a JSON body: inline text, or `@path` to read it from a file.
    /// The JSON is checked here so a broken fixture does not show up as a
    /// wall of 400s in the results.
    pub fn json_body(mut self, arg: &str) -> Result<Self, SpecError> {
        let text = match arg.strip_prefix('@') {
            Some(path) => std::fs::read(path).map_err(|source| SpecError::BodyFile {
                path: path.to_owned(),
                source,
            })?,
            None => arg.as_bytes().to_vec(),
        };
        serde_json::from_slice::<serde_json::Value>(&text)?;
        self.body = Bytes::from(text);
        if !self.headers.iter().any(|(n, _)| n == CONTENT_TYPE) {
            self.headers
                .push((CONTENT_TYPE, HeaderValue::from_static("application/json")));
        }
        Ok(self)
    }

    /// Builds the `hyper::Request` for one send.
    pub fn build(&self) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        // The path was checked to start with '/'; a path hyper still rejects
        // falls back to '/', which the run reports as non-2xx answers.
        *req.uri_mut() = self
            .path
            .parse()
            .unwrap_or_else(|_| hyper::Uri::from_static("/"));
        let headers = req.headers_mut();
        headers.insert(HOST, HeaderValue::from_static("localhost"));
        if !self.body.is_empty() {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        }
        for (name, value) in &self.headers {
            headers.insert(name.clone(), value.clone());
        }
        req
    }
}
