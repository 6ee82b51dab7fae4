//! A small PromQL reader, enough for what the dashboard and the alert rules use: selectors with
//! matchers, `by (…)` / `without (…)` groupings (before or after the aggregated expression),
//! functions, `[range]`s, numbers, operators and Grafana `$variables`.

use std::ops::Range;

const GROUPING: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset"];

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
    Ident(String),
    Str(String),
    Num,
    Sym(String),
}

pub(super) fn lex(expr: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' || c == '\'' || c == '`' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(format!("unterminated string in {expr}")),
                    Some('\\') if c != '`' => {
                        s.extend(chars.get(i + 1));
                        i += 2;
                    }
                    Some(&q) if q == c => {
                        i += 1;
                        break;
                    }
                    Some(&other) => {
                        s.push(other);
                        i += 1;
                    }
                }
            }
            toks.push(Tok::Str(s));
        } else if c == '[' {
            // a range or subquery: `[5m]`, `[$__rate_interval]`, `[1h:5m]`
            let end = chars[i..].iter().position(|&x| x == ']').ok_or(format!("unclosed [ in {expr}"))?;
            i += end + 1;
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' || c == '$' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | ':' | '$'))
            {
                i += 1;
            }
            toks.push(Tok::Ident(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            toks.push(Tok::Num);
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if ["=~", "!~", "!=", "==", ">=", "<="].contains(&two.as_str()) {
                toks.push(Tok::Sym(two));
                i += 2;
            } else if "{}(),=<>+-*/%^".contains(c) {
                toks.push(Tok::Sym(c.to_string()));
                i += 1;
            } else {
                return Err(format!("unexpected {c:?} in {expr}"));
            }
        }
    }
    Ok(toks)
}

pub(super) fn is_sym(t: Option<&Tok>, s: &str) -> bool {
    matches!(t, Some(Tok::Sym(x)) if x == s)
}

/// The index of the parenthesis matching the one at `at` (searching forward for `(`, back for `)`).
pub(super) fn matching(toks: &[Tok], at: usize) -> Result<usize, String> {
    let forward = is_sym(toks.get(at), "(");
    let mut depth = 0i32;
    let mut i = at as isize;
    while i >= 0 && (i as usize) < toks.len() {
        match &toks[i as usize] {
            Tok::Sym(s) if s == "(" => depth += if forward { 1 } else { -1 },
            Tok::Sym(s) if s == ")" => depth += if forward { -1 } else { 1 },
            _ => {}
        }
        if depth == 0 {
            return Ok(i as usize);
        }
        i += if forward { 1 } else { -1 };
    }
    Err("unbalanced parentheses".to_owned())
}

#[derive(Debug)]
pub(super) struct Matcher {
    pub(super) label: String,
    pub(super) op: String,
    pub(super) value: String,
}

#[derive(Debug)]
pub(super) struct Selector {
    pub(super) name: String,
    pub(super) at: usize,
    pub(super) matchers: Vec<Matcher>,
}

#[derive(Debug)]
pub(super) struct Grouping {
    pub(super) keyword: String,
    pub(super) labels: Vec<String>,
    pub(super) scope: Range<usize>,
}

#[derive(Debug)]
pub(super) struct Analysis {
    pub(super) selectors: Vec<Selector>,
    pub(super) groupings: Vec<Grouping>,
}

impl Analysis {
    /// The metric names a grouping applies to.
    pub(super) fn scoped(&self, g: &Grouping) -> Vec<&Selector> {
        self.selectors.iter().filter(|s| g.scope.contains(&s.at)).collect()
    }
}

