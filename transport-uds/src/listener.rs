//! The server side: binding a socket (file or abstract name) and accepting connections.

use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener as StdUnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use mcp_transport_core::Transport;
use tokio::net::{UnixListener, UnixStream};

use crate::conn::{build, credentials};
use crate::{Error, UdsAddr, UdsConfig};

/// A listening Unix-domain socket that turns connections into transports.
///
/// Binding a path creates the socket file with [`UdsConfig::mode`] (0600 by default) and no
/// window in which it has another mode; dropping the listener removes that file. See
/// [`UdsListener::bind`].
#[derive(Debug)]
pub struct UdsListener {
    inner: UnixListener,
    addr: UdsAddr,
    url: String,
    config: UdsConfig,
    /// The socket file this listener created; `None` for an abstract name.
    file: Option<SocketFile>,
}

/// Identity of the socket file a listener created, so drop removes only that file.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl UdsListener {
    /// Binds `addr` and starts listening. Must be called within a tokio runtime.
    ///
    /// For a filesystem path:
    ///
    /// - A socket file already at the path is probed with a connection attempt. If it is
    ///   refused, nobody listens there: the stale file is removed and replaced. If it is
    ///   accepted (the other listener sees a connection that closes at once), binding fails with
    ///   [`Error::AddrInUse`]. Any other outcome (for example no permission) is an
    ///   [`Error::Io`] and the file is left alone.
    /// - Anything else at the path (regular file, directory, symlink, FIFO) is never removed:
    ///   [`Error::NotASocket`].
    /// - The socket is bound inside a fresh directory of mode 0700 created next to the path,
    ///   given `config.mode` there (where no other user can reach it), then hard-linked into
    ///   place, which fails rather than replaces if the path was taken meanwhile; the temporary
    ///   directory is then removed. So the socket never appears at the path with another mode.
    ///   Where that cannot work (a filesystem without hard links, or a temporary path too long
    ///   for a socket address), the socket is bound at the path directly and its mode set right
    ///   after, leaving a short window with the mode the umask gives.
    ///
    /// An abstract name creates no file and has no mode: any process in the same network
    /// namespace can connect, so use [`UdsConfig::allowed_uids`] to restrict it.
    pub async fn bind(addr: UdsAddr, config: UdsConfig) -> Result<Self, Error> {
        let (std_listener, file) = match &addr {
            UdsAddr::Path(path) => {
                let (listener, file) = bind_path(path, config.mode, &addr).await?;
                (listener, Some(file))
            }
            UdsAddr::Abstract(name) => (bind_abstract(name, &addr)?, None),
        };
        let io_err = |source| Error::Io { op: "listen on", addr: addr.to_string(), source };
        std_listener.set_nonblocking(true).map_err(io_err)?;
        let inner = UnixListener::from_std(std_listener).map_err(io_err)?;
        let url = addr.to_string();
        tracing::info!(address = %url, mode = file.as_ref().map(|_| format!("{:o}", config.mode)), "listening");
        Ok(Self { inner, addr, url, config, file })
    }

    /// The address this listener is bound to.
    pub fn local_addr(&self) -> &UdsAddr {
        &self.addr
    }

    /// The configuration connections are accepted with.
    pub fn config(&self) -> &UdsConfig {
        &self.config
    }

    /// Waits for the next connection from an allowed peer and returns its transport.
    ///
    /// Reads the peer's credentials (`SO_PEERCRED`). When [`UdsConfig::allowed_uids`] is set, a
    /// peer whose uid is not listed (or whose credentials cannot be read) is logged at warn
    /// level with its uid and pid, disconnected, and skipped: `accept` goes on waiting rather
    /// than returning an error. Connections that fail before they are accepted
    /// (`ECONNABORTED`) are skipped too. Other errors, such as running out of file
    /// descriptors, are returned; the listener stays usable.
    ///
    /// The transport's [`PeerInfo`](mcp_transport_core::PeerInfo) carries this listener's URL
    /// (the connecting side of a Unix socket has no address of its own) and the credentials.
    ///
    /// Cancel-safe: dropping the future loses no connection. Several tasks may accept at once.
    pub async fn accept(&self) -> Result<Transport, Error> {
        loop {
            let stream = match self.inner.accept().await {
                Ok((stream, _)) => stream,
                Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted) => {
                    tracing::debug!(address = %self.url, error = %e, "connection failed before accept");
                    continue;
                }
                Err(source) => return Err(Error::Io { op: "accept on", addr: self.url.clone(), source }),
            };
            if let Some(transport) = self.admit(stream) {
                return Ok(transport);
            }
        }
    }

    /// Checks the peer against the allow-list and builds its transport, or drops the stream.
    fn admit(&self, stream: UnixStream) -> Option<Transport> {
        let creds = stream.peer_cred().map(|c| credentials(&c));
        if let Some(allowed) = &self.config.allowed_uids {
            match &creds {
                Ok(c) if allowed.contains(&c.uid) => {}
                Ok(c) => {
                    tracing::warn!(
                        address = %self.url, uid = c.uid, gid = c.gid, pid = c.pid,
                        "refused connection: peer uid is not in the allow-list"
                    );
                    return None;
                }
                Err(e) => {
                    tracing::warn!(
                        address = %self.url, error = %e,
                        "refused connection: peer credentials unavailable"
                    );
                    return None;
                }
            }
        }
        let creds = creds
            .inspect_err(|e| tracing::debug!(address = %self.url, error = %e, "peer credentials unavailable"))
            .ok();
        Some(build(stream, "server", self.url.clone(), creds, &self.config))
    }
}

