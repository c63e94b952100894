fn main() -> std::process::ExitCode {
    frps::cli::main()
}
