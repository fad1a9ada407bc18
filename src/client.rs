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
