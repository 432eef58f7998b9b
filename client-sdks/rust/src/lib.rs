//! Rust client for the Warden agent's Unix-socket API.
//!
//! Rust services in the ERP (bank integrations, importers) ask the local
//! agent the same questions the Python workers do. This crate keeps that to
//! one call per question, with pooled keep-alive connections so a check costs
//! a round trip on an open socket, and maps the agent's error codes to
//! [`Error::Api`] so callers can match on `code` rather than parse text.
//!
//! ```no_run
//! # async fn demo() -> Result<(), warden_client::Error> {
//! use warden_client::{Client, CheckRequest, Subject};
//! let warden = Client::new("/run/warden/warden.sock");
//! let decision = warden
//!     .check(&CheckRequest::new(
//!         Subject::user("alice", "acme"),
//!         "inventory.adjust_stock",
//!         "write",
//!     ))
//!     .await?;
//! if !decision.allow {
//!     eprintln!("denied: {}", decision.reason);
//! }
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]

mod types;

pub use types::{CheckRequest, Decision, Subject};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client as HttpClient;
use hyperlocal::{UnixClientExt, UnixConnector, Uri};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Default socket path in production.
pub const DEFAULT_SOCKET: &str = "/run/warden/warden.sock";

/// What can go wrong talking to the agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The agent answered with an error (`{"error": {"code", "message"}}`).
    #[error("warden answered {status}: {code}: {message}")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
    },
    /// The socket could not be reached or the connection failed.
    #[error("cannot reach warden at {socket}: {detail}")]
    Transport { socket: PathBuf, detail: String },
    /// The answer was not the JSON we expected.
    #[error("unexpected answer from warden: {0}")]
    Decode(String),
}

impl Error {
    /// The agent's error code, if the agent answered.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A client of one agent socket; cheap to clone, pooled keep-alive.
#[derive(Clone)]
pub struct Client {
    socket: PathBuf,
    http: HttpClient<UnixConnector, Full<Bytes>>,
}

impl Client {
    pub fn new(socket: impl AsRef<Path>) -> Client {
        Client {
            socket: socket.as_ref().to_path_buf(),
            http: HttpClient::unix(),
        }
    }

    /// `WARDEN_SOCKET` if set, else the production default.
    pub fn from_env() -> Client {
        Client::new(std::env::var("WARDEN_SOCKET").unwrap_or_else(|_| DEFAULT_SOCKET.into()))
    }

    /// `GET /v1/health`: true while the agent serves.
    pub async fn health(&self) -> Result<bool, Error> {
        let v: serde_json::Value = self.get("/v1/health").await?;
        Ok(v["status"] == "ok")
    }

    /// `GET /v1/ready`: true once a policy snapshot is loaded.
    pub async fn ready(&self) -> Result<bool, Error> {
        match self.get::<serde_json::Value>("/v1/ready").await {
            Ok(_) => Ok(true),
            Err(Error::Api { status, .. }) if status == StatusCode::SERVICE_UNAVAILABLE => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<serde_json::Value, Error> {
        self.get("/v1/status").await
    }

    /// `POST /v1/check`.
    pub async fn check(&self, request: &CheckRequest) -> Result<Decision, Error> {
        self.post("/v1/check", request).await
    }

    /// `POST /v1/check/batch`: answers in request order.
    pub async fn check_batch(&self, requests: &[CheckRequest]) -> Result<Vec<Decision>, Error> {
        #[derive(Serialize)]
        struct Batch<'a> {
            checks: &'a [CheckRequest],
        }
        #[derive(serde::Deserialize)]
        struct Results {
            results: Vec<Decision>,
        }
        let r: Results = self
            .post("/v1/check/batch", &Batch { checks: requests })
            .await?;
        Ok(r.results)
    }

    /// Any GET endpoint, decoded as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        self.call(Method::GET, path, Bytes::new()).await
    }

    /// Any POST endpoint with a JSON body, decoded as `T`.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        let bytes = serde_json::to_vec(body).map_err(|e| Error::Decode(e.to_string()))?;
        self.call(Method::POST, path, Bytes::from(bytes)).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<T, Error> {
        let uri: hyper::Uri = Uri::new(&self.socket, path).into();
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Full::new(body))
            .map_err(|e| Error::Decode(e.to_string()))?;
        let resp = self.http.request(req).await.map_err(|e| Error::Transport {
            socket: self.socket.clone(),
            detail: e.to_string(),
        })?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| Error::Transport {
                socket: self.socket.clone(),
                detail: e.to_string(),
            })?
            .to_bytes();
        if !status.is_success() {
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            return Err(Error::Api {
                status,
                code: v["error"]["code"].as_str().unwrap_or("unknown").to_string(),
                message: v["error"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string()))
    }
}
