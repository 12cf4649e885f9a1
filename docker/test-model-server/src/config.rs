//! Settings from the command line and the environment. Unknown arguments are skipped, so the
//! server can be started with the argv of a real runtime (`/model --gpu-memory-utilization
//! 0.5 …`); common spellings of the same setting in vLLM, llama.cpp, SGLang, TGI and Triton
//! are understood. Every setting also reads `HANGAR_TEST_<NAME>`; a flag wins over it.

use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub host: String,
    pub port: u16,
    pub model_dir: PathBuf,
    pub served_model_name: String,
    /// The file whose digest answers prove which version is mounted; `None`: the
    /// lexicographically first regular file under `model_dir`.
    pub digest_file: Option<PathBuf>,
    /// `/health` answers 503 until this long after start.
    pub health_delay: Duration,
    /// The port is bound only this long after start: connections are refused until then,
    /// as vLLM does while it loads weights.
    pub listen_delay: Duration,
    pub never_healthy: bool,
    /// The process exits with `exit_code` this long after start.
    pub exit_after: Option<Duration>,
    pub exit_code: i32,
    /// Pause between streamed chunks.
    pub token_delay: Duration,
    /// Answer 404 when a request names a model other than `served_model_name`, as vLLM does.
    pub strict_model: bool,
    /// Wait this long before answering a `/v1/*` request at all (a server that hangs).
    pub response_delay: Duration,
    /// Close the connection on a `/v1/*` request without answering (a server that crashed
    /// under the request, or a port nothing listens on behind Docker's proxy).
    pub hang_up: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: "0.0.0.0".into(),
            port: 8000,
            model_dir: PathBuf::from("/model"),
            served_model_name: "test-model".into(),
            digest_file: None,
            health_delay: Duration::ZERO,
            listen_delay: Duration::ZERO,
            never_healthy: false,
            exit_after: None,
            exit_code: 1,
            token_delay: Duration::ZERO,
            strict_model: false,
            response_delay: Duration::ZERO,
            hang_up: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Host,
    Port,
    ModelDir,
    ServedName,
    DigestFile,
    HealthDelaySecs,
    ListenDelaySecs,
    NeverHealthy,
    ExitAfterSecs,
    ExitCode,
    TokenDelayMs,
    StrictModel,
    ResponseDelayMs,
    HangUp,
}

/// Flag spellings (ours first, then those of real runtimes) and the variable for each key.
const KEYS: &[(Key, &[&str], &str)] = &[
    (Key::Host, &["--host", "--hostname"], "HANGAR_TEST_HOST"),
    (Key::Port, &["--port", "--http-port"], "HANGAR_TEST_PORT"),
    (Key::ModelDir, &["--model-dir", "--model-path", "--model-id", "--model-repository"], "HANGAR_TEST_MODEL_DIR"),
    (Key::ServedName, &["--served-model-name", "--alias"], "HANGAR_TEST_SERVED_MODEL_NAME"),
    // llama.cpp names the one file it serves with `-m /model/{file}`.
    (Key::DigestFile, &["--digest-file", "-m", "--model"], "HANGAR_TEST_FILE"),
    (Key::HealthDelaySecs, &["--health-delay-secs"], "HANGAR_TEST_HEALTH_DELAY_SECS"),
    (Key::ListenDelaySecs, &["--listen-delay-secs"], "HANGAR_TEST_LISTEN_DELAY_SECS"),
    (Key::NeverHealthy, &["--never-healthy"], "HANGAR_TEST_NEVER_HEALTHY"),
    (Key::ExitAfterSecs, &["--exit-after-secs"], "HANGAR_TEST_EXIT_AFTER_SECS"),
    (Key::ExitCode, &["--exit-code"], "HANGAR_TEST_EXIT_CODE"),
    (Key::TokenDelayMs, &["--token-delay-ms"], "HANGAR_TEST_TOKEN_DELAY_MS"),
    (Key::StrictModel, &["--strict-model"], "HANGAR_TEST_STRICT_MODEL"),
    (Key::ResponseDelayMs, &["--response-delay-ms"], "HANGAR_TEST_RESPONSE_DELAY_MS"),
    (Key::HangUp, &["--hang-up"], "HANGAR_TEST_HANG_UP"),
];

