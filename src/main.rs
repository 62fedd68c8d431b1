//! `hissrv`: parse the command line, load the config, run.

use hissrv::cli::{self, Command};
use hissrv::config::Config;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match cli::parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hissrv: {e}\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    let result = match cmd {
        Command::Version => {
            println!("hissrv {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Help => {
            println!("{}", cli::USAGE);
            Ok(())
        }
        Command::CheckConfig { path, get } => load(Some(&path)).and_then(|cfg| match get {
            None => {
                print!("{}", cfg.to_redacted_yaml());
                Ok(())
            }
            Some(key) => cfg.setting(&key).map(|v| println!("{v}")),
        }),
        Command::Run { config } => run(config),
        Command::Status { url, config } => load(config.as_deref()).and_then(|cfg| {
            let url = url.unwrap_or_else(|| format!("http://{}", cfg.service.http_listen));
            hissrv::observe::status::status(&url).map(|text| print!("{text}"))
        }),
        Command::Restore {
            source,
            url,
            config,
            filter,
            max_rate,
            dry_run,
        } => load(config.as_deref()).and_then(|cfg| {
            let r = hissrv::cli::restore::Restore {
                source,
                filter,
                dry_run,
                url: url.unwrap_or_else(|| format!("http://{}", cfg.service.http_listen)),
                auth: cfg.service.auth.clone(),
                max_rate,
                s3: cfg.lifecycle.archive.s3.clone(),
            };
            let done = hissrv::cli::restore::restore(&r, &mut std::io::stdout().lock())?;
            eprintln!(
                "hissrv: {} {} points from {} objects",
                if dry_run { "would restore" } else { "restored" },
                done.points,
                done.objects
            );
            Ok(())
        }),
        Command::ArchiveList { source, config } => load(config.as_deref()).and_then(|cfg| {
            hissrv::cli::archive_ls::list(&source, &cfg.lifecycle.archive.s3)
                .map(|text| print!("{text}"))
        }),
        Command::Inspect { buffer, config } => buffer_path(buffer, config).and_then(|p| {
            hissrv::cli::inspect::inspect(&p, hissrv::clock::now_ms()).map(|text| print!("{text}"))
        }),
        Command::Export {
            buffer,
            config,
            filter,
        } => buffer_path(buffer, config).and_then(|p| {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            hissrv::cli::inspect::export(&p, &filter, &mut out).and_then(|done| {
                use std::io::Write;
                out.flush().map_err(|e| e.to_string())?;
                eprintln!("hissrv: exported {} lines", done.lines);
                for (id, why) in &done.damaged {
                    eprintln!("hissrv: batch {id} is damaged and was skipped: {why}");
                }
                match done.damaged.len() {
                    0 => Ok(()),
                    k => Err(format!(
                        "{k} damaged batches skipped (the forwarder quarantines them as dead letters)"
                    )),
                }
            })
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hissrv: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The config file, or the embedded defaults.
fn load(path: Option<&Path>) -> Result<Config, String> {
    match path {
        Some(p) => Config::load(p)
            .map_err(|e| format!("{}: {e}", p.display()))
            .and_then(|c| {
                // The TLS files parsed as the clients will (a key that does
                // not fit its certificate is refused here).
                hissrv::tls::check_files(&c)
                    .map(|_| c)
                    .map_err(|e| format!("{}: {e}", p.display()))
            }),
        None => Config::embedded().map_err(|e| format!("embedded defaults: {e}")),
    }
}

fn buffer_path(buffer: Option<PathBuf>, config: Option<PathBuf>) -> Result<PathBuf, String> {
    match buffer {
        Some(b) => Ok(b),
        None => load(config.as_deref()).map(|c| c.buffer.path),
    }
}

fn run(path: Option<PathBuf>) -> Result<(), String> {
    let cfg = load(path.as_deref())?;
    // The logger passes everything; the level in force is log's max level,
    // which a config reload can change.
    let _ = simplelog::TermLogger::init(
        log::LevelFilter::Trace,
        simplelog::ConfigBuilder::new()
            .set_time_format_rfc3339()
            // Their debug output is per request; ours says what matters.
            .add_filter_ignore_str("ureq")
            .add_filter_ignore_str("rustls")
            .build(),
        simplelog::TerminalMode::Stderr,
        simplelog::ColorChoice::Never,
    );
    hissrv::app::reload::set_log_level(&cfg.service.log_level);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        log::error!("panic: {info}");
        default_hook(info);
    }));
    let (shutdown, hup) = hissrv::app::signals::install()
        .map_err(|e| format!("cannot install signal handlers: {e}"))?;
    hissrv::app::run(cfg, path, shutdown, hup).map_err(|e| {
        log::error!("{e}");
        e.to_string()
    })
}
