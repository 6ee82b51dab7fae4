//! `[telemetry]` raw → validated: the OTLP endpoint and protocol, sampling, content capture and
//! the collector's headers (secret references, like providers' headers).

use std::time::Duration;

use toml::Spanned;

use super::super::raw::RawTelemetry;
use super::super::{OtlpProtocol, TelemetryConfig};
use super::{http_header_name_ok, Cx, R};

impl Cx<'_> {
    pub(super) fn telemetry(&self, t: &Spanned<RawTelemetry>) -> R<TelemetryConfig> {
        let raw = t.get_ref();
        let endpoint = raw.otlp_endpoint.get_ref().trim_end_matches('/').to_owned();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(self.error(
                raw.otlp_endpoint.span(),
                "telemetry.otlp_endpoint",
                format!("`{}` is not an http(s) URL", raw.otlp_endpoint.get_ref()),
                Some("e.g. otlp_endpoint = \"http://127.0.0.1:4317\"".to_owned()),
            ));
        }
        let otlp_protocol = match raw.otlp_protocol.as_ref().map(|p| (p.get_ref().as_str(), p.span())) {
            None | Some(("grpc", _)) => OtlpProtocol::Grpc,
            Some(("http/protobuf", _)) => OtlpProtocol::HttpProtobuf,
            Some((other, span)) => {
                return Err(self.error(
                    span,
                    "telemetry.otlp_protocol",
                    format!("unknown OTLP protocol `{other}`"),
                    Some("use \"grpc\" or \"http/protobuf\"".to_owned()),
                ))
            }
        };
        let service_name = match &raw.service_name {
            Some(s) if s.get_ref().trim().is_empty() => {
                return self.err(s.span(), "telemetry.service_name", "the service name must not be empty")
            }
            Some(s) => s.get_ref().clone(),
            None => "gardefou".to_owned(),
        };
        let sample_ratio = match &raw.sample_ratio {
            Some(r) if !(0.0..=1.0).contains(r.get_ref()) => {
                return self.err(
                    r.span(),
                    "telemetry.sample_ratio",
                    format!("{} is out of range (0.0..=1.0)", r.get_ref()),
                )
            }
            Some(r) => *r.get_ref(),
            None => 1.0,
        };
        let mut headers = Vec::new();
        for (h, v) in &raw.headers {
            if !http_header_name_ok(h) {
                return self.err(v.span(), "telemetry.headers", format!("`{h}` is not a header name"));
            }
            headers.push((h.to_ascii_lowercase(), self.secret(v, &format!("telemetry.headers.{h}"))?));
        }
        let export_interval =
            self.duration(&raw.export_interval, "telemetry.export_interval", Duration::from_secs(5))?;
        if export_interval.is_zero() {
            let span = raw.export_interval.as_ref().map_or(t.span(), |s| s.span());
            return self.err(span, "telemetry.export_interval", "the export interval must be above zero");
        }
        Ok(TelemetryConfig {
            otlp_endpoint: endpoint,
            otlp_protocol,
            service_name,
            sample_ratio,
            capture_content: raw.capture_content.unwrap_or(false),
            headers,
            export_interval,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, OtlpProtocol, SecretRef};

    const BASE: &str = "[providers.demo]\nkind = \"mock\"\n";

    #[test]
    fn telemetry_defaults_protocols_and_secret_headers() {
        assert!(Config::parse(BASE, "t.toml").unwrap().telemetry.is_none());
        let c = Config::parse(
            &format!("{BASE}[telemetry]\notlp_endpoint = \"http://127.0.0.1:4317/\"\n"),
            "t.toml",
        )
        .unwrap();
        let t = c.telemetry.unwrap();
        assert_eq!(t.otlp_endpoint, "http://127.0.0.1:4317");
        assert_eq!(t.otlp_protocol, OtlpProtocol::Grpc);
        assert_eq!(t.service_name, "gardefou");
        assert!(!t.capture_content);
        let c = Config::parse(
            &format!(
                "{BASE}[telemetry]\notlp_endpoint = \"http://c:4318\"\notlp_protocol = \"http/protobuf\"\n\
                 headers = {{ Authorization = \"env:OTLP_AUTH\" }}\n"
            ),
            "t.toml",
        )
        .unwrap();
        let t = c.telemetry.unwrap();
        assert_eq!(t.otlp_protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(t.headers, vec![("authorization".to_owned(), SecretRef::Env("OTLP_AUTH".into()))]);
    }

    #[test]
    fn telemetry_mistakes_are_reported_at_their_key() {
        for (extra, path) in [
            ("otlp_protocol = \"thrift\"", "telemetry.otlp_protocol"),
            ("sample_ratio = 1.5", "telemetry.sample_ratio"),
            ("headers = { authorization = \"Bearer abc\" }", "telemetry.headers.authorization"),
            ("export_interval = \"0s\"", "telemetry.export_interval"),
        ] {
            let text = format!("{BASE}[telemetry]\notlp_endpoint = \"http://c:4317\"\n{extra}\n");
            let e = Config::parse(&text, "t.toml").unwrap_err();
            assert_eq!(e.path, path, "{extra}: {e}");
            assert_eq!(e.line, 5, "{extra}: {e}");
        }
        let e = Config::parse(&format!("{BASE}[telemetry]\notlp_endpoint = \"127.0.0.1:4317\"\n"), "t.toml")
            .unwrap_err();
        assert_eq!(e.path, "telemetry.otlp_endpoint");
    }
}
