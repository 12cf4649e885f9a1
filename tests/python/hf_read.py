"""Drives Hangar's /hf endpoint with the official huggingface_hub client (tests/api/hf.rs).

Usage: hf_read.py <hangar address> <token> <scoped token> <cache dir> <config v1 sha256> <config v2 sha256>
The model team-a/m has version 1 (config.json, weights/a.bin), version 2 (config.json,
weights/a.bin, tokenizer.json), the alias `stable` on 1; team-b/m is outside the scoped token.
"""

import hashlib
import os
import sys

address, token, scoped, cache, config_v1, config_v2 = sys.argv[1:7]
os.environ["HF_ENDPOINT"] = address + "/hf"
os.environ["HF_HUB_CACHE"] = cache
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

from huggingface_hub import (  # noqa: E402  (HF_ENDPOINT is read at import)
    HfApi,
    hf_hub_download,
    scan_cache_dir,
    snapshot_download,
)
from huggingface_hub.errors import (  # noqa: E402
    EntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

api = HfApi(token=token)
repo = "team-a/m"


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


info = api.model_info(repo, files_metadata=True)
assert sorted(s.rfilename for s in info.siblings) == ["config.json", "tokenizer.json", "weights/a.bin"], info
config = next(s for s in info.siblings if s.rfilename == "config.json")
assert config.lfs.sha256 == config_v2 and config.size == config.lfs.size, config
main_sha = info.sha
assert len(main_sha) == 40, main_sha
stable = api.model_info(repo, revision="stable")
v1 = api.model_info(repo, revision="1")
assert stable.sha == v1.sha != main_sha, (stable.sha, v1.sha, main_sha)
assert api.model_info(repo, revision=v1.sha).sha == v1.sha
print("model_info: ok")

assert sorted(api.list_repo_files(repo)) == ["config.json", "tokenizer.json", "weights/a.bin"]
assert sorted(api.list_repo_files(repo, revision="stable")) == ["config.json", "weights/a.bin"]
top = sorted((e.path, type(e).__name__) for e in api.list_repo_tree(repo))
assert top == [("config.json", "RepoFile"), ("tokenizer.json", "RepoFile"), ("weights", "RepoFolder")], top
print("list_repo_files: ok")

refs = api.list_repo_refs(repo)
branches = {b.name: b.target_commit for b in refs.branches}
tags = {t.name: t.target_commit for t in refs.tags}
assert branches == {"stable": v1.sha, "main": main_sha}, branches
assert tags == {"1": v1.sha, "2": main_sha}, tags
print("list_repo_refs: ok")

history = api.list_repo_commits(repo)
assert [c.commit_id for c in history] == [main_sha, v1.sha], history
assert [c.commit_id for c in api.list_repo_commits(repo, revision="stable")] == [v1.sha]
print("list_repo_commits: ok")

path = hf_hub_download(repo, "config.json", token=token)
assert sha256(path) == config_v2, path
assert f"snapshots/{main_sha}/" in path, path
path = hf_hub_download(repo, "config.json", revision="stable", token=token)
assert sha256(path) == config_v1, path
print("hf_hub_download: ok")

for revision in ["stable", "2", v1.sha]:
    folder = snapshot_download(repo, revision=revision, token=token, allow_patterns=["*.json"])
    names = sorted(os.listdir(folder))
    expected = ["config.json"] if revision != "2" else ["config.json", "tokenizer.json"]
    assert names == expected, (revision, names)
folder = snapshot_download(repo, token=token)
assert sorted(os.listdir(folder)) == ["config.json", "tokenizer.json", "weights"], folder
print("snapshot_download: ok")

cached = next(r for r in scan_cache_dir(cache).repos if r.repo_id == repo)
commits = {rev.commit_hash for rev in cached.revisions}
assert commits == {main_sha, v1.sha}, commits
refs_seen = {ref for rev in cached.revisions for ref in rev.refs}
assert {"main", "stable"} <= refs_seen, refs_seen
print("scan_cache_dir: ok")

for call in [
    lambda: api.model_info("team-a/ghost"),
    lambda: HfApi(token=scoped).model_info("team-b/m"),
    lambda: hf_hub_download("team-b/m", "config.json", token=scoped, cache_dir=cache + "-scoped"),
]:
    try:
        call()
        raise AssertionError("a hidden repo answered")
    except RepositoryNotFoundError:
        pass
try:
    api.model_info(repo, revision="no-such-revision")
    raise AssertionError("a missing revision answered")
except RevisionNotFoundError:
    pass
try:
    hf_hub_download(repo, "missing.txt", token=token, cache_dir=cache + "-missing")
    raise AssertionError("a missing file answered")
except EntryNotFoundError:
    pass
print("not found: ok")

me = api.whoami()
assert me["name"] and me["auth"]["accessToken"]["role"] == "write", me
print("whoami: ok")
