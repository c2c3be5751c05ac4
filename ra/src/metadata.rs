//! An agent's `meta-data` (OCF 1.1 `ra-api.rng`, also the older DTD): its
//! parameters with types, defaults and flags, and its actions with timeout,
//! interval, depth and role hints. Pure: XML text in, [`MetaData`] out, and
//! the checks a caller needs before the first start ([`MetaData::check_params`],
//! [`MetaData::timeout_for`]).
//!
//! LSB scripts and systemd units have no meta-data of their own; the runner
//! builds it as Pacemaker does ([`MetaData::for_lsb`], [`MetaData::for_systemd`]).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::agent::Action;
use crate::exit::Role;

/// Why meta-data could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MetaDataError(pub String);

/// A parameter's content type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ContentType {
    /// `string`.
    String,
    /// `integer`.
    Integer,
    /// `boolean` (`true`/`false`, `yes`/`no`, `on`/`off`, `1`/`0`).
    Boolean,
    /// `select`: one of [`Parameter::options`].
    Select,
    /// Anything else an agent wrote (`time`, `second`, …); not checked.
    Other(String),
}

/// One instance parameter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Parameter {
    /// The name (`OCF_RESKEY_<name>`).
    pub name: String,
    /// Must be set.
    pub required: bool,
    /// Must be unique among resources of this type (deprecated flag).
    pub unique: bool,
    /// Unique together with the other parameters of this group (OCF 1.1).
    pub unique_group: Option<String>,
    /// A change can be applied with `reload-agent`.
    pub reloadable: bool,
    /// Deprecated (`<deprecated>` element or attribute).
    pub deprecated: bool,
    /// The parameters that replace it, when deprecated.
    pub replaced_with: Vec<String>,
    /// One-line description (English if there is one).
    pub shortdesc: String,
    /// Long description (English if there is one).
    pub longdesc: String,
    /// The content type.
    pub content: ContentType,
    /// The default, if the agent gives one (an empty default counts as none).
    pub default: Option<String>,
    /// The choices of a `select`.
    pub options: Vec<String>,
}

/// One `<action>` hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionHint {
    /// The action name as written (`monitor`, `status`, `methods`, …).
    pub name: String,
    /// Suggested timeout.
    #[serde(with = "opt_ms")]
    pub timeout: Option<Duration>,
    /// Suggested interval (recurring monitors).
    #[serde(with = "opt_ms")]
    pub interval: Option<Duration>,
    /// Suggested start delay.
    #[serde(with = "opt_ms")]
    pub start_delay: Option<Duration>,
    /// Check level (`OCF_CHECK_LEVEL`) this entry is for.
    pub depth: Option<u32>,
    /// Role this entry is for (`Promoted`, `Unpromoted`, or legacy names).
    pub role: Option<String>,
}

impl ActionHint {
    /// The role this entry is for, in our terms: `Promoted`/`Master` →
    /// promoted, `Unpromoted`/`Slave`/`Started` → started, `Stopped`.
    pub fn role(&self) -> Option<Role> {
        let r = self.role.as_deref()?.to_ascii_lowercase();
        match r.as_str() {
            "promoted" | "master" => Some(Role::Promoted),
            "unpromoted" | "slave" | "started" => Some(Role::Started),
            "stopped" => Some(Role::Stopped),
            _ => None,
        }
    }
}

mod opt_ms {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_u64(crate::request::millis(*d)),
            None => s.serialize_none(),
        }
    }
}

/// An agent's meta-data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetaData {
    /// The agent's name (`<resource-agent name>`).
    pub name: String,
    /// The agent's own version (`<resource-agent version>`).
    pub agent_version: Option<String>,
    /// The OCF version it claims (`<version>`).
    pub ocf_version: Option<String>,
    /// One-line description.
    pub shortdesc: String,
    /// Long description.
    pub longdesc: String,
    /// Parameters, in the agent's order.
    pub parameters: Vec<Parameter>,
    /// Action hints, in the agent's order.
    pub actions: Vec<ActionHint>,
}

