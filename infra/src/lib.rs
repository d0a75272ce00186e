//! I/O shared by the `slipway` bridge and `slipway-runner`, so each piece has one home.
pub mod spool;

pub mod audit_signer;
pub mod audit_writer;
pub mod credential;
pub mod exec;
pub mod gcp;
pub mod git_relay;
pub mod github;
pub mod gitops;
pub mod oci;
pub mod oidc;
pub mod runtime;
pub mod s3;
pub mod sandbox;
pub mod secret_store;
pub mod sinks;
pub mod sts;
pub mod sync;
pub mod tls;

/// `err` followed by each of its causes, `: `-separated (SDK errors keep the useful part in
/// their sources).
pub fn with_causes(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Whether `url` may carry credentials: `https://`, or plain `http://` to a loopback host only
/// (emulators and local tests). The host is parsed, so `http://localhost.evil.example` and
/// `http://127.0.0.1@evil.example` are refused.
pub fn https_or_loopback(url: &str) -> bool {
    let Ok(uri) = url.parse::<http::Uri>() else {
        return false;
    };
    let Some(host) = uri.host() else {
        return false;
    };
    match uri.scheme_str() {
        Some("https") => true,
        Some("http") => {
            // `authority` keeps any `user@`; a loopback URL has no reason to carry one.
            let userinfo = uri.authority().is_some_and(|a| a.as_str().contains('@'));
            let host = host.trim_start_matches('[').trim_end_matches(']');
            !userinfo
                && (host.eq_ignore_ascii_case("localhost")
                    || host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback()))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::https_or_loopback;

    #[test]
    fn only_https_or_loopback_http() {
        for ok in [
            "https://api.github.com",
            "https://sts.us-east-1.amazonaws.com/",
            "http://127.0.0.1:5000",
            "http://127.0.0.1",
            "http://localhost:8080/path?q=1",
            "http://[::1]:9093/api",
            "http://127.0.0.2/",
        ] {
            assert!(https_or_loopback(ok), "{ok} should be allowed");
        }
        for bad in [
            "http://sts.example.com",
            "http://localhost.evil.example/",
            "http://127.0.0.1.evil.example:80/",
            "http://127.0.0.1@evil.example/",
            "http://10.0.0.1/",
            "ftp://127.0.0.1/",
            "127.0.0.1:5000",
            "",
            "https://",
        ] {
            assert!(!https_or_loopback(bad), "{bad} should be refused");
        }
    }
}
