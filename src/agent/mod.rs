//! What an agent process gets: the environment its CLI expects for the lease's credential,
//! a private per-lease workspace (Codex's `CODEX_HOME`), and the `run` supervisor that starts
//! it under a lease and keeps the lease alive while it runs.

mod codex_home;
mod env;
mod opencode;
mod run;
mod workspace;

pub use codex_home::UserCodexHome;
pub use env::{
    AgentEnv, CREDENTIAL_VARS, EnvInputs, EnvValue, Inherited, Metering, OPENCODE_CONFIG_VAR,
    agent_env,
};
pub use run::{LeaseKeeper, run_agent};
pub use workspace::{lease_dir, lease_dirs, remove_lease_dir};
