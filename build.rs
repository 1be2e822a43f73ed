//! Links the functions the console runs next to each other, in the order that
//! `assets/link-order.txt` lists them.
//!
//! The kernel maps a program's code 64 KiB at a time around each page it runs. The
//! console runs about 5 MB of the binary's 26 MB of code, spread over the whole of it,
//! so nearly every 64 KiB was mapped: 17.6 MiB of its RSS were code pages. The list
//! is written by `.ci/link-order` from a run of the console under callgrind; a name it
//! holds that the binary no longer has is skipped, so a stale list costs only memory.
//!
//! Only LLD reads the list. It is rustc's own linker on x86_64 Linux from 1.90, so the
//! list is passed there and nowhere else, and never when a linker is chosen by hand.

use std::env;
use std::process::Command;

const LIST: &str = "assets/link-order.txt";

fn main() {
    println!("cargo:rerun-if-changed={LIST}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    let optimized = env::var("OPT_LEVEL").is_ok_and(|level| level != "0");
    if !optimized || !links_with_rust_lld() {
        return;
    }
    // Read when the script runs, not when it was compiled: a script built for another
    // checkout sharing the target directory would name that checkout's list.
    let root = env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let list = format!("{root}/{LIST}");
    println!("cargo:rustc-link-arg-bin=backout=-Wl,--symbol-ordering-file={list}");
    println!("cargo:rustc-link-arg-bin=backout=-Wl,--no-warn-symbol-ordering");
}

/// rustc links x86_64 Linux binaries with its own LLD from 1.90, unless told otherwise.
fn links_with_rust_lld() -> bool {
    let target = env::var("TARGET").unwrap_or_default();
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    let chosen_by_hand = ["linker", "fuse-ld", "link-self-contained"]
        .iter()
        .any(|flag| flags.contains(flag))
        || env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some();
    target == "x86_64-unknown-linux-gnu" && !chosen_by_hand && rustc_minor() >= Some(90)
}

/// The minor version of the rustc building this crate: `rustc 1.95.0 (…)` gives 95.
fn rustc_minor() -> Option<u32> {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc).arg("-V").output().ok()?;
    let version = String::from_utf8(out.stdout).ok()?;
    version
        .split_whitespace()
        .nth(1)?
        .split('.')
        .nth(1)?
        .parse()
        .ok()
}