impl Drop for UdsListener {
    fn drop(&mut self) {
        let Some(file) = &self.file else { return };
        // Remove the file only if it is still the one this listener created.
        match fs::symlink_metadata(&file.path) {
            Ok(m) if m.dev() == file.dev && m.ino() == file.ino => match fs::remove_file(&file.path) {
                Ok(()) => tracing::debug!(address = %self.url, "socket file removed"),
                Err(e) => tracing::warn!(address = %self.url, error = %e, "could not remove the socket file"),
            },
            Ok(_) => tracing::debug!(address = %self.url, "socket file replaced by another; left in place"),
            Err(_) => {}
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn bind_abstract(name: &[u8], addr: &UdsAddr) -> Result<StdUnixListener, Error> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    std::os::unix::net::SocketAddr::from_abstract_name(name)
        .and_then(|a| StdUnixListener::bind_addr(&a))
        .map_err(|e| bind_error(e, addr))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn bind_abstract(_name: &[u8], _addr: &UdsAddr) -> Result<StdUnixListener, Error> {
    Err(Error::Unsupported("abstract socket names exist only on Linux"))
}

fn bind_error(e: io::Error, addr: &UdsAddr) -> Error {
    if e.kind() == io::ErrorKind::AddrInUse {
        Error::AddrInUse(addr.clone())
    } else {
        Error::Io { op: "bind", addr: addr.to_string(), source: e }
    }
}

async fn bind_path(path: &Path, mode: u32, addr: &UdsAddr) -> Result<(StdUnixListener, SocketFile), Error> {
    clear_stale(path, addr).await?;
    if let Some(bound) = bind_private(path, mode, addr)? {
        return Ok(bound);
    }
    bind_direct(path, mode, addr)
}

/// Removes a socket file that nothing listens on; fails if something does, or if the path holds
/// anything but a socket.
async fn clear_stale(path: &Path, addr: &UdsAddr) -> Result<(), Error> {
    let io_err = |op, source| Error::Io { op, addr: addr.to_string(), source };
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("inspect", e)),
    };
    if !meta.file_type().is_socket() {
        return Err(Error::NotASocket(path.to_owned()));
    }
    let mut attempts = 0;
    loop {
        attempts += 1;
        return match UnixStream::connect(path).await {
            // A full backlog (WouldBlock) also means somebody listens.
            Ok(_) => Err(Error::AddrInUse(addr.clone())),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(Error::AddrInUse(addr.clone())),
            // The listener closed while the probe was queued: look again.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && attempts < 3 => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => Err(Error::AddrInUse(addr.clone())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => remove_stale(path, &meta, addr),
            Err(e) => Err(io_err("probe existing socket at", e)),
        };
    }
}

/// Removes the socket file that was probed, but not one that replaced it meanwhile.
fn remove_stale(path: &Path, probed: &fs::Metadata, addr: &UdsAddr) -> Result<(), Error> {
    let io_err = |op, source| Error::Io { op, addr: addr.to_string(), source };
    match fs::symlink_metadata(path) {
        Ok(now) if now.dev() == probed.dev() && now.ino() == probed.ino() => match fs::remove_file(path) {
            Ok(()) => {
                tracing::info!(address = %addr, "removed stale socket file");
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove stale socket", e)),
        },
        Ok(_) => Err(Error::AddrInUse(addr.clone())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("inspect", e)),
    }
}

/// A private directory next to the socket path, removed (with the temporary socket name in it)
/// when dropped.
struct PrivateDir {
    dir: PathBuf,
    socket: PathBuf,
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.socket);
        let _ = fs::remove_dir(&self.dir);
    }
}

