//! A small client of the agent's socket for the CLI subcommands.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyperlocal::{UnixClientExt, UnixConnector, Uri};
use std::path::PathBuf;

/// Why a call to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the agent at {socket}: {detail}")]
    Unreachable { socket: PathBuf, detail: String },
    #[error("agent answered {status}: {code}: {message}")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
    },
    #[error("agent sent an invalid answer: {0}")]
    Invalid(String),
}

/// Client of one agent socket.
pub struct AgentClient {
    socket: PathBuf,
    client: Client<UnixConnector, Full<Bytes>>,
}

impl AgentClient {
    pub fn new(socket: PathBuf) -> AgentClient {
        AgentClient {
            socket,
            client: Client::unix(),
        }
    }

    pub async fn get(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ClientError> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// Sends a request; non-2xx answers become [`ClientError::Api`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, ClientError> {
        let (status, value) = self.call_raw(method, path, body).await?;
        if status.is_success() {
            return Ok(value);
        }
        Err(ClientError::Api {
            status,
            code: value["error"]["code"]
                .as_str()
                .unwrap_or("unknown")
                .to_string(),
            message: value["error"]["message"].as_str().unwrap_or("").to_string(),
        })
    }

    /// Sends a request and returns status and JSON body whatever the status.
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<(StatusCode, serde_json::Value), ClientError> {
        let uri: hyper::Uri = Uri::new(&self.socket, path).into();
        let bytes = match body {
            Some(v) => {
                Bytes::from(serde_json::to_vec(v).map_err(|e| ClientError::Invalid(e.to_string()))?)
            }
            None => Bytes::new(),
        };
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Full::new(bytes))
            .map_err(|e| ClientError::Invalid(e.to_string()))?;
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| ClientError::Unreachable {
                socket: self.socket.clone(),
                detail: source_chain(&e),
            })?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Invalid(e.to_string()))?
            .to_bytes();
        let value = if body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())
            })
        };
        Ok((status, value))
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        text.push_str(": ");
        text.push_str(&s.to_string());
        cur = s.source();
    }
    text
}
