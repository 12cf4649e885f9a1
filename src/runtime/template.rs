//! Argument templates: a runtime's argv (and its environment values) with placeholders that
//! are filled in per deployment. A template is parsed when it is saved, so an unknown
//! placeholder is refused then (a 400), never discovered when a container fails to start.

use std::fmt;

use super::memory::MemoryBudget;

/// What a template may refer to. `{{` and `}}` stand for literal braces, so JSON-valued
/// flags (vLLM's `--override-generation-config '{{"temperature": 0}}'`) can be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placeholder {
    /// Where the model is mounted in the container: `/model`.
    ModelDir,
    /// The port the server listens on inside the container.
    Port,
    /// The public model name: the deployment's name.
    ServedName,
    /// The share of the GPU's memory the deployment may use, in (0, 1].
    MemFraction,
    /// One file of the version, relative to the model dir (a GGUF for llama.cpp).
    File,
    /// The deployment's memory budget in GiB (`gpu_memory_gib` deployments only).
    MemoryGib,
    /// The same budget in bytes.
    MemoryBytes,
    /// The budget as a share of the device's total memory: vLLM's
    /// `--gpu-memory-utilization`, TGI's `--cuda-memory-fraction`.
    DeviceFraction,
    /// The budget as a share of the memory free when the server starts: SGLang's
    /// `--mem-fraction-static`.
    FreeFraction,
    /// MiB to leave free on the device: llama.cpp's `--fit-target`.
    FitTargetMib,
    /// The version's multimodal projector (`mmproj*.gguf`), relative to the model dir. An
    /// environment entry that uses it is set only when the version has one.
    Mmproj,
}

impl Placeholder {
    pub const ALL: [Placeholder; 11] = [
        Placeholder::ModelDir,
        Placeholder::Port,
        Placeholder::ServedName,
        Placeholder::MemFraction,
        Placeholder::File,
        Placeholder::MemoryGib,
        Placeholder::MemoryBytes,
        Placeholder::DeviceFraction,
        Placeholder::FreeFraction,
        Placeholder::FitTargetMib,
        Placeholder::Mmproj,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Placeholder::ModelDir => "model_dir",
            Placeholder::Port => "port",
            Placeholder::ServedName => "served_name",
            Placeholder::MemFraction => "mem_fraction",
            Placeholder::File => "file",
            Placeholder::MemoryGib => "memory_gib",
            Placeholder::MemoryBytes => "memory_bytes",
            Placeholder::DeviceFraction => "device_fraction",
            Placeholder::FreeFraction => "free_fraction",
            Placeholder::FitTargetMib => "fit_target_mib",
            Placeholder::Mmproj => "mmproj",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Placeholder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{}}}", self.name())
    }
}

fn known_list() -> String {
    Placeholder::ALL.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// Why a template was refused; names the argument and, for placeholders, the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid template {shown:?}: {reason}")]
pub struct TemplateError {
    shown: String,
    reason: String,
}

impl TemplateError {
    fn new(raw: &str, reason: String) -> Self {
        let shown: String = raw.chars().take(120).collect();
        Self { shown, reason }
    }
}

/// A value a rendering needed but was not given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error(
        "the runtime's arguments use {{file}} but no file was chosen for this deployment; \
         name one of the version's files"
    )]
    NoFile,
    #[error(
        "the runtime's arguments use {0}, which only a deployment with a memory budget has; \
         request gpu_memory_gib, or use {{device_fraction}} in the runtime"
    )]
    NoMemoryBudget(Placeholder),
    #[error(
        "the runtime's arguments use {{mmproj}} but the version has no mmproj*.gguf projector; \
         use {{mmproj}} in an environment entry, which is set only when there is one"
    )]
    NoMmproj,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Var(Placeholder),
}

/// One string with placeholders, such as `--port={port}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    raw: String,
    pieces: Vec<Piece>,
}

