//! Targeting: JsonLogic with flagd's operators, compiled once when a flag is loaded.
//!
//! Why compiled here rather than interpreted by `datalogic-rs` (or `flagd-evaluation-engine`,
//! which is built on it): the goals are an error at load that names the flag and the field (an
//! unknown operator, a `$ref` to nothing or in a cycle, nesting past a bound — never at
//! evaluation, never a stack overflow), no allocation while a rule compares strings, numbers
//! and versions (values are borrowed from the definition and the context), a bucket worked out
//! without building the bucketing string, and one set of coercions — the Python provider's,
//! proven by the testbed (`tests/flagd.rs`) and 2 million differential answers
//! (`tests/flagd_differential.rs`) — where a general JsonLogic library has its own.
//!
//! What is known at load is done at load ([`specialize`]): a `fractional` over written buckets
//! becomes cumulative weights (and, when it is the whole targeting, each bucket's variant:
//! `Definition::split_resolution` goes from the hash to the variant), a `sem_ver` against a
//! written operator and version parses them once, `in` a written list of strings is a string
//! scan, a `var` path's head is worked out. Conditions are evaluated as booleans ([`Env::test`])
//! and the evaluator is generic over its data, so the context's reads are inlined. `make bench`
//! measures the result against hand-written Rust doing the same work (`BENCHMARKS.md`, "flagd
//! flag definitions": a 3-variant split about 1.3×, a three-condition rule about 2.5×).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::ops::{self, Bucketing, SemVerAgainst};
use super::value::{self, Num, Val};
use std::cmp::Ordering;

/// The deepest a targeting tree may nest, `$ref`s included: well under what the evaluator's
/// recursion can take on a thread's default stack.
pub const MAX_DEPTH: usize = 48;
/// The most nodes a flag's targeting may hold, `$ref`s counted once each.
pub const MAX_NODES: usize = 10_000;

/// A compiled expression.
#[derive(Debug, PartialEq)]
pub(crate) enum Expr {
    /// A value with no operator in it.
    Lit(Value),
    /// An array whose items are expressions.
    Array(Vec<Expr>),
    /// `var`: a path into the data, and what to return when it is missing.
    Var(Path, Option<Box<Expr>>),
    /// An operator and its arguments.
    Op(Op, Vec<Expr>),
    /// A shared evaluator (`$ref`), compiled once for every flag that uses it.
    Ref(Arc<Compiled>),
    /// `sem_ver` against an operator and a version written in the rule (read at load).
    SemVer(Box<Expr>, Box<SemVerAgainst>),
    /// `fractional`, with its buckets read at load when they are written in the rule.
    Fractional(Box<Fractional>),
    /// `in` a list of strings written in the rule: only a string equal to one is in it.
    InStrings(Box<Expr>, Box<[Box<str>]>),
    /// `starts_with` (`true`) or `ends_with` (`false`) a string written in the rule.
    Affix(Box<Expr>, Box<str>, bool),
}

/// Whether `text` starts (`starts`) or ends with `affix`.
#[inline]
fn has_affix(text: &str, affix: &str, starts: bool) -> bool {
    if starts {
        text.starts_with(affix)
    } else {
        text.ends_with(affix)
    }
}

/// A `fractional`'s arguments, and its buckets as read at load.
#[derive(Debug, PartialEq)]
pub(crate) struct Fractional {
    args: Vec<Expr>,
    /// Every argument as buckets (the form without a bucketing value), when all are literals.
    all: Buckets,
    /// The arguments after the first as buckets (the form with one), when all are literals.
    rest: Buckets,
}

/// Buckets known at load, or not.
#[derive(Debug, PartialEq)]
enum Buckets {
    /// Computed by expressions: read at each evaluation.
    Dynamic,
    /// Not buckets (a malformed one, no weight, more than 2^31 - 1 in all): `null`.
    Invalid,
    /// Each bucket's name and cumulative weight.
    Known {
        names: Vec<Value>,
        cumulative: Vec<u64>,
        total: u64,
    },
}

impl Buckets {
    fn of(args: &[Expr]) -> Self {
        let (mut names, mut cumulative, mut total) = (Vec::new(), Vec::new(), 0u64);
        for arg in args {
            let Expr::Lit(value) = arg else {
                return Self::Dynamic;
            };
            let Some((name, weight)) = ops::bucket(&Val::of(value)) else {
                return Self::Invalid;
            };
            total += weight;
            names.push(name.to_json());
            cumulative.push(total);
        }
        if total == 0 || total > MAX_TOTAL_WEIGHT {
            return Self::Invalid;
        }
        Self::Known {
            names,
            cumulative,
            total,
        }
    }
}

/// The most weight a `fractional`'s buckets may carry in all (flagd's bound).
const MAX_TOTAL_WEIGHT: u64 = i32::MAX as u64;

