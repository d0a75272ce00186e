//! The redaction corpus: credentials of every kind the widely used open-source secret scanners'
//! default rule sets cover, and benign lines that must come out byte-identical.
//!
//! Built from the vendors' documented token formats, never from a scanner's code. Every value is
//! generated from a seed, so a run is reproducible and the corpus is never a list of real keys.
//! Each case puts a value in one of several contexts (a log line, an env file, YAML, JSON, a
//! CLI flag, a URL), so a rule that only works in one shape shows up as missed recall.
//!
//! Shared by `benches/redact.rs` (which reports the figures) and the redactor's unit tests
//! (which require 100% recall and no benign change).

/// One credential in context. `secrets` are the parts that must not survive.
#[derive(Debug)]
pub struct Case {
    pub category: &'static str,
    pub kind: &'static str,
    pub text: String,
    pub secrets: Vec<String>,
}

/// Text that holds no secret and must come out unchanged.
#[derive(Debug)]
pub struct Benign {
    pub kind: &'static str,
    pub text: String,
}

/// splitmix64: tiny, deterministic, no dependency.
#[derive(Debug)]
pub struct Rng(u64);

const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const DIGITS: &str = "0123456789";
const HEX: &str = "0123456789abcdef";
const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
const BECH32: &str = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L";

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap_or(1)).unwrap_or(0)
    }

    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    pub fn chars(&mut self, alphabet: &str, n: usize) -> String {
        let a = alphabet.as_bytes();
        (0..n).map(|_| char::from(a[self.below(a.len())])).collect()
    }

    fn uuid(&mut self) -> String {
        format!(
            "{}-{}-{}-{}-{}",
            self.chars(HEX, 8),
            self.chars(HEX, 4),
            self.chars(HEX, 4),
            self.chars(HEX, 4),
            self.chars(HEX, 12)
        )
    }

    /// A password: mixed classes, URL-safe so it can sit in a URL unencoded.
    fn password(&mut self) -> String {
        let n = self.range(12, 24);
        let mut p = self.chars(ALNUM, n);
        let at = self.below(p.len());
        p.insert(at, *self.pick(&['!', '*', '_', '~', '-']));
        p
    }
}

