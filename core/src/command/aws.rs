//! `/aws <profile> <service> <operation> [args…]`: the AWS CLI, wrapped and read-only.
//!
//! Grammar:
//! ```text
//! aws := profile service operation { "--" param [value…] }
//! ```
//! The profile is an alias the bridge maps to read-only credentials; the person never passes
//! `--profile`, `--endpoint-url` or files. Operations and parameters are allowlists.

use super::parse::{ParseError, check_name, truncate};

/// An allowed service and the operations of it that run directly. A trailing `*` is a prefix.
#[derive(Debug, PartialEq, Eq)]
pub struct AwsService {
    pub name: &'static str,
    pub operations: &'static [&'static str],
}

const fn svc(name: &'static str, operations: &'static [&'static str]) -> AwsService {
    AwsService { name, operations }
}

/// Read operations that run directly. Anything else is refused.
pub const SERVICES: &[AwsService] = &[
    svc("acm", &["describe-certificate", "list-certificates"]),
    svc("autoscaling", &["describe-*"]),
    svc("cloudformation", &["describe-*", "list-*"]),
    svc(
        "cloudwatch",
        &[
            "describe-*",
            "list-*",
            "get-metric-data",
            "get-metric-statistics",
        ],
    ),
    svc("dynamodb", &["describe-*", "list-*"]),
    svc("ec2", &["describe-*"]),
    svc("ecr", &["describe-*", "list-images"]),
    svc("ecs", &["describe-*", "list-*"]),
    svc("eks", &["describe-*", "list-*"]),
    svc("elasticache", &["describe-*"]),
    svc("elbv2", &["describe-*"]),
    svc(
        "iam",
        &[
            "list-*",
            "get-role",
            "get-user",
            "get-group",
            "get-policy",
            "get-policy-version",
            "get-instance-profile",
            "get-account-summary",
        ],
    ),
    svc("kms", &["describe-key", "list-*"]),
    svc("lambda", &["list-*", "get-account-settings"]),
    svc(
        "logs",
        &["describe-*", "get-log-events", "filter-log-events"],
    ),
    svc("rds", &["describe-*"]),
    svc("route53", &["list-*", "get-hosted-zone"]),
    svc(
        "s3api",
        &[
            "list-buckets",
            "list-objects-v2",
            "head-bucket",
            "get-bucket-location",
            "get-bucket-versioning",
            "get-bucket-tagging",
            "get-bucket-encryption",
            "get-object-lock-configuration",
            "get-public-access-block",
        ],
    ),
    svc("secretsmanager", &["list-secrets", "describe-secret"]),
    svc("sns", &["list-*"]),
    svc(
        "sqs",
        &["list-queues", "get-queue-url", "get-queue-attributes"],
    ),
    svc(
        "ssm",
        &[
            "describe-*",
            "list-*",
            "get-parameter",
            "get-parameters",
            "get-parameters-by-path",
        ],
    ),
    svc("sts", &["get-caller-identity"]),
];

/// Operations refused whatever the allowlist says, with the reason.
pub const REFUSED_OPERATIONS: &[(&str, &str, &str)] = &[
    (
        "secretsmanager",
        "get-secret-value",
        "it returns secret values",
    ),
    ("kms", "decrypt", "it decrypts data with the account's keys"),
    ("sts", "get-session-token", "it mints credentials"),
    ("sts", "assume-role", "it mints credentials"),
    (
        "sts",
        "assume-role-with-web-identity",
        "it mints credentials",
    ),
    ("sts", "get-federation-token", "it mints credentials"),
    (
        "iam",
        "create-access-key",
        "it mints long-lived credentials",
    ),
    (
        "ecr",
        "get-authorization-token",
        "it mints registry credentials",
    ),
    ("ecr", "get-login-password", "it mints registry credentials"),
    ("eks", "get-token", "it mints cluster credentials"),
    (
        "rds",
        "generate-db-auth-token",
        "it mints database credentials",
    ),
    // Reads whose output carries secret material that no redaction rule can know.
    ("lambda", "list-functions", LAMBDA_ENV),
    ("lambda", "list-versions-by-function", LAMBDA_ENV),
    ("lambda", "get-function", LAMBDA_ENV),
    ("lambda", "get-function-configuration", LAMBDA_ENV),
    (
        "ecs",
        "describe-task-definition",
        "it returns the containers' environment variables, which often hold secrets",
    ),
    (
        "ecs",
        "describe-tasks",
        "it returns the containers' environment overrides, which can hold secrets",
    ),
    ("autoscaling", "describe-launch-configurations", USER_DATA),
    ("ec2", "describe-launch-template-versions", USER_DATA),
    ("ec2", "describe-instance-attribute", USER_DATA),
    ("ec2", "describe-spot-fleet-requests", USER_DATA),
    ("ec2", "describe-spot-instance-requests", USER_DATA),
    (
        "ec2",
        "describe-vpn-connections",
        "it returns the VPN tunnels' pre-shared keys",
    ),
];

const LAMBDA_ENV: &str =
    "it returns the functions' environment variables, which often hold secrets";
const USER_DATA: &str = "it returns instance user data, which often holds secrets";

/// Parameters refused on purpose: they change where the CLI talks to, who it is, or read files.
pub const REFUSED_PARAMS: &[(&str, &str)] = &[
    (
        "endpoint-url",
        "the endpoint comes from Slipway's configuration",
    ),
    (
        "profile",
        "choose the profile alias as the first word instead",
    ),
    ("no-verify-ssl", "TLS verification is never turned off"),
    (
        "ca-bundle",
        "the trust store comes from Slipway's configuration",
    ),
    (
        "no-sign-request",
        "requests are always signed with the profile's credentials",
    ),
    ("debug", "debug output can print credentials"),
    ("cli-input-json", "it reads request parameters from files"),
    ("cli-input-yaml", "it reads request parameters from files"),
    ("generate-cli-skeleton", "it is not a read operation"),
    ("output", "Slipway always asks for JSON and renders it"),
    (
        "with-decryption",
        "decrypted parameter values are never shown in chat",
    ),
    ("cli-binary-format", "not needed for read operations"),
];

/// Parameters that may be passed to allowed operations.
pub const ALLOWED_PARAMS: &[&str] = &[
    "region",
    "query",
    "max-items",
    "page-size",
    "starting-token",
    "no-paginate",
    "filters",
    "filter",
    "instance-ids",
    "image-ids",
    "vpc-ids",
    "subnet-ids",
    "group-ids",
    "group-names",
    "volume-ids",
    "snapshot-ids",
    "owners",
    "include-all-instances",
    "bucket",
    "prefix",
    "delimiter",
    "max-keys",
    "cluster",
    "clusters",
    "services",
    "service-name",
    "name",
    "names",
    "nodegroup-name",
    "function-name",
    "log-group-name",
    "log-group-name-prefix",
    "log-stream-name",
    "log-stream-name-prefix",
    "filter-pattern",
    "start-time",
    "end-time",
    "limit",
    "db-instance-identifier",
    "db-cluster-identifier",
    "role-name",
    "user-name",
    "policy-arn",
    "version-id",
    "path-prefix",
    "scope",
    "load-balancer-arns",
    "names",
    "target-group-arn",
    "target-group-arns",
    "queue-url",
    "queue-name-prefix",
    "attribute-names",
    "table-name",
    "stack-name",
    "stack-status-filter",
    "repository-name",
    "key-id",
    "certificate-arn",
    "hosted-zone-id",
    "id",
    "auto-scaling-group-names",
    "cache-cluster-id",
    "parameter-filters",
    "path",
    "recursive",
    "secret-id",
    "metric-name",
    "namespace",
    "dimensions",
    "statistics",
    "period",
    "alarm-names",
    "state-value",
    "task-definition",
    "tasks",
    "service",
    "instance-profile-name",
    "group-name",
    "topic-arn",
    "next-token",
    "max-results",
];

/// A parsed `/aws` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aws {
    pub profile: String,
    pub service: String,
    pub operation: String,
    pub args: Vec<String>,
}

