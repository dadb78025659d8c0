//! What `flags::get(name).enabled()` answered on this thread: the hot read.
//!
//! With no context, a flag's answer depends only on the snapshot and the name, and a handler
//! asks the same few names again and again. So each thread remembers its last answers, each
//! with the process-wide store's install count when it was worked out
//! ([`GLOBAL_INSTALLS`]), for names of up to 32 bytes — keyed by the name's bytes themselves
//! (its length and four words), not by its address, so a buffer reused for another name can never
//! return the first name's answer. A read loads the install count (a cache line only an install
//! writes), compares it and the name with the slot the name maps to, and returns the answer;
//! anything else — another snapshot, another name in the slot, a longer name — is worked out
//! through the thread's view of the snapshot ([`crate::snapshot`]) and remembered. A swap is
//! therefore seen at every thread's next read, and nothing shared is written.
//!
//! Why apart from the view: the slots hold plain values, so this thread-local needs no
//! destructor, and std reduces its access to an address computation — the whole read, slot and
//! comparisons, is then small enough to be inlined where flags are read, as a map lookup is.
//! (The view holds an `Arc` of the snapshot: its thread-local must be registered for
//! destruction, checked at each access, and it needs a `RefCell` against reads inside reads;
//! with all that, std's access was left out of line and a read cost a call.) For a literal name
//! the key and slot are constants.

use std::cell::Cell;
use std::sync::atomic::Ordering;

use crate::snapshot::{GLOBAL_INSTALLS, global_toggle};

/// Slots per thread: a handler reads a handful of flags; 16 keep them apart.
const SLOT_BITS: u32 = 4;
const SLOTS: usize = 1 << SLOT_BITS;
/// The longest name remembered: its bytes fit in the key's words (names like
/// `checkout/new-payment-flow` included).
const MAX_NAME: usize = 32;
const WORDS: usize = MAX_NAME / 8;

/// A name of up to [`MAX_NAME`] bytes, exactly: its length and words read from it.
///
/// The words are read at fixed places for each length, overlapping where the name is shorter
/// than they span, so two names of one length have the same words only if they have the same
/// bytes. Whole-word loads, no byte buffer: for a literal name the compiler folds them into
/// constants, and for others there is no store to reload through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    len: usize,
    words: [u64; WORDS],
}

impl Key {
    /// The key of `name`, if it is short enough to have one.
    #[inline(always)]
    fn of(name: &str) -> Option<Self> {
        let bytes = name.as_bytes();
        let len = bytes.len();
        let words = match len {
            0 => [0; WORDS],
            // Bytes 0, len / 2 and len - 1: every byte of a name of 1 to 3 bytes.
            1..4 => {
                let at = |i: usize| bytes.get(i).copied().map_or(0, u64::from);
                [at(0) | at(len / 2) << 8 | at(len - 1) << 16, 0, 0, 0]
            }
            // The first four bytes and the last four.
            4..8 => [
                u64::from(half(bytes, 0)?) | u64::from(half(bytes, len - 4)?) << 32,
                0,
                0,
                0,
            ],
            // Words at 0, 8 (or the end), 16 (or the end) and the end.
            8..=MAX_NAME => [
                word(bytes, 0)?,
                word(bytes, 8.min(len - 8))?,
                word(bytes, 16.min(len - 8))?,
                word(bytes, len - 8)?,
            ],
            _ => return None,
        };
        Some(Self { len, words })
    }

    /// The slot this key's answer lives in: the top bits of a multiplicative hash of its words.
    #[inline(always)]
    fn slot(&self) -> usize {
        let folded = self
            .words
            .iter()
            .fold(self.len as u64, |h, w| h.rotate_left(23) ^ w);
        let mixed = folded.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (mixed >> (u64::BITS - SLOT_BITS)) as usize
    }
}

/// The eight bytes of `bytes` from `at`.
#[inline(always)]
fn word(bytes: &[u8], at: usize) -> Option<u64> {
    let chunk = bytes.get(at..)?.first_chunk::<8>()?;
    Some(u64::from_le_bytes(*chunk))
}

/// The four bytes of `bytes` from `at`.
#[inline(always)]
fn half(bytes: &[u8], at: usize) -> Option<u32> {
    let chunk = bytes.get(at..)?.first_chunk::<4>()?;
    Some(u32::from_le_bytes(*chunk))
}