/// Something wrong with configured parameters, found before the first start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "problem", rename_all = "kebab-case")]
pub enum ParamProblem {
    /// A `required` parameter is missing or empty.
    MissingRequired {
        /// The parameter.
        name: String,
    },
    /// The agent does not know this parameter (a warning: agents ignore
    /// unknown parameters).
    Unknown {
        /// The parameter.
        name: String,
    },
    /// An `integer` parameter with a value that is not one.
    NotInteger {
        /// The parameter.
        name: String,
        /// The value given.
        value: String,
    },
    /// A `boolean` parameter with a value that is not one.
    NotBoolean {
        /// The parameter.
        name: String,
        /// The value given.
        value: String,
    },
    /// A `select` parameter with a value not among its options.
    NotAnOption {
        /// The parameter.
        name: String,
        /// The value given.
        value: String,
        /// The allowed values.
        options: Vec<String>,
    },
    /// A deprecated parameter is used (a warning).
    Deprecated {
        /// The parameter.
        name: String,
        /// Its replacements, if the agent names them.
        replaced_with: Vec<String>,
    },
}

impl ParamProblem {
    /// An error (the agent will refuse or misbehave), not a warning.
    pub fn is_error(&self) -> bool {
        !matches!(
            self,
            ParamProblem::Unknown { .. } | ParamProblem::Deprecated { .. }
        )
    }
}

impl fmt::Display for ParamProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamProblem::MissingRequired { name } => {
                write!(f, "required parameter {name} is not set")
            }
            ParamProblem::Unknown { name } => {
                write!(f, "parameter {name} is not in the agent's meta-data")
            }
            ParamProblem::NotInteger { name, value } => {
                write!(f, "parameter {name}={value:?} is not an integer")
            }
            ParamProblem::NotBoolean { name, value } => {
                write!(f, "parameter {name}={value:?} is not a boolean")
            }
            ParamProblem::NotAnOption {
                name,
                value,
                options,
            } => write!(
                f,
                "parameter {name}={value:?} is not one of {}",
                options.join(", ")
            ),
            ParamProblem::Deprecated {
                name,
                replaced_with,
            } if replaced_with.is_empty() => write!(f, "parameter {name} is deprecated"),
            ParamProblem::Deprecated {
                name,
                replaced_with,
            } => write!(
                f,
                "parameter {name} is deprecated, use {}",
                replaced_with.join(", ")
            ),
        }
    }
}

/// Parses a boolean as Pacemaker does (`crm_str_to_boolean`).
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "on" | "yes" | "y" | "1" => Some(true),
        "false" | "off" | "no" | "n" | "0" => Some(false),
        _ => None,
    }
}

/// Parses a time as Pacemaker reads timeouts and intervals: a number with
/// an optional unit (`ms`/`msec`, `us`/`usec`, `s`/`sec` — the default —,
/// `m`/`min`, `h`/`hr`), e.g. `20s`, `20`, `2min`, `500ms`, `1.5s`.
pub fn parse_time(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return None;
    }
    let value: f64 = num.parse().ok()?;
    let secs_per_unit = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "ms" | "msec" | "msecs" => 1e-3,
        "us" | "usec" | "usecs" => 1e-6,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
        _ => return None,
    };
    Duration::try_from_secs_f64(value * secs_per_unit).ok()
}

// ---------------------------------------------------------------------------
// The XML, as serde sees it

#[derive(Debug, Deserialize)]
struct RawAgent {
    #[serde(rename = "@name")]
    name: String,
    #[serde(rename = "@version", default)]
    agent_version: Option<String>,
    #[serde(rename = "version", default)]
    ocf_version: Option<String>,
    #[serde(default)]
    longdesc: Vec<RawDesc>,
    #[serde(default)]
    shortdesc: Vec<RawDesc>,
    #[serde(default)]
    parameters: Option<RawParameters>,
    #[serde(default)]
    actions: Option<RawActions>,
}

#[derive(Debug, Deserialize)]
struct RawDesc {
    #[serde(rename = "@lang", default)]
    lang: Option<String>,
    #[serde(rename = "$text", default)]
    text: String,
}

