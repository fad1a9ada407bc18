//! The outbound HTTP client every caller shares (the gateway's model check,
//! the pull of pynchy's state, `check`): no proxy from the environment and no
//! redirects, because it only ever talks to addresses the operator named.

/// A new client with those settings. Fails only if the TLS or resolver
/// backend cannot start; callers report that rather than fall back to a
/// client with other settings.
pub fn outbound() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

/// Why an answer's body could not be read whole.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// More than the caller's limit: nothing past it was read.
    #[error("answer too large (over {})", crate::config::size_text(*limit))]
    TooLarge { limit: u64 },
    #[error(transparent)]
    Transport(#[from] reqwest::Error),
}

/// Reads `resp`'s body, at most `limit` bytes: a longer answer (declared or
/// streamed) stops the read at the limit and is [`ReadError::TooLarge`], so an
/// endless body costs `limit` bytes of memory, not all of it.
pub async fn read_capped(
    mut resp: reqwest::Response,
    limit: u64,
) -> Result<bytes::Bytes, ReadError> {
    if resp.content_length().is_some_and(|n| n > limit) {
        return Err(ReadError::TooLarge { limit });
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(ReadError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// [`outbound`], also trusting the CA certificates of the PEM file `ca`
/// (besides the system's roots).
pub fn outbound_trusting(ca: Option<&std::path::Path>) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = ca {
        let pem = crate::file::read(path, crate::file::PEM).map_err(|e| e.to_string())?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build().map_err(|e| e.to_string())
}

/// True when `url` is plain `http://` to a host other than loopback or
/// `localhost`: what a key must not be sent over.
pub fn clear_text_beyond_loopback(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or("");
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    !loopback
}
