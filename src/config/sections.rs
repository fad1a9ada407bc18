//! `[sections.<name>]`: a built-in section's schedule overrides, each name
//! checked against the registry and each duration bounded.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{invalid, ConfigError, MAX_DURATION, MIN_INTERVAL};
use crate::section_id::SectionId;

/// The schedule overrides of one `[sections.<name>]` table.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SectionOverride {
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    pub stale_after: Option<Duration>,
    /// In event mode, a full re-read this often (default 5 min).
    #[serde(default, with = "humantime_serde")]
    pub verify_interval: Option<Duration>,
}

/// Every `[sections.<name>]` table, by section.
pub(super) fn build(
    raw: BTreeMap<String, SectionOverride>,
) -> Result<BTreeMap<SectionId, SectionOverride>, ConfigError> {
    let mut out = BTreeMap::new();
    for (name, o) in raw {
        let Some(id) = SectionId::builtin(&name) else {
            return Err(invalid(
                format!("sections.{name}"),
                format!("unknown section; known sections: {}", SectionId::known()),
            ));
        };
        for (key, value) in [
            ("interval", o.interval),
            ("timeout", o.timeout),
            ("stale_after", o.stale_after),
            ("verify_interval", o.verify_interval),
        ] {
            let Some(v) = value else { continue };
            if v < MIN_INTERVAL || v > MAX_DURATION {
                return Err(invalid(
                    format!("sections.{name}.{key}"),
                    "must be from 100ms to 1 year",
                ));
            }
        }
        if let (Some(i), Some(s)) = (o.interval, o.stale_after) {
            if s <= i {
                return Err(invalid(
                    format!("sections.{name}.stale_after"),
                    "must be longer than the interval (data is at least an interval old)",
                ));
            }
        }
        out.insert(id, o);
    }
    Ok(out)
}
