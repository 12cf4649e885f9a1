//! Which files of a version a one-file runtime (llama.cpp, Ollama) is given: the GGUF, or
//! the first shard of a split one, and the multimodal projector.

use super::Runtime;

/// The files a one-file runtime (llama.cpp, Ollama) is given: `{file}` and `{mmproj}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelFiles {
    /// The model: the version's one `.gguf`, the first shard of a split one
    /// (`…-00001-of-00003.gguf`, from which llama.cpp loads the rest), or its only file.
    pub file: Option<String>,
    /// The multimodal projector, `mmproj*.gguf`: never the model.
    pub mmproj: Option<String>,
}

/// Picks `{file}` and `{mmproj}` from a version's paths (relative to the model dir) for a
/// runtime that serves one file; nothing for other runtimes.
pub fn pick_model_files<'a>(runtime: &Runtime, paths: impl IntoIterator<Item = &'a str>) -> Result<ModelFiles, String> {
    if !runtime.needs_file() {
        return Ok(ModelFiles::default());
    }
    let paths: Vec<&str> = paths.into_iter().collect();
    let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_ascii_lowercase();
    let is_gguf = |p: &&str| base(p).ends_with(".gguf");
    let (projectors, models): (Vec<&str>, Vec<&str>) =
        paths.iter().copied().filter(is_gguf).partition(|p| base(p).starts_with("mmproj"));
    let mmproj = match projectors.as_slice() {
        [] => None,
        [one] => Some((*one).to_owned()),
        several => {
            return Err(format!(
                "runtime '{}' takes one projector, but this version has {} mmproj*.gguf files ({}); publish a version with one",
                runtime.name(),
                several.len(),
                several.join(", ")
            ));
        }
    };
    let file = match (models.as_slice(), paths.as_slice()) {
        ([one], _) => (*one).to_owned(),
        ([], [only]) if mmproj.is_none() => (*only).to_owned(),
        (several, _) => match first_shard(several) {
            Some(first) => first.to_owned(),
            None => {
                return Err(format!(
                    "runtime '{}' serves one file, but this version has {} .gguf model files among {} files \
                     (not the shards of one split model); publish a version with exactly one, or one split \
                     model (name-00001-of-0000N.gguf …)",
                    runtime.name(),
                    several.len(),
                    paths.len()
                ));
            }
        },
    };
    Ok(ModelFiles { file: Some(file), mmproj })
}

/// The first shard when `paths` are exactly the shards of one split GGUF
/// (`<prefix>-00001-of-00003.gguf` … as `llama-gguf-split` names them).
fn first_shard<'a>(paths: &[&'a str]) -> Option<&'a str> {
    // (prefix, shard number, shard count)
    let parse = |p: &'a str| -> Option<(&'a str, u32, u32)> {
        let stem = p.strip_suffix(".gguf").or_else(|| p.strip_suffix(".GGUF"))?;
        let (rest, count) = stem.rsplit_once("-of-")?;
        let (prefix, index) = rest.rsplit_once('-')?;
        let digits = |s: &str| s.len() == 5 && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(index) || !digits(count) {
            return None;
        }
        Some((prefix, index.parse().ok()?, count.parse().ok()?))
    };
    let shards: Vec<(&str, u32, u32)> = paths.iter().map(|p| parse(p)).collect::<Option<_>>()?;
    let (prefix, _, count) = *shards.first()?;
    let mut seen: Vec<u32> = shards.iter().filter(|s| s.0 == prefix && s.2 == count).map(|s| s.1).collect();
    seen.sort_unstable();
    if seen.len() != shards.len() || seen != (1..=count).collect::<Vec<_>>() {
        return None;
    }
    paths.iter().copied().find(|p| parse(p).is_some_and(|s| s.1 == 1))
}

#[cfg(test)]
mod tests {
    use super::super::preset;
    use super::*;

    #[test]
    fn a_split_gguf_is_served_from_its_first_shard_and_a_projector_is_never_the_model() {
        let llama = preset("llama-cpp").expect("preset");
        let pick = |paths: &[&str]| pick_model_files(&llama, paths.iter().copied());
        let picked = |file: &str, mmproj: Option<&str>| {
            Ok(ModelFiles { file: Some(file.to_owned()), mmproj: mmproj.map(str::to_owned) })
        };
        assert_eq!(pick(&["q4.gguf", "README.md"]), picked("q4.gguf", None));
        assert_eq!(pick(&["weights.bin"]), picked("weights.bin", None));
        assert_eq!(
            pick(&["m-00002-of-00003.gguf", "m-00001-of-00003.gguf", "m-00003-of-00003.gguf", "README.md"]),
            picked("m-00001-of-00003.gguf", None)
        );
        assert_eq!(
            pick(&["sub/m-00002-of-00002.gguf", "sub/m-00001-of-00002.gguf"]),
            picked("sub/m-00001-of-00002.gguf", None)
        );
        assert_eq!(pick(&["mmproj-f16.gguf", "gemma-q4.gguf"]), picked("gemma-q4.gguf", Some("mmproj-f16.gguf")));
        assert_eq!(
            pick(&["v/mmproj-model-f16.gguf", "v/m-00001-of-00002.gguf", "v/m-00002-of-00002.gguf"]),
            picked("v/m-00001-of-00002.gguf", Some("v/mmproj-model-f16.gguf"))
        );
        for (paths, needle) in [
            (&["a.gguf", "b.gguf"][..], "2 .gguf model files"),
            (&["m-00001-of-00003.gguf", "m-00002-of-00003.gguf"][..], "not the shards of one split"),
            (&["a-00001-of-00002.gguf", "b-00002-of-00002.gguf"][..], "not the shards of one split"),
            (&["mmproj-a.gguf", "mmproj-b.gguf", "m.gguf"][..], "2 mmproj*.gguf files"),
            (&["a.bin", "b.bin"][..], "0 .gguf model files"),
        ] {
            let err = pick(paths).expect_err(needle);
            assert!(err.contains(needle), "{paths:?}: {err}");
        }
        let vllm = preset("vllm").expect("preset");
        assert_eq!(pick_model_files(&vllm, ["a.gguf", "b.gguf"]), Ok(ModelFiles::default()));
    }
}
