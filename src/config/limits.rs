//! `[limits]`: the most read from each outside source in one answer.

use super::*;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLimits {
    pub(super) gateway_body: Option<bytesize::ByteSize>,
    pub(super) docker_body: Option<bytesize::ByteSize>,
    pub(super) pull_body: Option<bytesize::ByteSize>,
}

/// `[limits]`: the most read from each outside source in one answer; a
/// bigger answer is that section's error ("answer too large").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitsConfig {
    pub gateway_body: u64,
    pub docker_body: u64,
    pub pull_body: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            gateway_body: defaults::GATEWAY_BODY,
            docker_body: defaults::DOCKER_BODY,
            pull_body: defaults::PULL_BODY,
        }
    }
}

/// Sizes from 1 KiB to 1 GiB.
pub(super) fn build(raw: RawLimits) -> Result<LimitsConfig, ConfigError> {
    let size = |key: &str, v: Option<bytesize::ByteSize>, d: u64| match v.map(|b| b.as_u64()) {
        None => Ok(d),
        Some(b) if (1 << 10..=1 << 30).contains(&b) => Ok(b),
        Some(b) => Err(invalid(
            key,
            format!("{b} bytes is out of range: from 1 KiB to 1 GiB"),
        )),
    };
    Ok(LimitsConfig {
        gateway_body: size(
            "limits.gateway_body",
            raw.gateway_body,
            defaults::GATEWAY_BODY,
        )?,
        docker_body: size("limits.docker_body", raw.docker_body, defaults::DOCKER_BODY)?,
        pull_body: size("limits.pull_body", raw.pull_body, defaults::PULL_BODY)?,
    })
}
