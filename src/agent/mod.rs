//! What an agent process gets: the environment its CLI expects for the lease's credential,
//! a private per-lease workspace (Codex's `CODEX_HOME`), and the `run` supervisor that starts
//! it under a lease and keeps the lease alive while it runs.

mod env;
mod run;
mod workspace;

pub use env::{AgentEnv, CREDENTIAL_VARS, EnvInputs, EnvValue, agent_env};
pub use run::{LeaseKeeper, run_agent};
pub use workspace::{lease_dir, lease_dirs, remove_lease_dir};
