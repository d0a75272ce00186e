//! The single secret redactor, run on every output path (Slack, logs, audit records, PR bodies).
//!
//! One redactor everywhere means one place to get right and one place to test: a secret that is
//! redacted in Slack but not in the audit log is still leaked.
//!
//! # Replacement convention
//!
//! * Self-identifying token formats become `[REDACTED:<kind>]`, so a reader knows what was
//!   there: `aws-access-key-id`, `github-token`, `slack-token`, `slack-webhook`, `jwt`,
//!   `private-key`.
//! * Values recognised by their key or context (`password=…`, `"SecretAccessKey": "…"`, Secret
//!   `data`, `Authorization:` headers, URL passwords) become `[REDACTED]`; the key, auth scheme,
//!   URL user and host are kept because they are useful and not secret.
//!
//! Every replacement contains `REDACTED`, no part of a matched secret survives it, and redacting
//! already-redacted output changes nothing. When unsure it over-redacts: a YAML `data:` mapping is
//! redacted even in a ConfigMap, because `kubectl` prints `kind` *after* `data`.
//!
//! # Structure
//!
//! Text is handled line by line. Line-local patterns live in `rules.rs`; multi-line constructs
//! (PEM private-key bodies, YAML `data:`/`stringData:` and secret-keyed block scalars, multi-line
//! JSON Secret `data` objects) are tracked by a small state machine. So [`StreamRedactor`] holds
//! back only the current partial line, and any chunking of a text redacts to exactly what
//! [`Redactor::redact`] gives for the whole (except the JSON gate described there, and lines over
//! the 64 KiB hold-back cap, which are cut and redacted more conservatively).

#[cfg(test)]
mod recall;
mod rules;
mod stream;
#[cfg(test)]
mod tests;
mod tokens;

use std::sync::LazyLock;

use rules::{PEM_MARK, REDACTED, RULES, Rules, key_excluded};
pub use stream::StreamRedactor;

/// Longest partial line a stream holds back before it cuts the line and emits it.
const DEFAULT_HOLD_CAP: usize = 64 * 1024;

/// Compiled once; cheap to share (Send + Sync). `new` is cheap too: all instances share one set of
/// compiled patterns.
#[derive(Debug, Clone)]
pub struct Redactor {
    rules: &'static Rules,
    hold_cap: usize,
}

impl Default for Redactor {
    fn default() -> Self {
        Self::new()
    }
}

/// The process-wide shared redactor.
pub fn redactor() -> &'static Redactor {
    static SHARED: LazyLock<Redactor> = LazyLock::new(Redactor::new);
    &SHARED
}

impl Redactor {
    pub fn new() -> Self {
        Self {
            rules: &RULES,
            hold_cap: DEFAULT_HOLD_CAP,
        }
    }

    /// A redactor whose streams hold back at most `cap` bytes of a partial line (floored at 128)
    /// before cutting it. Smaller caps bound memory for callers that keep many streams; the
    /// fuzz targets use it to force cuts everywhere.
    pub fn with_hold_cap(cap: usize) -> Self {
        Self {
            hold_cap: cap,
            ..Self::new()
        }
    }

    /// Redacts a whole text.
    ///
    /// JSON `"data"`/`"stringData"` object values are redacted only when the text contains
    /// `"kind": "Secret"` (a generic JSON `"data"` envelope is too common to blank everywhere).
    /// A stream cannot see ahead to the `kind` (kubectl prints it after `data`), so streams always
    /// redact them.
    pub fn redact(&self, text: &str) -> String {
        self.redact_gated(text, self.rules.kind_secret.is_match(text))
    }

    fn redact_gated(&self, text: &str, json_gate: bool) -> String {
        let mut state = State::new(json_gate);
        let mut out = String::with_capacity(text.len());
        self.process(&mut state, text, &mut out);
        out
    }