/// An operator's node, specialized where its arguments allow work to be done at load.
fn specialize(op: Op, mut args: Vec<Expr>) -> Expr {
    match op {
        Op::SemVer => {
            let against = match args.as_slice() {
                [_, Expr::Lit(Value::String(op)), Expr::Lit(version)]
                    if !matches!(version, Value::Array(_) | Value::Object(_)) =>
                {
                    Some(SemVerAgainst::new(op, &Val::of(version)))
                }
                _ => None,
            };
            match against {
                Some(against) => {
                    args.truncate(1);
                    match args.pop() {
                        Some(value) => Expr::SemVer(Box::new(value), Box::new(against)),
                        None => Expr::Op(op, Vec::new()),
                    }
                }
                None => Expr::Op(op, args),
            }
        }
        Op::In => {
            let strings: Option<Box<[Box<str>]>> = match args.as_slice() {
                [_, Expr::Lit(Value::Array(items))] => items
                    .iter()
                    .map(|item| item.as_str().map(Box::from))
                    .collect(),
                _ => None,
            };
            match strings {
                Some(strings) => match args.into_iter().next() {
                    Some(needle) => Expr::InStrings(Box::new(needle), strings),
                    None => Expr::Op(op, Vec::new()),
                },
                None => Expr::Op(op, args),
            }
        }
        Op::StartsWith | Op::EndsWith => match args.as_slice() {
            [_, Expr::Lit(Value::String(affix))] => {
                let affix = Box::from(affix.as_str());
                match args.into_iter().next() {
                    Some(text) => Expr::Affix(Box::new(text), affix, op == Op::StartsWith),
                    None => Expr::Op(op, Vec::new()),
                }
            }
            _ => Expr::Op(op, args),
        },
        Op::Fractional => {
            let all = Buckets::of(&args);
            let rest = Buckets::of(args.get(1..).unwrap_or_default());
            Expr::Fractional(Box::new(Fractional { args, all, rest }))
        }
        _ => Expr::Op(op, args),
    }
}

impl Compiled {
    /// The tree's root, looking through a `$ref`, and its `if` pairs when it is an `if`.
    pub(crate) fn root_if(&self) -> Option<&[Expr]> {
        let mut expr = &self.expr;
        while let Expr::Ref(compiled) = expr {
            expr = &compiled.expr;
        }
        match expr {
            Expr::Op(Op::If, args) => Some(args),
            _ => None,
        }
    }

    /// The buckets of a targeting that is only a `fractional` over buckets written in the rule
    /// (the usual A/B split): their names, cumulative weights and total.
    pub(crate) fn plain_split(&self) -> Option<(&[Value], &[u64], u64)> {
        let Expr::Fractional(fractional) = &self.expr else {
            return None;
        };
        match (fractional.args.first(), &fractional.all) {
            (
                Some(Expr::Lit(Value::Array(_))),
                Buckets::Known {
                    names,
                    cumulative,
                    total,
                },
            ) => Some((names, cumulative, *total)),
            _ => None,
        }
    }
}

/// A compiled tree and what its evaluation depends on.
#[derive(Debug, PartialEq)]
pub(crate) struct Compiled {
    pub(crate) expr: Expr,
    depth: usize,
    nodes: usize,
    /// Whether it reads `$flagd.timestamp` (or the whole `$flagd` object, or the whole data).
    pub(crate) reads_time: bool,
    /// Whether it reads the context at all (a `var`, `missing`, or `fractional`).
    pub(crate) reads_context: bool,
}

/// A `var` path.
#[derive(Debug, PartialEq)]
pub(crate) enum Path {
    /// Segments known at load (none for the whole data), and what the first one names.
    Static(Box<[Box<str>]>, Head),
    /// A path computed by an expression.
    Dynamic(Box<Expr>),
}

/// What the first segment of a path known at load names in the data, worked out once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Head {
    /// No segment: the whole data.
    Whole,
    /// `targetingKey`.
    TargetingKey,
    /// `$flagd`.
    Flagd,
    /// An attribute of the context.
    Attribute,
}

impl Head {
    fn of(segments: &[Box<str>]) -> Self {
        match segments.first().map(|s| &**s) {
            None => Self::Whole,
            Some("targetingKey") => Self::TargetingKey,
            Some("$flagd") => Self::Flagd,
            Some(_) => Self::Attribute,
        }
    }
}

macro_rules! operators {
    ($($op:ident = $($name:literal)|+;)*) => {
        /// The operators flagd evaluates: JsonLogic's and flagd's own.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Op { $($op),* }

        impl Op {
            fn named(name: &str) -> Option<Self> {
                match name {
                    $($($name)|+ => Some(Self::$op),)*
                    _ => None,
                }
            }
        }
    };
}

operators! {
    If = "if" | "?:";
    Eq = "==";
    StrictEq = "===";
    Ne = "!=";
    StrictNe = "!==";
    Not = "!";
    Truthy = "!!";
    Or = "or";
    And = "and";
    Lt = "<";
    Le = "<=";
    Gt = ">";
    Ge = ">=";
    Max = "max";
    Min = "min";
    Add = "+";
    Sub = "-";
    Mul = "*";
    Div = "/";
    Mod = "%";
    In = "in";
    Cat = "cat";
    Substr = "substr";
    Merge = "merge";
    Missing = "missing";
    MissingSome = "missing_some";
    Map = "map";
    Filter = "filter";
    Reduce = "reduce";
    All = "all";
    None = "none";
    Some = "some";
    Fractional = "fractional";
    SemVer = "sem_ver";
    StartsWith = "starts_with";
    EndsWith = "ends_with";
}

