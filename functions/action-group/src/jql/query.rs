//! A parsed JQL query, and how it is written back for Jira: canonically, from checked tokens only.

use std::fmt::Write as _;

use super::Token;

/// A JQL filter, as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// `a OR b OR ...` (two or more).
    Or(Vec<Expr>),
    /// `a AND b AND ...` (two or more).
    And(Vec<Expr>),
    Not(Box<Expr>),
    /// A parenthesised expression, kept so the query reads as written.
    Group(Box<Expr>),
    Clause(Clause),
}

/// One condition: a field, then its operator and operands as tokens (already checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    /// A word or a quoted field name.
    pub field: Token,
    /// The operator and its operands, e.g. `[Word(not), Word(in), Open, Word(A), Close]`.
    pub rest: Vec<Token>,
}

impl Clause {
    /// The field name, lower case.
    pub fn field_name(&self) -> String {
        match &self.field {
            Token::Word(w) | Token::Str(w) => w.trim().to_lowercase(),
            _ => String::new(),
        }
    }
}

/// A sort key of ORDER BY: a field and an optional direction (`ASC` / `DESC`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub field: Token,
    pub direction: Option<Token>,
}

/// A whole JQL query: an optional filter and an optional ORDER BY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub filter: Option<Expr>,
    pub order_by: Option<Vec<SortKey>>,
}

impl Expr {
    /// The expression as JQL, canonically written (keywords upper case, strings double-quoted).
    pub fn to_jql(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Expr::Or(items) | Expr::And(items) => {
                let joiner = if matches!(self, Expr::Or(_)) { " OR " } else { " AND " };
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.push_str(joiner);
                    }
                    item.write(out);
                }
            }
            Expr::Not(inner) => {
                out.push_str("NOT ");
                inner.write(out);
            }
            Expr::Group(inner) => {
                out.push('(');
                inner.write(out);
                out.push(')');
            }
            Expr::Clause(c) => {
                out.push_str(&c.field.to_jql());
                let mut prev: Option<&Token> = None;
                for t in &c.rest {
                    // `f(x)`, `(a, b)`: no space after `(`, before `)` or `,`, or between a
                    // function name and its `(`.
                    let tight = matches!(t, Token::Close | Token::Comma)
                        || matches!(prev, Some(Token::Open))
                        || (matches!(t, Token::Open)
                            && matches!(prev, Some(Token::Word(_)))
                            && prev.and_then(Token::keyword).is_none());
                    if !tight {
                        out.push(' ');
                    }
                    out.push_str(&t.to_jql());
                    prev = Some(t);
                }
            }
        }
    }

    /// Every clause of the expression, in order.
    pub fn clauses(&self) -> Vec<&Clause> {
        let mut found = Vec::new();
        self.collect(&mut found);
        found
    }

    fn collect<'a>(&'a self, found: &mut Vec<&'a Clause>) {
        match self {
            Expr::Or(items) | Expr::And(items) => items.iter().for_each(|i| i.collect(found)),
            Expr::Not(inner) | Expr::Group(inner) => inner.collect(found),
            Expr::Clause(c) => found.push(c),
        }
    }
}

/// ORDER BY's sort keys as JQL.
pub(super) fn sort_jql(keys: &[SortKey]) -> String {
    let mut out = String::new();
    for (n, k) in keys.iter().enumerate() {
        if n > 0 {
            out.push_str(", ");
        }
        out.push_str(&k.field.to_jql());
        if let Some(d) = &k.direction {
            let _ = write!(out, " {}", d.to_jql());
        }
    }
    out
}
