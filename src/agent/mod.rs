//! What an agent process gets: the environment its CLI expects for the lease's credential,
//! a private per-lease workspace (Codex's `CODEX_HOME`), and the `run` supervisor's pieces.

mod env;
mod workspace;

pub use env::{AgentEnv, CREDENTIAL_VARS, EnvInputs, EnvValue, agent_env};
pub use workspace::{lease_dir, lease_dirs, remove_lease_dir};
