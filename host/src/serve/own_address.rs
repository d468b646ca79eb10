//! Whether a callback or webhook URL reaches this server itself. Such a URL makes a loop (a
//! ValidatedBatch posted to `…/pow/validate?` is validated again and posted again, without
//! end) or turns results into commands (`…/pow/stop?` would stop generation on every
//! callback), so it is refused when it is given, whatever its spelling: any loopback or
//! local interface address when the server listens on every address (`0.0.0.0`, `[::]`), a
//! name that resolves to one, `localhost` and its subdomains, a trailing dot, the scheme's
//! default port.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// How long a name may take to resolve; one that does not resolve by then is not this
/// server as far as can be told (the outbox will fail on it and retry).
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// `Err` with the reason when `url` reaches the server listening on `listening` (not yet
/// listening: nothing to compare with). Names are resolved off the async threads.
pub async fn refuse_own(url: &str, listening: Option<SocketAddr>) -> Result<(), String> {
    let Some(listening) = listening else {
        return Ok(());
    };
    let Ok(parsed) = reqwest::Url::parse(url) else {
        // Not a URL at all: `delivery::check_url` says so.
        return Ok(());
    };
    let Some(port) = parsed.port_or_known_default() else {
        return Ok(());
    };
    if port != listening.port() {
        return Ok(());
    }
    let Some(host) = parsed.host_str() else {
        return Ok(());
    };
    // The URL parser has written IP addresses in their one spelling (`2130706433` is
    // `127.0.0.1`), IPv6 ones in brackets.
    let addresses: Vec<IpAddr> = match host.trim_start_matches('[').trim_end_matches(']').parse() {
        Ok(ip) => vec![ip],
        Err(_) => resolve(host, port).await,
    };
    match addresses
        .into_iter()
        .find(|ip| reaches(*ip, listening.ip()))
    {
        Some(ip) => Err(format!(
            "reaches this server itself ({}:{port} is where it listens, {listening}): what is posted there would come back to it, in a loop or as a command; give the address of the node software (or another receiver)",
            match ip {
                IpAddr::V6(v6) => format!("[{v6}]"),
                v4 => v4.to_string(),
            }
        )),
        None => Ok(()),
    }
}

/// The addresses a host name stands for. `localhost` and its subdomains are loopback
/// (RFC 6761) whatever the resolver says; a trailing dot names the same host.
async fn resolve(name: &str, port: u16) -> Vec<IpAddr> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name == "localhost" || name.ends_with(".localhost") {
        return vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()];
    }
    // tokio resolves on its blocking threads.
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, port))).await {
        Ok(Ok(found)) => found.map(|a| a.ip()).collect(),
        _ => Vec::new(),
    }
}

/// Whether a connection to `target` reaches a socket listening on `listening` (same port).
fn reaches(target: IpAddr, listening: IpAddr) -> bool {
    let (target, listening) = (target.to_canonical(), listening.to_canonical());
    // Connecting to the unspecified address connects to the local host.
    let target = match target {
        IpAddr::V4(ip) if ip.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
        IpAddr::V6(ip) if ip.is_unspecified() => Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    match listening {
        // `0.0.0.0` takes IPv4 connections to every local address; `[::]` takes both
        // families (Linux's default, IPV6_V6ONLY off).
        IpAddr::V4(ip) if ip.is_unspecified() => target.is_ipv4() && is_local(target),
        IpAddr::V6(ip) if ip.is_unspecified() => is_local(target),
        ip => ip == target,
    }
}

/// Whether `ip` is one of this machine's addresses: loopback, or one a socket can be bound to
/// (the kernel allows that only for local interface addresses).
fn is_local(ip: IpAddr) -> bool {
    ip.is_loopback() || std::net::UdpSocket::bind((ip, 0)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own(listening: &str) -> Option<SocketAddr> {
        Some(listening.parse().unwrap())
    }

    async fn refused(url: &str, listening: &str) -> bool {
        refuse_own(url, own(listening)).await.is_err()
    }

    /// This machine's first non-loopback IPv4 address, if it has one: the source address
    /// the kernel picks for an outside destination (a UDP connect sends nothing).
    fn interface_address() -> Option<IpAddr> {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
        socket.connect("192.0.2.1:9").ok()?;
        let ip = socket.local_addr().ok()?.ip();
        (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
    }

    #[tokio::test]
    async fn every_spelling_of_the_listening_address_is_refused() {
        for url in [
            "http://127.0.0.1:8080/api/v1/pow/validate?",
            "http://localhost:8080/x",
            "http://LOCALHOST.:8080/x",
            "http://node.localhost:8080/x",
            "http://0.0.0.0:8080/x",
            "http://[::ffff:127.0.0.1]:8080/x",
            "http://2130706433:8080/x",
        ] {
            assert!(refused(url, "127.0.0.1:8080").await, "{url}");
        }
        let message = refuse_own("http://localhost:8080/pow/stop?", own("127.0.0.1:8080"))
            .await
            .unwrap_err();
        assert!(
            message.contains("127.0.0.1:8080 is where it listens"),
            "{message}"
        );
        // The scheme's default port.
        assert!(refused("http://127.0.0.1/x", "127.0.0.1:80").await);
        assert!(refused("https://localhost/x", "127.0.0.1:443").await);
        assert!(refused("http://[::1]:8080/x", "[::1]:8080").await);
    }

    #[tokio::test]
    async fn listening_on_every_address_refuses_every_local_one() {
        for url in [
            "http://127.0.0.1:8080/x",
            "http://127.3.2.1:8080/x",
            "http://localhost:8080/x",
            "http://0.0.0.0:8080/x",
        ] {
            assert!(refused(url, "0.0.0.0:8080").await, "{url}");
        }
        // `[::]` takes both families; `0.0.0.0` takes no IPv6 connection.
        assert!(refused("http://[::]:8080/x", "[::]:8080").await);
        assert!(refused("http://[::1]:8080/x", "[::]:8080").await);
        assert!(refused("http://127.0.0.9:8080/x", "[::]:8080").await);
        if let Some(ip) = interface_address() {
            assert!(refused(&format!("http://{ip}:8080/x"), "0.0.0.0:8080").await);
            assert!(refused(&format!("http://{ip}:8080/x"), "[::]:8080").await);
            // Listening on loopback only, the interface address is another server.
            assert!(!refused(&format!("http://{ip}:8080/x"), "127.0.0.1:8080").await);
        }
    }

    #[tokio::test]
    async fn other_servers_are_accepted() {
        for (url, listening) in [
            ("http://127.0.0.1:9000/x", "127.0.0.1:8080"),
            ("http://localhost/x", "127.0.0.1:8080"),
            ("http://127.0.0.2:8080/x", "127.0.0.1:8080"),
            ("http://[::1]:8080/x", "127.0.0.1:8080"),
            ("http://192.0.2.7:8080/x", "0.0.0.0:8080"),
            ("http://[::1]:8080/x", "0.0.0.0:8080"),
            ("http://no-such-host.invalid:8080/x", "0.0.0.0:8080"),
        ] {
            assert!(!refused(url, listening).await, "{url} vs {listening}");
        }
        // Not listening yet: nothing to compare with.
        assert!(refuse_own("http://127.0.0.1:8080/x", None).await.is_ok());
    }
}
