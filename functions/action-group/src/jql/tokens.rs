//! The JQL tokenizer: what a query is made of, and what it may not contain outside quotes.

use super::{invalid, quote, JqlError, KEYWORDS};

/// One JQL token. Strings hold their unescaped value; words only ever hold characters that need
/// no quoting (letters, digits, `_`, `-`, `.`), or a custom field reference `cf[10010]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    Word(String),
    Str(String),
    /// `=`, `!=`, `~`, `!~`, `<`, `<=`, `>`, `>=`.
    Op(&'static str),
    Open,
    Close,
    Comma,
}

impl Token {
    pub(super) fn keyword(&self) -> Option<String> {
        match self {
            Token::Word(w) if KEYWORDS.contains(&w.to_ascii_lowercase().as_str()) => Some(w.to_ascii_lowercase()),
            _ => None,
        }
    }

    pub(super) fn is_keyword(&self, k: &str) -> bool {
        matches!(self, Token::Word(w) if w.eq_ignore_ascii_case(k))
    }

    /// The token as it is sent to Jira.
    pub(super) fn to_jql(&self) -> String {
        match self {
            Token::Word(w) => match self.keyword() {
                Some(k) => k.to_ascii_uppercase(),
                None => w.clone(),
            },
            Token::Str(s) => quote(s),
            Token::Op(o) => (*o).to_string(),
            Token::Open => "(".into(),
            Token::Close => ")".into(),
            Token::Comma => ",".into(),
        }
    }

    /// The token as the user wrote it, roughly, for error messages.
    pub(super) fn shown(&self) -> String {
        match self {
            Token::Str(s) => format!("\"{}\"", cut_chars(s, 30)),
            Token::Word(w) => cut_chars(w, 30),
            t => t.to_jql(),
        }
    }
}

pub(super) fn cut_chars(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Splits JQL into tokens, refusing what Jira would read differently from this tokenizer:
/// characters JQL reserves outside quotes, `&&` / `||` / `!`, unknown escapes, unfinished strings.
pub fn tokenize(jql: &str) -> Result<Vec<Token>, JqlError> {
    let chars: Vec<char> = jql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let (token, next) = match c {
            c if c.is_whitespace() || c.is_control() => {
                i += 1;
                continue;
            }
            '"' | '\'' => quoted(&chars, i)?,
            '(' => (Token::Open, i + 1),
            ')' => (Token::Close, i + 1),
            ',' => (Token::Comma, i + 1),
            '=' | '!' | '~' | '<' | '>' => operator(&chars, i)?,
            '&' | '|' => return Err(invalid(format!("write AND / OR instead of `{c}`."))),
            c if is_word_char(c) => word(&chars, i)?,
            other => {
                return Err(invalid(format!(
                    "the character `{other}` is reserved in JQL outside quotes; put such values in double quotes."
                )))
            }
        };
        tokens.push(token);
        i = next;
    }
    Ok(tokens)
}

/// The string whose opening quote is at `chars[start]`, and the index after its closing quote.
fn quoted(chars: &[char], start: usize) -> Result<(Token, usize), JqlError> {
    let quote = chars[start];
    let mut value = String::new();
    let mut i = start + 1;
    loop {
        match chars.get(i) {
            None => return Err(invalid(format!("the quoted string {quote}{} is not closed.", cut_chars(&value, 30)))),
            Some('\\') => {
                match chars.get(i + 1) {
                    Some(e @ ('"' | '\'' | '\\')) => value.push(*e),
                    Some('n' | 't' | 'r') => value.push(' '),
                    Some(other) => {
                        return Err(invalid(format!(
                            "the escape \\{other} is not supported in quoted strings (only \\\", \\' and \\\\)."
                        )))
                    }
                    None => return Err(invalid("a quoted string ends with a lone backslash.")),
                }
                i += 2;
            }
            Some(q) if *q == quote => return Ok((Token::Str(value), i + 1)),
            Some(ch) => {
                value.push(if ch.is_control() { ' ' } else { *ch });
                i += 1;
            }
        }
    }
}

/// The operator starting at `chars[start]` (the whole run of operator characters), and the index after it.
fn operator(chars: &[char], start: usize) -> Result<(Token, usize), JqlError> {
    let mut i = start;
    while i < chars.len() && matches!(chars[i], '=' | '!' | '~' | '<' | '>') {
        i += 1;
    }
    let run: String = chars[start..i].iter().collect();
    let op = match run.as_str() {
        "=" => "=",
        "!=" => "!=",
        "~" => "~",
        "!~" => "!~",
        "<" => "<",
        "<=" => "<=",
        ">" => ">",
        ">=" => ">=",
        "!" => return Err(invalid("write NOT instead of `!`.")),
        other => return Err(invalid(format!("`{other}` is not a JQL operator."))),
    };
    Ok((Token::Op(op), i))
}

/// The word starting at `chars[start]` (or a custom field `cf[10010]`), and the index after it.
fn word(chars: &[char], start: usize) -> Result<(Token, usize), JqlError> {
    let mut i = start;
    while i < chars.len() && is_word_char(chars[i]) {
        i += 1;
    }
    let mut word: String = chars[start..i].iter().collect();
    // A custom field by id: cf[10010].
    if word.eq_ignore_ascii_case("cf") && chars.get(i) == Some(&'[') {
        let digits_start = i + 1;
        let mut j = digits_start;
        while j < chars.len() && chars[j].is_ascii_digit() {
            j += 1;
        }
        if j == digits_start || chars.get(j) != Some(&']') || j - digits_start > 18 {
            return Err(invalid("a custom field is written cf[12345]."));
        }
        word = format!("cf[{}]", chars[digits_start..j].iter().collect::<String>());
        i = j + 1;
    }
    Ok((Token::Word(word), i))
}