#[derive(Debug, Deserialize)]
struct RawParameters {
    #[serde(default)]
    parameter: Vec<RawParameter>,
}

#[derive(Debug, Deserialize)]
struct RawParameter {
    #[serde(rename = "@name")]
    name: String,
    #[serde(rename = "@required", default)]
    required: Option<String>,
    #[serde(rename = "@unique", default)]
    unique: Option<String>,
    #[serde(rename = "@unique-group", default)]
    unique_group: Option<String>,
    #[serde(rename = "@reloadable", default)]
    reloadable: Option<String>,
    #[serde(rename = "@deprecated", default)]
    deprecated_attr: Option<String>,
    #[serde(default)]
    longdesc: Vec<RawDesc>,
    #[serde(default)]
    shortdesc: Vec<RawDesc>,
    #[serde(default)]
    content: Option<RawContent>,
    #[serde(default)]
    deprecated: Option<RawDeprecated>,
}

#[derive(Debug, Deserialize)]
struct RawContent {
    #[serde(rename = "@type", default)]
    kind: Option<String>,
    #[serde(rename = "@default", default)]
    default: Option<String>,
    #[serde(default)]
    option: Vec<RawOption>,
}

#[derive(Debug, Deserialize)]
struct RawOption {
    #[serde(rename = "@value")]
    value: String,
}

#[derive(Debug, Deserialize)]
struct RawDeprecated {
    #[serde(rename = "replaced-with", default)]
    replaced_with: Vec<RawReplaced>,
}

#[derive(Debug, Deserialize)]
struct RawReplaced {
    #[serde(rename = "@name")]
    name: String,
}

#[derive(Debug, Deserialize)]
struct RawActions {
    #[serde(default)]
    action: Vec<RawAction>,
}

#[derive(Debug, Deserialize)]
struct RawAction {
    #[serde(rename = "@name")]
    name: String,
    #[serde(rename = "@timeout", default)]
    timeout: Option<String>,
    #[serde(rename = "@interval", default)]
    interval: Option<String>,
    #[serde(rename = "@start-delay", default)]
    start_delay: Option<String>,
    #[serde(rename = "@depth", default)]
    depth: Option<String>,
    #[serde(rename = "@role", default)]
    role: Option<String>,
}

/// The English description if there is one, else the first; trimmed.
fn pick(descs: &[RawDesc]) -> String {
    descs
        .iter()
        .find(|d| d.lang.as_deref().is_some_and(|l| l.starts_with("en")))
        .or_else(|| descs.first())
        .map(|d| d.text.trim().to_string())
        .unwrap_or_default()
}

fn flag(v: &Option<String>) -> bool {
    v.as_deref().and_then(parse_bool).unwrap_or(false)
}

fn time_attr(
    what: &str,
    action: &str,
    v: &Option<String>,
) -> Result<Option<Duration>, MetaDataError> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => parse_time(s)
            .map(Some)
            .ok_or_else(|| MetaDataError(format!("action {action}: {what}={s:?} is not a time"))),
    }
}

