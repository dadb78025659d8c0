//! flagd's own operators beside JsonLogic's: `fractional` (weighted, sticky buckets), `sem_ver`,
//! and the string helper `substr` they share with JsonLogic.

use std::borrow::Cow;
use std::cmp::Ordering;

use super::value::Val;

/// How `fractional` turns the bucketing value into bytes to hash. A user's bucket depends on it:
/// changing it moves users between variants, so it is chosen per source, never silently.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Bucketing {
    /// flagd's accepted design (ADR "Harden hashing consistency", the Python provider from 0.6,
    /// `flagd-evaluation-engine`): murmur3 (x86, 32 bits, seed 0) of the deterministic CBOR
    /// encoding of the bucketing value, or of `[flagKey, targetingKey]` when none is given.
    #[default]
    V3,
    /// flagd's Go daemon and `@openfeature/flagd-core` 4.x (the Python provider before 0.6):
    /// murmur3 of the UTF-8 bucketing string, or of `flagKey` followed by `targetingKey`.
    V2,
}

impl Bucketing {
    /// Its name in a source marker and in the README: `v3` or `v2`.
    pub fn name(self) -> &'static str {
        match self {
            Self::V3 => "v3",
            Self::V2 => "v2",
        }
    }
}

/// One bucket of a `fractional`: `[name]` or `[name, weight]`, the weight an integer (1 when
/// not given; a negative weight counts as 0). Anything else is no bucket.
pub(crate) fn bucket<'a>(entry: &Val<'a>) -> Option<(Val<'a>, u64)> {
    let weight = match entry.len()? {
        1 => 1,
        2 => match entry.item(1)? {
            Val::Int(n) => u64::try_from(n.max(0)).ok()?,
            _ => return None,
        },
        _ => return None,
    };
    Some((entry.item(0)?, weight))
}

/// The hash of an explicit bucketing value; `None` when it cannot be bucketed (null; under v2,
/// anything but a non-empty string).
pub(crate) fn hash_value(bucketing: Bucketing, value: &Val<'_>) -> Option<u32> {
    match (bucketing, value) {
        (_, Val::Null) => None,
        (Bucketing::V2, Val::Str(text)) if text.is_empty() => None,
        (Bucketing::V2, Val::Str(text)) => Some(murmur3(text.as_bytes())),
        (Bucketing::V2, _) => None,
        (Bucketing::V3, Val::Str(text)) => {
            let mut hasher = Murmur3::new();
            hasher.write(cbor_head(MAJOR_TEXT, text.len() as u64).as_slice());
            hasher.write(text.as_bytes());
            Some(hasher.finish())
        }
        (Bucketing::V3, other) => {
            let mut bytes = Vec::new();
            cbor(&other.to_json(), &mut bytes);
            Some(murmur3(&bytes))
        }
    }
}

/// The hash of the implicit bucketing value: the flag key with the targeting key. Short keys
/// are laid out in a stack buffer and hashed in one pass; longer ones are hashed in pieces.
pub(crate) fn hash_keys(bucketing: Bucketing, flag_key: &str, targeting_key: &str) -> u32 {
    let (flag, key) = (flag_key.as_bytes(), targeting_key.as_bytes());
    let mut buffer = [0u8; 64];
    if flag.len() < 24 && key.len() < 24 {
        let at = match bucketing {
            Bucketing::V3 => {
                // [flagKey, targetingKey]: an array of two, each text head one byte.
                buffer[0] = 0x80 | 2;
                buffer[1] = (MAJOR_TEXT << 5) | flag.len() as u8;
                buffer[2..2 + flag.len()].copy_from_slice(flag);
                buffer[2 + flag.len()] = (MAJOR_TEXT << 5) | key.len() as u8;
                3 + flag.len()
            }
            Bucketing::V2 => {
                buffer[..flag.len()].copy_from_slice(flag);
                flag.len()
            }
        };
        buffer[at..at + key.len()].copy_from_slice(key);
        return murmur3(&buffer[..at + key.len()]);
    }
    let mut hasher = Murmur3::new();
    if bucketing == Bucketing::V3 {
        // The CBOR array [flagKey, targetingKey].
        hasher.write(&[0x80 | 2]);
        hasher.write(cbor_head(MAJOR_TEXT, flag_key.len() as u64).as_slice());
        hasher.write(flag_key.as_bytes());
        hasher.write(cbor_head(MAJOR_TEXT, targeting_key.len() as u64).as_slice());
    } else {
        hasher.write(flag_key.as_bytes());
    }
    hasher.write(targeting_key.as_bytes());
    hasher.finish()
}

