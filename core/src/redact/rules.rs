//! The compiled patterns and the line-local rule chain.
//!
//! Every pattern here is line-local: none can match across a `\n`, and no replacement adds or
//! removes one. That is what lets the stream redactor run the chain on any run of whole lines and
//! get the same bytes as running it on the whole text. Multi-line constructs (PEM bodies, YAML and
//! JSON Secret data blocks) are handled by the state machine in `mod.rs`, not here.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::{Captures, Regex, Replacer};

use super::tokens;

/// Replacement for a value recognised by its key or context (the key says what it was).
pub(super) const REDACTED: &str = "[REDACTED]";
/// Replacement for a private-key body.
pub(super) const PEM_MARK: &str = "[REDACTED:private-key]";

/// Replacement template for `json_pair`: keep the key, replace the string value.
const JSON_VALUE_REP: &str = "${1}\"[REDACTED]\"";

/// Key words that make a `key=value` / `key: value` value secret. Matched case-insensitively
/// anywhere inside the key, so `SecretAccessKey`, `aws_session_token`, `PGPASSWORD` all count.
/// `pwd` is ODBC's password key; `account_key` Azure Storage's; `key_data` kubeconfig's
/// `client-key-data`.
const KW: &str = r"(?:passw(?:or)?d|passphrase|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|account[_-]?key|key[_-]?data|pwd)";
/// A quoted value (JSON/shell double quotes with escapes, or single quotes).
const QUOTED: &str = r#""(?:[^"\\\r\n]|\\.)*"|'[^'\r\n]*'"#;

/// Key suffixes that name *about* a secret rather than hold one (`secretName`, `token_url`,
/// `password_file`, `tokens_total`); without this every pod spec's `secretName:` is redacted.
const NOT_SECRET_SUFFIXES: &[&str] = &[
    "name",
    "names",
    "ref",
    "path",
    "file",
    "type",
    "url",
    "uri",
    "count",
    "total",
    "len",
    "length",
    "size",
    "ttl",
    "seconds",
    "expiry",
    "expires",
    "expiration",
    "expiresat",
    "arn",
    "stdin",
];

/// Values that are never secrets, whatever the key (flags, nulls, and other tools' own masks).
fn harmless_value(v: &str) -> bool {
    let v = v.trim();
    v.is_empty()
        || is_marker(v)
        || v.starts_with("(sensitive")
        || v.starts_with("arn:")
        || v.bytes().all(|b| b == b'*')
        || is_block_indicator(v)
        || ["true", "false", "null", "none", "nil", "~"]
            .iter()
            .any(|w| v.eq_ignore_ascii_case(w))
}

/// A YAML block-scalar header (`|`, `>-`, `|2+`): the value is on the following lines.
pub(super) fn is_block_indicator(v: &str) -> bool {
    v.strip_prefix(['|', '>']).is_some_and(|r| {
        r.bytes()
            .all(|b| b.is_ascii_digit() || b == b'-' || b == b'+')
    })
}

/// `[REDACTED]` or `[REDACTED:kind]`: already redacted, so leave it (keeps redaction idempotent
/// and keeps the more specific label when a key-based rule meets a typed one).
pub(super) fn is_marker(s: &str) -> bool {
    s.strip_prefix("[REDACTED")
        .and_then(|r| r.strip_suffix(']'))
        .is_some_and(|label| {
            label.is_empty()
                || label.strip_prefix(':').is_some_and(|l| {
                    !l.is_empty()
                        && l.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                })
        })
}

/// Whether a key that contains a secret word names something that is not itself a secret.
pub(super) fn key_excluded(key: &str) -> bool {
    let norm: String = key
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | '"' | '\''))
        .flat_map(char::to_lowercase)
        .collect();
    norm.contains("public")
        || NOT_SECRET_SUFFIXES
            .iter()
            .any(|s| norm.len() > s.len() && norm.ends_with(s))
}

/// The shell's working-directory variables (`PWD=/home/app`) share ODBC's password key.
fn shell_pwd(key: &str, value: &str) -> bool {
    ["pwd", "oldpwd"]
        .iter()
        .any(|k| key.eq_ignore_ascii_case(k))
        && value.starts_with('/')
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("constant redaction pattern compiles")
}