impl Template {
    pub fn parse(raw: &str) -> Result<Self, TemplateError> {
        let err = |reason: String| TemplateError::new(raw, reason);
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = raw.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '{' if chars.peek().is_some_and(|&(_, n)| n == '{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek().is_some_and(|&(_, n)| n == '}') => {
                    chars.next();
                    text.push('}');
                }
                '}' => {
                    return Err(err(format!("'}}' at byte {at} closes nothing; write '}}}}' for a literal brace")));
                }
                '{' => {
                    let rest = &raw[at + 1..];
                    let Some(end) = rest.find(['}', '{']).filter(|&e| rest[e..].starts_with('}')) else {
                        return Err(err(format!(
                            "'{{' at byte {at} is not closed; write a placeholder such as \
                             {{port}}, or '{{{{' for a literal brace"
                        )));
                    };
                    let name = &rest[..end];
                    let Some(placeholder) = Placeholder::from_name(name) else {
                        return Err(err(format!(
                            "unknown placeholder {{{name}}}; known placeholders are {}",
                            known_list()
                        )));
                    };
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Var(placeholder));
                    let closing = at + 1 + end;
                    while chars.next_if(|&(i, _)| i <= closing).is_some() {}
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Self { raw: raw.to_owned(), pieces })
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    pub fn uses(&self, placeholder: Placeholder) -> bool {
        self.pieces.contains(&Piece::Var(placeholder))
    }

    pub fn render(&self, values: &Values<'_>) -> Result<String, RenderError> {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Var(Placeholder::ModelDir) => out.push_str(values.model_dir),
                Piece::Var(Placeholder::Port) => out.push_str(&values.port.to_string()),
                Piece::Var(Placeholder::ServedName) => out.push_str(values.served_name),
                Piece::Var(Placeholder::MemFraction) => {
                    out.push_str(&format_fraction(values.mem_fraction));
                }
                Piece::Var(Placeholder::File) => out.push_str(values.file.ok_or(RenderError::NoFile)?),
                Piece::Var(p @ Placeholder::MemoryGib) => {
                    out.push_str(&values.memory.budget_gib_text().ok_or(RenderError::NoMemoryBudget(*p))?);
                }
                Piece::Var(p @ Placeholder::MemoryBytes) => {
                    let bytes = values.memory.budget_bytes().ok_or(RenderError::NoMemoryBudget(*p))?;
                    out.push_str(&bytes.to_string());
                }
                Piece::Var(Placeholder::DeviceFraction) => {
                    out.push_str(&format_fraction(values.memory.device_fraction()));
                }
                Piece::Var(Placeholder::FreeFraction) => out.push_str(&format_fraction(values.memory.free_fraction())),
                Piece::Var(Placeholder::FitTargetMib) => out.push_str(&values.memory.fit_target_mib().to_string()),
                Piece::Var(Placeholder::Mmproj) => out.push_str(values.mmproj.ok_or(RenderError::NoMmproj)?),
            }
        }
        Ok(out)
    }
}

/// Four decimals, rounded down so fractions handed to several servers sharing a GPU never
/// add up to more than the budget; trailing zeros dropped (`0.5`, not `0.5000`).
fn format_fraction(fraction: f64) -> String {
    let floored = (fraction.clamp(0.0, 1.0) * 10_000.0).floor() / 10_000.0;
    let text = format!("{floored:.4}");
    let text = text.trim_end_matches('0');
    text.strip_suffix('.').unwrap_or(text).to_owned()
}

/// A whole argv: one template per argument. Stored and sent as a JSON list of strings.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct ArgTemplate(Vec<Template>);

impl ArgTemplate {
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<Self, TemplateError> {
        args.iter().map(|a| Template::parse(a.as_ref())).collect::<Result<_, _>>().map(Self)
    }

    pub fn uses(&self, placeholder: Placeholder) -> bool {
        self.0.iter().any(|t| t.uses(placeholder))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn args(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(Template::as_str)
    }

    pub fn render(&self, values: &Values<'_>) -> Result<Vec<String>, RenderError> {
        self.0.iter().map(|t| t.render(values)).collect()
    }
}

impl TryFrom<Vec<String>> for ArgTemplate {
    type Error = TemplateError;

