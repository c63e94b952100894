fn main() -> std::process::ExitCode {
    frpc::cli::main()
}
