//! Behaviour specific to Unix sockets: socket files, abstract names, credentials, allow-lists,
//! and one misbehaving client among well-behaved ones.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use mcp_transport_core::message::codes;
use mcp_transport_core::testing::request;
use mcp_transport_core::{Id, Incoming, Message, Response, Transport};
use mcp_transport_uds::{Error, UdsAddr, UdsConfig, UdsListener, connect};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio::time::timeout;

const STEP: Duration = Duration::from_secs(30);

async fn step<T>(what: &str, fut: impl Future<Output = T>) -> T {
    timeout(STEP, fut).await.unwrap_or_else(|_| panic!("{what}: no progress within {STEP:?}"))
}

/// The uid of this process, read from a file it creates (no `unsafe` `getuid` needed).
fn my_uid(dir: &Path) -> u32 {
    let probe = dir.join("uid-probe");
    std::fs::write(&probe, b"").expect("write probe");
    let uid = std::fs::metadata(&probe).expect("probe metadata").uid();
    std::fs::remove_file(probe).expect("remove probe");
    uid
}

fn socket_in(dir: &tempfile::TempDir) -> (PathBuf, UdsAddr) {
    let path = dir.path().join("mcp.sock");
    (path.clone(), UdsAddr::Path(path))
}

fn unique_abstract_name() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_nanos();
    format!("mcpt-test-{}-{nanos}", std::process::id())
}

fn request_id(m: &Message) -> i64 {
    match m.id() {
        Some(Id::Number(n)) => *n,
        other => panic!("expected a numeric id, got {other:?}"),
    }
}

async fn next_message(t: &mut Transport) -> Message {
    match step("recv", t.receiver.recv()).await {
        Some(Ok(Incoming::Message(m))) => m,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// A client connects and accept returns its server side; one message each way.
async fn exchange(listener: &UdsListener, config: &UdsConfig) -> (Transport, Transport) {
    let (client, server) =
        step("connect", async { tokio::join!(connect(listener.local_addr(), config), listener.accept()) }).await;
    let (mut client, mut server) = (client.expect("connect"), server.expect("accept"));
    client.sender.send(request(1, 10)).await.expect("client send");
    assert_eq!(request_id(&next_message(&mut server).await), 1);
    server.sender.send(request(2, 10)).await.expect("server send");
    assert_eq!(request_id(&next_message(&mut client).await), 2);
    (client, server)
}

/// The connection has ended without delivering a message: EOF, or an error such as a reset.
async fn assert_ended(t: &mut Transport) {
    match step("recv on a refused connection", t.receiver.recv()).await {
        None | Some(Err(_)) => {}
        Some(Ok(item)) => panic!("a refused connection delivered {item:?}"),
    }
}

#[tokio::test]
async fn socket_file_is_created_with_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let (path, addr) = socket_in(&dir);
    let listener = UdsListener::bind(addr, UdsConfig::default()).await.expect("bind");
    let meta = std::fs::symlink_metadata(&path).expect("socket file");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    // The private directory used for binding is gone.
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["mcp.sock"]);
    exchange(&listener, &UdsConfig::default()).await;
}

#[tokio::test]
async fn socket_file_mode_is_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let (path, addr) = socket_in(&dir);
    let _listener = UdsListener::bind(addr, UdsConfig { mode: 0o660, ..UdsConfig::default() }).await.expect("bind");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o660);
}

#[tokio::test]
async fn relative_path_works() {
    // A relative path from the working directory into a temporary directory (via `..`).
    let dir = tempfile::tempdir().unwrap();
    let cwd = std::env::current_dir().unwrap();
    let ups = "../".repeat(cwd.components().count() - 1);
    let abs = dir.path().join("rel.sock");
    let rel = format!("{ups}{}", abs.strip_prefix("/").unwrap().display());
    let addr = UdsAddr::parse(&format!("unix:{rel}")).unwrap();
    assert_eq!(addr, UdsAddr::Path(PathBuf::from(&rel)));
    let listener = UdsListener::bind(addr, UdsConfig::default()).await.expect("bind");
    assert_eq!(listener.local_addr().to_string(), format!("unix:{rel}"));
    assert_eq!(std::fs::metadata(&abs).unwrap().permissions().mode() & 0o777, 0o600);
    exchange(&listener, &UdsConfig::default()).await;
    drop(listener);
    assert!(!abs.exists());
}

