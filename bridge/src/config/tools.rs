//! Configuration of the tools commands run with: the AWS CLI and its profile aliases, the GitOps
//! checkout `/tf plan` reads, terraform, and the Alertmanager of each environment.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::{AwsProfileConfig, Config, Env, check_url};

/// `aws:` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAws {
    cli: Option<String>,
    max_attempts: Option<u32>,
    config_dir: Option<PathBuf>,
}

/// `terraform:` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileTerraform {
    binary: Option<String>,
    aws_profile: Option<String>,
}

/// The file's sections this module reads.
#[derive(Debug)]
pub(super) struct FileTools {
    pub aws: FileAws,
    /// `gitops.checkout`.
    pub checkout: Option<PathBuf>,
    pub terraform: FileTerraform,
    /// `alertmanager:`: base URL per environment.
    pub alertmanager: BTreeMap<String, String>,
}

/// How `/aws` runs the CLI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsConfig {
    /// The `aws` program: a path, or a name looked up on `execution.path`.
    pub cli: String,
    /// `AWS_MAX_ATTEMPTS` for every call.
    pub max_attempts: u32,
    /// A directory with `config` and `credentials` files: the default for profile aliases
    /// without an `aws_profiles` entry (the profile name is then the alias).
    pub config_dir: Option<PathBuf>,
}

/// The GitOps repository, as `/tf plan` reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitopsConfig {
    /// A read-only checkout of the default branch; stacks live in `stacks/<name>`.
    pub checkout: Option<PathBuf>,
}

/// How `/tf plan` runs terraform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerraformConfig {
    /// The `terraform` program: a path, or a name looked up on `execution.path`.
    pub binary: String,
    /// An `aws_profiles` alias whose read-only credentials plans get, if any.
    pub aws_profile: Option<String>,
}

/// The validated sections.
#[derive(Debug)]
pub(super) struct Tools {
    pub aws: AwsConfig,
    pub gitops: GitopsConfig,
    pub terraform: TerraformConfig,
    pub alertmanager: BTreeMap<String, String>,
    pub default_alertmanager: Option<String>,
}

/// Validate the sections, with the environment overriding the file.
pub(super) fn load(
    file: FileTools,
    profiles: &BTreeMap<String, AwsProfileConfig>,
    env: Env<'_>,
) -> Result<Tools, String> {
    let aws = AwsConfig {
        cli: env("SLIPWAY_AWS_CLI")
            .or(file.aws.cli)
            .unwrap_or_else(|| "aws".into()),
        max_attempts: file.aws.max_attempts.unwrap_or(3).max(1),
        config_dir: env("SLIPWAY_AWS_CONFIG_DIR")
            .map(PathBuf::from)
            .or(file.aws.config_dir),
    };
    check_aws(&aws, profiles)?;
    let gitops = GitopsConfig {
        checkout: env("SLIPWAY_GITOPS_CHECKOUT")
            .map(PathBuf::from)
            .or(file.checkout),
    };
    if let Some(dir) = &gitops.checkout
        && !dir.is_dir()
    {
        return Err(format!(
            "the GitOps checkout {} is not a directory (SLIPWAY_GITOPS_CHECKOUT or `gitops.checkout`)",
            dir.display()
        ));
    }
    let terraform = TerraformConfig {
        binary: file.terraform.binary.unwrap_or_else(|| "terraform".into()),
        aws_profile: file.terraform.aws_profile,
    };
    let mut alertmanager = BTreeMap::new();
    for (env_name, url) in file.alertmanager {
        let url = url.trim_end_matches('/').to_string();
        check_url(&url, &format!("alertmanager.{env_name}"))?;
        alertmanager.insert(env_name, url);
    }
    let default_alertmanager = match env("SLIPWAY_ALERTMANAGER_URL") {
        Some(url) => {
            let url = url.trim_end_matches('/').to_string();
            check_url(&url, "the Alertmanager URL (SLIPWAY_ALERTMANAGER_URL)")?;
            Some(url)
        }
        None => None,
    };
    Ok(Tools {
        aws,
        gitops,
        terraform,
        alertmanager,
        default_alertmanager,
    })
}

impl Config {
    /// The credentials of an AWS profile alias: its `aws_profiles` entry (files it leaves out come
    /// from `aws.config_dir`), or else profile `<alias>` in `aws.config_dir`.
    pub fn aws_profile(&self, alias: &str) -> Option<AwsProfileConfig> {
        let dir_file = |name: &str| self.aws.config_dir.as_ref().map(|d| d.join(name));
        match self.aws_profiles.get(alias) {
            Some(p) => Some(AwsProfileConfig {
                config_file: p.config_file.clone().or_else(|| dir_file("config")),
                credentials_file: p
                    .credentials_file
                    .clone()
                    .or_else(|| dir_file("credentials")),
                ..p.clone()
            }),
            None => self.aws.config_dir.as_ref().map(|_| AwsProfileConfig {
                profile: alias.to_string(),
                config_file: dir_file("config"),
                credentials_file: dir_file("credentials"),
                region: None,
                endpoint_url: None,
                read_role_arn: None,
                external_id: None,
            }),
        }
    }

    /// The Alertmanager base URL of an environment, if configured.
    pub fn alertmanager_url(&self, env: &str) -> Option<&str> {
        self.alertmanager
            .get(env)
            .or(self.default_alertmanager.as_ref())
            .map(String::as_str)
    }
}

