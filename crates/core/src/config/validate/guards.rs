//! `[guards.NAME]` policies and route `guards` raw → validated: each policy is compiled by the
//! guard crate (bad patterns, thresholds or types are reported at the policy's position, a bad
//! `json_schema` at its own), and a route may only name policies that exist (`default`, every
//! scanner, always does).

use std::collections::BTreeMap;
use std::sync::Arc;

use gardefou_guard::{GuardError, Policy, PolicyConfig};
use toml::Spanned;

use super::super::raw::{RawEscalation, RawRouteGuards};
use super::super::{EscalationRules, RouteGuards};
use super::{Cx, R};

type Policies = BTreeMap<String, Arc<Policy>>;

impl Cx<'_> {
    pub(super) fn guard_policies(
        &self,
        raw: &BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    ) -> R<Policies> {
        let mut out = Policies::new();
        out.insert("default".to_owned(), Arc::new(Policy::default()));
        for (name, value) in raw {
            let path = format!("guards.{}", name.get_ref());
            let config: PolicyConfig = value.get_ref().clone().try_into().map_err(|e: toml::de::Error| {
                self.error(
                    value.span(),
                    &path,
                    e.message().trim_end().to_owned(),
                    Some("guards take pii, secrets, injection, topics, regex, json_schema, max_scan_bytes, oversize".to_owned()),
                )
            })?;
            let policy = Policy::try_from(config).map_err(|e| match schema_hint(&e) {
                Some(hint) => {
                    let span = self.policy_key_span(name.get_ref(), "json_schema").unwrap_or(value.span());
                    self.error(span, &format!("{path}.json_schema"), e.to_string(), Some(hint.to_owned()))
                }
                None => self.error(value.span(), &path, e.to_string(), None),
            })?;
            out.insert(name.get_ref().clone(), Arc::new(policy));
        }
        Ok(out)
    }

    /// Where `[guards.NAME] KEY` sits in the file. The raw config keeps a span for the whole
    /// policy only, so the text is read again, on the error path alone.
    fn policy_key_span(&self, name: &str, key: &str) -> Option<std::ops::Range<usize>> {
        #[derive(serde::Deserialize)]
        struct Keys {
            #[serde(default)]
            guards: BTreeMap<String, BTreeMap<String, Spanned<toml::Value>>>,
        }
        let keys: Keys = toml::from_str(self.text).ok()?;
        keys.guards.get(name)?.get(key).map(Spanned::span)
    }

    pub(super) fn route_guards(
        &self,
        path: &str,
        raw: Option<&RawRouteGuards>,
        policies: &Policies,
    ) -> R<RouteGuards> {
        let Some(raw) = raw else { return Ok(RouteGuards { fail_closed: true, ..RouteGuards::default() }) };
        let pick = |v: &Option<Spanned<String>>, field: &str| -> R<Option<(String, Arc<Policy>)>> {
            let Some(v) = v else { return Ok(None) };
            match policies.get(v.get_ref()) {
                Some(p) => Ok(Some((v.get_ref().clone(), p.clone()))),
                None => Err(self.error(
                    v.span(),
                    &format!("{path}.guards.{field}"),
                    format!("no guard policy `{}`", v.get_ref()),
                    Some(format!(
                        "define [guards.{}], or use one of: {}",
                        v.get_ref(),
                        policies.keys().cloned().collect::<Vec<_>>().join(", ")
                    )),
                )),
            }
        };
        let fail_closed = match raw.on_error.as_ref().map(|v| (v.get_ref().as_str(), v.span())) {
            None | Some(("block", _)) => true,
            Some(("allow", _)) => false,
            Some((other, span)) => {
                return self.err(
                    span,
                    &format!("{path}.guards.on_error"),
                    format!("`{other}` is not `block` or `allow`"),
                )
            }
        };
        Ok(RouteGuards {
            input: pick(&raw.input, "input")?,
            output: pick(&raw.output, "output")?,
            fail_closed,
            restore: raw.restore.unwrap_or(false),
            canary: raw.canary.unwrap_or(false),
        })
    }

    pub(super) fn escalation(&self, path: &str, raw: Option<&RawEscalation>) -> R<EscalationRules> {
        let mut rules = EscalationRules::default();
        let Some(raw) = raw else { return Ok(rules) };
        if let Some(a) = &raw.answer {
            rules.answer = a.clone();
        }
        rules.on_refusal = raw.on_refusal.unwrap_or(false);
        rules.on_request = raw.on_request.unwrap_or(true);
        if !raw.patterns.is_empty() {
            for p in &raw.patterns {
                if let Err(e) = regex::Regex::new(p.get_ref()) {
                    return self.err(
                        p.span(),
                        &format!("{path}.patterns"),
                        format!("not a regular expression: {e}"),
                    );
                }
            }
            let set = regex::RegexSet::new(raw.patterns.iter().map(|p| p.get_ref().as_str()))
                .map_err(|e| self.error(0..0, &format!("{path}.patterns"), e.to_string(), None))?;
            rules.patterns = Some(set);
        }
        if let Some(u) = &raw.callback_url {
            if !(u.get_ref().starts_with("http://") || u.get_ref().starts_with("https://")) {
                return self.err(
                    u.span(),
                    &format!("{path}.callback_url"),
                    format!("`{}` is not an http(s) URL", u.get_ref()),
                );
            }
            rules.callback_url = Some(u.get_ref().clone());
        }
        Ok(rules)
    }
}

/// The hint for an error of a policy's `json_schema` guard; `None` for other guards.
fn schema_hint(e: &GuardError) -> Option<&'static str> {
    match e {
        GuardError::InvalidSchemaGuard { .. } => Some(
            "json_schema = { schema = { type = \"object\" }, action = \"block\" } or json_schema = { from_request = true, action = \"block\" }",
        ),
        GuardError::InvalidSchema { .. } => Some("the schema must itself be a valid JSON schema"),
        GuardError::FeatureDisabled { feature: "json-schema" } => {
            Some("this gardefou was built without the `json-schema` cargo feature (on by default)")
        }
        _ => None,
    }
}
