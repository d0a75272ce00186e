//! The `/gcloud` allowlists: the command groups and verbs that run, the flags they take, and
//! what is refused with a reason. Everything here is data; `mod.rs` only applies it.

/// What the words after a command's verb may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Positionals {
    /// Resource names in the alias's project (never a path or URL, which could name another).
    Names,
    /// None: the command's one positional is the project itself, which the bridge supplies.
    Project,
    /// At most one Cloud Logging query (`logging read`).
    LogQuery,
}

/// One allowlisted command group and the verbs of it that run.
#[derive(Debug, PartialEq, Eq)]
pub struct GcloudGroup {
    /// The words as typed, for example `["compute", "instances"]`.
    pub path: &'static [&'static str],
    pub verbs: &'static [&'static str],
    /// JSON fields of its output that can hold secrets. Non-empty: the command runs with
    /// `--format=json`, takes no output-shaping flags, and the bridge removes these fields
    /// ([`super::strip_fields`]) before anything is shown.
    pub strip: &'static [&'static str],
    pub positionals: Positionals,
}

impl GcloudGroup {
    pub fn name(&self) -> String {
        self.path.join(" ")
    }
}

const fn group(path: &'static [&'static str], verbs: &'static [&'static str]) -> GcloudGroup {
    GcloudGroup {
        path,
        verbs,
        strip: &[],
        positionals: Positionals::Names,
    }
}

const fn stripped(
    path: &'static [&'static str],
    verbs: &'static [&'static str],
    strip: &'static [&'static str],
) -> GcloudGroup {
    GcloudGroup {
        path,
        verbs,
        strip,
        positionals: Positionals::Names,
    }
}

const LD: &[&str] = &["list", "describe"];
const LDI: &[&str] = &["list", "describe", "get-iam-policy"];
const L: &[&str] = &["list"];

/// Instance metadata: startup scripts and SSH keys.
pub const INSTANCE_METADATA: &[&str] = &["metadata.items"];
/// A project's metadata, which every instance inherits.
pub const PROJECT_METADATA: &[&str] = &["commonInstanceMetadata.items"];
/// Cloud Run containers' environment variables (services, revisions and jobs nest them at
/// different depths; a path matches at any depth).
pub const RUN_ENV: &[&str] = &["containers[].env"];
/// Cloud Functions' environment variables, 1st and 2nd gen.
pub const FUNCTION_ENV: &[&str] = &[
    "environmentVariables",
    "buildEnvironmentVariables",
    "serviceConfig.environmentVariables",
    "buildConfig.environmentVariables",
];
/// GKE: legacy basic-auth and client-certificate credentials, and node metadata.
pub const CLUSTER_SECRETS: &[&str] = &[
    "masterAuth.password",
    "masterAuth.clientKey",
    "nodeConfig.metadata",
    "config.metadata",
];
/// A node pool's node metadata.
pub const NODE_POOL_METADATA: &[&str] = &["config.metadata"];
/// Identity-Aware Proxy's OAuth client secret on a backend service.
pub const IAP_SECRET: &[&str] = &["iap.oauth2ClientSecret"];

/// The allowlist, in the order help shows it. All `read`.
pub const GROUPS: &[GcloudGroup] = &[
    stripped(&["compute", "instances"], LDI, INSTANCE_METADATA),
    stripped(&["compute", "instance-templates"], LD, INSTANCE_METADATA),
    stripped(
        &["compute", "project-info"],
        &["describe"],
        PROJECT_METADATA,
    ),
    group(&["compute", "disks"], LDI),
    group(&["compute", "snapshots"], LDI),
    group(&["compute", "images"], LDI),
    group(&["compute", "machine-types"], LD),
    group(&["compute", "instance-groups", "managed"], LD),
    group(&["compute", "networks"], LD),
    group(&["compute", "networks", "subnets"], LDI),
    group(&["compute", "firewall-rules"], LD),
    group(&["compute", "addresses"], LD),
    group(&["compute", "forwarding-rules"], LD),
    stripped(&["compute", "backend-services"], LD, IAP_SECRET),
    group(&["compute", "zones"], LD),
    group(&["compute", "regions"], LD),
    group(&["compute", "operations"], LD),
    stripped(&["container", "clusters"], LD, CLUSTER_SECRETS),
    stripped(&["container", "node-pools"], LD, NODE_POOL_METADATA),
    group(&["container", "operations"], LD),
    GcloudGroup {
        path: &["projects"],
        verbs: &["describe", "get-iam-policy"],
        strip: &[],
        positionals: Positionals::Project,
    },
    group(&["services"], L),
    group(&["iam", "service-accounts"], LDI),
    group(&["iam", "service-accounts", "keys"], L),
    group(&["iam", "roles"], LD),
    group(&["storage", "buckets"], LD),
    GcloudGroup {
        path: &["logging"],
        verbs: &["read"],
        strip: &[],
        positionals: Positionals::LogQuery,
    },
    group(&["logging", "logs"], L),
    group(&["logging", "sinks"], LD),
    group(&["logging", "metrics"], LD),
    stripped(&["run", "services"], LD, RUN_ENV),
    stripped(&["run", "revisions"], LD, RUN_ENV),
    stripped(&["run", "jobs"], LD, RUN_ENV),
    stripped(&["functions"], LD, FUNCTION_ENV),
    group(&["sql", "instances"], LD),
    group(&["sql", "databases"], LD),
    group(&["sql", "operations"], LD),
    group(&["dns", "managed-zones"], LD),
    group(&["dns", "record-sets"], L),
    group(&["secrets"], LD),
    group(&["secrets", "versions"], LD),
    group(&["kms", "keyrings"], LD),
    group(&["kms", "keys"], LDI),
    group(&["pubsub", "topics"], LD),
    group(&["artifacts", "repositories"], LD),
    group(&["redis", "instances"], LD),
];

