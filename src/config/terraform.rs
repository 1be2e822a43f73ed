//! `[[terraform]]`: Terraform state files to watch. An infrastructure change near a
//! deploy is named in the blast radius; backout advises on it and never runs
//! Terraform.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerraformConfig {
    /// What to call it on screen, e.g. "network".
    pub name: String,
    /// A state file (`terraform.tfstate`, or a pulled copy of a remote one), read for
    /// its serial and when it last changed. Relative to backout.toml.
    pub state: PathBuf,
}