pub(super) fn analyze(expr: &str) -> Result<Analysis, String> {
    let toks = lex(expr)?;
    let mut selectors = Vec::new();
    let mut groupings = Vec::new();
    let mut i = 0;
    while i < toks.len() {
        let Tok::Ident(word) = &toks[i] else {
            if is_sym(toks.get(i), "{") {
                return Err(format!("a selector without a metric name in {expr}"));
            }
            i += 1;
            continue;
        };
        if GROUPING.contains(&word.as_str()) {
            if !is_sym(toks.get(i + 1), "(") {
                i += 1; // `group_left` without a list
                continue;
            }
            let close = matching(&toks, i + 1)?;
            let labels: Vec<String> = toks[i + 2..close]
                .iter()
                .filter_map(|t| match t {
                    Tok::Ident(l) => Some(l.clone()),
                    _ => None,
                })
                .collect();
            let scope = if is_sym(toks.get(close + 1), "(") {
                // `sum by (l) (expr)`
                close + 1..matching(&toks, close + 1)? + 1
            } else if i > 0 && is_sym(toks.get(i - 1), ")") && ["by", "without"].contains(&word.as_str()) {
                // `sum (expr) by (l)`
                matching(&toks, i - 1)?..i
            } else {
                // `on (…)`, `ignoring (…)`: both sides of the operator
                0..toks.len()
            };
            groupings.push(Grouping { keyword: word.clone(), labels, scope });
            i = close + 1;
            continue;
        }
        let aggregation = matches!(toks.get(i + 1), Some(Tok::Ident(w)) if w == "by" || w == "without");
        if is_sym(toks.get(i + 1), "(")
            || aggregation
            || KEYWORDS.contains(&word.as_str())
            || word.starts_with('$')
        {
            i += 1; // a function, an aggregation, a keyword, a Grafana variable
            continue;
        }
        let mut sel = Selector { name: word.clone(), at: i, matchers: Vec::new() };
        i += 1;
        if is_sym(toks.get(i), "{") {
            i += 1;
            loop {
                match (toks.get(i), toks.get(i + 1), toks.get(i + 2)) {
                    (Some(Tok::Sym(c)), _, _) if c == "}" => {
                        i += 1;
                        break;
                    }
                    (Some(Tok::Sym(c)), _, _) if c == "," => i += 1,
                    (Some(Tok::Ident(label)), Some(Tok::Sym(op)), Some(Tok::Str(value)))
                        if ["=", "!=", "=~", "!~"].contains(&op.as_str()) =>
                    {
                        sel.matchers.push(Matcher {
                            label: label.clone(),
                            op: op.clone(),
                            value: value.clone(),
                        });
                        i += 3;
                    }
                    _ => return Err(format!("cannot read the matchers of {} in {expr}", sel.name)),
                }
            }
        }
        selectors.push(sel);
    }
    if selectors.is_empty() {
        return Err(format!("no metric in {expr}"));
    }
    Ok(Analysis { selectors, groupings })
}

#[test]
pub(super) fn the_promql_reader_finds_metrics_matchers_and_grouping_scopes() {
    let a = analyze(
        r#"sum by (route) (rate(gardefou_errors_total{route=~"$route", kind!="x"}[$__rate_interval])) / on (route) group_left sum(rate(gardefou_requests_total[5m])) by (route, model) > 0.5"#,
    )
    .unwrap();
    let names: Vec<&str> = a.selectors.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["gardefou_errors_total", "gardefou_requests_total"]);
    assert_eq!(a.selectors[0].matchers.len(), 2);
    assert_eq!(
        (a.selectors[0].matchers[1].label.as_str(), a.selectors[0].matchers[1].op.as_str()),
        ("kind", "!=")
    );
    let scoped = |k: usize| a.scoped(&a.groupings[k]).iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    assert_eq!(a.groupings.len(), 3);
    assert_eq!(scoped(0), ["gardefou_errors_total"], "by before its expression");
    assert_eq!(scoped(1), ["gardefou_errors_total", "gardefou_requests_total"], "on: both sides");
    assert_eq!(scoped(2), ["gardefou_requests_total"], "by after its expression");
    assert_eq!(a.groupings[2].labels, ["route", "model"]);
    assert!(analyze("sum({route=\"a\"})").is_err());
}