/// murmur3, x86, 32 bits, seed 0: the hash every flagd evaluator uses.
pub fn murmur3(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0;
    let mut blocks = bytes.chunks_exact(4);
    for block in &mut blocks {
        h = Murmur3::step(
            h,
            u32::from_le_bytes([block[0], block[1], block[2], block[3]]),
        );
    }
    let tail = blocks
        .remainder()
        .iter()
        .enumerate()
        .fold(0u32, |k, (i, b)| k | u32::from(*b) << (8 * i));
    if !blocks.remainder().is_empty() {
        h ^= Murmur3::mix(tail);
    }
    Murmur3::fmix(h ^ bytes.len() as u32)
}

/// murmur3 (x86, 32 bits, seed 0) fed in pieces: the bucketing value's encoding is hashed as it
/// is laid out, with no buffer. Written here because the `murmur3` crate reads through
/// `io::Read`, four bytes a call, which cost a third of a bucket's time (`make bench`); the
/// testbed's vectors and the crate itself check it (tests).
struct Murmur3 {
    h: u32,
    /// Bytes not yet in a 4-byte block, little-endian.
    pending: u32,
    pending_len: u32,
    len: u32,
}

impl Murmur3 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;

    fn new() -> Self {
        Self {
            h: 0,
            pending: 0,
            pending_len: 0,
            len: 0,
        }
    }

    #[inline]
    fn mix(k: u32) -> u32 {
        k.wrapping_mul(Self::C1)
            .rotate_left(15)
            .wrapping_mul(Self::C2)
    }

    #[inline]
    fn step(h: u32, k: u32) -> u32 {
        (h ^ Self::mix(k))
            .rotate_left(13)
            .wrapping_mul(5)
            .wrapping_add(0xe654_6b64)
    }

    #[inline]
    fn fmix(mut h: u32) -> u32 {
        h ^= h >> 16;
        h = h.wrapping_mul(0x85eb_ca6b);
        h ^= h >> 13;
        h = h.wrapping_mul(0xc2b2_ae35);
        h ^ (h >> 16)
    }

    #[inline]
    fn block(&mut self, k: u32) {
        self.h = Self::step(self.h, k);
    }

    fn write(&mut self, mut bytes: &[u8]) {
        // The reference takes the length's low 32 bits.
        self.len = self.len.wrapping_add(bytes.len() as u32);
        while self.pending_len > 0 {
            let Some((&byte, rest)) = bytes.split_first() else {
                return;
            };
            self.pending |= u32::from(byte) << (8 * self.pending_len);
            self.pending_len += 1;
            bytes = rest;
            if self.pending_len == 4 {
                let k = self.pending;
                self.block(k);
                self.pending = 0;
                self.pending_len = 0;
            }
        }
        let mut blocks = bytes.chunks_exact(4);
        for block in &mut blocks {
            self.block(u32::from_le_bytes([block[0], block[1], block[2], block[3]]));
        }
        for (i, byte) in blocks.remainder().iter().enumerate() {
            self.pending |= u32::from(*byte) << (8 * i);
        }
        self.pending_len = blocks.remainder().len() as u32;
    }

    fn finish(&self) -> u32 {
        let mut h = self.h;
        if self.pending_len > 0 {
            h ^= Self::mix(self.pending);
        }
        Self::fmix(h ^ self.len)
    }
}

const MAJOR_UNSIGNED: u8 = 0;
const MAJOR_NEGATIVE: u8 = 1;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;

