"""Publishes to Hangar's /hf endpoint with the official huggingface_hub client (tests/api/hf.rs).

Usage: hf_write.py <hangar address> <admin token> <maintainer token> <viewer token> <team-b token> <work dir>
The maintainer is not an admin; the team-b token is a maintainer limited to `team-b/*`.
team-a/m exists with a published version 1 and the aliases `staging` and `prod` (protected)
on it. Prints one "<step>: ok" line per step, and the commits it made as "commit <name> <oid>".
"""

import hashlib
import os
import sys

address, admin, maintainer, viewer, team_b, work = sys.argv[1:7]
os.environ["HF_ENDPOINT"] = address + "/hf"
os.environ["HF_HUB_CACHE"] = os.path.join(work, "cache")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
# hf_xet is installed with huggingface_hub and would upload through the Xet protocol,
# which Hangar does not speak: this selects the Git LFS path.
os.environ["HF_HUB_DISABLE_XET"] = "1"

from huggingface_hub import (  # noqa: E402  (the environment is read at import)
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    snapshot_download,
)
from huggingface_hub.errors import (  # noqa: E402
    BadRequestError,
    HfHubHTTPError,
    RepositoryNotFoundError,
)

import huggingface_hub.lfs as lfs  # noqa: E402

api = HfApi(token=admin)
repo = "team-a/fresh"

# Counts the objects the client sends in parts, and the part size Hangar asked for.
multipart_chunks = []
_upload_multi_part = lfs._upload_multi_part


def _counting_multi_part(**kwargs):
    multipart_chunks.append(kwargs["chunk_size"])
    return _upload_multi_part(**kwargs)


lfs._upload_multi_part = _counting_multi_part


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def status_of(error):
    return error.response.status_code


# create_repo: a model; again with exist_ok; again without it is a 409; datasets are refused.
url = api.create_repo(repo)
assert url.repo_id == repo, url
assert api.create_repo(repo, exist_ok=True).repo_id == repo
try:
    api.create_repo(repo)
    raise AssertionError("a second create_repo succeeded")
except HfHubHTTPError as e:
    assert status_of(e) == 409, e
try:
    api.create_repo("team-a/data", repo_type="dataset")
    raise AssertionError("a dataset was created")
except BadRequestError as e:
    assert "models only" in str(e), e
print("create_repo: ok")

# upload_folder: a small file, an empty one and one bigger than a part (multipart).
folder = os.path.join(work, "model")
os.makedirs(os.path.join(folder, "weights"))
with open(os.path.join(folder, "config.json"), "w") as f:
    f.write('{"model_type": "llama"}')
open(os.path.join(folder, "empty.txt"), "w").close()
with open(os.path.join(folder, "weights", "big.bin"), "wb") as f:
    f.write(os.urandom(20 << 20))
first = api.upload_folder(repo_id=repo, folder_path=folder, commit_message="first weights")
assert multipart_chunks == [16 << 20], multipart_chunks
assert len(first.oid) == 40 and first.commit_url.endswith(first.oid), first
print("commit first", first.oid)
assert api.model_info(repo).sha == first.oid
got = snapshot_download(repo, revision=first.oid, token=admin)
for name in ["config.json", "empty.txt", "weights/big.bin"]:
    assert sha256(os.path.join(got, name)) == sha256(os.path.join(folder, name)), name
assert sorted(api.list_repo_files(repo)) == ["config.json", "empty.txt", "weights/big.bin"]
print("upload_folder: ok")

# The same folder again: nothing changed, so no new version.
again = api.upload_folder(repo_id=repo, folder_path=folder)
assert again.oid == first.oid, (again, first)
print("unchanged: ok")

# create_commit: a deletion and an addition on top of the first commit.
second = api.create_commit(
    repo,
    operations=[
        CommitOperationDelete("empty.txt"),
        CommitOperationAdd("notes/readme.md", b"# fresh\n"),
    ],
    commit_message="drop the empty file",
    commit_description="and add notes",
)
print("commit second", second.oid)
assert second.oid != first.oid
assert sorted(api.list_repo_files(repo)) == ["config.json", "notes/readme.md", "weights/big.bin"]
assert [c.commit_id for c in api.list_repo_commits(repo)] == [second.oid, first.oid]
assert api.list_repo_commits(repo)[0].title == "drop the empty file"
got = snapshot_download(repo, revision=second.oid, token=admin)
with open(os.path.join(got, "notes", "readme.md"), "rb") as f:
    assert f.read() == b"# fresh\n"
assert sha256(os.path.join(got, "weights", "big.bin")) == sha256(os.path.join(folder, "weights", "big.bin"))
try:
    api.create_commit(repo, operations=[CommitOperationDelete("nothing-here.txt")], commit_message="no")
    raise AssertionError("deleted a missing file")
except HfHubHTTPError as e:
    assert status_of(e) == 404, e
print("create_commit: ok")

