//! The ledger's side of the `run` supervisor ([`agent::run_agent`](crate::agent::run_agent)):
//! what it needs of the ledger, and the method that starts it.

use std::ffi::OsString;
use std::path::Path;

use super::Ledger;
use crate::agent::{self, AgentEnv, LeaseKeeper};
use crate::error::Error;
use crate::records::Lease;
use crate::types::LeaseId;

impl LeaseKeeper for Ledger {
    fn agent_env(&self, lease: &Lease) -> Result<AgentEnv, Error> {
        Ledger::agent_env(self, lease)
    }

    fn renew(&self, id: &LeaseId) -> Result<(), Error> {
        Ledger::renew(self, id).map(drop)
    }

    fn release_with(&self, id: &LeaseId, detail: Option<serde_json::Value>) -> Result<(), Error> {
        Ledger::release_with(self, id, detail).map(drop)
    }

    fn db_path(&self) -> &Path {
        Ledger::db_path(self)
    }
}

impl Ledger {
    /// Runs `command` as the agent holding `lease` and returns the exit code a shell would
    /// report (128 + signal if it was killed). The lease is released when the agent ends.
    pub fn run_agent(&self, lease: &Lease, command: &[OsString]) -> Result<i32, Error> {
        agent::run_agent(self, lease, command)
    }
}
