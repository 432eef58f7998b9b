//! Task tokens: short-lived JWTs a Celery task carries, bound to one task
//! (audience `task:<name>`) and to the session or user that enqueued it.

use super::*;

impl Tokens {
    /// Issues a task token for `task` acting as `subject`.
    pub fn issue_task(&self, task: &str, subject: &TaskSubject) -> Result<TaskToken, Error> {
        if task.is_empty()
            || task.len() > 200
            || !task
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
        {
            return Err(Error::input(
                "task",
                "must be 1-200 characters of letters, digits, `_ . : -`",
            ));
        }
        let now = self.clock.now_ms();
        let iat = now.div_euclid(1000);
        let (sub, org, roles, sid, amr, auth_time, ep) = match subject {
            TaskSubject::User { user_id, org_id } => {
                check_id("subject.user_id", user_id)?;
                check_id("subject.org_id", org_id)?;
                let roles = self
                    .directory
                    .roles_of(user_id, org_id)
                    .ok_or(Error::UnknownSubject)?;
                let ep = self.epoch_of(user_id);
                (
                    user_id.clone(),
                    org_id.clone(),
                    roles,
                    None,
                    Vec::new(),
                    iat,
                    ep,
                )
            }
            TaskSubject::Token(t) => {
                let c = self.verify_access(t).map_err(Error::TokenInvalid)?;
                (
                    c.sub.clone(),
                    c.org.clone(),
                    c.roles.clone(),
                    c.sid.clone(),
                    c.amr.clone(),
                    c.auth_time,
                    c.ep,
                )
            }
        };
        let key = self.keys.signer(&Purpose::task())?;
        let claims = Claims {
            iss: self.cfg.issuer.clone(),
            sub,
            org,
            roles,
            sid,
            amr,
            auth_time,
            iat,
            exp: iat + self.cfg.task_ttl_ms / 1000,
            jti: random_hex::<16>()?,
            typ: TokenType::Task,
            aud: Some(format!("task:{task}")),
            ep,
        };
        Ok(TaskToken {
            token: jwt::encode(&key, &claims)?,
            expires_in: self.cfg.task_ttl_ms / 1000,
        })
    }
}
