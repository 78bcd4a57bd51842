//! systemd integration: `sd_notify` messages (`READY=1`, `STOPPING=1`,
//! `WATCHDOG=1`) sent as datagrams to `$NOTIFY_SOCKET`, with no C library.
//!
//! Every function is a no-op when reeld does not run under systemd.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

/// Sends one notification to systemd; returns whether it was delivered.
pub fn notify(state: &str) -> bool {
    match std::env::var_os("NOTIFY_SOCKET") {
        Some(socket) => notify_to(&socket.to_string_lossy(), state),
        None => false,
    }
}

/// Sends `state` to the notification socket `socket` (a path, or `@name` for
/// an abstract socket).
fn notify_to(socket: &str, state: &str) -> bool {
    let Ok(sender) = UnixDatagram::unbound() else {
        return false;
    };
    let sent = match socket.strip_prefix('@') {
        // An abstract socket (systemd's default for services).
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .and_then(|addr| sender.send_to_addr(state.as_bytes(), &addr))
        }
        None => sender.send_to(state.as_bytes(), socket),
    };
    sent.is_ok()
}

/// How often to send `WATCHDOG=1`: half of `WatchdogSec`, if systemd set one
/// for this process.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_reach_path_and_abstract_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        assert!(notify_to(&path.to_string_lossy(), "READY=1"));
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("reeld-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let receiver = UnixDatagram::bind_addr(&addr).unwrap();
        assert!(notify_to(&format!("@{name}"), "WATCHDOG=1"));
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
        assert!(!notify_to(
            &dir.path().join("absent").to_string_lossy(),
            "READY=1"
        ));
    }
}
