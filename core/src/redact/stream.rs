//! Chunked redaction: hold back the partial last line, cut over-long lines safely.

use super::rules::{REDACTED, Rules, is_marker};
use super::{Redactor, State, indent_len};

/// Floor for the cap: each forced cut must make progress even after a carried redaction has
/// inserted a marker at the front (a cap shorter than a marker could re-cut it forever).
pub(super) const MIN_HOLD_CAP: usize = 128;
/// How far past a forced cut the stream looks: longer than any PEM marker or `data` opener.
const LOOKAHEAD: usize = 48;

/// Redacts text that arrives in chunks (process output), safely across chunk boundaries.
///
/// Only complete lines are emitted; the partial last line is held back. Multi-line constructs are
/// carried as state, not buffered, so nothing else is held. A partial line longer than 64 KiB
/// (minified JSON, a blob) is cut and emitted; see [`StreamRedactor::push`].
#[derive(Debug)]
pub struct StreamRedactor<'r> {
    redactor: &'r Redactor,
    state: State,
    pub(super) pending: String,
    /// Redaction owed to the start of the next text because of an earlier forced cut.
    pub(super) carry: Carry,
    /// The line being cut carried an AWS access key id (its secret may follow the cut).
    key_id_line: bool,
}

impl<'r> StreamRedactor<'r> {
    pub(super) fn new(redactor: &'r Redactor) -> Self {
        Self {
            redactor,
            state: State::new(true),
            pending: String::new(),
            carry: Carry::None,
            key_id_line: false,
        }
    }

    /// Feed a chunk; returns the redacted text that is now safe to emit (may be empty).
    ///
    /// When the held partial line passes the cap it is cut after whitespace or a JSON `,"`
    /// element boundary, never inside a PEM marker, an inline Secret `data` object or between a
    /// `key:` and its value. What the cut may have separated is redacted on the far side: the
    /// value after a secret key, the rest of a line-long value or of an AWS key-id line. With no
    /// such boundary, the token (or `data` object) across the cut is redacted on both sides.
    pub fn push(&mut self, chunk: &str) -> String {
        let mut out = String::new();
        let held = self.pending.len();
        self.pending.push_str(chunk);
        if let Some(nl) = chunk.rfind('\n') {
            let seg = self.take_pending(held + nl + 1);
            self.redactor.process(&mut self.state, &seg, &mut out);
        }
        while self.pending.len() > self.redactor.hold_cap.max(MIN_HOLD_CAP) {
            self.force_cut(&mut out);
        }
        out
    }

    /// End of stream: returns the rest, redacted.
    pub fn finish(mut self) -> String {
        let mut out = String::new();
        let seg = self.take_pending(self.pending.len());
        self.redactor.process(&mut self.state, &seg, &mut out);
        out
    }

    /// Removes and returns `pending[..end]` with any carried redaction applied to its start.
    fn take_pending(&mut self, end: usize) -> String {
        let rest = self.pending.split_off(end);
        let seg = std::mem::replace(&mut self.pending, rest);
        self.settle_front(seg)
    }

    /// Applies what earlier forced cuts owe to the start of `seg`: the carried redaction, and,
    /// on the rest of a cut line that carried an AWS access key id, the key-id line rule.
    fn settle_front(&mut self, seg: String) -> String {
        let seg = self.apply_carry(seg);
        if !self.key_id_line {
            return seg;
        }
        let line_end = seg.find('\n').map_or(seg.len(), |i| i + 1);
        self.key_id_line = line_end == seg.len() && !seg.ends_with('\n');
        let head = self.redactor.rules.key_id_line_rest(&seg[..line_end]);
        format!("{head}{}", &seg[line_end..])
    }

    fn apply_carry(&mut self, seg: String) -> String {
        let skip = indent_len(&seg);
        let rest = &seg[skip..];
        let carry = std::mem::take(&mut self.carry);
        let (start, stop, owed) = match carry {
            Carry::None => return seg,
            Carry::Token if rest.starts_with(['"', '\'']) => {
                let q = rest.as_bytes()[0];
                let from = skip + 1;
                let stop = quote_end(&seg[from..], q).map(|i| from + i);
                (from, stop, Carry::Quoted(q))
            }
            Carry::Token | Carry::Rest => (
                skip,
                rest.find(char::is_whitespace).map(|i| skip + i),
                carry,
            ),
            Carry::Quoted(q) => (0, quote_end(&seg, q), carry),
            Carry::UntilBrace => (0, seg.find(['}', '\n']), carry),
            Carry::UntilNewline => (0, seg.find('\n'), carry),
        };
        // Never mask a Secret `data` opener or a PEM marker: the rules need them to see what
        // follows, and they are not secret themselves.
        let r = &seg[start..];
        let opener = self.redactor.rules.data_opener.find(r).map(|m| m.start());
        let guard = opener
            .into_iter()
            .chain(r.find("-----BEGIN"))
            .min()
            .map(|g| start + g);
        let (stop, owed) = match guard {
            Some(g) if stop.is_none_or(|s| g < s) => (Some(g), Carry::None),
            _ => (stop, owed),
        };
        let end = stop.unwrap_or_else(|| {
            // The owed span runs past this text: keep owing the rest of it.
            self.carry = owed;
            seg.len()
        });
        if end <= start || is_marker(&seg[start..end]) {
            return seg;
        }
        format!("{}{REDACTED}{}", &seg[..start], &seg[end..])
    }

