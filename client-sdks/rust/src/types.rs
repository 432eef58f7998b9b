//! Wire types of `/v1/check`, mirroring `shared/API.md`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Who is acting.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Subject {
    /// A directory user acting in an org.
    User { user_id: String, org_id: String },
    /// A verified access token carries identity, org and roles.
    Token { token: String },
    /// A Celery task token.
    TaskToken { task_token: String },
    /// A linked chat-bot account.
    Bot { bot: BotRef },
    /// The calling OS user (CLI tools).
    Peer { peer: bool },
}

/// A chat platform account.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BotRef {
    pub platform: String,
    pub id: String,
}

impl Subject {
    pub fn user(user_id: impl Into<String>, org_id: impl Into<String>) -> Subject {
        Subject::User {
            user_id: user_id.into(),
            org_id: org_id.into(),
        }
    }

    pub fn token(token: impl Into<String>) -> Subject {
        Subject::Token {
            token: token.into(),
        }
    }

    pub fn bot(platform: impl Into<String>, id: impl Into<String>) -> Subject {
        Subject::Bot {
            bot: BotRef {
                platform: platform.into(),
                id: id.into(),
            },
        }
    }

    pub fn peer() -> Subject {
        Subject::Peer { peer: true }
    }
}

/// One permission check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckRequest {
    pub subject: Subject,
    pub permission: String,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub surface: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub resource: BTreeMap<String, String>,
}

impl CheckRequest {
    pub fn new(
        subject: Subject,
        permission: impl Into<String>,
        action: impl Into<String>,
    ) -> CheckRequest {
        CheckRequest {
            subject,
            permission: permission.into(),
            action: action.into(),
            surface: None,
            resource: BTreeMap::new(),
        }
    }

    /// The surface the action arrives through (`http`, `task`, `cli`, `bot`, `internal`).
    pub fn surface(mut self, surface: impl Into<String>) -> CheckRequest {
        self.surface = Some(surface.into());
        self
    }

    /// A resource attribute (`org_id`, `owner_id`, `assignee_id`, `region`).
    pub fn resource(mut self, key: impl Into<String>, value: impl Into<String>) -> CheckRequest {
        self.resource.insert(key.into(), value.into());
        self
    }
}

/// The agent's answer to a check.
#[derive(Debug, Clone, Deserialize)]
pub struct Decision {
    pub allow: bool,
    pub reason: String,
    #[serde(default = "yes")]
    pub enforced: bool,
    #[serde(default)]
    pub decision_id: String,
    #[serde(default)]
    pub policy_version: String,
    #[serde(default)]
    pub matched: Option<serde_json::Value>,
}

fn yes() -> bool {
    true
}