fn private_dir(parent: &Path) -> Option<PrivateDir> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    for _ in 0..8 {
        // RandomState is seeded randomly per process; the counter makes each name differ.
        let mut h = std::hash::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u32(std::process::id());
        let dir = parent.join(format!(".mcpt-{:012x}", h.finish() & 0xffff_ffff_ffff));
        // The umask can only clear bits, so the directory is at most 0700.
        match fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Some(PrivateDir { socket: dir.join("s"), dir }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "cannot create a private directory");
                return None;
            }
        }
    }
    None
}

/// Binds in a private directory, sets the mode, and links the socket into place. `None` when
/// this approach cannot work here and a direct bind should be tried.
fn bind_private(path: &Path, mode: u32, addr: &UdsAddr) -> Result<Option<(StdUnixListener, SocketFile)>, Error> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Some(tmp) = private_dir(parent) else { return Ok(None) };
    if tmp.socket.as_os_str().len() > crate::addr::MAX_ADDR_LEN {
        return Ok(None);
    }
    let listener = match StdUnixListener::bind(&tmp.socket) {
        Ok(l) => l,
        Err(e) => {
            tracing::debug!(error = %e, "cannot bind in a private directory");
            return Ok(None);
        }
    };
    let io_err = |op, source| Error::Io { op, addr: addr.to_string(), source };
    fs::set_permissions(&tmp.socket, fs::Permissions::from_mode(mode & 0o777))
        .map_err(|e| io_err("set the mode of", e))?;
    let meta = fs::symlink_metadata(&tmp.socket).map_err(|e| io_err("inspect", e))?;
    match fs::hard_link(&tmp.socket, path) {
        Ok(()) => {
            let file = SocketFile { path: path.to_owned(), dev: meta.dev(), ino: meta.ino() };
            Ok(Some((listener, file)))
        }
        // Someone created something at the path since the stale check.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(Error::AddrInUse(addr.clone())),
        Err(e) => {
            tracing::debug!(error = %e, "cannot link the socket into place; binding directly");
            Ok(None)
        }
    }
}

/// Binds at the path itself and sets the mode right after (a short window with the umask's mode).
fn bind_direct(path: &Path, mode: u32, addr: &UdsAddr) -> Result<(StdUnixListener, SocketFile), Error> {
    let listener = StdUnixListener::bind(path).map_err(|e| bind_error(e, addr))?;
    let meta = fs::symlink_metadata(path)
        .and_then(|meta| fs::set_permissions(path, fs::Permissions::from_mode(mode & 0o777)).map(|()| meta));
    match meta {
        Ok(meta) => Ok((listener, SocketFile { path: path.to_owned(), dev: meta.dev(), ino: meta.ino() })),
        Err(source) => {
            let _ = fs::remove_file(path);
            Err(Error::Io { op: "set the mode of", addr: addr.to_string(), source })
        }
    }
}
