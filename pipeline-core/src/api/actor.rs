//! Who does an operator action: a signed-in account with its roles. Only the facade makes one, by
//! checking a password or a session token, so neither face can act under a name it merely typed.

use crate::accounts::{Action, Role};

/// How the actor signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedInBy {
    /// A password.
    Password,
    /// A session token (`vigil accounts token`).
    Token,
    /// An emergency admin session (`vigil accounts break-glass`).
    BreakGlass,
    /// The demo site's built-in account.
    Demo,
    /// Vigil itself, setting up what an operator asked for (the demo's gateway, a benchmark).
    System,
}

/// The operator behind an action, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    name: String,
    roles: Vec<Role>,
    by: SignedInBy,
}

impl Actor {
    /// An account that proved who it is; only the facade calls this.
    pub(crate) fn signed_in(name: &str, roles: Vec<Role>, by: SignedInBy) -> Actor {
        Actor { name: name.to_string(), roles, by }
    }

    /// Vigil itself, as an administrator, for set-up that runs on an operator's behalf.
    pub(crate) fn system(name: &str) -> Actor {
        Actor { name: name.to_string(), roles: vec![Role::Admin], by: SignedInBy::System }
    }

    /// An actor with these roles, for the unit tests of the facade.
    #[cfg(test)]
    pub(crate) fn for_tests(name: &str, roles: &[Role]) -> Actor {
        Actor { name: name.to_string(), roles: roles.to_vec(), by: SignedInBy::Password }
    }

    /// The name the audit log records.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its roles.
    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    /// How it signed in.
    pub fn signed_in_by(&self) -> SignedInBy {
        self.by
    }

    /// Whether its roles allow `action`.
    pub fn may(&self, action: Action) -> bool {
        action.roles().iter().any(|r| self.roles.contains(r))
    }

    /// Its roles as the audit log and messages write them: `biomed, clinician`.
    pub fn roles_text(&self) -> String {
        if self.roles.is_empty() {
            return "no role".into();
        }
        self.roles.iter().map(|r| r.name()).collect::<Vec<_>>().join(", ")
    }
}
