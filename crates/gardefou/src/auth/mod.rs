//! Who is calling. API callers present a virtual key (`Authorization: Bearer gf_…`, or
//! `x-api-key` for Anthropic clients) that names their team and product, the routes they may
//! call and their limits. Admin callers present the configured admin token (role `admin`) or an
//! admin key with a role — `admin` (everything), `operator` (keys of their team; releases and
//! escalations), `viewer` (read-only) — and, for operators and viewers, a team scope that also
//! limits which usage, inferences and bodies they can read.

mod keys;

pub use keys::{
    hash_secret, new_key_id, new_secret, route_allowed, KeyRefusal, KeyTable, NewSecret, REFRESH_PERIOD,
};

use axum::http::HeaderMap;
use gardefou_core::Error;
use gardefou_store::KeyKind;

use self::keys::constant_time_eq;
use crate::state::AppState;

/// An admin-plane role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// What an admin endpoint needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Reading (viewers and up, within their team).
    Read,
    /// Changing what belongs to a team (operators and up, within their team).
    Operate,
    /// Changing the whole gateway (config reload, admin keys): admins only.
    Admin,
}

/// An authenticated admin caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminPrincipal {
    /// For the audit log: `admin-token`, `key:<id>`, `anonymous` (no admin token configured).
    pub actor: String,
    pub role: Role,
    /// `None`: every team (admins, or a key without a team scope).
    pub team: Option<String>,
}

impl AdminPrincipal {
    /// Whether this caller may see or touch what belongs to `team`.
    pub fn covers(&self, team: Option<&str>) -> bool {
        match &self.team {
            None => true,
            Some(mine) => team == Some(mine.as_str()),
        }
    }
}

/// The admin caller of `headers`, if it may do what `need` says.
///
/// Without an admin token in the config and with `require_keys` off, the admin plane is open
/// (a local, zero-setup gateway): every caller is an anonymous admin. Otherwise a bearer
/// credential is required: the admin token, or an admin key.
pub fn authorize_admin(state: &AppState, headers: &HeaderMap, need: Need) -> Result<AdminPrincipal, Error> {
    let rt = state.runtime();
    let server = &rt.config.server;
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let principal = match given {
        None if server.admin_token.is_none() && !server.require_keys => {
            AdminPrincipal { actor: "anonymous".to_owned(), role: Role::Admin, team: None }
        }
        None => {
            return Err(Error::Unauthenticated(
                "admin endpoints need `Authorization: Bearer <admin token or admin key>`".to_owned(),
            ))
        }
        Some(given) => admin_principal(state, given)?,
    };
    let required = match need {
        Need::Read => Role::Viewer,
        Need::Operate => Role::Operator,
        Need::Admin => Role::Admin,
    };
    if principal.role < required {
        return Err(Error::Forbidden(format!(
            "this needs the `{}` role; this credential has `{}`",
            required.as_str(),
            principal.role.as_str()
        )));
    }
    Ok(principal)
}

fn admin_principal(state: &AppState, given: &str) -> Result<AdminPrincipal, Error> {
    let rt = state.runtime();
    if let Some(token_ref) = &rt.config.server.admin_token {
        let expected = token_ref
            .resolve()
            .map_err(|_| Error::Forbidden("the admin token is configured but cannot be read".to_owned()))?;
        if constant_time_eq(given.as_bytes(), expected.expose().as_bytes()) {
            return Ok(AdminPrincipal { actor: "admin-token".to_owned(), role: Role::Admin, team: None });
        }
    }
    match state.keys().check(given, KeyKind::Admin, now_ms()) {
        Ok(key) => Ok(AdminPrincipal {
            actor: format!("key:{}", key.id),
            role: key.role.as_deref().and_then(Role::parse).unwrap_or(Role::Viewer),
            team: key.team.clone(),
        }),
        Err(refusal) => Err(Error::Unauthenticated(match refusal {
            KeyRefusal::Invalid => "wrong admin credential".to_owned(),
            other => other.message().to_owned(),
        })),
    }
}

/// Wall-clock unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
