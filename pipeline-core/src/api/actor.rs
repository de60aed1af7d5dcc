//! Who does an operator action. Today a trimmed, required name; the accounts issue makes it an
//! authenticated account with roles, checked in the facade, without changing any action's signature.

use super::error::{ApiError, ApiResult, ErrorCode};

/// The operator behind an action, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    name: String,
}

impl Actor {
    /// An operator by name; refused when the name is empty.
    pub fn named(name: &str) -> ApiResult<Actor> {
        let name = name.trim();
        if name.is_empty() {
            return Err(ApiError::new(ErrorCode::InvalidInput, "an operator name is required for every action"));
        }
        Ok(Actor { name: name.to_string() })
    }

    /// The name the audit log records.
    pub fn name(&self) -> &str {
        &self.name
    }
}
