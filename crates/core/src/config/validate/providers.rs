//! `[providers.*]` and `[models.*]` raw → validated: provider kinds and their settings, each
//! model's provider, prices, capabilities, mock behaviour and, for `local` providers, its GGUF file.

use std::collections::BTreeMap;
use std::time::Duration;

use toml::Spanned;

use super::super::raw;
use super::super::*;
use super::{hint_known, http_header_name_ok, Cx, PROVIDER_KINDS, R};

impl Cx<'_> {
    pub(super) fn provider(&self, name: &Spanned<String>, p: &raw::RawProvider) -> R<ProviderConfig> {
        let path = format!("providers.{}", name.get_ref());
        let kind = match p.kind.get_ref().as_str() {
            "openai" => ProviderKind::OpenAi,
            "openai_compatible" => ProviderKind::OpenAiCompatible,
            "azure" => ProviderKind::Azure,
            "anthropic" => ProviderKind::Anthropic,
            "gemini" => ProviderKind::Gemini,
            "vertex" => ProviderKind::Vertex,
            "mock" => ProviderKind::Mock,
            "local" => ProviderKind::Local,
            other => {
                return Err(self.error(
                    p.kind.span(),
                    &format!("{path}.kind"),
                    format!("unknown provider kind `{other}`"),
                    Some(PROVIDER_KINDS.to_owned()),
                ))
            }
        };
        let api_key = match &p.api_key {
            Some(k) => Some(self.secret(k, &format!("{path}.api_key"))?),
            None => None,
        };
        if let Some(url) = &p.base_url {
            let u = url.get_ref();
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return self.err(
                    url.span(),
                    &format!("{path}.base_url"),
                    format!("`{u}` is not an http(s) URL"),
                );
            }
        }
        let base_url = p.base_url.as_ref().map(|u| u.get_ref().trim_end_matches('/').to_owned());
        match kind {
            ProviderKind::OpenAiCompatible | ProviderKind::Azure | ProviderKind::Vertex
                if base_url.is_none() =>
            {
                return self.err(
                    name.span(),
                    &path,
                    format!("a `{}` provider needs a base_url", kind.as_str()),
                );
            }
            _ => {}
        }
        if kind == ProviderKind::Azure && p.api_version.is_none() {
            return Err(self.error(
                name.span(),
                &path,
                "an `azure` provider needs an api_version".to_owned(),
                Some("e.g. api_version = \"2024-10-21\"".to_owned()),
            ));
        }
        let mut quirks = match kind {
            ProviderKind::OpenAiCompatible => {
                let vendor = p.vendor.as_ref().map(|v| (v.get_ref().as_str(), v.span()));
                match vendor {
                    None => Quirks::preset("generic").unwrap_or_default(),
                    Some((v, span)) => Quirks::preset(v).ok_or_else(|| {
                        self.error(
                            span,
                            &format!("{path}.vendor"),
                            format!("unknown vendor `{v}`"),
                            Some(format!("one of: {}", Quirks::VENDORS.join(", "))),
                        )
                    })?,
                }
            }
            _ => Quirks::openai(),
        };
        let q = &p.quirks;
        if let Some(f) = &q.max_tokens_field {
            quirks.legacy_max_tokens = match f.get_ref().as_str() {
                "max_tokens" => true,
                "max_completion_tokens" => false,
                other => {
                    return self.err(
                        f.span(),
                        &format!("{path}.quirks.max_tokens_field"),
                        format!("`{other}` is not `max_tokens` or `max_completion_tokens`"),
                    )
                }
            };
        }
        if let Some(s) = q.stream_usage {
            quirks.stream_usage = s;
        }
        if let Some(d) = &q.developer_role {
            quirks.developer_as_system = match d.get_ref().as_str() {
                "system" => true,
                "developer" => false,
                other => {
                    return self.err(
                        d.span(),
                        &format!("{path}.quirks.developer_role"),
                        format!("`{other}` is not `system` or `developer`"),
                    )
                }
            };
        }
        if let Some(t) = &q.tool_choice_required {
            quirks.tool_choice_required = Some(t.clone());
        }
        quirks.drop_params.extend(q.drop_params.iter().cloned());
        quirks.rename_params.extend(q.rename_params.iter().map(|(a, b)| (a.clone(), b.clone())));
        let mut headers = Vec::new();
        for (h, v) in &p.headers {
            if http_header_name_ok(h) {
                headers.push((h.clone(), self.secret(v, &format!("{path}.headers.{h}"))?));
            } else {
                return self.err(v.span(), &format!("{path}.headers"), format!("`{h}` is not a header name"));
            }
        }
        let latency = self.duration(&p.latency, &format!("{path}.latency"), Duration::ZERO)?;
        Ok(ProviderConfig {
            name: name.get_ref().clone(),
            kind,
            api_key,
            base_url,
            api_version: p.api_version.as_ref().map(|v| v.get_ref().clone()),
            quirks,
            headers,
            latency,
            local_models: BTreeMap::new(),
        })
    }

    pub(super) fn model(
        &self,
        name: &Spanned<String>,
        m: &raw::RawModel,
        providers: &BTreeMap<String, ProviderConfig>,
    ) -> R<ModelConfig> {
        let path = format!("models.{}", name.get_ref());
        let Some(provider) = providers.get(m.provider.get_ref()) else {
            return Err(self.error(
                m.provider.span(),
                &format!("{path}.provider"),
                format!("unknown provider `{}`", m.provider.get_ref()),
                Some(hint_known("providers", providers.keys())),
            ));
        };
        let upstream = m.upstream.as_ref().map_or_else(|| name.get_ref().clone(), |u| u.get_ref().clone());
        // The model's own price wins; else the shipped table's, on the day the config is loaded.
        let (price, price_source) = match &m.price {
            None => {
                let hit = crate::prices::Family::of_provider(provider).and_then(|family| {
                    crate::prices::lookup_family(family, &upstream, crate::prices::Date::today())
                });
                match hit {
                    Some(t) => (
                        Some(t.price),
                        Some(PriceSource::Table { version: t.version.to_owned(), effective: t.effective }),
                    ),
                    None => (None, None),
                }
            }
            Some(p) => {
                let check = |v: &Spanned<f64>, field: &str| -> R<f64> {
                    let x = *v.get_ref();
                    if !(x.is_finite() && x >= 0.0) {
                        return self.err(
                            v.span(),
                            &format!("{path}.price.{field}"),
                            "a price must be a number ≥ 0",
                        );
                    }
                    Ok(x)
                };
                let input = check(&p.input, "input")?;
                let (batch_input, batch_output) = match (&p.batch_input, &p.batch_output) {
                    (Some(i), Some(o)) => (Some(check(i, "batch_input")?), Some(check(o, "batch_output")?)),
                    (None, None) => (None, None),
                    (Some(v), None) | (None, Some(v)) => {
                        return Err(self.error(
                            v.span(),
                            &format!("{path}.price"),
                            "batch_input and batch_output go together".to_owned(),
                            Some("give both batch prices, or neither".to_owned()),
                        ))
                    }
                };
                let price = Price {
                    input,
                    output: check(&p.output, "output")?,
                    cached_input: match &p.cached_input {
                        Some(c) => check(c, "cached_input")?,
                        None => input,
                    },
                    cache_write: match &p.cache_write {
                        Some(c) => check(c, "cache_write")?,
                        None => input,
                    },
                    batch_input,
                    batch_output,
                };
                (Some(price), Some(PriceSource::Config))
            }
        };
        let context_window = match &m.context_window {
            Some(_) => {
                Some(self.count(&m.context_window, &format!("{path}.context_window"), 1, 100_000_000, 0)?
                    as u32)
            }
            None => None,
        };
        let capabilities = match &m.capabilities {
            None => Capabilities::all_chat(),
            Some(list) => {
                let mut c =
                    Capabilities { chat: false, embeddings: false, tools: false, vision: false, json: false };
                for cap in list {
                    match cap.get_ref().as_str() {
                        "chat" => c.chat = true,
                        "embeddings" => c.embeddings = true,
                        "tools" => c.tools = true,
                        "vision" => c.vision = true,
                        "json" => c.json = true,
                        other => {
                            return Err(self.error(
                                cap.span(),
                                &format!("{path}.capabilities"),
                                format!("unknown capability `{other}`"),
                                Some(format!("one of: {}", Capabilities::NAMES.join(", "))),
                            ))
                        }
                    }
                }
                c
            }
        };
        let mock = match &m.mock {
            Some(raw) if provider.kind != ProviderKind::Mock => {
                let _ = raw;
                return self.err(
                    name.span(),
                    &format!("{path}.mock"),
                    "`mock` settings need a provider of kind `mock`",
                );
            }
            Some(raw) => self.mock(raw, &path)?,
            // A mock model named after a behaviour (`upstream = "echo"`) behaves so.
            None => {
                let upstream = m.upstream.as_ref().map_or(name.get_ref().as_str(), |u| u.get_ref().as_str());
                match MockMode::from_name(upstream) {
                    Some(mode) if provider.kind == ProviderKind::Mock => {
                        MockSettings { mode, ..MockSettings::default() }
                    }
                    _ => MockSettings::default(),
                }
            }
        };
        let (local, unavailable) = self.local_model(name, m, provider.kind, &path, context_window)?;
        // A local embedding model (a folder) makes embeddings and nothing else.
        let capabilities = match &local {
            Some(spec) if spec.embeddings => {
                Capabilities { chat: false, embeddings: true, tools: false, vision: false, json: false }
            }
            _ => capabilities,
        };
        Ok(ModelConfig {
            name: name.get_ref().clone(),
            provider: provider.name.clone(),
            upstream,
            price,
            price_source,
            context_window,
            capabilities,
            mock,
            local,
            unavailable,
        })
    }

    /// A local model's file: required for (and only for) a `local` provider; it must exist and
    /// be a GGUF file, so a wrong path stops start-up here, at its line — unless the model is
    /// `optional` and the file is absent: the model is then unavailable (the reason is returned)
    /// and its routes fall back. `models:REL` is `REL` in the models folder.
    fn local_model(
        &self,
        name: &Spanned<String>,
        m: &raw::RawModel,
        kind: ProviderKind,
        path: &str,
        context_window: Option<u32>,
    ) -> R<(Option<LocalModelSpec>, Option<String>)> {
        if let (Some(o), false) = (&m.optional, kind == ProviderKind::Local) {
            if *o {
                return self.err(
                    name.span(),
                    &format!("{path}.optional"),
                    "`optional` needs a provider of kind `local`",
                );
            }
        }
        let file = match (&m.path, kind) {
            (None, ProviderKind::Local) => {
                return Err(self.error(
                    name.span(),
                    &format!("{path}.path"),
                    "a model of a `local` provider needs the `path` of its GGUF file".to_owned(),
                    Some("e.g. path = \"models/SmolLM2-135M-Instruct/model.gguf\"".to_owned()),
                ))
            }
            (None, _) => return Ok((None, None)),
            (Some(p), ProviderKind::Local) => p,
            (Some(p), _) => {
                return self.err(p.span(), &format!("{path}.path"), "`path` needs a provider of kind `local`")
            }
        };
        let resolved = match file.get_ref().strip_prefix("models:") {
            Some(rel) => models_dir().join(rel),
            None => std::path::PathBuf::from(file.get_ref()),
        };
        let fail = |reason: String| {
            Err(self.error(
                file.span(),
                &format!("{path}.path"),
                format!("model file `{}` {reason}", resolved.display()),
                Some("run scripts/fetch-models.sh, or point `path` at a .gguf file".to_owned()),
            ))
        };
        if resolved.is_dir() {
            let missing: Vec<&str> =
                EMBEDDING_MODEL_FILES.iter().copied().filter(|f| !resolved.join(f).is_file()).collect();
            if !missing.is_empty() {
                return fail(format!(
                    "is a folder without {} (an embedding model folder holds {})",
                    missing.join(", "),
                    EMBEDDING_MODEL_FILES.join(", ")
                ));
            }
            return Ok((Some(LocalModelSpec { path: resolved, context_window, embeddings: true }), None));
        }
        let mut magic = [0u8; 4];
        let read = std::fs::File::open(&resolved).and_then(|mut f| {
            use std::io::Read;
            f.read_exact(&mut magic)
        });
        match read {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && m.optional == Some(true) => {
                return Ok((None, Some(format!("model file `{}` does not exist", resolved.display()))));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return fail("does not exist".to_owned()),
            Err(e) => return fail(format!("cannot be read: {e}")),
            Ok(()) if &magic != b"GGUF" => return fail("is not a GGUF file".to_owned()),
            Ok(()) => {}
        }
        Ok((Some(LocalModelSpec { path: resolved, context_window, embeddings: false }), None))
    }

    fn mock(&self, m: &raw::RawMock, path: &str) -> R<MockSettings> {
        let d = MockSettings::default();
        let mode = match &m.mode {
            None => d.mode,
            Some(v) => MockMode::from_name(v.get_ref()).ok_or_else(|| {
                self.error(
                    v.span(),
                    &format!("{path}.mock.mode"),
                    format!("unknown mock mode `{}`", v.get_ref()),
                    Some(format!("one of: {}", MockMode::NAMES.join(", "))),
                )
            })?,
        };
        Ok(MockSettings {
            mode,
            text: m.text.clone(),
            status: self.count(&m.status, &format!("{path}.mock.status"), 400, 599, 500)? as u16,
            retry_after: match &m.retry_after {
                Some(_) => Some(self.duration(
                    &m.retry_after,
                    &format!("{path}.mock.retry_after"),
                    Duration::ZERO,
                )?),
                None => None,
            },
            fail_times: match &m.fail_times {
                Some(_) => {
                    Some(self.count(&m.fail_times, &format!("{path}.mock.fail_times"), 0, 1_000_000, 0)?
                        as u32)
                }
                None => None,
            },
            latency: match &m.latency {
                Some(_) => {
                    Some(self.duration(&m.latency, &format!("{path}.mock.latency"), Duration::ZERO)?)
                }
                None => None,
            },
            chunk_delay: self.duration(
                &m.chunk_delay,
                &format!("{path}.mock.chunk_delay"),
                Duration::ZERO,
            )?,
            break_after: self.count(&m.break_after, &format!("{path}.mock.break_after"), 0, 10_000, 2)?
                as u32,
        })
    }
}