#[tokio::test]
async fn stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (path, addr) = socket_in(&dir);
    // A listener that went away without removing its file (std never removes it).
    drop(std::os::unix::net::UnixListener::bind(&path).expect("std bind"));
    assert!(std::fs::symlink_metadata(&path).unwrap().file_type().is_socket());
    let listener = UdsListener::bind(addr, UdsConfig::default()).await.expect("bind over a stale file");
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    exchange(&listener, &UdsConfig::default()).await;
}

#[tokio::test]
async fn live_listener_is_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let (path, addr) = socket_in(&dir);
    let first = UdsListener::bind(addr.clone(), UdsConfig::default()).await.expect("bind");
    let ino = std::fs::metadata(&path).unwrap().ino();
    match UdsListener::bind(addr.clone(), UdsConfig::default()).await {
        Err(Error::AddrInUse(a)) => {
            assert_eq!(a, addr);
            assert!(Error::AddrInUse(a).to_string().contains(path.to_str().unwrap()));
        }
        other => panic!("expected AddrInUse, got {other:?}"),
    }
    assert_eq!(std::fs::metadata(&path).unwrap().ino(), ino, "the live socket file was replaced");
    // The probe of the second bind reached the first listener as a connection that ends at once.
    let mut probe = step("accept the probe", first.accept()).await.expect("accept");
    assert!(step("probe end", probe.receiver.recv()).await.is_none());
    exchange(&first, &UdsConfig::default()).await;
}

#[tokio::test]
async fn non_socket_files_are_never_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (path, addr) = socket_in(&dir);

    std::fs::write(&path, b"precious").unwrap();
    match UdsListener::bind(addr.clone(), UdsConfig::default()).await {
        Err(Error::NotASocket(p)) => assert_eq!(p, path),
        other => panic!("expected NotASocket, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    std::fs::remove_file(&path).unwrap();

    // A symlink, even to a stale socket, is not followed or removed.
    let target = dir.path().join("target.sock");
    drop(std::os::unix::net::UnixListener::bind(&target).unwrap());
    std::os::unix::fs::symlink(&target, &path).unwrap();
    assert!(matches!(UdsListener::bind(addr.clone(), UdsConfig::default()).await, Err(Error::NotASocket(_))));
    assert!(std::fs::symlink_metadata(&path).unwrap().file_type().is_symlink());
    assert!(std::fs::symlink_metadata(&target).unwrap().file_type().is_socket());
    std::fs::remove_file(&path).unwrap();

    std::fs::create_dir(&path).unwrap();
    assert!(matches!(UdsListener::bind(addr, UdsConfig::default()).await, Err(Error::NotASocket(_))));
    assert!(path.is_dir());
}

#[tokio::test]
async fn listener_drop_removes_its_socket_file() {
    let dir = tempfile::tempdir().unwrap();
    let (path, addr) = socket_in(&dir);
    let listener = UdsListener::bind(addr.clone(), UdsConfig::default()).await.expect("bind");
    assert!(path.exists());
    drop(listener);
    assert!(std::fs::symlink_metadata(&path).is_err(), "socket file left behind");

    // A file that replaced the socket is not the listener's to remove.
    let listener = UdsListener::bind(addr, UdsConfig::default()).await.expect("bind again");
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"someone else's").unwrap();
    drop(listener);
    assert_eq!(std::fs::read(&path).unwrap(), b"someone else's");
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn abstract_address_works() {
    let url = format!("unix:@{}", unique_abstract_name());
    let addr = UdsAddr::parse(&url).expect("parse");
    let listener = UdsListener::bind(addr.clone(), UdsConfig::default()).await.expect("bind");
    assert_eq!(listener.local_addr().to_string(), url);
    let (client, server) = exchange(&listener, &UdsConfig::default()).await;
    assert_eq!(client.peer.address, url);
    assert_eq!(server.peer.address, url);
    assert!(matches!(UdsListener::bind(addr.clone(), UdsConfig::default()).await, Err(Error::AddrInUse(_))));
    drop(listener);
    // The name is released with the socket.
    let again = UdsListener::bind(addr, UdsConfig::default()).await.expect("bind after drop");
    exchange(&again, &UdsConfig::default()).await;
}

#[tokio::test]
async fn peer_credentials_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let uid = my_uid(dir.path());
    let (_, addr) = socket_in(&dir);
    let listener = UdsListener::bind(addr.clone(), UdsConfig::default()).await.expect("bind");
    let (client, server) = exchange(&listener, &UdsConfig::default()).await;
    for t in [&client, &server] {
        assert_eq!(t.peer.address, addr.to_string());
        let c = t.peer.credentials.expect("credentials");
        assert_eq!(c.uid, uid);
        assert_eq!(c.pid, Some(std::process::id() as i32));
    }
}

