//! TEMPORARY STUB (replaced by the real module).
#![allow(missing_docs)]
pub mod codes;
use crate::model::Reading;
use std::path::Path;
#[derive(Debug)]
pub struct Profile { pub id: String }
#[derive(Debug, Default)]
pub struct ProfileSet { profiles: Vec<Profile> }
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ProfileError(pub String);
impl ProfileSet {
    pub fn load_dir(_dir: &Path) -> Result<ProfileSet, ProfileError> { Ok(ProfileSet::default()) }
    pub fn for_topic(&self, _topic: &str) -> Option<&Profile> { self.profiles.first() }
    pub fn iter(&self) -> impl Iterator<Item = &Profile> { self.profiles.iter() }
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason { NotJson, NoProfile }
impl RejectReason { pub fn as_str(self) -> &'static str { "x" } }
#[derive(Debug, Clone)]
pub struct Rejection { pub reason: RejectReason, pub detail: String }
pub fn normalise(_p: &Profile, _payload: &[u8]) -> Result<Vec<Reading>, Rejection> { todo!() }