/// A CBOR head (major type and argument) in its shortest form.
fn cbor_head(major: u8, argument: u64) -> CborHead {
    let major = major << 5;
    let mut head = CborHead {
        bytes: [0; 9],
        len: 0,
    };
    let mut put = |bytes: &[u8]| {
        head.bytes[..bytes.len()].copy_from_slice(bytes);
        head.len = bytes.len();
    };
    match argument {
        0..=23 => put(&[major | argument as u8]),
        24..=0xff => put(&[major | 24, argument as u8]),
        0x100..=0xffff => {
            let [a, b] = (argument as u16).to_be_bytes();
            put(&[major | 25, a, b]);
        }
        0x1_0000..=0xffff_ffff => {
            let [a, b, c, d] = (argument as u32).to_be_bytes();
            put(&[major | 26, a, b, c, d]);
        }
        _ => {
            let [a, b, c, d, e, f, g, h] = argument.to_be_bytes();
            put(&[major | 27, a, b, c, d, e, f, g, h]);
        }
    }
    head
}

struct CborHead {
    bytes: [u8; 9],
    len: usize,
}

impl CborHead {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The deterministic CBOR encoding (RFC 8949 §4.2.1) of a JSON value, as flagd's ADR fixes it:
/// a number without a fraction in [-2^63, 2^64) is an integer (-0.0 is 0), any other number the
/// shortest float that holds it exactly; map keys sorted by their encoding (length, then bytes).
pub(crate) fn cbor(value: &serde_json::Value, out: &mut Vec<u8>) {
    use serde_json::Value;
    match value {
        Value::Null => out.push(0xf6),
        Value::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.extend_from_slice(cbor_head(MAJOR_UNSIGNED, u).as_slice());
            } else if let Some(i) = n.as_i64() {
                out.extend_from_slice(cbor_head(MAJOR_NEGATIVE, !(i as u64)).as_slice());
            } else {
                cbor_float(n.as_f64().unwrap_or(f64::NAN), out);
            }
        }
        Value::String(text) => {
            out.extend_from_slice(cbor_head(MAJOR_TEXT, text.len() as u64).as_slice());
            out.extend_from_slice(text.as_bytes());
        }
        Value::Array(items) => {
            out.extend_from_slice(cbor_head(MAJOR_ARRAY, items.len() as u64).as_slice());
            for item in items {
                cbor(item, out);
            }
        }
        Value::Object(map) => {
            out.extend_from_slice(cbor_head(MAJOR_MAP, map.len() as u64).as_slice());
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_by(|a, b| {
                a.len()
                    .cmp(&b.len())
                    .then_with(|| a.as_bytes().cmp(b.as_bytes()))
            });
            for key in keys {
                cbor(&Value::String(key.clone()), out);
                if let Some(value) = map.get(key) {
                    cbor(value, out);
                }
            }
        }
    }
}

/// A float: an integer when it is one (within 64 bits), else the shortest exact float.
fn cbor_float(n: f64, out: &mut Vec<u8>) {
    const TWO_64: f64 = 18_446_744_073_709_551_616.0;
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if n.fract() == 0.0 && (-TWO_63..TWO_64).contains(&n) {
        if n >= 0.0 {
            out.extend_from_slice(cbor_head(MAJOR_UNSIGNED, n as u64).as_slice());
        } else {
            out.extend_from_slice(cbor_head(MAJOR_NEGATIVE, (-1.0 - n) as u64).as_slice());
        }
        return;
    }
    let half = half::f16::from_f64(n);
    if half.to_f64() == n || (n.is_nan() && half.is_nan()) {
        out.push(0xf9);
        out.extend_from_slice(&half.to_bits().to_be_bytes());
    } else if f64::from(n as f32) == n {
        out.push(0xfa);
        out.extend_from_slice(&(n as f32).to_be_bytes());
    } else {
        out.push(0xfb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// A `sem_ver` operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SemOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `^`: the same major version.
    Major,
    /// `~`: the same major and minor versions.
    Minor,
}

impl SemOp {
    /// The operator a string names, if it names one.
    pub(crate) fn named(name: &str) -> Option<Self> {
        Some(match name {
            "=" => Self::Eq,
            "!=" => Self::Ne,
            "<" => Self::Lt,
            "<=" => Self::Le,
            ">" => Self::Gt,
            ">=" => Self::Ge,
            "^" => Self::Major,
            "~" => Self::Minor,
            _ => return None,
        })
    }

    /// Whether `a op b` holds.
    fn holds<A: AsRef<str>, B: AsRef<str>>(self, a: &Version<A>, b: &Version<B>) -> bool {
        let order = a.order(b);
        match self {
            Self::Eq => order == Ordering::Equal,
            Self::Ne => order != Ordering::Equal,
            Self::Lt => order == Ordering::Less,
            Self::Le => order != Ordering::Greater,
            Self::Gt => order == Ordering::Greater,
            Self::Ge => order != Ordering::Less,
            Self::Major => a.core[0] == b.core[0],
            Self::Minor => a.core[..2] == b.core[..2],
        }
    }
}

/// `sem_ver`: `[version, operator, version]` → whether the relation holds; `null` when either
/// version is not one or the operator is unknown. Versions may have a `v`/`V` prefix and omit
/// the minor and patch; build metadata is ignored; pre-releases order as semver says.
pub(crate) fn sem_ver<'a>(a: &Val<'_>, op: &Val<'_>, b: &Val<'_>) -> Val<'a> {
    let (a, b) = (version_text(a), version_text(b));
    match (
        Version::parse(&a),
        op.as_str().and_then(SemOp::named),
        Version::parse(&b),
    ) {
        (Some(a), Some(op), Some(b)) => Val::Bool(op.holds(&a, &b)),
        _ => Val::Null,
    }
}