    fn try_from(args: Vec<String>) -> Result<Self, Self::Error> {
        Self::parse(&args)
    }
}

impl From<ArgTemplate> for Vec<String> {
    fn from(template: ArgTemplate) -> Self {
        template.0.into_iter().map(|t| t.raw).collect()
    }
}

/// What the placeholders stand for in one container.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Values<'a> {
    pub model_dir: &'a str,
    pub port: u16,
    pub served_name: &'a str,
    pub mem_fraction: f64,
    pub file: Option<&'a str>,
    /// The budget behind `{memory_gib}`, `{device_fraction}` and the other memory flags.
    pub memory: MemoryBudget,
    /// `{mmproj}`, relative to the model dir.
    pub mmproj: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: Values<'static> = Values {
        model_dir: "/model",
        port: 8000,
        served_name: "chat",
        mem_fraction: 0.5,
        file: Some("q4.gguf"),
        memory: MemoryBudget { budget_gib: Some(20.0), device_gib: Some(80.0), others_gib: 40.0 },
        mmproj: Some("mmproj-f16.gguf"),
    };

    fn render(raw: &str) -> String {
        Template::parse(raw).expect(raw).render(&VALUES).expect(raw)
    }

    #[test]
    fn placeholders_are_substituted_anywhere_in_an_argument() {
        assert_eq!(render("{model_dir}/{file}"), "/model/q4.gguf");
        assert_eq!(render("--port={port}"), "--port=8000");
        assert_eq!(render("{served_name}"), "chat");
        assert_eq!(render("{mem_fraction}"), "0.5");
        assert_eq!(render("plain"), "plain");
        assert_eq!(render(""), "");
        assert_eq!(render("{{\"t\": {port}}}"), "{\"t\": 8000}");
    }

    #[test]
    fn memory_placeholders_render_the_budget_in_each_servers_terms() {
        assert_eq!(render("{memory_gib}"), "20");
        assert_eq!(render("{memory_bytes}"), (20u64 << 30).to_string());
        assert_eq!(render("{device_fraction}"), "0.25");
        assert_eq!(render("{free_fraction}"), "0.5");
        assert_eq!(render("--fit-target={fit_target_mib}"), "--fit-target=20480");
        let whole = Values { memory: MemoryBudget::default(), ..VALUES };
        let err = Template::parse("{memory_gib}").expect("valid").render(&whole).expect_err("no budget");
        assert_eq!(err, RenderError::NoMemoryBudget(Placeholder::MemoryGib));
        assert!(err.to_string().contains("gpu_memory_gib"), "{err}");
        assert_eq!(Template::parse("{device_fraction}").expect("valid").render(&whole).as_deref(), Ok("0.85"));
    }

    #[test]
    fn fractions_are_rounded_down_to_four_decimals() {
        for (fraction, want) in [(0.5, "0.5"), (1.0, "1"), (16.0 / 119.6, "0.1337"), (0.99999, "0.9999"), (1.5, "1")] {
            assert_eq!(format_fraction(fraction), want, "{fraction}");
        }
    }

    #[test]
    fn bad_templates_name_the_problem() {
        let cases = [
            ("--port {prot}", "unknown placeholder {prot}"),
            ("{PORT}", "unknown placeholder {PORT}"),
            ("{}", "unknown placeholder {}"),
            ("{port", "is not closed"),
            ("{ {port}", "is not closed"),
            ("port}", "closes nothing"),
        ];
        for (raw, needle) in cases {
            let err = Template::parse(raw).expect_err(raw).to_string();
            assert!(err.contains(needle), "{raw}: {err}");
            assert!(err.contains(&format!("{raw:?}")), "names the argument: {err}");
        }
        let err = Template::parse("{gpu}").expect_err("unknown").to_string();
        assert!(
            err.contains(
                "{model_dir}, {port}, {served_name}, {mem_fraction}, {file}, {memory_gib}, \
                 {memory_bytes}, {device_fraction}, {free_fraction}, {fit_target_mib}, {mmproj}"
            ),
            "lists the known placeholders: {err}"
        );
    }

    #[test]
    fn an_argv_round_trips_through_json_and_refuses_bad_arguments() {
        let argv: ArgTemplate = serde_json::from_str(r#"["/model", "--port", "{port}"]"#).expect("valid");
        assert!(argv.uses(Placeholder::Port));
        assert!(!argv.uses(Placeholder::File));
        assert_eq!(argv.render(&VALUES).expect("renders"), ["/model", "--port", "8000"]);
        assert_eq!(serde_json::to_string(&argv).expect("serializes"), r#"["/model","--port","{port}"]"#);
        let err = serde_json::from_str::<ArgTemplate>(r#"["--x", "{nope}"]"#).expect_err("bad");
        assert!(err.to_string().contains("unknown placeholder {nope}"), "{err}");
    }

    #[test]
    fn rendering_file_without_one_says_what_to_do() {
        let argv = ArgTemplate::parse(&["-m", "/model/{file}"]).expect("valid");
        let err = argv.render(&Values { file: None, ..VALUES }).expect_err("no file");
        assert_eq!(err, RenderError::NoFile);
        assert!(err.to_string().contains("{file}"), "{err}");
    }

    #[test]
    fn rendering_mmproj_without_a_projector_says_to_use_the_environment() {
        assert_eq!(render("{model_dir}/{mmproj}"), "/model/mmproj-f16.gguf");
        let argv = ArgTemplate::parse(&["--mmproj", "/model/{mmproj}"]).expect("valid");
        let err = argv.render(&Values { mmproj: None, ..VALUES }).expect_err("no projector");
        assert_eq!(err, RenderError::NoMmproj);
        assert!(err.to_string().contains("environment entry"), "{err}");
    }
}
