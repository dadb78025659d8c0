//! What `flags::get(name).enabled()` answered on this thread: the hot read.
//!
//! With no context, a flag's answer depends only on the snapshot and the name, and a handler
//! asks the same few names again and again. So each thread remembers its last answers, each
//! with the process-wide store's install count when it was worked out ([`GLOBAL_INSTALLS`]),
//! for names of up to 32 bytes — keyed by the name's bytes themselves (its length and four
//! words), not by its address, so a buffer reused for another name never gets the first
//! name's answer. A read loads the install count (a cache line only an install writes),
//! compares it and the name with the slot the name maps to, and returns the answer; anything
//! else — another snapshot, another name in the slot — is worked out through the thread's view
//! of the snapshot ([`crate::global`]) and remembered, and a longer name is read through that
//! view. A swap is therefore seen at every thread's next read, and nothing shared is written.
//! `enabled_for` a context uses the same answer when every context gets it (a boolean flag, a
//! disabled one, a default) and evaluates the rules otherwise.
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

use super::{GLOBAL_INSTALLS, global_evaluation};

/// Slots per thread: 32, and each name may live in either of two ([`Key::slots`]), so the
/// handful of flags a handler reads in turn settle in slots of their own instead of evicting
/// each other (with one slot per name, two of five names would share it about half the time).
const SLOT_BITS: u32 = 5;
const SLOTS: usize = 1 << SLOT_BITS;
/// The longest name remembered: its bytes fit in the key's words. Four words: with eight,
/// the comparison grew past what the inliner takes in some callers (a criterion loop took a
/// call per read, 20 ns), while a longer name, read through the thread's view, costs about
/// what hashing it does (`make bench`, "flags_get_long_name").
const MAX_NAME: usize = 32;
const WORDS: usize = MAX_NAME / 8;

/// A name of up to [`MAX_NAME`] bytes, exactly: its length and words read from it.
///
/// The words are read at fixed places for each length — word `i` at byte `8 i`, or the last
/// eight bytes where that would run past the end — so two names of one length have the same
/// words only if they have the same bytes.
/// Whole-word loads, no byte buffer: for a literal name the compiler folds them into constants,
/// and for others there is no store to reload through.
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
        let mut words = [0; WORDS];
        match len {
            0 => {}
            // Bytes 0, len / 2 and len - 1: every byte of a name of 1 to 3 bytes.
            1..4 => {
                let at = |i: usize| bytes.get(i).copied().map_or(0, u64::from);
                words[0] = at(0) | at(len / 2) << 8 | at(len - 1) << 16;
            }
            // The first four bytes and the last four.
            4..8 => {
                words[0] = u64::from(half(bytes, 0)?) | u64::from(half(bytes, len - 4)?) << 32;
            }
            8..=MAX_NAME => {
                for (i, held) in words.iter_mut().enumerate() {
                    *held = word(bytes, (8 * i).min(len - 8))?;
                }
            }
            _ => return None,
        }
        Some(Self { len, words })
    }

    /// The two slots this key's answer may live in, first choice first: two fields of a
    /// multiplicative hash of its words (distinct, so a name always has a second choice).
    #[inline(always)]
    fn slots(&self) -> [usize; 2] {
        let folded = self
            .words
            .iter()
            .fold(self.len as u64, |h, w| h.rotate_left(23) ^ w);
        let mixed = folded.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let first = (mixed >> (u64::BITS - SLOT_BITS)) as usize;
        let second = (mixed >> (u64::BITS - 2 * SLOT_BITS)) as usize % SLOTS;
        [first, if second == first { first ^ 1 } else { second }]
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

/// What a flag says with no user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Answer {
    /// `Some(on)` when the flag decides, `None` when the caller's default applies (missing,
    /// invalid, not a toggle).
    pub(crate) toggle: Option<bool>,
    /// Whether every context gets the same answer ([`crate::eval::Reason::ignores_context`]): then
    /// `enabled_for` may use it too.
    pub(crate) any_context: bool,
}

