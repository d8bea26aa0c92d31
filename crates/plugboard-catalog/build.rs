//! `include_dir!` cannot tell cargo which files it read (on stable), so a new or edited built-in
//! manifest would not trigger a rebuild. Watching the folder here does: when anything in it
//! changes the build script re-runs and the crate (and its embedded catalog) is recompiled.
fn main() {
    println!("cargo:rerun-if-changed=../../catalog");
    println!("cargo:rerun-if-changed=build.rs");
}