impl Aws {
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec![
            "aws".to_string(),
            self.service.clone(),
            self.operation.clone(),
        ];
        argv.extend(self.args.iter().cloned());
        argv.extend(["--output".to_string(), "json".to_string()]);
        argv
    }
}

fn op_matches(pattern: &str, op: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => op.starts_with(prefix),
        None => pattern == op,
    }
}

/// Whether an operation of a service is an allowed direct read.
pub fn is_allowed(service: &str, operation: &str) -> bool {
    SERVICES
        .iter()
        .find(|s| s.name == service)
        .is_some_and(|s| s.operations.iter().any(|p| op_matches(p, operation)))
}

/// The `--query` at `args[i]` (written `--query=EXPR` or `--query EXPR`) selects and filters
/// only. It takes exactly one expression, so nothing after it escapes the check.
fn check_query(param: &str, args: &[String], i: usize) -> Result<(), ParseError> {
    if let Some((_, expr)) = param.split_once('=') {
        return super::aws_query::check(expr);
    }
    let values: Vec<&String> = args[i + 1..]
        .iter()
        .take_while(|a| !a.starts_with("--"))
        .collect();
    match values.as_slice() {
        [expr] => super::aws_query::check(expr),
        [] => Err(ParseError::invalid(
            "`--query` needs a JMESPath expression, for example `--query \"Buckets[].Name\"`.",
        )),
        _ => Err(ParseError::invalid(
            "`--query` takes one expression: put it in quotes, for example \
             `--query \"Reservations[].Instances[].[InstanceId, State.Name]\"`.",
        )),
    }
}

