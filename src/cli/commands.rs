//! The command line: which command, with which options. `main` dispatches.

use std::path::PathBuf;

pub const USAGE: &str = "\
usage: hissrv run [--config PATH]            run the agent (embedded defaults without --config)
       hissrv check-config PATH [--get KEY]  validate a config and print the effective one
                                             (or one setting, e.g. buffer.path: for scripts)
       hissrv status [--url URL | --config PATH]
                                             summary of a running agent
       hissrv inspect [--buffer PATH | --config PATH]
                                             what the buffer holds, per destination (read-only)
       hissrv export [--buffer PATH | --config PATH] [--destination DB[/RP]]
                     [--since T] [--until T] [--dead-letters]
                                             buffered points as line protocol on stdout
                                             (T: RFC 3339 like 2026-11-25T10:00:00Z, or ns)
       hissrv archive ls file:///DIR/|s3://BUCKET/PREFIX/ [--config PATH]
                                             the cold archive's objects with their manifests
                                             (S3: the store and keys of the config)
       hissrv restore SOURCE [--url URL | --config PATH] [--destination DB[/RP]]
                      [--since T] [--until T] [--max-rate POINTS/S] [--dry-run]
                                             archived points sent back through the agent
       hissrv --version";

/// Points a second `restore` sends by default: a tenth of what one agent
/// commits on a gateway core, so live writes keep their pace.
pub const RESTORE_DEFAULT_RATE: u64 = 20_000;

