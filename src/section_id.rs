//! [`SectionId`]: the name of every part of the status document, as a type, so
//! that a misspelt section is a compile error rather than a silent miss. A leaf:
//! the config (`[sections.<name>]`), the registry, the store, pushes and the
//! HTTP layer all name sections through it.

use std::fmt;

/// Declares [`SectionId`] with its built-in variants, [`SectionId::BUILTIN`]
/// (document order, its length counted) and [`SectionId::name`] from one list.
/// Each variant must then have its arm in `sections::entry` — an exhaustive
/// `match`: a variant added here without its section does not compile.
macro_rules! section_ids {
    ($($(#[$doc:meta])* $variant:ident => $name:literal,)*) => {
        /// One section of `/status`. Built-in sections are variants; `Extra` is a
        /// section an embedding host or a test adds with `Daemon::with_section`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum SectionId {
            $($(#[$doc])* $variant,)*
            Extra(&'static str),
        }

        impl SectionId {
            /// Every built-in section, in the order it appears in `/status`.
            pub const BUILTIN: [SectionId; [$($name),*].len()] = [$(SectionId::$variant),*];

            /// The key under which the section appears in `/status`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(SectionId::$variant => $name,)*
                    SectionId::Extra(name) => name,
                }
            }
        }
    };
}

section_ids! {
    /// Is pynchy up: its process, its HTTP server, its unit.
    Service => "service",
    Deploy => "deploy",
    Channels => "channels",
    Gateway => "gateway",
    /// LiteLLM's books: failures, spend, budgets.
    Llm => "llm",
    Queue => "queue",
    Repos => "repos",
    Messages => "messages",
    Tasks => "tasks",
    HostJobs => "host_jobs",
    Groups => "groups",
    Mcp => "mcp",
}

impl SectionId {
    /// The built-in section called `name`.
    pub fn builtin(name: &str) -> Option<SectionId> {
        SectionId::BUILTIN.into_iter().find(|s| s.name() == name)
    }

    /// The built-in names, comma-separated, for error messages.
    pub fn known() -> String {
        SectionId::BUILTIN.map(SectionId::name).join(", ")
    }
}

impl fmt::Display for SectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for SectionId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for id in SectionId::BUILTIN {
            assert_eq!(SectionId::builtin(id.name()), Some(id));
        }
        assert_eq!(SectionId::builtin("weather"), None);
    }
}