impl Answer {
    /// The answer of an evaluation with no user (made with `false` as the default).
    pub(crate) fn of(evaluation: &crate::eval::Evaluation) -> Self {
        Self {
            toggle: (!evaluation.reason.is_default()).then_some(evaluation.enabled),
            any_context: evaluation.reason.ignores_context(),
        }
    }
}

/// One remembered [`Answer`] as of install `generation`, for the name of `len` and `words`. A
/// cell per field, so a read loads the words it compares and nothing else (copying the whole
/// slot out first went through the stack and stalled the loads that followed).
struct Slot {
    generation: Cell<u64>,
    len: Cell<usize>,
    words: [Cell<u64>; WORDS],
    answer: Cell<Answer>,
}

impl Slot {
    /// A slot no read matches: install counts start at 1.
    const fn empty() -> Self {
        Self {
            generation: Cell::new(0),
            len: Cell::new(usize::MAX),
            words: [const { Cell::new(0) }; WORDS],
            answer: Cell::new(Answer {
                toggle: None,
                any_context: false,
            }),
        }
    }

    /// The remembered answer, if it is `key`'s as of install `installs`.
    #[inline(always)]
    fn answer(&self, installs: u64, key: &Key) -> Option<Answer> {
        // Every comparison at once, without a branch per word.
        let differs = self
            .words
            .iter()
            .zip(key.words)
            .fold(self.generation.get() ^ installs, |d, (held, word)| {
                d | (held.get() ^ word)
            })
            | (self.len.get() ^ key.len) as u64;
        (differs == 0).then(|| self.answer.get())
    }

    /// Whether the slot holds an answer worked out at install `generation`.
    fn is_current(&self, generation: u64) -> bool {
        self.generation.get() == generation
    }

    fn remember(&self, generation: u64, key: &Key, answer: Answer) {
        self.generation.set(generation);
        self.len.set(key.len);
        for (held, word) in self.words.iter().zip(key.words) {
            held.set(word);
        }
        self.answer.set(answer);
    }
}

thread_local! {
    /// This thread's remembered answers; plain values, so no destructor (see the module).
    static ANSWERS: [Slot; SLOTS] = const { [const { Slot::empty() }; SLOTS] };
}

/// `flags::get(name).enabled()` (or `get_or(name, default)`) on the process-wide store; `None`
/// for a name too long to remember, which the caller reads through the thread's view.
#[inline(always)]
pub(crate) fn enabled(name: &str, default: bool) -> Option<bool> {
    let key = Key::of(name)?;
    Some(answer(name, key).toggle.unwrap_or(default))
}

/// `flags::get(name).enabled_for(context)` when the answer is the same for every context (a
/// boolean flag, a disabled one, a default); `None` when the context must be evaluated.
#[inline(always)]
pub(crate) fn enabled_for_any(name: &str, default: bool) -> Option<bool> {
    // A name too long to remember goes straight to the evaluation: working out an answer that
    // cannot be kept would only add to it.
    let key = Key::of(name)?;
    let answer = answer(name, key);
    answer.any_context.then(|| answer.toggle.unwrap_or(default))
}

/// `name`'s answer in the current snapshot: from its first slot here, else further on.
#[inline(always)]
fn answer(name: &str, key: Key) -> Answer {
    // Relaxed: the slots are this thread's own, so no load of shared data depends on this one.
    // A count that moved sends the read to `work_out`, whose view loads the count again with
    // Acquire before it loads the snapshot (`ThreadView::reload`).
    let installs = GLOBAL_INSTALLS.0.load(Ordering::Relaxed);
    let slots = key.slots();
    match ANSWERS.try_with(|answers| answers[slots[0]].answer(installs, &key)) {
        Ok(Some(answer)) => answer,
        _ => look_further(name, key, installs, slots),
    }
}

