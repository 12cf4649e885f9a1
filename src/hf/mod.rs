//! The Hugging Face Hub protocol under `/hf`. Read side: what `huggingface_hub`,
//! `transformers`, vLLM, SGLang and TGI call with `HF_ENDPOINT=<hangar>/hf` to find and
//! download a model — model info, tree, refs, commits, `resolve` (GET and HEAD) and `whoami-v2`.
//! Write side ([`write`]): `create_repo`, preupload, the Git LFS batch API (`basic` and
//! `multipart`) and the NDJSON commit, which publishes a new version (`ops::hub`);
//! [`branches`]: `create_branch` and `delete_branch` over aliases.
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

mod branches;
mod handlers;
mod revision;
mod ticket;
mod write;

pub use ticket::TicketKey;
pub use write::MULTIPART_PART_SIZE;

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
    ("post", "/hf/api/repos/create"),
    ("post", "/hf/api/models/{repo}/preupload/{rev}"),
    ("post", "/hf/api/models/{repo}/commit/{rev}"),
    ("post", "/hf/{repo}.git/info/lfs/objects/batch"),
    ("post", "/hf/{repo}.git/info/lfs/objects/verify"),
    ("put", "/hf/lfs/objects/{oid}"),
    ("put", "/hf/lfs/sessions/{id}/parts/{part}"),
    ("post", "/hf/lfs/sessions/{id}/complete"),
    ("post", "/hf/api/models/{repo}/branch/{branch}"),
    ("delete", "/hf/api/models/{repo}/branch/{branch}"),
];

/// The largest JSON request of the write side (a preupload or LFS batch of 256 files).
const HUB_JSON_LIMIT: usize = 8 << 20;
/// The largest commit: its lines, and the files sent inline (the client sends inline only
/// what preupload does not send the LFS way: empty files).
const COMMIT_LIMIT: usize = 64 << 20;

/// Registers the routes. A repo is one path segment or two (`team/name`), so each route is
/// registered for both, the two-segment form first; the bare model info comes last, so that
/// `models/llama/refs` is the refs of `llama`, not the info of a model `llama/refs`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    use handlers::{commits, model_info, refs, resolve, tree, whoami};
    const REPOS: [&str; 2] = ["{team}/{name}", "{name}"];
    cfg.service(web::resource("/hf/api/whoami-v2").route(web::get().to(whoami)));
    let json = || web::PayloadConfig::new(HUB_JSON_LIMIT);
    cfg.service(web::resource("/hf/api/repos/create").app_data(json()).route(web::post().to(write::create_repo)))
        .service(web::resource("/hf/lfs/objects/{oid}").route(web::put().to(write::put_object)))
        .service(web::resource("/hf/lfs/sessions/{id}/parts/{part}").route(web::put().to(write::put_part)))
        .service(web::resource("/hf/lfs/sessions/{id}/complete").route(web::post().to(write::complete_parts)));
    for repo in REPOS {
        let models = format!("/hf/api/models/{repo}");
        let lfs = format!("/hf/{repo}.git/info/lfs/objects");
        cfg.service(
            web::resource(format!("{models}/preupload/{{rev}}"))
                .app_data(json())
                .route(web::post().to(write::preupload_files)),
        )
        .service(
            web::resource(format!("{models}/commit/{{rev}}"))
                .app_data(web::PayloadConfig::new(COMMIT_LIMIT))
                .route(web::post().to(write::create_commit)),
        )
        .service(web::resource(format!("{lfs}/batch")).app_data(json()).route(web::post().to(write::batch_objects)))
        .service(web::resource(format!("{lfs}/verify")).app_data(json()).route(web::post().to(write::verify_object)))
        .service(
            web::resource(format!("{models}/branch/{{branch}}"))
                .app_data(json())
                .route(web::post().to(branches::create_branch))
                .route(web::delete().to(branches::delete_branch)),
        );
    }
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
