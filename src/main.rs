//! `hissrv`: parse the command line, load the config, run.

use hissrv::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "\
usage: hissrv run [--config PATH]      run the agent (embedded defaults without --config)
       hissrv check-config PATH        validate a config and print the effective one
       hissrv status [--url URL | --config PATH]
                                       summary of a running agent (default: the embedded listen address)
       hissrv --version";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        ["--version" | "-V" | "version"] => {
            println!("hissrv {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        ["check-config", path] => match Config::load(&PathBuf::from(path)) {
            Ok(cfg) => {
                print!("{}", cfg.to_redacted_yaml());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("hissrv: {path}: {e}");
                ExitCode::FAILURE
            }
        },
        ["run"] | [] => run(None),
        ["status"] => status(None, None),
        ["status", "--url", url] => status(Some(url), None),
        ["status", "--config" | "-c", path] => status(None, Some(PathBuf::from(path))),
        ["run", "--config" | "-c", path] => run(Some(PathBuf::from(path))),
        ["help" | "--help" | "-h"] => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(path: Option<PathBuf>) -> ExitCode {
    let cfg = match &path {
        Some(p) => Config::load(p),
        None => Config::embedded(),
    };
    let cfg = match cfg {
        Ok(c) => c,
        Err(e) => {
            let from = path.map_or("embedded defaults".into(), |p| p.display().to_string());
            eprintln!("hissrv: {from}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let level = cfg
        .service
        .log_level
        .parse()
        .unwrap_or(log::LevelFilter::Info);
    let _ = simplelog::TermLogger::init(
        level,
        simplelog::ConfigBuilder::new()
            .set_time_format_rfc3339()
            // Their debug output is per request; ours says what matters.
            .add_filter_ignore_str("ureq")
            .add_filter_ignore_str("rustls")
            .build(),
        simplelog::TerminalMode::Stderr,
        simplelog::ColorChoice::Never,
    );
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        log::error!("panic: {info}");
        default_hook(info);
    }));
    let shutdown = match hissrv::signals::on_stop_signal() {
        Ok(rx) => rx,
        Err(e) => {
            log::error!("cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    match hissrv::app::run(cfg, shutdown) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("hissrv: {e}");
            ExitCode::FAILURE
        }
    }
}

fn status(url: Option<&str>, config: Option<PathBuf>) -> ExitCode {
    let url = match (url, config) {
        (Some(u), _) => u.to_string(),
        (None, path) => {
            let cfg = match &path {
                Some(p) => Config::load(p),
                None => Config::embedded(),
            };
            match cfg {
                Ok(c) => format!("http://{}", c.service.http_listen),
                Err(e) => {
                    eprintln!("hissrv: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    match hissrv::status::status(&url) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hissrv: {e}");
            ExitCode::FAILURE
        }
    }
}