/// One remembered answer: `toggle` is what the flag said ([`crate::Flag::toggle`]: `None` when
/// the caller's default applies) as of install `generation`, for the name of `len` and `words`.
/// A cell per field, so a read loads the words it compares and nothing else (copying the whole
/// answer out first went through the stack and stalled the loads that followed).
struct Slot {
    generation: Cell<u64>,
    len: Cell<usize>,
    words: [Cell<u64>; WORDS],
    toggle: Cell<Option<bool>>,
}

impl Slot {
    /// A slot no read matches: install counts start at 1.
    const fn empty() -> Self {
        Self {
            generation: Cell::new(0),
            len: Cell::new(usize::MAX),
            words: [const { Cell::new(0) }; WORDS],
            toggle: Cell::new(None),
        }
    }

    /// The remembered answer, if it is `key`'s as of install `installs`.
    #[inline(always)]
    fn answer(&self, installs: u64, key: &Key) -> Option<Option<bool>> {
        // Every comparison at once, without a branch per word.
        let differs = self
            .words
            .iter()
            .zip(key.words)
            .fold(self.generation.get() ^ installs, |d, (held, word)| {
                d | (held.get() ^ word)
            })
            | (self.len.get() ^ key.len) as u64;
        (differs == 0).then(|| self.toggle.get())
    }

    fn remember(&self, generation: u64, key: &Key, toggle: Option<bool>) {
        self.generation.set(generation);
        self.len.set(key.len);
        for (held, word) in self.words.iter().zip(key.words) {
            held.set(word);
        }
        self.toggle.set(toggle);
    }
}

thread_local! {
    /// This thread's remembered answers; plain values, so no destructor (see the module).
    static ANSWERS: [Slot; SLOTS] = const { [const { Slot::empty() }; SLOTS] };
}

/// `flags::get(name).enabled()` (or `get_or(name, default)`) on the process-wide store.
#[inline(always)]
pub(crate) fn enabled(name: &str, default: bool) -> bool {
    // Before the slot is read: an answer worked out at this count or later is current.
    let installs = GLOBAL_INSTALLS.0.load(Ordering::Acquire);
    let Some(key) = Key::of(name) else {
        return work_out(name, None, default);
    };
    let slot = key.slot();
    match ANSWERS.try_with(|answers| answers[slot].answer(installs, &key)) {
        Ok(Some(toggle)) => toggle.unwrap_or(default),
        _ => work_out(name, Some((key, slot)), default),
    }
}

/// Works `name`'s answer out through the thread's view of the snapshot and, if it has a key,
/// remembers it. Out of line: it runs once per name, slot collision or install per thread.
#[cold]
#[inline(never)]
fn work_out(name: &str, key: Option<(Key, usize)>, default: bool) -> bool {
    let (generation, toggle) = global_toggle(name);
    if let (Some(generation), Some((key, slot))) = (generation, key) {
        // No destructor, so never gone; if it were, the answer just is not remembered.
        let _ = ANSWERS.try_with(|answers| answers[slot].remember(generation, &key, toggle));
    }
    toggle.unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_the_name_itself() {
        let names = [
            "",
            "a",
            "ab",
            "ba",
            "abc",
            "acb",
            "abcd",
            "abce",
            "abcdefg",
            "abcdeff",
            "dark-mod",
            "dark-mode",
            "dark-modf",
            "new-checkout",
            "team/feature-1",
            "checkout-flow-v2",
            "checkout-flow-v3",
            "checkout/new-payment-flow",
            "checkout/new-payment-flox",
            "0123456789abcdef0123456789abcdef",
        ];
        for (i, a) in names.iter().enumerate() {
            for (j, b) in names.iter().enumerate() {
                assert_eq!(Key::of(a) == Key::of(b), i == j, "{a:?} vs {b:?}");
            }
        }
        // Zero bytes pad short names: a name ending in NULs is still told apart by its length.
        assert_ne!(Key::of("ab"), Key::of("ab\0"));
        assert_eq!(
            Key::of("0123456789abcdef0123456789abcdef!"),
            None,
            "33 bytes: not remembered"
        );
        assert!(
            names
                .iter()
                .filter_map(|n| Key::of(n))
                .all(|k| k.slot() < SLOTS)
        );
    }
}
