//! Endpoint parsing with a hard loopback-only rule.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{bail, Context, Result};

/// A parsed `http://host:port` endpoint that is guaranteed to be on the loopback interface.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Address the TCP connections go to.
    addr: SocketAddr,
    /// Value of the `Host` header (and the authority that gets signed), e.g. `127.0.0.1:8080`.
    host_header: String,
}

impl Endpoint {
    /// Parses `http://HOST[:PORT][/]`. HOST must be `localhost`, an IPv4 address in 127.0.0.0/8
    /// or `[::1]`; anything else is refused. TLS is not supported.
    pub fn parse(url: &str) -> Result<Self> {
        let uri: http::Uri = url
            .parse()
            .with_context(|| format!("invalid endpoint URL {url:?}"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some(other) => {
                bail!("unsupported scheme {other:?} in {url:?}: only http:// is supported")
            }
            None => bail!("endpoint {url:?} must start with http://"),
        }
        if let Some(pq) = uri.path_and_query() {
            if pq.as_str() != "/" && !pq.as_str().is_empty() {
                bail!("endpoint {url:?} must not have a path or query");
            }
        }
        let authority = uri
            .authority()
            .with_context(|| format!("endpoint {url:?} has no host"))?;
        if authority.as_str().contains('@') {
            bail!("endpoint {url:?} must not contain user info");
        }
        let host = authority.host();
        let port = authority.port_u16().unwrap_or(80);
        let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
            // Resolve by hand: never trust a resolver for "localhost".
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            bare.parse().with_context(|| {
                format!("endpoint host {host:?} is not localhost or a loopback IP address")
            })?
        };
        if !ip.is_loopback() {
            bail!("refusing endpoint {url:?}: only loopback targets (127.0.0.0/8, ::1, localhost) are allowed");
        }
        Ok(Self {
            addr: SocketAddr::new(ip, port),
            host_header: authority.as_str().to_owned(),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn host_header(&self) -> &str {
        &self.host_header
    }

    /// Absolute URL for `path` (which must start with `/`), as given to the signer.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.host_header, path)
    }
}

/// Refuses to listen anywhere but on loopback.
pub fn check_listen(addr: SocketAddr) -> Result<()> {
    if !addr.ip().is_loopback() {
        bail!("refusing to listen on {addr}: only loopback addresses are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback() {
        let e = Endpoint::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!(e.addr(), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(e.host_header(), "127.0.0.1:8080");
        assert_eq!(e.url("/x"), "http://127.0.0.1:8080/x");

        let e = Endpoint::parse("http://localhost:9000/").unwrap();
        assert_eq!(e.addr(), "127.0.0.1:9000".parse().unwrap());
        assert_eq!(e.host_header(), "localhost:9000");

        let e = Endpoint::parse("http://127.1.2.3").unwrap();
        assert_eq!(e.addr().port(), 80);

        let e = Endpoint::parse("http://[::1]:7000").unwrap();
        assert_eq!(e.addr(), "[::1]:7000".parse().unwrap());
    }

    #[test]
    fn refuses_everything_else() {
        for url in [
            "http://10.0.0.1:80",
            "http://192.168.1.1",
            "http://8.8.8.8",
            "http://example.com",
            "http://localhost.example.com",
            "https://127.0.0.1:443",
            "127.0.0.1:8080",
            "http://127.0.0.1:8080/path",
            "http://user@127.0.0.1:8080",
            "http://0.0.0.0:8080",
            "http://[::]:8080",
        ] {
            assert!(Endpoint::parse(url).is_err(), "{url} should be refused");
        }
    }

    #[test]
    fn listen_loopback_only() {
        assert!(check_listen("127.0.0.1:0".parse().unwrap()).is_ok());
        assert!(check_listen("0.0.0.0:0".parse().unwrap()).is_err());
    }
}