impl MetaData {
    /// Parses the output of an agent's `meta-data` action.
    pub fn parse(xml: &str) -> Result<MetaData, MetaDataError> {
        let raw: RawAgent = quick_xml::de::from_str(xml)
            .map_err(|e| MetaDataError(format!("not valid resource-agent XML: {e}")))?;
        if raw.name.trim().is_empty() {
            return Err(MetaDataError("<resource-agent> has no name".into()));
        }
        let parameters = raw
            .parameters
            .map(|p| p.parameter)
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                let content = p.content.unwrap_or(RawContent {
                    kind: None,
                    default: None,
                    option: Vec::new(),
                });
                let kind = match content.kind.as_deref().map(str::trim) {
                    None | Some("string") => ContentType::String,
                    Some("integer") => ContentType::Integer,
                    Some("boolean") => ContentType::Boolean,
                    Some("select") => ContentType::Select,
                    Some(other) => ContentType::Other(other.to_string()),
                };
                Parameter {
                    required: flag(&p.required),
                    unique: flag(&p.unique),
                    unique_group: p.unique_group.filter(|g| !g.trim().is_empty()),
                    reloadable: flag(&p.reloadable),
                    deprecated: p.deprecated.is_some() || flag(&p.deprecated_attr),
                    replaced_with: p
                        .deprecated
                        .map(|d| d.replaced_with.into_iter().map(|r| r.name).collect())
                        .unwrap_or_default(),
                    shortdesc: pick(&p.shortdesc),
                    longdesc: pick(&p.longdesc),
                    content: kind,
                    default: content.default.filter(|d| !d.is_empty()),
                    options: content.option.into_iter().map(|o| o.value).collect(),
                    name: p.name,
                }
            })
            .collect();
        let mut actions = Vec::new();
        for a in raw.actions.map(|a| a.action).unwrap_or_default() {
            let depth = match a.depth.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(d) => Some(d.parse::<u32>().map_err(|_| {
                    MetaDataError(format!("action {}: depth={d:?} is not a number", a.name))
                })?),
            };
            actions.push(ActionHint {
                timeout: time_attr("timeout", &a.name, &a.timeout)?,
                interval: time_attr("interval", &a.name, &a.interval)?,
                start_delay: time_attr("start-delay", &a.name, &a.start_delay)?,
                depth,
                role: a.role.filter(|r| !r.trim().is_empty()),
                name: a.name,
            });
        }
        Ok(MetaData {
            name: raw.name,
            agent_version: raw.agent_version,
            ocf_version: raw.ocf_version.map(|v| v.trim().to_string()),
            shortdesc: pick(&raw.shortdesc),
            longdesc: pick(&raw.longdesc),
            parameters,
            actions,
        })
    }

    /// The parameter called `name`.
    pub fn parameter(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.name == name)
    }

    /// The agent advertises `action`.
    pub fn supports(&self, action: &Action) -> bool {
        self.actions.iter().any(|a| a.name == action.as_str())
    }

    /// The defaults of every parameter that has one.
    pub fn defaults(&self) -> BTreeMap<String, String> {
        self.parameters
            .iter()
            .filter_map(|p| Some((p.name.clone(), p.default.clone()?)))
            .collect()
    }

    /// The best hint for `action` run in `role` at check level `depth`:
    /// an entry matching both, then one matching the role, then the depth,
    /// then one with neither, then any entry for the action.
    pub fn hint_for(
        &self,
        action: &Action,
        role: Option<Role>,
        depth: Option<u32>,
    ) -> Option<&ActionHint> {
        let all: Vec<&ActionHint> = self
            .actions
            .iter()
            .filter(|a| a.name == action.as_str())
            .collect();
        let role_ok = |a: &ActionHint| a.role() == role;
        let depth_ok = |a: &ActionHint| a.depth.unwrap_or(0) == depth.unwrap_or(0);
        all.iter()
            .find(|a| role_ok(a) && depth_ok(a))
            .or_else(|| all.iter().find(|a| role_ok(a)))
            .or_else(|| all.iter().find(|a| a.role.is_none() && depth_ok(a)))
            .or_else(|| all.iter().find(|a| a.role.is_none()))
            .or_else(|| all.first())
            .copied()
    }

    /// The timeout the agent suggests for `action` (see [`Self::hint_for`]).
    pub fn timeout_for(
        &self,
        action: &Action,
        role: Option<Role>,
        depth: Option<u32>,
    ) -> Option<Duration> {
        self.hint_for(action, role, depth)?.timeout
    }

    /// Checks configured parameters against the meta-data: required ones
    /// present and non-empty, integers, booleans and selects well-formed;
    /// unknown and deprecated ones reported as warnings.
    pub fn check_params(&self, params: &BTreeMap<String, String>) -> Vec<ParamProblem> {
        let mut out = Vec::new();
        for p in &self.parameters {
            let value = params.get(&p.name);
            match value {
                None if p.required => out.push(ParamProblem::MissingRequired {
                    name: p.name.clone(),
                }),
                Some(v) if p.required && v.trim().is_empty() => {
                    out.push(ParamProblem::MissingRequired {
                        name: p.name.clone(),
                    })
                }
                _ => {}
            }
            let Some(v) = value else { continue };
            if p.deprecated {
                out.push(ParamProblem::Deprecated {
                    name: p.name.clone(),
                    replaced_with: p.replaced_with.clone(),
                });
            }
            if v.is_empty() {
                continue;
            }
            match p.content {
                ContentType::Integer if v.trim().parse::<i64>().is_err() => {
                    out.push(ParamProblem::NotInteger {
                        name: p.name.clone(),
                        value: v.clone(),
                    })
                }
                ContentType::Boolean if parse_bool(v).is_none() => {
                    out.push(ParamProblem::NotBoolean {
                        name: p.name.clone(),
                        value: v.clone(),
                    })
                }
                ContentType::Select if !p.options.is_empty() && !p.options.contains(v) => {
                    out.push(ParamProblem::NotAnOption {
                        name: p.name.clone(),
                        value: v.clone(),
                        options: p.options.clone(),
                    })
                }
                _ => {}
            }
        }
        for name in params.keys() {
            if self.parameter(name).is_none() {
                out.push(ParamProblem::Unknown { name: name.clone() });
            }
        }
        out
    }

    fn synthetic(
        name: &str,
        shortdesc: String,
        longdesc: String,
        actions: &[(&str, u64, Option<u64>)],
    ) -> MetaData {
        MetaData {
            name: name.to_string(),
            agent_version: None,
            ocf_version: Some("1.1".into()),
            shortdesc,
            longdesc,
            parameters: Vec::new(),
            actions: actions
                .iter()
                .map(|&(n, timeout, interval)| ActionHint {
                    name: n.to_string(),
                    timeout: Some(Duration::from_secs(timeout)),
                    interval: interval.map(Duration::from_secs),
                    start_delay: None,
                    depth: None,
                    role: None,
                })
                .collect(),
        }
    }

    /// Meta-data for an LSB init script, from its `### BEGIN INIT INFO`
    /// header (`Short-Description`, `Description`), with Pacemaker's
    /// timeouts for LSB resources (15 s; meta-data 5 s).
    pub fn for_lsb(name: &str, script: &str) -> MetaData {
        let mut short = String::new();
        let mut long = String::new();
        let mut in_header = false;
        let mut in_desc = false;
        for line in script.lines() {
            let l = line.trim_end();
            if l.starts_with("### BEGIN INIT INFO") {
                in_header = true;
                continue;
            }
            if l.starts_with("### END INIT INFO") {
                break;
            }
            if !in_header {
                continue;
            }
            if let Some(v) = l.strip_prefix("# Short-Description:") {
                short = v.trim().to_string();
                in_desc = false;
            } else if let Some(v) = l.strip_prefix("# Description:") {
                long = v.trim().to_string();
                in_desc = true;
            } else if in_desc && (l.starts_with("#\t") || l.starts_with("#  ")) {
                long.push(' ');
                long.push_str(l[1..].trim());
            } else {
                in_desc = false;
            }
        }
        if short.is_empty() {
            short = format!("LSB init script {name}");
        }
        MetaData::synthetic(
            name,
            short,
            long,
            &[
                ("start", 15, None),
                ("stop", 15, None),
                ("status", 15, None),
                ("restart", 15, None),
                ("force-reload", 15, None),
                ("monitor", 15, Some(15)),
                ("meta-data", 5, None),
            ],
        )
    }

    /// Meta-data for a systemd unit, with Pacemaker's timeouts for systemd
    /// resources (100 s; monitor every 60 s; meta-data 5 s).
    pub fn for_systemd(unit: &str) -> MetaData {
        MetaData::synthetic(
            unit,
            format!("systemd unit {unit}"),
            format!("Cluster-controlled systemd unit {unit}, driven through systemctl"),
            &[
                ("start", 100, None),
                ("stop", 100, None),
                ("status", 100, None),
                ("monitor", 100, Some(60)),
                ("meta-data", 5, None),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let s = Duration::from_secs;
        assert_eq!(parse_time("20s"), Some(s(20)));
        assert_eq!(parse_time("20"), Some(s(20)));
        assert_eq!(parse_time(" 2min "), Some(s(120)));
        assert_eq!(parse_time("2m"), Some(s(120)));
        assert_eq!(parse_time("1h"), Some(s(3600)));
        assert_eq!(parse_time("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_time("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_time("0"), Some(Duration::ZERO));
        for bad in ["", "s", "-1", "1x", ".5", "5.", "1e3", "20 seconds later"] {
            assert_eq!(parse_time(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bools() {
        for t in ["true", "TRUE", "yes", "on", "1", "y"] {
            assert_eq!(parse_bool(t), Some(true));
        }
        for f in ["false", "no", "off", "0", "N"] {
            assert_eq!(parse_bool(f), Some(false));
        }
        assert_eq!(parse_bool("maybe"), None);
    }

    const SMALL: &str = r#"<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="thing" version="2.0">
<version>1.1</version>
<longdesc lang="de">Ein Ding</longdesc>
<longdesc lang="en">
A thing.
</longdesc>
<shortdesc lang="en">thing</shortdesc>
<parameters>
<parameter name="path" required="1" unique-group="where">
<longdesc lang="en">Where</longdesc>
<shortdesc lang="en">path</shortdesc>
<content type="string" />
</parameter>
<parameter name="count" reloadable="1">
<longdesc lang="en">How many</longdesc>
<shortdesc lang="en">count</shortdesc>
<content type="integer" default="3" />
</parameter>
<parameter name="mode">
<longdesc lang="en">Mode</longdesc>
<shortdesc lang="en">mode</shortdesc>
<content type="select" default="fast">
<option value="fast" />
<option value="safe" />
</content>
</parameter>
<parameter name="old" unique="1">
<longdesc lang="en">Old</longdesc>
<shortdesc lang="en">old</shortdesc>
<deprecated><replaced-with name="count" /><desc lang="en">use count</desc></deprecated>
<content type="boolean" default="false" />
</parameter>
</parameters>
<actions>
<action name="start" timeout="30s" />
<action name="monitor" timeout="20s" interval="10s" depth="0" />
<action name="monitor" timeout="60s" interval="60s" depth="20" />
<action name="monitor" timeout="25s" interval="9s" role="Promoted" />
<action name="meta-data" timeout="5" />
</actions>
<special tag="x"><anything/></special>
</resource-agent>
"#;

    #[test]
    fn parses_a_full_description() {
        let md = MetaData::parse(SMALL).unwrap();
        assert_eq!(md.name, "thing");
        assert_eq!(md.agent_version.as_deref(), Some("2.0"));
        assert_eq!(md.ocf_version.as_deref(), Some("1.1"));
        assert_eq!(md.longdesc, "A thing.");
        assert_eq!(md.shortdesc, "thing");
        let names: Vec<&str> = md.parameters.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["path", "count", "mode", "old"]);
        let path = md.parameter("path").unwrap();
        assert!(path.required && !path.unique && !path.reloadable);
        assert_eq!(path.unique_group.as_deref(), Some("where"));
        assert_eq!(path.default, None);
        let count = md.parameter("count").unwrap();
        assert_eq!(count.content, ContentType::Integer);
        assert!(count.reloadable);
        assert_eq!(count.default.as_deref(), Some("3"));
        let mode = md.parameter("mode").unwrap();
        assert_eq!(mode.options, ["fast", "safe"]);
        let old = md.parameter("old").unwrap();
        assert!(old.deprecated && old.unique);
        assert_eq!(old.replaced_with, ["count"]);
        assert_eq!(
            md.defaults(),
            BTreeMap::from([
                ("count".to_string(), "3".to_string()),
                ("mode".to_string(), "fast".to_string()),
                ("old".to_string(), "false".to_string()),
            ])
        );
        let s = Duration::from_secs;
        assert_eq!(md.timeout_for(&Action::Start, None, None), Some(s(30)));
        assert_eq!(md.timeout_for(&Action::Monitor, None, None), Some(s(20)));
        assert_eq!(
            md.timeout_for(&Action::Monitor, None, Some(20)),
            Some(s(60))
        );
        assert_eq!(
            md.timeout_for(&Action::Monitor, None, Some(10)),
            Some(s(20))
        );
        assert_eq!(
            md.timeout_for(&Action::Monitor, Some(Role::Promoted), None),
            Some(s(25))
        );
        assert_eq!(md.timeout_for(&Action::MetaData, None, None), Some(s(5)));
        assert_eq!(md.timeout_for(&Action::Stop, None, None), None);
        assert!(md.supports(&Action::Start) && !md.supports(&Action::Promote));
        let h = md
            .hint_for(&Action::Monitor, Some(Role::Promoted), None)
            .unwrap();
        assert_eq!(h.interval, Some(s(9)));
        assert_eq!(h.role(), Some(Role::Promoted));
    }

    #[test]
    fn parameter_checks() {
        let md = MetaData::parse(SMALL).unwrap();
        let p = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(md.check_params(&p(&[("path", "/x")])), []);
        let problems = md.check_params(&p(&[
            ("count", "three"),
            ("mode", "slow"),
            ("old", "perhaps"),
            ("colour", "red"),
        ]));
        assert_eq!(
            problems,
            [
                ParamProblem::MissingRequired {
                    name: "path".into()
                },
                ParamProblem::NotInteger {
                    name: "count".into(),
                    value: "three".into()
                },
                ParamProblem::NotAnOption {
                    name: "mode".into(),
                    value: "slow".into(),
                    options: vec!["fast".into(), "safe".into()]
                },
                ParamProblem::Deprecated {
                    name: "old".into(),
                    replaced_with: vec!["count".into()]
                },
                ParamProblem::NotBoolean {
                    name: "old".into(),
                    value: "perhaps".into()
                },
                ParamProblem::Unknown {
                    name: "colour".into()
                },
            ]
        );
        let errors: Vec<bool> = problems.iter().map(ParamProblem::is_error).collect();
        assert_eq!(errors, [true, true, true, false, true, false]);
        assert_eq!(
            problems[2].to_string(),
            "parameter mode=\"slow\" is not one of fast, safe"
        );
        // An empty required value counts as missing.
        assert_eq!(
            md.check_params(&p(&[("path", " ")])),
            [ParamProblem::MissingRequired {
                name: "path".into()
            }]
        );
    }

    #[test]
    fn broken_xml_is_an_error() {
        for bad in [
            "",
            "not xml",
            "<resource-agent>",
            "<resource-agent name=\"x\"><actions><action name=\"start\" timeout=\"soon\"/></actions></resource-agent>",
            "<resource-agent name=\"x\"><actions><action name=\"monitor\" depth=\"deep\"/></actions></resource-agent>",
            "<resource-agent name=\"\"/>",
        ] {
            assert!(MetaData::parse(bad).is_err(), "{bad:?}");
        }
        let md = MetaData::parse("<resource-agent name=\"bare\"/>").unwrap();
        assert!(md.parameters.is_empty() && md.actions.is_empty());
    }

    #[test]
    fn lsb_header() {
        let script = "#!/bin/sh\n### BEGIN INIT INFO\n# Provides:          foo\n\
            # Required-Start:    $local_fs\n# Short-Description: Foo daemon\n\
            # Description:       Starts the foo\n#                    daemon for bar.\n\
            ### END INIT INFO\n";
        let md = MetaData::for_lsb("foo", script);
        assert_eq!(md.shortdesc, "Foo daemon");
        assert_eq!(md.longdesc, "Starts the foo daemon for bar.");
        assert_eq!(
            md.timeout_for(&Action::Start, None, None),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            MetaData::for_lsb("bar", "#!/bin/sh\n").shortdesc,
            "LSB init script bar"
        );
        let sd = MetaData::for_systemd("nfs-server.service");
        assert_eq!(
            sd.timeout_for(&Action::Stop, None, None),
            Some(Duration::from_secs(100))
        );
    }
}
