//! The JQL parser: a query is a filter of AND / OR / NOT over clauses, then an optional ORDER BY.

use super::{invalid, tokenize, Clause, Expr, JqlError, Query, SortKey, Token, MAX_DEPTH, PREDICATES};

/// Parses a JQL query (a filter, an ORDER BY, or both).
pub fn parse(jql: &str) -> Result<Query, JqlError> {
    let tokens = tokenize(jql)?;
    let mut p = Parser { tokens: &tokens, at: 0, depth: 0 };
    let filter = if p.at_order_by() || p.peek().is_none() { None } else { Some(p.or()?) };
    let order_by = if p.at_order_by() {
        p.at += 2;
        Some(p.sort_keys()?)
    } else {
        None
    };
    if let Some(t) = p.peek() {
        return Err(match t {
            Token::Close => invalid("there is a `)` without its `(`."),
            t => invalid(format!("unexpected {} (join conditions with AND or OR).", t.shown())),
        });
    }
    if filter.is_none() && order_by.is_none() {
        return Err(invalid("the query is empty."));
    }
    Ok(Query { filter, order_by })
}

struct Parser<'a> {
    tokens: &'a [Token],
    at: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn peek_at(&self, ahead: usize) -> Option<&Token> {
        self.tokens.get(self.at + ahead)
    }

    fn next(&mut self) -> Option<&Token> {
        let t = self.tokens.get(self.at);
        self.at += 1;
        t
    }

    fn peek_keyword(&self, k: &str) -> bool {
        self.peek().is_some_and(|t| t.is_keyword(k))
    }

    fn at_order_by(&self) -> bool {
        self.peek_keyword("order") && self.peek_at(1).is_some_and(|t| t.is_keyword("by"))
    }

    fn or(&mut self) -> Result<Expr, JqlError> {
        let mut items = vec![self.and()?];
        while self.peek_keyword("or") {
            self.at += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Expr::Or(items) })
    }

    fn and(&mut self) -> Result<Expr, JqlError> {
        let mut items = vec![self.unary()?];
        while self.peek_keyword("and") {
            self.at += 1;
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 { items.remove(0) } else { Expr::And(items) })
    }

    fn unary(&mut self) -> Result<Expr, JqlError> {
        if self.peek_keyword("not") {
            self.at += 1;
            self.descend()?;
            let inner = self.unary();
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner?)));
        }
        self.primary()
    }

    fn descend(&mut self) -> Result<(), JqlError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(invalid(format!("it nests deeper than {MAX_DEPTH} levels.")));
        }
        Ok(())
    }

    fn primary(&mut self) -> Result<Expr, JqlError> {
        match self.peek() {
            Some(Token::Open) => {
                self.at += 1;
                self.descend()?;
                let inner = self.or();
                self.depth -= 1;
                let inner = inner?;
                match self.next() {
                    Some(Token::Close) => Ok(Expr::Group(Box::new(inner))),
                    None => Err(invalid("a `(` is not closed.")),
                    Some(t) if t.is_keyword("order") => {
                        Err(invalid("ORDER BY can only end the query, outside parentheses."))
                    }
                    Some(t) => Err(invalid(format!("expected `)` but got {}.", t.shown()))),
                }
            }
            Some(t @ (Token::Word(_) | Token::Str(_))) if t.keyword().is_none() => {
                let field = t.clone();
                self.at += 1;
                let rest = self.operation(&field)?;
                Ok(Expr::Clause(Clause { field, rest }))
            }
            Some(Token::Word(w)) if w.eq_ignore_ascii_case("order") => {
                Err(invalid("ORDER BY can only end the query, outside parentheses."))
            }
            Some(t) => Err(invalid(format!("expected a field name but got {}.", t.shown()))),
            None => Err(invalid("the query ends where a condition was expected.")),
        }
    }

    /// The operator and operands after a field.
    fn operation(&mut self, field: &Token) -> Result<Vec<Token>, JqlError> {
        let start = self.at;
        let op = self.next().cloned();
        match op {
            Some(Token::Op(_)) => self.operand()?,
            Some(t) if t.is_keyword("is") => {
                if self.peek_keyword("not") {
                    self.at += 1;
                }
                match self.next() {
                    Some(t) if t.is_keyword("empty") || t.is_keyword("null") => {}
                    _ => return Err(invalid(format!("{} IS must be followed by EMPTY or NULL.", field.shown()))),
                }
            }
            Some(t) if t.is_keyword("in") => self.list_or_function()?,
            Some(t) if t.is_keyword("not") => {
                if !self.peek_keyword("in") {
                    return Err(invalid(format!("after {} NOT, only IN can follow.", field.shown())));
                }
                self.at += 1;
                self.list_or_function()?;
            }
            Some(t) if t.is_keyword("was") => {
                if self.peek_keyword("not") {
                    self.at += 1;
                }
                if self.peek_keyword("in") {
                    self.at += 1;
                    self.list_or_function()?;
                } else {
                    self.operand()?;
                }
                self.predicates()?;
            }
            Some(t) if t.is_keyword("changed") => self.predicates()?,
            Some(t) => {
                return Err(invalid(format!("expected an operator after {} but got {}.", field.shown(), t.shown())))
            }
            None => return Err(invalid(format!("the condition on {} has no operator.", field.shown()))),
        }
        Ok(self.tokens[start..self.at].to_vec())
    }

    /// History predicates after WAS / CHANGED: `AFTER x`, `DURING (x, y)`, `BY x`...
    fn predicates(&mut self) -> Result<(), JqlError> {
        while let Some(k) = self.peek().and_then(Token::keyword).filter(|k| PREDICATES.contains(&k.as_str())) {
            self.at += 1;
            if k == "during" {
                self.list()?;
            } else {
                self.operand()?;
            }
        }
        Ok(())
    }

    /// A value or a list of values.
    fn operand(&mut self) -> Result<(), JqlError> {
        if matches!(self.peek(), Some(Token::Open)) {
            self.list()
        } else {
            self.value()
        }
    }

    fn list_or_function(&mut self) -> Result<(), JqlError> {
        if matches!(self.peek(), Some(Token::Open)) {
            self.list()
        } else {
            self.value()
        }
    }

    /// `(v, v, ...)`.
    fn list(&mut self) -> Result<(), JqlError> {
        match self.next() {
            Some(Token::Open) => {}
            _ => return Err(invalid("expected a list in parentheses, like (A, B).")),
        }
        self.values_until_close()
    }

    /// Values separated by commas, then `)`; the `(` is already read.
    fn values_until_close(&mut self) -> Result<(), JqlError> {
        self.descend()?;
        let result = (|| {
            if matches!(self.peek(), Some(Token::Close)) {
                self.at += 1;
                return Ok(());
            }
            loop {
                self.value()?;
                match self.next() {
                    Some(Token::Comma) => continue,
                    Some(Token::Close) => return Ok(()),
                    None => return Err(invalid("a `(` is not closed.")),
                    Some(t) => return Err(invalid(format!("expected `,` or `)` in a list but got {}.", t.shown()))),
                }
            }
        })();
        self.depth -= 1;
        result
    }

    /// A word, a string, EMPTY / NULL, or a function call `name(args)`.
    fn value(&mut self) -> Result<(), JqlError> {
        match self.next().cloned() {
            Some(Token::Str(_)) => Ok(()),
            Some(t @ Token::Word(_)) => match t.keyword() {
                Some(k) if k == "empty" || k == "null" => Ok(()),
                Some(_) => Err(invalid(format!("expected a value but got {}.", t.shown()))),
                None => {
                    if matches!(self.peek(), Some(Token::Open)) {
                        self.at += 1;
                        self.values_until_close()?;
                    }
                    Ok(())
                }
            },
            Some(t) => Err(invalid(format!("expected a value but got {}.", t.shown()))),
            None => Err(invalid("the query ends where a value was expected.")),
        }
    }

    fn sort_keys(&mut self) -> Result<Vec<SortKey>, JqlError> {
        let mut keys = Vec::new();
        loop {
            let field = match self.next() {
                Some(t @ (Token::Word(_) | Token::Str(_))) if t.keyword().is_none() => t.clone(),
                Some(t) => return Err(invalid(format!("ORDER BY expects field names but got {}.", t.shown()))),
                None => return Err(invalid("ORDER BY names no field.")),
            };
            let direction = match self.peek() {
                Some(t) if t.is_keyword("asc") || t.is_keyword("desc") => {
                    let d = t.clone();
                    self.at += 1;
                    Some(d)
                }
                _ => None,
            };
            keys.push(SortKey { field, direction });
            if matches!(self.peek(), Some(Token::Comma)) {
                self.at += 1;
            } else {
                return Ok(keys);
            }
        }
    }
}