/// `sem_ver` against an operator and a version written in the rule, both read at load.
#[derive(Debug, PartialEq)]
pub(crate) struct SemVerAgainst {
    op: Option<SemOp>,
    version: Option<Version<Box<str>>>,
}

impl SemVerAgainst {
    /// The literal operator and version of a rule.
    pub(crate) fn new(op: &str, version: &Val<'_>) -> Self {
        Self {
            op: SemOp::named(op),
            version: Version::parse(&version_text(version)).map(Version::into_owned),
        }
    }

    /// Whether `value op version` holds; `null` as [`sem_ver`] says.
    pub(crate) fn test<'a>(&self, value: &Val<'_>) -> Val<'a> {
        let text = version_text(value);
        match (Version::parse(&text), self.op, &self.version) {
            (Some(a), Some(op), Some(b)) => Val::Bool(op.holds(&a, b)),
            _ => Val::Null,
        }
    }

    /// Whether `value op version` holds, as a condition reads it (`null` is false).
    pub(crate) fn holds(&self, value: &Val<'_>) -> bool {
        let (Some(op), Some(b)) = (self.op, &self.version) else {
            return false;
        };
        Version::parse(&version_text(value)).is_some_and(|a| op.holds(&a, b))
    }
}

/// A semantic version: major, minor, patch and pre-release identifiers (borrowed from the text
/// it was read from, or owned).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Version<S> {
    core: [u64; 3],
    pre: Vec<Identifier<S>>,
}

#[derive(Debug, PartialEq, Eq)]
enum Identifier<S> {
    // Numeric identifiers sort before alphanumeric ones.
    Numeric(u64),
    Text(S),
}

impl<S: AsRef<str>> Identifier<S> {
    fn order<T: AsRef<str>>(&self, other: &Identifier<T>) -> Ordering {
        match (self, other) {
            (Self::Numeric(a), Identifier::Numeric(b)) => a.cmp(b),
            (Self::Numeric(_), Identifier::Text(_)) => Ordering::Less,
            (Self::Text(_), Identifier::Numeric(_)) => Ordering::Greater,
            (Self::Text(a), Identifier::Text(b)) => a.as_ref().cmp(b.as_ref()),
        }
    }
}

/// A version's text: a string, or anything else as Python's `str()` writes it (`1` → "1",
/// `1.2` → "1.2", `true` → "True", which is no version).
fn version_text<'v>(value: &'v Val<'_>) -> Cow<'v, str> {
    match value {
        Val::Str(s) => Cow::Borrowed(&**s),
        other => Cow::Owned(other.python_str()),
    }
}