/// Why a definition's targeting cannot be compiled: the field (a JSON path from the flag) and
/// what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// Where, e.g. `targeting.if[0].in[1]`.
    pub field: String,
    /// What is wrong.
    pub problem: String,
}

/// Compiles targeting trees against one document's shared evaluators (`$evaluators`).
pub(crate) struct Compiler<'d> {
    evaluators: Option<&'d Map<String, Value>>,
    compiled: HashMap<String, Arc<Compiled>>,
    /// The evaluators being compiled, innermost last: a `$ref` to one of them is a cycle.
    open: Vec<String>,
}

/// What compiling one node found.
struct Shape {
    depth: usize,
    nodes: usize,
    reads_time: bool,
    reads_context: bool,
}

impl Shape {
    fn leaf() -> Self {
        Self {
            depth: 1,
            nodes: 1,
            reads_time: false,
            reads_context: false,
        }
    }

    fn add(&mut self, child: &Shape) {
        self.depth = self.depth.max(child.depth + 1);
        self.nodes += child.nodes;
        self.reads_time |= child.reads_time;
        self.reads_context |= child.reads_context;
    }
}

impl<'d> Compiler<'d> {
    /// A compiler for a document with these shared evaluators.
    pub(crate) fn new(evaluators: Option<&'d Map<String, Value>>) -> Self {
        Self {
            evaluators,
            compiled: HashMap::new(),
            open: Vec::new(),
        }
    }

    /// Compiles a flag's `targeting`.
    pub(crate) fn compile(&mut self, logic: &Value, field: &str) -> Result<Compiled, CompileError> {
        let (expr, shape) = self.node(logic, field, 0)?;
        if shape.nodes > MAX_NODES {
            return Err(error(
                field,
                format!("holds {} nodes, more than {MAX_NODES}", shape.nodes),
            ));
        }
        Ok(Compiled {
            expr,
            depth: shape.depth,
            nodes: shape.nodes,
            reads_time: shape.reads_time,
            reads_context: shape.reads_context,
        })
    }

    fn node(
        &mut self,
        logic: &Value,
        field: &str,
        depth: usize,
    ) -> Result<(Expr, Shape), CompileError> {
        if depth >= MAX_DEPTH {
            return Err(error(
                field,
                format!("nests deeper than {MAX_DEPTH} levels"),
            ));
        }
        match logic {
            Value::Array(items) => {
                let mut shape = Shape::leaf();
                let mut exprs = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let (expr, child) = self.node(item, &format!("{field}[{i}]"), depth + 1)?;
                    shape.add(&child);
                    exprs.push(expr);
                }
                if exprs.iter().all(|e| matches!(e, Expr::Lit(_))) {
                    Ok((Expr::Lit(logic.clone()), shape))
                } else {
                    Ok((Expr::Array(exprs), shape))
                }
            }
            Value::Object(map) if map.len() == 1 => {
                let Some((name, args)) = map.iter().next() else {
                    return Ok((Expr::Lit(logic.clone()), Shape::leaf()));
                };
                let field = format!("{field}.{name}");
                if name == "$ref" {
                    return self.reference(args, &field, depth);
                }
                if name == "var" {
                    return self.var(args, &field, depth);
                }
                let op = Op::named(name)
                    .ok_or_else(|| error(&field, format!("unknown operator `{name}`")))?;
                let args: &[Value] = match args {
                    Value::Array(items) => items,
                    single => std::slice::from_ref(single),
                };
                let mut shape = Shape::leaf();
                shape.reads_context |= matches!(op, Op::Missing | Op::MissingSome | Op::Fractional);
                let mut exprs = Vec::with_capacity(args.len());
                for (i, arg) in args.iter().enumerate() {
                    let (expr, child) = self.node(arg, &format!("{field}[{i}]"), depth + 1)?;
                    shape.add(&child);
                    exprs.push(expr);
                }
                Ok((specialize(op, exprs), shape))
            }
            // Any other object is data, as JsonLogic reads it.
            _ => Ok((Expr::Lit(logic.clone()), Shape::leaf())),
        }
    }

    fn var(
        &mut self,
        args: &Value,
        field: &str,
        depth: usize,
    ) -> Result<(Expr, Shape), CompileError> {
        let (path, default) = match args {
            Value::Array(items) => (items.first().unwrap_or(&Value::Null), items.get(1)),
            other => (other, None),
        };
        let mut shape = Shape::leaf();
        shape.reads_context = true;
        let segments: Option<Box<[Box<str>]>> = match path {
            Value::Null => Some(Box::new([])),
            Value::String(text) if text.is_empty() => Some(Box::new([])),
            Value::String(text) => Some(text.split('.').map(Box::from).collect()),
            Value::Number(n) => Some(Box::new([Box::from(n.to_string())])),
            _ => None,
        };
        let path = match (segments, path) {
            (Some(segments), _) => {
                let head = Head::of(&segments);
                Path::Static(segments, head)
            }
            (None, other) => {
                let (expr, child) = self.node(other, &format!("{field}[0]"), depth + 1)?;
                shape.add(&child);
                shape.reads_time = true; // a computed path may name anything
                Path::Dynamic(Box::new(expr))
            }
        };
        if let Path::Static(segments, _) = &path {
            shape.reads_time |= segments.first().is_none_or(|s| &**s == "$flagd")
                && segments.get(1).is_none_or(|s| &**s == "timestamp");
        }
        let default = match default {
            Some(default) => {
                let (expr, child) = self.node(default, &format!("{field}[1]"), depth + 1)?;
                shape.add(&child);
                Some(Box::new(expr))
            }
            None => None,
        };
        Ok((Expr::Var(path, default), shape))
    }

    fn reference(
        &mut self,
        name: &Value,
        field: &str,
        depth: usize,
    ) -> Result<(Expr, Shape), CompileError> {
        let Value::String(name) = name else {
            return Err(error(
                field,
                "`$ref` must name an evaluator (a string)".to_owned(),
            ));
        };
        let compiled = match self.compiled.get(name) {
            Some(compiled) => Arc::clone(compiled),
            None => {
                if self.open.contains(name) {
                    return Err(error(
                        field,
                        format!("`$ref` cycle: {} → {name}", self.open.join(" → ")),
                    ));
                }
                let Some(logic) = self.evaluators.and_then(|all| all.get(name)) else {
                    return Err(error(
                        field,
                        format!(
                            "`$ref` to evaluator `{name}`, which `$evaluators` does not define"
                        ),
                    ));
                };
                self.open.push(name.clone());
                let compiled = self.compile(logic, &format!("$evaluators.{name}"));
                self.open.pop();
                let compiled = Arc::new(compiled?);
                self.compiled.insert(name.clone(), Arc::clone(&compiled));
                compiled
            }
        };
        if depth + compiled.depth > MAX_DEPTH {
            return Err(error(
                field,
                format!("nests deeper than {MAX_DEPTH} levels through `$ref` `{name}`"),
            ));
        }
        let shape = Shape {
            depth: compiled.depth + 1,
            nodes: compiled.nodes + 1,
            reads_time: compiled.reads_time,
            reads_context: compiled.reads_context,
        };
        Ok((Expr::Ref(compiled), shape))
    }
}