/// Every AWS profile needs credentials files, and the files must exist.
fn check_aws(aws: &AwsConfig, profiles: &BTreeMap<String, AwsProfileConfig>) -> Result<(), String> {
    if let Some(dir) = &aws.config_dir
        && !dir.is_dir()
    {
        return Err(format!(
            "the AWS config directory {} is not a directory (SLIPWAY_AWS_CONFIG_DIR or `aws.config_dir`)",
            dir.display()
        ));
    }
    for (alias, p) in profiles {
        if p.config_file.is_none() && p.credentials_file.is_none() && aws.config_dir.is_none() {
            return Err(format!(
                "aws_profiles.{alias}: set `config_file` and/or `credentials_file` (or `aws.config_dir`), \
                 so the profile's credentials come from the bridge"
            ));
        }
        for (key, file) in [
            ("config_file", &p.config_file),
            ("credentials_file", &p.credentials_file),
        ] {
            if let Some(f) = file
                && !f.is_file()
            {
                return Err(format!(
                    "aws_profiles.{alias}.{key}: {} is not a file",
                    f.display()
                ));
            }
        }
        if let Some(url) = &p.endpoint_url {
            check_url(url, &format!("aws_profiles.{alias}.endpoint_url"))?;
        }
        if let Some(arn) = &p.read_role_arn
            && !(arn.starts_with("arn:aws") && arn.contains(":role/"))
        {
            return Err(format!(
                "aws_profiles.{alias}.read_role_arn: `{arn}` is not an IAM role ARN \
                 (arn:aws:iam::ACCOUNT:role/NAME)"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    #[allow(clippy::too_many_lines)] // one config file edited step by step; reads as a story
    fn aws_gitops_terraform_and_alertmanager_sections() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let creds = dir.path().join("credentials");
        std::fs::write(&creds, "[p]\n").unwrap();
        let cfg = dir.path().join("c.yaml");
        let write = |extra: &str| {
            std::fs::write(
                &cfg,
                format!(
                    "slack:\n  signing_secret: x-signing-secret-16\naws:\n  cli: /opt/aws/bin/aws\n  max_attempts: 1\n\
                     aws_profiles:\n  staging-readonly:\n    profile: p\n    credentials_file: {d}/credentials\n    region: eu-west-1\n\
                     gitops:\n  checkout: {d}\nterraform:\n  aws_profile: staging-readonly\n\
                     alertmanager:\n  production: https://am.example.com/\n{extra}"
                ),
            )
            .unwrap();
        };
        write("");
        let env = env_of(&[("SLIPWAY_ALERTMANAGER_URL", "http://127.0.0.1:9093")]);
        let c = Config::load_with(Some(&cfg), &env).unwrap();
        assert_eq!(
            (c.aws.cli.as_str(), c.aws.max_attempts),
            ("/opt/aws/bin/aws", 1)
        );
        let p = c.aws_profile("staging-readonly").unwrap();
        assert_eq!(
            (p.credentials_file, p.config_file),
            (Some(creds.clone()), None)
        );
        assert_eq!(c.aws_profile("other"), None);
        assert_eq!(c.gitops.checkout.as_deref(), Some(dir.path()));
        assert_eq!(c.terraform.aws_profile.as_deref(), Some("staging-readonly"));
        assert_eq!(c.terraform.binary, "terraform");
        assert_eq!(
            c.alertmanager_url("production"),
            Some("https://am.example.com")
        );
        assert_eq!(c.alertmanager_url("staging"), Some("http://127.0.0.1:9093"));

        // A directory of shared files covers aliases without an entry.
        let dir_s = d.to_string();
        let pairs = [("SLIPWAY_AWS_CONFIG_DIR", dir_s.as_str())];
        let env = env_of(&pairs);
        let c = Config::load_with(Some(&cfg), &env).unwrap();
        let p = c.aws_profile("other").unwrap();
        assert_eq!(p.profile, "other");
        assert_eq!(p.config_file, Some(dir.path().join("config")));
        assert_eq!(c.alertmanager_url("staging"), None);

        for (extra, want) in [("  staging: http://am.example.com\n", "https"), ("\n", "")] {
            write(extra);
            let r = Config::load_with(Some(&cfg), &env_of(&[]));
            if want.is_empty() {
                assert!(r.is_ok());
            } else {
                assert!(r.unwrap_err().contains(want));
            }
        }
        std::fs::remove_file(&creds).unwrap();
        write("");
        let e = Config::load_with(Some(&cfg), &env_of(&[])).unwrap_err();
        assert!(
            e.contains("aws_profiles.staging-readonly.credentials_file"),
            "{e}"
        );
        std::fs::write(
            &cfg,
            "slack:\n  signing_secret: x-signing-secret-16\naws_profiles:\n  a:\n    profile: p\n",
        )
        .unwrap();
        let e = Config::load_with(Some(&cfg), &env_of(&[])).unwrap_err();
        assert!(e.contains("aws_profiles.a: set `config_file`"), "{e}");
        let e = Config::load_with(
            None,
            &env_of(&[
                ("SLIPWAY_SLACK_SIGNING_SECRET", "x-signing-secret-16"),
                ("SLIPWAY_GITOPS_CHECKOUT", "/nonexistent/gitops"),
            ]),
        )
        .unwrap_err();
        assert!(e.contains("SLIPWAY_GITOPS_CHECKOUT"), "{e}");
    }
}
