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
