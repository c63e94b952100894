/// mimalloc keeps freed memory for reuse: the data path's buffers (ours and the yamux crate's)
/// are recycled instead of being mapped and unmapped by glibc for every large chunk, which a
/// profile showed as ~12% of the tunnel's CPU in page faults (bench/RESULTS.md).
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    frps::cli::main()
}