#[tokio::test]
async fn connecting_to_nothing_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (path, addr) = socket_in(&dir);
    match connect(&addr, &UdsConfig::default()).await {
        Err(Error::Io { source, .. }) => assert_eq!(source.kind(), std::io::ErrorKind::NotFound),
        other => panic!("expected NotFound, got {other:?}"),
    }
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    match connect(&addr, &UdsConfig::default()).await {
        Err(Error::Io { source, .. }) => assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused),
        other => panic!("expected ConnectionRefused, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_list_refuses_other_uids_and_keeps_accepting() {
    let dir = tempfile::tempdir().unwrap();
    let uid = my_uid(dir.path());
    let (_, addr) = socket_in(&dir);
    let other = uid.wrapping_add(1);

    let refusing = UdsConfig { allowed_uids: Some(vec![other]), ..UdsConfig::default() };
    let listener = std::sync::Arc::new(UdsListener::bind(addr.clone(), refusing).await.expect("bind"));
    let accepting = tokio::spawn({
        let listener = listener.clone();
        async move { listener.accept().await.map(|t| t.peer) }
    });
    for _ in 0..3 {
        let mut client = connect(&addr, &UdsConfig::default()).await.expect("the kernel accepts the connect");
        assert_ended(&mut client).await;
    }
    tokio::task::yield_now().await;
    assert!(!accepting.is_finished(), "accept returned instead of skipping refused peers: {accepting:?}");
    accepting.abort();
    let _ = accepting.await;
    drop(listener);

    let allowing = UdsConfig { allowed_uids: Some(vec![other, uid]), ..UdsConfig::default() };
    let listener = UdsListener::bind(addr, allowing).await.expect("bind");
    let (_, server) = exchange(&listener, &UdsConfig::default()).await;
    assert_eq!(server.peer.credentials.map(|c| c.uid), Some(uid));
}

/// Environment variable that turns [`child_connects_and_expects_refusal`] into a real client.
const CHILD_ADDR: &str = "MCPT_UDS_TEST_CHILD_ADDR";

/// With root, a client running as `nobody` is refused while an allowed client of the same
/// listener is served afterwards. Without root this cannot be arranged and the test does nothing.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_list_refuses_a_foreign_uid_and_serves_the_next_client() {
    let dir = tempfile::tempdir().unwrap();
    let uid = my_uid(dir.path());
    if uid != 0 {
        return;
    }
    const NOBODY: u32 = 65534;
    // An abstract name needs no filesystem permission, so `nobody` can reach it.
    let addr = UdsAddr::parse(&format!("unix:@{}", unique_abstract_name())).unwrap();
    let config = UdsConfig { allowed_uids: Some(vec![uid]), ..UdsConfig::default() };
    let listener = std::sync::Arc::new(UdsListener::bind(addr.clone(), config).await.expect("bind"));
    let accepting = tokio::spawn({
        let listener = listener.clone();
        async move { listener.accept().await }
    });

    let exe = std::env::current_exe().expect("test binary");
    let status = step(
        "child",
        tokio::process::Command::new(exe)
            .args(["--exact", "child_connects_and_expects_refusal", "--test-threads=1", "--quiet"])
            .env(CHILD_ADDR, addr.to_string())
            .uid(NOBODY)
            .gid(NOBODY)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status(),
    )
    .await
    .expect("spawn the child as nobody");
    assert!(status.success(), "the child running as nobody was not refused: {status}");
    assert!(!accepting.is_finished(), "accept returned for a refused peer");

    let mut client = connect(&addr, &UdsConfig::default()).await.expect("connect");
    let mut server = step("accept", accepting).await.expect("accept task").expect("accept");
    assert_eq!(server.peer.credentials.map(|c| c.uid), Some(uid));
    client.sender.send(request(5, 10)).await.expect("send");
    assert_eq!(request_id(&next_message(&mut server).await), 5);
    server.sender.send(request(6, 10)).await.expect("send");
    assert_eq!(request_id(&next_message(&mut client).await), 6);
}

/// Helper for the test above, run in a child process; does nothing in a normal run.
#[tokio::test]
async fn child_connects_and_expects_refusal() {
    let Ok(url) = std::env::var(CHILD_ADDR) else { return };
    let addr = UdsAddr::parse(&url).expect("address from the parent");
    let mut client = connect(&addr, &UdsConfig::default()).await.expect("connect");
    let c = client.peer.credentials.expect("server credentials");
    assert_eq!(c.uid, 0, "the server runs as root");
    match timeout(Duration::from_secs(10), client.receiver.recv()).await {
        Ok(None | Some(Err(_))) => {}
        Ok(Some(Ok(item))) => panic!("a refused connection delivered {item:?}"),
        Err(_) => panic!("the connection was kept open: not refused"),
    }
}

