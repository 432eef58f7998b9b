//! The registry's file format (TOML), parsed but not yet checked.
//!
//! Files are merged: any file may hold any section, so operators can split the
//! registry by module or by org. Names keep their byte span so validation can
//! point at the line that is wrong. Everything is an array of tables
//! (`[[permission]]`, `[[role]]`, `[[org]]`, ...) so each entry carries its
//! own `name`/`id` and a location.

use super::error::{Error, Problem};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;
use toml1::Spanned;

/// One registry file as read from disk (or from the local cache).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SourceFile {
    /// Path relative to the policy directory, `/`-separated.
    pub name: String,
    pub text: String,
}

macro_rules! name_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the wire name; `None` for anything else (callers deny).
            pub fn parse(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }

            #[inline]
            #[allow(dead_code)]
            pub(crate) fn bit(self) -> u8 {
                1u8 << (self as u8)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

name_enum!(
    /// What is done with a permission.
    Action { Read = "read", Write = "write", Approve = "approve", Export = "export" }
);
name_enum!(
    /// Where the call comes from; a permission lists the surfaces it may be
    /// exercised from (a payment approval from a chat bot is a smell).
    Surface { Http = "http", Task = "task", Cli = "cli", Bot = "bot", Internal = "internal" }
);
name_enum!(
    /// How far a grant reaches inside the org. Ordered broadest first.
    Scope { Org = "org", Region = "region", Assigned = "assigned", Own = "own" }
);
name_enum!(
    /// `report` computes and records the decision but allows, so a legacy
    /// endpoint can be guarded before its grants are right.
    Mode { Enforce = "enforce", Report = "report" }
);
name_enum!(
    /// People log in; service accounts are used by integrations and jobs.
    UserKind { Person = "person", Service = "service" }
);

impl Action {
    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A name borrowed from the registry text when it has no escapes: the
/// directory holds ~100k users, and not allocating four strings per user
/// halves the parse's peak memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Name<'de>(Cow<'de, str>);

impl Name<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Name<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Name<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Name<'a>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Name<'a>, E> {
                Ok(Name(Cow::Borrowed(v)))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Name<'a>, E> {
                Ok(Name(Cow::Owned(v.to_string())))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Name<'a>, E> {
                Ok(Name(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V(std::marker::PhantomData))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile<'a> {
    pub settings: Option<Spanned<RawSettings>>,
    #[serde(default)]
    pub module: Vec<RawModule>,
    #[serde(default)]
    pub permission: Vec<RawPermission>,
    #[serde(default)]
    pub role: Vec<RawRole>,
    #[serde(default)]
    pub org: Vec<RawOrg>,
    #[serde(default, borrow)]
    pub user: Vec<RawUser<'a>>,
    #[serde(default)]
    pub bot: Vec<RawBot>,
    #[serde(default)]
    pub cli: Vec<RawCli>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSettings {
    /// Share of an org's users (0..=1) that may lose a grant in one change
    /// before validation warns about a lockout.
    pub lockout_share: Option<f64>,
    /// Mode of permissions that do not set one.
    pub default_mode: Option<Mode>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawModule {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPermission {
    pub name: Spanned<String>,
    pub description: String,
    pub actions: Vec<Action>,
    pub surfaces: Vec<Surface>,
    #[serde(default)]
    pub mfa: Vec<Action>,
    pub mode: Option<Mode>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRole {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub grants: Vec<RawGrant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGrant {
    pub permission: Spanned<String>,
    pub actions: Vec<Action>,
    #[serde(default = "default_scope")]
    pub scope: Scope,
}

fn default_scope() -> Scope {
    Scope::Org
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOrg {
    pub id: Spanned<String>,
    #[serde(default)]
    pub name: String,
    /// Roles that exist only in this org.
    #[serde(default)]
    pub role: Vec<RawRole>,
    #[serde(default)]
    pub add_grant: Vec<RawOrgGrant>,
    #[serde(default)]
    pub remove_grant: Vec<RawOrgRemove>,
    #[serde(default)]
    pub mode: Vec<RawModeOverride>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOrgGrant {
    pub role: Spanned<String>,
    pub permission: Spanned<String>,
    pub actions: Vec<Action>,
    #[serde(default = "default_scope")]
    pub scope: Scope,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOrgRemove {
    pub role: Spanned<String>,
    pub permission: Spanned<String>,
    /// Omitted: every action of the permission.
    pub actions: Option<Vec<Action>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawModeOverride {
    pub permission: Spanned<String>,
    pub mode: Mode,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawUser<'a> {
    #[serde(borrow)]
    pub id: Spanned<Name<'a>>,
    #[serde(default, borrow)]
    pub name: Option<Name<'a>>,
    #[serde(default = "default_kind")]
    pub kind: UserKind,
    #[serde(default, borrow)]
    pub memberships: Vec<RawMembership<'a>>,
}

fn default_kind() -> UserKind {
    UserKind::Person
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMembership<'a> {
    #[serde(borrow)]
    pub org: Spanned<Name<'a>>,
    #[serde(borrow)]
    pub roles: Vec<Spanned<Name<'a>>>,
    #[serde(default, borrow)]
    pub region: Option<Name<'a>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBot {
    pub platform: Spanned<String>,
    pub id: String,
    pub user: Spanned<String>,
    pub org: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCli {
    pub os_user: Option<String>,
    pub uid: Option<u32>,
    pub user: Spanned<String>,
    pub org: Option<Spanned<String>>,
}

/// A parsed file with what is needed to turn byte offsets into lines.
pub(crate) struct ParsedFile<'a> {
    pub name: String,
    line_starts: Vec<usize>,
    pub raw: RawFile<'a>,
}

impl ParsedFile<'_> {
    pub fn line(&self, offset: usize) -> usize {
        line_of(&self.line_starts, offset)
    }
}

pub(crate) struct Registry<'a> {
    pub files: Vec<ParsedFile<'a>>,
}

fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

fn line_of(starts: &[usize], offset: usize) -> usize {
    match starts.binary_search(&offset) {
        Ok(i) => i + 1,
        Err(i) => i,
    }
}

/// Parses every file; reports the first syntax or schema error of *each* file.
pub(crate) fn parse(files: &[SourceFile]) -> Result<Registry<'_>, Error> {
    if files.is_empty() {
        return Err(Error::Empty);
    }
    let mut parsed = Vec::with_capacity(files.len());
    let mut problems = Vec::new();
    for f in files {
        let starts = line_starts(&f.text);
        match toml1::from_str::<RawFile<'_>>(&f.text) {
            Ok(raw) => parsed.push(ParsedFile {
                name: f.name.clone(),
                line_starts: starts,
                raw,
            }),
            Err(e) => problems.push(Problem {
                file: f.name.clone(),
                line: e.span().map_or(0, |s| line_of(&starts, s.start)),
                message: e.message().trim().to_string(),
            }),
        }
    }
    if problems.is_empty() {
        Ok(Registry { files: parsed })
    } else {
        Err(Error::Parse(problems))
    }
}