impl<'s> Version<&'s str> {
    /// Strict semver after a `v`/`V` prefix, with a missing minor and patch read as 0; at most
    /// 255 characters.
    fn parse(text: &'s str) -> Option<Self> {
        let text = text.strip_prefix(['v', 'V']).unwrap_or(text);
        if text.len() > 255 {
            return None;
        }
        if let Some(core) = plain_core(text) {
            return Some(Version {
                core,
                pre: Vec::new(),
            });
        }
        // Byte searches: `split_once` with a char pattern cost a sixth of a rule's time.
        let position = |text: &str, byte: u8| text.as_bytes().iter().position(|&b| b == byte);
        let text = match position(text, b'+') {
            None => text,
            Some(at) => {
                let valid = text[at + 1..].split('.').all(|id| {
                    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
                if !valid {
                    return None;
                }
                &text[..at]
            }
        };
        let (core_text, pre_text) = match position(text, b'-') {
            Some(at) => (&text[..at], Some(&text[at + 1..])),
            None => (text, None),
        };
        let mut core = [0; 3];
        let (mut part, mut start) = (0, 0);
        for (i, byte) in core_text.bytes().chain([b'.']).enumerate() {
            if byte == b'.' {
                *core.get_mut(part)? = numeric(&core_text[start..i.min(core_text.len())])?;
                part += 1;
                start = i + 1;
            }
        }
        let pre = match pre_text {
            None => Vec::new(),
            Some(pre) => pre
                .split('.')
                .map(|id| {
                    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    {
                        None
                    } else if id.bytes().all(|b| b.is_ascii_digit()) {
                        numeric(id).map(Identifier::Numeric)
                    } else {
                        Some(Identifier::Text(id))
                    }
                })
                .collect::<Option<Vec<_>>>()?,
        };
        Some(Version { core, pre })
    }

    fn into_owned(self) -> Version<Box<str>> {
        Version {
            core: self.core,
            pre: self
                .pre
                .into_iter()
                .map(|id| match id {
                    Identifier::Numeric(n) => Identifier::Numeric(n),
                    Identifier::Text(t) => Identifier::Text(Box::from(t)),
                })
                .collect(),
        }
    }
}

impl<S: AsRef<str>> Version<S> {
    /// Semver's order: the core, then a pre-release before its release, then the pre-release
    /// identifiers one by one (a prefix first). Build metadata was dropped.
    fn order<T: AsRef<str>>(&self, other: &Version<T>) -> Ordering {
        self.core
            .cmp(&other.core)
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self
                    .pre
                    .iter()
                    .zip(&other.pre)
                    .map(|(a, b)| a.order(b))
                    .find(|o| o.is_ne())
                    .unwrap_or_else(|| self.pre.len().cmp(&other.pre.len())),
            })
    }
}

/// `major[.minor[.patch]]` and nothing else, read in one pass (the common case); `None` sends
/// anything else to the full parse, which also refuses what this refuses.
fn plain_core(text: &str) -> Option<[u64; 3]> {
    let mut core = [0u64; 3];
    let (mut part, mut digits, mut leading_zero) = (0, 0, false);
    for &byte in text.as_bytes() {
        match byte {
            b'0'..=b'9' => {
                if digits == 1 && leading_zero {
                    return None;
                }
                if digits == 0 {
                    leading_zero = byte == b'0';
                }
                let slot = core.get_mut(part)?;
                *slot = slot.checked_mul(10)?.checked_add(u64::from(byte - b'0'))?;
                digits += 1;
            }
            b'.' if digits > 0 && part < 2 => {
                part += 1;
                digits = 0;
            }
            _ => return None,
        }
    }
    (digits > 0).then_some(core)
}