const TOKEN: &str = "it prints credentials";
const INTERACTIVE: &str = "it opens an interactive session or a tunnel, which chat can't hold";

/// Commands refused whatever the role, with the reason. Each is a path prefix: the longest one
/// that matches decides, before the allowlist is consulted.
pub const REFUSED_COMMANDS: &[(&[&str], &str)] = &[
    (&["auth", "print-access-token"], TOKEN),
    (&["auth", "print-identity-token"], TOKEN),
    (
        &["auth"],
        "it manages the bridge's own gcloud credentials, which are not for chat",
    ),
    (
        &["container", "clusters", "get-credentials"],
        "it mints cluster credentials; use `/kubectl` with the cluster's alias",
    ),
    (
        &["secrets", "versions", "access"],
        "it prints secret payloads",
    ),
    (
        &["kms", "decrypt"],
        "it decrypts data with the project's keys",
    ),
    (
        &["kms", "asymmetric-decrypt"],
        "it decrypts data with the project's keys",
    ),
    (
        &["kms", "raw-decrypt"],
        "it decrypts data with the project's keys",
    ),
    (
        &["iam", "service-accounts", "keys", "create"],
        "it mints a long-lived service account key",
    ),
    (
        &["iam", "service-accounts", "sign-blob"],
        "it signs as the service account, which mints credentials",
    ),
    (
        &["iam", "service-accounts", "sign-jwt"],
        "it signs as the service account, which mints credentials",
    ),
    (
        &["sql", "generate-login-token"],
        "it mints database credentials",
    ),
    (
        &["redis", "instances", "get-auth-string"],
        "it prints the instance's AUTH string",
    ),
    (
        &["compute", "reset-windows-password"],
        "it mints a Windows password",
    ),
    (
        &["storage", "cat"],
        "it prints objects' contents, which are data, not configuration",
    ),
    (
        &["compute", "instances", "get-serial-port-output"],
        "it prints the instance's console, which often holds secrets",
    ),
    (&["compute", "ssh"], INTERACTIVE),
    (&["compute", "scp"], INTERACTIVE),
    (&["compute", "start-iap-tunnel"], INTERACTIVE),
    (&["compute", "connect-to-serial-port"], INTERACTIVE),
    (
        &["compute", "config-ssh"],
        "it writes SSH configuration on the bridge",
    ),
    (&["sql", "connect"], INTERACTIVE),
    (&["cloud-shell"], INTERACTIVE),
    (&["interactive"], INTERACTIVE),
    (
        &["config"],
        "it reads or changes the bridge's gcloud configuration (account, project, endpoints)",
    ),
    (&["meta"], "it is gcloud's own tooling, not a read of GCP"),
    (
        &["components"],
        "it installs or removes software on the bridge",
    ),
    (&["init"], "it changes the bridge's gcloud configuration"),
    (
        &["alpha"],
        "pre-release command tracks are not allowlisted; use the GA command",
    ),
    (
        &["beta"],
        "pre-release command tracks are not allowlisted; use the GA command",
    ),
    (
        &["preview"],
        "pre-release command tracks are not allowlisted; use the GA command",
    ),
];

/// Verbs that change GCP. Anything not allowlisted is refused anyway; these get the message
/// that says where changes go instead.
pub const MUTATING_VERBS: &[&str] = &[
    "create",
    "delete",
    "update",
    "patch",
    "resize",
    "start",
    "stop",
    "reset",
    "suspend",
    "resume",
    "deploy",
    "import",
    "export",
    "enable",
    "disable",
    "move",
    "restore",
    "rollback",
    "cancel",
    "clone",
    "promote-replica",
    "failover",
    "restart",
    "upgrade",
    "replace",
    "undelete",
    "apply",
    "execute",
    "call",
    "publish",
    "write",
    "abandon-instances",
    "recreate-instances",
    "rolling-action",
    "simulate-maintenance-event",
];

/// Prefixes of verbs that change GCP (`set-iam-policy`, `add-iam-policy-binding`, …).
pub const MUTATING_PREFIXES: &[&str] = &[
    "set-", "add-", "remove-", "update-", "create-", "delete-", "attach-", "detach-", "enable-",
    "disable-", "import-", "export-", "modify-",
];

