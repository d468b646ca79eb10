//! Flag values that name something (a backend, a plugin, a preset, an address to listen on),
//! checked by clap as the command line is parsed (cli.rs): one that names nothing is a usage
//! error (exit 2) naming the flag, before any device opens or self-test runs.

pub fn backend_name(text: &str) -> Result<String, String> {
    crate::backends::check_name(text)
        .map(|()| text.to_string())
        .map_err(|e| format!("{e:#}"))
}

pub fn plugin_source(text: &str) -> Result<String, String> {
    crate::plugin_host::check_source(text)
        .map(|()| text.to_string())
        .map_err(|e| format!("{e:#}"))
}

pub fn preset_name(text: &str) -> Result<String, String> {
    powhost_core::ModelParams::preset(text)
        .map(|_| text.to_string())
        .map_err(|e| format!("{e:#}"))
}

/// `HOST:PORT`, resolved now (binding it is the server's, before its self-test).
pub fn listen_address(text: &str) -> Result<String, String> {
    use std::net::ToSocketAddrs;
    let example = "write HOST:PORT with a port from 0 to 65535, e.g. 127.0.0.1:8080";
    match text
        .to_socket_addrs()
        .map(|mut addrs| addrs.next().is_some())
    {
        Ok(true) => Ok(text.to_string()),
        Ok(false) => Err(format!("`{text}` resolves to no address; {example}")),
        Err(e) => Err(format!(
            "`{text}` is not an address to listen on ({e}); {example}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_name_nothing_are_refused() {
        assert!(
            backend_name("nosuch")
                .unwrap_err()
                .contains("unknown backend")
        );
        assert!(backend_name("cuda:x").unwrap_err().contains("cuda:0"));
        for good in ["cpu", "wgpu", "auto", "cuda", "cuda:0,cuda:1"] {
            assert_eq!(backend_name(good).as_deref(), Ok(good));
        }
        assert!(
            plugin_source("nosuch")
                .unwrap_err()
                .contains("unknown plugin")
        );
        assert!(plugin_source("runpod").is_ok());
        assert!(
            preset_name("nosuch")
                .unwrap_err()
                .contains("unknown preset")
        );
        assert!(preset_name("tiny").is_ok());
        assert!(
            listen_address("127.0.0.1:99999")
                .unwrap_err()
                .contains("65535")
        );
        assert!(listen_address("nonsense").is_err());
        assert!(listen_address("127.0.0.1:0").is_ok());
    }
}