fn error(field: &str, problem: String) -> CompileError {
    CompileError {
        field: field.to_owned(),
        problem,
    }
}

/// The data a rule reads: the evaluation context.
pub(crate) trait Data {
    /// The attribute `key` (the first segment of a `var` path other than `targetingKey` and
    /// `$flagd`), when set.
    fn attribute(&self, key: &str) -> Option<Val<'_>>;
    /// The targeting key (what `fractional` buckets by when given no value).
    fn targeting_key(&self) -> Option<Val<'_>>;
    /// Every attribute as one object (for `{"var": ""}`: rare).
    fn object(&self) -> Map<String, Value>;
}

/// Everything one evaluation reads.
///
/// Generic over the data (the evaluation context, in practice): its reads are inlined into the
/// evaluator rather than called through a vtable.
pub(crate) struct Env<'a, D: ?Sized> {
    pub(crate) data: &'a D,
    pub(crate) flag_key: &'a str,
    /// `$flagd.timestamp`: seconds since the Unix epoch, read once per evaluation if needed.
    pub(crate) timestamp: u64,
    pub(crate) bucketing: Bucketing,
    /// Set when a `fractional` chose a bucket (the reason is then `SPLIT`).
    pub(crate) split: std::cell::Cell<bool>,
    /// Set when an operator failed (a division by zero): the evaluation is then an error.
    pub(crate) failed: std::cell::Cell<bool>,
    /// The last `fractional`'s point and total weight (`explain` shows the bucket).
    pub(crate) point: std::cell::Cell<Option<(u64, u64)>>,
}

/// What `var` reads from: the data, or an item of `map`/`filter`/`reduce`/`all`/`some`/`none`.
enum Scope<'s, 'a> {
    Root,
    Item(&'s Val<'a>),
}