/// The shape of a flag's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagKind {
    /// No value (`--uri`).
    Switch,
    /// A resource name or a comma-separated list of names.
    Name,
    /// A count, or `unlimited`.
    Number,
    /// `json`, `yaml`, `table(…)` or `value(…)` with plain field lists.
    Format,
    /// A filter expression that calls no transform.
    Filter,
    /// Comma-separated field keys.
    Keys,
    /// Comma-separated field keys, each optionally `~` (descending).
    SortKeys,
    /// A duration such as `1d` or `30m`.
    Duration,
    /// One of these words.
    Choice(&'static [&'static str]),
}

/// One allowed flag.
#[derive(Debug, PartialEq, Eq)]
pub struct GcloudFlag {
    pub name: &'static str,
    pub kind: FlagKind,
    pub summary: &'static str,
}

const fn flag(name: &'static str, kind: FlagKind, summary: &'static str) -> GcloudFlag {
    GcloudFlag {
        name,
        kind,
        summary,
    }
}

/// Flags that may be passed, matched by full name. None is the start of a refused flag's name,
/// so no abbreviation of an allowed flag can reach one.
pub const FLAGS: &[GcloudFlag] = &[
    flag("format", FlagKind::Format, "output format"),
    flag("filter", FlagKind::Filter, "which resources to list"),
    flag(
        "flatten",
        FlagKind::Keys,
        "one row per element of a list field",
    ),
    flag("sort-by", FlagKind::SortKeys, "sort order"),
    flag("limit", FlagKind::Number, "most resources listed"),
    flag("page-size", FlagKind::Number, "resources per API call"),
    flag("uri", FlagKind::Switch, "print resource URIs only"),
    flag(
        "zone",
        FlagKind::Name,
        "compute zone, or the DNS managed zone",
    ),
    flag("zones", FlagKind::Name, "compute zones"),
    flag("region", FlagKind::Name, "region"),
    flag("regions", FlagKind::Name, "regions"),
    flag(
        "location",
        FlagKind::Name,
        "location (GKE, KMS, Artifact Registry)",
    ),
    flag("global", FlagKind::Switch, "global resources"),
    flag("cluster", FlagKind::Name, "GKE cluster of node pools"),
    flag("instance", FlagKind::Name, "Cloud SQL instance"),
    flag("keyring", FlagKind::Name, "KMS key ring"),
    flag("service", FlagKind::Name, "Cloud Run service of revisions"),
    flag("secret", FlagKind::Name, "secret whose versions are listed"),
    flag(
        "iam-account",
        FlagKind::Name,
        "service account whose keys are listed",
    ),
    flag("name", FlagKind::Name, "DNS record name"),
    flag("type", FlagKind::Name, "DNS record type"),
    flag(
        "freshness",
        FlagKind::Duration,
        "how far back `logging read` looks",
    ),
    flag(
        "order",
        FlagKind::Choice(&["desc", "asc"]),
        "log entry order",
    ),
    flag(
        "verbosity",
        FlagKind::Choice(&["critical", "error", "warning", "info", "none"]),
        "gcloud's own log level (not `debug`)",
    ),
];

/// Flags refused on purpose, with the reason: they choose the project or identity, read files,
/// or log credentials.
pub const REFUSED_FLAGS: &[(&str, &str)] = &[
    (
        "project",
        "the project comes from the alias; choose the alias as the first word instead",
    ),
    (
        "account",
        "the identity comes from Slipway's configuration, never from a flag",
    ),
    (
        "impersonate-service-account",
        "the identity comes from Slipway's configuration, never from a flag",
    ),
    (
        "access-token-file",
        "it reads a token from a file; credentials come from Slipway's configuration",
    ),
    (
        "credential-file-override",
        "it reads credentials from a file; credentials come from Slipway's configuration",
    ),
    (
        "authorization-token-file",
        "it reads a token from a file; credentials come from Slipway's configuration",
    ),
    (
        "flags-file",
        "it reads flags from a file, past the allowlist",
    ),
    (
        "configuration",
        "it picks another gcloud configuration, with its own account and project",
    ),
    (
        "log-http",
        "it logs HTTP requests and responses, tokens included",
    ),
    (
        "billing-project",
        "quota and billing go to the alias's own project",
    ),
    (
        "universe-domain",
        "it points gcloud at another API universe; endpoints come from Slipway's configuration",
    ),
];

/// Values refused for an allowed flag.
pub const REFUSED_VALUES: &[(&str, &str, &str)] =
    &[("verbosity", "debug", "debug output can print credentials")];

/// Flags that shape output. A command whose output is stripped takes none of them: Slipway
/// asks for JSON and strips it, and a filter could test a stripped field's value.
pub const OUTPUT_FLAGS: &[&str] = &["format", "filter", "flatten", "sort-by", "uri"];
