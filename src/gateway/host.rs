//! Running a gateway beside the ledger: on its own thread and runtime, on a loopback address,
//! with the ledger as its authority. `run` hosts one for its lease on an ephemeral port;
//! `authledger gateway` and `daemon --gateway` host one for every agent of the machine and
//! write its URL beside the database, where `authledger env` finds it.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::authority::{Authority, GatewayError};
use super::ledger_authority::LedgerAuthority;
use crate::ledger::Ledger;

/// Threads for the gateway's blocking work (ledger reads and writes): enough for the requests
/// of a busy machine, few enough to keep `run` small.
const BLOCKING_THREADS: usize = 8;

/// A gateway serving on a thread of its own until [`HostedGateway::stop`].
pub struct HostedGateway {
    addr: SocketAddr,
    authority: Arc<LedgerAuthority>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), GatewayError>>>,
    published: Option<PathBuf>,
}

impl std::fmt::Debug for HostedGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostedGateway")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl HostedGateway {
    /// Binds `listen` (a loopback address: the gateway hands out what a lease token is worth,
    /// so it never listens beyond this machine) and serves on `workers` threads.
    pub fn start(
        ledger: Ledger,
        listen: SocketAddr,
        workers: usize,
    ) -> Result<HostedGateway, GatewayError> {
        if !listen.ip().is_loopback() {
            return Err(GatewayError::Unavailable(format!(
                "the gateway listens only on a loopback address, not {listen}"
            )));
        }
        let listener = std::net::TcpListener::bind(listen)
            .map_err(|e| GatewayError::Unavailable(format!("cannot listen on {listen}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| GatewayError::Unavailable(format!("cannot listen on {listen}: {e}")))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| GatewayError::Unavailable(format!("cannot listen on {listen}: {e}")))?;
        let authority = Arc::new(LedgerAuthority::new(ledger)?);
        let runtime = if workers <= 1 {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(workers);
            b
        }
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .thread_name("authledger-gateway")
        .build()
        .map_err(|e| GatewayError::Unavailable(format!("cannot start the gateway: {e}")))?;
        let (shutdown, stop) = oneshot::channel::<()>();
        let serving: Arc<dyn Authority> = Arc::clone(&authority) as Arc<dyn Authority>;
        let thread = std::thread::Builder::new()
            .name("authledger-gateway".into())
            .spawn(move || {
                let served = runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).map_err(|e| {
                        GatewayError::Unavailable(format!("cannot listen on {addr}: {e}"))
                    })?;
                    super::serve(listener, serving, async {
                        let _ = stop.await;
                    })
                    .await
                });
                // Waits for the blocking tasks still deciding requests.
                drop(runtime);
                served
            })
            .map_err(|e| GatewayError::Unavailable(format!("cannot start the gateway: {e}")))?;
        Ok(HostedGateway {
            addr,
            authority,
            shutdown: Some(shutdown),
            thread: Some(thread),
            published: None,
        })
    }

    /// The base URL agents are given: `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Writes the URL beside the database (`ledger.db.gateway`, 0600), so `authledger env`
    /// on this machine can hand agents this gateway; removed again by [`HostedGateway::stop`].
    pub fn publish(&mut self, db: &Path) -> Result<(), GatewayError> {
        let path = crate::paths::gateway_url_file(db);
        write_private(&path, &format!("{} {}\n", self.url(), std::process::id())).map_err(|e| {
            GatewayError::Unavailable(format!("cannot write {}: {e}", path.display()))
        })?;
        self.published = Some(path);
        Ok(())
    }

    /// Waits until every usage record and health report so far is written.
    pub fn flush(&self) {
        self.authority.flush();
    }

    /// Stops taking requests, lets running ones finish (bounded), writes every record, and
    /// returns once all of it is in the ledger.
    pub fn stop(mut self) -> Result<(), GatewayError> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<(), GatewayError> {
        if let Some(path) = self.published.take() {
            // Only our own announcement: another gateway may have replaced it since.
            let ours = format!("{} {}", self.url(), std::process::id());
            if std::fs::read_to_string(&path).is_ok_and(|t| t.trim() == ours) {
                let _ = std::fs::remove_file(&path);
            }
        }
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let served = match self.thread.take() {
            Some(thread) => thread
                .join()
                .unwrap_or_else(|_| Err(GatewayError::Unavailable("the gateway panicked".into()))),
            None => Ok(()),
        };
        self.authority.flush();
        served?;
        match self.authority.lost() {
            0 => Ok(()),
            lost => Err(GatewayError::Unavailable(format!(
                "{lost} usage records could not be written; each is logged above with the \
                 `authledger usage record` that enters it"
            ))),
        }
    }
}

impl Drop for HostedGateway {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}

/// The URL a gateway published beside `db`, if the process that published it is still alive,
/// runs as this user, and something listens there. A file left by a gateway that was killed
/// names a port anyone may have bound since: it is not trusted, so a lease token never goes
/// to another user's listener.
pub fn published_url(db: &Path) -> Option<String> {
    let text = std::fs::read_to_string(crate::paths::gateway_url_file(db)).ok()?;
    let (url, pid) = text.trim().split_once(' ')?;
    let pid: i32 = pid.parse().ok().filter(|p| *p > 0)?;
    let addr: SocketAddr = url.strip_prefix("http://")?.parse().ok()?;
    if !addr.ip().is_loopback() || !same_user_process(pid) {
        return None;
    }
    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(200)).ok()?;
    Some(url.to_string())
}

/// Whether `pid` is a live process of this user.
fn same_user_process(pid: i32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(me) = std::fs::metadata("/proc/self") else {
        return false;
    };
    std::fs::metadata(format!("/proc/{pid}")).is_ok_and(|m| m.uid() == me.uid())
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut staged = tempfile::Builder::new()
        .prefix(".gateway")
        .tempfile_in(dir)?;
    staged.write_all(text.as_bytes())?;
    staged.as_file().sync_all()?;
    // tempfile creates it 0600, whatever the umask.
    staged.persist(path).map_err(|e| e.error)?;
    Ok(())
}