const USAGE: &str = "usage: `/aws <profile> <service> <operation> [--param value…]`, \
                     for example `/aws staging-readonly ec2 describe-instances`";

/// Parse the words after `/aws`.
pub fn parse(words: Vec<String>) -> Result<Aws, ParseError> {
    let mut it = words.into_iter();
    let (Some(profile), Some(service), Some(operation)) = (it.next(), it.next(), it.next()) else {
        return Err(ParseError::invalid(USAGE));
    };
    if profile.starts_with('-') {
        return Err(ParseError::invalid(format!(
            "the profile alias comes first; {USAGE}"
        )));
    }
    check_name("AWS profile", &profile)?;
    check_operation(&service, &operation)?;
    let args: Vec<String> = it.collect();
    check_args(&args)?;
    Ok(Aws {
        profile,
        service,
        operation,
        args,
    })
}

/// The service and operation are names, not refused, and on the allowlist.
fn check_operation(service: &str, operation: &str) -> Result<(), ParseError> {
    for (what, word) in [("service", service), ("operation", operation)] {
        if word.is_empty()
            || !word
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        {
            return Err(ParseError::invalid(format!(
                "`{}` is not an AWS {what} name; {USAGE}",
                truncate(word, 40)
            )));
        }
    }
    if let Some((_, _, why)) = REFUSED_OPERATIONS
        .iter()
        .find(|(s, o, _)| *s == service && *o == operation)
    {
        return Err(ParseError::refused(format!(
            "`aws {service} {operation}` is not allowed: {why}."
        )));
    }
    let Some(spec) = SERVICES.iter().find(|s| s.name == service) else {
        return Err(ParseError::unknown(format!(
            "`aws {}` is not available through Slipway. Services: {}.",
            truncate(service, 40),
            SERVICES
                .iter()
                .map(|s| s.name)
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    if !is_allowed(service, operation) {
        return Err(ParseError::refused(format!(
            "`aws {service} {}` is not an allowed read operation. Allowed for {service}: {}. \
             Changes go through the GitOps repository.",
            truncate(operation, 40),
            spec.operations.join(", ")
        )));
    }
    Ok(())
}

/// Every argument is inline (no files or URLs) and every parameter is on the allowlist;
/// `--query` is a select-and-filter expression.
fn check_args(args: &[String]) -> Result<(), ParseError> {
    for (i, arg) in args.iter().enumerate() {
        let lower = arg.to_ascii_lowercase();
        if ["file://", "fileb://", "http://", "https://"]
            .iter()
            .any(|p| lower.contains(p))
        {
            return Err(ParseError::refused(format!(
                "`{}`: arguments can't load files or URLs; pass the value inline.",
                truncate(arg, 60)
            )));
        }
        let Some(param) = arg.strip_prefix("--") else {
            if arg.starts_with('-') {
                return Err(ParseError::unknown(format!(
                    "`{}`: AWS parameters are written `--name value`.",
                    truncate(arg, 40)
                )));
            }
            continue;
        };
        let name = param.split_once('=').map_or(param, |(n, _)| n);
        if name == "query" {
            check_query(param, args, i)?;
        }
        if let Some((_, why)) = REFUSED_PARAMS.iter().find(|(n, _)| *n == name) {
            return Err(ParseError::refused(format!(
                "`--{name}` is not allowed: {why}."
            )));
        }
        if !ALLOWED_PARAMS.contains(&name) {
            return Err(ParseError::unknown(format!(
                "`--{}` is not a parameter Slipway passes to the AWS CLI. \
                 See `/slipway help aws` for the allowed parameters.",
                truncate(name, 40)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::parse::ParseErrorKind;

    fn p(s: &str) -> Result<Aws, ParseError> {
        parse(crate::tokenize::tokenize(s).unwrap())
    }

    #[test]
    fn allowed_reads() {
        let a = p("staging-readonly ec2 describe-instances --instance-ids i-1 i-2").unwrap();
        assert_eq!(
            a.argv(),
            [
                "aws",
                "ec2",
                "describe-instances",
                "--instance-ids",
                "i-1",
                "i-2",
                "--output",
                "json"
            ]
        );
        p("prod-readonly s3api list-buckets").unwrap();
        p("prod-readonly sts get-caller-identity").unwrap();
        p("prod-readonly ssm get-parameter --name /app/db").unwrap();
    }

    #[test]
    fn always_refused() {
        for s in [
            "x secretsmanager get-secret-value --secret-id db",
            "x ssm get-parameter --name a --with-decryption",
            "x ssm get-parameters --names a --with-decryption=true",
            "x kms decrypt --ciphertext-blob abc",
            "x sts get-session-token",
            "x sts assume-role --role-arn a",
            "x iam create-access-key",
            "x ec2 describe-instances --endpoint-url http://evil",
            "x ec2 describe-instances --endpoint-url=http://evil",
            "x ec2 describe-instances --profile admin",
            "x ec2 describe-instances --no-verify-ssl",
            "x ec2 describe-instances --filters file://f.json",
            "x ec2 describe-instances --filters fileb://f",
            "x ec2 terminate-instances --instance-ids i-1",
            "x s3api put-object --bucket b",
            // Reads whose output carries secrets.
            "x lambda list-functions",
            "x lambda list-functions --query Functions[].Environment.Variables",
            "x lambda get-function-configuration --function-name api",
            "x lambda get-function --function-name api",
            "x lambda list-versions-by-function --function-name api",
            "x ecs describe-task-definition --task-definition api:3",
            "x ecs describe-tasks --cluster c --tasks t",
            "x autoscaling describe-launch-configurations",
            "x ec2 describe-launch-template-versions",
            "x ec2 describe-instance-attribute --instance-ids i-1",
            "x ec2 describe-vpn-connections",
            // Queries that transform values.
            "x ec2 describe-instances --query reverse(Reservations)",
            "x ec2 describe-instances --query=reverse(Reservations)",
            "x ec2 describe-instances --query \"Reservations[].Instances[].to_string(@)\"",
            "x ec2 describe-instances --query Reservations --query \"join(',', Reservations[].Id)\"",
        ] {
            assert_eq!(p(s).unwrap_err().kind, ParseErrorKind::Refused, "{s}");
        }
    }

    #[test]
    fn unknown_things() {
        assert_eq!(
            p("x frobnicator list-x").unwrap_err().kind,
            ParseErrorKind::Unknown
        );
        assert_eq!(
            p("x ec2 describe-instances --weird 1").unwrap_err().kind,
            ParseErrorKind::Unknown
        );
        assert_eq!(p("x ec2").unwrap_err().kind, ParseErrorKind::Invalid);
        assert_eq!(
            p("--profile x ec2 describe-instances").unwrap_err().kind,
            ParseErrorKind::Invalid
        );
        for s in [
            "x ec2 describe-instances --query",
            "x ec2 describe-instances --query a b",
            "x ec2 describe-instances --query Items[",
        ] {
            assert_eq!(p(s).unwrap_err().kind, ParseErrorKind::Invalid, "{s}");
        }
    }

    #[test]
    fn queries_that_select_and_filter_pass() {
        let a = p("x ec2 describe-instances --query \"Reservations[].Instances[?State.Name=='running'].[InstanceId, Tags[?Key=='Name'].Value | [0]]\" --region eu-west-1").unwrap();
        assert_eq!(a.args.len(), 4);
        p("x s3api list-buckets --query=Buckets[].Name").unwrap();
        p("x lambda list-aliases --function-name api").unwrap();
    }
}
