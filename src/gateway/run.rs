//! `run` with metering: the agent's requests go through a gateway this process hosts for its
//! one lease, on an ephemeral loopback port. The agent gets the lease token and the gateway's
//! URL, never the real credential; every request is metered against the lease; when the agent
//! ends, the gateway stops, every record is written, and only then is the lease released, so
//! its `release` row counts all the usage.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::authority::GatewayError;
use super::host::HostedGateway;
use crate::agent::{self, AgentEnv, LeaseKeeper};
use crate::error::Error;
use crate::ledger::Ledger;
use crate::records::Lease;
use crate::types::LeaseId;

/// The ledger, with the gateway its agent talks to.
#[derive(Clone)]
struct MeteredKeeper {
    ledger: Ledger,
    url: String,
    gateway: Arc<Mutex<Option<HostedGateway>>>,
}

impl MeteredKeeper {
    /// Stops the gateway (requests still running finish first) and writes every record.
    fn stop_gateway(&self) {
        let gateway = self.gateway.lock().ok().and_then(|mut g| g.take());
        if let Some(gateway) = gateway
            && let Err(e) = gateway.stop()
        {
            eprintln!("authledger: gateway: {e}");
        }
    }
}

impl LeaseKeeper for MeteredKeeper {
    fn agent_env(&self, lease: &Lease) -> Result<AgentEnv, Error> {
        self.ledger.agent_env_metered(lease, &self.url)
    }

    fn renew(&self, id: &LeaseId) -> Result<(), Error> {
        self.ledger.renew(id).map(drop)
    }

    fn release_with(&self, id: &LeaseId, detail: Option<Value>) -> Result<(), Error> {
        self.stop_gateway();
        self.ledger.release_with(id, detail).map(drop)
    }

    fn db_path(&self) -> &Path {
        self.ledger.db_path()
    }
}

/// Runs `command` as the agent holding `lease`, metered through a gateway hosted here, and
/// returns the exit code a shell would report. The lease is released when the agent ends,
/// after its last request is recorded.
pub fn run_metered(ledger: &Ledger, lease: &Lease, command: &[OsString]) -> Result<i32, Error> {
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    // The gateway batches its own records (one commit for what has queued), whether or not a
    // daemon serves: the daemon's client would write them one by one.
    let gateway = match HostedGateway::start(ledger.direct(), listen, 1) {
        Ok(g) => g,
        Err(e) => {
            let _ = ledger.release_with(
                &lease.id,
                Some(serde_json::json!({ "error": "no gateway" })),
            );
            return Err(into_error(e));
        }
    };
    let keeper = MeteredKeeper {
        ledger: ledger.clone(),
        url: gateway.url(),
        gateway: Arc::new(Mutex::new(Some(gateway))),
    };
    let code = agent::run_agent(&keeper, lease, command);
    // Whatever happened, nothing is left running or unwritten.
    keeper.stop_gateway();
    code
}

/// A gateway failure as the ledger's error (its exit code: storage for the ledger's own).
pub fn into_error(e: GatewayError) -> Error {
    match e {
        GatewayError::Ledger(e) => e,
        other => Error::Io {
            what: "gateway".into(),
            source: std::io::Error::other(other.to_string()),
        },
    }
}