    /// Emits part of an over-long partial line (see [`StreamRedactor::push`]).
    fn force_cut(&mut self, out: &mut String) {
        if self.carry != Carry::None || self.key_id_line {
            let pending = std::mem::take(&mut self.pending);
            self.pending = self.settle_front(pending);
            if self.pending.len() <= self.redactor.hold_cap.max(MIN_HOLD_CAP) {
                return;
            }
        }
        let (cut, kind) = self.choose_cut();
        let rest = self.pending.split_off(cut);
        let mut seg = std::mem::replace(&mut self.pending, rest);
        let rules = self.redactor.rules;
        self.key_id_line |= rules.has_key_id(&seg);
        let line_value_open = rules.value_runs_to_end(&seg);
        self.carry = match kind {
            _ if line_value_open => Carry::UntilNewline,
            Cut::Clean if rules.tail_key.is_match(seg.trim_end()) => Carry::Token,
            Cut::Clean => Carry::None,
            Cut::Token(_) => Carry::Rest,
            Cut::InsideData(_) => Carry::UntilBrace,
        };
        let redact_from = match kind {
            Cut::Clean => None,
            Cut::Token(keep) => Some(keep),
            Cut::InsideData(open_end) => Some(open_end),
        };
        if let Some(from) = redact_from.filter(|&f| f < seg.len()) {
            seg.truncate(from);
            seg.push_str(REDACTED);
        }
        self.redactor.process(&mut self.state, &seg, out);
        self.state.mid_line = true;
    }

    /// Where to cut the held partial line. Looks [`LOOKAHEAD`] bytes past the cut so that a
    /// `data` opener or PEM marker that straddles it is seen whole.
    fn choose_cut(&self) -> (usize, Cut) {
        let s = self.pending.as_str();
        let hi = cut_limit(s, self.redactor.hold_cap.max(MIN_HOLD_CAP));
        let guarded = Guarded::find(self.redactor.rules, s);
        let after_object = (guarded.objects.iter().map(|&(_, _, b)| b))
            .filter(|&b| b <= hi && !guarded.no_cut.covers(b))
            .max();
        if let Some(c) = clean_boundary(s.as_bytes(), hi, &guarded.no_cut).max(after_object) {
            return (c, Cut::Clean);
        }
        guarded.cut_through(s, hi)
    }
}

/// The furthest cut point: the cap, but leaving [`LOOKAHEAD`] bytes visible after it, on a char
/// boundary and always past at least one char so every cut makes progress.
fn cut_limit(s: &str, cap: usize) -> usize {
    let mut hi = cap
        .min(s.len().saturating_sub(LOOKAHEAD))
        .max(1)
        .min(s.len());
    while !s.is_char_boundary(hi) {
        hi -= 1;
    }
    if hi == 0 {
        hi = s.chars().next().map_or(s.len(), char::len_utf8);
    }
    hi
}

/// The last cut before `hi` that no secret crosses: in a whitespace run (unless it follows a
/// key's `:`), or after the `,` between JSON elements.
fn clean_boundary(bytes: &[u8], hi: usize, no_cut: &Spans) -> Option<usize> {
    let json_boundary = |p: usize| {
        // `","` between JSON elements (an escaped `\",\"` is inside a string).
        p >= 2
            && bytes.get(p + 1) == Some(&b'"')
            && matches!(bytes[p - 1], b'"' | b'}' | b']' | b'0'..=b'9' | b'e' | b'l')
            && bytes[p - 2] != b'\\'
    };
    let mut clean = None;
    let mut p = hi;
    while p > 0 && clean.is_none() {
        p -= 1;
        match bytes[p] {
            b' ' | b'\t' => {
                // A whitespace run: any cut in it, unless it follows a key's `:`.
                let prev = bytes[..p].iter().rposition(|b| !matches!(b, b' ' | b'\t'));
                let run_start = prev.map_or(0, |i| i + 1);
                if prev.is_none_or(|i| bytes[i] != b':') {
                    clean = (run_start + 1..=p + 1).rev().find(|&c| !no_cut.covers(c));
                }
                p = run_start;
            }
            b',' if json_boundary(p) && !no_cut.covers(p + 1) => clean = Some(p + 1),
            _ => {}
        }
    }
    clean
}