fn b64(data: &[u8]) -> String {
    let a = B64.as_bytes();
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(a[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// A token where a key-based rule can't help: the names around it say nothing.
fn neutral(r: &mut Rng, tok: &str) -> String {
    match r.below(6) {
        0 => format!(
            "2026-03-01T10:{:02}:07Z INFO client configured with {tok} for upload\n",
            r.below(60)
        ),
        1 => format!(
            "{{\"id\": {}, \"value\": \"{tok}\", \"ok\": true}}\n",
            r.below(1000)
        ),
        2 => format!("  config_value: {tok}\n"),
        3 => format!("curl -sS -d '{tok}' https://api.example.com/v1/ping\n"),
        4 => format!("EXPORTED_VALUE={tok}\n"),
        _ => format!("| {} | {tok} | active |\n", r.below(100)),
    }
}

/// A value under a named key, in one of the usual syntaxes.
fn named(r: &mut Rng, name: &str, value: &str) -> String {
    match r.below(5) {
        0 => format!("{name}={value}\n"),
        1 => format!("  {name}: {value}\n"),
        2 => format!("    \"{name}\": \"{value}\",\n"),
        3 => format!("{name} = \"{value}\"\n"),
        _ => format!("export {name}='{value}'\n"),
    }
}

type Gen = fn(&mut Rng) -> (String, Vec<String>);

fn tok(r: &mut Rng, t: String) -> (String, Vec<String>) {
    (neutral(r, &t), vec![t])
}

/// `(category, kind, generator)` for every credential kind in the corpus.
pub const KINDS: &[(&str, &str, Gen)] = &[
    ("cloud", "aws-access-key-id", |r| {
        let p = *r.pick(&["AKIA", "ASIA"]);
        let t = format!("{p}{}", r.chars("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16));
        tok(r, t)
    }),
    ("cloud", "aws-secret-access-key", |r| {
        let v = r.chars(B64, 40);
        let n = *r.pick(&[
            "aws_secret_access_key",
            "AWS_SECRET_ACCESS_KEY",
            "SecretAccessKey",
            "secret_key",
        ]);
        (named(r, n, &v), vec![v])
    }),
    ("cloud", "aws-session-token", |r| {
        let v = format!("IQoJb3JpZ2luX2Vj{}", r.chars(B64, 300));
        let n = *r.pick(&["aws_session_token", "AWS_SESSION_TOKEN", "SessionToken"]);
        (named(r, n, &v), vec![v])
    }),
    ("cloud", "aws-bedrock-api-key", |r| {
        let t = if r.below(2) == 0 {
            format!("ABSK{}", r.chars(B64, 120))
        } else {
            format!("bedrock-api-key-{}", r.chars(B64, 160))
        };
        tok(r, t)
    }),
    ("cloud", "gcp-api-key", |r| {
        let t = format!("AIza{}", r.chars(B64URL, 35));
        tok(r, t)
    }),
    ("cloud", "gcp-service-account-key", |r| {
        let body = r.chars(B64, 64);
        let text = format!(
            "{{\"type\": \"service_account\", \"project_id\": \"prod-{}\", \"private_key\": \"-----BEGIN PRIVATE KEY-----\\n{body}\\n-----END PRIVATE KEY-----\\n\", \"client_email\": \"ci@prod.iam.gserviceaccount.com\"}}\n",
            r.below(999)
        );
        (text, vec![body])
    }),
    ("cloud", "gcp-oauth-client-secret", |r| {
        let t = format!("GOCSPX-{}", r.chars(B64URL, 28));
        tok(r, t)
    }),
    ("cloud", "gcp-access-token", |r| {
        let t = format!("ya29.{}", r.chars(B64URL, 150));
        tok(r, t)
    }),
    ("cloud", "azure-storage-account-key", |r| {
        let key = format!("{}==", r.chars(B64, 86));
        let text = match r.below(4) {
            0 => format!(
                "AZURE_STORAGE_CONNECTION_STRING=\"DefaultEndpointsProtocol=https;AccountName=acct{};AccountKey={key};EndpointSuffix=core.windows.net\"\n",
                r.below(99)
            ),
            1 => format!(
                "az storage blob list --account-name acct{} --account-key {key} -c logs\n",
                r.below(99)
            ),
            2 => format!("    \"storageAccountKey\": \"{key}\",\n"),
            _ => format!("AZURE_STORAGE_KEY={key}\n"),
        };
        (text, vec![key])
    }),
    ("cloud", "azure-sas-token", |r| {
        let sig = format!(
            "{}%2B{}%2F{}%3D",
            r.chars(ALNUM, 14),
            r.chars(ALNUM, 12),
            r.chars(ALNUM, 10)
        );
        let text = format!(
            "https://acct{}.blob.core.windows.net/backups/db.tar?sv=2022-11-02&ss=b&srt=o&sp=r&se=2026-04-01T00:00:00Z&spr=https&sig={sig}\n",
            r.below(99)
        );
        (text, vec![sig])
    }),
    ("cloud", "azure-client-secret", |r| {
        let t = format!(
            "{}{}Q~{}",
            r.chars(ALNUM, 3),
            r.chars(DIGITS, 1),
            r.chars(
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_~.-",
                34
            )
        );
        tok(r, t)
    }),
    ("cloud", "alibaba-access-key-id", |r| {
        let t = format!("LTAI{}", r.chars(ALNUM, 20));
        tok(r, t)
    }),
    ("cloud", "digitalocean-token", |r| {
        let p = *r.pick(&["dop_v1_", "doo_v1_", "dor_v1_"]);
        let t = format!("{p}{}", r.chars(HEX, 64));
        tok(r, t)
    }),
    ("cloud", "heroku-api-key", |r| {
        let t = format!("HRKU-AA{}", r.chars(B64URL, 58));
        tok(r, t)
    }),
    ("cloud", "cloudflare-origin-ca-key", |r| {
        let t = format!("v1.0-{}-{}", r.chars(HEX, 24), r.chars(HEX, 146));
        tok(r, t)
    }),
    ("cloud", "vault-token", |r| {
        let t = format!("hvs.{}", r.chars(B64URL, 95));
        tok(r, t)
    }),
    ("cloud", "terraform-cloud-token", |r| {
        let t = format!(
            "{}.atlasv1.{}",
            r.chars("abcdefghijklmnopqrstuvwxyz0123456789", 14),
            r.chars("abcdefghijklmnopqrstuvwxyz0123456789", 67)
        );
        tok(r, t)
    }),
    ("cloud", "yandex-credential", |r| {
        let t = if r.below(2) == 0 {
            format!("AQVN{}", r.chars(B64URL, 36))
        } else {
            format!("YC{}", r.chars(B64URL, 38))
        };
        tok(r, t)
    }),
    ("cloud", "databricks-token", |r| {
        let t = format!("dapi{}", r.chars(HEX, 32));
        tok(r, t)
    }),
    ("payment", "stripe-secret-key", |r| {
        let p = *r.pick(&["sk_live_", "sk_test_", "rk_live_"]);
        let t = format!("{p}{}", r.chars(ALNUM, 99));
        tok(r, t)
    }),
    ("payment", "square-token", |r| {
        let t = if r.below(2) == 0 {
            format!("EAAA{}", r.chars(B64URL, 60))
        } else {
            format!("sq0csp-{}", r.chars(B64URL, 43))
        };
        tok(r, t)
    }),
    ("payment", "braintree-token", |r| {
        let t = format!(
            "access_token$production${}${}",
            r.chars("abcdefghijklmnopqrstuvwxyz0123456789", 16),
            r.chars(HEX, 32)
        );
        tok(r, t)
    }),
    ("payment", "shopify-token", |r| {
        let p = *r.pick(&["shpat_", "shpca_", "shppa_", "shpss_"]);
        let t = format!("{p}{}", r.chars(HEX, 32));
        tok(r, t)
    }),
    ("payment", "plaid-access-token", |r| {
        let t = format!("access-production-{}", r.uuid());
        tok(r, t)
    }),
    ("payment", "flutterwave-secret-key", |r| {
        let t = format!("FLWSECK_TEST-{}-X", r.chars("abcdefgh0123456789", 32));
        tok(r, t)
    }),
    ("payment", "razorpay-key", |r| {
        let t = format!("rzp_live_{}", r.chars(ALNUM, 14));
        tok(r, t)
    }),
    ("payment", "easypost-key", |r| {
        let t = format!("EZAK{}", r.chars(ALNUM, 54));
        tok(r, t)
    }),
    ("payment", "payment-secret-by-name", |r| {
        let v = r.chars(ALNUM, 32);
        let n = *r.pick(&[
            "BRAINTREE_PRIVATE_KEY",
            "ADYEN_API_KEY",
            "GOCARDLESS_ACCESS_TOKEN",
            "PAYPAL_CLIENT_SECRET",
            "MOLLIE_API_KEY",
        ]);
        (named(r, n, &v), vec![v])
    }),
    ("registry", "docker-config-auth", |r| {
        let user = r.chars(LOWER, 6);
        let pass = r.password();
        let auth = b64(format!("{user}:{pass}").as_bytes());
        let host = *r.pick(&[
            "https://index.docker.io/v1/",
            "ghcr.io",
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "registry.gitlab.com",
        ]);
        let text = if r.below(2) == 0 {
            format!("{{\"auths\":{{\"{host}\":{{\"auth\":\"{auth}\"}}}}}}\n")
        } else {
            format!(
                "{{\n  \"auths\": {{\n    \"{host}\": {{\n      \"auth\": \"{auth}\"\n    }}\n  }}\n}}\n"
            )
        };
        (text, vec![auth])
    }),
    ("registry", "dockerhub-token", |r| {
        let t = format!("dckr_pat_{}", r.chars(B64URL, 27));
        tok(r, t)
    }),
    ("registry", "registry-login-password", |r| {
        let pw = r.password();
        let text = match r.below(3) {
            0 => format!("docker login -u ci -p {pw} registry.example.com\n"),
            1 => {
                format!("helm registry login registry.example.com --username ci --password {pw}\n")
            }
            _ => format!("podman login -u ci -p={pw} quay.io\n"),
        };
        (text, vec![pw])
    }),
    ("registry", "gitlab-token", |r| {
        let p = *r.pick(&["glpat-", "gldt-", "glrt-", "glcbt-"]);
        let t = format!("{p}{}", r.chars(B64URL, 20));
        tok(r, t)
    }),
    ("registry", "jfrog-token", |r| {
        let t = if r.below(2) == 0 {
            format!("AKCp{}", r.chars(ALNUM, 69))
        } else {
            format!("cmVmdGtu{}", r.chars(ALNUM, 56))
        };
        tok(r, t)
    }),
    ("registry", "npm-token", |r| {
        let t = format!("npm_{}", r.chars(ALNUM, 36));
        if r.below(2) == 0 {
            (format!("//registry.npmjs.org/:_authToken={t}\n"), vec![t])
        } else {
            tok(r, t)
        }
    }),
    ("registry", "pypi-token", |r| {
        let t = format!("pypi-AgEIcHlwaS5vcmc{}", r.chars(B64URL, 120));
        tok(r, t)
    }),
    ("registry", "ecr-login-token", |r| {
        let t = format!("eyJwYXlsb2FkIjoi{}==", r.chars(B64, 600));
        tok(r, t)
    }),
    ("registry", "github-token", |r| {
        let t = if r.below(2) == 0 {
            format!(
                "{}{}",
                r.pick(&["ghp_", "gho_", "ghs_", "ghu_", "ghr_"]),
                r.chars(ALNUM, 36)
            )
        } else {
            format!("github_pat_{}_{}", r.chars(ALNUM, 22), r.chars(ALNUM, 59))
        };
        tok(r, t)
    }),
    ("chat", "slack-token", |r| {
        let t = match r.below(3) {
            0 => format!(
                "xoxb-{}-{}-{}",
                r.chars(DIGITS, 12),
                r.chars(DIGITS, 13),
                r.chars(ALNUM, 24)
            ),
            1 => format!(
                "xapp-1-A{}-{}-{}",
                r.chars(ALNUM, 10),
                r.chars(DIGITS, 13),
                r.chars(HEX, 64)
            ),
            _ => format!("xoxe.xoxp-1-{}", r.chars(ALNUM, 140)),
        };
        tok(r, t)
    }),
    ("chat", "slack-webhook", |r| {
        let path = format!(
            "T{}/B{}/{}",
            r.chars(ALNUM, 10),
            r.chars(ALNUM, 10),
            r.chars(ALNUM, 24)
        );
        (
            format!("SLACK_URL=https://hooks.slack.com/services/{path}\n"),
            vec![path],
        )
    }),
    ("chat", "discord-webhook", |r| {
        let path = format!("{}/{}", r.chars(DIGITS, 19), r.chars(B64URL, 68));
        (
            format!("notify: https://discord.com/api/webhooks/{path}\n"),
            vec![path],
        )
    }),
    ("chat", "discord-bot-token", |r| {
        // The first part is the base64 of the bot's numeric user id.
        let id = format!("{}{}", r.range(1, 9), r.chars(DIGITS, 17));
        let t = format!(
            "{}.{}.{}",
            b64(id.as_bytes()),
            r.chars(B64URL, 6),
            r.chars(B64URL, 38)
        );
        tok(r, t)
    }),
    ("chat", "teams-webhook", |r| {
        let hex = r.chars(HEX, 32);
        let text = format!(
            "webhook_url: https://acme.webhook.office.com/webhookb2/{}@{}/IncomingWebhook/{hex}/{}/V2{}\n",
            r.uuid(),
            r.uuid(),
            r.uuid(),
            r.chars(B64URL, 40)
        );
        (text, vec![hex])
    }),
    ("chat", "google-chat-webhook", |r| {
        let key = format!("AIza{}", r.chars(B64URL, 35));
        let token = r.chars(B64URL, 43);
        let text = format!(
            "https://chat.googleapis.com/v1/spaces/AAAA{}/messages?key={key}&token={token}\n",
            r.chars(ALNUM, 7)
        );
        (text, vec![key, token])
    }),
    ("chat", "telegram-bot-token", |r| {
        let t = format!("{}:AA{}", r.chars(DIGITS, 10), r.chars(B64URL, 33));
        tok(r, t)
    }),
    ("chat", "twilio-api-key", |r| {
        let t = format!("SK{}", r.chars(HEX, 32));
        tok(r, t)
    }),
    ("chat", "sendgrid-api-key", |r| {
        let t = format!("SG.{}.{}", r.chars(B64URL, 22), r.chars(B64URL, 43));
        tok(r, t)
    }),
    ("chat", "mailchimp-api-key", |r| {
        let t = format!("{}-us{}", r.chars(HEX, 32), r.range(1, 21));
        tok(r, t)
    }),
    ("chat", "zapier-webhook", |r| {
        let path = format!("{}/{}", r.chars(DIGITS, 8), r.chars(LOWER, 6));
        (
            format!("POST https://hooks.zapier.com/hooks/catch/{path}/\n"),
            vec![path],
        )
    }),
    ("keys", "pem-private-key", |r| {
        let kind = *r.pick(&["RSA ", "EC ", "OPENSSH ", "ENCRYPTED ", ""]);
        let lines: Vec<String> = (0..r.range(2, 6)).map(|_| r.chars(B64, 64)).collect();
        let text = format!(
            "-----BEGIN {kind}PRIVATE KEY-----\n{}\n-----END {kind}PRIVATE KEY-----\n",
            lines.join("\n")
        );
        (text, lines)
    }),
    ("keys", "pgp-private-key", |r| {
        let lines: Vec<String> = (0..3).map(|_| r.chars(B64, 64)).collect();
        let text = format!(
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n{}\n=AbCd\n-----END PGP PRIVATE KEY BLOCK-----\n",
            lines.join("\n")
        );
        (text, lines)
    }),
    ("keys", "age-secret-key", |r| {
        let t = format!("AGE-SECRET-KEY-1{}", r.chars(BECH32, 58));
        tok(r, t)
    }),
    ("keys", "jwt", |r| {
        let t = format!(
            "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJ{}.{}",
            r.chars(B64URL, 80),
            r.chars(B64URL, 86)
        );
        tok(r, t)
    }),
    ("keys", "jwt-base64", |r| {
        let jwt = format!(
            "eyJhbGciOiJIUzI1NiJ9.eyJ{}.{}",
            r.chars(B64URL, 40),
            r.chars(B64URL, 43)
        );
        let t = b64(jwt.as_bytes());
        tok(r, t)
    }),
    ("keys", "kubeconfig-client-key", |r| {
        let v = format!(
            "LS0tLS1CRUdJTiBSU0EgUFJJVkFURSBLRVktLS0tLQo{}",
            r.chars(B64, 200)
        );
        (format!("    client-key-data: {v}\n"), vec![v])
    }),
    ("database", "database-url", |r| {
        let pw = r.password();
        let scheme = *r.pick(&[
            "postgres",
            "postgresql",
            "mysql",
            "mongodb+srv",
            "redis",
            "amqps",
            "mssql",
            "clickhouse",
        ]);
        let url = format!(
            "{scheme}://app_{}:{pw}@db-{}.internal:5432/app?sslmode=require",
            r.chars(LOWER, 4),
            r.below(9)
        );
        let text = match r.below(4) {
            0 => format!("DATABASE_URL={url}\n"),
            1 => format!("  url: \"{url}\"\n"),
            2 => format!("psql \"{url}\" -c 'select 1'\n"),
            _ => format!("level=info msg=\"connecting\" dsn={url}\n"),
        };
        (text, vec![pw])
    }),
    ("database", "jdbc-password", |r| {
        let pw = r.password();
        let text = match r.below(3) {
            0 => format!("jdbc:postgresql://db:5432/app?user=app&password={pw}&ssl=true\n"),
            1 => format!(
                "jdbc:sqlserver://db:1433;databaseName=app;user=sa;password={pw};encrypt=true\n"
            ),
            _ => format!("spring.datasource.url=jdbc:oracle:thin:scott/{pw}@//db:1521/ORCL\n"),
        };
        (text, vec![pw])
    }),
    ("database", "ado-odbc-connection-string", |r| {
        let pw = r.password();
        let text = if r.below(2) == 0 {
            format!(
                "Server=tcp:db.database.windows.net,1433;Database=app;User ID=app;Password={pw};Encrypt=True;\n"
            )
        } else {
            format!("Driver={{ODBC Driver 18 for SQL Server}};Server=db;Uid=sa;Pwd={pw};\n")
        };
        (text, vec![pw])
    }),
    ("generic", "secret-named-value", |r| {
        let v = r.password();
        let n = *r.pick(&[
            "password",
            "db_password",
            "client_secret",
            "api_key",
            "apiKey",
            "auth_token",
            "access_token",
            "refresh_token",
            "SECRET_KEY_BASE",
            "private_key",
            "passphrase",
            "x-api-key",
        ]);
        (named(r, n, &v), vec![v])
    }),
    ("generic", "high-entropy-generic-name", |r| {
        let v = match r.below(3) {
            0 => r.chars(B64, 44),
            1 => r.chars(HEX, 64),
            _ => r.chars(ALNUM, 32),
        };
        let n = *r.pick(&[
            "ENCRYPTION_KEY",
            "signing_key",
            "master_key",
            "hmacKey",
            "LICENSE_KEY",
            "credentials",
            "creds",
            "auth",
            "session",
            "Ocp-Apim-Subscription-Key",
            "webhook_signature",
        ]);
        (named(r, n, &v), vec![v])
    }),
];

/// Makes one benign text.
type BenignGen = fn(&mut Rng) -> String;

/// `(kind, generator)` for benign text that must stay byte-identical.
pub const BENIGN: &[(&str, BenignGen)] = &[
    ("kubectl-table", |r| {
        format!(
            "NAME                     READY   STATUS    RESTARTS   AGE   IP            NODE\napi-{}-{}   1/1     Running   0          {}h   10.0.{}.{}   ip-10-0-3-4.ec2.internal\nNAME       TYPE     DATA   AGE\ndb-creds   Opaque   2      {}d\n",
            r.chars(HEX, 9),
            r.chars(LOWER, 5),
            r.below(99),
            r.below(255),
            r.below(255),
            r.below(30)
        )
    }),
    ("yaml-manifest", |r| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n  annotations:\n    checksum/config: {}\nspec:\n  template:\n    spec:\n      serviceAccountName: api\n      tolerations:\n      - key: node-role.kubernetes.io/control-plane\n        operator: Exists\n      - key: k8s.amazonaws.com/accelerator\n        operator: Exists\n      containers:\n      - name: api\n        image: registry.example.com/api:v{}.{}.{}\n        env:\n        - name: DB_PASSWORD\n          valueFrom:\n            secretKeyRef:\n              name: db-creds\n              key: password\n        - name: TOKEN_TTL_SECONDS\n          value: \"3600\"\n      volumes:\n      - name: tls\n        secret:\n          secretName: api-tls\n",
            r.chars(HEX, 64),
            r.below(9),
            r.below(20),
            r.below(99)
        )
    }),
    ("aws-arn", |r| {
        let acct = r.chars(DIGITS, 12);
        format!(
            "arn:aws:iam::{acct}:role/deploy\n\"SecretArn\": \"arn:aws:secretsmanager:eu-west-1:{acct}:secret:prod/db-{}\"\narn:aws:secretsmanager:us-east-1:{acct}:secret:app/api-key-{}\naws secretsmanager describe-secret --secret-id arn:aws:secretsmanager:us-east-1:{acct}:secret:prod/db\narn:aws:kms:us-east-1:{acct}:key/{}\n",
            r.chars(ALNUM, 6),
            r.chars(ALNUM, 6),
            r.uuid()
        )
    }),
    ("git-sha", |r| {
        format!(
            "commit {}\nAuthor: Ada <ada@example.com>\n  \"sha\": \"{}\",\n  revision: {}\n",
            r.chars(HEX, 40),
            r.chars(HEX, 40),
            r.chars(HEX, 40)
        )
    }),
    ("image-digest", |r| {
        format!(
            "    image: registry.example.com/api@sha256:{}\n    imageID: docker-pullable://registry.example.com/api@sha256:{}\n",
            r.chars(HEX, 64),
            r.chars(HEX, 64)
        )
    }),
    ("uuid", |r| {
        format!(
            "  uid: {}\n  \"requestId\": \"{}\"\nx-request-id: {}\n",
            r.uuid(),
            r.uuid(),
            r.uuid()
        )
    }),
    ("base64-config", |r| {
        format!(
            "    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t{}\n  caBundle: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0t{}\n  config.json: eyJsb2dMZXZlbCI6ImluZm8iLCJwb3J0Ijo{}\n",
            r.chars(B64, 120),
            r.chars(B64, 120),
            r.chars(B64, 40)
        )
    }),
    ("public-keys", |r| {
        format!(
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{} ada@laptop\n    \"PublicKey\": \"{}=\",\n  public_key: {}\n",
            r.chars(B64, 43),
            r.chars(B64, 43),
            r.chars(B64, 43)
        )
    }),
    ("cli-and-config", |r| {
        format!(
            "echo \"$REGISTRY_TOKEN\" | docker login --username ci --password-stdin registry.example.com\nPWD=/home/app/{}\nKeyName: deploy-{}\nauth: oidc\ncredsStore: desktop\nkey: app.kubernetes.io/name\nsecretName: api-tls-{}\npassword_file: /run/secrets/db\nterraform:  + password = (sensitive value)\n",
            r.chars(LOWER, 6),
            r.below(9),
            r.below(9)
        )
    }),
    ("urls", |r| {
        format!(
            "https://github.com/acme/api/pull/{}\nhttps://api.example.com/v1/items?page={}&per_page=100\npostgres://db.internal:5432/app\n",
            r.below(9999),
            r.below(99)
        )
    }),
];

/// The corpus for `seed`: `per_kind` cases of each credential kind and benign kind.
pub fn generate(seed: u64, per_kind: usize) -> (Vec<Case>, Vec<Benign>) {
    let mut r = Rng::new(seed);
    let mut cases = Vec::new();
    for &(category, kind, g) in KINDS {
        for _ in 0..per_kind {
            let (text, secrets) = g(&mut r);
            cases.push(Case {
                category,
                kind,
                text,
                secrets,
            });
        }
    }
    let mut benign = Vec::new();
    for &(kind, g) in BENIGN {
        for _ in 0..per_kind {
            benign.push(Benign {
                kind,
                text: g(&mut r),
            });
        }
    }
    (cases, benign)
}

/// Whether no 8-character window of any secret survives in `out` (outside the `[REDACTED:…]`
/// markers, whose labels may repeat a token's public prefix).
pub fn gone(out: &str, secrets: &[String]) -> bool {
    gone_window(out, secrets, 8)
}

/// [`gone`] with another window; longer windows keep a token's public prefix (`bedrock-api-key-`)
/// from matching another case's text when many cases are redacted as one.
pub fn gone_window(out: &str, secrets: &[String], window: usize) -> bool {
    let out = strip_markers(out);
    secrets.iter().all(|s| {
        let chars: Vec<char> = s.chars().collect();
        chars
            .windows(window.min(chars.len()))
            .all(|w| !out.contains(&w.iter().collect::<String>()))
    })
}

/// `out` without its `[REDACTED…]` markers.
pub fn strip_markers(out: &str) -> String {
    let mut rest = out;
    let mut kept = String::new();
    while let Some(i) = rest.find("[REDACTED") {
        kept.push_str(&rest[..i]);
        rest = rest[i..].find(']').map_or("", |j| &rest[i + j + 1..]);
    }
    kept.push_str(rest);
    kept
}