fn is_switch(key: Key) -> bool {
    matches!(key, Key::NeverHealthy | Key::StrictModel | Key::HangUp)
}

impl Config {
    /// Reads `args` (without the program name) over `env`. `--exit-code C` alone exits at once;
    /// `--exit-after-secs N` alone exits with code 1.
    pub fn parse(args: impl IntoIterator<Item = String>, env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut given: Vec<(Key, String, String)> = Vec::new();
        for (key, _, var) in KEYS {
            if let Some(value) = env(var) {
                given.push((*key, (*var).to_owned(), value));
            }
        }
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((flag, value)) if flag.starts_with('-') => (flag.to_owned(), Some(value)),
                _ => (arg.clone(), None),
            };
            let Some((key, _, _)) = KEYS.iter().find(|(_, flags, _)| flags.contains(&&*flag)) else {
                // Someone else's flag or a positional argument: not ours to judge.
                continue;
            };
            let value = match (inline, is_switch(*key)) {
                (Some(value), _) => value.to_owned(),
                (None, true) => "true".to_owned(),
                (None, false) => args.next().ok_or_else(|| format!("{flag} needs a value"))?,
            };
            given.push((*key, flag, value));
        }

        let mut config = Config::default();
        let mut exit_code_given = false;
        for (key, source, value) in given {
            let millis = |v: &str| -> Result<Duration, String> {
                v.parse::<u64>().map(Duration::from_millis).map_err(|_| format!("{source}: {v:?} is not milliseconds"))
            };
            let secs = |v: &str| -> Result<Duration, String> {
                v.parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| format!("{source}: {v:?} is not a number of seconds"))
            };
            match key {
                Key::Host => config.host = value,
                Key::Port => {
                    config.port = value.parse().map_err(|_| format!("{source}: {value:?} is not a port (0-65535)"))?;
                }
                Key::ModelDir => config.model_dir = PathBuf::from(value),
                Key::ServedName => config.served_model_name = value,
                Key::DigestFile => config.digest_file = Some(PathBuf::from(value)),
                Key::HealthDelaySecs => config.health_delay = secs(&value)?,
                Key::ListenDelaySecs => config.listen_delay = secs(&value)?,
                Key::NeverHealthy => config.never_healthy = parse_bool(&source, &value)?,
                Key::StrictModel => config.strict_model = parse_bool(&source, &value)?,
                Key::HangUp => config.hang_up = parse_bool(&source, &value)?,
                Key::ExitAfterSecs => config.exit_after = Some(secs(&value)?),
                Key::ExitCode => {
                    config.exit_code = value.parse().map_err(|_| format!("{source}: {value:?} is not an exit code"))?;
                    exit_code_given = true;
                }
                Key::TokenDelayMs => config.token_delay = millis(&value)?,
                Key::ResponseDelayMs => config.response_delay = millis(&value)?,
            }
        }
        if exit_code_given && config.exit_after.is_none() {
            config.exit_after = Some(Duration::ZERO);
        }
        Ok(config)
    }
}