/// The answer in the key's second slot, else worked out. Out of line, and not cold: a name
/// whose first slot another holds lives in its second.
#[inline(never)]
fn look_further(name: &str, key: Key, installs: u64, slots: [usize; 2]) -> Answer {
    match ANSWERS.try_with(|answers| answers[slots[1]].answer(installs, &key)) {
        Ok(Some(answer)) => answer,
        _ => work_out(name, key, slots),
    }
}

/// Works `name`'s answer out through the thread's view of the snapshot and remembers it: in its
/// first slot, unless another name's current answer is there and not in the second. Out of
/// line: it runs once per name and install per thread (and when three names contend for two
/// slots).
#[cold]
#[inline(never)]
fn work_out(name: &str, key: Key, slots: [usize; 2]) -> Answer {
    let (generation, evaluation) = global_evaluation(name);
    let answer = Answer::of(&evaluation);
    #[cfg(test)]
    tests::WORKED_OUT.with(|n| n.set(n.get() + 1));
    // A flagd rule's answer may change with time alone: worked out at every read.
    if let (Some(generation), true) = (generation, evaluation.reason.is_lasting()) {
        // No destructor, so never gone; if it were, the answer just is not remembered.
        let _ = ANSWERS.try_with(|answers| {
            let [first, second] = slots.map(|at| &answers[at]);
            let slot = if first.is_current(generation) && !second.is_current(generation) {
                second
            } else {
                first
            };
            slot.remember(generation, &key, answer);
        });
    }
    answer
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
        let long = "0123456789abcdef".repeat(2);
        assert!(Key::of(&long).is_some(), "32 bytes: remembered");
        assert_eq!(
            Key::of(&format!("{long}!")),
            None,
            "33 bytes: not remembered"
        );
        // Two 30-byte names that differ in one byte of every word in turn.
        let base = "x".repeat(30);
        for at in 0..30 {
            let mut other = base.clone().into_bytes();
            other[at] = b'y';
            let other = String::from_utf8(other).expect("ascii");
            assert_ne!(Key::of(&base), Key::of(&other), "byte {at}");
        }
        assert!(names.iter().filter_map(|n| Key::of(n)).all(|k| {
            let [first, second] = k.slots();
            first < SLOTS && second < SLOTS && first != second
        }));
    }

    thread_local! {
        /// How many answers this thread worked out (not found remembered).
        pub(super) static WORKED_OUT: Cell<usize> = const { Cell::new(0) };
    }

    /// Reads `names` in turn, `rounds` times; returns how many answers were worked out, or
    /// `None` if another test installed flags meanwhile (the count would include that).
    fn worked_out_reading(names: &[String], rounds: usize) -> Option<usize> {
        let installs = GLOBAL_INSTALLS.0.load(Ordering::Acquire);
        let before = WORKED_OUT.with(Cell::get);
        for _ in 0..rounds {
            for name in names {
                assert_eq!(enabled(name, false), Some(name.ends_with('1')), "{name}");
            }
        }
        let after = WORKED_OUT.with(Cell::get);
        (GLOBAL_INSTALLS.0.load(Ordering::Acquire) == installs).then_some(after - before)
    }

    #[test]
    fn flags_read_in_turn_settle_in_slots_of_their_own() {
        // Twelve names, as a busy handler might read: after a few rounds (a name evicted from
        // its first slot moves to its second) every answer is remembered, none evicting another (other tests in this process may install flags at
        // any time: a round they disturb is run again).
        let names: Vec<String> = (0..12).map(|i| format!("team/feature-{i}")).collect();
        crate::install(crate::Snapshot::from_values(names.iter().map(|n| {
            (n.as_str(), if n.ends_with('1') { "true" } else { "false" })
        })));
        let settled = (0..20).find_map(|_| {
            worked_out_reading(&names, 3)?;
            worked_out_reading(&names, 5)
        });
        assert_eq!(
            settled,
            Some(0),
            "answers still worked out once the names had settled"
        );
    }
}