#[derive(Debug, PartialEq)]
pub enum Command {
    Version,
    Help,
    CheckConfig {
        path: PathBuf,
        /// A dotted key (`buffer.path`): print only its effective value.
        get: Option<String>,
    },
    Run {
        config: Option<PathBuf>,
    },
    Status {
        url: Option<String>,
        config: Option<PathBuf>,
    },
    Inspect {
        buffer: Option<PathBuf>,
        config: Option<PathBuf>,
    },
    Export {
        buffer: Option<PathBuf>,
        config: Option<PathBuf>,
        filter: crate::cli::inspect::ExportFilter,
    },
    /// `archive ls SOURCE`: a `cold_storage` URL.
    ArchiveList {
        source: String,
        config: Option<PathBuf>,
    },
    Restore {
        source: String,
        url: Option<String>,
        config: Option<PathBuf>,
        filter: crate::cli::inspect::ExportFilter,
        max_rate: u64,
        dry_run: bool,
    },
}

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, String> {
    let Some((cmd, rest)) = args.split_first() else {
        return Ok(Command::Run { config: None });
    };
    let mut opts = std::collections::HashMap::new();
    let mut flags = Vec::new();
    let mut positional = Vec::new();
    let mut it = rest.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dead-letters" | "--dry-run" => flags.push(a.as_str()),
            "--config" | "-c" | "--url" | "--buffer" | "--destination" | "--since" | "--until"
            | "--get" | "--max-rate" => {
                let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
                let key = if a == "-c" { "--config" } else { a.as_str() };
                opts.insert(key, v.clone());
            }
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => positional.push(s.to_string()),
        }
    }
    let path = |k: &str| opts.get(k).map(PathBuf::from);
    let allow = |allowed: &[&str], pos: usize| -> Result<(), String> {
        if let Some(k) = opts.keys().find(|k| !allowed.contains(k)) {
            return Err(format!("{k} does not apply to {cmd}"));
        }
        if positional.len() != pos {
            return Err(format!("unexpected arguments for {cmd}: {positional:?}"));
        }
        for f in &flags {
            let applies = (*f == "--dead-letters" && cmd == "export")
                || (*f == "--dry-run" && cmd == "restore");
            if !applies {
                return Err(format!("{f} does not apply to {cmd}"));
            }
        }
        Ok(())
    };
    Ok(match cmd.as_str() {
        "--version" | "-V" | "version" => Command::Version,
        "help" | "--help" | "-h" => Command::Help,
        "check-config" => {
            allow(&["--get"], 1)?;
            Command::CheckConfig {
                path: PathBuf::from(&positional[0]),
                get: opts.get("--get").cloned(),
            }
        }
        "run" => {
            allow(&["--config"], 0)?;
            Command::Run {
                config: path("--config"),
            }
        }
        "status" => {
            allow(&["--config", "--url"], 0)?;
            Command::Status {
                url: opts.get("--url").cloned(),
                config: path("--config"),
            }
        }
        "inspect" => {
            allow(&["--config", "--buffer"], 0)?;
            Command::Inspect {
                buffer: path("--buffer"),
                config: path("--config"),
            }
        }
        "export" => {
            allow(
                &[
                    "--config",
                    "--buffer",
                    "--destination",
                    "--since",
                    "--until",
                ],
                0,
            )?;
            let time = |k: &str| {
                opts.get(k)
                    .map(|t| crate::cli::inspect::parse_time(t))
                    .transpose()
            };
            Command::Export {
                buffer: path("--buffer"),
                config: path("--config"),
                filter: crate::cli::inspect::ExportFilter {
                    destination: opts.get("--destination").cloned(),
                    since_ns: time("--since")?,
                    until_ns: time("--until")?,
                    dead_letters: flags.contains(&"--dead-letters"),
                },
            }
        }
        "restore" => {
            allow(
                &[
                    "--config",
                    "--url",
                    "--destination",
                    "--since",
                    "--until",
                    "--max-rate",
                ],
                1,
            )?;
            let time = |k: &str| {
                opts.get(k)
                    .map(|t| crate::cli::inspect::parse_time(t))
                    .transpose()
            };
            let max_rate = match opts.get("--max-rate") {
                Some(v) => v
                    .parse()
                    .map_err(|_| format!("--max-rate {v:?}: points a second, like 20000"))?,
                None => RESTORE_DEFAULT_RATE,
            };
            Command::Restore {
                source: positional[0].clone(),
                url: opts.get("--url").cloned(),
                config: path("--config"),
                filter: crate::cli::inspect::ExportFilter {
                    destination: opts.get("--destination").cloned(),
                    since_ns: time("--since")?,
                    until_ns: time("--until")?,
                    dead_letters: false,
                },
                max_rate,
                dry_run: flags.contains(&"--dry-run"),
            }
        }
        "archive" => {
            allow(&["--config"], 2)?;
            if positional[0] != "ls" {
                return Err(format!("unknown archive command {:?} (ls)", positional[0]));
            }
            Command::ArchiveList {
                source: positional[1].clone(),
                config: path("--config"),
            }
        }
        other => return Err(format!("unknown command {other:?}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Command, String> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn commands_and_their_options_parse() {
        assert_eq!(p(""), Ok(Command::Run { config: None }));
        assert_eq!(
            p("run --config a.yaml"),
            Ok(Command::Run {
                config: Some("a.yaml".into())
            })
        );
        let Ok(Command::Export { filter, .. }) =
            p("export --destination plant/rp --since 1000 --dead-letters")
        else {
            panic!()
        };
        assert_eq!(filter.destination.as_deref(), Some("plant/rp"));
        assert_eq!((filter.since_ns, filter.dead_letters), (Some(1000), true));
    }

    #[test]
    fn mistakes_are_named() {
        assert!(p("run --url x").unwrap_err().contains("--url"));
        assert!(p("export --since soon").unwrap_err().contains("soon"));
        assert!(
            p("inspect --frobnicate")
                .unwrap_err()
                .contains("--frobnicate")
        );
        assert!(p("dance").unwrap_err().contains("dance"));
        assert_eq!(
            p("archive ls file:///a/"),
            Ok(Command::ArchiveList {
                source: "file:///a/".into(),
                config: None
            })
        );
        assert!(p("archive rm file:///a/").unwrap_err().contains("rm"));
        let Ok(Command::Restore {
            filter,
            dry_run,
            max_rate,
            ..
        }) = p("restore file:///a/ --destination plant --since 5 --dry-run")
        else {
            panic!()
        };
        assert_eq!(filter.destination.as_deref(), Some("plant"));
        assert_eq!(
            (filter.since_ns, dry_run, max_rate),
            (Some(5), true, RESTORE_DEFAULT_RATE)
        );
        assert!(p("inspect --dry-run").unwrap_err().contains("--dry-run"));
        assert!(
            p("restore file:///a/ --max-rate fast")
                .unwrap_err()
                .contains("fast")
        );
    }
}