/// A numeric identifier: digits, no leading zero (its value, worked out as it is checked).
fn numeric(part: &str) -> Option<u64> {
    let bytes = part.as_bytes();
    if bytes.is_empty() || (bytes.len() > 1 && bytes[0] == b'0') {
        return None;
    }
    bytes.iter().try_fold(0u64, |n, &b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// JsonLogic's `substr`, counted in characters: from `start` (from the end when negative;
/// NaN is 0), `length` characters (to the end when absent or `null`; none when NaN; up to that
/// many from the end when negative).
pub(crate) fn substr<'a>(
    source: &Val<'_>,
    start: Option<Val<'_>>,
    length: Option<Val<'_>>,
) -> Val<'a> {
    let text = source.to_text();
    let chars: Vec<char> = text.chars().collect();
    let len = chars.len() as i128;
    let int = |n: f64| n.trunc().clamp(-1e30, 1e30) as i128;
    let start = start.map_or(0.0, |v| v.to_number().as_f64());
    let from = if start.is_nan() {
        0
    } else if start < 0.0 {
        (len + int(start)).max(0)
    } else {
        int(start).min(len)
    };
    let to = match length.filter(|v| !v.is_null()) {
        None => len,
        Some(v) => {
            let n = v.to_number().as_f64();
            if n.is_nan() {
                from
            } else if n < 0.0 {
                (len + int(n)).max(from)
            } else {
                (from + int(n)).min(len)
            }
        }
    };
    let (from, to) = (from as usize, to.max(from) as usize);
    Val::Str(Cow::Owned(chars[from..to].iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Val<'_> {
        Val::Str(Cow::Borrowed(text))
    }

    #[test]
    fn murmur3_matches_the_testbeds_edge_vectors() {
        // Keys the flagd testbed found by search, with their murmur3 x86_32 (seed 0).
        for (key, hash) in [
            ("ejOoVL", 0),
            ("bY9fO-", 1),
            ("SI7p-", 2_147_483_647),
            ("6LvT0", 2_147_483_648),
            ("ceQdGm", 4_294_967_295),
        ] {
            assert_eq!(murmur3(key.as_bytes()), hash, "{key}");
        }
    }

    #[test]
    fn murmur3_agrees_with_the_murmur3_crate() {
        let mut rng = fastrand::Rng::with_seed(7);
        for len in 0..300 {
            let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            let expected = murmur3::murmur3_32(&mut bytes.as_slice(), 0).ok();
            assert_eq!(Some(super::murmur3(&bytes)), expected, "{len} bytes");
        }
    }

    #[test]
    fn murmur3_fed_in_pieces_is_murmur3_of_the_whole() {
        let bytes: Vec<u8> = (0..64u8).collect();
        for cut in 0..bytes.len() {
            for cut2 in cut..bytes.len() {
                let mut hasher = Murmur3::new();
                hasher.write(&bytes[..cut]);
                hasher.write(&bytes[cut..cut2]);
                hasher.write(&bytes[cut2..]);
                assert_eq!(hasher.finish(), murmur3(&bytes), "{cut} {cut2}");
            }
        }
    }

    #[test]
    fn keys_hash_as_their_encoding_short_or_long() {
        for (flag, key) in [
            ("f", "u"),
            ("flag", ""),
            ("a-23-byte-long-flag-key", "k"),
            ("f", "a-24-bytes-long-user-key"),
        ] {
            let mut encoded = Vec::new();
            cbor(&serde_json::json!([flag, key]), &mut encoded);
            assert_eq!(hash_keys(Bucketing::V3, flag, key), murmur3(&encoded));
            assert_eq!(
                hash_keys(Bucketing::V2, flag, key),
                murmur3(format!("{flag}{key}").as_bytes())
            );
        }
        let key = "k".repeat(500);
        let mut encoded = Vec::new();
        cbor(&serde_json::json!(["flag", key]), &mut encoded);
        assert_eq!(hash_keys(Bucketing::V3, "flag", &key), murmur3(&encoded));
        let text = Val::Str(Cow::Owned("é".repeat(300)));
        let mut encoded = Vec::new();
        cbor(&serde_json::json!("é".repeat(300)), &mut encoded);
        assert_eq!(hash_value(Bucketing::V3, &text), Some(murmur3(&encoded)));
    }

    #[test]
    fn cbor_is_deterministic_and_shortest() {
        let encode = |v: serde_json::Value| {
            let mut out = Vec::new();
            cbor(&v, &mut out);
            out
        };
        assert_eq!(encode(serde_json::json!("a")), [0x61, b'a']);
        assert_eq!(encode(serde_json::json!(500)), [0x19, 0x01, 0xf4]);
        assert_eq!(encode(serde_json::json!(-1)), [0x20]);
        assert_eq!(encode(serde_json::json!(1.0)), [0x01]);
        assert_eq!(encode(serde_json::json!(-0.0)), [0x00]);
        assert_eq!(encode(serde_json::json!(1.5)), [0xf9, 0x3e, 0x00]);
        assert_eq!(
            encode(serde_json::json!(100000.5)),
            [0xfa, 0x47, 0xc3, 0x50, 0x40]
        );
        assert_eq!(encode(serde_json::json!(1.1))[0], 0xfb);
        // Keys by length, then bytes: "b" before "aa".
        assert_eq!(
            encode(serde_json::json!({"aa": 1, "b": 2})),
            [0xa2, 0x61, b'b', 0x02, 0x62, b'a', b'a', 0x01]
        );
        // The [flagKey, targetingKey] laid out by hand is the encoded array.
        let laid_out = hash_keys(Bucketing::V3, "flag", "user");
        assert_eq!(
            laid_out,
            murmur3(&encode(serde_json::json!(["flag", "user"])))
        );
    }

    #[test]
    fn a_bucket_is_a_name_and_an_integer_weight() {
        let list = |items: Vec<Val<'static>>| Val::List(items);
        assert_eq!(bucket(&list(vec![s("a")])), Some((s("a"), 1)));
        assert_eq!(bucket(&list(vec![s("a"), Val::Int(-5)])), Some((s("a"), 0)));
        assert_eq!(bucket(&list(vec![s("a"), Val::Float(50.0)])), None);
        assert_eq!(bucket(&list(vec![s("a"), Val::Bool(true)])), None);
        assert_eq!(bucket(&list(vec![])), None);
        assert_eq!(bucket(&s("a")), None);
    }

    #[test]
    fn versions_parse_leniently_and_order_as_semver() {
        let v = |t| Version::parse(t);
        let less = |a, b| v(a).zip(v(b)).is_some_and(|(a, b)| a.order(&b).is_lt());
        assert_eq!(v("v1.2").map(|v| v.core), Some([1, 2, 0]));
        assert_eq!(v("1").map(|v| v.core), Some([1, 0, 0]));
        assert!(v("2.0.0.0").is_none());
        assert!(v("1.02.0").is_none());
        assert!(v("not-a-version").is_none());
        assert!(less("1.0.0-alpha", "1.0.0"));
        assert!(less("1.0.0-alpha", "1.0.0-alpha.1"));
        assert!(less("1.0.0-alpha.1", "1.0.0-alpha.beta"));
        assert!(less("1.0.0-2", "1.0.0-10"));
        assert_eq!(v("1.0.0+build"), v("1.0.0"));
        assert!(v("1.0.0+b..c").is_none());
        assert!(v(&"1".repeat(256)).is_none());
        let against = SemVerAgainst::new(">=", &s("2.3.0"));
        assert_eq!(against.test(&s("2.4.1")), Val::Bool(true));
        assert_eq!(against.test(&s("v2.3.0-rc.1")), Val::Bool(false));
        assert_eq!(against.test(&s("x")), Val::Null);
        assert_eq!(
            SemVerAgainst::new("==", &s("2.3.0")).test(&s("2.3.0")),
            Val::Null
        );
        assert_eq!(sem_ver(&s("1.0.0"), &s("?"), &s("1.0.0")), Val::Null);
        assert_eq!(
            sem_ver(&Val::Float(1.2), &s("="), &s("1.2.0")),
            Val::Bool(true)
        );
    }

    #[test]
    fn substr_counts_characters_from_either_end() {
        assert_eq!(
            substr(&s("jsonlogic"), Some(Val::Float(4.0)), None),
            s("logic")
        );
        assert_eq!(
            substr(&s("jsonlogic"), Some(Val::Float(-5.0)), None),
            s("logic")
        );
        assert_eq!(
            substr(
                &s("jsonlogic"),
                Some(Val::Float(1.0)),
                Some(Val::Float(3.0))
            ),
            s("son")
        );
        assert_eq!(
            substr(
                &s("jsonlogic"),
                Some(Val::Float(4.0)),
                Some(Val::Float(-2.0))
            ),
            s("log")
        );
        assert_eq!(
            substr(&s("héllo"), Some(Val::Float(1.0)), Some(Val::Float(1.0))),
            s("é")
        );
    }
}