/// All patterns, compiled once per process.
#[derive(Debug)]
pub(super) struct Rules {
    pub(super) pem_begin: Regex,
    pub(super) pem_end: Regex,
    pem_inline: Regex,
    aws_line: Regex,
    aws_key_id: Regex,
    long_b64: Regex,
    github: Regex,
    slack: Regex,
    slack_webhook: Regex,
    webhook: Regex,
    typed: Regex,
    typed_kinds: Vec<&'static str>,
    loose: Vec<(&'static str, Regex, &'static str)>,
    rare_hints: Regex,
    jwt: Regex,
    oracle_jdbc: Regex,
    login_flag: Regex,
    weak: Regex,
    weak_hint: Regex,
    arn: Regex,
    url_creds: Regex,
    header: Regex,
    bearer: Regex,
    cli_flag: Regex,
    json_data_inline: Regex,
    json_data_escaped: Regex,
    yaml_data_flow: Regex,
    json_pair: Regex,
    kv: Regex,
    pub(super) yaml_scalar_open: Regex,
    pub(super) json_data_open: Regex,
    pub(super) kind_secret: Regex,
    pub(super) tail_key: Regex,
    pub(super) data_opener: Regex,
}

pub(super) static RULES: LazyLock<Rules> = LazyLock::new(|| Rules {
    pem_begin: re(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"),
    pem_end: re(r"-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----"),
    pem_inline: re(
        r"(-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)[^\n]*?(-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----)",
    ),
    aws_line: re(r"(?m)^[^\n]*(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}[^\n]*"),
    aws_key_id: re(r"(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}"),
    long_b64: re(r"[A-Za-z0-9/+=]{40,}"),
    github: re(r"gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{16,}"),
    slack: re(r"xox[a-z](?:\.xox[a-z])?-[A-Za-z0-9-]{6,}|xapp-[A-Za-z0-9-]{6,}"),
    slack_webhook: re(r"(hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9_/-]+"),
    webhook: re(
        r"(discord(?:app)?\.com/api/webhooks/|\.webhook\.office\.com/webhookb2/|outlook\.office(?:365)?\.com/webhook/|hooks\.zapier\.com/hooks/catch/|chat\.googleapis\.com/v1/spaces/)[A-Za-z0-9_/@.~-]+",
    ),
    typed: re(&tokens::alternation(tokens::TYPED.iter().map(|t| t.1))),
    typed_kinds: tokens::TYPED.iter().map(|t| t.0).collect(),
    loose: tokens::loose(re),
    rare_hints: re(&tokens::rare_hints()),
    jwt: re(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    oracle_jdbc: re(r#"(jdbc:oracle:[a-z]+:[^/\s:@"']+/)([^@\s"']+)@"#),
    login_flag: re(
        r"(\b(?:docker|podman|nerdctl|buildah|skopeo|oras|crane|regctl|helm)(?:[ \t]+registry)?[ \t]+login\b[^\r\n]*?[ \t]-p)([ \t]+|=)?([^ \t\r\n]+)",
    ),
    weak: re(tokens::WEAK_NAME),
    weak_hint: re(tokens::WEAK_HINT),
    arn: re(r#"\barn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:[0-9]{0,12}:[^\s"',]+"#),
    url_creds: re(r#"([A-Za-z][A-Za-z0-9+.-]*://)([^\s:/?#@"'<>]*):([^\s/?#"'<>]+)@"#),
    header: re(
        r#"(?i)\b((?:proxy-)?authorization|(?:set-)?cookie)(["']?[ \t]*[:=][ \t]*["']?)([^\r\n"']+)"#,
    ),
    bearer: re(r"(?i)\b(bearer[ \t]+)([A-Za-z0-9._~+/=-]+)"),
    cli_flag: re(&format!(
        r"(?im)(^|[ \t])(--?[a-z0-9-]*{KW}[a-z0-9-]*)([ \t]+)({QUOTED}|[^ \t\r\n-][^ \t\r\n]*)"
    )),
    json_data_inline: re(
        r#"("(?:data|stringData)"[ \t]*:[ \t]*\{)((?:[^{}"\r\n]|"(?:[^"\\\r\n]|\\.)*")*)(\})"#,
    ),
    json_data_escaped: re(r#"(\\"(?:data|stringData)\\"[ \t]*:[ \t]*\{)(?:[^"\\\r\n]|\\.)*"#),
    yaml_data_flow: re(r"\b((?:data|stringData):[ \t]*\{)([^{}\r\n]*)(\})"),
    json_pair: re(r#"("(?:[^"\\\r\n]|\\.)*"[ \t]*:[ \t]*)"(?:[^"\\\r\n]|\\.)*""#),
    kv: re(&format!(
        r#"(?i)([a-z0-9_.-]*{KW}[a-z0-9_.-]*)(["']?)(?:([ \t]*=[ \t]*)({QUOTED}|[^ \t\r\n"'&,;=][^ \t\r\n"'&,;]*)|([ \t]*:[ \t]*)({QUOTED}|[^ \t\r\n"':{{\[][^\r\n]*))"#
    )),
    yaml_scalar_open: re(&format!(
        r#"(?i)^["']?([a-z0-9_.-]*{KW}[a-z0-9_.-]*)["']?[ \t]*:[ \t]+[|>][0-9+-]*[ \t]*(?:#.*)?$"#
    )),
    json_data_open: re(r#""(?:data|stringData)"[ \t]*:[ \t]*\{"#),
    kind_secret: re(r#"\\?"kind\\?"[ \t]*:[ \t]*\\?"Secret\\?""#),
    data_opener: re(r#"\\?"(?:data|stringData)\\?"[ \t]*:[ \t]*\{|\b(?:data|stringData):[ \t]*\{"#),
    tail_key: re(&format!(
        r#"(?i)(?:[a-z0-9_.-]*{KW}[a-z0-9_.-]*["']?[ \t]*[:=]|bearer|basic|authorization[ \t]*:|--?[a-z0-9-]*{KW}[a-z0-9-]*)[ \t]*["']?$"#
    )),
});

/// Applies one replacement, keeping the text borrowed when nothing matched.
fn step<'a>(s: Cow<'a, str>, re: &Regex, rep: impl Replacer) -> Cow<'a, str> {
    match s {
        Cow::Borrowed(b) => re.replace_all(b, rep),
        Cow::Owned(o) => {
            let changed = match re.replace_all(&o, rep) {
                Cow::Owned(n) => Some(n),
                Cow::Borrowed(_) => None,
            };
            Cow::Owned(changed.unwrap_or(o))
        }
    }
}

/// `text` with its trailing spaces/tabs split off, so replacements keep line layout.
fn split_trailing_ws(v: &str) -> (&str, &str) {
    let core = v.trim_end_matches([' ', '\t']);
    (core, &v[core.len()..])
}

/// Redacts a quoted or bare value: quotes are kept, content replaced.
fn redact_value(v: &str) -> String {
    let quoted = v.len() >= 2
        && ((v.starts_with('"') && v.ends_with('"')) || (v.starts_with('\'') && v.ends_with('\'')));
    if quoted {
        let q = &v[..1];
        format!("{q}{REDACTED}{q}")
    } else {
        REDACTED.to_owned()
    }
}

fn unquote(v: &str) -> &str {
    ['"', '\'']
        .iter()
        .find_map(|&q| v.strip_prefix(q).and_then(|r| r.strip_suffix(q)))
        .unwrap_or(v)
}

impl Rules {
    /// Runs every line-local rule over `text`. Typed rules go first so their labels survive the
    /// key-based rules, which leave an exact marker alone. `json_data` gates the inline JSON
    /// Secret-data rules (see `Redactor::redact`).
    pub(super) fn chain<'a>(&self, text: &'a str, json_data: bool) -> Cow<'a, str> {
        let s = self.typed_tokens(Cow::Borrowed(text));
        // Rare formats are checked only when a cheap hint says one may be present.
        let rare = self.rare_hints.is_match(&s);
        let s = self.loose_tokens(s, rare);
        let s = self.credential_contexts(s, rare);
        let s = self.data_objects(s, json_data);
        self.key_values(s, rare)
    }

    /// Phase 1: self-identifying token formats, labelled with their kind.
    fn typed_tokens<'a>(&self, mut s: Cow<'a, str>) -> Cow<'a, str> {
        s = step(s, &self.pem_inline, "${1}[REDACTED:private-key]${2}");
        s = step(s, &self.aws_line, |c: &Captures| {
            let line = self
                .aws_key_id
                .replace_all(&c[0], "[REDACTED:aws-access-key-id]");
            // On a line that carries an access key id, any long base64 run is its secret or
            // session token (awscli `--output text`, credential CSVs).
            self.long_b64.replace_all(&line, REDACTED).into_owned()
        });
        s = step(s, &self.github, "[REDACTED:github-token]");
        s = step(s, &self.slack, "[REDACTED:slack-token]");
        s = step(s, &self.slack_webhook, "${1}[REDACTED:slack-webhook]");
        s = step(s, &self.webhook, "${1}[REDACTED:webhook]");
        step(s, &self.typed, |c: &Captures| {
            tokens::label(c, &self.typed_kinds)
        })
    }

    /// Phase 2: formats recognisable only with a hint nearby (rare vendor tokens), and JWTs.
    fn loose_tokens<'a>(&self, mut s: Cow<'a, str>, rare: bool) -> Cow<'a, str> {
        for (kind, re, hint) in self.loose.iter().filter(|_| rare) {
            if s.contains(hint) {
                s = step(s, re, format!("[REDACTED:{kind}]").as_str());
            }
        }
        s = step(s, &self.jwt, "[REDACTED:jwt]");
        if rare {
            s = step(s, &self.oracle_jdbc, "${1}[REDACTED]@");
        }
        s
    }

    /// Phase 3: secrets recognised by their context: URL passwords, auth headers, bearer tokens,
    /// secret-named CLI flags and `login -p`.
    fn credential_contexts<'a>(&self, mut s: Cow<'a, str>, rare: bool) -> Cow<'a, str> {
        s = step(s, &self.url_creds, |c: &Captures| {
            if is_marker(&c[3]) {
                c[0].to_owned()
            } else {
                format!("{}{}:{REDACTED}@", &c[1], &c[2])
            }
        });
        s = step(s, &self.header, Self::header_replace);
        s = step(s, &self.bearer, |c: &Captures| {
            let tok = &c[2];
            let looks_secret =
                tok.len() >= 8 && (tok.len() >= 20 || tok.bytes().any(|b| b.is_ascii_digit()));
            if looks_secret {
                format!("{}{REDACTED}", &c[1])
            } else {
                c[0].to_owned()
            }
        });
        s = step(s, &self.cli_flag, |c: &Captures| {
            if key_excluded(&c[2]) || harmless_value(unquote(&c[4])) {
                c[0].to_owned()
            } else {
                format!("{}{}{}{}", &c[1], &c[2], &c[3], redact_value(&c[4]))
            }
        });
        if rare {
            s = step(s, &self.login_flag, |c: &Captures| {
                let sep = c.get(2).map_or("", |m| m.as_str());
                if is_marker(&c[3]) {
                    c[0].to_owned()
                } else {
                    format!("{}{sep}{REDACTED}", &c[1])
                }
            });
        }
        s
    }

    /// Phase 4: single-line Secret `data` objects (JSON only when gated, YAML flow style always).
    fn data_objects<'a>(&self, mut s: Cow<'a, str>, json_data: bool) -> Cow<'a, str> {
        if json_data {
            s = step(s, &self.json_data_inline, |c: &Captures| {
                let inner = self.json_pair.replace_all(&c[2], JSON_VALUE_REP);
                format!("{}{inner}{}", &c[1], &c[3])
            });
            s = step(s, &self.json_data_escaped, "${1}[REDACTED]");
        }
        step(s, &self.yaml_data_flow, |c: &Captures| {
            let inner = c[2].trim();
            if inner.is_empty() || is_marker(inner) {
                c[0].to_owned()
            } else {
                format!("{}{REDACTED}{}", &c[1], &c[3])
            }
        })
    }

    /// Phase 5, last so earlier labels survive: secret-named keys, then weakly named keys whose
    /// value looks random.
    fn key_values<'a>(&self, s: Cow<'a, str>, rare: bool) -> Cow<'a, str> {
        let s = self.outside_arns(s, rare, &self.kv, Self::kv_replace);
        if !self.weak_hint.is_match(&s) {
            return s;
        }
        self.outside_arns(s, rare, &self.weak, |c: &Captures| {
            if key_excluded(&c[1]) || is_marker(&c[4]) || !tokens::looks_random(&c[4]) {
                c[0].to_owned()
            } else {
                format!("{}{}{}{REDACTED}", &c[1], &c[2], &c[3])
            }
        })
    }

    /// `Authorization:`/`Cookie:` values; the auth scheme (`Bearer`, `Basic`, `AWS4-HMAC-SHA256`)
    /// is kept because it is useful and public.
    fn header_replace(c: &Captures) -> String {
        let (value, ws) = split_trailing_ws(&c[3]);
        let head = format!("{}{}", &c[1], &c[2]);
        if is_marker(value) {
            return c[0].to_owned();
        }
        if !c[1].to_ascii_lowercase().ends_with("cookie")
            && let Some((scheme, rest)) = value.split_once([' ', '\t'])
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            let rest = rest.trim_start();
            let rest = if is_marker(rest) { rest } else { REDACTED };
            return format!("{head}{scheme} {rest}{ws}");
        }
        format!("{head}{REDACTED}{ws}")
    }

    /// Applies a key-based rule everywhere but inside AWS ARNs, whose segments
    /// (`arn:aws:secretsmanager:…:secret:name`) would otherwise read as `key: value`.
    fn outside_arns<'a>(
        &self,
        s: Cow<'a, str>,
        rare: bool,
        rule: &Regex,
        rep: impl Fn(&Captures) -> String,
    ) -> Cow<'a, str> {
        if !rare || !s.contains("arn:") {
            return step(s, rule, |c: &Captures| rep(c));
        }
        let mut out = String::with_capacity(s.len());
        let mut last = 0;
        for m in self.arn.find_iter(&s) {
            out.push_str(&rule.replace_all(&s[last..m.start()], |c: &Captures| rep(c)));
            out.push_str(m.as_str());
            last = m.end();
        }
        out.push_str(&rule.replace_all(&s[last..], |c: &Captures| rep(c)));
        if out == *s { s } else { Cow::Owned(out) }
    }

    fn kv_replace(c: &Captures) -> String {
        let (sep, value) = match (c.get(3), c.get(4), c.get(5), c.get(6)) {
            (Some(sep), Some(v), _, _) | (_, _, Some(sep), Some(v)) => (sep.as_str(), v.as_str()),
            _ => return c[0].to_owned(),
        };
        let (value, ws) = split_trailing_ws(value);
        if key_excluded(&c[1]) || harmless_value(unquote(value)) || shell_pwd(&c[1], value) {
            return c[0].to_owned();
        }
        format!("{}{}{sep}{}{ws}", &c[1], &c[2], redact_value(value))
    }

    /// Whether `frag` (a cut partial line) holds an AWS access key id.
    pub(super) fn has_key_id(&self, frag: &str) -> bool {
        self.aws_key_id.is_match(frag)
    }

    /// The key-id line rule for the rest of a cut line: long base64 runs are its secrets.
    pub(super) fn key_id_line_rest<'a>(&self, rest: &'a str) -> Cow<'a, str> {
        self.long_b64.replace_all(rest, REDACTED)
    }

    /// Whether `frag` (a cut partial line) ends inside a value that runs to the end of the line
    /// (`key: value with spaces`, an `Authorization:` header), so the rest of the line is secret.
    pub(super) fn value_runs_to_end(&self, frag: &str) -> bool {
        let end = frag.len();
        self.kv.captures_iter(frag).any(|c| {
            c.get(6)
                .is_some_and(|v| v.end() == end && !v.as_str().starts_with(['"', '\'']))
                && !key_excluded(&c[1])
        }) || self
            .header
            .captures_iter(frag)
            .any(|c| c.get(3).is_some_and(|v| v.end() == end))
    }

    /// Redacts every string value in a fragment of a JSON object (`"k": "v"` → `"k": "[REDACTED]"`).
    pub(super) fn json_values<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.json_pair.replace_all(text, JSON_VALUE_REP)
    }
}