/// What a forced cut must not split, so the rules on either side still see them whole.
struct Guarded {
    /// Inline Secret `data` objects: (opener start, opener end, just after the closing brace).
    objects: Vec<(usize, usize, usize)>,
    /// PEM `BEGIN`/`END` markers.
    markers: Vec<(usize, usize)>,
    no_cut: Spans,
}

impl Guarded {
    fn find(rules: &Rules, s: &str) -> Self {
        // Openers come in order, so one forward `}` search serves them all.
        let mut close: Option<Option<usize>> = None;
        let objects: Vec<(usize, usize, usize)> = (rules.data_opener.find_iter(s))
            .map(|m| {
                let c = match close {
                    Some(c) if c.is_none_or(|x| x >= m.end()) => c,
                    _ => *close.insert(s[m.end()..].find('}').map(|i| m.end() + i)),
                };
                (m.start(), m.end(), c.map_or(usize::MAX, |x| x + 1))
            })
            .collect();
        let markers: Vec<(usize, usize)> = (rules.pem_begin.find_iter(s))
            .chain(rules.pem_end.find_iter(s))
            .map(|m| (m.start(), m.end()))
            .collect();
        let no_cut = Spans::new(
            objects
                .iter()
                .map(|&(a, _, b)| (a, b))
                .chain(markers.iter().copied()),
        );
        Self {
            objects,
            markers,
            no_cut,
        }
    }

    /// No clean boundary: cut through a token at `hi`, but never through an opener or a marker.
    fn cut_through(&self, s: &str, hi: usize) -> (usize, Cut) {
        if let Some(&(a, open_end, _)) = (self.objects.iter()).find(|&&(a, _, b)| a < hi && hi < b)
        {
            return match (open_end > hi, a > 0) {
                (true, true) => (a, Cut::Clean),
                (true, false) => (open_end, Cut::InsideData(open_end)),
                (false, _) => (hi, Cut::InsideData(open_end)),
            };
        }
        if let Some(&(a, b)) = self.markers.iter().find(|&&(a, b)| a < hi && hi < b) {
            return (if a > 0 { a } else { b }, Cut::Clean);
        }
        // Redact the cut token back to whitespace, but keep any marker or opener it contains.
        let token_start = s[..hi].trim_end_matches(|c: char| !c.is_whitespace()).len();
        let kept = (self.markers.iter().map(|&(_, b)| b))
            .chain(self.objects.iter().map(|&(_, e, _)| e))
            .filter(|&e| e <= hi)
            .fold(token_start, usize::max);
        (hi, Cut::Token(kept))
    }
}

/// Spans a cut must not fall strictly inside; `covers` is a binary search.
struct Spans {
    /// `(start, end)`, sorted by start.
    spans: Vec<(usize, usize)>,
    /// `reach[i]`: the furthest end among `spans[..=i]`.
    reach: Vec<usize>,
}

impl Spans {
    fn new(spans: impl Iterator<Item = (usize, usize)>) -> Self {
        let mut spans: Vec<_> = spans.collect();
        spans.sort_unstable();
        let reach = (spans.iter())
            .scan(0, |far, &(_, b)| {
                *far = b.max(*far);
                Some(*far)
            })
            .collect();
        Self { spans, reach }
    }

    fn covers(&self, c: usize) -> bool {
        let j = self.spans.partition_point(|&(a, _)| a < c);
        j > 0 && self.reach[j - 1] > c
    }
}

/// Offset of the quote `q` that closes a string starting at `s`, or of the line end.
fn quote_end(s: &str, q: u8) -> Option<usize> {
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if q == b'"' => escaped = true,
            b'\n' => return Some(i),
            _ if b == q => return Some(i),
            _ => {}
        }
    }
    None
}

/// How a forced cut was made.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// At a boundary no secret crosses.
    Clean,
    /// Through a token: redact it on both sides (this side from the given offset).
    Token(usize),
    /// Inside an inline Secret `data` object whose `{` ends at this offset.
    InsideData(usize),
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Carry {
    #[default]
    None,
    /// Redact the next token (a value whose key was just emitted); if it opens a quoted
    /// string, the whole string.
    Token,
    /// Redact the rest of a token the cut went through.
    Rest,
    /// Redact up to the closing quote (the rest of a quoted value).
    Quoted(u8),
    /// Redact up to the next `}` (the rest of a cut Secret `data` object).
    UntilBrace,
    /// Redact to the end of the line (the rest of a value that runs to the line end).
    UntilNewline,
}