    /// A redactor for text that arrives in chunks (process output).
    pub fn stream(&self) -> StreamRedactor<'_> {
        StreamRedactor::new(self)
    }

    /// Runs the state machine over `text`, appending the redacted result to `out`. Runs of
    /// ordinary lines are passed to the rule chain in one call (it is line-local, so this is only
    /// a speed-up).
    fn process(&self, st: &mut State, text: &str, out: &mut String) {
        let mut batch: Option<usize> = None;
        let mut pos = 0;
        for line in text.split_inclusive('\n') {
            let start = pos;
            pos += line.len();
            let cont = std::mem::take(&mut st.mid_line);
            let (content, term) = split_terminator(line);
            let opener = if st.in_block() {
                None
            } else {
                self.classify(st, content, cont)
            };
            if !st.in_block() && opener.is_none() {
                batch.get_or_insert(start);
                continue;
            }
            if let Some(b) = batch.take() {
                out.push_str(&self.rules.chain(&text[b..start], st.json_gate));
            }
            match opener {
                Some(o) => self.open(st, o, content, term, out),
                None => self.block_line(st, content, term, cont, out),
            }
        }
        if let Some(b) = batch {
            out.push_str(&self.rules.chain(&text[b..], st.json_gate));
        }
    }

    /// Whether an ordinary line opens a multi-line construct.
    fn classify(&self, st: &State, content: &str, cont: bool) -> Option<Opener> {
        if content.contains("-----BEGIN ")
            && let Some(after) = self.unterminated_pem(content)
        {
            return Some(Opener::Pem(after));
        }
        if st.json_gate
            && content.contains("data\"")
            && let Some(m) = self.rules.json_data_open.find_iter(content).last()
            && find_brace(&content[m.end()..]).is_none()
        {
            return Some(Opener::Json(m.end()));
        }
        if cont {
            return None; // indentation means nothing in the middle of a cut line
        }
        let ind = indent_len(content);
        let mut col = ind;
        let mut rest = &content[ind..];
        if let Some(r) = rest.strip_prefix("- ") {
            let r = r.trim_start_matches(' ');
            col += rest.len() - r.len();
            rest = r;
        }
        let rest = rest.trim_end();
        if rest == "data:" || rest == "stringData:" {
            return Some(Opener::Yaml { col, scalar: false });
        }
        if rest.contains(':')
            && rest.contains(['|', '>'])
            && let Some(c) = self.rules.yaml_scalar_open.captures(rest)
            && !key_excluded(&c[1])
        {
            return Some(Opener::Yaml { col, scalar: true });
        }
        None
    }

    /// End of a `BEGIN … PRIVATE KEY` marker on this line that no `END` marker closes. Mirrors the
    /// lazy `BEGIN…END` pattern in the chain, so a line is either fully handled there or here.
    fn unterminated_pem(&self, content: &str) -> Option<usize> {
        let mut pos = 0;
        loop {
            let begin = self.rules.pem_begin.find_at(content, pos)?;
            match self.rules.pem_end.find_at(content, begin.end()) {
                Some(end) => pos = end.end(),
                None => return Some(begin.end()),
            }
        }
    }

    fn open(&self, st: &mut State, opener: Opener, content: &str, term: &str, out: &mut String) {
        match opener {
            Opener::Pem(after) => {
                out.push_str(&self.rules.chain(&content[..after], st.json_gate));
                let body_here = !content[after..].trim().is_empty();
                if body_here {
                    out.push_str(PEM_MARK);
                }
                st.pem = Some(body_here);
            }
            Opener::Json(after) => {
                out.push_str(&self.rules.chain(&content[..after], st.json_gate));
                out.push_str(
                    &self
                        .rules
                        .chain(&self.rules.json_values(&content[after..]), st.json_gate),
                );
                st.json = true;
            }
            Opener::Yaml { col, scalar } => {
                out.push_str(content);
                st.yaml = Some(YamlBlock {
                    col,
                    scalar,
                    child: None,
                    marked: false,
                });
            }
        }
        out.push_str(term);
    }

    /// A line while inside a multi-line construct: dispatched to the construct that is open, so
    /// each kind's body rules stay separate.
    fn block_line(&self, st: &mut State, content: &str, term: &str, cont: bool, out: &mut String) {
        if let Some(marked) = st.pem {
            self.pem_body_line(st, marked, content, term, out);
        } else if st.json {
            self.json_body_line(st, content, term, out);
        } else if let Some(b) = st.yaml {
            self.yaml_body_line(st, b, content, term, cont, out);
        } else {
            self.plain_line(st, content, term, cont, out);
        }
    }

    /// A line inside a PEM private key (`marked`: the placeholder is already out). The body is
    /// never echoed; the `END` marker closes the block and the rest of its line is ordinary text.
    fn pem_body_line(
        &self,
        st: &mut State,
        marked: bool,
        content: &str,
        term: &str,
        out: &mut String,
    ) {
        if let Some(end) = self.rules.pem_end.find(content) {
            let (head, tail) = content.split_at(end.start());
            if head.trim().is_empty() {
                out.push_str(head);
            } else if !marked {
                out.push_str(&head[..indent_len(head)]);
                out.push_str(PEM_MARK);
            }
            st.pem = None;
            self.plain_line(st, tail, term, true, out);
        } else if !marked {
            // One placeholder line for the whole body; the other body lines are dropped.
            out.push_str(&content[..indent_len(content)]);
            out.push_str(PEM_MARK);
            out.push_str(term);
            st.pem = Some(true);
        }
    }

    /// A line inside a multi-line JSON Secret `data` object: values are blanked up to the closing
    /// brace, after which the line is ordinary text again.
    fn json_body_line(&self, st: &mut State, content: &str, term: &str, out: &mut String) {
        match find_brace(content) {
            None => {
                out.push_str(
                    &self
                        .rules
                        .chain(&self.rules.json_values(content), st.json_gate),
                );
                out.push_str(term);
            }
            Some(p) => {
                out.push_str(
                    &self
                        .rules
                        .chain(&self.rules.json_values(&content[..p]), st.json_gate),
                );
                st.json = false;
                self.plain_line(st, &content[p..], term, true, out);
            }
        }
    }

    /// A line inside a YAML `data:` mapping or secret-keyed block scalar. The block ends at the
    /// first non-blank line indented no deeper than its key.
    fn yaml_body_line(
        &self,
        st: &mut State,
        mut b: YamlBlock,
        content: &str,
        term: &str,
        cont: bool,
        out: &mut String,
    ) {
        if cont {
            // The rest of a cut line whose start was already redacted inside the block.
            out.push_str(term);
            return;
        }
        if content.trim().is_empty() {
            out.push_str(content);
            out.push_str(term);
            return;
        }
        let ind = indent_len(content);
        if ind <= b.col {
            st.yaml = None;
            self.plain_line(st, content, term, false, out);
            return;
        }
        let child = *b.child.get_or_insert(ind);
        if b.scalar || ind > child {
            // Block-scalar content: one placeholder, the rest dropped.
            if !b.marked {
                out.push_str(&content[..ind]);
                out.push_str(REDACTED);
                out.push_str(term);
                b.marked = true;
            }
        } else {
            b.marked = false;
            yaml_pair(content, ind, out);
            out.push_str(term);
        }
        st.yaml = Some(b);
    }

    fn plain_line(&self, st: &mut State, content: &str, term: &str, cont: bool, out: &mut String) {
        if let Some(o) = self.classify(st, content, cont) {
            self.open(st, o, content, term, out);
        } else {
            out.push_str(&self.rules.chain(content, st.json_gate));
            out.push_str(term);
        }
    }
}