# Committing to an alias moves it; a maintainer may move `staging`, not the protected `prod`.
as_maintainer = HfApi(token=maintainer)
before = api.model_info("team-a/m", revision="staging").sha
moved = as_maintainer.upload_file(
    path_or_fileobj=b"tuned", path_in_repo="extra.txt", repo_id="team-a/m", revision="staging"
)
print("commit staging", moved.oid)
assert moved.oid != before
assert api.model_info("team-a/m", revision="staging").sha == moved.oid
assert "extra.txt" in api.list_repo_files("team-a/m", revision="staging")
assert "extra.txt" not in api.list_repo_files("team-a/m", revision="prod")
try:
    as_maintainer.upload_file(path_or_fileobj=b"no", path_in_repo="x.txt", repo_id="team-a/m", revision="prod")
    raise AssertionError("a maintainer moved a protected alias")
except HfHubHTTPError as e:
    assert status_of(e) == 403 and "protected" in str(e), e
released = api.upload_file(path_or_fileobj=b"yes", path_in_repo="x.txt", repo_id="team-a/m", revision="prod")
assert api.model_info("team-a/m", revision="prod").sha == released.oid
print("commit prod", released.oid)
print("aliases: ok")

# Branches are aliases: made at a revision (or main), listed as refs, read, then deleted.
first = api.list_repo_refs("team-a/m")
assert "exp" not in [b.name for b in first.branches], first
as_maintainer.create_branch("team-a/m", branch="exp", revision="1")
refs = api.list_repo_refs("team-a/m")
exp = next(b for b in refs.branches if b.name == "exp")
assert exp.target_commit == next(t.target_commit for t in refs.tags if t.name == "1"), refs
assert api.model_info("team-a/m", revision="exp").sha == exp.target_commit
try:
    as_maintainer.create_branch("team-a/m", branch="exp")
    raise AssertionError("a branch was made twice")
except HfHubHTTPError as e:
    assert status_of(e) == 409, e
as_maintainer.create_branch("team-a/m", branch="exp", exist_ok=True)
as_maintainer.create_branch("team-a/m", branch="latest")
assert api.model_info("team-a/m", revision="latest").sha == api.model_info("team-a/m", revision="main").sha
for branch, who, status in [("prod", as_maintainer, 403), ("main", api, 403), ("ghost", api, 404)]:
    try:
        who.delete_branch("team-a/m", branch=branch)
        raise AssertionError(f"deleted {branch}")
    except HfHubHTTPError as e:
        assert status_of(e) == status, (branch, e)
try:
    HfApi(token=viewer).create_branch("team-a/m", branch="viewer-made")
    raise AssertionError("a viewer made a branch")
except HfHubHTTPError as e:
    assert status_of(e) == 403, e
try:
    HfApi(token=team_b).create_branch("team-a/m", branch="b-made")
    raise AssertionError("a team-b token made a team-a branch")
except RepositoryNotFoundError:
    pass
as_maintainer.delete_branch("team-a/m", branch="exp")
as_maintainer.delete_branch("team-a/m", branch="latest")
assert [b.name for b in api.list_repo_refs("team-a/m").branches] == [b.name for b in first.branches]
print("branches: ok")

# A viewer may read but not write; a token for team-b/* does not see team-a at all.
try:
    HfApi(token=viewer).upload_file(path_or_fileobj=b"v", path_in_repo="v.txt", repo_id=repo)
    raise AssertionError("a viewer committed")
except HfHubHTTPError as e:
    assert status_of(e) == 403, e
try:
    HfApi(token=viewer).create_repo("team-a/viewer-made")
    raise AssertionError("a viewer created a repo")
except HfHubHTTPError as e:
    assert status_of(e) == 403, e
try:
    HfApi(token=team_b).upload_file(path_or_fileobj=b"b", path_in_repo="b.txt", repo_id=repo)
    raise AssertionError("a team-b token committed to team-a")
except RepositoryNotFoundError:
    pass
try:
    HfApi(token=team_b).create_repo("team-a/outside")
    raise AssertionError("a team-b token created a team-a repo")
except HfHubHTTPError as e:
    assert status_of(e) == 403, e
assert HfApi(token=team_b).create_repo("team-b/inside").repo_id == "team-b/inside"
print("refusals: ok")

# The `hf` command line, as a user runs it: makes the repo and publishes the folder.
import subprocess  # noqa: E402

env = dict(os.environ, HF_TOKEN=admin)
cli = [sys.executable, "-m", "huggingface_hub.cli.hf", "upload", "team-a/cli-made", folder, ".", "--commit-message", "cli"]
ran = subprocess.run(cli, env=env, capture_output=True, text=True)
assert ran.returncode == 0, (ran.stdout, ran.stderr)
assert sorted(api.list_repo_files("team-a/cli-made")) == ["config.json", "empty.txt", "weights/big.bin"]
print("hf upload: ok")