fn parse_bool(source: &str, value: &str) -> Result<bool, String> {
    match value {
        "1" | "true" | "yes" => Ok(true),
        "0" | "false" | "no" | "" => Ok(false),
        _ => Err(format!("{source}: {value:?} is not true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, String> {
        Config::parse(args.iter().map(|s| (*s).to_owned()), |_| None)
    }

    #[test]
    fn no_arguments_give_the_defaults() {
        assert_eq!(parse(&[]), Ok(Config::default()));
    }

    #[test]
    fn our_flags_in_both_forms() {
        let c = parse(&[
            "--host",
            "127.0.0.1",
            "--port=9001",
            "--model-dir",
            "/m",
            "--served-model-name",
            "llama",
            "--health-delay-secs",
            "1.5",
            "--listen-delay-secs=2",
            "--exit-after-secs",
            "3",
            "--exit-code",
            "42",
            "--token-delay-ms",
            "20",
            "--digest-file",
            "weights.bin",
            "--strict-model",
            "--response-delay-ms=250",
            "--hang-up",
        ])
        .expect("valid");
        assert_eq!(c.host, "127.0.0.1");
        assert_eq!(c.port, 9001);
        assert_eq!(c.model_dir, PathBuf::from("/m"));
        assert_eq!(c.served_model_name, "llama");
        assert_eq!(c.health_delay, Duration::from_millis(1500));
        assert_eq!(c.listen_delay, Duration::from_secs(2));
        assert_eq!(c.exit_after, Some(Duration::from_secs(3)));
        assert_eq!(c.exit_code, 42);
        assert_eq!(c.token_delay, Duration::from_millis(20));
        assert_eq!(c.digest_file, Some(PathBuf::from("weights.bin")));
        assert!(c.strict_model);
        assert_eq!(c.response_delay, Duration::from_millis(250));
        assert!(c.hang_up);
        assert!(!c.never_healthy);
        assert!(parse(&["--never-healthy"]).expect("valid").never_healthy);
    }

    #[test]
    fn the_argv_of_real_runtimes_is_understood_where_it_overlaps() {
        let vllm = parse(&[
            "/model",
            "--served-model-name",
            "chat",
            "--host",
            "0.0.0.0",
            "--port",
            "8123",
            "--gpu-memory-utilization",
            "0.5",
        ])
        .expect("vllm argv");
        assert_eq!((vllm.port, vllm.served_model_name.as_str()), (8123, "chat"));

        let llama = parse(&[
            "-m",
            "/model/q4.gguf",
            "--alias",
            "tiny",
            "--host",
            "0.0.0.0",
            "--port",
            "8080",
            "-ngl",
            "999",
            "--no-mmap",
        ])
        .expect("llama.cpp argv");
        assert_eq!(llama.digest_file, Some(PathBuf::from("/model/q4.gguf")));
        assert_eq!(llama.served_model_name, "tiny");
        assert_eq!(llama.port, 8080);

        let triton = parse(&["tritonserver", "--model-repository=/model", "--http-port=8000"]).expect("triton argv");
        assert_eq!(triton.model_dir, PathBuf::from("/model"));
    }

    #[test]
    fn flags_win_over_the_environment() {
        let env = |var: &str| match var {
            "HANGAR_TEST_PORT" => Some("7000".to_owned()),
            "HANGAR_TEST_FILE" => Some("b.txt".to_owned()),
            "HANGAR_TEST_NEVER_HEALTHY" => Some("1".to_owned()),
            _ => None,
        };
        let from_env = Config::parse(Vec::<String>::new(), env).expect("valid");
        assert_eq!(from_env.port, 7000);
        assert_eq!(from_env.digest_file, Some(PathBuf::from("b.txt")));
        assert!(from_env.never_healthy);
        let flagged = Config::parse(["--port".to_owned(), "7001".to_owned()], env).expect("valid");
        assert_eq!(flagged.port, 7001);
    }

    #[test]
    fn an_exit_code_alone_exits_at_once_and_a_delay_alone_exits_with_1() {
        let c = parse(&["--exit-code", "3"]).expect("valid");
        assert_eq!((c.exit_after, c.exit_code), (Some(Duration::ZERO), 3));
        let c = parse(&["--exit-after-secs", "2"]).expect("valid");
        assert_eq!((c.exit_after, c.exit_code), (Some(Duration::from_secs(2)), 1));
    }

    #[test]
    fn bad_values_name_the_flag() {
        for (args, needle) in [
            (&["--port", "99999"][..], "--port"),
            (&["--port"][..], "--port needs a value"),
            (&["--health-delay-secs", "-1"][..], "--health-delay-secs"),
            (&["--exit-code", "x"][..], "--exit-code"),
            (&["--token-delay-ms", "1.5"][..], "--token-delay-ms"),
            (&["--never-healthy=maybe"][..], "--never-healthy"),
        ] {
            let err = parse(args).expect_err("invalid");
            assert!(err.contains(needle), "{args:?}: {err}");
        }
        let err = Config::parse(Vec::<String>::new(), |v: &str| (v == "HANGAR_TEST_PORT").then(|| "x".to_owned()))
            .expect_err("invalid env");
        assert!(err.contains("HANGAR_TEST_PORT"), "{err}");
    }
}
