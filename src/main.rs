use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::{c_char, c_int, CStr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use mimalloc::MiMalloc;

/// The console, `watch`, `demo` and `sim` run for hours: they use mimalloc, which
/// gives freed pages back (glibc's malloc kept a cold start's peak, a relist of
/// 20,000 pods, as RSS for good). A one-shot command (`rollback`, `gate`, `status`,
/// `history`, `report`) keeps the system allocator, which touches less memory for a
/// short life. Chosen before main, before the first allocation, and never changed, so
/// every block is freed by the allocator that made it.
struct ByLifetime;

static LONG_RUNNING: AtomicBool = AtomicBool::new(false);

fn long_running() -> bool {
    LONG_RUNNING.load(Ordering::Relaxed)
}

// SAFETY: each call goes to one allocator, the same for the whole process (the flag is
// set before the first allocation and never again), so a block is always reallocated
// and freed by the allocator that made it.
unsafe impl GlobalAlloc for ByLifetime {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe {
            match long_running() {
                true => MiMalloc.alloc(layout),
                false => System.alloc(layout),
            }
        }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        unsafe {
            match long_running() {
                true => MiMalloc.alloc_zeroed(layout),
                false => System.alloc_zeroed(layout),
            }
        }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe {
            match long_running() {
                true => MiMalloc.dealloc(ptr, layout),
                false => System.dealloc(ptr, layout),
            }
        }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe {
            match long_running() {
                true => MiMalloc.realloc(ptr, layout, new_size),
                false => System.realloc(ptr, layout, new_size),
            }
        }
    }
}

#[global_allocator]
static ALLOCATOR: ByLifetime = ByLifetime;

/// The commands that end once their one job is done.
const ONE_SHOT: [&[u8]; 8] = [
    b"rollback",
    b"gate",
    b"status",
    b"history",
    b"report",
    b"completions",
    b"man",
    b"triggers",
];

/// mimalloc's options by their place in `mi_option_e` (mimalloc.h); the test below
/// checks the numbering by their neighbours' defaults.
const ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed pages go back to the system at once, and arenas are committed as they are
/// used: a console open for a shift holds what it uses, not its start-up peak.
fn return_freed_memory() {
    // SAFETY: mi_option_set only stores an integer option; any value is valid.
    unsafe {
        libmimalloc_sys::mi_option_set(ARENA_EAGER_COMMIT, 0);
        libmimalloc_sys::mi_option_set(PURGE_DELAY, 0);
    }
}

/// Whether the arguments name a one-shot command. Reads them in place: nothing may be
/// allocated before the allocator is chosen. A flag's value that happens to be one of
/// the words only changes which allocator serves the process.
///
/// # Safety
/// `argv` holds `argc` valid C strings, as glibc passes them to `.init_array`.
unsafe fn one_shot(argc: c_int, argv: *const *const c_char) -> bool {
    (1..argc.max(0) as usize).any(|i| {
        // SAFETY: within argc, per the caller.
        let arg = unsafe { CStr::from_ptr(*argv.add(i)) }.to_bytes();
        ONE_SHOT.contains(&arg)
    })
}

/// Run by glibc before main, with main's arguments, before the runtime's first
/// allocation (and before it reserves mimalloc's first arena, committed as the options
/// say when it is reserved). Elsewhere (musl passes no arguments) the system allocator
/// serves every command.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[used]
#[unsafe(link_section = ".init_array")]
static CHOOSE_ALLOCATOR: extern "C" fn(c_int, *const *const c_char, *const *const c_char) = {
    extern "C" fn before_main(argc: c_int, argv: *const *const c_char, _: *const *const c_char) {
        // SAFETY: glibc passes main's argc and argv to .init_array functions.
        if argv.is_null() || unsafe { one_shot(argc, argv) } {
            return;
        }
        return_freed_memory();
        LONG_RUNNING.store(true, Ordering::Relaxed);
    }
    before_main
};

fn main() -> ExitCode {
    backout::cli::main()
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;

    use libmimalloc_sys::mi_option_get;

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn the_options_are_set_before_main_and_their_numbers_still_name_them() {
        // The test binary runs with no one-shot command among its arguments.
        assert!(super::long_running(), "mimalloc chosen before main");
        // SAFETY: reading an option has no precondition.
        unsafe {
            assert_eq!(
                mi_option_get(super::ARENA_EAGER_COMMIT),
                0,
                "set before main"
            );
            assert_eq!(mi_option_get(super::PURGE_DELAY), 0, "set before main");
            // Their neighbours keep mimalloc v3's defaults (options.c): were the
            // enum renumbered, these would read something else.
            assert_eq!(
                mi_option_get(super::ARENA_EAGER_COMMIT + 1),
                1,
                "purge_decommits"
            );
            assert_eq!(mi_option_get(super::PURGE_DELAY + 3), 100, "os_tag");
        }
    }

    #[test]
    fn every_one_shot_word_is_a_command_the_cli_knows() {
        use clap::CommandFactory;
        let cli = backout::cli::Cli::command();
        for word in super::ONE_SHOT {
            let word = std::str::from_utf8(word).unwrap();
            assert!(cli.find_subcommand(word).is_some(), "{word}");
        }
    }

    #[test]
    fn a_one_shot_command_is_told_by_its_word() {
        let argv = |args: &[&str]| -> (Vec<CString>, Vec<*const std::ffi::c_char>) {
            let owned: Vec<CString> = args.iter().map(|a| CString::new(*a).unwrap()).collect();
            let pointers = owned.iter().map(|c| c.as_ptr()).collect();
            (owned, pointers)
        };
        for (args, expected) in [
            (&["backout", "rollback", "web", "--yes"][..], true),
            (&["backout", "--kubeconfig", "k", "gate", "web"][..], true),
            (&["backout"][..], false),
            (
                &["backout", "--kubeconfig", "k", "--config", "c"][..],
                false,
            ),
            (&["backout", "watch", "--auto-rollback"][..], false),
            (&["backout", "demo"][..], false),
        ] {
            let (_owned, pointers) = argv(args);
            // SAFETY: `pointers` holds `args.len()` valid C strings kept alive by `_owned`.
            let got = unsafe { super::one_shot(args.len() as i32, pointers.as_ptr()) };
            assert_eq!(got, expected, "{args:?}");
        }
    }
}