/// What the server saw on one connection.
#[derive(Debug)]
enum Seen {
    Invalid(i64, String),
    End,
    Failed(String),
}

/// Echoes requests as responses and reports everything else on `events`.
async fn serve(mut t: Transport, events: mpsc::UnboundedSender<Seen>) {
    loop {
        match t.receiver.recv().await {
            Some(Ok(Incoming::Message(Message::Request(r)))) => {
                let params = r.params.expect("params");
                if t.sender.send(Response::success(r.id, params)).await.is_err() {
                    return;
                }
            }
            Some(Ok(Incoming::Invalid(e))) => {
                let _ = events.send(Seen::Invalid(e.code, e.reason));
            }
            Some(Ok(other)) => panic!("unexpected {other:?}"),
            Some(Err(e)) => {
                let _ = events.send(Seen::Failed(e.to_string()));
                return;
            }
            None => {
                let _ = events.send(Seen::End);
                return;
            }
        }
    }
}

async fn round_trips(client: &mut Transport, ids: std::ops::Range<i64>) {
    for i in ids {
        client.sender.send(request(i, 100)).await.expect("send");
        match next_message(client).await {
            Message::Response(r) => assert_eq!(r.id, Some(Id::Number(i))),
            other => panic!("expected a response, got {other:?}"),
        }
    }
}

async fn stream_garbage(raw: &mut UnixStream, bytes: usize) {
    let chunk = vec![b'a'; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        raw.write_all(&chunk[..n]).await.expect("write garbage");
        left -= n;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_from_one_client_does_not_disturb_others() {
    const MIB: usize = 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let (path, addr) = socket_in(&dir);
    let config = UdsConfig::default();
    let limit = config.limits.max_message_size;
    assert_eq!(limit, 16 * MIB);
    let listener = UdsListener::bind(addr, config.clone()).await.expect("bind");

    let (raw, bad_server) = tokio::join!(UnixStream::connect(&path), listener.accept());
    let mut bad = raw.expect("raw connect");
    let (bad_events_tx, mut bad_events) = mpsc::unbounded_channel();
    tokio::spawn(serve(bad_server.expect("accept"), bad_events_tx));

    let (good, good_server) = tokio::join!(connect(listener.local_addr(), &config), listener.accept());
    let mut good = good.expect("connect");
    let (good_events_tx, mut good_events) = mpsc::unbounded_channel();
    tokio::spawn(serve(good_server.expect("accept"), good_events_tx));
    round_trips(&mut good, 0..5).await;

    // Invalid UTF-8 on a line of its own: a parse error, and the connection goes on.
    bad.write_all(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\xfe\"}\n").await.unwrap();
    match step("invalid UTF-8 reported", bad_events.recv()).await {
        Some(Seen::Invalid(code, _)) => assert_eq!(code, codes::PARSE_ERROR),
        other => panic!("expected a parse error, got {other:?}"),
    }

    // A line without end: reported once it passes the limit, while the client still writes,
    // so the server did not wait for a newline that never comes (nor buffer until one does).
    stream_garbage(&mut bad, limit + 4 * MIB).await;
    match step("oversized line reported", bad_events.recv()).await {
        Some(Seen::Invalid(code, reason)) => {
            assert_eq!(code, codes::INVALID_REQUEST);
            assert!(reason.contains("limit"), "{reason}");
        }
        other => panic!("expected an oversized-line error, got {other:?}"),
    }

    // The rest of the 100 MiB while the good client keeps talking, then the bad one vanishes.
    let garbage = tokio::spawn(async move {
        stream_garbage(&mut bad, 100 * MIB - limit - 4 * MIB).await;
        drop(bad);
    });
    round_trips(&mut good, 5..200).await;
    step("garbage writer", garbage).await.expect("garbage writer");

    // The line it was sending never ended: the connection ends with a truncation error.
    match step("end of the bad connection", bad_events.recv()).await {
        Some(Seen::Failed(reason)) if reason.contains("ended inside a message") => {}
        other => panic!("expected the bad connection to end inside its unfinished line, got {other:?}"),
    }
    assert!(bad_events.recv().await.is_none(), "more reports from the bad connection");
    round_trips(&mut good, 200..210).await;
    assert!(good_events.try_recv().is_err(), "the good connection saw errors");
}
