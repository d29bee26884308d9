fn main() -> std::process::ExitCode {
    rocgw::cli::main()
}
