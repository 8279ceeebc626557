//! Restarting `ringkv-server` on the same ports and data dir, at once.
//!
//! Regression tests for a bug they caught: when the server was the one to close or lose
//! connections (SIGKILL or SIGTERM with clients connected), the server side of each
//! connection lingered in TIME-WAIT on the server's ports for about 60 s, and a new server
//! refused to start on them ("cannot listen on ...: Address already in use"): its start-up
//! check bound with SO_REUSEADDR, which a TIME-WAIT entry of a socket accepted by a
//! SO_REUSEPORT-only glommio listener blocks. Fixed on main in accca63 (the listeners set
//! SO_REUSEADDR). The sleep before the clients close makes the TIME-WAIT land on the server
//! side every time.

use ringkv_tests::raw::RawConn;
use ringkv_tests::server::{ServerOptions, ServerProcess};

#[test]
fn restart_on_the_same_ports_after_clients_closed_first() {
    let mut server = ServerProcess::start(ServerOptions::default());
    let port = server.addr().port();
    {
        let mut c = RawConn::connect(server.addr());
        c.put(b"k", b"v");
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    server.kill();
    server.restart();
    assert_eq!(server.addr().port(), port);
    let mut c = RawConn::connect(server.addr());
    assert_eq!(c.get(b"k").as_deref(), Some(&b"v"[..]));
}

#[test]
fn restart_on_the_same_ports_after_sigkill_with_open_connections() {
    let mut server = ServerProcess::start(ServerOptions::default());
    let mut open: Vec<RawConn> = (0..3).map(|_| RawConn::connect(server.addr())).collect();
    for c in &mut open {
        c.put(b"k", b"v");
    }
    server.kill();
    // Let the dead server's FINs arrive before the clients close: the server side then
    // ends in TIME-WAIT (closing first would leave the TIME-WAIT on the client side).
    std::thread::sleep(std::time::Duration::from_millis(200));
    drop(open);
    server.restart();
    let mut c = RawConn::connect(server.addr());
    assert_eq!(c.get(b"k").as_deref(), Some(&b"v"[..]));
}

/// As above, after a clean SIGTERM shutdown that closed idle connections.
#[test]
fn restart_on_the_same_ports_after_sigterm_with_open_connections() {
    let mut server = ServerProcess::start(ServerOptions::default());
    let mut open: Vec<RawConn> = (0..3).map(|_| RawConn::connect(server.addr())).collect();
    for c in &mut open {
        c.put(b"k", b"v");
    }
    let status = server.terminate();
    assert_eq!(status.code(), Some(0));
    std::thread::sleep(std::time::Duration::from_millis(200));
    drop(open);
    server.restart();
    let mut c = RawConn::connect(server.addr());
    assert_eq!(c.get(b"k").as_deref(), Some(&b"v"[..]));
}