/// Writes a Secret `data` entry with its value replaced: `  key: [REDACTED]`. Entries whose value
/// follows on deeper lines (`key: |`) are kept; those lines are redacted as block content.
fn yaml_pair(content: &str, ind: usize, out: &mut String) {
    let rest = &content[ind..];
    let colon = match rest.as_bytes().first() {
        Some(&q @ (b'"' | b'\'')) => rest[1..]
            .find(char::from(q))
            .map(|i| i + 2)
            .filter(|&i| rest[i..].starts_with(':')),
        _ => rest
            .find(": ")
            .or_else(|| rest.find(":\t"))
            .or_else(|| rest.trim_end().strip_suffix(':').map(str::len)),
    };
    let Some(colon) = colon else {
        out.push_str(&content[..ind]);
        out.push_str(REDACTED);
        return;
    };
    let value = rest[colon + 1..].trim();
    if value.is_empty() || rules::is_block_indicator(value) {
        out.push_str(content);
    } else {
        out.push_str(&content[..=ind + colon]);
        out.push(' ');
        out.push_str(REDACTED);
    }
}

#[derive(Debug, Clone, Copy)]
enum Opener {
    /// Unterminated private-key BEGIN marker ending at this offset.
    Pem(usize),
    /// Multi-line JSON `"data": {` whose `{` ends at this offset.
    Json(usize),
    /// YAML `data:`/`stringData:` mapping, or a secret-keyed block scalar, keyed at column `col`.
    Yaml { col: usize, scalar: bool },
}

#[derive(Debug, Clone, Copy)]
struct YamlBlock {
    col: usize,
    scalar: bool,
    /// Indentation of the block's entries, learned from its first line.
    child: Option<usize>,
    /// A placeholder has been written for the current run of block-scalar content.
    marked: bool,
}

#[derive(Debug, Clone, Default)]
struct State {
    /// Redact JSON `"data"` objects (see [`Redactor::redact`]).
    json_gate: bool,
    /// Inside a private-key body; `true` once its placeholder has been written.
    pem: Option<bool>,
    json: bool,
    yaml: Option<YamlBlock>,
    /// The next line is the rest of a line cut by the hold-back cap.
    mid_line: bool,
}

impl State {
    fn new(json_gate: bool) -> Self {
        Self {
            json_gate,
            ..Self::default()
        }
    }

    fn in_block(&self) -> bool {
        self.pem.is_some() || self.json || self.yaml.is_some()
    }
}

fn split_terminator(line: &str) -> (&str, &str) {
    let content = line
        .strip_suffix('\n')
        .map_or(line, |l| l.strip_suffix('\r').unwrap_or(l));
    (content, &line[content.len()..])
}

fn indent_len(s: &str) -> usize {
    s.len() - s.trim_start_matches([' ', '\t']).len()
}

/// First `{` or `}`. Deliberately ignores JSON string quoting: Secret `data` values are base64,
/// and a decision that does not depend on quotes is stable when redaction rewrites quoted text.
fn find_brace(s: &str) -> Option<usize> {
    s.find(['{', '}'])
}
