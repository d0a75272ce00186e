//! `/deploy <service> <env> [version]`.

use super::parse::{ParseError, check_name, truncate};

/// `/deploy <service> <env> [version]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deploy {
    pub service: String,
    pub env: String,
    /// An image tag or `sha256:` digest; `None` means the newest successful CI build.
    pub version: Option<String>,
}

impl Deploy {
    /// The directory of the env's manifests in the GitOps repo, by convention.
    pub fn manifest_dir(&self) -> String {
        format!("apps/{}/{}", self.service, self.env)
    }

    pub fn argv(&self) -> Vec<String> {
        vec![
            "kubectl".into(),
            "apply".into(),
            "-k".into(),
            self.manifest_dir(),
        ]
    }
}

fn is_version(v: &str) -> bool {
    if let Some(hex) = v.strip_prefix("sha256:") {
        return hex.len() == 64
            && hex
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase());
    }
    let b = v.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-'))
}

/// ```text
/// deploy := service env [ tag | "sha256:" hex64 ]
/// ```
pub fn parse_deploy(words: &[String]) -> Result<Deploy, ParseError> {
    if let Some(w) = words.iter().find(|w| w.starts_with('-')) {
        return Err(ParseError::unknown(format!(
            "`{}` is not a flag `/deploy` accepts; usage: `/deploy <service> <env> [version] [--apply]`.",
            truncate(w, 40)
        )));
    }
    match words {
        [service, env, rest @ ..] if rest.len() <= 1 => {
            check_name("service", service)?;
            check_name("environment", env)?;
            let version = rest.first().cloned();
            if let Some(v) = &version
                && !is_version(v)
            {
                return Err(ParseError::invalid(format!(
                    "`{}` is not an image tag or `sha256:` digest.",
                    truncate(v, 80)
                )));
            }
            Ok(Deploy {
                service: service.clone(),
                env: env.clone(),
                version,
            })
        }
        _ => Err(ParseError::invalid(
            "usage: `/deploy <service> <env> [version] [--apply]`, for example `/deploy api staging --apply`.",
        )),
    }
}

#[cfg(test)]
mod tests {
    use crate::command::parse::ParseErrorKind;
    use crate::command::parse_line;

    #[test]
    fn deploy() {
        let p = parse_line("/deploy api staging v1.2.3 --apply").unwrap();
        assert!(p.apply);
        assert_eq!(
            p.argv().unwrap(),
            ["kubectl", "apply", "-k", "apps/api/staging"]
        );
        parse_line(&format!("/deploy api staging sha256:{}", "a".repeat(64))).unwrap();
        assert_eq!(
            parse_line("/deploy api staging 'v1;x'").unwrap_err().kind,
            ParseErrorKind::Invalid
        );
        assert_eq!(
            parse_line("/deploy api").unwrap_err().kind,
            ParseErrorKind::Invalid
        );
        assert_eq!(
            parse_line("/deploy api staging --force").unwrap_err().kind,
            ParseErrorKind::Unknown
        );
    }
}