impl<'a, D: Data + ?Sized> Env<'a, D> {
    /// Evaluates a compiled tree.
    pub(crate) fn eval(&self, expr: &'a Expr) -> Val<'a> {
        self.run(expr, &Scope::Root)
    }

    /// Whether a condition holds, as `if` reads it.
    pub(crate) fn holds(&self, expr: &'a Expr) -> bool {
        self.test(expr, &Scope::Root)
    }

    fn run(&self, expr: &'a Expr, scope: &Scope<'_, 'a>) -> Val<'a> {
        match expr {
            Expr::Lit(value) => Val::of(value),
            Expr::Array(items) => Val::List(items.iter().map(|e| self.run(e, scope)).collect()),
            Expr::Var(path, default) => self.var(path, default.as_deref(), scope),
            Expr::Ref(compiled) => self.run(&compiled.expr, scope),
            Expr::Op(op, args) => self.op(*op, args, scope),
            Expr::SemVer(value, against) => against.test(&self.run(value, scope)),
            Expr::Fractional(fractional) => self.fractional(fractional, scope),
            Expr::InStrings(needle, strings) => Val::Bool(match self.run(needle, scope) {
                Val::Str(needle) => strings.iter().any(|s| **s == *needle),
                _ => false,
            }),
            Expr::Affix(text, affix, starts) => match self.run(text, scope) {
                Val::Str(text) => Val::Bool(has_affix(&text, affix, *starts)),
                _ => Val::Null,
            },
        }
    }

    /// [`Self::run`] with a `var` or a literal read in place: the operands conditions read
    /// most, without a call (and a move of their value) through `run`.
    #[inline(always)]
    fn read(&self, expr: &'a Expr, scope: &Scope<'_, 'a>) -> Val<'a> {
        match expr {
            Expr::Var(path, default) => self.var(path, default.as_deref(), scope),
            Expr::Lit(value) => Val::of(value),
            _ => self.run(expr, scope),
        }
    }

    /// Whether `expr` is truthy: what a condition needs, worked out without building the
    /// values of `and`, `or`, `!`, `in` and `sem_ver` (the same evaluations, in the same order).
    fn test(&self, expr: &'a Expr, scope: &Scope<'_, 'a>) -> bool {
        match expr {
            // `and` answers its first falsy operand, or its last: truthy when all are (and
            // there is one).
            Expr::Op(Op::And, args) => !args.is_empty() && args.iter().all(|e| self.test(e, scope)),
            Expr::Op(Op::Or, args) => args.iter().any(|e| self.test(e, scope)),
            Expr::Op(Op::Not, args) => !args.first().is_some_and(|e| self.test(e, scope)),
            Expr::Op(Op::Truthy, args) => args.first().is_some_and(|e| self.test(e, scope)),
            Expr::InStrings(needle, strings) => match self.read(needle, scope) {
                Val::Str(needle) => strings.iter().any(|s| **s == *needle),
                _ => false,
            },
            Expr::SemVer(value, against) => against.holds(&self.read(value, scope)),
            Expr::Affix(text, affix, starts) => match self.read(text, scope) {
                Val::Str(text) => has_affix(&text, affix, *starts),
                _ => false,
            },
            _ => self.run(expr, scope).truthy(),
        }
    }

    fn var(&self, path: &'a Path, default: Option<&'a Expr>, scope: &Scope<'_, 'a>) -> Val<'a> {
        let found = match path {
            Path::Static(segments, head) => self.lookup_static(segments, *head, scope),
            Path::Dynamic(expr) => {
                let key = self.run(expr, scope);
                let key = key.to_text();
                if key.is_empty() {
                    self.lookup(std::iter::empty(), scope)
                } else {
                    self.lookup(key.split('.'), scope).map(owned)
                }
            }
        };
        match (found, default) {
            (Some(value), _) => value,
            (None, Some(default)) => self.run(default, scope),
            (None, None) => Val::Null,
        }
    }

    /// The value at a path known at load, its head worked out then; `None` when missing.
    #[inline]
    fn lookup_static(
        &self,
        segments: &'a [Box<str>],
        head: Head,
        scope: &Scope<'_, 'a>,
    ) -> Option<Val<'a>> {
        let (mut at, rest) = match (scope, head, segments) {
            (Scope::Root, Head::TargetingKey, [_, rest @ ..]) => (self.data.targeting_key()?, rest),
            (Scope::Root, Head::Attribute, [first, rest @ ..]) => {
                (self.data.attribute(first)?, rest)
            }
            _ => return self.lookup(segments.iter().map(|s| &**s), scope),
        };
        for segment in rest {
            at = at.step(segment)?;
        }
        // A value that is `null` reads as missing: the default applies.
        (!at.is_null()).then_some(at)
    }

    /// The value at `path` (every segment a field or an index), `None` when missing.
    fn lookup<'k>(
        &self,
        mut path: impl Iterator<Item = &'k str>,
        scope: &Scope<'_, 'a>,
    ) -> Option<Val<'a>> {
        let Some(first) = path.next() else {
            return Some(match scope {
                Scope::Root => Val::Object(Box::new(self.root_object())),
                Scope::Item(item) => (*item).clone(),
            });
        };
        let mut at = match scope {
            Scope::Item(item) => item.step(first)?,
            Scope::Root if first == "$flagd" => self.flagd(path.next())?,
            Scope::Root if first == "targetingKey" => self.data.targeting_key()?,
            Scope::Root => self.data.attribute(first)?,
        };
        for segment in path {
            at = at.step(segment)?;
        }
        // A value that is `null` reads as missing: the default applies.
        (!at.is_null()).then_some(at)
    }

    /// `$flagd` (with `field`, one of its fields).
    fn flagd(&self, field: Option<&str>) -> Option<Val<'a>> {
        match field {
            Some("flagKey") => Some(Val::Str(Cow::Borrowed(self.flag_key))),
            Some("timestamp") => Some(Val::Int(i128::from(self.timestamp))),
            Some(_) => None,
            None => Some(Val::Object(Box::new(self.flagd_object()))),
        }
    }

    fn flagd_object(&self) -> Map<String, Value> {
        let mut map = Map::new();
        map.insert("flagKey".into(), Value::String(self.flag_key.to_owned()));
        map.insert("timestamp".into(), Value::from(self.timestamp));
        map
    }

    fn root_object(&self) -> Map<String, Value> {
        let mut map = self.data.object();
        map.insert("$flagd".into(), Value::Object(self.flagd_object()));
        map
    }

    fn op(&self, op: Op, args: &'a [Expr], scope: &Scope<'_, 'a>) -> Val<'a> {
        let arg = |i: usize| args.get(i).map_or(Val::Null, |e| self.read(e, scope));
        match op {
            Op::If => {
                let mut pairs = args.chunks_exact(2);
                for pair in pairs.by_ref() {
                    if self.test(&pair[0], scope) {
                        return self.read(&pair[1], scope);
                    }
                }
                match pairs.remainder() {
                    [otherwise] => self.read(otherwise, scope),
                    _ => Val::Null,
                }
            }
            Op::Or | Op::And => {
                let mut last = Val::Null;
                for expr in args {
                    last = self.run(expr, scope);
                    if last.truthy() == (op == Op::Or) {
                        return last;
                    }
                }
                last
            }
            Op::Not => Val::Bool(!args.first().is_some_and(|e| self.test(e, scope))),
            Op::Truthy => Val::Bool(args.first().is_some_and(|e| self.test(e, scope))),
            Op::Eq => Val::Bool(value::loose_eq(&arg(0), &arg(1))),
            Op::Ne => Val::Bool(!value::loose_eq(&arg(0), &arg(1))),
            Op::StrictEq => Val::Bool(value::strict_eq(&arg(0), &arg(1))),
            Op::StrictNe => Val::Bool(!value::strict_eq(&arg(0), &arg(1))),
            Op::Lt | Op::Le | Op::Gt | Op::Ge => Val::Bool(self.relation(op, args, scope)),
            Op::StartsWith | Op::EndsWith => match (args.len(), arg(0), arg(1)) {
                (2, Val::Str(text), Val::Str(affix)) => {
                    Val::Bool(has_affix(&text, &affix, op == Op::StartsWith))
                }
                _ => Val::Null,
            },
            _ => self.op_rare(op, args, scope),
        }
    }

    /// The operators rules use less: out of line, so the frequent ones stay small.
    #[inline(never)]
    fn op_rare(&self, op: Op, args: &'a [Expr], scope: &Scope<'_, 'a>) -> Val<'a> {
        let arg = |i: usize| args.get(i).map_or(Val::Null, |e| self.run(e, scope));
        match op {
            Op::Max | Op::Min => {
                // The first of the extreme values, as it is (an integer stays one); NaN wins
                // only in first place (no comparison with it holds).
                let mut best: Option<Num> = None;
                for expr in args {
                    let n = self.run(expr, scope).to_number();
                    let better = best.is_none_or(|b| {
                        let order = n.cmp(b);
                        if op == Op::Max {
                            order == Some(Ordering::Greater)
                        } else {
                            order == Some(Ordering::Less)
                        }
                    });
                    if better {
                        best = Some(n);
                    }
                }
                best.map_or(Val::Float(f64::NAN), Num::val)
            }
            Op::Add | Op::Mul => {
                let (mut acc, apply): (Num, fn(Num, Num) -> Num) = if op == Op::Add {
                    (Num::Int(0), |a, b| {
                        arith(a, b, i128::checked_add, |x, y| x + y)
                    })
                } else {
                    (Num::Int(1), |a, b| {
                        arith(a, b, i128::checked_mul, |x, y| x * y)
                    })
                };
                for expr in args {
                    acc = apply(acc, self.run(expr, scope).to_number());
                }
                acc.val()
            }
            Op::Sub => {
                let a = arg(0).to_number();
                let b = arg(1);
                if args.len() < 2 || b.is_null() {
                    arith(Num::Int(0), a, i128::checked_sub, |x, y| x - y).val()
                } else {
                    arith(a, b.to_number(), i128::checked_sub, |x, y| x - y).val()
                }
            }
            Op::Div => {
                let (a, b) = (arg(0).to_number(), arg(1).to_number());
                if b.as_f64() == 0.0 {
                    return self.fail();
                }
                Val::Float(a.as_f64() / b.as_f64())
            }
            Op::Mod => {
                let (a, b) = (arg(0).to_number(), arg(1).to_number());
                if b.as_f64() == 0.0 {
                    return self.fail();
                }
                match (a, b) {
                    (Num::Int(x), Num::Int(y)) if x.checked_rem(y).is_some() => {
                        // Python's modulo takes the divisor's sign.
                        let r = x % y;
                        Val::Int(if r != 0 && (r < 0) != (y < 0) {
                            r + y
                        } else {
                            r
                        })
                    }
                    (x, y) => {
                        let (x, y) = (x.as_f64(), y.as_f64());
                        let r = x % y;
                        // Python's modulo takes the divisor's sign.
                        Val::Float(if r != 0.0 && (r < 0.0) != (y < 0.0) {
                            r + y
                        } else {
                            r
                        })
                    }
                }
            }
            Op::In => {
                let (needle, haystack) = (arg(0), arg(1));
                match &haystack {
                    Val::Str(text) => Val::Bool(text.contains(&*needle.to_text())),
                    list if list.is_array() => {
                        let n = list.len().unwrap_or(0);
                        Val::Bool(
                            (0..n)
                                .filter_map(|i| list.item(i))
                                .any(|item| value::strict_eq(&item, &needle)),
                        )
                    }
                    _ => Val::Bool(false),
                }
            }
            Op::Cat => {
                let mut text = String::new();
                for expr in args {
                    text.push_str(&self.run(expr, scope).to_text());
                }
                Val::Str(Cow::Owned(text))
            }
            Op::Substr => ops::substr(
                &arg(0),
                args.get(1).map(|_| arg(1)),
                args.get(2).map(|_| arg(2)),
            ),
            Op::Merge => {
                let mut merged = Vec::new();
                for expr in args {
                    let value = self.run(expr, scope);
                    match value.items() {
                        Some(items) => merged.extend(items),
                        None => merged.push(value),
                    }
                }
                Val::List(merged)
            }
            Op::Missing => {
                let keys = match args.first() {
                    Some(first) => {
                        let first = self.run(first, scope);
                        match first.items() {
                            Some(items) => items,
                            None => std::iter::once(first)
                                .chain(args[1..].iter().map(|e| self.run(e, scope)))
                                .collect(),
                        }
                    }
                    None => Vec::new(),
                };
                Val::List(self.missing(keys, scope))
            }
            Op::MissingSome => {
                let need = arg(0).to_number();
                let Some(keys) = arg(1).items() else {
                    return Val::List(Vec::new());
                };
                let total = keys.len();
                let missing = self.missing(keys, scope);
                let present = Num::Int((total - missing.len()) as i128);
                if matches!(present.cmp(need), Some(Ordering::Greater | Ordering::Equal)) {
                    Val::List(Vec::new())
                } else {
                    Val::List(missing)
                }
            }
            Op::All | Op::None if args.len() < 2 => Val::Bool(op == Op::None),
            Op::Map | Op::Filter | Op::All | Op::None | Op::Some => {
                let list = arg(0);
                let Some(items) = list.items() else {
                    return match op {
                        Op::Map | Op::Filter => Val::List(Vec::new()),
                        Op::None => Val::Bool(true),
                        _ => Val::Bool(false),
                    };
                };
                let Some(logic) = args.get(1) else {
                    return match op {
                        Op::Map | Op::Filter => Val::List(Vec::new()),
                        _ => Val::Bool(false),
                    };
                };
                let apply = |item: &Val<'a>| self.run(logic, &Scope::Item(item));
                match op {
                    Op::Map => Val::List(items.iter().map(|i| owned(apply(i))).collect()),
                    Op::Filter => {
                        Val::List(items.into_iter().filter(|i| apply(i).truthy()).collect())
                    }
                    Op::All => {
                        Val::Bool(!items.is_empty() && items.iter().all(|i| apply(i).truthy()))
                    }
                    Op::Some => Val::Bool(items.iter().any(|i| apply(i).truthy())),
                    _ => Val::Bool(!items.iter().any(|i| apply(i).truthy())),
                }
            }
            Op::Reduce => {
                let items = arg(0).items();
                let initial = arg(2);
                let (Some(items), Some(logic)) = (items, args.get(1)) else {
                    return initial;
                };
                items.into_iter().fold(initial, |accumulator, current| {
                    let mut scope = Map::new();
                    scope.insert("current".into(), current.to_json());
                    scope.insert("accumulator".into(), accumulator.to_json());
                    let scope = Val::Object(Box::new(scope));
                    owned(self.run(logic, &Scope::Item(&scope)))
                })
            }
            Op::SemVer => match args {
                [a, op, b] => ops::sem_ver(
                    &self.run(a, scope),
                    &self.run(op, scope),
                    &self.run(b, scope),
                ),
                _ => Val::Null,
            },
            // Compiled as `Expr::Fractional`.
            Op::Fractional => Val::Null,
            // The frequent ones, answered by `op`.
            _ => self.op(op, args, scope),
        }
    }

    /// An operator that raised: the evaluation ends as an error (`GENERAL`).
    fn fail(&self) -> Val<'a> {
        self.failed.set(true);
        Val::Null
    }

    /// `<`, `<=`, `>`, `>=`; with a third argument that is not `null`, `a op b op c`.
    fn relation(&self, op: Op, args: &'a [Expr], scope: &Scope<'_, 'a>) -> bool {
        use std::cmp::Ordering::{Equal, Greater, Less};
        let holds = |a: &Val<'_>, b: &Val<'_>| {
            let ordering = value::compare(a, b);
            match op {
                Op::Lt => ordering == Some(Less),
                Op::Le => matches!(ordering, Some(Less | Equal)),
                Op::Gt => ordering == Some(Greater),
                _ => matches!(ordering, Some(Greater | Equal)),
            }
        };
        let a = args.first().map_or(Val::Null, |e| self.run(e, scope));
        let b = args.get(1).map_or(Val::Null, |e| self.run(e, scope));
        match args.get(2).map(|c| self.run(c, scope)) {
            Some(c) if !c.is_null() => holds(&a, &b) && holds(&b, &c),
            _ => holds(&a, &b),
        }
    }

    fn missing(&self, keys: Vec<Val<'a>>, scope: &Scope<'_, 'a>) -> Vec<Val<'a>> {
        keys.into_iter()
            .filter(|key| {
                let name = key.to_text();
                let found = if name.is_empty() || key.is_null() {
                    self.lookup(std::iter::empty(), scope)
                } else {
                    self.lookup(name.split('.'), scope)
                };
                match found {
                    None => true,
                    Some(Val::Str(s)) => s.is_empty(),
                    Some(_) => false,
                }
            })
            .collect()
    }

    /// `fractional`: the bucketing value (the first argument, unless it is a bucket) or the
    /// flag key with the targeting key, hashed; the bucket whose cumulative weight covers it.
    fn fractional(&self, fractional: &'a Fractional, scope: &Scope<'_, 'a>) -> Val<'a> {
        let args = &fractional.args;
        let Some(first_expr) = args.first() else {
            return Val::Null;
        };
        // A bucket written first (the usual form: no bucketing value) needs no evaluation.
        if let (Expr::Lit(Value::Array(_)), Buckets::Known { .. }) = (first_expr, &fractional.all) {
            return self.pick(false, &Val::Null, &fractional.all);
        }
        let first = self.run(first_expr, scope);
        let explicit = match self.bucketing {
            Bucketing::V3 => !first.is_array(),
            Bucketing::V2 => matches!(first, Val::Str(_)),
        };
        let known = match (explicit, first_expr) {
            (true, _) => &fractional.rest,
            (false, Expr::Lit(_)) => &fractional.all,
            (false, _) => &Buckets::Dynamic,
        };
        match known {
            Buckets::Dynamic => self.fractional_dynamic(explicit, first, args, scope),
            known => self.pick(explicit, &first, known),
        }
    }

    /// The bucket of this evaluation among buckets known at load.
    #[inline]
    fn pick(&self, explicit: bool, first: &Val<'_>, known: &'a Buckets) -> Val<'a> {
        let Buckets::Known {
            names,
            cumulative,
            total,
        } = known
        else {
            return Val::Null;
        };
        let Some(hash) = self.bucket_hash(explicit, first) else {
            return Val::Null;
        };
        let point = (u64::from(hash) * total) >> 32;
        self.point.set(Some((point, *total)));
        // A scan: a handful of buckets, and the hash just computed (a binary search waits on
        // it at every step).
        match cumulative
            .iter()
            .position(|&c| point < c)
            .and_then(|at| names.get(at))
        {
            Some(name) => {
                self.split.set(true);
                Val::of(name)
            }
            None => Val::Null,
        }
    }

    /// The hash that places this evaluation: of the bucketing value, or of the flag key with the
    /// targeting key (a non-empty string, else none).
    fn bucket_hash(&self, explicit: bool, first: &Val<'_>) -> Option<u32> {
        if explicit {
            return ops::hash_value(self.bucketing, first);
        }
        match self.data.targeting_key() {
            Some(Val::Str(key)) if !key.is_empty() => {
                Some(ops::hash_keys(self.bucketing, self.flag_key, &key))
            }
            _ => None,
        }
    }

    /// `fractional` with buckets computed by expressions: two passes over them (the total
    /// weight, then the pick), evaluating them again rather than collecting them.
    fn fractional_dynamic(
        &self,
        explicit: bool,
        first: Val<'a>,
        args: &'a [Expr],
        scope: &Scope<'_, 'a>,
    ) -> Val<'a> {
        let buckets = if explicit { &args[1..] } else { args };
        let entry = |i: usize| match (explicit, i) {
            (false, 0) => first.clone(),
            _ => self.run(&buckets[i], scope),
        };
        let mut total: u64 = 0;
        for i in 0..buckets.len() {
            match ops::bucket(&entry(i)) {
                Some((_, weight)) => total += weight,
                None => return Val::Null,
            }
        }
        if total == 0 || total > MAX_TOTAL_WEIGHT {
            return Val::Null;
        }
        let Some(hash) = self.bucket_hash(explicit, &first) else {
            return Val::Null;
        };
        let point = (u64::from(hash) * total) >> 32;
        self.point.set(Some((point, total)));
        let mut cumulative = 0;
        for i in 0..buckets.len() {
            let Some((variant, weight)) = ops::bucket(&entry(i)) else {
                return Val::Null;
            };
            cumulative += weight;
            if point < cumulative {
                self.split.set(true);
                return variant;
            }
        }
        Val::Null
    }
}

/// `a op b` on numbers: integers stay integers (a float when the result leaves `i128`), any
/// float makes a float.
fn arith(a: Num, b: Num, int: fn(i128, i128) -> Option<i128>, float: fn(f64, f64) -> f64) -> Num {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => {
            int(x, y).map_or_else(|| Num::Float(float(x as f64, y as f64)), Num::Int)
        }
        (x, y) => Num::Float(float(x.as_f64(), y.as_f64())),
    }
}

/// A value that may borrow from a scope that is about to end, made independent of it.
fn owned<'a>(value: Val<'_>) -> Val<'a> {
    match value {
        Val::Null => Val::Null,
        Val::Bool(b) => Val::Bool(b),
        Val::Int(n) => Val::Int(n),
        Val::Float(n) => Val::Float(n),
        Val::Str(s) => Val::Str(Cow::Owned(s.into_owned())),
        other => Val::owned(other.to_json()),
    }
}
