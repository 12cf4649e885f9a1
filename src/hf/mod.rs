//! The Hugging Face Hub protocol under `/hf`, read side: what `huggingface_hub`,
//! `transformers`, vLLM, SGLang and TGI call with `HF_ENDPOINT=<hangar>/hf` to find and
//! download a model — model info, tree, refs, commits, `resolve` (GET and HEAD) and `whoami-v2`.
//!
//! A Hangar model is a repo (`name` or `team/name`, type `model` only). A revision is an
//! alias (a branch), a published version's name (a tag), a version's commit id, or `main`:
//! the alias `main` if there is one, else the newest published version. Drafts are
//! invisible. A version's commit id is [`commit_id`]: stable, since a published version is
//! immutable. Every file is presented as an LFS file whose oid is its sha256, which is also
//! the `ETag` of its download, so the client verifies what it gets against our digest.
//!
//! A repo the caller may not read answers exactly as one that does not exist (404 with
//! `X-Error-Code: RepoNotFound`, which the client turns into `RepositoryNotFoundError`).
//! We never send the `X-Xet-*` headers nor a `Link: …; rel="xet-auth"`: without them the
//! client downloads over plain HTTP. These routes are not in the OpenAPI document: their
//! contract is the Hub's, not ours.

mod handlers;
mod revision;

use actix_web::web;

/// Every route this module registers, as the route table test lists them.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/hf/api/whoami-v2"),
    ("get", "/hf/api/models/{repo}"),
    ("get", "/hf/api/models/{repo}/revision/{rev}"),
    ("get", "/hf/api/models/{repo}/tree/{rev}"),
    ("get", "/hf/api/models/{repo}/refs"),
    ("get", "/hf/api/models/{repo}/commits/{rev}"),
    ("get", "/hf/{repo}/resolve/{rev}/{path}"),
    ("head", "/hf/{repo}/resolve/{rev}/{path}"),
];

/// Registers the routes. A repo is one path segment or two (`team/name`), so each route is
/// registered for both, the two-segment form first; the bare model info comes last, so that
/// `models/llama/refs` is the refs of `llama`, not the info of a model `llama/refs`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use handlers::{commits, model_info, refs, resolve, tree, whoami};
    const REPOS: [&str; 2] = ["{team}/{name}", "{name}"];
    cfg.service(web::resource("/hf/api/whoami-v2").route(web::get().to(whoami)));
    for repo in REPOS {
        let models = format!("/hf/api/models/{repo}");
        cfg.service(web::resource(format!("{models}/revision/{{rev}}")).route(web::get().to(model_info)))
            .service(
                web::resource([format!("{models}/tree/{{rev}}"), format!("{models}/tree/{{rev}}/{{path:.*}}")])
                    .route(web::get().to(tree)),
            )
            .service(web::resource(format!("{models}/refs")).route(web::get().to(refs)))
            .service(web::resource(format!("{models}/commits/{{rev}}")).route(web::get().to(commits)))
            .service(
                web::resource(format!("/hf/{repo}/resolve/{{rev}}/{{path:.*}}"))
                    .route(web::get().to(resolve))
                    .route(web::head().to(resolve)),
            );
    }
    for repo in REPOS {
        cfg.service(web::resource(format!("/hf/api/models/{repo}")).route(web::get().to(model_info)));
    }
}
